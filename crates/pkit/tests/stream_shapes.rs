//! The line stream's guarantees, whoever reads the pipe: lines cut across
//! reads, CRLF, a line over the cap, a last line with no newline, a slow
//! consumer, a consumer that stops waiting or stops reading before
//! `wait`, a stream dropped mid-way. Every test runs in each mechanism.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{begin, group, mechanisms, sh};
use pkit::{Line, StreamKind};

/// Far longer than any of these runs needs, so a hang fails instead.
const HANG: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: still not done after {HANG:?}"))
}

async fn rest(lines: &mut pkit::Lines) -> Vec<Line> {
    let mut out = Vec::new();
    while let Some(l) = within("the stream's end", lines.next_line()).await {
        out.push(l);
    }
    out
}

/// `n` lines of 100 bytes (99 digits and a newline): 1000 of them are
/// more than a pipe holds and fewer than the stream buffers.
fn hundred_byte_lines(n: usize) -> String {
    format!("i=0; while [ $i -lt {n} ]; do printf '%099d\\n' $i; i=$((i+1)); done")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_cut_across_reads_crlf_a_long_line_and_no_last_newline() {
    let suite = begin("lines_cut_across_reads").await;
    for m in mechanisms() {
        let g = group(m);
        let script = "printf ab; sleep 0.1; printf 'c\\r\\nd'; sleep 0.1; printf 'e\\n'; \
                      printf '%0300d\\n' 0; sleep 0.1; printf 'x\\r'; sleep 0.1; printf '\\nlast'";
        let mut p = g
            .start(&sh(m, script).stream_lines().max_line_bytes(100))
            .unwrap();
        let mut lines = p.lines();
        let got: Vec<(String, bool)> = rest(&mut lines)
            .await
            .into_iter()
            .inspect(|l| assert_eq!(l.stream, StreamKind::Stdout))
            .map(|l| (l.text, l.partial))
            .collect();
        let zeros = "0".repeat(100);
        let want = [
            ("abc".to_string(), false),
            ("de".to_string(), false),
            (zeros.clone(), true),
            (zeros.clone(), true),
            (zeros, false),
            ("x".to_string(), false),
            ("last".to_string(), false),
        ];
        assert_eq!(got, want, "{m:?}");
        let out = within("wait", p.wait()).await.unwrap();
        assert!(out.success(), "{m:?}");
        g.close().await.unwrap();
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_sees_every_line_in_order() {
    let suite = begin("a_slow_consumer_sees_every_line_in_order").await;
    for m in mechanisms() {
        let g = group(m);
        let mut p = g
            .start(&sh(m, "seq 1 20000; echo done >&2").stream_lines())
            .unwrap();
        let mut lines = p.lines();
        let (mut next, mut err) = (1u32, Vec::new());
        while let Some(l) = within("a line", lines.next_line()).await {
            match l.stream {
                StreamKind::Stdout => {
                    assert_eq!(l.text, next.to_string(), "{m:?}");
                    next += 1;
                    if next % 2000 == 0 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                StreamKind::Stderr => err.push(l.text),
            }
        }
        assert_eq!((next, err), (20001, vec!["done".to_string()]), "{m:?}");
        assert!(within("wait", p.wait()).await.unwrap().success());
        assert_eq!(p.dropped_lines(), 0);
        g.close().await.unwrap();
    }
    suite.end().await;
}

/// A `next_line` given up on (a timeout while the process is quiet), then
/// `wait` before reading on: the output, more than a pipe holds, is still
/// read, so the process can end; the lines wait in the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_waiting_does_not_hold_the_process_back() {
    let suite = begin("a_consumer_that_stops_waiting").await;
    for m in mechanisms() {
        let g = group(m);
        let script = format!("sleep 0.3; {}", hundred_byte_lines(1000));
        let mut p = g.start(&sh(m, &script).stream_lines()).unwrap();
        let mut lines = p.lines();
        let early = tokio::time::timeout(Duration::from_millis(50), lines.next_line()).await;
        assert!(early.is_err(), "{m:?}: a line before the output: {early:?}");
        let out = within("wait", p.wait()).await.unwrap();
        assert!(out.success(), "{m:?}");
        let got = rest(&mut lines).await;
        assert_eq!(got.len(), 1000, "{m:?}");
        assert_eq!(got[999].text, format!("{:099}", 999));
        g.close().await.unwrap();
    }
    suite.end().await;
}

/// The same through the `Stream` trait, polled once (no future of ours to
/// drop), and after a line taken: `wait` is not held back either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_reading_does_not_hold_wait_back() {
    let suite = begin("a_consumer_that_stops_reading").await;
    for m in mechanisms() {
        for polled_once in [true, false] {
            let g = group(m);
            let script = format!("echo first; sleep 0.3; {}", hundred_byte_lines(1000));
            let mut p = g.start(&sh(m, &script).stream_lines()).unwrap();
            let mut lines = p.lines();
            let first = within("the first line", lines.next_line()).await.unwrap();
            assert_eq!(first.text, "first");
            if polled_once {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let polled = futures_core::Stream::poll_next(Pin::new(&mut lines), &mut cx);
                assert!(matches!(polled, Poll::Pending), "{m:?}: {polled:?}");
            }
            let out = within("wait", p.wait()).await.unwrap();
            assert!(out.success(), "{m:?}");
            assert_eq!(rest(&mut lines).await.len(), 1000, "{m:?}");
            g.close().await.unwrap();
        }
    }
    suite.end().await;
}

/// Dropping the stream mid-way: the output goes on being drained (the
/// process is not blocked on a full pipe), and the group's end leaves
/// nothing running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_mid_way_leaves_nothing_running() {
    let suite = begin("a_stream_dropped_mid_way").await;
    for m in mechanisms() {
        let g = group(m);
        let mut p = g
            .start(&sh(m, "yes 0123456789 | head -n 300000").stream_lines())
            .unwrap();
        let mut lines = p.lines();
        for _ in 0..10 {
            let l = within("a line", lines.next_line()).await.unwrap();
            assert_eq!(l.text, "0123456789");
        }
        drop(lines);
        let out = within("wait", p.wait()).await.unwrap();
        assert!(out.success(), "{m:?}");
        assert_eq!(
            out.stdout_total_bytes(),
            300_000 * 11,
            "{m:?}: every byte read"
        );
        g.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    suite.end().await;
}

/// A line stream whose stdout never runs dry (`yes`, with a consumer
/// keeping up) while stderr gets one line, later, and then its end of
/// file: the stderr line arrives (the two streams share one reading task,
/// which must take turns), and stderr's read end is closed at its own end
/// of file, while stdout is still being read (its half does not hold it
/// open for the other's end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_stdout_lets_stderr_through_and_its_pipe_close() {
    let suite = begin("a_flooding_stdout_lets_stderr_through").await;
    for m in mechanisms() {
        let g = group(m);
        let script = "yes 0123456789 2>&- & sleep 1; echo from-stderr >&2; exec 2>&-; wait";
        let mut p = g.start(&sh(m, script).stream_lines()).unwrap();
        let link = std::fs::read_link(format!("/proc/{}/fd/2", p.pid())).expect("its fd 2");
        let target = link.to_str().unwrap().to_owned();
        assert!(target.starts_with("pipe:"), "{m:?}: stderr is {target}");
        assert_eq!(ours_to(&target), 1, "{m:?}: our read end of {target}");
        let mut lines = p.lines();
        let mut flood = 0usize;
        loop {
            let l = within("stderr's line", lines.next_line()).await;
            let l = l.unwrap_or_else(|| panic!("{m:?}: the stream ended"));
            if l.stream == StreamKind::Stderr {
                assert_eq!(l.text, "from-stderr", "{m:?}");
                break;
            }
            assert_eq!(l.text, "0123456789", "{m:?}");
            flood += 1;
        }
        assert!(flood > 0, "{m:?}: stdout was read meanwhile");
        // Stdout goes on: read it while stderr's read end is watched.
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while ours_to(&target) > 0 && std::time::Instant::now() < until {
            let l = within("stdout's lines", lines.next_line()).await;
            assert!(l.is_some(), "{m:?}: the stream ended");
        }
        assert_eq!(ours_to(&target), 0, "{m:?}: stderr's read end still open");
        assert!(!p.has_exited(), "{m:?}: it exited");
        drop(lines);
        p.kill_tree().unwrap();
        within("wait", p.wait()).await.unwrap();
        g.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    suite.end().await;
}

/// How many of this process's descriptors are `target` (a `pipe:[n]`).
fn ours_to(target: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_str() == Some(target)))
        .count()
}
