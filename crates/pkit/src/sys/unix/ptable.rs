//! The process table, as the process-group mechanism needs it: which live
//! processes are in a process group, or in a pty session ([`Scope`]),
//! their parents, their names. Linux reads `/proc`; macOS asks libproc
//! (`proc_listpids`, `proc_pidinfo`); FreeBSD the `kern.proc.pgrp` and
//! `kern.proc.session` sysctls; DragonFly, NetBSD and OpenBSD theirs
//! (`ptable_bsd.rs`).

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

    pub(crate) fn session_members(sid: i32) -> io::Result<Vec<i32>> {
        procfs::session_members(sid)
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

    /// libproc's `PROC_ALL_PIDS` (sys/proc_info.h; not in the libc crate).
    const PROC_ALL_PIDS: u32 = 1;

    /// The pids `list` writes (a libproc call given a buffer and its size
    /// in bytes, answering the bytes it filled), in a buffer grown until
    /// they fit.
    fn listed(
        mut list: impl FnMut(*mut libc::c_void, libc::c_int) -> libc::c_int,
    ) -> io::Result<Vec<i32>> {
        let mut pids = vec![0 as libc::pid_t; 256];
        loop {
            let bytes = (pids.len() * std::mem::size_of::<libc::pid_t>()) as libc::c_int;
            let n = list(pids.as_mut_ptr().cast(), bytes);
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let count = n as usize / std::mem::size_of::<libc::pid_t>();
            if count < pids.len() {
                pids.truncate(count);
                return Ok(pids.into_iter().filter(|&p| p > 0).collect());
            }
            pids.resize(pids.len() * 2, 0);
        }
    }

    /// The live (non-zombie) processes among `pids` that `keep` accepts.
    fn live(pids: Vec<i32>, keep: impl Fn(&libc::proc_bsdinfo) -> bool) -> Vec<Entry> {
        pids.into_iter()
            .filter_map(info)
            .filter(|i| i.pbi_status != libc::SZOMB && keep(i))
            .map(|i| Entry {
                pid: i.pbi_pid as i32,
                ppid: i.pbi_ppid as i32,
                pgid: i.pbi_pgid as i32,
            })
            .collect()
    }

    pub(crate) fn entries(pgid: i32) -> io::Result<Vec<Entry>> {
        let pids = listed(|buf, bytes| {
            // Raw: macOS's process table: no rustix form.
            // SAFETY: the buffer holds `bytes` bytes of pids.
            unsafe { libc::proc_listpgrppids(pgid, buf, bytes) }
        })?;
        Ok(live(pids, |i| i.pbi_pgid as i32 == pgid))
    }

    /// The live members of session `sid`: every pid (`PROC_ALL_PIDS`),
    /// each asked its session (`proc_bsdinfo` has none). Not the 4.4BSD
    /// `KERN_PROC_SESSION`, which may match on the session leader's pid
    /// (none once it has exited).
    pub(crate) fn session_entries(sid: i32) -> io::Result<Vec<Entry>> {
        let pids = listed(|buf, bytes| {
            // Raw: as above.
            // SAFETY: the buffer holds `bytes` bytes of pids.
            unsafe { libc::proc_listpids(PROC_ALL_PIDS, 0, buf, bytes) }
        })?;
        let pids = pids
            .into_iter()
            .filter(|&p| crate::sys::unix::pgroup::session_of(p) == Some(sid))
            .collect();
        Ok(live(pids, |_| true))
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

    /// The live members of session `sid` (`kern.proc.session`, which
    /// FreeBSD matches on the session's id, not on its leader).
    pub(crate) fn session_entries(sid: i32) -> io::Result<Vec<Entry>> {
        Ok(query(libc::KERN_PROC_SESSION, sid)?
            .into_iter()
            .filter(|k| k.ki_stat != libc::SZOMB && k.ki_sid == sid)
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

    pub(crate) fn session_entries(_sid: i32) -> io::Result<Vec<Entry>> {
        entries(0)
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

/// What a process-group container reaches: its process group, or, when
/// its leader was started leading a session of its own (a pty), that
/// whole session, whose number is the leader's pid, as the group's is.
/// A job-control shell on the pty puts each job in a process group of
/// its own, in its session: only the session takes them in. The session
/// is chosen only from how the leader was started, never from what a
/// process reports: a non-pty group's session is the owner's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Process group `pgid`.
    Pgroup(i32),
    /// Session `sid` (a pty-led group: its leader's, the same number as
    /// its process group).
    Session(i32),
}

impl Scope {
    /// Process group `pgid`, or, when its leader was started leading a
    /// session of its own (`session`), that session.
    pub(crate) fn new(pgid: i32, session: bool) -> Scope {
        match session {
            true => Scope::Session(pgid),
            false => Scope::Pgroup(pgid),
        }
    }

    /// Whether `pid` is in it now (zombies included). A session scope is
    /// only ever made for a sweepable session (see [`sweepable`], asked
    /// once where the scope is chosen, not per process).
    pub(crate) fn holds(self, pid: i32) -> bool {
        use super::pgroup::{group_of, session_of};
        match self {
            Scope::Pgroup(pgid) => group_of(pid) == Some(pgid),
            Scope::Session(sid) => session_of(pid) == Some(sid),
        }
    }
}

/// Whether session `sid` may be swept: never the owner's own (that is
/// its shell's, its terminal's, its test harness's), nor 0 (a session
/// led outside this pid namespace) or 1. A pty-led group's session is
/// made by its leader's `setsid`, so this holds by construction; a
/// debug build asserts it, and a release build sweeps nothing rather
/// than that.
pub(crate) fn sweepable(sid: i32) -> bool {
    let own = super::pgroup::session_of(0);
    debug_assert_ne!(own, Some(sid), "a session sweep of the owner's own session");
    sid > 1 && own != Some(sid)
}

/// The live (non-zombie) members of `scope`.
pub(crate) fn members(scope: Scope) -> io::Result<Vec<i32>> {
    match scope {
        Scope::Pgroup(pgid) => pgroup_members(pgid),
        Scope::Session(sid) if !sweepable(sid) => Ok(Vec::new()),
        Scope::Session(sid) => session_members(sid),
    }
}

/// The live (non-zombie) members of process group `pgid`.
#[cfg(target_os = "linux")]
fn pgroup_members(pgid: i32) -> io::Result<Vec<i32>> {
    imp::members(pgid)
}

/// The live (non-zombie) members of process group `pgid`.
#[cfg(not(target_os = "linux"))]
fn pgroup_members(pgid: i32) -> io::Result<Vec<i32>> {
    Ok(imp::entries(pgid)?.into_iter().map(|e| e.pid).collect())
}

/// The live (non-zombie) members of session `sid`.
#[cfg(target_os = "linux")]
fn session_members(sid: i32) -> io::Result<Vec<i32>> {
    imp::session_members(sid)
}

/// The live (non-zombie) members of session `sid`.
#[cfg(not(target_os = "linux"))]
fn session_members(sid: i32) -> io::Result<Vec<i32>> {
    Ok(imp::session_entries(sid)?
        .into_iter()
        .map(|e| e.pid)
        .collect())
}

/// Live members of `scope` descended from `root` (itself included). In a
/// process group, by parent links among the members: one whose parent
/// exited first was re-parented and is not found. In a session, every
/// member: each one descends from its leader, `root` (a session is
/// entered only by a fork from a member), re-parented ones too.
pub(crate) fn descendants(scope: Scope, root: i32) -> io::Result<Vec<i32>> {
    let mut found = match scope {
        Scope::Pgroup(pgid) => pgroup_descendants(pgid, root)?,
        Scope::Session(_) => members(scope)?,
    };
    if !found.contains(&root) {
        found.insert(0, root);
    }
    Ok(found)
}

/// Live members of `pgid` descended from `root` (itself included).
#[cfg(target_os = "linux")]
fn pgroup_descendants(pgid: i32, root: i32) -> io::Result<Vec<i32>> {
    imp::descendants(pgid, root)
}

/// Live members of `pgid` descended from `root` (itself included).
#[cfg(not(target_os = "linux"))]
fn pgroup_descendants(pgid: i32, root: i32) -> io::Result<Vec<i32>> {
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

/// Whether `pid` is still a live member of `scope` (not exited, not a
/// zombie, not a reused number now elsewhere).
pub(crate) fn is_live_member(pid: i32, scope: Scope) -> bool {
    match scope {
        Scope::Pgroup(pgid) => matches!(pgid_of(pid), Some((false, g)) if g == pgid),
        Scope::Session(_) => scope.holds(pid) && matches!(pgid_of(pid), Some((false, _))),
    }
}

#[cfg(all(
    test,
    any(target_os = "linux", target_os = "macos", target_os = "freebsd")
))]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// A session made by a child of the test (`setsid`) holds its
    /// grandchild in a process group of its own: the session's listing
    /// finds both, and none of the test's processes; the process group's
    /// doesn't find the grandchild.
    #[test]
    fn a_session_listing_finds_a_grandchild_in_another_process_group_and_not_ours() {
        let script = r#"use POSIX; setsid() or exit 9; my $p = fork; if (!$p) { setpgrp(0, 0); exec "sleep", "300" } $| = 1; print "$p\n"; exec "sleep", "300""#;
        let mut child = std::process::Command::new("perl")
            .args(["-e", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("perl");
        let sid = child.id() as i32;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read");
        let grandchild: i32 = line.trim().parse().expect("a pid");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while super::super::pgroup::group_of(grandchild) != Some(grandchild)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let scope = Scope::Session(sid);
        let found = members(scope);
        let tree = descendants(scope, sid);
        let in_pgroup = members(Scope::Pgroup(sid));
        let live = [grandchild, std::process::id() as i32].map(|p| is_live_member(p, scope));
        let _ = super::super::pgroup::kill(grandchild, libc::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
        let found = found.expect("listing");
        assert!(
            found.contains(&sid) && found.contains(&grandchild),
            "{found:?}"
        );
        assert!(!found.contains(&(std::process::id() as i32)), "{found:?}");
        assert!(tree.expect("tree").contains(&grandchild));
        assert!(!in_pgroup.expect("pgroup").contains(&grandchild));
        assert_eq!(live, [true, false]);
    }
}
