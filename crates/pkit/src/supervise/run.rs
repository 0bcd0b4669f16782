//! The restart loop behind [`Supervisor::run`] and [`Supervisor::start`].

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::current::CurrentRun;
use super::handle::{EventQueue, EventSender, SupervisorHandle};
use super::storm::Crashes;
use super::{Health, Restart, StopReason, SupervisionOutcome, Supervisor, SupervisorEvent};
use crate::cancel::CancelToken;
use crate::command::{Command, DEFAULT_TIMEOUT_GRACE};
use crate::error::{Error, Result};
use crate::group::Group;
use crate::log;
use crate::output::Output;
use crate::process::RunningProcess;
use crate::sys::Signal;

/// How one run ended, as far as the loop is concerned.
struct RunEnd {
    output: Option<Output>,
    error: Option<Error>,
    unhealthy: bool,
    /// Set when the loop must end after this run (cancel or stop).
    interrupted: Option<StopReason>,
    began: Instant,
}

impl RunEnd {
    /// Whether the run counts as a crash: unhealthy, not a clean exit with
    /// one of `ok` (the command's `ok_codes`, 0 without), or unable to
    /// start; never a run a stop or cancellation ended.
    fn crashed(&self, ok: &[i32]) -> bool {
        if matches!(
            self.interrupted,
            Some(StopReason::StopRequested | StopReason::Cancelled)
        ) {
            return false;
        }
        match &self.output {
            Some(out) => self.unhealthy || !out.code().is_some_and(|c| ok.contains(&c)),
            None => self.error.is_some(),
        }
    }
}

/// What woke a wait up.
enum Wake<T> {
    Done(T),
    Cancelled,
    Stop,
}

struct Loop {
    sup: Supervisor,
    cmd: Command,
    name: Arc<str>,
    events: Option<EventSender>,
    stop: CancelToken,
    /// The run going on, for the handle's `signal_program`.
    current: Arc<CurrentRun>,
}

impl Loop {
    fn emit(&self, event: SupervisorEvent) {
        if let Some(tx) = &self.events {
            tx.push(event);
        }
    }

    fn cancelled(&self) -> bool {
        self.tokens().any(|t| t.is_cancelled())
    }

    fn tokens(&self) -> impl Iterator<Item = &CancelToken> {
        self.sup.cancel.iter().chain(self.cmd.spec.cancel.iter())
    }

    /// Ends when any cancel token fires (never without one).
    async fn cancel_fired(&self) {
        let mut tokens: Vec<_> = self
            .tokens()
            .map(|t| Some(Box::pin(t.cancelled())))
            .collect();
        crate::timing::first_of(&mut tokens).await;
    }

    /// Runs `work` until it ends, a cancel token fires, or a stop is asked;
    /// a cancellation first when both are there, as at the top of the loop.
    async fn until<T>(&self, work: impl std::future::Future<Output = T>) -> Wake<T> {
        tokio::select! {
            biased;
            () = self.cancel_fired() => Wake::Cancelled,
            () = self.stop.cancelled() => Wake::Stop,
            v = work => Wake::Done(v),
        }
    }

