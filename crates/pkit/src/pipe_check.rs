//! What a [`Pipe`](crate::Pipe) refuses before it starts any stage: a
//! stage it can't wire, and a stage no OS can be given.

use crate::command::Command;
use crate::error::{Error, Result};
use crate::spec::{Input, Stdio};

/// Refuses, before any stage runs (nothing is started, no group is made):
/// a stage whose own stdin or stdout the chain would replace (the head's
/// stdin and the last stage's stdout are its own): ignored, its input
/// would silently never arrive, its output file never be written, its tee
/// and stdout callback never be called; a pty stage and one with a retry
/// policy; and a stage its start would refuse from its strings alone (a
/// NUL byte in its program, arguments, environment or working directory:
/// `Spec::check_passable`), with the error that start would give, so
/// that the stages ahead of it are never started only to be killed.
pub(crate) fn check_stages(stages: &[Command]) -> Result<()> {
    let last = stages.len() - 1;
    for (i, cmd) in stages.iter().enumerate() {
        let spec = &cmd.spec;
        let stdin_set = i > 0 && !matches!(spec.stdin, Input::Null);
        let stdout_set = i < last
            && (spec.spawn.has_stdout_file()
                || matches!(spec.stdout, Stdio::Null | Stdio::Inherit)
                || spec.io.stdout_tee.is_some()
                || spec.io.on_stdout_line.is_some());
        // A stage can't be replayed alone: its input is gone.
        let retried = cmd.retries();
        let what = match (stdin_set, stdout_set) {
            _ if retried => "it can't be retried alone (its input went by once); a pipeline is not retried",
            _ if last > 0 && spec.spawn.pty.is_some() => "a pty session's stdio is its terminal, and a stage's are the chain's pipes",
            (true, _) => "its stdin is the previous stage's stdout, so it can't have stdin of its own (give the head its input)",
            (_, true) => "its stdout goes to the next stage, so it can't go to a file, /dev/null or the parent's stdout, nor to a stdout tee or line callback",
            _ => continue,
        };
        return Err(stage_error(i, cmd, what.into()));
    }
    for (i, cmd) in stages.iter().enumerate() {
        // Only a stage its runner starts for real is sure to be refused:
        // a test double may play any command.
        if !cmd.run_with().starts_real_only() {
            continue;
        }
        match cmd.spec.check_passable() {
            Err(Error::InvalidInput(why)) => return Err(stage_error(i, cmd, why)),
            other => other?,
        }
    }
    Ok(())
}

/// A refusal of stage `i` (counted from 0), named by its number and program.
fn stage_error(i: usize, cmd: &Command, what: String) -> Error {
    Error::InvalidInput(format!(
        "pipeline stage {} ({}): {what}",
        i + 1,
        cmd.display_name()
    ))
}
