//! Fault injection for tests: makes chosen system calls fail with a chosen
//! errno, so the error and fallback paths behind them can be exercised.
//!
//! Compiled only with the hidden
//! `fault-injection` cargo feature (used by `tests/faults.rs`); in a normal
//! build [`check`] is an empty inline function and costs nothing.

/// A system call that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub enum Point {
    /// `mkdir` of a group's cgroup (v2 and v1).
    CgroupMkdir,
    /// A spawn's `clone3`: `CLONE_INTO_CGROUP` (the cgroup mechanism), and
    /// a process group's first process's, which publishes its birth (with
    /// or without a `pre_exec` hook). An errno that means clone3 is refused
    /// makes the spawn fall back to an older clone.
    Clone3,
    /// `pidfd_open` (the pidfd support probe, the process-group member
    /// pidfds, the cgroup member pidfds of the kill fallback).
    PidfdOpen,
    /// The write of `cgroup.kill`.
    CgroupKill,
    /// `rmdir` of a group's cgroup.
    Rmdir,
    /// The write of `cgroup.freeze` that thaws a cgroup after a signal or
    /// kill pass froze it.
    Thaw,
    /// The owner-death guard's `socketpair`.
    GuardSocket,
    /// A pipe for a child's stdio or between pipeline stages.
    Pipe,
    /// Reading a group's member list (`cgroup.procs`, or the process
    /// table), as `Group::pids` and `Group::stats` do.
    Members,
    /// `POSIX_SPAWN_SETSID` for a pty session's trampoline (the portable
    /// backend): armed, the trampoline is started without it, as on
    /// FreeBSD, whose C library has none, and makes its session with its
    /// own `setsid` (the errno is not used).
    SpawnSetsid,
    /// Reaching a stdio FIFO through `/proc/thread-self/fd` for a bounded
    /// open (`sys/open_wait.rs`): armed, the open and its give-up take the
    /// path, as where `/proc` is not mounted (the errno is not used).
    FifoProcFd,
}

#[cfg(feature = "fault-injection")]
mod armed {
    use super::Point;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    static ANY: AtomicBool = AtomicBool::new(false);
    /// (point, errno, failures left; `u32::MAX`: every call).
    static FAULTS: Mutex<Vec<(Point, i32, u32)>> = Mutex::new(Vec::new());

    /// Makes the next `times` calls at `point` fail with `errno`
    /// (`u32::MAX`: every call until [`clear`]).
    pub fn inject(point: Point, errno: i32, times: u32) {
        let mut f = FAULTS.lock().unwrap_or_else(|e| e.into_inner());
        f.retain(|(p, _, _)| *p != point);
        f.push((point, errno, times));
        ANY.store(true, Ordering::Release);
    }

    /// Removes every injected fault.
    pub fn clear() {
        FAULTS.lock().unwrap_or_else(|e| e.into_inner()).clear();
        ANY.store(false, Ordering::Release);
    }

    /// Whether a fault armed at `point` is still waiting for its call.
    pub fn pending(point: Point) -> bool {
        let f = FAULTS.lock().unwrap_or_else(|e| e.into_inner());
        f.iter().any(|(p, _, left)| *p == point && *left > 0)
    }

    /// `Err(errno)` when a fault is armed at `point`.
    pub(crate) fn check(point: Point) -> Result<(), i32> {
        if !ANY.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut f = FAULTS.lock().unwrap_or_else(|e| e.into_inner());
        let Some(i) = f.iter().position(|(p, _, left)| *p == point && *left > 0) else {
            return Ok(());
        };
        let errno = f[i].1;
        if f[i].2 != u32::MAX {
            f[i].2 -= 1;
        }
        Err(errno)
    }
}

#[cfg(feature = "fault-injection")]
pub(crate) use armed::check;
#[cfg(feature = "fault-injection")]
pub use armed::{clear, inject, pending};

/// Always `Ok` in a normal build.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn check(_point: Point) -> Result<(), i32> {
    Ok(())
}

/// `check` as an `io::Result`.
#[inline(always)]
pub(crate) fn io_check(point: Point) -> std::io::Result<()> {
    check(point).map_err(std::io::Error::from_raw_os_error)
}
