//! A cgroup's `cgroup.events` (read, and waited on for a change) and the
//! removal of emptied directories: the plain file operations the cgroup,
//! its leaves and the reaper thread share. A leaf: it imports nothing else
//! from `sys/`.

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The longest a wait for an empty cgroup goes without re-reading
/// `cgroup.events`.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

/// How long the kernel may hold a change of `cgroup.events` back: it
/// notifies a file at most once per 10 ms, deferring a change that comes
/// sooner by a timer, which the cgroup's removal cancels. So a cgroup
/// emptied within 10 ms of its previous notification (a process cancelled
/// just after its start: the start populated it) and removed before the
/// timer fires (its group closed at once) is never announced as empty.
const NOTIFY_INTERVAL: Duration = Duration::from_millis(10);

/// Waits until the cgroup behind `afd` (its `cgroup.events`, registered
/// for [`Interest::PRIORITY`]) is empty or gone. The change notification
/// is the wake-up. The safety net is a re-read without one: on naps that
/// start at the kernel's [`NOTIFY_INTERVAL`] (again after each
/// notification, which may hold the next one back) and double up to
/// [`RECHECK`], so an emptying whose notification was held back and lost
/// with the cgroup's removal is seen at once, and a long wait costs few
/// wake-ups.
pub(crate) async fn wait_empty_or_gone(afd: &AsyncFd<OwnedFd>) -> io::Result<()> {
    let mut nap = NOTIFY_INTERVAL;
    loop {
        if is_empty_or_gone(afd.get_ref())? {
            return Ok(());
        }
        match tokio::time::timeout(nap, afd.ready(Interest::PRIORITY)).await {
            Ok(guard) => {
                guard?.clear_ready();
                nap = NOTIFY_INTERVAL;
            }
            Err(_) => nap = (nap * 2).min(RECHECK),
        }
    }
}

/// Whether the cgroup behind `events` has no process left: its
/// `cgroup.events` says so, or the cgroup was removed (`ENODEV` on an open
/// file of a removed cgroup; only an empty one can be removed).
pub(crate) fn is_empty_or_gone(events: &OwnedFd) -> io::Result<bool> {
    match read_events(events) {
        Ok(ev) => Ok(!ev.populated),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENODEV | libc::ENOENT)) => Ok(true),
        Err(e) => Err(e),
    }
}

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
