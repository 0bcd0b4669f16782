//! The process-group mechanism: every child of a group joins one POSIX
//! process group, and teardown is `killpg`.
//!
//! A process group is weaker than a cgroup: a descendant that calls
//! `setsid` (or `setpgid`) leaves it and survives the group's teardown.
//!
//! # Why the group id is never recycled under us
//!
//! The first child becomes the group leader; its pid is the pgid. The leader
//! is never reaped while the group is live (waits use `WNOWAIT`, and the
//! group keeps the leader's handle), so its pid, and thus the pgid, stays
//! allocated: the kernel does not hand out a pid while a zombie holds it.
//! Only after `killpg` at teardown does the group release the leader.
//!
//! If the owner itself dies, init reaps the leader; the owner-death guard
//! therefore signals the group through the leader's pidfd rather than by
//! number (see `sys/guard.rs`).

use std::io;

/// `killpg(pgid, sig)`; `ESRCH` (no member left) is not an error.
pub(crate) fn killpg(pgid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: killpg(2) has no memory-safety preconditions.
    let rc = unsafe { libc::killpg(pgid, sig) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}
