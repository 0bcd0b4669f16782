//! A cgroup group's record of where its started processes live: its own
//! directory (the first one) and the leaves of the later ones.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The group's own directory holds nothing yet.
const FREE: u8 = 0;
/// The group's first started process lives in its own directory.
const STARTED: u8 = 1;
/// Something else was placed there first (an adopted process).
const OTHER: u8 = 2;

/// Where a cgroup group's started processes go. The first one started
/// (when nothing else was ever placed in the group's directory) lives in
/// the group's own directory: a group holding one process then costs one
/// directory, not two. Every later one gets a leaf of its own, whose name
/// is recorded here before the directory is made, so that the first
/// process's subtree (the group's directory less these leaves) never
/// counts a later process's. A process adopted once the first started
/// one holds the directory goes to a leaf of its own too (see
/// [`use_dir`](Self::use_dir)).
#[derive(Debug, Default)]
pub(crate) struct Leaves {
    /// Who holds the group's own directory: [`FREE`], [`STARTED`] or
    /// [`OTHER`].
    dir: AtomicU8,
    /// The leaves made and not yet removed (`p<n>`).
    names: Mutex<HashSet<String>>,
    /// The leaf adopted processes go to (see [`use_dir`](Self::use_dir)),
    /// once made.
    adopted: Mutex<Option<String>>,
}

impl Leaves {
    /// Claims the group's own directory for a started process: true the
    /// first time only, and never once anything else was placed there.
    pub(crate) fn claim_dir(&self) -> bool {
        self.dir
            .compare_exchange(FREE, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether something other than a started process (an adopted one)
    /// may go in the group's own directory: true, and no started process
    /// claims the directory after, unless the group's first started
    /// process lives there; then false, as the directory is that
    /// process's subtree (what its `kill_tree` and timeout end), and the
    /// caller places it in a leaf instead.
    pub(crate) fn use_dir(&self) -> bool {
        match self
            .dir
            .compare_exchange(FREE, OTHER, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(held) => held == OTHER,
        }
    }

    /// The name of the leaf adopted processes go to, held while the
    /// caller makes it (when `None`) or uses it.
    pub(crate) fn adopted(&self) -> MutexGuard<'_, Option<String>> {
        self.adopted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `name` (a direct sub-directory of the group's) is a leaf of
    /// ours.
    pub(crate) fn is_leaf(&self, name: &OsStr) -> bool {
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        name.to_str().is_some_and(|n| names.contains(n))
    }

    pub(super) fn insert(&self, name: &str) {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names.insert(name.to_string());
    }

    pub(super) fn remove(&self, name: &str) {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names.remove(name);
    }
}
