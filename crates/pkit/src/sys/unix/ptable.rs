//! The process table, as the process-group mechanism needs it: which live
//! processes are in a process group, their parents, their names. Linux
//! reads `/proc`; macOS asks libproc (`proc_listpids`, `proc_pidinfo`);
//! FreeBSD the `kern.proc.pgrp` sysctl; DragonFly, NetBSD and OpenBSD
//! theirs (`ptable_bsd.rs`).

use std::io;

/// One live (non-zombie) process: pid, parent pid, process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(target_os = "linux", allow(dead_code))]
pub(crate) struct Entry {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use crate::sys::linux::procfs;

    pub(crate) fn members(pgid: i32) -> io::Result<Vec<i32>> {
        procfs::pgroup_members(pgid)
    }

    pub(crate) fn running_members(pgid: i32) -> io::Result<Vec<i32>> {
        procfs::pgroup_members(pgid)
    }

    pub(crate) fn descendants(pgid: i32, root: i32) -> io::Result<Vec<i32>> {
        procfs::pgroup_descendants(pgid, root)
    }

    pub(crate) fn pgid_of(pid: i32) -> Option<(bool, i32)> {
        let pgid = crate::sys::unix::pgroup::group_of(pid)?;
        Some((procfs::exited(pid), pgid))
    }

    pub(crate) fn comm(pid: i32) -> Option<String> {
        procfs::comm(pid)
    }
}

#[cfg(target_os = "macos")]
mod imp {
    use super::*;

    /// `proc_pidinfo(PROC_PIDTBSDINFO)`; `None` once the process is gone.
    /// One system call into a stack buffer, no allocation: the portable
    /// guard's async-signal-safe loop reads a leader's start time with it.
    pub(crate) fn info(pid: i32) -> Option<libc::proc_bsdinfo> {
        let mut info = std::mem::MaybeUninit::<libc::proc_bsdinfo>::zeroed();
        let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
        // Raw: macOS's process table: no rustix form.
        // SAFETY: proc_pidinfo writes at most `size` bytes into our buffer.
        let n = unsafe {
            libc::proc_pidinfo(
                pid,
                libc::PROC_PIDTBSDINFO,
                0,
                info.as_mut_ptr().cast(),
                size,
            )
        };
        // SAFETY: filled completely when the call returns its size.
        (n == size).then(|| unsafe { info.assume_init() })
    }

