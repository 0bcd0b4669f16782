#![cfg(target_os = "linux")]
//! rv36 (tees): a hostile review of this session's merges, the tee half
//! (grace2: a second bound ends the first one's grace, a timed-out run
//! abandons a stuck tee; teefin). Findings are tests that failed on main;
//! every mechanism (`mechanisms()`; the binary's three runs: unset,
//! `PKIT_MECHANISM=pgroup`, `PKIT_MECHANISM=portable`). The other half,
//! cancels at the timeout's moment, blocking runs' reader threads and
//! evq's owed lines, is `review_rv36_cancels.rs`.
//!
//! Findings (failed on main in all three runs; all fixed since):
//! - MEDIUM [`a_stuck_tee_holds_no_run_past_its_timeout_when_the_program_exits_first`]:
//!   the stuck-tee cut applies only to a run that ended by its timeout; a
//!   program that writes less than a pipe's worth and exits first leaves
//!   `output` (and a started process's `wait`) on the tee's write for ever.
//!   Pipelines have the same hole for a stage that exited before the
//!   timeout (`pipe_started.rs`: `finish(outcome)` with its own outcome).
//!   Fixed by teefin, with [`a_stuck_tee_of_a_stage_that_exited_first_holds_no_pipeline`]
//!   and [`a_cancel_or_the_inactivity_timeout_cuts_a_stuck_tee_after_the_exit`].
//! - MEDIUM [`a_healthy_async_tee_of_a_timed_out_run_keeps_every_byte`]:
//!   `abandon_tee` is a `notify_one`, which stores a permit when no write
//!   is under way; every later write and the flush race it in an unbiased
//!   `select!`, so a healthy tee loses bytes and reports a false
//!   `TimedOut`. (Passes with the `notify_one` removed.)
//! - LOW [`an_escape_inside_an_osc_string_ends_the_string`]: the VT
//!   stripper's `StringEscape` goes back into the string on any byte but
//!   `\`. Fixed by teefin.

mod common;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::*;
use pkit::{CancelToken, Outcome};

/// How long a promptly ended run may take here (generous: a loaded
/// machine), far below the graces the tests set.
const PROMPT: Duration = Duration::from_secs(15);

/// The first timeout of the cases whose program (or first stage) must
/// exit by itself before it: doubled, up to [`LAST_LIMIT`], while it did
/// not (a loaded machine slow to start it: such a try tells nothing).
const FIRST_LIMIT: Duration = Duration::from_secs(1);
const LAST_LIMIT: Duration = Duration::from_secs(16);

/// The least duration of a run its `limit` ended (the duration is counted
/// from a little after the timeout's start).
fn not_before(limit: Duration) -> Duration {
    limit - Duration::from_millis(100)
}

/// A healthy async tee: every write and flush is taken at once.
#[derive(Clone, Default)]
struct Healthy(Arc<Mutex<Vec<u8>>>);

