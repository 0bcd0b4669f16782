//! Input and output at the edges of the verbs (found by porting peers'
//! test suites): piped stdin under a verb, failing stdin readers, a cut
//! stdout under `run`, byte totals under a line stream, a token cancelled
//! before the run, and pipelines whose stages fail or carry their own
//! bounds. In both mechanisms.

mod common;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::*;
use pkit::{CancelToken, CapturePolicy, ErrorKind, Outcome, Pipe};
use tokio::io::{AsyncRead, ReadBuf};

#[tokio::test]
async fn a_verb_closes_a_piped_stdin_at_once() {
    let suite = begin("a_verb_closes_a_piped_stdin_at_once").await;
    for choice in mechanisms() {
        let out = cmd(choice, "cat")
            .stdin_piped()
            .timeout(Duration::from_secs(60))
            .output()
            .await
            .expect("output");
        assert!(out.success() && !out.timed_out(), "{choice}: {out:?}");
        let out = Pipe::new([cmd(choice, "cat").stdin_piped(), cmd(choice, "cat")])
            .mechanism(choice)
            .timeout(Duration::from_secs(60))
            .output()
            .await
            .expect("pipe output");
        assert!(out.success() && !out.timed_out(), "{choice}: {out:?}");
    }
    suite.end().await;
}

/// Hands out `partial\n`, then fails (or panics).
struct Failing {
    sent: bool,
    panic: bool,
}

