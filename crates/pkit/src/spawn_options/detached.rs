//! [`Command::spawn_detached`]: the one deliberate way out of containment.

use crate::command::Command;
use crate::error::{Error, Result};
use crate::spec::{Input, Stdio};
use crate::sys::{self, ChildIo, IoRequest, Mechanism};

/// A process started with [`Command::spawn_detached`]: outside every
/// container, no longer pkit's. The pid is for information (a log line, a
/// pid file) only: the process may have exited and its number been given to
/// another process by the time it is read, and pkit holds nothing that
/// could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detached {
    pid: u32,
}

impl Detached {
    /// The detached process's pid when it was started (see the caveat on
    /// [`Detached`]).
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Command {
    /// **Escapes containment.** Starts the program as a daemon that outlives
    /// this process and is never ended by pkit: in no group, no cgroup of
    /// pkit's, not covered by the owner-death guard, in a new session
    /// (`setsid`), re-parented at once (a double fork) so it is not even
    /// this process's child (it goes to init, or to the nearest child
    /// subreaper above this process). There is no wait, kill, timeout, cancellation
    /// or capture: [`Detached`] only says which pid it got.
    ///
    /// Everything else about the command applies: program resolution,
    /// arguments, environment, working directory and the spawn options
    /// (uid, limits, `keep_fds`...). Its stdin is `/dev/null` (or its
    /// [`stdin_file`](Self::stdin_file)); its stdout and stderr are
    /// `/dev/null` unless set to [`Stdio::Inherit`] or a
    /// [`stdout_file`](Self::stdout_file) / [`stderr_file`](Self::stderr_file)
    /// (a captured stream has no one to read it). A step that fails before
    /// the program runs is reported as for any start ([`Error::NotFound`],
    /// [`Error::ChildSetup`]...). A stdio file that is a FIFO waits for its
    /// other end on the calling thread with no bound at all (nothing here
    /// has a timeout or a cancel token): see [`stdout_file`](Self::stdout_file).
    ///
    /// Use it only for what must survive the owner; everything else belongs
    /// in a [`Group`](crate::Group). Forks this process (twice): its cost
    /// grows with this process's resident memory. Linux on x86_64 and
    /// aarch64.
    ///
    /// # Errors
    ///
    /// The errors of any start before the program runs:
    /// [`Error::NotFound`](crate::Error::NotFound),
    /// [`Error::NotExecutable`](crate::Error::NotExecutable),
    /// [`Error::CurrentDir`](crate::Error::CurrentDir),
    /// [`Error::ChildSetup`](crate::Error::ChildSetup), [`Error::Spawn`](crate::Error::Spawn);
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a command that can't be run as
    /// set (a pty session included); [`Error::Unsupported`](crate::Error::Unsupported) for a spawn option this platform
    /// lacks; [`Error::Io`](crate::Error::Io) when a stdio file can't be opened.
    pub fn spawn_detached(&self) -> Result<Detached> {
        let program = self.display_name();
        if self.spec.spawn.pty.is_some() {
            return Err(Error::InvalidInput(format!(
                "{program}: a detached process can't be a pty session (nothing would hold its \
                 terminal)"
            )));
        }
        let prepared = crate::launch_prepare::prepare(&self.spec, &program)?;
        // No container: nothing for the options to be refused by.
        let mut setup = self.spec.spawn.prepare(&program, Mechanism::CgroupV2)?;
        setup.setsid = true;
        let io_err = |e: std::io::Error| Error::io(format!("{program}: setting up stdio"), e);
        let stdin = match &self.spec.stdin {
            Input::File(path) => super::stdin_file(path, &program, &Default::default())?,
            _ => sys::child_io(IoRequest::Null, true).map_err(io_err)?.0,
        };
        let output = |stream: crate::StreamKind, stdio: Stdio| -> Result<ChildIo> {
            if let Some(file) =
                self.spec
                    .spawn
                    .output_file(stream, &program, &Default::default())?
            {
                return Ok(file);
            }
            let req = match stdio {
                Stdio::Inherit => IoRequest::Inherit,
                _ => IoRequest::Null,
            };
            Ok(sys::child_io(req, false).map_err(io_err)?.0)
        };
        let spec = sys::SpawnSpec {
            path: prepared.path,
            argv: prepared.argv,
            envp: prepared.envp,
            cwd: prepared.cwd,
            stdin,
            stdout: output(crate::StreamKind::Stdout, self.spec.stdout)?,
            stderr: output(crate::StreamKind::Stderr, self.spec.stderr)?,
            setup,
        };
        let pid = sys::spawn_detached(&spec).map_err(|e| {
            crate::launch_prepare::spawn_error(
                e,
                &program,
                &prepared.resolved,
                self.spec.cwd.as_deref(),
            )
        })?;
        tracing::warn!(target: "pkit", program = program.as_str(), pid, "started detached: outside containment");
        Ok(Detached { pid: pid as u32 })
    }
}
