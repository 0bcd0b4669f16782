//! Ending an emptied cgroup: to the pool of spares, or removed.

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

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
            if !self.reusable
                || self.killed.load(Ordering::Acquire)
                || subtree::has_children_at(self.dir.as_fd(), &self.path)
            {
                return false;
            }
            let spare = super::super::cgroup_pool::Spare {
                path: self.path.clone(),
                dir: self.dir.clone(),
                events: self.events.get().cloned(),
                ticket: ticket.take(),
                cpu_base: 0,
                cpu_stat: self.cpu_stat.clone(),
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
