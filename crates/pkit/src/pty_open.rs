//! A pty command at its launch: opening the terminal when a command set
//! with [`Command::pty`](crate::Command::pty) or
//! [`Command::pty_raw`](crate::Command::pty_raw) starts (the builders are
//! with the other spawn options, in `spawn_options/builders.rs`). Part of
//! the start, below the command: it reads the command's start data only.
//! The session's own types ([`Pty`], [`PtyMaster`]) are in `pty.rs`.
//!
//! [`Pty`]: crate::Pty
//! [`PtyMaster`]: crate::PtyMaster

use crate::error::{Error, Result};
use crate::pty::check_size;
use crate::spec::{Input, Spec, Stdio};
use crate::sys::ChildIo;

/// The child's ends of a pty session, and the master.
pub(crate) struct PtyEnds {
    pub stdin: ChildIo,
    pub stdout: ChildIo,
    pub stderr: ChildIo,
    pub master: crate::sys::MasterEnd,
}

/// Opens the terminal of a pty command (`None` without one), after
/// checking that nothing else claims its stdio. `in_pipe`: a pipeline
/// stage (its stdio is the pipeline's).
pub(crate) fn open_for(cmd: &Spec, program: &str, in_pipe: bool) -> Result<Option<PtyEnds>> {
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
    let (master, [stdin, stdout, stderr]) = crate::sys::open_pty(rows, cols)
        .map_err(|e| Error::io(format!("{program}: opening a pseudo-terminal"), e))?;
    Ok(Some(PtyEnds {
        stdin,
        stdout,
        stderr,
        master,
    }))
}
