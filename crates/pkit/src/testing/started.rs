//! Started scripted runs: a [`Script`] played live into real pipes, read by
//! the same pump (captures, tees, callbacks, the line stream, probes) as a
//! real child's output.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::watch;

use crate::cancel::CancelToken;
use crate::command::{Command, Input, Stdio};
use crate::error::{Error, Result};
use crate::launch::Launch;
use crate::launch::{Pipes, StartOpts};
use crate::output::Outcome;
use crate::output::Output;
use crate::process::RunningProcess;
use crate::pump::{LimitFlag, StreamKind};
use crate::scripted_child::{Cut, ScriptedChild};
use crate::sys::{self, ChildIo, ExitStatus, IoRequest, Signal};
use crate::timing::deadline_after;

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
        group.check_open(cmd)?;
        let program = cmd.display_name();
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidInput(format!(
                "{program}: starting a process needs a Tokio runtime (call this from within one)"
            )));
        }
        let StartOpts {
            stream_lines,
            stdin: stdin_over,
            stdout: stdout_over,
            limit,
            bounded_capture,
            own_tree,
            raw_output,
        } = opts;
        let io_err = |e: std::io::Error| Error::io(format!("{program}: setting up stdio"), e);
        // Stdin: what it would read (drained and discarded), and our end.
        let mut reader = None;
        let (stdin_child, stdin_parent) = match stdin_over {
            Some(io) => (fd_of(io), None),
            None => match &cmd.stdin {
                Input::Bytes(_) | Input::Piped | Input::Reader(_) => {
                    if let Input::Reader(shared) = &cmd.stdin {
                        reader = shared.lock().unwrap_or_else(|e| e.into_inner()).take();
                        if reader.is_none() {
                            return Err(Error::InvalidInput(format!(
                            "{program}: its stdin reader was already consumed by an earlier run"
                        )));
                        }
                    }
                    let (r, w) = sys::child_io(IoRequest::Pipe, true).map_err(io_err)?;
                    (fd_of(r), w)
                }
                _ => (None, None),
            },
        };
        // Output: written into pipes when piped; otherwise discarded.
        let (stdout_w, stdout_r) = match stdout_over {
            Some(io) => (fd_of(io), None),
            None if cmd.stdout == Stdio::Piped => output_pipe(&program)?,
            None => (None, None),
        };
        let (stderr_w, stderr_r) = match cmd.stderr {
            Stdio::Piped => output_pipe(&program)?,
            _ => (None, None),
        };

        let pid = crate::scripted_child::next_pid();
        let mechanism = group.mechanism();
        crate::log::started(&program, cmd.log_name.as_deref(), pid, mechanism);
        let child = Arc::new(ScriptedChild::new());
        group.scripted.add(&child);
        let mut proc = RunningProcess::new(
            program.clone(),
            pid,
            mechanism,
            Instant::now(),
            crate::child::Child::Scripted(child.clone()),
        );
        proc.log_name = cmd.log_name.clone();
        proc.limit = limit.unwrap_or_default();
        let pipes = Pipes {
            stdin: stdin_parent,
            reader,
            stdout: stdout_r,
            stderr: stderr_r,
            pty: None,
        };
        crate::launch::wire(
            &mut proc,
            cmd,
            (stream_lines, bounded_capture, raw_output),
            pipes,
        )
        .map_err(|e| Error::io(format!("{program}: wiring its stdio"), e))?;
        let to_sender = |fd: Option<OwnedFd>| fd.map(pipe::Sender::from_owned_fd).transpose();
        let player = Player {
            script: script.clone(),
            stdout: to_sender(stdout_w).map_err(io_err)?,
            stderr: to_sender(stderr_w).map_err(io_err)?,
            stdin: stdin_child
                .map(pipe::Receiver::from_owned_fd)
                .transpose()
                .map_err(io_err)?,
            child,
            // A pipeline's stages have the chain's bounds, not their own.
            bounds: own_tree.then(|| Bounds {
                deadline: cmd.timeout.and_then(deadline_after),
                timeout_signal: cmd.timeout_signal,
                inactivity: cmd.run.inactivity.filter(|d| deadline_after(*d).is_some()),
                cancel: cmd.cancel.clone(),
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
    timeout_signal: Option<Signal>,
    inactivity: Option<Duration>,
    cancel: Option<CancelToken>,
    /// Stamped by the pump's readers whenever output arrives.
    activity: Arc<LimitFlag>,
}

struct Player {
    script: Script,
    stdout: Option<pipe::Sender>,
    stderr: Option<pipe::Sender>,
    stdin: Option<pipe::Receiver>,
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
            let mut sink = [0u8; 8192];
            if let Some(rx) = &mut stdin {
                while matches!(rx.read(&mut sink).await, Ok(n) if n > 0) {}
            }
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
            let timer = async {
                match bounds.as_ref().and_then(|b| b.deadline) {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let idle = async {
                match bounds.as_ref().and_then(|b| b.inactivity.map(|d| (b, d))) {
                    Some((b, d)) => b.activity.idle_for(began, d).await,
                    None => std::future::pending().await,
                }
            };
            let cancel = async {
                match bounds.as_ref().and_then(|b| b.cancel.as_ref()) {
                    Some(t) => t.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            let timeout_sig = bounds
                .as_ref()
                .and_then(|b| b.timeout_signal)
                .unwrap_or(Signal::Kill)
                .as_raw();
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
                () = cancel => Ended::Cut(Cut::Cancelled, Signal::Kill.as_raw()),
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
        let status = match ended {
            Ended::Exit(Outcome::Exited(code)) => ExitStatus::Exited(code),
            Ended::Exit(Outcome::Signalled(sig)) | Ended::Killed(sig) => ExitStatus::Signalled(sig),
            Ended::Exit(_) => {
                *self.child.cut.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Cut::TimedOut { idle: false });
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
        stdout: &mut Option<pipe::Sender>,
        stderr: &mut Option<pipe::Sender>,
    ) -> Ended {
        let mut first: Vec<Chunk> = Vec::new();
        if let End::Output(o) = &script.end {
            first.push(Chunk::Write(StreamKind::Stdout, o.stdout.clone().into()));
            first.push(Chunk::Write(StreamKind::Stderr, o.stderr.clone().into()));
        }
        for chunk in first.iter().chain(&script.chunks) {
            match chunk {
                Chunk::Write(kind, bytes) => {
                    let to = match kind {
                        StreamKind::Stdout => stdout.as_mut(),
                        StreamKind::Stderr => stderr.as_mut(),
                    };
                    if let Some(tx) = to {
                        if let Err(e) = tx.write_all(bytes).await {
                            if e.kind() == std::io::ErrorKind::BrokenPipe {
                                // Nobody reads any more: SIGPIPE's default.
                                return Ended::Killed(libc::SIGPIPE);
                            }
                        }
                    }
                }
                Chunk::Pause(d) => match deadline_after(*d) {
                    Some(until) => tokio::time::sleep_until(until).await,
                    None => std::future::pending().await,
                },
            }
        }
        match &script.end {
            End::Exit(outcome) => Ended::Exit(*outcome),
            End::Output(o) => Ended::Exit(o.outcome()),
            End::Pending => std::future::pending().await,
        }
    }
}
