//! The spawn options a child applies to itself between clone and exec
//! (credentials, limits, session, kept descriptors), prepared in the parent
//! as plain numbers so the child only makes raw system calls on them.

use std::io;
#[cfg(unix)]
use std::os::fd::FromRawFd;
use std::sync::Arc;

#[cfg(unix)]
use libc::{c_int, c_ulong, gid_t, mode_t, uid_t};

use super::{OwnedFd, RawFd};

/// Windows has none of these: the numbers keep their Unix widths there, and
/// every spawn option is refused before one is used (`SpawnOptions::prepare`).
#[cfg(windows)]
#[allow(non_camel_case_types)]
mod win_types {
    pub type c_int = i32;
    pub type c_ulong = u32;
    pub type gid_t = u32;
    pub type mode_t = u32;
    pub type uid_t = u32;
}
#[cfg(windows)]
use win_types::{c_int, c_ulong, gid_t, mode_t, uid_t};

use super::step::{IoClass, Resource};

/// Everything a child sets on itself before exec, beyond stdio, directory
/// and placement. The default changes nothing.
#[derive(Default)]
pub(crate) struct ChildSetup {
    /// `setsid()`: the child leads a new session (and process group).
    pub setsid: bool,
    /// `ioctl(0, TIOCSCTTY)` after `setsid`: its stdin (a terminal) becomes
    /// the new session's controlling terminal (pty sessions).
    pub ctty: bool,
    /// `setrlimit(resource, {soft, hard})`, in order.
    pub rlimits: Vec<Rlimit>,
    /// `setpriority(PRIO_PROCESS, 0, nice)`.
    pub nice: Option<c_int>,
    /// `umask(mode)`.
    pub umask: Option<mode_t>,
    /// `setgroups(list)`; with `uid` set and this `None`, the supplementary
    /// groups are cleared (best effort), so a dropped child does not keep
    /// the owner's groups.
    pub groups: Option<Vec<gid_t>>,
    /// `setresgid(gid, gid, gid)`.
    pub gid: Option<gid_t>,
    /// `setresuid(uid, uid, uid)`.
    pub uid: Option<uid_t>,
    /// (source, target): the child `dup2`s each source onto its target.
    /// Every source is a close-on-exec duplicate numbered as no target
    /// ([`dup_off_targets`]), so no `dup2` overwrites a source still to be
    /// used.
    pub keep: Vec<(OwnedFd, RawFd)>,
    /// `ioprio_set(IOPRIO_WHO_PROCESS, 0, value)`.
    pub ioprio: Option<c_int>,
    /// `sched_setaffinity(0, mask)`: one bit per CPU.
    pub cpus: Option<Vec<c_ulong>>,
    /// The caller's hooks, run last before exec; any forces a forked child.
    pub pre_exec: Vec<PreExecHook>,
}

impl ChildSetup {
    /// The ids the child takes (user, group, supplementary groups).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn ids(&self) -> super::ChildIds<'_> {
        super::ChildIds {
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.as_deref(),
        }
    }
}

impl std::fmt::Debug for ChildSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSetup")
            .field("setsid", &self.setsid)
            .field("ctty", &self.ctty)
            .field("rlimits", &self.rlimits.len())
            .field("uid", &self.uid)
            .field("keep", &self.keep.len())
            .field("pre_exec", &self.pre_exec.len())
            .finish_non_exhaustive()
    }
}

/// One resource limit as the child applies it: the kernel's resource
/// number, soft and hard limit. Three 64-bit words, no padding (the
/// portable backend sends them to its trampoline as they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Rlimit {
    pub resource: i64,
    pub soft: u64,
    pub hard: u64,
}

/// A hook given to [`Command::pre_exec`](crate::Command::pre_exec).
pub(crate) type PreExecHook = Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

#[cfg(unix)]
/// A close-on-exec duplicate of the caller's `fd`, numbered `min` or above.
/// `EBADF` when `fd` is not open.
pub(crate) fn dup_above(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // Raw: `fd` may not be open (EBADF is the answer), which a BorrowedFd for rustix's
    // fcntl_dupfd_cloexec may not hold.
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) only reads the descriptor table; an fd
    // that is not open is reported as EBADF. The new descriptor is ours.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just created by fcntl and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

