//! This process's pid, asked of the kernel once rather than on every run,
//! and its fork generation: together, its identity.
//!
//! A one-shot run compares the owner of process-wide state (the pool of
//! spare cgroups, the owner-death guard) with this process several times:
//! a copy forked without exec must not use its parent's. Each of those
//! comparisons was a `getpid` system call. The pid is now kept here, and
//! forgotten in the child of every `fork` that runs `pthread_atfork`
//! handlers (`fork(3)` and everything built on it), so a forked copy asks
//! the kernel again.
//!
//! The pid alone does not tell a copy from its maker: a pid-1 owner (a
//! container's init) whose copy is forked into a new pid namespace
//! (`unshare(CLONE_NEWPID)`, then `fork`) has a copy that is pid 1 too.
//! The same handler therefore counts a generation, and the identity
//! ([`identity`]) is the pair.
//!
//! A child made without those handlers (a raw `clone`, `_Fork`) keeps its
//! maker's identity here, whatever its pid. The drops that kill or remove
//! something confirm the pid with the kernel
//! (`Creator::is_here_confirmed`), so such a child with a pid number of
//! its own does nothing to its maker's; one with its maker's number can't
//! be told apart. See the forked copies section of the crate docs.
//!
//! pkit's own raw forks (the guard's fallback start, the `pre_exec` spawn)
//! run no such handler; their children only make raw system calls and
//! exec or exit, and never read this. A vfork-style child shares this
//! memory with its parent, so it must not write it, and does not.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The kept identity: the fork generation in the high half, the pid in
/// the low half (0 when not known: at start, and in a forked child). One
/// word, so that the common case is one relaxed load.
static ID: AtomicU64 = AtomicU64::new(0);
/// 1 once the `pthread_atfork` handler ([`forget`]) is registered.
static HOOKED: AtomicU32 = AtomicU32::new(0);
/// The pid of the process that tried to register it, 0 before.
static TRIED_BY: AtomicU32 = AtomicU32::new(0);

/// This process's pid (what `std::process::id()` returns).
#[cfg(target_os = "linux")]
pub(crate) fn current() -> u32 {
    identity() as u32
}

/// This process's identity: its pid and its fork generation (how many
/// forks that ran the `pthread_atfork` handlers lie between it and the
/// process it was copied from first). A forked copy never has the identity
/// of the process it was copied from, even where its pid is the same
/// number: a pid-1 owner's copy forked into a new pid namespace is pid 1
/// too.
pub(crate) fn identity() -> u64 {
    match ID.load(Ordering::Relaxed) {
        id if id as u32 == 0 => ask(),
        id => id,
    }
}

/// Whether this process is a forked copy: a child of a `fork` that ran the
/// `pthread_atfork` handlers once this module's was registered (the
/// process it was copied from, or one before, had used pkit), which has
/// not exec'd since. Such a copy usually ends with `_exit`, which runs no
/// `atexit` handler.
#[cfg(target_os = "linux")]
pub(crate) fn forked() -> bool {
    identity() >> 32 != 0
}

#[cold]
fn ask() -> u64 {
    let pid = std::process::id();
    // Not a `Once`: a copy forked while another thread of its parent
    // registers the handler would wait on it for ever. Whoever finds no
    // attempt by this pid makes one; the others don't wait for it (they
    // keep nothing meanwhile: see below). A copy forked before the
    // registration (a pid of its own) tries again; one forked after it
    // has the handler, which marks it hooked. Nor an `AtForkOnce` (the
    // other hooks' way): its lock asks for the identity this keeps.
    if HOOKED.load(Ordering::Acquire) == 0 {
        let tried = TRIED_BY.load(Ordering::Relaxed);
        if tried != pid
            && TRIED_BY
                .compare_exchange(tried, pid, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // Raw: pthread_atfork has no rustix form.
            // SAFETY: registers a child-side handler only: `forget` is an
            // `extern "C" fn` without state that makes atomic loads and
            // stores, which are async-signal-safe (all a forked child of a
            // threaded process may do before exec).
            if unsafe { libc::pthread_atfork(None, None, Some(forget)) } == 0 {
                HOOKED.store(1, Ordering::Release);
            }
        }
    }
    // The generation changes only in a forked child's handler, before any
    // other thread of that child exists.
    let id = (ID.load(Ordering::Relaxed) & !u64::from(u32::MAX)) | u64::from(pid);
    // Without the handler a forked child could read its parent's pid:
    // keep nothing then, and ask every time.
    if HOOKED.load(Ordering::Acquire) == 1 {
        ID.store(id, Ordering::Relaxed);
    }
    id
}

/// The `pthread_atfork` child handler: the pid is the parent's no more,
/// and this is a new generation.
extern "C" fn forget() {
    let generation = (ID.load(Ordering::Relaxed) >> 32).wrapping_add(1);
    ID.store(generation << 32, Ordering::Relaxed);
    HOOKED.store(1, Ordering::Release);
}

/// For unit tests that fork: waits for the child `pid` and asserts it
/// exited with status 0.
#[cfg(all(test, unix))]
pub(crate) fn reap_forked_ok(pid: i32) {
    let pid = rustix::process::Pid::from_raw(pid).expect("a child pid");
    let (_, status) = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
        .expect("waitpid")
        .expect("a status");
    assert_eq!(status.exit_status(), Some(0), "{status:?}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_the_process_id() {
        assert_eq!(super::identity() as u32, std::process::id());
        assert_eq!(super::identity() as u32, std::process::id());
    }

    /// A child forked after the pid was kept reads its own, not the
    /// parent's, and is a generation on.
    #[test]
    fn a_forked_child_reads_its_own_pid() {
        let parent = super::identity() as u32;
        let parent_gen = super::identity() >> 32;
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
            let generation = super::identity() >> 32;
            let code =
                if super::identity() as u32 == own && own != parent && generation == parent_gen + 1
                {
                    0
                } else {
                    1
                };
            unsafe { libc::_exit(code) };
        }
        super::reap_forked_ok(pid);
        assert_eq!(super::identity() as u32, parent);
    }
}
