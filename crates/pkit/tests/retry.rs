//! `Command::retry`: attempts counted through a counter file kept by the
//! script itself, the classifier's veto, cancellation during a pause, and
//! stdin replayed to every attempt.

mod common;

use std::time::Duration;

use common::*;
use pkit::{CancelToken, ErrorKind};

/// Counts its runs in the file `$1`; succeeds (printing `ok-<n>`) from run
/// `$2` on, exits `$3` before.
const FLAKY: &str = r#"n=$(cat "$1" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1"; if [ $n -ge "$2" ]; then echo ok-$n; exit 0; fi; exit "$3""#;

/// The runs counted so far; 0 while there is no file yet or while a run
/// is rewriting it (`echo $n > file` truncates it first: a poll can read
/// it empty).
fn runs(counter: &TempPath) -> u32 {
    std::fs::read_to_string(counter.path())
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_flaky_run_is_replayed_until_it_succeeds() {
    let suite = begin("a_flaky_run_is_replayed_until_it_succeeds").await;
    for choice in mechanisms() {
        let counter = TempPath::new("flaky");
        let got = sh(choice, FLAKY)
            .args([counter.as_str(), "3", "7"])
            .retry(5, Duration::from_millis(10), |e| e.is_non_zero_exit())
            .run()
            .await
            .expect("third attempt succeeds");
        assert_eq!(got, "ok-3", "{choice}");
        assert_eq!(runs(&counter), 3, "{choice}: exactly three attempts");

        // exit_code and probe retry too.
        let counter = TempPath::new("flaky-code");
        let code = sh(choice, FLAKY)
            .args([counter.as_str(), "2", "7"])
            .retry(5, Duration::from_millis(10), |e| e.is_non_zero_exit())
            .exit_code()
            .await;
        // exit_code returns a non-zero code as a value: no retry.
        assert_eq!(code.unwrap(), 7, "{choice}");
        assert_eq!(runs(&counter), 1, "{choice}");
        let counter = TempPath::new("flaky-probe");
        let yes = sh(choice, FLAKY)
            .args([counter.as_str(), "2", "5"])
            .retry(5, Duration::from_millis(10), |e| e.is_non_zero_exit())
            .probe()
            .await
            .expect("second attempt answers");
        assert!(yes, "{choice}");
        assert_eq!(runs(&counter), 2, "{choice}");
    }
    suite.end().await;
}

#[tokio::test]
async fn the_budget_bounds_the_attempts_and_the_last_error_is_returned() {
    let suite = begin("the_budget_bounds_the_attempts_and_the_last_error_is_returned").await;
    for choice in mechanisms() {
        let counter = TempPath::new("budget");
        let err = sh(choice, FLAKY)
            .args([counter.as_str(), "100", "7"])
            .retry(3, Duration::from_millis(5), |_| true)
            .run()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NonZeroExit, "{choice}: {err:?}");
        assert_eq!(err.output().unwrap().code(), Some(7));
        assert_eq!(runs(&counter), 3, "{choice}: at most three attempts");

        // output() is not retried: a failed run is data there.
        let counter = TempPath::new("budget-output");
        let out = sh(choice, FLAKY)
            .args([counter.as_str(), "100", "7"])
            .retry(3, Duration::from_millis(5), |_| true)
            .output()
            .await
            .unwrap();
        assert_eq!(out.code(), Some(7), "{choice}");
        assert_eq!(runs(&counter), 1, "{choice}: output() ran once");

        // Zero attempts means one.
        let counter = TempPath::new("budget0");
        sh(choice, FLAKY)
            .args([counter.as_str(), "100", "7"])
            .retry(0, Duration::from_millis(5), |_| true)
            .run()
            .await
            .unwrap_err();
        assert_eq!(runs(&counter), 1, "{choice}");
    }
    suite.end().await;
}

