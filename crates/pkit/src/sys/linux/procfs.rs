//! Reading `/proc`: process-group membership and liveness.

use std::io;

/// The fields of `/proc/<pid>/stat` after the command name, which may hold
/// spaces and parentheses: `fields[0]` is the state (field 3 of proc(5)),
/// `fields[k]` is field `k + 3`. The one parser of that file for the
/// owner's side (the guard's async-signal-safe loop and the per-member
/// fast path, [`stat`], read it without allocating). An unreadable file
/// (no such process) is the read's error; text without the `)` that ends
/// the command name is [`io::ErrorKind::InvalidData`].
pub(crate) fn stat_fields(pid: i32) -> io::Result<Vec<String>> {
    let text = std::fs::read(format!("/proc/{pid}/stat"))?;
    let close = text
        .iter()
        .rposition(|&b| b == b')')
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc stat"))?;
    Ok(String::from_utf8_lossy(&text[close + 1..])
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect())
}

/// State and process group of `pid` from `/proc/<pid>/stat`: one open,
/// one read into a stack buffer, one close (it runs once per member on
/// teardown paths).
pub(crate) fn stat(pid: i32) -> io::Result<(char, i32)> {
    use rustix::fs::{Mode, OFlags};
    let mut path = [0u8; 32];
    let name = format_pid_stat(pid, &mut path);
    let fd = rustix::fs::open(name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    // The whole file (a few hundred bytes) comes in one read.
    let mut buf = [0u8; 1024];
    let n = rustix::io::read(&fd, &mut buf)?;
    let (state, pgrp) = crate::sys::unix::pgroup::state_and_pgrp(&buf[..n])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc stat"))?;
    Ok((state as char, pgrp))
}

/// `/proc/<pid>/stat` as a C string in `buf`, without allocating or
/// locking (the portable guard's async-signal-safe loop spells its path
/// with it too).
pub(crate) fn format_pid_stat(pid: i32, buf: &mut [u8; 32]) -> &std::ffi::CStr {
    let mut digits = [0u8; 12];
    let mut n = pid.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut at = 0;
    for &b in b"/proc/" {
        buf[at] = b;
        at += 1;
    }
    for i in (0..len).rev() {
        buf[at] = digits[i];
        at += 1;
    }
    for &b in b"/stat\0" {
        buf[at] = b;
        at += 1;
    }
    std::ffi::CStr::from_bytes_with_nul(&buf[..at]).expect("one NUL at the end")
}

/// Live (non-zombie) processes of process group `pgid` descended from
/// `root` (itself included), found by following parent links among the
/// group's members. A descendant whose parent has already exited was
/// re-parented and is not found. A member whose parent can't be read (no
/// descriptor free) fails the listing: leaving it out would take its
/// subtree for gone.
pub(crate) fn pgroup_descendants(pgid: i32, root: i32) -> io::Result<Vec<i32>> {
    let mut members: Vec<(i32, i32)> = Vec::new(); // (pid, ppid)
    for pid in all_pids()? {
        // The group first (one system call), the parent only for members.
        if crate::sys::unix::pgroup::group_of(pid) != Some(pgid) {
            continue;
        }
        let fields = match stat_fields(pid) {
            Ok(fields) => fields,
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(e),
        };
        let ppid = fields.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let pgrp: i32 = fields.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
        if pgrp == pgid && !exited(pid) {
            members.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            members
                .iter()
                .filter(|&&(_, pp)| pp == parent)
                .map(|&(p, _)| p),
        );
        i += 1;
    }
    Ok(found)
}

/// The processes of process group `pgid` that are still running (not
/// zombies), from one pass over `/proc`.
///
/// Made for the end of a run or a shutdown under the process-group
/// mechanism, so it stays cheap: the directory is only listed, and each
/// process on the machine costs one `getpgid`, no file (reading every
/// `/proc/<pid>/stat` cost ten times as much: the kernel formats fifty
/// fields for each). Only the group's own processes are then asked whether
/// they have exited, through a pidfd ([`exited`]).
pub(crate) fn pgroup_members(pgid: i32) -> io::Result<Vec<i32>> {
    let mut out = all_pids()?;
    out.retain(|&pid| crate::sys::unix::pgroup::group_of(pid) == Some(pgid) && !exited(pid));
    Ok(out)
}

/// The processes of session `sid` that are still running (not zombies),
/// from one pass over `/proc`: each process on the machine costs one
/// `getsid`, as [`pgroup_members`] costs one `getpgid` (no file read).
/// Only a pty-led group's sweep asks (see `ptable::Scope`).
pub(crate) fn session_members(sid: i32) -> io::Result<Vec<i32>> {
    let mut out = all_pids()?;
    out.retain(|&pid| crate::sys::unix::pgroup::session_of(pid) == Some(sid) && !exited(pid));
    Ok(out)
}

/// `/proc`, opened once by the process that uses it ([`Creator`]) and
/// kept, so that a listing needs no free descriptor: a close that comes
/// when the program used up the descriptor limit still lists its group
/// (it used to retry until its deadline). `None` until first needed.
///
/// One directory offset for every user: a listing holds the lock from
/// its `lseek` to its last `getdents`. A child forked without `exec`
/// shares the offset with its parent (one open file description): it
/// opens its own instead of using its copy.
///
/// [`Creator`]: crate::sys::Creator
static PROC_DIR: std::sync::Mutex<Kept> = std::sync::Mutex::new(None);

/// The kept `/proc` and the process that opened it.
type Kept = Option<(crate::sys::Creator, rustix::fs::Dir)>;

/// Opens [`PROC_DIR`] now, if this process has not yet: called where a
/// process-group container is made, while descriptors are to be had, so
/// that its close can list `/proc` without a fresh one. A failure is left
/// to the listing, which opens it (or fails) then.
pub(crate) fn keep_proc_dir() {
    if let Some(mut kept) = try_lock_kept() {
        let _ = kept_dir(&mut kept);
    }
}

/// The lock of [`PROC_DIR`], unless another thread holds it.
fn try_lock_kept() -> Option<std::sync::MutexGuard<'static, Kept>> {
    match PROC_DIR.try_lock() {
        Ok(kept) => Some(kept),
        // Only an entry's read panics (a malformed record): the state is
        // whole, and the next listing seeks to 0 anyway.
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// The kept `/proc` of this process in `kept`, opened if need be.
fn kept_dir(kept: &mut Kept) -> io::Result<&mut rustix::fs::Dir> {
    if !kept.as_ref().is_some_and(|(owner, _)| owner.is_here()) {
        let fresh = open_proc()?;
        if let Some((_, inherited)) = kept.take() {
            let_go(inherited, &fresh);
        }
        *kept = Some((crate::sys::Creator::here(), fresh));
    }
    Ok(&mut kept.as_mut().expect("set above").1)
}

/// Lets go of a forked copy's copy of its maker's kept `/proc`, now that
/// the copy has `fresh` (see `sys::let_go_inherited`: the number may be
/// `fresh`'s own, the maker having opened its `/proc` after the descriptor
/// table was copied). The `Dir` itself is forgotten, never dropped.
fn let_go(inherited: rustix::fs::Dir, fresh: &rustix::fs::Dir) {
    use std::os::fd::AsRawFd;
    let number = inherited.fd().map(|fd| fd.as_raw_fd());
    std::mem::forget(inherited);
    if let (Ok(number), Ok(fresh)) = (number, fresh.fd()) {
        // Every open of `/proc` names the same file: only one with pkit's
        // mark is taken for the inherited one (the copy may have closed
        // that and opened `/proc` for itself on the number).
        if marked(number) {
            crate::sys::let_go_inherited(number, crate::sys::file_id(fresh), fresh.as_raw_fd());
        }
    }
}

/// Whether descriptor number `fd` is open with `O_NONBLOCK`, the mark of
/// pkit's own opens of `/proc` ([`open_proc`]; the status flags belong to
/// the open file, which a forked copy shares with its maker).
fn marked(fd: std::os::fd::RawFd) -> bool {
    // Raw: a number that may name nothing open (no `BorrowedFd` for it).
    // SAFETY: fcntl(2) F_GETFL reads the flags, or fails (EBADF).
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    flags != -1 && flags & libc::O_NONBLOCK != 0
}

/// How many times [`all_pids`] tries the kept descriptor's lock again, a
/// millisecond apart, when another thread holds it and no fresh descriptor
/// can be had: a listing holds it for far less than these ~200 ms.
const BUSY_RETRIES: u32 = 200;

/// Whether `e` says no descriptor is free (this process's limit, or the
/// system's).
fn out_of_descriptors(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|n| n == libc::EMFILE || n == libc::ENFILE)
}

/// A fresh descriptor for `/proc`, read as a directory, open with
/// `O_NONBLOCK` (which a directory's read ignores): pkit's mark, for a
/// forked copy to tell its maker's kept `/proc` from one of its own on
/// that number ([`let_go`]; every open of `/proc` names the same file).
fn open_proc() -> io::Result<rustix::fs::Dir> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        "/proc",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )?;
    Ok(rustix::fs::Dir::new(fd)?)
}

