#![cfg(target_os = "linux")]
//! att19: a hostile user's round on the layers tests and tools are built
//! on — record/replay, the scripted test double, readiness probes and the
//! CLI-wrapper client — in every mechanism, with real processes.
//!
//! The cases are differential where they can be: what a real run answers
//! (every verb, a started run's lines and its end) is what its recording
//! replays, and what the scripted double answers for the same program.
//!
//! What broke, fixed here: `wait_for_line` offered its predicate the later
//! pieces of a line cut by `max_line_bytes`, so a long line ending in
//! `ready` passed a probe for the line `ready` (a program not ready
//! reported ready; `first_line` and a supervisor's ready line skipped
//! them) (MEDIUM, [`a_line_probe_sees_the_line_however_it_comes`]). A
//! replayed or scripted (`Reply::timed_out`) timeout said "timed out after
//! 0ns" where the live run said the time it took (LOW,
//! [`a_replayed_or_scripted_timeout_tells_its_limit`]). A cassette whose
//! program, arguments or directory were written as arrays of bytes (the
//! format's other spelling), though UTF-8, matched no command: replay
//! answered `CassetteMiss` (LOW,
//! [`a_cassette_edited_by_hand_matches_on_bytes`]).
//!
//! Kept as strong (they would catch a plausible regression in the
//! cassette's blobs, totals, outcome mapping, piece order or the double's
//! verbs): [`every_verb_replays_what_it_answered_live`],
//! [`a_started_run_replays_its_lines_and_end`],
//! [`the_scripted_double_answers_as_the_real_program`],
//! [`a_probe_timing_out_while_the_program_forks_leaves_nothing`],
//! [`the_client_passes_odd_arguments_and_types_odd_programs`],
//! [`one_client_used_from_many_tasks_and_threads_answers_each`],
//! [`a_started_scripted_process_answers_its_handle_as_a_real_one`],
//! [`a_clients_secret_reaches_no_cassette_and_no_error`].
//!
//! Held: replay of binary, empty, interleaved, 1 MB, cut and over-limit
//! output, signals and both timeouts, through every verb and started;
//! line probes on split, stderr, last partial and killed runs; the client's
//! NULs (refused), newlines, dashes, empty and non-UTF-8 arguments,
//! missing, unexecutable and directory programs, SEGV, a 20 MB flood.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use pkit::testing::{RecordReplay, Reply, ScriptedRunner};
use pkit::{CliClient, Command, ErrorKind, MechanismChoice, Runner, SystemRunner};

/// A generous bound for what must end promptly on a loaded machine.
const PROMPT: Duration = Duration::from_secs(60);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PROMPT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

/// A short, comparable digest of bytes: length, FNV-1a, and the first
/// and last 40 bytes.
fn digest(b: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for &x in b {
        h = (h ^ x as u64).wrapping_mul(0x100000001b3);
    }
    let head = &b[..b.len().min(40)];
    let tail = &b[b.len().saturating_sub(40)..];
    format!(
        "{}#{h:016x}{{{:?}..{:?}}}",
        b.len(),
        head.escape_ascii().to_string(),
        tail.escape_ascii().to_string()
    )
}

fn err_text(e: &pkit::Error) -> String {
    let text = format!("err {:?}: {e}", e.kind());
    // A live timeout tells how long the run took: no replay can.
    match text.find("timed out after ") {
        Some(at) => text[..at + "timed out after ".len()].to_string() + "…",
        None => text,
    }
}

/// What every verb answers for `cmd` (its runner set), in order.
async fn verbs(cmd: &Command) -> Vec<String> {
    let mut seen = Vec::new();
    seen.push(match bounded("output", cmd.output()).await {
        Ok(o) => format!(
            "output {:?} out={} err={} totals={}/{} idle={}",
            o.outcome(),
            digest(o.stdout()),
            digest(o.stderr()),
            o.stdout_total_bytes(),
            o.stderr_total_bytes(),
            o.inactivity_timed_out()
        ),
        Err(e) => err_text(&e),
    });
    seen.push(match bounded("run", cmd.run()).await {
        Ok(s) => format!("run {}", digest(s.as_bytes())),
        Err(e) => err_text(&e),
    });
    seen.push(match bounded("exit_code", cmd.exit_code()).await {
        Ok(c) => format!("exit_code {c}"),
        Err(e) => err_text(&e),
    });
    seen.push(match bounded("probe", cmd.probe()).await {
        Ok(b) => format!("probe {b}"),
        Err(e) => err_text(&e),
    });
    seen.push(
        match bounded("first_line", cmd.first_line(|l| l.contains('!'))).await {
            Ok(l) => format!("first_line {l:?}"),
            Err(e) => err_text(&e),
        },
    );
    seen
}

