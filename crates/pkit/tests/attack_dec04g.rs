//! Attack round dec04g: a hostile or careless user of the upper layers
//! (retries, supervision, errors' messages), with real processes.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, StopReason, Supervisor, SupervisorEvent};

/// What the secret argument is in these tests.
const TOKEN: &str = "tok-s3cret-4711";

/// A failing tool that quotes its argument on stderr (as `curl -v` shows
/// the header it sends, or a CLI says "invalid token: ..."): an error's
/// message quotes the tail of stderr, and before the fix that tail showed
/// the argument passed with `secret_arg` ("never shows or records") in
/// the error's `Display` and its `diagnostic()`, of a command and of a
/// pipeline whose last stage quotes an earlier stage's secret argument. The rest of the tail is still quoted, with `<secret>` in the
/// argument's place, and the `Output` the error carries keeps the bytes.
#[tokio::test]
async fn a_secret_argument_echoed_on_stderr_is_not_in_the_error_message() {
    let suite = begin("a_secret_argument_echoed_on_stderr_is_not_in_the_error_message").await;
    for choice in mechanisms() {
        let script = r#"echo "denied: bad token $1 (try again)" >&2; exit 3"#;
        let err = sh(choice, script)
            .secret_arg(TOKEN)
            .run()
            .await
            .expect_err("exit 3 fails run()");
        let shown = [
            err.to_string(),
            format!("{err:#}"),
            format!("{err:?}"),
            err.diagnostic(),
        ];
        for text in &shown {
            assert!(!text.contains(TOKEN), "{choice}: the secret in {text:?}");
        }
        assert!(
            shown[0].contains("denied: bad token <secret> (try again)"),
            "{choice}: the tail is still quoted, the argument replaced: {:?}",
            shown[0]
        );
        let out = err.output().expect("a failed run carries its output");
        assert!(
            out.stderr_str().contains(TOKEN),
            "{choice}: the carried output keeps the bytes"
        );
    }
    // A pipeline (the process-wide mechanism): a stage's secret argument,
    // quoted by the last stage.
    let plain = |script: &str| Command::new("sh").args(["-c", script, "sh"]);
    let err = plain(r#"echo "$1""#)
        .secret_arg(TOKEN)
        .pipe(plain(r#"read t; echo "refused $t" >&2; exit 4"#))
        .run()
        .await
        .expect_err("the last stage fails");
    for text in [err.to_string(), err.diagnostic()] {
        assert!(!text.contains(TOKEN), "pipeline: the secret in {text:?}");
    }
    assert!(err.to_string().contains("refused <secret>"), "{err}");
    suite.end().await;
}

/// The same through `json_lines` (feature `json`), whose stream ends
/// with the run's error: the secret argument echoed on stderr is
/// `<secret>` in it.
#[cfg(feature = "json")]
#[tokio::test]
async fn json_lines_error_leaves_out_a_secret_argument_echoed_on_stderr() {
    let suite = begin("json_lines_error_leaves_out_a_secret_argument_echoed_on_stderr").await;
    let mut lines = Command::new("sh")
        .args(["-c", r#"echo 1; echo "denied: $1" >&2; exit 4"#, "sh"])
        .secret_arg(TOKEN)
        .json_lines::<u32>()
        .expect("start");
    assert_eq!(lines.next().await.expect("item").expect("1"), 1);
    let err = lines.next().await.expect("the error").expect_err("failed");
    assert!(!err.to_string().contains(TOKEN), "{err}");
    assert!(err.to_string().ends_with("denied: <secret>"), "{err}");
    suite.end().await;
}

/// `backoff(Duration::ZERO, factor)` asks for no pause at all, whatever
/// the factor. Before the fix the pause was `0 × factor^n`, and once
/// `factor^n` overflowed to infinity (after two crashes with a factor of
/// 1e200, after 1024 with a factor of 2) `0 × ∞` is NaN, which the cap
/// took for "too long": every later pause was `max_backoff` (here an
/// hour). Each pause announced must be zero.
#[tokio::test]
async fn a_zero_initial_backoff_stays_zero_however_large_the_factor() {
    let suite = begin("a_zero_initial_backoff_stays_zero_however_large_the_factor").await;
    for choice in mechanisms() {
        let mut handle = Supervisor::new(sh(choice, "exit 1"))
            .mechanism(choice)
            .backoff(Duration::ZERO, 1e200)
            .max_backoff(Duration::from_secs(3600))
            .jitter(0.0)
            .max_restarts(5)
            .start();
        let mut pauses = Vec::new();
        loop {
            let ev = tokio::time::timeout(DEADLINE * 3, handle.next_event())
                .await
                .expect("events keep coming")
                .expect("the stream ends after Stopped");
            match ev {
                SupervisorEvent::BackingOff(d) => {
                    pauses.push(d);
                    assert_eq!(d, Duration::ZERO, "{choice}: pauses so far {pauses:?}");
                }
                SupervisorEvent::Stopped(why) => {
                    assert_eq!(why, StopReason::RestartsExhausted, "{choice}");
                    break;
                }
                _ => {}
            }
        }
        assert_eq!(pauses.len(), 5, "{choice}: {pauses:?}");
        let out = handle.wait().await.expect("supervised");
        assert_eq!(out.restarts, 5, "{choice}");
    }
    suite.end().await;
}

/// Every failed attempt of a retried `run()` leaves a background
/// grandchild (its output sent elsewhere, so the pipes close): each is
/// gone by the time the verb returns its last error, not only the last
/// attempt's. The retry path's per-attempt teardown had no test.
#[tokio::test]
async fn every_retried_attempt_leaves_no_grandchild() {
    let suite = begin("every_retried_attempt_leaves_no_grandchild").await;
    for choice in mechanisms() {
        let pids = TempPath::new("retry-grandchildren");
        let err = sh(
            choice,
            r#"sleep 300 >/dev/null 2>&1 </dev/null & echo $! >> "$1"; exit 5"#,
        )
        .arg(pids.as_str())
        .retry(3, Duration::from_millis(5), |e| e.is_non_zero_exit())
        .run()
        .await
        .expect_err("every attempt fails");
        assert!(err.is_non_zero_exit(), "{choice}: {err}");
        let pids = pid_lines(&std::fs::read_to_string(pids.path()).unwrap());
        assert_eq!(
            pids.len(),
            3,
            "{choice}: three attempts, three grandchildren"
        );
        let _cleanup = KillOnDrop::new(pids.clone());
        assert_gone(&pids, &format!("{choice}: the attempts' grandchildren")).await;
    }
    suite.end().await;
}

/// A retried command whose stdin is a `stdin_reader` (read once): the
/// first attempt takes the reader, so no later attempt can be fed the same
/// input. Before the fix the retry went on, the second attempt failed
/// before spawning ("its stdin reader was already consumed by an earlier
/// run", `InvalidInput`), and that was the error returned: the run's real
/// failure (its exit code and stderr) was lost. Now an attempt that took
/// the reader is the last one, and its error is returned.
#[tokio::test]
async fn a_retry_does_not_replace_the_real_failure_with_a_spent_stdin_reader() {
    let suite = begin("a_retry_does_not_replace_the_real_failure_with_a_spent_stdin_reader").await;
    for choice in mechanisms() {
        let counter = TempPath::new("retry-reader");
        let err = sh(
            choice,
            r#"echo x >> "$1"; c=$(cat | wc -c); echo "read $c bytes, failing" >&2; exit 6"#,
        )
        .arg(counter.as_str())
        .stdin_reader(std::io::Cursor::new(b"hello\n".to_vec()))
        .retry(3, Duration::from_millis(5), |e| e.is_non_zero_exit())
        .run()
        .await
        .expect_err("the attempt fails");
        assert!(err.is_non_zero_exit(), "{choice}: {err}");
        assert!(err.to_string().contains("read 6 bytes"), "{choice}: {err}");
        let attempts = std::fs::read_to_string(counter.path()).unwrap();
        assert_eq!(attempts.lines().count(), 1, "{choice}: one attempt");
    }
    suite.end().await;
}

/// `Command`'s `Debug` shows no argument (secret or not) and no
/// environment value; nor does a `CliClient`'s. (Passing: kept because no
/// test looked at `env` values in `Command`'s `Debug`.)
#[test]
fn debug_of_a_command_shows_no_argument_or_environment_value() {
    let cmd = Command::new("tool")
        .arg("--user=alice-visible")
        .secret_arg(TOKEN)
        .env("API_KEY", "envval-s3cret-99");
    let shown = format!("{cmd:?} {cmd:#?}");
    for secret in [TOKEN, "envval-s3cret-99", "alice-visible"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    let client = pkit::CliClient::new("tool")
        .arg("--token=cli-s3cret")
        .append_env("API_KEY", "envval-s3cret-99");
    let shown = format!("{client:?} {:?}", client.command(["x"]));
    for secret in ["cli-s3cret", "envval-s3cret-99"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

/// A supervised command whose stdin is a `stdin_reader` (read by one run):
/// a restart could not feed it. Before, the first restart failed to start
/// ("its stdin reader was already consumed", `InvalidInput`), the
/// supervision stopped with `CannotStart`, and the crashed run's output
/// was lost. Now such a supervisor is refused before anything starts
/// (as one of a command with a retry policy is), unless its policy is
/// `Restart::Never`, whose one run reads the reader.
#[tokio::test]
async fn a_supervisor_that_could_restart_refuses_a_stdin_reader() {
    let suite = begin("a_supervisor_that_could_restart_refuses_a_stdin_reader").await;
    for choice in mechanisms() {
        let marker = TempPath::new("sup-reader");
        let reader = || std::io::Cursor::new(b"hello\n".to_vec());
        let script = r#"echo x >> "$1"; c=$(cat | wc -c); echo "read $c"; exit 5"#;
        for restart in [pkit::Restart::OnCrash, pkit::Restart::Always] {
            let err = Supervisor::new(
                sh(choice, script)
                    .arg(marker.as_str())
                    .stdin_reader(reader()),
            )
            .restart(restart)
            .mechanism(choice)
            .backoff(Duration::from_millis(5), 1.0)
            .run()
            .await
            .expect_err("refused");
            assert!(
                matches!(err, pkit::Error::InvalidInput(_)),
                "{choice} {restart:?}: {err}"
            );
            assert!(err.to_string().contains("stdin_reader"), "{choice}: {err}");
        }
        assert!(!marker.path().exists(), "{choice}: nothing may start");
        let outcome = Supervisor::new(
            sh(choice, script)
                .arg(marker.as_str())
                .stdin_reader(reader()),
        )
        .restart(pkit::Restart::Never)
        .mechanism(choice)
        .run()
        .await
        .expect("one run");
        let out = outcome.final_output.expect("the run's output");
        assert_eq!(out.code(), Some(5), "{choice}");
        assert_eq!(out.stdout_str().trim(), "read 6", "{choice}");
    }
    suite.end().await;
}
