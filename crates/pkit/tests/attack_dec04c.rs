//! A hostile user of pkit (third pass of 2026-12-04): a group's end racing
//! a start whose child stops itself before its `exec` (a fresh group's
//! first start, so under a process group the start holds the leader's
//! mutex); and `run()`'s UTF-8 text for bytes at the validation batch's
//! boundary, odd bytes, a child ending mid-character, a timeout and a
//! cancellation mid-capture.
#![cfg(target_os = "linux")]

mod common;

use std::sync::mpsc;
use std::sync::Arc;

use common::*;
use pkit::{Command, MechanismChoice};

/// `sleep 300` whose `pre_exec` hook stops the child before its `exec`.
fn stops_before_exec() -> Command {
    // SAFETY: raise is async-signal-safe; the hook allocates nothing.
    unsafe {
        Command::new("sleep").arg("300").pre_exec(|| {
            libc::raise(libc::SIGSTOP);
            Ok(())
        })
    }
}

fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// A fresh group's first start, its child stopping itself before its
/// `exec`, and `end` (a `close` or a `kill` then a `close`) called at once
/// from another thread, so that it may come before the child is born or
/// has joined its container: both return, and the child is gone.
fn race(choice: MechanismChoice, rounds: usize, end: &str) {
    for round in 0..rounds {
        let what = format!("{choice} {end} round {round}");
        let g = Arc::new(
            pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice))
                .unwrap_or_else(|e| panic!("{what}: building a group: {e}")),
        );
        let gs = g.clone();
        let starting = on_thread(move || gs.start(&stops_before_exec()).map(|p| p.pid()));
        let gc = g.clone();
        let kill = end == "kill";
        let ending = on_thread(move || {
            if kill {
                gc.kill()?;
            }
            gc.close()
        });
        let ended = ending.recv_timeout(DEADLINE * 2);
        let started = starting.recv_timeout(DEADLINE * 2);
        if ended.is_err() || started.is_err() {
            // Unstick the stopped child (its pid unknown: every stopped
            // child of ours), so the test fails instead of hanging.
            for (pid, s) in own_children() {
                if s.is_some_and(|s| s.state == 'T') {
                    kill_pid(pid);
                }
            }
            panic!("{what}: the end hangs ({ended:?}) or the start does ({started:?})");
        }
        ended
            .unwrap()
            .unwrap_or_else(|e| panic!("{what}: the end: {e}"));
        // Refused, killed before its exec (a spawn error), or started and
        // then killed: never left running.
        if let Ok(Ok(pid)) = started {
            let deadline = std::time::Instant::now() + DEADLINE;
            while !pid_gone(pid) {
                assert!(std::time::Instant::now() < deadline, "{what}: {pid} runs");
                std::thread::sleep(POLL);
            }
        }
    }
}

#[test]
fn a_close_racing_a_first_start_whose_child_stops_ends_both() {
    in_suite(
        "a_close_racing_a_first_start_whose_child_stops_ends_both",
        || {
            for choice in mechanisms() {
                if skip_on_portable(choice, "the portable backend runs no pre_exec hook") {
                    continue;
                }
                race(choice, 1000, "close");
            }
        },
    );
}

#[test]
fn a_kill_racing_a_first_start_whose_child_stops_ends_both() {
    in_suite(
        "a_kill_racing_a_first_start_whose_child_stops_ends_both",
        || {
            for choice in mechanisms() {
                if skip_on_portable(choice, "the portable backend runs no pre_exec hook") {
                    continue;
                }
                race(choice, 1000, "kill");
            }
        },
    );
}

/// What `run()` must give for `bytes`: the lossy text without its
/// trailing line endings.
fn expected(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.trim_end_matches(['\n', '\r']).to_owned()
}

/// `run()`'s text for odd bytes: a character cut exactly at the 32 KiB
/// batch its capture validates at a time (and one byte either side), NUL
/// bytes, an overlong encoding, a surrogate, a character cut short at the
/// very end; through the async verb, a group's `run` in each mechanism and
/// the blocking facade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_text_at_the_batch_boundary_and_odd_bytes() {
    let suite = begin("run_text_at_the_batch_boundary_and_odd_bytes").await;
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for at in [32 * 1024 - 2, 32 * 1024 - 1, 32 * 1024, 64 * 1024 - 3] {
        for ch in ["é", "€", "😀"] {
            let mut b = vec![b'a'; at];
            b.extend_from_slice(ch.as_bytes());
            b.extend_from_slice(&vec![b'b'; 40 * 1024]);
            cases.push(b.clone());
            // cut short, at the end of the first batch
            b.truncate(at + ch.len() - 1);
            cases.push(b);
        }
    }
    let mut nul = b"a\0b".repeat(50_000);
    nul.push(0);
    cases.push(nul);
    for bad in [
        &b"\xc0\xaf"[..],
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xf0\x9f\x98",
    ] {
        for at in [0, 32 * 1024 - 1, 100_000] {
            let mut b = "é".repeat(at / 2).into_bytes();
            b.extend_from_slice(bad);
            b.extend_from_slice("x€".repeat(30_000).as_bytes());
            cases.push(b.clone());
            b.truncate(b.len() - 30_000 * 4);
            b.extend_from_slice(bad);
            cases.push(b);
        }
    }
    for (i, bytes) in cases.iter().enumerate() {
        let file = TempPath::new("run-text-attack");
        std::fs::write(file.path(), bytes).expect("write");
        let want = expected(bytes);
        let got = Command::new("cat")
            .arg(file.path())
            .run()
            .await
            .expect("cat");
        assert!(got == want, "case {i}: run() gave {} bytes", got.len());
        for choice in mechanisms() {
            let got = group(choice)
                .run(&Command::new("cat").arg(file.path()))
                .await
                .expect("cat");
            assert!(got == want, "case {i}, {choice}: Group::run");
        }
        let path = file.path().to_owned();
        let got = std::thread::spawn(move || Command::new("cat").arg(path).blocking().run())
            .join()
            .expect("the thread")
            .expect("cat");
        assert!(got == want, "case {i}: blocking run()");
    }
    suite.end().await;
}