/// The pid of every process in `/proc` (live, zombie or exiting), listed
/// from offset 0 through the kept descriptor ([`PROC_DIR`]). While another
/// thread lists (or a thread of the parent held the lock when this process
/// was forked), a fresh descriptor is opened instead of waiting; when none
/// is free (EMFILE, ENFILE), the lock is tried again, briefly
/// ([`BUSY_RETRIES`]), before the error is returned. Never a blocking
/// lock: in a forked child the lock may be held by a thread that is not
/// there.
fn all_pids() -> io::Result<Vec<i32>> {
    let mut kept = try_lock_kept();
    let mut fresh = None;
    let mut tries = 0;
    while kept.is_none() {
        match open_proc() {
            Ok(dir) => fresh = Some(dir),
            Err(e) if out_of_descriptors(&e) && tries < BUSY_RETRIES => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
                kept = try_lock_kept();
                continue;
            }
            Err(e) => return Err(e),
        }
        break;
    }
    let dir = match fresh.as_mut() {
        Some(fresh) => fresh,
        None => kept_dir(kept.as_deref_mut().expect("locked when nothing fresh"))?,
    };
    dir.rewind();
    let mut out = Vec::new();
    while let Some(entry) = dir.read() {
        // Not skipped: a listing cut short would miss members.
        if let Some(pid) = pid_of_name(entry?.file_name().to_bytes()) {
            out.push(pid);
        }
    }
    Ok(out)
}

