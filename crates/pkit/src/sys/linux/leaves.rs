//! A cgroup group's record of where its started processes live: its own
//! directory (the first one) and the leaves of the later ones.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Where a cgroup group's started processes go. The first one started
/// (when nothing else was ever placed in the group's directory) lives in
/// the group's own directory: a group holding one process then costs one
/// directory, not two. Every later one gets a leaf of its own, whose name
/// is recorded here before the directory is made, so that the first
/// process's subtree (the group's directory less these leaves) never
/// counts a later process's.
#[derive(Debug, Default)]
pub(crate) struct Leaves {
    /// Something was placed in the group's own directory (the first
    /// started process, a verb's process, an adopted one).
    dir_used: AtomicBool,
    /// The leaves made and not yet removed (`p<n>`).
    names: Mutex<HashSet<String>>,
}

impl Leaves {
    /// Claims the group's own directory for a started process: true the
    /// first time only, and never once anything else was placed there.
    pub(crate) fn claim_dir(&self) -> bool {
        !self.dir_used.swap(true, Ordering::AcqRel)
    }

    /// Notes that something other than a started process was placed in
    /// the group's own directory: no started process claims it after.
    pub(crate) fn mark_dir_used(&self) {
        self.dir_used.store(true, Ordering::Release);
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
