//! The verbs that interpret an `Output`, shared by [`Command`](crate::Command)
//! and [`Pipe`](crate::Pipe).

use crate::error::{Error, Result};
use crate::output::{Outcome, Output};

/// Turns a signal or a timeout into the matching error.
fn require_exit(out: Output) -> Result<Output> {
    match out.outcome() {
        Outcome::Exited(_) => Ok(out),
        Outcome::Signalled(_) => Err(Error::Signalled(Box::new(out))),
        Outcome::TimedOut => Err(Error::Timeout(Box::new(out))),
    }
}

/// An exit with a code in `ok` (`[0]` unless the command set
/// `ok_codes`), else the matching error.
pub(crate) fn require_success(out: Output, ok: &[i32]) -> Result<Output> {
    let out = require_exit(out)?;
    match out.code() {
        Some(c) if ok.contains(&c) => Ok(out),
        _ => Err(Error::NonZeroExit(Box::new(out))),
    }
}

pub(crate) fn run(out: Output, ok: &[i32]) -> Result<String> {
    let out = require_success(out, ok)?;
    // A cut stdout is not the program's answer: never hand back part
    // of it as if it were the whole.
    if out.stdout_truncated() {
        return Err(Error::OutputLimit {
            program: out.program.clone(),
            stream: crate::StreamKind::Stdout,
            limit: out.stdout.len(),
            output: Box::new(out),
        });
    }
    // Only the trailing line ending(s) go: leading and inner
    // whitespace is data (`git status --porcelain` starts with a space).
    Ok(out.stdout_str().trim_end_matches(['\n', '\r']).to_string())
}

/// Any exit code, or with `ok_codes` set, one of them.
pub(crate) fn exit_code(out: Output, ok: Option<&[i32]>) -> Result<i32> {
    let out = match ok {
        Some(ok) => require_success(out, ok)?,
        None => require_exit(out)?,
    };
    Ok(out.code().expect("require_exit leaves only exits"))
}

pub(crate) fn probe(out: Output) -> Result<bool> {
    let out = require_exit(out)?;
    match out.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(Error::NonZeroExit(Box::new(out))),
    }
}
