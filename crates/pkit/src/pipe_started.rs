//! [`RunningPipe`]: a started pipeline ([`Pipe::start`]), and the engine
//! every pipeline run goes through (the verbs start the chain and wait for
//! it): the stages' wait with the pipefail cuts and the chain's bounds,
//! driven by a background task, and the fold of the stages' results.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::after_exit::AfterExit;
use crate::cancel::CancelToken;
use crate::child::Child;
use crate::error::{Error, Result};
use crate::group::Group;
use crate::output::{Outcome, Output};
use crate::pipe_fold::{fold, StageRule};
use crate::process::{outcome_of, ChildStdin, RunningProcess};
use crate::pump::{LimitFlag, Line, Lines};
use crate::runner::{end_group, Bounds, Ended};
use crate::sys::{Mechanism, Signal, SignalsSent};
use crate::timing::first_of;

/// A started pipeline ([`Pipe::start`](crate::Pipe::start)): every stage
/// running, each stage's stdout feeding the next one's stdin over an OS
/// pipe, all of them and everything they spawn in one private group.
///
/// - Its output is the last stage's stdout: as lines with
///   [`Pipe::stream_lines`](crate::Pipe::stream_lines) ([`lines`](Self::lines),
///   [`wait_for_line`](Self::wait_for_line)), else captured for
///   [`wait`](Self::wait) (the last 1 MiB unless the stage sets a
///   [`capture_limit`](crate::Command::capture_limit), as for a started
///   process). Every stage's stderr is captured the same way and kept in
///   its own result ([`Output::stages`]).
/// - The head's stdin is writable through [`stdin`](Self::stdin) when the
///   chain was given [`Pipe::stdin_piped`](crate::Pipe::stdin_piped).
/// - The chain's rules hold while it runs, whether or not anyone waits: a
///   failed stage ends the stages that feed it at once, the chain's
///   timeout, inactivity timeout and cancel tokens end the whole chain,
///   and once every stage has exited, what they left behind is killed (see
///   [`Pipe`](crate::Pipe)).
/// - [`wait`](Self::wait) gives the stages' results folded as
///   [`Pipe::output`](crate::Pipe::output) folds them (pipefail).
/// - [`kill`](Self::kill), [`signal`](Self::signal) and
///   [`shutdown`](Self::shutdown) reach every stage and all they spawned.
///   **Dropping the handle kills them all** (SIGKILL, before `drop`
///   returns).
///
/// ```
/// # async fn demo() -> pkit::Result<()> {
/// use std::time::Duration;
/// use pkit::{Command, Pipe};
///
/// // A server's log, filtered live: wait until it says it is ready.
/// let mut log = Pipe::new([
///     Command::new("sh").args(["-c", "echo booting; echo 'ready on :8080'; sleep 300"]),
///     Command::new("grep").args(["--line-buffered", "ready"]),
/// ])
/// .stream_lines()
/// .start()?;
/// let ready = log.wait_for_line(|l| l.text.contains("ready"), Duration::from_secs(10)).await?;
/// assert_eq!(ready.text, "ready on :8080");
/// assert_eq!(log.pids().len(), 2);
///
/// log.kill()?; // both stages and the sleep
/// let out = log.wait().await?;
/// assert_eq!(out.stages()[0].outcome(), pkit::Outcome::Signalled(9));
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
pub struct RunningPipe {
    pub(crate) group: Arc<Group>,
    procs: Vec<RunningProcess>,
    /// Per stage: what its end means to the chain.
    rules: Vec<StageRule>,
    /// The stage whose outcome the fold took, once `wait` has folded.
    blamed: Option<usize>,
    /// The head's program, for a cancelled chain's error.
    head: String,
    began: Instant,
    /// The stages killed because a stage after them failed.
    cut: Arc<[AtomicBool]>,
    /// Set when the caller ends the chain: no stage is cut (or blamed for
    /// it) any more.
    pub(crate) stopped: Arc<AtomicBool>,
    /// The signals the caller sent the chain: a stage that ends of one of
    /// them cuts nothing (see `signal`).
    pub(crate) sent: Arc<SignalsSent>,
    /// The background task that waits for the stages (see `drive`); `None`
    /// once `wait` has its result.
    driver: Option<JoinHandle<Result<Driven>>>,
    driven: Option<Driven>,
    /// Each stage's result as `wait` collects it (see there).
    collected: Vec<Option<Output>>,
    /// The folded result, without its bytes, for a later `wait`.
    finished: Option<Output>,
    /// The process that started it: a copy in a child forked without
    /// `exec` kills nothing when dropped.
    made_by: crate::sys::Creator,
    /// The chain's bounds after its stages exited (see `AfterExit`).
    after: AfterExit,
}

