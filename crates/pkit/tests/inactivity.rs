//! `Command::inactivity_timeout`: a run is ended when no output arrives
//! for the bound (its own report, `Output::inactivity_timed_out`), output
//! on either stream keeps it alive, and the whole tree goes. Verbs and
//! started processes, in both mechanisms.

mod common;

use std::time::Duration;

use common::*;
use pkit::Signal;

/// A `sleep 300` grandchild and its own pid, `ready`; then `$1` ticks 0.1 s
/// apart, alternating stdout and stderr; then silence.
const TICKS_THEN_SILENT: &str = r#"sleep 300 & echo $!; echo $$; echo ready
i=0; while [ $i -lt "$1" ]; do i=$((i+1)); if [ $((i % 2)) = 0 ]; then echo tick$i; else echo tick$i >&2; fi; sleep 0.1; done
wait"#;

#[tokio::test]
async fn a_silent_run_is_ended_and_reported_as_inactive() {
    let suite = begin("a_silent_run_is_ended_and_reported_as_inactive").await;
    for choice in mechanisms() {
        let what = format!("{choice}: 25 ticks over 2.5 s, then silent; idle bound 1.5 s");
        let out = sh(choice, TICKS_THEN_SILENT)
            .arg("25")
            .inactivity_timeout(Duration::from_millis(1500))
            .output()
            .await
            .expect("output");
        assert!(out.timed_out(), "{what}: {out:?}");
        assert!(out.inactivity_timed_out(), "{what}: {out:?}");
        // Output on either stream kept it alive past the bound.
        assert!(
            out.stdout_str().contains("tick24"),
            "{what}: {:?}",
            out.stdout_str()
        );
        assert!(
            out.stderr_str().contains("tick25"),
            "{what}: {:?}",
            out.stderr_str()
        );
        let pids = pids_before_ready(&out.stdout_str()).expect("ready");
        assert_gone(&pids, &what).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn a_talking_run_is_not_inactive_and_the_overall_timeout_is_told_apart() {
    let suite = begin("a_talking_run_is_not_inactive_and_the_overall_timeout_is_told_apart").await;
    for choice in mechanisms() {
        let what = format!("{choice}: exits on its own while talking");
        let out = sh(
            choice,
            "for i in 1 2 3 4 5; do echo $i; sleep 0.1; done; exit 3",
        )
        .inactivity_timeout(Duration::from_secs(5))
        .output()
        .await
        .expect("output");
        assert_eq!(out.code(), Some(3), "{what}: {out:?}");
        assert!(!out.timed_out() && !out.inactivity_timed_out(), "{what}");

        let what = format!("{choice}: overall timeout while talking");
        let (out, pids) = output_timing_out_after_ready(&what, |limit| {
            sh(choice, TICKS_THEN_SILENT)
                .arg("100000")
                .timeout(limit)
                .inactivity_timeout(Duration::from_secs(60))
        })
        .await;
        assert!(out.timed_out(), "{what}: {out:?}");
        assert!(!out.inactivity_timed_out(), "{what}: {out:?}");
        assert_gone(&pids, &what).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn inactivity_ends_the_tree_with_the_timeout_signal() {
    let suite = begin("inactivity_ends_the_tree_with_the_timeout_signal").await;
    for choice in mechanisms() {
        let what = format!("{choice}: timeout_signal(INT) on inactivity");
        let script = r#"trap 'echo got-int; kill $bg; exit 0' INT
sleep 300 & bg=$!; echo $bg; echo $$; echo ready; while :; do sleep 0.1; done"#;
        // Growing bounds until the trap was set (`ready`) before the bound
        // fired: on a loaded machine the shell may take longer than 500 ms
        // to start, and an INT before its trap just ends it.
        let (out, pids) = output_timing_out_after_ready(&what, |limit| {
            sh(choice, script)
                .inactivity_timeout(limit)
                .timeout_signal(Signal::Int)
                .grace(Duration::from_secs(30))
        })
        .await;
        assert!(out.inactivity_timed_out(), "{what}: {out:?}");
        assert!(
            out.stdout_str().contains("got-int"),
            "{what}: {:?}",
            out.stdout_str()
        );
        assert!(!out.killed_after_grace(), "{what}: {out:?}");
        assert_gone(&pids, &what).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn a_silent_started_process_subtree_is_ended_and_reported_as_inactive() {
    let suite = begin("a_silent_started_process_subtree_is_ended_and_reported_as_inactive").await;
    for choice in mechanisms() {
        let what = format!("{choice}: started, ticks then silent");
        let g = group(choice);
        let bystander = g
            .start(&cmd(choice, "sleep").arg("300"))
            .expect("start bystander");
        let mut proc = g
            .start(
                &sh(choice, TICKS_THEN_SILENT)
                    .arg("25")
                    .inactivity_timeout(Duration::from_millis(1500)),
            )
            .expect("start");
        let out = proc.wait().await.expect("wait");
        assert!(
            out.timed_out() && out.inactivity_timed_out(),
            "{what}: {out:?}"
        );
        assert!(
            out.stdout_str().contains("tick24"),
            "{what}: {:?}",
            out.stdout_str()
        );
        let pids = pids_before_ready(&out.stdout_str()).expect("ready");
        assert_gone(&pids, &what).await;
        assert_alive(&[bystander.pid()], &what);
        g.shutdown(Duration::ZERO).await.expect("shutdown");
        assert_gone(&[bystander.pid()], &what).await;
    }
    suite.end().await;
}
