//! The run a supervision has going, as its handle sees it: what
//! [`SupervisorHandle::signal_program`](super::SupervisorHandle::signal_program)
//! signals. The supervising task records each run's program here as it
//! starts (before its `Started` event) and takes it back once the run's
//! exit is collected (before its `Exited` event); a signal goes through
//! the library's own handle on the process (a pidfd, or the unreaped
//! child's number), never through a pid an event reported.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::child::Child;
use crate::error::{Error, Result};
use crate::sys::{Mechanism, Signal};

/// The current run's program, if a run is going on.
#[derive(Default)]
pub(super) struct CurrentRun(Mutex<Option<Program>>);

struct Program {
    pid: u32,
    child: Child,
    name: String,
    mechanism: Mechanism,
}

impl fmt::Debug for CurrentRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pid = self.lock().as_ref().map(|p| p.pid);
        f.debug_struct("CurrentRun").field("pid", &pid).finish()
    }
}

/// Takes the run back from its [`CurrentRun`] when dropped (the run's exit
/// was collected, or the task ended or was aborted on the way).
pub(super) struct Recorded(Arc<CurrentRun>);

impl Drop for Recorded {
    fn drop(&mut self) {
        *self.0.lock() = None;
    }
}

impl CurrentRun {
    fn lock(&self) -> MutexGuard<'_, Option<Program>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the run whose program `child` (`pid`) was just started; it
    /// is the current run until the returned guard drops.
    pub(super) fn record(
        self: &Arc<Self>,
        pid: u32,
        child: Child,
        name: &str,
        mechanism: Mechanism,
    ) -> Recorded {
        *self.lock() = Some(Program {
            pid,
            child,
            name: name.to_string(),
            mechanism,
        });
        Recorded(self.clone())
    }

    /// Sends `signal` to the current run's program; its pid, or `None`
    /// when there is no run, or its program has exited (reaped or not).
    /// The lock is held through the send, so the run can't be taken back
    /// meanwhile; the send itself can't reach a reused pid (see
    /// `Child::signal`).
    pub(super) fn signal(&self, signal: Signal) -> Result<Option<u32>> {
        let current = self.lock();
        let Some(p) = current.as_ref() else {
            return Ok(None);
        };
        let io = |e: std::io::Error| Error::io(format!("{}: signal_program", p.name), e);
        // Exited: no longer anyone's program, whether or not its exit was
        // reported yet.
        if p.child.try_status().map_err(io)?.is_some() {
            return Ok(None);
        }
        p.child.signal(signal.as_raw()).map_err(|e| {
            if e.kind() == std::io::ErrorKind::Unsupported {
                // Windows: no such signal, or no console for the break.
                return Error::Unsupported {
                    operation: "signal_program",
                    mechanism: p.mechanism,
                    reason: e.to_string(),
                };
            }
            io(e)
        })?;
        Ok(Some(p.pid))
    }
}
