//! `pkit::testing` (feature `testing`): every scripted reply through every
//! verb and through `CliClient`, rule matching, the unexpected-command
//! error, the recording runner over real runs (both mechanisms), and the
//! dry runner running nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use pkit::testing::{DryRunRunner, RecordingRunner, Reply, ScriptedRunner};
use pkit::{CancelToken, CliClient, Command, Error, ErrorKind, Outcome, Output, SystemRunner};

fn scripted(reply: Reply) -> Arc<ScriptedRunner> {
    Arc::new(ScriptedRunner::new().on(["tool", "do", "it"], reply))
}

fn tool(runner: Arc<ScriptedRunner>) -> Command {
    Command::new("tool").args(["do", "it"]).runner(runner)
}

/// What each verb gave, as comparable values.
#[derive(Debug)]
struct Verbs {
    output: Result<Output, Error>,
    run: Result<String, Error>,
    exit_code: Result<i32, Error>,
    probe: Result<bool, Error>,
}

async fn all_verbs(cmd: &Command) -> Verbs {
    Verbs {
        output: cmd.output().await,
        run: cmd.run().await,
        exit_code: cmd.exit_code().await,
        probe: cmd.probe().await,
    }
}

async fn all_client_verbs(client: &CliClient) -> Verbs {
    Verbs {
        output: client.output(["do", "it"]).await,
        run: client.run(["do", "it"]).await,
        exit_code: client.exit_code(["do", "it"]).await,
        probe: client.probe(["do", "it"]).await,
    }
}

fn kind<T: std::fmt::Debug>(r: &Result<T, Error>) -> ErrorKind {
    r.as_ref().expect_err("an error").kind()
}

/// Both ways in (a command, a client) for one reply.
async fn both(reply: Reply) -> [Verbs; 2] {
    let runner = scripted(reply);
    let client = CliClient::new("tool").with_runner(runner.clone());
    [
        all_verbs(&tool(runner)).await,
        all_client_verbs(&client).await,
    ]
}

#[tokio::test]
async fn ok_through_every_verb() {
    for v in both(Reply::ok("main\n")).await {
        let out = v.output.unwrap();
        assert_eq!(out.outcome(), Outcome::Exited(0));
        assert_eq!(out.stdout(), b"main\n");
        assert_eq!(out.program(), "tool");
        assert_eq!(out.duration(), Duration::ZERO);
        assert_eq!(v.run.unwrap(), "main");
        assert_eq!(v.exit_code.unwrap(), 0);
        assert!(v.probe.unwrap());
    }
}

#[tokio::test]
async fn fail_through_every_verb() {
    for v in both(Reply::fail(1, "fatal: nope\n")).await {
        let out = v.output.unwrap();
        assert_eq!(
            (out.code(), out.stderr_str().as_ref()),
            (Some(1), "fatal: nope\n")
        );
        let err = v.run.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NonZeroExit);
        // The stderr tail reaches the message, as for a real run.
        assert_eq!(err.to_string(), "tool: exited(1): fatal: nope");
        assert_eq!(v.exit_code.unwrap(), 1);
        assert!(!v.probe.unwrap());
    }
    // A code other than 0 and 1 is no answer to a probe.
    for v in both(Reply::fail(2, "")).await {
        assert_eq!(v.exit_code.unwrap(), 2);
        assert_eq!(kind(&v.probe), ErrorKind::NonZeroExit);
    }
}

#[tokio::test]
async fn timed_out_through_every_verb() {
    for v in both(Reply::timed_out()).await {
        assert!(v.output.unwrap().timed_out());
        assert_eq!(kind(&v.run), ErrorKind::Timeout);
        assert_eq!(kind(&v.exit_code), ErrorKind::Timeout);
        assert_eq!(kind(&v.probe), ErrorKind::Timeout);
    }
}

#[tokio::test]
async fn signalled_through_every_verb() {
    let kill = pkit::Signal::Kill.as_raw();
    for v in both(Reply::signalled(kill)).await {
        assert_eq!(v.output.unwrap().signal(), Some(kill));
        let err = v.run.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Signalled);
        assert_eq!(err.to_string(), "tool: signalled(SIGKILL)");
        assert_eq!(kind(&v.exit_code), ErrorKind::Signalled);
        assert_eq!(kind(&v.probe), ErrorKind::Signalled);
    }
}

#[tokio::test]
async fn err_through_every_verb_every_time() {
    let not_found = || Error::NotFound {
        program: "tool".into(),
        path_searched: true,
    };
    // The same reply answers many runs (8 here), each with its own copy.
    for v in both(Reply::err(not_found())).await {
        let err = v.output.unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.to_string(), not_found().to_string());
        assert_eq!(kind(&v.run), ErrorKind::NotFound);
        assert_eq!(kind(&v.exit_code), ErrorKind::NotFound);
        assert_eq!(kind(&v.probe), ErrorKind::NotFound);
    }
    // An OS error keeps its number.
    let spawn = Error::Spawn {
        program: "tool".into(),
        source: std::io::Error::from_raw_os_error(libc::EAGAIN),
    };
    let v = all_verbs(&tool(scripted(Reply::err(spawn)))).await;
    for e in [v.output.unwrap_err(), v.run.unwrap_err()] {
        assert!(pkit::is_transient(&e), "{e}");
    }
}

