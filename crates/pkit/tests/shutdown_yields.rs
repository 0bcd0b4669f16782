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
        let dir = PathBuf::from(V1_FREEZER).join(common::unique_name(&format!("held-{n}")));
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
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .filter_map(|l| {
                l.strip_prefix("ShdPnd:")
                    .or_else(|| l.strip_prefix("SigPnd:"))
            })
            .filter_map(|v| u64::from_str_radix(v.trim(), 16).ok())
            .any(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0)
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
    let probe = PathBuf::from(V1_FREEZER).join(common::unique_name("held-probe"));
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
