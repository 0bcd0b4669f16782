//! pkit's own exit statuses, shared by every subcommand. Any other status
//! is the program's: its code, or 128+N when signal N killed it.

/// Exit status for pkit's own failures (bad usage, no container).
pub const EXIT_OWN_FAILURE: u8 = 125;

/// `pkit run`: the timeout fired (as timeout(1)). `pkit supervise`: the
/// last run failed its health check — it never became healthy, whether
/// pkit killed it when `--health-timeout` ran out or it ended first (even
/// with code 0), so a supervisor that gave up on it never reports success.
pub const EXIT_TIMEOUT: u8 = 124;

/// The program was found but could not be run: no permission, not a
/// regular file, a binary the kernel can't run, or its exec failed for
/// another reason (its arguments and environment too large, E2BIG; its
/// `#!` interpreter missing or unreachable; ETXTBSY...). An executable
/// file with neither `#!` nor an ELF header is run by `/bin/sh` instead
/// (`crate::script`), but not as another user.
pub const EXIT_NOT_EXECUTABLE: u8 = 126;

/// The program was not found: no file at its path or in any directory of
/// `PATH` (a path that can't be followed to a file, ELOOP or ENAMETOOLONG,
/// is not found either).
pub const EXIT_NOT_FOUND: u8 = 127;

/// The status for a program that could not be started: 127 not found, 126
/// found but its exec failed, else 125 (pkit could not make the process:
/// a fork's EAGAIN or ENOMEM, a setup step in the child, the container).
pub fn start_failure(e: &pkit::Error) -> u8 {
    match e {
        pkit::Error::NotFound { .. } => EXIT_NOT_FOUND,
        pkit::Error::NotExecutable { .. } => EXIT_NOT_EXECUTABLE,
        pkit::Error::Spawn { source, .. } if exec_failed(source) => EXIT_NOT_EXECUTABLE,
        _ => EXIT_OWN_FAILURE,
    }
}

/// Whether a start's failure is the exec's: the errors only execve gives,
/// and the library's missing-interpreter error (a `NotFound` it words
/// itself, with no errno). ENOMEM and EAGAIN (also a fork's) and EPERM
/// (the library's not-executable case at exec) are not among them.
#[cfg(unix)]
fn exec_failed(e: &std::io::Error) -> bool {
    match e.raw_os_error() {
        Some(n) => [
            libc::E2BIG,
            libc::ELOOP,
            libc::ENAMETOOLONG,
            libc::ETXTBSY,
            libc::ENOEXEC,
            libc::EACCES,
            libc::EISDIR,
            #[cfg(target_os = "linux")]
            libc::ELIBBAD,
        ]
        .contains(&n),
        None => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Windows: the library tells a bad executable (NotExecutable) itself;
/// any other failure to start is counted as pkit's.
#[cfg(windows)]
fn exec_failed(_: &std::io::Error) -> bool {
    false
}

/// `pkit run`: the timeout's SIGKILL ended the program (after
/// `--kill-after`, or `-s KILL` itself), as timeout(1).
pub const EXIT_KILLED: u8 = signalled(9);

/// The status a shell shows for a program killed by signal `sig`: 128+N.
pub const fn signalled(sig: i32) -> u8 {
    128u8.saturating_add(sig as u8)
}

/// `pkit run`: pkit's own output of the run (the captured output it
/// prints at the end, the report, `--pty`'s relay of the program's
/// terminal; `pkit doctor`'s findings) could not be written because its reader
/// went away (EPIPE: `pkit run --capture -- job | head -1`). 141, what a
/// shell shows for a writer killed by SIGPIPE, as GNU tools end there with
/// SIGPIPE at its default. pkit's own SIGPIPE is ignored (Rust's runtime
/// sets that before `main`; the program gets the default back), so it is
/// told by the write's EPIPE, and says so on stderr first, as GNU tools
/// with SIGPIPE ignored do.
pub const EXIT_BROKEN_PIPE: u8 = 128 + 13;

/// pkit's own output of a run that could not be written: what, and why.
/// Its status replaces the program's (as timeout(1)'s own write error
/// does): the output asked for is lost.
#[derive(Debug)]
pub struct WriteFailed {
    /// `the captured stdout`, `the captured stderr`, `the report`, `the
    /// program's output` (`--pty`'s relay of its terminal).
    pub what: &'static str,
    pub source: std::io::Error,
}

impl WriteFailed {
    /// [`EXIT_BROKEN_PIPE`] when the reader went away; any other failure
    /// (`>/dev/full`'s ENOSPC, EIO) is pkit's: [`EXIT_OWN_FAILURE`], as
    /// timeout(1) and env(1) end on their own write error.
    pub fn status(&self) -> u8 {
        match self.source.kind() {
            std::io::ErrorKind::BrokenPipe => EXIT_BROKEN_PIPE,
            _ => EXIT_OWN_FAILURE,
        }
    }

    /// For an error the library kept (a tee's, in the run's `Output`).
    pub fn copy(what: &'static str, e: &std::io::Error) -> WriteFailed {
        let source = match e.raw_os_error() {
            Some(n) => std::io::Error::from_raw_os_error(n),
            None => std::io::Error::new(e.kind(), e.to_string()),
        };
        WriteFailed { what, source }
    }

    /// Says so on stderr (when stderr itself can be written).
    pub fn print(&self) {
        eprintln!("pkit: cannot write {}: {}", self.what, self.source);
    }
}
