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

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::cancel::CancelToken;
use crate::error::{Error, Result};
use crate::output::Outcome;
use crate::pump::LimitFlag;
use crate::sys::{ChildHandle, Container, ProcTree, Signal};
use crate::timing::{deadline_after, sleep_until_or_never};
use tokio::time::Instant;

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
    /// The group it was started in (see [`thaw`]).
    group: Weak<Container>,
    task: Option<JoinHandle<()>>,
    /// What the task runs on, to start it again (see [`rearm`]).
    armed: Option<Arc<Armed>>,
}

/// A started process's bounds, as plain values (taken from its command
/// by the launch, a layer above).
pub(crate) struct Bounds<'a> {
    /// The command's `timeout`.
    pub timeout: Option<Duration>,
    /// When the start call began: the timeout counts from there (a wait
    /// for a FIFO's other end before the spawn is part of it).
    pub began: std::time::Instant,
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
    /// The group it was started in, resumed when an end's signal goes to
    /// it while suspended (see [`thaw`]).
    pub group: Weak<Container>,
}

/// What [`Bounds::log`] holds.
pub(crate) type LogSubject<'a> = (
    &'a dyn Fn() -> std::sync::Arc<str>,
    &'a str,
    crate::sys::Mechanism,
);

/// Everything a watch's task reads: its bounds as instants, so that a task
/// started again keeps the first one's deadlines.
struct Armed {
    child: Arc<ChildHandle>,
    tree: Arc<ProcTree>,
    state: Arc<Mutex<State>>,
    group: Weak<Container>,
    activity: Arc<LimitFlag>,
    deadline: Option<Instant>,
    start: Instant,
    inactivity: Option<Duration>,
    cancel: Option<CancelToken>,
    /// How a timeout, and how a cancellation, end the subtree.
    plans: [Option<(Signal, Duration)>; 2],
    /// How far the task got in ending the subtree (see [`Phase`]).
    phase: Mutex<Phase>,
    /// For the log: the name, the timeout, the program, the mechanism, the pid.
    log: (
        Arc<str>,
        Option<Duration>,
        String,
        crate::sys::Mechanism,
        u32,
    ),
}

/// Where a fired watch is in ending the subtree: a task dropped with its
/// runtime between the first signal and the SIGKILL after the grace left it
/// `Ending`, and [`rearm`] finishes the end from there.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Not fired, or fired and the subtree ended.
    Idle,
    /// The first signal went out (or is about to): `signal`, if there was
    /// one before SIGKILL; `deadline` ends its grace (`None`: one without
    /// end).
    Ending {
        deadline: Option<Instant>,
        signal: Option<i32>,
    },
}

impl std::fmt::Debug for Armed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Armed")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

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
    let deadline = crate::timing::left_of(bounds.timeout, bounds.began).and_then(deadline_after);
    let inactivity = bounds.inactivity.filter(|d| deadline_after(*d).is_some());
    let bounded = deadline.is_some() || inactivity.is_some() || bounds.cancel.is_some();
    let armed = bounded.then(|| {
        let (label, program, mechanism) = bounds.log;
        Arc::new(Armed {
            child: child.clone(),
            tree: tree.clone(),
            state: state.clone(),
            group: bounds.group.clone(),
            activity: activity.clone(),
            deadline,
            start: Instant::now(),
            inactivity,
            cancel: bounds.cancel.cloned(),
            plans: [bounds.on_timeout, bounds.on_cancel],
            phase: Mutex::new(Phase::Idle),
            log: (label(), bounds.timeout, program.to_owned(), mechanism, pid),
        })
    });
    let task = armed.clone().map(|a| tokio::spawn(watching(a)));
    Some(Watch {
        tree,
        state,
        group: bounds.group,
        task,
        armed,
    })
}

/// Starts the watch's task again on the current runtime when it ended
/// before its work was done: the runtime the process was started on (where
/// the task ran) has shut down, and a wait on another runtime must still
/// see the timeout and the cancel token end the process. A task dropped
/// while armed is started again with the first one's deadlines; one
/// dropped while ending the subtree (between the first signal and the
/// SIGKILL after the grace) is finished by [`finishing`]. (A task that saw
/// the exit ended while armed too: nothing is left to watch then.)
pub(crate) fn rearm(watch: &mut Option<Watch>) {
    let Some(w) = watch else { return };
    let Some(armed) = &w.armed else { return };
    // No task: one that ended was taken by `lost` or `outcome`.
    if w.task.as_ref().is_some_and(|t| !t.is_finished()) {
        return;
    }
    let armed_still = matches!(
        *w.state.lock().unwrap_or_else(|e| e.into_inner()),
        State::Armed
    );
    let phase = *armed.phase.lock().unwrap_or_else(|e| e.into_inner());
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    match phase {
        Phase::Ending { deadline, signal } => {
            w.task = Some(rt.spawn(finishing(armed.clone(), deadline, signal)));
        }
        Phase::Idle if armed_still && !matches!(armed.child.try_status(), Ok(Some(_))) => {
            w.task = Some(rt.spawn(watching(armed.clone())));
        }
        Phase::Idle => {}
    }
}

