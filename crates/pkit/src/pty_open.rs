//! A pty command at its launch: the [`Command::pty`] and
//! [`Command::pty_raw`] settings, and opening the terminal when such a
//! command starts. Above the command; the session's own types ([`Pty`],
//! [`PtyMaster`]) are in `pty.rs`, below it.
//!
//! [`Pty`]: crate::Pty
//! [`PtyMaster`]: crate::PtyMaster

use crate::command::{Command, Input, Stdio};
use crate::error::{Error, Result};
use crate::pty::check_size;
use crate::sys::ChildIo;

impl Command {
    /// Runs the program on a pseudo-terminal of `rows` x `cols` of its own:
    /// its stdin, stdout and stderr are the terminal, it leads a new session
    /// with the terminal as its controlling terminal, and it stays in its
    /// group's container. Its output (stdout and stderr merged, as on any
    /// terminal) is read as stdout: captured, split into lines, matched by
    /// probes. Type into it through [`RunningProcess::pty`](crate::RunningProcess::pty). See the
    /// [module docs](crate::pty) for what changes on a terminal, and for the
    /// process-group mechanism's rule (the session must lead its group).
    ///
    /// The terminal replaces the stdio settings: a command that also sets
    /// stdin input, `stdout`/`stderr` other than piped, a stdout or stderr
    /// file, or `merge_stderr`, fails to start with
    /// [`Error::InvalidInput`]; so does a pipeline stage. A size of 0 rows
    /// or columns is invalid too. Linux (every backend); elsewhere
    /// [`Error::Unsupported`] (see the module docs' **Platforms**).
    pub fn pty(mut self, rows: u16, cols: u16) -> Command {
        self.spawn.pty = Some((rows, cols));
        self.spawn.pty_raw = false;
        self
    }

    /// Like [`pty`](Self::pty), but pkit reads nothing from the terminal:
    /// take its master side with [`RunningProcess::take_pty_master`](crate::RunningProcess::take_pty_master) and
    /// read it yourself (until you do, and while you don't, a program that
    /// writes a lot blocks once the terminal's buffer is full). The
    /// [`Output`](crate::Output) has no stdout, and line streams and probes
    /// see no lines. For relaying a terminal byte for byte.
    pub fn pty_raw(mut self, rows: u16, cols: u16) -> Command {
        self.spawn.pty = Some((rows, cols));
        self.spawn.pty_raw = true;
        self
    }
}

/// The child's ends of a pty session, and the master.
pub(crate) struct PtyEnds {
    pub stdin: ChildIo,
    pub stdout: ChildIo,
    pub stderr: ChildIo,
    pub master: crate::sys::OwnedFd,
}

/// Opens the terminal of a pty command (`None` without one), after
/// checking that nothing else claims its stdio. `in_pipe`: a pipeline
/// stage (its stdio is the pipeline's).
pub(crate) fn open_for(cmd: &Command, program: &str, in_pipe: bool) -> Result<Option<PtyEnds>> {
    let Some((rows, cols)) = cmd.spawn.pty else {
        return Ok(None);
    };
    let invalid = |what: &str| {
        Err(Error::InvalidInput(format!(
            "{program}: a pty session's stdio is its terminal; {what} can't be set too"
        )))
    };
    if let Some((mechanism, reason)) = crate::sys::pty_refusal() {
        return Err(Error::Unsupported {
            operation: "pty",
            mechanism,
            reason: reason.into(),
        });
    }
    check_size(rows, cols).map_err(|e| Error::InvalidInput(format!("{program}: {e}")))?;
    if in_pipe {
        return invalid("a pipeline's stdin/stdout");
    }
    if !matches!(cmd.stdin, Input::Null) {
        return invalid("stdin input");
    }
    if cmd.stdout != Stdio::Piped || cmd.stderr != Stdio::Piped {
        return invalid("stdout or stderr other than piped");
    }
    if cmd.spawn.claims_output() {
        return invalid("a stdout/stderr file or merge_stderr");
    }
    let (master, slave) = crate::sys::open_pty(rows, cols)
        .map_err(|e| Error::io(format!("{program}: opening a pseudo-terminal"), e))?;
    let io_err = |e| Error::io(format!("{program}: opening a pseudo-terminal"), e);
    Ok(Some(PtyEnds {
        stdin: ChildIo::Fd(slave.try_clone().map_err(io_err)?),
        stdout: ChildIo::Fd(slave.try_clone().map_err(io_err)?),
        stderr: ChildIo::Fd(slave),
        master,
    }))
}
