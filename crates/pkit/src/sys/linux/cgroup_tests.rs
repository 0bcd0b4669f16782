//! Tests of `cgroup.rs` (a file of their own: that one is near the
//! 600-line limit).

use super::*;

/// A cgroup removed while someone waits for it to empty (only an empty
/// one can be removed) ends the wait at once, both ways, instead of
/// waiting for a notification about a file that no longer exists.
#[test]
fn a_removed_cgroup_counts_as_empty() {
    let Ok(host) = crate::sys::linux::host::cgroup_host() else {
        eprintln!("skipped: no cgroup v2 here");
        return;
    };
    let Ok((cg, None)) = Cgroup::create(&host.parent_dir, host.has_kill, None, None, true) else {
        eprintln!("skipped: cannot create cgroups here");
        return;
    };
    let events = cg.open_events().expect("cgroup.events");
    assert!(
        is_empty_or_gone(&events).expect("read"),
        "a new cgroup is empty"
    );
    std::fs::remove_dir(cg.path()).expect("rmdir");
    assert!(is_empty_or_gone(&events).expect("a removed cgroup reads as gone"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // open_events fails on the removed directory: the wait says so
    // rather than hanging.
    let waited =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), cg.wait_empty()).await });
    assert!(waited.is_ok(), "the wait for a removed cgroup hung");
    cg.removed.store(true, Ordering::Release);
}
