//! The Runner seam beyond the verbs (feature `testing`): started runs
//! (`Group::start`, `Command::start`) played by a `ScriptedRunner` through
//! the real line pump — `lines()`, `wait_for_line`, callbacks, captures,
//! bounds, kills and group operations — and `Pipe` stages, batches and the
//! `Supervisor` going through their commands' runners, scripted and mixed
//! with real processes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use pkit::testing::{DryRunRunner, RecordReplay, RecordingRunner, Reply, ScriptedRunner};
use pkit::{
    CancelToken, Command, ErrorKind, Group, NotReadyReason, Outcome, Pipe, Restart, StopReason,
    StreamKind, Supervisor, SupervisorEvent,
};

/// A server that logs on both streams, becomes ready, and runs on.
fn server_reply() -> Reply {
    Reply::ok("booting\n")
        .stderr("cache cold\n")
        .pause(Duration::from_millis(20))
        .stdout("listening on :8080\n")
        .stdout("serving\n")
        .keep_running()
}

fn server(runner: Arc<ScriptedRunner>) -> Command {
    Command::new("my-server").arg("--port=8080").runner(runner)
}

fn scripted(argv: &[&str], reply: Reply) -> Arc<ScriptedRunner> {
    Arc::new(ScriptedRunner::new().on(argv, reply))
}

