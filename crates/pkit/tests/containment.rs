//! The core promise: a process tree, grandchildren included, is gone after
//! every way a group or a run can end: drop, kill, shutdown, verb exit,
//! verb timeout, a dropped or aborted verb future, cancellation. And the
//! difference between the mechanisms: a `setsid` grandchild escapes a
//! process group but not a cgroup.

mod common;

use std::time::Duration;

use common::*;
use pkit::{CancelToken, Command, ErrorKind, Group, Mechanism, MechanismChoice, RunningProcess};

/// Starts [`TREE_TO_FILE`] in `group` and returns the process and the
/// tree's pids: two `sleep` grandchildren, then `sh` itself.
async fn start_tree(group: &Group, file: &TempPath) -> (RunningProcess, Vec<u32>) {
    let proc = group
        .start(&Command::new("sh").args(["-c", TREE_TO_FILE, "sh", file.as_str()]))
        .expect("start the tree");
    let pids = file.wait_pids().await;
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert_eq!(pids[2], proc.pid(), "the script's $$ is the started pid");
    assert_alive(&pids, "the tree before teardown");
    (proc, pids)
}

#[tokio::test]
async fn dropping_the_group_kills_grandchildren() {
    let suite = begin("dropping_the_group_kills_grandchildren").await;
    for choice in mechanisms() {
        let file = TempPath::new("drop");
        let group = group(choice);
        let (proc, pids) = start_tree(&group, &file).await;
        let dir = cgroup_dir(&group);
        if let Some(dir) = &dir {
            assert!(dir.is_dir(), "{choice}: {}", dir.display());
            let procs = set(&cgroup_procs(dir));
            assert_eq!(procs, set(&pids), "{choice}: the cgroup holds the tree");
        } else {
            assert_ne!(choice, MechanismChoice::Cgroup);
            for &p in &pids {
                assert_eq!(stat(p).unwrap().pgrp, proc.pid(), "{choice}: pgrp of {p}");
            }
        }
        drop(group);
        assert_gone(&pids, &format!("{choice}: after dropping the group")).await;
        drop(proc);
        if let Some(dir) = dir {
            assert_dir_gone(&dir).await;
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_process_handle_first_then_the_group() {
    let suite = begin("dropping_the_process_handle_first_then_the_group").await;
    for choice in mechanisms() {
        let file = TempPath::new("drop-proc");
        let group = group(choice);
        let (proc, pids) = start_tree(&group, &file).await;
        drop(proc);
        // The handle belongs to the group: dropping it kills nothing.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_alive(&pids, &format!("{choice}: after dropping the handle only"));
        let dir = cgroup_dir(&group);
        drop(group);
        assert_gone(&pids, &format!("{choice}: after dropping the group")).await;
        if let Some(dir) = dir {
            assert_dir_gone(&dir).await;
        }
    }
    suite.end().await;
}

#[tokio::test]
async fn group_kill_kills_grandchildren_and_the_group_stays_usable() {
    let suite = begin("group_kill_kills_grandchildren_and_the_group_stays_usable").await;
    for choice in mechanisms() {
        let file = TempPath::new("kill");
        let group = group(choice);
        let (mut proc, pids) = start_tree(&group, &file).await;
        group.kill().expect("kill");
        assert_gone(&pids, &format!("{choice}: after group.kill()")).await;
        let out = proc.wait().await.expect("wait");
        assert_eq!(out.signal(), Some(9), "{choice}: {out:?}");

        // Still usable: a new process starts and runs in the same container.
        let mut again = group
            .start(&Command::new("sh").args(["-c", "echo again; echo $$"]))
            .expect("start after kill");
        let out = again.wait().await.expect("wait");
        assert!(out.success(), "{choice}: {out:?}");
        assert_eq!(out.stdout_str(), format!("again\n{}\n", out.pid()));
        assert_eq!(group.mechanism(), expected_mechanism(choice));

        let dir = cgroup_dir(&group);
        group.close().await.expect("close");
        if let Some(dir) = dir {
            // close() removes the directory before returning.
            assert!(!dir.exists(), "{choice}: {} after close", dir.display());
        }
    }
    suite.end().await;
}

#[tokio::test]
async fn shutdown_ends_a_tree_that_dies_on_term() {
    let suite = begin("shutdown_ends_a_tree_that_dies_on_term").await;
    for choice in mechanisms() {
        let file = TempPath::new("shutdown");
        let group = group(choice);
        let (mut proc, pids) = start_tree(&group, &file).await;
        assert_eq!(
            set(&group.pids().expect("pids")),
            set(&pids),
            "{choice}: the group's live members"
        );
        let dir = cgroup_dir(&group);
        let report = group
            .shutdown(Duration::from_secs(10))
            .await
            .expect("shutdown");
        assert!(report.signalled() >= 3, "{choice}: {report:?}");
        assert_eq!(report.killed(), 0, "{choice}: {report:?}");
        assert_eq!(report.exited_in_grace(), report.signalled(), "{choice}");
        assert_gone(&pids, &format!("{choice}: after shutdown")).await;
        let out = proc.wait().await.expect("wait");
        assert_eq!(out.signal(), Some(SIGTERM), "{choice}: {out:?}");
        if let Some(dir) = dir {
            // Everything exited in the grace: removed, or kept as a spare.
            assert_dir_released(&dir).await;
        }
        // A shut-down group starts nothing; shutting down again is a no-op.
        let err = group.start(&Command::new("true")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Spawn, "{choice}: {err}");
        let again = group.shutdown(Duration::from_secs(1)).await.expect("again");
        assert_eq!(again.signalled(), 0, "{choice}: {again:?}");
        assert_eq!(group.pids().expect("pids"), Vec::<u32>::new());
    }
    suite.end().await;
}

const SIGTERM: i32 = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_what_ignores_term_after_the_grace() {
    let suite = begin("shutdown_kills_what_ignores_term_after_the_grace").await;
    // The first sleep dies on SIGTERM; then the shell ignores TERM, and so
    // does the second sleep, which inherits the ignored disposition.
    let script = r#"sleep 300 & echo $! >> "$1"; trap "" TERM; sleep 300 & echo $! >> "$1"; echo $$ >> "$1"; echo done >> "$1"; wait"#;
    // Each mechanism's case waits out its own grace: both at once.
    all_at_once(mechanisms(), |choice| async move {
        let file = TempPath::new("ignore-term");
        let group = group(choice);
        let mut proc = group
            .start(&Command::new("sh").args(["-c", script, "sh", file.as_str()]))
            .expect("start");
        let pids = file.wait_pids().await;
        assert_eq!(pids.len(), 3);
        assert_alive(&pids, "before shutdown");
        let grace = Duration::from_secs(2);
        let report = group.shutdown(grace).await.expect("shutdown");
        assert_eq!(report.signalled(), 3, "{choice}: {report:?}");
        assert_eq!(report.exited_in_grace(), 1, "{choice}: {report:?}");
        assert_eq!(report.killed(), 2, "{choice}: {report:?}");
        assert!(report.elapsed() >= grace, "{choice}: {report:?}");
        assert_gone(&pids, &format!("{choice}: after shutdown")).await;
        let out = proc.wait().await.expect("wait");
        assert_eq!(out.signal(), Some(9), "{choice}: {out:?}");
    })
    .await;
    suite.end().await;
}

#[tokio::test]
async fn a_verb_kills_what_its_program_leaves_behind() {
    let suite = begin("a_verb_kills_what_its_program_leaves_behind").await;
    for choice in mechanisms() {
        // The background sleep keeps stdout open; the run must still end
        // when sh exits, and take the sleep with it.
        let out = sh(choice, "sleep 300 & echo $!; sleep 300 & echo $!")
            .output()
            .await
            .expect("output");
        assert!(out.success(), "{choice}: {out:?}");
        let pids = pid_lines(&out.stdout_str());
        assert_eq!(pids.len(), 2, "{choice}: {:?}", out.stdout_str());
        assert_gone(&pids, &format!("{choice}: after the run")).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn a_verb_timeout_kills_grandchildren() {
    let suite = begin("a_verb_timeout_kills_grandchildren").await;
    for choice in mechanisms() {
        let what = format!("{choice}: timeout");
        let (out, pids) =
            output_timing_out_after_ready(&what, |limit| sh(choice, TREE_TO_STDOUT).timeout(limit))
                .await;
        assert!(out.timed_out(), "{what}: {out:?}");
        assert_eq!(out.outcome().to_string(), "timed out");
        assert_eq!(out.code(), None);
        assert_eq!(out.signal(), None);
        assert!(!out.success());
        assert_eq!(out.mechanism(), expected_mechanism(choice));
        assert_eq!(pids.len(), 3);
        assert_eq!(pids[2], out.pid(), "{what}: $$ is the run's pid");
        assert_gone(&pids, &what).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn a_dropped_verb_future_kills_the_tree() {
    let suite = begin("a_dropped_verb_future_kills_the_tree").await;
    for choice in mechanisms() {
        let file = TempPath::new("dropped-future");
        let cmd = sh(choice, TREE_TO_FILE).arg(file.as_str());
        assert_eq!(cmd.get_timeout(), None);
        // Like `tokio::time::timeout(.., cmd.output())`, but the future is
        // dropped exactly when the tree is known to be up.
        let pids = tokio::select! {
            r = cmd.output() => panic!("{choice}: the run ended by itself: {r:?}"),
            pids = file.wait_pids() => pids,
        };
        assert_eq!(pids.len(), 3);
        assert_gone(&pids, &format!("{choice}: after dropping the future")).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn a_verb_future_dropped_by_tokio_timeout_kills_the_tree() {
    let suite = begin("a_verb_future_dropped_by_tokio_timeout_kills_the_tree").await;
    for choice in mechanisms() {
        // Grow the outer timeout until the tree was up before the drop.
        let mut limit = Duration::from_millis(300);
        let pids = loop {
            let file = TempPath::new("tokio-timeout");
            let cmd = sh(choice, TREE_TO_FILE).arg(file.as_str());
            let r = tokio::time::timeout(limit, cmd.output()).await;
            assert!(r.is_err(), "{choice}: the run ended by itself: {r:?}");
            let text = std::fs::read_to_string(file.path()).unwrap_or_default();
            if text.lines().any(|l| l == "done") {
                break file.wait_pids().await;
            }
            assert_gone(&pid_lines(&text), "a too-short attempt").await;
            assert!(limit < Duration::from_secs(10), "{choice}: never ready");
            limit *= 2;
        };
        assert_eq!(pids.len(), 3);
        assert_gone(&pids, &format!("{choice}: after tokio::time::timeout")).await;
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_verb_task_kills_the_tree() {
    let suite = begin("an_aborted_verb_task_kills_the_tree").await;
    for choice in mechanisms() {
        let file = TempPath::new("abort");
        let cmd = sh(choice, TREE_TO_FILE).arg(file.as_str());
        let task = tokio::spawn(async move { cmd.run().await });
        let pids = file.wait_pids().await;
        assert_eq!(pids.len(), 3);
        task.abort();
        let err = task.await.expect_err("aborted");
        assert!(err.is_cancelled(), "{choice}: {err}");
        assert_gone(&pids, &format!("{choice}: after aborting the task")).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn a_cancel_token_kills_the_tree_and_errs_cancelled() {
    let suite = begin("a_cancel_token_kills_the_tree_and_errs_cancelled").await;
    for choice in mechanisms() {
        let file = TempPath::new("cancel");
        let token = CancelToken::new();
        let cmd = sh(choice, TREE_TO_FILE)
            .arg(file.as_str())
            .cancel_token(&token);
        let task = tokio::spawn(async move { cmd.output().await });
        let pids = file.wait_pids().await;
        assert!(!token.is_cancelled());
        token.cancel();
        assert!(token.is_cancelled());
        let err = task.await.expect("join").expect_err("cancelled");
        assert!(err.is_cancelled(), "{choice}: {err:?}");
        assert_eq!(err.kind(), ErrorKind::Cancelled);
        assert_eq!(err.to_string(), "sh: cancelled");
        assert!(err.output().is_none());
        assert_gone(&pids, &format!("{choice}: after cancel")).await;
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_token_cancels_every_run_holding_it_now_and_later() {
    let suite = begin("a_cancel_token_cancels_every_run_holding_it_now_and_later").await;
    for choice in mechanisms() {
        let token = CancelToken::new();
        let files = [TempPath::new("cancel-a"), TempPath::new("cancel-b")];
        let tasks: Vec<_> = files
            .iter()
            .map(|f| {
                let cmd = sh(choice, TREE_TO_FILE)
                    .arg(f.as_str())
                    .cancel_token(&token);
                tokio::spawn(async move { cmd.exit_code().await })
            })
            .collect();
        let mut pids = Vec::new();
        for f in &files {
            pids.extend(f.wait_pids().await);
        }
        token.clone().cancel();
        for t in tasks {
            let err = t.await.expect("join").expect_err("cancelled");
            assert!(err.is_cancelled(), "{choice}: {err:?}");
        }
        assert_gone(&pids, &format!("{choice}: both runs cancelled")).await;

        // A run given an already-cancelled token is cancelled too.
        let file = TempPath::new("cancel-late");
        let err = sh(choice, TREE_TO_FILE)
            .arg(file.as_str())
            .cancel_token(&token)
            .run()
            .await
            .expect_err("cancelled");
        assert!(err.is_cancelled(), "{choice}: {err:?}");
        let text = std::fs::read_to_string(file.path()).unwrap_or_default();
        assert_gone(&pid_lines(&text), "whatever the late run started").await;
    }
    suite.end().await;
}

#[tokio::test]
async fn timeout_with_grace_lets_a_term_handler_run() {
    let suite = begin("timeout_with_grace_lets_a_term_handler_run").await;
    let script =
        r#"trap "echo got-term; exit 0" TERM; echo $$; echo ready; while :; do sleep 0.1; done"#;
    // Each mechanism's case waits out its own grace: both at once.
    all_at_once(mechanisms(), |choice| async move {
        let what = format!("{choice}: timeout + grace, TERM handled");
        let (out, pids) = output_timing_out_after_ready(&what, |limit| {
            sh(choice, script)
                .timeout(limit)
                .grace(Duration::from_secs(10))
        })
        .await;
        assert!(out.timed_out(), "{what}: {out:?}");
        assert_eq!(out.outcome().to_string(), "timed out");
        assert!(
            out.stdout_str().contains("got-term"),
            "{what}: {:?}",
            out.stdout_str()
        );
        assert_eq!(pids, vec![out.pid()]);
        assert_gone(&pids, &what).await;
    })
    .await;
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_with_grace_kills_a_tree_that_ignores_term() {
    let suite = begin("timeout_with_grace_kills_a_tree_that_ignores_term").await;
    let script =
        r#"trap "" TERM; sleep 300 & echo $!; sleep 300 & echo $!; echo $$; echo ready; wait"#;
    // Each mechanism's case waits out its own grace: both at once.
    all_at_once(mechanisms(), |choice| async move {
        let what = format!("{choice}: timeout + grace, TERM ignored");
        let grace = Duration::from_millis(500);
        let (out, pids) = output_timing_out_after_ready(&what, |limit| {
            sh(choice, script).timeout(limit).grace(grace)
        })
        .await;
        assert!(out.timed_out(), "{what}: {out:?}");
        assert!(out.duration() >= grace, "{what}: {out:?}");
        assert_eq!(pids.len(), 3);
        assert_gone(&pids, &what).await;

        // The same through a verb that requires an exit.
        let err = sh(choice, script)
            .timeout(Duration::from_millis(200))
            .grace(grace)
            .run()
            .await
            .expect_err("timeout");
        assert!(err.is_timeout(), "{what}: {err:?}");
        let out = err.output().expect("carries the output");
        assert!(out.timed_out());
        let mut pids = pid_lines(&out.stdout_str());
        pids.push(out.pid());
        assert_gone(&pids, &what).await;
    })
    .await;
    suite.end().await;
}

/// Waits until `pid` runs `sleep` in a session of its own (`setsid` has
/// exec'd), and returns whether it did.
async fn is_setsid_sleep(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        if let (Some(s), Some(c)) = (stat(pid), comm(pid)) {
            if c == "sleep" && s.session == pid && s.pgrp == pid {
                return true;
            }
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn a_setsid_grandchild_escapes_a_process_group_but_not_a_cgroup() {
    let suite = begin("a_setsid_grandchild_escapes_a_process_group_but_not_a_cgroup").await;
    let script = r#"sleep 300 & echo $! >> "$1"; setsid sleep 300 & echo $! >> "$1"; echo $$ >> "$1"; echo done >> "$1"; wait"#;
    for choice in mechanisms() {
        let file = TempPath::new("setsid");
        let group = group(choice);
        let proc = group
            .start(&Command::new("sh").args(["-c", script, "sh", file.as_str()]))
            .expect("start");
        let pids = file.wait_pids().await;
        assert_eq!(pids.len(), 3);
        let escapee = pids[1];
        let _guard = KillOnDrop::new(vec![escapee]);
        assert!(
            is_setsid_sleep(escapee).await,
            "{choice}: {escapee} is not a setsid'ed sleep: {:?} {:?}",
            comm(escapee),
            stat(escapee)
        );
        let dir = cgroup_dir(&group);
        drop(group);
        drop(proc);
        let others = [pids[0], pids[2]];
        assert_gone(&others, &format!("{choice}: the rest of the tree")).await;
        match expected_mechanism(choice) {
            Mechanism::ProcessGroup => {
                assert_alive(&[escapee], "a setsid grandchild escapes a process group");
                kill_pid(escapee);
                assert_gone(&[escapee], "the escapee, killed by the test").await;
            }
            _ => {
                assert_gone(&[escapee], "a setsid grandchild in a cgroup").await;
                assert_dir_gone(&dir.expect("a cgroup dir")).await;
            }
        }
    }
    suite.end().await;
}

#[tokio::test]
async fn a_setsid_grandchild_holding_stdout_does_not_hang_a_verb() {
    let suite = begin("a_setsid_grandchild_holding_stdout_does_not_hang_a_verb").await;
    for choice in mechanisms() {
        // The escaped sleep keeps the stdout pipe open after sh exits. sh
        // waits (boundedly) until the job has left its session, or the
        // teardown at its exit could catch it still in the process group.
        // Once with a small output, once with one past the point where the
        // capture moves to a thread of its own.
        for lead in [0, 1 << 20] {
            let script = format!(
                r#"yes | head -c {lead}; setsid sleep 300 & p=$!; i=0
                until [ "$(cut -d' ' -f6 /proc/$p/stat)" = "$p" ] || [ $i -ge 1000 ]; do
                    i=$((i+1)); sleep 0.01
                done
                echo $p; echo bye"#
            );
            let out = sh(choice, &script).output().await.expect("output");
            assert!(out.success(), "{choice}: {out:?}");
            let text = out.stdout_str();
            assert!(
                text.ends_with("bye\n"),
                "{:?}",
                &text[text.len().saturating_sub(80)..]
            );
            assert!(
                text.starts_with(&"y\n".repeat(lead / 2)),
                "{choice}: the lead"
            );
            check_escapee(choice, &text).await;
        }
    }
    suite.end().await;
}

/// The escaped `setsid sleep` whose pid `stdout` reports: alive under a
/// process group (then killed here), gone in a cgroup.
async fn check_escapee(choice: MechanismChoice, stdout: &str) {
    let escapee = pid_lines(stdout)[0];
    let _guard = KillOnDrop::new(vec![escapee]);
    match expected_mechanism(choice) {
        Mechanism::ProcessGroup => {
            assert!(is_setsid_sleep(escapee).await, "{choice}: {escapee}");
            assert_alive(&[escapee], "a setsid grandchild escapes a process group");
            kill_pid(escapee);
            assert_gone(&[escapee], "the escapee, killed by the test").await;
        }
        _ => assert_gone(&[escapee], "a setsid grandchild in a cgroup").await,
    }
}

#[tokio::test]
async fn host_containment_reports_this_machine() {
    let suite = begin("host_containment_reports_this_machine").await;
    let host = pkit::host_containment();
    let choice = MechanismChoice::from_env().expect("a valid PKIT_MECHANISM");
    assert_eq!(host.choice, choice, "{host:?}");
    assert!(!host.reason.is_empty());
    assert!(!host.kernel.is_empty());
    if cgroup_usable() {
        let expected = match choice {
            MechanismChoice::ProcessGroup | MechanismChoice::Portable => Mechanism::ProcessGroup,
            _ => Mechanism::CgroupV2,
        };
        assert_eq!(host.mechanism, Some(expected), "{host:?}");
        assert!(host.cgroup_mount.is_some(), "{host:?}");
        assert!(host.owner_cgroup.is_some(), "{host:?}");
        let parent = host.group_parent.as_ref().expect("group_parent");
        assert!(parent.is_dir(), "{host:?}");
        assert!(host.cgroup_writable, "{host:?}");
        if std::env::var("PKIT_CLONE3").as_deref() == Ok("off") {
            assert!(!host.clone3, "{host:?}");
            assert!(host
                .clone3_error
                .as_deref()
                .unwrap()
                .contains("PKIT_CLONE3"));
            assert!(host.reason.contains("before exec"), "{host:?}");
        } else {
            assert!(host.clone3, "{host:?}");
            assert!(host.clone3_error.is_none(), "{host:?}");
        }

        // A group under the environment's default gets what it reported.
        let group = Group::new().expect("Group::new");
        assert_eq!(Some(group.mechanism()), host.mechanism);
        if let Some(dir) = cgroup_dir(&group) {
            assert_eq!(dir.parent(), Some(parent.as_path()));
        }
        drop(group);
        // So does a verb without a runner of its own.
        let out = Command::new("true").output().await.expect("true");
        assert_eq!(Some(out.mechanism()), host.mechanism);
    } else {
        assert_eq!(host.mechanism, Some(Mechanism::ProcessGroup), "{host:?}");
    }
    suite.end().await;
}
