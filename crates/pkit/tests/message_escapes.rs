//! Control codes in program names, paths and the other texts a message is
//! given never reach it raw: escape, bell, carriage return, backspace, a
//! line feed, C1 codes and the bidirectional overrides are shown escaped
//! (`\u{1b}`, as the quoted stderr tail shows them), printable text (accents
//! included) as it is; the error's fields keep the exact values, and the
//! tracing events record names as string fields (which a subscriber's text
//! output escapes), never formatted into text.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::*;
use pkit::{ArgList, ChildStep, Command, Error, ErrorKind, Mechanism, NotReadyReason, Output};

/// A name with terminal controls: a window title (OSC), a bell, a
/// carriage return and a backspace, a line feed (a forged log line), a C1
/// CSI, a right-to-left override; and an accented letter that stays.
const HOSTILE: &str = "m\u{1b}]0;pwned\u{7}\r\u{8}\nFORGED\u{9b}2J\u{202e}é";
/// `HOSTILE` as a message shows it.
const SHOWN: &str = r"m\u{1b}]0;pwned\u{7}\r\u{8}\nFORGED\u{9b}2J\u{202e}é";

/// Whether `c` is one a message may not carry raw (outside a stderr tail's
/// line breaks and tabs, which these tests don't quote).
fn raw_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Why `text` is not inert or does not show `shown`, if so.
fn not_inert(what: &str, text: &str, shown: &str) -> Option<String> {
    if text.chars().any(raw_control) {
        return Some(format!("{what}: raw control in {text:?}"));
    }
    (!text.contains(shown)).then(|| format!("{what}: {shown:?} not in {text:?}"))
}

/// Asserts that `text` has no raw control and shows `shown`.
fn assert_inert(what: &str, text: &str, shown: &str) {
    if let Some(why) = not_inert(what, text, shown) {
        panic!("{why}");
    }
}

/// Every variant that shows a name, a path or a text it was given, built
/// around `HOSTILE`.
fn every_variant() -> Vec<Error> {
    let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
    let out = || Box::new(Output::builder(HOSTILE).exit_code(3).build());
    let path = PathBuf::from(format!("/d/{HOSTILE}"));
    vec![
        Error::NotFound {
            program: HOSTILE.into(),
            path_searched: true,
        },
        Error::NotExecutable {
            program: HOSTILE.into(),
            path: path.clone(),
        },
        Error::CurrentDir {
            program: HOSTILE.into(),
            dir: path.clone(),
            source: io(),
        },
        Error::Spawn {
            program: HOSTILE.into(),
            source: io(),
        },
        Error::ChildSetup {
            program: HOSTILE.into(),
            step: ChildStep::Uid,
            source: io(),
        },
        Error::NonZeroExit(out()),
        Error::Signalled(Box::new(
            Output::builder(HOSTILE)
                .outcome(pkit::Outcome::Signalled(9))
                .build(),
        )),
        Error::Timeout(out()),
        Error::Cancelled {
            program: HOSTILE.into(),
        },
        Error::OutputLimit {
            program: HOSTILE.into(),
            stream: pkit::StreamKind::Stdout,
            limit: 10,
            output: out(),
        },
        Error::NotReady {
            program: HOSTILE.into(),
            reason: NotReadyReason::OutputClosed,
        },
        Error::Unsupported {
            operation: "adopt",
            mechanism: Mechanism::ProcessGroup,
            reason: HOSTILE.into(),
        },
        Error::ResourceLimit {
            cap: "memory_max",
            reason: HOSTILE.into(),
        },
        Error::MechanismUnavailable {
            requested: None,
            reason: HOSTILE.into(),
        },
        Error::InvalidInput(HOSTILE.into()),
        Error::Parse {
            program: HOSTILE.into(),
            target: "i32",
            source: "x".parse::<i32>().unwrap_err().into(),
        },
        Error::Json {
            program: HOSTILE.into(),
            target: "T",
            line: 1,
            column: 1,
            problem: "syntax error",
        },
        Error::Unscripted {
            program: HOSTILE.into(),
            args: ArgList::default(),
        },
        Error::CassetteMiss {
            program: HOSTILE.into(),
            args: ArgList::default(),
            cwd: Some(path.clone()),
        },
        Error::Io {
            context: format!("{HOSTILE}: wait"),
            source: io(),
        },
    ]
}

