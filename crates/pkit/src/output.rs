//! [`Output`]: the result of a finished run, and its [`Outcome`].

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::pump::TeeError;
use crate::sys::{signal_name, Mechanism, TextBytes};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The program exited with this code.
    Exited(i32),
    /// The program was killed by this signal (not by pkit's timeout).
    Signalled(i32),
    /// The run exceeded its timeout and pkit tore its tree down.
    TimedOut,
}

impl fmt::Display for Outcome {
    /// `exited(0)`, `signalled(SIGKILL)` (or `signalled(42)` for a signal
    /// without a name), `timed out`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Outcome::Exited(code) => write!(f, "exited({code})"),
            Outcome::Signalled(sig) => match signal_name(sig) {
                Some(name) => write!(f, "signalled({name})"),
                None => write!(f, "signalled({sig})"),
            },
            Outcome::TimedOut => f.write_str("timed out"),
        }
    }
}

/// The result of a finished run: how it ended, what it wrote, how long it
/// took and how it was contained.
///
/// A non-zero exit, a signal and a timeout are all data here; see
/// [`Command::run`](crate::Command::run) for a verb that requires success.
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    pub(crate) program: std::sync::Arc<str>,
    pub(crate) outcome: Outcome,
    /// With what is known of it as text (see `Command::run`).
    pub(crate) stdout: TextBytes,
    pub(crate) stderr: Vec<u8>,
    pub(crate) duration: Duration,
    pub(crate) mechanism: Mechanism,
    pub(crate) pid: u32,
    pub(crate) stdout_seen: u64,
    pub(crate) stderr_seen: u64,
    /// For a pipeline, every stage's own result, in order.
    pub(crate) stages: Vec<Output>,
    pub(crate) cpu_time: Option<Duration>,
    pub(crate) peak_memory: Option<u64>,
    pub(crate) oom_killed: bool,
    pub(crate) killed_after_grace: bool,
    pub(crate) inactivity_timed_out: bool,
    /// Whether the command was marked `secret_output`: errors then never
    /// quote its stderr. Set where a run's `Output` is made (a process's
    /// `finish`, a pipeline's fold) and again by the verbs (for the
    /// `Output` of another `Runner`), so every error carrying one knows.
    pub(crate) secret_output: bool,
    /// Set with `secret_output`: the values of the command's (a
    /// pipeline's stages') `secret_arg`s, as bytes, which an error's quote
    /// of stderr shows as `<secret>` (`crate::redact`).
    pub(crate) redact: Vec<Vec<u8>>,
    /// The write errors that stopped the stdout and stderr tees.
    pub(crate) stdout_tee_error: Option<TeeError>,
    pub(crate) stderr_tee_error: Option<TeeError>,
}

impl Output {
    /// How the run ended.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether the program exited with code 0.
    pub fn success(&self) -> bool {
        self.outcome == Outcome::Exited(0)
    }

    /// The exit code, if the program exited (not killed, not timed out).
    pub fn code(&self) -> Option<i32> {
        match self.outcome {
            Outcome::Exited(c) => Some(c),
            _ => None,
        }
    }

    /// The signal that killed the program, if one did (a timeout is
    /// reported by [`timed_out`](Self::timed_out), not here).
    pub fn signal(&self) -> Option<i32> {
        match self.outcome {
            Outcome::Signalled(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the run exceeded its timeout (or its
    /// [`inactivity_timeout`](crate::Command::inactivity_timeout): see
    /// [`inactivity_timed_out`](Self::inactivity_timed_out)).
    pub fn timed_out(&self) -> bool {
        self.outcome == Outcome::TimedOut
    }

    /// Whether the run was ended because no output arrived for its
    /// [`inactivity_timeout`](crate::Command::inactivity_timeout). Such a
    /// run's outcome is [`Outcome::TimedOut`] too (so code matching on
    /// outcomes needs no new arm); this tells the two timeouts apart.
    pub fn inactivity_timed_out(&self) -> bool {
        self.inactivity_timed_out
    }

    /// Everything the program wrote to stdout (empty unless piped).
    pub fn stdout(&self) -> &[u8] {
        &self.stdout
    }

    /// Everything the program wrote to stderr (empty unless piped).
    pub fn stderr(&self) -> &[u8] {
        &self.stderr
    }

    /// stdout as text; invalid UTF-8 is replaced with U+FFFD.
    pub fn stdout_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }

    /// stderr as text; invalid UTF-8 is replaced with U+FFFD.
    pub fn stderr_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stderr)
    }

    /// Takes stdout out of the result.
    pub fn into_stdout(self) -> Vec<u8> {
        self.stdout.into_vec()
    }

    /// How long the run took, from spawn to the end of teardown.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The mechanism that contained the run.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The program, as given to [`Command::new`](crate::Command::new).
    pub fn program(&self) -> &str {
        &self.program
    }

    /// How many bytes the program wrote to stdout in all (more than
    /// `stdout().len()` when a capture limit cut it).
    pub fn stdout_total_bytes(&self) -> u64 {
        self.stdout_seen
    }

    /// How many bytes the program wrote to stderr in all.
    pub fn stderr_total_bytes(&self) -> u64 {
        self.stderr_seen
    }

    /// Whether the captured stdout is only part of what was written.
    pub fn stdout_truncated(&self) -> bool {
        self.stdout_seen > self.stdout.len() as u64
    }

    /// Whether the captured stderr is only part of what was written.
    pub fn stderr_truncated(&self) -> bool {
        self.stderr_seen > self.stderr.len() as u64
    }

    /// The CPU time (user + system) the program used, with the descendants
    /// it waited for, when it was measured (from the kernel's accounting at
    /// its exit).
    pub fn cpu_time(&self) -> Option<Duration> {
        self.cpu_time
    }

    /// The program's peak resident memory (the largest of its own and of
    /// the descendants it waited for), when it was measured.
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        self.peak_memory
    }

