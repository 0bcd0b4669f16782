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
