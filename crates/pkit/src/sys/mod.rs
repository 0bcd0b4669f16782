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
#[cfg(unix)]
mod container_close;
#[cfg(unix)]
mod container_create;
#[cfg(unix)]
mod container_pgroup;
#[cfg(unix)]
mod container_session;
#[cfg(unix)]
mod container_signal;
#[cfg(unix)]
mod container_suspend;
mod control;
mod copy_lock;
#[cfg(target_os = "linux")]
pub(crate) use copy_lock::let_go_inherited;
#[cfg(unix)]
pub(crate) use copy_lock::AtForkOnce;
#[cfg(unix)]
pub(crate) use copy_lock::{close_inherited, file_id, names_file};
pub(crate) use copy_lock::{CopyLock, CopyOnce, Leaked};
mod cpu_list;
mod creator;
mod detached;
pub(crate) use detached::spawn as spawn_thread;
#[cfg(unix)]
mod env_block;
mod env_read;
pub use env_read::read_environment_unlocked;
#[doc(hidden)]
pub mod fault;
#[cfg(unix)]
mod fdio;
#[cfg(unix)]
mod fdio_read;
#[cfg(unix)]
mod former;
#[cfg(unix)]
pub(crate) mod guard;
mod guard_status;
mod host;
mod limits;
#[cfg(target_os = "linux")]
pub(crate) mod linux;
mod look_as;
#[cfg(unix)]
mod nap;
pub(crate) mod open_wait;
#[cfg(unix)]
pub(crate) mod pid;
mod place;
#[cfg(unix)]
mod place_guard;
mod pre_exec;
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
pub(crate) mod pty;
#[cfg(all(
    unix,
    not(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))
))]
#[path = "pty_unsupported.rs"]
pub(crate) mod pty;
mod resolve;
mod setup;
#[cfg(unix)]
pub(crate) mod setup_steps;
mod signal;
mod signals_sent;
mod stats;
pub(crate) mod step;
mod text;
mod transient;
#[cfg(unix)]
mod tree;
#[cfg(unix)]
mod tree_signalled;
mod types;
#[cfg(unix)]
pub(crate) mod unix;

#[cfg(windows)]
pub(crate) mod windows;
#[cfg(windows)]
use windows::pty;

#[cfg(unix)]
pub(crate) use child::ChildHandle;
#[cfg(target_os = "linux")]
pub(crate) use child::KeptWatch;
#[cfg(unix)]
pub(crate) use container::{Container, CreateError};
pub(crate) use control::ControlError;
pub use control::ProcessInfo;
pub(crate) use creator::Creator;
#[cfg(unix)]
pub(crate) use env_block::{derived_env, EnvBlock};
#[cfg(unix)]
pub(crate) use fdio::*;
#[cfg(unix)]
pub(crate) use fdio_read::*;
/// Resolves once nothing reads the pipe `tx` writes to (the child, and
/// all it shared its stdin with, closed it or are gone), where the runtime
/// reports that as an error on the write end without a write (Linux's
/// `EPOLLERR`); elsewhere a write still sees it.
#[cfg(unix)]
pub(crate) async fn reader_gone(tx: &PipeSender) {
    let _ = tx.0.ready(tokio::io::Interest::ERROR).await;
}
#[cfg(unix)]
pub use guard::guard_pids;
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
pub(crate) use look_as::look_as;
pub(crate) use open_wait::{GaveUp, OpenWait};
pub use place::Placement;
pub(crate) use pty::{
    open as open_pty, refusal as pty_refusal, split as split_pty, MasterEnd, PtyIo,
};
pub(crate) use resolve::ResolveError;
#[cfg(unix)]
pub(crate) use resolve::{missing_interpreter, resolve, resolve_to_start};
#[cfg(unix)]
pub(crate) use setup::dup_above;
pub(crate) use setup::{
    cpu_mask, dup_off_targets, ioprio_value, resource_number, ChildSetup, PreExecHook, Rlimit,
};
/// Signal numbers by name (Linux's numbers on Windows, see `signal.rs`).
#[cfg(feature = "testing")]
pub(crate) use signal::nums as signum;
pub(crate) use signal::signal_name;
pub use signal::Signal;
#[doc(hidden)]
pub use signal::RELAYED_BY_PKIT_RUN;
pub(crate) use signals_sent::SignalsSent;
pub use stats::Stats;
#[cfg(unix)]
pub(crate) use std::os::fd::{AsFd, OwnedFd, RawFd};
pub use step::{ChildStep, IoClass, Resource};
pub(crate) use text::TextBytes;
pub(crate) use transient::is_transient_os_error;
#[cfg(unix)]
pub(crate) use tree::ProcTree;
pub use types::Mechanism;
pub(crate) use types::{ChildEnv, ChildIds, ExitStatus, IoRequest, ReadStep, SpawnError, Special};
#[cfg(windows)]
pub use windows::host_containment;
/// The pids of this process's owner-death guards: none on Windows (a job
/// object needs no guard process).
#[cfg(windows)]
pub fn guard_pids() -> Vec<u32> {
    Vec::new()
}
/// A start resolves as [`resolve`] does on Windows.
#[cfg(windows)]
pub(crate) use windows::resolve as resolve_to_start;
#[cfg(windows)]
pub(crate) use windows::*;

