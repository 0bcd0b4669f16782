//! The only code that touches the operating system: spawning, containing,
//! signalling, killing and reaping. Everything above this module is
//! platform-neutral.
//!
//! One backend per mechanism: [`Mechanism::CgroupV2`] (Linux, `linux/`) and
//! [`Mechanism::ProcessGroup`] (every Unix, `unix/`: on Linux with pidfds
//! and pkit's own clone3 spawner, or the portable way that macOS and the
//! BSDs take, posix_spawn and SIGCHLD, forced with `PKIT_MECHANISM=portable`).

//! [`Mechanism::JobObject`] (Windows, `windows/`).

// Some shapes the Unix backends fill in (spawn steps, setup fields, fault
// points) have no Windows counterpart.
#![cfg_attr(windows, allow(dead_code))]

#[cfg(unix)]
mod child;
#[cfg(unix)]
mod container;
mod control;
#[doc(hidden)]
pub mod fault;
#[cfg(unix)]
mod fdio;
#[cfg(unix)]
#[cfg_attr(not(target_os = "linux"), path = "guard_none.rs")]
pub(crate) mod guard;
mod guard_status;
mod host;
mod limits;
#[cfg(target_os = "linux")]
pub(crate) mod linux;
mod place;
mod pre_exec;
#[cfg(target_os = "linux")]
pub(crate) mod pty;
#[cfg(not(target_os = "linux"))]
#[path = "pty_unsupported.rs"]
pub(crate) mod pty;
mod resolve;
mod setup;
mod signal;
mod stats;
mod step;
#[cfg(unix)]
mod tree;
#[cfg(unix)]
pub(crate) mod unix;
#[cfg(windows)]
pub(crate) mod windows;

#[cfg(unix)]
pub(crate) use child::ChildHandle;
#[cfg(unix)]
pub(crate) use container::{Container, CreateError};
pub(crate) use control::ControlError;
pub use control::ProcessInfo;
#[cfg(unix)]
pub(crate) use fdio::*;
pub use guard_status::GuardStatus;
#[cfg(unix)]
pub use host::host_containment;
pub use host::{HostContainment, MechanismChoice};
pub(crate) use limits::Limits;
pub use limits::{CapSupport, LimitInfo};
#[cfg(target_os = "linux")]
pub(crate) use linux::forked::spawn_detached;
#[cfg(target_os = "linux")]
pub(crate) use linux::procfs::usage as proc_usage;
pub use place::Placement;
pub(crate) use resolve::ResolveError;
#[cfg(unix)]
pub(crate) use resolve::{missing_interpreter, resolve};
pub(crate) use setup::{
    cpu_mask, dup_above, ioprio_value, resource_number, ChildSetup, PreExecHook,
};
pub use signal::Signal;
pub use stats::Stats;
#[cfg(unix)]
pub(crate) use std::os::fd::{AsFd, OwnedFd, RawFd};
pub use step::{ChildStep, IoClass, Resource};
#[cfg(unix)]
pub(crate) use tree::ProcTree;
#[cfg(windows)]
pub use windows::host_containment;
#[cfg(windows)]
pub(crate) use windows::*;

use std::io;

/// The kind of OS container a group's processes live in.
///
/// Every [`Group`](crate::Group) and every [`Output`](crate::Output) reports
/// the mechanism that contained it, so a weaker fallback is never silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// A Linux cgroup v2 subtree: catches every descendant, including ones
    /// that call `setsid`; torn down with `cgroup.kill`.
    CgroupV2,
    /// A POSIX process group: torn down with `killpg`. A descendant that
    /// calls `setsid` or `setpgid` leaves the group and escapes teardown.
    ///
    /// The group's first process leads it; if it exits while the group
    /// lives, it stays a zombie until the group ends (close, shutdown, drop,
    /// or the end of a run), because its pid is the group's id and a reaped
    /// id could be handed to a stranger whose group a later `start` would
    /// join. At most one such zombie per live group; every other process is
    /// reaped as usual.
    ProcessGroup,
    /// A Windows Job Object created with `KILL_ON_JOB_CLOSE`: catches
    /// every descendant (a child can't leave it), terminated as a whole
    /// with `TerminateJobObject`, and killed by the kernel when the last
    /// handle closes — including when the owner dies.
    JobObject,
}

