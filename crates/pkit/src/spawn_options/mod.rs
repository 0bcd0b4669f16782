//! Spawn options: what the child sets on itself between its creation and
//! `exec` — credentials, umask, resource limits, priority, a new session,
//! descriptors passed through.
//!
//! Every option is applied by the spawned child itself, on values checked
//! and converted before the spawn, in one order (a new session and a pty
//! session's controlling terminal, limits and priorities, the umask, then
//! groups, group id and user id, then the descriptors
//! passed through). A step that fails in the child is reported as
//! [`Error::ChildSetup`] naming that [`ChildStep`]; nothing is skipped
//! silently.
//!
//! **Platforms.** On Linux, pkit's own spawner honours every option, in
//! both mechanisms, except [`setsid`](Command::setsid) under the
//! process-group mechanism (refused: see there), without allocating and
//! without forking the parent's address space (the same vfork-class
//! spawner as every other start).
//!
//! The portable backend (what macOS and the BSDs run, and
//! `PKIT_MECHANISM=portable` on Linux) starts children with
//! `posix_spawn`, which runs no code of pkit's in the child. A child with
//! options is therefore started through a trampoline: this program's own
//! executable, which runs pkit's code before `main`, receives the options
//! from the owner over a socket, applies them and then executes the
//! program (the same trampoline that holds a new group's first process
//! until the owner-death guard knows the group), at the cost of one more
//! `exec` (of this program's executable, its loader and libraries) per
//! such child. (With glibc and on FreeBSD every start goes through it,
//! options or not, so that a terminal's stop can't catch a child before
//! its `exec`.) It honours the
//! credentials, the umask, resource limits, the nice value, descriptors
//! passed through, and on Linux the I/O priority and CPU affinity; on
//! macOS and FreeBSD those two, and Linux's own resource limits
//! ([`Resource::Locks`] and after), are [`Error::Unsupported`] (the other
//! BSDs have no trampoline: every option is refused there). Where the
//! trampoline can't be used (pkit is not linked into the main executable,
//! the executable can't be run again or was started by its dynamic
//! loader, a set-user-id executable, musl's C library,
//! `PKIT_SPAWN_TRAMPOLINE=off`), every option that needs it is
//! [`Error::Unsupported`], saying why. [`pre_exec`](Command::pre_exec)
//! hooks are closures of this process, which can't cross the trampoline's
//! exec: refused there with [`Error::Unsupported`]; so is
//! [`setsid`](Command::setsid) (a process-group mechanism). A pty session
//! takes its terminal in the trampoline too (on Linux as well, whenever
//! the trampoline can be used; without it, Linux alone can start one: see
//! [`Command::pty`](crate::Command::pty)). On Windows every option is refused with
//! [`Error::Unsupported`], but for a pty session (a ConPTY pseudo console:
//! see [`Command::pty`](crate::Command::pty)).

use crate::sys::RawFd;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::str::FromStr;

// The builders on `Command` and the detached start sit above the command
// (this file's options sit below it, in the command's start data): lib.rs
// re-exports `which` and `Detached` from them directly.
pub(crate) mod builders;
pub(crate) mod detached;

