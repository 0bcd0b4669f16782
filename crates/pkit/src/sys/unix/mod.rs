//! The Unix code shared by every platform: process-group signalling, and
//! the portable backend (posix_spawn, pid-held children waited for through
//! SIGCHLD) that macOS and the BSDs run and that Linux can be forced onto
//! (`PKIT_MECHANISM=portable`).

pub(crate) mod child;
mod gate_apply;
mod gate_setup;
pub(crate) mod held_signals;
#[cfg(any(
    target_os = "macos",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
))]
mod kqueue;
pub(crate) mod open_interrupt;
pub(crate) mod pgroup;
pub(crate) mod ptable;
#[cfg(any(target_os = "dragonfly", target_os = "netbsd", target_os = "openbsd"))]
mod ptable_bsd;
pub(crate) mod sigchld;
pub(crate) mod spawn;
mod spawn_place;
pub(crate) mod spawn_pty;
pub(crate) mod trampoline;
#[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
pub(crate) mod waitid;

/// A `posix_spawn` family call's result (the error number it returns).
fn spawn_check(rc: libc::c_int) -> Result<(), crate::sys::SpawnError> {
    match rc {
        0 => Ok(()),
        e => Err(crate::sys::SpawnError::Os(
            std::io::Error::from_raw_os_error(e),
        )),
    }
}

/// Registers a descriptor we own with the tokio reactor.
pub(crate) fn register(
    fd: std::os::fd::OwnedFd,
    interest: tokio::io::Interest,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: the AsyncFd takes ownership of `fd`, so the descriptor stays
    // open, and refers to the same file, for as long as the AsyncFd lives;
    // `OwnedFd::as_raw_fd` always returns that same descriptor.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, interest) }.map_err(|e| e.into())
}