    /// Whether the kernel's OOM killer killed a process of the run's group
    /// (known where the group has a memory cap and the kernel counts OOM
    /// kills: `memory.events` in v2, `memory.oom_control` in v1).
    pub fn oom_killed(&self) -> bool {
        self.oom_killed
    }

    /// Whether, after a timeout, some process of the tree was still alive
    /// when the grace ended and had to be killed with SIGKILL (see
    /// [`Command::timeout_signal`](crate::Command::timeout_signal)). False
    /// when the tree exited on the timeout signal, when the timeout killed
    /// at once (no grace), and for a run that did not time out. A CLI in
    /// the manner of `timeout -k` exits 137 when this is true.
    pub fn killed_after_grace(&self) -> bool {
        self.killed_after_grace
    }

    /// For a [`Pipe`](crate::Pipe), every stage's own result in order (this
    /// `Output` is their pipefail fold); empty for a single command. The
    /// last stage's stdout is moved into this `Output`, not kept twice.
    pub fn stages(&self) -> &[Output] {
        &self.stages
    }

    /// The pid the program ran as.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The write error that stopped the stdout tee
    /// ([`Command::stdout_tee`](crate::Command::stdout_tee), or a
    /// [`pty`](crate::Command::pty) session's output teed), if one did: a
    /// reader that went away (`BrokenPipe`), a full disk, a writer that
    /// panicked (an error saying so; the panic is not resumed). The run went on
    /// (the output still read, captured and split into lines); what came
    /// after the error was not written to the tee. `None` when every write
    /// succeeded, or there was no tee. For a [`Pipe`](crate::Pipe), the
    /// last stage's.
    pub fn stdout_tee_error(&self) -> Option<&std::io::Error> {
        self.stdout_tee_error.as_ref().map(|e| &*e.0)
    }

    /// The write error that stopped the stderr tee, if one did (see
    /// [`stdout_tee_error`](Self::stdout_tee_error)). For a
    /// [`Pipe`](crate::Pipe), the stage whose stderr this `Output` has.
    pub fn stderr_tee_error(&self) -> Option<&std::io::Error> {
        self.stderr_tee_error.as_ref().map(|e| &*e.0)
    }
}

impl Output {
    /// A copy of everything but the captured bytes and the stages.
    pub(crate) fn clone_meta(&self) -> Output {
        Output {
            program: self.program.clone(),
            outcome: self.outcome,
            stdout: TextBytes::default(),
            stderr: Vec::new(),
            duration: self.duration,
            mechanism: self.mechanism,
            pid: self.pid,
            stdout_seen: self.stdout_seen,
            stderr_seen: self.stderr_seen,
            stages: Vec::new(),
            cpu_time: self.cpu_time,
            peak_memory: self.peak_memory,
            oom_killed: self.oom_killed,
            killed_after_grace: self.killed_after_grace,
            inactivity_timed_out: self.inactivity_timed_out,
            secret_output: self.secret_output,
            redact: self.redact.clone(),
            stdout_tee_error: self.stdout_tee_error.clone(),
            stderr_tee_error: self.stderr_tee_error.clone(),
        }
    }
}

impl fmt::Debug for Output {
    /// Shows sizes, not contents: output may hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("program", &self.program)
            .field("outcome", &self.outcome)
            .field("stdout_bytes", &self.stdout.len())
            .field("stderr_bytes", &self.stderr.len())
            .field("stdout_total_bytes", &self.stdout_seen)
            .field("stderr_total_bytes", &self.stderr_seen)
            .field("duration", &self.duration)
            .field("mechanism", &self.mechanism)
            .field("pid", &self.pid)
            .field("cpu_time", &self.cpu_time)
            .field("peak_memory", &self.peak_memory)
            .field("oom_killed", &self.oom_killed)
            .field("killed_after_grace", &self.killed_after_grace)
            .field("inactivity_timed_out", &self.inactivity_timed_out)
            .field("stdout_tee_error", &self.stdout_tee_error())
            .field("stderr_tee_error", &self.stderr_tee_error())
            .field("stages", &self.stages)
            .finish()
    }
}
