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
use crate::sys::copy_lock::{CopyLock, Leaked};

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
            return super::owned(g);
        }
        let mut failed = self.failed.lock();
        if let Some(g) = self.started() {
            return super::owned(g);
        }
        if let Some((at, why)) = &*failed {
            if at.elapsed() < super::RETRY_AFTER {
                return Err(why.clone());
            }
        }
        match super::announce(start()) {
            Err(why) => {
                *failed = Some((Instant::now(), why.clone()));
                Err(why)
            }
            Ok(g) => {
                *failed = None;
                super::owned(self.started.set(g))
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
