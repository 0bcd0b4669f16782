//! [`KillOnDrop`]: the processes a test let escape on purpose, killed when
//! the test ends, a failing assertion included, and nothing else.

use super::{comm, kill_pid, pid_gone};

/// Kills the processes it holds when dropped, unless they are gone: for
/// processes a test lets escape on purpose (or whose pid it read from a
/// script), so that a failing assertion still leaves nothing running.
///
/// Only what the test started is killed, by pid, and only the very
/// process it was given. [`new`](Self::new) reads each pid's start time;
/// the drop kills a pid only if it still has that start time (the same
/// process, not a later one given the number) and it was the test's own,
/// when the guard was made or now:
///
/// - a descendant of this test process (a script's `$!` before its exec,
///   still a `sh`, included), or
/// - in one of this process's `pkit-<pid>-*` cgroups, or
/// - a `sleep` started no earlier than this test process: an escapee that
///   had left the test's tree (re-parented to init) before the test read
///   its pid, a detached daemon, say.
pub struct KillOnDrop(Vec<Held>);

/// One pid held, with the start time it had when the guard was made
/// (`None`: gone by then; never killed).
struct Held {
    pid: u32,
    start: Option<u64>,
    ours: bool,
}

impl KillOnDrop {
    /// Holds `pids`, as they are now.
    pub fn new(pids: Vec<u32>) -> KillOnDrop {
        KillOnDrop(pids.into_iter().map(Held::now).collect())
    }

    /// The pids held.
    pub fn pids(&self) -> Vec<u32> {
        self.0.iter().map(|h| h.pid).collect()
    }

    /// Hands the pids back, to be held by another guard (made later: it
    /// reads their start times again): this one kills nothing.
    pub fn release(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.0)
            .into_iter()
            .map(|h| h.pid)
            .collect()
    }
}

impl Held {
    fn now(pid: u32) -> Held {
        let start = (!pid_gone(pid)).then(|| start_time(pid)).flatten();
        Held {
            pid,
            start,
            ours: start.is_some() && ours(pid),
        }
    }

    /// Whether the drop kills it: the same process as when held (its start
    /// time unchanged), alive, and ours then or now.
    fn to_kill(&self) -> bool {
        let Some(start) = self.start else {
            return false;
        };
        !pid_gone(self.pid)
            && start_time(self.pid) == Some(start)
            && (self.ours || ours(self.pid))
            // Read again: the process may have ended and its number been
            // given on while `ours` looked.
            && start_time(self.pid) == Some(start)
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for held in &self.0 {
            if held.to_kill() {
                kill_pid(held.pid);
            }
        }
    }
}

/// The start time of `pid` (`/proc/<pid>/stat` field 22, in clock ticks
/// since boot); `None` when it is gone.
pub fn start_time(pid: u32) -> Option<u64> {
    let text = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = String::from_utf8_lossy(&text[close + 1..]).into_owned();
    // Fields after the command name start at field 3 (the state).
    rest.split_ascii_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether `pid` is this test process's own (see [`KillOnDrop`]).
fn ours(pid: u32) -> bool {
    let me = std::process::id();
    descends_from(pid, me) || in_cgroup_of(pid, me) || {
        comm(pid).as_deref() == Some("sleep")
            && start_time(me).is_some_and(|mine| start_time(pid).is_some_and(|t| t >= mine))
    }
}

/// Whether `ancestor` is an ancestor of `pid` (its parent's parent's ...).
fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut at = pid;
    // A chain of parents is short; the bound only guards against a loop
    // read across pids reused meanwhile.
    for _ in 0..256 {
        let Some(parent) = super::stat(at).map(|s| s.ppid) else {
            return false;
        };
        if parent == ancestor {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        at = parent;
    }
    false
}

/// Whether `pid` is in one of `owner`'s `pkit-<owner>-*` cgroups.
fn in_cgroup_of(pid: u32, owner: u32) -> bool {
    let prefix = format!("/{}", super::name_prefix(owner));
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .is_ok_and(|c| c.lines().any(|l| l.contains(&prefix)))
}
