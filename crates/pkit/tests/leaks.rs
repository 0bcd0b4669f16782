//! Repeated use leaks nothing: no file descriptor, no cgroup directory, no
//! child process (zombies included). Runs alone in its binary.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pkit::Command;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

async fn one_round(choice: pkit::MechanismChoice, i: usize) {
    // A group with a small tree in it, dropped.
    let group = group(choice);
    let mut p = group
        .start(&Command::new("sh").args(["-c", "sleep 300 & echo $!"]))
        .expect("start");
    let out = p.wait().await.expect("wait");
    let grandchild = pid_lines(&out.stdout_str());
    drop(group);
    assert_gone(&grandchild, "a grandchild of a dropped group").await;
    drop(p);

    // A short verb, with stdin and both outputs piped.
    let out = sh(choice, "cat; echo err >&2")
        .stdin_str(i.to_string())
        .output()
        .await
        .expect("output");
    assert_eq!(out.stdout_str(), i.to_string());
    assert_eq!(out.stderr_str(), "err\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_groups_and_fifty_runs_leak_nothing() {
    let alone = begin_exclusive().await;
    for choice in mechanisms() {
        // Warm up: lazily created process-wide state (the reaper thread and
        // its pipe, the clone3 probe, the runtime's drivers) is not a leak.
        for i in 0..3 {
            one_round(choice, i).await;
        }
        assert_nothing_left("warm-up").await;
        let before = open_fds();

        for i in 0..50 {
            one_round(choice, i).await;
        }
        // A timed-out run and a dropped one too.
        let out = sh(choice, "sleep 300 & sleep 300; wait")
            .timeout(Duration::from_millis(100))
            .output()
            .await
            .expect("output");
        assert!(out.timed_out());
        let _ = tokio::time::timeout(
            Duration::from_millis(100),
            cmd(choice, "sleep").arg("300").output(),
        )
        .await;

        assert_nothing_left(&format!("{choice}: after 50 rounds")).await;
        // Teardown may finish on the reaper thread: poll for the fds too.
        let deadline = Instant::now() + DEADLINE;
        loop {
            let now = open_fds();
            if now <= before + 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{choice}: {now} fds open, {before} before 50 rounds"
            );
            tokio::time::sleep(POLL).await;
        }
    }
    end_exclusive(alone, "fifty_groups_and_fifty_runs_leak_nothing").await;
}