#[tokio::test]
async fn pending_ends_by_cancel_by_timeout_or_drop() {
    let runner = scripted(Reply::pending());

    // Cancelled: every verb, and the client's commands.
    let token = CancelToken::new();
    let cancel_soon = {
        let token = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            token.cancel();
        })
    };
    let cmd = tool(runner.clone()).cancel_token(&token);
    let first = cmd.output().await.unwrap_err();
    assert!(first.is_cancelled(), "{first}");
    cancel_soon.await.unwrap();
    let v = all_verbs(&cmd).await;
    assert!(v.output.unwrap_err().is_cancelled());
    assert_eq!(kind(&v.run), ErrorKind::Cancelled);
    assert_eq!(kind(&v.exit_code), ErrorKind::Cancelled);
    assert_eq!(kind(&v.probe), ErrorKind::Cancelled);

    // The command's timeout: a timed-out result, as from a real run.
    for v in [
        all_verbs(&tool(runner.clone()).timeout(Duration::from_millis(30))).await,
        all_client_verbs(
            &CliClient::new("tool")
                .timeout(Duration::from_millis(30))
                .with_runner(runner.clone()),
        )
        .await,
    ] {
        let out = v.output.unwrap();
        assert!(out.timed_out());
        assert_eq!(out.duration(), Duration::from_millis(30));
        assert_eq!(kind(&v.run), ErrorKind::Timeout);
        assert_eq!(kind(&v.exit_code), ErrorKind::Timeout);
        assert_eq!(kind(&v.probe), ErrorKind::Timeout);
    }

    // The inactivity timeout: a pending reply never writes.
    let idle = tool(runner.clone()).inactivity_timeout(Duration::from_millis(30));
    let out = idle.output().await.unwrap();
    assert!(out.timed_out() && out.inactivity_timed_out());
    assert_eq!(kind(&idle.run().await), ErrorKind::Timeout);

    // Neither: it never completes; the caller's own bound ends it.
    let cmd = tool(runner);
    let never = tokio::time::timeout(Duration::from_millis(100), cmd.run()).await;
    assert!(never.is_err(), "a pending reply completed: {never:?}");
}

#[tokio::test]
async fn a_token_cancelled_before_the_run_wins_over_the_reply() {
    let token = CancelToken::new();
    token.cancel();
    let cmd = tool(scripted(Reply::ok("x"))).cancel_token(&token);
    assert!(cmd.output().await.unwrap_err().is_cancelled());
}

#[tokio::test]
async fn unexpected_command_names_the_program_not_the_args() {
    let runner = scripted(Reply::ok("x"));
    let cmd = Command::new("tool")
        .args(["do", "s3cret-token"])
        .runner(runner.clone());
    let v = all_verbs(&cmd).await;
    for err in [
        v.output.unwrap_err(),
        v.run.unwrap_err(),
        v.exit_code.unwrap_err(),
        v.probe.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Unscripted);
        let msg = err.to_string();
        assert!(
            msg.starts_with("tool: unexpected command (2 arguments)"),
            "{msg}"
        );
        assert!(!msg.contains("s3cret") && !format!("{err:?}").contains("s3cret"));
        assert!(!err.diagnostic().contains("s3cret"));
        let Error::Unscripted { program, args } = err else {
            unreachable!()
        };
        assert_eq!(program, "tool");
        assert_eq!(args.to_strings_lossy(), ["do", "s3cret-token"]);
    }
    // Through a client too.
    let client = CliClient::new("tool").with_runner(runner);
    assert_eq!(
        client.run(["other"]).await.unwrap_err().kind(),
        ErrorKind::Unscripted
    );
}

#[tokio::test]
async fn rules_exact_prefix_predicate_fallback() {
    let runner = Arc::new(
        ScriptedRunner::new()
            .on(["git", "status"], Reply::ok("exact"))
            .on_prefix(["git", "log"], Reply::ok("prefix"))
            .on_match(
                |cmd| cmd.get_current_dir() == Some(std::path::Path::new("/repo")),
                Reply::ok("predicate"),
            )
            .on_prefix(["git"], Reply::ok("any git"))
            .fallback(Reply::fail(127, "unexpected")),
    );
    let run = |argv: &[&str], cwd: Option<&str>| {
        let mut cmd = Command::new(argv[0])
            .args(&argv[1..])
            .runner(runner.clone());
        if let Some(d) = cwd {
            cmd = cmd.current_dir(d);
        }
        async move { cmd.output().await.unwrap() }
    };
    let text = |o: Output| o.stdout_str().into_owned();
    assert_eq!(text(run(&["git", "status"], None).await), "exact");
    // Exact means exact: one more argument is not the same command.
    assert_eq!(text(run(&["git", "status", "-s"], None).await), "any git");
    assert_eq!(
        text(run(&["git", "log", "-1", "--oneline"], None).await),
        "prefix"
    );
    assert_eq!(text(run(&["git", "log"], None).await), "prefix");
    // A prefix longer than the command does not match it.
    let short = Arc::new(ScriptedRunner::new().on_prefix(["git", "log", "-1"], Reply::ok("")));
    let err = Command::new("git").arg("log").runner(short).output().await;
    assert_eq!(kind(&err), ErrorKind::Unscripted);
    // Rules are tried in order: the predicate before the catch-all.
    assert_eq!(
        text(run(&["git", "fetch"], Some("/repo")).await),
        "predicate"
    );
    assert_eq!(text(run(&["git", "fetch"], None).await), "any git");
    let out = run(&["make"], None).await;
    assert_eq!((out.code(), out.stderr()), (Some(127), &b"unexpected"[..]));
}

#[tokio::test]
async fn command_settings_apply_to_scripted_results() {
    // ok_codes: grep's "no match" is a success for run.
    let runner = Arc::new(ScriptedRunner::new().on_prefix(["grep"], Reply::fail(1, "")));
    let grep = Command::new("grep").arg("x").runner(runner);
    assert_eq!(kind(&grep.run().await), ErrorKind::NonZeroExit);
    assert_eq!(grep.clone().ok_codes([0, 1]).run().await.unwrap(), "");
    // secret_output: no stderr in the message.
    let runner = scripted(Reply::fail(3, "password=hunter2\n"));
    let err = tool(runner).secret_output().run().await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    // A custom Output, as built by a custom runner.
    let built = Output::builder("tool")
        .exit_code(0)
        .stdout("abc")
        .stdout_total_bytes(10)
        .build();
    let err = tool(scripted(Reply::output(built)))
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutputLimit);
}

