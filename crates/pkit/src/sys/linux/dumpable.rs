//! This process's "dumpable" flag across a change of ids made in its
//! memory. The kernel marks a process not dumpable (`commit_creds`: the
//! flag lives in the memory the threads share) when any task sharing that
//! memory changes its effective user or group id: a spawned child taking
//! `Command::uid`/`gid`/`groups` before its exec (the spawners' children
//! share the owner's memory until then, `CLONE_VM`), and the scratch
//! thread of a lookup with those ids (`ids_thread.rs`). Not dumpable, the
//! owner would write no core dump, its `/proc/<pid>` files would belong to
//! root, and its own user could no longer trace it. [`kept`] puts the flag
//! back.

use std::sync::{Mutex, PoisonError};

/// Runs `change` (something that changes ids in this process's memory, when
/// `ids` says so), then puts the dumpable flag back as it was. One at a
/// time: a second change's reading of the flag must not see the first's
/// mark (and put it back for good).
pub(crate) fn kept<T>(ids: bool, change: impl FnOnce() -> T) -> T {
    if !ids {
        return change();
    }
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    // SAFETY: PR_GET_DUMPABLE reads a flag of this process.
    let before = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
    let out = change();
    // Only 0 and 1 can be set (2, root-only dumps, comes from the kernel's
    // `suid_dumpable` alone).
    // SAFETY: as above.
    if matches!(before, 0 | 1) && unsafe { libc::prctl(libc::PR_GET_DUMPABLE) } != before {
        // SAFETY: PR_SET_DUMPABLE sets a flag of this process, back to
        // the value it had.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(before == 1)) };
    }
    out
}
