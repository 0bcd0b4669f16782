//! attack12: a hostile user's round on the upper layers — secrets in
//! errors, events and cassettes; retries; supervision with readiness
//! checks; hostile cassettes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::events::recorder;
use common::*;
use pkit::testing::RecordReplay;
use pkit::{CancelToken, CapturePolicy, Command, Error, StopReason, Supervisor, SystemRunner};

/// A secret whose every 3-byte window is foreign to the scripts' text.
const SECRET: &str = "Q9Z7K-W8X6V-J5Y4";

/// Every 3-byte piece of `SECRET` that `text` holds.
fn pieces_in(text: &str) -> Vec<&'static str> {
    (0..=SECRET.len() - 3)
        .map(|i| &SECRET[i..i + 3])
        .filter(|w| text.contains(w))
        .collect()
}

/// Bounds a future on a loaded machine.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

/// The error's message, its `Debug` and its `diagnostic`, with its
/// sources' messages and `Debug`.
fn shown(err: &Error) -> String {
    let mut text = format!("{err}\n{err:?}\n{}", err.diagnostic());
    let mut src = std::error::Error::source(err);
    while let Some(s) = src {
        text.push_str(&format!("\n{s}\n{s:?}"));
        src = s.source();
    }
    text
}

/// A program that prints a secret argument on stderr and fails, its
/// capture cut (by a `KeepHead`, `KeepTail` or `Fail` limit) in the middle
/// of the echo: the error quoted the part of the secret the cut left,
/// which the byte-for-byte redaction could not recognise ("auth failed for
/// Q9Z7K-"), though a secret is "never left in part".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_cut_by_the_capture_leaves_no_part_in_the_error() {
    let suite = begin("a_secret_cut_by_the_capture_leaves_no_part_in_the_error").await;
    let echo = r#"printf 'auth failed for %s' "$1" >&2; exit 3"#;
    // "auth failed for " is 16 bytes: 16 + 6 cuts the secret after 6.
    let cases = [
        (CapturePolicy::KeepHead, 22),
        (CapturePolicy::KeepTail, 10),
        (CapturePolicy::Fail, 22),
    ];
    for choice in mechanisms() {
        for (policy, limit) in cases {
            let cmd = sh(choice, echo)
                .secret_arg(SECRET)
                .capture_limit(limit, policy);
            let what = format!("{choice}: {policy:?} {limit}");
            let err = bounded("run", cmd.run()).await.expect_err("exit 3");
            assert!(err.output().is_some_and(|o| o.stderr_truncated()), "{what}");
            let text = shown(&err);
            assert!(pieces_in(&text).is_empty(), "{what}: run: {text}");
            if policy == CapturePolicy::Fail {
                // A started process's wait fails at the limit too.
                let g = group(choice);
                let mut p = g.start(&cmd).expect("start");
                let err = bounded("wait", p.wait()).await.expect_err("the limit");
                let text = shown(&err);
                assert!(pieces_in(&text).is_empty(), "{what}: wait: {text}");
                bounded("close", g.close()).await.expect("close");
            }
        }
    }
    suite.end().await;
}

/// The same cut, recorded to a cassette: the file and its replay hold no
/// part of the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_cut_by_the_capture_is_not_recorded_in_part() {
    let suite = begin("a_secret_cut_by_the_capture_is_not_recorded_in_part").await;
    let file = TempPath::new("cut.cassette.json");
    let rec = Arc::new(RecordReplay::record(
        file.path(),
        Arc::new(SystemRunner::default()),
    ));
    let echo = r#"printf 'auth failed for %s' "$1"; printf 'auth failed for %s' "$1" >&2"#;
    for (policy, limit) in [(CapturePolicy::KeepHead, 22), (CapturePolicy::KeepTail, 10)] {
        let out = Command::new("sh")
            .args(["-c", echo, "sh"])
            .secret_arg(SECRET)
            .arg(format!("{policy:?}"))
            .capture_limit(limit, policy)
            .runner(rec.clone())
            .output()
            .await
            .expect("output");
        assert!(out.stdout_truncated() && out.stderr_truncated());
    }
    rec.save().expect("save");
    let text = std::fs::read_to_string(file.path()).unwrap();
    assert!(
        pieces_in(&text).is_empty(),
        "{:?} in {text}",
        pieces_in(&text)
    );
    suite.end().await;
}