/// A `/proc` entry's name as a pid (`None` for `self`, `sys` and the rest).
fn pid_of_name(name: &[u8]) -> Option<i32> {
    if name.is_empty() || name.len() > 10 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// Whether `pid` has exited (a zombie, or gone), asked through a pidfd,
/// which reads ready once every thread of its process has exited;
/// `/proc/<pid>/stat` where no pidfd can be had; and where neither can
/// (no descriptor free: EMFILE, ENFILE), by calls that need none
/// ([`exited_without_descriptor`]). What can't be told is "running":
/// taking a running process for gone made a close return while it ran,
/// and `Group::pids` list nothing.
///
/// Not the `Z` of `/proc/<pid>/stat` alone: that is the state of the main
/// thread, which a process whose main thread ended (`pthread_exit`) shows
/// while its other threads run on (`Zl` in `ps`).
pub(crate) fn exited(pid: i32) -> bool {
    let Some(id) = rustix::process::Pid::from_raw(pid) else {
        return true;
    };
    match rustix::process::pidfd_open(id, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => super::child::pidfd_exited_now(&fd),
        Err(rustix::io::Errno::SRCH) => true,
        Err(_) => exited_without_pidfd(pid),
    }
}

/// [`exited`] where no pidfd can be had: `/proc/<pid>/stat`, and a `Z`
/// there (the main thread's state: it may have ended while others run)
/// told by [`exited_without_descriptor`], which counts the threads; so is
/// a stat that can't be read for want of a descriptor.
fn exited_without_pidfd(pid: i32) -> bool {
    match stat(pid) {
        Ok(('X', _)) => true,
        Ok(('Z', _)) => exited_without_descriptor(pid),
        Ok(_) => false,
        Err(e) if is_gone(&e) => true,
        Err(_) => exited_without_descriptor(pid),
    }
}

/// Whether a `/proc/<pid>` read's error says there is no such process.
fn is_gone(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|n| n == libc::ENOENT || n == libc::ESRCH)
}

