//! Spawn options: what the child sets on itself between its creation and
//! `exec` — credentials, umask, resource limits, priority, a new session,
//! descriptors passed through.
//!
//! Every option is applied by the spawned child itself, without allocating
//! and without forking the parent's address space (the same vfork-class
//! spawner as every other start), on values checked and converted before the
//! spawn. A step that fails in the child is reported as
//! [`Error::ChildSetup`] naming that [`ChildStep`]; nothing is skipped
//! silently.
//!
//! **Platforms.** Linux honours every option, in both mechanisms, except
//! [`setsid`](Command::setsid) under the process-group mechanism (refused:
//! see there). pkit builds only on Linux today; on the other Unix
//! platforms, when they build, every option is refused with
//! [`Error::Unsupported`] until it is implemented there.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::str::FromStr;

use crate::command::Command;
use crate::error::{Error, Result};
use crate::sys::{self, ChildSetup, Mechanism};

/// A resource limit a child can be given with [`Command::rlimit`]
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

impl FromStr for Resource {
    type Err = Error;

    /// Parses a name as [`as_str`](Resource::as_str) writes it, in any
    /// case, with or without the `RLIMIT_` prefix.
    fn from_str(s: &str) -> Result<Resource> {
        let lower = s.to_ascii_lowercase();
        let name = lower.strip_prefix("rlimit_").unwrap_or(&lower);
        Resource::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .ok_or_else(|| Error::InvalidInput(format!("unknown resource limit {s:?}")))
    }
}

/// An I/O scheduling class ([`Command::io_priority`], `ioprio_set(2)`).
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
/// ([`Error::ChildSetup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChildStep {
    /// Placing the stdio descriptors.
    Stdio,
    /// `setsid` ([`Command::setsid`]).
    Session,
    /// Joining the group's process group.
    ProcessGroup,
    /// Joining the group's cgroup (or a cap's v1 cgroup).
    JoinCgroup,
    /// A resource limit ([`Command::rlimit`]).
    Rlimit,
    /// The scheduling priority ([`Command::priority`]).
    Priority,
    /// The I/O priority ([`Command::io_priority`]).
    IoPriority,
    /// The CPUs the child may run on ([`Command::cpu_affinity`]).
    CpuAffinity,
    /// A hook given to [`Command::pre_exec`] returned an error.
    PreExec,
    /// The supplementary groups ([`Command::groups`]).
    Groups,
    /// The group id ([`Command::gid`]).
    Gid,
    /// The user id ([`Command::uid`]).
    Uid,
    /// Placing a passed-through descriptor ([`Command::keep_fds`]).
    KeepFds,
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
        }
    }
}

impl fmt::Display for ChildStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The spawn options of a [`Command`], as given (checked at spawn).
#[derive(Clone, Default)]
pub(crate) struct SpawnOptions {
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Option<Vec<u32>>,
    umask: Option<u32>,
    rlimits: Vec<(Resource, u64, u64)>,
    nice: Option<i32>,
    setsid: bool,
    keep_fds: Vec<(RawFd, RawFd)>,
    io_priority: Option<(IoClass, u8)>,
    cpus: Option<Vec<usize>>,
    arg0: Option<OsString>,
    inherit_only: Option<Vec<OsString>>,
    prefer: Vec<PathBuf>,
    /// Set by `Command::pre_exec` (in `sys/setup.rs`, beside its unsafe).
    pub(crate) pre_exec: Vec<sys::PreExecHook>,
}

/// Spawn options, applied by the child to itself before exec (each says
/// where it is honoured).
impl Command {
    /// Runs the child as user `uid` (`setresuid`: real, effective and saved
    /// ids), after its groups and group id are set. Unless
    /// [`groups`](Self::groups) is given too, the child's supplementary
    /// groups are cleared (where the owner may), so it does not keep the
    /// owner's. Needs privilege (root or `CAP_SETUID`) for another user; a
    /// refusal is [`Error::ChildSetup`] with [`ChildStep::Uid`]. The working
    /// directory is entered after the change, with the new user's rights.
    ///
    /// Linux, both mechanisms.
    pub fn uid(mut self, uid: u32) -> Command {
        self.spawn.uid = Some(uid);
        self
    }

