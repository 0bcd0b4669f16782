//! Interrupting a `pkit-fifo-open` thread (`sys/open_wait.rs`) whose
//! `open(2)` of a FIFO waits for an other end that pkit can't open itself
//! (a FIFO its user may open only one way, mode 0200 or 0400, or one no
//! longer at the path the release opens): a signal sent to that one
//! thread, caught by a handler that does nothing and that is installed
//! without `SA_RESTART`, makes the open fail with `EINTR`.
//!
//! The signal is SIGURG, whose default action is to ignore it (a socket's
//! out-of-band data, for a process that asked with `F_SETOWN`; the Go
//! runtime takes it for the same reason). The handler is installed when a
//! give-up needs it, and only over the default action or an ignore: an
//! application's own SIGURG handler is left alone (and then the thread is
//! not signalled: see `open_wait.rs` for what is left). Whether it can be
//! installed is looked at again at each give-up that needs it (one
//! `sigaction` query), so an application that puts SIGURG back to its
//! default later has pkit's handler installed at the next such give-up.
//! Nor is a thread signalled that blocks SIGURG: the `pkit-fifo-open`
//! thread keeps the mask it inherited, so an application that blocks
//! SIGURG in every thread (to read it from a `signalfd`, say) still gets
//! every SIGURG sent to the process.
//!
//! Once installed the handler stays; what that changes for the
//! application is that a SIGURG sent to the whole process (rare)
//! interrupts a blocking system call of the thread that takes it with
//! `EINTR` instead of being dropped. Rust's standard library retries that
//! in some calls (`File::open`, `read_exact`, `write_all`), but a plain
//! `read`, `write` or `accept` returns it as an error of kind
//! `Interrupted`. Children never see it: a caught signal is at its
//! default action again after `execve`.

use std::ffi::c_int;
use std::os::unix::thread::JoinHandleExt;

/// The signal that interrupts the thread's open.
const SIGNAL: c_int = libc::SIGURG;

/// The handler: does nothing; being caught is what ends the open.
extern "C" fn nothing(_: c_int) {}

/// [`nothing`] as `sigaction` takes it.
fn handler() -> libc::sighandler_t {
    nothing as extern "C" fn(c_int) as libc::sighandler_t
}

/// Whether [`nothing`] is [`SIGNAL`]'s handler now, installing it first
/// over the default action or an ignore (see the module's comment).
/// Looked at again at each call: an application may have installed its
/// own handler since, or put the default back.
fn installed() -> bool {
    let ours = |a: &libc::sigaction| a.sa_sigaction == handler();
    // Ours counts as free: two give-ups may install it at once.
    let free = |a: &libc::sigaction| {
        a.sa_sigaction == libc::SIG_DFL || a.sa_sigaction == libc::SIG_IGN || ours(a)
    };
    // SAFETY: sigaction(2) of this process with actions that live on this
    // stack for the calls: `ours` is zeroed (no flags, so no SA_RESTART)
    // with an emptied mask and a handler that touches no memory; `old` is
    // what the kernel filled in. An application's handler is looked at
    // first and never replaced, even for an instant (a SIGURG then would
    // run ours, not its); one installed between the look and ours is put
    // back as it was.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(SIGNAL, std::ptr::null(), &mut old) != 0 || !free(&old) {
            return false;
        }
        if ours(&old) {
            return true;
        }
        let mut mine: libc::sigaction = std::mem::zeroed();
        mine.sa_sigaction = handler();
        libc::sigemptyset(&mut mine.sa_mask);
        if libc::sigaction(SIGNAL, &mine, &mut old) != 0 {
            return false;
        }
        if free(&old) {
            return true;
        }
        libc::sigaction(SIGNAL, &old, std::ptr::null_mut());
        false
    }
}

/// Whether the calling thread blocks [`SIGNAL`]. A thread it starts
/// inherits its mask, so a `pkit-fifo-open` thread started here blocks
/// it too, and [`interrupt`] can't release that thread (it is left as
/// it would be under an application's own handler).
pub(crate) fn blocked_here() -> bool {
    // SAFETY: zeroed storage filled in by pthread_sigmask(3), which with
    // a null set only reads the calling thread's mask.
    unsafe {
        let mut now: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut now) == 0
            && libc::sigismember(&now, SIGNAL) == 1
    }
}

/// Sends [`SIGNAL`] to `thread` (installing the handler first); whether
/// it was sent (not when an application's own handler is in place). The
/// caller sends it only to a thread that does not block it
/// ([`blocked_here`]). A thread not yet in its open, or past it, only
/// runs the handler.
pub(crate) fn interrupt<T>(thread: &std::thread::JoinHandle<T>) -> bool {
    if !installed() {
        return false;
    }
    // SAFETY: the handle is neither joined nor detached while we borrow
    // it, and a pthread_t stays valid until its thread is joined (POSIX),
    // exited or not: the signal can reach no other thread; it is caught
    // by a handler that does nothing.
    unsafe { libc::pthread_kill(thread.as_pthread_t() as libc::pthread_t, SIGNAL) == 0 }
}