#[test]
fn output_builder_defaults_and_fields() {
    let out = Output::builder("x").build();
    assert!(out.success());
    assert_eq!(
        (out.pid(), out.stdout(), out.stderr()),
        (0, &b""[..], &b""[..])
    );
    assert!(!out.stdout_truncated());
    let out = Output::builder("x")
        .outcome(Outcome::Signalled(15))
        .stderr("e")
        .stderr_total_bytes(1)
        .duration(Duration::from_secs(2))
        .pid(42)
        .mechanism(pkit::Mechanism::CgroupV2)
        .cpu_time(Duration::from_millis(5))
        .peak_memory_bytes(1 << 20)
        .oom_killed(true)
        .killed_after_grace(true)
        .build();
    assert_eq!(out.signal(), Some(15));
    assert_eq!(out.stderr_total_bytes(), 1);
    assert!(!out.stderr_truncated());
    assert_eq!(out.duration(), Duration::from_secs(2));
    assert_eq!(out.pid(), 42);
    assert_eq!(out.mechanism(), pkit::Mechanism::CgroupV2);
    assert_eq!(out.cpu_time(), Some(Duration::from_millis(5)));
    assert_eq!(out.peak_memory_bytes(), Some(1 << 20));
    assert!(out.oom_killed() && out.killed_after_grace());
}

#[tokio::test]
async fn recording_runner_records_real_runs() {
    let suite = begin("recording_runner_records_real_runs").await;
    for choice in mechanisms() {
        let dir = TempPath::new("recording-cwd");
        std::fs::create_dir(dir.path()).unwrap();
        let recorder = Arc::new(RecordingRunner::new(Arc::new(
            SystemRunner::with_mechanism(choice),
        )));
        let cmd = Command::new("sh")
            .args(["-c", r#"printf '%s|%s' "$REC_SECRET" "$(pwd)""#])
            .env("REC_SECRET", "value-never-recorded")
            .env_remove("REC_GONE")
            .current_dir(dir.path())
            .runner(recorder.clone());
        let out = cmd.output().await.unwrap();
        let want = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(
            out.stdout_str(),
            format!("value-never-recorded|{}", want.display())
        );
        // A failing run is recorded too.
        let failed = Command::new("sh")
            .args(["-c", "exit 4"])
            .runner(recorder.clone())
            .exit_code()
            .await
            .unwrap();
        assert_eq!(failed, 4);

        let calls = recorder.calls();
        assert_eq!(calls.len(), 2);
        let call = &calls[0];
        assert_eq!(call.program(), "sh");
        assert_eq!(call.args()[0], "-c");
        assert_eq!(call.cwd(), Some(dir.path()));
        assert_eq!(call.env_names(), ["REC_SECRET"]);
        assert_eq!(call.env_removed(), ["REC_GONE"]);
        assert!(!call.env_cleared());
        assert!(!format!("{calls:?}").contains("value-never-recorded"));
        assert_eq!(calls[1].args_lossy(), ["-c", "exit 4"]);
        std::fs::remove_dir(dir.path()).unwrap();
    }
    suite.end().await;
}

#[tokio::test]
async fn recording_runner_records_runs_that_never_end() {
    let recorder = Arc::new(RecordingRunner::new(scripted(Reply::pending())));
    let cmd = tool(Arc::new(ScriptedRunner::new())).runner(recorder.clone());
    let _ = tokio::time::timeout(Duration::from_millis(20), cmd.output()).await;
    assert_eq!(recorder.only_call().args(), ["do", "it"]);
}

#[test]
fn only_call_panics_unless_exactly_one() {
    let recorder = RecordingRunner::new(Arc::new(DryRunRunner::new()));
    let none = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| recorder.only_call()))
        .unwrap_err();
    let msg = none.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("expected exactly one call, but 0 were made"),
        "{msg}"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let recorder = Arc::new(recorder);
    for program in ["git", "make"] {
        let cmd = Command::new(program).arg("s3cret").runner(recorder.clone());
        rt.block_on(cmd.run()).unwrap();
    }
    let two = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| recorder.only_call()))
        .unwrap_err();
    let msg = two.downcast_ref::<String>().unwrap();
    assert!(msg.contains("but 2 were made"), "{msg}");
    assert!(msg.contains("git") && msg.contains("make"), "{msg}");
    assert!(!msg.contains("s3cret"), "{msg}");
}

#[tokio::test]
async fn dry_run_runs_nothing() {
    let marker = TempPath::new("dry-run-marker");
    let dry = Arc::new(DryRunRunner::new());
    let touch = Command::new("touch").arg(marker.path()).runner(dry.clone());
    let v = all_verbs(&touch).await;
    assert!(v.output.unwrap().success());
    assert_eq!(v.run.unwrap(), "");
    assert_eq!(v.exit_code.unwrap(), 0);
    assert!(v.probe.unwrap());
    assert!(!marker.path().exists(), "the dry runner ran the command");
    assert_eq!(dry.calls().len(), 4);
    // Even a program that does not exist "succeeds": nothing is looked up.
    let client = CliClient::new("no-such-program-pkit").with_runner(dry.clone());
    assert!(client.output(["x"]).await.unwrap().success());
    assert_eq!(dry.calls()[4].program(), "no-such-program-pkit");
}

// ---- RecordReplay ----

use pkit::testing::RecordReplay;

fn replayed(replay: &Arc<RecordReplay>, cmd: Command) -> Command {
    cmd.runner(replay.clone())
}

