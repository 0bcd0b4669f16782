//! The bounds of a started process: its command's
//! [`timeout`](crate::Command::timeout) (with
//! [`timeout_signal`](crate::Command::timeout_signal) and
//! [`grace`](crate::Command::grace)) and its cancel token, for a process
//! started with [`Group::start`](crate::Group::start).
//!
//! A small task watches the process: when the timeout passes or the token
//! is cancelled first, it ends the process's own subtree (see
//! [`ProcTree`]) the way a verb ends its tree — the signal, the grace,
//! then SIGKILL (on cancellation, the command's cancel signal and grace:
//! SIGKILL at once by default) — and records why, for
//! [`RunningProcess::wait`](crate::RunningProcess::wait) to report. The rest of the group runs on. The
//! task runs whether or not anyone waits, and ends when the process does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::cancel::CancelToken;
use crate::error::{Error, Result};
use crate::output::Outcome;
use crate::pump::LimitFlag;
use crate::sys::{ChildHandle, ProcTree, Signal};
use crate::timing::{deadline_after, sleep_until_or_never};

/// What the watch did.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Watching.
    Armed,
    /// The process exited first; the watch is over.
    Disarmed,
    /// The timeout ended it (`late`: SIGKILL was still needed after the
    /// grace; `idle`: the inactivity timeout, not the overall one).
    TimedOut { late: bool, idle: bool },
    /// The cancel token ended it.
    Cancelled,
}

/// A started process's subtree, and the task enforcing its bounds.
#[derive(Debug)]
pub(crate) struct Watch {
    /// Kept for the process's life: dropping the last reference removes
    /// its sub-cgroup once empty.
    tree: Arc<ProcTree>,
    state: Arc<Mutex<State>>,
    task: Option<JoinHandle<()>>,
}

/// A started process's bounds, as plain values (taken from its command
/// by the launch, a layer above).
pub(crate) struct Bounds<'a> {
    /// The command's `timeout`.
    pub timeout: Option<Duration>,
    /// The command's inactivity timeout.
    pub inactivity: Option<Duration>,
    /// The command's cancel token.
    pub cancel: Option<&'a CancelToken>,
    /// How a timeout ends the subtree: the first signal and its grace
    /// (`None`: SIGKILL at once).
    pub on_timeout: Option<(Signal, Duration)>,
    /// How a cancellation ends it, the same way.
    pub on_cancel: Option<(Signal, Duration)>,
    /// For the log: the command's name (made only when a bound is armed),
    /// the program, and the mechanism.
    pub log: LogSubject<'a>,
}

/// What [`Bounds::log`] holds.
pub(crate) type LogSubject<'a> = (
    &'a dyn Fn() -> std::sync::Arc<str>,
    &'a str,
    crate::sys::Mechanism,
);

