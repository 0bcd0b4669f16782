//! A group's `shutdown`, `close`, and a supervisor's kill never block the
//! thread that polls them while they wait for the kernel: on a
//! current-thread runtime another task runs meanwhile. The member waited
//! for is one the test holds in a cgroup v1 freezer of its own (see
//! `common::held`): cgroup v2's freezer can't freeze it, so a signal
//! pass's freeze is not confirmed, and no signal acts on it, until the
//! test's other task lets it go. Before, the cgroup mechanism's signal
//! pass waited for `frozen 1` in a blocking `poll` inside the operation's
//! poll (up to 5 s each time), so the other task ran only after the group
//! had been signalled. The sync `signal` and `kill` may wait so (their
//! `# Blocking`), but return, every member signalled.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::held::*;
use common::*;
use pkit::{Command, MechanismChoice};

/// A current-thread runtime (`#[tokio::test]`'s): the shutdown and the
/// task that lets the held member go share one thread. That task is
/// spawned before the shutdown is first polled and runs only once the
/// shutdown yields. Under cgroup v2 the shutdown's SIGTERM pass must wait
/// for its freeze, which can't be confirmed while the member is held: so
/// the task must find no SIGTERM sent yet (the shutdown yielded while it
/// waited). In every mechanism the shutdown must return only after the
/// task ran (its close waited for the held member's end without blocking
/// the thread), and leave nothing behind.
#[tokio::test]
async fn a_shutdown_waiting_for_a_member_it_cannot_reach_yields_its_thread() {
    const NAME: &str = "a_shutdown_waiting_for_a_member_it_cannot_reach_yields_its_thread";
    let suite = begin(NAME).await;
    if !v1_freezer_usable() {
        skipped(NAME, "no cgroup v1 freezer directory can be made here");
        suite.end().await;
        return;
    }
    let mut n = 0;
    for choice in mechanisms() {
        for grace in [Duration::ZERO, Duration::from_millis(200)] {
            let what = format!("{choice}, grace {grace:?}");
            let group = group(choice);
            let p = group
                .start(&Command::new("sh").args(["-c", "sleep 300 & sleep 300 & sleep 300 & wait"]))
                .unwrap_or_else(|e| panic!("{what}: start: {e}"));
            let until = Instant::now() + DEADLINE;
            let pids = loop {
                let pids = group.pids().expect("pids");
                if pids.len() == 4 {
                    break pids;
                }
                assert!(Instant::now() < until, "{what}: the sleeps never started");
                tokio::time::sleep(POLL).await;
            };
            let sleeper = *pids.iter().find(|&&q| q != p.pid()).expect("a sleep");
            n += 1;
            let held = Held::new(sleeper, n).expect("a v1 freezer directory");
            let thawer = tokio::spawn(async move {
                let term_before = held.term_pending();
                held.thaw();
                (held, term_before)
            });
            let report = group
                .shutdown(grace)
                .await
                .unwrap_or_else(|e| panic!("{what}: shutdown: {e}"));
            let thawed_before_return = thawer.is_finished();
            let (held, term_before) = thawer.await.expect("the thawer");
            assert!(
                thawed_before_return,
                "{what}: the shutdown returned before the other task ran ({report:?})"
            );
            if choice == MechanismChoice::Cgroup {
                assert!(
                    !term_before,
                    "{what}: the group was signalled before the other task ran: the \
                     signal pass waited for its freeze blocking the thread ({report:?})"
                );
            }
            assert_eq!(report.signalled(), 4, "{what}: {report:?}");
            drop(p);
            assert_gone(&pids, &what).await;
            held.remove().await;
        }
    }
    suite.end().await;
}

/// Polls `fut` exactly once and drops it: whether it was still waiting.
async fn poll_once_then_drop<F: std::future::Future>(fut: F) -> bool {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx).is_pending())).await
}

