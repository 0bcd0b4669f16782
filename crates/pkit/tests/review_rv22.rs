//! rv22's hostile review of the perf20 merge (136d3bc..33de9db): a lone
//! output reader started by its pipe's first event, `wait`'s status check
//! when every output is at its end, and a yield after 4 big reads rather
//! than each. Each probe is a test; one that fails on the reviewed code is
//! `#[ignore]`d. Every mechanism.
mod common;

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use common::*;
use pkit::{CancelToken, Command, MechanismChoice, Stdio, StreamKind};

/// A command whose stdout alone is piped and streamed: its reader is a
/// lone one (`Reader::start`), the path perf20 made lazy.
fn lone(choice: MechanismChoice, script: &str) -> Command {
    sh(choice, script).stream_lines().stderr(Stdio::Null)
}

/// A child that never writes and never closes its stdout (no event ever
/// starts its reader) is still ended by an inactivity timeout, a timeout,
/// a cancel, and its group's drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_child_is_still_ended_by_every_bound() {
    let suite = begin("rv22 silent child").await;
    for choice in mechanisms() {
        let what = format!("{choice}: silent sleep");
        let out = lone(choice, "exec sleep 300")
            .inactivity_timeout(Duration::from_millis(800))
            .output()
            .await
            .expect("output");
        assert!(out.inactivity_timed_out(), "{what}: {out:?}");
        let out = lone(choice, "exec sleep 300")
            .timeout(Duration::from_millis(800))
            .output()
            .await
            .expect("output");
        assert!(out.timed_out(), "{what}: {out:?}");
        let token = CancelToken::new();
        let t2 = token.clone();
        let cancel = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            t2.cancel();
        });
        let r = lone(choice, "exec sleep 300")
            .cancel_token(&token)
            .output()
            .await;
        assert!(r.is_err(), "{what}: cancel gave {r:?}");
        cancel.await.unwrap();
        // A consumer that takes the stream and drops it before any event,
        // then the group dropped: the child is gone, nothing left.
        let g = group(choice);
        let mut p = g.start(&lone(choice, "exec sleep 300")).unwrap();
        let pid = p.pid();
        drop(p.lines());
        drop(p);
        drop(g);
        assert_gone(&[pid], &what).await;
    }
    suite.end().await;
}

/// A child that closes its stdout early (the end of file starts the
/// reader, and marks it ended) and runs on: `wait` still waits for its
/// exit and reports its status (an exit code, 255, a signal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_stdout_early_then_running_on_is_waited_for() {
    let suite = begin("rv22 early close").await;
    for choice in mechanisms() {
        for (script, code, signal) in [
            ("echo a; exec 1>&-; sleep 1; exit 7", Some(7), None),
            ("echo a; exec 1>&-; sleep 1; exit 255", Some(255), None),
            ("echo a; exec 1>&-; sleep 1; kill -9 $$", None, Some(9)),
            // Stopped, then continued by itself through a helper.
            (
                "echo a; exec 1>&-; (sleep 1; kill -CONT $$) & kill -STOP $$; exit 3",
                Some(3),
                None,
            ),
        ] {
            let what = format!("{choice}: {script}");
            let g = group(choice);
            let mut p = g.start(&lone(choice, script)).unwrap();
            let mut lines = p.lines();
            let first = lines.next_line().await.expect("a line");
            assert_eq!(first.text, "a", "{what}");
            assert!(lines.next_line().await.is_none(), "{what}: end");
            // Its stdout at its end, it still runs.
            assert!(!p.has_exited(), "{what}: exited before its sleep");
            let out = tokio::time::timeout(DEADLINE, p.wait())
                .await
                .expect("wait hung")
                .expect("wait");
            assert_eq!(
                (out.code(), out.signal()),
                (code, signal),
                "{what}: {out:?}"
            );
            // Twice: the same outcome.
            let again = p.wait().await.expect("wait again");
            assert_eq!(again.outcome(), out.outcome(), "{what}");
            drop(g);
        }
    }
    suite.end().await;
}