/// What a started run of `cmd` shows: its lines (stream, text, partial),
/// then how its wait ended.
async fn started(cmd: &Command) -> Vec<String> {
    let mut p = cmd.clone().stream_lines().start().expect("start");
    let mut lines = p.lines();
    let mut seen = Vec::new();
    while let Some(l) = bounded("line", lines.next_line()).await {
        seen.push(format!("{:?} {:?} {}", l.stream, l.text, l.partial));
    }
    drop(lines);
    // Each stream has its own reader: live, their lines' interleaving is
    // a race (documented); each stream's own order is not.
    seen.sort_by_key(|l| l.starts_with("Stderr"));
    seen.push(match bounded("wait", p.wait()).await {
        Ok(o) => format!("wait {:?} idle={}", o.outcome(), o.inactivity_timed_out()),
        Err(e) => err_text(&e),
    });
    seen
}

/// Programs with odd output and odd ends.
fn odd_programs() -> Vec<(&'static str, Command)> {
    let sh = |script: &str| Command::new("sh").args(["-c", script, "sh"]);
    vec![
        ("empty", sh("exit 0")),
        ("two lines, no last newline", sh("printf 'a!\\nb'")),
        (
            "binary",
            sh(r"printf 'x\377\000y\r\n\n\342\202 z!\n'; printf '\377\376' >&2"),
        ),
        (
            "interleaved",
            sh("for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; echo last!"),
        ),
        ("failing", sh("echo half!; echo 'boom' >&2; exit 3")),
        ("exit 255", sh("exit 255")),
        ("killed", sh("echo before!; kill -KILL $$")),
        ("terminated, stderr", sh("echo dying >&2; kill -TERM $$")),
        (
            "timed out",
            sh("echo started!; exec sleep 30").timeout(Duration::from_millis(200)),
        ),
        (
            "idle timed out",
            sh("echo started!; exec sleep 30").inactivity_timeout(Duration::from_millis(200)),
        ),
        (
            "huge",
            sh("head -c 400000 /dev/urandom | od -An -tx1; echo end!"),
        ),
        (
            "cut",
            sh("head -c 100000 /dev/zero").capture_limit(1000, pkit::CapturePolicy::KeepTail),
        ),
        (
            "over the limit",
            sh("head -c 100000 /dev/zero").capture_limit(1000, pkit::CapturePolicy::Fail),
        ),
        (
            "stdin",
            sh("cat; echo got!").stdin_bytes(b"in\xffput\n".to_vec()),
        ),
    ]
}

/// Every verb answers a replay as it answered the real run it recorded,
/// for odd output (empty, binary and non-UTF-8, interleaved, 2.5 MB, cut
/// by a capture limit) and odd ends (exit 3 and 255, KILL, TERM, a
/// timeout, an inactivity timeout, a `Fail` limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_replays_what_it_answered_live() {
    let suite = begin("every_verb_replays_what_it_answered_live").await;
    for choice in mechanisms() {
        let file = TempPath::new("a19-verbs.cassette.json");
        let rec = Arc::new(RecordReplay::record(
            file.path(),
            Arc::new(SystemRunner::with_mechanism(choice)),
        ));
        let mut live = Vec::new();
        for (what, cmd) in odd_programs() {
            live.push((what, verbs(&cmd.runner(rec.clone())).await));
        }
        rec.save().expect("save");
        let replay: Arc<dyn Runner> = Arc::new(RecordReplay::replay(file.path()).expect("replay"));
        for ((what, cmd), (_, want)) in odd_programs().into_iter().zip(&live) {
            let got = verbs(&cmd.runner(replay.clone())).await;
            assert_eq!(&got, want, "{choice}: {what}: replayed vs live");
        }
    }
    suite.end().await;
}

