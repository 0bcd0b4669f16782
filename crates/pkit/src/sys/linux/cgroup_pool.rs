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
//! - Each spare keeps its directory open, and with it the shared `flock`
//!   its group took (see `Cgroup::create`): a pkit in another pid namespace
//!   sharing this cgroup, which can't tell whether our pid is alive, sees
//!   the lock and leaves the spare alone. Keeping the fd costs no syscall
//!   per reuse: the pool shares the group's open fd (and its open
//!   `cgroup.events`, when it has one) and hands them back when taken, in
//!   place of opening the paths again.
//! - The pool belongs to the process that filled it: a child forked
//!   without exec (which inherits a copy of the list) neither takes from
//!   it, adds to it, nor empties it at its exit; nor does it take the
//!   pool's lock, which it may have inherited held.
//! - A forked copy (`sys::pid::forked`) pools a directory only when its
//!   own owner-death guard covers it (a copy of an owner that had started
//!   its guard has none: it can't use its maker's). A copy usually ends
//!   with `_exit`, which runs no `atexit` handler: an unguarded spare of
//!   its own would stay behind until some other pkit process's stale
//!   sweep. Its groups' directories are removed at their close instead.
//! - A pooled directory keeps its registration with the owner-death guard
//!   (if its group had one), so reusing it costs no message to the guard,
//!   and a process killed outright still has its spares removed — by the
//!   guard, or, without one, by the next pkit process to create a group
//!   (the stale sweep of empty `pkit-<pid>.<ns>.<start>-<n>` directories of
//!   dead owners).
//! - At normal process exit (`exit`, return from `main`) an `atexit`
//!   handler removes every pooled directory.
//! - [`release_all`] removes the spares now (`pkit::release_spare_cgroups`);
//!   one it cannot remove stays pooled and registered.
//! - A spare someone else removed (`rmdir` by an administrator) is noticed
//!   when it would be taken (its kept limits files answer `ENODEV`) and
//!   dropped: the next group gets a fresh directory.
//! - A spare whose `cgroup.max.descendants` or `cgroup.max.depth` a run
//!   lowered is never handed out: both are read when it is taken (see
//!   [`limits_at_max`]), and such a spare is removed instead.
//! - A spare another root process froze, or moved a process into, while
//!   it was pooled is never handed out either: its `cgroup.events` is read
//!   when it is taken (see [`still_idle`]), and such a spare is removed
//!   (one with a stranger in it is only forgotten, its guard registration
//!   dropped: the stranger is not pkit's to end, now or when the owner
//!   ends).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::sys::creator::Creator;
use crate::sys::guard::{self, Ticket};

/// How many spare directories a process keeps: enough for a burst of
/// concurrent one-shot runs (a 16-way fan-out) to reuse them all.
const MAX: usize = 16;

/// One spare directory.
pub(crate) struct Spare {
    pub(crate) path: PathBuf,
    /// The open directory, holding the shared lock that marks it alive.
    pub(crate) dir: Arc<OwnedFd>,
    /// Its open `cgroup.events`, if its group opened it.
    pub(crate) events: Option<Arc<OwnedFd>>,
    /// Its registration with the owner-death guard, if it has one.
    pub(crate) ticket: Option<Ticket>,
    /// Its earlier groups' CPU time (`usage_usec` of `cpu.stat`), measured
    /// when a group that reports its stats takes it; else 0.
    pub(crate) cpu_base: u64,
    /// Its open `cpu.stat`, once a group that reports its stats took it
    /// (kept, as `events`, so each later measure is one `pread`).
    pub(crate) cpu_stat: Option<Arc<OwnedFd>>,
    /// Its open `cgroup.max.descendants` and `cgroup.max.depth`, opened
    /// when it was first pooled (see `cgroup_retire`) and read each time it
    /// is taken (see [`limits_at_max`]).
    pub(crate) limits: Option<Arc<[OwnedFd; 2]>>,
}

struct Pool {
    spares: Vec<Spare>,
    /// Set by the exit handler: no more pooling.
    closed: bool,
    /// The process that registered the exit handler (`None`: none yet).
    /// A child forked without exec inherits the handler and the list; if
    /// it calls `exit` it must not remove its parent's spares.
    owner: Option<Creator>,
}

impl Pool {
    /// Whether this process filled the pool (not a forked copy's list).
    fn ours(&self) -> bool {
        self.owner.is_some_and(Creator::is_here)
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    spares: Vec::new(),
    closed: false,
    owner: None,
});

