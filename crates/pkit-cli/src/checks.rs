//! Turning flags into library options, and the checks and messages that
//! make a bad value point at its flag.

use pkit::{Command, Error, GroupBuilder};

use crate::args::RunArgs;
use crate::size;

/// Refusals that need more than one flag, or the environment.
pub fn check(args: &RunArgs) -> Result<(), String> {
    if let Some(fd) = args.json_fd {
        if args.keep_fd.contains(&fd) {
            return Err(format!("--json-fd {fd} is also given to --keep-fd"));
        }
    }
    if let Some(fd) = args.keep_fd.iter().find(|&&fd| fd <= 2) {
        return Err(format!(
            "--keep-fd {fd}: descriptors 0-2 are always passed (use shell redirections)"
        ));
    }
    if let Some(fd) = args.keep_fd_not_inherited {
        return Err(format!(
            "--keep-fd {fd}: descriptor {fd} is not open (pkit did not inherit it)"
        ));
    }
    clone3_env()
}

/// `PKIT_CLONE3` must be on, off, 1, 0 or empty; the library would ignore
/// another value with a log line the CLI does not show.
pub fn clone3_env() -> Result<(), String> {
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
        self.is_none_or(|d| d.is_zero() || d == std::time::Duration::MAX)
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
    if let Some(name) = &args.name {
        builder = builder.name(name);
    }
    if let Some(m) = args.mechanism {
        builder = builder.mechanism(m.into());
    }
    if let Some(bytes) = args.memory_max {
        builder = builder.memory_max(bytes);
    }
    if let Some(n) = args.max_procs {
        builder = builder.max_processes(n);
    }
    if let Some(bytes) = args.memory_high {
        builder = builder.memory_high(bytes);
    }
    if let Some(bytes) = args.memory_swap_max {
        builder = builder.memory_swap_max(bytes);
    }
    if let Some(list) = &args.cpus {
        builder = builder.cpus(list);
    }
    if let Some(cores) = args.cpu {
        builder = builder.cpu_quota(cores);
    }
    builder
}

/// The spawn options that go beyond std's (ids already resolved).
pub fn spawn_options(mut cmd: Command, args: &RunArgs, ids: &Ids) -> Command {
    if let Some(n) = args.nice {
        cmd = cmd.priority(n);
    }
    cmd = rlimits(cmd, &args.rlimit);
    if args.setsid {
        cmd = cmd.setsid();
    }
    if let Some(gid) = ids.gid {
        cmd = cmd.gid(gid).groups([gid]);
    }
    if let Some(uid) = ids.uid {
        cmd = cmd.uid(uid);
    }
    if !args.keep_fd.is_empty() {
        cmd = cmd.keep_fds(args.keep_fd.iter().map(|&fd| (fd, fd)));
    }
    cmd
}

/// A user's `--rlimit` (`RES`, soft, hard; no hard: the soft one).
pub type Rlimit = (pkit::Resource, u64, Option<u64>);

/// `cmd` with its resource limits, for `pkit run` and every run of `pkit
/// supervise`: the descriptor limit pkit was given, when pkit raised its
/// own (`sys::raise_nofile`) and the user names no NOFILE, then the
/// user's `--rlimit`s.
pub fn rlimits(mut cmd: Command, user: &[Rlimit]) -> Command {
    #[cfg(target_os = "linux")]
    if let Some((soft, hard)) = crate::sys::original_nofile().filter(|_| restores_nofile(user)) {
        cmd = cmd.rlimit(pkit::Resource::Nofile, soft, hard);
    }
    for &(res, soft, hard) in user {
        cmd = cmd.rlimit(res, soft, hard.unwrap_or(soft));
    }
    cmd
}

/// Whether the program's start carries the descriptor limit pkit was
/// given, to undo pkit's raise of its own (Linux): pkit raised it and has
/// not given it back, and the user's `--rlimit`s (`user`) name no NOFILE
/// (whose entry would replace this one anyway).
pub fn restores_nofile(user: &[Rlimit]) -> bool {
    #[cfg(target_os = "linux")]
    return crate::sys::original_nofile().is_some()
        && !user.iter().any(|&(r, ..)| r == pkit::Resource::Nofile);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = user;
        false
    }
}

/// Whether a start refused with `e` should go again without the restore
/// of the descriptor limit: the start carried it (`restoring`, see
/// [`restores_nofile`]), the mechanism can't apply spawn options (the
/// portable backend without its trampoline, which refuses before anything
/// runs), and pkit's own limit is now back to the one it was given
/// ([`give_back_nofile`], done here), so that the program inherits it.
pub fn start_again_unrestored(e: &Error, restoring: bool) -> bool {
    matches!(
        e,
        Error::Unsupported {
            operation: "spawn options",
            ..
        }
    ) && restoring
        && give_back_nofile()
}