impl Mechanism {
    /// A short stable name: `cgroup-v2`, `process-group`, `job-object`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::CgroupV2 => "cgroup-v2",
            Mechanism::ProcessGroup => "process-group",
            Mechanism::JobObject => "job-object",
        }
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Starting a process outside any group: only on Linux so far.
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) fn spawn_detached(_spec: &SpawnSpec) -> Result<i32, SpawnError> {
    Err(SpawnError::Unsupported(
        "spawn_detached",
        Mechanism::ProcessGroup,
        "it is implemented on Linux only so far".into(),
    ))
}

/// CPU time and resident memory (current, peak) of a live process: not
/// read on this platform yet.
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) fn proc_usage(_pid: i32) -> Option<(std::time::Duration, Option<u64>, Option<u64>)> {
    None
}

/// How a child ended, as the kernel reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    Exited(i32),
    Signalled(i32),
}

/// Why a spawn failed.
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// `clone3` was refused; another placement may work.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Refused(io::Error),
    /// The program could not be executed (errno from execve).
    Exec(io::Error),
    /// The working directory could not be entered (errno from chdir).
    Chdir(io::Error),
    /// A step of the child's setup before exec failed.
    Step(ChildStep, io::Error),
    /// Any other OS failure (pipes, fds, limits).
    Os(io::Error),
    /// The mechanism can't place this child (operation, mechanism, why).
    Unsupported(&'static str, Mechanism, String),
}

/// Requested stdio for one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IoRequest {
    Inherit,
    Null,
    Pipe,
}

/// What one `read_or_stop` step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadStep {
    /// This many bytes were appended.
    Data(usize),
    /// The pipe's writers are all gone.
    Eof,
    /// `stop` became readable or hung up: the caller should drain and end.
    Stopped,
}

/// The conventional name of a signal number (`SIGKILL`), if it has one.
pub(crate) fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        signal::nums::SIGHUP => "SIGHUP",
        signal::nums::SIGINT => "SIGINT",
        signal::nums::SIGQUIT => "SIGQUIT",
        signal::nums::SIGILL => "SIGILL",
        signal::nums::SIGTRAP => "SIGTRAP",
        signal::nums::SIGABRT => "SIGABRT",
        signal::nums::SIGBUS => "SIGBUS",
        signal::nums::SIGFPE => "SIGFPE",
        signal::nums::SIGKILL => "SIGKILL",
        signal::nums::SIGUSR1 => "SIGUSR1",
        signal::nums::SIGSEGV => "SIGSEGV",
        signal::nums::SIGUSR2 => "SIGUSR2",
        signal::nums::SIGPIPE => "SIGPIPE",
        signal::nums::SIGALRM => "SIGALRM",
        signal::nums::SIGTERM => "SIGTERM",
        signal::nums::SIGCHLD => "SIGCHLD",
        signal::nums::SIGCONT => "SIGCONT",
        signal::nums::SIGSTOP => "SIGSTOP",
        signal::nums::SIGTSTP => "SIGTSTP",
        signal::nums::SIGTTIN => "SIGTTIN",
        signal::nums::SIGTTOU => "SIGTTOU",
        signal::nums::SIGURG => "SIGURG",
        signal::nums::SIGXCPU => "SIGXCPU",
        signal::nums::SIGXFSZ => "SIGXFSZ",
        signal::nums::SIGVTALRM => "SIGVTALRM",
        signal::nums::SIGPROF => "SIGPROF",
        signal::nums::SIGWINCH => "SIGWINCH",
        signal::nums::SIGIO => "SIGIO",
        signal::nums::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

/// Removes the emptied cgroup directories pkit keeps for reuse by later
/// one-shot runs (at most 16, counted by
/// [`GuardStatus::spares`](crate::GuardStatus::spares)). They are also
/// removed at normal exit, and by the owner-death guard if this process is
/// killed.
/// Elsewhere there are none: nothing to do.
pub fn release_spare_cgroups() {
    #[cfg(target_os = "linux")]
    linux::cgroup_pool::release_all();
}
