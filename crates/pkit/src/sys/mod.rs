//! The only code that touches the operating system: spawning, containing,
//! signalling, killing and reaping. Everything above this module is
//! platform-neutral.
//!
//! One backend per mechanism: [`Mechanism::CgroupV2`] (Linux, `linux/`) and
//! [`Mechanism::ProcessGroup`] (every Unix, `unix/`).

#[cfg(not(target_os = "linux"))]
compile_error!(
    "pkit currently builds on Linux only; the process-group backend for macOS and the BSDs \
     and the Job Object backend for Windows are not written yet"
);

mod container;
mod control;
#[doc(hidden)]
pub mod fault;
pub(crate) mod guard;
mod host;
mod limits;
#[cfg(target_os = "linux")]
pub(crate) mod linux;
mod place;
mod pre_exec;
mod resolve;
mod setup;
mod signal;
mod stats;
mod step;
mod tree;
pub(crate) mod unix;

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;

pub(crate) use container::{Container, CreateError};
pub(crate) use control::ControlError;
pub use control::ProcessInfo;
pub use guard::GuardStatus;
pub use host::{host_containment, HostContainment, MechanismChoice};
pub(crate) use limits::Limits;
pub use limits::{CapSupport, LimitInfo};
#[cfg(target_os = "linux")]
pub(crate) use linux::child::ChildHandle;
pub(crate) use linux::forked::spawn_detached;
pub(crate) use linux::procfs::usage as proc_usage;
pub use place::Placement;
pub(crate) use resolve::{missing_interpreter, resolve, ResolveError};
pub(crate) use setup::{
    cpu_mask, dup_above, ioprio_value, resource_number, ChildSetup, PreExecHook,
};
pub use signal::Signal;
pub use stats::Stats;
pub use step::{ChildStep, IoClass, Resource};
pub(crate) use tree::ProcTree;

/// The kind of OS container a group's processes live in.
///
/// Every [`Group`](crate::Group) and every [`Output`](crate::Output) reports
/// the mechanism that contained it, so a weaker fallback is never silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// A Linux cgroup v2 subtree: catches every descendant, including ones
    /// that call `setsid`; torn down with `cgroup.kill`.
    CgroupV2,
    /// A POSIX process group: torn down with `killpg`. A descendant that
    /// calls `setsid` or `setpgid` leaves the group and escapes teardown.
    ///
    /// The group's first process leads it; if it exits while the group
    /// lives, it stays a zombie until the group ends (close, shutdown, drop,
    /// or the end of a run), because its pid is the group's id and a reaped
    /// id could be handed to a stranger whose group a later `start` would
    /// join. At most one such zombie per live group; every other process is
    /// reaped as usual.
    ProcessGroup,
    /// A Windows Job Object (reserved; not implemented yet).
    JobObject,
}

impl Mechanism {
    /// A short stable name: `cgroup-v2`, `process-group`, `job-object`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::CgroupV2 => "cgroup-v2",
            Mechanism::ProcessGroup => "process-group",
            Mechanism::JobObject => "job-object",
        }
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a child ended, as the kernel reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    Exited(i32),
    Signalled(i32),
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
    pub envp: Vec<CString>,
    pub cwd: Option<CString>,
    pub stdin: ChildIo,
    pub stdout: ChildIo,
    pub stderr: ChildIo,
    /// The spawn options the child applies to itself.
    pub setup: ChildSetup,
}

/// Why a spawn failed.
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// `clone3` was refused; another placement may work.
    Refused(io::Error),
    /// The program could not be executed (errno from execve).
    Exec(io::Error),
    /// The working directory could not be entered (errno from chdir).
    Chdir(io::Error),
    /// A step of the child's setup before exec failed.
    Step(ChildStep, io::Error),
    /// Any other OS failure (pipes, fds, limits).
    Os(io::Error),
}

/// Requested stdio for one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IoRequest {
    Inherit,
    Null,
    Pipe,
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
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
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
    static NULL: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();
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

/// The conventional name of a signal number (`SIGKILL`), if it has one.
pub(crate) fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

