//! Stale directories: those of dead owners, removed once per process.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::sys::linux::names;
pub(super) use crate::sys::linux::names::{owner_of, Owner};

/// How many directory entries one sweep looks at, at most.
const SWEEP_LIMIT: usize = 4096;

/// How young a directory the sweep leaves alone, whatever its owner pid
/// says: its owner may not have locked it yet (the lock is taken right
/// after the `mkdir`). `PKIT_SWEEP_MIN_AGE_SECS` overrides it (for tests).
const MIN_AGE_SECS: i64 = 60;

/// Once per process and parent cgroup: removes empty directories named as
/// pkit names its groups (`pkit-<pid>.<ns>.<start>-<seq>`, or an older
/// pkit's `pkit-<pid>-<seq>`: see `linux/names.rs`) under `parent` whose
/// owner is dead (left by an owner killed before the guard existed, or
/// whose guard was itself killed). An owner moved to another cgroup makes
/// its groups there (`host::cgroup_host`), and sweeps that parent too, at
/// its first group there; the v1 hierarchies are swept at the first call
/// only.
///
/// An owner holds a shared `flock` on every directory it keeps (its open
/// directory fd; for a v1 directory, its open `cgroup.procs`), spares
/// included, and the kernel drops it when the owner's fds go. A directory
/// is removed only if it is older than [`MIN_AGE_SECS`], its lock can be
/// taken exclusively (no live owner in any pid namespace holds it), and,
/// besides, its name does not say its owner may be alive
/// ([`owner_alive`]); it is removed under that exclusive lock. An owner of
/// this pid namespace is judged by its pid and start time; one of another
/// (a container sharing this cgroup hierarchy without a cgroup namespace,
/// a CI job in a pid namespace of its own) can't be looked up here, and
/// its pid, which may be any process's here, says nothing: for its
/// directories the lock alone speaks. So a live owner's directories are
/// never removed, whatever its pid namespace, and a dead owner's are,
/// whatever pid some process here has.
pub(crate) fn sweep_stale_once(parent: &Path) {
    // The parents swept (the owner's cgroups so far: one, unless it was
    // moved), and at most so many: an owner moved among more sweeps the
    // first ones only.
    const PARENTS: usize = 64;
    // A `CopyLock`: a copy forked while another thread held a `Mutex` here
    // (a push allocates) waited on it for ever at its first cgroup.
    static SWEPT: crate::sys::CopyLock<Vec<PathBuf>> = crate::sys::CopyLock::new(Vec::new());
    let first = {
        let mut swept = SWEPT.lock();
        if swept.len() >= PARENTS || swept.iter().any(|p| p == parent) {
            return;
        }
        swept.push(parent.to_path_buf());
        swept.len() == 1
    };
    let min_age = std::env::var("PKIT_SWEEP_MIN_AGE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MIN_AGE_SECS);
    let mut budget = SWEEP_LIMIT;
    let mut dirs = vec![(parent.to_path_buf(), Lock::Dir)];
    // The v1 directories that carried caps have the same names; their
    // owner locks their `cgroup.procs`, the file it keeps open.
    if first {
        dirs.extend(
            crate::sys::linux::v1::hierarchies()
                .values()
                .map(|h| (h.owner_dir.clone(), Lock::Procs)),
        );
    }
    for (dir, lock) in dirs {
        let removed = sweep(&dir, lock, min_age, &mut budget);
        if removed > 0 {
            tracing::debug!(target: "pkit", dir = %dir.display(), removed, "removed stale cgroup directories");
        }
    }
}

/// What an owner keeps locked for a directory.
#[derive(Clone, Copy, Debug)]
pub(super) enum Lock {
    /// The directory itself (a v2 cgroup).
    Dir,
    /// Its `cgroup.procs` (a v1 cgroup).
    Procs,
}

/// Sweeps one directory; returns how many stale directories it removed.
fn sweep(dir: &Path, lock: Lock, min_age: i64, budget: &mut usize) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let me = names::own();
    let judge = Judge::here();
    let now = now_secs();
    let mut removed = 0;
    for entry in entries.flatten() {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        let name = entry.file_name();
        let Some(owner) = owner_of(name.as_bytes()) else {
            continue;
        };
        if owner == me {
            continue;
        }
        let path = entry.path();
        let Some(_held) = stale(&path, owner, &judge, lock, now, min_age) else {
            continue;
        };
        // rmdir refuses a cgroup with members: only empty ones go, their
        // (empty) sub-cgroups first. The exclusive lock goes after.
        if crate::sys::linux::reaper::remove_tree(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether `path` (named for `owner`) is stale: old enough, unlocked, and
/// its owner not alive as far as `judge` can tell. If so, returns the
/// exclusive lock taken on it, to hold while removing it. Each check runs
/// only if the ones before passed; all err towards "alive".
pub(super) fn stale(
    path: &Path,
    owner: Owner,
    judge: &Judge,
    lock: Lock,
    now: i64,
    min_age: i64,
) -> Option<OwnedFd> {
    let made = dir_ctime_secs(path)?;
    if now.saturating_sub(made) < min_age {
        return None;
    }
    let held = lock_exclusive(path, lock)?;
    if judge.owner_alive(owner, made) {
        return None;
    }
    Some(held)
}

/// What this process can tell of an owner from its name: read once per
/// sweep.
pub(super) struct Judge {
    /// This process's pid namespace, if known and if `/proc` numbers
    /// processes in it (only then does `/proc/<pid>` name an owner of it).
    ns: Option<u64>,
}

impl Judge {
    /// The judge of this process.
    pub(super) fn here() -> Judge {
        let ns = names::own().tag.map(|t| t.ns);
        Judge {
            ns: ns.filter(|_| names::proc_is_own()),
        }
    }

    /// Whether `owner`, who made a directory at `made` (its ctime), may
    /// still be alive.
    ///
    /// - Of this pid namespace: a process with its pid and start time
    ///   exists (a later process given its pid is not it). An owner in
    ///   another time namespace reads another start time for itself, and is
    ///   taken for dead: its lock keeps its directories.
    /// - Of another: nothing here says (the lock does; see
    ///   [`sweep_stale_once`]).
    /// - An older pkit's name (a pid only): a process with its pid exists
    ///   and did not start after the directory was made. Errs towards
    ///   "alive" (the pid may be another namespace's).
    pub(super) fn owner_alive(&self, owner: Owner, made: i64) -> bool {
        let Some(tag) = owner.tag else {
            return pid_alive_since(owner.pid, made);
        };
        if self.ns != Some(tag.ns) {
            return false;
        }
        let path = format!("/proc/{}/stat", owner.pid);
        match std::fs::read(path) {
            // Not the stat text we know: err towards "alive".
            Ok(text) => names::start_of(&text).is_none_or(|start| start == tag.start),
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        }
    }
}

/// Takes `flock(LOCK_EX | LOCK_NB)` on what an owner of `path` locks; `None`
/// if a live owner (of any pid namespace) holds it, or it can't be opened
/// or locked.
fn lock_exclusive(path: &Path, lock: Lock) -> Option<OwnedFd> {
    use rustix::fs::{FlockOperation, Mode, OFlags};
    let fd = match lock {
        Lock::Dir => rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ),
        Lock::Procs => rustix::fs::open(
            path.join("cgroup.procs"),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ),
    }
    .ok()?;
    rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).ok()?;
    Some(fd)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Whether the process that created a directory `made` (its ctime) may
/// still be alive, by its pid alone: a process with its pid exists and did
/// not start after the directory was made. Errs towards "alive".
fn pid_alive_since(pid: u32, made: i64) -> bool {
    let fields = match crate::sys::linux::procfs::stat_fields(pid as i32) {
        Ok(fields) => fields,
        // Not the stat text we know: err towards "alive".
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return true,
        Err(_) => return false, // no such process
    };
    let Some(started) = process_start_secs(&fields) else {
        return true;
    };
    // Generous slack: clock adjustments move the two estimates apart.
    started <= made + 60
}

/// A process's start time as wall-clock seconds (boot time plus its start
/// in clock ticks), from its `/proc/<pid>/stat` fields after the comm.
fn process_start_secs(fields: &[String]) -> Option<i64> {
    // fields[0] is field 3 (state); starttime is field 22.
    let ticks: i64 = fields.get(19)?.parse().ok()?;
    let hz = i64::try_from(rustix::param::clock_ticks_per_second()).ok()?;
    if hz <= 0 {
        return None;
    }
    let mut text = String::new();
    std::fs::File::open("/proc/stat")
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    let btime: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + ticks / hz)
}

/// When the directory was made (kernfs sets ctime at creation).
fn dir_ctime_secs(dir: &Path) -> Option<i64> {
    use std::os::unix::fs::MetadataExt;
    Some(std::fs::metadata(dir).ok()?.ctime())
}