/// A started run replays the lines (stream, text, cut pieces) and the end
/// it had live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_run_replays_its_lines_and_end() {
    let suite = begin("a_started_run_replays_its_lines_and_end").await;
    for choice in mechanisms() {
        let file = TempPath::new("a19-started.cassette.json");
        let rec = Arc::new(RecordReplay::record(
            file.path(),
            Arc::new(SystemRunner::with_mechanism(choice)),
        ));
        let mut live = Vec::new();
        for (what, cmd) in odd_programs() {
            if what == "huge" {
                continue;
            }
            let cmd = cmd.max_line_bytes(64);
            live.push((what, started(&cmd.runner(rec.clone())).await));
        }
        rec.save().expect("save");
        let replay: Arc<dyn Runner> = Arc::new(RecordReplay::replay(file.path()).expect("replay"));
        let mut i = 0;
        for (what, cmd) in odd_programs() {
            if what == "huge" {
                continue;
            }
            let cmd = cmd.max_line_bytes(64);
            let got = started(&cmd.runner(replay.clone())).await;
            assert_eq!(got, live[i].1, "{choice}: {what}: replayed vs live");
            i += 1;
        }
    }
    suite.end().await;
}

/// The scripted double answers every verb, and a started run, as the real
/// program it stands for: output, a failure with stderr, a signal, a
/// timeout, a partial last line, stdin given and not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripted_double_answers_as_the_real_program() {
    let suite = begin("the_scripted_double_answers_as_the_real_program").await;
    let limit = Duration::from_millis(200);
    let cases: Vec<(&str, &str, Reply, Option<Duration>)> = vec![
        (
            "ok",
            "printf 'one!\\ntwo\\n'",
            Reply::ok("one!\ntwo\n"),
            None,
        ),
        ("no newline", "printf 'x!'", Reply::ok("x!"), None),
        ("empty", "true", Reply::ok(""), None),
        (
            "fail",
            "echo boom >&2; exit 3",
            Reply::fail(3, "boom\n"),
            None,
        ),
        ("fail 255", "exit 255", Reply::fail(255, ""), None),
        ("killed", "kill -KILL $$", Reply::signalled(9), None),
        ("terminated", "kill -TERM $$", Reply::signalled(15), None),
        (
            "timed out",
            "exec sleep 30",
            Reply::timed_out(),
            Some(limit),
        ),
        ("pending", "exec sleep 30", Reply::pending(), Some(limit)),
    ];
    for choice in mechanisms() {
        for (what, script, reply, timeout) in &cases {
            let with = |cmd: Command| match timeout {
                Some(t) => cmd.timeout(*t),
                None => cmd,
            };
            let real = with(sh(choice, script).stdin_bytes(vec![b'u'; 300_000]));
            let double = Arc::new(ScriptedRunner::new().fallback(reply.clone()));
            let fake = with(
                Command::new("sh")
                    .args(["-c", script, "sh"])
                    .stdin_bytes(vec![b'u'; 300_000])
                    .runner(double),
            );
            let (want, got) = (verbs(&real).await, verbs(&fake).await);
            assert_eq!(got, want, "{choice}: {what}: verbs, scripted vs real");
            let (want, got) = (started(&real).await, started(&fake).await);
            assert_eq!(got, want, "{choice}: {what}: started, scripted vs real");
        }
    }
    suite.end().await;
}

/// What a readiness probe for the line `ready` answers for `script`
/// (started in `choice`'s mechanism, lines cut at 64 bytes), and the
/// group, closed.
async fn ready_probe(
    choice: MechanismChoice,
    script: &str,
    runner: Option<Arc<dyn Runner>>,
) -> String {
    let g = group(choice);
    let mut cmd = Command::new("sh")
        .args(["-c", script, "sh"])
        .stream_lines()
        .max_line_bytes(64);
    if let Some(r) = runner {
        cmd = cmd.runner(r);
    }
    let mut p = g.start(&cmd).expect("start");
    let got = bounded(
        "wait_for_line",
        p.wait_for_line(|l| l.text == "ready", Duration::from_secs(20)),
    )
    .await;
    let pid = p.pid();
    bounded("close", g.close()).await.expect("close");
    if pid != 0 && pid < u32::MAX / 2 {
        assert_gone(&[pid], script).await;
    }
    match got {
        Ok(l) => format!("ready {:?} {:?} partial={}", l.stream, l.text, l.partial),
        Err(pkit::Error::NotReady { reason, .. }) => format!("not ready: {reason}"),
        Err(e) => err_text(&e),
    }
}

