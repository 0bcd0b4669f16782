//! A process the test holds in a cgroup v1 freezer directory of its own
//! (state `D`, in the kernel's refrigerator): cgroup v2's freezer can't
//! freeze it, so a group's signal pass never gets its freeze confirmed,
//! and no signal acts on it, until the test lets it go.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;
use pkit::Command;

/// The cgroup v1 freezer hierarchy, where one is mounted.
const V1_FREEZER: &str = "/sys/fs/cgroup/freezer";

/// A cgroup v1 freezer directory of this test's own, frozen, holding one
/// process.
pub struct Held {
    dir: PathBuf,
    pid: u32,
}

impl Held {
    /// Moves `pid` into a fresh v1 freezer directory and freezes it;
    /// waits until the kernel says `FROZEN`. `None` where no v1 freezer
    /// directory can be made (no such hierarchy, not root).
    pub fn new(pid: u32, n: usize) -> Option<Held> {
        let dir = PathBuf::from(V1_FREEZER).join(super::unique_name(&format!("held-{n}")));
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

    pub fn state(&self) -> String {
        std::fs::read_to_string(self.dir.join("freezer.state"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Whether the held process has a SIGTERM pending (it can't act on
    /// one while held).
    pub fn term_pending(&self) -> bool {
        self.pending(libc::SIGTERM)
    }

    /// Whether the held process has `sig` pending.
    pub fn pending(&self, sig: i32) -> bool {
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

    pub fn thaw(&self) {
        std::fs::write(self.dir.join("freezer.state"), "THAWED").expect("v1 freezer: thaw");
    }

    /// Removes the directory once its process is gone.
    pub async fn remove(self) {
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
pub fn v1_freezer_usable() -> bool {
    let probe = PathBuf::from(V1_FREEZER).join(super::unique_name("held-probe"));
    let usable = std::fs::create_dir(&probe).is_ok();
    let _ = std::fs::remove_dir(&probe);
    usable
}

/// Starts `sh` with `sleeps` sleeps in `group` and holds one of them in a
/// v1 freezer directory of its own (`n` names it): the group's pids (the
/// shell's and the sleeps'), and the one held.
pub async fn start_holding(
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
pub fn freeze_written(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("cgroup.freeze"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Waits (yielding) until the cgroup at `dir` is being frozen; false when
/// it never was, within a bound far beyond the 5 s a pass may wait for
/// its freeze.
pub async fn being_frozen(dir: &Path) -> bool {
    let until = Instant::now() + 3 * DEADLINE;
    while freeze_written(dir) != "1" {
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

/// The ticker of the async signal tests: a task on the caller's runtime
/// that counts its turns finding the cgroup `dir` being frozen (its
/// `cgroup.freeze` written 1) while the held process has no `sig`
/// pending, and lets the held process go after `ticks` of them (or once
/// it has `sig` pending, or once the test has let it go itself, or after
/// three deadlines). On a current-thread
/// runtime those turns are had only while the call under test yields its
/// thread; a call that waits for the freeze on the thread leaves the
/// count at 0 until its own 5 s deadline. Returns the task and the count.
pub fn tick_while_frozen(
    held: std::sync::Arc<Held>,
    dir: Option<PathBuf>,
    sig: i32,
    ticks: usize,
) -> (
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let turns = std::sync::Arc::new(AtomicUsize::new(0));
    let count = turns.clone();
    let task = tokio::spawn(async move {
        let until = Instant::now() + 3 * DEADLINE;
        // Once the test has let the held process go itself (after its
        // call returned), nothing is left to count, and the process may
        // end and be reaped between two of this task's turns: its `sig`
        // is then never seen pending, and the loop waited out its three
        // deadlines (ci30: group_signal_async 30.4 s, usually 0.4 s).
        while Instant::now() < until && !held.pending(sig) && held.state() == "FROZEN" {
            let frozen = dir.as_deref().is_some_and(|d| freeze_written(d) == "1");
            if frozen && count.fetch_add(1, Ordering::SeqCst) + 1 >= ticks {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        held.thaw();
    });
    (task, turns)
}