/// A grandchild holding the stdout pipe after the child exits: `wait`
/// returns once the child has exited (documented: later output of
/// descendants is not included), with the child's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grandchild_holding_the_pipe_does_not_hold_wait() {
    let suite = begin("rv22 grandchild holds pipe").await;
    for choice in mechanisms() {
        // Silent: no event ever spawned the reader; `wait`'s stop does.
        for (script, said) in [
            ("sleep 300 & echo hi; exit 4", "hi\n"),
            ("sleep 300 & exit 4", ""),
        ] {
            let what = format!("{choice}: grandchild holds stdout: {script}");
            let g = group(choice);
            let mut p = g
                .start(
                    &sh(choice, script)
                        .stderr(Stdio::Null)
                        .on_stdout_line(|_| ()),
                )
                .unwrap();
            let out = tokio::time::timeout(DEADLINE, p.wait())
                .await
                .expect("wait hung")
                .expect("wait");
            assert_eq!(out.code(), Some(4), "{what}: {out:?}");
            assert_eq!(out.stdout_str(), said, "{what}");
            drop(p);
            drop(g);
        }
    }
    suite.end().await;
}

/// `wait` after `kill`, with the stdout pipe taken raw and never read
/// (no reader then: the status check must not make wait return early).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_after_kill_and_with_an_unread_raw_stdout() {
    let suite = begin("rv22 kill, raw").await;
    for choice in mechanisms() {
        let what = format!("{choice}: raw stdout unread, stderr streamed");
        let g = group(choice);
        let mut p = g
            .start(
                &sh(choice, "exec 2>&-; sleep 1; exit 5")
                    .stdout(Stdio::Raw)
                    .stream_lines(),
            )
            .unwrap();
        let raw = p.take_stdout();
        let out = tokio::time::timeout(DEADLINE, p.wait())
            .await
            .expect("wait hung")
            .expect("wait");
        assert_eq!(out.code(), Some(5), "{what}: {out:?}");
        drop(raw);
        let mut p = g.start(&lone(choice, "exec sleep 300")).unwrap();
        p.kill().unwrap();
        let out = tokio::time::timeout(DEADLINE, p.wait())
            .await
            .expect("wait hung")
            .expect("wait");
        assert_eq!(out.signal(), Some(9), "{what}: {out:?}");
        drop(g);
    }
    suite.end().await;
}

/// The inode of the pipe at `/proc/<pid>/fd/<fd>`.
fn pipe_inode(pid: u32, fd: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    let s = link.to_str()?;
    s.strip_prefix("pipe:[")?.strip_suffix(']')?.parse().ok()
}

/// Whether this test process holds a descriptor of pipe `inode`.
fn we_hold_pipe(inode: u64) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .any(|e| {
            std::fs::metadata(e.path()).is_ok_and(|m| m.ino() == inode)
                && std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().starts_with("pipe:"))
        })
}

/// The runtime that started a silent child shuts down before any event
/// woke its (not yet spawned) reader: the read end of its stdout pipe is
/// still closed, as it was when the reader was a task the shutdown
/// dropped (no future left alive in a waker cycle).
#[test]
fn a_runtime_shut_down_before_any_event_closes_the_pipe() {
    in_suite("rv22 runtime shutdown", || {
        for choice in mechanisms() {
            let what = format!("{choice}: runtime gone before any event");
            let g = group(choice);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let p = rt.block_on(async { g.start(&lone(choice, "exec sleep 300")).unwrap() });
            let inode = pipe_inode(p.pid(), 1).expect("child's stdout is a pipe");
            assert!(we_hold_pipe(inode), "{what}: read end held while it runs");
            drop(rt);
            let deadline = Instant::now() + DEADLINE;
            while we_hold_pipe(inode) && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
            assert!(!we_hold_pipe(inode), "{what}: read end still open");
            let pid = p.pid();
            drop(p);
            drop(g);
            let deadline = Instant::now() + DEADLINE;
            while !pid_gone(pid) && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
            assert!(pid_gone(pid), "{what}: child left");
        }
    });
}

