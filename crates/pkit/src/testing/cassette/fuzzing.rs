//! Entry points for the cassette fuzz target (hidden `fuzzing` feature).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use super::file::{parse, Cassette, FORMAT};
use super::{Mode, RecordReplay, RecordedOutcome, State};
use crate::output::Outcome;
use crate::Command;

/// Loads a cassette's bytes as [`RecordReplay::replay`] does, then
/// replays every run it holds and checks the answer is the recorded
/// one (outcome, stdout and stderr byte for byte, byte totals). On
/// success: the cassette as [`RecordReplay::save`] would write it.
///
/// # Errors
///
/// Why the bytes are not a cassette (as replay would refuse them), a run
/// that is not replayed, or one that can't be written back.
///
/// # Panics
///
/// When a replayed run's answer differs from its recording (the bug the
/// fuzz target looks for).
pub fn cassette_load(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let runs = parse(bytes)?;
    let replay = RecordReplay {
        path: "fuzz.cassette.json".into(),
        mode: Mode::Replay,
        state: std::sync::Mutex::new(State {
            runs: runs.iter().cloned().map(super::Entry::Run).collect(),
            answered: Default::default(),
        }),
    };
    for (i, run) in runs.iter().enumerate() {
        // The first recorded run of this command answers it the first
        // time: replay only the first run of each key.
        if runs[..i]
            .iter()
            .any(|r| super::key_of_run(r) == super::key_of_run(run))
        {
            continue;
        }
        let os = |b: &super::Blob| OsString::from_vec(b.clone().into_bytes());
        let mut cmd = Command::new(os(&run.program));
        for arg in &run.args {
            cmd = match arg {
                super::Arg::Plain(b) => cmd.arg(os(b)),
                super::Arg::Secret(_) => cmd.secret_arg("replayed"),
            };
        }
        if let Some(cwd) = &run.cwd {
            cmd = cmd.current_dir(os(cwd));
        }
        let out = replay
            .replay_one(&cmd)
            .map_err(|e| format!("run {i} not replayed: {e}"))?;
        let want = match run.outcome {
            RecordedOutcome::Exited(c) => Outcome::Exited(c),
            RecordedOutcome::Signalled(s) => Outcome::Signalled(s),
            RecordedOutcome::TimedOut => Outcome::TimedOut,
        };
        assert_eq!(out.outcome(), want, "run {i}: outcome");
        let (stdout, stderr) = (
            run.stdout.clone().into_bytes(),
            run.stderr.clone().into_bytes(),
        );
        assert_eq!(out.stdout(), &stdout[..], "run {i}");
        assert_eq!(out.stderr(), &stderr[..], "run {i}");
        // A total is never less than the bytes captured (an edited
        // cassette may say less).
        let total = |n: u64, b: &[u8]| n.max(b.len() as u64);
        assert_eq!(
            out.stdout_total_bytes(),
            total(run.stdout_total_bytes, &stdout),
            "run {i}"
        );
        assert_eq!(
            out.stderr_total_bytes(),
            total(run.stderr_total_bytes, &stderr),
            "run {i}"
        );
    }
    let cassette = Cassette {
        format: FORMAT,
        runs,
    };
    serde_json::to_vec_pretty(&cassette).map_err(|e| format!("not written back: {e}"))
}
