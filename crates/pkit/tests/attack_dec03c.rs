//! A hostile user against the upper layers (third pass of 2026-12-03):
//! pipelines, readiness probes, supervision. Every mechanism.

mod common;

use std::time::Duration;

use common::*;
use pkit::{
    Error, FileMode, NotReadyReason, Outcome, Pipe, Restart, Stdio, Supervisor, SupervisorEvent,
};

/// A readiness check that never answers (a connection nobody accepts nor
/// refuses, a health endpoint that hangs) against a process that exits:
/// the probe gives up as soon as the process has exited, saying so, not
/// at its deadline with "deadline". Before: the exit was looked at only
/// between checks, so a hanging check hid it until the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_readiness_check_does_not_hide_the_exit() {
    let suite = begin("a_hanging_readiness_check_does_not_hide_the_exit").await;
    for choice in mechanisms() {
        let mut p = sh(choice, "sleep 0.2; exit 3").start().unwrap();
        let pid = p.pid();
        // Longer than anything the test waits for otherwise: reaching it
        // is the failure.
        let patience = DEADLINE * 6;
        let err = p
            .wait_for(std::future::pending::<bool>, patience)
            .await
            .expect_err("the process exits, the check never passes");
        match err {
            Error::NotReady {
                reason: NotReadyReason::Exited(outcome),
                ..
            } => assert_eq!(outcome, Outcome::Exited(3), "{choice}"),
            other => panic!("{choice}: expected NotReady(Exited(3)), got {other:?}"),
        }
        // A check that is slow, not hung, and passes just after the exit
        // still counts (a server ready just before it went away).
        let mut p2 = sh(choice, "exit 0").start().unwrap();
        let pid2 = p2.pid();
        p2.wait_for(
            move || async move {
                // Passes only once the process has exited (a zombie counts):
                // the pass really comes across the exit.
                while !pid_gone(pid2) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                true
            },
            patience,
        )
        .await
        .expect("a check that passes is a pass, even across the exit");
        let out = p.wait().await.unwrap();
        assert_eq!(out.outcome(), Outcome::Exited(3), "{choice}");
        assert!(p2.wait().await.unwrap().success(), "{choice}");
        assert_gone(&[pid], "the probed process").await;
    }
    suite.end().await;
}

