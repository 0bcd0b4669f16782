#![cfg(target_os = "linux")]
//! A cancel token cancelled after the program exited, before the run's
//! task was woken for the exit (what a loaded machine does: the exit is
//! the kernel's at once, the task's wake-up can come hundreds of
//! milliseconds later): the run returns the exit's outcome, not
//! `Cancelled` (the README: "with the exit's outcome if the program had
//! exited by then"), as a timeout passing so does and as a started
//! process's watch did already. A verb's `output` and a chain's; each
//! mechanism.
//!
//! The run's task is held off by hand: on a current-thread runtime the
//! verb's future is polled once (it starts the program and waits in its
//! bounds), then the thread sleeps without driving the runtime until the
//! program is gone, and cancels. A chain's driver (a task) is let run
//! into its bounds first, or not at all before the cancel (it then finds
//! the token cancelled already). Before the fix the run's wait saw the
//! cancel and not the exit, whose wake-up the runtime had not yet taken
//! from the kernel: `Err(Cancelled)` (the CI flake of review_rv38's
//! probe, round 9: the two-stage chain).

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use common::*;
use pkit::{CancelToken, Command, MechanismChoice, Outcome, Pipe};

/// Writes its pid to `$1`, then waits (without output) until `$2` exists.
const WAITS_FOR_GO: &str = r#"echo $$ > "$1"; while [ ! -e "$2" ]; do sleep 0.01; done"#;

/// The pid in `file`, once written.
fn pid_in(file: &TempPath) -> Option<u32> {
    std::fs::read_to_string(file.path())
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Polls `fut` once (with no waker: the runtime is not driven meanwhile).
fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// Blocks this thread (the runtime's only one: nothing of it runs) until
/// every pid written to `files` is gone; panics after a minute.
fn block_until_gone(files: &[&TempPath], what: &str) {
    let end = Instant::now() + Duration::from_secs(60);
    while !files.iter().all(|f| pid_in(f).is_some_and(pid_gone)) {
        assert!(Instant::now() < end, "{what}: the program never exited");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A verb's `output`: polled until the program has written its pid (it
/// then waits for the go file), let go, and cancelled once it is gone.
fn verb(choice: MechanismChoice) -> Option<String> {
    let what = format!("{choice}: output");
    let (pidfile, go) = (TempPath::new("cae-pid"), TempPath::new("cae-go"));
    let token = CancelToken::new();
    let cmd = sh(choice, WAITS_FOR_GO)
        .args([pidfile.as_str(), go.as_str()])
        .cancel_token(&token);
    let out = current_thread().block_on(async {
        let mut fut = pin!(cmd.output());
        let end = Instant::now() + Duration::from_secs(60);
        while pid_in(&pidfile).is_none() {
            assert!(poll_once(fut.as_mut()).is_pending(), "{what}: ended early");
            assert!(Instant::now() < end, "{what}: the program never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Waiting in its bounds now (the start is synchronous); the exit
        // comes while the runtime is held.
        std::fs::write(go.path(), "").expect("go");
        block_until_gone(&[&pidfile], &what);
        token.cancel();
        tokio::time::timeout(Duration::from_secs(60), fut)
            .await
            .unwrap_or_else(|_| panic!("{what}: the run never ended"))
    });
    let ok = matches!(&out, Ok(o) if o.outcome() == Outcome::Exited(0));
    (!ok).then(|| format!("{what}: {out:?}"))
}

/// A two-stage chain's `output`: its driver (a task) is let run into its
/// bounds (`driver_first`; else it first runs after the cancel, and finds
/// the token cancelled already), the stages are let go, and the token
/// cancelled once both are gone.
fn chain(choice: MechanismChoice, driver_first: bool) -> Option<String> {
    let what = format!("{choice}: a chain's output (driver first: {driver_first})");
    let (head, tail, go) = (
        TempPath::new("cae-head"),
        TempPath::new("cae-tail"),
        TempPath::new("cae-go"),
    );
    let token = CancelToken::new();
    let pipe = Pipe::new([
        Command::new("sh").args(["-c", WAITS_FOR_GO, "sh", head.as_str(), go.as_str()]),
        Command::new("sh").args(["-c", "echo $$ > \"$1\"; exec cat", "sh", tail.as_str()]),
    ])
    .mechanism(choice)
    .cancel_token(&token);
    let out = current_thread().block_on(async {
        let mut fut = pin!(pipe.output());
        let end = Instant::now() + Duration::from_secs(60);
        while pid_in(&head).is_none() || pid_in(&tail).is_none() {
            assert!(poll_once(fut.as_mut()).is_pending(), "{what}: ended early");
            // The driver (spawned by the first poll) runs into its bounds.
            if driver_first {
                tokio::task::yield_now().await;
            }
            assert!(Instant::now() < end, "{what}: the stages never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        for _ in 0..3 {
            if driver_first {
                tokio::task::yield_now().await;
            }
        }
        std::fs::write(go.path(), "").expect("go");
        block_until_gone(&[&head, &tail], &what);
        token.cancel();
        tokio::time::timeout(Duration::from_secs(60), fut)
            .await
            .unwrap_or_else(|_| panic!("{what}: the chain never ended"))
    });
    let ok = matches!(&out, Ok(o) if o.outcome() == Outcome::Exited(0)
        && o.stages().iter().all(|s| s.outcome() == Outcome::Exited(0)));
    (!ok).then(|| format!("{what}: {out:?}"))
}

#[test]
fn a_cancel_after_the_exit_before_its_wake_up_keeps_the_exits_outcome() {
    in_suite(
        "a_cancel_after_the_exit_before_its_wake_up_keeps_the_exits_outcome",
        || {
            let bad = std::sync::Mutex::new(Vec::new());
            at_once(mechanisms(), |choice| {
                // Several times: a select picks at random among what is ready.
                for _ in 0..5 {
                    let failed = [verb(choice), chain(choice, true), chain(choice, false)];
                    bad.lock().unwrap().extend(failed.into_iter().flatten());
                }
            });
            let bad = bad.into_inner().unwrap();
            assert!(bad.is_empty(), "{bad:#?}");
        },
    );
}
