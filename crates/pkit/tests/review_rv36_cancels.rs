#![cfg(target_os = "linux")]
//! rv36 (cancels): a hostile review of this session's merges, the half
//! without tees (blkcb: a blocking run's callbacks on `pkit-reader`
//! threads; evq: the lines queued at the exit are owed), every mechanism
//! (`mechanisms()`; the binary's three runs: unset,
//! `PKIT_MECHANISM=pgroup`, `PKIT_MECHANISM=portable`). The tee half, with
//! the review's findings, is `review_rv36_tees.rs`.
//!
//! Probes that held: a cancel at the timeout's moment (verb, started
//! process; `killed_after_grace` when the timeout came first), many
//! blocking runs with callbacks and dropped blocking starts (no
//! `pkit-reader` thread left), evq's owed lines under `DropNewest`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use pkit::{CancelToken, Outcome, Overflow, ProcessEvent, Signal};

/// How long a promptly ended run may take here (generous: a loaded
/// machine), far below the graces the tests set.
const PROMPT: Duration = Duration::from_secs(15);

/// A script that records its pid and its `sleep` child's in `$1`, ignores
/// SIGTERM, and waits.
const IGNORES_TERM: &str = r#"trap '' TERM; sleep 300 & echo $$ > "$1"; echo $! >> "$1"; echo done >> "$1"; while :; do wait; done"#;

/// The timeouts of [`a_cancel_at_the_timeouts_moment_ends_a_verb_promptly`]
/// and its started twin: 400 ms, doubled (up to 16 times) after each run
/// whose shell had not set its trap before it (a slow start on a loaded
/// machine, a void round), for up to [`SLOW_START_BUDGET`] of such runs.
struct SlowStarts {
    scale: u32,
    since: Option<Instant>,
}

/// How long a mechanism's rounds may keep starting too slowly before the
/// test fails (a timeout that passed before the shell's first commands
/// every time, even at 6.4 s).
const SLOW_START_BUDGET: Duration = Duration::from_secs(60);

impl SlowStarts {
    fn new() -> SlowStarts {
        SlowStarts {
            scale: 1,
            since: None,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(400) * self.scale
    }

    /// A void round: the next timeout twice as long.
    fn again(&mut self, choice: pkit::MechanismChoice) {
        let since = *self.since.get_or_insert_with(Instant::now);
        assert!(
            since.elapsed() < SLOW_START_BUDGET,
            "{choice}: the shell never set its trap in time (last timeout {:?})",
            self.timeout()
        );
        self.scale = (self.scale * 2).min(16);
    }

    /// When to cancel after the shell wrote its pids: about when the
    /// timeout (counted from the start, a little before) fires.
    fn cancel_after(&self, round: u32) -> Duration {
        self.timeout() - Duration::from_millis(100) + Duration::from_millis(20) * round
    }
}

/// The cancel token cancelled at the moment the timeout fires (a timer
/// task of the same length), round after round: whichever bound is seen
/// first, the other ends its grace (120 s for the timeout's SIGTERM, which
/// the tree ignores; the cancel's is a long SIGTERM too): the verb returns
/// promptly, cancelled or timed out, and the tree is gone. (A round whose
/// shell started slower than the timeout is void, and run again with a
/// longer one: [`SlowStarts`].)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_at_the_timeouts_moment_ends_a_verb_promptly() {
    let suite = begin("rv36_a_cancel_at_the_timeouts_moment_ends_a_verb_promptly").await;
    for choice in mechanisms() {
        let mut slow = SlowStarts::new();
        let mut round = 0;
        while round < 6 {
            let file = TempPath::new("rv36-both");
            let token = CancelToken::new();
            let timeout = slow.timeout();
            let cmd = sh(choice, IGNORES_TERM)
                .arg(file.as_str())
                .stdout(pkit::Stdio::Null)
                .timeout(timeout)
                .timeout_signal(Signal::Term)
                .grace(Duration::from_secs(120))
                .cancel_token(&token)
                .cancel_signal(Signal::Term)
                .cancel_grace(Duration::from_secs(120));
            let mut run = tokio::spawn(async move { cmd.output().await });
            let pids = tokio::select! {
                pids = file.wait_pids() => pids,
                r = &mut run => {
                    // Ended before its shell wrote its pids: the timeout's
                    // SIGTERM came before the shell had set its trap (its
                    // start-up slow on a loaded machine). The round again.
                    assert!(
                        matches!(&r, Ok(Ok(out)) if out.timed_out()),
                        "{choice}: round {round}: ended before its pids: {r:?}"
                    );
                    slow.again(choice);
                    continue;
                }
            };
            // The timeout counts from the start, a little before: cancel
            // about when it fires.
            tokio::time::sleep(slow.cancel_after(round)).await;
            let began = Instant::now();
            token.cancel();
            let ended = tokio::time::timeout(PROMPT, run).await;
            let Ok(ended) = ended else {
                for &pid in &pids {
                    kill_pid(pid);
                }
                panic!("{choice}: round {round}: a bound's grace was waited out");
            };
            let r = ended.expect("the run's task");
            assert!(
                matches!(&r, Err(e) if e.is_cancelled())
                    || matches!(&r, Ok(out) if out.timed_out()),
                "{choice}: round {round}: {r:?}"
            );
            // Timed out first: the tree ignored the SIGTERM, so the cancel
            // ended the grace with SIGKILL, and the run says so.
            if let Ok(out) = &r {
                assert!(out.killed_after_grace(), "{choice}: round {round}: {out:?}");
            }
            assert!(began.elapsed() < PROMPT, "{choice}");
            assert_gone(&pids, &format!("{choice}: round {round}: the tree")).await;
            round += 1;
        }
    }
    suite.end().await;
}

