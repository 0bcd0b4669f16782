//! Linux: the cgroup v2 backend, clone3 spawning, pidfds, `/proc`.

pub(crate) mod cgroup;
pub(crate) mod cgroup_pool;
pub(crate) mod child;
mod clone3;
mod events;
pub(crate) mod exits;
pub(crate) mod forked;
pub(crate) mod host;
pub(crate) mod leaf;
pub(crate) mod orphan;
mod prexec;
pub(crate) mod procfs;
pub(crate) mod reaper;
pub(crate) mod signal;
pub(crate) mod spawn;
pub(crate) mod spawn_steps;
pub(crate) mod subtree;
pub(crate) mod v1;

/// Registers an fd we own with the tokio reactor.
pub(crate) fn register(
    fd: std::os::fd::OwnedFd,
    interest: tokio::io::Interest,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: the AsyncFd takes ownership of `fd`, so the descriptor stays
    // open, and refers to the same file, for as long as the AsyncFd lives;
    // `OwnedFd::as_raw_fd` always returns that same descriptor.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, interest) }.map_err(|e| e.into())
}
