//! Interrupting a `pkit-fifo-open` thread (`sys/open_wait.rs`) whose
//! `open(2)` of a FIFO waits for an other end that pkit can't open itself
//! (a FIFO its user may open only one way, mode 0200 or 0400, or one no
//! longer at the path the release opens): a signal sent to that one
//! thread, caught by a handler that does nothing and that is installed
//! without `SA_RESTART`, makes the open fail with `EINTR`.
//!
//! The signal is SIGURG, whose default action is to ignore it (a socket's
//! out-of-band data, for a process that asked with `F_SETOWN`; the Go
//! runtime takes it for the same reason). The handler is installed the
//! first time a give-up needs it, and only over the default action or an
//! ignore: an application's own SIGURG handler is left alone (and then
//! the thread is not signalled: see `open_wait.rs` for what is left).
//! Once installed it stays; what that changes for the application is that
//! a SIGURG sent to the whole process (rare) interrupts a blocking system
//! call of the thread that takes it with `EINTR` (which Rust's standard
//! library retries) instead of being dropped. Children never see it: a
//! caught signal is at its default action again after `execve`.

use std::ffi::c_int;
use std::os::unix::thread::JoinHandleExt;
use std::sync::OnceLock;

/// The signal that interrupts the thread's open.
const SIGNAL: c_int = libc::SIGURG;

/// The handler: does nothing; being caught is what ends the open.
extern "C" fn nothing(_: c_int) {}

/// [`nothing`] as `sigaction` takes it.
fn handler() -> libc::sighandler_t {
    nothing as extern "C" fn(c_int) as libc::sighandler_t
}

/// Installs [`nothing`] for [`SIGNAL`] once (see the module's comment);
/// whether it is installed.
fn installed() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let free = |a: &libc::sigaction| {
            a.sa_sigaction == libc::SIG_DFL || a.sa_sigaction == libc::SIG_IGN
        };
        // SAFETY: sigaction(2) of this process with actions that live on
        // this stack for the calls: `ours` is zeroed (no flags, so no
        // SA_RESTART) with an emptied mask and a handler that touches no
        // memory; `old` is what the kernel filled in. An application's
        // handler is looked at first and never replaced, even for an
        // instant (a SIGURG then would run ours, not its); one installed
        // between the look and ours is put back as it was.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(SIGNAL, std::ptr::null(), &mut old) != 0 || !free(&old) {
                return false;
            }
            let mut ours: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction = handler();
            libc::sigemptyset(&mut ours.sa_mask);
            if libc::sigaction(SIGNAL, &ours, &mut old) != 0 {
                return false;
            }
            if free(&old) {
                return true;
            }
            libc::sigaction(SIGNAL, &old, std::ptr::null_mut());
            false
        }
    })
}

/// Whether [`nothing`] is still [`SIGNAL`]'s handler (an application may
/// have installed its own since).
fn still_ours() -> bool {
    // SAFETY: a sigaction(2) query into zeroed storage of our own.
    unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        libc::sigaction(SIGNAL, std::ptr::null(), &mut now) == 0 && now.sa_sigaction == handler()
    }
}

/// Lets [`SIGNAL`] reach the calling thread (a `pkit-fifo-open` thread,
/// before its open: it inherited the mask of the thread that started it,
/// which may block it).
pub(crate) fn accept_in_this_thread() {
    // SAFETY: zeroed storage initialised by sigemptyset before use;
    // pthread_sigmask(3) changes only the calling thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, SIGNAL);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Sends [`SIGNAL`] to `thread` (installing the handler first); whether
/// it was sent. A thread not yet in its open, or past it, only runs the
/// handler.
pub(crate) fn interrupt<T>(thread: &std::thread::JoinHandle<T>) -> bool {
    if !installed() || !still_ours() {
        return false;
    }
    // SAFETY: the handle is neither joined nor detached while we borrow
    // it, and a pthread_t stays valid until its thread is joined (POSIX),
    // exited or not: the signal can reach no other thread; it is caught
    // by a handler that does nothing.
    unsafe { libc::pthread_kill(thread.as_pthread_t() as libc::pthread_t, SIGNAL) == 0 }
}