/// A shutdown cancelled while it waits for its freeze (a member held, so
/// the kernel can't confirm it) leaves the group thawed and unsignalled:
/// the freeze made ahead of the signal pass is undone when the shutdown
/// is dropped, and the group runs on until it is shut down for good.
/// Cgroup only: a process group's shutdown freezes nothing.
#[tokio::test]
async fn a_shutdown_cancelled_while_it_waits_for_its_freeze_leaves_the_group_thawed() {
    const NAME: &str = "a_shutdown_cancelled_while_it_waits_for_its_freeze_leaves_the_group_thawed";
    let suite = begin(NAME).await;
    if !cgroup_pass(NAME) || !v1_freezer_usable() {
        skipped(NAME, "needs cgroup v2 and a cgroup v1 freezer directory");
        suite.end().await;
        return;
    }
    let group = group(MechanismChoice::Cgroup);
    let dir = cgroup_dir(&group).expect("a cgroup directory");
    let p = group
        .start(&Command::new("sh").args(["-c", "sleep 300 & sleep 300 & wait"]))
        .expect("start");
    let until = Instant::now() + DEADLINE;
    let pids = loop {
        let pids = group.pids().expect("pids");
        if pids.len() == 3 {
            break pids;
        }
        assert!(Instant::now() < until, "the sleeps never started");
        tokio::time::sleep(POLL).await;
    };
    let sleeper = *pids.iter().find(|&&q| q != p.pid()).expect("a sleep");
    let held = Held::new(sleeper, 0).expect("a v1 freezer directory");
    let waiting = poll_once_then_drop(group.shutdown(Duration::ZERO)).await;
    assert!(waiting, "the shutdown did not wait for its freeze");
    let freeze = std::fs::read_to_string(dir.join("cgroup.freeze")).unwrap_or_default();
    assert_eq!(
        freeze.trim(),
        "0",
        "the cancelled shutdown left the group frozen"
    );
    assert!(
        !held.term_pending(),
        "the cancelled shutdown signalled the group"
    );
    held.thaw();
    let until = Instant::now() + DEADLINE;
    while std::fs::read_to_string(dir.join("cgroup.events")).is_ok_and(|e| e.contains("frozen 1")) {
        assert!(Instant::now() < until, "the group stays frozen");
        tokio::time::sleep(POLL).await;
    }
    assert_alive(&pids, "after the cancelled shutdown");
    let report = group.shutdown(Duration::ZERO).await.expect("shutdown");
    assert_eq!(report.signalled(), 3, "{report:?}");
    drop(p);
    assert_gone(&pids, "shut down").await;
    held.remove().await;
    suite.end().await;
}

/// A close whose `cgroup.kill` leaves a member it can't end yet (held in a
/// v1 freezer: the SIGKILL waits) kills what is left again member by
/// member, the cgroup frozen around that pass. The freeze's confirmation
/// can't come while the member is held; the close awaits it, so the
/// other task on this current-thread runtime runs meanwhile, finds the
/// group being frozen and lets the member go. Before, that pass waited for
/// the confirmation in a blocking `poll` (5 s, again after each further
/// second), and the other task only ever found the group thawed.
/// Cgroup only: a process group's close freezes nothing.
#[tokio::test]
async fn a_close_killing_again_a_member_it_cannot_reach_yields_its_thread() {
    const NAME: &str = "a_close_killing_again_a_member_it_cannot_reach_yields_its_thread";
    let suite = begin(NAME).await;
    if !cgroup_pass(NAME) || !v1_freezer_usable() {
        skipped(NAME, "needs cgroup v2 and a cgroup v1 freezer directory");
        suite.end().await;
        return;
    }
    let group = group(MechanismChoice::Cgroup);
    let dir = cgroup_dir(&group).expect("a cgroup directory");
    let (p, pids, held) = start_holding(&group, 2, 100).await;
    let watched = dir.clone();
    let thawer = tokio::spawn(async move {
        let seen = being_frozen(&watched).await;
        held.thaw();
        (held, seen)
    });
    group.close().await.expect("close");
    let (held, seen) = thawer.await.expect("the thawer");
    assert!(
        seen,
        "the other task never found the group being frozen: the close's pass \
         waited for its freeze blocking the thread"
    );
    drop(p);
    assert_gone(&pids, "closed").await;
    held.remove().await;
    suite.end().await;
}

/// A close dropped while its pass waits for the freeze (a member held)
/// leaves the group thawed: the freeze made ahead is undone. The group is
/// closed for good afterwards.
#[tokio::test]
async fn a_close_cancelled_while_it_waits_for_its_freeze_leaves_the_group_thawed() {
    const NAME: &str = "a_close_cancelled_while_it_waits_for_its_freeze_leaves_the_group_thawed";
    let suite = begin(NAME).await;
    if !cgroup_pass(NAME) || !v1_freezer_usable() {
        skipped(NAME, "needs cgroup v2 and a cgroup v1 freezer directory");
        suite.end().await;
        return;
    }
    let group = group(MechanismChoice::Cgroup);
    let dir = cgroup_dir(&group).expect("a cgroup directory");
    let (p, pids, held) = start_holding(&group, 2, 101).await;
    let frozen = tokio::select! {
        r = group.close() => panic!("the close returned with a member held: {r:?}"),
        seen = being_frozen(&dir) => seen,
    };
    assert!(frozen, "the close never froze the group");
    assert_eq!(
        freeze_written(&dir),
        "0",
        "the cancelled close left the group frozen"
    );
    held.thaw();
    group.close().await.expect("close");
    drop(p);
    assert_gone(&pids, "closed").await;
    held.remove().await;
    suite.end().await;
}

/// The directory of the group (one of this process's) that holds `pid`.
fn group_dir_of(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mine = name_prefix(std::process::id());
    let name = rel.split('/').find(|c| c.starts_with(&mine))?;
    Some(group_parent()?.join(name))
}

