//! The stale-directory sweep of a pkit in another pid namespace that shares
//! our cgroup: it can't judge our pid (it has no such process), so only the
//! lock we hold on our directories keeps it from removing them.
//!
//! The other pkit is this test binary run again under `unshare -pf
//! --mount-proc` as the helper `sweep_ns_helper` (a no-op unless
//! `PKIT_SWEEP_NS_HELPER` is set): its first group triggers its sweep. It
//! is told to consider directories of any age (`PKIT_SWEEP_MIN_AGE_SECS=0`),
//! so the lock, not the age rule, is what is tested.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use pkit::{Command, Group, MechanismChoice, SystemRunner};

/// Runs as the other namespace's owner when `PKIT_SWEEP_NS_HELPER` is set.
#[test]
fn sweep_ns_helper() {
    if std::env::var_os("PKIT_SWEEP_NS_HELPER").is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let g = Group::builder()
            .mechanism(MechanismChoice::Cgroup)
            .build()
            .expect("a cgroup group in the other pid namespace");
        let mut p = g.start(&Command::new("true")).expect("start");
        p.wait().await.expect("wait");
        g.close().await.expect("close");
    });
}

/// This process's `pkit-<pid>-*` directory names under `parent`.
fn own_dirs(parent: &Path) -> Vec<String> {
    let prefix = common::name_prefix(std::process::id());
    std::fs::read_dir(parent)
        .expect("the cgroup parent")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The name of the cgroup a one-shot run's program reports from inside.
async fn run_in_cgroup(runner: &Arc<SystemRunner>) -> String {
    let out = Command::new("sh")
        .args(["-c", "grep '^0::' /proc/self/cgroup"])
        .runner(runner.clone())
        .output()
        .await
        .expect("a one-shot run");
    assert!(out.success(), "{:?} {}", out.outcome(), out.stderr_str());
    let line = out.stdout_str().trim().to_string();
    line.rsplit('/').next().expect("a cgroup").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pkit_in_another_pid_namespace_leaves_our_live_directories_alone() {
    let Some(parent) = pkit::host_containment().group_parent else {
        eprintln!("SKIPPED: no cgroup v2 here");
        return;
    };
    // Alone: it counts this process's cgroup directories.
    let alone = common::begin_exclusive().await;
    let probe = std::process::Command::new("unshare")
        .args(["-pf", "--mount-proc", "true"])
        .stdin(Stdio::null())
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "SKIPPED: unshare -pf --mount-proc refused: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED: unshare is unavailable: {e}");
            return;
        }
    }
    // A group made and not yet started (its directory empty), and a spare
    // left by a one-shot run.
    let open = Group::builder()
        .mechanism(MechanismChoice::Cgroup)
        .build()
        .expect("a cgroup group");
    let runner = Arc::new(SystemRunner::with_mechanism(MechanismChoice::Cgroup));
    let spare = run_in_cgroup(&runner).await;
    let mine = own_dirs(&parent);
    assert_eq!(mine.len(), 2, "the open group's and the spare: {mine:?}");
    assert!(mine.contains(&spare), "{spare} pooled: {mine:?}");
    // And a dead owner's empty, unlocked directory, which the other pkit
    // must sweep: proof that its sweep ran.
    let mut dead = std::process::Command::new("true").spawn().expect("true");
    let dead_pid = dead.id();
    dead.wait().expect("wait");
    let stale = parent.join(format!("pkit-{dead_pid}-1"));
    let _ = std::fs::create_dir(&stale);
    assert!(stale.is_dir(), "planted {}", stale.display());

    let exe = std::env::current_exe().expect("test binary");
    let helper = std::process::Command::new("unshare")
        .args(["-pf", "--mount-proc", "sh", "-c", "\"$@\"; exit $?", "sh"])
        .arg(exe)
        .args([
            "sweep_ns_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PKIT_SWEEP_NS_HELPER", "1")
        .env("PKIT_SWEEP_MIN_AGE_SECS", "0")
        .stdin(Stdio::null())
        .output()
        .expect("the helper in a new pid namespace");
    let gone = !stale.is_dir();
    let _ = std::fs::remove_dir(&stale);
    assert!(
        helper.status.success(),
        "the helper failed ({}): {}",
        helper.status,
        String::from_utf8_lossy(&helper.stderr)
    );
    assert!(
        gone,
        "the other pkit did not sweep a dead owner's directory"
    );

    let left = own_dirs(&parent);
    assert_eq!(left, mine, "our live directories were removed");
    // Both still work.
    let mut p = open
        .start(&Command::new("true"))
        .expect("start in the open group");
    p.wait().await.expect("wait");
    open.close().await.expect("close");
    // Its handle holds the exited process until dropped.
    drop(p);
    assert_eq!(run_in_cgroup(&runner).await, spare, "the spare was reused");
    pkit::release_spare_cgroups();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !own_dirs(&parent).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "left: {:?}",
            own_dirs(&parent)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    common::end_exclusive(
        alone,
        "a_pkit_in_another_pid_namespace_leaves_our_live_directories_alone",
    )
    .await;
}
