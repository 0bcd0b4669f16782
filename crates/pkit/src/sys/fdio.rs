//! Unix descriptors for a child's stdio and for the pipes pkit reads and
//! writes (the Windows counterparts are in `windows/io.rs`).

use std::ffi::{c_char, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use super::{fault, ChildSetup, IoRequest};

/// A string as `execve` takes it.
pub(crate) type NativeString = CString;

/// `s` as the OS takes it; `None` if it contains a NUL byte.
pub(crate) fn native_string(s: &OsStr) -> Option<NativeString> {
    CString::new(s.as_bytes()).ok()
}

/// The `envp` vector a child is started with: `env`'s strings,
/// null-terminated. Always a vector of pkit's own: an inherited
/// environment was copied at the start (under std's environment lock), so
/// the child never reads the C library's `environ`, which another thread's
/// `set_var` may be rewriting while a vfork-style child runs.
pub(crate) fn envp_vector(env: &super::ChildEnv) -> &[*const c_char] {
    env.block().pointers()
}

/// Pointers to each string, then a null pointer (an `argv` or `envp`).
pub(crate) fn nul_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The environment of a child whose command changes no variable: a copy
/// of this process's, made now under std's environment lock (`vars_os`).
/// A child handed the C library's `environ` itself would read it while
/// another thread's `set_var` may be rewriting it (std's own spawn holds
/// that lock while it starts a child, for this reason); without it once
/// the program opted in (`env_block::inherited`). In this process's order.
pub(crate) fn inherited_env() -> super::ChildEnv {
    super::ChildEnv::Exactly(super::env_block::inherited())
}

/// Exactly `vars` (`None`: a NUL byte); tests' (see `derived_env`).
#[cfg(test)]
pub(crate) fn exact_env<K, V>(vars: &[(K, V)]) -> Option<super::ChildEnv>
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    super::env_block::exact(vars).map(super::ChildEnv::Exactly)
}

/// Whether an environment variable's name is the search path's (`PATH`;
/// names are case-sensitive here).
pub(crate) fn is_path_var(name: &OsStr) -> bool {
    name.as_bytes() == b"PATH"
}

/// An environment variable's name as compared: as it is (names are
/// case-sensitive here).
pub(crate) fn env_name_key(name: &OsStr) -> std::borrow::Cow<'_, OsStr> {
    std::borrow::Cow::Borrowed(name)
}

/// What an exec failure means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecFailure {
    /// The file (or what it needs to run) is missing.
    Missing,
    /// The file is there but can't be executed.
    NotExecutable,
    /// A path that can't be followed (too many symbolic links, too long):
    /// the program's own, or one it needs to run (its interpreter's).
    Unreachable,
    /// Anything else.
    Other,
}

/// Classifies an exec failure by its errno.
pub(crate) fn exec_failure(e: &io::Error) -> ExecFailure {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => ExecFailure::Missing,
        Some(libc::ELOOP | libc::ENAMETOOLONG) => ExecFailure::Unreachable,
        Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EISDIR) | Some(libc::EPERM) => {
            ExecFailure::NotExecutable
        }
        _ => ExecFailure::Other,
    }
}

/// The error "not a directory", for a working directory that is a file.
pub(crate) fn not_a_directory() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOTDIR)
}

/// The parent's async end of an output pipe.
pub(crate) type PipeReceiver = tokio::net::unix::pipe::Receiver;
/// The parent's async end of an input pipe: pkit's writes to it (stdin
/// bytes, a stdin reader's copy, [`ChildStdin`](crate::ChildStdin)) fail
/// with `BrokenPipe` once the child closed its stdin, and never raise
/// SIGPIPE in this process (see [`write_quiet`]).
#[derive(Debug)]
pub(crate) struct PipeSender(pub(super) tokio::net::unix::pipe::Sender);

impl tokio::io::AsyncWrite for PipeSender {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_io(|| write_quiet(self.0.as_fd(), buf)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return std::task::Poll::Ready(done),
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// One `write(2)` to a pipe that raises no SIGPIPE in this process when
/// the reader is gone (`EPIPE` is returned as `BrokenPipe`): pkit writes a
/// child's input on the application's behalf, and an application that
/// does not ignore SIGPIPE (a CLI that restores its default, a C host)
/// must not die of a child that exited without reading. Where SIGPIPE is
/// ignored (Rust programs' default) it is a plain `write`, after one
/// `sigaction` query; otherwise SIGPIPE is blocked in this thread for the
/// write, and one it raised is taken off before the mask is restored.
pub(crate) fn write_quiet(fd: std::os::fd::BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: a query only (no new action); `old` is written by the call.
    let ignored = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    };
    if ignored {
        return rustix::io::write(fd, bytes).map_err(io::Error::from);
    }
    // SAFETY: plain signal-set and thread-mask calls on local sets; the
    // previous mask is restored before returning. `sigwait` is called
    // only for a SIGPIPE pending on this thread (blocked), so it returns
    // at once.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
        let pending_before = sigpipe_pending();
        let done = rustix::io::write(fd, bytes);
        if done == Err(rustix::io::Errno::PIPE) && !pending_before && sigpipe_pending() {
            let mut taken = 0;
            libc::sigwait(&pipe, &mut taken);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        done.map_err(io::Error::from)
    }
}

/// [`write_quiet`], or a plain `write` when `held` is the pipe's read end
/// (the child's stdin as spawned) open in this process for the call: with
/// a reader open a pipe write can't fail with `EPIPE`, so it raises no
/// SIGPIPE whatever the disposition, and needs no `sigaction` query.
/// Bytes a gone child never read are freed with the pipe's last end.
fn write_held(
    fd: std::os::fd::BorrowedFd<'_>,
    bytes: &[u8],
    held: Option<&ChildIo>,
) -> io::Result<usize> {
    match held {
        Some(ChildIo::Fd(_)) => rustix::io::write(fd, bytes).map_err(io::Error::from),
        _ => write_quiet(fd, bytes),
    }
}

/// Whether SIGPIPE is pending for this thread or the process.
fn sigpipe_pending() -> bool {
    // SAFETY: fills a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set) == 0 && libc::sigismember(&set, libc::SIGPIPE) == 1
    }
}

