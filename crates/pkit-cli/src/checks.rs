//! Turning flags into library options, and the checks and messages that
//! make a bad value point at its flag.

use pkit::{Command, Error, GroupBuilder};

use crate::args::RunArgs;
use crate::size;

/// Refusals that need more than one flag, or the environment.
pub fn check(_args: &RunArgs) -> Result<(), String> {
    if let Some(v) = std::env::var_os("PKIT_CLONE3") {
        let ok = ["on", "off", "1", "0", ""].iter().any(|k| v == *k);
        if !ok {
            return Err(format!(
                "PKIT_CLONE3={:?} is not one of on, off, 1, 0 (off forces the second spawn rung)",
                v.to_string_lossy()
            ));
        }
    }
    Ok(())
}

/// Flags that have no effect as given.
pub fn warnings(args: &RunArgs) -> Vec<String> {
    let mut w = Vec::new();
    let no_timeout = args.timeout.is_none_or_zero();
    if args.preserve_status && no_timeout {
        w.push("--preserve-status has no effect without a --timeout".into());
    }
    w
}

trait NoneOrZero {
    fn is_none_or_zero(&self) -> bool;
}

impl NoneOrZero for Option<std::time::Duration> {
    fn is_none_or_zero(&self) -> bool {
        self.map_or(true, |d| d.is_zero() || d == std::time::Duration::MAX)
    }
}

/// The group: mechanism and caps.
///
/// `--stats` on a hybrid host, whose v2 tree has no memory controller,
/// also puts the run in a v1 memory cgroup of its own with no effective
/// limit, so the whole tree's peak memory can be read.
pub fn group(args: &RunArgs) -> GroupBuilder {
    let mut builder = group_caps(args);
    if args.stats && args.memory_max.is_none() && memory_is_v1() {
        builder = builder.memory_max(NO_LIMIT);
    }
    builder
}

/// A memory "cap" no tree reaches (the kernel rounds it to its maximum).
pub const NO_LIMIT: u64 = 1 << 62;

fn memory_is_v1() -> bool {
    pkit::host_containment().caps.iter().any(|c| {
        c.cap == "memory_max" && c.enforced_by.as_deref().is_some_and(|b| b.contains("v1"))
    })
}

/// The group with only the caps asked for.
pub fn group_caps(args: &RunArgs) -> GroupBuilder {
    let mut builder = pkit::Group::builder();
    if let Some(m) = args.mechanism {
        builder = builder.mechanism(m.into());
    }
    if let Some(bytes) = args.memory_max {
        builder = builder.memory_max(bytes);
    }
    if let Some(n) = args.max_procs {
        builder = builder.max_processes(n);
    }
    if let Some(cores) = args.cpu {
        builder = builder.cpu_quota(cores);
    }
    builder
}

/// The spawn options that go beyond std's.
pub fn spawn_options(cmd: Command, _args: &RunArgs) -> Command {
    cmd
}

/// The flag and value behind a cap the library names.
fn cap_flag(args: &RunArgs, cap: &str) -> Option<(&'static str, String)> {
    match cap {
        "memory_max" => args
            .memory_max
            .map(|b| ("--memory-max", format!("{b} bytes = {}", size::human(b)))),
        "max_processes" => args.max_procs.map(|n| ("--max-procs", n.to_string())),
        "cpu_quota" => args.cpu.map(|c| ("--cpu", format!("{c} cores"))),
        _ => None,
    }
}

/// The message for a library error, pointing at the flag behind it.
pub fn explain(args: &RunArgs, e: &Error) -> String {
    match e {
        Error::ResourceLimit { cap, reason } => match cap_flag(args, cap) {
            Some((flag, value)) => {
                format!("{flag} ({value}): the kernel refused this cap ({cap}): {reason}")
            }
            None => e.to_string(),
        },
        Error::MechanismUnavailable { .. } if args.mechanism.is_some() => {
            format!("--mechanism: {e}")
        }
        _ => e.to_string(),
    }
}
