//! A cgroup's `cgroup.events` (read, and waited on for a change) and the
//! removal of emptied directories: the plain file operations the cgroup,
//! its leaves and the reaper thread share. A leaf: it imports nothing else
//! from `sys/`.

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Instant;

/// Removes directories (a group's cgroup v1 ones), each with the
/// sub-cgroups a program in the group made below it (a nested pkit's
/// capped groups), deepest first; failures are ignored (already gone, or
/// still populated).
pub(crate) fn remove_dirs(dirs: &[PathBuf]) {
    for d in dirs {
        remove_dir_tree(d);
    }
}

/// Removes `dir` and every directory below it, deepest first (`rmdir`
/// refuses a cgroup with sub-cgroups; in a cgroup hierarchy every
/// sub-directory is one). Only empty cgroups go: the kernel refuses one
/// with members, so this never takes a live group's directory away.
pub(crate) fn remove_dir_tree(dir: &std::path::Path) {
    for sub in super::subtree::descendants(dir) {
        let _ = rustix::fs::rmdir(&sub);
    }
    let _ = rustix::fs::rmdir(dir);
}

/// Parsed `cgroup.events`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Events {
    pub populated: bool,
    pub frozen: bool,
}

/// Reads `cgroup.events` from the start (re-reading also re-arms poll).
pub(crate) fn read_events(fd: &OwnedFd) -> io::Result<Events> {
    // `pread` at offset 0: no seek and no shared file position; the kernel
    // regenerates the file's content for a read at 0. Its two lines arrive
    // in one read; a read at the end of the file ends older kernels' text
    // (no `frozen` line).
    let mut buf = [0u8; 256];
    let mut len = 0;
    loop {
        let n = match rustix::io::pread(fd, &mut buf[len..], len as u64) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        len += n;
        let text = &buf[..len];
        let complete = text.ends_with(b"\n")
            && text.starts_with(b"populated ")
            && memchr::memmem::find(text, b"\nfrozen ").is_some();
        if n == 0 || len == buf.len() || complete {
            break;
        }
    }
    let text = &buf[..len];
    let field = |name: &[u8]| {
        text.split(|&b| b == b'\n')
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_ascii() == b"1")
            .unwrap_or(false)
    };
    Ok(Events {
        populated: field(b"populated "),
        frozen: field(b"frozen "),
    })
}

/// Blocks until `cgroup.events` changes or `deadline` passes; returns false
/// on the deadline.
pub(crate) fn wait_event_change(fd: &OwnedFd, deadline: Instant) -> io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let now = Instant::now();
    if now >= deadline {
        return Ok(false);
    }
    let left = deadline - now;
    let ts = Timespec {
        tv_sec: left.as_secs() as _,
        tv_nsec: left.subsec_nanos() as _,
    };
    let mut fds = [PollFd::new(fd, PollFlags::PRI)];
    match poll(&mut fds, Some(&ts)) {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(rustix::io::Errno::INTR) => Ok(true),
        Err(e) => Err(e.into()),
    }
}
