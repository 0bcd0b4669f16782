//! `pkit run` against the real timeout(1), row by row: the same flags give
//! the same status a shell sees (`$?`), and the same way of ending (a code,
//! or a re-raised signal).
// Unix only: these run the Linux CLI (signals, /proc, ttys); Windows has
// tests/windows.rs.
#![cfg(unix)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};

use common::*;

/// `timeout` with `flags` and `duration`, then `pkit run` with the same
/// flags and `--timeout duration`, for the same command.
fn both(flags: &[&str], duration: &str, cmd: &[&str]) -> (ExitStatus, ExitStatus) {
    (theirs(flags, duration, cmd), ours(flags, duration, cmd))
}

/// `timeout` with `flags` and `duration`, for `cmd`.
fn theirs(flags: &[&str], duration: &str, cmd: &[&str]) -> ExitStatus {
    Command::new("timeout")
        .args(flags)
        .arg(duration)
        .args(cmd)
        .output()
        .expect("coreutils timeout runs")
        .status
}

/// `pkit run` with `flags` and `--timeout duration`, for `cmd`.
fn ours(flags: &[&str], duration: &str, cmd: &[&str]) -> ExitStatus {
    let quiet: &[&str] = if flags.contains(&"-v") { &[] } else { &["-q"] };
    pkit()
        .arg("run")
        .args(quiet)
        .args(flags)
        .args(["--timeout", duration, "--"])
        .args(cmd)
        .output()
        .unwrap()
        .status
}

/// [`both`] for a `sh -c` script that sets a trap, then writes `set` to
/// the file its `$1` names: each run whose shell was slower to set it
/// than the timeout (a loaded machine) is run again with twice the
/// timeout (whole seconds: `duration`, then up to 8 s).
fn both_with_the_trap_set(
    flags: &[&str],
    duration: &str,
    cmd: &[&str],
) -> (ExitStatus, ExitStatus) {
    let until_set = |run: &dyn Fn(&str, &[&str]) -> ExitStatus| {
        let mut secs: u32 = duration.parse().expect("whole seconds");
        loop {
            let ready = temp_path("trap-set");
            let with: Vec<&str> = [cmd, &["sh", ready.to_str().unwrap()]].concat();
            let status = run(&secs.to_string(), &with);
            let set = std::fs::read_to_string(&ready).unwrap_or_default() == "set\n";
            let _ = std::fs::remove_file(&ready);
            if set {
                return status;
            }
            assert!(secs < 8, "the trap was never set in time: {cmd:?}");
            secs *= 2;
        }
    };
    (
        until_set(&|d, c| theirs(flags, d, c)),
        until_set(&|d, c| ours(flags, d, c)),
    )
}

fn have_timeout() -> bool {
    Command::new("timeout").arg("--version").output().is_ok()
}

