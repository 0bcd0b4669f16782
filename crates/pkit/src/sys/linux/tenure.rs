//! Whether a cgroup directory is still its group's.
//!
//! An emptied group's directory may go to the pool of spares (see
//! [`cgroup_pool`](super::cgroup_pool)), where the next group takes it. From
//! then on the old group's handles (the group itself once closed, a started
//! process's subtree, a timeout's watcher still running) must never act on
//! it: a signal or freeze through its path would reach the next group's
//! processes. Everything that acts on the directory for a group runs inside
//! [`Tenure::during`]; the hand-over ([`Tenure::hand_on`]) waits for those
//! under way and makes every later one do nothing.

use std::io;
use std::sync::RwLock;

/// One group's hold on its cgroup directory (see the module docs).
#[derive(Debug)]
pub(crate) struct Tenure {
    /// True while the directory is the group's.
    ours: RwLock<bool>,
}

impl Default for Tenure {
    fn default() -> Tenure {
        Tenure {
            ours: RwLock::new(true),
        }
    }
}

impl Tenure {
    /// Runs `act` if the directory is still the group's, and keeps it so
    /// until `act` returns; `None` (nothing run) once it was handed on.
    /// Never nest: a hand-over waiting between two reads would deadlock.
    pub(crate) fn during<T>(&self, act: impl FnOnce() -> T) -> Option<T> {
        let ours = self.ours.read().unwrap_or_else(|e| e.into_inner());
        (*ours).then(act)
    }

    /// [`during`](Self::during) for an act whose caller must hear that
    /// nothing was done: `NotFound` once the directory was handed on (the
    /// group is closed).
    pub(crate) fn during_or_closed<T>(&self, act: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        self.during(act).unwrap_or_else(|| {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the group is closed",
            ))
        })
    }

    /// Runs `decide` with no [`during`](Self::during) under way or
    /// beginning; if it returns true (the directory was handed on), the
    /// directory is the group's no more.
    pub(crate) fn hand_on(&self, decide: impl FnOnce() -> bool) -> bool {
        let mut ours = self.ours.write().unwrap_or_else(|e| e.into_inner());
        if !*ours {
            return false;
        }
        let handed = decide();
        if handed {
            *ours = false;
        }
        handed
    }
}