/// Every event of a retried, timed-out, supervised and unhealthy run whose
/// secret argument is odd (multi-line, a substring of a plain argument's
/// neighbour, very long) carries none of it, nor does any error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_secrets_reach_no_event_and_no_error() {
    recorder();
    let suite = begin("odd_secrets_reach_no_event_and_no_error").await;
    let long = SECRET.repeat(4096);
    let multi = format!("{SECRET}\n{SECRET}\r\n\u{1b}[2J");
    let echo = r#"echo "$1"; echo "bad $1" >&2; sleep "$2"; exit 4"#;
    for choice in mechanisms() {
        for secret in [SECRET, multi.as_str(), long.as_str()] {
            let cmd = |sleep: &str| {
                sh(choice, echo)
                    .secret_arg(secret)
                    .arg(sleep)
                    .log_name("odd-secret")
            };
            let err = bounded("retried", cmd("0").retry(3, Duration::ZERO, |_| true).run())
                .await
                .expect_err("exit 4");
            assert!(pieces_in(&shown(&err)).is_empty(), "{choice}: retried");
            let err = bounded(
                "timeout",
                cmd("30").timeout(Duration::from_millis(300)).run(),
            )
            .await
            .expect_err("timeout");
            assert!(err.is_timeout() && pieces_in(&shown(&err)).is_empty());
            let outcome = bounded(
                "supervised",
                Supervisor::new(cmd("0"))
                    .mechanism(choice)
                    .max_restarts(1)
                    .backoff(Duration::ZERO, 1.0)
                    .ready_when_line(|l| l == "never", Duration::from_millis(300))
                    .run(),
            )
            .await
            .expect("supervise");
            assert_eq!(outcome.stopped, StopReason::RestartsExhausted);
            assert!(pieces_in(&format!("{outcome:?}")).is_empty());
        }
    }
    let seen = recorder().seen.lock().unwrap().clone();
    assert!(seen.iter().any(|s| s.get("name") == Some("odd-secret")));
    for s in &seen {
        let text = format!("{:?}", s.fields);
        assert!(
            pieces_in(&text).is_empty(),
            "an event shows the secret: {text}"
        );
    }
    suite.end().await;
}

/// A readiness check that runs a command of its own, which leaves a
/// grandchild and hangs past the check's timeout: when the check is given
/// up, its run's tree (the grandchild too) is gone with the supervised
/// run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_check_commands_tree_is_gone_with_the_run() {
    let suite = begin("a_hanging_check_commands_tree_is_gone_with_the_run").await;
    for choice in mechanisms() {
        let pids = TempPath::new("check-pids");
        let p = pids.as_str().to_string();
        let script =
            r#"sleep 300 & echo $! >> "$1"; echo $$ >> "$1"; echo done >> "$1"; sleep 300"#;
        let check = move || {
            let cmd = sh(choice, script).arg(&p);
            async move { cmd.probe().await.unwrap_or(false) }
        };
        let served = TempPath::new("served-pid");
        let handle =
            Supervisor::new(sh(choice, r#"echo $$ > "$1"; exec sleep 300"#).arg(served.as_str()))
                .mechanism(choice)
                .max_restarts(0)
                .ready_when(check, Duration::from_millis(1500))
                .start();
        let outcome = bounded("supervised", handle.wait()).await.expect("wait");
        assert_eq!(outcome.stopped, StopReason::RestartsExhausted, "{choice}");
        assert!(outcome.final_unhealthy, "{choice}");
        let mut all = pids.wait_pids().await;
        all.push(pid_in_file(&served, "served").await);
        assert_gone(&all, &format!("{choice}: the check's tree and the run")).await;
    }
    suite.end().await;
}

/// A stop asked while a readiness check hangs ends the supervision at
/// once (not after the check's long timeout), the run's tree gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_hanging_check_ends_at_once() {
    let suite = begin("a_stop_during_a_hanging_check_ends_at_once").await;
    for choice in mechanisms() {
        let mut handle = Supervisor::new(sh(choice, "sleep 300 & exec sleep 300"))
            .mechanism(choice)
            .ready_when(std::future::pending::<bool>, Duration::from_secs(3600))
            .start();
        let pid = match bounded("start", handle.next_event()).await {
            Some(pkit::SupervisorEvent::Started { pid, .. }) => pid,
            other => panic!("{choice}: {other:?}"),
        };
        let outcome = bounded("stop", handle.stop()).await.expect("stop");
        assert_eq!(outcome.stopped, StopReason::StopRequested, "{choice}");
        assert_gone(&[pid], &format!("{choice}: the run")).await;
    }
    suite.end().await;
}

