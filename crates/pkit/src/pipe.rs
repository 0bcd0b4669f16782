//! [`Pipe`]: shell-free pipelines over real OS pipes.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::command::Command;
use crate::error::{Error, Result};
use crate::group::Group;
use crate::launch::StartOpts;
use crate::output::{Outcome, Output};
use crate::process::{outcome_of, RunningProcess};
use crate::pump::LimitFlag;
use crate::runner::{end_group, Bounds, Ended};
use crate::sys::{self, MechanismChoice, Signal};
use crate::timing::first_of;
use crate::verbs;

/// A pipeline: each stage's stdout is the next stage's stdin, over an OS
/// pipe made for the two of them (no copy through this process), and every
/// stage — with everything it spawns — lives in one private group.
///
/// The verbs mirror [`Command`]'s and return one [`Output`] folded the
/// `pipefail` way: stdout is always the last stage's; the program, stderr
/// and outcome are those of the first stage that failed (or of the last
/// stage when all succeeded). A stage marked
/// [`unchecked_in_pipe`](Command::unchecked_in_pipe) never fails the chain.
/// Every stage's own result is in [`Output::stages`].
///
/// **A failed stage ends what feeds it.** As soon as a stage that is not
/// `unchecked_in_pipe` exits non-zero or is killed by a signal, the stages
/// before it that are still running are killed (SIGKILL): nobody reads
/// their output any more, so they could only block or die of SIGPIPE.
/// `sleep 5 | sh -c 'exit 3'` returns at once. The stages after it run on
/// to the end of their input, as in a shell, so their output is kept
/// (`false | wc -l` still prints `0`). The stages cut short show their
/// SIGKILL in [`Output::stages`] but are never blamed: the fold's outcome
/// is the failed stage's. A consumer that exits 0 early is not a failure
/// (its producer then dies of SIGPIPE, which fails the chain unless that
/// producer is `unchecked_in_pipe`, the `producer | head` case). What
/// the killed stages spawned lives until the chain ends, like every
/// stage's descendants.
///
/// **Bounds.** The chain's [`timeout`](Self::timeout) and
/// [`cancel_token`](Self::cancel_token) apply to every stage, and so do
/// each stage's own: a stage's `timeout` (counted from the chain's start)
/// times the whole chain out, a stage's cancel token cancels it. The
/// chain's `timeout_signal` and `grace` apply when set, else those of the
/// stage whose timeout fired. A token cancelled before the run spawns
/// nothing. Piped stdins ([`Command::stdin_piped`]) are closed at once.
///
/// A cancelled chain is ended with the chain's
/// [`cancel_signal`](Self::cancel_signal) and
/// [`cancel_grace`](Self::cancel_grace) when either is set, else with those
/// of the first stage whose own token was cancelled, else of the first
/// stage that sets either (SIGKILL at once when none does).
///
/// **Inactivity.** The chain's [`inactivity_timeout`](Self::inactivity_timeout),
/// or the shortest of its stages' [`Command::inactivity_timeout`], ends the
/// whole chain when no output arrives for that long, as a timeout does
/// (outcome [`Outcome::TimedOut`] with
/// [`Output::inactivity_timed_out`]). The output watched is what the chain
/// shows: the last stage's stdout and every stage's stderr; the stages'
/// pipes to each other go from process to process and are not seen.
///
/// ```
/// # async fn demo() -> pkit::Result<()> {
/// use pkit::{Command, Pipe};
///
/// let counts = Pipe::new([
///     Command::new("printf").arg("b\na\nb\n"),
///     Command::new("sort"),
///     Command::new("uniq").arg("-c"),
/// ])
/// .run()
/// .await?;
/// assert_eq!(counts.split_whitespace().collect::<Vec<_>>(), ["1", "a", "2", "b"]);
///
/// // producer | head: the producer dies of SIGPIPE, which is expected.
/// let first = Command::new("yes").unchecked_in_pipe().pipe(Command::new("head").arg("-n1"));
/// assert_eq!(first.run().await?, "y");
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
#[must_use = "a Pipe does nothing until a verb runs it, and each builder method returns the changed pipe"]
pub struct Pipe {
    stages: Vec<Command>,
    timeout: Option<Duration>,
    grace: Option<Duration>,
    timeout_signal: Option<Signal>,
    cancel: Option<CancelToken>,
    cancel_signal: Option<Signal>,
    cancel_grace: Option<Duration>,
    inactivity: Option<Duration>,
    mechanism: Option<MechanismChoice>,
}

impl Pipe {
    /// A pipeline of `stages`, head first.
    pub fn new(stages: impl IntoIterator<Item = Command>) -> Pipe {
        Pipe {
            stages: stages.into_iter().collect(),
            timeout: None,
            grace: None,
            timeout_signal: None,
            cancel: None,
            cancel_signal: None,
            cancel_grace: None,
            inactivity: None,
            mechanism: None,
        }
    }