/// Registers the parent's end of an output pipe with the runtime.
///
/// `fd` is the parent's end of a pipe [`child_io`] made (its only
/// source): it is made non-blocking with one `fcntl` and registered
/// without tokio's checks (an `fstat` that it is a pipe and an `F_GETFL`),
/// two system calls fewer per pipe. Only the parent's end changes: the
/// child's end of the pipe stays blocking.
pub(crate) fn pipe_receiver(fd: OwnedFd) -> io::Result<PipeReceiver> {
    rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK)?;
    PipeReceiver::from_file_unchecked(std::fs::File::from(fd))
}

/// Registers the parent's end of an input pipe with the runtime (as
/// [`pipe_receiver`]).
pub(crate) fn pipe_sender(fd: OwnedFd) -> io::Result<PipeSender> {
    rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK)?;
    tokio::net::unix::pipe::Sender::from_file_unchecked(std::fs::File::from(fd)).map(PipeSender)
}

/// Writes what fits of `bytes` into a child's input pipe at once (the
/// parent's end, made non-blocking), before it is registered with the
/// runtime: most inputs fit in the pipe's buffer and need no registration,
/// no task and no wait for the reactor. Returns how many bytes went in (0
/// when the pipe is full). A child that closed its stdin (`EPIPE`) counts
/// as all written, as the async write gives up on it too; it raises no
/// SIGPIPE here (see [`write_quiet`] and [`write_held`]).
///
/// `held` (the pipe's read end, open here: see [`write_held`]): on Linux
/// an input of at most `SMALL_WRITE` bytes, which the fresh pipe takes
/// whole, is one plain `write` on the blocking end: no `fcntl`, no query.
pub(crate) fn write_now(fd: &OwnedFd, bytes: &[u8], held: Option<&ChildIo>) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    if matches!(held, Some(ChildIo::Fd(_))) && bytes.len() <= SMALL_WRITE {
        write_small(fd.as_fd(), bytes, held);
        return Ok(bytes.len());
    }
    rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK)?;
    match write_held(fd.as_fd(), bytes, held) {
        Ok(n) => Ok(n),
        Err(e) => match e.raw_os_error() {
            Some(libc::EPIPE) => Ok(bytes.len()),
            Some(libc::EAGAIN | libc::EINTR) => Ok(0),
            _ => Err(e),
        },
    }
}

/// What a child gets on one of its stdio fds.
#[derive(Debug)]
pub(crate) enum ChildIo {
    /// The parent's own fd.
    Inherit,
    /// This fd (>= 3, close-on-exec; dup2'ed into place in the child).
    Fd(OwnedFd),
    /// `/dev/null`, from one descriptor this process keeps open for all
    /// spawns (>= 3, close-on-exec, read-write).
    Null(std::os::fd::RawFd),
    /// For stderr: whatever the child's stdout is (`2>&1`).
    SameAsStdout,
}

/// A fully prepared spawn: all strings are C strings, the program is
/// resolved, the stdio fds are open.
#[derive(Debug)]
pub(crate) struct SpawnSpec {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: super::ChildEnv,
    pub cwd: Option<CString>,
    pub stdin: ChildIo,
    pub stdout: ChildIo,
    pub stderr: ChildIo,
    /// The spawn options the child applies to itself.
    pub setup: ChildSetup,
}