/// Retry bounds: 0 attempts run once; `u32::MAX` attempts with a huge
/// backoff end at once on a cancel during the pause, with `Cancelled` and
/// no process left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_extremes_are_bounded_and_cancellable() {
    let suite = begin("retry_extremes_are_bounded_and_cancellable").await;
    for choice in mechanisms() {
        let count = TempPath::new("retry-count");
        let counting = |attempts: u32, backoff: Duration| {
            sh(choice, r#"echo x >> "$1"; exit 5"#)
                .arg(count.as_str())
                .retry(attempts, backoff, |_| true)
                .retry_jitter(1.0)
        };
        let err = bounded("zero", counting(0, Duration::ZERO).run())
            .await
            .expect_err("5");
        assert_eq!(err.output().and_then(|o| o.code()), Some(5));
        let lines = std::fs::read_to_string(count.path())
            .unwrap()
            .lines()
            .count();
        assert_eq!(lines, 1, "{choice}: 0 attempts is one run");

        let token = CancelToken::new();
        let cmd = counting(u32::MAX, Duration::MAX).cancel_token(&token);
        let t = token.clone();
        let cancel = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            t.cancel();
        });
        let began = Instant::now();
        let err = bounded("huge", cmd.run()).await.expect_err("cancelled");
        assert!(err.is_cancelled(), "{choice}: {err}");
        assert!(began.elapsed() < Duration::from_secs(50));
        cancel.await.unwrap();
        let lines = std::fs::read_to_string(count.path())
            .unwrap()
            .lines()
            .count();
        assert_eq!(lines, 2, "{choice}: one attempt, then the pause");
    }
    suite.end().await;
}

