//! Attack round dec04i: every path by which a `secret_arg` value a program
//! echoes (or the output of a `secret_output` command) could reach text
//! pkit shows, with real processes. An error that carries a run's
//! `Output` quotes its stderr in `diagnostic()`; a parse error carries the
//! parser's own error, whose message may quote the text it was given.

mod common;

use std::time::Duration;

use common::*;
use pkit::{CapturePolicy, Command, ErrorKind, Group, Pipe};

/// What the secret argument is in these tests.
const TOKEN: &str = "tok-s3cret-0815";

/// No case may take longer than this (a hang fails, never blocks).
const LONG: Duration = Duration::from_secs(120);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LONG, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung past {LONG:?}"))
}

/// Says on stderr that the token is bad (quoting it), then floods stdout
/// past the capture limit.
const ECHO_THEN_FLOOD: &str = r#"echo "bad token $1" >&2; head -c 200000 /dev/zero"#;

/// The capture limit the flood crosses.
const LIMIT: usize = 4096;

/// Every form of `err` a user sees: `Display`, alternate, `Debug`,
/// `diagnostic()`, and the messages of its sources.
fn shown(err: &pkit::Error) -> Vec<String> {
    let mut all = vec![
        err.to_string(),
        format!("{err:#}"),
        format!("{err:?}"),
        err.diagnostic(),
    ];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        all.push(s.to_string());
        all.push(format!("{s:?}"));
        source = s.source();
    }
    all
}

/// `err` is the crossed capture limit, and none of its forms shows the
/// token; its diagnostic quotes the stderr with `<secret>` in the token's
/// place (or, for `secret_output`, not at all). The carried `Output`
/// keeps the bytes.
fn check_limit_error(what: &str, err: &pkit::Error, secret_output: bool) {
    assert_eq!(err.kind(), ErrorKind::OutputLimit, "{what}: {err}");
    for text in shown(err) {
        assert!(!text.contains(TOKEN), "{what}: the secret in {text:?}");
    }
    let diagnostic = err.diagnostic();
    match secret_output {
        false => assert!(
            diagnostic.contains("bad token <secret>"),
            "{what}: the stderr is still quoted, the secret replaced: {diagnostic:?}"
        ),
        true => assert!(
            !diagnostic.contains("bad token"),
            "{what}: a secret output's stderr is never quoted: {diagnostic:?}"
        ),
    }
    let out = err.output().expect("a crossed limit carries its output");
    assert!(
        out.stderr_str().contains(TOKEN),
        "{what}: the carried output keeps the bytes"
    );
}

/// A run that crosses a `CapturePolicy::Fail` limit is an
/// `Error::OutputLimit`, whose `diagnostic()` ends with the tail of the
/// run's stderr. Its `Output` was made before the verb marked it with the
/// command's secrets, so before the fix the diagnostic showed the echoed
/// `secret_arg` value — from `run()`, `output()`, a started process's
/// `wait()`, `Group::run` — and quoted the stderr of a `secret_output`
/// command too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crossed_capture_limit_hides_an_echoed_secret() {
    let suite = begin("a_crossed_capture_limit_hides_an_echoed_secret").await;
    for choice in mechanisms() {
        for secret_output in [false, true] {
            let mut cmd = sh(choice, ECHO_THEN_FLOOD)
                .secret_arg(TOKEN)
                .capture_limit(LIMIT, CapturePolicy::Fail);
            if secret_output {
                cmd = cmd.secret_output();
            }
            let what = |verb: &str| format!("{choice}: {verb} (secret_output: {secret_output})");
            let err = bounded("run", cmd.run()).await.expect_err("the limit");
            check_limit_error(&what("run"), &err, secret_output);
            let err = bounded("output", cmd.output())
                .await
                .expect_err("the limit");
            check_limit_error(&what("output"), &err, secret_output);
            let g = group(choice);
            let mut p = g.start(&cmd).expect("start");
            let err = bounded("wait", p.wait()).await.expect_err("the limit");
            check_limit_error(&what("a started process's wait"), &err, secret_output);
            bounded("close", g.close()).await.expect("close");
        }
    }
    // A group's one-command verb runs the real program (no runner).
    let cmd = Command::new("sh")
        .args(["-c", ECHO_THEN_FLOOD, "sh"])
        .secret_arg(TOKEN)
        .capture_limit(LIMIT, CapturePolicy::Fail);
    let g = Group::new().expect("group");
    let err = bounded("Group::run", g.run(&cmd))
        .await
        .expect_err("the limit");
    check_limit_error("Group::run", &err, false);
    suite.end().await;
}

