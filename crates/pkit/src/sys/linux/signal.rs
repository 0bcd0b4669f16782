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
    match pidfd_signal_raw(pidfd, sig, flags) {
        0 | libc::ESRCH => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// `pidfd_send_signal(2)`: 0 or the errno.
pub(crate) fn pidfd_signal_raw(pidfd: BorrowedFd<'_>, sig: i32, flags: libc::c_uint) -> i32 {
    // Raw: the process-group pidfd flag (PIDFD_SIGNAL_PROCESS_GROUP): rustix's
    // pidfd_send_signal takes no flags, nor a real-time signal without unsafe.
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
        0
    } else {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    }
}

/// Whether this kernel signals a process group through its leader's pidfd
/// (`PIDFD_SIGNAL_PROCESS_GROUP`, Linux 6.9), asked once: signal 0 through
/// our own pidfd to the group our pid would lead delivers nothing, and
/// answers 0 or `ESRCH` where the flag is known, `EINVAL` where not.
pub(crate) fn exact_pgroup_signals() -> bool {
    // Not a `OnceLock`: see `CopyOnce`.
    static EXACT: crate::sys::CopyOnce<bool> = crate::sys::CopyOnce::new();
    *EXACT.get_or_init(|| {
        let me = rustix::process::getpid();
        let Ok(fd) = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty()) else {
            return false;
        };
        use std::os::fd::AsFd;
        matches!(
            pidfd_signal_raw(fd.as_fd(), 0, PIDFD_SIGNAL_PROCESS_GROUP),
            0 | libc::ESRCH
        )
    })
}

/// Whether `tid` is the id of one of this process's threads (the main one
/// included), asked of the kernel: `tgkill(getpid(), tid, 0)`, which checks
/// without signalling and needs no `/proc` (absent, or another pid
/// namespace's, in some containers). 0: a thread of ours; `ESRCH`: none;
/// `EINVAL`: not an id. Any other answer (a seccomp filter or LSM that
/// refuses `tgkill`: `EPERM`, `EACCES`, `ENOSYS`) says nothing of the
/// thread: then `/proc/self/task` answers where it is this process's, and
/// where it is not, `Err` with the kernel's refusal (never "not ours").
pub(crate) fn is_own_thread(tid: u32) -> io::Result<bool> {
    let Ok(tid) = libc::pid_t::try_from(tid) else {
        return Ok(false);
    };
    if tid <= 0 {
        return Ok(false);
    }
    // Raw: rustix has no tgkill.
    // SAFETY: tgkill takes two ids and a signal number by value; signal 0
    // only checks that the thread exists in the thread group.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, 0) };
    if rc == 0 {
        return Ok(true);
    }
    let refused = io::Error::last_os_error();
    match refused.raw_os_error() {
        Some(libc::ESRCH | libc::EINVAL) => Ok(false),
        _ => own_thread_in_proc(tid).ok_or(refused),
    }
}

/// Whether `/proc/self/task` lists thread `tid`, where that `/proc` is
/// this process's: it names the calling thread by this process's own ids
/// (`/proc/thread-self` is `<getpid>/task/<gettid>`, and that task is
/// listed). `None` where it is not (absent, another pid namespace's, or
/// its task list hidden).
fn own_thread_in_proc(tid: libc::pid_t) -> Option<bool> {
    // SAFETY: getpid and gettid take no arguments and cannot fail.
    let (me, caller) = unsafe { (libc::getpid(), libc::syscall(libc::SYS_gettid)) };
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    if link.as_os_str() != format!("{me}/task/{caller}").as_str() {
        return None;
    }
    let listed = |t: i64| std::path::Path::new(&format!("/proc/self/task/{t}")).exists();
    if !listed(caller) {
        return None;
    }
    // A task directory is found only for a thread of the group it is in.
    Some(listed(i64::from(tid)))
}
