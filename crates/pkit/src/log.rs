//! Structured events (tracing target `pkit`).
//!
//! The helpers here are the only place pkit emits events, and they take
//! only what is safe to log: the program name, pids, the mechanism,
//! outcomes and durations. Arguments, environment, working directory and
//! output can't be logged by construction: no helper accepts them.

use std::time::Duration;

use crate::group::ShutdownReport;
use crate::output::Outcome;
use crate::sys::Mechanism;

pub(crate) fn group_created(mechanism: Mechanism) {
    tracing::debug!(target: "pkit", %mechanism, "group created");
}

pub(crate) fn started(program: &str, pid: u32, mechanism: Mechanism) {
    tracing::debug!(target: "pkit", program, pid, %mechanism, "process started");
}

pub(crate) fn finished(
    program: &str,
    pid: u32,
    mechanism: Mechanism,
    outcome: Outcome,
    duration: Duration,
) {
    tracing::debug!(
        target: "pkit",
        program,
        pid,
        %mechanism,
        %outcome,
        duration_ms = duration.as_secs_f64() * 1e3,
        "process finished"
    );
}

pub(crate) fn shutdown(mechanism: Mechanism, report: &ShutdownReport) {
    tracing::debug!(
        target: "pkit",
        %mechanism,
        signalled = report.signalled(),
        exited_in_grace = report.exited_in_grace(),
        killed = report.killed(),
        elapsed_ms = report.elapsed().as_secs_f64() * 1e3,
        "group shut down"
    );
}

/// A failed attempt is about to be replayed after `pause`.
pub(crate) fn retry(
    name: &str,
    attempt: u32,
    max_attempts: u32,
    failure: crate::ErrorKind,
    pause: Duration,
) {
    tracing::debug!(
        target: "pkit",
        name,
        attempt,
        max_attempts,
        failure = ?failure,
        pause_ms = pause.as_secs_f64() * 1e3,
        "retrying after a failed attempt"
    );
}

/// A run (or a retry's pause, or a supervisor) was cancelled through its
/// token.
pub(crate) fn cancelled(name: &str, pid: Option<u32>) {
    tracing::debug!(target: "pkit", name, pid, "cancelled");
}

impl crate::Command {
    /// Names this command in pkit's log events (field `name`), so the
    /// events of one command can be told from another's; without it the
    /// program name is used. The name is logged as given: keep secrets
    /// out of it.
    ///
    /// A [`Supervisor`](crate::Supervisor) of this command uses the name
    /// for its own events too.
    pub fn log_name(mut self, name: impl Into<String>) -> crate::Command {
        self.log_name = Some(std::sync::Arc::from(name.into()));
        self
    }

    /// The name events about this command carry: its
    /// [`log_name`](Self::log_name), else the program's name.
    pub(crate) fn log_label(&self) -> String {
        match &self.log_name {
            Some(n) => n.to_string(),
            None => self.display_name(),
        }
    }
}

/// A supervised run failed its readiness check.
pub(crate) fn unhealthy(name: &str, pid: u32, timeout: Duration) {
    tracing::warn!(
        target: "pkit",
        name,
        pid,
        timeout_ms = timeout.as_secs_f64() * 1e3,
        "supervised run failed its readiness check"
    );
}

/// A supervisor starts its command again.
pub(crate) fn restart(name: &str, restarts: u32, pause: Duration) {
    tracing::debug!(
        target: "pkit",
        name,
        restarts,
        pause_ms = pause.as_secs_f64() * 1e3,
        "supervisor restart"
    );
}

/// A supervisor detected a crash storm and pauses.
pub(crate) fn storm(name: &str, crashes: usize, window: Duration, pause: Duration) {
    tracing::warn!(
        target: "pkit",
        name,
        crashes,
        window_ms = window.as_secs_f64() * 1e3,
        pause_ms = pause.as_secs_f64() * 1e3,
        "crash storm: supervisor pausing"
    );
}

/// A supervision ended.
pub(crate) fn supervisor_stopped(name: &str, reason: crate::StopReason, restarts: u32) {
    tracing::debug!(target: "pkit", name, %reason, restarts, "supervisor stopped");
}
