//! [`OutputBuilder`]: how code other than pkit's own runner makes an
//! [`Output`] (a custom [`Runner`](crate::Runner), a test double).

use std::time::Duration;

use crate::output::{Outcome, Output};
use crate::sys::Mechanism;

impl Output {
    /// Starts an `Output` for `program`, for a custom
    /// [`Runner`](crate::Runner) or a test: exit 0, no output, zero
    /// duration, pid 0, [`Mechanism::ProcessGroup`] unless set otherwise.
    ///
    /// ```
    /// use pkit::{Outcome, Output};
    ///
    /// let out = Output::builder("git").exit_code(1).stderr("fatal: no upstream\n").build();
    /// assert_eq!(out.outcome(), Outcome::Exited(1));
    /// assert_eq!(out.stderr_str(), "fatal: no upstream\n");
    /// assert_eq!(out.program(), "git");
    /// ```
    pub fn builder(program: impl Into<String>) -> OutputBuilder {
        OutputBuilder {
            out: Output {
                program: program.into().into(),
                outcome: Outcome::Exited(0),
                stdout: Default::default(),
                stderr: Vec::new(),
                duration: Duration::ZERO,
                mechanism: Mechanism::ProcessGroup,
                pid: 0,
                stdout_seen: 0,
                stderr_seen: 0,
                stages: Vec::new(),
                cpu_time: None,
                peak_memory: None,
                oom_killed: false,
                killed_after_grace: false,
                inactivity_timed_out: false,
                secret_output: false,
                redact: Vec::new(),
                stdout_tee_error: None,
                stderr_tee_error: None,
            },
            stdout_total: None,
            stderr_total: None,
        }
    }
}

/// Builds an [`Output`]: see [`Output::builder`].
#[derive(Debug, Clone)]
#[must_use = "an OutputBuilder does nothing until build() is called"]
pub struct OutputBuilder {
    out: Output,
    stdout_total: Option<u64>,
    stderr_total: Option<u64>,
}

impl OutputBuilder {
    /// How the run ended.
    pub fn outcome(mut self, outcome: Outcome) -> OutputBuilder {
        self.out.outcome = outcome;
        self
    }

    /// The run exited with `code`.
    pub fn exit_code(self, code: i32) -> OutputBuilder {
        self.outcome(Outcome::Exited(code))
    }

    /// What the run wrote to stdout.
    pub fn stdout(mut self, bytes: impl Into<Vec<u8>>) -> OutputBuilder {
        self.out.stdout = bytes.into().into();
        self
    }

    /// What the run wrote to stderr.
    pub fn stderr(mut self, bytes: impl Into<Vec<u8>>) -> OutputBuilder {
        self.out.stderr = bytes.into();
        self
    }

    /// How many bytes the run wrote to stdout in all, when more than was
    /// captured (a cut capture); never less than the captured bytes.
    pub fn stdout_total_bytes(mut self, total: u64) -> OutputBuilder {
        self.stdout_total = Some(total);
        self
    }

    /// How many bytes the run wrote to stderr in all (see
    /// [`stdout_total_bytes`](Self::stdout_total_bytes)).
    pub fn stderr_total_bytes(mut self, total: u64) -> OutputBuilder {
        self.stderr_total = Some(total);
        self
    }

    /// How long the run took.
    pub fn duration(mut self, duration: Duration) -> OutputBuilder {
        self.out.duration = duration;
        self
    }

    /// The mechanism that contained the run.
    pub fn mechanism(mut self, mechanism: Mechanism) -> OutputBuilder {
        self.out.mechanism = mechanism;
        self
    }

    /// The pid the program ran as.
    pub fn pid(mut self, pid: u32) -> OutputBuilder {
        self.out.pid = pid;
        self
    }

    /// The CPU time the run used.
    pub fn cpu_time(mut self, cpu: Duration) -> OutputBuilder {
        self.out.cpu_time = Some(cpu);
        self
    }

    /// The run's peak resident memory.
    pub fn peak_memory_bytes(mut self, bytes: u64) -> OutputBuilder {
        self.out.peak_memory = Some(bytes);
        self
    }

    /// Whether the OOM killer killed a process of the run.
    pub fn oom_killed(mut self, yes: bool) -> OutputBuilder {
        self.out.oom_killed = yes;
        self
    }

    /// Whether, after a timeout, the tree needed SIGKILL after its grace.
    pub fn killed_after_grace(mut self, yes: bool) -> OutputBuilder {
        self.out.killed_after_grace = yes;
        self
    }

    /// Whether the run was ended by its
    /// [`inactivity_timeout`](crate::Command::inactivity_timeout) (give it
    /// the outcome [`Outcome::TimedOut`] too).
    pub fn inactivity_timed_out(mut self, yes: bool) -> OutputBuilder {
        self.out.inactivity_timed_out = yes;
        self
    }

    /// The `Output`.
    pub fn build(self) -> Output {
        let mut out = self.out;
        out.stdout_seen = self.stdout_total.unwrap_or(0).max(out.stdout.len() as u64);
        out.stderr_seen = self.stderr_total.unwrap_or(0).max(out.stderr.len() as u64);
        out
    }
}
