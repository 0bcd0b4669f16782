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
//! number (see `sys/guard/`).
//!
//! # The cost: the first process stays a zombie while the group lives
//!
//! A leader that exits before its group ends stays a zombie (`<defunct>` in
//! `ps`) until the group is closed, shut down or dropped, or the run ends;
//! then it is reaped at once. The bound: one zombie per live process-group
//! group, holding a pid and the kernel's task record (a few KiB), never
//! memory of the program's. Every other process pkit starts is reaped when
//! its handle is waited for and dropped, as `std::process` would.
//!
//! Why not reap it earlier. Linux keeps a number allocated while *any* task
//! is attached to it, as pid, process group or session; a pidfd keeps the
//! `struct pid` alive but not the number. Once the leader is reaped, the
//! pgid stays ours only while some member lives, and the last member can
//! go (and be reaped by init) at any moment, after which the number can be
//! handed to a new process that may lead a group of its own. Two uses of
//! the number would then go wrong:
//!
//! - `killpg(pgid)` (signal, kill, shutdown). This part has a remedy: the
//!   leader's pidfd with `PIDFD_SIGNAL_PROCESS_GROUP` (Linux 6.9) signals
//!   the group's own `struct pid`, whatever its number became, as the guard
//!   does.
//! - `setpgid(child, pgid)` for the next `start`. This one has none: a
//!   group can only be joined by number, and nothing tells "only the
//!   leader's zombie is left in the group" atomically (signal 0 to the
//!   group succeeds while the zombie is attached; a `/proc` scan races with
//!   a member that forks and exits while the scan runs, which would leave
//!   an unseen member outside a group we then forgot). A start after such a
//!   check could join a stranger's process group.
//!
//! Keeping an anchor of pkit's own as the leader instead (a tiny process
//! forked for each group) would move the zombie from the user's program to
//! pkit without removing it, and cost a fork per group. So the zombie
//! leader stays, documented and bounded; the cgroup mechanism has none.

use std::io;

/// `killpg(pgid, sig)`; `ESRCH` (no member left) is not an error.
pub(crate) fn killpg(pgid: i32, sig: i32) -> io::Result<()> {
    send(pgid, sig, true)
}

/// `kill(pid, sig)`, by number (exact only while the number can't be
/// reused: an unreaped child's, or a checked live member's); `ESRCH` (gone
/// already) is not an error.
pub(crate) fn kill(pid: i32, sig: i32) -> io::Result<()> {
    send(pid, sig, false)
}

/// [`kill`] or [`killpg`] through rustix; signal 0 only checks.
fn send(id: i32, sig: i32, group: bool) -> io::Result<()> {
    use rustix::process::{self as p, Pid, Signal};
    // Never 0 or negative: those would mean "my own group" or "everyone".
    let Some(target) = Pid::from_raw(id) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let sent = match (Signal::from_named_raw(sig), group) {
        (Some(s), false) => p::kill_process(target, s),
        (Some(s), true) => p::kill_process_group(target, s),
        (None, false) if sig == 0 => p::test_kill_process(target),
        (None, true) if sig == 0 => p::test_kill_process_group(target),
        (None, _) => return send_unnamed(id, sig, group),
    };
    match sent {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A signal rustix has no name for (a real-time one): raw, as rustix's
/// `Signal` can only be made from such a number unsafely.
fn send_unnamed(id: i32, sig: i32, group: bool) -> io::Result<()> {
    // Raw: a real-time signal: rustix's Signal can be made from its number only unsafely.
    // SAFETY: kill(2) and killpg(2) have no memory-safety preconditions;
    // the kernel refuses a number that is no signal (EINVAL).
    let rc = unsafe {
        if group {
            libc::killpg(id, sig)
        } else {
            libc::kill(id, sig)
        }
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

/// The session id of process `pid` as this process's pid namespace
/// numbers it: `Some(0)` when the session's leader is not in this
/// namespace (a process started without `setsid` by something outside it,
/// such as a container's or CI runner's own exec, or the init process and
/// kernel threads), `None` when there is no such process.
///
/// Deliberately libc rather than `rustix::process::getsid`: rustix turns
/// the kernel's 0 into a `Pid`, which asserts non-zero (a panic in debug
/// builds, undefined behaviour in release).
pub(crate) fn session_of(pid: i32) -> Option<i32> {
    // Raw: rustix's getsid panics on a 0 answer (see above and clippy.toml).
    // SAFETY: getsid(2) has no memory-safety preconditions.
    let sid = unsafe { libc::getsid(pid) };
    (sid >= 0).then_some(sid)
}

/// The process group of this process as its pid namespace numbers it (0
/// when the group's leader is outside the namespace); libc for the reason
/// [`session_of`] gives.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn own_process_group() -> i32 {
    // Raw: rustix's getpgrp panics on a 0 answer (see session_of).
    // SAFETY: getpgrp(2) has no preconditions and can't fail.
    unsafe { libc::getpgrp() }
}

/// The process group of `pid` (`getpgid`), zombies included; `None` when
/// there is no such process (or `pid` is not positive: `getpgid(0)` would
/// name the caller). One system call and no file: the per-process step of
/// a scan for a group's members. libc for the reason [`session_of`] gives.
pub(crate) fn group_of(pid: i32) -> Option<i32> {
    if pid <= 0 {
        return None;
    }
    // Raw: rustix's getpgid panics on a 0 answer (see session_of).
    // SAFETY: getpgid(2) has no memory-safety preconditions.
    let pgid = unsafe { libc::getpgid(pid) };
    (pgid >= 0).then_some(pgid)
}

/// State (field 3) and process group (field 5) from `/proc/<pid>/stat`
/// text; the command name (field 2) may hold spaces and parentheses.
#[cfg(target_os = "linux")]
pub(crate) fn state_and_pgrp(stat: &[u8]) -> Option<(u8, i32)> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let mut fields = stat[close + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    let state = *fields.next()?.first()?;
    let _ppid = fields.next()?;
    let pgrp = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    Some((state, pgrp))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn parses_state_and_pgrp() {
        assert_eq!(
            state_and_pgrp(b"42 (a (weird) name) R 1 42 42 0 -1"),
            Some((b'R', 42))
        );
        assert_eq!(state_and_pgrp(b"7 (sh) Z 1 9 9"), Some((b'Z', 9)));
        assert_eq!(state_and_pgrp(b"garbage"), None);
    }

    #[test]
    fn group_of_names_the_group_and_nobody_else() {
        assert_eq!(
            group_of(std::process::id() as i32),
            Some(own_process_group())
        );
        assert_eq!(group_of(0), None);
        assert_eq!(group_of(-1), None);
        assert_eq!(group_of(i32::MAX), None);
    }
}