/// A fast producer on stdout and a slow one on stderr, streamed together
/// (one task reads both since perf22): each stderr line, stamped when
/// written, arrives within a generous bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_is_not_starved_by_a_fast_one() {
    let suite = begin("rv22 fairness").await;
    for choice in mechanisms() {
        let what = format!("{choice}: yes on stdout, ticks on stderr");
        let script = "yes 0123456789abcdef0123456789abcdef & \
                      i=0; while [ $i -lt 10 ]; do i=$((i+1)); date +%s%N >&2; sleep 0.2; done; \
                      kill $!";
        let g = group(choice);
        let mut p = g.start(&sh(choice, script).stream_lines()).unwrap();
        let mut lines = p.lines();
        let mut worst = Duration::ZERO;
        let mut ticks = 0;
        let mut out_lines = 0u64;
        let read = async {
            while let Some(line) = lines.next_line().await {
                match line.stream {
                    StreamKind::Stderr => {
                        let stamp: u128 = line.text.trim().parse().expect("a stamp");
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_nanos();
                        worst = worst.max(Duration::from_nanos(now.saturating_sub(stamp) as u64));
                        ticks += 1;
                    }
                    _ => out_lines += 1,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("stream hung");
        let _ = p.wait().await;
        assert_eq!(ticks, 10, "{what}");
        assert!(out_lines > 0, "{what}");
        assert!(
            worst < Duration::from_secs(3),
            "{what}: a stderr line waited {worst:?}"
        );
        drop(g);
    }
    suite.end().await;
}

/// On a current-thread runtime, a stream whose producer never pauses and
/// a timer: the timer fires (generous bound) while the stream is read.
#[test]
fn a_timer_fires_beside_a_busy_stream_on_a_current_thread_runtime() {
    in_suite("rv22 current-thread timer", || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for choice in mechanisms() {
            let what = format!("{choice}: timer beside yes");
            rt.block_on(async {
                let g = group(choice);
                let mut p = g.start(&lone(choice, "exec yes")).unwrap();
                // The lines are dropped unread (nothing pushes back): the
                // reader is busy all the time.
                drop(p.lines());
                let mut late = Duration::ZERO;
                for _ in 0..10 {
                    let asked = Instant::now();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    late = late.max(asked.elapsed());
                }
                p.kill().unwrap();
                let _ = p.wait().await;
                drop(g);
                assert!(
                    late < Duration::from_secs(3),
                    "{what}: a 50 ms timer took {late:?}"
                );
            });
        }
    });
}

/// Deterministic bytes for the integrity probe: lines of every awkward
/// kind (empty, CRLF, exactly 64 KiB, one byte either side, split across
/// reads, long), and a last line with no newline.
fn awkward_bytes(total: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total + 300_000);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut n = 0u64;
    while out.len() < total {
        n += 1;
        let len = match next() % 10 {
            0 => 0,
            1 => 65536,
            2 => 65535,
            3 => 65537,
            4 => 200_000 + (next() % 1000) as usize,
            _ => (next() % 300) as usize,
        };
        let fill = b'a' + (n % 26) as u8;
        out.extend(std::iter::repeat_n(fill, len));
        if next() % 3 == 0 {
            out.push(b'\r');
        }
        out.push(b'\n');
    }
    out.extend_from_slice(b"the end, no newline");
    out
}

/// The lines `bytes` splits into: `\n` ends a line, and one `\r` before it
/// goes with it; a last piece without a newline is a line.
fn expected_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let last = lines.pop().unwrap();
    let mut lines: Vec<&[u8]> = lines
        .into_iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    if !last.is_empty() {
        lines.push(last);
    }
    lines
}

