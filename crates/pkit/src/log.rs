//! Structured events (tracing target `pkit`).
//!
//! The helpers here emit every event about runs, groups, retries and
//! supervisors, and they take only what is safe to log: the program name (and the command's
//! [`log_name`](crate::Command::log_name)), pids, the mechanism, outcomes,
//! error kinds, counts and durations. Arguments, environment, working
//! directory and output can't be logged by construction: no helper accepts
//! them (nor a `Command`, an `Output` or an `Error`), and none is generic
//! (an `impl Display` or `impl Debug` parameter would take an `Error`,
//! whose `Debug` shows the run's output): each takes a string it names
//! (the program, the command's log name), numbers, durations, or one of
//! the small enums `Mechanism`, `Outcome`, `ErrorKind` (a supervisor's stop
//! reason comes as its fixed words, a `&'static str`).
//!
//! A name (the program, a log name, a path) is recorded as a string
//! field, its exact value, never formatted into the message or recorded
//! with `%` (Display): a subscriber's text output shows string fields
//! escaped (`tracing-subscriber`'s `fmt` quotes them as Rust's `Debug`
//! does, `pkit -v` through [`escape_controls`](crate::escape_controls)),
//! so a name's control characters can't act on a terminal or forge a line.
//!
//! Ordinary lifecycle events are at Debug; anomalies (a timeout, a tree
//! that needed SIGKILL after its grace, a failed readiness check, a crash
//! storm, a supervised command that cannot start) at Warn. See the crate documentation for how to see them.
//!
//! A few diagnostics come from elsewhere, also with target `pkit`: the
//! backend's (`sys/`: the owner-death guard's state, a `clone3` refusal, a
//! cgroup that could not be removed, a job that can't nest) and the line
//! pump's (a line callback that panicked, a tee whose write failed). They
//! can't come through here: `sys/` sits below this module. They carry
//! pkit's own state only: OS error texts, reasons pkit words, paths of
//! pkit's own cgroup directories, a stream's name, and (for a detached
//! start, which leaves containment) the program and its pid; never a
//! command's arguments, environment, working directory or output.

use std::time::Duration;

use crate::error::ErrorKind;
use crate::output::Outcome;
use crate::sys::Mechanism;

/// Whether any of a group's events (at Warn or Debug) would be recorded
/// now: without, a run needn't build the name they carry.
pub(crate) fn group_events_enabled() -> bool {
    tracing::enabled!(target: "pkit", tracing::Level::WARN)
}

/// A group was created. `name`: the command's log label when the group
/// was made for one command's run, else the group's own name, if any (as
/// in the group's other events).
pub(crate) fn group_created(name: Option<&str>, mechanism: Mechanism) {
    tracing::debug!(target: "pkit", name, %mechanism, "group created");
}

pub(crate) fn started(program: &str, name: Option<&str>, pid: u32, mechanism: Mechanism) {
    let name = name.unwrap_or(program);
    tracing::debug!(target: "pkit", program, name, pid, %mechanism, "process started");
}

/// A run's exit was collected (by a verb, or `RunningProcess::wait`): a
/// started process nobody waits for has no such event (its end is in its
/// group's events; the reaper that sees its exit sits in `sys/`, below
/// this module).
pub(crate) fn finished(
    program: &str,
    name: Option<&str>,
    pid: u32,
    mechanism: Mechanism,
    outcome: Outcome,
    duration: Duration,
) {
    let name = name.unwrap_or(program);
    tracing::debug!(
        target: "pkit",
        program,
        name,
        pid,
        %mechanism,
        %outcome,
        duration_ms = duration.as_secs_f64() * 1e3,
        "process finished"
    );
}

/// A group was shut down: `signalled` processes got the polite signal,
/// `exited_in_grace` of them left within the grace, `killed` needed SIGKILL.
pub(crate) fn shutdown(
    name: Option<&str>,
    mechanism: Mechanism,
    signalled: usize,
    exited_in_grace: usize,
    killed: usize,
    elapsed: Duration,
) {
    macro_rules! event {
        ($level:ident, $msg:literal) => {
            tracing::$level!(
                target: "pkit",
                name,
                %mechanism,
                signalled,
                exited_in_grace,
                killed,
                elapsed_ms = elapsed.as_secs_f64() * 1e3,
                $msg
            )
        };
    }
    if killed > 0 {
        event!(warn, "group shut down: processes killed after the grace");
    } else {
        event!(debug, "group shut down");
    }
}