    /// Appends a stage.
    pub fn pipe(mut self, next: Command) -> Pipe {
        self.stages.push(next);
        self
    }

    fn head(mut self, f: impl FnOnce(Command) -> Command) -> Pipe {
        if !self.stages.is_empty() {
            let head = self.stages.remove(0);
            self.stages.insert(0, f(head));
        }
        self
    }

    /// Feeds these bytes to the head of the chain.
    pub fn stdin_bytes(self, bytes: impl Into<Vec<u8>>) -> Pipe {
        let bytes = bytes.into();
        self.head(|c| c.stdin_bytes(bytes))
    }

    /// Feeds this text to the head of the chain.
    pub fn stdin_str(self, text: impl AsRef<str>) -> Pipe {
        self.stdin_bytes(text.as_ref().as_bytes())
    }

    /// The head of the chain reads this file.
    pub fn stdin_file(self, path: impl AsRef<Path>) -> Pipe {
        self.head(|c| c.stdin_file(path))
    }

    /// Streams the head's stdin from `reader` (consumed by the first run).
    pub fn stdin_reader(self, reader: impl tokio::io::AsyncRead + Send + Unpin + 'static) -> Pipe {
        self.head(|c| c.stdin_reader(reader))
    }

    /// Bounds the whole chain: when `limit` passes every stage and all they
    /// spawned are torn down, and the outcome is [`Outcome::TimedOut`].
    pub fn timeout(mut self, limit: Duration) -> Pipe {
        self.timeout = Some(limit);
        self
    }

    /// On timeout, send the timeout signal (SIGTERM unless
    /// [`timeout_signal`](Self::timeout_signal) says otherwise) to the
    /// whole chain and wait up to `grace` before SIGKILL; the rule is
    /// [`Command::timeout_signal`]'s.
    pub fn grace(mut self, grace: Duration) -> Pipe {
        self.grace = Some(grace);
        self
    }

    /// The signal the whole chain gets when the timeout fires; the rule is
    /// [`Command::timeout_signal`]'s.
    pub fn timeout_signal(mut self, signal: Signal) -> Pipe {
        self.timeout_signal = Some(signal);
        self
    }

    /// Cancels the chain when `token` is cancelled.
    pub fn cancel_token(mut self, token: &CancelToken) -> Pipe {
        self.cancel = Some(token.clone());
        self
    }

    /// The signal a cancelled chain gets (every stage and all they spawned)
    /// before [`cancel_grace`](Self::cancel_grace); the rule is
    /// [`Command::cancel_signal`]'s.
    pub fn cancel_signal(mut self, signal: Signal) -> Pipe {
        self.cancel_signal = Some(signal);
        self
    }

    /// How long a cancelled chain gets after its cancel signal before
    /// SIGKILL; the rule is [`Command::cancel_grace`]'s.
    pub fn cancel_grace(mut self, grace: Duration) -> Pipe {
        self.cancel_grace = Some(grace);
        self
    }

    /// Ends the whole chain when it shows no output (the last stage's
    /// stdout, any stage's stderr) for `idle`, as a timeout does; see the
    /// type's docs. `Duration::MAX` is no bound.
    pub fn inactivity_timeout(mut self, idle: Duration) -> Pipe {
        self.inactivity = Some(idle);
        self
    }

    /// The mechanism of the chain's group (default: `PKIT_MECHANISM`, else
    /// the strongest available).
    pub fn mechanism(mut self, choice: MechanismChoice) -> Pipe {
        self.mechanism = Some(choice);
        self
    }

