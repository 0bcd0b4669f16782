//! A child the application forks without `exec` holds copies of its
//! parent's groups (and processes): dropping them, and exiting, must leave
//! the parent's groups alone: nothing killed, no directory removed. Before:
//! a forked child that dropped its copy of a group killed the parent's
//! processes (`cgroup.kill`, `killpg`) and removed its cgroup.
//!
//! Its own binary: it forks, which is only sound with few threads about.
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::*;
use pkit::Command;

#[test]
fn a_forked_child_dropping_its_copies_leaves_the_parents_groups_alone() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Alone in the binary: the other test's processes would be children
    // of ours at this one's check, and its threads about at this fork.
    let alone = rt.block_on(begin_alone_in_binary());
    for choice in mechanisms() {
        let (group, mut p, dir) = rt.block_on(async {
            let group = group(choice);
            let p = group.start(&Command::new("sleep").arg("300")).unwrap();
            let dir = cgroup_dir(&group);
            (group, p, dir)
        });
        let pid = p.pid();
        // Raw: the case under test is the application's own fork without
        // exec; rustix has no fork.
        // SAFETY: fork(2); the child only drops its copies of the group and
        // the process, in the copy of the runtime's context, and leaves with
        // exit(3), never returning into the test harness.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
        if child == 0 {
            {
                let _in = rt.enter();
                drop(p);
                drop(group);
            }
            // Raw: the forked child's exit, with its atexit handlers.
            // SAFETY: ends the forked child; nothing of the harness runs.
            unsafe { libc::exit(0) };
        }
        let mut status = 0;
        // Raw: the wait for the test's own raw fork.
        // SAFETY: `child` is ours; `status` a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{choice}: the forked child failed ({status:#x})"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_alive(
            &[pid],
            &format!("{choice}: after the forked child dropped its copy"),
        );
        if let Some(dir) = &dir {
            assert!(
                dir.exists(),
                "{choice}: the forked child removed {}",
                dir.display()
            );
        }
        // The parent's group still works, and ends as usual.
        rt.block_on(async {
            let mut q = group.start(&Command::new("true")).unwrap();
            assert!(q.wait().await.unwrap().success(), "{choice}");
            p.kill().unwrap();
            let _ = p.wait().await;
            drop(p);
            group.close().await.unwrap();
            if let Some(dir) = &dir {
                assert_dir_gone(dir).await;
            }
        });
    }
    rt.block_on(end_exclusive(alone, "forked_copy"));
}

/// Forks; the child runs `$drops` (drops of its copies of pkit handles)
/// and exits; the parent goes on once it has. (A macro: the child's
/// drops move the handles in the child's branch only, which never
/// returns.)
macro_rules! in_forked_child {
    ($what:expr, $drops:block) => {{
        // Raw: the case under test is the application's own fork without
        // exec; rustix has no fork.
        // SAFETY: fork(2); the child runs the drops and leaves with
        // exit(3), never returning into the test harness.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
        if child == 0 {
            $drops
            // SAFETY: ends the forked child; nothing of the harness runs.
            unsafe { libc::exit(0) };
        }
        let mut status = 0;
        // SAFETY: `child` is ours; `status` a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{}: the forked child failed ({status:#x})",
            $what
        );
    }};
}

/// Its first line: the pids of `sleep 300 &` and its shell.
const TREE: &str = "sleep 300 & echo $! $$; wait";

/// Reads the pids `TREE` prints from a started process's lines.
async fn tree_pids(p: &mut pkit::RunningProcess) -> Vec<u32> {
    let line = p
        .wait_for_line(|_| true, DEADLINE)
        .await
        .expect("the tree's pids");
    pid_lines(&line.text.replace(' ', "\n"))
}

#[test]
fn a_forked_child_dropping_its_copies_of_kill_on_drop_processes_and_pipes_leaves_them_running() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Alone in the binary: the other test's processes would be children
    // of ours at this one's check, and its threads about at this fork.
    let alone = rt.block_on(begin_alone_in_binary());
    for choice in mechanisms() {
        let what = choice.to_string();
        let (group, in_group, ended, own, pipe, group_pids, own_pids, pipe_pids) =
            rt.block_on(async {
                let group = group(choice);
                // The group's second process, so under cgroup v2 its tree
                // is a leaf sub-cgroup of its own.
                let first = group.start(&Command::new("sleep").arg("300")).unwrap();
                let mut in_group = group.start(&sh(choice, TREE).stream_lines()).unwrap();
                in_group.set_kill_on_drop(true);
                // One that has ended, not yet waited for: under cgroup v2 its
                // leaf is empty, and the parent's until its handle drops.
                let ended = group.start(&Command::new("true")).unwrap();
                let deadline = std::time::Instant::now() + DEADLINE;
                while !ended.has_exited() && std::time::Instant::now() < deadline {
                    tokio::time::sleep(POLL).await;
                }
                assert!(ended.has_exited(), "{choice}: true ended");
                // A process with a private group of its own (`Command::start`).
                let mut own = sh(choice, TREE).stream_lines().start().unwrap();
                own.set_kill_on_drop(true);
                let pipe = pkit::Pipe::new([cmd(choice, "sleep").arg("300"), cmd(choice, "cat")])
                    .start()
                    .unwrap();
                let group_pids = [vec![first.pid()], tree_pids(&mut in_group).await].concat();
                let own_pids = tree_pids(&mut own).await;
                let pipe_pids = pipe.pids();
                drop(first);
                (
                    group, in_group, ended, own, pipe, group_pids, own_pids, pipe_pids,
                )
            });
        // Under cgroup v2, the leaves of `in_group` and `ended`.
        let leaves: Vec<_> = cgroup_dir(&group)
            .and_then(|dir| std::fs::read_dir(dir).ok())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        if choice == pkit::MechanismChoice::Cgroup {
            assert_eq!(leaves.len(), 2, "{choice}: {leaves:?}");
        }
        // The blocking facade's handles too.
        let mut blocking = sh(choice, "exec sleep 300").blocking().start().unwrap();
        blocking.set_kill_on_drop(true);
        let blocking_pid = blocking.pid();
        let all: Vec<u32> = [
            group_pids.clone(),
            own_pids.clone(),
            pipe_pids.clone(),
            vec![blocking_pid],
        ]
        .concat();
        assert_alive(&all, &format!("{what}: before the fork"));
        in_forked_child!(what, {
            let _in = rt.enter();
            drop(in_group);
            drop(ended);
            drop(own);
            drop(pipe);
            drop(group);
            drop(blocking);
        });
        std::thread::sleep(Duration::from_millis(300));
        assert_alive(
            &all,
            &format!("{what}: after a forked child dropped its kill-on-drop copies"),
        );
        for leaf in &leaves {
            assert!(
                leaf.exists(),
                "{what}: the forked child removed the leaf {}",
                leaf.display()
            );
        }
        // The parent's own drops still kill each tree.
        drop(blocking);
        rt.block_on(async {
            drop(in_group);
            drop(ended);
            drop(own);
            drop(pipe);
            assert_gone(&[blocking_pid], &format!("{what}: blocking")).await;
            assert_gone(&group_pids[1..], &format!("{what}: in a group")).await;
            assert_gone(&own_pids, &format!("{what}: own group")).await;
            assert_gone(&pipe_pids, &format!("{what}: pipe")).await;
            group.close().await.unwrap();
        });
    }
    rt.block_on(end_exclusive(alone, "forked_copy"));
}
