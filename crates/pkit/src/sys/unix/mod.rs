//! The Unix code shared by every platform: process-group signalling, and
//! spawning through the standard library's `posix_spawn` path for the
//! platforms without pkit's own spawner (every one but Linux).

pub(crate) mod pgroup;
#[cfg(not(target_os = "linux"))]
pub(crate) mod std_spawn;
