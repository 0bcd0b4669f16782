//! The blocking API: the same verbs and handles without `async`, for
//! programs (and threads) that have no Tokio runtime.
//!
//! ```
//! use pkit::Command;
//!
//! // From a plain `fn main`, no runtime, no `.await`.
//! let out = Command::new("sh").args(["-c", "echo hi; exit 3"]).blocking().output()?;
//! assert_eq!((out.code(), out.stdout_str().as_ref()), (Some(3), "hi\n"));
//! assert_eq!(Command::new("echo").arg("hello").blocking().run()?, "hello");
//!
//! let group = pkit::blocking::Group::new()?;
//! let mut p = group.start(&Command::new("sh").args(["-c", "echo a; echo b"]).stream_lines())?;
//! let lines: Vec<String> = p.lines().map(|l| l.text).collect();
//! assert_eq!(lines, ["a", "b"]);
//! # Ok::<(), pkit::Error>(())
//! ```
//!
//! # One engine
//!
//! The blocking API is the async implementation, driven to completion on
//! the calling thread. The I/O and timer drivers and pkit's background
//! tasks (the output readers, the reaper) run on one small internal Tokio
//! runtime: a current-thread runtime on a dedicated thread named
//! `pkit-blocking`, created the first time the blocking API is used and
//! kept for the life of the program. The calling thread polls its own
//! future (through [`Handle::block_on`](tokio::runtime::Handle::block_on)),
//! so nothing it borrows has to be `Send` or `'static` and any number of
//! threads can wait at once; the dedicated thread only dispatches wake-ups
//! and runs the short background tasks. One thread (rather than a
//! multi-thread runtime) is all that work needs, and it needs no more of
//! Tokio than the async API already does.
//!
//! The code of yours that a stream's reading calls — a line callback
//! ([`on_stdout_line`](crate::Command::on_stdout_line),
//! [`on_stderr_line`](crate::Command::on_stderr_line)), a tee's writer
//! (blocking or async), a [`decoder`](crate::Command::decoder) — does not
//! run on that shared thread: the reader of such a stream runs on a thread
//! of its own (`pkit-reader`, one per such stream of a run, for as long as
//! the stream is read; a thread whose stream ended waits up to a second
//! for the next such stream, and at most four wait), driving itself as the
//! calling threads do. A slow
//! or blocked callback therefore holds back only its own stream (a full
//! pipe stops its child's writes; the run's end waits for the callback to
//! return), never another run, another thread, or its own run's timeout,
//! which still kills the child on time. This holds for every blocking
//! entry point: the verbs, a started [`RunningProcess`], a [`Pty`], a
//! [`RunningPipe`], a [`Group`]'s starts, batches and supervisors. (Only
//! when no thread can be had, the process being at its limit, does such a
//! reader run on the shared thread; and a one-shot verb with no timeout
//! and a line callback on one stream only calls it on your own thread, see
//! below.)
//!
//! Still run on the shared thread, inside pkit's own tasks: async code of
//! yours that a task polls (a [`stdin_reader`](crate::Command::stdin_reader),
//! which must not block in `poll_read`), and the predicates a supervision
//! or a batch calls from its task (a supervisor's `stop_when`, its
//! readiness line predicate and check, the retry classifier of a run
//! inside [`output_all`]). Keep those fast; in the verbs you call
//! yourself, a [`first_line`](Verbs::first_line) or
//! [`wait_for_line`](RunningProcess::wait_for_line) predicate runs on your
//! own thread.
//!
//! One exception, for speed: on Linux (cgroup v2 or process group), a
//! one-shot verb (`output`, `run`, `exit_code`, `probe`, `status`) whose
//! run needs nothing driven (no cancel token, inactivity timeout, stdin
//! reader or larger input, pty, tee, decoder, fail-fast capture limit,
//! runner or retry policy of its own) is spawned by the same launch code
//! into the same private group, then waited for by the calling thread
//! alone, with `poll(2)` on the child's pipes and pidfd, as
//! `std::process::Command::output` waits. Its results, errors, timeouts
//! and log events are the engine's; the group's teardown is the engine's
//! own code (driven here, it waits only for a tree that outlived its main
//! process or timed out). Such a run's line callback, when it has no
//! [`timeout`](crate::Command::timeout) and a callback on one stream only,
//! is called on the calling thread too, between its reads, as a reader
//! thread would call it (the same lines, in order, a panicking callback
//! disabled, a blocking call of pkit's inside one refused): no
//! `pkit-reader` thread is involved. The run's other stream is read by the
//! same thread, so while the callback blocks, that stream's capture waits
//! too (never anything else). With a timeout, or callbacks on both
//! streams, the callbacks run on `pkit-reader` threads: the timeout still
//! fires while one blocks, and one stream's callback never holds back the
//! other's.
//!
//! Building the runtime takes a few file descriptors (two, or five with
//! Tokio's `signal` feature on) and a thread. A blocking call that needs it while the process has none to spare (at
//! `RLIMIT_NOFILE`, or unable to start a thread) returns
//! [`Error::Io`](crate::Error::Io) saying which of the two failed and why,
//! instead of panicking; the next call tries again, and once built the
//! runtime is kept.
//!
//! # Where it can be called
//!
//! From any thread that is not running a Tokio runtime: `main`, a
//! `std::thread`, a thread pool's worker. Called where a Tokio runtime is
//! current (an `async fn`, a task, a `spawn_blocking` closure, a thread
//! inside `Runtime::enter`), it panics with a message saying so: blocking
//! there would stall (or deadlock) that runtime. Use the async API there
//! (`.await`), or, in `spawn_blocking`,
//! `tokio::runtime::Handle::current().block_on(cmd.output())`.

