//! Stale directories: those of dead owners, removed once per process.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// How many directory entries one sweep looks at, at most.
const SWEEP_LIMIT: usize = 4096;

/// Once per process: removes empty `pkit-<pid>-<seq>` directories under
/// `parent` whose owner is dead (left by an owner killed before the guard
/// existed, or whose guard was itself killed).
///
/// "Dead" is judged in this process's pid namespace: an owner in another
/// pid namespace that shares this cgroup would look dead. Only our own
/// cgroup directory (and the matching v1 ones) is swept, which another
/// container's pkit does not normally share.
pub(crate) fn sweep_stale_once(parent: &Path) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::AcqRel) {
        return;
    }
    let mut dirs = vec![parent.to_path_buf()];
    // The v1 directories that carried caps have the same names.
    dirs.extend(
        crate::sys::linux::v1::hierarchies()
            .values()
            .map(|h| h.owner_dir.clone()),
    );
    let mut budget = SWEEP_LIMIT;
    for dir in dirs {
        let removed = sweep(&dir, &mut budget);
        if removed > 0 {
            tracing::debug!(target: "pkit", dir = %dir.display(), removed, "removed stale cgroup directories");
        }
    }
}

/// Sweeps one directory; returns how many stale directories it removed.
fn sweep(dir: &Path, budget: &mut usize) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let me = crate::sys::pid::current();
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
        if owner_alive(owner, &path) {
            continue;
        }
        // rmdir refuses a cgroup with members: only empty ones go, their
        // (empty) sub-cgroups first.
        if crate::sys::linux::subtree::remove_tree(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The owner pid in a `pkit-<pid>-<seq>` name, or in a named group's
/// `pkit-<pid>-<seq>-<name>` (the name, whatever it is, is ignored).
pub(super) fn owner_of(name: &[u8]) -> Option<u32> {
    let rest = name.strip_prefix(crate::sys::linux::cgroup::NAME_PREFIX.as_bytes())?;
    let dash = rest.iter().position(|&b| b == b'-')?;
    let (pid, seq) = (&rest[..dash], &rest[dash + 1..]);
    let seq = match seq.iter().position(|&b| b == b'-') {
        Some(end) if end + 1 < seq.len() => &seq[..end],
        Some(_) => return None,
        None => seq,
    };
    if pid.is_empty() || seq.is_empty() || !seq.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}

/// Whether the process that created `dir` may still be alive: a process
/// with its pid exists and did not start after the directory was made.
/// Errs towards "alive": a live owner's directory is never touched.
fn owner_alive(pid: u32, dir: &Path) -> bool {
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return false; // no such process
    };
    let (Some(started), Some(made)) = (process_start_secs(&stat), dir_ctime_secs(dir)) else {
        return true;
    };
    // Generous slack: clock adjustments move the two estimates apart.
    started <= made + 60
}

/// A process's start time as wall-clock seconds (boot time plus its start
/// in clock ticks), from its `/proc/<pid>/stat` text.
fn process_start_secs(stat: &[u8]) -> Option<i64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After the comm: field 3 (state) is the first; starttime is field 22.
    let ticks: i64 = rest.split_ascii_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
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
    Some(btime + ticks / hz as i64)
}

/// When the directory was made (kernfs sets ctime at creation).
fn dir_ctime_secs(dir: &Path) -> Option<i64> {
    use std::os::unix::fs::MetadataExt;
    Some(std::fs::metadata(dir).ok()?.ctime())
}
