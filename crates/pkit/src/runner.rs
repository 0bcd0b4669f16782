//! [`Runner`]: the one seam where a [`Command`] becomes a process. The trait
//! is defined beside `Command` (which holds one); the real runner is here.

use std::future::Future;
use std::time::Duration;

use crate::command::Command;
pub use crate::command::Runner;
use crate::error::{Error, Result};
pub use crate::future::BoxFuture;
use crate::group::Group;
use crate::launch::StartOpts;
use crate::launch_spec::Launch;
use crate::output::{Outcome, Output};
use crate::process::{outcome_of, RunningProcess};
use crate::sys::{MechanismChoice, Signal};
use crate::timing::{deadline_after, first_of, sleep_until_or_never, timeout_plan, NO_DEADLINE};

/// The real runner: each run gets a fresh private [`Group`] that is torn
/// down when the run ends, times out, is cancelled or is dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner {
    mechanism: Option<MechanismChoice>,
}

impl SystemRunner {
    pub(crate) const DEFAULT: SystemRunner = SystemRunner { mechanism: None };

    /// A runner whose groups use `choice` (instead of `PKIT_MECHANISM`).
    pub fn with_mechanism(choice: MechanismChoice) -> SystemRunner {
        SystemRunner {
            mechanism: Some(choice),
        }
    }
}

impl Runner for SystemRunner {
    fn output<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<Output>> {
        Box::pin(run_contained(cmd, self.mechanism, false))
    }

    fn output_text<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<Output>> {
        Box::pin(run_contained(cmd, self.mechanism, true))
    }

    /// Starts `cmd` for real in `launch`'s group (whose mechanism wins over
    /// this runner's).
    fn start(&self, cmd: &Command, launch: Launch<'_>) -> Result<RunningProcess> {
        launch.start_real(&cmd.spec)
    }

    fn starts_real_only(&self) -> bool {
        true
    }

    fn system_mechanism(&self) -> Option<Option<MechanismChoice>> {
        Some(self.mechanism)
    }
}

/// How a bounded wait ended.
pub(crate) enum Ended<T> {
    /// The work finished.
    Done(T),
    /// The deadline passed.
    TimedOut,
    /// No output arrived for the inactivity timeout.
    Inactive,
    /// The cancel token fired.
    Cancelled,
    /// A `CapturePolicy::Fail` limit was crossed.
    OutputLimit,
}

/// The time, cancellation and output bounds of a run.
pub(crate) struct Bounds<'a> {
    pub timeout: Option<Duration>,
    /// Ends the run when no output arrives for this long.
    pub inactivity: Option<Duration>,
    /// Any of these cancels the run.
    pub cancel: Vec<&'a crate::CancelToken>,
    /// Raised when a `CapturePolicy::Fail` limit is crossed.
    pub limit: std::sync::Arc<crate::pump::LimitFlag>,
    /// Whether a `Fail` limit can raise `limit`: without one it is not
    /// waited on (its output activity still is, for `inactivity`).
    pub fail: bool,
}

