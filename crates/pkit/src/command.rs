//! [`Command`]: what to run, as plain data, and the [`Runner`] seam it
//! runs through (the four verbs are in `verbs.rs`).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::cancel::CancelToken;
use crate::error::Result;
use crate::future::BoxFuture;
use crate::launch_spec::Launch;
use crate::output::Output;
pub use crate::plans::{
    DEFAULT_BUFFER_LINES, DEFAULT_MAX_LINE_BYTES, DEFAULT_START_CAPTURE_BYTES,
    DEFAULT_TIMEOUT_GRACE,
};
use crate::process::RunningProcess;
pub use crate::spec::Stdio;
use crate::spec::{Input, Spec};
use crate::sys::Signal;

/// A program to run, with its arguments, environment, working directory,
/// stdio and time bounds.
///
/// A `Command` is plain data: it owns no OS resource and does nothing until
/// a verb runs it. It is `Clone` and can be run any number of times. Every
/// verb runs it in a fresh private [`Group`](crate::Group), so the program
/// and everything it spawns die with the run.
///
/// ```
/// # async fn demo() -> pkit::Result<()> {
/// use std::time::Duration;
///
/// let out = pkit::Command::new("sh")
///     .args(["-c", "echo hello; echo oops >&2; exit 3"])
///     .timeout(Duration::from_secs(10))
///     .output()
///     .await?;
/// assert_eq!(out.code(), Some(3));
/// assert_eq!(out.stdout_str(), "hello\n");
/// assert_eq!(out.stderr_str(), "oops\n");
/// # Ok(()) }
/// ```
///
/// The builder methods take the command and return the changed one, and a
/// `Command` is `#[must_use]`: a call whose result is dropped warns.
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// fn add(cmd: &pkit::Command) {
///     cmd.clone().arg("--verbose"); // the argument would be lost
/// }
/// ```
#[derive(Clone)]
#[must_use = "a Command does nothing until a verb runs it, and each builder method returns the changed command"]
pub struct Command {
    /// What the start reads: program, arguments, environment, stdio,
    /// bounds, output plan, spawn options (see `spec.rs`).
    pub(crate) spec: Spec,
    pub(crate) runner: Option<Arc<dyn Runner>>,
    pub(crate) unchecked_in_pipe: bool,
    /// How the success-requiring verbs replay a failure: see `retry.rs`.
    pub(crate) retry: Option<crate::plans::RetryPolicy>,
}

