//! A pipeline's cancel signal and grace, and its inactivity timeout (the
//! chain's own and its stages'): honoured, not ignored. Both mechanisms.

mod common;

use std::time::Duration;

use common::*;
use pkit::{CancelToken, Command, Pipe, Signal};

/// Traps `$3` (writes `got` to `$2`, kills its `sleep 300` child, exits 0);
/// writes the child's pid and its own, then `done`, to `$1`; then loops
/// without output.
const TRAPPING: &str = r#"trap 'echo got >> "$2"; kill $bg; exit 0' $3
sleep 300 & bg=$!; echo $bg >> "$1"; echo $$ >> "$1"; echo done >> "$1"
while :; do sleep 0.1; done"#;

fn marks(file: &TempPath) -> String {
    std::fs::read_to_string(file.path()).unwrap_or_default()
}

/// Runs `pipe`, cancels `token` once the trapping stage is up, checks the
/// error, and returns the tree's pids.
async fn cancel(pipe: Pipe, token: &CancelToken, pids: &TempPath, what: &str) -> Vec<u32> {
    let task = tokio::spawn(async move { pipe.output().await });
    let tree = pids.wait_pids().await;
    token.cancel();
    let err = tokio::time::timeout(DEADLINE, task)
        .await
        .unwrap_or_else(|_| panic!("{what}: the cancelled chain did not end"))
        .expect("join")
        .expect_err("cancelled");
    assert!(err.is_cancelled(), "{what}: {err:?}");
    tree
}

#[tokio::test]
async fn a_cancelled_pipe_gets_the_chains_cancel_signal_and_grace() {
    let suite = begin("a_cancelled_pipe_gets_the_chains_cancel_signal_and_grace").await;
    for choice in mechanisms() {
        let what = format!("{choice}: Pipe::cancel_signal(INT)");
        let (pids, mk, token) = (
            TempPath::new("pc-p"),
            TempPath::new("pc-m"),
            CancelToken::new(),
        );
        let pipe = Pipe::new([
            Command::new("sh").args(["-c", TRAPPING, "sh", pids.as_str(), mk.as_str(), "INT"]),
            Command::new("cat"),
        ])
        .mechanism(choice)
        .cancel_token(&token)
        .cancel_signal(Signal::Int)
        .cancel_grace(Duration::from_secs(20));
        let tree = cancel(pipe, &token, &pids, &what).await;
        assert_eq!(marks(&mk), "got\n", "{what}: the trap ran before the end");
        assert_gone(&tree, &what).await;

        // Without either, SIGKILL at once: the trap never runs.
        let what = format!("{choice}: no cancel signal");
        let (pids, mk, token) = (
            TempPath::new("pc-p"),
            TempPath::new("pc-m"),
            CancelToken::new(),
        );
        let pipe = Pipe::new([
            Command::new("sh").args(["-c", TRAPPING, "sh", pids.as_str(), mk.as_str(), "TERM"]),
            Command::new("cat"),
        ])
        .mechanism(choice)
        .cancel_token(&token);
        let tree = cancel(pipe, &token, &pids, &what).await;
        assert_gone(&tree, &what).await;
        assert_eq!(marks(&mk), "", "{what}: killed, not signalled");
    }
    suite.end().await;
}