/// Lines streamed from a producer (`cat` of a file of awkward lines) are
/// intact, in order, none lost or split: each compared with the
/// producer's exact bytes (`PKIT_RV22_MIB` sets the size; 256 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_lines_are_intact_under_stress() {
    let suite = begin("rv22 integrity").await;
    let mib: usize = std::env::var("PKIT_RV22_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let bytes = awkward_bytes(mib << 20);
    let file = TempPath::new("rv22-lines");
    std::fs::write(file.path(), &bytes).unwrap();
    let expected = expected_lines(&bytes);
    for choice in mechanisms() {
        let what = format!("{choice}: {mib} MiB of awkward lines");
        let g = group(choice);
        let mut p = g
            .start(
                &cmd(choice, "cat")
                    .arg(file.path())
                    .stream_lines()
                    .max_line_bytes(1 << 20)
                    .stderr(Stdio::Null),
            )
            .unwrap();
        let mut lines = p.lines();
        let mut i = 0usize;
        while let Some(line) = lines.next_line().await {
            assert!(!line.partial, "{what}: line {i} partial");
            assert!(i < expected.len(), "{what}: more lines than written");
            assert!(
                line.text.as_bytes() == expected[i],
                "{what}: line {i} differs ({} bytes, expected {})",
                line.text.len(),
                expected[i].len()
            );
            i += 1;
        }
        assert_eq!(i, expected.len(), "{what}: line count");
        let out = p.wait().await.expect("wait");
        assert!(out.success(), "{what}: {out:?}");
        assert_eq!(p.dropped_lines(), 0, "{what}");
        drop(g);
    }
    suite.end().await;
}

/// How many of `n` starts of `echo hi` ran the stdout line callback on the
/// thread that called `start` (inside `start`), rather than on a reader
/// task: the lone reader's first poll runs there, and reads (and feeds
/// the callback, a tee) whatever the child already wrote.
async fn callbacks_run_inside_start(choice: MechanismChoice, n: usize) -> usize {
    let g = group(choice);
    let mut inside = 0;
    for _ in 0..n {
        let here = std::thread::current().id();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let s2 = seen.clone();
        let c = cmd(choice, "echo")
            .arg("hi")
            .stderr(Stdio::Null)
            .on_stdout_line(move |_| *s2.lock().unwrap() = Some(std::thread::current().id()));
        let mut p = g.start(&c).unwrap();
        let ran_in_start = *seen.lock().unwrap() == Some(here);
        p.wait().await.unwrap();
        inside += usize::from(ran_in_start);
    }
    drop(g);
    inside
}

/// A line callback (and a blocking tee) is "called on the reading task";
/// since perf20 the lone reader's first poll, made inside `start` on the
/// caller's thread, feeds it when the child wrote before that poll: the
/// callback runs inside `start`, on the caller's (possibly async) thread.
/// A caller that holds a lock the callback takes around `start` then
/// deadlocks (before perf20 the callback waited on a worker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_callback_never_runs_inside_start() {
    let suite = begin("rv22 callback inside start").await;
    for choice in mechanisms() {
        let inside = callbacks_run_inside_start(choice, 200).await;
        assert_eq!(
            inside, 0,
            "{choice}: {inside} of 200 callbacks ran inside start"
        );
    }
    suite.end().await;
}

/// A handle dropped (its reader detached) before any event, its line
/// stream taken and dropped too: the reader, spawned later by the first
/// write, still drains the pipe, so a child that then writes far more
/// than a pipe holds neither blocks nor dies of SIGPIPE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_dropped_before_any_event_still_drains() {
    let suite = begin("rv22 dropped before event").await;
    for choice in mechanisms() {
        let what = format!("{choice}: dropped, then 8 MiB written");
        let marker = TempPath::new("rv22-drained");
        let g = group(choice);
        let mut p = g
            .start(
                &lone(
                    choice,
                    "sleep 0.5; head -c 8388608 /dev/zero | tr '\\0' 'x' | fold -w 100 && \
                     echo done > \"$1\"",
                )
                .arg(marker.path()),
            )
            .unwrap();
        drop(p.lines());
        drop(p);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_to_string(marker.path()).ok().as_deref() != Some("done\n")
            && Instant::now() < deadline
        {
            tokio::time::sleep(POLL).await;
        }
        assert_eq!(
            std::fs::read_to_string(marker.path()).ok().as_deref(),
            Some("done\n"),
            "{what}: the child did not finish its writes"
        );
        drop(g);
    }
    suite.end().await;
}