/// A line probe finds a ready line written in pieces, on stderr, as the
/// last line with no newline as the program exits, after a line longer
/// than the cut (whose last piece is `ready` is no line `ready`), and
/// tells a program that never prints it, exits first, or closes its
/// output; a recording of each answers the probe the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_probe_sees_the_line_however_it_comes() {
    let suite = begin("a_line_probe_sees_the_line_however_it_comes").await;
    let long = "x".repeat(64);
    let cases = [
        (
            "printf 'rea'; sleep 0.3; printf 'dy\\n'; exec sleep 30",
            "ready Stdout \"ready\" partial=false",
        ),
        (
            "echo ready >&2; exec sleep 30",
            "ready Stderr \"ready\" partial=false",
        ),
        (
            "echo no; printf ready",
            "ready Stdout \"ready\" partial=false",
        ),
        (
            "echo no; printf ready >&2; exit 3",
            "ready Stderr \"ready\" partial=false",
        ),
        (
            &format!("echo {long}ready; echo done") as &str,
            "not ready: the process ended first (exited(0))",
        ),
        (
            "echo readyy; echo ' ready'; exit 0",
            "not ready: the process ended first (exited(0))",
        ),
        (
            "echo nope; kill -KILL $$",
            "not ready: the process ended first (signalled(SIGKILL))",
        ),
        (
            &format!("echo {long}; echo ready; exec sleep 30") as &str,
            "ready Stdout \"ready\" partial=false",
        ),
    ];
    for choice in mechanisms() {
        let file = TempPath::new("a19-probes.cassette.json");
        let rec: Arc<RecordReplay> = Arc::new(RecordReplay::record(
            file.path(),
            Arc::new(SystemRunner::with_mechanism(choice)),
        ));
        for (script, want) in cases {
            let got = ready_probe(choice, script, None).await;
            assert_eq!(got, want, "{choice}: {script}");
            if !script.contains("sleep 30") {
                let got = ready_probe(choice, script, Some(rec.clone())).await;
                assert_eq!(got, want, "{choice}: {script}: recording");
            }
        }
        rec.save().expect("save");
        let replay: Arc<dyn Runner> = Arc::new(RecordReplay::replay(file.path()).expect("replay"));
        for (script, want) in cases {
            if !script.contains("sleep 30") {
                let got = ready_probe(choice, script, Some(replay.clone())).await;
                assert_eq!(got, want, "{choice}: {script}: replayed");
            }
        }
    }
    suite.end().await;
}

/// A probe that times out while the program forks a descendant every few
/// milliseconds leaves the run alone (never kills it), and the group's
/// close then leaves none of its processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_timing_out_while_the_program_forks_leaves_nothing() {
    let suite = begin("a_probe_timing_out_while_the_program_forks_leaves_nothing").await;
    for choice in mechanisms() {
        let pids = TempPath::new("a19-forks.pids");
        let g = group(choice);
        let script = r#"echo $$ >> "$1"; while :; do sleep 30 & echo $! >> "$1"; echo tick; sleep 0.01; done"#;
        let cmd = Command::new("sh")
            .args(["-c", script, "sh", pids.as_str()])
            .stream_lines();
        let mut p = g.start(&cmd).expect("start");
        let err = bounded(
            "wait_for_line",
            p.wait_for_line(|l| l.text == "ready", Duration::from_millis(700)),
        )
        .await
        .expect_err("never ready");
        assert!(
            matches!(
                &err,
                pkit::Error::NotReady {
                    reason: pkit::NotReadyReason::Deadline(_),
                    ..
                }
            ),
            "{choice}: {err}"
        );
        let err = bounded(
            "wait_for",
            p.wait_for(|| async { false }, Duration::from_millis(300)),
        )
        .await
        .expect_err("never ready");
        assert_eq!(err.kind(), ErrorKind::NotReady, "{choice}: {err}");
        let forked = pid_lines(&std::fs::read_to_string(pids.path()).unwrap_or_default());
        assert!(forked.len() > 2, "{choice}: forked {forked:?}");
        assert_alive(&forked[..1], "the probed program, after its probes");
        bounded("close", g.close()).await.expect("close");
        let forked = pid_lines(&std::fs::read_to_string(pids.path()).unwrap_or_default());
        assert_gone(
            &forked,
            &format!("{choice}: the program and its descendants"),
        )
        .await;
    }
    suite.end().await;
}

