//! [`Creator`]: which process made a handle, so that a forked copy of it
//! acts on nothing.

/// The process that made a handle which acts on the system when dropped
/// (`RunningProcess`, `RunningPipe`, a group's container, a cgroup leaf, a
/// v1 cgroup). A child an application forks without `exec` gets copies of
/// its parent's handles; a drop that kills or removes something asks
/// [`is_here`](Self::is_here) first, so such a copy does nothing to its
/// parent's processes or directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Creator(u32);

impl Creator {
    /// This process.
    pub(crate) fn here() -> Creator {
        Creator(this_pid())
    }

    /// Whether this process made the handle (it is not a forked copy).
    pub(crate) fn is_here(self) -> bool {
        self.0 == this_pid()
    }

    /// The maker's process id.
    pub(crate) fn pid(self) -> u32 {
        self.0
    }
}

/// This process's id (the kept one, which a fork forgets).
#[cfg(target_os = "linux")]
fn this_pid() -> u32 {
    super::pid::current()
}

/// This process's id.
#[cfg(not(target_os = "linux"))]
fn this_pid() -> u32 {
    std::process::id()
}