impl Command {
    /// A command that runs `program`: a name looked up on `PATH` (the
    /// command's own `PATH` if it sets one, else the parent's), or a path
    /// when it contains a `/`. A child left without `PATH` (removed with
    /// [`env_remove`](Self::env_remove), cleared with
    /// [`env_clear`](Self::env_clear), or not in an
    /// [`inherit_env`](Self::inherit_env) list) has its program looked up
    /// on `/usr/local/bin:/usr/bin:/bin` on Unix, as `execvp` would, not
    /// on the parent's `PATH`.
    ///
    /// The program is found in this process, before the child starts, and
    /// the child executes exactly the file found. A relative path (`./tool`,
    /// `bin/tool`) is relative to this process's working directory, even
    /// when [`current_dir`](Self::current_dir) is set; so is a relative or
    /// empty entry of `PATH`. The rule is the same on every platform (where
    /// `std::process::Command`'s varies); to run a program that sits in the
    /// child's directory, give its full path.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            spec: Spec::new(program.as_ref().to_os_string()),
            runner: None,
            unchecked_in_pipe: false,
            retry: None,
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Command {
        self.spec.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(mut self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.spec
            .args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets an environment variable for the child. On Windows names are
    /// compared without regard to case, as Windows does: `env("Path", ..)`
    /// sets the variable inherited as `PATH` (the program is then looked
    /// up there too), and the last spelling set wins.
    ///
    /// The child inherits this process's environment as it is when the
    /// child starts, with this command's changes (`env`, `envs`,
    /// `env_remove`, `env_clear`). pkit copies it under std's environment
    /// lock (`std::env::vars_os`), as `std::process::Command` does: a
    /// `std::env::set_var` or `remove_var` on another thread meanwhile is
    /// safe. A program that never changes its environment while it starts
    /// processes may opt in to a read without that lock and without a copy
    /// per variable: [`read_environment_unlocked`](crate::read_environment_unlocked)
    /// (unsafe; the same entries as `vars_os` reads).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Command {
        self.spec
            .set_env(key.as_ref(), Some(value.as_ref().to_os_string()));
        self
    }

    /// Sets several environment variables.
    pub fn envs<I, K, V>(mut self, vars: I) -> Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Removes an environment variable the child would otherwise inherit
    /// (see [`env`](Self::env) for what it inherits).
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Command {
        self.spec.set_env(key.as_ref(), None);
        self
    }

    /// Starts the child with an empty environment (plus whatever
    /// [`env`](Self::env) sets, before or after this call).
    pub fn env_clear(mut self) -> Command {
        self.spec.env_clear = true;
        self.spec.env.retain(|_, v| v.is_some());
        self
    }

    /// Runs the child in `dir` (a relative `dir` is relative to this
    /// process's working directory). It is checked before spawning: a
    /// missing directory, or one that is not a directory, is
    /// [`Error::CurrentDir`](crate::Error::CurrentDir); a `dir` holding a
    /// NUL byte (which no OS can be given) is
    /// [`Error::InvalidInput`](crate::Error::InvalidInput), as a NUL in the
    /// program, an argument or a variable is.
    ///
    /// It does not change where the program is found: a relative program
    /// path is resolved against this process's working directory first (see
    /// [`new`](Self::new)).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Command {
        self.spec.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Feeds these bytes to the child's stdin, then end of file. A child
    /// that exits without reading them is not an error.
    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Command {
        self.spec.stdin = Input::Bytes(Arc::from(bytes.into()));
        self
    }

    /// Feeds this text to the child's stdin, then end of file.
    pub fn stdin_str(self, text: impl AsRef<str>) -> Command {
        self.stdin_bytes(text.as_ref().as_bytes())
    }

    /// The child's stdin is `/dev/null` (the default).
    pub fn stdin_null(mut self) -> Command {
        self.spec.stdin = Input::Null;
        self
    }

    /// The child reads the parent's own stdin.
    pub fn stdin_inherit(mut self) -> Command {
        self.spec.stdin = Input::Inherit;
        self
    }

    /// Gives the caller a pipe to the child's stdin: write to it over time
    /// through [`RunningProcess::stdin`](crate::RunningProcess::stdin) and
    /// close it (drop it, or `shutdown`) to send end of file. A verb, which
    /// has no such handle, closes it at once.
    pub fn stdin_piped(mut self) -> Command {
        self.spec.stdin = Input::Piped;
        self
    }

    /// Streams the child's stdin from `reader`. The reader is consumed by
    /// the first run of this command (and of its clones) that starts; a later run fails
    /// with [`Error::InvalidInput`](crate::Error::InvalidInput). A run that fails to
    /// start (a missing program, a spawn failure) leaves the reader unread for the next
    /// (a [`retry`](Self::retry)'s next attempt). A child that stops reading early is not
    /// an error.
    ///
    /// A reader that fails or panics ends the child's stdin (end of file)
    /// and is an error for the run — [`Error::Io`](crate::Error::Io) from
    /// the verbs and from [`wait`](crate::RunningProcess::wait) — unless
    /// the child failed anyway (its `Output` is returned as usual): the
    /// child read a truncated input, which must not pass for success.
    pub fn stdin_reader(
        mut self,
        reader: impl tokio::io::AsyncRead + Send + Unpin + 'static,
    ) -> Command {
        self.spec.stdin = Input::Reader(Arc::new(std::sync::Mutex::new(Some(Box::new(reader)))));
        self
    }

    /// The child reads this file as its stdin (opened at spawn and handed
    /// over directly: no copy through the parent). A FIFO (Unix) waits for
    /// a writer, as a shell's `< fifo` does, within the run's timeout and
    /// cancel token, and is given up by briefly opening its other end (or
    /// by signalling the thread that waits, when that end can't be); see
    /// [`stdout_file`](Self::stdout_file) for the whole rule, including
    /// what another user of the FIFO (another start of this process
    /// waiting on it too) may see, SIGURG, and the unbounded wait of
    /// [`spawn_detached`](Self::spawn_detached).
    pub fn stdin_file(mut self, path: impl AsRef<Path>) -> Command {
        self.spec.stdin = Input::File(path.as_ref().to_path_buf());
        self
    }

    /// Where stdout goes (default: [`Stdio::Piped`], captured).
    pub fn stdout(mut self, stdio: Stdio) -> Command {
        self.spec.stdout = stdio;
        self
    }

    /// Where stderr goes (default: [`Stdio::Piped`], captured).
    pub fn stderr(mut self, stdio: Stdio) -> Command {
        self.spec.stderr = stdio;
        self
    }

    /// Bounds the whole run: when `limit` passes, the whole tree is ended
    /// (see [`timeout_signal`](Self::timeout_signal) and
    /// [`grace`](Self::grace) for how), output reading stops, and the
    /// outcome is [`Outcome::TimedOut`](crate::Outcome::TimedOut).
    /// `limit` is counted from the start call: a start that waited for a
    /// FIFO's other end ([`stdin_file`](Self::stdin_file),
    /// [`stdout_file`](Self::stdout_file)) leaves the program only what
    /// is left of it, and a wait that outlasts it starts nothing (an
    /// [`Error::Io`](crate::Error::Io) whose source is timed out).
    ///
    /// Any `Duration` is accepted: one too long for the clock (say
    /// `Duration::MAX`) is no timeout at all.
    pub fn timeout(mut self, limit: Duration) -> Command {
        self.spec.timeout = Some(limit);
        self
    }

    /// On timeout, send [`timeout_signal`](Self::timeout_signal) (SIGTERM
    /// unless set) to the whole tree (a nested pkit's group through its
    /// owner alone: see [`Group::signal`](crate::Group::signal)) and give it
    /// `grace` to exit before SIGKILL, which reaches every process. Without a grace or a timeout signal (the default), a timeout
    /// kills the tree straight away with SIGKILL.
    ///
    /// [`Output::killed_after_grace`](crate::Output::killed_after_grace)
    /// says whether SIGKILL was still needed. `Duration::MAX` waits for the
    /// tree without bound (as `timeout(1)` without `-k`) — unless the
    /// run's [cancel token](Self::cancel_token) is cancelled during the
    /// grace: that ends it at once, what is left gets SIGKILL (and
    /// `killed_after_grace` says so), and the outcome stays
    /// [`Outcome::TimedOut`](crate::Outcome::TimedOut) (the timeout came
    /// first). This holds for a verb, a started process and a pipeline.
    pub fn grace(mut self, grace: Duration) -> Command {
        self.spec.grace = Some(grace);
        self
    }

    /// The signal the whole tree gets when the timeout fires (as
    /// `timeout --signal`).
    ///
    /// The rule, in full:
    /// - neither set: SIGKILL at once (the default);
    /// - [`grace`](Self::grace) only: SIGTERM, then the grace, then SIGKILL;
    /// - `timeout_signal` only: this signal, then
    ///   [`DEFAULT_TIMEOUT_GRACE`] (10 s, as `docker stop`), then SIGKILL;
    /// - both: this signal, then the grace, then SIGKILL.
    ///
    /// [`Signal::Kill`] always kills at once (there is nothing to wait
    /// for). The grace ends early once every process of the tree has
    /// exited. Without a [`timeout`](Self::timeout) this does nothing.
    /// On Unix the signal is followed by SIGCONT (as timeout(1) sends), so
    /// a stopped program can handle it. A [suspended](crate::Group::suspend)
    /// group is resumed right after the signal (on Windows after the
    /// `CTRL_BREAK_EVENT`; where none can be sent the tree is terminated at
    /// once and the group stays suspended); not after signal 0, a stop
    /// signal or SIGKILL.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use std::time::Duration;
    /// use pkit::{Command, Signal};
    ///
    /// let out = Command::new("sleep")
    ///     .arg("300")
    ///     .timeout(Duration::from_millis(100))
    ///     .timeout_signal(Signal::Int)
    ///     .grace(Duration::from_secs(5))
    ///     .output()
    ///     .await?;
    /// assert!(out.timed_out());
    /// assert!(!out.killed_after_grace()); // sleep ends on SIGINT
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn timeout_signal(mut self, signal: Signal) -> Command {
        self.spec.timeout_signal = Some(signal);
        self
    }

    /// Cancels the run when `token` is cancelled: the tree is torn down
    /// (SIGKILL at once, unless [`cancel_signal`](Self::cancel_signal) or
    /// [`cancel_grace`](Self::cancel_grace) say otherwise) and the verb
    /// returns [`Error::Cancelled`](crate::Error::Cancelled). A token
    /// cancelled once the program has exited (even before the run has
    /// seen the exit) leaves the exit's outcome.
    ///
    /// Two bounds, one grace: whichever of the timeout and the token comes
    /// first ends the run its own way and decides the outcome; the other,
    /// passing during that one's grace, ends the grace at once (SIGKILL to
    /// what is left). A token cancelled during a timeout's
    /// [`grace`](Self::grace) so leaves the run
    /// [`TimedOut`](crate::Outcome::TimedOut); a
    /// [`timeout`](Self::timeout) whose deadline passes during a
    /// [`cancel_grace`](Self::cancel_grace) leaves it
    /// [`Error::Cancelled`](crate::Error::Cancelled). (The inactivity
    /// timeout ends no grace.)
    pub fn cancel_token(mut self, token: &CancelToken) -> Command {
        self.spec.cancel = Some(token.clone());
        self
    }

    /// Runs this command through `runner` instead of the real one (the
    /// seam for test doubles and instrumentation).
    pub fn runner(mut self, runner: Arc<dyn Runner>) -> Command {
        self.runner = Some(runner);
        self
    }

    /// The program as given.
    pub fn get_program(&self) -> &OsStr {
        &self.spec.program
    }

    /// The arguments.
    pub fn get_args(&self) -> impl Iterator<Item = &OsStr> {
        self.spec.args.iter().map(OsString::as_os_str)
    }

    /// The working directory, if one is set.
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.spec.cwd.as_deref()
    }