/// Completes never, but starts the watch's task again (see [`rearm`])
/// each time it goes with its runtime: raced against a wait for the exit,
/// so that a runtime shut down while another waits still leaves the
/// timeout and the cancel token watched.
pub(crate) async fn lost(watch: &mut Option<Watch>) {
    for _ in 0..RESTARTS {
        let Some(task) = watch.as_mut().and_then(|w| w.task.as_mut()) else {
            return std::future::pending().await;
        };
        let gone = task.await.is_err_and(|e| e.is_cancelled());
        if let Some(w) = watch.as_mut() {
            w.task = None;
        }
        if !gone {
            return std::future::pending().await;
        }
        rearm(watch);
    }
    std::future::pending().await
}

/// How many times [`lost`] and [`outcome`] start a watch's task again
/// after it went with its runtime.
const RESTARTS: usize = 4;

/// Finishes an end of the subtree that a task dropped with its runtime
/// left under way: the whole subtree gets the rest of the grace (no signal
/// is sent again), then SIGKILL goes to what is left, which is `late`.
async fn finishing(a: Arc<Armed>, deadline: Option<Instant>, signal: Option<i32>) {
    let (name, _, program, mechanism, pid) = &a.log;
    let who = crate::log::Subject::new(program, name)
        .pid(*pid)
        .mechanism(*mechanism);
    let timed_out = matches!(
        *a.state.lock().unwrap_or_else(|e| e.into_inner()),
        State::TimedOut { .. }
    );
    let done = reaping_root(&a, async {
        match signal {
            Some(sig) => tokio::select! {
                done = a.tree.end_after(sig, deadline) => done,
                () = other_bound(&a, timed_out) => a.tree.end_after(sig, Some(Instant::now())).await,
            },
            None => a.tree.end(None, &|| ()).await,
        }
    })
    .await;
    let late = done.unwrap_or_else(|e| {
        crate::log::tree_not_ended(who, &e);
        true
    });
    if late {
        crate::log::killed_after_grace(who);
    }
    ended(&a, late);
}

/// Records the subtree ended: `late` when SIGKILL was still needed after
/// the grace.
fn ended(a: &Armed, late: bool) {
    *a.phase.lock().unwrap_or_else(|e| e.into_inner()) = Phase::Idle;
    if let State::TimedOut { late: l, .. } = &mut *a.state.lock().unwrap_or_else(|e| e.into_inner())
    {
        *l = late;
    }
}

/// The watch's task: ends the subtree when a bound passes first.
async fn watching(a: Arc<Armed>) {
    let timer = sleep_until_or_never(a.deadline);
    let idle = a.activity.idle_for_or_never(a.start, a.inactivity);
    let cancelled = CancelToken::cancelled_or_never(a.cancel.as_ref());
    let fired = tokio::select! {
        _ = a.child.wait() => return,
        () = timer => State::TimedOut { late: false, idle: false },
        () = idle => State::TimedOut { late: false, idle: true },
        () = cancelled => State::Cancelled,
    };
    {
        let mut s = a.state.lock().unwrap_or_else(|e| e.into_inner());
        // Exited meanwhile, or `wait` already took the exit as is.
        if !matches!(*s, State::Armed) || matches!(a.child.try_status(), Ok(Some(_))) {
            return;
        }
        *s = fired;
    }
    let (name, limit, program, mechanism, pid) = &a.log;
    let who = crate::log::Subject::new(program, name)
        .pid(*pid)
        .mechanism(*mechanism);
    match fired {
        State::TimedOut { idle: false, .. } => crate::log::timed_out(who, *limit),
        State::TimedOut { .. } => crate::log::timed_out(who, a.inactivity),
        _ => crate::log::cancelled(who),
    }
    let plan = match fired {
        State::TimedOut { .. } => a.plans[0],
        _ => a.plans[1],
    };
    let first = plan.map(|(sig, grace)| (sig.as_raw(), deadline_after(grace)));
    *a.phase.lock().unwrap_or_else(|e| e.into_inner()) = Phase::Ending {
        deadline: first.and_then(|(_, d)| d),
        signal: first.map(|(sig, _)| sig),
    };
    // A subtree that could not be listed is not taken for ended
    // within the grace: its root was killed, the rest unknown.
    let then = || thaw(&a.group);
    let ending = a.tree.end(first, &then);
    let timed_out = matches!(fired, State::TimedOut { .. });
    // Pinned here, and lent: the reaping future holds a pointer to it,
    // not a copy (this task's state is allocated at each watched start).
    let end = std::pin::pin!(async {
        tokio::select! {
            late = ending => late,
            // The other bound passed during the grace: it ends there (the
            // first signal's processes, as a resumed end's, get SIGKILL).
            () = other_bound(&a, timed_out), if first.is_some() => {
                let sig = first.map_or(0, |(sig, _)| sig);
                a.tree.end_after(sig, Some(Instant::now())).await
            }
        }
    });
    let late = reaping_root(&a, end).await;
    let late = late.unwrap_or_else(|e| {
        crate::log::tree_not_ended(who, &e);
        true
    });
    if late {
        crate::log::killed_after_grace(who);
    }
    ended(&a, late);
}