/// A timed-out run's error says how long it ran: live, the time it took;
/// replayed from a cassette or answered by `Reply::timed_out`, the limit
/// that ended it — it said "timed out after 0ns" (the replay's and the
/// script's duration), a run no timeout of 400 ms could have ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_or_scripted_timeout_tells_its_limit() {
    let suite = begin("a_replayed_or_scripted_timeout_tells_its_limit").await;
    let limit = Duration::from_millis(400);
    for choice in mechanisms() {
        let file = TempPath::new("a19-timeout.cassette.json");
        let rec = Arc::new(RecordReplay::record(
            file.path(),
            Arc::new(SystemRunner::with_mechanism(choice)),
        ));
        let total = sh(choice, "exec sleep 30").timeout(limit);
        let idle = sh(choice, "echo a; exec sleep 30").inactivity_timeout(limit);
        for cmd in [&total, &idle] {
            let live = bounded("live", cmd.clone().runner(rec.clone()).run()).await;
            let live = live.expect_err("timed out");
            assert!(
                live.to_string().contains("timed out after "),
                "{choice}: {live}"
            );
        }
        let script = Arc::new(ScriptedRunner::new().fallback(Reply::timed_out()));
        let err = bounded("scripted", total.clone().runner(script).run()).await;
        let err = err.expect_err("timed out");
        assert!(
            err.to_string().starts_with("sh: timed out after 400ms"),
            "{choice}: scripted: {err}"
        );
        rec.save().expect("save");
        let replay: Arc<dyn Runner> = Arc::new(RecordReplay::replay(file.path()).expect("replay"));
        for cmd in [&total, &idle] {
            let err = bounded("replay", cmd.clone().runner(replay.clone()).run()).await;
            let err = err.expect_err("timed out");
            assert_eq!(err.kind(), ErrorKind::Timeout, "{choice}: {err}");
            assert!(
                err.to_string().starts_with("sh: timed out after 400ms"),
                "{choice}: replayed: {err}"
            );
        }
    }
    suite.end().await;
}

/// A client of `sh -c 'printf "[%s]" "$@"'` on `choice`'s mechanism.
fn echo_client(choice: MechanismChoice) -> CliClient {
    CliClient::new("sh")
        .with_runner(Arc::new(SystemRunner::with_mechanism(choice)))
        .args(["-c", r#"printf '[%s]' "$@""#, "sh"])
}

/// The CLI-wrapper client passes arguments with newlines, leading dashes,
/// `--`, empty strings and non-UTF-8 bytes through untouched, and refuses
/// one with a NUL (no process); a wrapped program that is missing, not
/// executable, a directory, killed by a signal or flooding its output
/// gives its own typed error, and leaves no process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_passes_odd_arguments_and_types_odd_programs() {
    use std::os::unix::ffi::OsStrExt;
    let suite = begin("the_client_passes_odd_arguments_and_types_odd_programs").await;
    let dir = TempPath::new("a19-client-dir");
    std::fs::create_dir_all(dir.path()).unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "#!/bin/sh\necho hi\n").unwrap();
    for choice in mechanisms() {
        let c = echo_client(choice);
        let odd: Vec<&std::ffi::OsStr> = vec![
            "-".as_ref(),
            "--".as_ref(),
            "--flag=a b".as_ref(),
            "-rf".as_ref(),
            "".as_ref(),
            "two\nlines\r\n".as_ref(),
            std::ffi::OsStr::from_bytes(b"\xff\xfe raw"),
        ];
        let out = bounded("odd", c.output(&odd)).await.expect("odd arguments");
        assert_eq!(
            out.stdout(),
            b"[-][--][--flag=a b][-rf][][two\nlines\r\n][\xff\xfe raw]",
            "{choice}"
        );
        for nul in ["a\0b", "\0", "-\0-"] {
            let err = bounded("nul", c.run([nul])).await.expect_err("a NUL");
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{choice}: {err}");
        }
        let runner = Arc::new(SystemRunner::with_mechanism(choice));
        let missing = CliClient::new("a19-no-such-tool").with_runner(runner.clone());
        let err = bounded("missing", missing.run(["x"]))
            .await
            .expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{choice}: {err}");
        let not_exec = CliClient::new(&plain).with_runner(runner.clone());
        let err = bounded("not executable", not_exec.run(["x"]))
            .await
            .expect_err("mode 0644");
        assert_eq!(err.kind(), ErrorKind::NotExecutable, "{choice}: {err}");
        let a_dir = CliClient::new(dir.path()).with_runner(runner.clone());
        let err = bounded("a directory", a_dir.run(["x"]))
            .await
            .expect_err("a directory");
        assert_eq!(err.kind(), ErrorKind::NotExecutable, "{choice}: {err}");
        let killer = CliClient::new("sh").with_runner(runner.clone()).arg("-c");
        let err = bounded("killed", killer.run(["echo out; kill -SEGV $$"]))
            .await
            .expect_err("SEGV");
        assert_eq!(err.kind(), ErrorKind::Signalled, "{choice}: {err}");
        assert_eq!(
            err.output().map(|o| o.stdout()),
            Some(&b"out\n"[..]),
            "{choice}"
        );
        assert_eq!(
            bounded("code", killer.exit_code(["kill -SEGV $$"]))
                .await
                .map_err(|e| e.kind()),
            Err(ErrorKind::Signalled),
            "{choice}"
        );
        let flood = killer.clone().timeout(Duration::from_secs(30));
        let out = bounded(
            "flood",
            flood
                .command(["yes flood | head -c 20000000; echo done"])
                .capture_limit(1 << 16, pkit::CapturePolicy::KeepTail)
                .output(),
        )
        .await
        .expect("flood");
        assert!(out.success() && out.stdout_truncated(), "{choice}");
        assert!(
            out.stdout().ends_with(b"flood\nfldone\n") && out.stdout_total_bytes() == 20_000_005,
            "{choice}: {}",
            out.stdout_total_bytes()
        );
    }
    suite.end().await;
}

