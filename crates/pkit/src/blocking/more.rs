//! The blocking forms of the batch stream, [`CliClient`] and
//! [`Supervisor`].

use std::ffi::OsStr;
use std::fmt;

use super::{block_on, enter, enter_for_drop};
use crate::client::CliClient;
use crate::command::Command;
use crate::error::Result;
use crate::output::Output;
use crate::supervise::{SupervisionOutcome, Supervisor, SupervisorEvent};

/// [`output_unordered`](crate::output_unordered), blocking: the commands
/// run, at most `concurrency` at a time, and the returned [`Iterator`]
/// yields `(index, result)` pairs as each finishes. Dropping it cancels
/// the rest (their trees are killed).
///
/// ```
/// let cmds = (1..=3).map(|i| pkit::Command::new("echo").arg(i.to_string()));
/// let mut seen: Vec<usize> = pkit::blocking::output_unordered(cmds, 2).map(|(i, _)| i).collect();
/// seen.sort();
/// assert_eq!(seen, [0, 1, 2]);
/// ```
#[track_caller]
pub fn output_unordered(
    commands: impl IntoIterator<Item = Command>,
    concurrency: usize,
) -> Completions {
    let inner = enter("output_unordered", || {
        crate::output_unordered(commands, concurrency)
    });
    Completions { inner: Some(inner) }
}

/// The results of [`output_unordered`], in completion order, as an
/// [`Iterator`].
pub struct Completions {
    inner: Option<crate::Completions>,
}

impl Completions {
    /// How many commands the batch has in all.
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, crate::Completions::len)
    }

    /// Whether the batch has no commands.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Iterator for Completions {
    type Item = (usize, Result<Output>);

    #[track_caller]
    fn next(&mut self) -> Option<Self::Item> {
        let inner = self.inner.as_mut()?;
        block_on("Completions::next", inner.next())
    }
}

impl Drop for Completions {
    fn drop(&mut self) {
        enter_for_drop(self.inner.take());
    }
}

impl fmt::Debug for Completions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Completions")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// The blocking calls of a [`CliClient`]: see [`CliClient::blocking`].
#[derive(Debug, Clone, Copy)]
#[must_use = "the blocking verbs do nothing until one is called"]
pub struct ClientVerbs<'a> {
    client: &'a CliClient,
}

impl CliClient {
    /// The blocking form of this client's calls, for code without a Tokio
    /// runtime (see [`blocking`](crate::blocking)).
    ///
    /// ```
    /// let sh = pkit::CliClient::new("sh").arg("-c");
    /// assert_eq!(sh.blocking().run(["echo hi"])?, "hi");
    /// # Ok::<(), pkit::Error>(())
    /// ```
    pub fn blocking(&self) -> ClientVerbs<'_> {
        ClientVerbs { client: self }
    }
}

impl ClientVerbs<'_> {
    /// [`CliClient::output`], blocking.
    ///
    /// # Errors
    ///
    /// Those of [`CliClient::output`](crate::CliClient::output).
    #[track_caller]
    pub fn output<I, S>(self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        block_on("CliClient::output", self.client.output(args))
    }

    /// [`CliClient::run`], blocking.
    ///
    /// # Errors
    ///
    /// Those of [`CliClient::run`](crate::CliClient::run).
    #[track_caller]
    pub fn run<I, S>(self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        block_on("CliClient::run", self.client.run(args))
    }

    /// [`CliClient::exit_code`], blocking.
    ///
    /// # Errors
    ///
    /// Those of [`CliClient::exit_code`](crate::CliClient::exit_code).
    #[track_caller]
    pub fn exit_code<I, S>(self, args: I) -> Result<i32>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        block_on("CliClient::exit_code", self.client.exit_code(args))
    }

    /// [`CliClient::probe`], blocking.
    ///
    /// # Errors
    ///
    /// Those of [`CliClient::probe`](crate::CliClient::probe).
    #[track_caller]
    pub fn probe<I, S>(self, args: I) -> Result<bool>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        block_on("CliClient::probe", self.client.probe(args))
    }
}

