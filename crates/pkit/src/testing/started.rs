//! Started scripted runs: a [`Script`] played live into real pipes, read by
//! the same pump (captures, tees, callbacks, the line stream, probes) as a
//! real child's output.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::Write;

#[cfg(unix)]
use tokio::io::{AsyncReadExt, AsyncWriteExt};
#[cfg(unix)]
use tokio::net::unix::pipe;
use tokio::sync::watch;

use crate::cancel::CancelToken;
use crate::command::Command;
use crate::error::{Error, Result};
use crate::launch::{Pipes, StartOpts};
use crate::launch_spec::Launch;
use crate::output::Outcome;
use crate::output::Output;
use crate::process::RunningProcess;
use crate::pump::{LimitFlag, StreamKind};
use crate::scripted_child::{Cut, ScriptedChild};
use crate::spec::{Input, Stdio};
use crate::sys::{self, ChildIo, ExitStatus, IoRequest, OwnedFd, Signal};
use crate::timing::{deadline_after, sleep_until_or_never};

fn fd_of(io: ChildIo) -> Option<OwnedFd> {
    match io {
        ChildIo::Fd(fd) => Some(fd),
        _ => None,
    }
}

/// A pipe for a child's output: (its write end, our read end).
fn output_pipe(program: &str) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    let (w, r) = sys::child_io(IoRequest::Pipe, false)
        .map_err(|e| Error::io(format!("{program}: setting up stdio"), e))?;
    Ok((fd_of(w), r))
}

/// Where a scripted process's stdout or stderr goes.
enum Sink {
    /// A pipe: to the pump, or to the next stage of a pipeline. (On
    /// Windows the child's end of a pipe is a synchronous handle, written
    /// as a file is.)
    #[cfg(unix)]
    Pipe(pipe::Sender),
    /// A file, a terminal, or the test's own stream: written on the
    /// blocking pool (never made non-blocking, as it may be shared).
    File(Arc<std::fs::File>),
    /// Stderr under `merge_stderr`: wherever stdout goes, in order.
    SameAsStdout,
}

impl Sink {
    fn pipe(fd: OwnedFd) -> std::io::Result<Sink> {
        #[cfg(unix)]
        return pipe::Sender::from_owned_fd(fd).map(Sink::Pipe);
        #[cfg(windows)]
        Ok(Sink::File(Arc::new(fd.into())))
    }

    async fn write_all(&mut self, bytes: &Arc<[u8]>) -> std::io::Result<()> {
        match self {
            #[cfg(unix)]
            Sink::Pipe(tx) => tx.write_all(bytes).await,
            Sink::File(file) => {
                let (file, bytes) = (file.clone(), bytes.clone());
                tokio::task::spawn_blocking(move || (&*file).write_all(&bytes))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            }
            Sink::SameAsStdout => Ok(()),
        }
    }
}

/// Waits until what was written to `tx` has been read (for at most a
/// second: a reader held back by a full line stream keeps its order
/// anyway), then lets the reader deliver it.
#[cfg(unix)]
async fn read_by_now(tx: &pipe::Sender) {
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    while sys::pipe_unread(tx).is_ok_and(|n| n > 0) && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::task::yield_now().await;
}

