//! The blocking handle of a started pipeline: [`RunningPipe`].

use std::fmt;
use std::time::Duration;

use super::streams::{ChildStdin, Lines};
use super::{block_on, enter_for_drop};
use crate::error::Result;
use crate::output::Output;
use crate::pump::Line;
use crate::sys::{Mechanism, Signal};

/// A started pipeline for blocking code ([`crate::RunningPipe`]), from
/// [`PipeVerbs::start`](super::PipeVerbs::start): the last stage's stdout
/// lines as an [`Iterator`], the head's stdin as a [`std::io::Write`],
/// methods that block instead of returning futures. Dropping it kills
/// every stage and all they spawned.
///
/// ```
/// use std::time::Duration;
/// use pkit::{Command, Pipe};
///
/// let mut p = Pipe::new([
///     Command::new("sh").args(["-c", "echo one; echo two; echo three"]),
///     Command::new("tr").args(["a-z", "A-Z"]),
///     Command::new("cat"),
/// ])
/// .stream_lines()
/// .blocking()
/// .start()?;
/// let lines: Vec<String> = p.lines().map(|l| l.text).collect();
/// assert_eq!(lines, ["ONE", "TWO", "THREE"]);
/// assert!(p.wait()?.success());
/// # Ok::<(), pkit::Error>(())
/// ```
pub struct RunningPipe {
    inner: Option<crate::RunningPipe>,
}

impl RunningPipe {
    pub(crate) fn from_async(p: crate::RunningPipe) -> RunningPipe {
        RunningPipe { inner: Some(p) }
    }

    fn get(&self) -> &crate::RunningPipe {
        self.inner.as_ref().expect("present until drop")
    }

    fn get_mut(&mut self) -> &mut crate::RunningPipe {
        self.inner.as_mut().expect("present until drop")
    }

    /// The async handle this one wraps (for its read-only accessors).
    pub fn as_async(&self) -> &crate::RunningPipe {
        self.get()
    }

    /// The stages' process ids, head first.
    pub fn pids(&self) -> Vec<u32> {
        self.get().pids()
    }

    /// The mechanism containing the chain.
    pub fn mechanism(&self) -> Mechanism {
        self.get().mechanism()
    }

    /// Whether a stage is still running.
    pub fn is_running(&self) -> bool {
        self.get().is_running()
    }

    /// The last stage's stdout lines as an [`Iterator`] (needs
    /// [`Pipe::stream_lines`](crate::Pipe::stream_lines); see
    /// [`crate::RunningPipe::lines`]).
    pub fn lines(&mut self) -> Lines {
        Lines {
            inner: Some(self.get_mut().lines()),
        }
    }

    /// Waits until a line of the last stage's stdout satisfies `pred`
    /// ([`crate::RunningPipe::wait_for_line`]).
    ///
    /// # Errors
    ///
    /// Those of [`RunningPipe::wait_for_line`](crate::RunningPipe::wait_for_line).
    #[track_caller]
    pub fn wait_for_line(
        &mut self,
        pred: impl FnMut(&Line) -> bool,
        timeout: Duration,
    ) -> Result<Line> {
        block_on(
            "RunningPipe::wait_for_line",
            self.get_mut().wait_for_line(pred, timeout),
        )
    }

    /// Lines dropped while nobody read the stream.
    pub fn dropped_lines(&self) -> u64 {
        self.get().dropped_lines()
    }

    /// Takes the head's stdin (needs [`Pipe::stdin_piped`](crate::Pipe::stdin_piped)),
    /// as a [`std::io::Write`]; dropping it closes the pipe.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.get_mut()
            .take_stdin()
            .map(|s| ChildStdin { inner: Some(s) })
    }

    /// SIGKILL to every stage and all they spawned
    /// ([`crate::RunningPipe::kill`]).
    ///
    /// # Errors
    ///
    /// Those of [`RunningPipe::kill`](crate::RunningPipe::kill).
    pub fn kill(&self) -> Result<()> {
        self.get().kill()
    }

    /// `signal` to every stage and all they spawned
    /// ([`crate::RunningPipe::signal`]); a stage that ends of it cuts no
    /// other short.
    ///
    /// # Errors
    ///
    /// Those of [`RunningPipe::signal`](crate::RunningPipe::signal).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        self.get().signal(signal)
    }

    /// SIGTERM, `grace`, SIGKILL to the whole chain
    /// ([`crate::RunningPipe::shutdown`]).
    ///
    /// # Errors
    ///
    /// Those of [`RunningPipe::shutdown`](crate::RunningPipe::shutdown).
    #[track_caller]
    pub fn shutdown(&self, grace: Duration) -> Result<bool> {
        block_on("RunningPipe::shutdown", self.get().shutdown(grace))
    }

    /// Waits for every stage and returns their folded result
    /// ([`crate::RunningPipe::wait`]).
    ///
    /// # Errors
    ///
    /// Those of [`RunningPipe::wait`](crate::RunningPipe::wait).
    #[track_caller]
    pub fn wait(&mut self) -> Result<Output> {
        block_on("RunningPipe::wait", self.get_mut().wait())
    }
}

impl Drop for RunningPipe {
    /// Kills the whole chain, as the async handle's drop does.
    fn drop(&mut self) {
        enter_for_drop(self.inner.take());
    }
}

impl fmt::Debug for RunningPipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::RunningPipe")
            .field(&self.inner)
            .finish()
    }
}
