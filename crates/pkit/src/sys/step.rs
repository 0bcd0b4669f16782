//! The vocabulary of a child's setup before exec, shared by the spawn
//! options above and the spawners here: the resource limits, the I/O
//! scheduling classes, and the step that failed.

use std::fmt;

/// A resource limit a child can be given with [`Command::rlimit`](crate::Command::rlimit)
/// (`setrlimit(2)`'s `RLIMIT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Resource {
    /// `RLIMIT_NOFILE`: one more than the highest file descriptor number.
    Nofile,
    /// `RLIMIT_CORE`: the largest core dump, in bytes (0: none).
    Core,
    /// `RLIMIT_CPU`: CPU time, in seconds (SIGXCPU at the soft limit).
    Cpu,
    /// `RLIMIT_AS`: the address space, in bytes.
    As,
    /// `RLIMIT_NPROC`: processes of the child's real user.
    Nproc,
    /// `RLIMIT_FSIZE`: the largest file the child may write, in bytes.
    Fsize,
    /// `RLIMIT_STACK`: the main thread's stack, in bytes.
    Stack,
    /// `RLIMIT_DATA`: the data segment and heap, in bytes.
    Data,
    /// `RLIMIT_MEMLOCK`: memory locked into RAM, in bytes.
    Memlock,
    /// `RLIMIT_RSS` (not enforced by current Linux kernels).
    Rss,
    /// `RLIMIT_LOCKS`: file locks.
    Locks,
    /// `RLIMIT_SIGPENDING`: queued signals.
    Sigpending,
    /// `RLIMIT_MSGQUEUE`: bytes in POSIX message queues.
    Msgqueue,
    /// `RLIMIT_NICE`: the ceiling for raising the priority (20 - nice).
    Nice,
    /// `RLIMIT_RTPRIO`: the ceiling for a real-time priority.
    Rtprio,
    /// `RLIMIT_RTTIME`: real-time CPU time without a blocking call, in
    /// microseconds.
    Rttime,
}

impl Resource {
    /// Every resource, in declaration order.
    pub const ALL: [Resource; 16] = [
        Resource::Nofile,
        Resource::Core,
        Resource::Cpu,
        Resource::As,
        Resource::Nproc,
        Resource::Fsize,
        Resource::Stack,
        Resource::Data,
        Resource::Memlock,
        Resource::Rss,
        Resource::Locks,
        Resource::Sigpending,
        Resource::Msgqueue,
        Resource::Nice,
        Resource::Rtprio,
        Resource::Rttime,
    ];

