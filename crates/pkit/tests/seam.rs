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
    CancelToken, Command, ErrorKind, Group, NotReadyReason, Outcome, Pipe, ProcessEvent, Restart,
    Signal, StopReason, StreamKind, Supervisor, SupervisorEvent,
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

/// The group's async signal and kill reach scripted processes as the sync
/// ones do: a scripted double records them (its outcome is the signal).
#[tokio::test]
async fn started_script_gets_the_groups_async_signal_and_kill() {
    let suite = begin("started_script_gets_the_groups_async_signal_and_kill").await;
    let runner = scripted(&["my-server", "--port=8080"], server_reply());
    let group = Group::new().unwrap();
    for (sig, signal) in [(15, Signal::Term), (9, Signal::Kill)] {
        let p = group.start(&server(runner.clone())).unwrap();
        match signal {
            Signal::Kill => group.kill_async().await.unwrap(),
            other => group.signal_async(other).await.unwrap(),
        }
        let ended = tokio::time::timeout(DEADLINE, async {
            while p.is_running() {
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        assert!(ended.is_ok(), "{signal} ended the scripted process");
        assert_eq!(
            p.try_wait().unwrap(),
            Some(Outcome::Signalled(sig)),
            "{signal}"
        );
    }
    group.close().await.unwrap();
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

/// How a started process's `events()` say it ended (or why it could not
/// start).
async fn exit_event(
    group: &Group,
    cmd: &Command,
    cancel: Option<&CancelToken>,
) -> Result<Outcome, ErrorKind> {
    let mut p = group.start(cmd).map_err(|e| e.kind())?;
    let mut events = p.events();
    assert!(matches!(
        events.next_event().await,
        Some(ProcessEvent::Started { .. })
    ));
    if let Some(t) = cancel {
        t.cancel();
    }
    let mut last = None;
    while let Some(e) = tokio::time::timeout(DEADLINE, events.next_event())
        .await
        .expect("the events end")
    {
        last = Some(e);
    }
    match last {
        Some(ProcessEvent::Exited { outcome, .. }) => Ok(outcome),
        other => panic!("the last event is not the exit: {other:?}"),
    }
}

/// Issue 14: `events()` reports each scripted reply's end as it reports a
/// real process's — a timeout as `TimedOut` (it said `Signalled(9)`), a
/// cancellation as the cancel signal — beside the real process doing the
/// same, in each mechanism.
#[tokio::test]
async fn events_report_scripted_ends_as_real_ones() {
    let suite = begin("events_report_scripted_ends_as_real_ones").await;
    let short = Duration::from_millis(150);
    let script = |reply: Reply| Command::new("tool").runner(scripted(&["tool"], reply));
    for choice in mechanisms() {
        let group = group(choice);
        // (scripted, real, whether both are cancelled once started, expected)
        let cases: Vec<(Command, Command, bool, Result<Outcome, ErrorKind>)> = vec![
            (
                script(Reply::ok("hi\n")),
                sh(choice, "echo hi"),
                false,
                Ok(Outcome::Exited(0)),
            ),
            (
                script(Reply::fail(3, "no\n")),
                sh(choice, "echo no >&2; exit 3"),
                false,
                Ok(Outcome::Exited(3)),
            ),
            (
                script(Reply::signalled(libc::SIGTERM)),
                sh(choice, "kill -TERM $$"),
                false,
                Ok(Outcome::Signalled(libc::SIGTERM)),
            ),
            (
                script(Reply::timed_out()),
                cmd(choice, "sleep").arg("30").timeout(short),
                false,
                Ok(Outcome::TimedOut),
            ),
            (
                script(Reply::pending()).timeout(short),
                cmd(choice, "sleep").arg("30").timeout(short),
                false,
                Ok(Outcome::TimedOut),
            ),
            (
                script(Reply::pending()).inactivity_timeout(short),
                cmd(choice, "sleep").arg("30").inactivity_timeout(short),
                false,
                Ok(Outcome::TimedOut),
            ),
            (
                script(Reply::pending()),
                cmd(choice, "sleep").arg("30"),
                true,
                Ok(Outcome::Signalled(9)),
            ),
            (
                script(Reply::pending()).cancel_signal(Signal::Int),
                cmd(choice, "sleep").arg("30").cancel_signal(Signal::Int),
                true,
                Ok(Outcome::Signalled(libc::SIGINT)),
            ),
            (
                script(Reply::err(pkit::Error::NotFound {
                    program: "tool".into(),
                    path_searched: true,
                })),
                cmd(choice, "pkit-no-such-program-14"),
                false,
                Err(ErrorKind::NotFound),
            ),
        ];
        for (scripted, real, cancelled, want) in cases {
            for (what, c) in [("scripted", scripted), ("real", real)] {
                let token = CancelToken::new();
                let c = if cancelled { c.cancel_token(&token) } else { c };
                let got = exit_event(&group, &c, cancelled.then_some(&token)).await;
                assert_eq!(got, want, "{choice}: {what} {c:?}");
            }
        }
        group.close().await.unwrap();
    }
    suite.end().await;
}

/// What a started run left: its outcome, captured stdout and stderr, its
/// lines (with `stream_lines`), its raw stdout (with `Stdio::Raw`).
#[derive(Debug, PartialEq)]
struct Seen {
    outcome: Outcome,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    lines: Vec<(StreamKind, String)>,
    raw: Option<Vec<u8>>,
}

async fn seen(group: &Group, cmd: &Command) -> Result<Seen, ErrorKind> {
    use tokio::io::AsyncReadExt;
    let mut p = group.start(cmd).map_err(|e| e.kind())?;
    let raw = match p.take_stdout() {
        Some(mut r) => {
            let mut bytes = Vec::new();
            r.read_to_end(&mut bytes).await.unwrap();
            Some(bytes)
        }
        None => None,
    };
    let mut stream = p.lines();
    let mut lines = Vec::new();
    while let Some(l) = tokio::time::timeout(DEADLINE, stream.next_line())
        .await
        .expect("lines end")
    {
        lines.push((l.stream, l.text));
    }
    let out = p.wait().await.map_err(|e| e.kind())?;
    Ok(Seen {
        outcome: out.outcome(),
        stdout: out.stdout().to_vec(),
        stderr: out.stderr().to_vec(),
        lines,
        raw,
    })
}

/// Issue 14: a started script's output goes where the command sends it,
/// as a real process's does (it was written to the pump or dropped,
/// whatever the command said): files (truncated, appended), stderr merged
/// into stdout in order, `/dev/null`, a raw pipe handed over, a pty's
/// terminal; a missing stdin file fails the start alike. Each case is
/// compared with a real process writing the same.
#[tokio::test]
async fn scripted_start_output_goes_where_the_command_says() {
    use pkit::{FileMode, Stdio};
    let suite = begin("scripted_start_output_goes_where_the_command_says").await;
    let reply = Reply::ok("out1\n").stderr("err1\n").stdout("out2\n");
    let script = "printf 'out1\\n'; printf 'err1\\n' >&2; printf 'out2\\n'";
    for choice in mechanisms() {
        let group = group(choice);
        let real = || sh(choice, script);
        let fake = || Command::new("tool").runner(scripted(&["tool"], reply.clone()));
        let files = |tag: &str| {
            let (out, err) = (
                TempPath::new(&format!("{tag}-out")),
                TempPath::new(&format!("{tag}-err")),
            );
            std::fs::write(err.path(), "old\n").unwrap();
            (out, err)
        };
        let into_files = |c: Command, out: &TempPath, err: &TempPath| {
            c.stdout_file(out.path(), FileMode::Truncate)
                .stderr_file(err.path(), FileMode::Append)
        };
        let (real_out, real_err) = files("real");
        let (fake_out, fake_err) = files("fake");
        let want = seen(&group, &into_files(real(), &real_out, &real_err)).await;
        let got = seen(&group, &into_files(fake(), &fake_out, &fake_err)).await;
        assert_eq!(got, want, "{choice}: files");
        let read = |p: &TempPath| std::fs::read_to_string(p.path()).unwrap();
        assert_eq!(
            (read(&fake_out), read(&fake_err)),
            ("out1\nout2\n".into(), "old\nerr1\n".into())
        );
        assert_eq!(
            (read(&fake_out), read(&fake_err)),
            (read(&real_out), read(&real_err))
        );

        type Set = fn(Command) -> Command;
        let cases: Vec<(&str, Set)> = vec![
            ("merged, in order", |c| c.merge_stderr().stream_lines()),
            ("null", |c| c.stdout(Stdio::Null).stderr(Stdio::Null)),
            ("raw stdout", |c| c.stdout(Stdio::Raw)),
            ("missing stdin file", |c| {
                c.stdin_file("/nonexistent/pkit-14")
            }),
            ("pty", |c| c.pty(24, 80).stream_lines()),
        ];
        for (what, set) in cases {
            // Each in a fresh group: a pty session must lead its process
            // group under the process-group mechanism.
            let want = seen(&common::group(choice), &set(real())).await;
            if what == "pty" && want.is_err() && choice == pkit::MechanismChoice::Portable {
                skipped(
                    "scripted pty compared with a real one",
                    "no pty session on the portable backend",
                );
                continue;
            }
            let got = seen(&common::group(choice), &set(fake())).await;
            assert_eq!(got, want, "{choice}: {what}");
        }
        // Across two streams a real process's order is the readers' race;
        // a script's is kept (each write waits for the other stream's
        // reader to take the one before).
        for _ in 0..20 {
            let got = seen(&group, &fake().stream_lines()).await.unwrap();
            let want = [
                (StreamKind::Stdout, "out1"),
                (StreamKind::Stderr, "err1"),
                (StreamKind::Stdout, "out2"),
            ];
            assert_eq!(got.lines, want.map(|(k, t)| (k, t.to_string())), "{choice}");
        }
        group.close().await.unwrap();
    }
    suite.end().await;
}

/// Issue 14: `Stdio::Inherit` writes a started script's output to the
/// test process's own stdout and stderr, as a real child's goes there.
/// Run in a fresh copy of this test binary, whose streams are read here.
#[tokio::test]
async fn scripted_start_inherited_output_reaches_our_own_streams() {
    if std::env::var_os("PKIT_SEAM_INHERIT_CHILD").is_some() {
        let cmd = Command::new("tool")
            .stdout(pkit::Stdio::Inherit)
            .stderr(pkit::Stdio::Inherit)
            .runner(scripted(
                &["tool"],
                Reply::ok("to-our-stdout-14\n").stderr("to-our-stderr-14\n"),
            ));
        let out = Group::new()
            .unwrap()
            .start(&cmd)
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert!(out.success() && out.stdout().is_empty() && out.stderr().is_empty());
        return;
    }
    // The copy of this binary is a child of ours: the other tests' checks
    // that none is left would see it.
    let suite = begin("scripted_start_inherited_output_reaches_our_own_streams").await;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "scripted_start_inherited_output_reaches_our_own_streams",
            "--exact",
            "--test-threads=1",
        ])
        .env("PKIT_SEAM_INHERIT_CHILD", "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("to-our-stdout-14\n"), "{stdout}");
    assert!(stderr.contains("to-our-stderr-14\n"), "{stderr}");
    assert!(!stdout.contains("to-our-stderr-14"), "{stdout}");
    suite.end().await;
}

/// The lines of a started process, to their end.
async fn all_lines(p: &mut pkit::RunningProcess) -> Vec<(StreamKind, String)> {
    let mut stream = p.lines();
    let mut lines = Vec::new();
    while let Some(l) = tokio::time::timeout(DEADLINE, stream.next_line())
        .await
        .expect("lines end")
    {
        lines.push((l.stream, l.text));
    }
    lines
}

/// A blocking tee into a shared buffer.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Issue 14: a recording cassette records started runs — both streams as
/// read, in order, and the outcome once ended (a timeout as one, a
/// cancellation not at all) — and replays them through the line pump:
/// the same lines in the same order from `lines()`, `wait_for_line` and
/// `events()`, the same outcome, and the whole streams for a verb. The
/// command's own tee still gets the output while it is recorded; a
/// verbs-only cassette stays format 1.
#[tokio::test]
async fn recorded_started_runs_replay_their_lines() {
    let suite = begin("recorded_started_runs_replay_their_lines").await;
    // "four", a partial last line, is told at the exit. A line the other
    // stream writes just before the exit races it there (either reader
    // may be first, live; the replay plays "five" before its exit): the
    // pause after "five" makes the live order the replayed one.
    let script = "echo one; sleep 0.2; echo two >&2; sleep 0.2; printf 'three\\nfour'; \
                  sleep 0.2; echo five >&2; sleep 0.2; exit 3";
    let slow = "echo before; sleep 30";
    // The recorded run must have written its line before its timeout (a
    // loaded machine can hold a shell's start-up up for a second); the
    // replay, with the same command, takes no time.
    let slow_timeout = Duration::from_secs(2);
    for choice in mechanisms() {
        let cassette = TempPath::new("started-cassette.json");
        let rec = Arc::new(RecordReplay::record(
            cassette.path(),
            Arc::new(pkit::SystemRunner::default()),
        ));
        let group = group(choice);
        let tee = Shared::default();
        let cmd = sh(choice, script)
            .stream_lines()
            .stdout_tee_blocking(tee.clone())
            .env("STARTED_TOKEN", "started-secret-value")
            .runner(rec.clone());
        let mut p = group.start(&cmd).unwrap();
        let recorded = all_lines(&mut p).await;
        assert_eq!(p.wait().await.unwrap().outcome(), Outcome::Exited(3));
        let on = |want: StreamKind| -> Vec<String> {
            (recorded.iter())
                .filter(|(k, _)| *k == want)
                .map(|(_, t)| t.clone())
                .collect()
        };
        assert_eq!(on(StreamKind::Stdout), ["one", "three", "four"], "{choice}");
        assert_eq!(on(StreamKind::Stderr), ["two", "five"], "{choice}");
        assert_eq!(
            *tee.0.lock().unwrap(),
            b"one\nthree\nfour",
            "{choice}: the tee"
        );
        // Timed out: recorded as such. Cancelled: not recorded.
        let mut p = group
            .start(&sh(choice, slow).timeout(slow_timeout).runner(rec.clone()))
            .unwrap();
        assert_eq!(p.wait().await.unwrap().outcome(), Outcome::TimedOut);
        let token = CancelToken::new();
        let mut p = group
            .start(
                &sh(choice, "sleep 30")
                    .cancel_token(&token)
                    .runner(rec.clone()),
            )
            .unwrap();
        token.cancel();
        assert_eq!(p.wait().await.unwrap_err().kind(), ErrorKind::Cancelled);
        assert_eq!(rec.len(), 2, "{choice}");
        rec.save().unwrap();
        group.close().await.unwrap();
        let text = std::fs::read_to_string(cassette.path()).unwrap();
        assert!(text.contains("\"format\": 2"), "{text}");
        assert!(text.contains("\"output\""), "{text}");
        assert!(text.contains("STARTED_TOKEN") && !text.contains("started-secret-value"));

        // Replayed, with no process: the recorded lines, in order.
        let rep = Arc::new(RecordReplay::replay(cassette.path()).unwrap());
        let replayed = || sh(choice, script).stream_lines().runner(rep.clone());
        let group = Group::new().unwrap();
        let mut p = group.start(&replayed()).unwrap();
        assert_eq!(all_lines(&mut p).await, recorded, "{choice}");
        assert_eq!(p.wait().await.unwrap().outcome(), Outcome::Exited(3));
        let mut p = group.start(&replayed()).unwrap();
        let five = p
            .wait_for_line(|l| l.text == "five", DEADLINE)
            .await
            .unwrap();
        assert_eq!(five.stream, StreamKind::Stderr);
        let mut p = group.start(&replayed()).unwrap();
        let mut events = p.events();
        let mut lines = Vec::new();
        let mut exit = None;
        while let Some(e) = events.next_event().await {
            match e {
                ProcessEvent::Line(l) => lines.push((l.stream, l.text)),
                ProcessEvent::Exited { outcome, .. } => exit = Some(outcome),
                _ => {}
            }
        }
        assert_eq!((lines, exit), (recorded.clone(), Some(Outcome::Exited(3))));
        // A verb gets each stream whole.
        let out = sh(choice, script)
            .runner(rep.clone())
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout_str(), "one\nthree\nfour");
        assert_eq!(out.stderr_str(), "two\nfive\n");
        assert_eq!(out.outcome(), Outcome::Exited(3));
        // The timed-out run replays as timed out, events included.
        let timed = || {
            sh(choice, slow)
                .timeout(slow_timeout)
                .stream_lines()
                .runner(rep.clone())
        };
        let mut p = group.start(&timed()).unwrap();
        assert_eq!(
            all_lines(&mut p).await,
            [(StreamKind::Stdout, "before".to_string())]
        );
        assert_eq!(p.wait().await.unwrap().outcome(), Outcome::TimedOut);
        let mut p = group.start(&timed()).unwrap();
        let mut events = p.events();
        let mut last = None;
        while let Some(e) = events.next_event().await {
            last = Some(e);
        }
        assert!(matches!(
            last,
            Some(ProcessEvent::Exited {
                outcome: Outcome::TimedOut,
                ..
            })
        ));
        // The cancelled run was not recorded.
        let err = group
            .start(&sh(choice, "sleep 30").runner(rep.clone()))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CassetteMiss);
        group.close().await.unwrap();

        // Through verbs only: format 1, as older pkit reads.
        let verbs = TempPath::new("verbs-cassette.json");
        let rec = Arc::new(RecordReplay::record(
            verbs.path(),
            Arc::new(pkit::SystemRunner::default()),
        ));
        sh(choice, "echo hi")
            .runner(rec.clone())
            .output()
            .await
            .unwrap();
        rec.save().unwrap();
        let text = std::fs::read_to_string(verbs.path()).unwrap();
        assert!(
            text.contains("\"format\": 1") && !text.contains("\"output\""),
            "{text}"
        );
    }
    suite.end().await;
}

/// Issue 14 with issue 15's started pipe: a cassette records each stage
/// of a started `Pipe` (what pkit reads of it: the tail's stdout, every
/// stage's stderr) and replays the chain with no process, its lines and
/// its fold the same.
#[tokio::test]
async fn a_recorded_started_pipe_replays() {
    let suite = begin("a_recorded_started_pipe_replays").await;
    let head = "printf 'b\\na\\nc\\n'; echo head-note >&2";
    let tail = "sort; echo tail-note >&2; exit 4";
    for choice in mechanisms() {
        let cassette = TempPath::new("pipe-cassette.json");
        let rec = Arc::new(RecordReplay::record(
            cassette.path(),
            Arc::new(pkit::SystemRunner::default()),
        ));
        let chain = |runner: Arc<RecordReplay>| {
            Pipe::new([
                sh(choice, head).runner(runner.clone()),
                sh(choice, tail).runner(runner),
            ])
            .stream_lines()
            .mechanism(choice)
        };
        let mut p = chain(rec.clone()).start().unwrap();
        let mut lines = p.lines();
        let mut recorded = Vec::new();
        while let Some(l) = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("lines end")
        {
            recorded.push(l.text);
        }
        let real = p.wait().await.unwrap();
        assert_eq!(recorded, ["a", "b", "c"], "{choice}");
        assert_eq!(real.outcome(), Outcome::Exited(4), "{choice}");
        assert_eq!(rec.len(), 2, "{choice}: both stages");
        rec.save().unwrap();

        let rep = Arc::new(RecordReplay::replay(cassette.path()).unwrap());
        let mut p = chain(rep.clone()).start().unwrap();
        assert!(
            p.pids().iter().all(|&pid| pid > 4_194_304),
            "scripted stages"
        );
        let mut lines = p.lines();
        let mut replayed = Vec::new();
        while let Some(l) = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("lines end")
        {
            replayed.push(l.text);
        }
        let out = p.wait().await.unwrap();
        assert_eq!(replayed, recorded, "{choice}");
        assert_eq!(out.outcome(), real.outcome(), "{choice}");
        assert_eq!(out.program(), real.program());
        let stderrs = |o: &pkit::Output| -> Vec<String> {
            o.stages()
                .iter()
                .map(|s| s.stderr_str().to_string())
                .collect()
        };
        assert_eq!(stderrs(&out), stderrs(&real), "{choice}");
        assert_eq!(stderrs(&out), ["head-note\n", "tail-note\n"], "{choice}");
    }
    suite.end().await;
}

/// Issue 14 review: the prompt probe sees a started script's partial
/// line as it does a real program's (`printf 'Name: '; read n; ...`).
#[tokio::test]
async fn wait_for_prompt_sees_a_scripted_prompt() {
    let suite = begin("wait_for_prompt_sees_a_scripted_prompt").await;
    let reply = Reply::ok("Name: ")
        .pause(Duration::from_millis(100))
        .stdout("hi ada\n")
        .keep_running();
    let cmd = Command::new("ask")
        .stdin_piped()
        .stream_lines()
        .runner(scripted(&["ask"], reply));
    let group = Group::new().unwrap();
    let mut p = group.start(&cmd).unwrap();
    let prompt = p
        .wait_for_prompt(|t| t.ends_with(": "), DEADLINE)
        .await
        .unwrap();
    assert_eq!(prompt, "Name: ");
    let line = p
        .wait_for_line(|l| l.text.contains("hi"), DEADLINE)
        .await
        .unwrap();
    assert_eq!(line.text, "Name: hi ada");
    p.kill().unwrap();
    assert_eq!(p.wait().await.unwrap().outcome(), Outcome::Signalled(9));
    group.close().await.unwrap();
    suite.end().await;
}
