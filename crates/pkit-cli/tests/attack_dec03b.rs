//! A hostile user of the `pkit` CLI (second pass of 2026-12-03).

#![cfg(unix)]

mod common;

use common::*;

/// A positive timeout too short for a double (`1e-400` reads as 0.0, and
/// `1e-322ms` becomes 0.0 once scaled to seconds) is the shortest timeout,
/// as timeout(1) takes it, never 0 ("no timeout"): the program is timed
/// out, not left to run.
#[test]
fn a_positive_timeout_below_a_doubles_range_still_times_out() {
    for timeout in [
        "1e-400",
        "0.001e-999",
        "1e-322ms",
        "1e-400s",
        "1e-400m1e-400s",
    ] {
        let out = run(&["run", "--timeout", timeout, "--", "sleep", "30"]);
        assert_eq!(out.status.code(), Some(124), "{timeout}: {out:?}");
    }
    // A zero written with an exponent is still zero: no timeout.
    for timeout in ["0e-400", "0.0e5", "0ms"] {
        let out = run(&["run", "--timeout", timeout, "--", "true"]);
        assert_eq!(out.status.code(), Some(0), "{timeout}: {out:?}");
    }
}

/// `-s KILL`: the timeout's own signal is SIGKILL, and a program it ends
/// gives 137, as timeout(1) gives (with or without --foreground); pkit
/// gave 124, as for a program a catchable signal ended.
#[test]
fn a_timeout_whose_signal_is_kill_exits_137_as_timeout_does() {
    let gnu = std::process::Command::new("timeout")
        .arg("--version")
        .output()
        .is_ok();
    for flags in [
        &["-s", "KILL"][..],
        &["--foreground", "-s", "KILL"],
        &["-s", "9"],
    ] {
        let ours = pkit()
            .args(["run", "-q"])
            .args(flags)
            .args(["--timeout", "0.2", "--", "sleep", "30"])
            .output()
            .expect("pkit runs");
        assert_eq!(shell_status(ours.status), 137, "{flags:?}: {ours:?}");
        if gnu {
            let theirs = std::process::Command::new("timeout")
                .args(flags)
                .args(["0.2", "sleep", "30"])
                .status()
                .expect("timeout runs");
            assert_eq!(shell_status(theirs), 137, "timeout(1) itself, {flags:?}");
        }
    }
    // A program that ends in time is still its own status, and a catchable
    // timeout signal still gives 124.
    let out = run(&[
        "run",
        "-q",
        "-s",
        "KILL",
        "--timeout",
        "5",
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = run(&[
        "run",
        "-q",
        "-s",
        "INT",
        "--timeout",
        "0.2",
        "--",
        "sleep",
        "30",
    ]);
    assert_eq!(out.status.code(), Some(124), "{out:?}");
}

/// A pipe whose reading end is closed already: every write to the other
/// end fails with EPIPE, as pkit's stderr does in `pkit run job 2>&1 |
/// head -1` once head has exited.
fn broken_pipe() -> std::process::Stdio {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two descriptors, which we own from here on.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: fresh descriptors of ours (see above), each owned once.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    write.into()
}

/// pkit's notes, end-of-run messages and reports on a stderr nobody reads
/// any more are dropped: the exit status is still the program's (3, 124 on
/// timeout, supervise's last run's), not the 101 of a panicking
/// `eprintln!`. Doctor's answer is its output, on stdout: a reader gone
/// there is 141 (as report.rs's tests of pkit's own stdout), not a panic.
#[test]
fn a_broken_stderr_leaves_the_exit_status_alone() {
    let rows: &[(&[&str], i32)] = &[
        (&["run", "--", "sh", "-c", "exit 3"], 3),
        // A process group always gets a note; -v and --json write more.
        (
            &["run", "--mechanism", "pgroup", "--", "sh", "-c", "exit 3"],
            3,
        ),
        (&["run", "-v", "--", "sh", "-c", "exit 4"], 4),
        (&["run", "-v", "--json", "--", "sh", "-c", "exit 4"], 4),
        (&["run", "--stats", "--", "true"], 0),
        (&["run", "--timeout", "0.1", "--", "sleep", "30"], 124),
        (
            &[
                "supervise",
                "--max-restarts",
                "1",
                "--backoff",
                "0.05",
                "--",
                "sh",
                "-c",
                "exit 3",
            ],
            3,
        ),
    ];
    for &(args, want) in rows {
        let status = pkit()
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(broken_pipe())
            .status()
            .expect("pkit runs");
        assert_eq!(shell_status(status), want, "{args:?}");
    }
    let status = pkit()
        .arg("doctor")
        .stdout(broken_pipe())
        .status()
        .expect("pkit runs");
    assert_eq!(shell_status(status), 141, "doctor");
}
