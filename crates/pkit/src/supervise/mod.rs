//! [`Supervisor`]: keep a command running across crashes.
//!
//! The builder and the public types live here; the restart loop is in
//! `run.rs`.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::cancel::CancelToken;
use crate::command::Command;
use crate::error::{Error, ErrorKind};
use crate::future::BoxFuture;
use crate::output::{Outcome, Output};
use crate::sys::MechanismChoice;

mod current;
mod handle;
mod run;
mod stop;
mod storm;

pub use handle::{SupervisorHandle, EVENT_BUFFER};
pub use stop::StopReason;

/// When a [`Supervisor`] starts its command again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Restart {
    /// After a crash; the first clean run (an accepted exit, healthy) ends the
    /// supervision (the default).
    #[default]
    OnCrash,
    /// After every run, clean or not.
    Always,
    /// Never: the command runs once.
    Never,
}

/// How a supervision ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct SupervisionOutcome {
    /// Why it ended.
    pub stopped: StopReason,
    /// The last run's result (`None` when the last run could not start,
    /// or nothing ran).
    pub final_output: Option<Output>,
    /// The error of the last run when it had no `Output`: it could not
    /// start, or waiting for it failed.
    pub final_error: Option<Error>,
    /// How many times the command was started again after its first run
    /// (it stops at `u32::MAX`, never wraps).
    pub restarts: u32,
    /// Whether the last run failed its readiness check (see
    /// [`Supervisor::ready_when_line`] and the like). Such a run is a
    /// crash even when [`final_output`](Self::final_output) says it
    /// exited 0 (it ended before it was ready), or shows the SIGKILL the
    /// supervisor sent it when the check timed out.
    pub final_unhealthy: bool,
    /// Whether the last run counts as a crash, as its
    /// [`SupervisorEvent::Exited`] said: it failed its readiness check, or
    /// did not end with an accepted exit code, or (with no `Output`) could not
    /// start. False when nothing ran, and for a run that a stop or a
    /// cancellation ended (ending it was the caller's doing).
    ///
    /// A supervision that gave up ([`StopReason::RestartsExhausted`]) on a
    /// run that exited 0 without ever becoming ready says `true` here: read
    /// whether the last run succeeded from this, not from the exit code
    /// alone.
    pub final_crashed: bool,
}

/// What a [`SupervisorHandle`] reports as it happens, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SupervisorEvent {
    /// A run started (`run` counts from 1).
    Started {
        /// The run's number.
        run: u32,
        /// Its main process.
        pid: u32,
    },
    /// The run's readiness check passed.
    Ready {
        /// The run's main process.
        pid: u32,
    },
    /// The run's readiness check failed or timed out; the run is killed
    /// and counts as a crash.
    Unhealthy {
        /// The run's main process.
        pid: u32,
    },
    /// A run ended and its whole tree is gone.
    Exited {
        /// The run's main process.
        pid: u32,
        /// How it ended.
        outcome: Outcome,
        /// Whether it counts as a crash (not an accepted exit code, or unhealthy).
        /// False for a run that a stop ([`SupervisorHandle::stop`]) or a
        /// cancellation ended, whatever its outcome (the SIGTERM of a
        /// stop, say): ending it was the caller's doing, not the run's.
        crashed: bool,
    },
    /// A run could not be started (a crash).
    SpawnFailed {
        /// What kind of failure.
        kind: ErrorKind,
        /// Why: the error's text, as its `Display` gives it (the whole
        /// error, when the start ends the supervision, is the outcome's
        /// [`final_error`](SupervisionOutcome::final_error)).
        message: String,
    },
    /// Waiting this long before the next run.
    BackingOff(Duration),
    /// A crash storm was detected: waiting this long (instead of the
    /// backoff) before the next run.
    StormPause(Duration),
    /// The supervision ended (the last event).
    Stopped(StopReason),
}

/// The predicate of [`Supervisor::stop_when`].
pub(crate) type StopWhen = Arc<dyn Fn(&Output) -> bool + Send + Sync>;

/// A readiness check run after each start.
#[derive(Clone)]
pub(crate) enum Health {
    Line(Arc<dyn Fn(&str) -> bool + Send + Sync>),
    Port(SocketAddr),
    Check(Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>),
}

