//! The cgroup v2 container: one child directory of the owner's cgroup per
//! group, killed with `cgroup.kill` (or freeze + kill + thaw on kernels
//! before 5.14) and removed once `cgroup.events` says it is empty.
//!
//! Waiting is driven by the kernel: `cgroup.events` raises `POLLPRI` when
//! its content changes, so an empty cgroup is noticed without polling loops.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};

pub(crate) use super::events::{
    is_empty_or_gone, read_events, remove_dirs, wait_event_change, Events, RECHECK,
};
pub(crate) use super::names::NAME_PREFIX;
use super::reaper::{self, AfterRemoval};
use super::subtree;
pub(crate) use super::tenure::Tenure;
use crate::sys::guard::{Guard, Ticket};
use retire::lock;

static SEQ: AtomicU64 = AtomicU64::new(1);

/// How many fresh directories [`Cgroup::create`] lets be removed under it
/// (between its `mkdir` and its lock) before it gives up.
const MAX_LOST: u32 = 16;

/// Counts a fresh directory removed under [`Cgroup::create`]: an error
/// (`ENOENT`, what a start in it would meet) past [`MAX_LOST`].
fn lost_one(lost: &mut u32) -> io::Result<()> {
    *lost += 1;
    if *lost > MAX_LOST {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    Ok(())
}

/// One cgroup v2 directory owned by a group.
#[derive(Debug)]
pub(crate) struct Cgroup {
    path: PathBuf,
    /// The open directory, shared with the pool of spares once it is
    /// pooled (no `dup`, no `close` per reuse). `None` once the group's
    /// teardown is done (see [`release_fds`](Self::release_fds)).
    dir: Mutex<Option<Arc<OwnedFd>>>,
    /// Its `cgroup.events`, opened at the first read and kept (and pooled
    /// with the directory), so each run's emptiness check is one `pread`;
    /// `None` until then, and again once released.
    events: Mutex<Option<Arc<OwnedFd>>>,
    has_kill: bool,
    removed: AtomicBool,
    /// Whether it was ever killed: such a cgroup is never pooled for reuse
    /// (see [`retire_if_empty`](Self::retire_if_empty)).
    killed: AtomicBool,
    /// Whether it is a spare from the pool (not made for this group).
    spare: bool,
    /// Whether it may go to the pool of spares when emptied: not a named
    /// one, whose name belongs to its group.
    reusable: bool,
    /// The group's hold on the directory, shared with its first started
    /// process's subtree; ended when the directory goes to the pool.
    tenure: Arc<Tenure>,
    /// `usage_usec` of `cpu.stat` when the group got the directory (a
    /// spare's earlier groups' CPU time), which its stats leave out.
    cpu_base: u64,
    /// The spare's open `cpu.stat` that measure was read through, kept
    /// for the next group (see `cgroup_pool::Spare`).
    /// (`None` once released, as `dir`.)
    cpu_stat: Mutex<Option<Arc<OwnedFd>>>,
    /// Its open `cgroup.max.descendants` and `cgroup.max.depth`, once the
    /// directory was first offered to the pool (see `cgroup_retire`),
    /// kept with it so each later check is two `pread`s.
    limits: Mutex<Option<Arc<[OwnedFd; 2]>>>,
}

impl Cgroup {
    /// Creates a new, empty cgroup under `parent` — or takes a spare one,
    /// with the owner-death guard's registration it kept (see
    /// [`cgroup_pool`](super::cgroup_pool)). A named one (`name`, already
    /// validated) is always new, and never pooled.
    ///
    /// With `guard`, a new directory is registered with it *before* the
    /// `mkdir` (the guard ignores a registered path that was never made), so
    /// an owner SIGKILLed at any point leaves no directory behind; the
    /// registration comes back with the cgroup.
    ///
    /// `stats`: the group reports its resource use (not a one-shot run's
    /// private group), so a spare's earlier use is measured, to be left out.
    pub(crate) fn create(
        parent: &Path,
        has_kill: bool,
        name: Option<&str>,
        guard: Option<&Guard>,
        stats: bool,
    ) -> io::Result<(Cgroup, Option<Ticket>)> {
        // Before the group's first child (see `reaper::ensure`).
        reaper::ensure();
        // Before the descriptors run out (see `kill_now`).
        super::reserve::ensure();
        let pooled = match name {
            None => super::cgroup_pool::take(parent, stats),
            Some(_) => None,
        };
        if let Some(spare) = pooled {
            let cg = Cgroup {
                path: spare.path,
                dir: Mutex::new(Some(spare.dir)),
                events: Mutex::new(spare.events),
                has_kill,
                removed: AtomicBool::new(false),
                killed: AtomicBool::new(false),
                spare: true,
                reusable: true,
                tenure: Default::default(),
                cpu_base: spare.cpu_base,
                cpu_stat: Mutex::new(spare.cpu_stat),
                limits: Mutex::new(spare.limits),
            };
            return Ok((cg, spare.ticket));
        }
        // `<pid>.<pid namespace>.<start time>` (see `names.rs`).
        let owner = super::names::own();
        // Fresh directories removed under us (see below); bounded, so a
        // hostile loop of removals can't keep us here.
        let mut lost = 0;
        loop {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let path = match name {
                None => parent.join(format!("{NAME_PREFIX}{owner}-{seq}")),
                Some(name) => parent.join(format!("{NAME_PREFIX}{owner}-{seq}-{name}")),
            };
            // Registered first: a failed registration leaves the group
            // unguarded, which the container reports (it tries again).
            let ticket = guard.and_then(|g| g.register_cgroup(&path, has_kill, &[], None).ok());
            crate::sys::fault::pause(crate::sys::fault::Point::GuardRegistered);
            let forget = |ticket: Option<Ticket>| {
                if let (Some(t), Some(g)) = (ticket, guard) {
                    g.unregister(t);
                }
            };
            let made =
                crate::sys::fault::io_check(crate::sys::fault::Point::CgroupMkdir).and_then(|()| {
                    rustix::fs::mkdir(&path, Mode::from_raw_mode(0o755)).map_err(io::Error::from)
                });
            match made {
                Ok(()) => {}
                // A directory of that name, left by a dead owner that had
                // our pid (and our pid namespace and start time: not
                // unless `/proc` could not tell them, see `names.rs`).
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    forget(ticket);
                    continue;
                }
                Err(e) => {
                    forget(ticket);
                    return Err(e);
                }
            }
            let dir = match rustix::fs::open(
                &path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                // Removed already (see below): nothing of ours to remove.
                Err(rustix::io::Errno::NOENT) => {
                    forget(ticket);
                    lost_one(&mut lost)?;
                    continue;
                }
                Err(e) => {
                    let _ = rustix::fs::rmdir(&path);
                    forget(ticket);
                    return Err(e.into());
                }
            };
            crate::sys::fault::pause(crate::sys::fault::Point::CgroupUnlocked);
            // Held while any fd of ours is open on it: tells the stale
            // sweep of a pkit in another pid namespace, which can't judge
            // our pid, that the directory is alive. A sweep leaves a
            // directory this young alone, so only a dead owner's guard can
            // hold it exclusively: one that registered this name (in its
            // own pid namespace) and is removing it (`guard/claim.rs`).
            let locked = rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockShared);
            // Once locked, no guard's rmdir can take it; but one may have
            // in the microseconds since our `mkdir`, and a directory of the
            // name made since is another owner's. So the path must still
            // name the directory we hold. One `stat` per fresh directory
            // (spares skip it): the `mkdir` costs far more.
            // Held exclusively: that guard is removing it.
            let ino = ino_of(&dir);
            let kept = locked != Err(rustix::io::Errno::WOULDBLOCK)
                && match rustix::fs::stat(&path) {
                    // As in `ino_of`.
                    #[allow(clippy::unnecessary_cast)]
                    Ok(st) => st.st_ino as u64 == ino,
                    Err(rustix::io::Errno::NOENT) => false,
                    // Not known to be ours: not removed (the stale sweep
                    // takes it once we are gone).
                    Err(e) => {
                        forget(ticket);
                        return Err(e.into());
                    }
                };
            if !kept {
                drop(dir);
                forget(ticket);
                lost_one(&mut lost)?;
                continue;
            }
            // Before any process is in it: the guard ends only a directory
            // it knows this process made (a name is unique per pid
            // namespace only; see `guard/claim.rs`).
            crate::sys::fault::pause(crate::sys::fault::Point::CgroupMade);
            if let (Some(t), Some(g)) = (&ticket, guard) {
                g.made(t, ino);
            }
            let cg = Cgroup {
                path,
                dir: Mutex::new(Some(Arc::new(dir))),
                events: Mutex::new(None),
                has_kill,
                removed: AtomicBool::new(false),
                killed: AtomicBool::new(false),
                spare: false,
                reusable: name.is_none(),
                tenure: Default::default(),
                cpu_base: 0,
                cpu_stat: Mutex::new(None),
                limits: Mutex::new(None),
            };
            return Ok((cg, ticket));
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's inode number (for the guard's registration of the
    /// existing directory); 0 if it can't be had.
    pub(crate) fn ino(&self) -> u64 {
        self.dir().map_or(0, |dir| ino_of(&dir))
    }

    /// The group's hold on the directory (see [`Tenure`]).
    pub(crate) fn tenure(&self) -> &Arc<Tenure> {
        &self.tenure
    }

    /// CPU time of the directory's earlier groups, in µs (see `cpu_base`).
    pub(crate) fn cpu_base(&self) -> u64 {
        self.cpu_base
    }

    /// The open directory (for `clone3(CLONE_INTO_CGROUP)`, and every
    /// file opened in it); `NotFound` once released.
    pub(crate) fn dir(&self) -> io::Result<Arc<OwnedFd>> {
        lock(&self.dir)
            .clone()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the group's cgroup is closed"))
    }

    /// Notes that the kernel killed a child placed here with
    /// `clone3(CLONE_INTO_CGROUP)` at birth (see
    /// `spawn::spawn_into_cgroup`): the directory is not pooled, as one
    /// pkit killed; and whether it was a spare (which someone may have
    /// killed from outside while an earlier group used it).
    pub(crate) fn note_birth_kill(&self) -> bool {
        self.killed.store(true, Ordering::Release);
        self.spare
    }

    /// Whether teardown uses `cgroup.kill` (else freeze + kill + thaw).
    pub(crate) fn has_kill(&self) -> bool {
        self.has_kill
    }

    fn open_file(&self, name: &str, flags: OFlags) -> io::Result<OwnedFd> {
        let dir = self.dir()?;
        rustix::fs::openat(&*dir, name, flags | OFlags::CLOEXEC, Mode::empty())
            .map_err(io::Error::from)
    }

    /// Opens `cgroup.procs` for writing (used by a child that joins itself).
    pub(crate) fn open_procs_for_join(&self) -> io::Result<OwnedFd> {
        self.open_file("cgroup.procs", OFlags::WRONLY)
    }

    /// Opens `cgroup.events` for reading and waiting.
    pub(crate) fn open_events(&self) -> io::Result<OwnedFd> {
        self.open_file("cgroup.events", OFlags::RDONLY)
    }

    /// Reads `cgroup.events` through the kept fd (opened the first time).
    fn read_kept_events(&self) -> io::Result<Events> {
        let mut kept = lock(&self.events);
        let fd = match &*kept {
            Some(fd) => fd,
            None => kept.insert(Arc::new(self.open_events()?)),
        };
        read_events(fd)
    }

    fn write_file(&self, name: &str, value: &[u8]) -> io::Result<()> {
        let fd = self.open_file(name, OFlags::WRONLY)?;
        let mut f = std::fs::File::from(fd);
        f.write_all(value)
    }

    /// The pids currently in the cgroup and every cgroup below it (the
    /// kernel drops a process from `cgroup.procs` when it exits).
    pub(crate) fn pids(&self) -> io::Result<Vec<i32>> {
        let pids = self.tenure.during(|| subtree::pids(&self.path));
        pids.unwrap_or_else(|| Ok(Vec::new()))
    }

    /// Writes `cgroup.freeze` without waiting for the kernel to confirm.
    pub(crate) fn write_freeze(&self, on: bool) -> io::Result<()> {
        self.write_ours("cgroup.freeze", if on { b"1" } else { b"0" })
    }

    /// [`write_file`](Self::write_file) while the directory is the group's
    /// (else `NotFound`: it was handed on with the group closed).
    fn write_ours(&self, name: &str, value: &[u8]) -> io::Result<()> {
        self.tenure
            .during_or_closed(|| self.write_file(name, value))
    }

    /// Writes one of the cgroup's interface files (`memory.max`, …).
    pub(crate) fn write_attr(&self, name: &str, value: &str) -> io::Result<()> {
        self.write_ours(name, value.as_bytes())
    }

    /// Reads one of the cgroup's interface files, if it exists.
    pub(crate) fn read_attr(&self, name: &str) -> Option<String> {
        self.tenure.during(|| self.read_file(name)).flatten()
    }

    fn read_file(&self, name: &str) -> Option<String> {
        let fd = self.open_file(name, OFlags::RDONLY).ok()?;
        let mut text = String::new();
        std::fs::File::from(fd).read_to_string(&mut text).ok()?;
        Some(text)
    }

    /// Moves process `pid` into the cgroup (the caller checks that the
    /// directory is still the group's: see [`Tenure::during`]).
    pub(crate) fn add_process(&self, pid: i32) -> io::Result<()> {
        self.write_file("cgroup.procs", pid.to_string().as_bytes())
    }

    /// Waits (blocking this thread) until the cgroup is empty or `deadline`
    /// passes; returns whether it is empty.
    pub(crate) fn wait_empty_blocking(&self, deadline: Instant) -> io::Result<bool> {
        let events = self.open_events()?;
        loop {
            if is_empty_or_gone(&events)? {
                return Ok(true);
            }
            if !wait_event_change(&events, deadline)? {
                return is_empty_or_gone(&events);
            }
        }
    }

    /// Waits asynchronously until the cgroup is empty (or gone: only an
    /// empty cgroup can be removed, by whoever removed it). The change
    /// notification is the wake-up; re-reads without one are the safety
    /// net (see [`wait_empty_or_gone`](super::events::wait_empty_or_gone)),
    /// so a notification that never comes can't hang a close.
    /// At the descriptor limit the reserve's slot serves (see
    /// [`reserve`](super::reserve)), taken back once the wait is over (or
    /// dropped), for the next group's last resort.
    pub(crate) async fn wait_empty(&self) -> io::Result<()> {
        // Declared first, so dropped last: after the descriptor it frees.
        let _refill = super::reserve::Refill;
        let events = super::reserve::with_reserve(|| self.open_events())?;
        let afd = super::register(events, tokio::io::Interest::PRIORITY)?;
        super::events::wait_empty_or_gone(&afd).await
    }

    /// Waits until the cgroup, killed with [`kill`](Self::kill), is empty.
    /// `cgroup.kill` sends each process's SIGKILL to its main thread (seen
    /// on Linux 6.18), and a process whose main thread has ended while its
    /// other threads run on (`pthread_exit` in `main`; `Zl` in `ps`) never
    /// acts on it. So a cgroup still populated after [`RECHECK`] is killed
    /// again member by member through `kill_again` (the container's
    /// `signal_async(SIGKILL)`: through pidfds, which signal the whole
    /// process, the cgroup frozen meanwhile), and again after each further
    /// one. `kill_again` awaits its freeze's confirmation: a member the
    /// kernel can't freeze (held in uninterruptible sleep) kept the old
    /// pass waiting up to 5 s in a blocking `poll` on the thread that
    /// polled this close, every second while it stayed.
    pub(crate) async fn wait_killed<F>(&self, mut kill_again: impl FnMut() -> F) -> io::Result<()>
    where
        F: std::future::Future<Output = io::Result<()>>,
    {
        loop {
            match tokio::time::timeout(RECHECK, self.wait_empty()).await {
                Ok(done) => return done,
                Err(_) => kill_again().await?,
            }
        }
    }

    /// Leaves the directory alone from now on, dropping included: this is
    /// a copy in a child forked without `exec`, and the cgroup its parent's.
    pub(crate) fn disown(&self) {
        self.removed.store(true, Ordering::Release);
    }

    /// Removes the directory, and first every cgroup below it (deepest
    /// first: a program in the group may have made its own, e.g. a nested
    /// pkit). Fails with `EBUSY` while it has members.
    pub(crate) fn remove(&self) -> io::Result<()> {
        if self.removed.load(Ordering::Acquire) {
            return Ok(());
        }
        reaper::remove_tree(&self.path)?;
        self.removed.store(true, Ordering::Release);
        Ok(())
    }

    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Whether someone else removed the directory (an administrator's
    /// `rmdir`, a cleanup script): a name looked up through the kept fd of a
    /// removed directory is not found. The kernel removes only a cgroup
    /// without members or sub-cgroups, so nothing of the group is left to
    /// end. Marks it removed.
    pub(crate) fn removed_from_outside(&self) -> bool {
        let Ok(dir) = self.dir() else {
            return false;
        };
        let flags = rustix::fs::AtFlags::SYMLINK_NOFOLLOW;
        match rustix::fs::statat(&*dir, "cgroup.procs", flags) {
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NODEV) => {
                self.removed.store(true, Ordering::Release);
                true
            }
            _ => false,
        }
    }
}

impl Cgroup {
    /// Kills whatever is left, waits briefly for the kernel to empty the
    /// cgroup, and removes it. SIGKILLed processes normally leave within
    /// microseconds; if one lingers (uninterruptible I/O, a huge address
    /// space being torn down) the reaper thread finishes the job, so a
    /// `Drop` on an async worker thread is never parked for long.
    ///
    /// `then_remove` are directories (v1 cgroups of the same members) to
    /// remove once this one is empty; `after` is called once this one is
    /// removed (see [`remove_later`](Self::remove_later)).
    pub(crate) fn teardown(&self, then_remove: Vec<PathBuf>, after: Option<AfterRemoval>) {
        // Already empty (the kernel refuses to remove a populated cgroup):
        // nothing to kill or wait for.
        if self.is_removed() || self.remove().is_ok() {
            removed(&then_remove, after);
            return;
        }
        let _ = self.kill();
        let deadline = Instant::now() + DROP_WAIT;
        if self.wait_empty_blocking(deadline).unwrap_or(false) && self.remove().is_ok() {
            removed(&then_remove, after);
            return;
        }
        // Not empty yet: SIGKILL each member too, through pidfds, for a
        // process `cgroup.kill` can't reach (see `wait_killed`); the reaper
        // thread only waits.
        if self.has_kill {
            let _ = subtree::kill_members(&self.path);
        }
        self.remove_later(then_remove, after);
    }

    /// Removes the (killed) cgroup now if it can, else hands it to the
    /// reaper thread, which removes it once `cgroup.events` says it is
    /// empty; then removes `then_remove`. Either way the cgroup counts as
    /// removed from here on.
    ///
    /// `after` (dropping the group's owner-death guard registration) is
    /// called once the directory is gone, by the reaper thread if it is
    /// the one to remove it, and never if it can't be removed: an owner
    /// killed before that leaves the directory to its guard, not behind.
    pub(crate) fn remove_later(&self, then_remove: Vec<PathBuf>, after: Option<AfterRemoval>) {
        if self.is_removed() || self.remove().is_ok() {
            removed(&then_remove, after);
            return;
        }
        match self.open_events() {
            Ok(events) => {
                self.removed.store(true, Ordering::Release);
                reaper::remove_cgroup_later(self.path.clone(), events, then_remove, after);
            }
            Err(_) => {
                // Not removed: `after` is dropped uncalled, the guard's
                // registration kept.
                let gone = self.remove().is_ok();
                remove_dirs(&then_remove);
                if gone {
                    removed(&[], after);
                }
            }
        }
    }
}

/// The inode number of the open directory `dir`; 0 (not compared by the
/// guard) if `fstat` fails.
// ino_t is u64 where pkit builds for 64-bit targets, narrower on some.
#[allow(clippy::unnecessary_cast)]
fn ino_of(dir: &OwnedFd) -> u64 {
    rustix::fs::fstat(dir).map_or(0, |st| st.st_ino as u64)
}

/// The cgroup is removed: removes `then_remove` and calls `after`.
fn removed(then_remove: &[PathBuf], after: Option<AfterRemoval>) {
    remove_dirs(then_remove);
    if let Some(after) = after {
        after();
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.teardown(Vec::new(), None);
    }
}

/// How long `Drop` waits for a killed cgroup to empty before handing the
/// directory to the reaper thread.
const DROP_WAIT: Duration = Duration::from_millis(10);

#[path = "cgroup_freeze.rs"]
mod freeze;
pub(crate) use freeze::FREEZE_WAIT;
#[path = "cgroup_retire.rs"]
mod retire;

#[cfg(test)]
#[path = "cgroup_tests.rs"]
mod tests;