impl tokio::io::AsyncWrite for Healthy {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// grace2's stuck-tee fix (`Reader::finish(timed_out)` → `abandon_tee`,
/// a `Notify::notify_one`) stores a permit when no tee write is under way,
/// and every later write or flush of the tee is raced against it
/// (`unwound::cut_short`, an unbiased `select!`): a healthy tee, one that
/// takes every byte at once, loses the rest of the output at random and
/// the run reports a `TimedOut` tee error ("took no more bytes") it never
/// earned. Here the reader is busy in the first line's callback when the
/// timeout ends the tree; the lines still in the pipe, and the flush, go
/// through the cut afterwards.
///
/// Fixed: the cut is a flag and `notify_waiters` (no stored permit), and
/// the write is polled first (`biased`), so a write that completes at once
/// is never cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_healthy_async_tee_of_a_timed_out_run_keeps_every_byte() {
    let suite = begin("rv36_a_healthy_async_tee_of_a_timed_out_run_keeps_every_byte").await;
    let failures = Arc::new(Mutex::new(Vec::new()));
    // The rounds at once (each its own file, tree and tees): each mostly
    // waits (the callback's 1.2 s, the 0.5 s timeout).
    let rounds = mechanisms()
        .into_iter()
        .flat_map(|choice| (0..6).map(move |round| (choice, round)));
    all_at_once(rounds, |(choice, round)| {
        let failures = failures.clone();
        async move {
            let file = TempPath::new("rv36-tee");
            let (tee, err_tee) = (Healthy::default(), Healthy::default());
            // Each stream's reader is held in its first line's callback
            // past the timeout (the tree is killed meanwhile); later lines
            // are quick.
            let slow = |first: Arc<AtomicBool>| {
                move |_: &str| {
                    if first.swap(false, Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1200));
                    }
                }
            };
            let cmd = sh(
                choice,
                r#"echo $$ > "$1"; echo done >> "$1"; echo first; echo first >&2; sleep 0.3; seq 1 3000; seq 1 3000 >&2; exec sleep 300"#,
            )
            .arg(file.as_str())
            .stdout_tee(tee.clone())
            .stderr_tee(err_tee.clone())
            .on_stdout_line(slow(Arc::new(AtomicBool::new(true))))
            .on_stderr_line(slow(Arc::new(AtomicBool::new(true))))
            .timeout(Duration::from_millis(500));
            let run = tokio::spawn(async move { cmd.output().await });
            let pids = file.wait_pids().await;
            let ended = tokio::time::timeout(PROMPT, run).await;
            let Ok(ended) = ended else {
                for &pid in &pids {
                    kill_pid(pid);
                }
                panic!("{choice}: round {round}: the run never ended");
            };
            let out = ended
                .expect("the run's task")
                .unwrap_or_else(|e| panic!("{choice}: {e}"));
            assert_eq!(out.outcome(), Outcome::TimedOut, "{choice}: {out:?}");
            let teed = tee.0.lock().unwrap().clone();
            if teed != out.stdout() || out.stdout_tee_error().is_some() {
                failures.lock().unwrap().push(format!(
                    "{choice} round {round}: stdout captured {} bytes, teed {}, tee error {:?}",
                    out.stdout().len(),
                    teed.len(),
                    out.stdout_tee_error()
                ));
            }
            let teed = err_tee.0.lock().unwrap().clone();
            if teed != out.stderr() || out.stderr_tee_error().is_some() {
                failures.lock().unwrap().push(format!(
                    "{choice} round {round}: stderr captured {} bytes, teed {}, tee error {:?}",
                    out.stderr().len(),
                    teed.len(),
                    out.stderr_tee_error()
                ));
            }
            assert_gone(&pids, &format!("{choice}: the tree")).await;
        }
    })
    .await;
    suite.end().await;
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// grace2 bounds a stuck tee only when the run ended by its timeout
/// (`Reader::finish(timed_out)`): a program that writes less than a pipe's
/// worth and exits at once, before the timeout, leaves its reader on the
/// tee's write with the rest still in the pipe; the run is `Done`, its
/// readers are finished without the cut, and `output` waits on that write
/// for ever, past the timeout that "bounds the whole run" (the tee's docs:
/// "The run's bounds bound it too"). The same for a started process's
/// `wait`.
///
/// Fixed (teefin): once the program has exited, its readers' finish is
/// raced against the rest of the run's bounds (`AfterExit`); when one
/// passes, the tee is cut as a timed-out run's is. The outcome stays the
/// exit's; the tee's error is `TimedOut`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_tee_holds_no_run_past_its_timeout_when_the_program_exits_first() {
    let suite = begin("rv36_a_stuck_tee_when_the_program_exits_first").await;
    let mut failures = Vec::new();
    for choice in mechanisms() {
        for started in [false, true] {
            let mut limit = FIRST_LIMIT;
            loop {
                let (stuck, peer) = tokio::io::duplex(64);
                let cmd = pkit::Command::new("sh")
                    .args(["-c", "head -c 20000 /dev/zero"])
                    .stdout_tee(stuck)
                    .timeout(limit);
                let group = started.then(|| group(choice));
                let mut run = match &group {
                    Some(group) => {
                        let mut proc = group
                            .start(&cmd)
                            .unwrap_or_else(|e| panic!("{choice}: {e}"));
                        tokio::spawn(async move { proc.wait().await })
                    }
                    None => {
                        let cmd = cmd.runner(Arc::new(pkit::SystemRunner::with_mechanism(choice)));
                        tokio::spawn(async move { cmd.output().await })
                    }
                };
                let way = if started { "wait" } else { "output" };
                let bound = limit + Duration::from_secs(9);
                let Ok(r) = tokio::time::timeout(bound, &mut run).await else {
                    failures.push(format!(
                    "{choice}: {way} still waits on the stuck tee {bound:?} after its {limit:?} timeout"
                ));
                    // The peer gone, the tee's write fails and the run ends.
                    drop(peer);
                    let _ = tokio::time::timeout(PROMPT, run).await.unwrap_or_else(|_| {
                        panic!("{choice}: {way}: no end with the tee's peer gone")
                    });
                    break;
                };
                drop(peer);
                match r.expect("the run's task") {
                    Err(e) => failures.push(format!("{choice}: {way}: {e}")),
                    Ok(out) if out.timed_out() && limit < LAST_LIMIT => {
                        drop(group);
                        limit *= 2;
                        continue;
                    }
                    Ok(out) => {
                        if let Some(why) = cut_tee_of_an_exit(&out, 20000, not_before(limit)) {
                            failures.push(format!("{choice}: {way}: {why}"));
                        }
                    }
                }
                drop(group);
                break;
            }
        }
    }
    suite.end().await;
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Why `out` is not a run that exited by itself (0) and whose stdout tee
/// was cut by a bound after the exit, with all `len` bytes captured: the
/// bound, not earlier (a run that took `not_before` at least).
fn cut_tee_of_an_exit(out: &pkit::Output, len: usize, not_before: Duration) -> Option<String> {
    let kind = out.stdout_tee_error().map(io::Error::kind);
    (out.outcome() != Outcome::Exited(0)
        || kind != Some(io::ErrorKind::TimedOut)
        || out.stdout().len() != len
        || out.timed_out()
        || out.duration() < not_before)
        .then(|| format!("not an exit with a cut tee: {out:?}, tee error {kind:?}"))
}

