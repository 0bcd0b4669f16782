//! Review rv20 of attack11's SIGCONT after an end's signal: the signals
//! it follows and the ones it must not, a stopped program that ignores the
//! signal, custom ending signals, a program that stops itself again on
//! SIGCONT. Every mechanism.
//!
//! What broke: the verbs' timeout (`Group::shutdown_with`) continued the
//! tree after SIGTTIN, SIGTTOU and signal 0, where a started process's own
//! timeout (`ProcTree::end`) did not; the SIGCONT discards a pending
//! SIGTTIN/SIGTTOU, so a program that ends on a caught SIGTTIN never got it
//! ([`a_caught_ttin_as_the_timeout_signal_reaches_the_program`]), and a
//! stopped program at a signal-0 timeout ran on through its grace
//! ([`signal_zero_at_a_timeout_does_not_continue_a_stopped_program`]).

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, MechanismChoice, Signal};

/// No case may take longer than this (a hang fails, never blocks).
const LONG: Duration = Duration::from_secs(120);

/// Longer than any case waits: a grace that must never run out.
const NEVER: Duration = Duration::from_secs(600);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LONG, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung past {LONG:?}"))
}

/// Runs `run(timeout)` with a 1 s timeout, and again with twice that (up
/// to 8 s) while its program had not said its pid in `pidf` (after setting
/// its trap) within the timeout of the try's start: on a loaded machine the
/// shell's start can outlast the timeout, whose signal would then come
/// before the trap. The pid file is polled beside the run, so a pid seen
/// in time was written before the timeout came. `pidf` and `file` are
/// emptied before each try.
async fn with_the_trap_set<T, F: std::future::Future<Output = T>>(
    pidf: &TempPath,
    file: &TempPath,
    what: &str,
    run: impl Fn(Duration) -> F,
) -> T {
    let mut t = Duration::from_secs(1);
    loop {
        let _ = std::fs::remove_file(pidf.path());
        let _ = std::fs::remove_file(file.path());
        let t0 = std::time::Instant::now();
        let in_time = async {
            while t0.elapsed() < t {
                if !std::fs::read_to_string(pidf.path())
                    .unwrap_or_default()
                    .is_empty()
                {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        };
        let (out, in_time) = tokio::join!(run(t), in_time);
        if in_time {
            return out;
        }
        assert!(t < Duration::from_secs(8), "{what}: never set up in time");
        t *= 2;
    }
}

/// Polls until `pid` is stopped (state `T`).
async fn wait_stopped(pid: u32, what: &str) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while stat(pid).is_none_or(|s| s.state != 'T') {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {pid} never stopped: {:?}",
            stat(pid)
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A shell that traps `sig` (writing its name to `$1` and exiting 7),
/// says its pid in `$2`, then loops (never stopped). Its `sleep` runs in
/// the background, waited for with `wait`, which a trapped signal
/// interrupts: a foreground `sleep` stopped by the same SIGTTIN would hold
/// the trap until it ends.
fn trapping(choice: MechanismChoice, sig: &str, file: &TempPath, pid: &TempPath) -> Command {
    let script = format!(
        "trap 'echo {sig} > \"$1\"; exit 7' {sig}; echo $$ > \"$2\"; \
         while :; do sleep 0.1 & wait $!; done"
    );
    sh(choice, &script).args([file.as_str(), pid.as_str()])
}

/// Under a cgroup each case lasts its whole grace (the trapping shell's
/// background `sleep`, stopped by the same signal, holds the group until
/// the grace kills it): the cases (mechanism x signal x verb or started)
/// run at once, each with its own files, group and program, and the grace
/// is 4 s (was 10 s: waited out by every case that passes; the trap runs
/// at the SIGCONT that follows the signal, a few milliseconds in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_ttin_as_the_timeout_signal_reaches_the_program() {
    let suite = begin("a_caught_ttin_as_the_timeout_signal_reaches_the_program").await;
    let mut cases = Vec::new();
    for choice in mechanisms() {
        for sig in [("TTIN", libc::SIGTTIN), ("TTOU", libc::SIGTTOU)] {
            for started in [false, true] {
                cases.push((choice, sig, started));
            }
        }
    }
    all_at_once(cases, |(choice, (name, num), started)| async move {
        let file = TempPath::new("rv20-ttin");
        let pidf = TempPath::new("rv20-ttin-pid");
        let ending = |t| {
            trapping(choice, name, &file, &pidf)
                .timeout(t)
                .timeout_signal(Signal::Raw(num))
                .grace(Duration::from_secs(4))
        };
        let what = format!("{choice} {name}");
        if !started {
            // The verbs' timeout (the group's shutdown with the signal).
            let out = with_the_trap_set(&pidf, &file, &what, |t| {
                let c = ending(t);
                async move { bounded("verb", c.output()).await }
            })
            .await
            .unwrap_or_else(|e| panic!("{choice} {name}: {e}"));
            assert!(out.timed_out(), "{choice} {name}: {out:?}");
            let said = std::fs::read_to_string(file.path()).unwrap_or_default();
            assert_eq!(
                said,
                format!("{name}\n"),
                "{choice} {name}: verb: the trap never ran: {out:?}"
            );
            // (Its `sleep`, stopped by the same signal, may be killed
            // after the grace.)
            return;
        }
        // A started process's own timeout.
        let g = group(choice);
        let out = with_the_trap_set(&pidf, &file, &what, |t| {
            let mut p = g
                .start(&ending(t))
                .unwrap_or_else(|e| panic!("{choice}: {e}"));
            async move { bounded("started", p.wait()).await.unwrap() }
        })
        .await;
        let said = std::fs::read_to_string(file.path()).unwrap_or_default();
        assert_eq!(
            said,
            format!("{name}\n"),
            "{choice} {name}: started: {out:?}"
        );
        g.close().await.unwrap();
    })
    .await;
    suite.end().await;
}

/// A shell that says its pid in `$2`, stops itself, and once continued
/// writes `cont` to `$1` and loops.
fn stopping(choice: MechanismChoice, file: &TempPath, pid: &TempPath) -> Command {
    sh(
        choice,
        "echo $$ > \"$2\"; kill -STOP $$; echo cont > \"$1\"; while :; do sleep 0.1; done",
    )
    .args([file.as_str(), pid.as_str()])
}

/// Each case waits out its timeout and its 2 s grace (the stopped program
/// is killed after it): the cases (mechanism x verb or started) run at
/// once, each with its own files, group and program.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_zero_at_a_timeout_does_not_continue_a_stopped_program() {
    let suite = begin("signal_zero_at_a_timeout_does_not_continue_a_stopped_program").await;
    let mut cases = Vec::new();
    for choice in mechanisms() {
        for started in [false, true] {
            cases.push((choice, started));
        }
    }
    all_at_once(cases, |(choice, started)| async move {
        let file = TempPath::new("rv20-zero");
        let pidf = TempPath::new("rv20-zero-pid");
        let ending = || {
            stopping(choice, &file, &pidf)
                .timeout(Duration::from_secs(1))
                .timeout_signal(Signal::Raw(0))
                .grace(Duration::from_secs(2))
        };
        if !started {
            let out = bounded("verb", ending().output())
                .await
                .unwrap_or_else(|e| panic!("{choice}: {e}"));
            assert!(out.timed_out(), "{choice}: {out:?}");
            let said = std::fs::read_to_string(file.path()).unwrap_or_default();
            assert_eq!(said, "", "{choice}: verb: signal 0 continued it: {out:?}");
            return;
        }
        let g = group(choice);
        let mut p = g.start(&ending()).unwrap();
        let out = bounded("started", p.wait()).await.unwrap();
        let said = std::fs::read_to_string(file.path()).unwrap_or_default();
        assert_eq!(
            said, "",
            "{choice}: started: signal 0 continued it: {out:?}"
        );
        g.close().await.unwrap();
    })
    .await;
    suite.end().await;
}

/// A stopped program that ignores the ending signal runs once continued,
/// and is still killed once the grace is over (verb, started, shutdown).
/// The cases (mechanism x verb, shutdown or started shutdown) run at once,
/// each with its own files, group and program: two of them wait out a 2 s
/// grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_program_ignoring_the_signal_is_killed_after_the_grace() {
    let suite = begin("a_stopped_program_ignoring_the_signal_is_killed_after_the_grace").await;
    let mut cases = Vec::new();
    for choice in mechanisms() {
        for way in ["verb", "shutdown", "started shutdown"] {
            cases.push((choice, way));
        }
    }
    all_at_once(cases, |(choice, way)| async move {
        let file = TempPath::new("rv20-ign");
        let pidf = TempPath::new("rv20-ign-pid");
        let ignoring = |f: &TempPath, p: &TempPath| {
            sh(
                choice,
                "trap '' TERM; echo $$ > \"$2\"; kill -STOP $$; echo cont > \"$1\"; \
                 while :; do sleep 0.1; done",
            )
            .args([f.as_str(), p.as_str()])
        };
        match way {
            "verb" => {
                let out = with_the_trap_set(&pidf, &file, &format!("{choice}"), |t| {
                    let c = ignoring(&file, &pidf)
                        .timeout(t)
                        .grace(Duration::from_secs(2));
                    async move { bounded("verb", c.output()).await }
                })
                .await
                .unwrap();
                assert!(out.timed_out(), "{choice}: {out:?}");
                assert!(out.killed_after_grace(), "{choice}: {out:?}");
                let said = std::fs::read_to_string(file.path()).unwrap_or_default();
                assert_eq!(said, "cont\n", "{choice}: verb: never continued: {out:?}");
            }
            "shutdown" => {
                let g = group(choice);
                let mut p = g.start(&ignoring(&file, &pidf)).unwrap();
                let pid = pid_in_file(&pidf, "shutdown").await;
                wait_stopped(pid, &format!("{choice}")).await;
                let report = bounded("shutdown", g.shutdown(Duration::from_millis(0)))
                    .await
                    .unwrap();
                // Under a cgroup the count is of every member after the
                // grace, the `sleep` the continued shell forked in it too
                // (more than were signalled: see the report).
                assert!(report.killed() >= 1, "{choice}: grace 0: {report:?}");
                let out = bounded("wait", p.wait()).await.unwrap();
                assert!(out.signal().is_some(), "{choice}: {out:?}");
                assert_gone(&[pid], &format!("{choice}: grace 0")).await;
            }
            _ => {
                // A started process's shutdown, grace 2 s.
                let g = group(choice);
                let p = g.start(&ignoring(&file, &pidf)).unwrap();
                let pid = pid_in_file(&pidf, "started shutdown").await;
                wait_stopped(pid, &format!("{choice}")).await;
                let late = bounded("started shutdown", p.shutdown(Duration::from_secs(2)))
                    .await
                    .unwrap();
                assert!(late, "{choice}: shutdown said it exited in its grace");
                let said = std::fs::read_to_string(file.path()).unwrap_or_default();
                assert_eq!(said, "cont\n", "{choice}: started: never continued");
                assert_gone(&[pid], &format!("{choice}: started")).await;
                g.close().await.unwrap();
            }
        }
    })
    .await;
    suite.end().await;
}