impl Bounds<'_> {
    /// Whether a token is cancelled already.
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.iter().any(|t| t.is_cancelled())
    }

    /// Completes when any of the tokens is cancelled (never without one).
    pub(crate) async fn any_cancelled(&self) {
        let mut tokens: Vec<_> = self
            .cancel
            .iter()
            .map(|t| Some(Box::pin(t.cancelled())))
            .collect();
        first_of(&mut tokens).await;
    }

    /// Ends the grace of a run ended by `ended` (see [`end_group`]): for a
    /// timeout's (overall or inactivity), a cancel token; for a cancel's,
    /// the timeout's deadline (`deadline`, what is left of the timeout
    /// when called); never for the others, which have none.
    pub(crate) async fn cut<T>(&self, ended: &Ended<T>, deadline: Option<tokio::time::Instant>) {
        match ended {
            Ended::TimedOut | Ended::Inactive => self.any_cancelled().await,
            Ended::Cancelled => sleep_until_or_never(deadline).await,
            Ended::Done(_) | Ended::OutputLimit => std::future::pending().await,
        }
    }

    /// Runs `work` until it finishes or a bound is hit. A bound that fires
    /// as the work ends (the timer or the token and the exit in one
    /// wake-up, the exit just after the timer's, or an exit this task has
    /// not been woken for yet: a loaded machine can hold that up for
    /// hundreds of milliseconds) is settled by one look without waiting:
    /// `done` says whether the work is already over (`Some`: its result),
    /// and then it is `Done`, not a timeout nor a cancel (the README: the
    /// exit's outcome if the program had exited by then; a started
    /// process's watch looks the same way).
    pub(crate) async fn wait<T>(
        &self,
        work: impl Future<Output = Result<T>>,
        done: impl FnOnce() -> Option<T>,
    ) -> Result<Ended<T>> {
        // A run with no bound (most runs) only waits for its work: no
        // timer, no token, no select, and none of their state in this
        // future, whose every move copies all of it. The bounded wait is a
        // future of its own, made only for a bounded run.
        if self.unbounded() {
            return Ok(Ended::Done(work.await?));
        }
        Box::pin(self.wait_bounded(work, done)).await
    }

    /// Whether nothing but the work itself can end the wait (see
    /// [`wait`](Self::wait)).
    fn unbounded(&self) -> bool {
        self.timeout.is_none()
            && self.inactivity.is_none_or(|d| d >= NO_DEADLINE)
            && self.cancel.is_empty()
            && !self.fail
    }

    /// [`wait`](Self::wait) with at least one bound.
    async fn wait_bounded<T>(
        &self,
        work: impl Future<Output = Result<T>>,
        done: impl FnOnce() -> Option<T>,
    ) -> Result<Ended<T>> {
        // Checked first, and settled by the same look without racing the
        // work: a token cancelled since the start (the callers start
        // nothing for one cancelled before it), e.g. before a chain's
        // driver first ran.
        if self.cancelled() {
            return Ok(done().map_or(Ended::Cancelled, Ended::Done));
        }
        let deadline = self.timeout.and_then(deadline_after);
        let timer = sleep_until_or_never(deadline);
        let start = tokio::time::Instant::now();
        let inactivity = self.inactivity.filter(|d| *d < NO_DEADLINE);
        let idle = self.limit.idle_for_or_never(start, inactivity);
        let cancelled = self.any_cancelled();
        let ended = tokio::select! {
            finished = work => Ended::Done(finished?),
            () = timer => Ended::TimedOut,
            () = idle => Ended::Inactive,
            () = cancelled => Ended::Cancelled,
            () = self.limit.wait(), if self.fail => Ended::OutputLimit,
        };
        Ok(match ended {
            Ended::TimedOut | Ended::Inactive | Ended::Cancelled => {
                done().map_or(ended, Ended::Done)
            }
            ended => ended,
        })
    }
}

/// Ends a group after its run; after a timeout, as
/// [`Command::timeout_signal`] says. Returns whether SIGKILL was still
/// needed after a grace. The grace ends early, and what is left is killed,
/// when `cut` completes: another bound of the run passed during it (see
/// [`Bounds::cut`]).
pub(crate) async fn end_group(
    group: &Group,
    timed_out: bool,
    signal: Option<Signal>,
    grace: Option<Duration>,
    cut: impl Future<Output = ()>,
) -> Result<bool> {
    match timeout_plan(signal, grace) {
        // A graceful end (a timeout's) is a future of its own, made only
        // then: an ordinary end's future holds only the close's state.
        Some((signal, grace)) if timed_out => {
            let report = Box::pin(group.shutdown_with(signal, grace, cut)).await?;
            Ok(report.outlived_grace())
        }
        _ => group.close().await.map(|()| false),
    }
}

/// The verbs on a [`Group`] (here, above the group, beside the runner they
/// use).
impl Group {
    /// Runs `cmd` as this group's main process, the way the verbs do: it
    /// honours the command's `timeout`, `grace` and cancel token, and when
    /// the command ends the whole group ends with it (the group is
    /// consumed). This is how to run one command under resource caps:
    ///
    /// ```no_run
    /// # async fn demo() -> pkit::Result<()> {
    /// let out = pkit::Group::builder()
    ///     .memory_max(512 << 20)
    ///     .build()?
    ///     .output(&pkit::Command::new("make"))
    ///     .await?;
    /// if out.oom_killed() { eprintln!("make ran out of memory"); }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Command::output`]: [`Err`] is for runs that could not start or
    /// were cancelled; a non-zero exit, a signal and a timeout are data in the
    /// `Output`. A command with a [`runner`](Command::runner) other than a
    /// [`SystemRunner`] is [`Error::InvalidInput`]: this runs the real
    /// program as the group's main process, which a runner (a test double,
    /// a recorder) can't play; [`Group::start`] and the command's own verbs
    /// go through it. (A `SystemRunner`'s mechanism gives way to the
    /// group's, as for `start`.)
    pub async fn output(self, cmd: &Command) -> Result<Output> {
        self.output_as(cmd, false).await
    }

