//! A group's states and their edges: killed, signalled, suspended, closing;
//! what each leaves usable, and that none blocks or leaks. In both
//! mechanisms.

mod common;

use common::*;
use pkit::{Command, Signal};

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