    /// Runs the child with group id `gid` (`setresgid`), set after the
    /// supplementary groups and before the user id. Linux, both mechanisms.
    pub fn gid(mut self, gid: u32) -> Command {
        self.spawn.gid = Some(gid);
        self
    }

    /// Sets the child's supplementary groups (`setgroups`; an empty list
    /// clears them), the first step of a privilege drop (groups, then
    /// [`gid`](Self::gid), then [`uid`](Self::uid)). Linux, both
    /// mechanisms.
    pub fn groups(mut self, groups: impl IntoIterator<Item = u32>) -> Command {
        self.spawn.groups = Some(groups.into_iter().collect());
        self
    }

    /// Sets the child's file mode creation mask (e.g. `0o027`); at most
    /// `0o777`, else the start fails with [`Error::InvalidInput`]. Linux,
    /// both mechanisms.
    pub fn umask(mut self, mode: u32) -> Command {
        self.spawn.umask = Some(mode);
        self
    }

    /// Sets a resource limit of the child (`prlimit`): `soft` is enforced,
    /// `hard` is the ceiling the child may raise `soft` to; `u64::MAX`
    /// means unlimited. Setting the same resource again replaces it.
    /// `soft > hard` is [`Error::InvalidInput`]; raising a hard limit needs
    /// privilege, and a refusal is [`Error::ChildSetup`] with
    /// [`ChildStep::Rlimit`]. Applied before a privilege drop. Linux, both
    /// mechanisms.
    pub fn rlimit(mut self, resource: Resource, soft: u64, hard: u64) -> Command {
        self.spawn.rlimits.retain(|(r, _, _)| *r != resource);
        self.spawn.rlimits.push((resource, soft, hard));
        self
    }

    /// Sets the child's nice value (`setpriority`): an absolute value from
    /// -20 (most favourable) to 19, clamped to that range by the kernel.
    /// Going below the owner's own value needs privilege
    /// ([`ChildStep::Priority`] otherwise). Applied before a privilege
    /// drop. Linux, both mechanisms.
    pub fn priority(mut self, nice: i32) -> Command {
        self.spawn.nice = Some(nice);
        self
    }

    /// Makes the child the leader of a new session (`setsid`), with no
    /// controlling terminal — what a daemon does for itself.
    ///
    /// Under the cgroup mechanism the child and its descendants stay in the
    /// group's cgroup, so containment is unchanged. Under the
    /// process-group mechanism a new session means leaving the group's
    /// process group, and with it the group's teardown (`killpg`), so the
    /// start is refused there with [`Error::Unsupported`] (operation
    /// `setsid`) rather than running an uncontained child. Linux.
    pub fn setsid(mut self) -> Command {
        self.spawn.setsid = true;
        self
    }

    /// Passes descriptors through to the child: for each
    /// `(parent_fd, child_fd)`, the child gets a duplicate of this process's
    /// `parent_fd` as its descriptor number `child_fd`. Every other
    /// descriptor above 2 stays closed in the child, as always. Adds to the
    /// pairs given before.
    ///
    /// `parent_fd` is borrowed: it must stay open until the process has
    /// started (the call to a verb or `start` returned); one that is not
    /// open fails the start with [`Error::InvalidInput`]. `child_fd` must be
    /// 3 or more (stdio has its own options) and appear once. Linux, both
    /// mechanisms.
    pub fn keep_fds(mut self, fds: impl IntoIterator<Item = (RawFd, RawFd)>) -> Command {
        self.spawn.keep_fds.extend(fds);
        self
    }
}

/// More spawn options: I/O priority, CPU affinity, `argv[0]`, and where a
/// program would be found.
impl Command {
    /// Sets the child's I/O scheduling class and, for
    /// [`RealTime`](IoClass::RealTime) and
    /// [`BestEffort`](IoClass::BestEffort), its level from 0 (served first)
    /// to 7 (a level above 7 is [`Error::InvalidInput`]; [`Idle`](IoClass::Idle)
    /// has none). The real-time class needs privilege; a refusal is
    /// [`Error::ChildSetup`] with [`ChildStep::IoPriority`]. Linux, both
    /// mechanisms.
    pub fn io_priority(mut self, class: IoClass, level: u8) -> Command {
        self.spawn.io_priority = Some((class, level));
        self
    }

