//! A started process's own sub-cgroup of its group.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};

pub(crate) use super::leaves::Leaves;

static LEAF_SEQ: AtomicU64 = AtomicU64::new(1);

/// A started process's own sub-cgroup of its group (`<group>/p<n>`): the
/// process and everything it spawns live there, so the process can be
/// ended with its whole subtree while the rest of the group runs on. (The
/// group's first started process lives in the group's own directory
/// instead: see [`Leaves`].)
///
/// Dropping it does not kill anything: the directory is removed once it is
/// empty (now, or by the reaper thread later); the group's own teardown
/// removes whatever is left, depth-first.
#[derive(Debug)]
pub(crate) struct Leaf {
    path: PathBuf,
    dir: OwnedFd,
    /// The group's record, which names this leaf until it is removed.
    leaves: Arc<Leaves>,
    /// The process that made it: a copy in a child forked without `exec`
    /// leaves the directory alone when dropped.
    owner: crate::sys::Creator,
}

impl Leaf {
    /// Makes a new leaf under `group`, recorded in `leaves` first.
    pub(crate) fn create(group: &Path, leaves: &Arc<Leaves>) -> io::Result<Leaf> {
        let (name, path) = make(group, leaves)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match rustix::fs::open(&path, flags, Mode::empty()) {
            Ok(dir) => Ok(Leaf {
                path,
                dir,
                leaves: leaves.clone(),
                owner: crate::sys::Creator::here(),
            }),
            Err(e) => {
                let _ = rustix::fs::rmdir(&path);
                leaves.remove(&name);
                Err(e.into())
            }
        }
    }

    /// Forgets the leaf in the group's record (it is removed).
    fn forget(&self) {
        if let Some(name) = self.path.file_name().and_then(OsStr::to_str) {
            self.leaves.remove(name);
        }
    }

    /// The directory fd, for `clone3(CLONE_INTO_CGROUP)`.
    pub(crate) fn dir_fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Opens `cgroup.procs` for writing (for a child that joins itself).
    pub(crate) fn open_procs_for_join(&self) -> io::Result<OwnedFd> {
        rustix::fs::openat(
            &self.dir,
            "cgroup.procs",
            OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)
    }

    /// Whether the leaf (its subtree included) has no live process: gone
    /// counts as empty (only an empty cgroup can be removed), unreadable
    /// (no descriptor free, the reserve's taken) as not.
    pub(crate) fn is_empty(&self) -> bool {
        let read = super::reserve::with_reserve(|| self.open_events())
            .and_then(|fd| super::cgroup::read_events(&fd));
        match read {
            Ok(ev) => !ev.populated,
            Err(e) => super::subtree::removed_under(&self.path, &e),
        }
    }

    fn open_events(&self) -> io::Result<OwnedFd> {
        rustix::fs::openat(
            &self.dir,
            "cgroup.events",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)
    }

    /// Sends `sig` to every process in the leaf's subtree, but those in a
    /// nested pkit's group for a signal `pkit run` relays (see
    /// [`Reach::of`](super::subtree::Reach::of)); returns the pids
    /// signalled.
    pub(crate) fn signal(&self, sig: i32) -> io::Result<Vec<i32>> {
        super::subtree::signal_members(&self.path, sig)
    }

    /// SIGKILLs every process in the leaf's subtree (not through
    /// `cgroup.kill`, which would mark the leaf's subtree on some kernels;
    /// see [`Cgroup::signal_each_after_by`](super::cgroup::Cgroup::signal_each_after_by)).
    ///
    /// Where that fails (no descriptor free even for the listing: the
    /// reserve is taken), the last resort is the leaf's `cgroup.kill`,
    /// written through the reserve's slot: it needs that one descriptor,
    /// and the leaf, made for one process, takes no later `clone3`.
    pub(crate) fn kill(&self) -> io::Result<()> {
        let killed = super::subtree::kill_members(&self.path);
        let Err(e) = killed else {
            return Ok(());
        };
        let last = super::reserve::with_reserve(|| {
            let fd = rustix::fs::openat(
                &self.dir,
                "cgroup.kill",
                OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            rustix::io::write(&fd, b"1")?;
            Ok(())
        });
        last.map_err(|_| e)
    }

    /// Waits asynchronously until the leaf is empty, or gone: the group's
    /// close removes an emptied leaf at once, and a notification the
    /// kernel held back is lost with it, so the wait re-reads without one
    /// too (see [`wait_empty_or_gone`](super::events::wait_empty_or_gone)).
    /// At the descriptor limit the reserve's slot serves (see
    /// [`reserve`](super::reserve)), taken back once the wait is over or
    /// dropped.
    pub(crate) async fn wait_empty(&self) -> io::Result<()> {
        // Declared first, so dropped last: after the descriptor it frees.
        let _refill = super::reserve::Refill;
        let events = super::reserve::with_reserve(|| self.open_events())?;
        let afd = super::register(events, tokio::io::Interest::PRIORITY)?;
        super::events::wait_empty_or_gone(&afd).await
    }
}

/// Makes a new leaf directory under `group` (`p<n>`), its name recorded
/// in `leaves` first: its name and path.
fn make(group: &Path, leaves: &Leaves) -> io::Result<(String, PathBuf)> {
    loop {
        let seq = LEAF_SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("p{seq}");
        let path = group.join(&name);
        leaves.insert(&name);
        match rustix::fs::mkdir(&path, Mode::from_raw_mode(0o755)) {
            Ok(()) => return Ok((name, path)),
            // Someone else's (a program in the group made it): not ours.
            Err(rustix::io::Errno::EXIST) => leaves.remove(&name),
            Err(e) => {
                leaves.remove(&name);
                return Err(e.into());
            }
        }
    }
}

/// Moves `pid` into the leaf of `group` that holds its adopted processes
/// once the group's first started process lives in the group's own
/// directory (see [`Leaves::use_dir`]). The leaf is made on first use and
/// stays, recorded as a leaf, until the group's teardown removes it with
/// the rest of the group's tree.
pub(crate) fn adopt_into_leaf(group: &Path, leaves: &Leaves, pid: i32) -> io::Result<()> {
    let mut adopted = leaves.adopted();
    let path = match adopted.as_deref() {
        Some(name) => group.join(name),
        None => {
            let (name, path) = make(group, leaves)?;
            *adopted = Some(name);
            path
        }
    };
    let procs = rustix::fs::open(
        path.join("cgroup.procs"),
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::io::write(&procs, pid.to_string().as_bytes())?;
    Ok(())
}

impl Drop for Leaf {
    fn drop(&mut self) {
        if !self.owner.is_here_confirmed() {
            return; // a forked child's copy: the directory is its parent's
        }
        // Most leaves are empty and have no sub-cgroup by now, or are gone
        // with their group's teardown already: one `rmdir` settles both.
        // Only a refusal (`EBUSY`: processes or sub-cgroups) walks it.
        // (A failure injected at `Rmdir` counts for this one too, as it
        // did for the walk's `rmdir` it replaces.)
        let first = crate::sys::fault::io_check(crate::sys::fault::Point::Rmdir)
            .and_then(|()| rustix::fs::rmdir(&self.path).map_err(io::Error::from));
        match first {
            Ok(()) => return self.forget(),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return self.forget(),
            Err(_) => {}
        }
        if super::reaper::remove_tree(&self.path).is_ok() {
            return self.forget();
        }
        // Still has processes: the reaper removes it once it empties (or
        // finds it removed already by the group's teardown).
        if let Ok(events) = self.open_events() {
            super::reaper::remove_cgroup_later(self.path.clone(), events, Vec::new(), None);
        }
    }
}