#[test]
fn statuses_match_coreutils_timeout() {
    if !have_timeout() {
        eprintln!("no timeout(1) on this machine: skipped");
        return;
    }
    // The rows whose shell sets a trap time out after 1 s, not 0.3, and
    // again with twice that while a TERM came before the trap (a loaded
    // machine: the shell would end of it): `both_with_the_trap_set`.
    let trap_term_exit_5 = "trap 'exit 5' TERM; echo set > \"$1\"; while :; do sleep 0.05; done";
    let ignore_term = "trap '' TERM; echo set > \"$1\"; sleep 30";
    let rows: &[(&[&str], &str, &[&str], i32)] = &[
        // The program's own status when it ends in time.
        (&[], "5", &["sh", "-c", "exit 3"], 3),
        // 0 means no timeout.
        (&[], "0", &["sh", "-c", "sleep 0.3; exit 4"], 4),
        // Timed out: 124.
        (&[], "0.3", &["sleep", "30"], 124),
        // strtod's grammar: an exponent, a unit.
        (&[], "3e-1", &["sleep", "30"], 124),
        (&[], "0.005m", &["sleep", "30"], 124),
        (&[], "1d", &["true"], 0),
        // --preserve-status: the program's status after the signal.
        (&["--preserve-status"], "0.3", &["sleep", "30"], 143),
        (
            &["--preserve-status"],
            "1",
            &["sh", "-c", trap_term_exit_5],
            5,
        ),
        // -s: another signal.
        (&["-s", "INT"], "0.3", &["sleep", "30"], 124),
        (
            &["-s", "KILL", "--preserve-status"],
            "0.3",
            &["sleep", "30"],
            137,
        ),
        (
            &["--signal=USR1", "--preserve-status"],
            "0.3",
            &["sleep", "30"],
            138,
        ),
        // -k: KILL needed after the grace gives 137.
        (&["-k", "0.3"], "1", &["sh", "-c", ignore_term], 137),
        (
            &["--kill-after=0.3", "--preserve-status"],
            "1",
            &["sh", "-c", ignore_term],
            137,
        ),
        // -k, but the program ends on TERM: still 124.
        (&["-k", "5"], "0.3", &["sleep", "30"], 124),
        // --foreground and -v change nothing in the status.
        (&["--foreground"], "0.3", &["sleep", "30"], 124),
        (&["-v"], "0.3", &["sleep", "30"], 124),
        // A program killed by a signal (not the timeout's): re-raised.
        (&[], "5", &["sh", "-c", "kill -SEGV $$"], 139),
        (&[], "5", &["sh", "-c", "kill -USR2 $$"], 140),
    ];
    // The rows at once, each on a thread of its own (each mostly waits on
    // its timeout): timeout(1)'s run, then pkit's.
    at_once(rows.iter().copied(), |(flags, duration, cmd, want)| {
        let (theirs, ours) = if cmd.iter().any(|c| c.contains("trap")) {
            both_with_the_trap_set(flags, duration, cmd)
        } else {
            both(flags, duration, cmd)
        };
        let row = format!("{flags:?} {duration} {cmd:?}");
        assert_eq!(shell_status(theirs), want, "timeout(1) itself, {row}");
        assert_eq!(shell_status(ours), want, "pkit, {row}");
        // A signal re-raised by timeout is re-raised by pkit; timeout's own
        // SIGKILL (it kills its whole group, itself included, after -k) is
        // an exit 137 from pkit, as timeout --foreground gives.
        if theirs.signal().is_some() && theirs.signal() != Some(libc::SIGKILL) {
            assert_eq!(theirs.signal(), ours.signal(), "how it ended, {row}");
        }
    });
}

#[test]
fn verbose_says_what_it_sends() {
    let out = run(&["run", "-v", "--timeout", "0.2", "--", "sleep", "30"]);
    assert_eq!(out.status.code(), Some(124));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sending SIGTERM"), "{err}");
}

#[test]
fn durations_and_their_mistakes() {
    // `--timeout 2 s` would run a program named `s`: refused, with the fix.
    let out = run(&["run", "--timeout", "2", "s"]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2s") && err.contains("--"), "{err}");
    // With `--`, a program named `s` is what was asked for.
    let out = run(&["run", "--timeout", "2", "--", "pkit-no-such-program-s"]);
    assert_eq!(out.status.code(), Some(127));
    // Negative: a clear error, not clap's `-- -1` tip.
    for bad in ["-1", "-0.5s"] {
        let out = run(&["run", "--timeout", bad, "--", "true"]);
        assert_eq!(out.status.code(), Some(125));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("negative"), "{bad}: {err}");
    }
    // Compound forms and days.
    for good in ["1m30s", "1h5m", "1d", "1.5", "1e3", "500ms", "inf", "1e300"] {
        let out = run(&["run", "--timeout", good, "--", "true"]);
        assert_eq!(out.status.code(), Some(0), "{good}");
    }
    // A grace too long for the clock never fires (it used to be a panic).
    let out = run(&[
        "run",
        "-q",
        "--timeout",
        "0.2",
        "-k",
        "1e300",
        "--",
        "sleep",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(124));
    let out = run(&["run", "-s", "NOPE", "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    // --preserve-status without a timeout does nothing: said so.
    let out = run(&["run", "--preserve-status", "--", "true"]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--preserve-status has no effect"), "{err}");
}

#[test]
fn timeout_signal_reaches_the_whole_tree() {
    // The shell must have written its three pids before the HUP (2 s, or
    // more on a loaded machine: `until_the_tree_started`). The mechanisms
    // at once (each waits out its timeout).
    at_once(mechanisms(), |m| {
        let (out, pids) = until_the_tree_started(2, |secs, file| {
            pkit()
                .args([
                    "run",
                    "-q",
                    "-s",
                    "HUP",
                    "--timeout",
                    secs,
                    "--mechanism",
                    m,
                ])
                .args(["--json", "--", "sh", "-c", &tree_script(file)])
                .output()
                .unwrap()
        });
        assert_eq!(out.status.code(), Some(124), "{m}");
        let v = report(&out);
        assert_eq!(v["outcome"], "timed_out");
        assert_eq!(v["signal_name"], "SIGHUP", "{m}: {v}");
        assert_eq!(v["killed_after_grace"], false);
        assert_all_gone(&pids);
    });
}
