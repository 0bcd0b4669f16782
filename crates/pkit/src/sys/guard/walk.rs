//! Walking a cgroup subtree in the guard (after the fork: raw calls on
//! stack buffers only, see `process.rs`): killing the members listed in
//! every directory, and removing the directories deepest first.
//!
//! Raw: every libc call in this file stays raw on purpose: the async-signal-safe guard loop
//! (stack buffers, no allocation).

use std::os::fd::RawFd;

use super::wire::PATH_LEN;

/// Removes the cgroup directory `path` (NUL-terminated) with its
/// sub-cgroups, deepest first: rmdir refuses a cgroup that has any (a
/// program in the group may have made some, e.g. a nested pkit).
///
/// # Safety
/// Guard only.
pub(super) unsafe fn remove_tree(path: &[u8; PATH_LEN]) {
    let dir = libc::open(
        path.as_ptr().cast(),
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
    );
    if dir >= 0 {
        rmdir_below(dir, 0);
        libc::close(dir);
    }
    libc::rmdir(path.as_ptr().cast());
}

/// Pids one pass of [`kill_listed`] handles, with their pidfds (stack
/// arrays); a longer list takes more passes.
const KILL_BATCH: usize = 1024;

/// SIGKILLs the processes listed in the `cgroup.procs` of the open
/// directory `dir` (read into `buf`); false if some were left for another
/// pass (the list did not fit).
///
/// Never by a number that may have been reused: each listed pid is pinned
/// with a pidfd first, then the list is read again, and only a process
/// still listed after its pidfd was opened is signalled (through the
/// pidfd). A listed zombie reaped meanwhile by init, its number taken by a
/// stranger, is not listed the second time. Kernels without `pidfd_open`
/// (before 5.3) fall back to `kill` by number.
///
/// # Safety
/// Guard only; `dir` is an open directory fd.
pub(super) unsafe fn kill_listed(dir: RawFd, buf: &mut [u8]) -> bool {
    let Some(n) = read_procs(dir, buf) else {
        return true;
    };
    let mut complete = n < buf.len();
    let mut pids = [0i32; KILL_BATCH];
    let mut count = 0;
    for_each_pid(&buf[..n], complete, &mut |pid| {
        if count < KILL_BATCH {
            pids[count] = pid;
            count += 1;
        } else {
            complete = false;
        }
    });
    let mut fds = [-1 as RawFd; KILL_BATCH];
    // A member no pidfd could be opened for (no descriptor or memory
    // left: a cgroup of more members than the guard may hold descriptors)
    // by number, if still listed with the same start time (rv30 LOW: it
    // was skipped).
    let mut born = [None::<u64>; KILL_BATCH];
    let mut by_number = [false; KILL_BATCH];
    for i in 0..count {
        let fd = libc::syscall(libc::SYS_pidfd_open, pids[i], 0u32);
        if fd >= 0 {
            fds[i] = fd as RawFd;
        } else if *libc::__errno_location() == libc::ENOSYS {
            libc::kill(pids[i], libc::SIGKILL);
        } else if no_room(*libc::__errno_location()) {
            born[i] = super::start_time::birth(pids[i]).map(|b| b.time);
            by_number[i] = true;
        }
    }
    let again = read_procs(dir, buf).unwrap_or(0);
    for i in 0..count {
        if fds[i] < 0 && !by_number[i] {
            continue;
        }
        let mut listed = false;
        for_each_pid(&buf[..again], again < buf.len(), &mut |pid| {
            listed |= pid == pids[i];
        });
        if by_number[i] {
            if listed && super::start_time::birth(pids[i]).map(|b| b.time) == born[i] {
                libc::kill(pids[i], libc::SIGKILL);
            }
            continue;
        }
        if listed {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fds[i],
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            );
        }
        libc::close(fds[i]);
    }
    complete
}

/// Whether a failed `pidfd_open`'s `errno` says only that no descriptor or
/// memory was left (the process may well be there): the guards then
/// signal it by number, after a check that it is the same process.
pub(super) fn no_room(errno: i32) -> bool {
    matches!(errno, libc::EMFILE | libc::ENFILE | libc::ENOMEM)
}

/// Reads the `cgroup.procs` of the open directory `dir` into `buf`; the
/// bytes read, or `None` if it can't be opened.
///
/// # Safety
/// Guard only; `dir` is an open directory fd.
unsafe fn read_procs(dir: RawFd, buf: &mut [u8]) -> Option<usize> {
    let procs = libc::openat(
        dir,
        c"cgroup.procs".as_ptr(),
        libc::O_RDONLY | libc::O_CLOEXEC,
    );
    if procs < 0 {
        return None;
    }
    let n = pread_all(procs, buf);
    libc::close(procs);
    Some(n)
}

