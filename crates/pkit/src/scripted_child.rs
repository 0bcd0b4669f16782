//! [`ScriptedChild`] (feature `testing`): the process a started scripted
//! reply plays, as a [`RunningProcess`](crate::RunningProcess) waits on it
//! and signals it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::output::Outcome;
use crate::sys::{ExitStatus, Signal};

/// Scripted pids start here: above any `pid_max` (at most 2^22), below
/// `i32::MAX`, so a scripted pid never names a real process and never
/// turns into a process group (a negative number) when signalled.
const FIRST_PID: u32 = 2_000_000_000;

static NEXT_PID: AtomicU32 = AtomicU32::new(FIRST_PID);

/// A fresh scripted pid.
pub(crate) fn next_pid() -> u32 {
    NEXT_PID.fetch_add(1, Ordering::Relaxed)
}

/// Whether `sig`'s default action ends a process: not 0, SIGCHLD,
/// SIGCONT, SIGURG, SIGWINCH or the stop signals.
pub(crate) fn terminates(sig: i32) -> bool {
    use crate::sys::signum::{
        SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH,
    };
    let harmless = [
        0, SIGCHLD, SIGCONT, SIGURG, SIGWINCH, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU,
    ];
    !harmless.contains(&sig)
}

/// Why a scripted process ended other than by its script.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cut {
    TimedOut { idle: bool },
    Cancelled,
}

/// The process a started [`Reply`](super::Reply) plays.
#[derive(Debug)]
pub(crate) struct ScriptedChild {
    pub(crate) status: watch::Sender<Option<ExitStatus>>,
    /// A terminating signal sent to it.
    pub(crate) kill: watch::Sender<Option<i32>>,
    pub(crate) cut: Mutex<Option<Cut>>,
}

impl ScriptedChild {
    pub(crate) fn new() -> ScriptedChild {
        ScriptedChild {
            status: watch::Sender::new(None),
            kill: watch::Sender::new(None),
            cut: Mutex::new(None),
        }
    }

    pub(crate) async fn wait(&self) -> ExitStatus {
        let mut rx = self.status.subscribe();
        let status = rx
            .wait_for(Option::is_some)
            .await
            .map(|s| *s)
            .ok()
            .flatten();
        // The sender lives as long as `self`: the wait ends with a status.
        status.unwrap_or(ExitStatus::Signalled(Signal::Kill.as_raw()))
    }

    pub(crate) fn try_status(&self) -> Option<ExitStatus> {
        *self.status.borrow()
    }

    /// A signal whose default action ends a process ends it; the others
    /// (0, SIGCHLD, SIGCONT, SIGURG, SIGWINCH, the stop signals) do nothing.
    pub(crate) fn signal(&self, sig: i32) {
        if self.try_status().is_none() && terminates(sig) {
            self.kill.send_if_modified(|k| {
                let first = k.is_none();
                k.get_or_insert(sig);
                first
            });
        }
    }

    pub(crate) fn reported(&self, program: &str, exited: Outcome) -> Result<(Outcome, bool)> {
        match *self.cut.lock().unwrap_or_else(|e| e.into_inner()) {
            None => Ok((exited, false)),
            Some(Cut::TimedOut { idle }) => Ok((Outcome::TimedOut, idle)),
            Some(Cut::Cancelled) => Err(Error::Cancelled {
                program: program.to_string(),
            }),
        }
    }
}
