//! A program file the kernel refused to execute although it may (ENOEXEC:
//! a script without a `#!` line) is run by `/bin/sh`, as execvp(3) runs
//! it, and so timeout(1) and env(1). `pkit run` and `pkit supervise`
//! share the rule.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use pkit::{Command, Error};

/// The script `/bin/sh` should run when a start failed with `e`: the path
/// as the library resolved it (found on `PATH`, or a relative one made
/// absolute against pkit's working directory, not `-C`'s), when that file
/// is one execvp(3) would hand to the shell. `None` for any other failure,
/// and when the program is to run as another user (`--uid`/`--gid`):
/// whether that one may execute it is not pkit's to tell.
pub fn fallback(e: &Error, as_other_user: bool) -> Option<PathBuf> {
    match e {
        Error::NotExecutable { path, .. } if !as_other_user && crate::sys::shell_script(path) => {
            Some(path.clone())
        }
        _ => None,
    }
}

/// The command of `program` with `args`; with `script` (see [`fallback`]),
/// `/bin/sh SCRIPT ARGS...` instead.
pub fn command(program: &OsStr, args: &[std::ffi::OsString], script: Option<&Path>) -> Command {
    match script {
        Some(path) => Command::new("/bin/sh").arg(path),
        None => Command::new(program),
    }
    .args(args)
}