/// A pipeline whose last stage quotes the first stage's secret argument
/// on stderr and then crosses its `Fail` capture limit: the error (from
/// `run()`, and from a started chain's `wait()`) carries that stage's
/// `Output`, which before the fix knew no secret at all, so the
/// diagnostic showed the other stage's secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_stage_crossing_its_limit_hides_another_stages_secret() {
    let suite = begin("a_pipeline_stage_crossing_its_limit_hides_another_stages_secret").await;
    let plain = |script: &str| Command::new("sh").args(["-c", script, "sh"]);
    let chain = Pipe::new([
        plain(r#"echo "$1""#).secret_arg(TOKEN),
        plain(r#"read t; echo "bad token $t" >&2; head -c 200000 /dev/zero"#)
            .capture_limit(LIMIT, CapturePolicy::Fail),
    ]);
    let err = bounded("run", chain.run()).await.expect_err("the limit");
    check_limit_error("a pipeline's run", &err, false);
    let mut started = chain.start().expect("start");
    let err = bounded("wait", started.wait())
        .await
        .expect_err("the limit");
    check_limit_error("a started pipeline's wait", &err, false);
    drop(started);
    suite.end().await;
}

/// The same through the blocking facade, from a plain thread.
#[test]
fn a_blocking_run_crossing_its_limit_hides_an_echoed_secret() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin(
        "a_blocking_run_crossing_its_limit_hides_an_echoed_secret",
    ));
    for choice in mechanisms() {
        let cmd = sh(choice, ECHO_THEN_FLOOD)
            .secret_arg(TOKEN)
            .capture_limit(LIMIT, CapturePolicy::Fail);
        let err = cmd.blocking().run().expect_err("the limit");
        check_limit_error(&format!("{choice}: blocking run"), &err, false);
    }
    rt.block_on(suite.end());
}

/// A port number, whose parse error quotes the text it was given (as
/// many parsers' errors do: `semver`, `uuid`, hand-written ones).
#[derive(Debug)]
struct Port(#[allow(dead_code)] u16);

#[derive(Debug)]
struct NotAPort(String);

impl std::fmt::Display for NotAPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a port: {:?}", self.0)
    }
}

impl std::error::Error for NotAPort {}

impl std::str::FromStr for Port {
    type Err = NotAPort;
    fn from_str(s: &str) -> Result<Port, NotAPort> {
        s.parse().map(Port).map_err(|_| NotAPort(s.to_string()))
    }
}

/// `Command::parse` of a stdout that doesn't parse is an `Error::Parse`
/// whose source is the parser's error; its message may quote the text.
/// Before the fix a program that echoed its secret argument on stdout
/// had the secret shown by the error's `Debug` and by its source (what
/// `anyhow` prints as "Caused by"), and a `secret_output` command's whole
/// output was. Now a secret in the parser's messages is `<secret>`, and a
/// secret output's parser message is not shown at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parse_error_hides_an_echoed_secret_and_a_secret_output() {
    let suite = begin("a_parse_error_hides_an_echoed_secret_and_a_secret_output").await;
    for choice in mechanisms() {
        let err = bounded(
            "parse",
            sh(choice, r#"echo "port for $1""#)
                .secret_arg(TOKEN)
                .parse::<Port>(),
        )
        .await
        .expect_err("not a port");
        assert_eq!(err.kind(), ErrorKind::Parse, "{choice}: {err}");
        for text in shown(&err) {
            assert!(!text.contains(TOKEN), "{choice}: the secret in {text:?}");
        }
        let source = std::error::Error::source(&err).expect("the parser's error");
        assert_eq!(
            source.to_string(),
            r#"not a port: "port for <secret>""#,
            "{choice}"
        );
        // Without a secret in its message, the parser's error is kept as is.
        let err = bounded(
            "parse",
            sh(choice, "echo eighty").secret_arg(TOKEN).parse::<Port>(),
        )
        .await
        .expect_err("not a port");
        let source = std::error::Error::source(&err).expect("the parser's error");
        assert!(source.is::<NotAPort>(), "{choice}: {source:?}");
        // A secret output: the parser's message is not shown.
        let password = "hunter2-pw-5150";
        let err = bounded(
            "parse",
            sh(choice, "echo \"$1\"")
                .arg(password)
                .secret_output()
                .parse::<Port>(),
        )
        .await
        .expect_err("not a port");
        assert_eq!(err.kind(), ErrorKind::Parse, "{choice}: {err}");
        for text in shown(&err) {
            assert!(
                !text.contains(password),
                "{choice}: the secret output in {text:?}"
            );
        }
    }
    suite.end().await;
}
