//! A group's states and their edges: killed, signalled, suspended, closing;
//! what each leaves usable, and that none blocks or leaks. In both
//! mechanisms.

mod common;

use common::*;
use pkit::{Command, Signal};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_kill_leaves_the_group_usable_as_kill_does() {
    let suite = begin("signal_kill_leaves_the_group_usable_as_kill_does").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut first = group.start(&Command::new("sleep").arg("300")).unwrap();
        group.signal(Signal::Kill).unwrap();
        let out = first.wait().await.unwrap();
        assert_eq!(out.signal(), Some(9), "{choice}: {:?}", out.outcome());
        // A later start must live: on some kernels a cgroup once written
        // `cgroup.kill` SIGKILLs every child placed into it at birth.
        let mut next = group
            .start(&Command::new("sh").args(["-c", "echo alive"]))
            .unwrap();
        let out = next.wait().await.unwrap();
        assert!(out.success(), "{choice}: {:?}", out.outcome());
        assert_eq!(out.stdout_str(), "alive\n", "{choice}");
        drop((first, next));
        group.close().await.unwrap();
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_of_a_suspended_group_leaves_it_suspended() {
    let suite = begin("kill_of_a_suspended_group_leaves_it_suspended").await;
    for choice in mechanisms() {
        let group = group(choice);
        let file = TempPath::new("suspended-kill");
        let mut proc = group
            .start(&Command::new("sh").args(["-c", TREE_TO_FILE, "sh", file.as_str()]))
            .unwrap();
        let pids = file.wait_pids().await;
        group.suspend().await.unwrap();
        group.kill().unwrap();
        assert_gone(&pids, &format!("{choice}: kill of a suspended group")).await;
        let out = proc.wait().await.unwrap();
        assert_eq!(out.signal(), Some(9), "{choice}: {:?}", out.outcome());
        // Still suspended, and the kernel agrees (kill used to thaw it).
        assert!(group.is_suspended(), "{choice}");
        if let Some(dir) = cgroup_dir(&group) {
            let freeze = std::fs::read_to_string(dir.join("cgroup.freeze")).unwrap();
            assert_eq!(freeze.trim(), "1", "{choice}: cgroup.freeze after kill");
        }
        group.resume().await.unwrap();
        let mut next = group.start(&Command::new("true")).unwrap();
        assert!(next.wait().await.unwrap().success(), "{choice}");
        drop((proc, next));
        group.close().await.unwrap();
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_into_a_suspended_group_is_refused_without_blocking() {
    let suite = begin("start_into_a_suspended_group_is_refused_without_blocking").await;
    for choice in mechanisms() {
        let group = std::sync::Arc::new(group(choice));
        let first = group.start(&Command::new("sleep").arg("300")).unwrap();
        group.suspend().await.unwrap();
        // From another thread, so a blocked start can't hang the test.
        let (tx, rx) = std::sync::mpsc::channel();
        let (g, handle) = (group.clone(), tokio::runtime::Handle::current());
        let starter = std::thread::spawn(move || {
            let _rt = handle.enter();
            let r = g.start(&Command::new("echo").arg("SECRET-ARG"));
            let _ = tx.send(r.map(|p| p.pid()));
        });
        let r = tokio::task::spawn_blocking(move || rx.recv_timeout(DEADLINE))
            .await
            .unwrap();
        let Ok(r) = r else {
            // Let the blocked thread finish before failing.
            group.resume().await.unwrap();
            starter.join().unwrap();
            panic!("{choice}: start into a suspended group blocked");
        };
        starter.join().unwrap();
        let err = r.expect_err("refused while suspended");
        assert_eq!(err.kind(), pkit::ErrorKind::Spawn, "{choice}: {err:?}");
        let source =
            std::error::Error::source(&err).and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            source.map(|s| s.kind()),
            Some(std::io::ErrorKind::WouldBlock),
            "{err:?}"
        );
        assert!(err.to_string().contains("suspended"), "{err}");
        assert!(!format!("{err:?}").contains("SECRET"));
        // After resume, starts work again.
        group.resume().await.unwrap();
        let mut next = group.start(&Command::new("true")).unwrap();
        assert!(next.wait().await.unwrap().success(), "{choice}");
        drop((first, next));
        group.close().await.unwrap();
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_racing_close_is_ended_by_it_or_refused() {
    let suite = begin("a_start_racing_close_is_ended_by_it_or_refused").await;
    for choice in mechanisms() {
        for round in 0..30 {
            let group = std::sync::Arc::new(group(choice));
            let handle = tokio::runtime::Handle::current();
            let starters: Vec<_> = (0..3)
                .map(|_| {
                    let (g, handle) = (group.clone(), handle.clone());
                    std::thread::spawn(move || {
                        let _rt = handle.enter();
                        let mut started = Vec::new();
                        loop {
                            match g.start(&Command::new("sleep").arg("300")) {
                                Ok(p) => started.push(p),
                                Err(e) => return (started, e),
                            }
                        }
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(1 + round % 7)).await;
            tokio::time::timeout(DEADLINE, group.close())
                .await
                .unwrap_or_else(|_| panic!("{choice}: close hung with starts racing it"))
                .unwrap();
            let mut pids = Vec::new();
            for s in starters {
                let (started, err) = tokio::task::spawn_blocking(move || s.join().unwrap())
                    .await
                    .unwrap();
                assert_eq!(err.kind(), pkit::ErrorKind::Spawn, "{choice}: {err:?}");
                assert!(err.to_string().contains("closed"), "{choice}: {err}");
                pids.extend(started.iter().map(|p| p.pid()));
            }
            let _guard = KillOnDrop::new(pids.clone());
            assert_gone(
                &pids,
                &format!("{choice}: round {round}: starts racing close"),
            )
            .await;
        }
    }
    suite.end().await;
}

/// A started process with a timeout has two waiters at once (the timeout's
/// watch and `wait`): both see the exit, the status and the resource usage
/// read with it. (Each wait registers the child's pidfd with the reactor;
/// the second one at the same time registers a duplicate.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_waiters_at_once_both_see_the_exit() {
    let suite = begin("two_waiters_at_once_both_see_the_exit").await;
    for choice in mechanisms() {
        let group = group(choice);
        for round in 0..5 {
            let cmd = sh(choice, "sleep 0.2; exit 3").timeout(Duration::from_secs(120));
            let mut p = group.start(&cmd).unwrap();
            let out = p.wait().await.unwrap();
            assert_eq!(
                out.code(),
                Some(3),
                "{choice} round {round}: {:?}",
                out.outcome()
            );
            // (The portable backend keeps no usage at exit: documented.)
            if !portable_run() {
                assert!(
                    p.cpu_time().is_some(),
                    "{choice} round {round}: cpu time kept"
                );
                assert!(
                    p.peak_memory_bytes().is_some_and(|b| b > 0),
                    "{choice} round {round}"
                );
            }
            drop(p);
        }
        // A child that has exited before anyone waits is seen at once.
        let mut p = group.start(&Command::new("true")).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let out = tokio::time::timeout(Duration::from_secs(60), p.wait())
            .await
            .expect("wait on an exited child returns")
            .unwrap();
        assert!(out.success(), "{choice}: {:?}", out.outcome());
        drop(p);
        group.close().await.unwrap();
    }
    suite.end().await;
}

/// The descriptors of ours that name `dir` or a file below it (a removed
/// directory reads as `<dir> (deleted)`).
fn fds_into(dir: &std::path::Path) -> Vec<String> {
    let deleted = format!("{} (deleted)", dir.display());
    std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|t| t.starts_with(dir) || t.to_string_lossy().starts_with(&deleted))
        .map(|t| t.display().to_string())
        .collect()
}

/// A closed group that lives on holds no descriptor of its cgroup once
/// the handles of its processes are dropped: the directory is gone (or
/// pooled as a spare, which `release_spare_cgroups` removes) and no
/// descriptor of ours names it or a file in it. Both ends of a close:
/// a tree it had to kill, and one that had ended. Before: the closed
/// group kept the directory and its `cgroup.events` open until the
/// `Group` itself was dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_group_holds_no_descriptor_of_its_cgroup() {
    // Alone in the binary: another test's new group could take the spare
    // this close pools, and hold descriptors of that directory.
    let alone = begin_alone_in_binary().await;
    for choice in mechanisms() {
        for killed in [true, false] {
            let group = group(choice);
            let Some(dir) = cgroup_dir(&group) else {
                continue;
            };
            let program = if killed { "sleep 300" } else { "true" };
            let mut first = group
                .start(&Command::new("sh").args(["-c", program]))
                .unwrap();
            let second = group.start(&Command::new("sleep").arg("300")).unwrap();
            if !killed {
                first.wait().await.unwrap();
                second.kill().unwrap();
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), first.wait()).await;
            group.close().await.unwrap();
            drop((first, second));
            let deadline = std::time::Instant::now() + DEADLINE;
            loop {
                pkit::release_spare_cgroups();
                let held = fds_into(&dir);
                if !dir.exists() && held.is_empty() {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{choice} (killed: {killed}): {} exists: {}, held: {held:?}",
                    dir.display(),
                    dir.exists()
                );
                tokio::time::sleep(POLL).await;
            }
            drop(group);
        }
    }
    end_exclusive(alone, "a_closed_group_holds_no_descriptor_of_its_cgroup").await;
}
