//! Copies of the owner that are not the owner: a child the application
//! forks without `exec` (which may live on long after the owner), and
//! pkit's own forked child running `pre_exec` hooks (which may block, or
//! stop, before its `exec`). Each would hold a copy of the owner's end of
//! the guard's socket, and the guard, which learns of the owner's death
//! from that end closing, would wait for the copy too: an owner SIGKILLed
//! meanwhile left its groups running. In such a copy the owner's end is
//! replaced (same descriptor number) by a socket whose peer is closed, so
//! the copy holds nothing of the guard's, and its own handle on the guard
//! reads as gone.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;

/// Which guard a socket end is: a process may have both (Linux: groups of
/// the portable backend beside the others), each with its own socket.
#[derive(Clone, Copy)]
pub(super) enum Which {
    /// Linux's guard (elsewhere only the portable one exists).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Native = 0,
    Portable = 1,
}

/// The owner's ends of its guards' sockets, by [`Which`] (-1: none yet).
/// A guard's socket is kept for the process's life once started.
static OWNER_ENDS: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];
/// A socket whose peer is closed, put over [`OWNER_ENDS`] in a copy.
static DEAD_END: AtomicI32 = AtomicI32::new(-1);

/// Notes the owner's end of a newly started guard's socket, so that forked
/// copies drop it (see the module docs).
pub(super) fn note_owner_end(which: Which, sock: &OwnedFd) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let Some(dead) = dead_socket() else {
            return;
        };
        // Kept for the process's life (a copy may be forked at any time).
        let dead: RawFd = std::os::fd::IntoRawFd::into_raw_fd(dead);
        DEAD_END.store(dead, Ordering::Release);
        // Raw: pthread_atfork has no rustix form.
        // SAFETY: registers a child-side handler only: `in_forked_copy`
        // makes atomic loads and dup3s, which are async-signal-safe
        // (all a forked child of a threaded process may do before exec).
        unsafe { libc::pthread_atfork(None, None, Some(at_fork)) };
    });
    OWNER_ENDS[which as usize].store(sock.as_raw_fd(), Ordering::Release);
}

/// A socket whose peer is closed, close-on-exec.
fn dead_socket() -> Option<OwnedFd> {
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    // macOS has neither SOCK_SEQPACKET for unix sockets nor SOCK_CLOEXEC:
    // a stream pair, marked close-on-exec after (a fork in between hands
    // a child a socket that is dead anyway).
    #[cfg(target_os = "macos")]
    let (kind, flags) = (SocketType::STREAM, SocketFlags::empty());
    #[cfg(not(target_os = "macos"))]
    let (kind, flags) = (SocketType::SEQPACKET, SocketFlags::CLOEXEC);
    let (dead, peer) = socketpair(AddressFamily::UNIX, kind, flags, None).ok()?;
    drop(peer);
    #[cfg(target_os = "macos")]
    rustix::io::fcntl_setfd(&dead, rustix::io::FdFlags::CLOEXEC).ok()?;
    Some(dead)
}

/// The `pthread_atfork` child handler (the application's `fork`).
extern "C" fn at_fork() {
    // SAFETY: this is the child of a fork, a copy of the owner.
    unsafe { in_forked_copy() }
}

/// Replaces the owner's end of each guard's socket with a dead socket.
/// First thing in a copy: a number the copy sets up for its own use (a
/// start's stdio or `keep_fds` target) may be the owner's end's. Forgets
/// the ends (in this copy's memory), so that copies of the copy never
/// replace what the copy has put at those numbers since.
///
/// # Safety
/// Only in a forked copy of the owner (no `CLONE_VM`): async-signal-safe
/// calls only; the owner's own descriptor must not be touched.
pub(crate) unsafe fn in_forked_copy() {
    let dead = DEAD_END.load(Ordering::Acquire);
    for end in &OWNER_ENDS {
        let owner = end.load(Ordering::Acquire);
        if owner < 0 || dead < 0 {
            continue;
        }
        // This copy's own memory: its own forks leave that number alone
        // (the copy may close it and reuse it for a file of its own).
        end.store(-1, Ordering::Relaxed);
        // Raw: in a forked child: async-signal-safe system calls, no
        // allocation.
        // SAFETY: dup3 atomically closes this copy's `owner` and makes it
        // the dead socket (close-on-exec, as the owner's end is).
        #[cfg(not(target_os = "macos"))]
        unsafe {
            libc::dup3(dead, owner, libc::O_CLOEXEC)
        };
        // SAFETY: as dup3 (macOS has none), then close-on-exec again
        // (dup2 clears it on the new number).
        #[cfg(target_os = "macos")]
        unsafe {
            if libc::dup2(dead, owner) == owner {
                libc::fcntl(owner, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
}