/// [`exited`] told by path-based calls, which take no descriptor: the
/// number of threads (a `/proc/<pid>/task` directory links two more than
/// the process has threads, and a zombie keeps its main one) and whether
/// the main thread still has a working directory (`/proc/<pid>/cwd`, which
/// a thread lets go of at its exit, after its memory and files). More than
/// one thread, a working directory, or an answer that says neither (no
/// right to look) is "running": only a process seen gone, or with its one
/// thread past its exit, is "exited".
fn exited_without_descriptor(pid: i32) -> bool {
    let threads = match rustix::fs::stat(format!("/proc/{pid}/task")) {
        Ok(st) => st.st_nlink.saturating_sub(2),
        Err(e) => return is_gone(&e.into()),
    };
    if threads > 1 {
        return false;
    }
    match rustix::fs::readlink(format!("/proc/{pid}/cwd"), Vec::new()) {
        Ok(_) => false,
        Err(e) => is_gone(&e.into()),
    }
}

/// The command name of `pid` (`/proc/<pid>/comm`), when readable.
pub(crate) fn comm(pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end_matches('\n').to_string())
}

/// CPU time (user + system) and resident memory (current, peak) of a live
/// process, from `/proc/<pid>/stat` and `/proc/<pid>/status`. The memory
/// figures are `None` for a zombie.
pub(crate) fn usage(pid: i32) -> Option<(std::time::Duration, Option<u64>, Option<u64>)> {
    // utime and stime are fields 14 and 15 of proc(5).
    let fields = stat_fields(pid).ok()?;
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let cpu = std::time::Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / hz);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    Some((cpu, kib("VmRSS:"), kib("VmHWM:")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_reads_state_and_group() {
        let me = crate::sys::pid::current() as i32;
        let (state, pgrp) = stat(me).expect("own stat");
        assert!(matches!(state, 'R' | 'S'), "{state}");
        assert_eq!(pgrp, crate::sys::unix::pgroup::own_process_group());
        let mut buf = [0u8; 32];
        assert_eq!(format_pid_stat(0, &mut buf).to_bytes(), b"/proc/0/stat");
        assert_eq!(
            format_pid_stat(4194304, &mut buf).to_bytes(),
            b"/proc/4194304/stat"
        );
        assert_eq!(
            format_pid_stat(i32::MAX, &mut buf).to_bytes(),
            b"/proc/2147483647/stat"
        );
        assert!(stat(i32::MAX).is_err());
    }

    #[test]
    fn tells_an_exit_without_a_descriptor() {
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let running = exited_without_descriptor(sleeper.id() as i32);
        let running_by_stat = exited_without_pidfd(sleeper.id() as i32);
        let mut quick = std::process::Command::new("true").spawn().expect("true");
        let pid = quick.id() as i32;
        let mut zombie = false;
        // Up to 30 s: a loaded machine may be slow to run `true`.
        for _ in 0..3000 {
            if matches!(stat(pid), Ok(('Z', _))) {
                zombie = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let ended = exited_without_descriptor(pid);
        let ended_by_stat = exited_without_pidfd(pid);
        let _ = quick.wait();
        let reaped = exited_without_descriptor(pid);
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        assert!(!running, "a running sleep taken for exited");
        assert!(zombie, "true never showed as a zombie");
        assert!(ended, "a zombie taken for running");
        assert!(reaped, "a reaped process taken for running");
        assert!(!running_by_stat && ended_by_stat, "by stat");
        assert!(exited_without_pidfd(i32::MAX));
        assert!(exited_without_descriptor(i32::MAX));
        // The main thread ended, another runs on: running (`Zl`).
        let script = "import threading, time, ctypes\n\
                      threading.Thread(target=time.sleep, args=(30,)).start()\n\
                      ctypes.CDLL(None).pthread_exit(None)";
        let Ok(mut threads) = std::process::Command::new("python3")
            .args(["-c", script])
            .spawn()
        else {
            return;
        };
        let pid = threads.id() as i32;
        let mut main_gone = false;
        // Up to 30 s: a loaded machine may be slow to run `true`.
        for _ in 0..3000 {
            if matches!(stat(pid), Ok(('Z', _))) {
                main_gone = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let answer = exited_without_descriptor(pid);
        let by_stat = exited_without_pidfd(pid);
        let _ = threads.kill();
        let _ = threads.wait();
        if main_gone {
            assert!(
                !answer,
                "a process whose other thread runs taken for exited"
            );
            assert!(
                !by_stat,
                "its main thread's Z taken for exited where no pidfd can be had"
            );
        }
    }

    #[test]
    fn finds_a_running_member_and_not_a_stranger() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("sleep");
        let pgid = child.id() as i32;
        let found = pgroup_members(pgid).expect("scan");
        let me = pgroup_members(crate::sys::unix::pgroup::own_process_group());
        let _ = child.kill();
        // Exited, not yet reaped: a zombie is no running member.
        let mut zombie = false;
        for _ in 0..500 {
            if matches!(stat(pgid), Ok(('Z', _))) {
                zombie = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let after = pgroup_members(pgid).expect("scan");
        let _ = child.wait();
        assert_eq!(found, vec![pgid]);
        assert!(!me.expect("scan").contains(&pgid));
        assert!(zombie, "the killed sleep never showed as a zombie");
        assert_eq!(after, Vec::<i32>::new());
        assert_eq!(pid_of_name(b"self"), None);
        assert_eq!(pid_of_name(b"12"), Some(12));
        assert_eq!(pid_of_name(b"99999999999"), None);
    }

    /// A forked copy's record of its maker's kept `/proc` that names a
    /// number its own descriptor table never had (`fork` copies the table
    /// before the memory: the maker opened its `/proc` in between): the
    /// copy's own `/proc` takes that free number, and letting go of the
    /// record leaves it open (it was closed, and the copy's next
    /// descriptor, an epoll instance, listed: `ENOTDIR`). In a forked child,
    /// one thread: its next open takes the lowest free number.
    #[test]
    fn a_copys_record_of_a_number_not_open_there_closes_nothing() {
        use std::os::fd::AsRawFd;
        // Raw: libc's fork (the case is a forked copy); rustix has no fork.
        // SAFETY: the child opens and closes descriptors, reads them and
        // `_exit`s (no unwinding into the harness), bounded by alarm.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: as above.
            unsafe { libc::alarm(30) };
            let code = (|| {
                let record = open_proc().ok()?;
                let number = record.fd().ok()?.as_raw_fd();
                // The number is free here, the record kept.
                // SAFETY: closes the record's number behind its back: the
                // record is never dropped (`let_go` forgets it).
                unsafe { libc::close(number) };
                let mut kept: Kept = Some((crate::sys::Creator::elsewhere(), record));
                let own = kept_dir(&mut kept).ok()?.fd().ok()?.as_raw_fd();
                let dir = &mut kept.as_mut()?.1;
                dir.rewind();
                let listed = matches!(dir.read(), Some(Ok(_)));
                std::mem::forget(kept);
                Some(if own == number && listed { 0 } else { 1 })
            })()
            .unwrap_or(2);
            // SAFETY: ends the child.
            unsafe { libc::_exit(code) };
        }
        crate::sys::pid::reap_forked_ok(pid);
    }
}