/// A supervised run its cancel token ends is killed through the group's
/// async kill (the group stays usable, so not by `cgroup.kill`: a pass over
/// the frozen cgroup). With a member held in a v1 freezer the freeze's
/// confirmation can't come; the supervisor, on this current-thread
/// runtime, awaits it, so the other task runs meanwhile and finds the
/// group being frozen before any member had its SIGKILL. Before, the
/// supervisor's sync `Group::kill` waited for it in a blocking `poll` (5 s)
/// and killed the members before the other task ran (which then found only
/// the close's later freeze, the member's SIGKILL pending).
/// Cgroup only: a process group's kill freezes nothing.
#[tokio::test]
async fn a_supervised_run_cancelled_is_killed_yielding_its_thread_while_it_freezes() {
    const NAME: &str = "a_supervised_run_cancelled_is_killed_yielding_its_thread_while_it_freezes";
    let suite = begin(NAME).await;
    if !cgroup_pass(NAME) || !v1_freezer_usable() {
        skipped(NAME, "needs cgroup v2 and a cgroup v1 freezer directory");
        suite.end().await;
        return;
    }
    let token = pkit::CancelToken::new();
    let cmd = Command::new("sh").args(["-c", "sleep 300 & sleep 300 & wait"]);
    let mut handle = pkit::Supervisor::new(cmd)
        .mechanism(MechanismChoice::Cgroup)
        .cancel_token(&token)
        .start();
    let started = tokio::time::timeout(DEADLINE, handle.next_event())
        .await
        .expect("an event")
        .expect("not ended");
    let pkit::SupervisorEvent::Started { pid, .. } = started else {
        panic!("first event: {started:?}")
    };
    let until = Instant::now() + DEADLINE;
    let sleeps = loop {
        let sleeps: Vec<u32> = children_of(pid).into_iter().map(|c| c.0).collect();
        if sleeps.len() == 2 {
            break sleeps;
        }
        assert!(Instant::now() < until, "the sleeps never started");
        tokio::time::sleep(POLL).await;
    };
    let dir = group_dir_of(sleeps[0]).expect("the run's group directory");
    let held = Held::new(sleeps[0], 102).expect("a v1 freezer directory");
    let thawer = tokio::spawn(async move {
        let seen = being_frozen(&dir).await;
        let killed_before = held.pending(libc::SIGKILL);
        held.thaw();
        (held, seen, killed_before)
    });
    token.cancel();
    let out = tokio::time::timeout(5 * DEADLINE, handle.wait())
        .await
        .expect("the supervisor ends")
        .expect("its outcome");
    let (held, seen, killed_before) = thawer.await.expect("the thawer");
    assert_eq!(out.stopped, pkit::StopReason::Cancelled);
    assert!(seen, "the other task never found the group being frozen");
    assert!(
        !killed_before,
        "the other task ran only after the kill's pass had signalled the group: \
         the kill waited for its freeze blocking the thread"
    );
    let mut pids = sleeps;
    pids.push(pid);
    assert_gone(&pids, "killed").await;
    held.remove().await;
    suite.end().await;
}

/// The sync `Group::signal` and `Group::kill` may wait for a cgroup's
/// freeze (their rustdoc's `# Blocking`), but that wait is bounded: with a
/// member held in a v1 freezer, whose freeze the kernel never confirms,
/// each returns (on a blocking thread, so this runtime's clock runs on),
/// every member signalled, the held one included (its signal pending), and
/// the group thawed, usable, suspended by nobody. Every mechanism: a
/// process group's `killpg` does not wait at all.
#[tokio::test]
async fn a_sync_signal_whose_freeze_cannot_be_confirmed_returns_every_member_signalled() {
    const NAME: &str =
        "a_sync_signal_whose_freeze_cannot_be_confirmed_returns_every_member_signalled";
    let suite = begin(NAME).await;
    if !v1_freezer_usable() {
        skipped(NAME, "no cgroup v1 freezer directory can be made here");
        suite.end().await;
        return;
    }
    for (n, choice) in mechanisms().into_iter().enumerate() {
        let group = std::sync::Arc::new(group(choice));
        let (p, pids, held) = start_holding(&group, 2, 110 + n).await;
        for (sig, signal) in [
            (libc::SIGTERM, pkit::Signal::Term),
            (libc::SIGKILL, pkit::Signal::Kill),
        ] {
            let what = format!("{choice}, {signal}");
            let g = group.clone();
            let sent = tokio::task::spawn_blocking(move || match signal {
                pkit::Signal::Kill => g.kill(),
                other => g.signal(other),
            });
            tokio::time::timeout(5 * DEADLINE, sent)
                .await
                .unwrap_or_else(|_| panic!("{what}: the call never returned"))
                .expect("the blocking task")
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(
                held.pending(sig),
                "{what}: the held member was not signalled"
            );
            if let Some(dir) = cgroup_dir(&group) {
                assert_eq!(freeze_written(&dir), "0", "{what}: the group stays frozen");
            }
            assert!(!group.is_suspended(), "{what}");
        }
        // Everyone else is gone; the held one dies of its SIGKILL once let go.
        held.thaw();
        drop(p);
        assert_gone(&pids, &choice.to_string()).await;
        group.close().await.expect("close");
        held.remove().await;
    }
    suite.end().await;
}