#[cfg(unix)]
/// The kernel's number for a resource.
pub(crate) fn resource_number(r: Resource) -> c_int {
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const NONE: c_int = -1;
    (match r {
        Resource::Nofile => libc::RLIMIT_NOFILE,
        Resource::Core => libc::RLIMIT_CORE,
        Resource::Cpu => libc::RLIMIT_CPU,
        // OpenBSD has no address-space limit (getrlimit(2)).
        Resource::As => {
            #[cfg(not(target_os = "openbsd"))]
            {
                libc::RLIMIT_AS
            }
            #[cfg(target_os = "openbsd")]
            {
                NONE as _
            }
        }
        Resource::Nproc => libc::RLIMIT_NPROC,
        Resource::Fsize => libc::RLIMIT_FSIZE,
        Resource::Stack => libc::RLIMIT_STACK,
        Resource::Data => libc::RLIMIT_DATA,
        Resource::Memlock => libc::RLIMIT_MEMLOCK,
        Resource::Rss => libc::RLIMIT_RSS,
        Resource::Locks => {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                libc::RLIMIT_LOCKS
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            {
                NONE as _
            }
        }
        Resource::Sigpending => {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                libc::RLIMIT_SIGPENDING
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            {
                NONE as _
            }
        }
        Resource::Msgqueue => {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                libc::RLIMIT_MSGQUEUE
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            {
                NONE as _
            }
        }
        Resource::Nice => {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                libc::RLIMIT_NICE
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            {
                NONE as _
            }
        }
        Resource::Rtprio => {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                libc::RLIMIT_RTPRIO
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            {
                NONE as _
            }
        }
        Resource::Rttime => {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                libc::RLIMIT_RTTIME
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            {
                NONE as _
            }
        }
    }) as c_int
}

#[cfg(unix)]
/// A close-on-exec duplicate of the caller's `fd` on the lowest free
/// number from 3 on that is none of `targets` (a child's `keep_fds`
/// targets: its `dup2`s then never overwrite a source still to be used),
/// so a target just below the descriptor limit leaves room. `EBADF` when
/// `fd` is not open, `EMFILE` when no such number is free.
pub(crate) fn dup_off_targets(fd: RawFd, targets: &[RawFd]) -> io::Result<OwnedFd> {
    let mut floor = 3;
    // Each round steps over one more target: at most `targets.len()` + 1.
    loop {
        let copy = dup_above(fd, floor)?;
        let at = std::os::fd::AsRawFd::as_raw_fd(&copy);
        if !targets.contains(&at) {
            return Ok(copy);
        }
        // Closed (the number stays free for the target); look above it.
        floor = at + 1;
    }
}

/// Windows has no descriptor numbers to keep: `keep_fds` is refused there.
#[cfg(windows)]
pub(crate) fn dup_off_targets(fd: RawFd, _targets: &[RawFd]) -> io::Result<OwnedFd> {
    dup_above(fd, 0)
}

/// Windows has no descriptor numbers to keep: `keep_fds` is refused there.
#[cfg(windows)]
pub(crate) fn dup_above(_fd: RawFd, _min: RawFd) -> io::Result<OwnedFd> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "Windows has no file descriptor numbers to keep",
    ))
}

/// Windows has no resource limits of this kind: `SpawnOptions::prepare`
/// refuses them before asking for a number.
#[cfg(windows)]
pub(crate) fn resource_number(_r: Resource) -> c_int {
    -1
}

/// The `ioprio_set` value of a class and level (`IOPRIO_PRIO_VALUE`).
pub(crate) fn ioprio_value(class: IoClass, level: u8) -> c_int {
    let (class, level) = match class {
        IoClass::RealTime => (1, level),
        IoClass::BestEffort => (2, level),
        IoClass::Idle => (3, 0),
    };
    (class << 13) | c_int::from(level)
}

/// A CPU affinity mask with the bits of `cpus` set (each below 65536).
pub(crate) fn cpu_mask(cpus: &[usize]) -> Vec<c_ulong> {
    let bits = c_ulong::BITS as usize;
    let max = cpus.iter().copied().max().unwrap_or(0);
    let mut mask = vec![0 as c_ulong; max / bits + 1];
    for &c in cpus {
        mask[c / bits] |= 1 << (c % bits);
    }
    mask
}
