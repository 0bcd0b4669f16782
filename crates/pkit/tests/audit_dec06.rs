//! Findings of the 2026-12-06 audit (docs/spec-coverage.md): each a test,
//! ignored with its severity while it still reproduces.

mod common;

use std::path::{Path, PathBuf};

use pkit::{Group, MechanismChoice};

/// DESIGN.md: "A group is a child directory of the owner's cgroup", also
/// after the owner was moved to another cgroup (adopted by an outer pkit's
/// group, moved by a service manager). The owner's cgroup was read once per
/// process (`sys/linux/host.rs`, `cgroup_host`), so a moved owner kept
/// making its groups under the cgroup it had left: outside the one that
/// now holds it, where a kill of that one's subtree (the outer group's
/// teardown) misses them (the review's R9 "stale host cache").
///
/// Moving a process is process-wide, so the case runs in a fresh copy of
/// this test binary (`inner_moved_owner`, which does nothing unless
/// `PKIT_AUDIT_MOVED` is set).
#[test]
fn an_owner_moved_to_another_cgroup_makes_groups_there() {
    if !common::cgroup_pass("an_owner_moved_to_another_cgroup_makes_groups_there") {
        return;
    }
    common::in_suite(
        "an_owner_moved_to_another_cgroup_makes_groups_there",
        || {
            let exe = std::env::current_exe().expect("test binary");
            let out = std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "inner_moved_owner",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("PKIT_AUDIT_MOVED", "1")
                .output()
                .expect("re-run the test binary");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && text.contains("INNER-DONE"),
                "{}\n{text}",
                out.status
            );
        },
    );
}

fn parent_of(group: &Group) -> Option<PathBuf> {
    common::cgroup_dir(group).and_then(|d| d.parent().map(Path::to_path_buf))
}

#[test]
fn inner_moved_owner() {
    if std::env::var_os("PKIT_AUDIT_MOVED").is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cgroup = || Group::builder().mechanism(MechanismChoice::Cgroup).build();
        let first = cgroup().expect("a cgroup group");
        let home = parent_of(&first).expect("the first group's parent");
        first.close().await.expect("close the first group");
        drop(first);

        // Move this process to a new cgroup next to its groups.
        let pid = std::process::id().to_string();
        let moved = home.join(format!("audit-moved-{pid}"));
        std::fs::create_dir(&moved).expect("make the new cgroup");
        let moved_in = std::fs::write(moved.join("cgroup.procs"), &pid);

        let second = moved_in.as_ref().ok().map(|()| cgroup());
        let got = match &second {
            Some(Ok(g)) => parent_of(g),
            _ => None,
        };
        if let Some(Ok(g)) = second {
            g.close().await.expect("close the second group");
        }
        // A spare kept for reuse would hold the new cgroup.
        pkit::release_spare_cgroups();

        // Back home, and the new cgroup removed, before any assertion.
        std::fs::write(home.join("cgroup.procs"), &pid).expect("move back");
        std::fs::remove_dir(&moved).expect("remove the new cgroup");
        moved_in.expect("move this process to the new cgroup");
        assert_eq!(
            got.as_deref(),
            Some(moved.as_path()),
            "a group made after the owner moved is not under the owner's cgroup"
        );
        println!("INNER-DONE");
    });
}

/// The audit's note on `guard::sweep_stale_once`: an owner sweeps the
/// stale directories of dead owners (`pkit-<pid>-<n>`, empty, unlocked)
/// from the cgroup it makes its groups in, once per process, so an owner
/// moved to another cgroup, which makes its groups there since (above),
/// never swept that one: a dead owner's directory there stayed. Now each
/// parent is swept at the owner's first group in it.
///
/// In a fresh copy of this test binary (`inner_moved_owner_sweeps`, which
/// does nothing unless `PKIT_AUDIT_MOVED_SWEEP` is set), told to sweep
/// young directories too (`PKIT_SWEEP_MIN_AGE_SECS=0`).
#[test]
fn an_owner_moved_to_another_cgroup_sweeps_it_too() {
    if !common::cgroup_pass("an_owner_moved_to_another_cgroup_sweeps_it_too") {
        return;
    }
    common::in_suite("an_owner_moved_to_another_cgroup_sweeps_it_too", || {
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "inner_moved_owner_sweeps",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PKIT_AUDIT_MOVED_SWEEP", "1")
            .env("PKIT_SWEEP_MIN_AGE_SECS", "0")
            .output()
            .expect("re-run the test binary");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("INNER-DONE"),
            "{}\n{text}",
            out.status
        );
    });
}

#[test]
fn inner_moved_owner_sweeps() {
    if std::env::var_os("PKIT_AUDIT_MOVED_SWEEP").is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cgroup = || Group::builder().mechanism(MechanismChoice::Cgroup).build();
        // The first group: the sweep of this process's first cgroup.
        let first = cgroup().expect("a cgroup group");
        let home = parent_of(&first).expect("the first group's parent");
        first.close().await.expect("close the first group");
        drop(first);

        // A new cgroup next to the groups, holding a dead owner's
        // directory (a pid that is surely dead: a process started and
        // reaped), and this process moved into it.
        let pid = std::process::id().to_string();
        let moved = home.join(format!("audit-sweep-{pid}"));
        std::fs::create_dir(&moved).expect("make the new cgroup");
        let mut dead = std::process::Command::new("true").spawn().expect("true");
        let dead_pid = dead.id();
        dead.wait().expect("reap true");
        let stale = moved.join(format!("pkit-{dead_pid}-1"));
        std::fs::create_dir(&stale).expect("plant a dead owner's directory");
        let moved_in = std::fs::write(moved.join("cgroup.procs"), &pid);

        // The first group there sweeps it.
        let second = moved_in.as_ref().ok().map(|()| cgroup());
        let got = match &second {
            Some(Ok(g)) => parent_of(g),
            _ => None,
        };
        let swept = !stale.exists();
        if let Some(Ok(g)) = second {
            g.close().await.expect("close the second group");
        }
        pkit::release_spare_cgroups();

        // Back home, and what was made removed, before any assertion.
        std::fs::write(home.join("cgroup.procs"), &pid).expect("move back");
        let _ = std::fs::remove_dir(&stale);
        std::fs::remove_dir(&moved).expect("remove the new cgroup");
        moved_in.expect("move this process to the new cgroup");
        assert_eq!(
            got.as_deref(),
            Some(moved.as_path()),
            "the second group's parent"
        );
        assert!(
            swept,
            "a dead owner's directory in the cgroup the owner moved to was not swept"
        );
        println!("INNER-DONE");
    });
}