/// Custom ending signals reach a stopped program's handler. The cases
/// (mechanism x signal) run at once, each with its own files and program.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_program_gets_a_custom_ending_signal() {
    let suite = begin("a_stopped_program_gets_a_custom_ending_signal").await;
    let mut cases = Vec::new();
    for choice in mechanisms() {
        for sig in [
            ("HUP", Signal::Hup),
            ("INT", Signal::Int),
            ("USR1", Signal::Usr1),
        ] {
            cases.push((choice, sig));
        }
    }
    all_at_once(cases, |(choice, (name, sig))| async move {
        let file = TempPath::new("rv20-custom");
        let pidf = TempPath::new("rv20-custom-pid");
        let script = format!(
            "trap 'echo {name} > \"$1\"; exit 7' {name}; echo $$ > \"$2\"; \
             kill -STOP $$; while :; do sleep 0.1; done"
        );
        let out = with_the_trap_set(&pidf, &file, &format!("{choice} {name}"), |t| {
            let c = sh(choice, &script)
                .args([file.as_str(), pidf.as_str()])
                .timeout(t)
                .timeout_signal(sig)
                .grace(NEVER);
            async move { bounded("custom", c.output()).await }
        })
        .await
        .unwrap();
        assert!(out.timed_out(), "{choice} {name}: {out:?}");
        assert!(!out.killed_after_grace(), "{choice} {name}: {out:?}");
        let said = std::fs::read_to_string(file.path()).unwrap_or_default();
        assert_eq!(said, format!("{name}\n"), "{choice} {name}: {out:?}");
    })
    .await;
    suite.end().await;
}