/// Where the command sends `kind`: a file of its (`stdout_file`,
/// `stderr_file`; opened as for a real start), stdout (`merge_stderr`), a
/// pipe to the pump (`Piped`, `Raw`; with our read end), the test's own
/// stream (`Inherit`), or nowhere (`Null`).
fn output_end(
    cmd: &Command,
    kind: StreamKind,
    program: &str,
) -> Result<(Option<Sink>, Option<OwnedFd>)> {
    let io_err = |e: std::io::Error| Error::io(format!("{program}: setting up stdio"), e);
    match cmd
        .spec
        .spawn
        .output_file(kind, program, &Default::default())?
    {
        Some(ChildIo::SameAsStdout) => return Ok((Some(Sink::SameAsStdout), None)),
        Some(io) => return Ok((fd_of(io).map(|fd| Sink::File(Arc::new(fd.into()))), None)),
        None => {}
    }
    let stdio = match kind {
        StreamKind::Stdout => cmd.spec.stdout,
        StreamKind::Stderr => cmd.spec.stderr,
    };
    match stdio {
        Stdio::Piped | Stdio::Raw => {
            let (w, r) = output_pipe(program)?;
            Ok((w.map(Sink::pipe).transpose().map_err(io_err)?, r))
        }
        Stdio::Inherit => {
            use crate::sys::AsFd;
            let own = match kind {
                StreamKind::Stdout => std::io::stdout().as_fd().try_clone_to_owned(),
                StreamKind::Stderr => std::io::stderr().as_fd().try_clone_to_owned(),
            };
            Ok((
                Some(Sink::File(Arc::new(own.map_err(io_err)?.into()))),
                None,
            ))
        }
        Stdio::Null => Ok((None, None)),
    }
}

/// The signal that ends a scripted process on a timeout or a cancel
/// token with this signal and grace: the first signal of the real plan,
/// or SIGKILL (for SIGKILL at once, and for a signal that would not end a
/// process, which the real plan follows with SIGKILL after the grace).
fn ending_signal(signal: Option<Signal>, grace: Option<Duration>) -> i32 {
    crate::timing::timeout_plan(signal, grace)
        .map(|(s, _)| s.as_raw())
        .filter(|s| crate::scripted_child::terminates(*s))
        .unwrap_or(Signal::Kill.as_raw())
}

/// What a scripted process does.
#[derive(Clone)]
pub(crate) struct Script {
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) end: End,
}

/// One step of a script.
#[derive(Clone)]
pub(crate) enum Chunk {
    Write(StreamKind, Arc<[u8]>),
    Pause(Duration),
}

/// How a script ends.
#[derive(Clone)]
pub(crate) enum End {
    /// With this outcome (`TimedOut`: as a run its timeout ended).
    Exit(Outcome),
    /// With exactly this `Output` for a verb (its bytes come first).
    Output(Box<Output>),
    /// Never on its own.
    Pending,
}

