//! A group's `shutdown` never blocks the thread that polls it while it
//! waits for the kernel: on a current-thread runtime another task runs
//! meanwhile. The member waited for is one the test holds in a cgroup v1
//! freezer of its own (state `D`, in the kernel's refrigerator): cgroup
//! v2's freezer can't freeze it, so a signal pass's freeze is not
//! confirmed, and no signal acts on it, until the test's other task lets
//! it go. Before, the cgroup mechanism's signal pass waited for `frozen 1`
//! in a blocking `poll` inside the shutdown's first poll (up to 5 s, twice:
//! the signal's pass and the SIGCONT's), so the other task ran only after
//! the group had been signalled.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, MechanismChoice};

/// The cgroup v1 freezer hierarchy, where one is mounted.
const V1_FREEZER: &str = "/sys/fs/cgroup/freezer";

/// A cgroup v1 freezer directory of this test's own, frozen, holding one
/// process.
struct Held {
    dir: PathBuf,
    pid: u32,
}

impl Held {
    /// Moves `pid` into a fresh v1 freezer directory and freezes it;
    /// waits until the kernel says `FROZEN`. `None` where no v1 freezer
    /// directory can be made (no such hierarchy, not root).
    fn new(pid: u32, n: usize) -> Option<Held> {
        let dir = PathBuf::from(V1_FREEZER).join(format!("held-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let held = Held { dir, pid };
        std::fs::write(held.dir.join("cgroup.procs"), pid.to_string()).expect("v1 freezer: move");
        std::fs::write(held.dir.join("freezer.state"), "FROZEN").expect("v1 freezer: freeze");
        let until = Instant::now() + DEADLINE;
        while held.state() != "FROZEN" {
            assert!(Instant::now() < until, "v1 freezer: never FROZEN");
            std::thread::sleep(Duration::from_millis(5));
        }
        Some(held)
    }

    fn state(&self) -> String {
        std::fs::read_to_string(self.dir.join("freezer.state"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Whether the held process has a SIGTERM pending (it can't act on
    /// one while held).
    fn term_pending(&self) -> bool {
        self.pending(libc::SIGTERM)
    }

    /// Whether the held process has `sig` pending.
    fn pending(&self, sig: i32) -> bool {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .filter_map(|l| {
                l.strip_prefix("ShdPnd:")
                    .or_else(|| l.strip_prefix("SigPnd:"))
            })
            .filter_map(|v| u64::from_str_radix(v.trim(), 16).ok())
            .any(|mask| mask & (1 << (sig - 1)) != 0)
    }

    fn thaw(&self) {
        std::fs::write(self.dir.join("freezer.state"), "THAWED").expect("v1 freezer: thaw");
    }

    /// Removes the directory once its process is gone.
    async fn remove(self) {
        self.thaw();
        let until = Instant::now() + DEADLINE;
        while std::fs::remove_dir(&self.dir).is_err() {
            assert!(Instant::now() < until, "v1 freezer: {:?} stays", self.dir);
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Held {
    /// A failed test lets its process go, ends it and removes the
    /// directory (after `remove`, nothing is left to do).
    fn drop(&mut self) {
        if !self.dir.exists() {
            return;
        }
        let _ = std::fs::write(self.dir.join("freezer.state"), "THAWED");
        kill_pid(self.pid);
        let until = Instant::now() + DEADLINE;
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < until {
            std::thread::sleep(POLL);
        }
    }
}

/// Whether a v1 freezer directory can be made here (probed once).
fn v1_freezer_usable() -> bool {
    let probe = PathBuf::from(V1_FREEZER).join(format!("held-{}-probe", std::process::id()));
    let usable = std::fs::create_dir(&probe).is_ok();
    let _ = std::fs::remove_dir(&probe);
    usable
}

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

/// Starts `sh` with `sleeps` sleeps in `group` and holds one of them in a
/// v1 freezer directory of its own (`n` names it): the group's pids (the
/// shell's and the sleeps'), and the one held.
async fn start_holding(
    group: &pkit::Group,
    sleeps: usize,
    n: usize,
) -> (pkit::RunningProcess, Vec<u32>, Held) {
    let script = format!("{} wait", "sleep 300 & ".repeat(sleeps));
    let p = group
        .start(&Command::new("sh").args(["-c", &script]))
        .expect("start");
    let until = Instant::now() + DEADLINE;
    let pids = loop {
        let pids = group.pids().expect("pids");
        if pids.len() == sleeps + 1 {
            break pids;
        }
        assert!(Instant::now() < until, "the sleeps never started");
        tokio::time::sleep(POLL).await;
    };
    let sleeper = *pids.iter().find(|&&q| q != p.pid()).expect("a sleep");
    let held = Held::new(sleeper, n).expect("a v1 freezer directory");
    (p, pids, held)
}

/// What the cgroup's `cgroup.freeze` reads (`1` while it is frozen or
/// being frozen).
fn freeze_written(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("cgroup.freeze"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Waits (yielding) until the cgroup at `dir` is being frozen; false when
/// it never was, within a bound far beyond the 5 s a pass may wait for
/// its freeze.
async fn being_frozen(dir: &std::path::Path) -> bool {
    let until = Instant::now() + 3 * DEADLINE;
    while freeze_written(dir) != "1" {
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
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
