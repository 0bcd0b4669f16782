//! `waitid(P_PID, pid, WEXITED | WNOHANG | WNOWAIT)` through the C library
//! on NetBSD and OpenBSD: rustix has no `waitid` for OpenBSD, and on NetBSD
//! its status has no accessors (nor does the libc crate's `siginfo_t`
//! there). Type-checked in CI, not run.

use std::io;

use libc::c_int;

/// The `si_code` (`CLD_EXITED`, `CLD_KILLED`, …) and `si_status` of our
/// child `pid` if it has ended, without reaping it; `Ok(None)` while it
/// runs.
pub(crate) fn peek_exit(pid: i32) -> io::Result<Option<(c_int, c_int)>> {
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::ECHILD));
    }
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
    let options = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    loop {
        // Raw: see the module's docs.
        // SAFETY: waitid(2) writes at most one siginfo_t into ours.
        let rc =
            unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, info.as_mut_ptr(), options) };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    // SAFETY: zeroed, then (perhaps) filled by the kernel: plain data.
    let info = unsafe { info.assume_init() };
    let (child, code, status) = fields(&info);
    // WNOHANG with nothing to report leaves the pid 0 (POSIX).
    Ok((child != 0).then_some((code, status)))
}

/// The pid, code and status of a SIGCHLD `siginfo_t`: NetBSD's own layout
/// (sys/siginfo.h: number, code, errno, padding on LP64, then the child's
/// pid, uid and status).
#[cfg(target_os = "netbsd")]
fn fields(info: &libc::siginfo_t) -> (libc::pid_t, c_int, c_int) {
    #[repr(C)]
    struct ChildInfo {
        _signo: c_int,
        code: c_int,
        _errno: c_int,
        #[cfg(target_pointer_width = "64")]
        _pad: c_int,
        pid: libc::pid_t,
        _uid: libc::uid_t,
        status: c_int,
    }
    // SAFETY: `ChildInfo` is the head of NetBSD's siginfo_t for SIGCHLD,
    // all plain integers, and smaller than the libc crate's siginfo_t.
    let c = unsafe { &*(info as *const libc::siginfo_t).cast::<ChildInfo>() };
    (c.pid, c.code, c.status)
}

/// The pid, code and status of a SIGCHLD `siginfo_t` (the libc crate's
/// accessors for OpenBSD).
#[cfg(target_os = "openbsd")]
fn fields(info: &libc::siginfo_t) -> (libc::pid_t, c_int, c_int) {
    // SAFETY: a SIGCHLD siginfo_t (or a zeroed one), whose child fields
    // these read.
    unsafe { (info.si_pid(), info.si_code(), info.si_status()) }
}