/// A stage whose stdin or stdout the chain replaces with its pipes: a
/// stage after the head with input of its own, a stage before the last
/// writing to a file, `/dev/null` or the parent's stdout. Before: the
/// chain silently dropped the stage's input (`cat` read the head's output,
/// not its bytes) and never created its file. Now the chain is refused
/// before anything starts; the head's input and the last stage's file are
/// still the chain's own and work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_whose_own_stdio_the_chain_would_replace_is_refused() {
    let suite = begin("a_stage_whose_own_stdio_the_chain_would_replace_is_refused").await;
    let dir = common::temp_path("attack-c-wiring");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("middle.out");
    for choice in mechanisms() {
        let bad = [
            (
                "stdin bytes after the head",
                2,
                Pipe::new([
                    cmd(choice, "echo").arg("from-head"),
                    cmd(choice, "cat").stdin_bytes("own input\n"),
                ]),
            ),
            (
                "stdin file after the head",
                3,
                Pipe::new([
                    cmd(choice, "echo").arg("from-head"),
                    cmd(choice, "cat"),
                    cmd(choice, "cat").stdin_file("/dev/null"),
                ]),
            ),
            (
                "stdout file before the last",
                1,
                Pipe::new([
                    cmd(choice, "echo")
                        .arg("x")
                        .stdout_file(&file, FileMode::Truncate),
                    cmd(choice, "cat"),
                ]),
            ),
            (
                "stdout null before the last",
                2,
                Pipe::new([
                    cmd(choice, "echo").arg("x"),
                    cmd(choice, "cat").stdout(Stdio::Null),
                    cmd(choice, "cat"),
                ]),
            ),
            (
                "stdout line callback before the last",
                1,
                Pipe::new([
                    cmd(choice, "echo").arg("x").on_stdout_line(|_| {}),
                    cmd(choice, "cat"),
                ]),
            ),
            (
                "stdout tee before the last",
                2,
                Pipe::new([
                    cmd(choice, "echo").arg("x"),
                    cmd(choice, "cat").stdout_tee_blocking(Vec::new()),
                    cmd(choice, "cat"),
                ]),
            ),
        ];
        for (what, stage, pipe) in bad {
            for started in [false, true] {
                let err = if started {
                    pipe.clone().stream_lines().start().map(drop).unwrap_err()
                } else {
                    pipe.output().await.map(drop).unwrap_err()
                };
                assert!(
                    matches!(&err, Error::InvalidInput(m) if m.contains(&format!("stage {stage} "))),
                    "{choice}: {what} (started: {started}): {err:?}"
                );
            }
        }
        assert!(!file.exists(), "{choice}: nothing was started");
        // The chain's own ends stay the caller's.
        let last = dir.join("last.out");
        let out = Pipe::new([cmd(choice, "cat"), cmd(choice, "tr").args(["a-z", "A-Z"])])
            .stdin_bytes("abc\n")
            .pipe(cmd(choice, "cat").stdout_file(&last, FileMode::Truncate))
            .output()
            .await
            .unwrap();
        assert!(out.success(), "{choice}: {out:?}");
        assert_eq!(std::fs::read_to_string(&last).unwrap(), "ABC\n", "{choice}");
        // A stage before the last may still send its stderr down the chain.
        let merged = Pipe::new([
            sh(choice, "echo out; echo err >&2").merge_stderr(),
            cmd(choice, "sort"),
        ])
        .run()
        .await
        .unwrap();
        assert_eq!(merged, "err\nout", "{choice}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    suite.end().await;
}

/// The pauses a supervisor reports (`BackingOff`), read to its end.
async fn pauses_of(mut handle: pkit::SupervisorHandle) -> Vec<Duration> {
    let mut pauses = Vec::new();
    while let Some(event) = tokio::time::timeout(DEADLINE, handle.next_event())
        .await
        .expect("an event in time")
    {
        if let SupervisorEvent::BackingOff(d) = event {
            pauses.push(d);
        }
    }
    handle.wait().await.expect("the supervision ends");
    pauses
}

/// `max_backoff` is "the longest pause between runs": it holds after the
/// jitter (a full jitter doubles a pause at the cap) and for the pause
/// after a clean run (`initial` above the cap), and pauses at the cap keep
/// their spread below it. Before: the jitter was applied after the cap, so
/// pauses of up to twice the cap were reported and slept, and a clean
/// run's `initial` was never capped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_supervisor_pause_exceeds_max_backoff() {
    let suite = begin("no_supervisor_pause_exceeds_max_backoff").await;
    let cap = Duration::from_millis(2);
    for choice in mechanisms() {
        // Crashes, each pause at the cap and jittered by up to 100 %
        // (twelve all at or below the cap by chance: 1 in 4096).
        let crashes = Supervisor::new(cmd(choice, "false"))
            .backoff(Duration::from_secs(60), 2.0)
            .max_backoff(cap)
            .jitter(1.0)
            .max_restarts(12)
            .start();
        // Clean runs, restarted always: the pause is `initial`.
        let clean = Supervisor::new(cmd(choice, "true"))
            .restart(Restart::Always)
            .backoff(Duration::from_secs(60), 1.0)
            .max_backoff(cap)
            .jitter(0.0)
            .max_restarts(3)
            .start();
        for (what, handle, runs) in [("crashes", crashes, 12), ("clean runs", clean, 3)] {
            let pauses = pauses_of(handle).await;
            assert_eq!(pauses.len(), runs, "{choice}: {what}: {pauses:?}");
            assert!(
                pauses.iter().all(|p| *p <= cap),
                "{choice}: {what}: a pause above the {cap:?} cap: {pauses:?}"
            );
            if what == "crashes" {
                // The jitter stays below the cap instead of being cut to
                // it: cut, about half the pauses would be exactly the cap
                // (supervisors restarting in step); folded back, next to
                // none is (12 pauses with at most one there by chance
                // when cut: 13 in 4096).
                let at_cap = pauses.iter().filter(|p| **p == cap).count();
                assert!(at_cap <= 1, "{choice}: jitter lost at the cap: {pauses:?}");
            }
        }
    }
    suite.end().await;
}

/// A failed program whose stderr holds terminal control sequences (a
/// window title, a screen clear, a carriage return that overwrites the
/// line with a fake verdict, a bell, a C1 CSI), a right-to-left override
/// and invalid UTF-8: the
/// error's message, as `?` and `anyhow` print it, quotes what it said
/// with every such character written out as an escape, so printing the
/// message can't act on the terminal. Line breaks stay (a CRLF's carriage
/// return is dropped); the bytes themselves stay in the carried `Output`.
/// Before: the message carried the raw bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_message_quotes_no_terminal_control_sequence() {
    let suite = begin("an_error_message_quotes_no_terminal_control_sequence").await;
    let script = r#"printf '\342\200\256\033]0;pwned\007\033[2Jfirst\r\nsecond\rall good\302\233\377\n' >&2; exit 4"#;
    for choice in mechanisms() {
        {
            let err = sh(choice, script).run().await.expect_err("exit 4");
            for text in [err.to_string(), err.diagnostic()] {
                assert!(
                    !text
                        .chars()
                        .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
                    "{choice}: a control character in {text:?}"
                );
                assert!(
                    text.contains(r"\u{202e}\u{1b}]0;pwned\u{7}\u{1b}[2Jfirst"),
                    "{choice}: {text:?}"
                );
                assert!(
                    text.contains("second\\rall good\\u{9b}\u{fffd}"),
                    "{choice}: {text:?}"
                );
                assert!(text.contains("first\nsecond"), "{choice}: {text:?}");
            }
            let out = err.into_output().expect("a failed run carries its output");
            assert!(
                out.stderr()
                    .starts_with("\u{202e}\x1b]0;pwned\x07".as_bytes()),
                "{choice}"
            );
            assert_eq!(out.outcome(), Outcome::Exited(4), "{choice}");
        }
    }
    suite.end().await;
}
