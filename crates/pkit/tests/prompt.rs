//! RunningProcess::wait_for_prompt: output without a line ending (a
//! prompt) is seen while the process waits for its answer; each prompt is
//! matched once; lines stay for the line stream. Both mechanisms.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, ErrorKind, NotReadyReason, Outcome};
use tokio::io::AsyncWriteExt;

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn prompts_are_seen_and_matched_once() {
    let suite = begin("prompts_are_seen_and_matched_once").await;
    let script = r#"echo hello; printf 'User: '; read u; printf 'Pass'; sleep 0.2; printf 'word: '; read p; echo "$u:${#p}""#;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", script])
                    .stdin_piped()
                    .stream_lines(),
            )
            .expect("start");
        let user = p
            .wait_for_prompt(|t| t.ends_with(": "), T)
            .await
            .expect("user prompt");
        assert_eq!(user, "User: ", "{choice}");
        // The same prompt is not matched twice: nothing new until answered.
        let err = p
            .wait_for_prompt(|_| true, Duration::from_millis(300))
            .await
            .expect_err("no new prompt");
        assert!(
            matches!(
                &err,
                pkit::Error::NotReady {
                    reason: NotReadyReason::Deadline(_),
                    ..
                }
            ),
            "{choice}: {err}"
        );
        p.stdin()
            .expect("piped")
            .write_all(b"ada\n")
            .await
            .expect("write");
        // Written in two pieces: matched whole.
        let pass = p
            .wait_for_prompt(|t| t == "Password: ", T)
            .await
            .expect("password prompt");
        assert_eq!(pass, "Password: ");
        p.stdin()
            .expect("piped")
            .write_all(b"secret\n")
            .await
            .expect("write");
        // The lines were left for the stream, prompts and all.
        let mut lines = p.lines();
        let mut texts = Vec::new();
        while let Some(l) = lines.next_line().await {
            texts.push(l.text);
        }
        assert_eq!(texts, ["hello", "User: Password: ada:6"], "{choice}");
        assert_eq!(p.wait().await.expect("wait").outcome(), Outcome::Exited(0));
    }
    suite.end().await;
}

#[tokio::test]
async fn a_prompt_on_stderr_and_the_give_ups() {
    let suite = begin("a_prompt_on_stderr_and_the_give_ups").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(
                &Command::new("sh")
                    .args([
                        "-c",
                        "printf 'Continue? [y/n] ' >&2; read a; [ \"$a\" = y ]",
                    ])
                    .stdin_piped()
                    .stream_lines(),
            )
            .expect("start");
        let q = p
            .wait_for_prompt(|t| t.contains("[y/n]"), T)
            .await
            .expect("prompt");
        assert_eq!(q, "Continue? [y/n] ", "{choice}");
        p.stdin()
            .expect("piped")
            .write_all(b"y\n")
            .await
            .expect("write");
        assert!(p.wait().await.expect("wait").success(), "{choice}");

        // Exits without the prompt: NotReady with the outcome.
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "printf 'no'; exit 4"])
                    .stream_lines(),
            )
            .expect("start");
        let err = p
            .wait_for_prompt(|t| t == "never", T)
            .await
            .expect_err("exits first");
        assert!(
            matches!(
                &err,
                pkit::Error::NotReady {
                    reason: NotReadyReason::Exited(Outcome::Exited(4)),
                    ..
                }
            ),
            "{choice}: {err}"
        );
        // A process that keeps waiting, and a deadline.
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "printf 'a> '; sleep 300"])
                    .stream_lines(),
            )
            .expect("start");
        let err = p
            .wait_for_prompt(|t| t == "b> ", Duration::from_millis(400))
            .await
            .expect_err("never");
        assert!(err.is_not_ready(), "{err}");
        assert!(p.is_running(), "a probe never kills");
        p.kill_tree().expect("kill");
        // Without stream_lines: refused.
        let mut p = group.start(&Command::new("true")).expect("start");
        let err = p.wait_for_prompt(|_| true, T).await.expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{choice}");
    }
    suite.end().await;
}

#[test]
fn the_blocking_prompt_from_a_plain_thread() {
    use std::io::Write;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin("the_blocking_prompt_from_a_plain_thread"));
    for choice in mechanisms() {
        let group =
            pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice)).expect("group");
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "printf '> '; read x; echo got $x"])
                    .stdin_piped()
                    .stream_lines(),
            )
            .expect("start");
        assert_eq!(p.wait_for_prompt(|t| t == "> ", T).expect("prompt"), "> ");
        let mut stdin = p.take_stdin().expect("piped");
        stdin.write_all(b"1\n").expect("write");
        drop(stdin);
        let line = p.wait_for_line(|_| true, T).expect("line");
        assert_eq!(line.text, "> got 1", "{choice}");
    }
    rt.block_on(suite.end());
}