crate::sys::with_direct_wait! {
    mod direct;
}
mod group;
#[cfg(feature = "json")]
mod json;
mod more;
mod pipe;
mod process;
mod pty;
mod runtime;
mod streams;

pub use group::{Group, SampleStats};
#[cfg(feature = "json")]
pub use json::JsonLines;
pub use more::{output_unordered, ClientVerbs, Completions, SupervisorHandle, SupervisorVerbs};
pub use pipe::RunningPipe;
pub use process::{wait_all, wait_any, RunningProcess};
pub use pty::{Pty, PtyMaster};
pub use streams::{ChildOutput, ChildStdin, Events, Lines, StreamLines};

pub(crate) use runtime::{block_on, block_on_made, enter, enter_for_drop, enter_made};

use crate::command::Command;
use crate::error::Result;
use crate::output::{Outcome, Output};
use crate::pipe::Pipe;

/// The blocking verbs of a [`Command`]: see [`Command::blocking`].
#[derive(Debug, Clone, Copy)]
#[must_use = "the blocking verbs do nothing until one is called"]
pub struct Verbs<'a> {
    cmd: &'a Command,
}

impl Command {
    /// The blocking form of this command's verbs, for code without a Tokio
    /// runtime: `cmd.blocking().output()`, `.run()`, `.exit_code()`,
    /// `.probe()`, `.status()`, `.start()`. Same results, same errors, same
    /// containment; see [`blocking`](crate::blocking) for where it can be
    /// called (it panics inside a runtime).
    pub fn blocking(&self) -> Verbs<'_> {
        Verbs { cmd: self }
    }
}

impl Verbs<'_> {
    /// [`Command::output`], blocking.
    ///
    /// # Errors
    ///
    /// Those of [`Command::output`](crate::Command::output).
    #[track_caller]
    pub fn output(self) -> Result<Output> {
        one_shot("output", self.cmd, false)
    }

    /// [`Command::run`], blocking.
    ///
    /// # Errors
    ///
    /// Those of [`Command::run`](crate::Command::run).
    #[track_caller]
    pub fn run(self) -> Result<String> {
        if self.cmd.retry.is_some() {
            return block_on("run", self.cmd.run());
        }
        let out = one_shot("run", self.cmd, true)?;
        crate::verbs::run(self.cmd.secret(out), self.cmd.ok())
    }

    /// [`Command::exit_code`], blocking.
    ///
    /// # Errors
    ///
    /// Those of [`Command::exit_code`](crate::Command::exit_code).
    #[track_caller]
    pub fn exit_code(self) -> Result<i32> {
        if self.cmd.retry.is_some() {
            return block_on("exit_code", self.cmd.exit_code());
        }
        let out = one_shot("exit_code", self.cmd, false)?;
        let ok = self.cmd.spec.io.ok_codes.as_deref();
        crate::verbs::exit_code(self.cmd.secret(out), ok)
    }

    /// [`Command::probe`], blocking.
    ///
    /// # Errors
    ///
    /// Those of [`Command::probe`](crate::Command::probe).
    #[track_caller]
    pub fn probe(self) -> Result<bool> {
        if self.cmd.retry.is_some() {
            return block_on("probe", self.cmd.probe());
        }
        let out = one_shot("probe", self.cmd, false)?;
        crate::verbs::probe(self.cmd.secret(out))
    }

    /// [`Command::status`], blocking: stdio inherited, the outcome back.
    ///
    /// # Errors
    ///
    /// Those of [`Command::status`](crate::Command::status).
    #[track_caller]
    pub fn status(self) -> Result<Outcome> {
        let cmd = self.cmd.for_status();
        Ok(one_shot("status", &cmd, false)?.outcome())
    }

    /// [`Command::parse`], blocking.
    ///
    /// # Errors
    ///
    /// Those of [`Command::parse`](crate::Command::parse).
    #[track_caller]
    pub fn parse<T>(self) -> Result<T>
    where
        T: std::str::FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        block_on("parse", self.cmd.parse())
    }

    /// [`Command::first_line`], blocking: the first matching stdout line,
    /// the run's tree gone when it returns.
    ///
    /// # Errors
    ///
    /// Those of [`Command::first_line`](crate::Command::first_line).
    #[track_caller]
    pub fn first_line(self, pred: impl FnMut(&str) -> bool) -> Result<Option<String>> {
        block_on("first_line", self.cmd.first_line(pred))
    }

    /// [`Command::start`], blocking: a live process owning a private
    /// kill-on-drop group.
    ///
    /// # Errors
    ///
    /// Those of [`Command::start`](crate::Command::start).
    #[track_caller]
    pub fn start(self) -> Result<RunningProcess> {
        enter("start", || self.cmd.start())?.map(RunningProcess::from_async)
    }
}