/// The same for a started process (its watch): timeout and cancel at about
/// the same moment, both with long SIGTERM graces the tree ignores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_at_the_timeouts_moment_ends_a_started_process_promptly() {
    let suite = begin("rv36_a_cancel_at_the_timeouts_moment_ends_a_started_process").await;
    for choice in mechanisms() {
        let mut slow = SlowStarts::new();
        let mut round = 0;
        while round < 6 {
            let file = TempPath::new("rv36-both-started");
            let token = CancelToken::new();
            let timeout = slow.timeout();
            let cmd = pkit::Command::new("sh")
                .args(["-c", IGNORES_TERM, "sh", file.as_str()])
                .stdout(pkit::Stdio::Null)
                .timeout(timeout)
                .timeout_signal(Signal::Term)
                .grace(Duration::from_secs(120))
                .cancel_token(&token)
                .cancel_signal(Signal::Term)
                .cancel_grace(Duration::from_secs(120));
            let group = group(choice);
            let mut proc = group
                .start(&cmd)
                .unwrap_or_else(|e| panic!("{choice}: {e}"));
            let pids = tokio::select! {
                pids = file.wait_pids() => pids,
                r = proc.wait() => {
                    // Ended before its shell wrote its pids: the timeout's
                    // SIGTERM came before the shell had set its trap (its
                    // start-up slow on a loaded machine). The round again.
                    assert!(
                        matches!(&r, Ok(out) if out.timed_out()),
                        "{choice}: round {round}: ended before its pids: {r:?}"
                    );
                    slow.again(choice);
                    continue;
                }
            };
            tokio::time::sleep(slow.cancel_after(round)).await;
            token.cancel();
            let waited = tokio::time::timeout(PROMPT, proc.wait()).await;
            let Ok(waited) = waited else {
                for &pid in &pids {
                    kill_pid(pid);
                }
                panic!("{choice}: round {round}: a bound's grace was waited out");
            };
            // Either ending is fine (timed out, the cancel then ending the
            // grace: SIGKILL was needed; or cancelled); a hang is not.
            match waited {
                Ok(out) => {
                    assert_eq!(out.outcome(), Outcome::TimedOut, "{choice}: round {round}");
                    assert!(out.killed_after_grace(), "{choice}: round {round}: {out:?}");
                }
                Err(e) => assert!(e.is_cancelled(), "{choice}: round {round}: {e}"),
            }
            drop(proc);
            drop(group);
            assert_gone(&pids, &format!("{choice}: round {round}: the tree")).await;
            round += 1;
        }
    }
    suite.end().await;
}

/// `pkit-reader` threads of this process now.
fn reader_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim_end() == "pkit-reader")
                })
                .count()
        })
        .unwrap_or(0)
}