    async fn one_run(&self, run: u32) -> Result<RunEnd> {
        let began = Instant::now();
        let mut end = RunEnd {
            output: None,
            error: None,
            unhealthy: false,
            interrupted: None,
            began,
        };
        let mut builder = Group::builder().log_name(self.name.clone()).one_shot();
        if let Some(choice) = self.sup.mechanism {
            builder = builder.mechanism(choice);
        }
        let group = builder.build()?;
        let mut proc = match group.start(&self.cmd) {
            Ok(p) => p,
            Err(e) => {
                if e.is_cancelled() {
                    // A token, or a stop (a start waiting on a FIFO, below).
                    let stop = self.stop.is_cancelled() && !self.cancelled();
                    end.interrupted =
                        Some([StopReason::Cancelled, StopReason::StopRequested][stop as usize]);
                } else {
                    self.emit(SupervisorEvent::SpawnFailed {
                        kind: e.kind(),
                        message: e.to_string(),
                    });
                    if !crate::retry::is_transient(&e) {
                        log::cannot_start(&self.name, e.kind());
                        end.interrupted = Some(StopReason::CannotStart);
                    }
                }
                end.error = Some(e);
                group.close().await?;
                return Ok(end);
            }
        };
        let pid = proc.pid();
        // The current run from before its `Started` event until its exit
        // is collected (below), or this future ends on the way.
        let recorded =
            self.current
                .record(pid, proc.child.clone(), proc.program(), group.mechanism());
        self.emit(SupervisorEvent::Started { run, pid });
        let mut wake = Wake::Done(());
        if let Some((health, timeout)) = &self.sup.health {
            match self.until(check(&mut proc, health, *timeout)).await {
                Wake::Done(true) => self.emit(SupervisorEvent::Ready { pid }),
                Wake::Done(false) => {
                    end.unhealthy = true;
                    log::unhealthy(&self.name, pid, *timeout);
                    self.emit(SupervisorEvent::Unhealthy { pid });
                    group.kill_async().await?;
                }
                Wake::Cancelled => wake = Wake::Cancelled,
                Wake::Stop => wake = Wake::Stop,
            }
        }
        if let Wake::Done(()) = wake {
            wake = match self.until(proc.wait_status()).await {
                Wake::Done(_) => Wake::Done(()),
                Wake::Cancelled => Wake::Cancelled,
                Wake::Stop => Wake::Stop,
            };
        }
        let program = self.cmd.display_name();
        let log_cancelled = || {
            log::cancelled(
                log::Subject::new(&program, &self.name)
                    .pid(pid)
                    .mechanism(group.mechanism()),
            )
        };
        match wake {
            Wake::Done(()) => {}
            Wake::Cancelled => {
                log_cancelled();
                group.kill_async().await?;
                end.interrupted = Some(StopReason::Cancelled);
            }
            Wake::Stop => {
                let signal = self.cmd.spec.timeout_signal.unwrap_or(Signal::Term);
                let grace = self.cmd.spec.grace.unwrap_or(DEFAULT_TIMEOUT_GRACE);
                end.interrupted = Some(StopReason::StopRequested);
                // A cancel token fired during the grace cuts it short: the
                // tree is killed at once (a second Ctrl-C, say).
                tokio::select! {
                    r = group.shutdown_with(signal, grace, std::future::pending()) => { r?; }
                    () = self.cancel_fired() => {
                        log_cancelled();
                        group.kill_async().await?;
                        end.interrupted = Some(StopReason::Cancelled);
                    }
                }
            }
        }
        // A tee stuck after the exit is cut by a stop or a cancel too, as by
        // the command's own tokens: the outcome stays the exit's, and the
        // loop ends at its top (or by its policy).
        let cut = async {
            tokio::select! {
                () = self.cancel_fired() => {}
                () = self.stop.cancelled() => {}
            }
        };
        let waited = proc.wait_within(cut).await;
        // Its exit collected: no longer a run to signal (its tree may
        // still be ended by the close below).
        drop(recorded);
        match waited {
            Ok(out) => end.output = Some(out),
            Err(e) if e.is_cancelled() => {
                end.interrupted = Some(StopReason::Cancelled);
                end.error = Some(e);
            }
            Err(e) => match e.into_output() {
                Some(out) => end.output = Some(out),
                None => {
                    end.error = Some(Error::io(
                        "waiting for a supervised run",
                        std::io::Error::other("no result"),
                    ))
                }
            },
        }
        // The whole tree of this run is gone before anything else happens.
        group.close().await?;
        if let Some(out) = &end.output {
            self.emit(SupervisorEvent::Exited {
                pid,
                outcome: out.outcome(),
                crashed: end.crashed(self.cmd.ok()),
            });
        }
        Ok(end)
    }
}

/// Runs the readiness check; true when it passed.
async fn check(proc: &mut RunningProcess, health: &Health, timeout: Duration) -> bool {
    match health {
        Health::Line(pred) => {
            // A line cut by `max_line_bytes` is offered as its first piece
            // only (as `first_line` does): the pieces after it are no
            // lines the program wrote.
            let mut offered = |l: &crate::pump::Line| l.begins_a_line() && pred(&l.text);
            proc.wait_for_line(&mut offered, timeout).await.is_ok()
        }
        Health::Port(addr) => proc.wait_for_port(*addr, timeout).await.is_ok(),
        Health::Check(f) => proc.wait_for(|| f(), timeout).await.is_ok(),
    }
}