/// Runs `ending`, an end of the subtree, and reaps the started process as
/// soon as it exits meanwhile where nothing of the end asks for it by
/// number (a cgroup's subtree: see `ProcTree::reaps_root_early`): one that
/// exits on the end's signal while a descendant ignores it is not kept a
/// zombie for the rest of the grace (see `ChildHandle::reaped_during`).
/// Under process groups it stays unreaped until the last share of its
/// handle goes (a group's first process until the group ends).
async fn reaping_root<T>(a: &Armed, ending: impl std::future::Future<Output = T>) -> T {
    match a.tree.reaps_root_early() {
        true => a.child.reaped_during(ending).await,
        false => ending.await,
    }
}

/// Completes when the bound other than the one that fired passes, to end
/// the fired one's grace at once: after a timeout (overall or inactivity)
/// the cancel token, after a cancellation the timeout's deadline.
async fn other_bound(a: &Armed, timed_out: bool) {
    match timed_out {
        true => CancelToken::cancelled_or_never(a.cancel.as_ref()).await,
        false => sleep_until_or_never(a.deadline).await,
    }
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

/// The started process's bounds after its exit (none without a watch).
pub(crate) fn after_exit(watch: &Option<Watch>) -> crate::after_exit::AfterExit {
    let Some(a) = watch.as_ref().and_then(|w| w.armed.as_ref()) else {
        return Default::default();
    };
    crate::after_exit::AfterExit {
        deadline: a.deadline,
        inactivity: a.inactivity.map(|d| (a.start, d)),
        activity: Some(a.activity.clone()),
        cancel: a.cancel.iter().cloned().collect(),
    }
}

/// The started process's subtree, when it has one.
pub(crate) fn tree(watch: &Option<Watch>) -> Option<&ProcTree> {
    watch.as_ref().map(|w| &*w.tree)
}

/// What [`thaw`] resumes for the started process: its group (nothing
/// without a watch).
pub(crate) fn group(watch: &Option<Watch>) -> Weak<Container> {
    watch.as_ref().map(|w| w.group.clone()).unwrap_or_default()
}

/// Run right after an end's signal went to a started process's subtree
/// (on Unix one followed by SIGCONT, on Windows a CTRL_BREAK: see
/// [`ProcTree::end`]): a group the caller
/// suspended is resumed and no longer suspended, so the signal is
/// handled within the grace rather than held through it, under every
/// mechanism alike (as [`Group::shutdown`](crate::Group::shutdown) does).
/// Nothing once the group is gone.
pub(crate) fn thaw(group: &Weak<Container>) {
    if let Some(c) = group.upgrade() {
        let _ = c.thaw_suspended();
    }
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
    // Kept until it completes: a second wait after a dropped one must
    // still wait for the end under way. A task gone with its runtime is
    // started again here (see `rearm`: an end under way is finished).
    // Bounded: a task spawned on a runtime already shutting down is
    // cancelled at once.
    for _ in 0..RESTARTS {
        let Some(task) = watch.as_mut().and_then(|w| w.task.as_mut()) else {
            break;
        };
        let gone = task.await.is_err_and(|e| e.is_cancelled());
        if let Some(w) = watch.as_mut() {
            w.task = None;
        }
        if !gone {
            break;
        }
        rearm(watch);
    }
    let Some(w) = watch else {
        return Ok((exited, false, false));
    };
    let state = *w.state.lock().unwrap_or_else(|e| e.into_inner());
    match state {
        State::TimedOut { late, idle } => Ok((Outcome::TimedOut, late, idle)),
        State::Cancelled => Err(Error::Cancelled {
            program: program.to_string(),
        }),
        State::Armed | State::Disarmed => Ok((exited, false, false)),
    }
}