/// How the chain ended, as the driver saw it.
struct Driven {
    ended: Ended<()>,
    /// Which stages were still running when the chain ended.
    running: Vec<bool>,
    killed_after_grace: bool,
}

/// What the driver needs of a stage.
struct StageWait {
    program: String,
    pid: u32,
    child: Child,
    rule: StageRule,
}

impl StageWait {
    /// Whether it has exited, looked at without waiting.
    fn exited(&self) -> bool {
        matches!(self.child.try_status(), Ok(Some(_)))
    }
}

/// The chain's bounds, owned by the driver.
pub(crate) struct Plan {
    pub timeout: Option<Duration>,
    pub timeout_signal: Option<Signal>,
    pub grace: Option<Duration>,
    pub inactivity: Option<Duration>,
    pub tokens: Vec<CancelToken>,
    pub limit: Arc<LimitFlag>,
    /// The cancel signal and grace.
    pub cancel: (Option<Signal>, Option<Duration>),
    /// The head's log label.
    pub name: Arc<str>,
}

impl RunningPipe {
    /// Wraps the started stages and starts the driver (within a runtime).
    pub(crate) fn new(
        group: Group,
        procs: Vec<RunningProcess>,
        rules: Vec<StageRule>,
        began: Instant,
        plan: Plan,
    ) -> RunningPipe {
        let group = Arc::new(group);
        let after = AfterExit::of_run(
            plan.timeout,
            plan.inactivity,
            began,
            plan.limit.clone(),
            plan.tokens.clone(),
        );
        let cut: Arc<[AtomicBool]> = procs.iter().map(|_| AtomicBool::new(false)).collect();
        let stopped = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(SignalsSent::default());
        let waits = procs
            .iter()
            .zip(&rules)
            .map(|(p, rule)| StageWait {
                program: p.program().to_string(),
                pid: p.pid(),
                child: p.child.clone(),
                rule: rule.clone(),
            })
            .collect();
        let driver = tokio::spawn(drive(
            group.clone(),
            waits,
            cut.clone(),
            (stopped.clone(), sent.clone()),
            (plan, began),
        ));
        RunningPipe {
            group,
            head: procs[0].program().to_string(),
            collected: procs.iter().map(|_| None).collect(),
            procs,
            rules,
            blamed: None,
            began,
            cut,
            stopped,
            sent,
            driver: Some(driver),
            driven: None,
            finished: None,
            made_by: crate::sys::Creator::here(),
            after,
        }
    }

