//! Signalling a started pipeline from an async caller:
//! [`RunningPipe::kill_async`] and [`RunningPipe::signal_async`], the sync
//! [`RunningPipe::kill`] and [`RunningPipe::signal`] with the group's
//! freeze awaited (see [`Group::signal_async`](crate::Group::signal_async)),
//! and the rule all four share: nothing once the chain has ended.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Result;
use crate::pipe_started::RunningPipe;
use crate::sys::Signal;

impl RunningPipe {
    /// [`kill`](Self::kill), for an async caller: SIGKILL to every stage
    /// and everything they spawned, with the same errors. Does nothing
    /// once the chain has ended. The stages' results then show the
    /// signal; none of them counts as cut short. Under cgroup v2 the
    /// freeze before the pass is awaited, as
    /// [`Group::kill_async`](crate::Group::kill_async) awaits it, not
    /// waited for on the thread that polls this: a current-thread runtime
    /// runs its other tasks meanwhile (up to 5 s when a stage can't be
    /// frozen, after which the stages are killed anyway).
    ///
    /// Dropped while it waits for the freeze, nothing was sent, and the
    /// chain's rules are as before (a failed stage still cuts the stages
    /// that feed it).
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use pkit::{Command, Outcome, Pipe};
    ///
    /// let mut chain = Pipe::new([Command::new("sleep").arg("300"), Command::new("cat")]).start()?;
    /// chain.kill_async().await?; // both stages
    /// let out = chain.wait().await?;
    /// assert_eq!(out.stages()[0].outcome(), Outcome::Signalled(9));
    /// assert_eq!(out.stages()[1].outcome(), Outcome::Signalled(9));
    /// # Ok(()) }
    /// # #[cfg(unix)]
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`kill`](Self::kill)'s: [`Error::Io`](crate::Error::Io) when the
    /// OS refuses the kill.
    pub async fn kill_async(&self) -> Result<()> {
        if self.over() {
            return Ok(());
        }
        let stop = Stop::new(&self.stopped);
        let sent = self.group.kill_async().await;
        stop.keep();
        self.unless_ended(sent)
    }

    /// [`signal`](Self::signal), for an async caller: `signal` to every
    /// stage and everything they spawned (see
    /// [`Group::signal`](crate::Group::signal)), with the same errors.
    /// Does nothing once the chain has ended. Under cgroup v2 the freeze
    /// around the pass is awaited, as
    /// [`Group::signal_async`](crate::Group::signal_async) awaits it, not
    /// waited for on the thread that polls this (up to 5 s when a stage
    /// can't be frozen, after which the stages are signalled anyway).
    /// Dropped while it waits for the freeze, nothing was sent.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use pkit::{Command, Outcome, Pipe, Signal};
    ///
    /// let mut chain = Pipe::new([Command::new("sleep").arg("300"), Command::new("cat")]).start()?;
    /// chain.signal_async(Signal::Term).await?;
    /// let out = chain.wait().await?;
    /// assert_eq!(out.outcome(), Outcome::Signalled(15));
    /// # Ok(()) }
    /// # #[cfg(unix)]
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`signal`](Self::signal)'s: those of
    /// [`Group::signal`](crate::Group::signal).
    pub async fn signal_async(&self, signal: Signal) -> Result<()> {
        if self.over() {
            return Ok(());
        }
        let sent = self.group.signal_async(signal).await;
        self.unless_ended(sent)
    }

    /// `op` while the chain runs (the sync `kill` and `signal`); a failure
    /// because it just ended is none.
    pub(crate) fn unless_over(&self, op: impl FnOnce() -> Result<()>) -> Result<()> {
        if self.over() {
            return Ok(());
        }
        self.unless_ended(op())
    }

    /// `sent`, but for a failure because the chain just ended, which is
    /// none: the rule of every signal and kill of the chain.
    fn unless_ended(&self, sent: Result<()>) -> Result<()> {
        match sent {
            Err(_) if self.over() => Ok(()),
            other => other,
        }
    }
}

/// The caller's stop of the chain (`RunningPipe::stopped`): set for good
/// by a kill (sync, or async and sent) or a shutdown, and held for the
/// while by each [`RunningPipe::kill_async`] that waits to send its kill.
/// A dropped kill lets go of its hold only: it never undoes another's
/// stop (a "put back as it was" undid a kill or a shutdown that came
/// during the wait, and a kill_async waiting beside it then killed the
/// stages with the cut-short rule on).
#[derive(Default)]
pub(crate) struct Stopped(AtomicUsize);

/// [`Stopped`]'s bit for a stop for good; each hold adds [`HOLD`].
const FOR_GOOD: usize = 1;
const HOLD: usize = 2;

impl Stopped {
    /// The chain is stopped for good.
    pub(crate) fn set(&self) {
        self.0.fetch_or(FOR_GOOD, Ordering::AcqRel);
    }

    /// Whether the chain is stopped (for good, or by a kill on its way).
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Acquire) != 0
    }
}

/// A kill's hold on the chain's stop ([`Stopped`]), taken ahead of it as
/// `kill` sets its stop, and let go when dropped: the stop stays for good
/// if the kill was sent ([`Stop::keep`]), and is off once no hold nor
/// stop for good is left if not.
struct Stop<'a>(&'a Stopped);

impl<'a> Stop<'a> {
    fn new(stopped: &'a Stopped) -> Self {
        stopped.0.fetch_add(HOLD, Ordering::AcqRel);
        Stop(stopped)
    }

    /// The kill was sent: the stop stays (set before the hold goes).
    fn keep(self) {
        self.0.set();
    }
}

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(HOLD, Ordering::AcqRel);
    }
}