/// Hostile cassettes: each is a typed `InvalidData` error, never a panic
/// or a hang.
#[test]
fn hostile_cassettes_are_typed_errors() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let run = |extra: &str| {
        format!(
            r#"{{"format":3,"runs":[{{"program":"p","args":[],"cwd":null,"env_names":[],
            "outcome":{{"exited":0}},"stdout":"","stderr":"","stdout_total_bytes":0,
            "stderr_total_bytes":0{extra}}}]}}"#
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (deep, "nested 100 000 deep"),
        (r#"{"format":3,"runs":[{"program":"p""#.into(), "truncated"),
        (
            r#"{"format":18446744073709551616,"runs":[]}"#.into(),
            "format past u64",
        ),
        (r#"{"format":-1,"runs":[]}"#.into(), "negative format"),
        (r#"{"format":1.5,"runs":[]}"#.into(), "fractional format"),
        (
            run("").replace(r#"{"exited":0}"#, r#"{"exited":4294967296}"#),
            "code past i32",
        ),
        (
            run("").replace(r#""stdout":"""#, r#""stdout":[256]"#),
            "a byte past 255",
        ),
        (
            run("").replace(r#""stdout_total_bytes":0"#, r#""stdout_total_bytes":-1"#),
            "negative total",
        ),
        (run(r#","output":[{"stdin":"x"}]"#), "a piece of no stream"),
        (
            run("").replace(r#""args":[]"#, r#""args":[{"secret":true,"x":1}]"#),
            "odd secret",
        ),
        (
            "\u{feff}{\"format\":1,\"runs\":[]}".into(),
            "byte-order mark",
        ),
        ("".into(), "empty"),
        (r#"{"format":3,"runs":{}}"#.into(), "runs not a list"),
    ];
    for (text, what) in cases {
        let file = TempPath::new("hostile.cassette.json");
        std::fs::write(file.path(), text.as_bytes()).unwrap();
        let got = std::panic::catch_unwind(|| RecordReplay::replay(file.path()));
        let got = got.unwrap_or_else(|_| panic!("{what}: panicked"));
        match got {
            Err(Error::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidData, "{what}")
            }
            Err(e) => panic!("{what}: {e:?}"),
            Ok(r) => panic!("{what}: loaded as {r:?}"),
        }
    }
}

/// Recorders saving into one file from many threads at once: the file is
/// always one whole cassette, never a mix or a partial write, and no
/// temporary file is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_into_one_file_leave_one_whole_cassette() {
    let suite = begin("concurrent_saves_into_one_file_leave_one_whole_cassette").await;
    let dir = TempPath::new("cassettes");
    std::fs::create_dir(dir.path()).unwrap();
    let path = dir.path().join("shared.cassette.json");
    let mut recorders = Vec::new();
    for i in 0..8 {
        let rec = Arc::new(RecordReplay::record(
            &path,
            Arc::new(SystemRunner::default()),
        ));
        let out = Command::new("sh")
            .args(["-c", "head -c 300000 /dev/zero | tr '\\0' y; echo", "sh"])
            .arg(i.to_string())
            .runner(rec.clone())
            .output()
            .await
            .expect("record");
        assert!(out.success());
        recorders.push(rec);
    }
    std::thread::scope(|s| {
        for rec in &recorders {
            s.spawn(|| {
                for _ in 0..5 {
                    rec.save().expect("save");
                }
            });
        }
    });
    let replay = RecordReplay::replay(&path).expect("a whole cassette");
    assert_eq!(replay.len(), 1);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    std::fs::remove_dir_all(dir.path()).unwrap();
    suite.end().await;
}

/// Dropping a supervisor's handle while its readiness check runs a
/// command of its own (which left a grandchild and hangs): the check's
/// tree goes with the supervised run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_dropped_during_a_checks_command_leaves_nothing() {
    let suite = begin("a_handle_dropped_during_a_checks_command_leaves_nothing").await;
    for choice in mechanisms() {
        let pids = TempPath::new("drop-check-pids");
        let p = pids.as_str().to_string();
        let script =
            r#"sleep 300 & echo $! >> "$1"; echo $$ >> "$1"; echo done >> "$1"; sleep 300"#;
        let check = move || {
            let cmd = sh(choice, script).arg(&p);
            async move { cmd.probe().await.unwrap_or(false) }
        };
        let mut handle = Supervisor::new(sh(choice, "sleep 300 & exec sleep 300"))
            .mechanism(choice)
            .ready_when(check, Duration::from_secs(3600))
            .start();
        let pid = match bounded("start", handle.next_event()).await {
            Some(pkit::SupervisorEvent::Started { pid, .. }) => pid,
            other => panic!("{choice}: {other:?}"),
        };
        let mut all = pids.wait_pids().await;
        all.push(pid);
        drop(handle);
        assert_gone(&all, &format!("{choice}: the check's tree and the run")).await;
    }
    suite.end().await;
}

/// A command's timeout bounds each attempt of a retry, not the retry as a
/// whole: three attempts each time out, and the last one's timeout is the
/// error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_bounds_each_attempt_of_a_retry() {
    let suite = begin("a_timeout_bounds_each_attempt_of_a_retry").await;
    for choice in mechanisms() {
        // Each attempt's shell must write its line before the timeout:
        // a try where one had not (its start-up slow on a loaded machine)
        // is made again with the timeout doubled.
        let mut timeout = Duration::from_millis(300);
        loop {
            let count = TempPath::new("timeout-count");
            let err = bounded(
                "retried",
                sh(choice, r#"echo x >> "$1"; exec sleep 30"#)
                    .arg(count.as_str())
                    .timeout(timeout)
                    .retry(3, Duration::ZERO, Error::is_timeout)
                    .run(),
            )
            .await
            .expect_err("timed out");
            assert!(err.is_timeout(), "{choice}: {err}");
            let lines = std::fs::read_to_string(count.path())
                .unwrap_or_default()
                .lines()
                .count();
            if lines == 3 || timeout >= Duration::from_secs(5) {
                assert_eq!(lines, 3, "{choice}: every attempt ran");
                break;
            }
            timeout *= 2;
        }
    }
    suite.end().await;
}

/// A parser's error that quotes the text it was given, with a derived
/// `Debug` (as most error types have).
#[derive(Debug)]
struct Unparsed(String);

impl std::fmt::Display for Unparsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a version: {}", self.0)
    }
}

impl std::error::Error for Unparsed {}

/// Never parses; quotes the text.
struct Version;

impl std::str::FromStr for Version {
    type Err = Unparsed;
    fn from_str(s: &str) -> Result<Version, Unparsed> {
        Err(Unparsed(s.to_string()))
    }
}

/// A secret argument echoed on stdout and quoted by a parser's error: the
/// error's `Debug` (what `unwrap()` prints) shows the parser's `Debug`,
/// which writes a quote, a backslash or a line break of the value as an
/// escape (`\"`, `\\`, `\n`), so the byte-for-byte redaction found nothing
/// there and the rest of the value was shown; a value that is not UTF-8
/// reaches the parser with U+FFFD in place of its bad bytes, in its
/// `Display` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parsers_escaped_or_lossy_quote_of_a_secret_is_hidden() {
    use std::os::unix::ffi::OsStrExt;
    let suite = begin("a_parsers_escaped_or_lossy_quote_of_a_secret_is_hidden").await;
    let escaped = "Q9Z7K\"W8X6V\\J5Y4\nZZ";
    let lossy = std::ffi::OsStr::from_bytes(b"Q9Z7K\xffW8X6V-J5Y4");
    for (what, secret) in [("escaped", std::ffi::OsStr::new(escaped)), ("lossy", lossy)] {
        let err = Command::new("sh")
            .args(["-c", r#"printf '%s' "$1""#, "sh"])
            .secret_arg(secret)
            .parse::<Version>()
            .await
            .err()
            .expect("never parses");
        assert_eq!(err.kind(), pkit::ErrorKind::Parse);
        let text = shown(&err);
        for piece in ["Q9Z", "W8X", "J5Y"] {
            assert!(!text.contains(piece), "{what}: {piece} in {text}");
        }
        assert!(text.contains("<secret>"), "{what}: {text}");
    }
    suite.end().await;
}

/// A handle dropped during a stop's grace (the run ignores SIGTERM, its
/// grace is long): the run's tree is killed at once, async and blocking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_dropped_during_a_stops_grace_kills_the_tree() {
    let suite = begin("a_handle_dropped_during_a_stops_grace_kills_the_tree").await;
    let script =
        r#"trap '' TERM; sleep 300 & echo $! > "$1"; echo $$ >> "$1"; echo done >> "$1"; wait"#;
    for choice in mechanisms() {
        for blocking in [false, true] {
            let what = format!("{choice} (blocking: {blocking})");
            let pids = TempPath::new("grace-pids");
            let sup = Supervisor::new(
                sh(choice, script)
                    .arg(pids.as_str())
                    .grace(Duration::from_secs(3600)),
            )
            .mechanism(choice);
            let all = if blocking {
                let handle = std::thread::spawn(move || sup.blocking().start())
                    .join()
                    .unwrap();
                let all = pids.wait_pids().await;
                handle.request_stop();
                tokio::time::sleep(Duration::from_millis(300)).await;
                assert_alive(&all, &format!("{what}: in the grace"));
                std::thread::spawn(move || drop(handle)).join().unwrap();
                all
            } else {
                let handle = sup.start();
                let all = pids.wait_pids().await;
                handle.request_stop();
                tokio::time::sleep(Duration::from_millis(300)).await;
                assert_alive(&all, &format!("{what}: in the grace"));
                drop(handle);
                all
            };
            assert_gone(&all, &format!("{what}: dropped in the grace")).await;
        }
    }
    suite.end().await;
}

/// A runner that panics on its command: a stand-in for a user's runner
/// with a bug.
struct PanickingRunner;

impl pkit::Runner for PanickingRunner {
    fn output<'a>(&'a self, _cmd: &'a Command) -> pkit::BoxFuture<'a, pkit::Result<pkit::Output>> {
        Box::pin(async { panic!("attack12: the runner's own panic") })
    }
}

/// A batch one of whose commands panics (its runner's bug): the panic
/// reaches the caller, as a supervisor handle resumes its task's panic;
/// before, `output_unordered` ended without ever reporting that index
/// (the other results looked like the whole batch), and `output_all`
/// panicked with its own "every command reports once".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_command_in_a_batch_is_not_silently_lost() {
    let suite = begin("a_panicking_command_in_a_batch_is_not_silently_lost").await;
    let cmds = || {
        vec![
            Command::new("true"),
            Command::new("true").runner(Arc::new(PanickingRunner)),
            Command::new("true"),
        ]
    };
    // Unordered: the two good results, then the panic, never a quiet end.
    let got = tokio::spawn(async move {
        let mut stream = pkit::output_unordered(cmds(), 2);
        let mut seen = Vec::new();
        while let Some((i, r)) = stream.next().await {
            assert!(r.expect("true runs").success());
            seen.push(i);
        }
        seen
    })
    .await;
    let panic = got.expect_err("the runner's panic reaches the caller");
    let text = panic.into_panic();
    let text = text
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| text.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(text.contains("the runner's own panic"), "{text}");
    // In order: the runner's panic, not another one.
    let all = tokio::spawn(pkit::output_all(cmds(), 2)).await;
    let text = all.expect_err("the runner's panic").into_panic();
    let text = text
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| text.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(text.contains("the runner's own panic"), "{text}");
    suite.end().await;
}
