//! Names and files: unique temp paths, files a test's programs write,
//! and polls on them; the pid namespace in names.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A name no other call makes, in this run or another:
/// `pkit-cli-<what>-<pid>.<pid namespace>-<nanoseconds>-<counter>`. The
/// namespace: another run of the suite under `unshare -pf` has our pid,
/// and the same temp dir and cgroup file system; the clock: an earlier
/// process with our pid, in a namespace since gone. For a temp file
/// ([`temp_path`]) or a test's own directory or cgroup.
pub fn unique_name(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "pkit-cli-{what}-{}.{}-{nanos}-{}",
        std::process::id(),
        pid_ns(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh temporary path, [`unique_name`]`(what)` in the temp dir.
pub fn temp_path(what: &str) -> PathBuf {
    let path = std::env::temp_dir().join(unique_name(what));
    // A file an earlier process with our pid left (killed before its
    // cleanup) is not this test's.
    let _ = std::fs::remove_file(&path);
    path
}

/// Writes `text` to the file `path`, with permission bits `mode`.
pub fn write_file(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// This process's `PATH` with `dir` put first.
pub fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

pub fn pid_file() -> PathBuf {
    temp_path("pids")
}

/// Polls `file` until it has `want` lines that are numbers.
pub fn read_pids(file: &Path, want: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.len() >= want {
            return pids;
        }
        assert!(Instant::now() < deadline, "pids never appeared in {file:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `file` until it contains `needle`.
pub fn wait_for_text(file: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never appeared in {file:?}: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The prefix of every cgroup directory name of the groups of process
/// `pid` of this pid namespace: `pkit-<pid>.<pid namespace>.` (the owner's
/// start time and the group's count follow; see the library's
/// `sys/linux/names.rs`). Without the namespace, a pkit of another pid
/// namespace with the same pid (another run of the suite under `unshare
/// -pf`) would be taken for `pid`. Works for a dead `pid` too.
pub fn name_prefix(pid: u32) -> String {
    format!("pkit-{pid}.{}.", pid_ns())
}

/// The inode number of this process's pid namespace (0 where there is
/// none to read: no `/proc`).
pub fn pid_ns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    static NS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NS.get_or_init(|| std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino()))
}