/// Keeps a command running: runs it, and after a crash (or after every
/// run, see [`restart`](Self::restart)) runs it again, with capped
/// exponential backoff, until a stop condition holds.
///
/// A *crash* is any run that does not exit with an accepted code — 0, or
/// one of the command's [`ok_codes`](Command::ok_codes) when it sets them:
/// another exit code, a signal, a timeout (the command's own
/// [`timeout`](Command::timeout)), a transient failure to start
/// ([`is_transient`](crate::is_transient)), or a failed readiness check. A start failure that can't be transient — the
/// program missing or not executable, say — ends the supervision at once
/// with [`StopReason::CannotStart`] instead of retrying for ever. Supervision is
/// sequential: each run gets a fresh [`Group`](crate::Group), and the whole
/// tree of one run (grandchildren included, daemons that double-fork away
/// too) is gone before the next run starts — under the process-group
/// mechanism, except a descendant that calls `setsid`, which leaves the
/// process group (see [`Mechanism::ProcessGroup`](crate::Mechanism::ProcessGroup)).
///
/// The defaults: restart on crash ([`Restart::OnCrash`]), no limit on
/// restarts, backoff 1 s doubling per consecutive crash up to 30 s with
/// ±10 % jitter, no storm guard, no readiness check, no stable-run reset.
///
/// Each run is started in its own group through the command's
/// [`Runner`](crate::Runner) ([`Runner::start`](crate::Runner::start)), so a
/// test can supervise a scripted program (`pkit::testing`, cargo feature
/// `testing`); pick the groups' mechanism with
/// [`mechanism`](Self::mechanism). A run's stdout and stderr are captured
/// as [`Group::start`](crate::Group::start) does (the last 1 MiB of each
/// unless the command sets a capture limit); with a line readiness check
/// the output goes to the line stream and `Output` holds none of it.
///
/// ```
/// # async fn demo() -> pkit::Result<()> {
/// use std::time::Duration;
/// use pkit::{Command, Restart, StopReason, Supervisor};
///
/// // A worker that fails twice, then finishes cleanly.
/// let counter = std::env::temp_dir().join(format!("pkit-doc-sup-{}", std::process::id()));
/// let script = r#"n=$(cat "$1" 2>/dev/null || echo 0); echo $((n+1)) > "$1"; [ $n -ge 2 ]"#;
/// let outcome = Supervisor::new(Command::new("sh").args(["-c", script, "sh"]).arg(&counter))
///     .max_restarts(10)
///     .backoff(Duration::from_millis(10), 2.0)
///     .restart(Restart::OnCrash)
///     .run()
///     .await?;
/// # let _ = std::fs::remove_file(&counter);
/// assert_eq!(outcome.stopped, StopReason::PolicySatisfied);
/// assert_eq!(outcome.restarts, 2);
/// assert!(outcome.final_output.unwrap().success());
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct Supervisor {
    pub(crate) cmd: Command,
    pub(crate) mechanism: Option<MechanismChoice>,
    pub(crate) max_restarts: Option<u32>,
    pub(crate) initial: Duration,
    pub(crate) factor: f64,
    pub(crate) max_backoff: Duration,
    pub(crate) jitter: f64,
    pub(crate) restart: Restart,
    pub(crate) stop_when: Option<StopWhen>,
    pub(crate) storm_pause: Option<Duration>,
    pub(crate) storm_crashes: usize,
    pub(crate) storm_window: Duration,
    pub(crate) reset_after: Option<Duration>,
    pub(crate) health: Option<(Health, Duration)>,
    pub(crate) cancel: Option<CancelToken>,
}

