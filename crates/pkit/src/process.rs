//! [`RunningProcess`]: a live process started in a [`Group`](crate::Group),
//! and the plumbing that turns a [`Command`] into one.

use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::command::{Command, Input, Stdio};
use crate::error::{Error, Result};
use crate::log;
use crate::output::{Outcome, Output};
use crate::sys::{self, ChildHandle, Container, ExitStatus, IoRequest, Mechanism};

/// A process started with [`Group::start`](crate::Group::start).
///
/// Its piped stdout and stderr are read concurrently in the background from
/// the moment it starts (so it can never block on a full pipe), and handed
/// over by [`wait`](Self::wait).
///
/// The process belongs to its group: dropping this handle neither kills nor
/// orphans it (it lives until it exits or the group is torn down, and is
/// reaped either way); dropping the group kills it.
pub struct RunningProcess {
    program: String,
    pid: u32,
    mechanism: Mechanism,
    started: Instant,
    child: Arc<ChildHandle>,
    stdout: Option<Capture>,
    stderr: Option<Capture>,
    stdin: Option<JoinHandle<()>>,
    finished: Option<Output>,
}

impl RunningProcess {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The program, as given to [`Command::new`].
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The mechanism containing the process.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Waits for the process to exit and returns its [`Output`], with
    /// everything it wrote to piped stdout and stderr.
    ///
    /// It returns once the process itself has exited: output that its
    /// descendants write afterwards (they live on until the group ends) is
    /// not included. Calling it again returns the same result.
    pub async fn wait(&mut self) -> Result<Output> {
        if let Some(out) = &self.finished {
            return Ok(out.clone());
        }
        let status = self.wait_status().await?;
        Ok(self.finish(outcome_of(status)).await)
    }

    /// Sends SIGKILL to this process (not to its descendants: to end the
    /// whole tree, kill or drop the group). Does nothing once it has exited.
    pub fn kill(&self) -> Result<()> {
        self.child
            .signal(sys::signals::KILL)
            .map_err(|e| Error::io(format!("{}: kill", self.program), e))
    }

    /// Whether the process has exited (it may still be waiting to be
    /// collected by [`wait`](Self::wait)).
    pub fn has_exited(&self) -> bool {
        matches!(self.child.try_status(), Ok(Some(_)))
    }

    /// Waits for the exit status only.
    pub(crate) async fn wait_status(&self) -> Result<ExitStatus> {
        self.child
            .wait()
            .await
            .map_err(|e| Error::io(format!("{}: wait", self.program), e))
    }

    /// Stops reading output (taking whatever is already buffered in the
    /// pipes) and builds the result.
    pub(crate) async fn finish(&mut self, outcome: Outcome) -> Output {
        if let Some(task) = self.stdin.take() {
            task.abort();
        }
        let stdout = match self.stdout.take() {
            Some(c) => c.finish().await,
            None => Vec::new(),
        };
        let stderr = match self.stderr.take() {
            Some(c) => c.finish().await,
            None => Vec::new(),
        };
        let out = Output {
            program: self.program.clone(),
            outcome,
            stdout,
            stderr,
            duration: self.started.elapsed(),
            mechanism: self.mechanism,
            pid: self.pid,
        };
        log::finished(
            &self.program,
            self.pid,
            self.mechanism,
            outcome,
            out.duration,
        );
        self.finished = Some(out.clone());
        out
    }
}

impl Drop for RunningProcess {
    fn drop(&mut self) {
        if let Some(t) = self.stdin.take() {
            t.abort();
        }
        for c in [self.stdout.take(), self.stderr.take()]
            .into_iter()
            .flatten()
        {
            c.task.abort();
        }
    }
}

impl fmt::Debug for RunningProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningProcess")
            .field("program", &self.program)
            .field("pid", &self.pid)
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

pub(crate) fn outcome_of(status: ExitStatus) -> Outcome {
    match status {
        ExitStatus::Exited(c) => Outcome::Exited(c),
        ExitStatus::Signalled(s) => Outcome::Signalled(s),
    }
}

/// One output stream being read into memory in the background.
struct Capture {
    task: JoinHandle<Vec<u8>>,
    stop: Arc<Notify>,
}

const READ_CHUNK: usize = 64 * 1024;

impl Capture {
    fn start(fd: OwnedFd) -> io::Result<Capture> {
        let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                buf.reserve(READ_CHUNK);
                tokio::select! {
                    biased;
                    read = rx.read_buf(&mut buf) => match read {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    },
                    _ = stopped.notified() => {
                        // Take what is already in the pipe, then stop even
                        // if an escaped process still holds the write end.
                        sys::drain_pipe(std::os::fd::AsFd::as_fd(&rx), &mut buf);
                        break;
                    }
                }
            }
            buf.shrink_to_fit();
            buf
        });
        Ok(Capture { task, stop })
    }

    async fn finish(self) -> Vec<u8> {
        self.stop.notify_one();
        self.task.await.unwrap_or_default()
    }
}

/// Writes `bytes` to the child's stdin, then closes it. A child that exits
/// (or closes stdin) without reading is not an error: the write just stops.
fn feed_stdin(fd: OwnedFd, bytes: Arc<[u8]>) -> io::Result<JoinHandle<()>> {
    let mut tx = tokio::net::unix::pipe::Sender::from_owned_fd(fd)?;
    Ok(tokio::spawn(async move {
        let _ = tx.write_all(&bytes).await;
        let _ = tx.shutdown().await;
    }))
}

