//! `PIDFD_GET_INFO` (Linux 6.13): what a pidfd tells of its process without
//! `/proc` (its cgroup v2 id; from Linux 6.15 the exit status of a process
//! the kernel reaped).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `struct pidfd_info` as of its first version (64 bytes, `exit_code`
/// included).
#[repr(C)]
#[derive(Default)]
pub(super) struct PidfdInfo {
    /// On the way in, what is asked for (`PIDFD_INFO_*`); on the way out,
    /// what was given.
    pub mask: u64,
    /// The id of the process's cgroup v2 (the inode number of its cgroup's
    /// directory), with [`PIDFD_INFO_CGROUPID`].
    pub cgroupid: u64,
    ids: [u32; 11],
    /// The wait status, with [`PIDFD_INFO_EXIT`].
    pub exit_code: i32,
}

/// `PIDFD_GET_INFO`: `_IOWR(0xFF, 11, struct pidfd_info)`.
const PIDFD_GET_INFO: libc::c_ulong = (3 << 30) | (64 << 16) | (0xFF << 8) | 11;
/// The `mask` bit asking for (and reporting) the cgroup v2 id.
pub(super) const PIDFD_INFO_CGROUPID: u64 = 1 << 2;
/// The `mask` bit asking for (and reporting) the exit status.
pub(super) const PIDFD_INFO_EXIT: u64 = 1 << 3;

/// What `pidfd`'s process is, as far as `mask` asks (the answer's `mask`
/// says what the kernel gave). `ENOTTY`/`EINVAL` where the kernel has no
/// `PIDFD_GET_INFO` (before 6.13), `ESRCH` for a reaped process whose
/// exit status is not kept.
pub(super) fn pidfd_info(pidfd: BorrowedFd<'_>, mask: u64) -> io::Result<PidfdInfo> {
    let mut info = PidfdInfo {
        mask,
        ..PidfdInfo::default()
    };
    // Raw: rustix has no PIDFD_GET_INFO (only its generic, unsafe ioctl).
    // SAFETY: PIDFD_GET_INFO fills at most size_of::<PidfdInfo>() (the
    // size encoded in the request) bytes of `info`, which is ours.
    let rc = unsafe {
        libc::ioctl(
            pidfd.as_raw_fd(),
            PIDFD_GET_INFO as _,
            &mut info as *mut PidfdInfo,
        )
    };
    if rc == 0 {
        Ok(info)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether an error of [`pidfd_info`] says the kernel has no such request.
pub(super) fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTTY) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
    )
}