impl Script {
    /// Starts this script as a live process for `cmd`.
    pub(crate) fn start(&self, cmd: &Command, launch: Launch<'_>) -> Result<RunningProcess> {
        let script = self;
        let Launch { group, opts } = launch;
        group.check_open(&cmd.spec)?;
        let program = cmd.display_name();
        crate::launch::need_runtime(&program)?;
        let StartOpts {
            stream_lines,
            stdin: stdin_over,
            stdout: stdout_over,
            limit,
            bounded_capture,
            own_tree,
            raw_output,
            text_stdout: _,
        } = opts;
        let io_err = |e: std::io::Error| Error::io(format!("{program}: setting up stdio"), e);
        let in_pipe = stdin_over.is_some() || stdout_over.is_some();
        // A pty session: its terminal is its stdio, checked as for a real
        // start; the script writes to it, and its stdin is left to the
        // terminal (held open, not read).
        // Windows: only a process attached to a pseudo console can write to
        // it, so a script can't; refused before a console is opened.
        if cfg!(windows) && cmd.spec.spawn.pty.is_some() {
            return Err(Error::Unsupported {
                operation: "pty",
                mechanism: group.mechanism(),
                reason: "a scripted run can't write to this platform's pseudo-terminal \
                         (a Windows pseudo console shows only what the processes \
                         attached to it write)"
                    .into(),
            });
        }
        let pty = crate::pty_open::open_for(&cmd.spec, &program, in_pipe)?;
        // Stdin: what it would read (drained and discarded), and our end.
        let mut reader = None;
        let mut held = None;
        let (stdin_child, stdin_parent) = match (stdin_over, &pty) {
            (Some(io), _) => (fd_of(io), None),
            (None, Some(_)) => (None, None),
            (None, None) => match &cmd.spec.stdin {
                Input::Bytes(_) | Input::Piped | Input::Reader(_) => {
                    if let Input::Reader(shared) = &cmd.spec.stdin {
                        reader = Some(crate::launch::take_reader(shared, &program)?);
                    }
                    let (r, w) = sys::child_io(IoRequest::Pipe, true).map_err(io_err)?;
                    (fd_of(r), w)
                }
                // Opened as for a real start (a missing file fails it),
                // not read.
                Input::File(path) => {
                    held = fd_of(crate::spawn_options::stdin_file(
                        path,
                        &program,
                        &Default::default(),
                    )?);
                    (None, None)
                }
                // Nothing to read; the test's own stdin is never taken.
                Input::Null | Input::Inherit => (None, None),
            },
        };
        // Output: where the command sends it (see `Reply`).
        let (stdout_w, stdout_r, stderr_w, stderr_r, master) = match pty {
            Some(t) => {
                held = fd_of(t.stdin);
                let slave = |io| fd_of(io).map(|fd| Sink::File(Arc::new(fd.into())));
                (slave(t.stdout), None, slave(t.stderr), None, Some(t.master))
            }
            None => {
                let (stdout_w, stdout_r) = match stdout_over {
                    Some(io) => (fd_of(io).map(Sink::pipe).transpose().map_err(io_err)?, None),
                    None => output_end(cmd, StreamKind::Stdout, &program)?,
                };
                let (stderr_w, stderr_r) = output_end(cmd, StreamKind::Stderr, &program)?;
                (stdout_w, stdout_r, stderr_w, stderr_r, None)
            }
        };

        let pid = crate::scripted_child::next_pid();
        let mechanism = group.mechanism();
        crate::log::started(&program, cmd.spec.log_name.as_deref(), pid, mechanism);
        let child = Arc::new(ScriptedChild::new());
        group.scripted.add(&child);
        let mut proc = RunningProcess::new(
            program.as_str().into(),
            pid,
            mechanism,
            Instant::now(),
            crate::child::Child::Scripted(child.clone()),
            limit.unwrap_or_default(),
        );
        proc.log_name = cmd.spec.log_name.clone();
        proc.secrets = cmd.spec.output_marks();
        let pipes = Pipes {
            stdin: stdin_parent,
            stdin_held: None,
            reader,
            stdout: stdout_r,
            stderr: stderr_r,
            pty: master,
        };
        crate::launch::wire(
            &mut proc,
            &cmd.spec,
            (stream_lines, bounded_capture, raw_output, false),
            pipes,
        )
        .map_err(|e| Error::io(format!("{program}: wiring its stdio"), e))?;
        let player = Player {
            script: script.clone(),
            stdout: stdout_w,
            stderr: stderr_w,
            held,
            stdin: stdin_child.map(StdinEnd::new).transpose().map_err(io_err)?,
            child,
            // A pipeline's stages have the chain's bounds, not their own.
            bounds: own_tree.then(|| Bounds {
                deadline: cmd.spec.timeout.and_then(deadline_after),
                timeout_signal: ending_signal(cmd.spec.timeout_signal, cmd.spec.grace),
                cancel_signal: ending_signal(cmd.spec.run.cancel_signal, cmd.spec.run.cancel_grace),
                inactivity: cmd
                    .spec
                    .run
                    .inactivity
                    .filter(|d| deadline_after(*d).is_some()),
                cancel: cmd.spec.cancel.clone(),
                activity: proc.limit.clone(),
            }),
        };
        tokio::spawn(player.play());
        Ok(proc)
    }
}

/// The command's bounds on a started scripted process.
struct Bounds {
    deadline: Option<tokio::time::Instant>,
    /// The signals that end it on its timeout and on its cancel token.
    timeout_signal: i32,
    cancel_signal: i32,
    inactivity: Option<Duration>,
    cancel: Option<CancelToken>,
    /// Stamped by the pump's readers whenever output arrives.
    activity: Arc<LimitFlag>,
}

