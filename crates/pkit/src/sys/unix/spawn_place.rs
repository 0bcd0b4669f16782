//! `posix_spawn`'s stdio file actions (see `spawn.rs`), and glibc's
//! internal signals for its signal defaults.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::spawn_check as check;
use crate::sys::{ChildIo, SpawnError};

#[cfg(target_os = "macos")]
extern "C" {
    // macOS 10.15+: keep `fd` open in the child despite
    // POSIX_SPAWN_CLOEXEC_DEFAULT (not in the libc crate).
    fn posix_spawn_file_actions_addinherit_np(
        actions: *mut libc::posix_spawn_file_actions_t,
        fd: libc::c_int,
    ) -> libc::c_int;
}

/// The child's `target` stdio fd gets `io`. A source the C library
/// refuses as out of range although it is open is placed from a copy
/// below the descriptor limit, pushed on `low` (see [`below_limit`]).
pub(super) fn place(
    actions: &mut libc::posix_spawn_file_actions_t,
    io: &ChildIo,
    target: libc::c_int,
    stdout: Option<&ChildIo>,
    low: &mut Vec<OwnedFd>,
) -> Result<(), SpawnError> {
    use std::os::fd::AsRawFd;
    let source = match io {
        ChildIo::Inherit => {
            #[cfg(target_os = "macos")]
            {
                // SAFETY: our initialised actions object and an fd number.
                return check(unsafe { posix_spawn_file_actions_addinherit_np(actions, target) });
            }
            #[cfg(not(target_os = "macos"))]
            return Ok(());
        }
        ChildIo::Fd(fd) => fd.as_raw_fd(),
        ChildIo::Null(fd) => *fd,
        ChildIo::SameAsStdout => match stdout {
            // Whatever stdout got, placed before this: its fd 1.
            Some(_) => 1,
            None => return Err(SpawnError::Os(io::Error::from_raw_os_error(libc::EINVAL))),
        },
    };
    let add = |actions: &mut libc::posix_spawn_file_actions_t, source| {
        // SAFETY: our initialised actions object and two fd numbers; the
        // source stays open until posix_spawn returns (owned by the spec,
        // the shared /dev/null descriptor, or `low`). Sources are >= 3 (or
        // stdout's 1; a copy is >= 3 too), so no dup2 overwrites a source
        // still to be placed.
        unsafe { libc::posix_spawn_file_actions_adddup2(actions, source, target) }
    };
    match add(actions, source) {
        libc::EBADF if source > 2 => {
            let copy = below_limit(source).map_err(SpawnError::Os)?;
            let rc = add(actions, copy.as_raw_fd());
            low.push(copy);
            check(rc)
        }
        rc => check(rc),
    }
}

/// A close-on-exec copy of `fd` on the lowest free number from 3 on. glibc
/// refuses a file action's descriptor at or above the soft
/// `RLIMIT_NOFILE` (EBADF) although it is open: one opened while the
/// process had a higher limit, before it lowered its own (as the `pkit`
/// command does to hand a program the limit it was given where no
/// trampoline can restore it). The copy is below the limit, or EMFILE
/// says there is no room.
fn below_limit(fd: RawFd) -> io::Result<OwnedFd> {
    // Raw: `fd` is the spec's or the shared /dev/null's, borrowed by
    // number (a closed one is EBADF).
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) only reads the descriptor table.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `copy` was just made by fcntl and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// Adds glibc's two internal signals (32 and 33: thread cancellation,
/// credential broadcasts) to `set`, for `posix_spawnattr_setsigdefault`.
/// glibc's `posix_spawn` sets them to SIG_IGN in the child unless they are
/// in that set, and an ignored signal stays ignored across `exec`: every
/// program started would begin with them ignored. `sigaddset` refuses
/// them (EINVAL), hence the bits are set by hand.
///
/// # Safety
/// `set` is an initialised glibc `sigset_t`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(super) unsafe fn add_glibc_internal(set: &mut libc::sigset_t) {
    let bits = 8 * std::mem::size_of::<libc::c_ulong>();
    let words = (set as *mut libc::sigset_t).cast::<libc::c_ulong>();
    for sig in [32usize, 33] {
        let n = sig - 1;
        // Raw: glibc's sigset_t is an array of unsigned longs, signal n+1
        // at bit n; its field is private in the libc crate.
        // SAFETY: `n / bits` is 0 or 1, inside the 1024-bit set.
        unsafe { *words.add(n / bits) |= 1 << (n % bits) };
    }
}