/// Reads what is already buffered in the (non-blocking) pipe `fd` into
/// `buf`, without waiting: at most the pipe's capacity, so a writer that
/// keeps refilling it (an escaped descendant) cannot keep us here. Returns
/// whether end of file was seen.
///
/// This reads the fd directly rather than through the async reactor, whose
/// cached readiness may not yet know about data that is there.
pub(crate) fn drain_pipe(fd: std::os::fd::BorrowedFd<'_>, buf: &mut Vec<u8>) -> bool {
    let budget = rustix::pipe::fcntl_getpipe_size(fd).unwrap_or(1 << 20);
    let mut chunk = [0u8; 16 * 1024];
    let mut taken = 0;
    while taken < budget {
        let want = chunk.len().min(budget - taken);
        match rustix::io::read(fd, &mut chunk[..want]) {
            Ok(0) => return true,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                taken += n;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false, // EAGAIN: nothing more buffered
        }
    }
    false
}

/// Opens (creates) `path` for writing, close-on-exec, as a child's stdout
/// or stderr: appending, or truncated first.
pub(crate) fn child_io_output_file(path: &std::path::Path, append: bool) -> io::Result<ChildIo> {
    use rustix::fs::{Mode, OFlags};
    let how = if append {
        OFlags::APPEND
    } else {
        OFlags::TRUNC
    };
    let fd = rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC | how,
        Mode::from_raw_mode(0o666),
    )?;
    Ok(ChildIo::Fd(above_stdio(fd)?))
}

/// Opens `path` for reading, close-on-exec, as a child's stdin.
pub(crate) fn child_io_file(path: &std::path::Path) -> io::Result<ChildIo> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    Ok(ChildIo::Fd(above_stdio(fd)?))
}

/// A pipe between two pipeline stages: (read end, write end), both
/// close-on-exec and above the stdio fds, ready to be a child's stdin and
/// another child's stdout.
pub(crate) fn stage_pipe() -> io::Result<(ChildIo, ChildIo)> {
    fault::io_check(fault::Point::Pipe)?;
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((ChildIo::Fd(above_stdio(r)?), ChildIo::Fd(above_stdio(w)?)))
}

/// Grows a pipe to hold up to 1 MiB (the default maximum for unprivileged
/// processes), so a fast writer and its reader trade fewer, larger chunks.
/// Failure is harmless: the pipe keeps its size.
pub(crate) fn grow_pipe(fd: std::os::fd::BorrowedFd<'_>) {
    let _ = rustix::pipe::fcntl_setpipe_size(fd, 1 << 20);
}

/// What one [`read_or_stop`] step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadStep {
    /// This many bytes were appended.
    Data(usize),
    /// The pipe's writers are all gone.
    Eof,
    /// `stop` became readable or hung up: the caller should drain and end.
    Stopped,
}

/// Blocks this thread until `data` has bytes (appends up to `max` of them
/// to `buf`), reaches end of file, or `stop` becomes readable or is closed.
/// For a blocking reader thread; `data` must be non-blocking.
pub(crate) fn read_or_stop(
    data: std::os::fd::BorrowedFd<'_>,
    stop: std::os::fd::BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<ReadStep> {
    use rustix::event::{poll, PollFd, PollFlags};
    loop {
        // Read first: data is often already there.
        buf.reserve(max);
        match rustix::io::read(data, rustix::buffer::spare_capacity(buf)) {
            Ok(0) => return Ok(ReadStep::Eof),
            Ok(n) => return Ok(ReadStep::Data(n)),
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut fds = [
            PollFd::new(&data, PollFlags::IN),
            PollFd::new(&stop, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        if !fds[1].revents().is_empty() {
            return Ok(ReadStep::Stopped);
        }
    }
}

/// A non-blocking, close-on-exec pipe: (read end, write end). Closing the
/// write end wakes a [`read_or_stop`] waiting on the read end.
pub(crate) fn stop_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )?)
}

/// Removes the emptied cgroup directories pkit keeps for reuse by later
/// one-shot runs (at most 16, counted by
/// [`GuardStatus::spares`](crate::GuardStatus::spares)). They are also
/// removed at normal exit, and by the owner-death guard if this process is
/// killed.
pub fn release_spare_cgroups() {
    linux::cgroup_pool::release_all();
}
