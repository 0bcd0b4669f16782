//! A member of a run's tree held where cgroup v2's freeze can't reach it
//! (a cgroup v1 freezer directory of the test's own), so the run's
//! cgroup v2 freeze never completes; and what the tests that use it read
//! of a run's tree (its cgroup v2 directory, a process's name).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{in_mask, pid_gone, unique_name};

const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// A cgroup v1 freezer directory of the test's own holding one process,
/// frozen; thawed and removed when dropped.
pub struct Held {
    dir: PathBuf,
    pid: i32,
}

impl Held {
    /// `None` where no v1 freezer directory can be made (no such
    /// hierarchy, not root).
    pub fn new(pid: i32) -> Option<Held> {
        let dir = Path::new("/sys/fs/cgroup/freezer").join(unique_name("held"));
        std::fs::create_dir(&dir).ok()?;
        let held = Held { dir, pid };
        std::fs::write(held.dir.join("cgroup.procs"), pid.to_string()).expect("v1: move");
        std::fs::write(held.dir.join("freezer.state"), "FROZEN").expect("v1: freeze");
        let until = Instant::now() + DEADLINE;
        while std::fs::read_to_string(held.dir.join("freezer.state"))
            .unwrap_or_default()
            .trim()
            != "FROZEN"
        {
            assert!(Instant::now() < until, "v1 freezer: never FROZEN");
            std::thread::sleep(POLL);
        }
        Some(held)
    }

    /// Whether `sig` is pending for the held process.
    pub fn pending(&self, sig: i32) -> bool {
        in_mask(self.pid, "ShdPnd:", sig) || in_mask(self.pid, "SigPnd:", sig)
    }

    /// Lets the held process run again.
    pub fn thaw(&self) {
        let _ = std::fs::write(self.dir.join("freezer.state"), "THAWED");
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.thaw();
        if !pid_gone(self.pid) {
            // SAFETY: kill(2) of the process this test holds.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        let until = Instant::now() + DEADLINE;
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < until {
            std::thread::sleep(POLL);
        }
    }
}

/// Where the cgroup v2 hierarchy is mounted.
fn v2_root() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mount = left.split_whitespace().nth(4)?;
        right.starts_with("cgroup2 ").then(|| PathBuf::from(mount))
    })
}

/// The cgroup v2 directory of `pid`.
pub fn v2_dir(pid: i32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(v2_root()?.join(rel.trim_start_matches('/')))
}

/// Polls until the cgroup v2 directory `dir` is asked to freeze
/// (`cgroup.freeze` is 1: pkit's pass waits for it to complete); `what`
/// names the freeze in the failure.
pub fn wait_freeze_asked(dir: &Path, what: &str) {
    let until = Instant::now() + DEADLINE;
    while std::fs::read_to_string(dir.join("cgroup.freeze"))
        .unwrap_or_default()
        .trim()
        != "1"
    {
        assert!(
            Instant::now() < until,
            "{what} never froze the tree ({dir:?})"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The name (`comm`) of process `pid`; empty once it is gone.
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}