/// One client shared by 32 tasks and 4 threads (each with its own
/// runtime), every call with its own arguments: each gets its own answer.
#[test]
fn one_client_used_from_many_tasks_and_threads_answers_each() {
    in_suite(
        "one_client_used_from_many_tasks_and_threads_answers_each",
        || {
            for choice in mechanisms() {
                let c = Arc::new(echo_client(choice));
                let threads: Vec<_> = (0..4)
                    .map(|t| {
                        let c = c.clone();
                        std::thread::spawn(move || {
                            let rt = tokio::runtime::Builder::new_multi_thread()
                                .worker_threads(2)
                                .enable_all()
                                .build()
                                .unwrap();
                            rt.block_on(async move {
                                let calls = (0..8).map(|i| {
                                    let c = c.clone();
                                    tokio::spawn(async move {
                                        let arg = format!("t{t}-c{i}\n-x");
                                        let got =
                                            bounded("call", c.run([arg.as_str(), "--"])).await;
                                        (arg, got)
                                    })
                                });
                                for call in calls.collect::<Vec<_>>() {
                                    let (arg, got) = call.await.unwrap();
                                    // run trims the output's end.
                                    assert_eq!(
                                        got.expect("call"),
                                        format!("[{arg}][--]"),
                                        "{choice}"
                                    );
                                }
                            })
                        })
                    })
                    .collect();
                for t in threads {
                    t.join().expect("a thread");
                }
            }
        },
    );
}

/// `text` with every JSON string inside the first `"<field>": [ ... ]`
/// (or the string value of `"<field>": "..."`) written as an array of
/// its bytes, as a hand or another tool may write it (strings without
/// escapes or brackets only).
fn as_byte_arrays(text: &str, field: &str) -> String {
    let key = format!("\"{field}\": ");
    let at = text.find(&key).expect("the field") + key.len();
    let end = match text.as_bytes()[at] {
        b'[' => at + text[at..].find(']').expect("the array's end") + 1,
        _ => at + 1 + text[at + 1..].find('"').expect("the string's end") + 1,
    };
    let mut out = String::new();
    let mut rest = &text[at..end];
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..open]);
        let close = open + 1 + rest[open + 1..].find('"').expect("a closing quote");
        let bytes: Vec<String> = rest[open + 1..close]
            .bytes()
            .map(|b| b.to_string())
            .collect();
        out.push_str(&format!("[{}]", bytes.join(", ")));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    format!("{}{out}{}", &text[..at], &text[end..])
}

