//! [`Reply`]: what a scripted command answers.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::command::Command;
use crate::error::{Error, Result};
use crate::output::{Outcome, Output};
use crate::runner::{Bounds, Ended};

/// What a [`ScriptedRunner`](super::ScriptedRunner) answers for a command.
/// A reply can be given any number of times: each run gets its own copy.
#[derive(Clone)]
pub struct Reply(Kind);

#[derive(Clone)]
enum Kind {
    /// Completed: the `Output` is made for the command's program.
    Done {
        outcome: Outcome,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// Completed with this exact `Output`.
    Output(Box<Output>),
    /// Could not run (each run gets a copy of the error).
    Err(Arc<Error>),
    /// Never completes on its own.
    Pending,
}

impl Reply {
    /// The program exits 0 after writing `stdout`.
    pub fn ok(stdout: impl Into<Vec<u8>>) -> Reply {
        Reply(Kind::Done {
            outcome: Outcome::Exited(0),
            stdout: stdout.into(),
            stderr: Vec::new(),
        })
    }

    /// The program exits with `code` after writing `stderr`.
    pub fn fail(code: i32, stderr: impl Into<Vec<u8>>) -> Reply {
        Reply(Kind::Done {
            outcome: Outcome::Exited(code),
            stdout: Vec::new(),
            stderr: stderr.into(),
        })
    }

    /// The run exceeded its timeout ([`Output::timed_out`]); `run`,
    /// `exit_code` and `probe` turn it into [`Error::Timeout`].
    pub fn timed_out() -> Reply {
        Reply(Kind::Done {
            outcome: Outcome::TimedOut,
            stdout: Vec::new(),
            stderr: Vec::new(),
        })
    }

    /// The program was killed by signal `sig` (a raw number, e.g.
    /// `Signal::Kill.as_raw()`).
    pub fn signalled(sig: i32) -> Reply {
        Reply(Kind::Done {
            outcome: Outcome::Signalled(sig),
            stdout: Vec::new(),
            stderr: Vec::new(),
        })
    }

    /// The run could not happen: every verb returns (a copy of) `error`,
    /// as when the program is not found or can't start.
    pub fn err(error: Error) -> Reply {
        Reply(Kind::Err(Arc::new(error)))
    }

    /// The run never completes on its own: it ends with
    /// [`Error::Cancelled`] when the command's cancel token fires, with a
    /// timed-out `Output` when the command's timeout passes, and otherwise
    /// only when its future is dropped. For testing cancellation and
    /// timeout paths.
    pub fn pending() -> Reply {
        Reply(Kind::Pending)
    }

    /// Answers with exactly `output` (build it with
    /// [`Output::builder`]).
    pub fn output(output: Output) -> Reply {
        Reply(Kind::Output(Box::new(output)))
    }

    /// The answer to one run of `cmd`.
    pub(crate) async fn answer(&self, cmd: &Command) -> Result<Output> {
        let bounds = Bounds {
            timeout: cmd.timeout,
            // A pending reply never writes: its inactivity timeout fires.
            inactivity: cmd.run.inactivity,
            cancel: cmd.cancel.iter().collect(),
            limit: Default::default(),
        };
        // As the real runner: a run cancelled before it starts is not run.
        if bounds.cancelled() {
            return Err(cancelled(cmd));
        }
        match &self.0 {
            Kind::Done {
                outcome,
                stdout,
                stderr,
            } => Ok(Output::builder(cmd.display_name())
                .outcome(*outcome)
                .stdout(stdout.clone())
                .stderr(stderr.clone())
                .build()),
            Kind::Output(out) => Ok((**out).clone()),
            Kind::Err(e) => Err(copy_error(e)),
            Kind::Pending => {
                let never = std::future::pending::<Result<()>>();
                match bounds.wait(never).await? {
                    Ended::TimedOut => Ok(Output::builder(cmd.display_name())
                        .outcome(Outcome::TimedOut)
                        .duration(cmd.timeout.unwrap_or(Duration::ZERO))
                        .build()),
                    Ended::Inactive => Ok(Output::builder(cmd.display_name())
                        .outcome(Outcome::TimedOut)
                        .inactivity_timed_out(true)
                        .duration(cmd.run.inactivity.unwrap_or(Duration::ZERO))
                        .build()),
                    _ => Err(cancelled(cmd)),
                }
            }
        }
    }
}

impl std::fmt::Debug for Reply {
    /// Shows the kind of reply, not its output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::Done { outcome, .. } => write!(f, "Reply({outcome})"),
            Kind::Output(o) => write!(f, "Reply({})", o.outcome()),
            Kind::Err(e) => write!(f, "Reply(error: {:?})", e.kind()),
            Kind::Pending => f.write_str("Reply(pending)"),
        }
    }
}

