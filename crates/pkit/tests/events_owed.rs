//! evq: the lines queued when the exit is seen are owed: `events` tells them
//! all before the exit, and `wait_for_line` looks at them all, however slow
//! the reader; the 2 s cap (for descendants that write on after the exit)
//! counts only from there. burst: so are the lines of the output still in
//! the pipes (or held by the pump) when the exit is seen.
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, Outcome, ProcessEvent, StreamKind};

/// Generous: telling the owed lines takes a few seconds on purpose.
const LONG: Duration = Duration::from_secs(120);

/// Waits until the process `pid` has exited (gone or a zombie: it has
/// written all its lines), then [`SETTLE`] more, for the stream to see the
/// exit: the lines are all queued then. Polled, where a fixed 1-2 s wait
/// was: the scripts exit 0.3 s after their last line.
async fn exited(pid: u32) {
    let deadline = std::time::Instant::now() + LONG;
    while !pid_gone(pid) {
        assert!(std::time::Instant::now() < deadline, "{pid} never exited");
        tokio::time::sleep(POLL).await;
    }
    tokio::time::sleep(SETTLE).await;
}

/// After the exit, before the reading starts: the stream sees the exit
/// through its pidfd (or SIGCHLD) in milliseconds.
const SETTLE: Duration = Duration::from_millis(300);

/// Reads `p`'s events in a task of its own: first waits until the process
/// has written its lines and exited ([`exited`]: so they are all queued
/// when the stream sees the exit), then sleeps `pause` after every `every`
/// lines. Returns the stdout lines (as text), the stderr count, the exit,
/// and whether the stream ended within [`LONG`] (else the group is killed,
/// which ends it anyway).
async fn read_slowly(
    g: &pkit::Group,
    p: &mut pkit::RunningProcess,
    every: u64,
    pause: Duration,
) -> (Vec<String>, usize, Option<Outcome>, bool) {
    let pid = p.pid();
    let mut events = p.events();
    let task = tokio::spawn(async move {
        let (mut out, mut err, mut exit) = (Vec::new(), 0, None);
        let mut n = 0u64;
        let mut first = true;
        while let Some(e) = events.next_event().await {
            if first {
                first = false;
                exited(pid).await;
            }
            match e {
                ProcessEvent::Line(l) => {
                    assert!(exit.is_none(), "a line after the exit");
                    match l.stream {
                        StreamKind::Stdout => out.push(l.text),
                        _ => err += 1,
                    }
                    n += 1;
                    if n % every == 0 {
                        tokio::time::sleep(pause).await;
                    }
                }
                ProcessEvent::Exited { outcome, .. } => exit = Some(outcome),
                _ => {}
            }
        }
        (out, err, exit)
    });
    tokio::pin!(task);
    let (in_time, got) = match tokio::time::timeout(LONG, &mut task).await {
        Ok(got) => (true, got.unwrap()),
        Err(_) => {
            g.kill().unwrap();
            (false, task.await.unwrap())
        }
    };
    (got.0, got.1, got.2, in_time)
}

/// 20k lines all queued when the stream sees the exit, told to a consumer
/// that takes about 4 s over them (20 ms every 100 lines): every one comes,
/// in order, then the exit (before evq the exit came 2 s after it was seen,
/// and the lines still queued then were never told). (It was 200k lines at
/// 2 ms every 100: the same 4 s past the 2 s cap, ten times the CPU.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_queued_at_the_exit_all_come_to_a_slow_reader() {
    let suite = begin("lines_queued_at_the_exit_all_come_to_a_slow_reader").await;
    // The mechanisms at once, each with its own group and process.
    all_at_once(mechanisms(), |choice| async move {
        let g = group(choice);
        let cmd = Command::new("sh")
            .args(["-c", "seq 1 20000; echo e >&2; sleep 0.3; exit 3"])
            .stream_lines()
            .buffer_lines(1 << 20);
        let mut p = g.start(&cmd).unwrap();
        let (out, err, exit, in_time) =
            read_slowly(&g, &mut p, 100, Duration::from_millis(20)).await;
        let _ = p.wait().await;
        g.close().await.unwrap();
        assert!(in_time, "{choice}: no end within {LONG:?}");
        assert_eq!((out.len(), err), (20_000, 1), "{choice}");
        assert!(
            out.iter()
                .enumerate()
                .all(|(i, t)| *t == (i + 1).to_string()),
            "{choice}: out of order"
        );
        assert_eq!(exit, Some(Outcome::Exited(3)), "{choice}");
    })
    .await;
    suite.end().await;
}

