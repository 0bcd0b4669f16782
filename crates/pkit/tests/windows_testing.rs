//! `pkit::testing` (feature `testing`) on Windows: scripted replies through
//! the verbs and through a started run's line pump (the script writes into
//! real Windows pipes), and a cassette recorded from real `cmd /c` runs
//! then replayed without running anything. Built for
//! x86_64-pc-windows-gnu and run under Wine by `.ci/windows/run`, or
//! natively.
#![cfg(windows)]

use std::sync::Arc;
use std::time::Duration;

use pkit::testing::{RecordReplay, Reply, ScriptedRunner};
use pkit::{Command, Group, Outcome, StreamKind, SystemRunner};

const DEADLINE: Duration = Duration::from_secs(20);

fn tool(reply: Reply) -> Command {
    let runner = Arc::new(ScriptedRunner::new().on(["tool", "do", "it"], reply));
    Command::new("tool").args(["do", "it"]).runner(runner)
}

/// A fresh directory under the temporary directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pkit-win-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_replies_answer_every_verb() {
    let out = tool(Reply::ok("main\n")).output().await.unwrap();
    assert_eq!((out.code(), out.stdout()), (Some(0), &b"main\n"[..]));
    assert_eq!(tool(Reply::ok("main\n")).run().await.unwrap(), "main");
    let code = tool(Reply::fail(3, "nope\n")).exit_code().await.unwrap();
    assert_eq!(code, 3);
    let err = tool(Reply::fail(2, "fatal: nope\n"))
        .run()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("fatal: nope"), "{err}");
    // Nothing matches: an error naming the command, nothing run.
    let runner = Arc::new(ScriptedRunner::new());
    let err = Command::new("cmd")
        .args(["/c", "echo", "ran"])
        .runner(runner)
        .output()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cmd"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_script_streams_its_lines_then_is_killed() {
    let reply = Reply::ok("booting\n")
        .stderr("cache cold\n")
        .pause(Duration::from_millis(20))
        .stdout("listening on :8080\n")
        .keep_running();
    let group = Group::new().unwrap();
    let mut p = group
        .start(&tool(reply).stream_lines())
        .expect("a scripted start");
    let mut lines = p.lines();
    let mut got = Vec::new();
    for _ in 0..3 {
        let l = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("a line in time")
            .expect("a line");
        got.push((l.stream, l.text));
    }
    // Every line arrives, each with its stream. (The order across the two
    // streams is best effort on Windows: compare each stream's own order.)
    let of = |s: StreamKind| {
        got.iter()
            .filter(|(k, _)| *k == s)
            .map(|(_, t)| t.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(of(StreamKind::Stdout), ["booting", "listening on :8080"]);
    assert_eq!(of(StreamKind::Stderr), ["cache cold"]);
    assert!(p.is_running(), "keep_running: it runs on");
    p.kill().unwrap();
    let out = tokio::time::timeout(DEADLINE, p.wait())
        .await
        .expect("ends in time")
        .unwrap();
    assert_eq!(out.outcome(), Outcome::Signalled(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_script_reads_its_stdin_to_the_end_first() {
    let group = Group::new().unwrap();
    let cmd = tool(Reply::ok("done\n")).stdin_bytes(vec![b'x'; 200_000]);
    let mut p = group.start(&cmd).expect("a scripted start");
    let out = tokio::time::timeout(DEADLINE, p.wait())
        .await
        .expect("ends in time")
        .unwrap();
    assert_eq!((out.code(), out.stdout()), (Some(0), &b"done\n"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_script_is_cut_by_its_timeout() {
    let group = Group::new().unwrap();
    let cmd = tool(Reply::pending()).timeout(Duration::from_millis(100));
    let mut p = group.start(&cmd).expect("a scripted start");
    let out = tokio::time::timeout(DEADLINE, p.wait())
        .await
        .expect("ends in time")
        .unwrap();
    assert!(out.timed_out(), "{:?}", out.outcome());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cassette_records_real_runs_and_replays_them_without_running() {
    let dir = TempDir::new("cassette");
    let path = dir.0.join("runs.json");
    let marker = dir.0.join("marker.txt");
    let recorder = Arc::new(RecordReplay::record(
        &path,
        Arc::new(SystemRunner::default()),
    ));
    let echo = Command::new("cmd").args(["/c", "echo", "hello"]);
    let fail = Command::new("cmd").args(["/c", "echo oops 1>&2 & exit 3"]);
    let touch = Command::new("cmd")
        .args(["/c", "echo made> marker.txt"])
        .current_dir(&dir.0)
        .env("CASSETTE_TOKEN", "token-value-never-written");
    let mut want = Vec::new();
    for cmd in [&echo, &fail, &touch] {
        want.push(cmd.clone().runner(recorder.clone()).output().await.unwrap());
    }
    assert_eq!(want[0].stdout(), b"hello\r\n");
    assert_eq!(want[1].code(), Some(3));
    assert!(
        String::from_utf8_lossy(want[1].stderr()).contains("oops"),
        "{:?}",
        want[1]
    );
    assert!(marker.exists(), "the recorded run really ran");
    assert_eq!(recorder.len(), 3);
    recorder.save().unwrap();

    // Names but not values, and no temporary file left beside it.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("CASSETTE_TOKEN"));
    assert!(!text.contains("token-value-never-written"));
    let mut left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["marker.txt", "runs.json"]);

    // Replay: the same bytes and outcomes, and nothing runs.
    std::fs::remove_file(&marker).unwrap();
    let replay = Arc::new(RecordReplay::replay(&path).unwrap());
    assert_eq!(replay.len(), 3);
    for (cmd, w) in [&echo, &fail, &touch].into_iter().zip(&want) {
        let g = cmd.clone().runner(replay.clone()).output().await.unwrap();
        assert_eq!(
            (w.outcome(), w.stdout(), w.stderr()),
            (g.outcome(), g.stdout(), g.stderr())
        );
        assert_eq!(g.duration(), Duration::ZERO);
    }
    assert!(!marker.exists(), "the replay ran the command");
    // Saved again over the old file (Windows renames onto an existing
    // name too).
    replay.save().unwrap();
    assert!(RecordReplay::replay(&path).unwrap().len() == 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_real_run_is_recorded_and_replayed_through_the_pump() {
    let dir = TempDir::new("cassette-started");
    let path = dir.0.join("started.json");
    let recorder = Arc::new(RecordReplay::record(
        &path,
        Arc::new(SystemRunner::default()),
    ));
    let cmd = Command::new("cmd")
        .args(["/c", "echo one& echo two"])
        .stream_lines();
    let group = Group::new().unwrap();
    let mut p = group.start(&cmd.clone().runner(recorder.clone())).unwrap();
    let mut lines = p.lines();
    let mut want = Vec::new();
    while let Some(l) = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("a line in time")
    {
        want.push(l.text);
    }
    let out = p.wait().await.unwrap();
    assert_eq!(out.code(), Some(0));
    assert_eq!(want, ["one", "two"]);
    recorder.save().unwrap();

    let replay = Arc::new(RecordReplay::replay(&path).unwrap());
    let mut p = group.start(&cmd.runner(replay)).unwrap();
    let mut lines = p.lines();
    let mut got = Vec::new();
    while let Some(l) = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("a line in time")
    {
        got.push(l.text);
    }
    assert_eq!(got, want);
    assert_eq!(p.wait().await.unwrap().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_script_on_a_pty_is_refused() {
    // A script can't write to a pseudo console (only the processes on it
    // can): refused, never a session whose output goes nowhere.
    let group = Group::new().unwrap();
    let err = group
        .start(&tool(Reply::ok("main\n")).pty(24, 80))
        .unwrap_err();
    assert_eq!(err.kind(), pkit::ErrorKind::Unsupported, "{err}");
}