#[tokio::test]
async fn a_failure_the_classifier_rejects_stops_at_once() {
    let suite = begin("a_failure_the_classifier_rejects_stops_at_once").await;
    for choice in mechanisms() {
        let counter = TempPath::new("reject");
        let err = sh(choice, FLAKY)
            .args([counter.as_str(), "100", "9"])
            .retry(5, Duration::from_millis(5), |e| {
                e.output().and_then(|o| o.code()) == Some(7)
            })
            .run()
            .await
            .unwrap_err();
        assert_eq!(err.output().unwrap().code(), Some(9), "{choice}");
        assert_eq!(runs(&counter), 1, "{choice}: not retried");

        // A missing program is not transient.
        let err = cmd(choice, "/nonexistent/pkit-retry")
            .retry(5, Duration::from_millis(5), pkit::is_transient)
            .run()
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_during_a_pause_is_terminal() {
    let suite = begin("cancellation_during_a_pause_is_terminal").await;
    for choice in mechanisms() {
        // Through the token.
        let counter = TempPath::new("cancel");
        let token = CancelToken::new();
        let cmd = sh(choice, FLAKY)
            .args([counter.as_str(), "100", "7"])
            .cancel_token(&token)
            .retry(10, Duration::from_secs(300), |_| true);
        let run = tokio::spawn(async move { cmd.run().await });
        poll_until(|| runs(&counter) == 1, "the first attempt").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        token.cancel();
        let err = tokio::time::timeout(DEADLINE, run)
            .await
            .expect("cancellation ends the pause")
            .unwrap()
            .unwrap_err();
        assert!(err.is_cancelled(), "{choice}: {err:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(runs(&counter), 1, "{choice}: no attempt after cancellation");

        // By dropping the future.
        let counter = TempPath::new("drop");
        let cmd = sh(choice, FLAKY)
            .args([counter.as_str(), "100", "7"])
            .retry(10, Duration::from_secs(300), |_| true);
        // Dropped once the first attempt has run and the pause began (a
        // fixed timeout could fire before the first attempt on a loaded box).
        let run = tokio::spawn(async move { cmd.run().await });
        poll_until(|| runs(&counter) == 1, "the first attempt").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!run.is_finished(), "{choice}: still pausing");
        run.abort();
        assert!(run.await.unwrap_err().is_cancelled());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(runs(&counter), 1, "{choice}");

        // A cancelled attempt is never retried.
        let counter = TempPath::new("cancel-attempt");
        let token = CancelToken::new();
        let cmd = sh(choice, r#"echo 1 >> "$1"; sleep 300"#)
            .arg(counter.as_str())
            .cancel_token(&token)
            .retry(10, Duration::from_millis(1), |_| true);
        let run = tokio::spawn(async move { cmd.run().await });
        // `>>` creates the file before `echo` writes: wait for the line.
        poll_until(
            || std::fs::read_to_string(counter.path()).is_ok_and(|s| s.lines().count() == 1),
            "the attempt",
        )
        .await;
        token.cancel();
        let err = run.await.unwrap().unwrap_err();
        assert!(err.is_cancelled(), "{choice}: {err:?}");
        let lines = std::fs::read_to_string(counter.path()).unwrap();
        assert_eq!(lines.lines().count(), 1, "{choice}");
    }
    suite.end().await;
}

#[tokio::test]
async fn stdin_bytes_are_replayed_identically() {
    let suite = begin("stdin_bytes_are_replayed_identically").await;
    for choice in mechanisms() {
        let counter = TempPath::new("stdin-count");
        let seen = TempPath::new("stdin-seen");
        let payload: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        let script = format!(r#"cat > "$4.$(cat "$1" 2>/dev/null || echo 0)"; {FLAKY}"#);
        let got = sh(choice, &script)
            .args([counter.as_str(), "3", "7", seen.as_str()])
            .stdin_bytes(payload.clone())
            .retry(5, Duration::from_millis(5), |e| e.is_non_zero_exit())
            .retry_jitter(0.5)
            .run()
            .await
            .expect("third attempt");
        assert_eq!(got, "ok-3");
        for n in 0..3 {
            let path = format!("{}.{n}", seen.as_str());
            let bytes = std::fs::read(&path).unwrap();
            let _ = std::fs::remove_file(&path);
            assert!(bytes == payload, "{choice}: attempt {n} read other bytes");
        }
    }
    suite.end().await;
}

#[tokio::test]
async fn exit_code_and_probe_replay_timeouts_and_every_pause_is_waited() {
    let suite = begin("exit_code_and_probe_replay_timeouts_and_every_pause_is_waited").await;
    // Hangs (and times out) on the first two runs, then exits `$2`.
    let hang_twice = r#"n=$(cat "$1" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1"; [ $n -ge 3 ] || exec sleep 300; exit "$2""#;
    let pause = Duration::from_millis(150);
    // The third attempt (a shell reading and writing its counter) must end
    // within the timeout too: 1 s, not less, for a loaded machine.
    let limit = Duration::from_secs(1);
    for choice in mechanisms() {
        let counter = TempPath::new("timeout-code");
        let began = std::time::Instant::now();
        let code = sh(choice, hang_twice)
            .args([counter.as_str(), "4"])
            .timeout(limit)
            .grace(Duration::from_millis(50))
            .retry(5, pause, |e| e.is_timeout())
            .exit_code()
            .await
            .expect("the third attempt exits");
        assert_eq!(code, 4, "{choice}");
        assert_eq!(runs(&counter), 3, "{choice}");
        // Two pauses were waited in full (a lower bound only: never a
        // speed assertion).
        assert!(
            began.elapsed() >= pause * 2,
            "{choice}: {:?}",
            began.elapsed()
        );

        let counter = TempPath::new("timeout-probe");
        let yes = sh(choice, hang_twice)
            .args([counter.as_str(), "1"])
            .timeout(limit)
            .grace(Duration::from_millis(50))
            .retry(5, Duration::from_millis(5), |e| e.is_timeout())
            .probe()
            .await
            .expect("the third attempt answers");
        assert!(!yes, "{choice}");
        assert_eq!(runs(&counter), 3, "{choice}");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_transient_spawn_failure_is_retried() {
    let suite = begin("a_real_transient_spawn_failure_is_retried").await;
    for choice in mechanisms() {
        // An executable still open for writing can't be run: ETXTBSY.
        let exe = TempPath::new("txtbsy");
        let writer = {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o755)
                .open(exe.path())
                .unwrap();
            f.write_all(b"#!/bin/sh\necho ran\n").unwrap();
            f
        };
        let err = cmd(choice, exe.as_str()).run().await.unwrap_err();
        assert!(pkit::is_transient(&err), "{choice}: {err:?}");

        // Retried: the writer closes during the pause, the next try runs.
        let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let seen = attempts.clone();
        let mut writer = Some(writer);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let closer = std::thread::spawn(move || {
            rx.recv().unwrap();
            drop(writer.take());
        });
        let got = cmd(choice, exe.as_str())
            .retry(50, Duration::from_millis(20), move |e| {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = tx.send(());
                pkit::is_transient(e)
            })
            .run()
            .await
            .expect("runs once the writer is gone");
        closer.join().unwrap();
        assert_eq!(got, "ran", "{choice}");
        assert!(
            attempts.load(std::sync::atomic::Ordering::SeqCst) >= 1,
            "{choice}: the first try failed"
        );
    }
    suite.end().await;
}

#[test]
fn is_transient_knows_the_temporary_spawn_failures() {
    let spawn = |errno| pkit::Error::Spawn {
        program: "x".into(),
        source: std::io::Error::from_raw_os_error(errno),
    };
    for errno in [
        libc::EAGAIN,
        libc::ENOMEM,
        libc::ETXTBSY,
        libc::EMFILE,
        libc::ENFILE,
        libc::EINTR,
    ] {
        assert!(pkit::is_transient(&spawn(errno)), "{errno}");
    }
    for errno in [
        libc::EACCES,
        libc::ENOENT,
        libc::ENOEXEC,
        libc::E2BIG,
        0,
        -1,
    ] {
        assert!(!pkit::is_transient(&spawn(errno)), "{errno}");
    }
    assert!(!pkit::is_transient(&pkit::Error::Cancelled {
        program: "x".into()
    }));
}

async fn poll_until(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "{what} never came");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backoff_too_long_to_jitter_is_capped_not_a_panic() {
    let suite = begin("a_backoff_too_long_to_jitter_is_capped_not_a_panic").await;
    // The jitter's factor is random (above 1, which overflows, half the
    // time): a few tries.
    for choice in mechanisms().into_iter().flat_map(|c| [c; 4]) {
        let counter = TempPath::new("huge-backoff");
        let cmd = sh(choice, FLAKY)
            .args([counter.as_str(), "100", "7"])
            .retry(3, Duration::MAX, |_| true)
            .retry_jitter(0.5);
        let run = tokio::spawn(async move { cmd.run().await });
        poll_until(|| runs(&counter) == 1, "the first attempt").await;
        // Long enough for the pause to be computed (a panic ends the task).
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!run.is_finished(), "{choice}: still pausing");
        run.abort();
        assert!(run.await.unwrap_err().is_cancelled(), "{choice}: no panic");
        assert_eq!(runs(&counter), 1, "{choice}");
    }
    suite.end().await;
}
