//! Whether pkit's process group is orphaned, as POSIX defines it: no
//! member has a parent in another process group of the same session, so
//! no job-control shell could continue the group once stopped. The kernel
//! discards SIGTSTP, SIGTTIN and SIGTTOU sent to a process of such a group
//! whose action is the default (`setsid sleep 300` goes on after a
//! `kill -TSTP`); pkit, which catches them, drops them the same way
//! (`forward.rs`).

use rustix::process::{getpid, getppid};

/// Whether pkit's process group is orphaned. pkit's own parent answers
/// first (the usual case: a shell's job); on Linux the other members'
/// parents are read from `/proc` (pkit started in a shell script's group,
/// `sh -c 'pkit run … & wait'`: the script's parent keeps the group
/// unorphaned). Without `/proc`, a group whose other members are unknown
/// is taken for orphaned only when pkit leads its session (`setsid pkit
/// run …`, whose group has no member outside pkit's tree, in practice);
/// otherwise it is not (a stop signal stops, as before). Nor is a group
/// or session whose leader is outside pkit's pid namespace (numbered 0
/// here: it can't be told from another such).
pub fn own_group_orphaned() -> bool {
    let (Some(pgrp), Some(sid)) = (group_of(0), session_of(0)) else {
        return false;
    };
    if pgrp == 0 || sid == 0 {
        return false;
    }
    let ppid = getppid().map_or(0, |p| p.as_raw_nonzero().get());
    if keeps_unorphaned(ppid, pgrp, sid) {
        return false;
    }
    others_orphaned(pgrp, sid)
}

/// The signal that stopped `pid`, a child of pkit, while it is stopped:
/// `waitid(WSTOPPED | WNOHANG | WNOWAIT)`, which leaves the stop (and any
/// exit) to be collected by the child's own waiter. `None` when it is not
/// stopped, or can't be asked.
#[cfg(not(any(target_os = "netbsd", target_os = "openbsd")))]
pub fn stop_signal(pid: u32) -> Option<i32> {
    use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
    let pid = Pid::from_raw(i32::try_from(pid).ok()?)?;
    let options = WaitIdOptions::STOPPED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    match waitid(WaitId::Pid(pid), options) {
        Ok(Some(status)) => status.stopping_signal(),
        _ => None,
    }
}

/// Whether `pid`, a child of pkit not yet reaped, has exited:
/// `waitid(WEXITED | WNOHANG | WNOWAIT)`, which leaves the exit to be
/// collected by the child's own waiter. False when it can't be asked (not
/// pkit's child, or NetBSD and OpenBSD).
#[cfg(not(any(target_os = "netbsd", target_os = "openbsd")))]
pub fn exited(pid: u32) -> bool {
    use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    matches!(waitid(WaitId::Pid(pid), options), Ok(Some(_)))
}

/// [`exited`] where rustix has no `waitid` to ask: never known.
#[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
pub fn exited(_pid: u32) -> bool {
    false
}

/// [`stop_signal`] on NetBSD and OpenBSD, through the C library: rustix
/// has no `waitid` for OpenBSD, and on NetBSD its status has no accessors
/// (nor the libc crate's `siginfo_t`). Type-checked in CI, not run.
#[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
pub fn stop_signal(pid: u32) -> Option<i32> {
    let pid = i32::try_from(pid).ok().filter(|&p| p > 0)? as libc::id_t;
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
    let options = libc::WSTOPPED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: waitid(2) writes at most one siginfo_t into ours.
    if unsafe { libc::waitid(libc::P_PID, pid, info.as_mut_ptr(), options) } != 0 {
        return None;
    }
    // SAFETY: zeroed, then (perhaps) filled by the kernel: plain data.
    let info = unsafe { info.assume_init() };
    let (child, code, status) = child_fields(&info);
    // WNOHANG with nothing to report leaves the pid 0 (POSIX).
    (child != 0 && code == libc::CLD_STOPPED).then_some(status)
}

