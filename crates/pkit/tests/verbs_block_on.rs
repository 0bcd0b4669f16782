//! The verbs awaited where a multi-thread runtime's `block_on` runs them
//! (a `#[tokio::main]` program's body), not in a task: there the exit is
//! awaited in the task that reads the output. Bytes intact, big outputs,
//! a descendant holding the pipes open, a timeout: all as in a task.

mod common;

use std::time::Duration;

use common::*;
use pkit::Outcome;

/// Well past what any of these runs takes, to tell a hang from a slow run.
const HANG: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_captures_keep_their_bytes() {
    let suite = begin("verbs_block_on_small").await;
    for choice in mechanisms() {
        for i in 0..20u8 {
            let input: Vec<u8> = (0..32u8).map(|b| b.wrapping_mul(i)).collect();
            let out = cmd(choice, "cat")
                .stdin_bytes(input.clone())
                .output()
                .await
                .expect("output");
            assert!(out.success(), "{choice}: {out:?}");
            assert_eq!(out.stdout(), input.as_slice(), "{choice} run {i}");
            assert!(out.stderr().is_empty(), "{choice} run {i}");
        }
        let out = sh(choice, "printf out; printf err >&2; exit 3")
            .output()
            .await
            .expect("output");
        assert_eq!(out.outcome(), Outcome::Exited(3), "{choice}");
        assert_eq!((out.stdout(), out.stderr()), (&b"out"[..], &b"err"[..]));
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_outputs_on_both_streams_are_captured_whole() {
    let suite = begin("verbs_block_on_big").await;
    const OUT: usize = 8 * 1024 * 1024;
    const ERR: usize = 300 * 1024;
    for choice in mechanisms() {
        let script = format!("head -c {OUT} /dev/zero; head -c {ERR} /dev/zero >&2");
        let out = tokio::time::timeout(HANG, sh(choice, &script).output())
            .await
            .unwrap_or_else(|_| panic!("{choice}: the run did not end"))
            .expect("output");
        assert!(out.success(), "{choice}: {out:?}");
        assert_eq!(out.stdout().len(), OUT, "{choice}");
        assert_eq!(out.stderr().len(), ERR, "{choice}");
        assert!(out.stdout().iter().chain(out.stderr()).all(|&b| b == 0));
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_descendant_holding_the_pipes_does_not_hold_the_run() {
    let suite = begin("verbs_block_on_descendant").await;
    for choice in mechanisms() {
        // The shell exits at once; its background `sleep` keeps both
        // pipes open.
        let out = tokio::time::timeout(
            HANG,
            sh(choice, "sleep 60 & echo $!; echo bye >&2").output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{choice}: the run waited for the descendant"))
        .expect("output");
        assert!(out.success(), "{choice}: {out:?}");
        assert_eq!(out.stderr(), b"bye\n", "{choice}");
        let pid: u32 = out.stdout_str().trim().parse().expect("the sleep's pid");
        assert_gone(&[pid], &format!("{choice}: the descendant left by the run")).await;
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_still_ends_the_tree() {
    let suite = begin("verbs_block_on_timeout").await;
    for choice in mechanisms() {
        let out = tokio::time::timeout(
            HANG,
            sh(choice, "sleep 60 & echo $!; wait")
                .timeout(Duration::from_millis(300))
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{choice}: the run did not end"))
        .expect("output");
        assert!(out.timed_out(), "{choice}: {out:?}");
        let pid: u32 = out.stdout_str().trim().parse().expect("the sleep's pid");
        assert_gone(
            &[pid],
            &format!("{choice}: the descendant of a timed-out run"),
        )
        .await;
    }
    suite.end().await;
}
