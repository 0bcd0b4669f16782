//! The Unix code shared by every platform: spawning through the standard
//! library's `posix_spawn` path (used by the process-group mechanism, and
//! by the cgroup mechanism's join-before-exec fallback) and process-group
//! signalling.

pub(crate) mod pgroup;
pub(crate) mod std_spawn;