/// A descendant floods the pipe (`while :; do echo x; done`) after the
/// process wrote its own lines and exited; the consumer is slow (1 ms every
/// 64 lines). The process's own lines all come, then the exit: the flood
/// holds it back no more than the lines queued at the exit (a 20k-line
/// queue) and the 2 s cap; "it ends" is all that is timed, generously.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_after_the_exit_still_lets_the_exit_come() {
    let suite = begin("a_flood_after_the_exit_still_lets_the_exit_come").await;
    // The mechanisms at once, each with its own group and process.
    all_at_once(mechanisms(), |choice| async move {
        let g = group(choice);
        let script = "seq 1 5000; (while :; do echo x; done) & sleep 0.3; exit 5";
        let cmd = Command::new("sh")
            .args(["-c", script])
            .stream_lines()
            .buffer_lines(20_000);
        let mut p = g.start(&cmd).unwrap();
        let (out, _, exit, in_time) = read_slowly(&g, &mut p, 64, Duration::from_millis(1)).await;
        g.kill().unwrap();
        let _ = p.wait().await;
        g.close().await.unwrap();
        assert!(in_time, "{choice}: the exit not told within {LONG:?}");
        assert_eq!(exit, Some(Outcome::Exited(5)), "{choice}");
        let own: Vec<&String> = out.iter().filter(|t| *t != "x").collect();
        assert_eq!(own.len(), 5000, "{choice}");
        assert!(
            own.iter()
                .enumerate()
                .all(|(i, t)| **t == (i + 1).to_string()),
            "{choice}: out of order"
        );
    })
    .await;
    suite.end().await;
}

/// A predicate that takes ~4 s over 20k lines (it sleeps 2 ms every 10th
/// line) and matches only `the-end`. (It spun 20 µs a line over 200k
/// lines: as slow, but a core busy for the 4 s.)
fn slow_match() -> impl FnMut(&pkit::Line) -> bool {
    let mut n = 0u32;
    move |line| {
        n += 1;
        if n % 10 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        line.text == "the-end"
    }
}

/// `wait_for_line` with a predicate that takes ~4 s over the 20k lines
/// queued when the probe sees the exit: it still finds the process's last
/// line (before evq it gave up 2 s after the exit with `NotReady`).
/// (Four workers: the three predicates block theirs while they sleep.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_for_line_looks_at_every_line_queued_at_the_exit() {
    let suite = begin("wait_for_line_looks_at_every_line_queued_at_the_exit").await;
    // The mechanisms at once, each with its own group and process (the
    // predicate sleeps, it no longer spins: at once they don't queue on
    // the CPU).
    all_at_once(mechanisms(), |choice| async move {
        let g = group(choice);
        let cmd = Command::new("sh")
            .args(["-c", "seq 1 20000; echo the-end; sleep 0.3; exit 3"])
            .stream_lines()
            .buffer_lines(1 << 20);
        let mut p = g.start(&cmd).unwrap();
        // Let it write everything and exit first.
        exited(p.pid()).await;
        let got = p.wait_for_line(slow_match(), LONG).await;
        let _ = p.wait().await;
        g.close().await.unwrap();
        match got {
            Ok(line) => assert_eq!(line.text, "the-end", "{choice}"),
            Err(e) => panic!("{choice}: {e}"),
        }
    })
    .await;
    suite.end().await;
}

/// A process that writes `BURST_LINES` lines of 100 bytes (`000…0001` to
/// `000…12000`, 1.2 MB) and exits 6. With a 4000-line queue, most of them
/// are still in the pipe (grown to 1 MiB once 256 KiB were read) or held
/// by the pump, not queued, when the process exits while nobody reads.
fn burst(choice: pkit::MechanismChoice) -> (pkit::Group, Command) {
    let script = format!(
        "awk 'BEGIN {{ for (i = 1; i <= {BURST_LINES}; i++) printf \"%099d\\n\", i }}'; exit 6"
    );
    let cmd = Command::new("sh")
        .args(["-c", &script])
        .stream_lines()
        .buffer_lines(4000);
    (group(choice), cmd)
}

