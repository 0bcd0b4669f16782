//! How a cancelled run's tree is ended ([`Command::cancel_signal`],
//! [`Command::cancel_grace`]), and the inactivity bound
//! ([`Command::inactivity_timeout`]).

use std::time::Duration;

use crate::command::Command;
use crate::sys::Signal;

/// How a cancelled run ends its tree.
impl Command {
    /// The signal the whole tree gets when the run's
    /// [`cancel_token`](Self::cancel_token) is cancelled, before SIGKILL
    /// (by default a cancelled run's tree is SIGKILLed at once).
    ///
    /// The rule is the one [`timeout_signal`](Self::timeout_signal) and
    /// [`grace`](Self::grace) follow, with their cancellation twins:
    /// - neither set: SIGKILL at once (the default);
    /// - [`cancel_grace`](Self::cancel_grace) only: SIGTERM, then the
    ///   grace, then SIGKILL;
    /// - `cancel_signal` only: this signal, then
    ///   [`DEFAULT_TIMEOUT_GRACE`](crate::DEFAULT_TIMEOUT_GRACE) (10 s),
    ///   then SIGKILL;
    /// - both: this signal, then the grace, then SIGKILL.
    ///
    /// The verb (or [`RunningProcess::wait`](crate::RunningProcess::wait)
    /// for a started process, whose own subtree gets the signal) returns
    /// [`Error::Cancelled`](crate::Error::Cancelled) once the tree is gone.
    /// A [`timeout`](Self::timeout) whose deadline passes during the grace
    /// ends it at once (SIGKILL); the run stays cancelled (see
    /// [`cancel_token`](Self::cancel_token)).
    ///
    /// Only a cancel **token** gets the grace. Dropping a verb's future (or
    /// its group) cannot wait for anything: its tree is SIGKILLed at once,
    /// synchronously, as always.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use std::time::Duration;
    /// use pkit::{CancelToken, Command, Signal};
    ///
    /// let token = CancelToken::new();
    /// let cmd = Command::new("sh")
    ///     .args(["-c", "trap 'echo bye; exit 0' INT; sleep 300 & wait"])
    ///     .cancel_token(&token)
    ///     .cancel_signal(Signal::Int)
    ///     .cancel_grace(Duration::from_secs(5));
    /// let run = tokio::spawn(async move { cmd.output().await });
    /// tokio::time::sleep(Duration::from_millis(200)).await;
    /// token.cancel();
    /// assert!(run.await.unwrap().unwrap_err().is_cancelled());
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn cancel_signal(mut self, signal: Signal) -> Command {
        self.spec.run.cancel_signal = Some(signal);
        self
    }

    /// How long a cancelled run's tree gets after
    /// [`cancel_signal`](Self::cancel_signal) (SIGTERM unless set) before
    /// SIGKILL. Zero, without a cancel signal, is SIGKILL at once; the
    /// grace ends early once every process of the tree has exited;
    /// `Duration::MAX` waits without bound. Only a cancel token gets it:
    /// see [`cancel_signal`](Self::cancel_signal).
    pub fn cancel_grace(mut self, grace: Duration) -> Command {
        self.spec.run.cancel_grace = Some(grace);
        self
    }

    /// Ends the run when no output arrives for `idle`: the whole tree is
    /// ended as on a [`timeout`](Self::timeout) (with
    /// [`timeout_signal`](Self::timeout_signal) and [`grace`](Self::grace)),
    /// and the outcome is [`Outcome::TimedOut`](crate::Outcome::TimedOut)
    /// with [`Output::inactivity_timed_out`](crate::Output::inactivity_timed_out)
    /// true, which tells it from the overall timeout. (A new `Outcome`
    /// variant would break exhaustive matches; this does not.)
    ///
    /// Output is any byte read from the child's piped stdout or stderr
    /// (whoever consumes it: the capture, a line stream, a tee); the clock
    /// starts when the process starts. A command with neither stream piped
    /// has no output, so it ends after `idle`. For a started process
    /// ([`Group::start`](crate::Group::start)) its own subtree is ended and
    /// [`RunningProcess::wait`](crate::RunningProcess::wait) reports it.
    /// In a [`Pipe`](crate::Pipe) a stage's bound ends the whole chain when
    /// the chain shows no output (see there). `Duration::MAX` is no bound.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use std::time::Duration;
    /// use pkit::Command;
    ///
    /// let out = Command::new("sh")
    ///     .args(["-c", "echo working; sleep 300"])
    ///     .inactivity_timeout(Duration::from_millis(300))
    ///     .output()
    ///     .await?;
    /// assert!(out.timed_out() && out.inactivity_timed_out());
    /// assert_eq!(out.stdout_str(), "working\n");
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn inactivity_timeout(mut self, idle: Duration) -> Command {
        self.spec.run.inactivity = Some(idle);
        self
    }

    /// The inactivity timeout, if one is set.
    pub fn get_inactivity_timeout(&self) -> Option<Duration> {
        self.spec.run.inactivity
    }

    /// The signal sent on cancellation, if one is set.
    pub fn get_cancel_signal(&self) -> Option<Signal> {
        self.spec.run.cancel_signal
    }

    /// The grace given on cancellation, if one is set.
    pub fn get_cancel_grace(&self) -> Option<Duration> {
        self.spec.run.cancel_grace
    }
}