/// A cassette edited by hand so its program, arguments (an empty one
/// included) and working directory are arrays of bytes, though UTF-8 —
/// the format's other spelling of the same bytes — still answers the
/// command it recorded: it was a `CassetteMiss` (a string and an array
/// of the same bytes never matched). A truncated cassette is refused
/// naming its path, and one whose format was edited to a float is no
/// cassette.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cassette_edited_by_hand_matches_on_bytes() {
    let suite = begin("a_cassette_edited_by_hand_matches_on_bytes").await;
    let dir = TempPath::new("a19-edited-dir");
    std::fs::create_dir_all(dir.path()).unwrap();
    for choice in mechanisms() {
        let file = TempPath::new("a19-edited.cassette.json");
        let rec = Arc::new(RecordReplay::record(
            file.path(),
            Arc::new(SystemRunner::with_mechanism(choice)),
        ));
        let cmd = Command::new("sh")
            .args(["-c", "echo x$1$2$3; exit 7", "sh", "hi", "", "-n"])
            .current_dir(dir.path());
        let live = bounded("live", cmd.clone().runner(rec.clone()).output())
            .await
            .expect("live");
        assert_eq!(
            (live.stdout(), live.code()),
            (&b"xhi-n\n"[..], Some(7)),
            "{choice}"
        );
        rec.save().expect("save");
        let text = std::fs::read_to_string(file.path()).unwrap();
        let edited = ["program", "args", "cwd"]
            .iter()
            .fold(text.clone(), |t, field| as_byte_arrays(&t, field));
        assert!(
            edited.contains("[115, 104]") && edited.contains("[]"),
            "{edited}"
        );
        std::fs::write(file.path(), &edited).unwrap();
        let replay = Arc::new(RecordReplay::replay(file.path()).expect("the edited cassette"));
        let got = bounded("replay", cmd.clone().runner(replay).output()).await;
        let got =
            got.unwrap_or_else(|e| panic!("{choice}: {e} ({:?}), cassette {edited}", e.kind()));
        assert_eq!(
            (got.stdout(), got.code()),
            (live.stdout(), live.code()),
            "{choice}"
        );

        std::fs::write(file.path(), &text[..text.len() / 2]).unwrap();
        let err = RecordReplay::replay(file.path()).expect_err("truncated");
        assert!(
            err.to_string().contains(&*file.path().to_string_lossy()),
            "{err}"
        );
        std::fs::write(
            file.path(),
            text.replacen("\"format\": 1", "\"format\": 1.0", 1),
        )
        .unwrap();
        let err = RecordReplay::replay(file.path()).expect_err("a float format");
        assert!(err.to_string().contains("not a cassette"), "{err}");
    }
    suite.end().await;
}

/// What a started run of `cmd` shows when its handle does `action` once
/// it said `up`: the action's answer, then the run's end.
async fn acted_on(cmd: &Command, action: &str) -> Vec<String> {
    let mut p = cmd.clone().stream_lines().start().expect("start");
    let mut seen = Vec::new();
    let up = bounded("up", p.wait_for_line(|l| l.text == "up", PROMPT)).await;
    seen.push(format!(
        "up {:?} running={} try_wait={:?}",
        up.map(|l| l.text),
        p.is_running(),
        p.try_wait().map_err(|e| e.kind())
    ));
    let done = match action {
        "kill" => p.kill().map(|()| String::new()),
        "term" => p.signal(pkit::Signal::Term).map(|()| String::new()),
        "int" => p.signal(pkit::Signal::Int).map(|()| String::new()),
        "shutdown" => bounded("shutdown", p.shutdown(Duration::from_secs(20)))
            .await
            .map(|left| format!("left={left}")),
        other => panic!("{other}"),
    };
    seen.push(format!("{action}: {:?}", done.map_err(|e| e.kind())));
    seen.push(match bounded("wait", p.wait()).await {
        Ok(o) => format!("wait {:?} running={}", o.outcome(), p.is_running()),
        Err(e) => err_text(&e),
    });
    seen
}

/// A started scripted process answers its handle's kill, signals and
/// shutdown as the real program does. (Its stdin is not compared here:
/// a scripted process reads its stdin to the end before it exits, as a
/// filter does — documented — where a program that exits at once fails
/// the caller's write with a broken pipe.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_scripted_process_answers_its_handle_as_a_real_one() {
    let suite = begin("a_started_scripted_process_answers_its_handle_as_a_real_one").await;
    let cases = [
        (
            "kill",
            "echo up; exec sleep 30",
            Reply::ok("up\n").keep_running(),
        ),
        (
            "term",
            "echo up; exec sleep 30",
            Reply::ok("up\n").keep_running(),
        ),
        (
            "int",
            "echo up; exec sleep 30",
            Reply::ok("up\n").keep_running(),
        ),
        (
            "shutdown",
            "echo up; exec sleep 30",
            Reply::ok("up\n").keep_running(),
        ),
    ];
    for choice in mechanisms() {
        for (action, script, reply) in &cases {
            let real = sh(choice, script);
            let fake = Command::new("sh")
                .args(["-c", script, "sh"])
                .runner(Arc::new(ScriptedRunner::new().fallback(reply.clone())));
            let want = acted_on(&real, action).await;
            let got = acted_on(&fake, action).await;
            assert_eq!(got, want, "{choice}: {action}: scripted vs real");
        }
    }
    suite.end().await;
}