    /// Restricts the child (and what it starts) to these CPUs, by number
    /// (`sched_setaffinity`). An empty list, or a number of 65536 or more,
    /// is [`Error::InvalidInput`]; a set with no CPU the child may use is
    /// [`Error::ChildSetup`] with [`ChildStep::CpuAffinity`]. Linux, both
    /// mechanisms.
    pub fn cpu_affinity(mut self, cpus: impl IntoIterator<Item = usize>) -> Command {
        self.spawn.cpus = Some(cpus.into_iter().collect());
        self
    }

    /// The name the program sees as its own (`argv[0]`), instead of the
    /// program as given to [`new`](Self::new), which still says what runs
    /// and names it in errors and logs. All platforms.
    pub fn arg0(mut self, name: impl AsRef<OsStr>) -> Command {
        self.spawn.arg0 = Some(name.as_ref().to_os_string());
        self
    }

    /// Inherits only the named variables of this process's environment
    /// (read at each start), plus whatever [`env`](Self::env) sets: an
    /// allow-list, for a child that must not see the rest (tokens, keys).
    /// Adds to the names given before; after
    /// [`env_clear`](Self::env_clear) nothing is inherited at all. A name
    /// this process does not have is simply absent. All platforms.
    pub fn inherit_env<I, S>(mut self, names: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.spawn
            .inherit_only
            .get_or_insert_with(Vec::new)
            .extend(names.into_iter().map(|n| n.as_ref().to_os_string()));
        self
    }

    /// Looks for the program in `dir` before `PATH` (a project's own bin
    /// directory, such as `node_modules/.bin`), when it is given as a bare
    /// name. A relative `dir` is relative to this process's working
    /// directory. Only where the program is found changes: the child's
    /// `PATH` is left as it is. Several calls search in call order. All
    /// platforms.
    pub fn prefer_local(mut self, dir: impl AsRef<std::path::Path>) -> Command {
        self.spawn.prefer.push(dir.as_ref().to_path_buf());
        self
    }

    /// Where this command's program would run from, without running it:
    /// the absolute path a verb or `start` would execute, resolved by the
    /// same rules (the command's own `PATH` if it sets one, else this
    /// process's; a relative path against this process's working
    /// directory; see [`new`](Self::new)). The errors are the ones a start
    /// would give: [`Error::NotFound`], [`Error::NotExecutable`].
    pub fn resolve_program(&self) -> Result<PathBuf> {
        let program = self.display_name();
        if self.program.is_empty() {
            return Err(Error::InvalidInput("the program name is empty".into()));
        }
        let env = self.effective_env();
        resolve_for(self, &program, &env)
    }
}

/// Where `program` (a name or a path) would run from: the absolute path
/// found on this process's `PATH` (see [`Command::resolve_program`]).
///
/// ```
/// let sh = pkit::which("sh").expect("a shell");
/// assert!(sh.is_absolute());
/// ```
pub fn which(program: impl AsRef<OsStr>) -> Result<PathBuf> {
    Command::new(program).resolve_program()
}

/// Resolves `cmd`'s program with its preferred directories and the `PATH`
/// of `env` (the child's environment), as a start does; `display` names it
/// in errors.
pub(crate) fn resolve_for(
    cmd: &Command,
    display: &str,
    env: &[(OsString, OsString)],
) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let path_var = env
        .iter()
        .find(|(k, _)| k.as_bytes() == b"PATH")
        .map(|(_, v)| v.as_os_str());
    sys::resolve(&cmd.program, &cmd.spawn.prefer, path_var).map_err(|e| match e {
        sys::ResolveError::NotFound { path_searched } => Error::NotFound {
            program: display.into(),
            path_searched,
        },
        sys::ResolveError::NotExecutable(path) => Error::NotExecutable {
            program: display.into(),
            path,
        },
        sys::ResolveError::NoWorkingDir(source) => Error::Spawn {
            program: display.into(),
            source: std::io::Error::new(
                source.kind(),
                format!(
                    "a relative program path needs this process's working directory, \
                     which can't be read: {source}"
                ),
            ),
        },
    })
}

