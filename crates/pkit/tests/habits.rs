//! The habits of std and tokio: `run()` keeps leading whitespace,
//! `status()`, `Command::start()`, `From<std::process::Command>`, and a
//! failed run's message ending with its stderr tail.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, Outcome};

#[tokio::test]
async fn run_trims_only_the_trailing_line_endings() {
    let suite = begin("run_trims_only_the_trailing_line_endings").await;
    for choice in mechanisms() {
        let got = sh(choice, "printf ' M f\\n'").run().await.expect("run");
        assert_eq!(got, " M f", "{choice}: leading whitespace is data");
        let got = sh(choice, "printf '  a \\n\\tb\\r\\n\\n'")
            .run()
            .await
            .expect("run");
        assert_eq!(got, "  a \n\tb", "{choice}");
        let got = sh(choice, "printf 'x  '").run().await.expect("run");
        assert_eq!(
            got, "x  ",
            "{choice}: trailing spaces without a newline are data"
        );
    }
    suite.end().await;
}

/// `run()` turns the captured bytes into its `String` in place: a large
/// answer arrives intact (every byte, only the final line endings gone),
/// invalid UTF-8 is replaced with U+FFFD as `stdout_str()` does, and an
/// answer of line endings only is empty.
#[tokio::test]
async fn run_hands_back_large_and_invalid_answers_intact() {
    let suite = begin("run_hands_back_large_and_invalid_answers_intact").await;
    for choice in mechanisms() {
        // 4 MiB of lines "0123456789abcde\n" (16 bytes each), then \r\n\n.
        let got = sh(
            choice,
            "yes 0123456789abcde | head -n 262144; printf '\\r\\n\\n'",
        )
        .run()
        .await
        .expect("run");
        let line = "0123456789abcde\n";
        let mut want = line.repeat(262_144);
        want.pop();
        assert_eq!(got.len(), want.len(), "{choice}");
        assert!(got == want, "{choice}: the 4 MiB answer differs");

        let got = sh(choice, "printf 'a\\377b\\n\\n'")
            .run()
            .await
            .expect("run");
        assert_eq!(got, "a\u{FFFD}b", "{choice}");
        let got = sh(choice, "printf '\\r\\n\\n'").run().await.expect("run");
        assert_eq!(got, "", "{choice}");
    }
    suite.end().await;
}

#[tokio::test]
async fn status_inherits_stdio_and_returns_the_outcome() {
    let suite = begin("status_inherits_stdio_and_returns_the_outcome").await;
    for choice in mechanisms() {
        // Inherited stdout: the child's stdout is this process's own
        // (test harness) stdout, not a pipe of pkit's.
        let me = std::fs::read_link("/proc/self/fd/1").expect("own stdout");
        let tmp = TempPath::new("status");
        let script = format!(
            "x=$(readlink /proc/$$/fd/1); echo \"$x\" > {}; exit 7",
            tmp.as_str()
        );
        let outcome = sh(choice, &script).status().await.expect("status");
        assert_eq!(outcome, Outcome::Exited(7), "{choice}");
        let theirs = std::fs::read_to_string(tmp.path()).expect("written");
        assert_eq!(theirs.trim_end(), me.to_string_lossy(), "{choice}");
        let outcome = sh(choice, "kill -9 $$").status().await.expect("status");
        assert_eq!(outcome, Outcome::Signalled(9), "{choice}");
    }
    suite.end().await;
}

/// `Command::start` uses a group of its own, whose mechanism follows
/// `PKIT_MECHANISM`: the test file runs under both settings.
#[tokio::test]
async fn start_owns_a_group_that_ends_with_the_handle() {
    let suite = begin("start_owns_a_group_that_ends_with_the_handle").await;
    let mut p = Command::new("sh")
        .args(["-c", "sleep 300 & echo $!; echo ready; wait"])
        .stream_lines()
        .start()
        .expect("start");
    let mut grandchild = 0;
    p.wait_for_line(
        |l| {
            if let Ok(pid) = l.text.parse() {
                grandchild = pid;
            }
            l.text == "ready"
        },
        Duration::from_secs(30),
    )
    .await
    .expect("ready");
    let sh_pid = p.pid();
    assert!(grandchild > 0);
    assert_alive(&[sh_pid, grandchild], "started");
    drop(p);
    assert_gone(&[sh_pid, grandchild], "the handle dropped").await;

    // Waited to its end, it reports like any started process.
    let mut p = Command::new("sh")
        .args(["-c", "exit 4"])
        .start()
        .expect("start");
    assert_eq!(p.wait().await.expect("wait").code(), Some(4));
    drop(p);
    suite.end().await;
}