    /// The timeout, if one is set.
    pub fn get_timeout(&self) -> Option<Duration> {
        self.spec.timeout
    }

    /// The grace given on timeout, if one is set.
    pub fn get_grace(&self) -> Option<Duration> {
        self.spec.grace
    }

    /// The signal sent on timeout, if one is set.
    pub fn get_timeout_signal(&self) -> Option<Signal> {
        self.spec.timeout_signal
    }

    /// The program's name for messages and logs: as given, lossily
    /// converted to UTF-8. Never includes arguments.
    pub(crate) fn display_name(&self) -> String {
        self.spec.display_name()
    }

    /// Names this command in pkit's log events (field `name`), so the
    /// events of one command can be told from another's; without it the
    /// program name is used. The name is logged as given: keep secrets
    /// out of it.
    ///
    /// A [`Supervisor`](crate::Supervisor) of this command uses the name
    /// for its own events too.
    pub fn log_name(mut self, name: impl Into<String>) -> Command {
        self.spec.log_name = Some(Arc::from(name.into()));
        self
    }

    /// The name events about this command carry: its
    /// [`log_name`](Self::log_name), else the program's name.
    pub(crate) fn log_label(&self) -> Arc<str> {
        self.spec.log_label()
    }

    /// Marks this command, as a stage of a [`Pipe`](crate::Pipe), as one
    /// whose failure does not fail the chain: the `producer | head` case,
    /// where the producer dies of SIGPIPE once the consumer stops reading.
    /// (The chain's timeout ending it still times the chain out; a chain
    /// whose every stage failed, none of them checked, has no success to
    /// report: it fails as its last stage did.)
    pub fn unchecked_in_pipe(mut self) -> Command {
        self.unchecked_in_pipe = true;
        self
    }
    /// Whether a retry policy would run this command more than once (what
    /// a pipeline stage and a group's one-command verbs refuse).
    pub(crate) fn retries(&self) -> bool {
        self.retry.as_ref().is_some_and(|r| r.max_attempts > 1)
    }
}

