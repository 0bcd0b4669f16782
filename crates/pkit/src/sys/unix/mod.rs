//! The Unix code shared by every platform: process-group signalling, and
//! the portable backend (posix_spawn, pid-held children waited for through
//! SIGCHLD) that macOS and the BSDs run and that Linux can be forced onto
//! (`PKIT_MECHANISM=portable`).

pub(crate) mod child;
mod gate_apply;
mod gate_setup;
#[cfg(any(target_os = "macos", target_os = "freebsd"))]
mod kqueue;
pub(crate) mod pgroup;
pub(crate) mod ptable;
pub(crate) mod sigchld;
pub(crate) mod spawn;
pub(crate) mod spawn_pty;
pub(crate) mod trampoline;
