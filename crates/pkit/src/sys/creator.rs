//! [`Creator`]: which process made a handle, so that a forked copy of it
//! acts on nothing.

/// The process that made a handle which acts on the system when dropped
/// (`RunningProcess`, `RunningPipe`, a group's container, a cgroup leaf, a
/// v1 cgroup). A child an application forks without `exec` gets copies of
/// its parent's handles; a drop that kills or removes something asks
/// [`is_here`](Self::is_here) first, so such a copy does nothing to its
/// parent's processes or directories. Told apart by the pid and the fork
/// generation (`sys::pid::identity`), not by the pid alone: a copy forked
/// into a new pid namespace may have its maker's pid number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Creator(u64);

impl Creator {
    /// This process.
    pub(crate) fn here() -> Creator {
        Creator(this_process())
    }

    /// A process that is not this one (no identity is 0): a forked copy's
    /// record of its maker's handle, for tests.
    #[cfg(test)]
    pub(crate) fn elsewhere() -> Creator {
        Creator(0)
    }

    /// Whether this process made the handle (it is not a forked copy).
    pub(crate) fn is_here(self) -> bool {
        self.0 == this_process()
    }

    /// Whether this process made the handle, its pid confirmed with the
    /// kernel: for a drop that kills or removes something. A child made
    /// without the `pthread_atfork` handlers (a raw `clone`, `_Fork`)
    /// keeps its maker's identity in memory; one with a pid number of its
    /// own is caught here and does nothing to its maker's processes or
    /// directories. (One system call, on drops only: a run's hot checks
    /// use [`is_here`](Self::is_here).)
    pub(crate) fn is_here_confirmed(self) -> bool {
        self.is_here() && confirmed(self.pid())
    }

    /// The maker's process id.
    pub(crate) fn pid(self) -> u32 {
        self.0 as u32
    }
}

/// This process's identity: its pid in the low half, its fork generation
/// in the high half (the kept ones, which a fork forgets and bumps).
#[cfg(target_os = "linux")]
fn this_process() -> u64 {
    super::pid::identity()
}

/// This process's identity: its pid (no pid namespaces here).
#[cfg(not(target_os = "linux"))]
fn this_process() -> u64 {
    u64::from(std::process::id())
}

/// Whether `pid` is this process's, as the kernel says.
#[cfg(target_os = "linux")]
fn confirmed(pid: u32) -> bool {
    pid == std::process::id()
}

/// Always: `this_process` asked the kernel already.
#[cfg(not(target_os = "linux"))]
fn confirmed(_pid: u32) -> bool {
    true
}