#[tokio::test]
async fn record_then_replay_byte_identical() {
    let suite = begin("record_then_replay_byte_identical").await;
    for choice in mechanisms() {
        let dir = TempPath::new("cassette-dir");
        std::fs::create_dir(dir.path()).unwrap();
        let path = dir.path().join("runs.json");
        let counter = dir.path().join("counter");
        let marker = dir.path().join("marker");
        let recorder = Arc::new(RecordReplay::record(
            &path,
            Arc::new(SystemRunner::with_mechanism(choice)),
        ));
        let rec = |cmd: Command| cmd.runner(recorder.clone());
        let bytes = Command::new("sh")
            .args([
                "-c",
                r"printf 'a\377b\n\000z'; printf 'err\376\n' >&2; exit 3",
            ])
            .env("CASSETTE_TOKEN", "token-value-never-written");
        let signalled = Command::new("sh").args(["-c", "kill -9 $$"]);
        let slow = Command::new("sleep")
            .arg("30")
            .timeout(Duration::from_millis(100));
        let count = Command::new("sh")
            .args([
                "-c",
                r#"n=$(cat "$1" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1"; echo $n"#,
                "sh",
            ])
            .arg(&counter);
        let touch = Command::new("touch").arg(&marker).current_dir(dir.path());
        let idle = Command::new("sleep")
            .arg("31")
            .inactivity_timeout(Duration::from_millis(100));

        let mut want = Vec::new();
        for cmd in [&bytes, &signalled, &slow, &count, &count, &touch, &idle] {
            want.push(rec(cmd.clone()).output().await.unwrap());
        }
        assert_eq!(want[0].code(), Some(3));
        assert_eq!(want[0].stdout(), b"a\xffb\n\0z");
        assert_eq!(want[0].stderr(), b"err\xfe\n");
        assert_eq!(want[1].signal(), Some(9));
        assert!(want[2].timed_out());
        assert_eq!(
            (want[3].stdout(), want[4].stdout()),
            (&b"1\n"[..], &b"2\n"[..])
        );
        assert!(marker.exists());
        assert!(want[6].inactivity_timed_out() && !want[2].inactivity_timed_out());
        // Not recorded: a missing program, a cancelled run.
        let missing = rec(Command::new("no-such-program-pkit-cassette"))
            .output()
            .await;
        assert!(missing.unwrap_err().is_not_found());
        let token = CancelToken::new();
        token.cancel();
        let cancelled = rec(Command::new("true").cancel_token(&token))
            .output()
            .await;
        assert!(cancelled.unwrap_err().is_cancelled());
        assert_eq!(recorder.len(), 7);
        recorder.save().unwrap();

        // Owner-only, names but not values, no temporary file left.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("CASSETTE_TOKEN"));
        assert!(!text.contains("token-value-never-written"));
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["counter", "marker", "runs.json"]);

        // Replay: nothing runs, the same bytes come back.
        std::fs::remove_file(&marker).unwrap();
        let replay = Arc::new(RecordReplay::replay(&path).unwrap());
        assert_eq!(replay.len(), 7);
        let mut got = Vec::new();
        for cmd in [&bytes, &signalled, &slow, &count, &count, &touch, &idle] {
            got.push(replayed(&replay, cmd.clone()).output().await.unwrap());
        }
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(
                (w.outcome(), w.stdout(), w.stderr()),
                (g.outcome(), g.stdout(), g.stderr())
            );
            assert_eq!(w.inactivity_timed_out(), g.inactivity_timed_out());
            // No duration is recorded: a timed-out run's is the limit
            // that ended it (both limits here are 100 ms), others' zero.
            let took = match g.timed_out() {
                true => Duration::from_millis(100),
                false => Duration::ZERO,
            };
            assert_eq!(g.duration(), took);
        }
        assert!(!marker.exists(), "replay ran the command");
        // Capture order, then the last again.
        let third = replayed(&replay, count.clone()).run().await.unwrap();
        assert_eq!(third, "2");
        // The verbs interpret replayed results as real ones.
        assert_eq!(
            replayed(&replay, bytes.clone()).exit_code().await.unwrap(),
            3
        );
        let err = replayed(&replay, signalled.clone())
            .run()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Signalled);
        // Matched on the working directory too; never spawns on a miss.
        let elsewhere = Command::new("touch").arg(&marker);
        let miss = replayed(&replay, elsewhere).output().await.unwrap_err();
        assert_eq!(miss.kind(), ErrorKind::CassetteMiss);
        assert!(!marker.exists());
        let Error::CassetteMiss { program, args, cwd } = miss else {
            unreachable!()
        };
        assert_eq!((program.as_str(), args.len(), cwd), ("touch", 1, None));
        // The environment is not part of the match.
        let other_env = bytes.clone().env("CASSETTE_TOKEN", "other");
        assert_eq!(replayed(&replay, other_env).exit_code().await.unwrap(), 3);
        // A miss is not a not-found.
        let miss = replayed(&replay, Command::new("no-such-program-pkit-cassette"))
            .output()
            .await
            .unwrap_err();
        assert!(!miss.is_not_found());
        assert!(miss
            .to_string()
            .starts_with("no-such-program-pkit-cassette: not in the cassette (0 arguments"));

        std::fs::remove_dir_all(dir.path()).unwrap();
    }
    suite.end().await;
}

#[tokio::test]
async fn save_refuses_a_symlink() {
    let dir = TempPath::new("cassette-symlink");
    std::fs::create_dir(dir.path()).unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, "untouched").unwrap();
    let link = dir.path().join("cassette.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let recorder = Arc::new(RecordReplay::record(&link, Arc::new(DryRunRunner::new())));
    Command::new("x")
        .runner(recorder.clone())
        .run()
        .await
        .unwrap();
    let err = recorder.save().unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    std::fs::remove_dir_all(dir.path()).unwrap();
}