    /// Runs the chain to its end; see the type's docs for how the stages'
    /// results are folded and when the chain ends early.
    pub async fn output(&self) -> Result<Output> {
        if self.stages.is_empty() {
            return Err(Error::InvalidInput(
                "a pipeline needs at least one stage".into(),
            ));
        }
        // The chain's token and every stage's own.
        let tokens: Vec<&CancelToken> = self
            .cancel
            .iter()
            .chain(self.stages.iter().filter_map(|c| c.cancel.as_ref()))
            .collect();
        let cancelled = || Error::Cancelled {
            program: self.stages[0].display_name(),
        };
        // Checked before anything is spawned: a cancelled run has no effects.
        if tokens.iter().any(|t| t.is_cancelled()) {
            return Err(cancelled());
        }
        let (timeout, timeout_signal, grace) = self.time_bounds();
        let began = Instant::now();
        let mut builder = Group::builder();
        if let Some(choice) = self.mechanism {
            builder = builder.mechanism(choice);
        }
        let group = builder.build()?;
        // One flag for every stage: any stage crossing a `Fail` capture
        // limit ends the chain.
        let limit = Arc::new(LimitFlag::default());
        let mut procs = self.start_all(&group, &limit)?;
        // Nobody can write to a piped stdin here: end of file at once.
        for p in &mut procs {
            drop(p.take_stdin());
        }

        let inactivity = self
            .stages
            .iter()
            .filter_map(|c| c.run.inactivity)
            .chain(self.inactivity)
            .min();
        let bounds = Bounds {
            timeout,
            inactivity,
            cancel: tokens,
            limit: limit.clone(),
        };
        let cut: Vec<AtomicBool> = procs.iter().map(|_| AtomicBool::new(false)).collect();
        let ended = bounds.wait(self.wait_stages(&procs, &cut)).await?;
        // Which stages were still running when a bound was hit.
        let running: Vec<bool> = procs.iter().map(|p| !p.has_exited()).collect();
        let name = self.stages[0].log_label();
        let head = procs.first().map(RunningProcess::pid);
        if let Ended::Cancelled = ended {
            crate::log::cancelled(&name, head);
            let (signal, grace) = self.cancel_plan();
            if end_group(&group, true, signal, grace).await? {
                crate::log::killed_after_grace(&name, head.unwrap_or(0));
            }
            return Err(cancelled());
        }
        let inactive = matches!(ended, Ended::Inactive);
        let timed_out = inactive || matches!(ended, Ended::TimedOut);
        match ended {
            Ended::TimedOut => crate::log::timed_out(&name, head.unwrap_or(0), timeout),
            Ended::Inactive => crate::log::timed_out(&name, head.unwrap_or(0), inactivity),
            _ => {}
        }
        let killed_after_grace = end_group(&group, timed_out, timeout_signal, grace).await?;

        let mut outs = Vec::with_capacity(procs.len());
        for (i, p) in procs.iter_mut().enumerate() {
            let status = p.wait_status().await?;
            let outcome = match ended {
                Ended::TimedOut | Ended::Inactive if running[i] => Outcome::TimedOut,
                _ => outcome_of(status),
            };
            let mut out = p.finish(outcome).await;
            out.inactivity_timed_out = inactive && running[i];
            let out = p.check_input(out)?;
            outs.push(p.check_limit(out)?);
        }
        // Cut short is what our SIGKILL ended: a stage that exited on its
        // own just before the kill landed keeps its own failure.
        let killed = Outcome::Signalled(Signal::Kill.as_raw());
        let cut: Vec<bool> = cut
            .iter()
            .zip(&outs)
            .map(|(c, o)| c.load(Ordering::Relaxed) && o.outcome() == killed)
            .collect();
        let mut out = fold(outs, &self.stages, &cut, began.elapsed());
        out.killed_after_grace = killed_after_grace;
        out.inactivity_timed_out = inactive;
        Ok(out)
    }

    /// Waits for every stage. When a stage whose failure fails the chain
    /// fails, the stages before it still running are killed and marked in
    /// `cut`: their consumer is gone, so they could only block or die of
    /// SIGPIPE. The stages after it run on to the end of their input.
    async fn wait_stages(&self, procs: &[RunningProcess], cut: &[AtomicBool]) -> Result<()> {
        let mut waits: Vec<_> = procs
            .iter()
            .map(|p| Some(Box::pin(p.wait_status())))
            .collect();
        for _ in 0..procs.len() {
            let (i, status) = first_of(&mut waits).await;
            let outcome = outcome_of(status?);
            let failed = outcome != Outcome::Exited(0)
                && !self.stages[i].unchecked_in_pipe
                && !cut[i].load(Ordering::Relaxed);
            if !failed {
                continue;
            }
            for (j, p) in procs.iter().enumerate().take(i) {
                // Not one that has exited already, if not yet seen to.
                if waits[j].is_some() && !p.has_exited() && !cut[j].swap(true, Ordering::Relaxed) {
                    p.kill()?;
                }
            }
        }
        Ok(())
    }

    /// The chain's timeout — its own or the soonest of its stages' (all
    /// counted from the chain's start) — and how it ends the chain: the
    /// chain's timeout signal and grace when either is set, else those of
    /// the stage whose timeout is the soonest.
    fn time_bounds(&self) -> (Option<Duration>, Option<Signal>, Option<Duration>) {
        let soonest = self
            .stages
            .iter()
            .filter_map(|c| c.timeout.map(|t| (t, c)))
            .min_by_key(|(t, _)| *t)
            .filter(|(t, _)| self.timeout.is_none_or(|own| *t < own));
        match soonest {
            Some((t, c)) if self.timeout_signal.is_none() && self.grace.is_none() => {
                (Some(t), c.timeout_signal, c.grace)
            }
            Some((t, _)) => (Some(t), self.timeout_signal, self.grace),
            None => (self.timeout, self.timeout_signal, self.grace),
        }
    }

