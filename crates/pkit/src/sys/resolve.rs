//! Resolving a program name on `PATH`, in the parent, before spawning, so
//! that a missing program is a precise error rather than an exec failure.

#[cfg(unix)]
use std::ffi::OsStr;
#[cfg(unix)]
use std::os::unix::ffi::{OsStrExt, OsStringExt};
#[cfg(unix)]
use std::path::Path;
use std::path::PathBuf;

/// Why a program could not be resolved.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// Nothing of that name on the searched path (or at the given path).
    NotFound { path_searched: bool },
    /// Found, but not executable by us; or where it would be, a directory
    /// on the way to it this user may not search (`EACCES`, as `execvp`
    /// reports it).
    NotExecutable(PathBuf),
    /// The program is named by a relative path and this process's working
    /// directory can't be read (removed?). A relative or empty `PATH`
    /// entry is skipped then, as a missing directory is.
    NoWorkingDir(std::io::Error),
}

#[cfg(unix)]
/// The search path used when neither the command nor the parent has `PATH`.
pub(crate) const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

#[cfg(unix)]
/// Resolves `program` to an absolute path, in this process, before the
/// child changes directory.
///
/// A name containing `/` is a path; a relative one is relative to this
/// process's working directory, never to the child's `current_dir` (the
/// rule is the same on every platform, where `std::process::Command`'s
/// depends on the platform). Any other name is looked up in each directory
/// of `path_var` in order; a relative or empty entry (empty means the
/// current directory, as in `execvp`) is relative to this process's
/// working directory too, and skipped when that can't be read (`execvp`
/// would find nothing there either). A directory this user may not search
/// is skipped as well, but remembered: when no later one holds the
/// program, the answer is `NotExecutable` (`execvp`'s `EACCES`), not
/// `NotFound`. The result is always absolute, so the child executes
/// exactly the file that was checked, whatever its directory.
///
/// `first` are directories searched before `PATH` (for a bare name only),
/// under the same rules.
pub(crate) fn resolve(
    program: &OsStr,
    first: &[PathBuf],
    path_var: Option<&OsStr>,
) -> Result<PathBuf, ResolveError> {
    resolve_with(program, first, path_var, |p| check(p))
}

#[cfg(unix)]
/// [`resolve`] for a start, which executes the result at once: a program
/// named by its path is not looked at before the spawn (no system call):
/// `execve` judges it, and the start fails with the error [`check`] would
/// have given. Missing (`ENOENT`, or `ENOTDIR`, `ELOOP`, `ENAMETOOLONG`
/// for the path itself) is [`NotFound`](ResolveError::NotFound) without a
/// search, as a failed look is; a directory, a file without an exec bit,
/// or one only the kernel refuses (another user's `0700` file, a `noexec`
/// mount) is `EACCES`, hence
/// [`NotExecutable`](ResolveError::NotExecutable) with the same path (see
/// `spawn_error` and `exec_failure`). A name found on `PATH` keeps the
/// full [`check`]: there a candidate that can't be executed must be
/// skipped for the next directory, as `execvp` does, so the answer is
/// needed before spawning.
pub(crate) fn resolve_to_start(
    program: &OsStr,
    first: &[PathBuf],
    path_var: Option<&OsStr>,
) -> Result<PathBuf, ResolveError> {
    resolve_with(program, first, path_var, |_| Check::Executable)
}