#[test]
fn corrupt_and_future_cassettes_are_clear_errors() {
    let path = TempPath::new("cassette-bad.json");
    let cases = [
        ("not json at all", "not a cassette (corrupt JSON"),
        (r#"{"runs": []}"#, "no format version"),
        (
            r#"{"format": "1", "runs": []}"#,
            "format version is not a number",
        ),
        (
            r#"{"format": 99, "runs": []}"#,
            "cassette format 99 is newer",
        ),
        (
            r#"{"format": 1, "runs": [{"program": "x"}]}"#,
            "corrupt cassette",
        ),
    ];
    for (text, says) in cases {
        std::fs::write(path.path(), text).unwrap();
        let err = RecordReplay::replay(path.path()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(err.to_string().contains(says), "{text}: {err}");
    }
    std::fs::remove_file(path.path()).unwrap();
    let err = RecordReplay::replay(path.path()).unwrap_err();
    assert!(err.to_string().starts_with("reading the cassette"), "{err}");
}

/// A cassette path that is no regular file, or a file over
/// `RecordReplay::MAX_BYTES`, is refused with an `Io` error naming the
/// path (and the limit), never read into memory whole and never waited
/// on: a FIFO nobody writes to, `/dev/zero`, a directory, a sparse file
/// one byte over the limit. A file of exactly the limit is read (and is
/// then no cassette). Before, replay read the whole file: `/dev/zero`
/// until memory ran out, a FIFO forever. A cassette `save` would make
/// over the limit is refused, writing nothing.
#[tokio::test]
async fn a_cassette_that_is_no_file_or_over_the_limit_is_refused_unread() {
    let dir = TempPath::new("cassette-odd");
    std::fs::create_dir(dir.path()).unwrap();
    let fifo = dir.path().join("fifo.json");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path of our own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let over = dir.path().join("over.json");
    let at = dir.path().join("at.json");
    for (path, len) in [
        (&over, RecordReplay::MAX_BYTES + 1),
        (&at, RecordReplay::MAX_BYTES),
    ] {
        std::fs::File::create(path).unwrap().set_len(len).unwrap(); // sparse
    }
    let cases = [
        (
            fifo.clone(),
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ),
        (
            "/dev/zero".into(),
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ),
        (
            dir.path().to_path_buf(),
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ),
        (over.clone(), std::io::ErrorKind::FileTooLarge, "67108864"),
        (at.clone(), std::io::ErrorKind::InvalidData, "corrupt JSON"),
    ];
    for (path, io_kind, says) in cases {
        // On a thread: a replay that waits on the FIFO fails the test, not hangs it.
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || tx.send(RecordReplay::replay(&p).map(drop)));
        let got = rx.recv_timeout(DEADLINE);
        let err = match got {
            Ok(r) => r.expect_err("refused"),
            Err(_) => panic!(
                "{}: replay still reading after {DEADLINE:?}",
                path.display()
            ),
        };
        assert_eq!(err.kind(), ErrorKind::Io, "{}: {err}", path.display());
        let Error::Io { source, .. } = &err else {
            unreachable!()
        };
        assert_eq!(source.kind(), io_kind, "{}: {err}", path.display());
        let text = err.to_string();
        assert!(text.contains(says), "{}: {text}", path.display());
        assert!(text.contains(path.to_str().unwrap()), "{text}");
    }
    // save: refused, nothing written.
    let big = dir.path().join("big.json");
    let inner = ScriptedRunner::new().on(["tool"], Reply::ok(vec![b'x'; 65 << 20]));
    let recorder = Arc::new(RecordReplay::record(&big, Arc::new(inner)));
    let out = Command::new("tool").runner(recorder.clone()).output().await;
    assert_eq!(out.unwrap().stdout().len(), 65 << 20);
    let err = recorder.save().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("MAX_BYTES"), "{err}");
    assert!(!big.exists());
    std::fs::remove_dir_all(dir.path()).unwrap();
}

