//! What an end of a process group's subtree sent its first signal to,
//! for an end resumed after its task went with its runtime (see
//! `ProcTree::end_after`).

#[cfg(target_os = "linux")]
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// The members of a process group's subtree that an end's first signal
/// went to, kept until that end has sent its SIGKILL: an end resumed after
/// its task went with its runtime (`ProcTree::end_after`) waits for and
/// kills these too, which the parent links no longer lead to once their
/// parent has exited (a descendant that ignored the signal its parent
/// exited at).
#[derive(Debug, Default)]
pub(crate) struct Signalled(std::sync::Mutex<Option<Arc<Reached>>>);

/// What one end's first signal went to (see [`Signalled`]).
#[derive(Debug)]
pub(super) struct Reached {
    /// By number (the portable backend's way, and where not every pidfd
    /// could be had).
    pub pids: Vec<i32>,
    /// Through pidfds (Linux's native process group).
    #[cfg(target_os = "linux")]
    pub fds: Vec<OwnedFd>,
}

impl Reached {
    /// `pids`, reached by number.
    pub(super) fn by_number(pids: Vec<i32>) -> Reached {
        Reached {
            pids,
            #[cfg(target_os = "linux")]
            fds: Vec::new(),
        }
    }
}

impl Signalled {
    /// Notes `reached` as the end under way's (the last one begun wins).
    pub(super) fn note(&self, reached: &Arc<Reached>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(reached.clone());
    }

    /// What the end under way's first signal went to, if an end is under
    /// way.
    pub(super) fn get(&self) -> Option<Arc<Reached>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets `reached` once its end is over (unless a later end's
    /// replaced it).
    pub(super) fn forget(&self, reached: &Arc<Reached>) {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if held.as_ref().is_some_and(|r| Arc::ptr_eq(r, reached)) {
            *held = None;
        }
    }
}
