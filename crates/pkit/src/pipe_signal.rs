//! Signalling a started pipeline from an async caller:
//! [`RunningPipe::kill_async`] and [`RunningPipe::signal_async`], the sync
//! [`RunningPipe::kill`] and [`RunningPipe::signal`] with the group's
//! freeze awaited (see [`Group::signal_async`](crate::Group::signal_async)),
//! and the rule all four share: nothing once the chain has ended.

use std::sync::atomic::Ordering;

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
        // The chain is stopped just ahead of the kill, as `kill` stops
        // it: not while the kill waits for the freeze, when a stage that
        // fails must still cut what feeds it, and a dropped kill (which
        // sends nothing) must leave no stop behind.
        let stopped = &self.stopped;
        let sent = (self.group)
            .kill_async_then(|| stopped.store(true, Ordering::Relaxed))
            .await;
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
