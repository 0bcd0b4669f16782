//! A process started with `Group::start` is bounded like a verb's: its
//! command's timeout (signal, grace, SIGKILL) and cancel token end it and
//! its own subtree, are reported by `wait`, and leave the rest of the
//! group running. In both mechanisms.

mod common;

use std::time::Duration;

use common::*;
use pkit::{CancelToken, Command, ErrorKind, Group, RunningProcess, Signal};

/// A bystander in the same group: must outlive every bounded process.
fn bystander() -> Command {
    Command::new("sleep").arg("300")
}

/// Starts `sh -c script sh <file>` in `group`, bounded by `bound(cmd,
/// limit)` (its timeout `limit`), and waits until the script wrote `done`
/// to the file; returns the process, the pids before `done` and the file.
/// A loaded machine can be slower to start the shell than any fixed
/// timeout: an attempt whose timeout ended it before `done` is checked
/// gone (with the pids it wrote) and repeated with the limit doubled, from
/// `first` up to at least 16 s; in a group of its own (`fresh()`, the
/// old one dropped) when `fresh` is given, so that it is the group's first
/// process again.
async fn start_done_before_timeout(
    group: &mut Group,
    fresh: Option<&(dyn Fn() -> Group + Sync)>,
    script: &str,
    first: Duration,
    bound: impl Fn(Command, Duration) -> Command,
) -> (RunningProcess, Vec<u32>, TempPath) {
    let mut limit = first;
    loop {
        let file = TempPath::new("started");
        let cmd = Command::new("sh").args(["-c", script, "sh", file.as_str()]);
        let proc = group.start(&bound(cmd, limit)).unwrap();
        let done = || {
            std::fs::read_to_string(file.path())
                .unwrap_or_default()
                .lines()
                .any(|l| l == "done")
        };
        // The timeout (and any grace) ends it within the limit plus the
        // grace; DEADLINE on top for a loaded machine.
        let deadline = std::time::Instant::now() + limit * 2 + DEADLINE * 3;
        loop {
            if done() {
                let pids = file.wait_pids().await;
                return (proc, pids, file);
            }
            if proc.has_exited() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} neither wrote `done` nor ended",
                file.as_str()
            );
            tokio::time::sleep(POLL).await;
        }
        // Ended by its timeout before `done` (a final look: `done` may have
        // come just before the end).
        if done() {
            let pids = file.wait_pids().await;
            return (proc, pids, file);
        }
        let text = std::fs::read_to_string(file.path()).unwrap_or_default();
        let mut partial: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        partial.push(proc.pid());
        drop(proc);
        assert_gone(&partial, "an attempt its timeout ended early").await;
        if let Some(fresh) = fresh {
            *group = fresh();
        }
        assert!(
            limit < Duration::from_secs(16),
            "the script never wrote `done` before its timeout"
        );
        limit *= 2;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_process_times_out_with_its_subtree_and_the_group_runs_on() {
    let suite = begin("a_started_process_times_out_with_its_subtree_and_the_group_runs_on").await;
    // The mechanisms at once (each mostly waits out a timeout).
    all_at_once(mechanisms(), |choice| async move {
        let mut group = group(choice);
        let other = group.start(&bystander()).unwrap();
        let (mut proc, pids, _file) = start_done_before_timeout(
            &mut group,
            None,
            TREE_TO_FILE,
            Duration::from_secs(3),
            |c, t| c.timeout(t),
        )
        .await;
        let out = tokio::time::timeout(DEADLINE, proc.wait())
            .await
            .expect("the timeout ended it")
            .unwrap();
        assert!(out.timed_out(), "{choice}: {:?}", out.outcome());
        assert!(!out.killed_after_grace(), "{choice}");
        assert_gone(&pids, &format!("{choice}: the timed-out process's subtree")).await;
        assert_alive(&[other.pid()], &format!("{choice}: the rest of the group"));
        drop((proc, other));
        group.close().await.unwrap();
    })
    .await;
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_process_gets_its_timeout_signal_and_grace() {
    let suite = begin("a_started_process_gets_its_timeout_signal_and_grace").await;
    // The mechanisms at once (each mostly waits out a timeout).
    all_at_once(mechanisms(), |choice| async move {
        let mut group = group(choice);
        // Ends on SIGINT within the grace.
        let polite = "trap 'echo got-int; exit 7' INT; echo ready; while :; do sleep 0.05; done";
        // Growing timeouts until the trap was set (`ready`) before the
        // timeout fired: a shell slower than 500 ms to start on a loaded
        // machine got the INT before its trap, and died of it.
        let mut limit = Duration::from_millis(500);
        let out = loop {
            let mut proc = group
                .start(
                    &Command::new("sh")
                        .args(["-c", polite])
                        .timeout(limit)
                        .timeout_signal(Signal::Int)
                        .grace(Duration::from_secs(20)),
                )
                .unwrap();
            let out = proc.wait().await.unwrap();
            assert!(out.timed_out(), "{choice}: {:?}", out.outcome());
            if out.stdout_str().contains("ready") {
                break out;
            }
            assert!(
                limit < Duration::from_secs(16),
                "{choice}: the script never got ready"
            );
            limit *= 2;
        };
        assert!(!out.killed_after_grace(), "{choice}");
        assert!(
            out.stdout_str().contains("got-int"),
            "{choice}: {:?}",
            out.stdout_str()
        );

        // Ignores SIGTERM: SIGKILL after the grace.
        let stubborn = r#"trap '' TERM; sleep 300 & echo $! >> "$1"; echo $$ >> "$1"; echo done >> "$1"; while :; do sleep 0.05; done"#;
        let (mut proc, pids, _file) = start_done_before_timeout(
            &mut group,
            None,
            stubborn,
            Duration::from_secs(2),
            |c, t| c.timeout(t).grace(Duration::from_millis(300)),
        )
        .await;
        let out = proc.wait().await.unwrap();
        assert!(out.timed_out(), "{choice}: {:?}", out.outcome());
        assert!(out.killed_after_grace(), "{choice}");
        assert_gone(&pids, &format!("{choice}: after the grace")).await;
        drop(proc);
        group.close().await.unwrap();
    })
    .await;
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_token_ends_a_started_process_and_wait_says_cancelled() {
    let suite = begin("a_cancel_token_ends_a_started_process_and_wait_says_cancelled").await;
    for choice in mechanisms() {
        let group = group(choice);
        let other = group.start(&bystander()).unwrap();
        let token = CancelToken::new();
        let file = TempPath::new("started-cancel");
        let mut proc = group
            .start(
                &Command::new("sh")
                    .args(["-c", TREE_TO_FILE, "sh", file.as_str()])
                    .cancel_token(&token),
            )
            .unwrap();
        let pids = file.wait_pids().await;
        token.cancel();
        let err = proc.wait().await.expect_err("cancelled");
        assert_eq!(err.kind(), ErrorKind::Cancelled, "{choice}: {err:?}");
        assert_gone(&pids, &format!("{choice}: the cancelled subtree")).await;
        assert_alive(&[other.pid()], &format!("{choice}: the rest of the group"));

        // A token cancelled already: nothing starts.
        let err = group
            .start(
                &Command::new("sh")
                    .args(["-c", "exit 0"])
                    .cancel_token(&token),
            )
            .expect_err("cancelled before the start");
        assert_eq!(err.kind(), ErrorKind::Cancelled, "{choice}: {err:?}");
        drop((proc, other));
        group.close().await.unwrap();
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_fires_even_when_nobody_waits() {
    let suite = begin("the_timeout_fires_even_when_nobody_waits").await;
    // The mechanisms at once (each mostly waits out a timeout).
    all_at_once(mechanisms(), |choice| async move {
        let mut group = group(choice);
        let (proc, pids, _file) = start_done_before_timeout(
            &mut group,
            None,
            TREE_TO_FILE,
            Duration::from_secs(2),
            |c, t| c.timeout(t),
        )
        .await;
        drop(proc);
        assert_gone(&pids, &format!("{choice}: a dropped handle's timeout")).await;
        group.close().await.unwrap();
    })
    .await;
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_later_started_process_has_its_own_sub_cgroup() {
    let suite = begin("each_later_started_process_has_its_own_sub_cgroup").await;
    if cgroup_usable() {
        let group = group(pkit::MechanismChoice::Cgroup);
        let dir = cgroup_dir(&group).unwrap();
        // The first lives in the group's own directory.
        let a = group.start(&bystander()).unwrap();
        let mut b = group
            .start(&Command::new("sh").args(["-c", "sed -n 's/^0:://p' /proc/self/cgroup"]))
            .unwrap();
        let out = b.wait().await.unwrap();
        let mine = out.stdout_str().trim().to_string();
        // <group>/p<n>: not the group's own directory.
        let group_rel = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            mine.contains(&format!("/{group_rel}/p")),
            "{mine} under {}",
            dir.display()
        );
        assert_eq!(
            cgroup_own_procs(&dir),
            vec![a.pid()],
            "the group's directory holds its first process only"
        );
        assert_eq!(group.pids().unwrap(), vec![a.pid()]);
        // An exited process's sub-cgroup goes once its handle is dropped.
        let leaf = dir.join(mine.rsplit('/').next().unwrap());
        drop(b);
        assert_dir_gone(&leaf).await;
        drop(a);
        group.close().await.unwrap();
        assert!(!dir.exists());
    }
    suite.end().await;
}

/// The group's first started process (under cgroup v2 it lives in the
/// group's own directory) is ended with its subtree, by `kill_tree` and by
/// its timeout, while processes started after it run on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_started_process_ends_alone_with_its_subtree() {
    let suite = begin("the_first_started_process_ends_alone_with_its_subtree").await;
    // The mechanisms at once (each mostly waits out a timeout).
    all_at_once(mechanisms(), |choice| async move {
        let group = group(choice);
        let file = TempPath::new("started-first-kill-tree");
        let mut first = group
            .start(&Command::new("sh").args(["-c", TREE_TO_FILE, "sh", file.as_str()]))
            .unwrap();
        let pids = file.wait_pids().await;
        let later = group.start(&bystander()).unwrap();
        first.kill_tree().unwrap();
        assert_gone(&pids, &format!("{choice}: kill_tree of the first")).await;
        assert_eq!(first.wait().await.unwrap().signal(), Some(9), "{choice}");
        assert_alive(&[later.pid()], &format!("{choice}: the later process"));
        drop((first, later));
        group.close().await.unwrap();

        // The same, ended by its timeout after a grace.
        let mut group = self::group(choice);
        let (mut first, pids, _file) = start_done_before_timeout(
            &mut group,
            Some(&|| self::group(choice)),
            TREE_TO_FILE,
            Duration::from_secs(3),
            |c, t| c.timeout(t).grace(Duration::from_millis(200)),
        )
        .await;
        let later = group.start(&bystander()).unwrap();
        let out = first.wait().await.unwrap();
        assert!(out.timed_out(), "{choice}: {out:?}");
        assert_gone(&pids, &format!("{choice}: the first, timed out")).await;
        assert_alive(&[later.pid()], &format!("{choice}: the later process"));
        drop((first, later));
        group.close().await.unwrap();
    })
    .await;
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_tree_ends_one_started_process_with_its_descendants() {
    let suite = begin("kill_tree_ends_one_started_process_with_its_descendants").await;
    for choice in mechanisms() {
        let group = group(choice);
        let other = group.start(&bystander()).unwrap();
        let file = TempPath::new("started-kill-tree");
        let mut proc = group
            .start(&Command::new("sh").args(["-c", TREE_TO_FILE, "sh", file.as_str()]))
            .unwrap();
        let pids = file.wait_pids().await;
        proc.kill_tree().unwrap();
        assert_gone(&pids, &format!("{choice}: kill_tree")).await;
        assert_eq!(proc.wait().await.unwrap().signal(), Some(9), "{choice}");
        assert_alive(&[other.pid()], &format!("{choice}: the rest of the group"));
        drop((proc, other));
        group.close().await.unwrap();
    }
    suite.end().await;
}