/// A group was closed: its whole tree killed and gone.
pub(crate) fn group_closed(name: Option<&str>, mechanism: Mechanism, elapsed: Duration) {
    tracing::debug!(
        target: "pkit",
        name,
        %mechanism,
        elapsed_ms = elapsed.as_secs_f64() * 1e3,
        "group closed"
    );
}

/// An open group was dropped: its tree is killed synchronously.
pub(crate) fn group_dropped(name: Option<&str>, mechanism: Mechanism) {
    tracing::debug!(target: "pkit", name, %mechanism, "group dropped: tree killed");
}

/// Who an event is about: the program (its name as given, never its
/// arguments), the command's log label, and, when known, the main
/// process's pid and the mechanism containing it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    program: &'a str,
    name: &'a str,
    pid: Option<u32>,
    mechanism: Option<Mechanism>,
}

impl<'a> Subject<'a> {
    /// `program`'s events, labelled `name`.
    pub(crate) fn new(program: &'a str, name: &'a str) -> Subject<'a> {
        Subject {
            program,
            name,
            pid: None,
            mechanism: None,
        }
    }

    /// With the main process's pid (`None`: none ran, or none is known).
    pub(crate) fn pid(mut self, pid: impl Into<Option<u32>>) -> Subject<'a> {
        self.pid = pid.into();
        self
    }

    /// With the mechanism containing the run.
    pub(crate) fn mechanism(mut self, mechanism: Mechanism) -> Subject<'a> {
        self.mechanism = Some(mechanism);
        self
    }

    fn mechanism_str(&self) -> Option<&'static str> {
        self.mechanism.map(Mechanism::as_str)
    }
}

/// A run hit its timeout; its tree is being ended.
pub(crate) fn timed_out(s: Subject<'_>, limit: Option<Duration>) {
    let limit_ms = limit.map(|l| l.as_secs_f64() * 1e3);
    let mechanism = s.mechanism_str();
    let (program, name, pid) = (s.program, s.name, s.pid);
    tracing::warn!(target: "pkit", program, name, pid, mechanism, limit_ms, "timed out");
}

/// A tree given a grace (after a timeout) still needed SIGKILL.
pub(crate) fn killed_after_grace(s: Subject<'_>) {
    let mechanism = s.mechanism_str();
    let (program, name, pid) = (s.program, s.name, s.pid);
    tracing::warn!(target: "pkit", program, name, pid, mechanism, "killed after the grace");
}

/// A tree being ended (after a timeout or a cancel) could not be listed
/// whole: its root was ended, its descendants may run on.
pub(crate) fn tree_not_ended(s: Subject<'_>, error: &std::io::Error) {
    let mechanism = s.mechanism_str();
    let (program, name, pid) = (s.program, s.name, s.pid);
    tracing::warn!(target: "pkit", program, name, pid, mechanism, %error, "tree could not be listed: descendants may run on");
}

/// A failed attempt is about to be replayed after `pause` (no process
/// runs meanwhile: the subject has no pid).
pub(crate) fn retry(
    s: Subject<'_>,
    attempt: u32,
    max_attempts: u32,
    failure: ErrorKind,
    pause: Duration,
) {
    let (program, name) = (s.program, s.name);
    tracing::debug!(
        target: "pkit",
        program,
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
pub(crate) fn cancelled(s: Subject<'_>) {
    let mechanism = s.mechanism_str();
    let (program, name, pid) = (s.program, s.name, s.pid);
    tracing::debug!(target: "pkit", program, name, pid, mechanism, "cancelled");
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

/// A supervised command can't be started, and retrying can't help.
pub(crate) fn cannot_start(name: &str, failure: ErrorKind) {
    tracing::warn!(target: "pkit", name, failure = ?failure, "supervised command cannot start");
}

/// A supervision ended, for `reason` (a `StopReason` in words).
pub(crate) fn supervisor_stopped(name: &str, reason: &'static str, restarts: u32) {
    tracing::debug!(target: "pkit", name, %reason, restarts, "supervisor stopped");
}