impl AsyncRead for Failing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.sent {
            self.sent = true;
            buf.put_slice(b"partial\n");
            return Poll::Ready(Ok(()));
        }
        if self.panic {
            panic!("the reader broke (on purpose, in a test)");
        }
        Poll::Ready(Err(std::io::Error::other("the source went away")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stdin_reader_is_an_error_not_a_truncated_success() {
    let suite = begin("a_failing_stdin_reader_is_an_error_not_a_truncated_success").await;
    for choice in mechanisms() {
        for panic in [false, true] {
            let what = format!(
                "{choice}: reader that {}",
                if panic { "panics" } else { "fails" }
            );
            let err = cmd(choice, "cat")
                .stdin_reader(Failing { sent: false, panic })
                .output()
                .await
                .expect_err(&what);
            assert_eq!(err.kind(), ErrorKind::Io, "{what}: {err}");
            assert!(err.to_string().contains("stdin"), "{what}: {err}");

            // A started process: wait() says so too.
            let group = group(choice);
            let mut p = group
                .start(&cmd(choice, "cat").stdin_reader(Failing { sent: false, panic }))
                .expect("start");
            let err = p.wait().await.expect_err(&what);
            assert_eq!(err.kind(), ErrorKind::Io, "{what}: {err}");

            // A child that failed anyway keeps its Output.
            let out = sh(choice, "cat >/dev/null; exit 3")
                .stdin_reader(Failing { sent: false, panic })
                .output()
                .await
                .expect(&what);
            assert_eq!(out.code(), Some(3), "{what}");
        }
        // A reader that ends normally is fine, as is a child that stops
        // reading early.
        let out = cmd(choice, "cat")
            .stdin_reader(&b"all of it\n"[..])
            .output()
            .await
            .expect("output");
        assert_eq!(out.stdout_str(), "all of it\n");
        let out = cmd(choice, "true")
            .stdin_reader(tokio::io::repeat(b'x'))
            .output()
            .await
            .expect("output");
        assert!(out.success(), "{choice}: {out:?}");
    }
    suite.end().await;
}

#[tokio::test]
async fn run_refuses_a_stdout_cut_by_a_capture_limit() {
    let suite = begin("run_refuses_a_stdout_cut_by_a_capture_limit").await;
    for choice in mechanisms() {
        for policy in [CapturePolicy::KeepHead, CapturePolicy::KeepTail] {
            let err = cmd(choice, "seq")
                .args(["1", "10000"])
                .capture_limit(100, policy)
                .run()
                .await
                .expect_err("cut stdout");
            assert_eq!(err.kind(), ErrorKind::OutputLimit, "{choice}: {err}");
            let out = err.output().expect("carries the output");
            assert_eq!(out.stdout().len(), 100);
            assert!(out.stdout_truncated());
            let err = Pipe::new([
                cmd(choice, "seq").args(["1", "10000"]),
                cmd(choice, "cat").capture_limit(100, policy),
            ])
            .mechanism(choice)
            .run()
            .await
            .expect_err("cut stdout");
            assert_eq!(err.kind(), ErrorKind::OutputLimit, "{choice}: {err}");
        }
        // Within the limit: the answer.
        let got = cmd(choice, "echo")
            .arg("fits")
            .capture_limit(5, CapturePolicy::KeepHead)
            .run()
            .await
            .expect("run");
        assert_eq!(got, "fits");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_count_every_byte_under_a_line_stream() {
    let suite = begin("totals_count_every_byte_under_a_line_stream").await;
    let expected_out = std::process::Command::new("seq")
        .args(["1", "20000"])
        .output()
        .expect("seq")
        .stdout
        .len() as u64;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(
                &sh(choice, "seq 1 20000; seq 1 20000 >&2")
                    .stream_lines()
                    .buffer_lines(2),
            )
            .expect("start");
        // Nobody takes the stream: most lines are dropped, all are counted.
        let out = p.wait().await.expect("wait");
        assert!(p.dropped_lines() > 0, "{choice}");
        assert_eq!(out.stdout_total_bytes(), expected_out, "{choice}: {out:?}");
        assert_eq!(out.stderr_total_bytes(), expected_out, "{choice}: {out:?}");
        assert!(out.stdout().is_empty(), "a line stream keeps no bytes");
    }
    suite.end().await;
}

#[tokio::test]
async fn a_token_cancelled_before_the_run_spawns_nothing() {
    let suite = begin("a_token_cancelled_before_the_run_spawns_nothing").await;
    for choice in mechanisms() {
        let marker = TempPath::new("cancelled-run");
        let token = CancelToken::new();
        token.cancel();
        let touch = || {
            cmd(choice, "touch")
                .arg(marker.as_str())
                .cancel_token(&token)
        };
        let err = touch().output().await.expect_err("cancelled");
        assert!(err.is_cancelled(), "{choice}: {err:?}");
        let err = group(choice).output(&touch()).await.expect_err("cancelled");
        assert!(err.is_cancelled(), "{choice}: {err:?}");
        let err = Pipe::new([touch(), cmd(choice, "cat")])
            .mechanism(choice)
            .output()
            .await
            .expect_err("cancelled");
        assert!(err.is_cancelled(), "{choice}: {err:?}");
        let err = Pipe::new([cmd(choice, "touch").arg(marker.as_str())])
            .mechanism(choice)
            .cancel_token(&token)
            .output()
            .await
            .expect_err("cancelled");
        assert!(err.is_cancelled(), "{choice}: {err:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!marker.path().exists(), "{choice}: a cancelled run ran");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_stage_ends_what_feeds_it() {
    let suite = begin("a_failed_stage_ends_what_feeds_it").await;
    for choice in mechanisms() {
        let out = tokio::time::timeout(
            DEADLINE,
            Pipe::new([cmd(choice, "sleep").arg("300"), sh(choice, "exit 3")])
                .mechanism(choice)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{choice}: the chain waited for its producer"))
        .expect("output");
        assert_eq!(out.code(), Some(3), "{choice}: {out:?}");
        assert_eq!(out.program(), "sh", "{choice}: the failed stage is blamed");
        assert_eq!(out.stages()[0].signal(), Some(9), "{choice}: {out:?}");
        assert_gone(&[out.stages()[0].pid()], &format!("{choice}: the producer")).await;

        // What follows a failed stage runs on: its output is kept.
        let out = Pipe::new([
            cmd(choice, "sleep").arg("300"),
            sh(choice, "echo half; exit 4"),
            cmd(choice, "wc").arg("-l"),
        ])
        .mechanism(choice)
        .timeout(Duration::from_secs(60))
        .output()
        .await
        .expect("output");
        assert_eq!(out.code(), Some(4), "{choice}: {out:?}");
        assert_eq!(out.stdout_str().trim(), "1", "{choice}: {out:?}");
        assert!(out.stages()[2].success(), "{choice}: {out:?}");

        // A consumer that ends early with success is not a failure.
        let got = Pipe::new([
            cmd(choice, "yes").unchecked_in_pipe(),
            cmd(choice, "head").arg("-n2"),
        ])
        .mechanism(choice)
        .run()
        .await
        .expect("run");
        assert_eq!(got, "y\ny");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_own_timeout_and_token_bound_the_chain() {
    let suite = begin("a_stage_own_timeout_and_token_bound_the_chain").await;
    for choice in mechanisms() {
        let out = tokio::time::timeout(
            DEADLINE,
            Pipe::new([
                cmd(choice, "sleep")
                    .arg("300")
                    .timeout(Duration::from_millis(300)),
                cmd(choice, "cat"),
            ])
            .mechanism(choice)
            .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{choice}: a stage's timeout was ignored"))
        .expect("output");
        assert!(out.timed_out(), "{choice}: {out:?}");
        assert_eq!(out.outcome(), Outcome::TimedOut);

        let token = CancelToken::new();
        let later = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            later.cancel();
        });
        let err = tokio::time::timeout(
            DEADLINE,
            Pipe::new([
                cmd(choice, "sleep").arg("300"),
                cmd(choice, "cat").cancel_token(&token),
            ])
            .mechanism(choice)
            .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{choice}: a stage's token was ignored"))
        .expect_err("cancelled");
        assert!(err.is_cancelled(), "{choice}: {err:?}");
    }
    suite.end().await;
}
