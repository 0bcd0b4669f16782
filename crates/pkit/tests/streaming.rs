//! The line pump, for real: streaming, callbacks, tees, backpressure,
//! decoding, long lines, interactive stdin, bounded capture. Every test runs
//! in both mechanisms.

mod common;

use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pkit::{
    CapturePolicy, Command, Decoder, DecoderFactory, Group, Line, MechanismChoice, Overflow,
    StreamKind, SystemRunner,
};
use tokio::io::AsyncWriteExt;

fn group(m: MechanismChoice) -> Group {
    Group::builder().mechanism(m).build().expect("group")
}

fn sh(script: &str) -> Command {
    Command::new("sh").args(["-c", script])
}

fn on(m: MechanismChoice, cmd: Command) -> Command {
    cmd.runner(Arc::new(SystemRunner::with_mechanism(m)))
}

async fn collect(proc: &mut pkit::RunningProcess) -> Vec<Line> {
    let mut lines = proc.lines();
    let mut out = Vec::new();
    while let Some(l) = lines.next_line().await {
        out.push(l);
    }
    out
}

fn texts(lines: &[Line], kind: StreamKind) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.stream == kind)
        .map(|l| l.text.clone())
        .collect()
}

/// Polls `cond` for up to 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A shared in-memory writer, usable as a tee and read back afterwards.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl tokio::io::AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_are_tagged_and_ordered_per_stream() {
    let suite = common::begin("lines_are_tagged_and_ordered_per_stream").await;
    for m in common::mechanisms() {
        let g = group(m);
        let script =
            "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; printf 'crlf\\r\\nlast'";
        let mut p = g.start(&sh(script).stream_lines()).unwrap();
        let lines = collect(&mut p).await;
        assert_eq!(
            texts(&lines, StreamKind::Stdout),
            ["out1", "out2", "out3", "out4", "out5", "crlf", "last"]
        );
        assert_eq!(
            texts(&lines, StreamKind::Stderr),
            ["err1", "err2", "err3", "err4", "err5"]
        );
        assert!(lines.iter().all(|l| !l.partial));
        let out = p.wait().await.unwrap();
        assert!(out.success());
        assert!(
            out.stdout().is_empty(),
            "streamed output is not also captured"
        );
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_and_tees_see_the_same_output() {
    let suite = common::begin("callbacks_and_tees_see_the_same_output").await;
    for m in common::mechanisms() {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let (tee_out, tee_err) = (Shared::default(), Shared::default());
        let panicked = Arc::new(AtomicUsize::new(0));
        let pc = panicked.clone();
        let out = on(
            m,
            sh("printf 'a\\r\\nb\\n'; echo e >&2; echo f >&2; printf 'no-newline'; echo g >&2"),
        )
        .on_stdout_line(move |line| {
            assert!(!line.ends_with('\r'));
            c.fetch_add(1, Ordering::SeqCst);
        })
        .on_stderr_line(move |_| {
            pc.fetch_add(1, Ordering::SeqCst);
            panic!("a broken callback");
        })
        .stdout_tee(tee_out.clone())
        .stderr_tee_blocking(tee_err.clone())
        .output()
        .await
        .unwrap();
        assert!(out.success(), "a panicking callback does not fail the run");
        assert_eq!(count.load(Ordering::SeqCst), 3);
        assert_eq!(
            panicked.load(Ordering::SeqCst),
            1,
            "disabled after its panic (three stderr lines)"
        );
        assert_eq!(tee_out.bytes(), b"a\r\nb\nno-newline", "tees get raw bytes");
        assert_eq!(tee_err.bytes(), b"e\nf\ng\n", "the stderr pump goes on");
        assert_eq!(out.stderr(), b"e\nf\ng\n");
        assert_eq!(
            out.stdout(),
            b"a\r\nb\nno-newline",
            "capture still works with tees"
        );
    }
    suite.end().await;
}

/// Bytes `pid` has written so far (`wchar` of `/proc/<pid>/io`).
fn written(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_stalls_a_child_until_read() {
    let suite = common::begin("backpressure_stalls_a_child_until_read").await;
    for m in common::mechanisms() {
        let g = group(m);
        let n = 1_000_000; // 6.9 MB, far more than the pipe, a read and the queue
        let cmd = sh(&format!("exec seq {n}")).stream_lines().buffer_lines(16);
        let mut p = g.start(&cmd).unwrap();
        // The stream is taken (held) but not read: the queue and the pipe
        // fill, and seq blocks. Its write count stops growing, well short
        // of its whole output. (A stream nobody took drops instead: see
        // tests/started_output.rs.)
        let mut stream = p.lines();
        let (mut last, mut same) = (None, 0);
        eventually("seq stalls", || {
            let now = written(p.pid());
            same = if now.is_some() && now == last {
                same + 1
            } else {
                0
            };
            last = now;
            same >= 10 // unchanged for 200 ms
        })
        .await;
        let stalled_at = last.unwrap();
        assert!(stalled_at < 4 << 20, "stalled after {stalled_at} bytes");
        assert!(!p.has_exited(), "the child must be stalled by backpressure");
        let mut lines = Vec::new();
        while let Some(l) = stream.next_line().await {
            lines.push(l);
        }
        assert_eq!(lines.len(), n);
        assert_eq!(lines.last().unwrap().text, n.to_string());
        assert_eq!(p.dropped_lines(), 0);
        assert!(p.wait().await.unwrap().success());
    }
    suite.end().await;
}

/// A consumer that read a line and then went off to do something else must
/// not leave the output in the pipe: the queue still takes up to
/// `buffer_lines` lines, so a child writing less than that finishes
/// without the consumer. (A design where the consumer reads the pipe
/// itself while it waits for lines must keep this.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_polling_still_gets_the_queue_filled() {
    let suite = common::begin("a_consumer_that_stops_polling_still_gets_the_queue_filled").await;
    for m in common::mechanisms() {
        let g = group(m);
        let marker = common::temp_path(&format!("stream-stop-{m:?}"));
        let _ = std::fs::remove_file(&marker);
        // 5,000 lines of about 100 bytes: several times a pipe's 64 KiB,
        // within the queue's 20,000 lines.
        let script = format!(
            "echo first; read _ <&0 || true; i=0; while [ $i -lt 5000 ]; do \
             echo {pad}$i; i=$((i+1)); done; touch {m}",
            pad = "x".repeat(96),
            m = marker.display()
        );
        let cmd = sh(&script)
            .stdin_piped()
            .stream_lines()
            .buffer_lines(20_000);
        let mut p = g.start(&cmd).unwrap();
        let mut lines = p.lines();
        assert_eq!(lines.next_line().await.unwrap().text, "first");
        // Poll once more with nothing there yet (the consumer drives the
        // reader), then stop polling, and let the child write.
        let waiting = tokio::time::timeout(Duration::from_millis(50), lines.next_line()).await;
        assert!(waiting.is_err(), "nothing was written yet");
        p.stdin().unwrap().write_all(b"go\n").await.unwrap();
        eventually("the child finishes writing without the consumer", || {
            marker.exists()
        })
        .await;
        let mut n = 0;
        while let Some(l) = lines.next_line().await {
            assert!(l.text.ends_with(&n.to_string()), "{}", l.text);
            n += 1;
        }
        assert_eq!(n, 5000);
        assert_eq!(p.dropped_lines(), 0);
        assert!(p.wait().await.unwrap().success());
        let _ = std::fs::remove_file(&marker);
    }
    suite.end().await;
}

/// The same through [`futures_core::Stream`], where no future of the
/// stream's is dropped to say the consumer went away: a consumer that
/// polled the stream once, got `Pending` and went off must still have the
/// queue filled (the child writes several pipes' worth and finishes
/// without it), and the lines the child left unread when it exited all
/// arrive after the wait, in order. (A design where the waiting consumer
/// reads the pipes itself must not leave a pipe's readiness with a
/// consumer that no longer polls.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_polled_once_and_left_still_gets_the_queue_filled() {
    let suite = common::begin("a_stream_polled_once_and_left_still_gets_the_queue_filled").await;
    // A block: what it started is dropped before the end's check.
    {
        use futures_core::Stream;
        for m in common::mechanisms() {
            let g = group(m);
            let marker = common::temp_path(&format!("stream-left-{m:?}"));
            let _ = std::fs::remove_file(&marker);
            let script = format!(
                "read _ <&0 || true; i=0; while [ $i -lt 5000 ]; do \
             echo {pad}$i; i=$((i+1)); done; echo tail >&2; touch {m}; exit 3",
                pad = "x".repeat(96),
                m = marker.display()
            );
            let cmd = sh(&script)
                .stdin_piped()
                .stream_lines()
                .buffer_lines(20_000);
            let mut p = g.start(&cmd).unwrap();
            let mut lines = p.lines();
            let polled =
                std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut lines).poll_next(cx))).await;
            assert!(polled.is_pending(), "nothing was written yet");
            p.stdin().unwrap().write_all(b"go\n").await.unwrap();
            eventually("the child finishes writing without the consumer", || {
                marker.exists()
            })
            .await;
            let out = tokio::time::timeout(Duration::from_secs(60), p.wait())
                .await
                .expect("the child exits and is waited for")
                .unwrap();
            assert_eq!(out.code(), Some(3));
            let mut seen = Vec::new();
            while let Some(l) = lines.next_line().await {
                seen.push(l);
            }
            let out_lines = texts(&seen, StreamKind::Stdout);
            assert_eq!(out_lines.len(), 5000);
            for (i, t) in out_lines.iter().enumerate() {
                assert!(t.ends_with(&i.to_string()), "{t} at {i}");
            }
            assert_eq!(texts(&seen, StreamKind::Stderr), ["tail"]);
            assert_eq!(p.dropped_lines(), 0);
            let _ = std::fs::remove_file(&marker);
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_never_stalls_the_child() {
    let suite = common::begin("a_dropped_stream_never_stalls_the_child").await;
    for m in common::mechanisms() {
        let g = group(m);
        let cmd = sh("seq 1000000").stream_lines().buffer_lines(16);
        let mut p = g.start(&cmd).unwrap();
        let mut lines = p.lines();
        assert_eq!(lines.next_line().await.unwrap().text, "1");
        drop(lines);
        // 6.9 MB still to come, with nobody listening: it is drained.
        let out = tokio::time::timeout(Duration::from_secs(60), p.wait())
            .await
            .expect("the child finishes")
            .unwrap();
        assert!(out.success());
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_is_a_futures_stream() {
    let suite = common::begin("lines_is_a_futures_stream").await;
    // A block: what it started is dropped before the end's check.
    {
        use futures_core::Stream;
        for m in common::mechanisms() {
            let g = group(m);
            let mut p = g.start(&sh("seq 3; echo x >&2").stream_lines()).unwrap();
            let mut lines = p.lines();
            let mut seen = Vec::new();
            while let Some(line) =
                std::future::poll_fn(|cx| Pin::new(&mut lines).poll_next(cx)).await
            {
                seen.push(line);
            }
            assert_eq!(texts(&seen, StreamKind::Stdout), ["1", "2", "3"]);
            assert_eq!(texts(&seen, StreamKind::Stderr), ["x"]);
            // Once ended, it stays ended.
            assert!(
                std::future::poll_fn(|cx| Pin::new(&mut lines).poll_next(cx))
                    .await
                    .is_none()
            );
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_newest_never_stalls_the_child() {
    let suite = common::begin("drop_newest_never_stalls_the_child").await;
    for m in common::mechanisms() {
        let g = group(m);
        let n = 200_000;
        let cmd = sh(&format!("seq {n}"))
            .stream_lines()
            .buffer_lines(16)
            .overflow(Overflow::DropNewest);
        let mut p = g.start(&cmd).unwrap();
        eventually("seq finishes without a reader", || p.has_exited()).await;
        let lines = collect(&mut p).await;
        assert!(p.dropped_lines() > 0);
        assert_eq!(lines.len() as u64 + p.dropped_lines(), n as u64);
        assert_eq!(lines[0].text, "1", "the oldest lines are kept");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_replaced_and_decoders_apply() {
    let suite = common::begin("invalid_utf8_is_replaced_and_decoders_apply").await;
    // A block: what it started is dropped before the end's check.
    {
        /// ISO-8859-1, by hand: every byte is the code point of the same value.
        struct Latin1;
        impl Decoder for Latin1 {
            fn decode(&mut self, input: &[u8], _last: bool, out: &mut String) {
                out.extend(input.iter().map(|&b| b as char));
            }
        }
        for m in common::mechanisms() {
            let g = group(m);
            let mut p = g
                .start(&sh("printf 'caf\\351\\n\\377ok\\n'").stream_lines())
                .unwrap();
            let lines = collect(&mut p).await;
            assert_eq!(
                texts(&lines, StreamKind::Stdout),
                ["caf\u{FFFD}", "\u{FFFD}ok"]
            );

            let cmd = sh("printf 'caf\\351\\n'")
                .stream_lines()
                .decoder(DecoderFactory::new(|| Latin1));
            let mut p = g.start(&cmd).unwrap();
            let lines = collect(&mut p).await;
            assert_eq!(texts(&lines, StreamKind::Stdout), ["café"]);

            #[cfg(feature = "encoding")]
            {
                // "日本" in Shift_JIS.
                let cmd = sh("printf '\\223\\372\\226\\173\\n'")
                    .stream_lines()
                    .decoder(DecoderFactory::encoding(encoding_rs::SHIFT_JIS));
                let mut p = g.start(&cmd).unwrap();
                let lines = collect(&mut p).await;
                assert_eq!(texts(&lines, StreamKind::Stdout), ["日本"]);
            }
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_stream_and_a_tee_of_the_same_output() {
    let suite = common::begin("a_line_stream_and_a_tee_of_the_same_output").await;
    for m in common::mechanisms() {
        let g = group(m);
        let tee = Shared::default();
        let cmd = sh("seq 100000; printf 'abcdefghijklmnopqrstuvwxy'")
            .stream_lines()
            .max_line_bytes(10)
            .stdout_tee(tee.clone());
        let mut p = g.start(&cmd).unwrap();
        let lines = collect(&mut p).await;
        assert!(p.wait().await.unwrap().success());
        // The tee has every byte, the stream every line; the last line
        // (25 bytes, no newline) comes in pieces of at most 10 bytes.
        let mut expected: Vec<u8> = (1..=100_000)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        expected.extend_from_slice(b"abcdefghijklmnopqrstuvwxy");
        assert!(tee.bytes() == expected, "the tee holds the whole output");
        assert_eq!(lines.len(), 100_003);
        assert_eq!(lines[99_999].text, "100000");
        let tail: Vec<(&str, bool)> = lines[100_000..]
            .iter()
            .map(|l| (l.text.as_str(), l.partial))
            .collect();
        assert_eq!(
            tail,
            [("abcdefghij", true), ("klmnopqrst", true), ("uvwxy", false)]
        );
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20mb_line_arrives_in_bounded_pieces() {
    let suite = common::begin("a_20mb_line_arrives_in_bounded_pieces").await;
    for m in common::mechanisms() {
        let g = group(m);
        let size = 20 << 20;
        let cmd = sh(&format!(
            "head -c {size} /dev/zero | tr '\\0' x; echo; echo after"
        ))
        .stream_lines();
        let mut p = g.start(&cmd).unwrap();
        let lines = collect(&mut p).await;
        let pieces: Vec<&Line> = lines.iter().take_while(|l| l.text != "after").collect();
        assert_eq!(pieces.iter().map(|l| l.text.len()).sum::<usize>(), size);
        assert!(pieces
            .iter()
            .all(|l| l.text.len() <= pkit::DEFAULT_MAX_LINE_BYTES));
        assert!(pieces[..pieces.len() - 1].iter().all(|l| l.partial));
        assert!(!pieces.last().unwrap().partial);
        assert_eq!(lines.last().unwrap().text, "after");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_stdin_dialogue() {
    let suite = common::begin("interactive_stdin_dialogue").await;
    for m in common::mechanisms() {
        let g = group(m);
        let mut p = g
            .start(&Command::new("cat").stdin_piped().stream_lines())
            .unwrap();
        let mut lines = p.lines();
        let mut stdin = p.take_stdin().expect("piped stdin");
        for word in ["ping", "pong", "done"] {
            stdin
                .write_all(format!("{word}\n").as_bytes())
                .await
                .unwrap();
            stdin.flush().await.unwrap();
            let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(line.text, word);
        }
        drop(stdin); // end of file: cat exits
        assert!(lines.next_line().await.is_none());
        assert!(p.wait().await.unwrap().success());
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_stdin_to_a_child_that_stops_reading() {
    let suite = common::begin("piped_stdin_to_a_child_that_stops_reading").await;
    for m in common::mechanisms() {
        let g = group(m);
        let mut p = g
            .start(&Command::new("head").args(["-c", "1"]).stdin_piped())
            .unwrap();
        let stdin = p.stdin().expect("piped stdin");
        // head takes one byte and exits; our writes then fail with EPIPE,
        // which is the writer's business, not a failure of the run.
        let chunk = vec![b'x'; 64 << 10];
        let mut failed = None;
        for _ in 0..1600 {
            if let Err(e) = stdin.write_all(&chunk).await {
                failed = Some(e);
                break;
            }
        }
        let e = failed.expect("100 MiB into head -c 1 cannot all be written");
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        let out = p.wait().await.unwrap();
        assert!(out.success(), "{:?}", out.outcome());
        assert_eq!(out.stdout(), b"x");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_from_reader_and_file_and_unread_input() {
    let suite = common::begin("stdin_from_reader_and_file_and_unread_input").await;
    for m in common::mechanisms() {
        let big = vec![b'z'; 10 << 20];
        // head reads one byte and exits: the rest is not an error.
        let out = on(m, Command::new("head").args(["-c", "1"]))
            .stdin_bytes(big.clone())
            .output()
            .await
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout(), b"z");
        let out = on(m, Command::new("head").args(["-c", "1"]))
            .stdin_reader(std::io::Cursor::new(big.clone()))
            .output()
            .await
            .unwrap();
        assert!(out.success());

        let cmd = on(m, Command::new("wc").arg("-c"))
            .stdin_reader(std::io::Cursor::new(b"12345".to_vec()));
        assert_eq!(cmd.run().await.unwrap(), "5");
        let again = cmd.run().await.unwrap_err();
        assert_eq!(
            again.kind(),
            pkit::ErrorKind::InvalidInput,
            "a reader is consumed once"
        );
        // The message says what to use instead.
        assert!(again.to_string().contains("stdin_bytes"), "{again}");

        let path = common::temp_path(&format!("stdin-file-{m}"));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(b"from a file\n")
            .unwrap();
        let text = on(m, Command::new("cat"))
            .stdin_file(&path)
            .run()
            .await
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(text, "from a file");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_capture_keeps_head_or_tail_or_fails() {
    let suite = common::begin("bounded_capture_keeps_head_or_tail_or_fails").await;
    for m in common::mechanisms() {
        let script = "seq 1000000"; // 6.9 MB
        let out = on(m, sh(script))
            .capture_limit(1000, CapturePolicy::KeepHead)
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout().len(), 1000);
        assert!(out.stdout().starts_with(b"1\n2\n3\n"));
        assert!(out.stdout_truncated());
        assert_eq!(out.stdout_total_bytes(), 6_888_896);

        let out = on(m, sh(script))
            .capture_limit(1000, CapturePolicy::KeepTail)
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout().len(), 1000);
        assert!(out.stdout().ends_with(b"999999\n1000000\n"));
        assert!(out.stdout_truncated());
        assert_eq!(out.stdout_total_bytes(), 6_888_896);
        assert!(!out.stderr_truncated());

        // A limit applies to stderr too.
        let out = on(m, sh("seq 100000 >&2"))
            .capture_limit(100, CapturePolicy::KeepHead)
            .output()
            .await
            .unwrap();
        assert_eq!(out.stderr().len(), 100);
        assert!(out.stderr_truncated());
        assert_eq!(out.stderr_total_bytes(), 588_895);

        // Fail: the run stops as soon as the limit is crossed, tree and all.
        let err = on(m, sh("sleep 300 & yes"))
            .capture_limit(1 << 20, CapturePolicy::Fail)
            .output()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), pkit::ErrorKind::OutputLimit, "{err}");
        assert!(err.to_string().contains("stdout"));
        // The error carries what was kept and how much was seen.
        let out = err.output().expect("the output so far");
        assert!(out.stdout().len() <= 1 << 20);
        assert!(out.stdout().starts_with(b"y\ny\n"));
        assert!(
            out.stdout_total_bytes() > 1 << 20,
            "{}",
            out.stdout_total_bytes()
        );
        assert!(out.stdout_truncated());
    }
    suite.end().await;
}

/// The write end of a pipe whose reader is gone (`| true`).
fn reader_gone() -> std::fs::File {
    use std::os::fd::FromRawFd as _;
    let mut fds = [0; 2];
    // SAFETY: `fds` is two ints for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both were just opened, and are owned by nothing else.
    let (read, write) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    drop(read);
    write
}

/// A tee whose writes fail (its reader gone: EPIPE; a full disk: ENOSPC)
/// no longer fails silently: the `Output` carries the error that stopped
/// it, for that stream alone, while the run goes on and its capture is
/// whole. A pty session's output teed likewise (what `pkit run --pty`
/// relays to its stdout). Before, the error was only logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tee_whose_writes_fail_is_reported_in_the_output() {
    let suite = common::begin("a_tee_whose_writes_fail_is_reported_in_the_output").await;
    for m in common::mechanisms() {
        let tee_err = Shared::default();
        let out = on(m, sh("echo a; echo e >&2; echo b; exit 3"))
            .stdout_tee_blocking(reader_gone())
            .stderr_tee_blocking(tee_err.clone())
            .output()
            .await
            .unwrap();
        assert_eq!(out.code(), Some(3), "{m}: the run goes on");
        assert_eq!(out.stdout(), b"a\nb\n", "{m}: the capture is whole");
        let e = out.stdout_tee_error().expect("the stdout tee's error");
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{m}: {e}");
        assert!(out.stderr_tee_error().is_none(), "{m}: {out:?}");
        assert_eq!(tee_err.bytes(), b"e\n", "{m}: the other tee works");
        // Every write succeeded: none.
        let fine = on(m, sh("echo a"))
            .stdout_tee_blocking(Shared::default())
            .output()
            .await
            .unwrap();
        assert!(fine.stdout_tee_error().is_none(), "{m}: {fine:?}");

        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = on(m, sh("echo e >&2"))
            .stderr_tee_blocking(full)
            .output()
            .await
            .unwrap();
        let e = out.stderr_tee_error().expect("the stderr tee's error");
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{m}: {e}");
        assert!(out.stdout_tee_error().is_none(), "{m}");

        // A pty session's output, teed.
        let out = on(m, sh("echo on the terminal; exit 4"))
            .pty(24, 80)
            .stdout_tee_blocking(reader_gone())
            .output()
            .await
            .unwrap();
        assert_eq!(out.code(), Some(4), "{m}: {out:?}");
        assert!(out.stdout_str().contains("on the terminal"), "{m}");
        let e = out.stdout_tee_error().expect("the pty tee's error");
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{m}: {e}");
    }
    suite.end().await;
}