/// The default cap on the backoff: 30 s.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Supervisor {
    /// A supervisor of `cmd`, with the defaults listed on [`Supervisor`].
    pub fn new(cmd: Command) -> Supervisor {
        Supervisor {
            cmd,
            mechanism: None,
            max_restarts: None,
            initial: Duration::from_secs(1),
            factor: 2.0,
            max_backoff: DEFAULT_MAX_BACKOFF,
            jitter: 0.1,
            restart: Restart::OnCrash,
            stop_when: None,
            storm_pause: None,
            storm_crashes: 5,
            storm_window: Duration::from_secs(10),
            reset_after: None,
            health: None,
            cancel: None,
        }
    }

    /// At most `n` restarts (runs after the first); when another run is
    /// due after that, the supervision ends with
    /// [`StopReason::RestartsExhausted`]. Default: no limit.
    pub fn max_restarts(mut self, n: u32) -> Supervisor {
        self.max_restarts = Some(n);
        self
    }

    /// The pause before the first restart after a crash, multiplied by
    /// `factor` for each further consecutive crash (default 1 s and 2):
    /// `initial`, `initial * factor`, `initial * factor²`…, capped at
    /// [`max_backoff`](Self::max_backoff). After a clean run (under
    /// [`Restart::Always`]) the pause is `initial` again. A `factor` below
    /// 1 (or NaN) counts as 1.
    pub fn backoff(mut self, initial: Duration, factor: f64) -> Supervisor {
        self.initial = initial;
        self.factor = if factor >= 1.0 { factor } else { 1.0 };
        self
    }

    /// The longest pause between runs (default [`DEFAULT_MAX_BACKOFF`]),
    /// after the jitter, and after a clean run too (an `initial` pause
    /// above it is cut to it). Pauses at the cap keep their jitter below
    /// it: between `max·(1 − jitter)` and `max`. A
    /// [`storm_pause`](Self::storm_pause) is not capped.
    pub fn max_backoff(mut self, max: Duration) -> Supervisor {
        self.max_backoff = max;
        self
    }

    /// Randomises each pause by up to `fraction` of itself either way
    /// (clamped to `0.0..=1.0`; default 0.1), so supervisors that crash
    /// together do not restart in lockstep.
    pub fn jitter(mut self, fraction: f64) -> Supervisor {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// When to run the command again (default [`Restart::OnCrash`]).
    pub fn restart(mut self, policy: Restart) -> Supervisor {
        self.restart = policy;
        self
    }

    /// Ends the supervision, with [`StopReason::ByPredicate`], after the
    /// first run whose `Output` satisfies `pred` (checked before the
    /// restart policy; a run that could not start has no `Output` and is
    /// not checked).
    pub fn stop_when(
        mut self,
        pred: impl Fn(&Output) -> bool + Send + Sync + 'static,
    ) -> Supervisor {
        self.stop_when = Some(Arc::new(pred));
        self
    }

    /// Turns on the crash-storm guard: when the command crashes 5 times
    /// within 10 s (change it with [`storm_limit`](Self::storm_limit)),
    /// the supervisor pauses for `pause` instead of the usual backoff, and
    /// starts counting crashes afresh. The pause is logged at Warn and
    /// reported as [`SupervisorEvent::StormPause`].
    pub fn storm_pause(mut self, pause: Duration) -> Supervisor {
        self.storm_pause = Some(pause);
        self
    }

    /// What counts as a storm for [`storm_pause`](Self::storm_pause):
    /// `crashes` crashes (at least 1) within `window`, counting the times
    /// the crashed runs ended.
    pub fn storm_limit(mut self, crashes: usize, window: Duration) -> Supervisor {
        self.storm_crashes = crashes.max(1);
        self.storm_window = window;
        self
    }

    /// A run that stayed up at least `uptime` (from its start to its end)
    /// was a stable run: the backoff starts again from its initial pause
    /// and the storm guard forgets earlier crashes (as systemd's
    /// `StartLimitIntervalSec` and supervisord's `startsecs`). Default: no
    /// reset.
    pub fn reset_after(mut self, uptime: Duration) -> Supervisor {
        self.reset_after = Some(uptime);
        self
    }

    /// After each start, waits up to `timeout` for a stdout or stderr line
    /// for which `pred` holds (a line longer than the command's
    /// [`max_line_bytes`](Command::max_line_bytes) is offered as its first
    /// piece only, as [`Command::first_line`] offers it); a run whose line does not come in time (or
    /// that exits first) is killed and counts as a crash. Turns on the
    /// command's [`stream_lines`](Command::stream_lines): the lines go to
    /// the stream (and are dropped once nobody reads them), not to the
    /// `Output`.
    pub fn ready_when_line(
        mut self,
        pred: impl Fn(&str) -> bool + Send + Sync + 'static,
        timeout: Duration,
    ) -> Supervisor {
        self.health = Some((Health::Line(Arc::new(pred)), timeout));
        self
    }

    /// After each start, waits up to `timeout` for a TCP connection to
    /// `addr` to succeed; otherwise the run is killed and counts as a
    /// crash. Any listener counts: a port another process already listens
    /// on makes every run ready at once (see
    /// [`RunningProcess::wait_for_port`](crate::RunningProcess::wait_for_port)).
    pub fn ready_when_port(mut self, addr: SocketAddr, timeout: Duration) -> Supervisor {
        self.health = Some((Health::Port(addr), timeout));
        self
    }

    /// After each start, retries `check` (every 25 ms) for up to
    /// `timeout` until it returns true; otherwise the run is killed and
    /// counts as a crash.
    pub fn ready_when<F, Fut>(mut self, check: F, timeout: Duration) -> Supervisor
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let check = Arc::new(check);
        self.health = Some((
            Health::Check(Arc::new(move || {
                let check = check.clone();
                Box::pin(async move { check().await })
            })),
            timeout,
        ));
        self
    }

    /// The mechanism of each run's group (default: `PKIT_MECHANISM`, else
    /// the best available).
    pub fn mechanism(mut self, choice: MechanismChoice) -> Supervisor {
        self.mechanism = Some(choice);
        self
    }

    /// Ends the supervision when `token` is cancelled: the current run's
    /// tree is killed at once (no grace) and the outcome is
    /// [`StopReason::Cancelled`] — also during the grace of a
    /// [`SupervisorHandle::stop`], which it cuts short. The command's own
    /// [`cancel_token`](Command::cancel_token) does the same.
    pub fn cancel_token(mut self, token: &CancelToken) -> Supervisor {
        self.cancel = Some(token.clone());
        self
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("cmd", &self.cmd)
            .field("max_restarts", &self.max_restarts)
            .field("initial", &self.initial)
            .field("factor", &self.factor)
            .field("max_backoff", &self.max_backoff)
            .field("restart", &self.restart)
            .field("storm_pause", &self.storm_pause)
            .field("reset_after", &self.reset_after)
            .finish_non_exhaustive()
    }
}
