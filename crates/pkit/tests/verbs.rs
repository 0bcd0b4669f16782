//! The four verbs (`output`, `run`, `exit_code`, `probe`): exit codes,
//! signals, timeouts, what each turns into an error, and what an `Output`
//! carries.

mod common;

use std::time::Duration;

use common::*;
use pkit::{ErrorKind, Outcome};

#[tokio::test]
async fn exit_codes_are_data_for_output_and_values_for_exit_code() {
    let suite = begin("exit_codes_are_data_for_output_and_values_for_exit_code").await;
    for choice in mechanisms() {
        for code in [0, 3, 255] {
            let script = format!("exit {code}");
            let out = sh(choice, &script).output().await.expect("output");
            assert_eq!(out.outcome(), Outcome::Exited(code), "{choice}: {out:?}");
            assert_eq!(out.code(), Some(code));
            assert_eq!(out.signal(), None);
            assert!(!out.timed_out());
            assert_eq!(out.success(), code == 0);
            assert_eq!(out.outcome().to_string(), format!("exited({code})"));

            let got = sh(choice, &script).exit_code().await.expect("exit_code");
            assert_eq!(got, code, "{choice}");
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_are_reported_by_number_and_name() {
    let suite = begin("signals_are_reported_by_number_and_name").await;
    for choice in mechanisms() {
        for (script, sig, name) in [
            ("kill -9 $$", 9, "signalled(SIGKILL)"),
            ("kill -TERM $$", 15, "signalled(SIGTERM)"),
        ] {
            let out = sh(choice, script).output().await.expect("output");
            assert_eq!(out.outcome(), Outcome::Signalled(sig), "{choice}: {out:?}");
            assert_eq!(out.signal(), Some(sig));
            assert_eq!(out.code(), None);
            assert!(!out.success());
            assert!(!out.timed_out());
            assert_eq!(out.outcome().to_string(), name);

            // The verbs that require an exit never invent a code.
            for err in [
                sh(choice, script)
                    .exit_code()
                    .await
                    .map(|_| ())
                    .unwrap_err(),
                sh(choice, script).run().await.map(|_| ()).unwrap_err(),
                sh(choice, script).probe().await.map(|_| ()).unwrap_err(),
            ] {
                assert_eq!(err.kind(), ErrorKind::Signalled, "{choice}: {err:?}");
                assert_eq!(err.to_string(), format!("sh: {name}"));
                assert_eq!(err.output().expect("carries output").signal(), Some(sig));
            }
        }
    }
    suite.end().await;
}

#[tokio::test]
async fn run_trims_stdout_and_requires_success() {
    let suite = begin("run_trims_stdout_and_requires_success").await;
    // Only the trailing line endings go (issue 15): leading whitespace is
    // data.
    for choice in mechanisms() {
        let got = sh(choice, r"printf '  \n hello  world \n\n'")
            .run()
            .await
            .expect("run");
        assert_eq!(got, "  \n hello  world ", "{choice}");

        let got = cmd(choice, "echo").arg("hello").run().await.expect("run");
        assert_eq!(got, "hello");

        let err = sh(choice, "echo out; echo oops >&2; exit 4")
            .run()
            .await
            .expect_err("exit 4");
        assert!(err.is_non_zero_exit(), "{choice}: {err:?}");
        assert_eq!(err.kind(), ErrorKind::NonZeroExit);
        assert_eq!(err.to_string(), "sh: exited(4): oops");
        let out = err.into_output().expect("carries the output");
        assert_eq!(out.code(), Some(4));
        assert_eq!(out.stdout_str(), "out\n");
        assert_eq!(out.stderr_str(), "oops\n");
        assert_eq!(out.mechanism(), expected_mechanism(choice));
    }
    suite.end().await;
}

#[tokio::test]
async fn probe_is_a_yes_no_question() {
    let suite = begin("probe_is_a_yes_no_question").await;
    for choice in mechanisms() {
        assert!(cmd(choice, "true").probe().await.expect("true"), "{choice}");
        assert!(
            !cmd(choice, "false").probe().await.expect("false"),
            "{choice}"
        );
        let err = sh(choice, "echo why >&2; exit 2")
            .probe()
            .await
            .expect_err("exit 2");
        assert!(err.is_non_zero_exit(), "{choice}: {err:?}");
        let out = err.output().expect("carries the output");
        assert_eq!(out.code(), Some(2));
        assert_eq!(out.stderr_str(), "why\n");
    }
    suite.end().await;
}

#[tokio::test]
async fn timeouts_are_data_for_output_and_errors_for_the_other_verbs() {
    let suite = begin("timeouts_are_data_for_output_and_errors_for_the_other_verbs").await;
    for choice in mechanisms() {
        let limit = Duration::from_millis(200);
        let out = cmd(choice, "sleep")
            .arg("300")
            .timeout(limit)
            .output()
            .await
            .expect("output");
        assert!(out.timed_out(), "{choice}: {out:?}");
        assert_eq!(out.outcome(), Outcome::TimedOut);
        assert_eq!(out.outcome().to_string(), "timed out");
        assert!(out.duration() >= limit, "{choice}: {out:?}");
        assert_eq!((out.code(), out.signal()), (None, None));
        assert_gone(&[out.pid()], "the timed-out sleep").await;

        let c = cmd(choice, "sleep").arg("300").timeout(limit);
        assert_eq!(c.get_timeout(), Some(limit));
        for err in [
            c.run().await.map(|_| ()).unwrap_err(),
            c.exit_code().await.map(|_| ()).unwrap_err(),
            c.probe().await.map(|_| ()).unwrap_err(),
        ] {
            assert!(err.is_timeout(), "{choice}: {err:?}");
            assert_eq!(err.kind(), ErrorKind::Timeout);
            assert!(
                err.to_string().starts_with("sleep: timed out after "),
                "{err}"
            );
            let out = err.output().expect("carries the output");
            assert!(out.timed_out());
            assert_gone(&[out.pid()], "the timed-out sleep").await;
        }

        // A run that ends before its timeout is not a timeout.
        let out = cmd(choice, "true")
            .timeout(Duration::from_secs(60))
            .output()
            .await
            .expect("output");
        assert!(out.success(), "{choice}: {out:?}");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_says_what_ran_and_how() {
    let suite = begin("output_says_what_ran_and_how").await;
    for choice in mechanisms() {
        let out = sh(choice, "echo SECRET-OUTPUT; echo SECRET-ERROR >&2; echo $$")
            .output()
            .await
            .expect("output");
        assert!(out.success(), "{choice}: {out:?}");
        assert_eq!(out.code(), Some(0));
        assert_eq!(out.program(), "sh");
        assert!(out.pid() > 0);
        let pid = out.pid().to_string();
        let stdout = out.stdout_str().into_owned();
        assert_eq!(stdout.lines().collect::<Vec<_>>(), ["SECRET-OUTPUT", &pid]);
        assert_eq!(out.stderr(), b"SECRET-ERROR\n");
        assert_eq!(out.mechanism(), expected_mechanism(choice));
        assert!(out.duration() > Duration::ZERO);

        let debug = format!("{out:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("stdout_bytes"), "{debug}");

        let clone = out.clone();
        assert_eq!(clone, out);
        assert_eq!(out.into_stdout(), clone.stdout());

        // The program is reported as given, a path included.
        let out = cmd(choice, "/bin/sh")
            .args(["-c", "exit 0"])
            .output()
            .await
            .expect("output");
        assert_eq!(out.program(), "/bin/sh");
    }
    suite.end().await;
}

#[tokio::test]
async fn a_command_is_reusable_data() {
    let suite = begin("a_command_is_reusable_data").await;
    for choice in mechanisms() {
        let c = sh(choice, r#"echo "$1-$2""#).args(["a", "b"]);
        assert_eq!(c.get_program(), "sh");
        assert_eq!(c.get_args().count(), 5); // -c, script, $0, a, b
        let debug = format!("{c:?}");
        assert!(!debug.contains("echo"), "args are hidden: {debug}");

        let first = c.run().await.expect("first");
        let second = c.clone().run().await.expect("second");
        let third = c.output().await.expect("third");
        assert_eq!(
            (first.as_str(), second.as_str()),
            ("a-b", "a-b"),
            "{choice}"
        );
        assert_eq!(third.stdout_str(), "a-b\n");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_runs_each_get_their_own_result() {
    let suite = begin("many_concurrent_runs_each_get_their_own_result").await;
    for choice in mechanisms() {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let c = sh(choice, &format!("echo {i}; exit {}", i % 4));
                tokio::spawn(async move { c.output().await })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let out = t.await.expect("join").expect("output");
            assert_eq!(out.stdout_str(), format!("{i}\n"), "{choice}");
            assert_eq!(out.code(), Some(i as i32 % 4), "{choice}");
        }
    }
    suite.end().await;
}

/// A capture awaited outside the runtime's tasks (a multi-thread runtime's
/// `block_on`: the worker that sees the exit reads the output in the same
/// go, and drops its registration of the pidfd only after it has handed
/// the exit over, still holding a share of the child) returns with its
/// child reaped: right after each run the child's pid is no zombie of
/// this process, whichever thread lets go of the child last.
#[test]
fn a_capture_from_block_on_returns_with_its_child_reaped() {
    in_suite(
        "a_capture_from_block_on_returns_with_its_child_reaped",
        || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let me = std::process::id();
            for choice in mechanisms() {
                for i in 0..200 {
                    let out = rt.block_on(sh(choice, "echo hi").output()).expect("output");
                    assert_eq!(out.stdout(), b"hi\n", "{choice}: run {i}");
                    let left = stat(out.pid()).filter(|s| s.ppid == me && s.state == 'Z');
                    assert!(
                        left.is_none(),
                        "{choice}: run {i}: its child {} is still a zombie of this process",
                        out.pid()
                    );
                }
            }
        },
    );
}

/// The same for a run with no output to read (null stdio, as
/// `exit_code()` is often run), whose exit a worker awaits alone from
/// `block_on` and, under cgroup v2, reaps after handing it on: each run
/// returns its exit status and resource usage, with its child reaped.
#[test]
fn a_run_without_output_from_block_on_returns_its_status_and_usage_with_its_child_reaped() {
    in_suite(
        "a_run_without_output_from_block_on_returns_its_status_and_usage_with_its_child_reaped",
        || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let me = std::process::id();
            for choice in mechanisms() {
                for i in 0..200 {
                    let cmd = sh(choice, "exit 3")
                        .stdout(pkit::Stdio::Null)
                        .stderr(pkit::Stdio::Null);
                    let out = rt.block_on(cmd.output()).expect("output");
                    assert_eq!(out.code(), Some(3), "{choice}: run {i}");
                    if choice != pkit::MechanismChoice::Portable {
                        assert!(out.cpu_time().is_some(), "{choice}: run {i}: no CPU time");
                        assert!(
                            out.peak_memory_bytes().is_some_and(|b| b > 0),
                            "{choice}: run {i}: no peak memory"
                        );
                    }
                    let left = stat(out.pid()).filter(|s| s.ppid == me && s.state == 'Z');
                    assert!(
                        left.is_none(),
                        "{choice}: run {i}: its child {} is still a zombie of this process",
                        out.pid()
                    );
                }
            }
        },
    );
}