/// Keeps its items (or statements) where the backend can wait for a
/// one-shot run on the calling thread (a pidfd polled with the child's
/// pipes: Linux), and drops them elsewhere; [`without_direct_wait`] is the
/// other side. The blocking facade's direct path is written inside these,
/// so the layers above `sys/` name no target.
#[cfg(target_os = "linux")]
macro_rules! with_direct_wait {
    ($($t:tt)*) => { $($t)* };
}
#[cfg(not(target_os = "linux"))]
macro_rules! with_direct_wait {
    ($($t:tt)*) => {};
}
/// The other side of [`with_direct_wait`]: keeps its items where the
/// backend can't wait for a one-shot run on the calling thread.
#[cfg(target_os = "linux")]
macro_rules! without_direct_wait {
    ($($t:tt)*) => {};
}
#[cfg(not(target_os = "linux"))]
macro_rules! without_direct_wait {
    ($($t:tt)*) => { $($t)* };
}
pub(crate) use {with_direct_wait, without_direct_wait};

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

/// Removes the emptied cgroup directories pkit keeps for reuse by later
/// groups and one-shot runs (at most 16, counted by
/// [`GuardStatus::spares`](crate::GuardStatus::spares)). They are also
/// removed at normal exit, and by the owner-death guard if this process is
/// killed. A copy of this process forked without exec, which usually ends
/// with `_exit` (no exit handler runs), keeps spares only where a guard of
/// its own covers them: one forked after this process started its guard
/// removes its groups' cgroups when they close.
/// Elsewhere there are none: nothing to do.
pub fn release_spare_cgroups() {
    #[cfg(target_os = "linux")]
    linux::cgroup_pool::release_all();
}

/// Whether `pid` names this process: its own pid or, on Linux, the id of
/// one of its threads (which `cgroup.procs` takes for the whole process).
/// A group that adopted it would kill its owner when it ends. `Err` when
/// that cannot be told (the kernel refused the check, as a seccomp filter
/// may, and `/proc` is not this process's): the caller must not adopt.
pub(crate) fn is_this_process(pid: u32) -> std::io::Result<bool> {
    if pid == std::process::id() {
        return Ok(true);
    }
    // Asked of the kernel (`tgkill` with signal 0) first, not of `/proc`,
    // which may be absent or another pid namespace's.
    #[cfg(target_os = "linux")]
    if linux::signal::is_own_thread(pid)? {
        return Ok(true);
    }
    Ok(false)
}