/// Starts `cmd` in `container`. Must be called within a Tokio runtime.
pub(crate) fn start(container: &Container, cmd: &Command) -> Result<RunningProcess> {
    let program = cmd.display_name();
    let prepared = prepare(cmd, &program)?;

    let stdin_req = match cmd.stdin {
        Input::Null => IoRequest::Null,
        Input::Inherit => IoRequest::Inherit,
        Input::Bytes(_) => IoRequest::Pipe,
    };
    let io_err = |e: io::Error| Error::io(format!("{program}: setting up stdio"), e);
    let (stdin_child, stdin_parent) = sys::child_io(stdin_req, true).map_err(io_err)?;
    let (stdout_child, stdout_parent) =
        sys::child_io(output_request(cmd.stdout), false).map_err(io_err)?;
    let (stderr_child, stderr_parent) =
        sys::child_io(output_request(cmd.stderr), false).map_err(io_err)?;

    let spec = sys::SpawnSpec {
        path: prepared.path,
        argv: prepared.argv,
        envp: prepared.envp,
        cwd: prepared.cwd,
        stdin: stdin_child,
        stdout: stdout_child,
        stderr: stderr_child,
    };
    let started = Instant::now();
    let child = container
        .spawn(&spec)
        .map_err(|e| spawn_error(e, &program, &prepared.resolved))?;
    // The child has its copies; ours must close so EOF can arrive.
    drop(spec);
    let pid = child.pid() as u32;
    let mechanism = container.mechanism();
    log::started(&program, pid, mechanism);

    let mut proc = RunningProcess {
        program,
        pid,
        mechanism,
        started,
        child,
        stdout: None,
        stderr: None,
        stdin: None,
        finished: None,
    };
    // From here on, a failure must not leave the child running: the caller
    // gets an error, and the process is killed (and reaped on drop).
    let wire = (|| -> io::Result<()> {
        if let Some(fd) = stdout_parent {
            proc.stdout = Some(Capture::start(fd)?);
        }
        if let Some(fd) = stderr_parent {
            proc.stderr = Some(Capture::start(fd)?);
        }
        if let (Some(fd), Input::Bytes(bytes)) = (stdin_parent, &cmd.stdin) {
            proc.stdin = Some(feed_stdin(fd, bytes.clone())?);
        }
        Ok(())
    })();
    if let Err(e) = wire {
        let _ = proc.kill();
        return Err(Error::io(
            format!("{}: reading its output", proc.program),
            e,
        ));
    }
    Ok(proc)
}

fn output_request(stdio: Stdio) -> IoRequest {
    match stdio {
        Stdio::Piped => IoRequest::Pipe,
        Stdio::Inherit => IoRequest::Inherit,
        Stdio::Null => IoRequest::Null,
    }
}

struct Prepared {
    resolved: std::path::PathBuf,
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
}

/// Checks and converts everything before spawning, so the failures a
/// caller can act on are typed errors and not an exec errno.
fn prepare(cmd: &Command, program: &str) -> Result<Prepared> {
    if cmd.program.is_empty() {
        return Err(Error::InvalidInput("the program name is empty".into()));
    }
    if let Some(dir) = &cmd.cwd {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::CurrentDir {
                    program: program.into(),
                    dir: dir.clone(),
                    source: io::Error::from_raw_os_error(libc::ENOTDIR),
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
    let env = cmd.effective_env();
    let path_var = env
        .iter()
        .find(|(k, _)| k.as_bytes() == b"PATH")
        .map(|(_, v)| v.as_os_str());
    let resolved =
        sys::resolve(&cmd.program, path_var, cmd.cwd.as_deref()).map_err(|e| match e {
            sys::ResolveError::NotFound { searched } => Error::NotFound {
                program: program.into(),
                searched,
            },
            sys::ResolveError::NotExecutable(path) => Error::NotExecutable {
                program: program.into(),
                path,
            },
        })?;

    let c = |s: &OsStr, what: &dyn Fn() -> String| {
        CString::new(s.as_bytes())
            .map_err(|_| Error::InvalidInput(format!("{} contains a NUL byte", what())))
    };
    let path = c(resolved.as_os_str(), &|| "the program path".into())?;
    let mut argv = Vec::with_capacity(cmd.args.len() + 1);
    argv.push(c(&cmd.program, &|| "the program name".into())?);
    for (i, a) in cmd.args.iter().enumerate() {
        argv.push(c(a, &|| format!("argument {}", i + 1))?);
    }
    let mut envp = Vec::with_capacity(env.len());
    for (k, v) in env {
        if k.is_empty() || k.as_bytes().contains(&b'=') {
            return Err(Error::InvalidInput(
                "an environment variable name is empty or contains '='".into(),
            ));
        }
        let mut kv: OsString = k;
        kv.push("=");
        kv.push(v);
        envp.push(CString::new(kv.into_vec()).map_err(|_| {
            Error::InvalidInput("an environment variable contains a NUL byte".into())
        })?);
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

fn spawn_error(e: sys::SpawnError, program: &str, path: &std::path::Path) -> Error {
    match e {
        sys::SpawnError::Exec(source) => match source.raw_os_error() {
            Some(libc::ENOENT) => Error::NotFound {
                program: program.into(),
                searched: None,
            },
            Some(libc::EACCES) | Some(libc::ENOEXEC) | Some(libc::EISDIR) | Some(libc::EPERM) => {
                Error::NotExecutable {
                    program: program.into(),
                    path: path.to_path_buf(),
                }
            }
            _ => Error::Spawn {
                program: program.into(),
                source,
            },
        },
        sys::SpawnError::Refused(source) | sys::SpawnError::Os(source) => Error::Spawn {
            program: program.into(),
            source,
        },
    }
}
