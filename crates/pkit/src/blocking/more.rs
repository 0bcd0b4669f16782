//! The blocking forms of the batch stream, [`CliClient`] and
//! [`Supervisor`].

use std::ffi::OsStr;
use std::fmt;

use super::runtime::again;
use super::{block_on, block_on_made, enter, enter_for_drop};
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
    let commands: Vec<Command> = commands.into_iter().collect();
    let len = commands.len();
    match enter("output_unordered", || {
        crate::output_unordered(commands, concurrency)
    }) {
        Ok(inner) => Completions {
            inner: Some(inner),
            refused: Vec::new(),
            len,
        },
        // Nothing ran: each command's result is the error, in order.
        Err(e) => Completions {
            inner: None,
            refused: (0..len).rev().map(|i| (i, Err(again(&e)))).collect(),
            len,
        },
    }
}

/// The results of [`output_unordered`], in completion order, as an
/// [`Iterator`].
///
/// When pkit's internal runtime can't be built (the process is out of
/// file descriptors or threads), nothing runs and each command's result
/// is that [`Error::Io`](crate::Error::Io).
pub struct Completions {
    inner: Option<crate::Completions>,
    /// Each command's result when nothing could run, last first.
    refused: Vec<(usize, Result<Output>)>,
    len: usize,
}

impl Completions {
    /// How many commands the batch has in all.
    pub fn len(&self) -> usize {
        self.len
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
        match self.inner.as_mut() {
            Some(inner) => block_on_made("Completions::next", inner.next()),
            None => self.refused.pop(),
        }
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
    ///
    /// When pkit's internal runtime can't be built (the process is out of
    /// file descriptors or threads), nothing starts: the handle has no
    /// events, and [`wait`](SupervisorHandle::wait) and
    /// [`stop`](SupervisorHandle::stop) return that
    /// [`Error::Io`](crate::Error::Io).
    #[track_caller]
    pub fn start(self) -> SupervisorHandle {
        match enter("Supervisor::start", || self.supervisor.start()) {
            Ok(inner) => SupervisorHandle {
                inner: Some(inner),
                refused: None,
            },
            Err(e) => SupervisorHandle {
                inner: None,
                refused: Some(e),
            },
        }
    }
}

/// A running supervision for blocking code ([`crate::SupervisorHandle`]).
pub struct SupervisorHandle {
    inner: Option<crate::SupervisorHandle>,
    /// Why nothing started (the runtime could not be built).
    refused: Option<crate::Error>,
}

impl SupervisorHandle {
    /// The supervision, or why there is none.
    fn take(&mut self) -> Result<crate::SupervisorHandle> {
        match self.refused.take() {
            Some(e) => Err(e),
            None => Ok(self.inner.take().expect("present until consumed")),
        }
    }

    /// The next event, in order; `None` once the supervision has ended and
    /// every event was read ([`crate::SupervisorHandle::next_event`]).
    #[track_caller]
    pub fn next_event(&mut self) -> Option<SupervisorEvent> {
        let inner = self.inner.as_mut()?;
        block_on_made("SupervisorHandle::next_event", inner.next_event())
    }

    /// How many events were dropped unread because
    /// [`EVENT_BUFFER`](crate::EVENT_BUFFER) of them were waiting already
    /// ([`crate::SupervisorHandle::events_dropped`]); 0 once the handle
    /// was consumed or when nothing started.
    pub fn events_dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, crate::SupervisorHandle::events_dropped)
    }

    /// Asks for a graceful stop and returns at once, keeping the handle
    /// ([`crate::SupervisorHandle::request_stop`]): read the rest of the
    /// events, then [`wait`](Self::wait).
    pub fn request_stop(&self) {
        if let Some(inner) = &self.inner {
            inner.request_stop();
        }
    }

    /// Sends `signal` to the current run's program and returns its pid;
    /// `Ok(None)` when no run is going on
    /// ([`crate::SupervisorHandle::signal_program`]), and once the handle
    /// was consumed or when nothing started. Never blocks.
    ///
    /// # Errors
    ///
    /// Those of [`SupervisorHandle::signal_program`](crate::SupervisorHandle::signal_program).
    #[doc(alias = "signal")]
    #[doc(alias = "kill")]
    pub fn signal_program(&self, signal: crate::Signal) -> Result<Option<u32>> {
        match &self.inner {
            Some(inner) => inner.signal_program(signal),
            None => Ok(None),
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
        let inner = self.take()?;
        block_on_made("SupervisorHandle::stop", inner.stop())
    }

    /// Waits for the supervision to end by itself
    /// ([`crate::SupervisorHandle::wait`]).
    ///
    /// # Errors
    ///
    /// Those of [`SupervisorHandle::wait`](crate::SupervisorHandle::wait).
    #[track_caller]
    pub fn wait(mut self) -> Result<SupervisionOutcome> {
        let inner = self.take()?;
        block_on_made("SupervisorHandle::wait", inner.wait())
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