/// Supervises `sup`; `stop` asks for a graceful stop, and `dropped` (its
/// handle is gone) only gives up a start waiting for a FIFO's other end
/// (the task is aborted then).
pub(super) async fn supervise(
    sup: Supervisor,
    events: Option<EventSender>,
    stop: CancelToken,
    dropped: CancelToken,
    current: Arc<CurrentRun>,
) -> Result<SupervisionOutcome> {
    if sup.cmd.retries() {
        return Err(crate::Error::InvalidInput(format!(
            "{}: a supervisor restarts its command by its own policy (backoff, limits);              the command's retry policy would be ignored",
            sup.cmd.display_name()
        )));
    }
    if matches!(sup.cmd.spec.stdin, crate::spec::Input::Reader(_)) && sup.restart != Restart::Never
    {
        return Err(crate::Error::InvalidInput(format!(
            "{}: a stdin_reader is read by one run only, and a supervisor may start the command \
             again: give it stdin bytes or a file, or supervise with Restart::Never",
            sup.cmd.display_name()
        )));
    }
    let mut cmd = sup.cmd.clone();
    // A start waiting for a FIFO's other end is given up at a stop too,
    // and when the handle is dropped.
    let tokens = [&stop, &dropped]
        .into_iter()
        .chain(&sup.cancel)
        .cloned()
        .collect();
    cmd.spec.chain_open = Some((None, tokens));
    if matches!(sup.health, Some((Health::Line(_), _))) {
        cmd = cmd.stream_lines();
    }
    let name = cmd.log_label();
    let lp = Loop {
        sup,
        cmd,
        name,
        events,
        stop,
        current,
    };
    let mut restarts = 0u32;
    let mut consecutive = 0u32;
    let mut crashes = Crashes::new(lp.sup.storm_crashes, lp.sup.storm_window);
    let mut last: Option<RunEnd> = None;
    let stopped = loop {
        if lp.cancelled() {
            break StopReason::Cancelled;
        }
        if lp.stop.is_cancelled() {
            break StopReason::StopRequested;
        }
        let end = lp.one_run(one_more(restarts)).await?;
        let ended = Instant::now();
        if let Some(reason) = end.interrupted {
            last = Some(end);
            break reason;
        }
        if lp.sup.reset_after.is_some_and(|r| ended - end.began >= r) {
            consecutive = 0;
            crashes.clear();
        }
        // Not interrupted: a clean run is one that did not crash.
        let clean = !end.crashed(lp.cmd.ok());
        let by_pred = match (&lp.sup.stop_when, &end.output) {
            (Some(pred), Some(out)) => pred(out),
            _ => false,
        };
        last = Some(end);
        if by_pred {
            break StopReason::ByPredicate;
        }
        match lp.sup.restart {
            Restart::Never => break StopReason::PolicySatisfied,
            Restart::OnCrash if clean => break StopReason::PolicySatisfied,
            _ => {}
        }
        if lp.sup.max_restarts.is_some_and(|max| restarts >= max) {
            break StopReason::RestartsExhausted;
        }
        let mut pause;
        let mut storm = false;
        if clean {
            consecutive = 0;
            pause = lp.sup.initial;
        } else {
            pause = backoff(&lp.sup, consecutive);
            consecutive = one_more(consecutive);
            // Counted only for the guard, if it is on.
            storm = lp.sup.storm_pause.is_some() && crashes.storm_after(ended);
        }
        pause = capped_jitter(pause, lp.sup.jitter, lp.sup.max_backoff);
        match lp.sup.storm_pause {
            Some(storm_pause) if storm => {
                log::storm(&lp.name, crashes.len(), lp.sup.storm_window, storm_pause);
                crashes.clear();
                pause = storm_pause;
                lp.emit(SupervisorEvent::StormPause(storm_pause));
            }
            _ => lp.emit(SupervisorEvent::BackingOff(pause)),
        }
        match lp.until(tokio::time::sleep(pause)).await {
            Wake::Done(()) => {}
            Wake::Cancelled => break StopReason::Cancelled,
            Wake::Stop => break StopReason::StopRequested,
        }
        restarts = one_more(restarts);
        log::restart(&lp.name, restarts, pause);
    };
    log::supervisor_stopped(&lp.name, stopped.as_str(), restarts);
    lp.emit(SupervisorEvent::Stopped(stopped));
    let (final_output, final_error, final_unhealthy, final_crashed) = match last {
        Some(end) => {
            let crashed = end.crashed(lp.cmd.ok());
            (end.output, end.error, end.unhealthy, crashed)
        }
        None => (None, None, false, false),
    };
    Ok(SupervisionOutcome {
        stopped,
        final_output,
        final_error,
        restarts,
        final_unhealthy,
        final_crashed,
    })
}

/// `n` counted up by one, saturating: a supervision that has restarted its
/// command `u32::MAX` times (years of quick crashes) goes on saying so,
/// where a wrap would report 0 restarts and number the next run 0 (and a
/// debug build would panic).
fn one_more(n: u32) -> u32 {
    n.saturating_add(1)
}

/// The pause after the `n`th consecutive crash (0-based), before jitter.
/// A zero initial pause stays zero (`0 × ∞` would be NaN, taken for "too
/// long" by the cap).
fn backoff(sup: &Supervisor, n: u32) -> Duration {
    if sup.initial.is_zero() {
        return Duration::ZERO;
    }
    let factor = sup.factor.powi(n.min(1024) as i32);
    let secs = sup.initial.as_secs_f64() * factor;
    if !secs.is_finite() || secs >= sup.max_backoff.as_secs_f64() {
        sup.max_backoff
    } else {
        Duration::from_secs_f64(secs)
    }
}

