//! [`StopReason`]: why a supervision ended. A leaf (plain data), so the
//! log can take it without climbing to the supervisor.

use std::fmt;

/// Why a supervision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// The restart policy needs no further run: a clean run under
    /// [`Restart::OnCrash`](super::Restart::OnCrash), or the one run of [`Restart::Never`](super::Restart::Never).
    PolicySatisfied,
    /// The [`stop_when`](super::Supervisor::stop_when) predicate accepted a run.
    ByPredicate,
    /// Another run was due but [`max_restarts`](super::Supervisor::max_restarts)
    /// were used up.
    RestartsExhausted,
    /// A cancel token fired: the current run's tree was killed at once
    /// (also when it fired during a graceful stop's grace).
    Cancelled,
    /// [`SupervisorHandle::stop`](super::SupervisorHandle::stop) asked for a graceful stop: the current
    /// run got its signal and grace.
    StopRequested,
    /// The command could not be started, and starting it again cannot
    /// help: the program is not found or not executable, its working
    /// directory is missing, the command is invalid, or any other start
    /// failure that [`is_transient`](crate::is_transient) does not call
    /// temporary. The error is in [`SupervisionOutcome::final_error`](super::SupervisionOutcome::final_error).
    /// (A transient start failure — out of processes or memory for now —
    /// is a crash like any other, restarted after the backoff.)
    CannotStart,
}

impl StopReason {
    /// The reason in words, as `Display` writes it (and the log events
    /// carry it).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StopReason::PolicySatisfied => "policy satisfied",
            StopReason::ByPredicate => "stopped by predicate",
            StopReason::RestartsExhausted => "restarts exhausted",
            StopReason::Cancelled => "cancelled",
            StopReason::StopRequested => "stop requested",
            StopReason::CannotStart => "cannot start",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
