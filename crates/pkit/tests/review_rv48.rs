//! rv48: a hostile review of the twelfth session's merges (async signal
//! and kill for groups and pipelines). Run in the three passes (unset,
//! `PKIT_MECHANISM=pgroup`, `PKIT_MECHANISM=portable`); the races below
//! need a cgroup v2 pass whose freeze a member held in a cgroup v1 freezer
//! keeps from being confirmed (`common::held`), and are skipped elsewhere.
//!
//! Findings:
//! - MEDIUM, fixed: two `RunningPipe::kill_async` calls on one chain, the
//!   first dropped while both waited for the freeze (a `select!` or a
//!   timeout around one of them), put the chain's stop back to "not
//!   stopped" under the second, which then killed the stages with the
//!   chain's cut-short rule on: the stage the kill reached last was cut
//!   short by the one it reached first, and the chain blamed the wrong
//!   stage ([`a_dropped_kill_async_leaves_another_kills_stop`]). A sync
//!   `kill` or a `shutdown` during a dropped `kill_async` lost its stop
//!   the same way.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::held::*;
use common::*;
use pkit::{Command, MechanismChoice, Outcome, Pipe};

/// Polls `f` once: whether it is ready (its output dropped).
async fn poll_once<F: Future>(mut f: Pin<&mut F>) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx).is_ready())).await
}

/// Whether this pass has a cgroup v2 group and a v1 freezer to hold one
/// of its members in (else `name` is reported skipped).
fn can_hold(name: &str) -> bool {
    if !mechanisms().contains(&MechanismChoice::Cgroup) {
        skipped(
            name,
            "no cgroup v2 group in this pass: no freeze to wait for",
        );
        return false;
    }
    if !v1_freezer_usable() {
        skipped(name, "no cgroup v1 freezer directory can be made here");
        return false;
    }
    true
}

/// `sleep 300 | cat`, the `sleep` held in a v1 freezer: two `kill_async`
/// calls both wait for the chain's freeze (which the held `sleep` keeps
/// from being confirmed); the first is dropped, the second kills after
/// its 5 s. The `cat` dies first (the `sleep` can't act on its SIGKILL
/// until it is let go), and with the chain stopped by the kill that is no
/// failure that cuts the `sleep` short: both stages show SIGKILL and the
/// chain's outcome is the first stage's, the `sleep`'s. (The dropped call
/// put the stop back to "not stopped" as it found it: the `cat`'s SIGKILL
/// then cut the `sleep`, and the chain blamed the `cat`.)
#[tokio::test]
async fn a_dropped_kill_async_leaves_another_kills_stop() {
    const NAME: &str = "a_dropped_kill_async_leaves_another_kills_stop";
    let suite = begin(NAME).await;
    if !can_hold(NAME) {
        suite.end().await;
        return;
    }
    let mut p = Pipe::new([Command::new("sleep").arg("300"), Command::new("cat")])
        .mechanism(MechanismChoice::Cgroup)
        .start()
        .expect("start");
    let pids = p.pids();
    let held = Held::new(pids[0], 4801).expect("a v1 freezer directory");
    {
        let mut first = Box::pin(p.kill_async());
        let mut second = Box::pin(p.kill_async());
        assert!(
            !poll_once(first.as_mut()).await,
            "the first kill_async did not wait for the freeze"
        );
        assert!(
            !poll_once(second.as_mut()).await,
            "the second kill_async did not wait for the freeze"
        );
        drop(first);
        second.await.expect("the second kill_async");
    }
    // The `cat` dies and is seen to (its decision taken) before the
    // `sleep` is let go.
    let until = Instant::now() + DEADLINE;
    while !pid_gone(pids[1]) {
        assert!(Instant::now() < until, "the cat outlived the kill");
        tokio::time::sleep(POLL).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    held.thaw();
    assert_gone(&pids, "the chain").await;
    let out = p.wait().await.expect("wait");
    for (i, s) in out.stages().iter().enumerate() {
        assert_eq!(s.outcome(), Outcome::Signalled(9), "stage {i}");
    }
    assert_eq!(
        out.program(),
        "sleep",
        "the chain blamed the cat: its SIGKILL cut the sleep short, the kill's stop undone by \
         the dropped kill_async"
    );
    held.remove().await;
    // The stages' zombies go with the handle, before the leftover check.
    drop(p);
    suite.end().await;
}