/// Turns a [`Command`] into an [`Output`]. Every verb
/// ([`output`](Command::output), [`run`](Command::run),
/// [`exit_code`](Command::exit_code), [`probe`](Command::probe)) goes
/// through one; the real one is [`SystemRunner`](crate::SystemRunner). Give a command another
/// with [`Command::runner`] to script, record or instrument runs.
///
/// ```
/// use std::sync::Arc;
/// use pkit::{BoxFuture, Command, Output, Runner, SystemRunner};
///
/// /// Counts the runs that go through it, then runs them for real.
/// #[derive(Default)]
/// struct Counting {
///     runs: std::sync::atomic::AtomicUsize,
///     real: SystemRunner,
/// }
///
/// impl Runner for Counting {
///     fn output<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, pkit::Result<Output>> {
///         self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.real.output(cmd)
///     }
/// }
/// # async fn demo() -> pkit::Result<()> {
/// let counting = Arc::new(Counting::default());
/// let kernel = Command::new("uname").runner(counting.clone()).run().await?;
/// assert_eq!(counting.runs.load(std::sync::atomic::Ordering::Relaxed), 1);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
pub trait Runner: Send + Sync {
    /// Runs `cmd` to its end. A non-zero exit, a signal and a timeout are
    /// data in the `Output`; `Err` is for runs that could not start or were
    /// cancelled.
    fn output<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<Output>>;