/// Every variant's `Display` (plain and alternate) and `diagnostic` show
/// the name (and a path) escaped; the fields keep the exact values.
#[tokio::test]
async fn every_error_shows_names_and_paths_escaped() {
    let suite = begin("every_error_shows_names_and_paths_escaped").await;
    let errors = every_variant();
    let kinds: std::collections::HashSet<ErrorKind> = errors.iter().map(Error::kind).collect();
    assert_eq!(kinds.len(), 20, "one error of each kind");
    // Every kind's failures, reported together.
    let mut failed = Vec::new();
    for e in &errors {
        let what = format!("{:?}", e.kind());
        let texts = [e.to_string(), format!("{e:#}"), e.diagnostic()];
        failed.extend(texts.iter().filter_map(|t| not_inert(&what, t, SHOWN)));
        // Debug escapes on its own (Rust's string Debug).
        assert!(!format!("{e:?}").chars().any(raw_control), "{what}");
        match e {
            Error::NotExecutable { program, path } => {
                let path_shown = format!("(/d/{SHOWN})");
                failed.extend(not_inert(&what, &e.to_string(), &path_shown));
                assert_eq!(program, HOSTILE);
                assert_eq!(path, Path::new(&format!("/d/{HOSTILE}")));
            }
            Error::CassetteMiss { cwd, .. } => {
                assert_eq!(cwd.as_deref(), Some(Path::new(&format!("/d/{HOSTILE}"))));
            }
            _ => {}
        }
        if let Some(out) = e.output() {
            assert_eq!(out.program(), HOSTILE, "{what}");
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    suite.end().await;
}

/// A stderr tail keeps its line breaks and tabs while the name before it
/// is escaped whole.
#[tokio::test]
async fn a_name_is_escaped_whole_and_the_tail_keeps_its_lines() {
    let suite = begin("a_name_is_escaped_whole_and_the_tail_keeps_its_lines").await;
    let out = Output::builder(HOSTILE)
        .exit_code(1)
        .stderr("one\ttab\r\ntwo \u{1b}[31m\n")
        .build();
    let msg = Error::NonZeroExit(Box::new(out)).to_string();
    assert_eq!(
        msg,
        format!("{SHOWN}: exited(1); stderr ends:\none\ttab\ntwo \\u{{1b}}[31m")
    );
    suite.end().await;
}

/// A directory of scripts named `HOSTILE`-like, removed when dropped.
struct Scripts(TempPath);

impl Scripts {
    fn new() -> Scripts {
        let dir = TempPath::new("msgesc");
        std::fs::create_dir(dir.path()).unwrap();
        Scripts(dir)
    }

    /// `<dir>/<tag>-HOSTILE`, holding `body` with `mode`.
    fn script(&self, tag: &str, body: &str, mode: u32) -> String {
        let path = self.0.path().join(format!("{tag}-{HOSTILE}"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// What a message shows of `script(tag, ..)`.
    fn shown(&self, tag: &str) -> String {
        format!("{}/{tag}-{SHOWN}", self.0.as_str())
    }
}

/// Real runs of programs with hostile names, every way they fail that a
/// message names them: not found (bare name and path), not executable,
/// an unusable working directory, a non-zero exit with a stderr tail, a
/// timeout, a cancel; in every mechanism.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_failures_show_hostile_names_escaped() {
    let suite = begin("real_failures_show_hostile_names_escaped").await;
    let dir = Scripts::new();
    let fails = dir.script("fails", "echo oops >&2; exit 3", 0o755);
    let sleeps = dir.script("sleeps", "exec sleep 30", 0o755);
    let plain = dir.script("plain", "exit 0", 0o644);
    for choice in mechanisms() {
        let c = |p: &str| cmd(choice, p);
        let e = c(HOSTILE).output().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{choice}: {e}");
        assert_inert("bare name", &e.to_string(), SHOWN);

        let e = c(&plain).output().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotExecutable, "{choice}: {e}");
        assert_inert("not executable", &e.to_string(), &dir.shown("plain"));

        let e = c(&fails)
            .current_dir(format!("/nonexistent/{HOSTILE}"))
            .output()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CurrentDir, "{choice}: {e}");
        assert_inert("current_dir", &e.to_string(), &dir.shown("fails"));

        let e = c(&fails).run().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NonZeroExit, "{choice}: {e}");
        let msg = e.to_string();
        assert_inert(
            "exit",
            &msg,
            &format!("{}: exited(3): oops", dir.shown("fails")),
        );
        assert_inert("exit", &e.diagnostic(), &dir.shown("fails"));
        assert_eq!(e.output().unwrap().program(), fails);

        let e = c(&sleeps)
            .timeout(Duration::from_millis(200))
            .run()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{choice}: {e}");
        assert_inert("timeout", &e.to_string(), &dir.shown("sleeps"));

        let token = pkit::CancelToken::new();
        let command = c(&sleeps).cancel_token(&token);
        let run = command.run();
        let cancel = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            token.cancel();
        };
        let (e, ()) = tokio::join!(run, cancel);
        let e = e.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled, "{choice}: {e}");
        assert_inert("cancel", &e.to_string(), &dir.shown("sleeps"));
    }
    suite.end().await;
}