    /// [`output`](Self::output), with stdout validated as UTF-8 as it
    /// arrives when `text` (for [`run`](Self::run)).
    pub(crate) async fn output_as(self, cmd: &Command, text: bool) -> Result<Output> {
        if cmd.runner.as_ref().is_some_and(|r| !r.starts_real_only()) {
            return Err(Error::InvalidInput(format!(
                "{}: a group's one-command verbs run the real program, not the command's \
                 runner (use the command's own verbs, or Group::start, which go through it)",
                cmd.display_name()
            )));
        }
        run_in(self, cmd, text).await
    }

    /// Starts `cmd` in the group. Must be called within a Tokio runtime.
    /// The command's [`runner`](Command::runner) starts it
    /// ([`Runner::start`](crate::Runner::start)): the real process
    /// described here, unless a test double plays it.
    ///
    /// The process gets a subtree of its own within the group: under
    /// cgroup v2 it is born in a sub-cgroup of the group's cgroup (one per
    /// started process), which holds it and everything it spawns — except
    /// the group's first started process, which is born in the group's
    /// cgroup itself and whose subtree is that cgroup less the later
    /// processes' sub-cgroups (a group of one process makes one directory,
    /// not two); under a process group, its subtree is the group's
    /// processes descended from it (found through parent links, so a
    /// descendant re-parented after its parent exited, or one that left
    /// the process group, is not part of it). The group's own operations (`kill`, `signal`, `suspend`,
    /// `close`, …) still cover every process of the group.
    ///
    /// The command's bounds apply to that subtree, as a verb's do to its
    /// tree: when its [`timeout`](Command::timeout) passes first, the
    /// subtree gets the [`timeout_signal`](Command::timeout_signal), the
    /// [`grace`](Command::grace), then SIGKILL, and
    /// [`RunningProcess::wait`] reports [`Outcome::TimedOut`](crate::Outcome::TimedOut)
    /// (with [`Output::killed_after_grace`](crate::Output::killed_after_grace)); when its
    /// [cancel token](Command::cancel_token) fires first, the subtree is
    /// SIGKILLed and `wait` returns [`Error::Cancelled`] (a token cancelled
    /// already makes `start` itself return it, starting nothing). This
    /// happens whether or not anyone waits. Without bounds, a started
    /// process runs until it exits or the group ends.
    ///
    /// Its output is drained in the background and what is kept is bounded
    /// (the last [`DEFAULT_START_CAPTURE_BYTES`](crate::DEFAULT_START_CAPTURE_BYTES)
    /// of each stream unless the command sets a
    /// [`capture_limit`](Command::capture_limit)): a process whose output
    /// nobody reads keeps running; see [`RunningProcess`].
    ///
    /// That background work (reading its output, writing its
    /// [`stdin_bytes`](Command::stdin_bytes) or
    /// [`stdin_reader`](Command::stdin_reader) input, watching its bounds)
    /// runs as tasks of the runtime `start` was called on. The handle may be
    /// waited for on another runtime, but keep that one running until then:
    /// if it shuts down first, its output is no longer read (a child that
    /// writes more may die of SIGPIPE) nor its input written, and
    /// [`RunningProcess::wait`] returns [`Error::Io`] saying so rather than
    /// an incomplete `Output`; its timeout and cancel token are watched
    /// again by that wait, on the runtime it runs on.
    ///
    /// A start never blocks on the group's state; it is refused with
    /// [`Error::Spawn`] when the group
    /// - is closed or being closed ([`close`](Self::close),
    ///   [`shutdown`](Self::shutdown)): a start racing `close` either
    ///   starts its process before the group is marked closed, and the
    ///   process is then ended with the group, or is refused;
    /// - is [suspended](Self::suspend): the error's source has
    ///   [`std::io::ErrorKind::WouldBlock`] (a process started into a frozen
    ///   cgroup could not even reach `exec` until the group is resumed);
    ///   [`resume`](Self::resume) first.
    ///
    /// # Errors
    ///
    /// The start errors of [`Command::output`](crate::Command::output)
    /// ([`Error::NotFound`](crate::Error::NotFound), [`Error::Spawn`](crate::Error::Spawn),
    /// ...); [`Error::Spawn`](crate::Error::Spawn) when the group is closed or suspended
    /// (above); [`Error::Cancelled`](crate::Error::Cancelled) when the command's cancel token
    /// is cancelled already; [`Error::InvalidInput`](crate::Error::InvalidInput) outside a
    /// Tokio runtime. A command given another [`runner`](crate::Command::runner) has that
    /// runner's errors.
    pub fn start(&self, cmd: &Command) -> Result<RunningProcess> {
        let opts = StartOpts {
            stream_lines: cmd.spec.io.stream_lines,
            bounded_capture: true,
            own_tree: true,
            raw_output: true,
            ..Default::default()
        };
        // A token cancelled already: nothing is started.
        if cmd.spec.cancel.as_ref().is_some_and(|t| t.is_cancelled()) {
            return Err(Error::Cancelled {
                program: cmd.display_name(),
            });
        }
        let launch = Launch { group: self, opts };
        cmd.run_with().start(cmd, launch)
    }
}

