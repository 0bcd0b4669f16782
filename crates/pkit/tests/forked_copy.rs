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
    rt.block_on(assert_nothing_left("forked_copy"));
}