// ---------------------------------------------------------------------------
// Tracing events
// ---------------------------------------------------------------------------

/// One field of an event: its name, its value as recorded, and whether it
/// came as a string field (`record_str`) rather than formatted.
type Field = (String, String, bool);

static EVENTS: OnceLock<Mutex<Vec<Vec<Field>>>> = OnceLock::new();

struct Fields(Vec<Field>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        (self.0).push((field.name().into(), format!("{value:?}"), false));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        (self.0).push((field.name().into(), value.into(), true));
    }
}

struct Recorder;

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut f = Fields(Vec::new());
        event.record(&mut f);
        EVENTS.get().unwrap().lock().unwrap().push(f.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Every event that carries a hostile name (a run's start and end, its
/// timeout, a detached start) carries it as a string field with its exact
/// value, which a subscriber's text output escapes; none formats it into
/// its message or records it with `Display` (which a subscriber prints
/// raw).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_names_as_string_fields() {
    EVENTS.get_or_init(Default::default);
    let _ = tracing::subscriber::set_global_default(Recorder);
    let suite = begin("events_carry_names_as_string_fields").await;
    let dir = Scripts::new();
    let fails = dir.script("ev-fails", "exit 3", 0o755);
    let sleeps = dir.script("ev-sleeps", "exec sleep 30", 0o755);
    let quick = dir.script("ev-detached", "exit 0", 0o755);
    for choice in mechanisms() {
        let _ = cmd(choice, &fails).output().await.unwrap();
        let e = cmd(choice, &sleeps)
            .timeout(Duration::from_millis(200))
            .run()
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{choice}: {e}");
    }
    let d = Command::new(&quick).spawn_detached().unwrap();
    let deadline = std::time::Instant::now() + DEADLINE;
    while !pid_gone(d.pid()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the detached run never ended"
        );
        tokio::time::sleep(POLL).await;
    }
    let events = EVENTS.get().unwrap().lock().unwrap().clone();
    let mut named = 0;
    for fields in &events {
        for (name, value, as_str) in fields {
            let controls = value.contains('\u{1b}') || value.contains('\u{202e}');
            assert!(!controls || *as_str, "{name} formatted raw: {fields:?}");
            if *as_str && value.contains(HOSTILE) {
                named += 1;
            }
        }
    }
    let wanted = ["ev-fails", "ev-sleeps", "ev-detached"];
    for tag in wanted {
        let exact = |v: &str| v.ends_with(&format!("{tag}-{HOSTILE}"));
        let hits = events
            .iter()
            .filter(|f| f.iter().any(|(n, v, s)| n == "program" && *s && exact(v)))
            .count();
        assert!(hits > 0, "no event names {tag} exactly: {events:?}");
    }
    assert!(named >= wanted.len(), "{events:?}");
    suite.end().await;
}