/// `text`: stdout is wanted as text (`run()`), and validated as UTF-8 as
/// it arrives.
pub(crate) async fn run_contained(
    cmd: &Command,
    mechanism: Option<MechanismChoice>,
    text: bool,
) -> Result<Output> {
    // A run cancelled before it starts spawns nothing (not even a group).
    if cmd.spec.cancel.as_ref().is_some_and(|t| t.is_cancelled()) {
        return Err(Error::Cancelled {
            program: cmd.display_name(),
        });
    }
    let mut builder = Group::builder().one_shot();
    // The group's events carry the command's label: built (from the
    // program's name, without a `log_name`) only when they can be seen.
    if cmd.spec.log_name.is_some() || crate::log::group_events_enabled() {
        builder = builder.log_name(cmd.log_label());
    }
    if let Some(choice) = mechanism {
        builder = builder.mechanism(choice);
    }
    run_in(builder.build()?, cmd, text).await
}

/// Reaps a run's child when dropped, if it has exited, rather than leaving
/// that to the drop of the last share of its handle: the worker that saw
/// the exit may hold one a little longer (its kept registration, see
/// `RunningProcess::wait_aside`). `run_in` drops it last, after its group,
/// at whichever return: a run that ends, is cancelled or fails after the
/// start returns with its child reaped.
#[derive(Default)]
struct ReapAtEnd(Option<crate::child::Child>);

impl ReapAtEnd {
    /// Makes the drop reap `child` (a share of its handle, not a system
    /// call).
    fn arm(&mut self, child: &crate::child::Child) {
        self.0 = Some(child.clone());
    }
}

impl Drop for ReapAtEnd {
    fn drop(&mut self) {
        if let Some(child) = &self.0 {
            child.reap_if_exited();
        }
    }
}

/// `proc`'s log subject, labelled `label`.
fn who<'a>(proc: &'a RunningProcess, label: &'a str) -> crate::log::Subject<'a> {
    crate::log::Subject::new(proc.program(), label)
        .pid(proc.pid())
        .mechanism(proc.mechanism())
}

