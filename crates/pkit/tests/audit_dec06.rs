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

/// The owner's cgroup is told by asking the kernel for this process's
/// cgroup id (`PIDFD_GET_INFO` through a pidfd of its own, kept open) and
/// comparing it with the id of the directory the last answer named
/// (issue 20: `/proc/self/cgroup` is read only when they differ). A copy
/// forked without exec inherits that pidfd, which names its parent: moved
/// to another cgroup, the copy must still make its groups where it is, not
/// where its parent is (the parent stays home). No `unshare` needed (rv37
/// has the pid-1 copy in a new pid namespace).
#[test]
fn a_forked_copy_moved_to_another_cgroup_makes_groups_there() {
    let name = "a_forked_copy_moved_to_another_cgroup_makes_groups_there";
    if !common::cgroup_pass(name) {
        return;
    }
    common::in_suite(name, || {
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "inner_forked_copy_moved",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PKIT_AUDIT_FORKED_MOVED", "1")
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
fn inner_forked_copy_moved() {
    if std::env::var_os("PKIT_AUDIT_FORKED_MOVED").is_none() {
        return;
    }
    let cgroup = || Group::builder().mechanism(MechanismChoice::Cgroup).build();
    // The parent's first group: its answer (and its pidfd) are kept.
    let first = cgroup().expect("a cgroup group");
    let home = parent_of(&first).expect("the first group's parent");
    drop(first);
    let moved = home.join(common::unique_name("audit-forked"));
    std::fs::create_dir(&moved).expect("make the new cgroup");
    let procs = std::ffi::CString::new(
        moved
            .join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    let want = std::ffi::CString::new(moved.clone().into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a forked copy of this (threaded) process, which pkit supports;
    // the copy moves itself (a write of "0": the writer), makes a group,
    // compares its parent directory with `want` and `_exit`s with the
    // answer: 0 there, 1 elsewhere, 2 no group, 3 not moved.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork");
    if child == 0 {
        // SAFETY: `open` of a C string we own, and `write` of one byte
        // from a static buffer to the descriptor it returned.
        let moved_in = unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            fd >= 0 && libc::write(fd, b"0".as_ptr().cast(), 1) == 1
        };
        let code = match (moved_in, cgroup()) {
            (false, _) => 3,
            (true, Err(_)) => 2,
            (true, Ok(g)) => {
                let there = parent_of(&g)
                    .is_some_and(|p| p.as_os_str().as_encoded_bytes() == want.as_bytes());
                drop(g);
                if there {
                    0
                } else {
                    1
                }
            }
        };
        // SAFETY: ends the copy without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    // The copy is gone: its cgroup empties (retried: the exit's last steps).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::remove_dir(&moved).is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!moved.exists(), "the copy's cgroup was not removed");
    assert!(libc::WIFEXITED(status), "the copy: {status:#x}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the forked copy, moved to {moved:?}, did not make its group there (1: elsewhere, \
         2: no group, 3: not moved)"
    );
    // And the parent, which stayed home, still makes its groups there.
    let again = cgroup().expect("a cgroup group");
    assert_eq!(parent_of(&again).as_deref(), Some(home.as_path()));
    drop(again);
    pkit::release_spare_cgroups();
    println!("INNER-DONE");
}