/// Running a supervision: in this task, or in a background one.
impl Supervisor {
    /// Supervises until a stop condition holds. `Err` only when a run's
    /// group can't be made (the containment mechanism is unavailable): a
    /// program that can't start ends the supervision with
    /// [`StopReason::CannotStart`] (or, when the failure is transient, is a
    /// crash). Dropping the future kills the current run's tree.
    ///
    /// # Errors
    ///
    /// [`Error::MechanismUnavailable`](crate::Error::MechanismUnavailable),
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) (an unparseable `PKIT_MECHANISM`) or
    /// [`Error::ResourceLimit`](crate::Error::ResourceLimit) when a run's group can't be made;
    /// [`Error::InvalidInput`](crate::Error::InvalidInput), before anything starts, for a
    /// command with a [`retry`](crate::Command::retry) policy of more than one attempt (the
    /// supervisor's own restart policy replaces it: set that instead), and
    /// for a command with a [`stdin_reader`](crate::Command::stdin_reader)
    /// unless the policy is [`Restart::Never`](crate::Restart::Never) (the
    /// reader is read by one run; a restart could not feed it).
    /// A program that can't start is not an error: it ends the supervision with
    /// [`StopReason::CannotStart`](crate::StopReason::CannotStart), or is a crash when the
    /// failure is transient.
    pub async fn run(self) -> Result<SupervisionOutcome> {
        supervise(
            self,
            None,
            CancelToken::new(),
            CancelToken::new(),
            Arc::default(),
        )
        .await
    }

    /// Supervises in a background task (needs a Tokio runtime) and returns
    /// a handle that reports each start, exit, pause and the end as
    /// [`SupervisorEvent`]s, and can stop the supervision gracefully.
    /// Dropping the handle ends the supervision, killing the current run's
    /// tree.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use std::time::Duration;
    /// use pkit::{Command, StopReason, Supervisor, SupervisorEvent};
    ///
    /// let mut handle = Supervisor::new(Command::new("sleep").arg("300")).start();
    /// let Some(SupervisorEvent::Started { pid, .. }) = handle.next_event().await else {
    ///     panic!("the first event is the start")
    /// };
    /// assert!(pid > 0);
    /// // SIGTERM, up to the command's grace (10 s unless set), then SIGKILL.
    /// let outcome = handle.stop().await?;
    /// assert_eq!(outcome.stopped, StopReason::StopRequested);
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    ///
    /// Called outside a Tokio runtime, it starts nothing and does not
    /// panic: the handle's events end at once (`next_event` gives `None`)
    /// and [`wait`](SupervisorHandle::wait) and
    /// [`stop`](SupervisorHandle::stop) return
    /// [`Error::InvalidInput`](crate::Error::InvalidInput), as starting a
    /// command there does. (The blocking facade's
    /// [`start`](crate::blocking::SupervisorVerbs::start) needs no runtime.)
    pub fn start(self) -> SupervisorHandle {
        let queue = Arc::new(EventQueue::default());
        let (stop, dropped) = (CancelToken::new(), CancelToken::new());
        let current = Arc::new(CurrentRun::default());
        let tx = EventSender(queue.clone());
        // Without a runtime the sender is dropped here, closing the
        // queue: no event will come.
        let task = crate::launch::need_runtime(&self.cmd.log_label()).map(|()| {
            let (stop, dropped, current) = (stop.clone(), dropped.clone(), current.clone());
            tokio::spawn(supervise(self, Some(tx), stop, dropped, current))
        });
        SupervisorHandle {
            events: queue,
            stop,
            dropped,
            current,
            task: Some(task),
        }
    }
}

/// `pause` jittered and never longer than `max` (after a clean run too:
/// `max_backoff` is the longest pause). The cap comes first; a jittered
/// pause past it is folded back below it by as much as it went over, so
/// pauses at the cap keep their spread (`max·(1 − jitter) ..= max`)
/// instead of all being `max`, which would restart supervisors that crash
/// together in step again.
fn capped_jitter(pause: Duration, jitter: f64, max: Duration) -> Duration {
    let p = crate::retry::jittered(pause.min(max), jitter);
    if p > max {
        max.saturating_sub(p - max)
    } else {
        p
    }
}

#[cfg(test)]
mod tests {
    use super::one_more;

    #[test]
    fn the_restart_counts_saturate_instead_of_wrapping() {
        assert_eq!(one_more(0), 1);
        assert_eq!(one_more(41), 42);
        assert_eq!(one_more(u32::MAX - 1), u32::MAX);
        // The run after the last countable restart keeps the top number.
        assert_eq!(one_more(u32::MAX), u32::MAX);
        assert_eq!(one_more(one_more(u32::MAX)), u32::MAX);
    }
}