use crate::error::{Error, Result};
use crate::sys::{self, ChildSetup, Mechanism};
pub use crate::sys::{ChildStep, IoClass, Resource};

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
            .ok_or_else(|| {
                let names: Vec<&str> = Resource::ALL.iter().map(|r| r.as_str()).collect();
                Error::InvalidInput(format!(
                    "unknown resource limit {s:?} (one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// How [`Command::stdout_file`](crate::Command::stdout_file) and [`Command::stderr_file`](crate::Command::stderr_file) open their
/// file (created if missing, mode `0o666` less the umask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileMode {
    /// Emptied first.
    Truncate,
    /// Written at its end (`O_APPEND`: concurrent writers don't overwrite
    /// each other).
    Append,
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
    stdout_file: Option<(PathBuf, FileMode)>,
    stderr_file: Option<(PathBuf, FileMode)>,
    merge_stderr: bool,
    /// `Command::pty(rows, cols)`: see `pty.rs`.
    pub(crate) pty: Option<(u16, u16)>,
    /// `Command::pty_raw`: pkit doesn't read the terminal.
    pub(crate) pty_raw: bool,
    /// Set by `Command::pre_exec` (in `sys/setup.rs`, beside its unsafe).
    pub(crate) pre_exec: Vec<sys::PreExecHook>,
}

/// The stdin file `path` of `program`, opened up to `wait`'s bounds.
pub(crate) fn stdin_file(
    path: &std::path::Path,
    program: &str,
    wait: &sys::OpenWait<'_>,
) -> Result<sys::ChildIo> {
    sys::child_io_file(path, wait).map_err(|e| open_error(e, program, "its stdin file"))
}

/// A stdio file's open that failed: [`Error::Cancelled`] when a cancel
/// token gave up its wait for a FIFO's other end, else [`Error::Io`].
fn open_error(e: std::io::Error, program: &str, what: &str) -> Error {
    if sys::GaveUp::of(&e).is_some_and(|g| g.cancelled) {
        return Error::Cancelled {
            program: program.to_string(),
        };
    }
    Error::io(format!("{program}: opening {what}"), e)
}

impl SpawnOptions {
    /// What the child gets for stdout or stderr when a file option or
    /// `merge_stderr` decides it (`None`: the stream's [`crate::Stdio`]
    /// setting does).
    pub(crate) fn output_file(
        &self,
        stream: crate::StreamKind,
        program: &str,
        wait: &sys::OpenWait<'_>,
    ) -> Result<Option<sys::ChildIo>> {
        let file = match stream {
            crate::StreamKind::Stdout => &self.stdout_file,
            crate::StreamKind::Stderr if self.merge_stderr => {
                return Ok(Some(sys::ChildIo::SameAsStdout))
            }
            crate::StreamKind::Stderr => &self.stderr_file,
        };
        let Some((path, mode)) = file else {
            return Ok(None);
        };
        sys::child_io_output_file(path, *mode == FileMode::Append, wait)
            .map(Some)
            .map_err(|e| open_error(e, program, &format!("its {stream} file")))
    }

    /// Whether a stdout or stderr file was given.
    pub(crate) fn has_output_file(&self) -> bool {
        self.stdout_file.is_some() || self.stderr_file.is_some()
    }

    /// Whether a stdout file was given.
    pub(crate) fn has_stdout_file(&self) -> bool {
        self.stdout_file.is_some()
    }

    /// Whether a stdout/stderr file or `merge_stderr` decides the child's
    /// output streams.
    pub(crate) fn claims_output(&self) -> bool {
        self.stdout_file.is_some() || self.stderr_file.is_some() || self.merge_stderr
    }

    /// The names of [`Command::inherit_env`](crate::Command::inherit_env), when it was called.
    pub(crate) fn inherit_only(&self) -> Option<&[OsString]> {
        self.inherit_only.as_deref()
    }

    /// Resolves `program` with these options' preferred directories and
    /// the `PATH` of `env` (the child's environment; `None`: it inherits
    /// this process's), as a start does, with the rights of the child's
    /// ids where they differ (see `sys::look_as`);
    /// `display` names it in errors. `to_start`: the result is executed at
    /// once, so a program named by its path that can't be executed for a
    /// reason only `execve` tells may pass here (the start then fails with
    /// the same error).
    pub(crate) fn resolve(
        &self,
        program: &OsStr,
        display: &str,
        env: Option<&[(OsString, OsString)]>,
        to_start: bool,
    ) -> Result<PathBuf> {
        let ours;
        let path_var = match env {
            Some(env) => env
                .iter()
                .find(|(k, _)| sys::is_path_var(k))
                .map(|(_, v)| v.as_os_str()),
            None => {
                ours = std::env::var_os("PATH");
                ours.as_deref()
            }
        };
        self.resolve_on(program, display, path_var, to_start)
    }

    /// [`resolve`](Self::resolve) for a start whose child inherits this
    /// process's environment unchanged: the inherited copy
    /// (`sys::inherited_env`) is made first and its `PATH` searched, so a
    /// start reads the environment once, under std's lock, and searches
    /// the `PATH` its child gets; returned with the path.
    pub(crate) fn resolve_to_start(
        &self,
        program: &OsStr,
        display: &str,
    ) -> Result<(PathBuf, sys::ChildEnv)> {
        let inherited = sys::inherited_env();
        let path_var = inherited.inherited_path_var();
        let resolved = self.resolve_on(program, display, path_var.as_deref(), true)?;
        drop(path_var);
        Ok((resolved, inherited))
    }

    /// [`resolve`](Self::resolve) for a start whose child gets `env`
    /// (made first, with the command's changes): its `PATH` searched.
    #[cfg(unix)]
    pub(crate) fn resolve_to_start_in(
        &self,
        program: &OsStr,
        display: &str,
        env: &sys::ChildEnv,
    ) -> Result<PathBuf> {
        let path_var = env.inherited_path_var();
        self.resolve_on(program, display, path_var.as_deref(), true)
    }

    /// [`resolve`](Self::resolve) on the search path `path_var` (the
    /// value of the child's `PATH`; `None`: it has none).
    fn resolve_on(
        &self,
        program: &OsStr,
        display: &str,
        path_var: Option<&OsStr>,
        to_start: bool,
    ) -> Result<PathBuf> {
        let resolve = if to_start {
            sys::resolve_to_start
        } else {
            sys::resolve
        };
        // Judged with the rights of the child (its uid, gid and groups),
        // as `execvp` in the child would judge: a candidate only the owner
        // may execute is skipped for the next directory.
        let ids = sys::ChildIds {
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.as_deref(),
        };
        let prefer = &self.prefer;
        sys::look_as(&ids, || resolve(program, prefer, path_var)).map_err(|e| match e {
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

    /// `argv[0]` when [`Command::arg0`](crate::Command::arg0) set one.
    pub(crate) fn arg0(&self) -> Option<&OsStr> {
        self.arg0.as_deref()
    }

    /// Checks the options against the mechanism the child will live in and
    /// converts them into what the child applies.
    pub(crate) fn prepare(&self, program: &str, mechanism: Mechanism) -> Result<ChildSetup> {
        let invalid = |what: String| Error::InvalidInput(format!("{program}: {what}"));
        // A pty session is the platform's to refuse (`sys::pty_refusal`).
        // `arg0` too: std writes the program's path as the command line's
        // first word, and a child reads its argv[0] from there.
        if cfg!(windows) && (!self.is_empty_but_pty() || self.arg0.is_some()) {
            return Err(Error::Unsupported {
                operation: "spawn options",
                mechanism,
                reason: "spawn options are implemented on Unix only".into(),
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
            let resource = sys::resource_number(r);
            if resource < 0 {
                // Linux's own limits elsewhere (macOS, FreeBSD): named here,
                // where the resource is still known.
                return Err(Error::Unsupported {
                    operation: "resource limit",
                    mechanism,
                    reason: format!("this platform has no {r} resource limit"),
                });
            }
            rlimits.push(sys::Rlimit {
                resource: resource.into(),
                soft,
                hard,
            });
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
        let targets: Vec<RawFd> = self.keep_fds.iter().map(|&(_, c)| c).collect();
        // The child sets its limits before it places the descriptors, and
        // no descriptor may be numbered at or above the soft `nofile`
        // limit (`dup2` fails with EBADF there): refused here, before
        // anything starts, rather than as the child's setup failure.
        let nofile = self.rlimits.iter().find(|(r, _, _)| *r == Resource::Nofile);
        if let Some(&(_, soft, _)) = nofile {
            if let Some(&child) = targets.iter().find(|&&c| c >= 0 && c as u64 >= soft) {
                return Err(invalid(format!(
                    "keep_fds: child descriptor {child} is not below the nofile limit {soft} \
                     set with rlimit (a descriptor's number must be below the soft limit)"
                )));
            }
        }
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
            let dup = sys::dup_off_targets(parent, &targets).map_err(|e| {
                let why = if e.raw_os_error() == Some(libc::EBADF) {
                    "is not open in this process \
                     (pass the number of a descriptor it holds open)"
                        .to_string()
                } else {
                    format!("can't be passed: {e}")
                };
                invalid(format!("keep_fds: descriptor {parent} {why}"))
            })?;
            keep.push((dup, child));
        }
        Ok(ChildSetup {
            setsid: self.setsid || self.pty.is_some(),
            ctty: self.pty.is_some(),
            rlimits,
            nice: self.nice,
            umask: self.umask.map(|m| m as _),
            groups: self.groups.clone(),
            gid: self.gid,
            uid: self.uid,
            keep,
            ioprio,
            cpus,
            pre_exec: self.pre_exec.clone(),
        })
    }

    fn is_empty_but_pty(&self) -> bool {
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
