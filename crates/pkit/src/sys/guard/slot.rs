//! Where a guard is kept once started ([`Slot`]), safe for forked copies.
//!
//! A guard's start takes milliseconds (a process started and handshaken),
//! and the first groups of the owner's other threads wait for it. A copy
//! forked (plain `fork`, supported) while a thread of its parent starts
//! one must not wait for that start: the starting thread is not in the
//! copy. Behind a `std::sync::Mutex` held across the start, such a copy
//! waited at its own first group for ever.
//!
//! So the slot's lock is a [`CopyLock`], which such a copy takes over,
//! and it starts a guard of its own, as a copy forked before any start
//! does. The started guard is a pointer set once under the lock, no
//! `Once`, which a copy forked while it is being set would wait on for
//! ever too.

use std::time::Instant;

use super::Guard;
use crate::sys::{CopyLock, Leaked};

/// How long after a failed start of a guard the next group tries again.
pub(super) const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) struct Slot {
    /// The started guard (set once, under the lock).
    started: Leaked<Guard>,
    /// When and why the last start failed.
    failed: CopyLock<Option<(Instant, String)>>,
}

impl Slot {
    pub(super) const fn new() -> Slot {
        Slot {
            started: Leaked::new(),
            failed: CopyLock::new(None),
        }
    }

    /// The started guard, if any (whichever process started it).
    pub(super) fn started(&self) -> Option<&'static Guard> {
        self.started.get()
    }

    /// The guard, started by `start` if none is yet (and the last failed
    /// start is not too recent).
    pub(super) fn get_or_start(
        &'static self,
        start: impl FnOnce() -> Result<Guard, String>,
    ) -> Result<&'static Guard, String> {
        if let Some(g) = self.started() {
            return owned(g);
        }
        let mut failed = self.failed.lock();
        if let Some(g) = self.started() {
            return owned(g);
        }
        if let Some((at, why)) = &*failed {
            if at.elapsed() < RETRY_AFTER {
                return Err(why.clone());
            }
        }
        match announce(start()) {
            Err(why) => {
                *failed = Some((Instant::now(), why.clone()));
                Err(why)
            }
            Ok(g) => {
                *failed = None;
                owned(self.started.set(g))
            }
        }
    }

    /// The guard, or why the last start failed; `None` before any start.
    pub(super) fn get(&self) -> Option<Result<&'static Guard, String>> {
        if let Some(g) = self.started() {
            return Some(Ok(g));
        }
        let failed = self.failed.lock();
        failed.as_ref().map(|(_, why)| Err(why.clone()))
    }
}

/// Logs how a guard's start went.
fn announce(r: Result<Guard, String>) -> Result<Guard, String> {
    match &r {
        Ok(g) => tracing::debug!(target: "pkit", pid = g.pid, "owner-death guard started"),
        Err(why) => tracing::warn!(
            target: "pkit",
            reason = %why,
            "no owner-death guard: groups will not outlive a killed owner's teardown"
        ),
    }
    r
}

/// The guard, if this process is the one that started it.
fn owned(g: &'static Guard) -> Result<&'static Guard, String> {
    if g.owner.is_here() {
        Ok(g)
    } else {
        Err(format!(
            "this process is a fork of pkit process {} and can't share its owner-death guard",
            g.owner.pid()
        ))
    }
}
