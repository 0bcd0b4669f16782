//! Resolving a program name as Windows does: a name with a directory part
//! is a path; any other is looked up in each `PATH` directory. A name
//! without an extension is tried with each `PATHEXT` extension
//! (`.COM;.EXE;.BAT;.CMD` when unset), in order. A path that names a
//! directory (and no program with an extension added) is not executable.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::super::ResolveError;

/// Resolves `program` to an absolute path, trying `first` before `PATH`.
pub(crate) fn resolve(
    program: &OsStr,
    first: &[PathBuf],
    path_var: Option<&OsStr>,
) -> Result<PathBuf, ResolveError> {
    if program.is_empty() {
        return Err(ResolveError::NotFound {
            path_searched: false,
        });
    }
    let exts = extensions(Path::new(program));
    let as_path = Path::new(program);
    let has_dir = program.to_string_lossy().contains(['/', '\\', ':']);
    if has_dir {
        let full = if as_path.is_absolute() {
            as_path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(ResolveError::NoWorkingDir)?
                .join(as_path)
        };
        // A directory there exists but is no program: not executable, as
        // `execve` says of one on Unix (not "not found").
        return find_in(&full, &exts).ok_or_else(|| match full.is_dir() {
            true => ResolveError::NotExecutable(full.clone()),
            false => ResolveError::NotFound {
                path_searched: false,
            },
        });
    }
    let path: OsString = path_var
        .map(OsStr::to_os_string)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let dirs = first.iter().cloned().chain(std::env::split_paths(&path));
    for dir in dirs {
        if dir.as_os_str().is_empty() {
            continue;
        }
        if let Some(found) = find_in(&dir.join(program), &exts) {
            return Ok(found);
        }
    }
    Err(ResolveError::NotFound {
        path_searched: true,
    })
}

/// The extensions to try: none when the name has one, else `PATHEXT`'s.
fn extensions(program: &Path) -> Vec<OsString> {
    if program.extension().is_some() {
        return vec![OsString::new()];
    }
    let var = std::env::var_os("PATHEXT")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| ".COM;.EXE;.BAT;.CMD".into());
    var.to_string_lossy()
        .split(';')
        .filter(|e| e.starts_with('.'))
        .map(OsString::from)
        .collect()
}

/// The first of `base` + each extension that is a file.
fn find_in(base: &Path, exts: &[OsString]) -> Option<PathBuf> {
    exts.iter().find_map(|e| {
        let mut p = base.as_os_str().to_os_string();
        p.push(e);
        let p = PathBuf::from(p);
        p.is_file().then_some(p)
    })
}

/// What a program needs to run is never named here (Windows says which
/// DLL is missing in its own dialog, not in an error code).
pub(crate) fn missing_interpreter(_path: &Path) -> Option<String> {
    None
}
