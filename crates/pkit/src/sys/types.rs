//! The plain types the backends share and the layers above read: the
//! mechanism, how a child ended and what it used, why a spawn failed, and
//! the stdio and pipe-read vocabulary. A leaf: it imports nothing else
//! from `sys/`.

use std::io;

use super::step::ChildStep;

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

/// The environment a child starts with.
#[derive(Debug)]
pub(crate) enum ChildEnv {
    /// This process's own (the parent's block, as Windows hands it on):
    /// the command changed no variable, so no copy is made. Unix has no
    /// such case: there an inherited environment is copied at the start
    /// (`sys::inherited_env`), as the child can't read `environ` safely
    /// while another thread's `set_var` rewrites it.
    #[cfg(not(unix))]
    Inherited,
    /// Exactly these `NAME=value` entries, in this order.
    Exactly(super::EnvBlock),
}

#[cfg(unix)]
impl ChildEnv {
    /// The entries: on Unix every child's environment is exact.
    pub(crate) fn block(&self) -> &super::EnvBlock {
        let ChildEnv::Exactly(block) = self;
        block
    }

    /// The value of `PATH` for a child given this environment (one that
    /// `sys::inherited_env` made, or a command's changes applied to it):
    /// its first `PATH` entry, as `getenv` finds it (`None`: it has none).
    /// No second read of this process's environment.
    pub(crate) fn inherited_path_var(&self) -> Option<std::borrow::Cow<'_, std::ffi::OsStr>> {
        use std::os::unix::ffi::OsStrExt;
        self.block()
            .entries()
            .find_map(|e| e.strip_prefix(b"PATH="))
            .map(|v| std::borrow::Cow::Borrowed(std::ffi::OsStr::from_bytes(v)))
    }
}

#[cfg(not(unix))]
impl ChildEnv {
    /// The value of `PATH` for a child given this process's environment
    /// (`sys::inherited_env`'s), read now (`None`: it has none).
    pub(crate) fn inherited_path_var(&self) -> Option<std::borrow::Cow<'_, std::ffi::OsStr>> {
        std::env::var_os("PATH").map(std::borrow::Cow::Owned)
    }
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

/// CPU time and peak memory of an exited child.
#[cfg(unix)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub cpu: std::time::Duration,
    pub max_rss_bytes: u64,
}

/// A special character of a pty session's terminal (`^C`, `^D`, `^Z`,
/// `^\`), as the program on it has set it (read from the slave side,
/// whose settings the program changes; see `pty.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    Intr,
    Eof,
    Susp,
    Quit,
}

/// The ids a child takes before exec (`Command::uid`, `gid`, `groups`;
/// `None`: kept).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChildIds<'a> {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Option<&'a [u32]>,
}

impl ChildIds<'_> {
    /// Whether the child runs with ids other than the owner's.
    pub(crate) fn change(&self) -> bool {
        self.uid.is_some() || self.gid.is_some() || self.groups.is_some()
    }
}
