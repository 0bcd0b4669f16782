//! A child's setup before exec, in one order for every spawner that runs
//! code in the child (Linux's own spawner in `linux/prexec.rs`, the
//! portable backend's trampoline in `unix/gate_setup.rs`): first the
//! session ([`session`]: `setsid`, then the pty's slave on fd 0 taken as
//! the controlling terminal with `TIOCSCTTY`), then, after the spawner's
//! own placement (process group, cgroup), the middle ([`apply`]): resource
//! limits and priorities while the child still has the owner's privilege,
//! the umask, then the privilege drop (supplementary groups, group id,
//! user id). Each spawner supplies the system calls ([`StepCalls`]); the
//! order, and which [`ChildStep`] a failure is reported as, are decided
//! here once.

use libc::{c_int, c_ulong, gid_t, mode_t, uid_t};

use super::setup::{ChildSetup, Rlimit};
use super::step::ChildStep;

/// What [`apply`] applies, borrowed from a `ChildSetup` (or, in the
/// trampoline, from the bytes the owner sent).
#[derive(Default)]
pub(crate) struct Steps<'a> {
    pub rlimits: &'a [Rlimit],
    pub nice: Option<c_int>,
    pub ioprio: Option<c_int>,
    pub cpus: Option<&'a [c_ulong]>,
    pub umask: Option<mode_t>,
    pub groups: Option<&'a [gid_t]>,
    pub gid: Option<gid_t>,
    pub uid: Option<uid_t>,
}

impl ChildSetup {
    /// The steps [`apply`] takes of this setup.
    pub(crate) fn steps(&self) -> Steps<'_> {
        Steps {
            rlimits: &self.rlimits,
            nice: self.nice,
            ioprio: self.ioprio,
            cpus: self.cpus.as_deref(),
            umask: self.umask,
            groups: self.groups.as_deref(),
            gid: self.gid,
            uid: self.uid,
        }
    }
}

/// The system calls behind the steps. Each returns `false` on failure,
/// with `errno` set; they run in a child before exec (no allocation, no
/// lock, no panic).
pub(crate) trait StepCalls {
    /// `setsid()`; a spawner whose child may already lead a session of
    /// its own (the portable trampoline's, see `gate_setup.rs`) counts
    /// that as done.
    fn setsid(&self) -> bool;
    /// `ioctl(0, TIOCSCTTY, 0)`: the terminal on fd 0 becomes the
    /// session's controlling terminal.
    fn take_terminal(&self) -> bool;
    /// `setrlimit`.
    fn rlimit(&self, limit: &Rlimit) -> bool;
    /// `setpriority(PRIO_PROCESS, 0, nice)`.
    fn nice(&self, nice: c_int) -> bool;
    /// `ioprio_set(IOPRIO_WHO_PROCESS, 0, value)`.
    fn ioprio(&self, value: c_int) -> bool;
    /// `sched_setaffinity(0, mask)`.
    fn cpus(&self, mask: &[c_ulong]) -> bool;
    /// `umask(mode)` (which can't fail).
    fn umask(&self, mode: mode_t);
    /// `setgroups(list)`.
    fn groups(&self, list: &[gid_t]) -> bool;
    /// The real, effective and saved group id.
    fn gid(&self, gid: gid_t) -> bool;
    /// The real, effective and saved user id.
    fn uid(&self, uid: uid_t) -> bool;
}

/// The session steps, before every other: `setsid` (a pty session's
/// child, or [`Command::setsid`](crate::Command::setsid)), then the
/// terminal on fd 0 (the pty's slave side) as the new session's
/// controlling terminal (`ctty`: only a session leader without one can
/// take it). `Err` names the step that failed (its errno is left in
/// `errno`).
pub(crate) fn session(setsid: bool, ctty: bool, calls: &impl StepCalls) -> Result<(), ChildStep> {
    if setsid && !calls.setsid() {
        return Err(ChildStep::Session);
    }
    if ctty && !calls.take_terminal() {
        return Err(ChildStep::Terminal);
    }
    Ok(())
}

/// Applies `steps` through `calls`, in order; `Err` names the step that
/// failed (its errno is left in `errno`).
pub(crate) fn apply(steps: &Steps<'_>, calls: &impl StepCalls) -> Result<(), ChildStep> {
    let ok = |done: bool, step: ChildStep| if done { Ok(()) } else { Err(step) };
    // Limits and priority before a privilege drop: raising them needs the
    // owner's privilege.
    for limit in steps.rlimits {
        ok(calls.rlimit(limit), ChildStep::Rlimit)?;
    }
    if let Some(nice) = steps.nice {
        ok(calls.nice(nice), ChildStep::Priority)?;
    }
    if let Some(value) = steps.ioprio {
        ok(calls.ioprio(value), ChildStep::IoPriority)?;
    }
    if let Some(mask) = steps.cpus {
        ok(calls.cpus(mask), ChildStep::CpuAffinity)?;
    }
    if let Some(mode) = steps.umask {
        calls.umask(mode);
    }
    // The privilege drop: groups, group id, user id.
    match steps.groups {
        Some(list) => ok(calls.groups(list), ChildStep::Groups)?,
        // Best effort: an unprivileged owner can't, and has no privileged
        // groups to shed; a dropped child must not keep the owner's.
        None if steps.uid.is_some() => {
            calls.groups(&[]);
        }
        None => {}
    }
    if let Some(gid) = steps.gid {
        ok(calls.gid(gid), ChildStep::Gid)?;
    }
    if let Some(uid) = steps.uid {
        ok(calls.uid(uid), ChildStep::Uid)?;
    }
    Ok(())
}