/// The same under the blocking API, whose reader of a stream with a tee
/// runs on a thread of its own (teefin): an async tee stuck after the
/// exit is cut when the timeout passes, and the blocking verb returns.
#[test]
fn a_stuck_async_tee_holds_no_blocking_run_past_its_timeout() {
    in_suite("rv36_a_stuck_async_tee_holds_no_blocking_run", || {
        let mut failures = Vec::new();
        for choice in mechanisms() {
            let mut limit = FIRST_LIMIT;
            loop {
                let (stuck, peer) = tokio::io::duplex(64);
                let cmd = sh(choice, "head -c 20000 /dev/zero")
                    .stdout_tee(stuck)
                    .timeout(limit);
                let (tx, rx) = std::sync::mpsc::channel();
                let run = std::thread::spawn(move || {
                    let _ = tx.send(cmd.blocking().output());
                });
                let r = match rx.recv_timeout(limit + PROMPT) {
                    Ok(r) => r,
                    Err(_) => {
                        failures.push(format!("{choice}: still waits on the stuck tee"));
                        drop(peer);
                        let _ = rx.recv_timeout(PROMPT);
                        let _ = run.join();
                        break;
                    }
                };
                run.join().expect("the run's thread");
                drop(peer);
                match r {
                    Err(e) => failures.push(format!("{choice}: {e}")),
                    Ok(out) if out.timed_out() && limit < LAST_LIMIT => {
                        limit *= 2;
                        continue;
                    }
                    Ok(out) => {
                        if let Some(why) = cut_tee_of_an_exit(&out, 20000, not_before(limit)) {
                            failures.push(format!("{choice}: {why}"));
                        }
                    }
                }
                break;
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    });
}

/// The same for a pipeline (teefin): a stage that exits before the chain's
/// timeout, its stderr tee stuck, holds no `output` (nor a started
/// chain's `wait`) past the timeout: when the whole chain is done before
/// it (the tee is cut when it passes, the chain succeeds), and when a
/// later stage runs into it (the chain times out; the stage that exited
/// first keeps its own outcome, its tee cut).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_tee_of_a_stage_that_exited_first_holds_no_pipeline() {
    let suite = begin("rv36_a_stuck_tee_of_a_stage_that_exited_first").await;
    let mut failures = Vec::new();
    for choice in mechanisms() {
        for (started, last) in [
            (false, "cat"),
            (true, "cat"),
            (false, "cat; exec sleep 300"),
        ] {
            let mut limit = FIRST_LIMIT;
            loop {
                let (stuck, peer) = tokio::io::duplex(64);
                let chain = pkit::Pipe::new([
                    pkit::Command::new("sh")
                        .args(["-c", "head -c 20000 /dev/zero >&2; echo x"])
                        .stderr_tee(stuck),
                    pkit::Command::new("sh").args(["-c", last]),
                ])
                .mechanism(choice)
                .timeout(limit);
                let mut run = if started {
                    let mut chain = chain.start().unwrap_or_else(|e| panic!("{choice}: {e}"));
                    tokio::spawn(async move { chain.wait().await })
                } else {
                    tokio::spawn(async move { chain.output().await })
                };
                let way = format!("started {started}, last stage {last:?}");
                let Ok(r) = tokio::time::timeout(limit + PROMPT, &mut run).await else {
                    failures.push(format!("{choice}: {way}: still waits on the stuck tee"));
                    drop(peer);
                    let _ = tokio::time::timeout(PROMPT, run).await;
                    break;
                };
                let out = match r.expect("the run's task") {
                    Ok(out) => out,
                    Err(e) => {
                        failures.push(format!("{choice}: {way}: {e}"));
                        break;
                    }
                };
                let head = &out.stages()[0];
                let kind = head.stderr_tee_error().map(io::Error::kind);
                let timed_out = last != "cat";
                // A stage the timeout ended that was to end by itself first: a
                // void try.
                let late = |i: usize| out.stages()[i].timed_out();
                if (late(0) || (!timed_out && late(1))) && limit < LAST_LIMIT {
                    drop(peer);
                    limit *= 2;
                    continue;
                }
                if head.outcome() != Outcome::Exited(0)
                    || out.duration() < not_before(limit)
                    || kind != Some(io::ErrorKind::TimedOut)
                    || head.stderr().len() != 20000
                    || out.timed_out() != timed_out
                    || (!timed_out && !out.success())
                {
                    failures.push(format!(
                        "{choice}: {way}: {out:?}, head's tee error {kind:?}"
                    ));
                }
                drop(peer);
                break;
            }
        }
    }
    suite.end().await;
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A run whose program exited by itself, its tee stuck, and no timeout:
/// a cancel (teefin) or the inactivity timeout (no output read for that
/// long) ends it promptly, verb and started process alike; the outcome is
/// the exit's, the tee's error `TimedOut`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_or_the_inactivity_timeout_cuts_a_stuck_tee_after_the_exit() {
    let suite = begin("rv36_a_cancel_cuts_a_stuck_tee_after_the_exit").await;
    let mut failures = Vec::new();
    for choice in mechanisms() {
        for (started, idle) in [(false, false), (true, false), (false, true), (true, true)] {
            let file = TempPath::new("rv36-exited");
            let (stuck, peer) = tokio::io::duplex(64);
            let token = CancelToken::new();
            let mut cmd = pkit::Command::new("sh")
                .args([
                    "-c",
                    r#"head -c 20000 /dev/zero; echo $$ > "$1"; echo done >> "$1""#,
                ])
                .arg("sh")
                .arg(file.as_str())
                .stdout_tee(stuck);
            cmd = match idle {
                true => cmd.inactivity_timeout(Duration::from_secs(1)),
                false => cmd.cancel_token(&token),
            };
            let group = started.then(|| group(choice));
            let mut run = match &group {
                Some(group) => {
                    let mut proc = group
                        .start(&cmd)
                        .unwrap_or_else(|e| panic!("{choice}: {e}"));
                    tokio::spawn(async move { proc.wait().await })
                }
                None => {
                    let cmd = cmd.runner(Arc::new(pkit::SystemRunner::with_mechanism(choice)));
                    tokio::spawn(async move { cmd.output().await })
                }
            };
            let way = format!("started {started}, inactivity {idle}");
            let pids = file.wait_pids().await;
            assert_gone(&pids, &format!("{choice}: {way}: the program")).await;
            if !idle {
                // The run sees the exit and is left on the tee's write.
                tokio::time::sleep(Duration::from_millis(500)).await;
                if run.is_finished() {
                    failures.push(format!("{choice}: {way}: ended before the cancel"));
                }
                token.cancel();
            }
            let Ok(r) = tokio::time::timeout(PROMPT, &mut run).await else {
                failures.push(format!("{choice}: {way}: still waits on the stuck tee"));
                drop(peer);
                let _ = tokio::time::timeout(PROMPT, run).await;
                continue;
            };
            match r.expect("the run's task") {
                Err(e) => failures.push(format!("{choice}: {way}: {e}")),
                Ok(out) => {
                    // The 1 s inactivity timeout; the cancel was checked.
                    let not_before = Duration::from_millis(if idle { 900 } else { 0 });
                    if let Some(why) = cut_tee_of_an_exit(&out, 20000, not_before) {
                        failures.push(format!("{choice}: {way}: {why}"));
                    }
                    if out.inactivity_timed_out() {
                        failures.push(format!("{choice}: {way}: inactivity_timed_out"));
                    }
                }
            }
            drop(peer);
            drop(group);
        }
    }
    suite.end().await;
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The VT stripper (attack20 made CAN and SUB end a string): inside an OSC
/// or DCS string, an ESC that does not start the string terminator (ESC \)
/// starts a new escape sequence, ending the string, as a terminal's parser
/// does (the DEC parser's "anywhere" ESC; xterm and VTE alike). pkit's
/// stripper goes back into the string instead (`StringEscape` + any other
/// character → `String`), so an OSC a program leaves unterminated and
/// follows with a CSI (a title set cut short, then colours) swallows every
/// line after it, up to the next BEL: here, all of them.
///
/// Fixed (teefin): ESC in a string, then anything but `\`, is that
/// character after a fresh ESC.
#[test]
fn an_escape_inside_an_osc_string_ends_the_string() {
    let got = pkit::strip_vt("\x1b]0;title\x1b[1mbold\x1b[0m\nnext line\nlast\n");
    assert_eq!(got, "bold\nnext line\nlast\n");
    let cases = [
        // ST (ESC \) and BEL still end a string, OSC and DCS.
        ("a\x1b]0;title\x1b\\b\n", "ab\n"),
        ("a\x1b]0;title\x07b\n", "ab\n"),
        ("a\x1bPq#0;2\x1b\\b", "ab"),
        // ESC [ starts a CSI, stripped whole, in an OSC and in a DCS.
        ("a\x1b]0;t\x1b[31mred\x1b[0m\n", "ared\n"),
        ("a\x1bPq#0\x1b[1;2Hb", "ab"),
        // ESC and a plain character: a two-byte escape (ESC 7, ESC M...),
        // which ends there; the text after it is kept.
        ("a\x1b]0;t\x1b7b\nc", "ab\nc"),
        ("a\x1b]0;t\x1bxyz", "ayz"),
        // ESC ] starts a new OSC, ended by its own BEL.
        ("a\x1b]0;t\x1b]2;u\x07b", "ab"),
        // ESC ESC: the second starts the escape.
        ("a\x1b]0;t\x1b\x1b[1mb", "ab"),
        // A line ending after the ESC is kept.
        ("a\x1b]0;t\x1b\nb", "a\nb"),
    ];
    let mut wrong = Vec::new();
    for (input, want) in cases {
        let got = pkit::strip_vt(input);
        if got != want {
            wrong.push(format!("{input:?}: {got:?}, not {want:?}"));
        }
        // Split anywhere, the same.
        for at in (1..input.len()).filter(|&i| input.is_char_boundary(i)) {
            let mut vt = pkit::VtStripper::new();
            let mut got = String::new();
            vt.strip_into(&input[..at], &mut got);
            vt.strip_into(&input[at..], &mut got);
            if got != want {
                wrong.push(format!("{input:?} split at {at}: {got:?}, not {want:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
