//! The terminal's signals held back from the processes pkit starts of its
//! own executable (a spawn's trampoline, the portable guard's launcher)
//! until they are out of the owner's process group.
//!
//! Such a process is in the owner's process group for a while: a pty
//! session's trampoline until its `setsid` where the C library can't make
//! it lead a session at the spawn (FreeBSD: see `spawn_pty.rs`), and any
//! of them between the C library's clone and its `setpgid` or `setsid`
//! (glibc, FreeBSD) or the kernel's fork and its placement (macOS). A
//! terminal's `^Z` in that window (SIGTSTP to its foreground group, the
//! owner's) stops it with the signal's default action, even where the
//! owner catches the signal and goes on: the owner then waits for it for
//! ever (a trampoline's ready byte) or for a while (the launcher's
//! greeting); a `^C` kills it. So it starts with [`TERMINAL_SIGNALS`]
//! blocked ([`blocked_at_start`]); the launcher keeps them blocked until
//! it exits (the guard it forks starts with none pending and sets its own
//! mask), and a trampoline, once in its own group or session, discards
//! those that came meanwhile (they were the owner's job's, or came before
//! anyone knew its number) and unblocks them ([`release`]), so that its
//! program starts with the empty mask every child here gets.

/// The signals a terminal sends its foreground process group (`^C`,
/// `^\`, `^Z`, a background job's read or write, a hangup).
pub(super) const TERMINAL_SIGNALS: [libc::c_int; 6] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// The signal mask of a process pkit starts of its own executable:
/// [`TERMINAL_SIGNALS`] (`held`), or else the empty one.
pub(crate) fn blocked_at_start(held: bool) -> libc::sigset_t {
    // SAFETY: zeroed storage initialised by sigemptyset before use;
    // sigaddset of valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        if held {
            for signal in TERMINAL_SIGNALS {
                libc::sigaddset(&mut set, signal);
            }
        }
        set
    }
}

/// A trampoline, before its ready byte (in its own process group or
/// session by then): leads a new session first when `session` is set and
/// the spawn did not make it lead one (a failed `setsid` is left for the
/// session step to report, which tries again), then discards the
/// [`TERMINAL_SIGNALS`] that came while they were blocked (setting a
/// pending signal's action to "ignore" discards it; the action it had is
/// put back) and unblocks them.
///
/// # Safety
/// Only in the trampoline, before `main`: it changes this process's
/// session, signal actions and mask.
#[cfg_attr(
    not(any(
        all(target_os = "linux", target_env = "gnu"),
        target_os = "macos",
        target_os = "freebsd"
    )),
    allow(dead_code)
)]
pub(super) unsafe fn release(session: bool) {
    // Raw: before `main`, as the rest of the trampoline.
    // SAFETY: getsid, getpid and setsid of this process only.
    if session && unsafe { libc::getsid(0) != libc::getpid() } {
        // SAFETY: as above.
        unsafe { libc::setsid() };
    }
    // SAFETY: zeroed storage initialised by sigemptyset (and filled by
    // sigpending) before it is read.
    let pending = unsafe {
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pending);
        libc::sigpending(&mut pending);
        pending
    };
    for signal in TERMINAL_SIGNALS {
        // SAFETY: a valid signal number and an initialised set.
        if unsafe { libc::sigismember(&pending, signal) } != 1 {
            continue;
        }
        // SAFETY: sigaction(2) of this process, reading `ignore` and
        // writing `old`, both ours; zeroed is an empty action (no flags,
        // an empty mask) that the handler field makes "ignore"; `old` is
        // what the kernel gave back, put back as it was.
        unsafe {
            let mut ignore: libc::sigaction = std::mem::zeroed();
            ignore.sa_sigaction = libc::SIG_IGN;
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, &ignore, &mut old) == 0 {
                libc::sigaction(signal, &old, std::ptr::null_mut());
            }
        }
    }
    let held = blocked_at_start(true);
    // SAFETY: sigprocmask(2) of this single-threaded image (before
    // `main`), reading `held`.
    unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &held, std::ptr::null_mut()) };
}
