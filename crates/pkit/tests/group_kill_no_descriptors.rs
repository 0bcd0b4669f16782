//! `Group::kill` while this process has no descriptor free: it reaches
//! the whole tree (grandchildren included) and the group stays usable.
//! Under cgroup v2 the kill froze the cgroup and listed its members, which
//! needs several descriptors, and failed with EMFILE while the tree ran on
//! (a close, through `cgroup.kill` and the reserve descriptor, got through).
//!
//! One test in its own binary: it changes this process's descriptor limit.
#![cfg(unix)]

mod common;

use common::descriptors::{fill, highest_fd, set_nofile};

use common::*;

/// A tree: a child sleep, a child shell with a sleep of its own, the
/// shell's pid and `done`, each written to `$1` (the inner sleep's pid
/// maybe after `done`).
const TREE: &str = r#"sleep 300 & echo $! >> "$1"; sh -c 'sleep 300 & echo $! >> "$1"; wait' sh "$1" & echo $! >> "$1"; echo $$ >> "$1"; echo done >> "$1"; wait"#;

async fn start_tree(
    g: &pkit::Group,
    choice: pkit::MechanismChoice,
) -> (pkit::RunningProcess, Vec<u32>, TempPath) {
    let file = TempPath::new("kill-tree");
    let p = g
        .start(&cmd(choice, "sh").args(["-c", TREE, "sh", file.as_str()]))
        .expect("start");
    let deadline = std::time::Instant::now() + DEADLINE;
    let pids = loop {
        let text = std::fs::read_to_string(file.path()).unwrap_or_default();
        // The inner shell's sleep may be written after `done`.
        let pids: Vec<u32> = text
            .lines()
            .filter(|l| *l != "done")
            .map(|l| l.parse::<u32>().expect("a pid"))
            .collect();
        if text.lines().any(|l| l == "done") && pids.len() == 4 {
            break pids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{choice}: the tree never reported"
        );
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(pids.len(), 4, "{choice}: {pids:?}");
    (p, pids, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_kill_reaches_the_tree_with_no_descriptor_free() {
    let suite = begin("group-kill-no-fds").await;
    for choice in mechanisms() {
        let g = group(choice);
        for round in 0..3 {
            let (mut p, pids, _file) = start_tree(&g, choice).await;
            assert_alive(&pids, &format!("{choice}, round {round}: before the kill"));
            let old = set_nofile(highest_fd() + 16);
            let held = fill();
            let killed = g.kill();
            drop(held);
            set_nofile(old);
            killed.unwrap_or_else(|e| {
                panic!("{choice}, round {round}: kill with no descriptor free: {e}")
            });
            assert_gone(
                &pids,
                &format!("{choice}, round {round}: the tree after the kill"),
            )
            .await;
            let out = tokio::time::timeout(DEADLINE, p.wait())
                .await
                .unwrap_or_else(|_| {
                    panic!("{choice}, round {round}: the killed process never ended")
                })
                .expect("wait");
            assert_eq!(
                out.outcome(),
                pkit::Outcome::Signalled(libc::SIGKILL),
                "{choice}"
            );
            // Still usable: a new process starts and runs to its end.
            let mut q = g
                .start(&cmd(choice, "sh").args(["-c", "exit 7"]))
                .expect("a start after the kill");
            let out = tokio::time::timeout(DEADLINE, q.wait())
                .await
                .unwrap_or_else(|_| {
                    panic!("{choice}, round {round}: the process after the kill never ended")
                })
                .expect("wait");
            assert_eq!(
                out.code(),
                Some(7),
                "{choice}, round {round}: a start after the kill"
            );
        }
        g.close().await.expect("close");
    }
    suite.end().await;
}