/// The watch of a started process (`child`, `pid`, its output `activity`):
/// its subtree, with the command's timeout and cancel token (`bounds`)
/// armed on it (when it has either). `None` without a subtree.
pub(crate) fn attach(
    child: &Arc<ChildHandle>,
    activity: &Arc<LimitFlag>,
    pid: u32,
    bounds: Bounds<'_>,
    tree: Option<ProcTree>,
) -> Option<Watch> {
    let tree = tree?;
    let tree = Arc::new(tree);
    let state = Arc::new(Mutex::new(State::Armed));
    let deadline = bounds.timeout.and_then(deadline_after);
    let inactivity = bounds.inactivity.filter(|d| deadline_after(*d).is_some());
    let bounded = deadline.is_some() || inactivity.is_some() || bounds.cancel.is_some();
    let task = bounded.then(|| {
        let (child, tree, state) = (child.clone(), tree.clone(), state.clone());
        let activity = activity.clone();
        let cancel = bounds.cancel.cloned();
        let plan = bounds.on_timeout;
        let (label, program, mechanism) = bounds.log;
        let (name, limit, program) = (label(), bounds.timeout, program.to_owned());
        let cancel_plan = bounds.on_cancel;
        tokio::spawn(async move {
            let timer = sleep_until_or_never(deadline);
            let start = tokio::time::Instant::now();
            let idle = activity.idle_for_or_never(start, inactivity);
            let cancelled = CancelToken::cancelled_or_never(cancel.as_ref());
            let fired = tokio::select! {
                _ = child.wait() => return,
                () = timer => State::TimedOut { late: false, idle: false },
                () = idle => State::TimedOut { late: false, idle: true },
                () = cancelled => State::Cancelled,
            };
            {
                let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                // Exited meanwhile, or `wait` already took the exit as is.
                if !matches!(*s, State::Armed) || matches!(child.try_status(), Ok(Some(_))) {
                    return;
                }
                *s = fired;
            }
            let who = crate::log::Subject::new(&program, &name)
                .pid(pid)
                .mechanism(mechanism);
            match fired {
                State::TimedOut { idle: false, .. } => crate::log::timed_out(who, limit),
                State::TimedOut { .. } => crate::log::timed_out(who, inactivity),
                _ => crate::log::cancelled(who),
            }
            let plan = match fired {
                State::TimedOut { .. } => plan,
                _ => cancel_plan,
            };
            let first = plan.map(|(sig, grace)| (sig.as_raw(), deadline_after(grace)));
            // A subtree that could not be listed is not taken for ended
            // within the grace: its root was killed, the rest unknown.
            let late = tree.end(first).await.unwrap_or_else(|e| {
                crate::log::tree_not_ended(who, &e);
                true
            });
            if late {
                crate::log::killed_after_grace(who);
            }
            if let State::TimedOut { late: l, .. } =
                &mut *state.lock().unwrap_or_else(|e| e.into_inner())
            {
                *l = late;
            }
        })
    });
    Some(Watch { tree, state, task })
}

/// Whether the watch ended the process by its timeout, read after the
/// exit (the watch records it before it signals, so an exit it caused
/// always finds it recorded).
#[derive(Debug, Clone)]
pub(crate) struct Verdict(Arc<Mutex<State>>);

/// How a watch ended its process.
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ending {
    /// By the timeout (`idle`: the inactivity timeout).
    Timeout { idle: bool },
    /// By the cancel token.
    Cancel,
}

impl Verdict {
    /// How the watch ended the process, if it did.
    #[cfg(feature = "testing")]
    pub(crate) fn ending(&self) -> Option<Ending> {
        match *self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            State::TimedOut { idle, .. } => Some(Ending::Timeout { idle }),
            State::Cancelled => Some(Ending::Cancel),
            State::Armed | State::Disarmed => None,
        }
    }

    pub(crate) fn timed_out(&self) -> bool {
        matches!(
            *self.0.lock().unwrap_or_else(|e| e.into_inner()),
            State::TimedOut { .. }
        )
    }
}

/// The started process's [`Verdict`], when it has a watch.
pub(crate) fn verdict(watch: &Option<Watch>) -> Option<Verdict> {
    watch.as_ref().map(|w| Verdict(w.state.clone()))
}

/// The started process's subtree, when it has one.
pub(crate) fn tree(watch: &Option<Watch>) -> Option<&ProcTree> {
    watch.as_ref().map(|w| &*w.tree)
}

/// The outcome to report for a process that exited with `exited`: the
/// timeout's, or the cancellation's error, when the watch ended it (after
/// waiting for the watch to finish ending its subtree). Returns whether
/// SIGKILL was still needed after a grace, and whether the inactivity
/// timeout fired.
pub(crate) async fn outcome(
    watch: &mut Option<Watch>,
    program: &str,
    exited: Outcome,
) -> Result<(Outcome, bool, bool)> {
    let Some(w) = watch else {
        return Ok((exited, false, false));
    };
    {
        let mut s = w.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*s, State::Armed) {
            // It exited on its own: the bounds are over.
            *s = State::Disarmed;
            if let Some(task) = w.task.take() {
                task.abort();
            }
        }
    }
    if let Some(task) = w.task.take() {
        let _ = task.await;
    }
    let state = *w.state.lock().unwrap_or_else(|e| e.into_inner());
    match state {
        State::TimedOut { late, idle } => Ok((Outcome::TimedOut, late, idle)),
        State::Cancelled => Err(Error::Cancelled {
            program: program.to_string(),
        }),
        State::Armed | State::Disarmed => Ok((exited, false, false)),
    }
}
