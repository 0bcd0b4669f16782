//! The runs a cassette holds, as its JSON has them (see
//! [`RecordReplay`](super::RecordReplay) for the format).

use std::ffi::OsStr;

use serde::{Deserialize, Serialize};

use crate::output::Outcome;

/// Bytes as JSON: a string when they are UTF-8, else an array of numbers,
/// so every byte round-trips.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum Blob {
    Text(String),
    Bytes(Vec<u8>),
}

impl Blob {
    pub(super) fn of(bytes: &[u8]) -> Blob {
        match std::str::from_utf8(bytes) {
            Ok(s) => Blob::Text(s.to_string()),
            Err(_) => Blob::Bytes(bytes.to_vec()),
        }
    }

    pub(super) fn os(s: &OsStr) -> Blob {
        // Unix: the bytes themselves; Windows: WTF-8 (UTF-8 for any
        // valid string).
        Blob::of(s.as_encoded_bytes())
    }

    /// The same bytes as [`of`](Self::of) writes them: a string when they
    /// are UTF-8 (an array of bytes that is UTF-8 becomes one).
    pub(super) fn canonicalize(&mut self) {
        if let Blob::Bytes(b) = self {
            if let Ok(s) = std::str::from_utf8(b) {
                *self = Blob::Text(s.to_string());
            }
        }
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        match self {
            Blob::Text(s) => s.into_bytes(),
            Blob::Bytes(b) => b,
        }
    }
}

/// An argument as a cassette has it: its bytes, or, for one passed with
/// `Command::secret_arg`, `{"secret": true}` in its place (the value is
/// never written; replay matches any secret argument there).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum Arg {
    Plain(Blob),
    Secret(SecretMark),
}

/// What a secret argument is written as: `{"secret": true}`, nothing
/// else. A cassette is read only after [`check_args`] has refused every
/// other object in an argument's place, naming its place.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(super) struct SecretMark {
    pub(super) secret: bool,
}

/// Checks every argument of every run in a cassette's JSON before it is
/// read: a string, an array of bytes, or exactly `{"secret": true}`.
/// Anything else — `{"secret": false}`, `{"secret": 1}`, `{}`, another
/// key beside `secret` — is refused, naming its place
/// (`runs[2].args[1]`), never guessed at.
pub(super) fn check_args(cassette: &serde_json::Value) -> Result<(), String> {
    let Some(runs) = cassette.get("runs").and_then(|r| r.as_array()) else {
        return Ok(()); // serde names what is missing
    };
    for (i, run) in runs.iter().enumerate() {
        let Some(args) = run.get("args").and_then(|a| a.as_array()) else {
            continue;
        };
        for (j, arg) in args.iter().enumerate() {
            let why = match arg {
                serde_json::Value::String(_) | serde_json::Value::Array(_) => continue,
                serde_json::Value::Object(mark) => {
                    // Another key beside `secret` (a lone key that is not
                    // `secret` is an object without it).
                    let beside = mark
                        .keys()
                        .find(|k| *k != "secret")
                        .filter(|_| mark.len() > 1);
                    match (beside, mark.get("secret")) {
                        (Some(other), _) => format!("has a key other than \"secret\" ({other})"),
                        (None, Some(serde_json::Value::Bool(true))) => continue,
                        (None, Some(serde_json::Value::Bool(false))) => {
                            "is {\"secret\": false}: an argument is either a value or \
                         {\"secret\": true}"
                                .to_string()
                        }
                        (None, Some(other)) => format!("has \"secret\": {other}, not true"),
                        (None, None) => format!("is an object without \"secret\" ({arg})"),
                    }
                }
                other => format!("is {other}, not a string, an array of bytes or a secret mark"),
            };
            return Err(format!("corrupt cassette: runs[{i}].args[{j}] {why}"));
        }
    }
    Ok(())
}

/// The highest signal number a recorded run can show: a wait status holds
/// the signal in 7 bits, and the platforms pkit runs on number theirs up
/// to 64 (Linux), 126 (FreeBSD, DragonFly) or 127 (Linux on MIPS).
const MAX_SIGNAL: i32 = 127;

/// Refuses, naming its place, a run whose outcome no process can have: a
/// signal numbered 0, below it, or above [`MAX_SIGNAL`] (replayed, it
/// would be an `Outcome` no real run gives).
pub(super) fn check_outcomes(runs: &[Run]) -> Result<(), String> {
    for (i, run) in runs.iter().enumerate() {
        if let RecordedOutcome::Signalled(sig) = run.outcome {
            if !(1..=MAX_SIGNAL).contains(&sig) {
                return Err(format!(
                    "corrupt cassette: runs[{i}].outcome: \"signalled\": {sig} is no signal \
                     (1 to {MAX_SIGNAL})"
                ));
            }
        }
    }
    Ok(())
}

impl Arg {
    pub(super) const SECRET: Arg = Arg::Secret(SecretMark { secret: true });
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RecordedOutcome {
    Exited(i32),
    Signalled(i32),
    TimedOut,
}

impl RecordedOutcome {
    pub(super) fn of(outcome: Outcome) -> RecordedOutcome {
        match outcome {
            Outcome::Exited(c) => RecordedOutcome::Exited(c),
            Outcome::Signalled(s) => RecordedOutcome::Signalled(s),
            Outcome::TimedOut => RecordedOutcome::TimedOut,
        }
    }
}

/// One completed run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Run {
    pub(super) program: Blob,
    pub(super) args: Vec<Arg>,
    pub(super) cwd: Option<Blob>,
    /// Names only: values are never written.
    pub(super) env_names: Vec<Blob>,
    pub(super) outcome: RecordedOutcome,
    /// A timeout by `inactivity_timeout` (written only when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) inactivity_timed_out: bool,
    pub(super) stdout: Blob,
    pub(super) stderr: Blob,
    pub(super) stdout_total_bytes: u64,
    pub(super) stderr_total_bytes: u64,
    /// A started run's output as it was read, both streams in order
    /// (format 2; absent for a run through a verb).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) output: Vec<Piece>,
    /// The command was marked `secret_output`: its output must not be
    /// written (never in the file itself).
    #[serde(skip)]
    pub(super) secret_output: bool,
}

/// One piece of a started run's output, in the order it was read
/// (`{"stdout": "..."}` or `{"stderr": "..."}` in the cassette).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Piece {
    Stdout(Blob),
    Stderr(Blob),
}