/// A child that exits mid-character after a big output; a timeout that
/// fires while `run()` captures a stream that never ends; `run()`
/// dropped while it captures: the text is lossy-exact, the timeout an
/// error, and no process of either is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_text_cut_by_exit_timeout_and_drop() {
    let suite = begin("run_text_cut_by_exit_timeout_and_drop").await;
    for choice in mechanisms() {
        // Exits after the first two bytes of a 4-byte character.
        let got = sh(
            choice,
            "head -c 100000 /dev/zero | tr '\\0' 'a'; printf '\\360\\237'; exit 0",
        )
        .run()
        .await
        .expect("sh");
        let mut bytes = vec![b'a'; 100_000];
        bytes.extend_from_slice(b"\xf0\x9f");
        assert!(got == expected(&bytes), "{choice}: exit mid-character");

        // Never-ending output of 4-byte characters, timed out.
        let pids = TempPath::new("run-text-timeout");
        let err = sh(
            choice,
            "echo $$ > \"$1\"; while :; do printf '\\360\\237\\230\\200'; done",
        )
        .arg(pids.path())
        .timeout(std::time::Duration::from_millis(500))
        .run()
        .await
        .expect_err("timed out");
        assert!(err.is_timeout(), "{choice}: {err:?}");
        let pid = pid_in_file(&pids, "the timed-out writer").await;
        assert_gone(&[pid], "the timed-out writer").await;

        // Dropped (cancelled) while capturing.
        let pids = TempPath::new("run-text-drop");
        let endless = sh(choice, "echo $$ > \"$1\"; yes 'é€😀'").arg(pids.path());
        let cut = tokio::time::timeout(std::time::Duration::from_millis(500), endless.run()).await;
        assert!(cut.is_err(), "{choice}: the endless run ended");
        let pid = pid_in_file(&pids, "the dropped writer").await;
        assert_gone(&[pid], "the dropped writer").await;
    }
    suite.end().await;
}

/// The blocking facade's `run()` from a plain thread: a timeout firing
/// while it captures an endless stream of 4-byte characters is an error
/// and ends the writer; a child that exits mid-character while a
/// grandchild still holds its stdout gives the lossy text and leaves no
/// grandchild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_run_text_timeout_and_a_grandchild_holding_stdout() {
    let suite = begin("blocking_run_text_timeout_and_a_grandchild_holding_stdout").await;
    for choice in mechanisms() {
        let pids = TempPath::new("blocking-run-timeout");
        let endless = sh(
            choice,
            "echo $$ > \"$1\"; while :; do printf '\\360\\237\\230\\200'; done",
        )
        .arg(pids.path())
        .timeout(std::time::Duration::from_millis(500));
        let err = std::thread::spawn(move || endless.blocking().run())
            .join()
            .expect("the thread")
            .expect_err("timed out");
        assert!(err.is_timeout(), "{choice}: {err:?}");
        let pid = pid_in_file(&pids, "the timed-out writer").await;
        assert_gone(&[pid], "the timed-out writer").await;

        let pids = TempPath::new("blocking-run-grandchild");
        let script = "sleep 300 & echo $! > \"$1\"; printf 'ok \\360\\237'; exit 0";
        let left = sh(choice, script).arg(pids.path());
        let got = std::thread::spawn(move || left.blocking().run())
            .join()
            .expect("the thread")
            .expect("sh");
        assert_eq!(got, "ok \u{FFFD}", "{choice}");
        let pid = pid_in_file(&pids, "the grandchild").await;
        assert_gone(&[pid], "the grandchild").await;
    }
    suite.end().await;
}

/// 100 MiB of 2-byte characters, the last one cut short, through the
/// async verb and the blocking facade: the exact lossy text.
///
/// Alone in this binary (`begin_alone_in_binary`): its texts make this
/// process some hundreds of MiB large for a while, and every start with a
/// `pre_exec` hook (the race tests above: 1000 a mechanism) forks a copy
/// of it; beside it those races took 74 s instead of 14 (all six tests at
/// once, eight test threads). Nothing it checks is another process's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_text_of_100_mib() {
    let alone = begin_alone_in_binary().await;
    let script = "yes 'éééééééééééééééééééééééééééééééééééééééééééééééé' | head -c 104857599";
    let got = Command::new("sh")
        .args(["-c", script])
        .run()
        .await
        .expect("sh");
    let line = format!("{}\n", "é".repeat(48));
    let mut want = line.repeat(104_857_599 / line.len() + 1).into_bytes();
    want.truncate(104_857_599);
    let want = expected(&want);
    assert!(
        got.len() == want.len() && got == want,
        "run() gave {} bytes",
        got.len()
    );
    drop(got);
    let got = std::thread::spawn(move || Command::new("sh").args(["-c", script]).blocking().run())
        .join()
        .expect("the thread")
        .expect("sh");
    assert!(got == want, "blocking run() gave {} bytes", got.len());
    drop((got, want));
    end_exclusive(alone, "run_text_of_100_mib").await;
}