/// The identity (`sys::pid::identity`) of the process that filled the
/// pool, 0 before; outside the lock, so that a forked copy tells whose the
/// pool is without taking the lock, which it may have inherited held (a
/// fork while another thread of its parent was taking or offering a
/// spare): it would wait for ever. The lock is waited for only by the
/// process that filled the pool ([`filled_here`]: it took the lock itself,
/// after any fork it came from, so only its own threads hold it); before
/// any process did, nothing is pooled, and the first fill only tries it
/// (see [`offer`]).
static FILLED_BY: AtomicU64 = AtomicU64::new(0);

/// Whether this process is a forked copy of the one that filled the pool
/// (the pool is not ours, and its lock is not to be taken).
fn a_copy() -> bool {
    let by = FILLED_BY.load(Ordering::Relaxed);
    by != 0 && by != crate::sys::pid::identity()
}

/// Whether this process filled the pool: the only one that waits for its
/// lock (see [`FILLED_BY`]).
fn filled_here() -> bool {
    FILLED_BY.load(Ordering::Relaxed) == crate::sys::pid::identity()
}

/// A spare directory under `parent`, open (and still locked), with its
/// guard registration, if there is one.
///
/// `stats`: for a group that reports its resource use, which must not
/// count the spare's earlier groups'. Their CPU time is measured (the
/// spare's `cpu_base`), and a spare with memory accounting
/// (`memory.current`: its peak can't be reset) is left for one-shot runs.
///
/// Without one, the caller makes a new directory: `parent`'s `cgroup.procs`
/// is looked up first (see [`warm_procs_inode`]).
pub(crate) fn take(parent: &Path, stats: bool) -> Option<Spare> {
    let spare = take_spare(parent, stats);
    if spare.is_none() {
        warm_procs_inode(parent);
    }
    spare
}