    /// How a cancelled chain is ended (see the type's docs): the chain's
    /// cancel signal and grace when either is set, else those of the first
    /// stage whose own token was cancelled, else of the first stage that
    /// sets either.
    fn cancel_plan(&self) -> (Option<Signal>, Option<Duration>) {
        if self.cancel_signal.is_some() || self.cancel_grace.is_some() {
            return (self.cancel_signal, self.cancel_grace);
        }
        let sets = |c: &&Command| c.run.cancel_signal.is_some() || c.run.cancel_grace.is_some();
        self.stages
            .iter()
            .filter(sets)
            .find(|c| c.cancel.as_ref().is_some_and(CancelToken::is_cancelled))
            .or_else(|| self.stages.iter().find(sets))
            .map_or((None, None), |c| (c.run.cancel_signal, c.run.cancel_grace))
    }

    /// Starts every stage, wiring stage i's stdout to stage i+1's stdin.
    fn start_all(&self, group: &Group, limit: &Arc<LimitFlag>) -> Result<Vec<RunningProcess>> {
        let n = self.stages.len();
        let mut procs = Vec::with_capacity(n);
        let mut next_stdin = None;
        for (i, cmd) in self.stages.iter().enumerate() {
            let (read, write) = if i + 1 < n {
                let (r, w) = sys::stage_pipe().map_err(|e| {
                    Error::io(format!("{}: making its pipe", cmd.display_name()), e)
                })?;
                (Some(r), Some(w))
            } else {
                (None, None)
            };
            let opts = StartOpts {
                stream_lines: false,
                stdin: next_stdin.take(),
                stdout: write,
                limit: Some(limit.clone()),
                bounded_capture: false,
                own_tree: false,
                raw_output: false,
            };
            // On error, dropping the group kills the stages already started.
            let launch = crate::launch::Launch { group, opts };
            procs.push(cmd.run_with().start(cmd, launch)?);
            next_stdin = read;
        }
        Ok(procs)
    }

    /// Runs the chain, requires success, and returns the last stage's
    /// stdout trimmed.
    pub async fn run(&self) -> Result<String> {
        verbs::run(self.secret(self.output().await?), &[0])
    }

    /// Runs the chain and returns the folded exit code.
    pub async fn exit_code(&self) -> Result<i32> {
        verbs::exit_code(self.secret(self.output().await?), None)
    }

    /// Runs the chain as a yes/no question (0 = true, 1 = false).
    pub async fn probe(&self) -> Result<bool> {
        verbs::probe(self.secret(self.output().await?))
    }
}

impl Pipe {
    /// Marks a result for the verbs: a chain with a `secret_output` stage
    /// never has its stderr quoted by an error.
    fn secret(&self, mut out: Output) -> Output {
        out.secret_output = self.stages.iter().any(|c| c.io.secret_output);
        out
    }
}

/// The pipefail fold. A stage the chain's end cut short (`cut`: killed
/// because another stage failed) is never blamed. The last stage's stdout
/// moves into the fold (its stage record keeps none), so a big output is
/// held once.
fn fold(mut stages: Vec<Output>, cmds: &[Command], cut: &[bool], duration: Duration) -> Output {
    let last = stages.len() - 1;
    let blame = stages
        .iter()
        .zip(cmds)
        .zip(cut)
        .position(|((o, c), cut)| !o.success() && !c.unchecked_in_pipe && !cut)
        .unwrap_or(last);
    let stdout = std::mem::take(&mut stages[last].stdout);
    let b = &stages[blame];
    let l = &stages[last];
    Output {
        program: b.program.clone(),
        outcome: b.outcome,
        stdout,
        stderr: b.stderr.clone(),
        duration,
        mechanism: b.mechanism,
        pid: b.pid,
        stdout_seen: l.stdout_seen,
        stderr_seen: b.stderr_seen,
        cpu_time: stages.iter().map(|s| s.cpu_time).sum(),
        peak_memory: stages.iter().map(|s| s.peak_memory).max().flatten(),
        oom_killed: stages.iter().any(|s| s.oom_killed),
        killed_after_grace: false,
        inactivity_timed_out: false,
        secret_output: false,
        stages,
    }
}

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipe")
            .field("stages", &self.stages)
            .field("timeout", &self.timeout)
            .field("grace", &self.grace)
            .field("timeout_signal", &self.timeout_signal)
            .field("cancel_signal", &self.cancel_signal)
            .field("cancel_grace", &self.cancel_grace)
            .field("inactivity", &self.inactivity)
            .finish_non_exhaustive()
    }
}

impl From<Command> for Pipe {
    fn from(cmd: Command) -> Pipe {
        Pipe::new([cmd])
    }
}

impl Command {
    /// A pipeline: this command's stdout feeds `next`'s stdin.
    pub fn pipe(self, next: Command) -> Pipe {
        Pipe::new([self, next])
    }
}
