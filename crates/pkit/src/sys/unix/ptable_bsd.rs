//! The process table on DragonFly, NetBSD and OpenBSD, as their `ps`
//! reads it: one record per process from the `kern.proc` sysctl
//! (NetBSD's `kern.proc2`), by process group or by pid. Type-checked in
//! CI, not run there.
//!
//! DragonFly's names are FreeBSD's four (`CTL_KERN`, `KERN_PROC`, what,
//! id) and its records `kinfo_proc`; NetBSD (`kinfo_proc2`) and OpenBSD
//! (`kinfo_proc`) add two more: the size of one record and how many the
//! buffer holds (libkvm's `kvm_getproc2`/`kvm_getprocs` ask the same
//! way: first the size, then the records).
//!
//! A zombie: DragonFly's `kp_stat` is `SZOMB`; NetBSD's `p_stat` is one
//! of `SDYING`, `SZOMB`, `SDEAD` (its `P_ZOMBIE`, sys/proc.h); OpenBSD's
//! process flags carry `PS_ZOMBIE` (its `p_stat` is a thread's, and its
//! `SZOMB` is unused).

use std::io;

use libc::c_int;

use super::ptable::Entry;

#[cfg(any(target_os = "dragonfly", target_os = "openbsd"))]
type Record = libc::kinfo_proc;
#[cfg(target_os = "netbsd")]
type Record = libc::kinfo_proc2;

/// NetBSD's process states that are no longer running (sys/proc.h).
#[cfg(target_os = "netbsd")]
const NETBSD_GONE: [i8; 3] = [3 /* SDYING */, 5 /* SZOMB */, 6 /* SDEAD */];
/// OpenBSD's process flag of a zombie (sys/proc.h).
#[cfg(target_os = "openbsd")]
const PS_ZOMBIE: u32 = 0x0004_0000;

/// The sysctl name for records of kind `what` (`KERN_PROC_PGRP`,
/// `KERN_PROC_PID`, `KERN_PROC_ALL`) about `id` (DragonFly's has no room count).
#[cfg(target_os = "dragonfly")]
fn name(what: c_int, id: i32, _count: usize) -> Vec<c_int> {
    vec![libc::CTL_KERN, libc::KERN_PROC, what, id]
}

/// The sysctl name for records of kind `what` (`KERN_PROC_PGRP`,
/// `KERN_PROC_PID`) about `id`, room for `count` of them.
#[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
fn name(what: c_int, id: i32, count: usize) -> Vec<c_int> {
    #[cfg(target_os = "netbsd")]
    let table = libc::KERN_PROC2;
    #[cfg(target_os = "openbsd")]
    let table = libc::KERN_PROC;
    let each = std::mem::size_of::<Record>() as c_int;
    let count = c_int::try_from(count).unwrap_or(c_int::MAX);
    vec![libc::CTL_KERN, table, what, id, each, count]
}

/// The records of kind `what` about `id`.
fn query(what: c_int, id: i32) -> io::Result<Vec<Record>> {
    let each = std::mem::size_of::<Record>();
    for _ in 0..8 {
        let mib = name(what, id, 0);
        let mut size: libc::size_t = 0;
        // Raw: the BSDs' process table (sysctl kern.proc): no rustix form.
        // SAFETY: a size query: null buffer, the size written to ours.
        let rc = unsafe {
            libc::sysctl(
                mib.as_ptr(),
                mib.len() as libc::c_uint,
                std::ptr::null_mut(),
                &mut size,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let room = size / each + 4;
        let mib = name(what, id, room);
        let mut buf: Vec<Record> = Vec::with_capacity(room);
        let mut len = room * each;
        // Raw: as above.
        // SAFETY: the buffer has room for `len` bytes of records, and the
        // name asks for at most `room` of them.
        let rc = unsafe {
            libc::sysctl(
                mib.as_ptr(),
                mib.len() as libc::c_uint,
                buf.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null_mut(),
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
        // SAFETY: the kernel filled `len` bytes: whole records of plain
        // data (DragonFly's state is one of its `procstat` values).
        unsafe { buf.set_len((len / each).min(room)) };
        return Ok(buf);
    }
    Err(io::Error::from_raw_os_error(libc::ENOMEM))
}

/// A record's process, whether it has exited (a zombie), and its name.
#[cfg(target_os = "dragonfly")]
fn read(r: &Record) -> (Entry, bool, &[libc::c_char]) {
    let e = Entry {
        pid: r.kp_pid,
        ppid: r.kp_ppid,
        pgid: r.kp_pgid,
    };
    (
        e,
        r.kp_stat as u32 == libc::procstat::SZOMB as u32,
        &r.kp_comm,
    )
}

/// A record's process, whether it has exited (a zombie), and its name.
#[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
fn read(r: &Record) -> (Entry, bool, &[libc::c_char]) {
    let e = Entry {
        pid: r.p_pid,
        ppid: r.p_ppid,
        pgid: r.p__pgid,
    };
    #[cfg(target_os = "netbsd")]
    let zombie = NETBSD_GONE.contains(&r.p_stat);
    #[cfg(target_os = "openbsd")]
    let zombie = r.p_psflags & PS_ZOMBIE != 0;
    (e, zombie, &r.p_comm)
}

/// A record's session id.
fn sid_of(r: &Record) -> i32 {
    #[cfg(target_os = "dragonfly")]
    return r.kp_sid;
    #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
    return r.p_sid;
}

/// The live (non-zombie) processes in session `sid`, once each: every
/// process (`KERN_PROC_ALL`), filtered on the record's session id. Not
/// `KERN_PROC_SESSION`, which these match on the session leader's pid:
/// nothing once the leader has exited, which is when it matters.
pub(crate) fn session_entries(sid: i32) -> io::Result<Vec<Entry>> {
    let mut out: Vec<Entry> = Vec::new();
    for r in query(libc::KERN_PROC_ALL, 0)? {
        let (e, zombie, _) = read(&r);
        if !zombie && sid_of(&r) == sid && !out.iter().any(|o| o.pid == e.pid) {
            out.push(e);
        }
    }
    Ok(out)
}

/// The live (non-zombie) processes in process group `pgid`, once each.
pub(crate) fn entries(pgid: i32) -> io::Result<Vec<Entry>> {
    let mut out: Vec<Entry> = Vec::new();
    for r in query(libc::KERN_PROC_PGRP, pgid)? {
        let (e, zombie, _) = read(&r);
        if !zombie && e.pgid == pgid && !out.iter().any(|o| o.pid == e.pid) {
            out.push(e);
        }
    }
    Ok(out)
}

/// Whether `pid` has exited (a zombie), and its process group; `None` when
/// no process has that number.
pub(crate) fn pgid_of(pid: i32) -> Option<(bool, i32)> {
    let r = query(libc::KERN_PROC_PID, pid).ok()?.into_iter().next()?;
    let (e, zombie, _) = read(&r);
    (e.pid == pid).then_some((zombie, e.pgid))
}

/// `pid`'s command name.
pub(crate) fn comm(pid: i32) -> Option<String> {
    let r = query(libc::KERN_PROC_PID, pid).ok()?.into_iter().next()?;
    let (e, _, name) = read(&r);
    if e.pid != pid {
        return None;
    }
    let bytes: Vec<u8> = name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
