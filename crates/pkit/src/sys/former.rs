//! A process group's former leader, as the group keeps it.

use std::sync::Arc;

use super::guard::Ticket;
use super::ChildHandle;

/// A former leader (see `Kind::Pgroup::former`): its handle, and the
/// owner-death guard's registration it had as the group's leader, kept
/// while it runs on: the guard kills a registered group's leader itself
/// too, wherever it went (see `guard`), so an owner killed after the
/// leader left still takes it along. Let go (unregistered first) once it
/// has ended, or at the group's teardown (`container_pgroup.rs`).
pub(super) struct Former {
    pub(super) handle: Arc<ChildHandle>,
    pub(super) ticket: Option<Ticket>,
}