const BURST_LINES: usize = 12_000;
/// Where the consumer (or predicate) of a [`burst`] stops for [`STALL`]:
/// past the 4000 lines that can be queued when it sees the exit.
const STALL_AT: usize = 8000;
/// Longer than the 2 s cap after the exit.
const STALL: Duration = Duration::from_secs(3);

/// A process's own output still in its pipe when it exits (the pipe holds
/// up to 1 MiB) is owed like the lines queued then: a consumer that first
/// waits for the exit, then stops for 3 s at line 8000 (past what the
/// queue held at the exit, longer than the 2 s cap), gets all 12,000
/// lines, in order, then the exit. (Before, only the lines queued at the
/// exit were owed: the cap started once they were told, and the exit came
/// after line 8000.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_still_in_the_pipe_at_the_exit_all_comes_before_it() {
    let suite = begin("output_still_in_the_pipe_at_the_exit_all_comes_before_it").await;
    // The mechanisms at once, each with its own group and process.
    all_at_once(mechanisms(), |choice| async move {
        let (g, cmd) = burst(choice);
        let mut p = g.start(&cmd).unwrap();
        let pid = p.pid();
        let mut events = p.events();
        let task = tokio::spawn(async move {
            let (mut n, mut exit, mut wrong) = (0usize, None, None);
            while let Some(e) = events.next_event().await {
                match e {
                    ProcessEvent::Line(l) => {
                        assert!(exit.is_none(), "a line after the exit");
                        n += 1;
                        if wrong.is_none() && l.text.parse::<usize>().ok() != Some(n) {
                            wrong = Some((n, l.text));
                        }
                        if n == 1 {
                            // It writes the rest and exits meanwhile.
                            exited(pid).await;
                        } else if n == STALL_AT {
                            tokio::time::sleep(STALL).await;
                        }
                    }
                    ProcessEvent::Exited { outcome, .. } => exit = Some(outcome),
                    _ => {}
                }
            }
            (n, exit, wrong)
        });
        tokio::pin!(task);
        let (in_time, (n, exit, wrong)) = match tokio::time::timeout(LONG, &mut task).await {
            Ok(got) => (true, got.unwrap()),
            Err(_) => {
                g.kill().unwrap();
                (false, task.await.unwrap())
            }
        };
        let _ = p.wait().await;
        g.close().await.unwrap();
        assert!(in_time, "{choice}: no end within {LONG:?}");
        assert_eq!(wrong, None, "{choice}: out of order");
        assert_eq!(n, BURST_LINES, "{choice}: lines before the exit");
        assert_eq!(exit, Some(Outcome::Exited(6)), "{choice}");
    })
    .await;
    suite.end().await;
}

/// The same for `wait_for_line`: a predicate that waits for the exit at
/// the first line and stalls 3 s at line 8000 still finds the process's
/// last line, which was in the pipe at the exit (before, it gave up with
/// `NotReady(Exited)` 2 s after the lines queued at the exit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_line_looks_at_output_still_in_the_pipe_at_the_exit() {
    let suite = begin("wait_for_line_looks_at_output_still_in_the_pipe_at_the_exit").await;
    // One mechanism after the other, on the test's own thread (not a
    // runtime worker: the predicate blocks it).
    for choice in mechanisms() {
        let (g, cmd) = burst(choice);
        let mut p = g.start(&cmd).unwrap();
        let pid = p.pid();
        let last = format!("{BURST_LINES:099}");
        let mut n = 0usize;
        let pred = |l: &pkit::Line| {
            n += 1;
            if n == 1 {
                let deadline = std::time::Instant::now() + LONG;
                while !pid_gone(pid) && std::time::Instant::now() < deadline {
                    std::thread::sleep(POLL);
                }
                std::thread::sleep(SETTLE);
            } else if n == STALL_AT {
                std::thread::sleep(STALL);
            }
            l.text == last
        };
        let got = p.wait_for_line(pred, LONG).await;
        let _ = p.wait().await;
        g.close().await.unwrap();
        match got {
            Ok(line) => assert_eq!(line.text, last, "{choice}"),
            Err(e) => panic!("{choice}: {e} (after {n} lines)"),
        }
    }
    suite.end().await;
}