    pub(crate) fn entries(pgid: i32) -> io::Result<Vec<Entry>> {
        let mut pids = vec![0 as libc::pid_t; 256];
        loop {
            let bytes = (pids.len() * std::mem::size_of::<libc::pid_t>()) as libc::c_int;
            // Raw: macOS's process table: no rustix form.
            // SAFETY: the buffer holds `bytes` bytes of pids.
            let n = unsafe { libc::proc_listpgrppids(pgid, pids.as_mut_ptr().cast(), bytes) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let count = n as usize / std::mem::size_of::<libc::pid_t>();
            if count < pids.len() {
                pids.truncate(count);
                break;
            }
            pids.resize(pids.len() * 2, 0);
        }
        Ok(pids
            .into_iter()
            .filter(|&p| p > 0)
            .filter_map(info)
            .filter(|i| i.pbi_status != libc::SZOMB && i.pbi_pgid as i32 == pgid)
            .map(|i| Entry {
                pid: i.pbi_pid as i32,
                ppid: i.pbi_ppid as i32,
                pgid: i.pbi_pgid as i32,
            })
            .collect())
    }

    pub(crate) fn pgid_of(pid: i32) -> Option<(bool, i32)> {
        info(pid).map(|i| (i.pbi_status == libc::SZOMB, i.pbi_pgid as i32))
    }

    pub(crate) fn comm(pid: i32) -> Option<String> {
        let i = info(pid)?;
        let bytes: Vec<u8> = i
            .pbi_comm
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(target_os = "freebsd")]
mod imp {
    use super::*;

    /// `kern.proc.pgrp.<pgid>` (or `kern.proc.pid.<pid>`): one
    /// `kinfo_proc` per process.
    fn query(what: libc::c_int, id: i32) -> io::Result<Vec<libc::kinfo_proc>> {
        let mib = [libc::CTL_KERN, libc::KERN_PROC, what, id];
        loop {
            let mut size: libc::size_t = 0;
            // Raw: FreeBSD's process table (sysctl kern.proc): no rustix form.
            // SAFETY: a size query: null buffer, the size written to ours.
            let rc = unsafe {
                libc::sysctl(
                    mib.as_ptr(),
                    mib.len() as libc::c_uint,
                    std::ptr::null_mut(),
                    &mut size,
                    std::ptr::null(),
                    0,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            let each = std::mem::size_of::<libc::kinfo_proc>();
            let mut buf: Vec<libc::kinfo_proc> = Vec::with_capacity(size / each + 4);
            let mut len = buf.capacity() * each;
            // Raw: as above.
            // SAFETY: the buffer has room for `len` bytes of kinfo_proc.
            let rc = unsafe {
                libc::sysctl(
                    mib.as_ptr(),
                    mib.len() as libc::c_uint,
                    buf.as_mut_ptr().cast(),
                    &mut len,
                    std::ptr::null(),
                    0,
                )
            };
            if rc != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENOMEM) {
                    continue; // grew meanwhile
                }
                return Err(e);
            }
            // SAFETY: the kernel filled `len` bytes: whole records.
            unsafe { buf.set_len(len / each) };
            return Ok(buf);
        }
    }

    pub(crate) fn entries(pgid: i32) -> io::Result<Vec<Entry>> {
        Ok(query(libc::KERN_PROC_PGRP, pgid)?
            .into_iter()
            .filter(|k| k.ki_stat != libc::SZOMB && k.ki_pgid == pgid)
            .map(|k| Entry {
                pid: k.ki_pid,
                ppid: k.ki_ppid,
                pgid: k.ki_pgid,
            })
            .collect())
    }

    pub(crate) fn pgid_of(pid: i32) -> Option<(bool, i32)> {
        let k = query(libc::KERN_PROC_PID, pid).ok()?.into_iter().next()?;
        Some((k.ki_stat == libc::SZOMB, k.ki_pgid))
    }

    pub(crate) fn comm(pid: i32) -> Option<String> {
        let k = query(libc::KERN_PROC_PID, pid).ok()?.into_iter().next()?;
        let bytes: Vec<u8> = k
            .ki_comm
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(any(target_os = "dragonfly", target_os = "netbsd", target_os = "openbsd"))]
use super::ptable_bsd as imp;

#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
mod imp {
    use super::*;

    pub(crate) fn entries(_pgid: i32) -> io::Result<Vec<Entry>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "listing a process group's members is not implemented on {}",
                std::env::consts::OS
            ),
        ))
    }

    pub(crate) fn pgid_of(_pid: i32) -> Option<(bool, i32)> {
        None
    }

    pub(crate) fn comm(_pid: i32) -> Option<String> {
        None
    }
}

#[cfg(target_os = "macos")]
pub(crate) use imp::info;
pub(crate) use imp::{comm, pgid_of};

/// The live (non-zombie) members of process group `pgid`.
#[cfg(target_os = "linux")]
pub(crate) fn members(pgid: i32) -> io::Result<Vec<i32>> {
    imp::members(pgid)
}

/// The live (non-zombie) members of process group `pgid`.
#[cfg(not(target_os = "linux"))]
pub(crate) fn members(pgid: i32) -> io::Result<Vec<i32>> {
    Ok(imp::entries(pgid)?.into_iter().map(|e| e.pid).collect())
}

/// [`members`], by the cheapest scan there is (made for the end of every
/// run under this mechanism).
pub(crate) fn running_members(pgid: i32) -> io::Result<Vec<i32>> {
    #[cfg(target_os = "linux")]
    return imp::running_members(pgid);
    #[cfg(not(target_os = "linux"))]
    members(pgid)
}

/// Live members of `pgid` descended from `root` (itself included), by
/// parent links among the members: one whose parent exited first was
/// re-parented and is not found.
#[cfg(target_os = "linux")]
pub(crate) fn descendants(pgid: i32, root: i32) -> io::Result<Vec<i32>> {
    imp::descendants(pgid, root)
}

/// Live members of `pgid` descended from `root` (itself included), by
/// parent links among the members: one whose parent exited first was
/// re-parented and is not found.
#[cfg(not(target_os = "linux"))]
pub(crate) fn descendants(pgid: i32, root: i32) -> io::Result<Vec<i32>> {
    let members = imp::entries(pgid)?;
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(members.iter().filter(|e| e.ppid == parent).map(|e| e.pid));
        i += 1;
    }
    Ok(found)
}

/// Whether `pid` is still a live member of `pgid` (not exited, not a
/// zombie, not a reused number now in another group).
pub(crate) fn is_live_member(pid: i32, pgid: i32) -> bool {
    matches!(pgid_of(pid), Some((false, g)) if g == pgid)
}