    /// The lower-case name without `RLIMIT_`: `nofile`, `as`, `cpu`...
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Nofile => "nofile",
            Resource::Core => "core",
            Resource::Cpu => "cpu",
            Resource::As => "as",
            Resource::Nproc => "nproc",
            Resource::Fsize => "fsize",
            Resource::Stack => "stack",
            Resource::Data => "data",
            Resource::Memlock => "memlock",
            Resource::Rss => "rss",
            Resource::Locks => "locks",
            Resource::Sigpending => "sigpending",
            Resource::Msgqueue => "msgqueue",
            Resource::Nice => "nice",
            Resource::Rtprio => "rtprio",
            Resource::Rttime => "rttime",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An I/O scheduling class ([`Command::io_priority`](crate::Command::io_priority), `ioprio_set(2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoClass {
    /// Served first, whatever else waits (needs privilege).
    RealTime,
    /// The default class, by level.
    BestEffort,
    /// Served only when no other process needs the disk.
    Idle,
}

/// The step of a child's setup before exec that failed
/// ([`Error::ChildSetup`](crate::Error::ChildSetup)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChildStep {
    /// Placing the stdio descriptors.
    Stdio,
    /// `setsid` ([`Command::setsid`](crate::Command::setsid)).
    Session,
    /// Joining the group's process group.
    ProcessGroup,
    /// Joining the group's cgroup (or a cap's v1 cgroup).
    JoinCgroup,
    /// A resource limit ([`Command::rlimit`](crate::Command::rlimit)).
    Rlimit,
    /// The scheduling priority ([`Command::priority`](crate::Command::priority)).
    Priority,
    /// The I/O priority ([`Command::io_priority`](crate::Command::io_priority)).
    IoPriority,
    /// The CPUs the child may run on ([`Command::cpu_affinity`](crate::Command::cpu_affinity)).
    CpuAffinity,
    /// A hook given to [`Command::pre_exec`](crate::Command::pre_exec) returned an error.
    PreExec,
    /// The supplementary groups ([`Command::groups`](crate::Command::groups)).
    Groups,
    /// The group id ([`Command::gid`](crate::Command::gid)).
    Gid,
    /// The user id ([`Command::uid`](crate::Command::uid)).
    Uid,
    /// Placing a passed-through descriptor ([`Command::keep_fds`](crate::Command::keep_fds)).
    KeepFds,
    /// Making the pseudo-terminal the child's controlling terminal
    /// ([`Command::pty`](crate::Command::pty)).
    Terminal,
}

impl ChildStep {
    /// What the step does, for messages: `setting the user id`...
    pub fn as_str(self) -> &'static str {
        match self {
            ChildStep::Stdio => "setting up stdio",
            ChildStep::Session => "starting a new session",
            ChildStep::ProcessGroup => "joining the process group",
            ChildStep::JoinCgroup => "joining the cgroup",
            ChildStep::Rlimit => "setting a resource limit",
            ChildStep::Priority => "setting the priority",
            ChildStep::IoPriority => "setting the I/O priority",
            ChildStep::CpuAffinity => "setting the CPU affinity",
            ChildStep::PreExec => "running a pre_exec hook",
            ChildStep::Groups => "setting the supplementary groups",
            ChildStep::Gid => "setting the group id",
            ChildStep::Uid => "setting the user id",
            ChildStep::KeepFds => "passing a descriptor through",
            ChildStep::Terminal => "taking the pseudo-terminal as its controlling terminal",
        }
    }
}

impl fmt::Display for ChildStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A child's step before exec that failed, as the spawners report it to
/// the owner: a working directory, the exec itself, or a setup step.
#[cfg(unix)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailedStep {
    Chdir,
    Exec,
    Setup(ChildStep),
}

/// The codes of the setup steps (0 is "no failure", 1 and 2 the working
/// directory and the exec).
#[cfg(unix)]
const SETUP_STEPS: [ChildStep; 14] = [
    ChildStep::Stdio,
    ChildStep::Session,
    ChildStep::ProcessGroup,
    ChildStep::JoinCgroup,
    ChildStep::Rlimit,
    ChildStep::Priority,
    ChildStep::Groups,
    ChildStep::Gid,
    ChildStep::Uid,
    ChildStep::KeepFds,
    ChildStep::IoPriority,
    ChildStep::CpuAffinity,
    ChildStep::PreExec,
    ChildStep::Terminal,
];

#[cfg(unix)]
impl FailedStep {
    /// The step and `errno` as one code (the step above the low 16 bits),
    /// never 0. Runs in a child before exec: no allocation, no panic.
    pub(crate) fn pack(self, errno: i32) -> i32 {
        let step = match self {
            FailedStep::Chdir => 1,
            FailedStep::Exec => 2,
            FailedStep::Setup(s) => {
                let mut i = 0;
                while i < SETUP_STEPS.len() && SETUP_STEPS[i] != s {
                    i += 1;
                }
                3 + i as i32
            }
        };
        (step << 16) | errno.clamp(1, 0xFFFF)
    }

    /// The step and the errno of a code made by [`pack`](Self::pack).
    pub(crate) fn unpack(code: i32) -> (FailedStep, std::io::Error) {
        let step = match code >> 16 {
            1 => FailedStep::Chdir,
            n if n >= 3 && ((n - 3) as usize) < SETUP_STEPS.len() => {
                FailedStep::Setup(SETUP_STEPS[(n - 3) as usize])
            }
            _ => FailedStep::Exec,
        };
        (step, std::io::Error::from_raw_os_error(code & 0xFFFF))
    }
}
