//! Ending an emptied cgroup: to the pool of spares, or removed; and the
//! group's descriptors of it released once it is ended.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{subtree, Cgroup};
use crate::sys::guard::Ticket;

impl Cgroup {
    /// Ends an emptied cgroup: an empty, unfrozen cgroup that was never
    /// killed goes, with its guard registration `ticket`, to the pool of
    /// spare directories for the next group (else it is removed and the
    /// ticket handed back for the caller to unregister). `Err` hands the
    /// ticket back, touching nothing, when the cgroup is not empty (or
    /// can't be read): the caller kills and waits.
    ///
    /// The check and the hand-over are one step for everything acting on
    /// the directory for the group (see [`Tenure`](super::Tenure)): no
    /// adoption or freeze lands between them, and none after.
    pub(crate) fn retire_if_empty(
        &self,
        ticket: Option<Ticket>,
    ) -> Result<Option<Ticket>, Option<Ticket>> {
        if self.is_removed() {
            return Ok(ticket);
        }
        let mut ticket = ticket;
        let mut busy = false;
        let pooled = self.tenure.hand_on(|| {
            match self.read_kept_events() {
                Ok(ev) if !ev.populated && !ev.frozen => {}
                _ => {
                    busy = true;
                    return false;
                }
            }
            // Never reuse a killed cgroup: on Linux 6.18 a child placed with
            // CLONE_INTO_CGROUP into a cgroup that once saw `cgroup.kill` is
            // SIGKILLed at birth. Nor one with sub-cgroups (a program of the
            // run made them): the next run must start in a clean directory.
            // Lowered sub-cgroup limits are looked for when the spare is
            // taken (`cgroup_pool::limits_at_max`), through the files opened
            // here the first time.
            let Ok(dir) = self.dir() else {
                return false;
            };
            if !self.reusable
                || self.killed.load(Ordering::Acquire)
                || subtree::has_children_at(dir.as_fd(), &self.path)
                || !self.limits_open(dir.as_fd())
            {
                return false;
            }
            let spare = super::super::cgroup_pool::Spare {
                path: self.path.clone(),
                dir,
                events: self.kept_events(),
                ticket: ticket.take(),
                cpu_base: 0,
                cpu_stat: self.kept_cpu_stat(),
                limits: lock(&self.limits).clone(),
            };
            match super::super::cgroup_pool::offer(spare) {
                // Marked before the hand-over ends: a concurrent close
                // that finds the tenure ended must find this too, not
                // remove the directory it no longer owns.
                Ok(()) => {
                    self.removed.store(true, Ordering::Release);
                    true
                }
                Err(back) => {
                    ticket = back;
                    false
                }
            }
        });
        if pooled {
            return Ok(None);
        }
        if busy {
            return Err(ticket);
        }
        match self.remove() {
            Ok(()) => Ok(ticket),
            Err(_) => Err(ticket),
        }
    }
}

impl Cgroup {
    /// Closes the group's descriptors of the directory (the directory, its
    /// kept `cgroup.events` and `cpu.stat`) once its teardown is done: removed, handed
    /// to the reaper (which holds its own), or pooled (the pool holds its
    /// own). A closed group that lives on holds none of them.
    pub(crate) fn release_fds(&self) {
        if self.is_removed() {
            lock(&self.dir).take();
            lock(&self.events).take();
            lock(&self.cpu_stat).take();
            lock(&self.limits).take();
        }
    }

    /// The kept `cgroup.events`, if it was opened (for the pool).
    fn kept_events(&self) -> Option<Arc<OwnedFd>> {
        lock(&self.events).clone()
    }

    /// The kept `cpu.stat`, if a spare's measure opened it (for the pool).
    fn kept_cpu_stat(&self) -> Option<Arc<OwnedFd>> {
        lock(&self.cpu_stat).clone()
    }
}

impl Cgroup {
    /// Opens `cgroup.max.descendants` and `cgroup.max.depth` of the cgroup
    /// open as `dir` the first time it goes to the pool, to be kept with it
    /// (each later take reads them with a `pread`: a program of a run may
    /// lower its own cgroup's limits); false when they can't be opened
    /// (such a directory is not pooled). The first time also looks
    /// `cgroup.procs` up, for the placements into it (see
    /// `cgroup_pool::warm_procs_inode`).
    fn limits_open(&self, dir: std::os::fd::BorrowedFd<'_>) -> bool {
        use rustix::fs::{openat, Mode, OFlags};
        let mut kept = lock(&self.limits);
        if kept.is_some() {
            return true;
        }
        let open = |name| openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty());
        let (Ok(a), Ok(b)) = (open("cgroup.max.descendants"), open("cgroup.max.depth")) else {
            return false;
        };
        *kept = Some(Arc::new([a, b]));
        super::super::cgroup_pool::warm_procs_inode_at(dir);
        true
    }
}

/// Locks `m`, a poisoned lock included (what it guards is a descriptor).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
