//! What a cancelled run's tree gets: `cancel_signal` and `cancel_grace`
//! for a cancel token (verbs and started processes), SIGKILL at once by
//! default and for a dropped future. In both mechanisms.

mod common;

use std::time::Duration;

use common::*;
use pkit::{CancelToken, Command, Signal};

/// Traps `$3` (writes `got` to `$2`, kills its `sleep 300` child, takes a
/// moment, writes `cleaned`, exits 0); writes the child's pid and its own,
/// then `done`, to `$1`; then loops.
const TRAPPING: &str = r#"trap 'echo got >> "$2"; kill $bg; sleep 0.3; echo cleaned >> "$2"; exit 0' $3
sleep 300 & bg=$!; echo $bg >> "$1"; echo $$ >> "$1"; echo done >> "$1"
while :; do sleep 0.1; done"#;

fn trapping(
    choice: pkit::MechanismChoice,
    pids: &TempPath,
    marks: &TempPath,
    sig: &str,
) -> Command {
    sh(choice, TRAPPING).args([pids.as_str(), marks.as_str(), sig])
}

fn marks(file: &TempPath) -> Vec<String> {
    std::fs::read_to_string(file.path())
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `cmd` as a verb, cancels its token once the tree is up, and
/// returns the tree's pids after checking the verb erred `Cancelled`.
async fn cancel_verb(cmd: Command, token: &CancelToken, pids: &TempPath, what: &str) -> Vec<u32> {
    let task = tokio::spawn(async move { cmd.output().await });
    let tree = pids.wait_pids().await;
    token.cancel();
    let err = task.await.expect("join").expect_err("cancelled");
    assert!(err.is_cancelled(), "{what}: {err:?}");
    tree
}

#[tokio::test]
async fn a_cancelled_verb_tree_gets_the_cancel_signal_and_its_grace() {
    let suite = begin("a_cancelled_verb_tree_gets_the_cancel_signal_and_its_grace").await;
    for choice in mechanisms() {
        // Signal and grace: the trap runs to its end before the verb returns.
        let what = format!("{choice}: cancel_signal(INT) + cancel_grace");
        let (pids, mk, token) = (
            TempPath::new("cg-p"),
            TempPath::new("cg-m"),
            CancelToken::new(),
        );
        let cmd = trapping(choice, &pids, &mk, "INT")
            .cancel_token(&token)
            .cancel_signal(Signal::Int)
            .cancel_grace(Duration::from_secs(60));
        let tree = cancel_verb(cmd, &token, &pids, &what).await;
        assert_eq!(marks(&mk), ["got", "cleaned"], "{what}");
        assert_gone(&tree, &what).await;

        // A grace alone means SIGTERM first.
        let what = format!("{choice}: cancel_grace only");
        let (pids, mk, token) = (
            TempPath::new("cg-p"),
            TempPath::new("cg-m"),
            CancelToken::new(),
        );
        let cmd = trapping(choice, &pids, &mk, "TERM")
            .cancel_token(&token)
            .cancel_grace(Duration::from_secs(60));
        let tree = cancel_verb(cmd, &token, &pids, &what).await;
        assert_eq!(marks(&mk), ["got", "cleaned"], "{what}");
        assert_gone(&tree, &what).await;

        // Neither: SIGKILL at once, the trap never runs.
        let what = format!("{choice}: no cancel signal");
        let (pids, mk, token) = (
            TempPath::new("cg-p"),
            TempPath::new("cg-m"),
            CancelToken::new(),
        );
        let cmd = trapping(choice, &pids, &mk, "INT TERM").cancel_token(&token);
        let tree = cancel_verb(cmd, &token, &pids, &what).await;
        assert_gone(&tree, &what).await;
        assert!(marks(&mk).is_empty(), "{what}: {:?}", marks(&mk));
    }
    suite.end().await;
}

#[tokio::test]
async fn a_tree_ignoring_the_cancel_signal_is_killed_after_the_grace() {
    let suite = begin("a_tree_ignoring_the_cancel_signal_is_killed_after_the_grace").await;
    for choice in mechanisms() {
        let what = format!("{choice}: INT ignored");
        let (pids, token) = (TempPath::new("cg-p"), CancelToken::new());
        let cmd = sh(choice, &format!("trap '' INT; {TREE_TO_FILE}"))
            .arg(pids.as_str())
            .cancel_token(&token)
            .cancel_signal(Signal::Int)
            .cancel_grace(Duration::from_millis(300));
        let tree = cancel_verb(cmd, &token, &pids, &what).await;
        assert_gone(&tree, &what).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn a_dropped_verb_future_kills_at_once_whatever_the_cancel_grace() {
    let suite = begin("a_dropped_verb_future_kills_at_once_whatever_the_cancel_grace").await;
    for choice in mechanisms() {
        let what = format!("{choice}: dropped with a cancel grace");
        let (pids, mk) = (TempPath::new("cg-p"), TempPath::new("cg-m"));
        let cmd = trapping(choice, &pids, &mk, "INT")
            .cancel_signal(Signal::Int)
            .cancel_grace(Duration::from_secs(60));
        let task = tokio::spawn(async move { cmd.output().await });
        let tree = pids.wait_pids().await;
        task.abort();
        let _ = task.await;
        assert_gone(&tree, &what).await;
        assert!(marks(&mk).is_empty(), "{what}: {:?}", marks(&mk));
    }
    suite.end().await;
}

#[tokio::test]
async fn a_cancelled_started_process_subtree_gets_the_cancel_signal_and_its_grace() {
    let suite =
        begin("a_cancelled_started_process_subtree_gets_the_cancel_signal_and_its_grace").await;
    for choice in mechanisms() {
        let what = format!("{choice}: started, cancel_signal(INT) + cancel_grace");
        let g = group(choice);
        let (pids, mk, token) = (
            TempPath::new("cg-p"),
            TempPath::new("cg-m"),
            CancelToken::new(),
        );
        let cmd = trapping(choice, &pids, &mk, "INT")
            .cancel_token(&token)
            .cancel_signal(Signal::Int)
            .cancel_grace(Duration::from_secs(60));
        let mut proc = g.start(&cmd).expect("start");
        let tree = pids.wait_pids().await;
        token.cancel();
        let err = proc.wait().await.expect_err("cancelled");
        assert!(err.is_cancelled(), "{what}: {err:?}");
        assert_eq!(marks(&mk), ["got", "cleaned"], "{what}");
        assert_gone(&tree, &what).await;

        let what = format!("{choice}: started, no cancel signal");
        let (pids, mk, token) = (
            TempPath::new("cg-p"),
            TempPath::new("cg-m"),
            CancelToken::new(),
        );
        let cmd = trapping(choice, &pids, &mk, "INT TERM").cancel_token(&token);
        let mut proc = g.start(&cmd).expect("start");
        let tree = pids.wait_pids().await;
        token.cancel();
        let err = proc.wait().await.expect_err("cancelled");
        assert!(err.is_cancelled(), "{what}: {err:?}");
        assert_gone(&tree, &what).await;
        assert!(marks(&mk).is_empty(), "{what}: {:?}", marks(&mk));
        g.shutdown(Duration::ZERO).await.expect("shutdown");
    }
    suite.end().await;
}