/// A program that stops itself again on every SIGCONT still runs its
/// SIGTERM trap (the kernel delivers the lower-numbered SIGTERM first); a
/// job-control shell (`bash -m`) with a stopped job of its own process
/// group ends within the grace, its job too. The cases (mechanism x
/// program) run at once, each with its own files and group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigcont_handlers_and_job_control_shells_at_a_shutdown() {
    let suite = begin("sigcont_handlers_and_job_control_shells_at_a_shutdown").await;
    let bash = std::path::Path::new("/bin/bash").exists();
    let mut cases = Vec::new();
    for choice in mechanisms() {
        cases.push((choice, false));
        if bash {
            cases.push((choice, true));
        }
    }
    all_at_once(cases, |(choice, job_control)| async move {
        if !job_control {
            let file = TempPath::new("rv20-restop");
            let pidf = TempPath::new("rv20-restop-pid");
            let g = group(choice);
            let mut p = g
                .start(
                    &sh(
                        choice,
                        "trap 'kill -STOP $$' CONT; trap 'echo term > \"$1\"; exit 7' TERM; \
                         echo $$ > \"$2\"; kill -STOP $$; while :; do sleep 0.1 & wait $!; done",
                    )
                    .args([file.as_str(), pidf.as_str()]),
                )
                .unwrap();
            let pid = pid_in_file(&pidf, "re-stopping").await;
            wait_stopped(pid, &format!("{choice}")).await;
            let report = bounded("re-stopping", g.shutdown(NEVER)).await.unwrap();
            assert_eq!(report.killed(), 0, "{choice}: {report:?}");
            let out = bounded("wait", p.wait()).await.unwrap();
            assert_eq!(out.code(), Some(7), "{choice}: {out:?}");
            return;
        }
        let jobf = TempPath::new("rv20-job-pid");
        let g = group(choice);
        let p = g
            .start(&cmd(choice, "bash").args([
                "-mc",
                "sleep 300 & echo $! > \"$1\"; kill -STOP $!; wait",
                "bash",
                jobf.as_str(),
            ]))
            .unwrap();
        let job = pid_in_file(&jobf, "job").await;
        wait_stopped(job, &format!("{choice}: job")).await;
        let report = bounded("bash -m", g.shutdown(NEVER)).await.unwrap();
        assert_eq!(report.killed(), 0, "{choice}: bash -m: {report:?}");
        drop(p);
        assert_gone(&[job], &format!("{choice}: bash -m's job")).await;
    })
    .await;
    suite.end().await;
}
