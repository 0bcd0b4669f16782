//! Copies of an [`Error`]: a scripted error is answered to every run.

use std::io;

use crate::error::Error;

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
