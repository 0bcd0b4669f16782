//! Resolving a program name on `PATH`, in the parent, before spawning, so
//! that a missing program is a precise error rather than an exec failure.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why a program could not be resolved.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// Nothing of that name on the searched path (or at the given path).
    NotFound { path_searched: bool },
    /// Found, but not executable by us.
    NotExecutable(PathBuf),
}

/// The search path used when neither the command nor the parent has `PATH`.
pub(crate) const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Resolves `program` to an absolute path.
///
/// A name containing `/` is taken as a path (relative to `cwd`, the child's
/// working directory, when one is set); anything else is looked up in each
/// directory of `path_var` in order.
pub(crate) fn resolve(
    program: &OsStr,
    path_var: Option<&OsStr>,
    cwd: Option<&Path>,
) -> Result<PathBuf, ResolveError> {
    if program.is_empty() {
        return Err(ResolveError::NotFound {
            path_searched: false,
        });
    }
    if program.as_bytes().contains(&b'/') {
        let p = Path::new(program);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            let base = match cwd {
                Some(dir) => dir.to_path_buf(),
                None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            };
            base.join(p)
        };
        return match check(&full) {
            Check::Executable => Ok(full),
            Check::NotExecutable => Err(ResolveError::NotExecutable(full)),
            Check::Missing => Err(ResolveError::NotFound {
                path_searched: false,
            }),
        };
    }
    let search = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut not_executable = None;
    for dir in search.as_bytes().split(|&b| b == b':') {
        // An empty entry means the current directory, as in execvp(3).
        let dir = if dir.is_empty() {
            cwd.map(Path::to_path_buf)
                .unwrap_or_else(|| std::env::current_dir().unwrap_or_default())
        } else {
            PathBuf::from(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(program);
        match check(&candidate) {
            Check::Executable => return Ok(candidate),
            Check::NotExecutable => {
                not_executable.get_or_insert(candidate);
            }
            Check::Missing => {}
        }
    }
    match not_executable {
        Some(p) => Err(ResolveError::NotExecutable(p)),
        None => Err(ResolveError::NotFound {
            path_searched: true,
        }),
    }
}

enum Check {
    Executable,
    NotExecutable,
    Missing,
}

fn check(path: &Path) -> Check {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {
            if rustix::fs::access(path, rustix::fs::Access::EXEC_OK).is_ok() {
                Check::Executable
            } else {
                Check::NotExecutable
            }
        }
        Ok(_) => Check::NotExecutable,
        Err(_) => Check::Missing,
    }
}
