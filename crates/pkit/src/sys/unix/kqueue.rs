//! Exit notification on macOS and the BSDs: a kqueue with one
//! `EVFILT_PROC` / `NOTE_EXIT` filter for the child (kqueue(2) documents
//! both on FreeBSD, DragonFly, NetBSD and OpenBSD as on macOS), whose
//! descriptor polls readable once the child has exited, so it can sit in
//! tokio's reactor like a Linux pidfd. Where it can't be made, waits fall
//! back to the SIGCHLD waiter.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// A kqueue that turns readable when `pid` exits; `Ok(None)` when the
/// process is already gone (nothing left to watch: its status is there).
pub(crate) fn exit_watch(pid: i32) -> io::Result<Option<OwnedFd>> {
    // Raw: rustix's kevent is unsafe as well (its events carry a user pointer); the two calls stay
    // together on the raw fd. macOS and the BSDs only.
    // SAFETY: kqueue(2) returns a new descriptor or -1.
    let raw = unsafe { libc::kqueue() };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` was just created and nothing else owns it.
    let kq = unsafe { OwnedFd::from_raw_fd(raw) };
    rustix::io::fcntl_setfd(&kq, rustix::io::FdFlags::CLOEXEC)?;
    // SAFETY: a zeroed kevent is a valid empty record; the fields set are
    // plain integers.
    let mut ev: libc::kevent = unsafe { std::mem::zeroed() };
    ev.ident = pid as _;
    ev.filter = libc::EVFILT_PROC;
    ev.flags = libc::EV_ADD | libc::EV_ONESHOT;
    ev.fflags = libc::NOTE_EXIT;
    // SAFETY: one change record of ours, no event buffer, no timeout.
    let rc = unsafe { libc::kevent(raw, &ev, 1, std::ptr::null_mut(), 0, std::ptr::null()) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ESRCH) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(kq))
}