/// Runs `cmd` as `group`'s main process, bounded by its timeout and cancel
/// token, and ends the group with it; `text` as for [`run_contained`].
pub(crate) async fn run_in(group: Group, cmd: &Command, text: bool) -> Result<Output> {
    let began = std::time::Instant::now();
    let cancel: Vec<_> = cmd.spec.cancel.iter().collect();
    // Checked before anything is spawned: a cancelled run has no effects.
    if cancel.iter().any(|t| t.is_cancelled()) {
        return Err(Error::Cancelled {
            program: cmd.display_name(),
        });
    }
    // Declared before `group` and `proc`, so dropped after both: every
    // return from here on (an error's included) reaps the child once the
    // group is gone, if it has exited.
    let mut reap = ReapAtEnd::default();
    // Dropping this future drops `group` (and `proc`): the tree is killed
    // synchronously and the container removed.
    let group = group;
    // A verb has no consumer for a line stream: it captures instead.
    let opts = StartOpts {
        text_stdout: text,
        ..Default::default()
    };
    let mut proc = group.start_with(&cmd.spec, opts)?;
    reap.arm(&proc.child);
    // Under cgroup v2 the proof that the tree is gone is the cgroup's
    // (`populated 0`), whatever became of the child: the wait that sees the
    // exit reaps it (a worker's after handing the exit on), and the reap
    // at the end finds it done. A process group keeps its leader's zombie
    // (the group's number) until its close.
    // Nothing sees the exit during an end's grace: the end reaps it then.
    let reap_early = proc.mechanism() == crate::sys::Mechanism::CgroupV2;
    if reap_early {
        proc.child.reap_when_seen();
    }
    // Nobody can write to a verb's piped stdin: end of file at once.
    drop(proc.take_stdin());
    let bounds = Bounds {
        timeout: crate::timing::left_of(cmd.spec.timeout, began),
        inactivity: cmd.spec.run.inactivity,
        cancel,
        limit: proc.limit.clone(),
        fail: proc.fail_limit.is_some(),
    };
    // Outside the runtime's tasks (a multi-thread runtime's `block_on`),
    // the exit is awaited where the output is read, on a worker: this
    // thread is then woken once, with both.
    let aside = tokio::task::try_id().is_none()
        && tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread;
    let waiting = if aside { proc.wait_aside() } else { None };
    let exited = || proc.child.try_status().ok().flatten();
    let ended = match waiting {
        Some(waiting) => {
            let waiting = async { waiting.await.map_err(|e| proc.wait_error(e)) };
            bounds.wait(waiting, exited).await?
        }
        None => bounds.wait(proc.wait_status(), exited).await?,
    };
    let oom_before = group.oom_kills();
    let inactive = matches!(ended, Ended::Inactive);
    let timed_out = inactive || matches!(ended, Ended::TimedOut);
    // Built only for a log line (a timeout, a cancel, a kill after the
    // grace): not on an ordinary run's way.
    let label = std::sync::OnceLock::new();
    let who = || who(&proc, label.get_or_init(|| cmd.log_label()));
    match ended {
        Ended::TimedOut => crate::log::timed_out(who(), cmd.spec.timeout),
        Ended::Inactive => crate::log::timed_out(who(), cmd.spec.run.inactivity),
        Ended::Cancelled => crate::log::cancelled(who()),
        _ => {}
    }
    // A cancel token's tree gets the command's cancel signal and grace, a
    // timeout whose deadline passes during its grace ending it; a timed-out
    // tree the timeout's signal and grace, a cancel token cancelled during
    // it ending it. One end, pinned here and lent: the future that reaps
    // during it holds a pointer, not a second copy of it.
    let cancelled = matches!(ended, Ended::Cancelled);
    let (signal, grace, deadline) = if cancelled {
        let deadline = crate::timing::left_of(cmd.spec.timeout, began).and_then(deadline_after);
        (
            cmd.spec.run.cancel_signal,
            cmd.spec.run.cancel_grace,
            deadline,
        )
    } else {
        (cmd.spec.timeout_signal, cmd.spec.grace, None)
    };
    let killed_after_grace = {
        let cut = bounds.cut(&ended, deadline);
        let end = std::pin::pin!(end_group(
            &group,
            timed_out || cancelled,
            signal,
            grace,
            cut
        ));
        proc.child.reaped_during(reap_early, end).await?
    };
    if killed_after_grace {
        crate::log::killed_after_grace(who());
    }
    if cancelled {
        return Err(Error::Cancelled {
            program: cmd.display_name(),
        });
    }
    let outcome = match ended {
        Ended::Done(status) => outcome_of(status),
        Ended::TimedOut | Ended::Inactive => Outcome::TimedOut,
        Ended::OutputLimit => Outcome::Signalled(crate::sys::Signal::Kill.as_raw()),
        Ended::Cancelled => {
            return Err(Error::Cancelled {
                program: cmd.display_name(),
            })
        }
    };
    // The program exited by itself (or a limit ended it) and its tree is
    // gone: the rest of the timeout, the inactivity timeout and a cancel
    // still bound the end of the run, when a tee takes no more bytes (the
    // outcome stays the exit's; the tee's error says its write was cut).
    let after = crate::after_exit::AfterExit::of_run(
        cmd.spec.timeout,
        bounds.inactivity,
        began,
        proc.limit.clone(),
        cmd.spec.cancel.iter().cloned().collect(),
    );
    let mut out = proc.finish(outcome, after.passed()).await;
    // Only what the run itself provoked: read before teardown's SIGKILLs.
    out.oom_killed = oom_before.is_some_and(|n| n > 0);
    out.killed_after_grace = killed_after_grace;
    out.inactivity_timed_out = inactive;
    let out = proc.check_input(out)?;
    proc.check_limit(out)
}