/// A signal number no process can be ended by (0, negative, past 64,
/// Linux's `SIGRTMAX`) and a format below 1 are corrupt cassettes, each
/// an `InvalidData` error naming the field; the signals 1 and 64 and the
/// formats 1 to 3 load. Before, all of them loaded (and a replay gave
/// `Signalled(-9)`).
#[test]
fn impossible_signals_and_format_0_are_refused_naming_the_field() {
    let path = TempPath::new("cassette-bad-outcome.json");
    let cassette = |format: i64, outcome: &str| {
        format!(
            r#"{{"format": {format}, "runs": [{{"program": "tool", "args": [], "cwd": null,
            "env_names": [], "outcome": {outcome}, "stdout": "", "stderr": "",
            "stdout_total_bytes": 0, "stderr_total_bytes": 0}}]}}"#
        )
    };
    let refused = |text: String, says: &str| {
        std::fs::write(path.path(), &text).unwrap();
        match RecordReplay::replay(path.path()) {
            Err(pkit::Error::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidData, "{text}");
                assert!(source.to_string().contains(says), "{text}: {source}");
            }
            Err(e) => panic!("{text}: {e:?}"),
            Ok(r) => panic!("{text}: loaded as {r:?}"),
        }
    };
    for sig in [0, -9, -1, 128, 1000, i32::MIN, i32::MAX] {
        refused(
            cassette(3, &format!(r#"{{"signalled": {sig}}}"#)),
            &format!(r#"corrupt cassette: runs[0].outcome: "signalled": {sig} is no signal"#),
        );
    }
    refused(
        cassette(0, r#"{"exited": 0}"#),
        "not a cassette (format 0: the cassette formats are 1 to 3)",
    );
    refused(
        r#"{"format": 0, "runs": []}"#.to_string(),
        "not a cassette (format 0",
    );
    for (format, outcome) in [
        (1, r#"{"signalled": 1}"#),
        (2, r#"{"signalled": 64}"#),
        (2, r#"{"signalled": 126}"#),
        (3, r#"{"signalled": 127}"#),
        (3, r#"{"signalled": 9}"#),
        (3, r#"{"exited": -1}"#),
        (1, r#""timed_out""#),
    ] {
        std::fs::write(path.path(), cassette(format, outcome)).unwrap();
        let replay = RecordReplay::replay(path.path())
            .unwrap_or_else(|e| panic!("format {format}, {outcome}: {e}"));
        assert_eq!(replay.len(), 1);
    }
    // A run past a good one is named by its own place.
    let two = cassette(3, r#"{"signalled": 15}"#).replace(
        "}]}",
        r#"}, {"program": "b", "args": [], "cwd": null, "env_names": [],
        "outcome": {"signalled": 199}, "stdout": "", "stderr": "",
        "stdout_total_bytes": 0, "stderr_total_bytes": 0}]}"#,
    );
    refused(two, "runs[1].outcome");
    std::fs::remove_file(path.path()).unwrap();
}

/// An argument object other than `{"secret": true}` is refused, naming
/// its place: never read as a secret (or as anything else).
#[test]
fn a_malformed_secret_mark_is_refused_naming_its_place() {
    let path = TempPath::new("cassette-bad-secret.json");
    let cassette = |arg: &str| {
        format!(
            r#"{{"format": 3, "runs": [{{"program": "tool", "args": ["--token", {arg}],
            "cwd": null, "env_names": [], "outcome": {{"exited": 0}}, "stdout": "ok",
            "stderr": "", "stdout_total_bytes": 2, "stderr_total_bytes": 0}}]}}"#
        )
    };
    // The well-formed mark loads and matches any secret there.
    std::fs::write(path.path(), cassette(r#"{"secret": true}"#)).unwrap();
    let replay = Arc::new(RecordReplay::replay(path.path()).unwrap());
    assert_eq!(replay.len(), 1);
    let cases = [
        (r#"{"secret": false}"#, "{\"secret\": false}"),
        (r#"{"secret": 1}"#, "\"secret\": 1, not true"),
        (r#"{"secret": "true"}"#, "not true"),
        (r#"{}"#, "without \"secret\""),
        (r#"{"value": "x"}"#, "without \"secret\""),
        (
            r#"{"secret": true, "value": "x"}"#,
            "other than \"secret\" (value)",
        ),
        ("7", "is 7, not a string"),
        ("null", "is null, not a string"),
    ];
    for (arg, says) in cases {
        std::fs::write(path.path(), cassette(arg)).unwrap();
        let err = RecordReplay::replay(path.path()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{arg}: {err}");
        let text = err.to_string();
        assert!(
            text.contains("corrupt cassette: runs[0].args[1] "),
            "{arg}: {text}"
        );
        assert!(text.contains(says), "{arg}: {text}");
    }
    std::fs::remove_file(path.path()).unwrap();
}

const SECRET: &str = "tok-9f3b-never-shown";

/// A secret argument never shows in a recorded call's `Debug` (what a
/// failed `assert_eq!` prints), though the test can still read it.
#[tokio::test]
async fn a_secret_argument_is_hidden_in_a_calls_debug() {
    let recorder = Arc::new(RecordingRunner::new(Arc::new(DryRunRunner::new())));
    let cmd = Command::new("deploy")
        .arg("--token")
        .secret_arg(SECRET)
        .arg("prod")
        .env("API_KEY", "env-value-never-shown")
        .runner(recorder.clone());
    cmd.run().await.unwrap();
    assert!(!format!("{cmd:?}").contains(SECRET));
    let call = recorder.only_call();
    let shown = format!("{call:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains("env-value-never-shown"), "{shown}");
    assert!(shown.contains("\"--token\", <secret>, \"prod\""), "{shown}");
    assert!(!format!("{:#?}", recorder.calls()).contains(SECRET));
    assert_eq!(call.args(), ["--token", SECRET, "prod"]);
    assert!(call.is_secret_arg(1) && !call.is_secret_arg(0) && !call.is_secret_arg(2));
}

/// A cassette never writes a secret argument to disk (a real run, verb
/// and started), and replay matches it with any secret at that place —
/// not with a plain argument.
#[tokio::test]
async fn a_cassette_never_writes_a_secret_argument_and_replay_still_matches() {
    let suite = begin("a_cassette_never_writes_a_secret_argument").await;
    for choice in mechanisms() {
        let dir = TempPath::new("cassette-secret");
        std::fs::create_dir(dir.path()).unwrap();
        let path = dir.path().join("runs.json");
        let recorder = Arc::new(RecordReplay::record(
            &path,
            Arc::new(SystemRunner::with_mechanism(choice)),
        ));
        // Uses the secret without printing it.
        let cmd = |secret: &str| {
            Command::new("sh")
                .args(["-c", r#"[ ${#1} -gt 3 ] && echo long; exit 7"#, "sh"])
                .secret_arg(secret)
        };
        let out = cmd(SECRET).runner(recorder.clone()).output().await.unwrap();
        assert_eq!((out.code(), out.stdout()), (Some(7), &b"long\n"[..]));
        let mut started = cmd(SECRET).runner(recorder.clone()).start().unwrap();
        assert_eq!(started.wait().await.unwrap().code(), Some(7));
        recorder.save().unwrap();
        let file = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&file);
        assert!(!text.contains(SECRET), "{choice}: {text}");
        assert!(text.contains(r#""secret": true"#), "{choice}: {text}");

        let replay = Arc::new(RecordReplay::replay(&path).unwrap());
        let again = cmd("dummy-for-ci").runner(replay.clone()).output().await;
        let again = again.unwrap();
        assert_eq!((again.code(), again.stdout()), (Some(7), &b"long\n"[..]));
        let plain = Command::new("sh")
            .args([
                "-c",
                r#"[ ${#1} -gt 3 ] && echo long; exit 7"#,
                "sh",
                SECRET,
            ])
            .runner(replay.clone())
            .output()
            .await
            .unwrap_err();
        assert_eq!(plain.kind(), ErrorKind::CassetteMiss, "{choice}");
        assert!(!plain.to_string().contains(SECRET));
    }
    suite.end().await;
}

/// Output marked secret is never written to a cassette: saving refuses,
/// and writes nothing.
#[tokio::test]
async fn a_cassette_refuses_to_save_secret_output() {
    let suite = begin("a_cassette_refuses_to_save_secret_output").await;
    let dir = TempPath::new("cassette-secret-out");
    std::fs::create_dir(dir.path()).unwrap();
    let path = dir.path().join("runs.json");
    let recorder = Arc::new(RecordReplay::record(
        &path,
        Arc::new(SystemRunner::default()),
    ));
    let out = Command::new("echo")
        .arg("hello")
        .runner(recorder.clone())
        .output()
        .await
        .unwrap();
    assert!(out.success());
    let out = Command::new("sh")
        .args(["-c", "printf '%s' \"$0\"", SECRET])
        .secret_output()
        .runner(recorder.clone())
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout(), SECRET.as_bytes());
    let err = recorder.save().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("secret"), "{err}");
    assert!(!path.exists(), "nothing is written");
    suite.end().await;
}

/// A `CliClient`'s secret arguments, a default one
/// (`CliClient::secret_arg`) and one call's own (`command(..)` then
/// `Command::secret_arg`), reach the program (it writes its arguments to a
/// file) and nothing else: not the cassette (which replays with other
/// secrets there), not the client's or a command's `Debug`, not a failed
/// call's error (its program echoes them on stderr), not a log event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_secret_arguments_reach_the_program_and_nothing_else() {
    common::events::recorder();
    let suite = begin("a_clients_secret_arguments").await;
    const CALL_SECRET: &str = "otp-5c1e-never-shown";
    // $1 is the client's "--token", $2 its secret, then the call's own.
    let script =
        r#"printf '%s\n' "$@" > "$OUT"; [ "$3" = fail ] || exit 0; echo "denied: $*" >&2; exit 3"#;
    for choice in mechanisms() {
        let dir = TempPath::new("client-secret");
        std::fs::create_dir(dir.path()).unwrap();
        let out = dir.path().join("args");
        let cassette = dir.path().join("runs.json");
        let name = format!("client-secret-{choice}");
        let client = |secret: &str, runner: Arc<dyn pkit::Runner>| {
            CliClient::new("sh")
                .args(["-c", script, "sh", "--token"])
                .secret_arg(secret)
                .append_env("OUT", &out)
                .log_name(&name)
                .with_runner(runner)
        };
        let got = || std::fs::read_to_string(&out).unwrap();
        let system = || Arc::new(SystemRunner::with_mechanism(choice));
        let recorder = Arc::new(RecordReplay::record(&cassette, system()));
        let tool = client(SECRET, recorder.clone());

        // Both reach the program, in their places.
        tool.run(["list"]).await.unwrap();
        assert_eq!(got(), format!("--token\n{SECRET}\nlist\n"), "{choice}");
        let call = tool.command(["get", "-H"]).secret_arg(CALL_SECRET).arg("x");
        call.run().await.unwrap();
        let want = format!("--token\n{SECRET}\nget\n-H\n{CALL_SECRET}\nx\n");
        assert_eq!(got(), want, "{choice}");
        let shown = format!("{tool:?} {call:?} {:?}", tool.command(["list"]));
        assert!(
            !shown.contains(SECRET) && !shown.contains(CALL_SECRET),
            "{shown}"
        );

        // The cassette has a mark in each secret's place, never its value.
        recorder.save().unwrap();
        let text = std::fs::read_to_string(&cassette).unwrap();
        assert!(
            !text.contains(SECRET) && !text.contains(CALL_SECRET),
            "{choice}: {text}"
        );
        assert_eq!(
            text.matches(r#""secret": true"#).count(),
            3,
            "{choice}: {text}"
        );

        // A failed call whose program echoes both on stderr (run directly:
        // a cassette would record that stderr, the program's output).
        let err = (client(SECRET, system()).command(["fail"]))
            .secret_arg(CALL_SECRET)
            .run()
            .await
            .unwrap_err();
        assert_eq!(got(), format!("--token\n{SECRET}\nfail\n{CALL_SECRET}\n"));
        let stderr = err.output().expect("a failed run").stderr_str();
        assert!(stderr.contains(SECRET), "{choice}: the program did echo it");
        for text in [err.to_string(), err.diagnostic(), format!("{err:?}")] {
            assert!(
                !text.contains(SECRET) && !text.contains(CALL_SECRET),
                "{choice}: {text}"
            );
        }
        assert!(
            (err.to_string()).ends_with("denied: --token <secret> fail <secret>"),
            "{choice}: {err}"
        );

        // Replay: other secrets in those places match, and run nothing; a
        // plain argument there does not.
        std::fs::remove_file(&out).unwrap();
        let replay = Arc::new(RecordReplay::replay(&cassette).unwrap());
        let ci = client("dummy-token", replay.clone());
        ci.run(["list"]).await.unwrap();
        let call = ci.command(["get", "-H"]).secret_arg("dummy-otp").arg("x");
        call.run().await.unwrap();
        assert!(!out.exists(), "{choice}: a replay runs nothing");
        let plain = (CliClient::new("sh").args(["-c", script, "sh", "--token", SECRET]))
            .append_env("OUT", &out)
            .with_runner(replay)
            .run(["list"])
            .await
            .unwrap_err();
        assert_eq!(plain.kind(), ErrorKind::CassetteMiss, "{choice}: {plain}");

        // The three real runs were logged, under the client's name.
        let seen = common::events::recorder().seen.lock().unwrap().clone();
        let finished = (seen.iter())
            .filter(|s| s.get("name") == Some(name.as_str()))
            .filter(|s| {
                s.get("message")
                    .is_some_and(|m| m.contains("process finished"))
            })
            .count();
        assert_eq!(finished, 3, "{choice}");
    }
    suite.end().await;
    let seen = common::events::recorder().seen.lock().unwrap().clone();
    for s in &seen {
        for (k, v) in &s.fields {
            let text = format!("{k}={v}");
            assert!(
                !text.contains(SECRET) && !text.contains(CALL_SECRET),
                "a secret in an event: {s:?}"
            );
        }
    }
}

/// A program that echoes a secret argument (on stdout and stderr, through
/// a verb and started, the echo cut by a read of the other stream) has
/// `<secret>` recorded in each place, never the value or a part of it;
/// the caller's own `Output` keeps the bytes; replay gives the recorded
/// `<secret>` (stdout, lines, the error's quote of stderr).
#[tokio::test]
async fn a_secret_argument_the_program_echoes_is_recorded_as_secret() {
    let suite = begin("a_secret_argument_the_program_echoes").await;
    let echo = r#"echo "using token $1"; echo "error: bad token $1 (try again)" >&2; exit 3"#;
    // "split tok", then a stderr line, then (once $GO exists) "-9f3b-...".
    let split = r#"s=$1; printf 'split %s' "${s%%-*}"; echo mark >&2
        while [ ! -e "$GO" ]; do sleep 0.05; done; printf -- '-%s\n' "${s#*-}"; exit 3"#;
    let cmd = |script: &str, secret: &str| {
        Command::new("sh")
            .args(["-c", script, "sh"])
            .secret_arg(secret)
    };
    for choice in mechanisms() {
        let dir = TempPath::new("cassette-echo");
        std::fs::create_dir(dir.path()).unwrap();
        let (path, go) = (dir.path().join("runs.json"), dir.path().join("go"));
        let system = Arc::new(SystemRunner::with_mechanism(choice));
        let recorder = Arc::new(RecordReplay::record(&path, system));

        let out = cmd(echo, SECRET).runner(recorder.clone()).output().await;
        let out = out.unwrap();
        assert_eq!(
            out.stdout_str(),
            format!("using token {SECRET}\n"),
            "{choice}"
        );
        let mut started = (cmd(split, SECRET).env("GO", &go).stream_lines())
            .runner(recorder.clone())
            .start()
            .unwrap();
        let mark = started.wait_for_line(|l| l.text == "mark", Duration::from_secs(30));
        mark.await.unwrap();
        std::fs::write(&go, "").unwrap();
        let line = started.wait_for_line(|l| l.text.starts_with("split"), Duration::from_secs(30));
        assert_eq!(line.await.unwrap().text, format!("split {SECRET}"));
        assert_eq!(started.wait().await.unwrap().code(), Some(3), "{choice}");
        recorder.save().unwrap();

        let file = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&file);
        for part in [SECRET, "tok-9f3b", "9f3b-never-shown"] {
            assert!(!text.contains(part), "{choice}: {part} in {text}");
        }
        assert!(
            text.contains(r#""stdout": "using token <secret>\n""#),
            "{text}"
        );
        assert!(text.contains("bad token <secret> (try again)"), "{text}");
        assert!(text.contains(r#""stdout": "split <secret>\n""#), "{text}");

        // Replayed with a dummy secret: what was recorded.
        let replay = Arc::new(RecordReplay::replay(&path).unwrap());
        let again = cmd(echo, "dummy").runner(replay.clone()).output().await;
        let again = again.unwrap();
        assert_eq!(again.stdout_str(), "using token <secret>\n", "{choice}");
        assert!(!again.stdout_truncated() && !again.stderr_truncated());
        let err = cmd(echo, "dummy").runner(replay.clone()).run().await;
        let err = err.unwrap_err().to_string();
        assert!(err.ends_with("bad token <secret> (try again)"), "{err}");
        let mut played = (cmd(split, "dummy").env("GO", &go).stream_lines())
            .runner(replay.clone())
            .start()
            .unwrap();
        let line = played.wait_for_line(|l| l.text.starts_with("split"), Duration::from_secs(30));
        assert_eq!(line.await.unwrap().text, "split <secret>", "{choice}");
        assert_eq!(played.wait().await.unwrap().code(), Some(3), "{choice}");
        // Its recording answers a verb too, with its whole stdout.
        let whole = cmd(split, "dummy").runner(replay).output().await.unwrap();
        assert_eq!(whole.stdout_str(), "split <secret>\n", "{choice}");
    }
    suite.end().await;
}

/// A pipeline stage that passes on an earlier stage's echoed secret (here
/// `cat`) has it recorded as `<secret>` too; replay gives that.
#[tokio::test]
async fn a_secret_a_later_pipeline_stage_prints_is_recorded_as_secret() {
    let suite = begin("a_secret_a_later_pipeline_stage_prints").await;
    let chain = |secret: &str, runner: Arc<dyn pkit::Runner>| {
        let head = Command::new("sh").args(["-c", r#"echo "token=$1""#, "sh"]);
        let head = head.secret_arg(secret).runner(runner.clone());
        head.pipe(Command::new("cat").runner(runner))
    };
    for choice in mechanisms() {
        let dir = TempPath::new("cassette-pipe-echo");
        std::fs::create_dir(dir.path()).unwrap();
        let path = dir.path().join("runs.json");
        let system = Arc::new(SystemRunner::with_mechanism(choice));
        let recorder = Arc::new(RecordReplay::record(&path, system));
        let out = chain(SECRET, recorder.clone()).output().await.unwrap();
        assert_eq!(out.stdout_str(), format!("token={SECRET}\n"), "{choice}");
        recorder.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(SECRET), "{choice}: {text}");
        assert!(text.contains(r#""stdout": "token=<secret>\n""#), "{text}");
        let replay: Arc<dyn pkit::Runner> = Arc::new(RecordReplay::replay(&path).unwrap());
        let again = chain("dummy", replay).output().await.unwrap();
        assert_eq!(again.stdout_str(), "token=<secret>\n", "{choice}");
    }
    suite.end().await;
}

/// `CliClient::secret_output` marks every call: a failed call's error
/// quotes no stderr, and a cassette holding a call refuses to save.
#[tokio::test]
async fn a_clients_secret_output_marks_every_call() {
    let suite = begin("a_clients_secret_output_marks_every_call").await;
    let dir = TempPath::new("client-secret-out");
    std::fs::create_dir(dir.path()).unwrap();
    let path = dir.path().join("runs.json");
    let recorder = Arc::new(RecordReplay::record(
        &path,
        Arc::new(SystemRunner::default()),
    ));
    let client = CliClient::new("sh")
        .args([
            "-c",
            r#"echo "password: $0"; echo "leaked $0" >&2; exit $1"#,
        ])
        .secret_output()
        .with_runner(recorder.clone());
    assert!(format!("{client:?}").contains("secret_output: true"));
    let err = client.run([SECRET, "4"]).await.unwrap_err();
    assert_eq!(err.output().unwrap().code(), Some(4));
    let shown = format!("{err} {}", err.diagnostic());
    assert!(
        !shown.contains(SECRET) && !shown.contains("leaked"),
        "{shown}"
    );
    assert_eq!(
        client.run([SECRET, "0"]).await.unwrap(),
        format!("password: {SECRET}")
    );
    let refused = recorder.save().unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidInput, "{refused}");
    assert!(!path.exists(), "nothing is written");
    suite.end().await;
}

/// A cassette recorded from a scripted run ending by a signal no process
/// can have (`Reply::signalled(0)`, `-9`) is refused at `save`, writing
/// nothing, rather than saved and then refused as corrupt by `replay`
/// (review rv21); a signal up to 127 (FreeBSD and DragonFly number theirs
/// to 126) saves and loads again.
#[tokio::test]
async fn a_saved_cassette_of_a_scripted_signal_loads_again() {
    let mut wrong = Vec::new();
    for sig in [0, -9, 65, 9] {
        let path = TempPath::new("rv21-cassette.json");
        let recorder = Arc::new(RecordReplay::record(
            path.path(),
            Arc::new(ScriptedRunner::new().fallback(Reply::signalled(sig))),
        ));
        let out = pkit::Command::new("tool")
            .runner(recorder.clone())
            .output()
            .await;
        let saved = recorder.save();
        let loaded = RecordReplay::replay(path.path());
        if let (Ok(()), Err(refused)) = (&saved, &loaded) {
            wrong.push(format!(
                "signal {sig}: run {:?}, saved, then refused: {refused}",
                out.map(|o| o.outcome().to_string()),
            ));
        }
        let _ = std::fs::remove_file(path.path());
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
