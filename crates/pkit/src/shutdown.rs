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
    /// How many processes were sent SIGTERM (on Windows: were in the job
    /// when the CTRL_BREAKs were sent; none when no break could be sent).
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

    /// How long the shutdown took, removal included.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}