    /// The stages' process ids, head first.
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(RunningProcess::pid).collect()
    }

    /// The mechanism containing the chain.
    pub fn mechanism(&self) -> Mechanism {
        self.group.mechanism()
    }

    /// Whether a stage is still running.
    pub fn is_running(&self) -> bool {
        self.procs.iter().any(|p| !p.has_exited())
    }

    /// The last stage's stdout lines, as [`RunningProcess::lines`] gives a
    /// process's (each [`Line`]'s stream is stdout). Needs
    /// [`Pipe::stream_lines`](crate::Pipe::stream_lines); it can be taken
    /// once, later calls give an empty stream. The stream ends when every
    /// process holding the last stage's stdout has closed it, at the latest
    /// when the chain has ended.
    pub fn lines(&mut self) -> Lines {
        self.tail().lines()
    }

    /// Waits until a line of the last stage's stdout satisfies `pred` and
    /// returns it, as [`RunningProcess::wait_for_line`] does (the lines it
    /// reads are consumed; it gives up with [`Error::NotReady`] on
    /// `timeout` or when the last stage exits first). Needs
    /// [`Pipe::stream_lines`](crate::Pipe::stream_lines). Never ends the
    /// chain.
    ///
    /// # Errors
    ///
    /// [`Error::NotReady`](crate::Error::NotReady) when `timeout` passes or the last stage
    /// exits first; [`Error::InvalidInput`](crate::Error::InvalidInput) without
    /// [`Pipe::stream_lines`](crate::Pipe::stream_lines).
    pub async fn wait_for_line(
        &mut self,
        pred: impl FnMut(&Line) -> bool,
        timeout: Duration,
    ) -> Result<Line> {
        self.tail().wait_for_line(pred, timeout).await
    }

    /// Lines of the stream dropped while nobody read it (see
    /// [`RunningProcess::dropped_lines`]).
    pub fn dropped_lines(&self) -> u64 {
        self.procs.last().map_or(0, RunningProcess::dropped_lines)
    }

    /// The head's stdin, when the chain was given
    /// [`Pipe::stdin_piped`](crate::Pipe::stdin_piped). Drop it (or call
    /// `shutdown`) to send end of file.
    pub fn stdin(&mut self) -> Option<&mut ChildStdin> {
        self.procs[0].stdin()
    }

    /// Takes the head's stdin handle, to move it elsewhere.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.procs[0].take_stdin()
    }

    /// SIGKILL to every stage and everything they spawned. Does nothing
    /// once the chain has ended. The stages' results then show the signal;
    /// none of them counts as cut short.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when the OS refuses the kill.
    ///
    /// # Blocking
    ///
    /// As [`Group::kill`](crate::Group::kill)'s: up to 5 s under cgroup v2.
    /// An async caller awaits [`kill_async`](Self::kill_async) instead.
    pub fn kill(&self) -> Result<()> {
        self.stopped.store(true, Ordering::Relaxed);
        self.unless_over(|| self.group.kill())
    }

    /// Ends the chain politely: SIGTERM to every stage and all they
    /// spawned, up to `grace` for them to exit, then SIGKILL to whatever is
    /// left. Returns whether anything was left to kill after the grace, as
    /// [`RunningProcess::shutdown`] does: on Windows, where no break can be
    /// delivered, the chain is terminated at once and this is `false`
    /// (nothing was asked to stop first). Collect the results with
    /// [`wait`](Self::wait).
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when signalling or waiting for the stages fails (not
    /// once the chain has ended by itself).
    pub async fn shutdown(&self, grace: Duration) -> Result<bool> {
        self.stopped.store(true, Ordering::Relaxed);
        if self.over() {
            return Ok(false);
        }
        match self.group.shutdown(grace).await {
            Ok(report) => Ok(report.outlived_grace()),
            Err(_) if self.over() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits for every stage and returns their results folded the way
    /// [`Pipe::output`](crate::Pipe::output) folds them: the last stage's
    /// stdout (nothing with [`Pipe::stream_lines`](crate::Pipe::stream_lines):
    /// it went to the line stream), the outcome, program and stderr of the
    /// first stage that failed, and every stage's own result in
    /// [`Output::stages`]. When it returns, every stage and all they spawned
    /// are gone. A chain its cancel token ended is [`Error::Cancelled`].
    /// Calling it again returns the same result without the bytes, or the
    /// same error (a stage over its [`CapturePolicy::Fail`](crate::CapturePolicy::Fail)
    /// limit fails every call).
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`](crate::Error::Cancelled) when a cancel token ended the chain;
    /// [`Error::Io`](crate::Error::Io) when waiting for a stage or ending the group fails, or
    /// when the runtime the pipeline was started on (where its driver runs) shut down
    /// before this wait (the stages are killed with the driver). Each
    /// stage's failure is data in the [`Output`](crate::Output).
    pub async fn wait(&mut self) -> Result<Output> {
        if let Some(out) = &self.finished {
            return Ok(out.clone());
        }
        // A line stream nobody took can't be read while we wait: it must
        // not hold the last stage back.
        if let Some(rx) = self.tail().lines.as_ref().and_then(|l| l.rx.as_ref()) {
            rx.let_go();
        }
        if let Some(driver) = &mut self.driver {
            let joined = driver.await;
            self.driver = None;
            match joined {
                Ok(driven) => self.driven = Some(driven?),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => {
                    return Err(Error::io(
                        "waiting for the pipeline: its driver, a task of the Tokio runtime the \
                         pipeline was started on, ended with that runtime (shut down before \
                         this wait)",
                        io::Error::other(e),
                    ))
                }
            }
        }
        let Some(driven) = &self.driven else {
            return Err(Error::InvalidInput(
                "the pipeline's wait failed before; its result is gone".into(),
            ));
        };
        if matches!(driven.ended, Ended::Cancelled) {
            return Err(Error::Cancelled {
                program: self.head.clone(),
            });
        }
        let inactive = matches!(driven.ended, Ended::Inactive);
        let timed_out = inactive || matches!(driven.ended, Ended::TimedOut);
        // Each stage's result is kept in `collected` as it comes: a wait
        // dropped half way (a caller's own timeout) loses none of them.
        let stages = self.procs.iter_mut().zip(&driven.running);
        for ((p, &running), slot) in stages.zip(&mut self.collected) {
            if slot.is_some() {
                continue;
            }
            let status = p.wait_status().await?;
            let outcome = if timed_out && running {
                Outcome::TimedOut
            } else {
                outcome_of(status)
            };
            // A wait that failed before (a stage over its `Fail` limit,
            // its input lost) finished the stages: their kept results
            // fail it the same way again, where finishing anew would find
            // nothing captured.
            *slot = Some(match &p.finished {
                Some(kept) => kept.clone(),
                // A bound that passed (the chain's timeout) or passes now
                // cuts a stuck tee, also a stage's that exited first.
                None if timed_out => p.finish(outcome, async {}).await,
                None => p.finish(outcome, self.after.passed()).await,
            });
        }
        let mut outs = Vec::with_capacity(self.procs.len());
        let stages = self.procs.iter().zip(&driven.running);
        for ((p, &running), slot) in stages.zip(&mut self.collected) {
            let mut out = slot.take().expect("collected above");
            out.inactivity_timed_out = inactive && running;
            let out = p.check_input(out)?;
            outs.push(p.check_limit(out)?);
        }
        // Cut short is what our SIGKILL ended: a stage that exited on its
        // own just before the kill landed keeps its own failure.
        let killed = Outcome::Signalled(Signal::Kill.as_raw());
        let cut: Vec<bool> = self
            .cut
            .iter()
            .zip(&outs)
            .map(|(c, o)| c.load(Ordering::Relaxed) && o.outcome() == killed)
            .collect();
        let (mut out, blamed) = fold(outs, &self.rules, &cut, self.began.elapsed());
        self.blamed = Some(blamed);
        out.killed_after_grace = driven.killed_after_grace;
        out.inactivity_timed_out = inactive;
        let mut kept = out.clone_meta();
        kept.stages = out.stages.iter().map(Output::clone_meta).collect();
        self.finished = Some(kept);
        Ok(out)
    }

    /// The exit codes that count as success for the outcome `wait`
    /// folded: the `ok_codes` of the stage it took the outcome from
    /// (`None`: that stage set none, or nothing was folded yet).
    pub(crate) fn folded_ok_codes(&self) -> Option<Arc<[i32]>> {
        self.blamed.and_then(|i| self.rules[i].ok.clone())
    }

    fn tail(&mut self) -> &mut RunningProcess {
        self.procs.last_mut().expect("a pipeline has a stage")
    }

    /// Whether the chain has ended (the driver is done: every stage has
    /// exited and the group is closed, or it failed).
    pub(crate) fn over(&self) -> bool {
        self.driver.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for RunningPipe {
    /// Kills every stage and all they spawned (unless the chain has ended
    /// already); the group is closed once the driver is gone. A copy in a
    /// child the application forked without `exec` kills nothing: the
    /// chain is its parent's.
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            if !driver.is_finished() && self.made_by.is_here_confirmed() {
                driver.abort();
                let _ = self.group.kill();
            }
        }
    }
}

impl fmt::Debug for RunningPipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningPipe")
            .field("stages", &self.procs)
            .field("mechanism", &self.group.mechanism())
            .finish_non_exhaustive()
    }
}

/// Runs the chain to its end in the background: waits for the stages
/// within the chain's bounds (cutting what feeds a failed stage), then
/// ends the group as the way it ended says.
async fn drive(
    group: Arc<Group>,
    stages: Vec<StageWait>,
    cut: Arc<[AtomicBool]>,
    (stopped, sent): (Arc<AtomicBool>, Arc<SignalsSent>),
    (plan, began): (Plan, Instant),
) -> Result<Driven> {
    let bounds = Bounds {
        // What is left of it since the chain's start call.
        timeout: crate::timing::left_of(plan.timeout, began),
        inactivity: plan.inactivity,
        cancel: plan.tokens.iter().collect(),
        limit: plan.limit.clone(),
        // A stage's `Fail` capture limit raises the chain's flag.
        fail: true,
    };
    // A bound that fires as the last stage exits is no timeout.
    let all_exited = || stages.iter().all(StageWait::exited).then_some(());
    let ended = bounds
        .wait(cut_on_failure(&stages, &cut, (&stopped, &sent)), all_exited)
        .await?;
    let running: Vec<bool> = stages.iter().map(|s| !s.exited()).collect();
    let head = stages.first().map(|s| s.pid);
    let program = stages.first().map_or("", |s| s.program.as_str());
    let who = crate::log::Subject::new(program, &plan.name)
        .pid(head)
        .mechanism(group.mechanism());
    // Under cgroup v2 a stage that exits during the end's grace is reaped
    // then (see `Child::all_reaped_during`); process groups keep it.
    let reap = group.mechanism() == crate::sys::Mechanism::CgroupV2;
    let children: Vec<Child> = stages.iter().map(|s| s.child.clone()).collect();
    if let Ended::Cancelled = ended {
        crate::log::cancelled(who);
        let (signal, grace) = plan.cancel;
        // A timeout whose deadline passes during its grace ends it.
        let deadline =
            crate::timing::left_of(plan.timeout, began).and_then(crate::timing::deadline_after);
        let cut = bounds.cut(&ended, deadline);
        let late = {
            let end = std::pin::pin!(end_group(&group, true, signal, grace, cut));
            Child::all_reaped_during(&children, reap, end).await?
        };
        if late {
            crate::log::killed_after_grace(who);
        }
        return Ok(Driven {
            ended,
            running,
            killed_after_grace: false,
        });
    }
    match ended {
        Ended::TimedOut => crate::log::timed_out(who, plan.timeout),
        Ended::Inactive => crate::log::timed_out(who, plan.inactivity),
        _ => {}
    }
    let timed_out = matches!(ended, Ended::TimedOut | Ended::Inactive);
    // A cancel token cancelled during a timeout's grace ends it.
    let cut = bounds.cut(&ended, None);
    let killed_after_grace = {
        let end = std::pin::pin!(end_group(
            &group,
            timed_out,
            plan.timeout_signal,
            plan.grace,
            cut
        ));
        Child::all_reaped_during(&children, reap, end).await?
    };
    if killed_after_grace {
        crate::log::killed_after_grace(who);
    }
    Ok(Driven {
        ended,
        running,
        killed_after_grace,
    })
}

/// Waits for every stage. When a stage whose failure fails the chain
/// fails, the stages before it still running are killed and marked in
/// `cut`: their consumer is gone, so they could only block or die of
/// SIGPIPE. The stages after it run on to the end of their input. Once the
/// caller has ended the chain (`stopped`), nothing is cut; nor by a stage
/// that ended of a signal the caller sent the chain (`sent`): every stage
/// got it, to end its own way.
async fn cut_on_failure(
    stages: &[StageWait],
    cut: &[AtomicBool],
    (stopped, sent): (&AtomicBool, &SignalsSent),
) -> Result<()> {
    let mut waits: Vec<_> = stages
        .iter()
        .map(|s| Some(Box::pin(s.child.wait())))
        .collect();
    for _ in 0..stages.len() {
        let (i, status) = first_of(&mut waits).await;
        let status = status.map_err(|e| Error::io(format!("{}: wait", stages[i].program), e))?;
        let failed = stages[i].rule.fails(outcome_of(status))
            && !cut[i].load(Ordering::Relaxed)
            && !stopped.load(Ordering::Relaxed)
            && !sent.ended(status);
        if !failed {
            continue;
        }
        // Not one that has exited already, if not yet seen to.
        let to_cut: Vec<&StageWait> = (stages.iter().enumerate().take(i))
            .filter(|&(j, s)| {
                waits[j].is_some() && !s.exited() && !cut[j].swap(true, Ordering::Relaxed)
            })
            .map(|(_, s)| s)
            .collect();
        cut_short(&to_cut)?;
    }
    Ok(())
}

/// SIGKILL to each of `stages`, stopped first, all of them: a stage killed
/// while the next still ran let that one read end of file and exit on its
/// own (a grep, 1) before its own SIGKILL came, and be blamed for the
/// chain. A stopped stage can't act on its input's end; SIGKILL ends it
/// stopped. One the SIGKILL can't reach is let go on again.
fn cut_short(stages: &[&StageWait]) -> Result<()> {
    #[cfg(unix)]
    for s in stages {
        let _ = s.child.signal(Signal::Stop.as_raw());
    }
    let mut failed = None;
    for s in stages {
        if let Err(e) = s.child.signal(Signal::Kill.as_raw()) {
            #[cfg(unix)]
            let _ = s.child.signal(Signal::Cont.as_raw());
            failed.get_or_insert(Error::io(format!("{}: kill", s.program), e));
        }
    }
    failed.map_or(Ok(()), Err)
}
