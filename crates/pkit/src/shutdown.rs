//! [`ShutdownReport`]: what a group's graceful shutdown did.

use std::time::Duration;

/// What [`Group::shutdown`](crate::Group::shutdown) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    pub(crate) signalled: usize,
    pub(crate) exited_in_grace: usize,
    pub(crate) killed: usize,
    pub(crate) elapsed: Duration,
}

impl ShutdownReport {
    /// How many processes were in the group when SIGTERM was sent (under
    /// cgroup v2, a nested pkit's groups among them, which got it relayed
    /// through their owner: see [`Group::signal`](crate::Group::signal));
    /// on Windows: were in the job when the CTRL_BREAKs were sent; none
    /// when no break could be sent.
    pub fn signalled(&self) -> usize {
        self.signalled
    }

    /// How many of them exited within the grace period.
    pub fn exited_in_grace(&self) -> usize {
        self.exited_in_grace
    }

    /// How many were still alive after the grace and were killed, plus
    /// those killed at once because the signal could not be sent at all
    /// (Windows without a console to send a break through).
    pub fn killed(&self) -> usize {
        self.killed
    }

    /// Whether any process that got the signal outlived the grace and was
    /// killed (not counting those killed at once, unsignalled: Windows).
    pub(crate) fn outlived_grace(&self) -> bool {
        self.signalled > self.exited_in_grace
    }

    /// How long the shutdown took, removal included.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}
