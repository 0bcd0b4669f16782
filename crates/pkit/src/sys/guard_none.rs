//! The owner-death guard where pkit has none yet (every platform but
//! Linux): groups say why they are unguarded, and everything else works.
//!
//! The Linux guard is a forked process that learns of its owner's death
//! through a socket and then ends every registered group. Its process-group
//! half would work on macOS and the BSDs too; it is not ported yet (it
//! reads `/proc` and uses Linux system calls).

pub use super::guard_status::GuardStatus;

/// Why there is no guard here.
const WHY: &str = "the owner-death guard is implemented on Linux only so far";

/// No guard can exist here: a handle that is never made.
pub(crate) enum Guard {}

/// A registration with the guard (never made here).
#[derive(Debug)]
pub(crate) struct Ticket(());

/// Always `Err`: there is no guard on this platform.
pub(crate) fn get() -> Result<&'static Guard, String> {
    Err(WHY.into())
}

/// The guard's state: not running, and why.
pub(crate) fn status() -> GuardStatus {
    GuardStatus {
        error: Some(WHY.into()),
        process_groups: "not guarded on this platform".into(),
        ..GuardStatus::default()
    }
}

impl Guard {
    pub(crate) fn pid(&self) -> i32 {
        match *self {}
    }

    pub(crate) fn alive(&self) -> bool {
        match *self {}
    }

    pub(crate) fn unregister(&self, _ticket: Ticket) {
        match *self {}
    }

    pub(crate) fn register_pgroup(&self, _pid: i32) -> Result<Ticket, String> {
        match *self {}
    }
}