struct Player {
    script: Script,
    stdout: Option<Sink>,
    /// `Some(Sink::SameAsStdout)` under `merge_stderr`.
    stderr: Option<Sink>,
    /// A descriptor it keeps open and never reads (a stdin file, its
    /// terminal), closed when it ends.
    held: Option<OwnedFd>,
    stdin: Option<StdinEnd>,
    child: Arc<ScriptedChild>,
    bounds: Option<Bounds>,
}

/// How the play ended.
enum Ended {
    Exit(Outcome),
    Killed(i32),
    Cut(Cut, i32),
}

impl Player {
    async fn play(mut self) {
        let mut kill = self.child.kill.subscribe();
        let began = tokio::time::Instant::now();
        let bounds = self.bounds.take();
        let mut stdin = self.stdin.take();
        // It reads its stdin to the end, as a filter does, and exits only
        // then: a producer feeding it never dies of SIGPIPE for it.
        let (eof_tx, eof_rx) = watch::channel(stdin.is_none());
        let drain = async {
            StdinEnd::drain(&mut stdin).await;
            let _ = eof_tx.send(true);
            std::future::pending::<()>().await
        };
        let script = async {
            let ended = Self::run_script(&self.script, &mut self.stdout, &mut self.stderr).await;
            if let Ended::Exit(_) = ended {
                let mut eof = eof_rx.clone();
                let _ = eof.wait_for(|done| *done).await;
            }
            ended
        };
        let stopped = async {
            let timer = sleep_until_or_never(bounds.as_ref().and_then(|b| b.deadline));
            let idle = async {
                match bounds.as_ref().and_then(|b| b.inactivity.map(|d| (b, d))) {
                    Some((b, d)) => b.activity.idle_for(began, d).await,
                    None => std::future::pending().await,
                }
            };
            let cancel =
                CancelToken::cancelled_or_never(bounds.as_ref().and_then(|b| b.cancel.as_ref()));
            let kill_raw = Signal::Kill.as_raw();
            let timeout_sig = bounds.as_ref().map_or(kill_raw, |b| b.timeout_signal);
            let cancel_sig = bounds.as_ref().map_or(kill_raw, |b| b.cancel_signal);
            let kill_sig = async {
                let sig = kill.wait_for(Option::is_some).await.map(|s| *s);
                match sig {
                    Ok(sig) => sig.unwrap_or(Signal::Kill.as_raw()),
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                sig = kill_sig => Ended::Killed(sig),
                () = timer => Ended::Cut(Cut::TimedOut { idle: false }, timeout_sig),
                () = idle => Ended::Cut(Cut::TimedOut { idle: true }, timeout_sig),
                () = cancel => Ended::Cut(Cut::Cancelled, cancel_sig),
            }
        };
        let ended = tokio::select! {
            biased;
            ended = stopped => ended,
            ended = script => ended,
            () = drain => unreachable!("the drain never ends"),
        };
        // As a process's death: its pipes close, then its status is known.
        drop((self.stdout.take(), self.stderr.take(), stdin.take()));
        drop(self.held.take());
        let status = match ended {
            Ended::Exit(Outcome::Exited(code)) => ExitStatus::Exited(code),
            Ended::Exit(Outcome::Signalled(sig)) | Ended::Killed(sig) => ExitStatus::Signalled(sig),
            Ended::Exit(_) => {
                // A timed-out reply, or a recorded run its inactivity
                // timeout ended.
                let idle = matches!(&self.script.end, End::Output(o) if o.inactivity_timed_out);
                *self.child.cut.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Cut::TimedOut { idle });
                ExitStatus::Signalled(Signal::Kill.as_raw())
            }
            Ended::Cut(cut, sig) => {
                *self.child.cut.lock().unwrap_or_else(|e| e.into_inner()) = Some(cut);
                ExitStatus::Signalled(sig)
            }
        };
        self.child.status.send_replace(Some(status));
    }

