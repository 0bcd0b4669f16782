//! [`Pipe`]: shell-free pipelines over real OS pipes.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::command::Command;
use crate::error::{Error, Result};
use crate::group::Group;
use crate::launch::StartOpts;
use crate::output::Output;
use crate::pipe_fold::StageRule;
use crate::pipe_started::{Plan, RunningPipe};
use crate::process::RunningProcess;
use crate::pump::LimitFlag;
use crate::spec::Input;
use crate::sys::{self, MechanismChoice, Signal};
use crate::verbs;

/// A pipeline: each stage's stdout is the next stage's stdin, over an OS
/// pipe made for the two of them (no copy through this process), and every
/// stage — with everything it spawns — lives in one private group.
///
/// The verbs mirror [`Command`]'s and return one [`Output`] folded the
/// `pipefail` way: stdout is always the last stage's; the program, stderr
/// and outcome are those of the first stage that failed (when none did, of
/// the last stage that succeeded). A stage fails when it does not exit with one
/// of its [`ok_codes`](Command::ok_codes) (0 without them): `grep` that
/// finds nothing, given `ok_codes([0, 1])`, does not fail the chain, and
/// [`run`](Self::run) and [`exit_code`](Self::exit_code) accept the codes
/// of the stage the outcome is from. A stage marked [`unchecked_in_pipe`](Command::unchecked_in_pipe)
/// never fails the chain (a timeout that ends it times the chain out; when every stage failed and
/// none was checked, the last one's failure is the chain's). Each stage's result is in [`Output::stages`].
///
/// The chain owns the stages' joints: a stage after the head that sets a
/// stdin of its own, or a stage before the last that sends its stdout to a
/// file, `/dev/null` or the parent's stdout, or reads it with
/// [`stdout_tee`](Command::stdout_tee) or
/// [`on_stdout_line`](Command::on_stdout_line), is refused
/// ([`Error::InvalidInput`]) rather than silently rewired; so is a stage
/// with a [`retry`](Command::retry) policy of more than one attempt (a
/// stage can't be replayed alone, and a chain is not retried).
///
/// **A failed stage ends what feeds it.** As soon as a stage that is not
/// `unchecked_in_pipe` exits with a code its [`ok_codes`](Command::ok_codes)
/// don't accept (without them: non-zero) or is killed by a signal, the stages
/// before it that are still running are killed (SIGKILL): nobody reads
/// their output any more, so they could only block or die of SIGPIPE.
/// `sleep 5 | sh -c 'exit 3'` returns at once. The stages after it run on
/// to the end of their input, as in a shell, so their output is kept
/// (`false | wc -l` still prints `0`). The stages cut short show their
/// SIGKILL in [`Output::stages`] but are never blamed, nor is a stage that
/// died of SIGPIPE upstream of the failed one, whenever it died (one that
/// raised SIGPIPE itself is not told apart): the outcome is the failed
/// stage's. A consumer that exits 0 early is not a failure (its producer
/// then dies of SIGPIPE, which fails the chain unless that producer is
/// `unchecked_in_pipe`, the `producer | head` case). What the killed
/// stages spawned lives until the chain ends, like every stage's descendants.
/// A stage that ends of a signal the caller sent the started chain
/// ([`RunningPipe::signal`]) cuts nothing: every stage got it, to end its
/// own way (its trap's cleanup included); see there.
///
/// **Started live.** [`start`](Self::start) returns a [`RunningPipe`] at
/// once: the last stage's stdout as lines, the head's stdin, the stages'
/// pids, kill, signal, shutdown, and `wait` for the same fold; every rule
/// here holds for it too, and dropping it kills the whole chain.
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
/// (outcome [`Outcome::TimedOut`](crate::Outcome::TimedOut) with
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
    stream_lines: bool,
    /// The head's input, given while the chain had no stage yet: the
    /// first stage appended gets it.
    head_stdin: Option<Input>,
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
            stream_lines: false,
            head_stdin: None,
        }
    }

    /// Appends a stage. The first stage of a chain made empty gets the
    /// input given to the chain before it (the `stdin_` methods).
    pub fn pipe(mut self, mut next: Command) -> Pipe {
        if let (true, Some(input)) = (self.stages.is_empty(), self.head_stdin.take()) {
            next.spec.stdin = input;
        }
        self.stages.push(next);
        self
    }

    fn head(mut self, f: impl FnOnce(Command) -> Command) -> Pipe {
        if self.stages.is_empty() {
            // No head yet: the first stage appended gets this input.
            self.head_stdin = Some(f(Command::new("")).spec.stdin);
        } else {
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

    /// Gives the head of a [started](Self::start) chain a pipe for its
    /// stdin, to write to through [`RunningPipe::stdin`](crate::RunningPipe::stdin)
    /// ([`Command::stdin_piped`] on the head). The verbs close it at once.
    pub fn stdin_piped(self) -> Pipe {
        self.head(|c| c.stdin_piped())
    }

    /// Streams the head's stdin from `reader` (consumed by the first run).
    pub fn stdin_reader(self, reader: impl tokio::io::AsyncRead + Send + Unpin + 'static) -> Pipe {
        self.head(|c| c.stdin_reader(reader))
    }

    /// Makes the last stage of a [started](Self::start) chain stream its
    /// stdout as lines ([`RunningPipe::lines`](crate::RunningPipe::lines),
    /// [`RunningPipe::wait_for_line`](crate::RunningPipe::wait_for_line)),
    /// whatever stage is last when the chain starts; its stderr is still
    /// captured. [`Command::stream_lines`] on the last stage does the same.
    /// The stdout lines then go to the stream only: the chain's
    /// [`Output::stdout`] is empty. The verbs ignore it.
    pub fn stream_lines(mut self) -> Pipe {
        self.stream_lines = true;
        self
    }

    /// Bounds the whole chain: when `limit` passes every stage and all they
    /// spawned are torn down, and the outcome is [`Outcome::TimedOut`](crate::Outcome::TimedOut).
    pub fn timeout(mut self, limit: Duration) -> Pipe {
        self.timeout = Some(limit);
        self
    }

    /// On timeout, send the timeout signal (SIGTERM unless
    /// [`timeout_signal`](Self::timeout_signal) says otherwise) to the
    /// whole chain and wait up to `grace` before SIGKILL; the rule is
    /// [`Command::timeout_signal`]'s. A cancel token cancelled during the
    /// grace ends it at once, and a timeout passing during a
    /// [`cancel_grace`](Self::cancel_grace) ends that (see
    /// [`Command::cancel_token`]).
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

    /// Cancels the chain when `token` is cancelled (as
    /// [`Command::cancel_token`]: once every stage has exited, their
    /// outcomes stand).
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
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a chain without stages, a
    /// stage that can't be a pipeline stage (a pty), or a stage with an input or output the
    /// chain replaces (stdin of its own on a stage after the head; a stdout file, null or
    /// inherited stdout, a stdout tee or line callback on a stage before the last), or a stage
    /// with a [`retry`](crate::Command::retry) policy of more than one attempt;
    /// [`Error::Cancelled`](crate::Error::Cancelled) when a cancel token (the chain's or a
    /// stage's) fires, before anything is started or during the run; the start errors of
    /// [`Command::output`](crate::Command::output) for a stage that can't be started (the
    /// stages already started are ended; a NUL byte in any stage's program, arguments,
    /// environment or working directory, or an empty program name, is refused before any
    /// stage starts); [`Error::Io`](crate::Error::Io) when making a pipe or
    /// managing the group fails. A stage's own failure is data in the
    /// [`Output`](crate::Output).
    pub async fn output(&self) -> Result<Output> {
        // Dropping this future drops the chain: every stage and all they
        // spawned are killed.
        self.launch(false, false)?.wait().await
    }

    /// Starts the chain and returns at once with a live handle: its last
    /// stage's stdout as lines (with [`stream_lines`](Self::stream_lines)),
    /// the head's stdin (with [`stdin_piped`](Self::stdin_piped)), the
    /// stages' pids, kill, signal, shutdown, and [`wait`](RunningPipe::wait)
    /// for the folded result. The chain's rules and bounds hold as for
    /// [`output`](Self::output), whether or not anyone waits; dropping the
    /// handle kills every stage and all they spawned. Needs a Tokio runtime
    /// (see [`Pipe::blocking`] without one). The stages start through their
    /// commands' runners, as for the verbs.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use pkit::{Command, Pipe};
    /// use tokio::io::AsyncWriteExt;
    ///
    /// let mut upper = Pipe::new([Command::new("cat"), Command::new("tr").args(["a-z", "A-Z"])])
    ///     .stdin_piped()
    ///     .stream_lines()
    ///     .start()?;
    /// let mut lines = upper.lines();
    /// let mut stdin = upper.take_stdin().expect("piped");
    /// stdin.write_all(b"hello\n").await?;
    /// drop(stdin); // end of file: cat, then tr, exit
    /// assert_eq!(lines.next_line().await.map(|l| l.text).as_deref(), Some("HELLO"));
    /// assert!(upper.wait().await?.success());
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`output`](Self::output) that come before the run: an empty chain, a stage that
    /// can't be wired or started, a cancel token cancelled already.
    pub fn start(&self) -> Result<RunningPipe> {
        self.launch(true, false)
    }

    /// Starts every stage and the driver that waits for them (see
    /// `pipe_started.rs`). A chain for a verb (`started` false) captures
    /// everything and has its piped stdins closed at once.
    fn launch(&self, started: bool, text: bool) -> Result<RunningPipe> {
        if self.stages.is_empty() {
            return Err(Error::InvalidInput(
                "a pipeline needs at least one stage".into(),
            ));
        }
        crate::pipe_check::check_stages(&self.stages)?;
        // The chain's token and every stage's own.
        let tokens: Vec<CancelToken> = self
            .cancel
            .iter()
            .chain(self.stages.iter().filter_map(|c| c.spec.cancel.as_ref()))
            .cloned()
            .collect();
        // Checked before anything is spawned: a cancelled run has no effects.
        if tokens.iter().any(CancelToken::is_cancelled) {
            return Err(Error::Cancelled {
                program: self.stages[0].display_name(),
            });
        }
        let (timeout, timeout_signal, grace) = self.time_bounds();
        let began = Instant::now();
        let name = self.stages[0].log_label();
        let mut builder = Group::builder().log_name(name.clone()).one_shot();
        if let Some(choice) = self.mechanism {
            builder = builder.mechanism(choice);
        }
        let group = builder.build()?;
        // One flag for every stage: any stage crossing a `Fail` capture
        // limit ends the chain.
        let limit = Arc::new(LimitFlag::default());
        let mut procs = self.start_all(&group, &limit, (started, text), began)?;
        // Nobody can write to a verb's piped stdin: end of file at once.
        if !started {
            for p in &mut procs {
                drop(p.take_stdin());
            }
        }
        let inactivity = self
            .stages
            .iter()
            .filter_map(|c| c.spec.run.inactivity)
            .chain(self.inactivity)
            .min();
        let plan = Plan {
            timeout,
            timeout_signal,
            grace,
            inactivity,
            tokens,
            limit,
            cancel: self.cancel_plan(),
            name,
        };
        let rules = self
            .stages
            .iter()
            .map(|c| StageRule {
                checked: !c.unchecked_in_pipe,
                ok: c.spec.io.ok_codes.clone(),
            })
            .collect();
        Ok(RunningPipe::new(group, procs, rules, began, plan))
    }

    /// The chain's timeout — its own or the soonest of its stages' (all
    /// counted from the chain's start) — and how it ends the chain: the
    /// chain's timeout signal and grace when either is set, else those of
    /// the stage whose timeout is the soonest.
    pub(crate) fn time_bounds(&self) -> (Option<Duration>, Option<Signal>, Option<Duration>) {
        let soonest = self
            .stages
            .iter()
            .filter_map(|c| c.spec.timeout.map(|t| (t, c)))
            .min_by_key(|(t, _)| *t)
            .filter(|(t, _)| self.timeout.is_none_or(|own| *t < own));
        match soonest {
            Some((t, c)) if self.timeout_signal.is_none() && self.grace.is_none() => {
                (Some(t), c.spec.timeout_signal, c.spec.grace)
            }
            Some((t, _)) => (Some(t), self.timeout_signal, self.grace),
            None => (self.timeout, self.timeout_signal, self.grace),
        }
    }

    /// How a cancelled chain is ended (see the type's docs): the chain's
    /// cancel signal and grace when either is set, else those of the first
    /// stage whose own token was cancelled, else of the first stage that
    /// sets either.
    pub(crate) fn cancel_plan(&self) -> (Option<Signal>, Option<Duration>) {
        if self.cancel_signal.is_some() || self.cancel_grace.is_some() {
            return (self.cancel_signal, self.cancel_grace);
        }
        let sets =
            |c: &&Command| c.spec.run.cancel_signal.is_some() || c.spec.run.cancel_grace.is_some();
        self.stages
            .iter()
            .filter(sets)
            .find(|c| {
                c.spec
                    .cancel
                    .as_ref()
                    .is_some_and(CancelToken::is_cancelled)
            })
            .or_else(|| self.stages.iter().find(sets))
            .map_or((None, None), |c| {
                (c.spec.run.cancel_signal, c.spec.run.cancel_grace)
            })
    }

    /// Starts every stage, wiring stage i's stdout to stage i+1's stdin.
    /// A started chain (`started`) keeps a bounded capture, as a started
    /// process does, and its last stage streams its stdout as lines when
    /// asked to ([`stream_lines`](Self::stream_lines)). With `text` (for
    /// `run()`), the last stage's stdout is validated as UTF-8 as it
    /// arrives, as a single command's is.
    pub(crate) fn start_all(
        &self,
        group: &Group,
        limit: &Arc<LimitFlag>,
        (started, text): (bool, bool),
        began: Instant,
    ) -> Result<Vec<RunningProcess>> {
        let n = self.stages.len();
        let mut procs = Vec::with_capacity(n);
        let mut next_stdin = None;
        let secrets: Vec<Vec<u8>> = self
            .stages
            .iter()
            .flat_map(Command::secret_values)
            .collect();
        for (i, cmd) in self.stages.iter().enumerate() {
            let streams = started && i + 1 == n && (self.stream_lines || cmd.spec.io.stream_lines);
            // A stage's FIFO waits within what is left of the chain's timeout.
            let left = crate::timing::left_of(self.time_bounds().0, began);
            let cmd = cmd.as_stage(streams, &secrets, (left, self.cancel.as_ref()));
            let cmd = cmd.as_ref();
            let (read, write) = if i + 1 < n {
                let (r, w) = sys::stage_pipe().map_err(|e| {
                    Error::io(format!("{}: making its pipe", cmd.display_name()), e)
                })?;
                (Some(r), Some(w))
            } else {
                (None, None)
            };
            let opts = StartOpts {
                stream_lines: streams,
                stdin: next_stdin.take(),
                stdout: write,
                limit: Some(limit.clone()),
                bounded_capture: started,
                own_tree: false,
                raw_output: false,
                text_stdout: text && i + 1 == n,
            };
            // On error, dropping the group kills the stages already started.
            let launch = crate::launch_spec::Launch { group, opts };
            procs.push(cmd.run_with().start(cmd, launch)?);
            next_stdin = read;
        }
        Ok(procs)
    }

    /// Runs the chain, requires success, and returns the last stage's
    /// stdout trimmed and as text, as [`Command::run`](crate::Command::run)
    /// does (invalid UTF-8 replaced with U+FFFD), validated while it is
    /// captured as a command's is. A stage's own [`runner`](Command::runner)
    /// is handed that with its start; a scripted stage's text is validated once, at the end.
    ///
    /// # Errors
    ///
    /// Those of [`output`](Self::output), and [`Error::NonZeroExit`](crate::Error::NonZeroExit)
    /// for an exit code that is not accepted, [`Error::Signalled`](crate::Error::Signalled) for
    /// a signal, [`Error::Timeout`](crate::Error::Timeout) for a timeout, each carrying the
    /// whole [`Output`](crate::Output) (the first stage that failed, as the fold reports it).
    pub async fn run(&self) -> Result<String> {
        let (out, ok) = self.judged(true).await?;
        verbs::run(out, ok.as_deref().unwrap_or(&[0]))
    }

    /// Runs the chain and returns the folded exit code.
    ///
    /// # Errors
    ///
    /// Those of [`output`](Self::output), and [`Error::Signalled`](crate::Error::Signalled) or
    /// [`Error::Timeout`](crate::Error::Timeout) when the folded outcome has no code; when the
    /// stage the outcome is from sets [`ok_codes`](Command::ok_codes),
    /// [`Error::NonZeroExit`](crate::Error::NonZeroExit) for a code not listed.
    pub async fn exit_code(&self) -> Result<i32> {
        let (out, ok) = self.judged(false).await?;
        verbs::exit_code(out, ok.as_deref())
    }

    /// The folded result and the exit codes its stage accepts (the
    /// `ok_codes` of the stage the fold took the outcome from); `text` as
    /// for [`start_all`](Self::start_all).
    pub(crate) async fn judged(&self, text: bool) -> Result<(Output, Option<Arc<[i32]>>)> {
        let mut chain = self.launch(false, text)?;
        let out = chain.wait().await?;
        Ok((self.secret(out), chain.folded_ok_codes()))
    }

    /// Runs the chain as a yes/no question (0 = true, 1 = false).
    ///
    /// # Errors
    ///
    /// Those of [`output`](Self::output), and [`Error::NonZeroExit`](crate::Error::NonZeroExit)
    /// for a folded exit code other than 0 and 1,
    /// [`Error::Signalled`](crate::Error::Signalled),
    /// [`Error::Timeout`](crate::Error::Timeout).
    pub async fn probe(&self) -> Result<bool> {
        verbs::probe(self.secret(self.output().await?))
    }
}

impl Pipe {
    /// Marks a result for the verbs: a chain with a `secret_output` stage
    /// never has its stderr quoted by an error, nor any stage's secret args.
    fn secret(&self, mut out: Output) -> Output {
        let stages = self.stages.iter();
        out.secret_output = stages.clone().any(|c| c.spec.io.secret_output);
        out.redact = stages.flat_map(Command::secret_values).collect();
        out
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