#[tokio::test]
async fn a_stages_own_cancel_signal_and_grace_apply_to_the_chain() {
    let suite = begin("a_stages_own_cancel_signal_and_grace_apply_to_the_chain").await;
    for choice in mechanisms() {
        let what = format!("{choice}: a stage's cancel_signal(USR1) and its token");
        let (pids, mk, token) = (
            TempPath::new("ps-p"),
            TempPath::new("ps-m"),
            CancelToken::new(),
        );
        let pipe = Pipe::new([
            Command::new("sh").args(["-c", TRAPPING, "sh", pids.as_str(), mk.as_str(), "USR1"]),
            Command::new("cat")
                .cancel_token(&token)
                .cancel_signal(Signal::Usr1)
                .cancel_grace(Duration::from_secs(20)),
        ])
        .mechanism(choice);
        let tree = cancel(pipe, &token, &pids, &what).await;
        assert_eq!(marks(&mk), "got\n", "{what}: the trap ran before the end");
        assert_gone(&tree, &what).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn a_silent_pipe_is_ended_by_its_inactivity_timeout() {
    let suite = begin("a_silent_pipe_is_ended_by_its_inactivity_timeout").await;
    for choice in mechanisms() {
        for stage_bound in [false, true] {
            let what = format!("{choice}: stage's own bound: {stage_bound}");
            // A try whose head had not said `hi` by the bound (a loaded
            // machine slow to start it: killed before it talked) is void
            // and made again with the bound doubled, up to 16 s.
            let mut idle = Duration::from_millis(500);
            let (out, pids) = loop {
                let pids = TempPath::new("pi-p");
                let script = r#"sleep 300 & echo $! >> "$1"; echo $$ >> "$1"; echo done >> "$1"; echo hi; wait"#;
                let mut head = Command::new("sh").args(["-c", script, "sh", pids.as_str()]);
                let mut pipe_bound = None;
                if stage_bound {
                    head = head.inactivity_timeout(idle);
                } else {
                    pipe_bound = Some(idle);
                }
                let mut pipe = Pipe::new([head, Command::new("cat")]).mechanism(choice);
                if let Some(d) = pipe_bound {
                    pipe = pipe.inactivity_timeout(d);
                }
                let out = tokio::time::timeout(DEADLINE * 3, pipe.output())
                    .await
                    .unwrap_or_else(|_| panic!("{what}: the silent chain was not ended"))
                    .expect("output");
                assert!(out.timed_out(), "{what}: {out:?}");
                if out.stdout_str().contains("hi") || idle >= Duration::from_secs(16) {
                    break (out, pids);
                }
                let text = std::fs::read_to_string(pids.path()).unwrap_or_default();
                assert_gone(&pid_lines(&text), &format!("{what}: a void try")).await;
                idle *= 2;
            };
            assert!(out.inactivity_timed_out(), "{what}: {out:?}");
            assert_eq!(out.stdout_str(), "hi\n", "{what}");
            assert!(
                out.stages().iter().all(|s| s.timed_out()),
                "{what}: {out:?}"
            );
            assert_gone(&pids.wait_pids().await, &what).await;
        }
    }
    suite.end().await;
}

#[tokio::test]
async fn a_pipe_that_keeps_talking_runs_past_its_inactivity_bound() {
    let suite = begin("a_pipe_that_keeps_talking_runs_past_its_inactivity_bound").await;
    for choice in mechanisms() {
        // Output on the last stage's stdout, then on a stage's stderr only:
        // both count. Each half ticks every 0.2 s for longer than the bound
        // (1.5 s: 9 ticks a half), so the stderr half alone outlasts it. A
        // run that timed out anyway (a loaded machine: the shell's start,
        // or a `sleep`'s, took longer than the bound) is tried again with
        // twice the bound and twice the ticks, up to 12 s.
        let mut bound = Duration::from_millis(1500);
        let out = loop {
            let ticks = bound.as_millis() * 6 / 1000;
            let out = Pipe::new([
                Command::new("sh").args([
                    "-c",
                    "n=$1; i=1; while [ $i -le $n ]; do echo $i; sleep 0.2; i=$((i+1)); done; \
                     i=1; while [ $i -le $n ]; do echo e$i >&2; sleep 0.2; i=$((i+1)); done",
                    "sh",
                    &ticks.to_string(),
                ]),
                Command::new("cat"),
            ])
            .mechanism(choice)
            .inactivity_timeout(bound)
            .output()
            .await
            .expect("output");
            if !out.inactivity_timed_out() || bound >= Duration::from_secs(12) {
                break out;
            }
            bound *= 2;
        };
        let ticks = bound.as_millis() * 6 / 1000;
        assert!(out.success(), "{choice}: {out:?}");
        assert!(!out.inactivity_timed_out(), "{choice}: bound {bound:?}");
        let want: String = (1..=ticks).map(|i| format!("{i}\n")).collect();
        assert_eq!(out.stdout_str(), want, "{choice}");
    }
    suite.end().await;
}

#[tokio::test]
async fn a_started_pipe_honours_its_cancel_signal_and_inactivity_with_nobody_waiting() {
    let suite =
        begin("a_started_pipe_honours_its_cancel_signal_and_inactivity_with_nobody_waiting").await;
    for choice in mechanisms() {
        // Cancelled while nobody waits: the chain's cancel signal, whose
        // trap runs, then the end; wait afterwards says cancelled.
        let what = format!("{choice}: started, Pipe::cancel_signal(INT)");
        let (pids, mk, token) = (
            TempPath::new("ps-p"),
            TempPath::new("ps-m"),
            CancelToken::new(),
        );
        let mut running = Pipe::new([
            Command::new("sh").args(["-c", TRAPPING, "sh", pids.as_str(), mk.as_str(), "INT"]),
            Command::new("cat"),
        ])
        .mechanism(choice)
        .cancel_token(&token)
        .cancel_signal(Signal::Int)
        .cancel_grace(Duration::from_secs(20))
        .start()
        .expect("start");
        let tree = pids.wait_pids().await;
        token.cancel();
        assert_gone(&tree, &what).await;
        assert_eq!(marks(&mk), "got\n", "{what}: the trap ran before the end");
        let err = tokio::time::timeout(DEADLINE, running.wait())
            .await
            .unwrap_or_else(|_| panic!("{what}: wait"))
            .expect_err("cancelled");
        assert!(err.is_cancelled(), "{what}: {err:?}");

        // Silent while nobody waits: ended by the inactivity bound. A try
        // whose head had not written its pids by the bound (a loaded
        // machine slow to start it) is void and made again with the bound
        // doubled, up to 16 s.
        let what = format!("{choice}: started, Pipe::inactivity_timeout");
        let mut idle = Duration::from_millis(500);
        loop {
            let pids = TempPath::new("ps-i");
            let script = r#"sleep 300 & echo $! >> "$1"; echo $$ >> "$1"; echo done >> "$1"; wait"#;
            let mut running = Pipe::new([
                Command::new("sh").args(["-c", script, "sh", pids.as_str()]),
                Command::new("cat"),
            ])
            .mechanism(choice)
            .inactivity_timeout(idle)
            .start()
            .expect("start");
            let said = || std::fs::read_to_string(pids.path()).unwrap_or_default();
            let has_done = |text: &str| text.lines().any(|l| l == "done");
            let deadline = std::time::Instant::now() + DEADLINE * 3;
            let ready = loop {
                if has_done(&said()) {
                    break true;
                }
                if !running.is_running() {
                    break has_done(&said());
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{what}: neither its pids nor its end"
                );
                tokio::time::sleep(POLL).await;
            };
            if ready || idle >= Duration::from_secs(16) {
                assert_gone(&pids.wait_pids().await, &what).await;
                let out = tokio::time::timeout(DEADLINE, running.wait())
                    .await
                    .unwrap_or_else(|_| panic!("{what}: wait"))
                    .expect("output");
                assert!(out.inactivity_timed_out(), "{what}: {out:?}");
                break;
            }
            let _ = tokio::time::timeout(DEADLINE, running.wait()).await;
            assert_gone(&pid_lines(&said()), &format!("{what}: a void try")).await;
            idle *= 2;
        }
    }
    suite.end().await;
}
