//! [`GuardStatus`]: how the owner-death guard stands (on Windows there is
//! none: the kernel kills a job whose last handle closes).

/// The state of this process's owner-death guard; see
/// [`HostContainment::guard`](crate::HostContainment::guard).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GuardStatus {
    /// Whether the guard is running now.
    pub running: bool,
    /// Its pid, once started.
    pub pid: Option<u32>,
    /// The groups it covers now: `cgroup <dir>`, `process group <pgid>`, or
    /// `former leader <pid> of a process group` (a group's first process
    /// that left its process group and runs on).
    pub groups: Vec<String>,
    /// Emptied cgroup directories kept for reuse by later groups and runs
    /// ([`release_spare_cgroups`](crate::release_spare_cgroups)): the guard
    /// removes them too if this process is killed.
    pub spares: usize,
    /// How many entries the guard itself reports holding (a cgroup with v1
    /// cap directories takes one per directory); `None` when it can't be
    /// asked.
    pub entries: Option<usize>,
    /// Registrations the guard could not take (table or fd limit).
    pub lost: Option<u32>,
    /// Why it is not running: it could not be started, it died, or it
    /// stopped reading its messages for 2 s (stopped with SIGSTOP, or
    /// wedged) and this process gave up on it rather than block.
    pub error: Option<String>,
    /// How it kills process groups: by the leader's pidfd (exact), or by
    /// number after checking that the leader is unreaped (kernels < 6.9).
    pub process_groups: String,
    /// How it was started: this program's executable run again as the
    /// guard (no copy of this process's memory), or a fork of this process
    /// (a copy-on-write copy of its memory at that moment) and why the
    /// executable could not be used. Empty until it is started.
    pub started: String,
}
