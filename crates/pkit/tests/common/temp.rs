//! Unique temporary names. A test's own file, directory or cgroup is named
//! by this process's pid, its pid namespace (another run of the suite
//! under `unshare -pf` has our pid, and the same temp dir and cgroup file
//! system), the clock's nanoseconds (an earlier process of ours with the
//! same pid, in a namespace since gone) and a counter (this process).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A name no other call makes, in this run or another:
/// `pkit-test-<pid>.<pid namespace>-<nanoseconds>-<counter>-<tag>`.
pub fn unique_name(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "pkit-test-{}.{}-{nanos}-{n}-{tag}",
        std::process::id(),
        super::pid_ns()
    )
}

/// [`unique_name`]`(tag)` in the temp dir. Nothing is created.
pub fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(unique_name(tag))
}
