//! This process's pid, asked of the kernel once rather than on every run.
//!
//! A one-shot run compares the pid with the owner of process-wide state
//! (the pool of spare cgroups, the owner-death guard) several times: a copy
//! forked without exec must not use its parent's. Each of those comparisons
//! was a `getpid` system call. The pid is now kept here, and forgotten in
//! the child of every `fork` that runs `pthread_atfork` handlers (`fork(3)`
//! and everything built on it), so a forked copy asks the kernel again.
//!
//! pkit's own raw forks (the guard's fallback start, the `pre_exec` spawn)
//! run no such handler; their children only make raw system calls and
//! exec or exit, and never read this. A vfork-style child shares this
//! memory with its parent, so it must not write it, and does not.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// The kept pid; 0 when not known (at start, and in a forked child).
static PID: AtomicU32 = AtomicU32::new(0);

/// This process's pid (what `std::process::id()` returns).
pub(crate) fn current() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => ask(),
        pid => pid,
    }
}

#[cold]
fn ask() -> u32 {
    static HOOK: Once = Once::new();
    static HOOKED: AtomicU32 = AtomicU32::new(0);
    HOOK.call_once(|| {
        // Raw: pthread_atfork has no rustix form.
        // SAFETY: registers a child-side handler only: `forget` is an
        // `extern "C" fn` without state that makes one atomic store, which
        // is async-signal-safe (all a forked child of a threaded process
        // may do before exec).
        if unsafe { libc::pthread_atfork(None, None, Some(forget)) } == 0 {
            HOOKED.store(1, Ordering::Release);
        }
    });
    let pid = std::process::id();
    // Without the handler a forked child could read its parent's pid:
    // keep nothing then, and ask every time.
    if HOOKED.load(Ordering::Acquire) == 1 {
        PID.store(pid, Ordering::Relaxed);
    }
    pid
}

/// The `pthread_atfork` child handler: the pid is the parent's no more.
extern "C" fn forget() {
    PID.store(0, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_the_process_id() {
        assert_eq!(super::current(), std::process::id());
        assert_eq!(super::current(), std::process::id());
    }

    /// A child forked after the pid was kept reads its own, not the
    /// parent's.
    #[test]
    fn a_forked_child_reads_its_own_pid() {
        let parent = super::current();
        // Raw: libc's fork (running the atfork handlers) is what is tested; rustix has no fork.
        // SAFETY: the child only loads atomics, calls getpid and `_exit`s
        // (async-signal-safe); the parent waits for it below.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // Raw: the C library's getpid and _exit in the forked child,
            // beside the raw fork.
            // SAFETY: as above.
            let own = unsafe { libc::getpid() } as u32;
            let code = if super::current() == own && own != parent {
                0
            } else {
                1
            };
            unsafe { libc::_exit(code) };
        }
        let pid = rustix::process::Pid::from_raw(pid).expect("a child pid");
        let (_, status) =
            rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
                .expect("waitpid")
                .expect("a status");
        assert_eq!(status.exit_status(), Some(0), "{status:?}");
        assert_eq!(super::current(), parent);
    }
}
