//! Sending signals to single processes: always through a pidfd, never by
//! pid number (a number can be reused once its process is reaped).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `pidfd_send_signal(2)`. A process that has already exited (`ESRCH`) is
/// not an error: the signal had nothing left to do.
pub(crate) fn pidfd_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    pidfd_signal_flags(pidfd, sig, 0)
}

/// `PIDFD_SIGNAL_PROCESS_GROUP` (linux/pidfd.h, Linux 6.9): signal the
/// process group the pidfd's process leads.
pub(crate) const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;

/// [`pidfd_signal`] with `flags` (`PIDFD_SIGNAL_*`; `EINVAL` where the
/// kernel does not know them).
pub(crate) fn pidfd_signal_flags(
    pidfd: BorrowedFd<'_>,
    sig: i32,
    flags: libc::c_uint,
) -> io::Result<()> {
    // SAFETY: pidfd_send_signal takes an fd we borrow for the call, a signal
    // number, a null siginfo (meaning "as kill(2) would") and flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            flags,
        )
    };
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