fn cancelled(cmd: &Command) -> Error {
    Error::Cancelled {
        program: cmd.display_name(),
    }
}

/// The same I/O error again: the same OS error number, or the same kind
/// and message.
fn copy_io(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(n) => io::Error::from_raw_os_error(n),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// A copy of `e` with the same variant, fields and message (a parser's
/// error becomes one with the same text).
pub(crate) fn copy_error(e: &Error) -> Error {
    match e {
        Error::NotFound {
            program,
            path_searched,
        } => Error::NotFound {
            program: program.clone(),
            path_searched: *path_searched,
        },
        Error::NotExecutable { program, path } => Error::NotExecutable {
            program: program.clone(),
            path: path.clone(),
        },
        Error::CurrentDir {
            program,
            dir,
            source,
        } => Error::CurrentDir {
            program: program.clone(),
            dir: dir.clone(),
            source: copy_io(source),
        },
        Error::Spawn { program, source } => Error::Spawn {
            program: program.clone(),
            source: copy_io(source),
        },
        Error::ChildSetup {
            program,
            step,
            source,
        } => Error::ChildSetup {
            program: program.clone(),
            step: *step,
            source: copy_io(source),
        },
        Error::NonZeroExit(o) => Error::NonZeroExit(o.clone()),
        Error::Signalled(o) => Error::Signalled(o.clone()),
        Error::Timeout(o) => Error::Timeout(o.clone()),
        Error::Cancelled { program } => Error::Cancelled {
            program: program.clone(),
        },
        Error::OutputLimit {
            program,
            stream,
            limit,
            output,
        } => Error::OutputLimit {
            program: program.clone(),
            stream: *stream,
            limit: *limit,
            output: output.clone(),
        },
        Error::NotReady { program, reason } => Error::NotReady {
            program: program.clone(),
            reason: reason.clone(),
        },
        Error::Unsupported {
            operation,
            mechanism,
            reason,
        } => Error::Unsupported {
            operation,
            mechanism: *mechanism,
            reason: reason.clone(),
        },
        Error::ResourceLimit { cap, reason } => Error::ResourceLimit {
            cap,
            reason: reason.clone(),
        },
        Error::MechanismUnavailable { requested, reason } => Error::MechanismUnavailable {
            requested: *requested,
            reason: reason.clone(),
        },
        Error::InvalidInput(s) => Error::InvalidInput(s.clone()),
        Error::Parse {
            program,
            target,
            source,
        } => Error::Parse {
            program: program.clone(),
            target,
            source: Box::new(io::Error::other(source.to_string())),
        },
        Error::Json {
            program,
            target,
            line,
            column,
            problem,
        } => Error::Json {
            program: program.clone(),
            target,
            line: *line,
            column: *column,
            problem,
        },
        Error::Unscripted { program, args } => Error::Unscripted {
            program: program.clone(),
            args: args.clone(),
        },
        Error::CassetteMiss { program, args, cwd } => Error::CassetteMiss {
            program: program.clone(),
            args: args.clone(),
            cwd: cwd.clone(),
        },
        Error::Io { context, source } => Error::Io {
            context: context.clone(),
            source: copy_io(source),
        },
    }
}