impl SpawnOptions {
    /// The names of [`Command::inherit_env`], when it was called.
    pub(crate) fn inherit_only(&self) -> Option<&[OsString]> {
        self.inherit_only.as_deref()
    }

    /// `argv[0]` when [`Command::arg0`] set one.
    pub(crate) fn arg0(&self) -> Option<&OsStr> {
        self.arg0.as_deref()
    }

    /// Checks the options against the mechanism the child will live in and
    /// converts them into what the child applies.
    pub(crate) fn prepare(&self, program: &str, mechanism: Mechanism) -> Result<ChildSetup> {
        let invalid = |what: String| Error::InvalidInput(format!("{program}: {what}"));
        if !cfg!(target_os = "linux") && !self.is_empty() {
            return Err(Error::Unsupported {
                operation: "spawn options",
                mechanism,
                reason: "spawn options are implemented on Linux only".into(),
            });
        }
        if self.setsid && mechanism == Mechanism::ProcessGroup {
            return Err(Error::Unsupported {
                operation: "setsid",
                mechanism,
                reason: "a child in a new session leaves the group's process group and would \
                         escape its teardown"
                    .into(),
            });
        }
        if self.uid == Some(u32::MAX) || self.gid == Some(u32::MAX) {
            // -1 means "leave unchanged" to setresuid/setresgid.
            return Err(invalid("uid/gid 4294967295 (-1) is not an id".into()));
        }
        if let Some(mode) = self.umask.filter(|m| *m > 0o777) {
            return Err(invalid(format!("umask {mode:#o} is above 0o777")));
        }
        let mut rlimits = Vec::with_capacity(self.rlimits.len());
        for &(r, soft, hard) in &self.rlimits {
            if soft > hard {
                return Err(invalid(format!("the soft {r} limit is above the hard one")));
            }
            rlimits.push((sys::resource_number(r), soft, hard));
        }
        let ioprio = match self.io_priority {
            None => None,
            Some((_, level)) if level > 7 => {
                return Err(invalid(format!("I/O priority level {level} is above 7")))
            }
            Some((class, level)) => Some(sys::ioprio_value(class, level)),
        };
        let cpus = match &self.cpus {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(invalid("cpu_affinity: the list of CPUs is empty".into()))
            }
            Some(list) => match list.iter().find(|&&c| c >= 1 << 16) {
                Some(c) => return Err(invalid(format!("cpu_affinity: CPU {c} is out of range"))),
                None => Some(sys::cpu_mask(list)),
            },
        };
        let mut keep = Vec::with_capacity(self.keep_fds.len());
        let min = self
            .keep_fds
            .iter()
            .map(|&(_, c)| c)
            .max()
            .unwrap_or(0)
            .saturating_add(1)
            .max(3);
        for (i, &(parent, child)) in self.keep_fds.iter().enumerate() {
            if child < 3 {
                return Err(invalid(format!(
                    "keep_fds: child descriptor {child} is a stdio number (use the stdin/stdout/stderr options)"
                )));
            }
            if self.keep_fds[..i].iter().any(|&(_, c)| c == child) {
                return Err(invalid(format!(
                    "keep_fds: child descriptor {child} is given twice"
                )));
            }
            let dup = sys::dup_above(parent, min).map_err(|e| {
                invalid(format!(
                    "keep_fds: descriptor {parent} can't be passed: {e}"
                ))
            })?;
            keep.push((dup, child));
        }
        Ok(ChildSetup {
            setsid: self.setsid,
            rlimits,
            nice: self.nice,
            umask: self.umask,
            groups: self.groups.clone(),
            gid: self.gid,
            uid: self.uid,
            keep,
            ioprio,
            cpus,
            pre_exec: self.pre_exec.clone(),
        })
    }

    fn is_empty(&self) -> bool {
        self.uid.is_none()
            && self.gid.is_none()
            && self.groups.is_none()
            && self.umask.is_none()
            && self.rlimits.is_empty()
            && self.nice.is_none()
            && !self.setsid
            && self.keep_fds.is_empty()
            && self.io_priority.is_none()
            && self.cpus.is_none()
            && self.pre_exec.is_empty()
    }
}