#[tokio::test]
async fn from_std_command_carries_program_args_env_and_dir() {
    let suite = begin("from_std_command_carries_program_args_env_and_dir").await;
    std::env::set_var("PKIT_HABITS_INHERITED", "from-parent");
    let mut std_cmd = std::process::Command::new("sh");
    std_cmd
        .args([
            "-c",
            "echo \"$1|$A|${PKIT_HABITS_INHERITED-unset}|$(pwd)\"",
            "sh",
            "x y",
        ])
        .env("A", "set")
        .env_remove("PKIT_HABITS_INHERITED")
        .current_dir("/tmp");
    let cmd = Command::from(std_cmd);
    let got = cmd.run().await.expect("run");
    assert_eq!(got, "x y|set|unset|/tmp");
    suite.end().await;
}

#[tokio::test]
async fn a_failed_run_message_ends_with_its_stderr_tail() {
    let suite = begin("a_failed_run_message_ends_with_its_stderr_tail").await;
    for choice in mechanisms() {
        let err = sh(choice, "echo 'fatal: not a repo' >&2; exit 128")
            .arg("secret-arg")
            .run()
            .await
            .expect_err("fails");
        let msg = err.to_string();
        assert_eq!(msg, "sh: exited(128): fatal: not a repo", "{choice}");
        let diag = err.diagnostic();
        assert!(
            diag.starts_with("sh: exited(128) after "),
            "{choice}: {diag}"
        );
        assert!(diag.ends_with(": fatal: not a repo"), "{choice}: {diag}");
        assert!(!diag.contains("secret-arg") && !msg.contains("secret-arg"));

        // Long stderr: the last 10 lines only, on lines of their own.
        let err = sh(
            choice,
            "for i in $(seq 1 50); do echo line$i >&2; done; exit 2",
        )
        .run()
        .await
        .expect_err("fails");
        let msg = err.to_string();
        let expected: Vec<String> = (41..=50).map(|i| format!("line{i}")).collect();
        assert_eq!(
            msg,
            format!("sh: exited(2); stderr ends:\n{}", expected.join("\n")),
            "{choice}"
        );

        // Long lines: at most 2 KiB.
        let err = sh(choice, "head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1")
            .exit_code()
            .await;
        assert!(err.is_ok(), "exit_code takes any exit");
        let err = sh(choice, "head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1")
            .run()
            .await
            .expect_err("fails");
        let msg = err.to_string();
        assert!(msg.len() <= 2048 + 64, "{choice}: {} bytes", msg.len());
        assert!(msg.ends_with("xxxx"), "{choice}");

        // Secret output: never quoted, not even by the diagnostic.
        let err = sh(choice, "echo 'token=hunter2' >&2; exit 3")
            .secret_output()
            .run()
            .await
            .expect_err("fails");
        assert_eq!(err.to_string(), "sh: exited(3)", "{choice}");
        assert!(!err.diagnostic().contains("hunter2"), "{choice}");
        // The stderr is still there for the caller.
        assert_eq!(
            err.output().expect("output").stderr_str(),
            "token=hunter2\n"
        );

        // A signal and a timeout quote it too.
        let err = sh(choice, "echo dying >&2; kill -9 $$")
            .run()
            .await
            .expect_err("fails");
        assert_eq!(err.to_string(), "sh: signalled(SIGKILL): dying", "{choice}");
        // (A try whose shell had not written its line when the timeout
        // came, its start-up slow on a loaded machine, is made again with
        // the timeout doubled.)
        let mut timeout = Duration::from_millis(300);
        let err = loop {
            let err = sh(choice, "echo slow >&2; sleep 300")
                .timeout(timeout)
                .run()
                .await
                .expect_err("fails");
            if err.output().is_some_and(|o| !o.stderr().is_empty()) {
                break err;
            }
            assert!(timeout < Duration::from_secs(5), "{choice}: {err}");
            timeout *= 2;
        };
        assert!(err.to_string().ends_with(": slow"), "{choice}: {err}");
        // An empty stderr adds nothing.
        let err = sh(choice, "exit 5").run().await.expect_err("fails");
        assert_eq!(err.to_string(), "sh: exited(5)", "{choice}");
    }
    suite.end().await;
}