/// Calls `f` with each pid in `cgroup.procs` text; the last number counts
/// only if the text is `complete` (else it may be cut).
pub(super) fn for_each_pid(text: &[u8], complete: bool, f: &mut dyn FnMut(i32)) {
    let mut pid: i32 = 0;
    let mut digits = false;
    for &b in text {
        if b.is_ascii_digit() {
            pid = pid.saturating_mul(10).saturating_add((b - b'0') as i32);
            digits = true;
        } else {
            if digits && pid > 0 {
                f(pid);
            }
            pid = 0;
            digits = false;
        }
    }
    if digits && pid > 0 && complete {
        f(pid);
    }
}

/// Calls `f` on the open directory `dir` and then on every directory below
/// it (opened for the call, closed after), parents before children; raw
/// calls on a stack buffer only, down to the same depth as
/// [`rmdir_below`].
///
/// # Safety
/// Guard only; `dir` is an open directory fd.
pub(super) unsafe fn for_each_dir(dir: RawFd, depth: u32, f: &mut dyn FnMut(RawFd)) {
    f(dir);
    if depth > 32 {
        return;
    }
    let mut buf = [0u8; 2048];
    libc::lseek(dir, 0, libc::SEEK_SET);
    for_each_entry(dir, &mut buf, &mut |name, kind| {
        if kind == libc::DT_DIR && name != b"." && name != b".." {
            // `name` is NUL-terminated in the buffer (see `for_each_entry`).
            let sub = libc::openat(
                dir,
                name.as_ptr().cast(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if sub >= 0 {
                for_each_dir(sub, depth + 1, f);
                libc::close(sub);
            }
        }
        true
    });
}

/// Calls `f` with the name (without its NUL, which follows it in `buf`)
/// and the type (`DT_*`) of each entry the open directory `dir` lists
/// from where it stands, read with raw `getdents64` into `buf`, until `f`
/// says false or the listing ends. False if a read failed.
///
/// # Safety
/// Guard only; `dir` is an open directory fd.
pub(super) unsafe fn for_each_entry(
    dir: RawFd,
    buf: &mut [u8],
    f: &mut dyn FnMut(&[u8], u8) -> bool,
) -> bool {
    loop {
        let n = libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len());
        if n <= 0 {
            return n == 0;
        }
        let n = n as usize;
        let mut off = 0usize;
        while off + 19 < n {
            // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type,
            // then the NUL-terminated name.
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            if reclen == 0 {
                return true;
            }
            let field = &buf[off + 19..(off + reclen).min(n)];
            let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
            if !f(&field[..len], buf[off + 18]) {
                return true;
            }
            off += reclen;
        }
    }
}

/// Removes every (empty) directory below the open directory `dir`,
/// deepest first, with raw calls on a stack buffer only (async-signal-safe:
/// no allocation, no lock). Gives up below a depth no cgroup tree reaches.
///
/// # Safety
/// Guard only; `dir` is an open directory fd.
unsafe fn rmdir_below(dir: libc::c_int, depth: u32) {
    if depth > 32 {
        return;
    }
    let mut buf = [0u8; 2048];
    // Each pass removes the first sub-directory found, then starts over
    // (removing entries while a listing is read would skip some).
    loop {
        libc::lseek(dir, 0, libc::SEEK_SET);
        let mut found = false;
        loop {
            let n = libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len());
            if n <= 0 {
                break;
            }
            let mut off = 0usize;
            while off + 19 < n as usize {
                // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8
                // type, then the NUL-terminated name.
                let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
                let kind = buf[off + 18];
                let name = buf.as_ptr().add(off + 19).cast::<libc::c_char>();
                let dot = buf[off + 19] == b'.'
                    && (buf[off + 20] == 0 || (buf[off + 20] == b'.' && buf[off + 21] == 0));
                if kind == libc::DT_DIR && !dot && reclen > 0 {
                    let sub = libc::openat(
                        dir,
                        name,
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    );
                    if sub >= 0 {
                        rmdir_below(sub, depth + 1);
                        libc::close(sub);
                    }
                    if libc::unlinkat(dir, name, libc::AT_REMOVEDIR) == 0 {
                        found = true;
                        break;
                    }
                }
                if reclen == 0 {
                    break;
                }
                off += reclen;
            }
            if found {
                break;
            }
        }
        if !found {
            return;
        }
    }
}

/// Reads `fd` from offset 0 into `buf`; bytes read.
///
/// # Safety
/// Guard only.
pub(super) unsafe fn pread_all(fd: RawFd, buf: &mut [u8]) -> usize {
    let mut got = 0usize;
    while got < buf.len() {
        let n = libc::pread(
            fd,
            buf[got..].as_mut_ptr().cast(),
            buf.len() - got,
            got as libc::off_t,
        );
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    got
}