/// Whether the open cgroup directory `dir` accounts memory.
fn accounts_memory(dir: &OwnedFd) -> bool {
    rustix::fs::statat(dir, "memory.current", rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

/// `usage_usec` of `spare`'s `cpu.stat` (opened and kept the first time),
/// 0 where it can't be read: the group's stats then can't read it either.
fn cpu_usage(spare: &mut Spare) -> u64 {
    if spare.cpu_stat.is_none() {
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC;
        let mode = rustix::fs::Mode::empty();
        spare.cpu_stat = rustix::fs::openat(&*spare.dir, "cpu.stat", flags, mode)
            .ok()
            .map(Arc::new);
    }
    let Some(fd) = &spare.cpu_stat else {
        return 0;
    };
    let mut buf = [0u8; 512];
    let n = rustix::io::pread(&**fd, &mut buf, 0).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn take_spare(parent: &Path, stats: bool) -> Option<Spare> {
    // Not filled by this process: nothing here is ours to take (empty, or
    // a forked copy's list), and the lock may be held by a thread of the
    // parent this process was copied from (a copy forked while that thread
    // looked into the still empty pool waited for it for ever).
    if !filled_here() {
        return None;
    }
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if !pool.ours() {
        // Empty, or a forked child's copy of its parent's list: those
        // directories are the parent's to reuse, never ours (two processes
        // must not share one).
        return None;
    }
    loop {
        let i = pool
            .spares
            .iter()
            .position(|s| s.path.parent() == Some(parent))?;
        if stats && accounts_memory(&pool.spares[i].dir) {
            return None;
        }
        let mut spare = pool.spares.swap_remove(i);
        let fit = match limits_at_max(&spare) {
            Fit::Yes => still_idle(&mut spare),
            other => other,
        };
        match fit {
            Fit::Yes => {
                if stats {
                    spare.cpu_base = cpu_usage(&mut spare);
                }
                return Some(spare);
            }
            Fit::Lowered => {
                discard(spare);
                continue;
            }
            Fit::Occupied => {
                // Someone else's process is in it: the directory is no
                // longer pkit's to tear down (the guard would kill that
                // process when this one ends). Removed if it can be (the
                // process may have left), forgotten either way.
                tracing::debug!(target: "pkit", dir = %spare.path.display(), "a spare cgroup was given a process from outside: forgotten, not reused");
                let _ = std::fs::remove_dir(&spare.path);
                unregister(spare.ticket);
                continue;
            }
            Fit::Removed => {}
        }
        // Removed behind our back (an administrator's `rmdir`, a cleanup
        // script): its open fd names a dead cgroup, into which no child can
        // be placed. Forget it; the caller makes a fresh directory.
        tracing::debug!(target: "pkit", dir = %spare.path.display(), "a spare cgroup was removed by someone else");
        unregister(spare.ticket);
    }
}

/// What a spare's limits files say when it is taken.
enum Fit {
    /// Both `max`: the spare is as good as a new directory.
    Yes,
    /// The directory was removed behind our back: the files of a removed
    /// cgroup, open or not, answer `ENODEV`.
    Removed,
    /// A run lowered a limit (or the files can't be read), or it was
    /// frozen from outside: not reused.
    Lowered,
    /// Someone else moved a process into it: not reused, and not torn
    /// down by pkit or its guard either.
    Occupied,
}

/// Whether the spare still has the sub-cgroup limits a new cgroup has
/// (`max`), read through its kept `cgroup.max.descendants` and
/// `cgroup.max.depth` (two `pread`s).
///
/// A program of the run may lower its own cgroup's limits, and a spare
/// that kept one would refuse the next group's sub-cgroups (its later
/// starts' leaves, a nested pkit's groups). Checked here, when the spare
/// is taken, rather than when it came back: the same two reads then also
/// tell whether the directory still exists, which took a `stat` of its
/// own on every take before.
fn limits_at_max(spare: &Spare) -> Fit {
    let Some(fds) = &spare.limits else {
        return Fit::Lowered;
    };
    for fd in fds.iter() {
        let mut buf = [0u8; 16];
        match rustix::io::pread(fd, &mut buf, 0) {
            Ok(n) if buf[..n] == *b"max\n" => {}
            Err(rustix::io::Errno::NODEV | rustix::io::Errno::NOENT) => return Fit::Removed,
            _ => return Fit::Lowered,
        }
    }
    Fit::Yes
}

/// [`Fit::Yes`] when the spare's `cgroup.events` still says `populated 0`
/// and `frozen 0` (one `pread` of its kept file, opened now if its group
/// never opened it); [`Fit::Occupied`] when a process is in it,
/// [`Fit::Lowered`] otherwise, so it is not handed out.
///
/// A spare belongs to no group, so nothing of pkit's acts on it while it
/// is pooled, but another root process may: one that froze it would have
/// the next run's child born frozen, before its `exec`, and the spawn,
/// which waits for that `exec`, blocked for good; one that moved a process
/// of its own into it would have the next run share a container with that
/// process, and its close kill it.
fn still_idle(spare: &mut Spare) -> Fit {
    if spare.events.is_none() {
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC;
        match rustix::fs::openat(
            &*spare.dir,
            "cgroup.events",
            flags,
            rustix::fs::Mode::empty(),
        ) {
            Ok(fd) => spare.events = Some(Arc::new(fd)),
            Err(rustix::io::Errno::NODEV | rustix::io::Errno::NOENT) => return Fit::Removed,
            Err(_) => return Fit::Lowered,
        }
    }
    let Some(fd) = &spare.events else {
        return Fit::Lowered;
    };
    match super::events::read_events(fd) {
        Ok(ev) if !ev.populated && !ev.frozen => Fit::Yes,
        Ok(ev) if ev.populated => Fit::Occupied,
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Fit::Removed,
        _ => Fit::Lowered,
    }
}

/// Removes a spare that must not be reused, and then drops its guard
/// registration. One that can't be removed keeps its registration (the
/// guard removes it when this process ends), as `release_all` does.
fn discard(spare: Spare) {
    tracing::debug!(target: "pkit", dir = %spare.path.display(), "a spare cgroup's limits were lowered, or it was frozen or given a process from outside: removed, not reused");
    if super::reaper::remove_tree(&spare.path).is_ok() {
        unregister(spare.ticket);
    }
}

/// Looks `cgroup.procs` of `dir` up once (a `stat`), which leaves its
/// dentry, and the kernel's inode of the file with it, cached.
///
/// A child born into a cgroup with `clone3(CLONE_INTO_CGROUP)` is checked
/// as a write to `cgroup.procs` would be: of its target cgroup, and of the
/// closest cgroup holding both that one and ours (`parent`, this process's
/// own cgroup, for ours). The kernel judges both through the files'
/// inodes, and cgroupfs keeps no inode nobody holds: without a cached
/// dentry each spawn allocates, initialises and frees two of them. A spare
/// cgroup's own file is looked up once, when the directory is first pooled
/// (see [`warm_procs_inode_at`]); `parent`'s when no spare is left (see
/// [`take`]). Nothing depends on it but speed: a dentry the kernel drops
/// meanwhile (memory pressure) only brings the allocation back.
fn warm_procs_inode(dir: &Path) {
    let _ = rustix::fs::stat(dir.join("cgroup.procs"));
}

/// [`warm_procs_inode`] for the open cgroup directory `dir` (one
/// `fstatat`), once per directory: an unused dentry stays cached, and
/// cgroupfs gives no reason to drop it, until the directory is removed.
pub(crate) fn warm_procs_inode_at(dir: std::os::fd::BorrowedFd<'_>) {
    let _ = rustix::fs::statat(dir, "cgroup.procs", rustix::fs::AtFlags::SYMLINK_NOFOLLOW);
}

/// Offers an empty, unfrozen directory (its open fd, shared: the pool's
/// copy keeps the lock once the group lets go of it) with its guard
/// registration. `Ok`: taken (the caller must forget the directory); `Err`
/// gives the ticket back when the pool is full or closed, or this process
/// is a forked copy and no guard covers the directory.
pub(crate) fn offer(spare: Spare) -> Result<(), Option<Ticket>> {
    let ticket = spare.ticket;
    if a_copy() || (ticket.is_none() && crate::sys::pid::forked()) {
        return Err(ticket);
    }
    let mut pool = if filled_here() {
        POOL.lock().unwrap_or_else(|e| e.into_inner())
    } else {
        // The first fill, or a forked copy's (its parent filled none before
        // the fork): only tried, as the lock may be held for ever by a
        // thread of the parent (forked while it was taking from or filling
        // the pool). Busy, the directory is removed instead of pooled.
        match POOL.try_lock() {
            Ok(pool) => pool,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Err(ticket),
        }
    };
    if pool.closed || pool.spares.len() >= MAX {
        return Err(ticket);
    }
    if !pool.ours() {
        if pool.owner.is_some() {
            // We are a forked child of the process that filled the pool.
            return Err(ticket);
        }
        // Raw: atexit has no rustix form.
        // SAFETY: `remove_all_at_exit` is an `extern "C" fn()` that does not
        // unwind (it catches nothing that could panic: see its body).
        if unsafe { libc::atexit(remove_all_at_exit) } != 0 {
            return Err(ticket);
        }
        pool.owner = Some(Creator::here());
        FILLED_BY.store(crate::sys::pid::identity(), Ordering::Relaxed);
    }
    if let Some(t) = &ticket {
        if let Ok(g) = guard::get() {
            g.set_spare(t, true);
        }
    }
    pool.spares.push(Spare { ticket, ..spare });
    Ok(())
}

fn unregister(ticket: Option<Ticket>) {
    if let Some(t) = ticket {
        if let Ok(g) = guard::get() {
            g.unregister(t);
        }
    }
}

/// The exit handler: removes every pooled directory and closes the pool.
extern "C" fn remove_all_at_exit() {
    // try_lock: a thread that holds the lock while the process exits must
    // not hang the exit; the guard (if any) removes the directories then.
    let Ok(mut pool) = POOL.try_lock() else {
        return;
    };
    if !pool.ours() {
        return;
    }
    pool.closed = true;
    // The guard is not told: once this process is gone it ends what is
    // still registered, and finds these directories removed already.
    for spare in pool.spares.drain(..) {
        let _ = super::reaper::remove_tree(&spare.path);
    }
}

/// Removes every pooled directory now; the pool stays open for later runs.
/// A directory that cannot be removed stays pooled, and registered with
/// the owner-death guard: it still exists, so the guard (or a later
/// release, or the exit handler) must still cover it.
pub(crate) fn release_all() {
    // Nothing pooled by this process (see `take_spare`).
    if !filled_here() {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if !pool.ours() {
        return;
    }
    let spares = std::mem::take(&mut pool.spares);
    for spare in spares {
        match super::reaper::remove_tree(&spare.path) {
            Ok(()) => unregister(spare.ticket),
            Err(e) => {
                tracing::debug!(target: "pkit", dir = %spare.path.display(), error = %e, "cannot remove a spare cgroup; it stays pooled");
                pool.spares.push(spare);
            }
        }
    }
}
