//! Starting the `pkit` binary and reading what it reports.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Output};

/// The `pkit` binary, started with HUP, INT, QUIT and TERM at their
/// default disposition whatever the suite inherited: pkit keeps a signal
/// ignored when it starts ignored (so `nohup cargo test`, or the suite run
/// as a background job of a non-interactive shell, which ignores INT and
/// QUIT, would change what the signal tests see). A test that wants one
/// ignored sets that up itself, after this.
pub fn pkit() -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pkit"));
    // SAFETY: `signal` is async-signal-safe, and the closure touches
    // nothing else of the parent's between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    cmd
}

/// [`pkit`], started with `sig` ignored, as `nohup` starts a program with
/// SIGHUP ignored.
pub fn pkit_ignoring(sig: i32) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = pkit();
    // SAFETY: as in `pkit`: only `signal`, after `pkit`'s own (closures
    // run in the order they were added).
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(sig, libc::SIG_IGN);
            Ok(())
        });
    }
    cmd
}

/// Whether signal `sig` is in `pid`'s mask `field` of `/proc/<pid>/status`
/// (`SigIgn:`, `SigBlk:`, `SigPnd:`).
pub fn in_mask(pid: i32, field: &str, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no {field} for {pid}: {status}"));
    mask & (1 << (sig - 1)) != 0
}

pub fn run(args: &[&str]) -> Output {
    pkit().args(args).output().expect("pkit runs")
}

/// The status a shell's `$?` shows: the code, or 128+N for signal N.
pub fn shell_status(s: ExitStatus) -> i32 {
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// The JSON report: the last line of stderr (`--json`).
pub fn report(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stderr);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}
