//! Stdio::Raw: a started process's stdout/stderr as a raw AsyncRead (and
//! a blocking Read), with backpressure and every byte intact; the verbs
//! capture it as Piped. Both mechanisms.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, Outcome, Stdio};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn raw_stdout_has_backpressure_and_every_byte() {
    let suite = begin("raw_stdout_has_backpressure_and_every_byte").await;
    for choice in mechanisms() {
        let group = group(choice);
        // About 2 MB: far more than a pipe holds.
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "seq 1 300000; echo done >&2"])
                    .stdout(Stdio::Raw)
                    .stream_lines(),
            )
            .expect("start");
        // Nobody reads stdout: the child blocks, it can't get to `done`.
        let err = p
            .wait_for_line(|l| l.text == "done", Duration::from_millis(700))
            .await
            .expect_err("blocked on the full pipe");
        assert!(err.is_not_ready(), "{choice}: {err}");
        assert!(p.is_running(), "{choice}");
        let mut out = p.take_stdout().expect("raw stdout");
        assert!(p.take_stdout().is_none(), "taken once");
        let mut bytes = Vec::new();
        out.read_to_end(&mut bytes).await.expect("read");
        let want: String = (1..=300000).map(|i| format!("{i}\n")).collect();
        assert!(bytes == want.as_bytes(), "{choice}: {} bytes", bytes.len());
        let done = p.wait().await.expect("wait");
        assert_eq!(done.outcome(), Outcome::Exited(0));
        assert!(done.stdout().is_empty(), "pkit kept none of it");
    }
    suite.end().await;
}

#[tokio::test]
async fn raw_stderr_and_binary_bytes() {
    let suite = begin("raw_stderr_and_binary_bytes").await;
    let all: String = (0..=255u8).map(|b| format!("\\{b:03o}")).collect();
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "printf \"$1\" >&2; echo out", "sh", &all])
                    .stderr(Stdio::Raw),
            )
            .expect("start");
        assert!(p.take_stdout().is_none(), "stdout is captured");
        let mut bytes = Vec::new();
        p.take_stderr()
            .expect("raw stderr")
            .read_to_end(&mut bytes)
            .await
            .expect("read");
        assert_eq!(bytes, (0..=255u8).collect::<Vec<u8>>(), "{choice}");
        let out = p.wait().await.expect("wait");
        assert_eq!(out.stdout_str(), "out\n");
        assert!(out.stderr().is_empty());
    }
    suite.end().await;
}

#[tokio::test]
async fn dropping_the_reader_closes_the_pipe() {
    let suite = begin("dropping_the_reader_closes_the_pipe").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(&Command::new("yes").stdout(Stdio::Raw))
            .expect("start");
        let mut out = p.take_stdout().expect("raw");
        let mut some = [0u8; 4];
        out.read_exact(&mut some).await.expect("read");
        assert_eq!(&some, b"y\ny\n");
        drop(out);
        let done = tokio::time::timeout(DEADLINE, p.wait())
            .await
            .expect("yes ends")
            .expect("wait");
        assert_eq!(done.outcome(), Outcome::Signalled(13), "{choice}: SIGPIPE");
    }
    suite.end().await;
}

#[tokio::test]
async fn the_verbs_capture_a_raw_stream() {
    let suite = begin("the_verbs_capture_a_raw_stream").await;
    for choice in mechanisms() {
        let out = sh(choice, "echo hi; echo err >&2")
            .stdout(Stdio::Raw)
            .stderr(Stdio::Raw)
            .output()
            .await
            .expect("output");
        assert_eq!(
            (out.stdout_str().as_ref(), out.stderr_str().as_ref()),
            ("hi\n", "err\n"),
            "{choice}"
        );
        let piped = pkit::Pipe::new([
            sh(choice, "echo a; echo b").stdout(Stdio::Raw),
            cmd(choice, "wc").arg("-l").stdout(Stdio::Raw),
        ])
        .run()
        .await
        .expect("pipe");
        assert_eq!(piped.trim(), "2");
    }
    suite.end().await;
}

#[test]
fn the_blocking_reader_reads_from_a_plain_thread() {
    use std::io::Read;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin("the_blocking_reader_reads_from_a_plain_thread"));
    for choice in mechanisms() {
        let group =
            pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice)).expect("group");
        let mut p = group
            .start(&Command::new("seq").args(["1", "50000"]).stdout(Stdio::Raw))
            .expect("start");
        let mut text = String::new();
        p.take_stdout()
            .expect("raw")
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text.lines().count(), 50000, "{choice}");
        assert_eq!(text.lines().last(), Some("50000"));
        assert!(p.wait().expect("wait").success());
    }
    rt.block_on(suite.end());
}
