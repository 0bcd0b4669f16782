//! One descriptor held in reserve for the last resort: the write to a
//! cgroup's `cgroup.kill` when no descriptor is free (the owner at its
//! `RLIMIT_NOFILE`). Every other way of ending a cgroup's tree (freezing
//! it, listing its members, opening their pidfds) needs several; this one
//! needs one, for as long as the write takes. The reserve is one per
//! process, not per group: made when the first cgroup is, given up for the
//! last resort's open and taken again right after.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use rustix::fs::{Mode, OFlags};

static RESERVE: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// A descriptor that holds nothing: `/` opened as a path only.
fn placeholder() -> io::Result<OwnedFd> {
    rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// Makes sure the reserve is held (again, after a last resort that could
/// not take it back). Never blocks: a thread using it is left alone.
pub(crate) fn ensure() {
    if let Ok(mut kept) = RESERVE.try_lock() {
        if kept.is_none() {
            *kept = placeholder().ok();
        }
    }
}

/// Runs `op` (which opens a descriptor); when it fails for want of a free
/// descriptor (`EMFILE`), runs it once more with the reserve's slot freed
/// for it, then takes the reserve back: at once if `op` closed what it
/// opened, else at the next [`ensure`]. Another thread may take the freed
/// slot first, or be using the reserve: then the error stands.
pub(crate) fn with_reserve<T>(op: impl Fn() -> io::Result<T>) -> io::Result<T> {
    match op() {
        Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
            // Never a blocking lock: this can run in a child forked
            // without exec, where a thread of the parent held it at the
            // fork and never lets go. Busy is as good as spent.
            let Ok(mut kept) = RESERVE.try_lock() else {
                return Err(e);
            };
            let Some(fd) = kept.take() else {
                return Err(e);
            };
            drop(fd);
            let out = op();
            *kept = placeholder().ok();
            out
        }
        other => other,
    }
}

/// Takes the reserve back ([`ensure`]) when dropped: for an operation
/// whose descriptor, possibly the reserve's slot, lives as long as it.
pub(crate) struct Refill;

impl Drop for Refill {
    fn drop(&mut self) {
        ensure();
    }
}