/// A secret whose every 3-byte window is foreign to the scripts' text.
const SECRET: &str = "Q9Z7K-W8X6V-J5Y4";

/// Every 3-byte piece of [`SECRET`] that `text` holds.
fn secret_pieces_in(text: &str) -> Vec<&'static str> {
    (0..=SECRET.len() - 3)
        .map(|i| &SECRET[i..i + 3])
        .filter(|w| text.contains(w))
        .collect()
}

/// A client's default secret argument, recorded through every client
/// verb and through a started run (`first_line`) of a program that
/// echoes it on both streams and fails: neither the cassette
/// nor any error (live or replayed) holds any 3-byte piece of it, and a
/// client with a dummy secret replays the runs. A client marked
/// `secret_output` is refused at the save, naming no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_secret_reaches_no_cassette_and_no_error() {
    let suite = begin("a_clients_secret_reaches_no_cassette_and_no_error").await;
    let script = r#"printf '%s' "$1"; echo " $2!"; printf 'bad %s\n' "$1" >&2; exit 3"#;
    let client = |secret: &str, runner: Arc<dyn Runner>| {
        CliClient::new("sh")
            .args(["-c", script, "sh"])
            .secret_arg(secret)
            .with_runner(runner)
    };
    let shown = |e: &pkit::Error| format!("{e}\n{e:?}\n{}", e.diagnostic());
    for choice in mechanisms() {
        let file = TempPath::new("a19-secret.cassette.json");
        let rec = Arc::new(RecordReplay::record(
            file.path(),
            Arc::new(SystemRunner::with_mechanism(choice)),
        ));
        let c = client(SECRET, rec.clone());
        let mut errors = Vec::new();
        let out = bounded("output", c.output(["plain"]))
            .await
            .expect("output");
        assert_eq!(out.code(), Some(3), "{choice}");
        errors.push(bounded("run", c.run(["plain"])).await.expect_err("exit 3"));
        assert_eq!(
            bounded("exit_code", c.exit_code(["plain"])).await.ok(),
            Some(3),
            "{choice}"
        );
        let started = c.command(["plain"]);
        let first = bounded("first_line", started.first_line(|l| l.ends_with('!'))).await;
        // Live, the caller sees what the program wrote.
        assert_eq!(
            first.expect("a line"),
            Some(format!("{SECRET} plain!")),
            "{choice}"
        );
        rec.save().expect("save");
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(
            secret_pieces_in(&text).is_empty(),
            "{choice}: {:?} in {text}",
            secret_pieces_in(&text)
        );
        let replay: Arc<dyn Runner> = Arc::new(RecordReplay::replay(file.path()).expect("replay"));
        let d = client("dummy", replay);
        let again = bounded("replayed output", d.output(["plain"]))
            .await
            .expect("replayed");
        assert_eq!(again.code(), Some(3), "{choice}");
        errors.push(
            bounded("replayed run", d.run(["plain"]))
                .await
                .expect_err("exit 3"),
        );
        for e in &errors {
            let text = shown(e);
            assert!(secret_pieces_in(&text).is_empty(), "{choice}: {text}");
        }

        let rec = Arc::new(RecordReplay::record(
            file.path(),
            Arc::new(SystemRunner::with_mechanism(choice)),
        ));
        let quiet = client(SECRET, rec.clone()).secret_output();
        let _ = bounded("quiet", quiet.output(["plain"]))
            .await
            .expect("output");
        let err = rec.save().expect_err("secret output");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{choice}: {err}");
        assert!(secret_pieces_in(&shown(&err)).is_empty(), "{choice}: {err}");
        let left = std::fs::read_to_string(file.path()).unwrap();
        assert_eq!(left, text, "{choice}: the refused save wrote nothing");
    }
    suite.end().await;
}
