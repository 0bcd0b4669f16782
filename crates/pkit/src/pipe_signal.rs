//! Signalling a started pipeline from an async caller:
//! [`RunningPipe::kill_async`] and [`RunningPipe::signal_async`], the sync
//! [`RunningPipe::kill`] and [`RunningPipe::signal`] with the group's
//! freeze awaited (see [`Group::signal_async`](crate::Group::signal_async)),
//! and the rules all four share: nothing once the chain has ended, and
//! a stage that ends of the caller's own signal cuts no other short.

use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::pipe_started::RunningPipe;
use crate::sys::Signal;

impl RunningPipe {
    /// Sends `signal` to every stage and everything they spawned (see
    /// [`Group::signal`](crate::Group::signal)). Does nothing once the
    /// chain has ended.
    ///
    /// Every stage gets the signal and handles it its own way, so a stage
    /// that ends of it is no failure that cuts the stages feeding it short
    /// (see [`Pipe`](crate::Pipe)): after `signal(Signal::Term)`, a stage
    /// whose trap cleans up before it exits is not killed because the
    /// stage it feeds died of the SIGTERM at once, and no stage is counted
    /// as cut short for it. A stage ends of the signal when it dies of it,
    /// or exits 128 plus its number, as a shell reports such a death and
    /// as a program that caught it says it (a trap's `exit 143`, a JVM's
    /// shutdown); on Windows, where `Term` and `Int` go as a CTRL_BREAK,
    /// also with the exit of a console program's default break handler
    /// (`STATUS_CONTROL_C_EXIT`). Any such end after the signal was sent
    /// counts, whoever sent that signal too. A stage that ends otherwise
    /// (`exit 1`, a trap's `exit 3`) or dies of a signal the caller did not
    /// send still cuts the stages before it short, as does one that fails
    /// after a signal that ended nothing (`Stop`, `Cont`, a `Usr1` the
    /// stages handle). The stages' own results, and the chain's folded
    /// one, are what they ended with.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use pkit::{Command, Outcome, Pipe, Signal};
    ///
    /// // The head cleans up on SIGTERM; cat dies of it at once.
    /// let head = "trap 'sleep 0.2; exit 3' TERM; echo up; while :; do sleep 0.05; done";
    /// let mut chain = Pipe::new([Command::new("sh").args(["-c", head]), Command::new("cat")])
    ///     .stream_lines()
    ///     .start()?;
    /// chain.wait_for_line(|l| l.text == "up", std::time::Duration::from_secs(30)).await?;
    /// chain.signal(Signal::Term)?;
    /// let out = chain.wait().await?;
    /// assert_eq!(out.stages()[0].outcome(), Outcome::Exited(3)); // not cut short
    /// assert_eq!(out.stages()[1].outcome(), Outcome::Signalled(15));
    /// # Ok(()) }
    /// # #[cfg(unix)]
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`Group::signal`](crate::Group::signal).
    ///
    /// # Blocking
    ///
    /// As [`Group::signal`](crate::Group::signal)'s: up to 5 s under cgroup v2.
    /// An async caller awaits [`signal_async`](Self::signal_async) instead.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        // Recorded before the pass: the driver can't see a stage's end of
        // it first.
        self.sent.record(signal);
        self.unless_over(|| self.group.signal(signal))
    }

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
    /// A stage that ends of the signal cuts no other short, as for
    /// `signal`. Dropped while it waits for the freeze, nothing was sent,
    /// and the chain's rules are as before (a stage that ends of that
    /// signal still cuts the stages that feed it, unless it was sent
    /// before).
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
        // Recorded just ahead of the send, after the freeze's wait (as
        // `kill_async` stops the chain): a send dropped in its wait
        // records nothing, and takes back no other caller's record.
        let record = &self.sent;
        let sent = (self.group)
            .signal_async_then(signal, || record.record(signal))
            .await;
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