    /// Plays the writes and pauses; returns the end (never, when pending).
    async fn run_script(
        script: &Script,
        stdout: &mut Option<Sink>,
        stderr: &mut Option<Sink>,
    ) -> Ended {
        let mut first: Vec<Chunk> = Vec::new();
        if let End::Output(o) = &script.end {
            first.push(Chunk::Write(StreamKind::Stdout, o.stdout[..].into()));
            first.push(Chunk::Write(StreamKind::Stderr, o.stderr.clone().into()));
        }
        // The stream written last, while the other one waits for it.
        let mut last: Option<StreamKind> = None;
        for chunk in first.iter().chain(&script.chunks) {
            match chunk {
                Chunk::Write(_, bytes) if bytes.is_empty() => {}
                Chunk::Write(kind, bytes) => {
                    let kind = match (kind, &stderr) {
                        (StreamKind::Stderr, Some(Sink::SameAsStdout)) => StreamKind::Stdout,
                        (kind, _) => *kind,
                    };
                    // Each stream has its own reader: before writing to
                    // one, let the other's reader take what it was given,
                    // so their lines come in the script's order.
                    if last.is_some_and(|l| l != kind) {
                        let before = match kind {
                            StreamKind::Stdout => &*stderr,
                            StreamKind::Stderr => &*stdout,
                        };
                        #[cfg(unix)]
                        if let Some(Sink::Pipe(tx)) = before {
                            read_by_now(tx).await;
                        }
                        // No way to ask a Windows pipe what its reader has
                        // not taken yet: a pause lets it, in practice (the
                        // order across the two streams is best effort).
                        #[cfg(windows)]
                        if before.is_some() {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    last = Some(kind);
                    let to = match kind {
                        StreamKind::Stdout => stdout.as_mut(),
                        StreamKind::Stderr => stderr.as_mut(),
                    };
                    if let Some(tx) = to {
                        if let Err(e) = tx.write_all(bytes).await {
                            if e.kind() == std::io::ErrorKind::BrokenPipe {
                                // Nobody reads any more: SIGPIPE's default.
                                return Ended::Killed(Signal::Pipe.as_raw());
                            }
                        }
                    }
                }
                Chunk::Pause(d) => sleep_until_or_never(deadline_after(*d)).await,
            }
        }
        // A process's last writes are read before its pipes close at its
        // exit: a partial line the other stream holds until end of file
        // comes after the last stream's lines, as recorded.
        #[cfg(unix)]
        if !matches!(script.end, End::Pending) {
            let written = match last {
                Some(StreamKind::Stdout) => &*stdout,
                Some(StreamKind::Stderr) => &*stderr,
                None => &None,
            };
            if let Some(Sink::Pipe(tx)) = written {
                read_by_now(tx).await;
            }
        }
        match &script.end {
            End::Exit(outcome) => Ended::Exit(*outcome),
            End::Output(o) => Ended::Exit(o.outcome()),
            End::Pending => std::future::pending().await,
        }
    }
}

/// A scripted process's end of its stdin pipe, read to the end and
/// discarded.
#[cfg(unix)]
struct StdinEnd(pipe::Receiver);

/// On Windows the child's end of a pipe is a synchronous handle: read on
/// the blocking pool.
#[cfg(windows)]
struct StdinEnd(std::fs::File);

impl StdinEnd {
    fn new(fd: OwnedFd) -> std::io::Result<StdinEnd> {
        #[cfg(unix)]
        return pipe::Receiver::from_owned_fd(fd).map(StdinEnd);
        #[cfg(windows)]
        Ok(StdinEnd(fd.into()))
    }

    /// Reads `end` to end of file, if there is one.
    async fn drain(end: &mut Option<StdinEnd>) {
        #[cfg(unix)]
        if let Some(StdinEnd(rx)) = end {
            let mut sink = [0u8; 8192];
            while matches!(rx.read(&mut sink).await, Ok(n) if n > 0) {}
        }
        // The handle goes with the read (it is closed at end of file, as
        // a process's would be when it exits).
        #[cfg(windows)]
        if let Some(StdinEnd(mut file)) = end.take() {
            let _ = tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let mut sink = [0u8; 8192];
                while matches!(file.read(&mut sink), Ok(n) if n > 0) {}
            })
            .await;
        }
    }
}