/// Opens what the child gets for one stream, and the parent's end of the
/// pipe when one is requested. `input` says which way the pipe flows.
pub(crate) fn child_io(req: IoRequest, input: bool) -> io::Result<(ChildIo, Option<OwnedFd>)> {
    use rustix::fs::{Mode, OFlags};
    Ok(match req {
        IoRequest::Inherit => (ChildIo::Inherit, None),
        IoRequest::Null => match dev_null() {
            Some(fd) => (ChildIo::Null(fd), None),
            None => {
                let flags = if input {
                    OFlags::RDONLY
                } else {
                    OFlags::WRONLY
                };
                let fd = rustix::fs::open("/dev/null", flags | OFlags::CLOEXEC, Mode::empty())?;
                (ChildIo::Fd(above_stdio(fd)?), None)
            }
        },
        IoRequest::Pipe => {
            fault::io_check(fault::Point::Pipe)?;
            let (r, w) = pipe(false)?;
            if input {
                (ChildIo::Fd(above_stdio(r)?), Some(w))
            } else {
                (ChildIo::Fd(above_stdio(w)?), Some(r))
            }
        }
    })
}

/// A `/dev/null` descriptor shared by every spawn (opened once; `None` if
/// that failed, and each spawn opens its own).
fn dev_null() -> Option<std::os::fd::RawFd> {
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::AsRawFd;
    static NULL: crate::sys::CopyOnce<Option<OwnedFd>> = crate::sys::CopyOnce::new();
    NULL.get_or_init(|| {
        let fd =
            rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).ok()?;
        above_stdio(fd).ok()
    })
    .as_ref()
    .map(|fd| fd.as_raw_fd())
}

/// Makes sure a child-side fd is not 0, 1 or 2 (which happens when the
/// parent runs with a closed stdio fd), so that placing one stdio fd never
/// overwrites the source of another.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 3)?)
}

/// Opens (creates) `path` for writing, close-on-exec, as a child's stdout
/// or stderr: appending, or truncated first. A FIFO waits for a reader up
/// to `wait`'s bounds (see `open_wait.rs`).
pub(crate) fn child_io_output_file(
    path: &std::path::Path,
    append: bool,
    wait: &super::OpenWait<'_>,
) -> io::Result<ChildIo> {
    use rustix::fs::{Mode, OFlags};
    let how = if append {
        OFlags::APPEND
    } else {
        OFlags::TRUNC
    };
    // NOCTTY: a terminal opened here is the child's, never this
    // process's controlling terminal (a session leader without one would
    // take it, and its hangups).
    let fd = super::open_wait::open(
        path,
        OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOCTTY | how,
        Mode::from_raw_mode(0o666),
        wait,
    )?;
    Ok(ChildIo::Fd(above_stdio(fd)?))
}

/// Opens `path` for reading, close-on-exec, as a child's stdin. A FIFO
/// waits for a writer up to `wait`'s bounds (see `open_wait.rs`).
pub(crate) fn child_io_file(
    path: &std::path::Path,
    wait: &super::OpenWait<'_>,
) -> io::Result<ChildIo> {
    use rustix::fs::{Mode, OFlags};
    // NOCTTY: as for an output file (`child_io_output_file`).
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = super::open_wait::open(path, flags, Mode::empty(), wait)?;
    Ok(ChildIo::Fd(above_stdio(fd)?))
}

/// A pipe between two pipeline stages: (read end, write end), both
/// close-on-exec and above the stdio fds, ready to be a child's stdin and
/// another child's stdout.
pub(crate) fn stage_pipe() -> io::Result<(ChildIo, ChildIo)> {
    fault::io_check(fault::Point::Pipe)?;
    let (r, w) = pipe(false)?;
    Ok((ChildIo::Fd(above_stdio(r)?), ChildIo::Fd(above_stdio(w)?)))
}

/// A non-blocking, close-on-exec pipe: (read end, write end). Closing the
/// write end wakes a [`read_or_stop`](super::read_or_stop) waiting on the read end.
pub(crate) fn stop_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    pipe(true)
}

/// A close-on-exec pipe (read end, write end), both ends non-blocking when
/// asked: atomically with `pipe2`, or on macOS, which lacks it, with
/// `fcntl` right after `pipe` (a process spawned by another thread in that
/// instant may inherit the ends, as with the standard library there).
fn pipe(nonblock: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    {
        use rustix::pipe::PipeFlags;
        let flags = if nonblock {
            PipeFlags::CLOEXEC | PipeFlags::NONBLOCK
        } else {
            PipeFlags::CLOEXEC
        };
        Ok(rustix::pipe::pipe_with(flags)?)
    }
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        let (r, w) = rustix::pipe::pipe()?;
        for fd in [&r, &w] {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
            if nonblock {
                rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK)?;
            }
        }
        Ok((r, w))
    }
}

/// The most [`write_small`] takes: what a pipe holds whatever its size
/// (one page), so the write never waits for the reader.
#[cfg(target_os = "linux")]
pub(crate) const SMALL_WRITE: usize = 4096;

/// Writes `bytes` (at most [`SMALL_WRITE`]) to a fresh pipe `fd` at once;
/// a reader already gone is not an error (the write just stops, and
/// raises no SIGPIPE here), `held` as [`write_held`] takes it.
#[cfg(target_os = "linux")]
pub(crate) fn write_small(
    fd: std::os::fd::BorrowedFd<'_>,
    mut bytes: &[u8],
    held: Option<&ChildIo>,
) {
    while !bytes.is_empty() {
        match write_held(fd, bytes, held) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