#[tokio::test]
async fn started_script_streams_lines_through_the_pump() {
    let suite = begin("started_script_streams_lines_through_the_pump").await;
    let runner = scripted(&["my-server", "--port=8080"], server_reply());
    let group = Group::new().unwrap();

    // lines(): every line in order, with its stream.
    let mut p = group.start(&server(runner.clone()).stream_lines()).unwrap();
    assert!(p.pid() > 4_194_304, "a scripted pid is no real pid");
    let mut lines = p.lines();
    let mut got = Vec::new();
    for _ in 0..4 {
        let l = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("a line in time")
            .expect("a line");
        got.push((l.stream, l.text));
    }
    assert_eq!(
        got,
        [
            (StreamKind::Stdout, "booting".to_string()),
            (StreamKind::Stderr, "cache cold".to_string()),
            (StreamKind::Stdout, "listening on :8080".to_string()),
            (StreamKind::Stdout, "serving".to_string()),
        ]
    );
    assert!(p.is_running(), "keep_running: it runs on");
    p.kill().unwrap();
    let out = p.wait().await.unwrap();
    assert_eq!(out.outcome(), Outcome::Signalled(9));
    assert!(tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .unwrap()
        .is_none());

    // wait_for_line: the readiness line; earlier lines are consumed.
    let mut p = group.start(&server(runner.clone()).stream_lines()).unwrap();
    let ready = p
        .wait_for_line(|l| l.text.starts_with("listening"), DEADLINE)
        .await
        .unwrap();
    assert_eq!(ready.text, "listening on :8080");
    let next = p.lines().next_line().await.unwrap();
    assert_eq!(next.text, "serving");

    // Callbacks and the capture, as for a real child.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (out_seen, err_seen) = (seen.clone(), seen.clone());
    let runner2 = scripted(&["tool"], Reply::ok("a\nb\n").stderr("warn\n").stdout("c"));
    let cmd = Command::new("tool")
        .runner(runner2)
        .on_stdout_line(move |l| out_seen.lock().unwrap().push(format!("out:{l}")))
        .on_stderr_line(move |l| err_seen.lock().unwrap().push(format!("err:{l}")));
    let mut p = group.start(&cmd).unwrap();
    let out = p.wait().await.unwrap();
    assert_eq!(out.outcome(), Outcome::Exited(0));
    assert_eq!(out.stdout(), b"a\nb\nc");
    assert_eq!(out.stderr(), b"warn\n");
    // Each stream's lines in order (across streams, as for a real child,
    // the order is the readers').
    let seen = seen.lock().unwrap().clone();
    let outs: Vec<&String> = seen.iter().filter(|l| l.starts_with("out:")).collect();
    assert_eq!(outs, ["out:a", "out:b", "out:c"]);
    assert!(seen.contains(&"err:warn".to_string()), "{seen:?}");

    // A line that never comes: NotReady with the script's exit.
    let runner3 = scripted(&["tool"], Reply::fail(3, "no config\n"));
    let mut p = group
        .start(&Command::new("tool").runner(runner3).stream_lines())
        .unwrap();
    let err = p
        .wait_for_line(|l| l.text == "listening", DEADLINE)
        .await
        .unwrap_err();
    match err {
        pkit::Error::NotReady { reason, .. } => {
            assert_eq!(reason, NotReadyReason::Exited(Outcome::Exited(3)))
        }
        other => panic!("expected NotReady, got {other}"),
    }

    // The group's own operations reach scripted processes: the two
    // started here and the ready server above, still running.
    let a = group.start(&server(runner.clone())).unwrap();
    let b = group.start(&server(runner.clone())).unwrap();
    let report = group.shutdown(DEADLINE).await.unwrap();
    assert_eq!(report.signalled(), 3);
    assert_eq!(report.killed(), 0);
    for p in [a, b] {
        let st = tokio::time::timeout(DEADLINE, async {
            while p.is_running() {
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        assert!(st.is_ok(), "shutdown ended the scripted process");
        assert_eq!(p.try_wait().unwrap(), Some(Outcome::Signalled(15)));
    }
    suite.end().await;
}

#[tokio::test]
async fn started_script_bounds_timeout_cancel_inactivity_and_drop() {
    let suite = begin("started_script_bounds_timeout_cancel_inactivity_and_drop").await;
    let runner = scripted(&["my-server", "--port=8080"], server_reply());
    let group = Group::new().unwrap();

    // The command's timeout ends it: TimedOut, output kept.
    let mut p = group
        .start(&server(runner.clone()).timeout(Duration::from_millis(200)))
        .unwrap();
    let out = p.wait().await.unwrap();
    assert!(out.timed_out(), "{:?}", out.outcome());
    assert_eq!(out.stdout_str(), "booting\nlistening on :8080\nserving\n");

    // Its inactivity timeout.
    let mut p = group
        .start(&server(runner.clone()).inactivity_timeout(Duration::from_millis(150)))
        .unwrap();
    let out = p.wait().await.unwrap();
    assert!(out.timed_out() && out.inactivity_timed_out());

    // Its cancel token.
    let token = CancelToken::new();
    let mut p = group
        .start(&server(runner.clone()).cancel_token(&token))
        .unwrap();
    token.cancel();
    assert!(p.wait().await.unwrap_err().is_cancelled());
    // Cancelled already: nothing starts.
    assert!(group
        .start(&server(runner.clone()).cancel_token(&token))
        .unwrap_err()
        .is_cancelled());

    // Command::start: dropping the handle ends it with its private group.
    let mut p = server(runner.clone()).stream_lines().start().unwrap();
    let mut lines = p.lines();
    assert_eq!(lines.next_line().await.unwrap().text, "booting");
    drop(p);
    let rest = tokio::time::timeout(DEADLINE, async {
        while lines.next_line().await.is_some() {}
    })
    .await;
    assert!(rest.is_ok(), "the dropped handle's script ended");

    // An err reply is the start's error; an unscripted command fails loudly.
    let failing = scripted(
        &["tool"],
        Reply::err(pkit::Error::InvalidInput("nope".into())),
    );
    let err = group
        .start(&Command::new("tool").runner(failing.clone()))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = group
        .start(&Command::new("other").runner(failing))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unscripted);
    group.close().await.unwrap();
    suite.end().await;
}

#[tokio::test]
async fn recording_dry_run_and_replay_cover_starts() {
    let suite = begin("recording_dry_run_and_replay_cover_starts").await;
    for choice in mechanisms() {
        let group = group(choice);
        // Recording a real start: recorded, then really run.
        let rec = Arc::new(RecordingRunner::new(
            Arc::new(pkit::SystemRunner::default()),
        ));
        let mut p = group
            .start(&Command::new("echo").arg("hi").runner(rec.clone()))
            .unwrap();
        assert_eq!(p.wait().await.unwrap().stdout_str(), "hi\n");
        assert_eq!(rec.only_call().args(), ["hi"]);
        // Dry run: recorded, nothing runs.
        let dry = Arc::new(DryRunRunner::new());
        let marker = TempPath::new("dry-start");
        let mut p = group
            .start(&Command::new("touch").arg(marker.path()).runner(dry.clone()))
            .unwrap();
        assert_eq!(p.wait().await.unwrap().outcome(), Outcome::Exited(0));
        assert!(!marker.path().exists(), "a dry run ran nothing");
        assert_eq!(dry.only_call().program(), "touch");
        group.close().await.unwrap();
    }

    // A cassette answers a start from a recorded run; a miss spawns nothing.
    let cassette = TempPath::new("seam-cassette.json");
    let rec = Arc::new(RecordReplay::record(
        cassette.path(),
        Arc::new(pkit::SystemRunner::default()),
    ));
    let sh = |s: &str| Command::new("sh").args(["-c", s]);
    sh("echo one; echo two >&2; exit 4")
        .runner(rec.clone())
        .output()
        .await
        .unwrap();
    rec.save().unwrap();
    let rep = Arc::new(RecordReplay::replay(cassette.path()).unwrap());
    let group = Group::new().unwrap();
    let mut p = group
        .start(
            &sh("echo one; echo two >&2; exit 4")
                .runner(rep.clone())
                .stream_lines(),
        )
        .unwrap();
    let line = p
        .wait_for_line(|l| l.text == "two", DEADLINE)
        .await
        .unwrap();
    assert_eq!(line.stream, StreamKind::Stderr);
    assert_eq!(p.wait().await.unwrap().outcome(), Outcome::Exited(4));
    let err = group.start(&sh("echo unrecorded").runner(rep)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CassetteMiss);
    group.close().await.unwrap();
    suite.end().await;
}

#[tokio::test]
async fn pipe_stages_go_through_their_runners() {
    let suite = begin("pipe_stages_go_through_their_runners").await;
    for choice in mechanisms() {
        // A scripted producer feeding a real consumer over a real pipe.
        let producer = scripted(&["gen"], Reply::ok("b\na\nc\n"));
        let out = Pipe::new([
            Command::new("gen").runner(producer.clone()),
            Command::new("sort"),
        ])
        .mechanism(choice)
        .output()
        .await
        .unwrap();
        assert_eq!(out.stdout_str(), "a\nb\nc\n", "{choice}");
        assert_eq!(out.stages().len(), 2);

        // A real producer feeding a scripted consumer (which drains it).
        let consumer = scripted(&["count"], Reply::ok("3\n"));
        let out = Pipe::new([
            Command::new("printf").arg("x\\ny\\nz\\n"),
            Command::new("count").runner(consumer),
        ])
        .mechanism(choice)
        .run()
        .await
        .unwrap();
        assert_eq!(out, "3", "{choice}");

        // The pipefail fold blames the scripted stage that failed.
        let failing = scripted(&["check"], Reply::fail(2, "bad input\n"));
        let out = Pipe::new([
            Command::new("printf").arg("data\\n"),
            Command::new("check").runner(failing),
            Command::new("cat"),
        ])
        .mechanism(choice)
        .output()
        .await
        .unwrap();
        assert_eq!(out.outcome(), Outcome::Exited(2), "{choice}");
        assert_eq!(out.program(), "check");
        assert_eq!(out.stderr_str(), "bad input\n");

        // producer | head: a scripted producer whose reader went away
        // ends as SIGPIPE would; unchecked, the chain succeeds.
        let big = "y\n".repeat(200_000);
        let yes = scripted(&["yes"], Reply::ok(big).keep_running());
        let out = Pipe::new([
            Command::new("yes").runner(yes).unchecked_in_pipe(),
            Command::new("head").arg("-n1"),
        ])
        .mechanism(choice)
        .output()
        .await
        .unwrap();
        assert_eq!(out.stdout_str(), "y\n", "{choice}");
        assert_eq!(
            out.stages()[0].outcome(),
            Outcome::Signalled(libc::SIGPIPE),
            "{choice}"
        );

        // A scripted stage that never ends: the chain's timeout ends it.
        let stuck = scripted(&["stuck"], Reply::pending());
        let out = Pipe::new([Command::new("stuck").runner(stuck), Command::new("cat")])
            .timeout(Duration::from_millis(200))
            .mechanism(choice)
            .output()
            .await
            .unwrap();
        assert!(out.timed_out(), "{choice}: {:?}", out.outcome());
    }
    suite.end().await;
}

#[tokio::test]
async fn batches_and_clients_go_through_runners() {
    let suite = begin("batches_and_clients_go_through_runners").await;
    let script = Arc::new(
        ScriptedRunner::new()
            .on_prefix(["fetch"], Reply::ok("fetched\n"))
            .fallback(Reply::fail(1, "unknown\n")),
    );
    let rec = Arc::new(RecordingRunner::new(script));
    let cmds = (0..5).map(|i| {
        Command::new(if i == 3 { "other" } else { "fetch" })
            .arg(i.to_string())
            .runner(rec.clone())
    });
    let results = pkit::output_all(cmds, 2).await;
    let codes: Vec<i32> = results
        .iter()
        .map(|r| r.as_ref().unwrap().code().unwrap())
        .collect();
    assert_eq!(codes, [0, 0, 0, 1, 0]);
    let mut args: Vec<String> = rec
        .calls()
        .iter()
        .map(|c| c.args_lossy()[0].clone())
        .collect();
    args.sort();
    assert_eq!(args, ["0", "1", "2", "3", "4"]);
    suite.end().await;
}

#[tokio::test]
async fn supervisor_runs_through_the_runner() {
    let suite = begin("supervisor_runs_through_the_runner").await;
    // Crashes twice, then a clean run: a per-rule sequence of replies.
    let flaky = scripted(
        &["worker"],
        Reply::sequence([
            Reply::fail(1, "boom\n"),
            Reply::signalled(9),
            Reply::ok("done\n"),
        ]),
    );
    let out = Supervisor::new(Command::new("worker").runner(flaky))
        .backoff(Duration::from_millis(5), 2.0)
        .run()
        .await
        .unwrap();
    assert_eq!(out.stopped, StopReason::PolicySatisfied);
    assert_eq!(out.restarts, 2);
    assert_eq!(out.final_output.unwrap().stdout_str(), "done\n");

    // A scripted server's readiness line, then a graceful stop.
    let srv = scripted(&["my-server", "--port=8080"], server_reply());
    let mut handle = Supervisor::new(server(srv))
        .ready_when_line(|l| l.starts_with("listening"), DEADLINE)
        .start();
    let Some(SupervisorEvent::Started { pid, .. }) = handle.next_event().await else {
        panic!("the first event is the start")
    };
    assert_eq!(
        handle.next_event().await,
        Some(SupervisorEvent::Ready { pid })
    );
    let out = handle.stop().await.unwrap();
    assert_eq!(out.stopped, StopReason::StopRequested);
    assert_eq!(
        out.final_output.unwrap().outcome(),
        Outcome::Signalled(15),
        "the stop's SIGTERM ended it"
    );

    // A readiness line that never comes: unhealthy, a crash each time.
    let quiet = scripted(&["quiet"], Reply::ok("starting\n").keep_running());
    let out = Supervisor::new(Command::new("quiet").runner(quiet))
        .ready_when_line(|l| l == "listening", Duration::from_millis(100))
        .backoff(Duration::from_millis(5), 1.0)
        .max_restarts(2)
        .run()
        .await
        .unwrap();
    assert_eq!(out.stopped, StopReason::RestartsExhausted);
    assert_eq!(out.restarts, 2);

    // Restart::Always with a recording runner over real runs.
    let rec = Arc::new(RecordingRunner::new(
        Arc::new(pkit::SystemRunner::default()),
    ));
    let out = Supervisor::new(Command::new("true").runner(rec.clone()))
        .restart(Restart::Always)
        .backoff(Duration::from_millis(5), 1.0)
        .max_restarts(2)
        .run()
        .await
        .unwrap();
    assert_eq!(out.stopped, StopReason::RestartsExhausted);
    assert_eq!(rec.calls().len(), 3);
    suite.end().await;
}

#[tokio::test]
async fn a_transient_start_failure_is_a_crash() {
    let suite = begin("a_transient_start_failure_is_a_crash").await;
    let eagain = || pkit::Error::Spawn {
        program: "worker".into(),
        source: std::io::Error::from_raw_os_error(libc::EAGAIN),
    };
    let busy = scripted(
        &["worker"],
        Reply::sequence([Reply::err(eagain()), Reply::err(eagain()), Reply::ok("")]),
    );
    let out = Supervisor::new(Command::new("worker").runner(busy))
        .backoff(Duration::from_millis(5), 1.0)
        .run()
        .await
        .unwrap();
    assert_eq!(out.stopped, StopReason::PolicySatisfied);
    assert_eq!(out.restarts, 2);

    // Not transient: stops at once, whatever the budget.
    let denied = scripted(
        &["worker"],
        Reply::err(pkit::Error::Spawn {
            program: "worker".into(),
            source: std::io::Error::from_raw_os_error(libc::EPERM),
        }),
    );
    let out = Supervisor::new(Command::new("worker").runner(denied))
        .backoff(Duration::from_millis(5), 1.0)
        .run()
        .await
        .unwrap();
    assert_eq!(out.stopped, StopReason::CannotStart);
    assert_eq!(out.restarts, 0);
    suite.end().await;
}

#[tokio::test]
async fn a_started_pipe_starts_its_stages_through_their_runners() {
    let suite = begin("a_started_pipe_starts_its_stages_through_their_runners").await;
    for choice in mechanisms() {
        // A scripted server feeding a real stage: its lines stream out of
        // the chain's tail; its stderr stays in its own result.
        let runner = scripted(&["my-server", "--port=8080"], server_reply());
        let mut p = Pipe::new([server(runner), Command::new("cat")])
            .stream_lines()
            .mechanism(choice)
            .start()
            .unwrap();
        assert!(p.pids()[0] > 4_194_304, "a scripted head");
        let ready = p
            .wait_for_line(|l| l.text.starts_with("listening"), DEADLINE)
            .await
            .unwrap();
        assert_eq!(ready.text, "listening on :8080", "{choice}");
        assert!(p.is_running());
        p.kill().unwrap();
        let out = p.wait().await.unwrap();
        assert_eq!(out.stages()[0].outcome(), Outcome::Signalled(9), "{choice}");
        assert_eq!(out.stages()[0].stderr_str(), "cache cold\n");

        // A real producer feeding a scripted tail, whose stdout streams.
        let tail = scripted(&["count"], Reply::ok("3\n"));
        let mut p = Pipe::new([
            Command::new("printf").arg("x\\ny\\nz\\n"),
            Command::new("count").runner(tail),
        ])
        .stream_lines()
        .mechanism(choice)
        .start()
        .unwrap();
        let mut lines = p.lines();
        let mut got = Vec::new();
        while let Some(l) = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("a line in time")
        {
            got.push(l.text);
        }
        assert_eq!(got, ["3"], "{choice}");
        assert!(p.wait().await.unwrap().success());

        // A failing scripted middle stage is blamed by wait.
        let failing = scripted(&["check"], Reply::fail(2, "bad input\n"));
        let mut p = Pipe::new([
            Command::new("printf").arg("data\\n"),
            Command::new("check").runner(failing),
            Command::new("cat"),
        ])
        .mechanism(choice)
        .start()
        .unwrap();
        let out = p.wait().await.unwrap();
        assert_eq!(out.outcome(), Outcome::Exited(2), "{choice}");
        assert_eq!(out.program(), "check");
        assert_eq!(out.stderr_str(), "bad input\n");
    }
    suite.end().await;
}
