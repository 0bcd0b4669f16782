//! Started runs in a cassette: a started process's output recorded as it
//! is read — both streams, in order — and played back through the line
//! pump.

use std::sync::{Arc, Mutex};

use super::runs::{Blob, Piece, RecordedOutcome, Run};
use super::started::{Chunk, End, Script};
use crate::child::Child;
use crate::command::Command;
use crate::output::{Outcome, Output};
use crate::process::{outcome_of, RunningProcess};
use crate::pump::{RecordChunk, StreamKind, Tee};
use crate::redact::redact_parts;
use crate::watch::{Ending, Verdict};

/// What a started run wrote so far: consecutive reads of one stream
/// joined.
#[derive(Default)]
pub(super) struct Log(Mutex<Vec<(StreamKind, Vec<u8>)>>);

impl Log {
    fn push(&self, kind: StreamKind, bytes: &[u8]) {
        let mut pieces = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match pieces.last_mut() {
            Some((k, b)) if *k == kind => b.extend_from_slice(bytes),
            _ => pieces.push((kind, bytes.to_vec())),
        }
    }

    fn pieces(&self) -> Vec<(StreamKind, Vec<u8>)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `cmd`, with every chunk of its stdout and stderr that the pump reads
/// also recorded into the returned log (its own tees still get them).
pub(super) fn recorded(cmd: &Command) -> (Command, Arc<Log>) {
    let log = Arc::new(Log::default());
    let mut cmd = cmd.clone();
    for tee in [&mut cmd.spec.io.stdout_tee, &mut cmd.spec.io.stderr_tee] {
        let into = log.clone();
        let record: RecordChunk = Arc::new(move |kind, bytes| into.push(kind, bytes));
        *tee = Some(Tee::Recorded(record, Box::new(tee.take())));
    }
    (cmd, log)
}

/// A started run being recorded: the run (outcome and output to come),
/// what it wrote so far, and how to tell how it ended.
pub(super) struct Recording {
    run: Run,
    /// The command's `secret_arg` values, recorded as `<secret>` wherever
    /// the program wrote them (never written themselves).
    secrets: Vec<Vec<u8>>,
    log: Arc<Log>,
    child: Child,
    verdict: Option<Verdict>,
}

impl Recording {
    /// Records `proc`, started from `run`'s command (whose secret
    /// arguments are `secrets`) with `log` recording its output.
    pub(super) fn new(
        run: Run,
        secrets: Vec<Vec<u8>>,
        log: Arc<Log>,
        proc: &RunningProcess,
    ) -> Recording {
        Recording {
            run,
            secrets,
            log,
            child: proc.child.clone(),
            verdict: crate::watch::verdict(&proc.watch),
        }
    }

    /// The recorded run once the process has ended (`Some(None)`: ended
    /// by its cancel token, which is not recorded); `None` while it runs.
    pub(super) fn settle(&self) -> Option<Option<Run>> {
        let status = self.child.try_status().ok().flatten()?;
        let (outcome, idle) = match self.verdict.as_ref().and_then(Verdict::ending) {
            Some(Ending::Cancel) => return Some(None),
            Some(Ending::Timeout { idle }) => (Outcome::TimedOut, idle),
            // A scripted inner runner's process knows its own bounds.
            None => match self.child.reported("", outcome_of(status)) {
                Ok(reported) => reported,
                Err(_) => return Some(None),
            },
        };
        let pieces = redacted(self.log.pieces(), &self.secrets);
        let whole = |want: StreamKind| -> Vec<u8> {
            (pieces.iter())
                .filter(|(k, _)| *k == want)
                .flat_map(|(_, b)| b.iter().copied())
                .collect()
        };
        let (stdout, stderr) = (whole(StreamKind::Stdout), whole(StreamKind::Stderr));
        let mut run = self.run.clone();
        run.outcome = RecordedOutcome::of(outcome);
        run.inactivity_timed_out = idle;
        run.stdout_total_bytes = stdout.len() as u64;
        run.stderr_total_bytes = stderr.len() as u64;
        run.stdout = Blob::of(&stdout);
        run.stderr = Blob::of(&stderr);
        run.output = (pieces.into_iter())
            .map(|(kind, bytes)| match kind {
                StreamKind::Stdout => Piece::Stdout(Blob::of(&bytes)),
                StreamKind::Stderr => Piece::Stderr(Blob::of(&bytes)),
            })
            .collect();
        Some(Some(run))
    }
}

/// `pieces` with every secret in each stream written `<secret>`: a
/// stream's pieces are redacted as the one text they make (a secret cut by
/// a piece of the other stream is found too), and stay in their places.
fn redacted(
    mut pieces: Vec<(StreamKind, Vec<u8>)>,
    secrets: &[Vec<u8>],
) -> Vec<(StreamKind, Vec<u8>)> {
    if secrets.is_empty() {
        return pieces;
    }
    for kind in [StreamKind::Stdout, StreamKind::Stderr] {
        let of_kind = |p: &(StreamKind, Vec<u8>)| p.0 == kind;
        let parts = (pieces.iter_mut().filter(|p| of_kind(p)))
            .map(|p| std::mem::take(&mut p.1))
            .collect();
        let mut parts = redact_parts(parts, secrets).into_iter();
        for piece in pieces.iter_mut().filter(|p| of_kind(p)) {
            piece.1 = parts.next().unwrap_or_default();
        }
    }
    // A piece wholly inside a secret is gone.
    pieces.retain(|(_, bytes)| !bytes.is_empty());
    pieces
}

/// How a started replay of `run` plays, answering as `out`: a started
/// run's pieces in their order, a verb's stdout then its stderr; then
/// `out`'s outcome, at once.
pub(super) fn script(run: &Run, mut out: Output) -> Script {
    if run.output.is_empty() {
        return Script {
            chunks: Vec::new(),
            end: End::Output(Box::new(out)),
        };
    }
    let chunks = (run.output.iter())
        .map(|piece| match piece {
            Piece::Stdout(b) => Chunk::Write(StreamKind::Stdout, b.clone().into_bytes().into()),
            Piece::Stderr(b) => Chunk::Write(StreamKind::Stderr, b.clone().into_bytes().into()),
        })
        .collect();
    // The pieces are the output; the end adds none.
    out.stdout.clear();
    out.stderr.clear();
    Script {
        chunks,
        end: End::Output(Box::new(out)),
    }
}