/// Puts pkit's own descriptor limit back to the one it was given (see
/// `sys::give_back_nofile`), for a start that can't restore it in the
/// program; whether it is back (never raised: false).
fn give_back_nofile() -> bool {
    #[cfg(target_os = "linux")]
    return crate::sys::give_back_nofile();
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// `--uid` and `--gid`, as numbers.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ids {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Resolves `--uid`/`--gid` names through /etc/passwd and /etc/group;
/// `--uid` alone brings the user's primary group.
pub fn ids(args: &RunArgs) -> Result<Ids, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    // name:x:uid:gid:... (passwd) and name:x:gid:... (group)
    let lookup = |db: &str, key: &str, by_number: bool| -> Option<Vec<String>> {
        db.lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.len() > 2 && if by_number { f[2] == key } else { f[0] == key })
    };
    let mut ids = Ids::default();
    if let Some(u) = &args.uid {
        let by_number = u.parse::<u32>().is_ok();
        let entry = lookup(&passwd, u, by_number);
        ids.uid = Some(match (u.parse::<u32>(), &entry) {
            (Ok(n), _) => n,
            (Err(_), Some(f)) => f[2]
                .parse()
                .map_err(|_| format!("--uid {u}: bad /etc/passwd entry"))?,
            (Err(_), None) => return Err(format!("--uid {u}: no such user in /etc/passwd")),
        });
        if args.gid.is_none() {
            let primary = entry.and_then(|f| f.get(3).and_then(|g| g.parse().ok()));
            ids.gid = Some(primary.ok_or_else(|| {
                format!("--uid {u}: the user has no /etc/passwd entry; give --gid too")
            })?);
        }
    }
    if let Some(g) = &args.gid {
        ids.gid = Some(match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup(&group, g, false)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("--gid {g}: no such group in /etc/group"))?,
        });
    }
    Ok(ids)
}

/// The flag and value behind a cap the library names.
fn cap_flag(args: &RunArgs, cap: &str) -> Option<(&'static str, String)> {
    match cap {
        "memory_max" => args
            .memory_max
            .map(|b| ("--memory-max", format!("{b} bytes = {}", size::human(b)))),
        "max_processes" => args.max_procs.map(|n| ("--max-procs", n.to_string())),
        "memory_high" => args
            .memory_high
            .map(|b| ("--memory-high", format!("{b} bytes = {}", size::human(b)))),
        "memory_swap_max" => args.memory_swap_max.map(|b| {
            (
                "--memory-swap-max",
                format!("{b} bytes = {}", size::human(b)),
            )
        }),
        "cpus" => args.cpus.clone().map(|l| ("--cpus", l)),
        "cpu_quota" => args.cpu.map(|c| ("--cpu", format!("{c} cores"))),
        _ => None,
    }
}

/// The message for a library error, pointing at the flag behind it.
pub fn explain(args: &RunArgs, e: &Error) -> String {
    match e {
        Error::ResourceLimit { cap, reason } => match cap_flag(args, cap) {
            Some((flag, value)) => format!(
                "{flag} ({value}): cannot cap {cap}: {}",
                pkit::escape_controls(reason)
            ),
            None => e.to_string(),
        },
        Error::MechanismUnavailable { .. } if args.mechanism.is_some() => {
            format!("--mechanism: {e}")
        }
        // A memory cap too small for the program to start shows up as the
        // exec failing: ENOMEM, or E2BIG when the arguments can't be copied.
        Error::Spawn { source, .. } | Error::ChildSetup { source, .. }
            if args.memory_max.is_some()
                && matches!(source.raw_os_error(), Some(libc::ENOMEM | libc::E2BIG)) =>
        {
            let (flag, value) = cap_flag(args, "memory_max").unwrap_or_default();
            format!(
                "{e}: the memory cap {flag} ({value}) is too small for the program to \
                 start; give it at least a few MiB (sizes: 512M, 2G)"
            )
        }
        // The library names the cap behind a failed start: add the flag.
        Error::Spawn { .. } | Error::ChildSetup { .. } => {
            let text = e.to_string();
            let flag = ["memory_max", "memory_high", "memory_swap_max"]
                .into_iter()
                .find(|cap| text.contains(cap))
                .and_then(|cap| cap_flag(args, cap));
            match flag {
                Some((flag, value)) => format!("{text} (set by {flag} {value})"),
                None => text,
            }
        }
        _ => e.to_string(),
    }
}