/// The blocking form of a [`Supervisor`]: see [`Supervisor::blocking`].
#[derive(Debug)]
#[must_use = "a supervisor does nothing until run or started"]
pub struct SupervisorVerbs {
    supervisor: Supervisor,
}

impl Supervisor {
    /// The blocking form of this supervisor, for code without a Tokio
    /// runtime (see [`blocking`](crate::blocking)): `run()` supervises on
    /// the calling thread, `start()` in the background with a handle whose
    /// calls block.
    ///
    /// ```
    /// use pkit::{Command, StopReason, Supervisor};
    ///
    /// let outcome = Supervisor::new(Command::new("false"))
    ///     .max_restarts(2)
    ///     .backoff(std::time::Duration::from_millis(10), 1.0)
    ///     .blocking()
    ///     .run()?;
    /// assert_eq!(outcome.stopped, StopReason::RestartsExhausted);
    /// assert_eq!(outcome.restarts, 2);
    /// # Ok::<(), pkit::Error>(())
    /// ```
    pub fn blocking(self) -> SupervisorVerbs {
        SupervisorVerbs { supervisor: self }
    }
}

impl SupervisorVerbs {
    /// [`Supervisor::run`], blocking: supervises until a stop condition
    /// holds.
    ///
    /// # Errors
    ///
    /// Those of [`Supervisor::run`](crate::Supervisor::run).
    #[track_caller]
    pub fn run(self) -> Result<SupervisionOutcome> {
        block_on("Supervisor::run", self.supervisor.run())
    }

    /// [`Supervisor::start`], blocking: the supervision runs in the
    /// background (on pkit's internal runtime) and the handle's calls
    /// block. Dropping the handle ends the supervision, killing the current
    /// run's tree.
    #[track_caller]
    pub fn start(self) -> SupervisorHandle {
        let inner = enter("Supervisor::start", || self.supervisor.start());
        SupervisorHandle { inner: Some(inner) }
    }
}

/// A running supervision for blocking code ([`crate::SupervisorHandle`]).
pub struct SupervisorHandle {
    inner: Option<crate::SupervisorHandle>,
}

impl SupervisorHandle {
    fn take(&mut self) -> crate::SupervisorHandle {
        self.inner.take().expect("present until consumed")
    }

    /// The next event, in order; `None` once the supervision has ended and
    /// every event was read ([`crate::SupervisorHandle::next_event`]).
    #[track_caller]
    pub fn next_event(&mut self) -> Option<SupervisorEvent> {
        let inner = self.inner.as_mut().expect("present until consumed");
        block_on("SupervisorHandle::next_event", inner.next_event())
    }

    /// Asks for a graceful stop and returns at once, keeping the handle
    /// ([`crate::SupervisorHandle::request_stop`]): read the rest of the
    /// events, then [`wait`](Self::wait).
    pub fn request_stop(&self) {
        if let Some(inner) = &self.inner {
            inner.request_stop();
        }
    }

    /// Stops gracefully and returns the outcome
    /// ([`crate::SupervisorHandle::stop`]).
    ///
    /// # Errors
    ///
    /// Those of [`SupervisorHandle::stop`](crate::SupervisorHandle::stop).
    #[track_caller]
    pub fn stop(mut self) -> Result<SupervisionOutcome> {
        let inner = self.take();
        block_on("SupervisorHandle::stop", inner.stop())
    }

    /// Waits for the supervision to end by itself
    /// ([`crate::SupervisorHandle::wait`]).
    ///
    /// # Errors
    ///
    /// Those of [`SupervisorHandle::wait`](crate::SupervisorHandle::wait).
    #[track_caller]
    pub fn wait(mut self) -> Result<SupervisionOutcome> {
        let inner = self.take();
        block_on("SupervisorHandle::wait", inner.wait())
    }
}

impl Drop for SupervisorHandle {
    fn drop(&mut self) {
        enter_for_drop(self.inner.take());
    }
}

impl fmt::Debug for SupervisorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::SupervisorHandle")
            .finish_non_exhaustive()
    }
}