/// Many blocking runs with line callbacks at once (a `pkit-reader` thread
/// per stream each): every run's lines all come, and once the runs are
/// done no reader thread is left (they end with their streams).
#[test]
fn many_blocking_runs_with_callbacks_leave_no_reader_threads() {
    in_suite("rv36_many_blocking_runs_with_callbacks", || {
        for choice in mechanisms() {
            let runs: Vec<_> = (0..24)
                .map(|_| {
                    std::thread::spawn(move || {
                        let count = Arc::new(Mutex::new((0usize, 0usize)));
                        let (o, e) = (count.clone(), count.clone());
                        let out = sh(choice, "seq 1 200; seq 1 50 >&2")
                            .on_stdout_line(move |_| o.lock().unwrap().0 += 1)
                            .on_stderr_line(move |_| e.lock().unwrap().1 += 1)
                            .blocking()
                            .output()
                            .unwrap_or_else(|e| panic!("{choice}: {e}"));
                        assert!(out.success(), "{choice}: {out:?}");
                        let n = *count.lock().unwrap();
                        drop(count);
                        n
                    })
                })
                .collect();
            for r in runs {
                assert_eq!(r.join().expect("a run's thread"), (200, 50), "{choice}");
            }
            // Started and dropped at once (a blocking start's drop takes
            // its tree with it): the readers end with the tree's pipes.
            let mut pids = Vec::new();
            for _ in 0..8 {
                let file = TempPath::new("rv36-dropped");
                let proc = sh(
                    choice,
                    r#"echo $$ > "$1"; echo done >> "$1"; echo hi; exec sleep 300"#,
                )
                .arg(file.as_str())
                .on_stdout_line(|_| ())
                .on_stderr_line(|_| ())
                .blocking()
                .start()
                .unwrap_or_else(|e| panic!("{choice}: {e}"));
                let until = Instant::now() + DEADLINE;
                let pid: u32 = loop {
                    let text = std::fs::read_to_string(file.as_str()).unwrap_or_default();
                    if text.lines().any(|l| l == "done") {
                        break text.lines().next().unwrap().trim().parse().unwrap();
                    }
                    assert!(Instant::now() < until, "{choice}: no pid");
                    std::thread::sleep(POLL);
                };
                drop(proc);
                pids.push(pid);
            }
            let until = Instant::now() + DEADLINE * 3;
            while !pids.iter().all(|&p| pid_gone(p)) {
                assert!(
                    Instant::now() < until,
                    "{choice}: a dropped start's tree lives on"
                );
                std::thread::sleep(POLL);
            }
            let until = Instant::now() + DEADLINE * 3;
            while reader_threads() > 0 {
                assert!(
                    Instant::now() < until,
                    "{choice}: {} pkit-reader threads left after every run ended",
                    reader_threads()
                );
                std::thread::sleep(POLL);
            }
        }
    });
}

/// evq under `Overflow::DropNewest`: the lines queued when the exit is
/// seen are all told before the exit by a reader slower than the 2 s cap
/// (none were dropped: the buffer holds them all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owed_lines_under_drop_newest_all_come_before_the_exit() {
    let suite = begin("rv36_owed_lines_under_drop_newest").await;
    for choice in mechanisms() {
        let cmd = pkit::Command::new("sh")
            .args(["-c", "seq 1 70"])
            .stream_lines()
            .buffer_lines(100)
            .overflow(Overflow::DropNewest);
        let group = group(choice);
        let mut proc = group
            .start(&cmd)
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        let mut events = proc.events();
        let read = tokio::spawn(async move {
            let mut lines = Vec::new();
            let mut exit = None;
            let mut first = true;
            while let Some(e) = events.next_event().await {
                if first {
                    first = false;
                    // The process writes its lines and exits meanwhile.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                match e {
                    ProcessEvent::Line(l) => {
                        assert!(exit.is_none(), "a line after the exit");
                        lines.push(l.text);
                        tokio::time::sleep(Duration::from_millis(40)).await;
                    }
                    ProcessEvent::Exited { outcome, .. } => exit = Some(outcome),
                    _ => {}
                }
            }
            (lines, exit)
        });
        let (lines, exit) = tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .unwrap_or_else(|_| panic!("{choice}: the events never ended"))
            .expect("the reading task");
        let want: Vec<String> = (1..=70).map(|i| i.to_string()).collect();
        assert_eq!(lines, want, "{choice}");
        assert_eq!(exit, Some(Outcome::Exited(0)), "{choice}");
        assert_eq!(proc.dropped_lines(), 0, "{choice}");
        let _ = proc.wait().await;
        drop(group);
    }
    suite.end().await;
}