/// The pid, code and status of a SIGCHLD `siginfo_t`: NetBSD's layout
/// (sys/siginfo.h: number, code, errno, padding on LP64, then the child's
/// pid, uid and status).
#[cfg(target_os = "netbsd")]
fn child_fields(info: &libc::siginfo_t) -> (libc::pid_t, i32, i32) {
    #[repr(C)]
    struct ChildInfo {
        _signo: libc::c_int,
        code: libc::c_int,
        _errno: libc::c_int,
        #[cfg(target_pointer_width = "64")]
        _pad: libc::c_int,
        pid: libc::pid_t,
        _uid: libc::uid_t,
        status: libc::c_int,
    }
    // SAFETY: `ChildInfo` is the head of NetBSD's siginfo_t for SIGCHLD,
    // all plain integers, and smaller than the libc crate's siginfo_t.
    let c = unsafe { &*(info as *const libc::siginfo_t).cast::<ChildInfo>() };
    (c.pid, c.code, c.status)
}

/// The pid, code and status of a SIGCHLD `siginfo_t` (the libc crate's
/// accessors for OpenBSD).
#[cfg(target_os = "openbsd")]
fn child_fields(info: &libc::siginfo_t) -> (libc::pid_t, i32, i32) {
    // SAFETY: a SIGCHLD siginfo_t (or a zeroed one), whose child fields
    // these read.
    unsafe { (info.si_pid(), info.si_code(), info.si_status()) }
}

/// `pid`'s process group (0: this process's), as this pid namespace
/// numbers it. Raw: rustix's getpgid panics on a 0 answer (a leader
/// outside the namespace: clippy.toml).
fn group_of(pid: i32) -> Option<i32> {
    // SAFETY: getpgid(2) has no memory-safety preconditions.
    let g = unsafe { libc::getpgid(pid) };
    (g >= 0).then_some(g)
}

/// `pid`'s session (0: this process's); libc for [`group_of`]'s reason.
fn session_of(pid: i32) -> Option<i32> {
    // SAFETY: getsid(2) has no memory-safety preconditions.
    let s = unsafe { libc::getsid(pid) };
    (s >= 0).then_some(s)
}

/// Whether `parent`, the parent of a member of `pgrp`, keeps `pgrp`
/// unorphaned: it is in another process group of the session `sid`. (The
/// kernel also discounts init as such a parent; init leads a session of
/// its own, never the member's.)
fn keeps_unorphaned(parent: i32, pgrp: i32, sid: i32) -> bool {
    // A parent gone, or not to be asked (EPERM), or outside the namespace
    // (0): it keeps nothing.
    parent > 0 && group_of(parent).is_some_and(|g| g != pgrp) && session_of(parent) == Some(sid)
}

/// Whether no member of `pgrp` but pkit has a parent that keeps it
/// unorphaned: `/proc/<pid>/stat` of every process, its state, parent and
/// group (a zombie counts as gone, as the kernel counts it). A `/proc`
/// that can't be listed says nothing: not orphaned, unless pkit leads its
/// session.
#[cfg(target_os = "linux")]
fn others_orphaned(pgrp: i32, sid: i32) -> bool {
    let me = getpid().as_raw_nonzero().get();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return leads_session(sid);
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // (Gone meanwhile: not a member any more.)
        let Some((state, ppid, group)) = read_stat(pid as u32) else {
            continue;
        };
        if group != pgrp || state == 'Z' || state == 'X' {
            continue;
        }
        if keeps_unorphaned(ppid, pgrp, sid) {
            return false;
        }
    }
    true
}

#[cfg(not(target_os = "linux"))]
fn others_orphaned(_pgrp: i32, sid: i32) -> bool {
    leads_session(sid)
}

/// Whether pkit leads its session (`setsid pkit run …`).
fn leads_session(sid: i32) -> bool {
    sid == getpid().as_raw_nonzero().get()
}

/// A `/proc/<pid>/stat` line's state, parent and process group (the
/// fields after the command's closing parenthesis: the command may hold
/// spaces and parentheses itself).
#[cfg(target_os = "linux")]
fn parse_stat(stat: &str) -> Option<(char, i32, i32)> {
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}

/// [`parse_stat`] of `/proc/<pid>/stat`; `None` once `pid` is gone.
#[cfg(target_os = "linux")]
pub(super) fn read_stat(pid: u32) -> Option<(char, i32, i32)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_parentheses_in_the_name_is_read_after_the_last() {
        let line = "42 (a) (b) c) S 7 9 9 34816 9 4194560 0";
        assert_eq!(parse_stat(line), Some(('S', 7, 9)));
    }
}
