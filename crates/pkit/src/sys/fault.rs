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
    /// The freeze before a signal or kill pass (`linux/cgroup_freeze.rs`):
    /// armed, `cgroup.freeze` is written and the wait for the kernel's
    /// `frozen 1` fails with the errno at once, as it does after 5 s for a
    /// member that can't be frozen.
    Freeze,
    /// One member's signal in a signal pass over a cgroup's members
    /// (`linux/subtree.rs`): armed, that member is not signalled and the
    /// pass has the errno for its error.
    SignalMember,
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
    /// Reaching a stdio file (a FIFO, or any other) through
    /// `/proc/thread-self/fd` for a bounded open (`sys/open_wait.rs`):
    /// armed, the open and its give-up take the path, as where `/proc` is
    /// not mounted (the errno is not used).
    FifoProcFd,
    /// Between a bounded stdio open's one look at its path (`O_PATH` on
    /// Linux: is it a FIFO?) and its open of what it found
    /// (`sys/open_wait.rs`): a `hold` here pauses the open, so a test can
    /// change what the path names meanwhile (the errno is not used).
    StdioLookedUp,
    /// Between a new cgroup's registration with the owner-death guard and
    /// its `mkdir` (`linux/cgroup.rs`): a `hold` here pauses the creation
    /// (the errno is not used).
    GuardRegistered,
    /// Between a new cgroup's `mkdir` (and `open`) and its shared `flock`
    /// (`linux/cgroup.rs`): a `hold` here pauses the creation, so a test
    /// can remove the fresh directory (as a dead owner's guard may) or put
    /// another owner's of the same name in its place (the errno is not
    /// used).
    CgroupUnlocked,
    /// Between a new cgroup's `mkdir` and the guard's being told it was
    /// made (`linux/cgroup.rs`): a `hold` here pauses the creation (the
    /// errno is not used).
    CgroupMade,
    /// A suspend's stop (`sys/control.rs`): the write of `cgroup.freeze`
    /// that freezes the cgroup (armed, it is not made), or the process
    /// group's SIGSTOP (sent, then reported failed, so the suspend undoes
    /// it: see `container_suspend.rs`). The suspend fails with the errno.
    SuspendStop,
    /// A suspend whose stop failed, once it has let go of the group's
    /// locks and before it returns the error (`sys/control.rs`): a `hold`
    /// here pauses it, so a test can run another suspend meanwhile (the
    /// errno is not used).
    SuspendFailed,
    /// A pty session's `CreatePseudoConsole` (Windows): armed, the call is
    /// not made and fails with the "errno" as its `HRESULT`, so a test can
    /// see a failed creation tried again (Wine's fails now and then).
    #[cfg_attr(not(windows), allow(dead_code))]
    ConsoleCreate,
}

#[cfg(feature = "fault-injection")]
mod armed {
    use super::Point;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Condvar, Mutex};

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

    /// Removes every injected fault, and releases every [`hold`].
    pub fn clear() {
        FAULTS.lock().unwrap_or_else(|e| e.into_inner()).clear();
        ANY.store(false, Ordering::Release);
        HOLDS.lock().unwrap_or_else(|e| e.into_inner()).clear();
        HELD.notify_all();
    }

    /// Points held (see [`hold`]), each with whether a call reached it.
    static HOLDS: Mutex<Vec<(Point, bool)>> = Mutex::new(Vec::new());
    static HELD: Condvar = Condvar::new();

    /// Makes the next call that reaches `point`'s [`pause`] wait there
    /// until [`release`] (or [`clear`]; a minute at most).
    pub fn hold(point: Point) {
        let mut h = HOLDS.lock().unwrap_or_else(|e| e.into_inner());
        h.retain(|(p, _)| *p != point);
        h.push((point, false));
    }

    /// Whether a call waits at the held `point` (see [`hold`]).
    pub fn reached(point: Point) -> bool {
        let h = HOLDS.lock().unwrap_or_else(|e| e.into_inner());
        h.iter().any(|&(p, at)| p == point && at)
    }

    /// Lets the call held at `point` go on (see [`hold`]).
    pub fn release(point: Point) {
        HOLDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(p, _)| *p != point);
        HELD.notify_all();
    }

    /// Waits here while `point` is held (see [`hold`]); at once otherwise.
    pub(crate) fn pause(point: Point) {
        let mut h = HOLDS.lock().unwrap_or_else(|e| e.into_inner());
        let Some(i) = h.iter().position(|&(p, at)| p == point && !at) else {
            return;
        };
        h[i].1 = true;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while h.iter().any(|&(p, _)| p == point) {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            h = HELD
                .wait_timeout(h, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
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
#[cfg_attr(not(unix), allow(unused_imports))]
pub(crate) use armed::pause;
#[cfg(feature = "fault-injection")]
pub use armed::{clear, hold, inject, pending, reached, release};

/// Always `Ok` in a normal build.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn check(_point: Point) -> Result<(), i32> {
    Ok(())
}

/// Never waits in a normal build.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) fn pause(_point: Point) {}

/// `check` as an `io::Result`.
#[inline(always)]
pub(crate) fn io_check(point: Point) -> std::io::Result<()> {
    check(point).map_err(std::io::Error::from_raw_os_error)
}
