//! A small pool of emptied cgroup directories, reused by the next group.
//!
//! Every one-shot verb makes a group and ends it. Creating a fresh cgroup
//! costs a `mkdir`, and the kernel sets up per-cgroup state again the first
//! time a process is placed in it; removing it costs an `rmdir` and the
//! kernel's teardown of that state. Reusing an emptied directory avoids all
//! of that.
//!
//! The rules that keep this sound:
//! - Only a directory that `cgroup.events` reports empty (`populated 0`: no
//!   process in it or below it) and not frozen is pooled, and only after
//!   its group is closed: a pooled directory belongs to no group, so two
//!   runs never share a live container. Groups with limits must not be
//!   pooled (the container skips them), nor one that was ever written
//!   `cgroup.kill`: on Linux 6.18 a child placed with `CLONE_INTO_CGROUP`
//!   into such a cgroup is SIGKILLed at birth.
//! - At most [`MAX`] directories are kept; beyond that they are removed.
//! - The pool belongs to the process that filled it: a child forked
//!   without exec (which inherits a copy of the list) neither takes from
//!   it, adds to it, nor empties it at its exit.
//! - At normal process exit (`exit`, return from `main`) an `atexit`
//!   handler removes every pooled directory. A process killed outright
//!   leaves its pooled directories behind (empty, named
//!   `pkit-<pid>-<n>`); the next pkit process to create a group removes
//!   empty directories of dead owners (the stale sweep).
//! - [`release_all`] removes the spares now (`pkit::release_spare_cgroups`).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How many spare directories a process keeps: enough for a burst of
/// concurrent one-shot runs (a 16-way fan-out) to reuse them all.
const MAX: usize = 16;

struct Pool {
    /// Paths only: holding their fds would cost a caller up to 16 fds.
    spares: Vec<PathBuf>,
    /// Set by the exit handler: no more pooling.
    closed: bool,
    /// The pid that registered the exit handler (0: none yet). A child
    /// forked without exec inherits the handler and the list; if it calls
    /// `exit` it must not remove its parent's spares.
    owner: u32,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    spares: Vec::new(),
    closed: false,
    owner: 0,
});

/// A spare directory under `parent`, opened, if there is one.
pub(crate) fn take(parent: &Path) -> Option<(PathBuf, OwnedFd)> {
    use rustix::fs::{Mode, OFlags};
    loop {
        let path = {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.owner != std::process::id() {
                // Empty, or a forked child's copy of its parent's list:
                // those directories are the parent's to reuse, never ours
                // (two processes must not share one).
                return None;
            }
            let i = pool
                .spares
                .iter()
                .position(|p| p.parent() == Some(parent))?;
            pool.spares.swap_remove(i)
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match rustix::fs::open(&path, flags, Mode::empty()) {
            Ok(dir) => return Some((path, dir)),
            // Removed behind our back (by an administrator): try the next.
            Err(_) => continue,
        }
    }
}

/// Offers an empty, unfrozen directory; returns whether it was taken (the
/// caller must then forget it), false when the pool is full or closed.
pub(crate) fn offer(path: &Path) -> bool {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.closed || pool.spares.len() >= MAX {
        return false;
    }
    if pool.owner != std::process::id() {
        if pool.owner != 0 {
            // We are a forked child of the process that filled the pool.
            return false;
        }
        // SAFETY: `remove_all_at_exit` is an `extern "C" fn()` that does not
        // unwind (it catches nothing that could panic: see its body).
        if unsafe { libc::atexit(remove_all_at_exit) } != 0 {
            return false;
        }
        pool.owner = std::process::id();
    }
    pool.spares.push(path.to_path_buf());
    true
}

/// The exit handler: removes every pooled directory and closes the pool.
extern "C" fn remove_all_at_exit() {
    // try_lock: a thread that holds the lock while the process exits must
    // not hang the exit; its directories then stay (see the module docs).
    let Ok(mut pool) = POOL.try_lock() else {
        return;
    };
    if pool.owner != std::process::id() {
        return;
    }
    pool.closed = true;
    for path in pool.spares.drain(..) {
        let _ = rustix::fs::rmdir(&path);
    }
}

/// Removes every pooled directory now; the pool stays open for later runs.
pub(crate) fn release_all() {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.owner != std::process::id() {
        return;
    }
    for path in pool.spares.drain(..) {
        let _ = rustix::fs::rmdir(&path);
    }
}
