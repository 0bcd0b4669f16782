//! Which registered cgroup directories the Linux guard's teardown may
//! end: only those its owner made.
//!
//! A directory name of an older pkit, `pkit-<pid>-<seq>`, is unique per pid
//! namespace only: owners in two pid namespaces under one parent cgroup can
//! pick the same one, and `mkdir`'s `EEXIST` then sends the second to the
//! next number. (Names now carry the pid namespace and the owner's start
//! time, `linux/names.rs`, so two owners pick the same one only where
//! `/proc` told one of them neither; the defence below stays.)
//! But a cgroup is registered before its `mkdir` (so an owner killed at any
//! point leaves no directory behind), and an owner killed between the two
//! (or before the `EEXIST`'s unregistration reached the guard) would leave
//! its guard holding another owner's live directory, which the teardown
//! then killed (`cgroup.kill`) and removed. So the owner tells the guard
//! when it has made the directory, with its inode number (`OP_MADE`, sent
//! right after the `mkdir`, before any process is put in it; a directory
//! registered once it exists carries it in its registration), and the
//! teardown ([`settle`]) treats each `OP_CGROUP` slot by what it knows:
//!
//! - Made: ended as before, if the path still names that inode (cgroup v2
//!   inode numbers are not reused within a boot). The owner's shared
//!   `flock` on it is not asked about: a child the owner forked without
//!   `exec` holds a copy of the locked descriptor, and may outlive it.
//! - Not known made: if the owner did make it, it died before anything was
//!   put in it, so there is nothing to kill. The directory is removed
//!   (`rmdir`, sub-cgroups first) only under an exclusive `flock` taken
//!   without waiting: a live owner, in any pid namespace, holds a shared one
//!   on each directory it keeps (see `linux/cgroup.rs`), so another owner's
//!   live directory is left alone, and `rmdir` refuses a populated one
//!   anyway. Another owner's directory in the microseconds between its
//!   `mkdir` and its lock can still be removed (it is empty); that owner
//!   then sees, once locked, that the path no longer names the directory
//!   it holds (gone, or another owner's of the name made since), drops
//!   it and makes the next name (`Cgroup::create`). (Left: a third owner's
//!   directory of the same name made between that owner's `mkdir` and its
//!   `open` would be taken for its own. An empty one of our owner's that a
//!   forked copy still holds locked is left to the stale sweep.)
//!
//! Raw: every libc call in this file stays raw on purpose: the guard's
//! async-signal-safe teardown (see `process.rs`).

use super::walk::remove_tree;
use super::wire::{Slot, FLAG_MADE, OP_CGROUP};

/// Frees every `OP_CGROUP` slot of `table` the teardown must not end (and
/// removes each empty one its owner may have made but never confirmed, if
/// no live owner holds it); the slots left are the owner's directories.
///
/// # Safety
/// Guard only.
pub(super) unsafe fn settle(table: &mut [Slot]) {
    for slot in table.iter_mut() {
        if slot.op != OP_CGROUP {
            continue;
        }
        let ours = if slot.flags & FLAG_MADE != 0 {
            same_inode(slot)
        } else {
            remove_if_unlocked(slot);
            false
        };
        if !ours {
            *slot = Slot::FREE;
        }
    }
}

/// Whether `slot`'s path still names the directory its owner made (one
/// that can't be looked at for another reason than its absence counts as
/// the owner's, as before, as does one whose inode the owner could not
/// read: 0).
///
/// # Safety
/// Guard only.
unsafe fn same_inode(slot: &Slot) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    if libc::stat(slot.path.as_ptr().cast(), st.as_mut_ptr()) != 0 {
        return !matches!(*libc::__errno_location(), libc::ENOENT | libc::ENOTDIR);
    }
    // ino_t is u64 where pkit builds for 64-bit targets, narrower on some.
    #[allow(clippy::unnecessary_cast)]
    let ino = st.assume_init().st_ino as u64;
    slot.start == 0 || ino == slot.start
}

/// Removes `slot`'s directory (and its sub-cgroups) under an exclusive
/// `flock`, if one can be had at once; else leaves it alone.
///
/// # Safety
/// Guard only.
unsafe fn remove_if_unlocked(slot: &Slot) {
    let fd = libc::open(
        slot.path.as_ptr().cast(),
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
    );
    if fd < 0 {
        return;
    }
    if libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) == 0 {
        remove_tree(&slot.path);
    }
    libc::close(fd);
}
