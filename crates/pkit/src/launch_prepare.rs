//! The checks and conversions before a spawn ([`prepare`]: every failure a
//! caller can act on is a typed error, not an exec errno) and the typed
//! error of a spawn that failed after all ([`spawn_error`]).

use std::ffi::OsStr;
use std::io;

use crate::error::{Error, Result};
use crate::spec::Spec;
use crate::sys;

/// A command's start data, checked and converted for the spawn.
pub(crate) struct Prepared {
    pub(crate) resolved: std::path::PathBuf,
    pub(crate) path: sys::NativeString,
    pub(crate) argv: Vec<sys::NativeString>,
    pub(crate) envp: sys::ChildEnv,
    pub(crate) cwd: Option<sys::NativeString>,
}

/// Checks and converts everything before spawning, so the failures a
/// caller can act on are typed errors and not an exec errno.
pub(crate) fn prepare(cmd: &Spec, program: &str) -> Result<Prepared> {
    cmd.check_passable()?;
    if let Some(dir) = &cmd.cwd {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::CurrentDir {
                    program: program.into(),
                    dir: dir.clone(),
                    source: sys::not_a_directory(),
                })
            }
            Err(source) => {
                return Err(Error::CurrentDir {
                    program: program.into(),
                    dir: dir.clone(),
                    source,
                })
            }
        }
    }
    let (resolved, envp) = cmd.resolve_with_env(program)?;

    let c = |s: &OsStr, what: &dyn Fn() -> String| {
        sys::native_string(s)
            .ok_or_else(|| Error::InvalidInput(format!("{} contains a NUL byte", what())))
    };
    let path = c(resolved.as_os_str(), &|| "the program path".into())?;
    let mut argv = Vec::with_capacity(cmd.args.len() + 1);
    let arg0 = cmd.spawn.arg0().unwrap_or(&cmd.program);
    argv.push(c(arg0, &|| "the program name".into())?);
    for (i, a) in cmd.args.iter().enumerate() {
        argv.push(c(a, &|| format!("argument {}", i + 1))?);
    }
    let cwd = match &cmd.cwd {
        Some(d) => Some(c(d.as_os_str(), &|| "the working directory".into())?),
        None => None,
    };
    Ok(Prepared {
        resolved,
        path,
        argv,
        envp,
        cwd,
    })
}

/// The typed error of a failed spawn of `program` (resolved to `path`,
/// started in `cwd`).
pub(crate) fn spawn_error(
    e: sys::SpawnError,
    program: &str,
    path: &std::path::Path,
    cwd: Option<&std::path::Path>,
) -> Error {
    use std::path::Path;
    match e {
        sys::SpawnError::Exec(source) => match sys::exec_failure(&source) {
            // The file was there when resolved: if it still is, what is
            // missing is what it needs to run (its #! interpreter, or the
            // dynamic loader of a binary), and that is named.
            sys::ExecFailure::Missing => match sys::missing_interpreter(path) {
                Some(why) => Error::Spawn {
                    program: program.into(),
                    source: io::Error::new(io::ErrorKind::NotFound, why),
                },
                None => Error::NotFound {
                    program: program.into(),
                    path_searched: false,
                },
            },
            // The program's own path can't be followed: missing, as the
            // look before the spawn found it (the same `stat`, see
            // `resolve_to_start`); else what it needs to run can't be, and
            // the errno says why.
            sys::ExecFailure::Unreachable if std::fs::metadata(path).is_err() => Error::NotFound {
                program: program.into(),
                path_searched: false,
            },
            sys::ExecFailure::NotExecutable => Error::NotExecutable {
                program: program.into(),
                path: path.to_path_buf(),
            },
            sys::ExecFailure::Unreachable | sys::ExecFailure::Other => Error::Spawn {
                program: program.into(),
                source,
            },
        },
        sys::SpawnError::Step(step, source) => Error::ChildSetup {
            program: program.into(),
            step,
            source,
        },
        sys::SpawnError::Chdir(source) => Error::CurrentDir {
            program: program.into(),
            dir: cwd.map(Path::to_path_buf).unwrap_or_default(),
            source,
        },
        sys::SpawnError::Unsupported(operation, mechanism, reason) => Error::Unsupported {
            operation,
            mechanism,
            reason,
        },
        sys::SpawnError::Refused(source) | sys::SpawnError::Os(source) => Error::Spawn {
            program: program.into(),
            source,
        },
    }
}
