//! What a [`Command`](crate::Command) carries beyond its program, arguments,
//! environment and stdio, as plain data: how its output is consumed, how a
//! run is bounded, how a failure is replayed. The builders that set them
//! are in `command_output.rs`, `run_options.rs` and `retry.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::pump::{CapturePolicy, DecoderFactory, LineCallback, Overflow, Tee};
use crate::sys::Signal;

/// How a process's output is consumed, beyond capture.
#[derive(Clone)]
pub(crate) struct OutputPlan {
    pub stream_lines: bool,
    pub buffer_lines: usize,
    pub overflow: Overflow,
    pub on_stdout_line: Option<LineCallback>,
    pub on_stderr_line: Option<LineCallback>,
    pub stdout_tee: Option<Tee>,
    pub stderr_tee: Option<Tee>,
    pub decoder: Option<DecoderFactory>,
    pub max_line_bytes: usize,
    pub capture_limit: Option<usize>,
    pub capture_policy: CapturePolicy,
    /// Errors never quote this command's stderr.
    pub secret_output: bool,
    /// The exit codes `run` and `exit_code` count as success (`ok_codes`).
    pub ok_codes: Option<Arc<[i32]>>,
    /// The line stream carries stdout only and stderr is captured as
    /// without one: set (never by users) on the last stage of a started
    /// pipeline, whose stream is the chain's output.
    pub stdout_lines_only: bool,
    /// Every stage's `secret_arg` values, set (never by users) on each
    /// stage of a pipeline: a stage's output may echo an earlier stage's
    /// secret, and a cassette records it as `<secret>` too.
    pub chain_secrets: Vec<Vec<u8>>,
}

/// The default capacity of the line stream, in lines.
pub const DEFAULT_BUFFER_LINES: usize = 1024;
/// The default cap on one line: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;
/// How much of each output stream a process started with
/// [`Group::start`](crate::Group::start) keeps for its
/// [`wait`](crate::RunningProcess::wait) unless the command sets a
/// [`capture_limit`](crate::Command::capture_limit): the last 1 MiB (every byte is
/// still counted). The verbs capture everything, as `std` does.
pub const DEFAULT_START_CAPTURE_BYTES: usize = 1 << 20;
/// How long a tree gets to exit after a [`Command::timeout_signal`](crate::Command::timeout_signal) given
/// without a [`Command::grace`](crate::Command::grace): 10 s, as `docker stop`.
pub const DEFAULT_TIMEOUT_GRACE: Duration = Duration::from_secs(10);

impl OutputPlan {
    /// The limit a [`CapturePolicy::Fail`] capture fails a run at, judged
    /// on the captured streams only: a line stream is not captured, so a
    /// streamed stdout (`stdout_lines_only`) leaves the limit to stderr,
    /// and streaming both leaves no limit.
    pub(crate) fn fail_limit(&self, stream_lines: bool) -> Option<FailLimit> {
        let bytes = self
            .capture_limit
            .filter(|_| self.capture_policy == CapturePolicy::Fail)?;
        match (stream_lines, self.stdout_lines_only) {
            (false, _) => Some(FailLimit {
                bytes,
                stderr_only: false,
            }),
            (true, true) => Some(FailLimit {
                bytes,
                stderr_only: true,
            }),
            (true, false) => None,
        }
    }
}

/// A [`CapturePolicy::Fail`] capture limit and the streams it judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FailLimit {
    /// The bytes a captured stream may see.
    pub bytes: usize,
    /// Stdout is streamed as lines, not captured: only stderr can cross.
    pub stderr_only: bool,
}

impl Default for OutputPlan {
    fn default() -> Self {
        OutputPlan {
            stream_lines: false,
            buffer_lines: DEFAULT_BUFFER_LINES,
            overflow: Overflow::Backpressure,
            on_stdout_line: None,
            on_stderr_line: None,
            stdout_tee: None,
            stderr_tee: None,
            decoder: None,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            capture_limit: None,
            capture_policy: CapturePolicy::KeepHead,
            secret_output: false,
            ok_codes: None,
            stdout_lines_only: false,
            chain_secrets: Vec::new(),
        }
    }
}

/// The bounds of a run beyond its timeout: see the builders in `run_options.rs`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunOptions {
    pub cancel_signal: Option<Signal>,
    pub cancel_grace: Option<Duration>,
    pub inactivity: Option<Duration>,
}

/// Decides whether a failed attempt is worth another try.
pub(crate) type Classifier = Arc<dyn Fn(&Error) -> bool + Send + Sync>;

/// How a command's success-requiring verbs replay a failed run.
#[derive(Clone)]
pub(crate) struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: Duration,
    /// 0.0 (none) to 1.0: each pause is drawn from
    /// `backoff * (1 - jitter) ..= backoff * (1 + jitter)`.
    pub jitter: f64,
    pub retry_if: Classifier,
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

/// `out`, or [`Error::OutputLimit`] when a captured stream saw more than
/// `limit` (a [`CapturePolicy::Fail`](crate::CapturePolicy::Fail) limit;
/// `None`: no such limit). A streamed stdout's bytes never cross it.
pub(crate) fn over_limit(
    program: &str,
    limit: Option<FailLimit>,
    out: crate::output::Output,
) -> crate::error::Result<crate::output::Output> {
    let Some(FailLimit {
        bytes: limit,
        stderr_only,
    }) = limit
    else {
        return Ok(out);
    };
    let stream = if !stderr_only && out.stdout_seen > limit as u64 {
        crate::pump::StreamKind::Stdout
    } else if out.stderr_seen > limit as u64 {
        crate::pump::StreamKind::Stderr
    } else {
        return Ok(out);
    };
    Err(Error::OutputLimit {
        program: program.to_string(),
        stream,
        limit,
        output: Box::new(out),
    })
}