    /// [`output`](Self::output), for a verb that wants stdout as text
    /// ([`Command::run`]): [`SystemRunner`](crate::SystemRunner) validates
    /// it as UTF-8 while it captures it. The default is `output` (the text
    /// is then validated once, when the run has ended); a runner that
    /// hands runs on to an inner runner may hand this on too.
    #[doc(hidden)]
    fn output_text<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<Output>> {
        self.output(cmd)
    }

    /// Starts `cmd` as a live process where `launch` says: every started
    /// run comes here — [`Group::start`](crate::Group::start),
    /// [`Command::start`], each stage of a [`Pipe`](crate::Pipe) and each
    /// run of a [`Supervisor`](crate::Supervisor). The default starts it
    /// for real (as [`SystemRunner`](crate::SystemRunner) does); a runner
    /// that records hands `launch` on to its inner runner, and a test
    /// double answers with a scripted process (`pkit::testing::Reply::start`,
    /// cargo feature `testing`).
    ///
    /// # Errors
    ///
    /// A start that fails: the errors of [`Group::start`](crate::Group::start)
    /// for a real start, or whatever a runner's own policy makes of it.
    fn start(&self, cmd: &Command, launch: Launch<'_>) -> Result<RunningProcess> {
        launch.start_real(&cmd.spec)
    }

    /// Whether this runner starts the real program and nothing else, so
    /// that a group's one-command verbs ([`Group::output`](crate::Group::output))
    /// may run the command past it. Only [`SystemRunner`](crate::SystemRunner)
    /// says so; leave the default.
    #[doc(hidden)]
    fn starts_real_only(&self) -> bool {
        false
    }

    /// `Some` for [`SystemRunner`](crate::SystemRunner) alone, with the
    /// mechanism it names: the verbs then run the command as it would,
    /// without the box of [`output`](Self::output). Leave the default.
    #[doc(hidden)]
    fn system_mechanism(&self) -> Option<Option<crate::sys::MechanismChoice>> {
        None
    }
}

impl fmt::Debug for Command {
    /// Shows the program and the shape of the command, never argument or
    /// environment values (they may hold secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("program", &self.spec.program)
            .field("args", &format_args!("[{} hidden]", self.spec.args.len()))
            .field(
                "env_changes",
                &format_args!("[{} hidden]", self.spec.env.len()),
            )
            .field("env_clear", &self.spec.env_clear)
            .field("current_dir_set", &self.spec.cwd.is_some())
            .field("stdout", &self.spec.stdout)
            .field("stderr", &self.spec.stderr)
            .field("timeout", &self.spec.timeout)
            .field("grace", &self.spec.grace)
            .field("timeout_signal", &self.spec.timeout_signal)
            .field("cancel_signal", &self.spec.run.cancel_signal)
            .field("cancel_grace", &self.spec.run.cancel_grace)
            .field("stream_lines", &self.spec.io.stream_lines)
            .field("retry", &self.retry)
            .field("log_name", &self.spec.log_name)
            .finish_non_exhaustive()
    }
}