/// `cmd.output()`, blocking: the one-shot verbs' common run (on the
/// calling thread where that applies; see `direct.rs`).
#[track_caller]
#[allow(clippy::needless_return)] // one of the two returns is compiled
fn one_shot(what: &str, cmd: &Command, text: bool) -> Result<Output> {
    crate::sys::with_direct_wait! {
        return direct::output(what, cmd, text);
    }
    crate::sys::without_direct_wait! {
        return block_on(what, cmd.output_as(text));
    }
}

/// The blocking verbs of a [`Pipe`]: see [`Pipe::blocking`].
#[derive(Debug, Clone, Copy)]
#[must_use = "the blocking verbs do nothing until one is called"]
pub struct PipeVerbs<'a> {
    pipe: &'a Pipe,
}

impl Pipe {
    /// The blocking form of this pipeline's verbs (see
    /// [`blocking`](crate::blocking)).
    pub fn blocking(&self) -> PipeVerbs<'_> {
        PipeVerbs { pipe: self }
    }
}

impl PipeVerbs<'_> {
    /// [`Pipe::output`], blocking.
    ///
    /// # Errors
    ///
    /// Those of [`Pipe::output`](crate::Pipe::output).
    #[track_caller]
    pub fn output(self) -> Result<Output> {
        block_on("output", self.pipe.output())
    }

    /// [`Pipe::run`], blocking.
    ///
    /// # Errors
    ///
    /// Those of [`Pipe::run`](crate::Pipe::run).
    #[track_caller]
    pub fn run(self) -> Result<String> {
        block_on("run", self.pipe.run())
    }

    /// [`Pipe::exit_code`], blocking.
    ///
    /// # Errors
    ///
    /// Those of [`Pipe::exit_code`](crate::Pipe::exit_code).
    #[track_caller]
    pub fn exit_code(self) -> Result<i32> {
        block_on("exit_code", self.pipe.exit_code())
    }

    /// [`Pipe::probe`], blocking.
    ///
    /// # Errors
    ///
    /// Those of [`Pipe::probe`](crate::Pipe::probe).
    #[track_caller]
    pub fn probe(self) -> Result<bool> {
        block_on("probe", self.pipe.probe())
    }

    /// [`Pipe::start`], blocking: a live chain whose handle kills every
    /// stage when it drops.
    ///
    /// # Errors
    ///
    /// Those of [`Pipe::start`](crate::Pipe::start).
    #[track_caller]
    pub fn start(self) -> Result<RunningPipe> {
        enter("Pipe::start", || self.pipe.start())?.map(RunningPipe::from_async)
    }
}

/// [`output_all`](crate::output_all), blocking: runs the commands, at most
/// `concurrency` at a time, and returns their results in input order.
///
/// When pkit's internal runtime can't be built (the process is out of
/// file descriptors or threads), nothing runs and each command's result
/// is that [`Error::Io`](crate::Error::Io).
#[track_caller]
pub fn output_all(
    commands: impl IntoIterator<Item = Command>,
    concurrency: usize,
) -> Vec<Result<Output>> {
    let commands: Vec<Command> = commands.into_iter().collect();
    let len = commands.len();
    let all: Result<Vec<Result<Output>>> = block_on("output_all", async move {
        Ok(crate::output_all(commands, concurrency).await)
    });
    all.unwrap_or_else(|e| (0..len).map(|_| Err(runtime::again(&e))).collect())
}