#[cfg(unix)]
/// [`resolve`], with `named` checking a program named by its path.
fn resolve_with(
    program: &OsStr,
    first: &[PathBuf],
    path_var: Option<&OsStr>,
    named: fn(&Path) -> Check,
) -> Result<PathBuf, ResolveError> {
    if program.is_empty() {
        return Err(ResolveError::NotFound {
            path_searched: false,
        });
    }
    // Read at most once, and only when something is relative.
    let mut owner_dir: Option<PathBuf> = None;
    let mut absolute = |p: &Path| -> Result<PathBuf, ResolveError> {
        if p.is_absolute() {
            return Ok(p.to_path_buf());
        }
        if owner_dir.is_none() {
            owner_dir = Some(std::env::current_dir().map_err(ResolveError::NoWorkingDir)?);
        }
        Ok(owner_dir.as_ref().expect("just set").join(p))
    };
    if program.as_bytes().contains(&b'/') {
        let full = absolute(Path::new(program))?;
        return match named(&full) {
            Check::Executable => Ok(full),
            Check::NotExecutable | Check::Denied => Err(ResolveError::NotExecutable(full)),
            Check::Missing => Err(ResolveError::NotFound {
                path_searched: false,
            }),
        };
    }
    let search = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut not_executable = None;
    let dirs = first
        .iter()
        .map(|p| p.as_os_str().as_bytes())
        .chain(search.as_bytes().split(|&b| b == b':'))
        .map(|dir| if dir.is_empty() { &b"."[..] } else { dir });
    // A directory named twice (a `PATH` that repeats an entry, as one
    // extended by several profile scripts often does) is looked in once:
    // the second look could only find what the first did. The names are
    // compared as bytes (a `Path` comparison parses both into components),
    // so `/usr/bin` and `/usr/bin/` are two looks; past `SEEN` distinct
    // entries, a repeat is looked in again (the same answer, one call more).
    const SEEN: usize = 32;
    let mut seen: [&[u8]; SEEN] = [&[]; SEEN];
    let mut seen_len = 0;
    // Every candidate is built in this one buffer, NUL-terminated for the
    // system calls, and it becomes the answer: no allocation or copy per
    // directory looked in.
    let mut candidate: Vec<u8> = Vec::with_capacity(128);
    for dir in dirs {
        if seen[..seen_len].contains(&dir) {
            continue;
        }
        if seen_len < SEEN {
            seen[seen_len] = dir;
            seen_len += 1;
        }
        candidate.clear();
        if dir.first() == Some(&b'/') {
            candidate.extend_from_slice(dir);
        } else {
            match absolute(Path::new(OsStr::from_bytes(dir))) {
                Ok(d) => candidate.extend_from_slice(d.as_os_str().as_bytes()),
                // An entry we can't place is skipped, as a missing one is.
                Err(_) => continue,
            }
        }
        if candidate.last() != Some(&b'/') {
            candidate.push(b'/');
        }
        candidate.extend_from_slice(program.as_bytes());
        let len = candidate.len();
        candidate.push(0);
        // A NUL inside (a `PATH` entry or a name holding one) names no file.
        let found = match std::ffi::CStr::from_bytes_with_nul(&candidate) {
            Ok(c) => check(c),
            Err(_) => Check::Missing,
        };
        candidate.truncate(len);
        match found {
            Check::Executable => {
                return Ok(PathBuf::from(std::ffi::OsString::from_vec(candidate)));
            }
            // A directory we may not search may hold it: as `execvp`
            // does, the search goes on, and ends in `EACCES`.
            Check::NotExecutable | Check::Denied => {
                not_executable.get_or_insert_with(|| PathBuf::from(OsStr::from_bytes(&candidate)));
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

#[cfg(unix)]
enum Check {
    Executable,
    NotExecutable,
    /// `stat` said `EACCES`: a directory on the way may not be searched.
    Denied,
    Missing,
}

#[cfg(unix)]
/// Whether `path` is a regular file this process may execute: a look at
/// its type and mode (one `stat`; a file without any exec bit refuses
/// every user, root included), then `access` for what only the kernel can
/// judge (owner and group, ACLs, a `noexec` mount). A `stat` refused for
/// lack of search permission on a directory is `Denied`; any other failure
/// is `Missing`. A `&CStr` is passed to both calls as it is; a `&Path` is
/// copied to a C string for each.
fn check<P: rustix::path::Arg + Copy>(path: P) -> Check {
    use rustix::fs::FileType;
    match rustix::fs::stat(path) {
        Ok(st)
            if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                && st.st_mode & 0o111 != 0 =>
        {
            if rustix::fs::access(path, rustix::fs::Access::EXEC_OK).is_err() {
                Check::NotExecutable
            } else {
                Check::Executable
            }
        }
        Ok(_) => Check::NotExecutable,
        Err(rustix::io::Errno::ACCESS) => Check::Denied,
        Err(_) => Check::Missing,
    }
}

#[cfg(unix)]
/// Why executing `path`, a file that exists, said `ENOENT`: its `#!`
/// interpreter is missing (named, with the path as the script gives it), or
/// for a binary, its dynamic loader. `None` when `path` itself is gone.
pub(crate) fn missing_interpreter(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut head = [0u8; 256];
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let head = &head[..n];
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let interpreter = line
            .split(|&b| b == b' ' || b == b'\t')
            .find(|w| !w.is_empty())
            .unwrap_or_default();
        return Some(format!(
            "the script's interpreter {} (its #! line) does not exist",
            String::from_utf8_lossy(interpreter)
        ));
    }
    Some(if head.starts_with(b"\x7fELF") {
        "the program's dynamic loader (its ELF interpreter) does not exist".to_string()
    } else {
        "the file exists but the kernel could not find what it needs to run it".to_string()
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// The candidate built in one buffer is the path `Path::join` gives:
    /// one separator after a directory with or without a trailing `/`,
    /// repeated and missing entries skipped, a relative or empty entry
    /// placed in this process's directory, `first` before `PATH`.
    #[test]
    fn a_path_search_names_the_file_as_join_would() {
        use std::os::unix::fs::PermissionsExt;
        // A directory of our own holding an executable `tool`, so that the
        // answer doesn't depend on where this system keeps its programs.
        let dir = std::env::temp_dir().join(format!("pkit-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tool = dir.join("tool");
        std::fs::write(&tool, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.to_str().unwrap();
        let found = |first: &[PathBuf], path: &str| {
            resolve("tool".as_ref(), first, Some(OsStr::new(path))).ok()
        };
        for path in [
            format!("{d}/"),
            d.to_string(),
            format!("/nonexistent-pkit:{d}/:{d}"),
            format!("/nonexistent-pkit:/nonexistent-pkit:{d}"),
        ] {
            assert_eq!(found(&[], &path), Some(tool.clone()), "{path}");
        }
        let first = [
            PathBuf::from("/nonexistent-pkit"),
            PathBuf::from(format!("{d}/")),
        ];
        assert_eq!(found(&first, "/nonexistent-pkit"), Some(tool.clone()));
        // A relative entry is placed in this process's directory.
        let here = std::env::current_dir().unwrap();
        let mut rel = PathBuf::new();
        for _ in here.components().skip(1) {
            rel.push("..");
        }
        let rel = rel.join(dir.strip_prefix("/").unwrap());
        assert_eq!(
            found(&[], &format!("/nonexistent-pkit:{}", rel.display())),
            Some(here.join(&rel).join("tool"))
        );
        assert_eq!(found(&[], "/nonexistent-pkit:/nonexistent-pkit"), None);
        // An empty entry is this process's directory, where no `tool` is.
        assert_eq!(found(&[], ":"), None);
        // A file without an exec bit is skipped, and named if nothing else is.
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            resolve("tool".as_ref(), &[], Some(OsStr::new(d))),
            Err(ResolveError::NotExecutable(p)) if p == tool
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
