//! Turning a command's [`Spec`] into a [`RunningProcess`]: checks,
//! resolution, stdio wiring, the spawn, and the pump. Below the command and
//! its runner: what it reads is the plain start data, never a `Command`.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::launch_prepare::{prepare, spawn_error, Prepared};
use crate::log;
use crate::process::{ChildStdin, InputFailure, RunningProcess};
use crate::pump::{
    CaptureBuf, CapturePolicy, LimitFlag, LineSink, Lines, Reader, StreamKind, StreamPlan,
};
use crate::spec::{Input, SharedReader, Spec, Stdio};
use crate::sys::{self, ChildHandle, ChildIo, Container, IoRequest, OwnedFd, ProcTree};

/// How a start differs from what the command itself says.
#[derive(Default)]
pub(crate) struct StartOpts {
    /// Enable the line stream (the verbs, which have no consumer for one,
    /// leave it off whatever the command says).
    pub stream_lines: bool,
    /// The child's stdin end of a pipeline pipe, replacing the command's.
    pub stdin: Option<sys::ChildIo>,
    /// The flag to raise when a `CapturePolicy::Fail` limit is crossed
    /// (one for all of a pipeline's stages); a fresh one when `None`.
    pub limit: Option<Arc<LimitFlag>>,
    /// The child's stdout end of a pipeline pipe, replacing the command's.
    pub stdout: Option<sys::ChildIo>,
    /// A started process (not a verb's): without a capture limit of the
    /// command's, keep only the last `DEFAULT_START_CAPTURE_BYTES`.
    pub bounded_capture: bool,
    /// Give the process a subtree of its own and arm its command's
    /// timeout and cancel token on it ([`Group::start`](crate::Group::start));
    /// see [`crate::watch`].
    pub own_tree: bool,
    /// Hand a [`Stdio::Raw`](crate::Stdio::Raw) stream's pipe to the caller instead of
    /// reading it (a started process's; elsewhere it is captured).
    pub raw_output: bool,
    /// Validate stdout as UTF-8 as it arrives (`run()`'s: see `TextBytes`).
    pub text_stdout: bool,
}

/// Starts `cmd` in `group`'s container. Must be called within a Tokio runtime.
pub(crate) fn start(group: &Arc<Container>, cmd: &Spec, opts: StartOpts) -> Result<RunningProcess> {
    let container: &Container = group;
    let StartOpts {
        stream_lines,
        stdin: stdin_over,
        stdout: stdout_over,
        limit,
        bounded_capture,
        own_tree,
        raw_output,
        text_stdout,
    } = opts;
    let (program, began) = (cmd.shared_display_name(), Instant::now());
    need_runtime(&program)?;
    let prepared = prepare(cmd, &program)?;

    // A reader is taken now (a later run fails before spawning); a failed start gives it back.
    let mut reader = None;
    let in_pipe = stdin_over.is_some() || stdout_over.is_some();
    let (
        (stdin_child, stdin_parent),
        (stdout_child, stdout_parent),
        (stderr_child, stderr_parent),
        pty,
    ) = match crate::pty_open::open_for(cmd, &program, in_pipe)? {
        Some(t) => (
            (t.stdin, None),
            (t.stdout, None),
            (t.stderr, None),
            Some(t.master),
        ),
        None => {
            let (stdin, stdout, stderr) =
                stdio(cmd, &program, stdin_over, stdout_over, &mut reader)
                    .inspect_err(|_| cmd.stdin.give_back(reader.take()))?;
            (stdin, stdout, stderr, None)
        }
    };

    // Bytes for stdin: the child's end is kept open for their write (`sys::write_now`).
    let keep_stdin = cfg!(unix) && stdin_parent.is_some() && matches!(cmd.stdin, Input::Bytes(_));
    let (child, tree, started, stdin_held) = spawn_in(
        container,
        cmd,
        &program,
        prepared,
        [stdin_child, stdout_child, stderr_child],
        (own_tree, keep_stdin),
    )
    .inspect_err(|_| cmd.stdin.give_back(reader.take()))?;
    let pid = child.pid() as u32;
    let mechanism = container.mechanism();

    let (limit, at) = (limit.unwrap_or_default(), started);
    let mut proc = RunningProcess::new(program, pid, mechanism, at, child.clone().into(), limit);
    (proc.log_name, proc.secrets) = (cmd.log_name.clone(), cmd.output_marks());
    // From here on, a failure must not leave the child running: the caller
    // gets an error, and the process is killed (and reaped on drop).
    let pipes = Pipes {
        stdin: stdin_parent,
        stdin_held,
        reader,
        stdout: stdout_parent,
        stderr: stderr_parent,
        pty,
    };
    let label = || cmd.log_label();
    let bounds = crate::watch::Bounds {
        timeout: cmd.timeout,
        began,
        inactivity: cmd.run.inactivity,
        cancel: cmd.cancel.as_ref(),
        on_timeout: crate::timing::timeout_plan(cmd.timeout_signal, cmd.grace),
        on_cancel: crate::timing::timeout_plan(cmd.run.cancel_signal, cmd.run.cancel_grace),
        log: (&label, proc.program(), mechanism),
        group: Arc::downgrade(group),
    };
    proc.watch = crate::watch::attach(&child, &proc.limit, pid, bounds, tree);
    if let Err(e) = wire(
        &mut proc,
        cmd,
        (stream_lines, bounded_capture, raw_output, text_stdout),
        pipes,
    ) {
        let _ = proc.kill();
        return Err(Error::io(
            format!("{}: wiring its stdio", proc.program()),
            e,
        ));
    }
    Ok(proc)
}

/// What [`spawn_in`] gives: the child, its tree, when it started, the kept stdin end.
type Spawned = (Arc<ChildHandle>, Option<ProcTree>, Instant, Option<ChildIo>);

/// The spawn itself, shared by [`start`] and the blocking facade's
/// one-shot runs: the child is born in `container` with the stdio ends
/// given (stdin, stdout, stderr), its start logged; the parent's copies of
/// those ends are closed when this returns, but stdin's with `keep_stdin`:
/// returned, held by the caller through its first write (`sys::write_now`).
pub(crate) fn spawn_in(
    container: &Container,
    cmd: &Spec,
    program: &str,
    prepared: Prepared,
    [stdin, stdout, stderr]: [sys::ChildIo; 3],
    (own_tree, keep_stdin): (bool, bool),
) -> Result<Spawned> {
    let setup = cmd.spawn.prepare(program, container.mechanism())?;
    let mut spec = sys::SpawnSpec {
        path: prepared.path,
        argv: prepared.argv,
        envp: prepared.envp,
        cwd: prepared.cwd,
        stdin,
        stdout,
        stderr,
        setup,
    };
    let started = Instant::now();
    let (child, tree) = container
        .spawn(&spec, own_tree)
        .map_err(|e| spawn_error(e, program, &prepared.resolved, cmd.cwd.as_deref()))?;
    // The child has its copies; ours must close so EOF can arrive (a kept
    // stdin end delays none: the child reads that pipe).
    let stdin_held = keep_stdin.then(|| std::mem::replace(&mut spec.stdin, sys::ChildIo::Inherit));
    drop(spec);
    let pid = child.pid() as u32;
    log::started(program, cmd.log_name.as_deref(), pid, container.mechanism());
    Ok((child, tree, started, stdin_held))
}

/// Refuses a start outside a Tokio runtime. The readers and waits run on
/// the runtime: without one, a start is refused before spawning instead of
/// panicking with the child already running (a real start's rule, and a
/// scripted one's).
pub(crate) fn need_runtime(program: &str) -> Result<()> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(_) => Err(no_runtime(program)),
    }
}

/// The error of a start outside a Tokio runtime.
pub(crate) fn no_runtime(program: &str) -> Error {
    Error::InvalidInput(format!(
        "{program}: starting a process needs a Tokio runtime (call this from within one)"
    ))
}

/// Takes a stdin reader for this run: the first run of a command (or of
/// its clones) gets it, a later one fails before anything is spawned.
pub(crate) fn take_reader(
    shared: &SharedReader,
    program: &str,
) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>> {
    shared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "{program}: its stdin reader was already consumed by an earlier run \
                 (a reader is read once; for the same input on every run, use `stdin_bytes`)"
            ))
        })
}

/// One stream's child end and, when piped, the parent's end.
type Ends = (sys::ChildIo, Option<OwnedFd>);

/// The child's stdio as the command (or a pipeline stage) asks, without a
/// pty. A stdin reader is taken into `reader`.
pub(crate) fn stdio(
    cmd: &Spec,
    program: &str,
    stdin_over: Option<sys::ChildIo>,
    stdout_over: Option<sys::ChildIo>,
    reader: &mut Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
) -> Result<(Ends, Ends, Ends)> {
    let io_err = |e: io::Error| Error::io(format!("{program}: setting up stdio"), e);
    let wait = cmd.open_wait();
    let file = |stream| cmd.spawn.output_file(stream, program, &wait);
    let (stdin_child, stdin_parent) = match &cmd.stdin {
        _ if stdin_over.is_some() => (stdin_over.expect("checked"), None),
        Input::Null => sys::child_io(IoRequest::Null, true).map_err(io_err)?,
        Input::Inherit => sys::child_io(IoRequest::Inherit, true).map_err(io_err)?,
        Input::Bytes(_) | Input::Piped => sys::child_io(IoRequest::Pipe, true).map_err(io_err)?,
        Input::Reader(shared) => {
            *reader = Some(take_reader(shared, program)?);
            sys::child_io(IoRequest::Pipe, true).map_err(io_err)?
        }
        Input::File(path) => (
            crate::spawn_options::stdin_file(path, program, &wait)?,
            None,
        ),
    };
    let (stdout_child, stdout_parent) = match stdout_over {
        Some(fd) => (fd, None),
        None => match file(crate::StreamKind::Stdout)? {
            Some(file) => (file, None),
            None => sys::child_io(output_request(cmd.stdout), false).map_err(io_err)?,
        },
    };
    let (stderr_child, stderr_parent) = match file(crate::StreamKind::Stderr)? {
        Some(file) => (file, None),
        None => sys::child_io(output_request(cmd.stderr), false).map_err(io_err)?,
    };

    Ok((
        (stdin_child, stdin_parent),
        (stdout_child, stdout_parent),
        (stderr_child, stderr_parent),
    ))
}

/// The parent's ends of the child's stdio.
pub(crate) struct Pipes {
    pub(crate) stdin: Option<OwnedFd>,
    /// The child's end of the stdin pipe, kept open for the bytes' first write.
    pub(crate) stdin_held: Option<sys::ChildIo>,
    pub(crate) reader: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
    /// A pty session's master.
    pub(crate) pty: Option<sys::MasterEnd>,
}

/// Wires the parent's ends into the pump (readers, line stream, stdin
/// feeding): the same for a real child and a scripted one.
pub(crate) fn wire(
    proc: &mut RunningProcess,
    cmd: &Spec,
    (stream_lines, bounded_capture, raw_output, text): (bool, bool, bool, bool),
    pipes: Pipes,
) -> io::Result<()> {
    let Pipes {
        stdin,
        stdin_held,
        reader,
        stdout,
        stderr,
        pty,
    } = pipes;
    let plan = &cmd.io;
    let (line_tx, line_rx) = stream_lines
        .then(|| crate::pump::queue(plan.buffer_lines, plan.overflow))
        .unzip();
    // The handle's count, made with the stream.
    let dropped = stream_lines.then(|| proc.dropped.get_or_insert_with(Default::default).clone());
    let limit = proc.limit.clone();
    // A line stream's partial lines, for wait_for_prompt.
    let prompt = stream_lines.then(|| Arc::new(crate::pump::PromptSlot::default()));
    proc.prompt = prompt.clone();
    let (capture_limit, capture_policy) = match plan.capture_limit {
        None if bounded_capture => (
            Some(crate::plans::DEFAULT_START_CAPTURE_BYTES),
            CapturePolicy::KeepTail,
        ),
        other => (other, plan.capture_policy),
    };
    // Whether a stream's lines go to the line stream (a started pipeline's
    // last stage streams its stdout only: its stderr is captured).
    let streamed =
        |kind: StreamKind| stream_lines && (kind == StreamKind::Stdout || !plan.stdout_lines_only);
    let stream_plan = |kind: StreamKind| StreamPlan {
        kind,
        // With a line stream the output goes there; the capture keeps
        // nothing, it only counts (the totals cover every byte).
        capture: Some(if streamed(kind) {
            CaptureBuf::new(Some(0), CapturePolicy::KeepHead)
        } else {
            CaptureBuf::new(capture_limit, capture_policy)
                .text_if(text && kind == StreamKind::Stdout)
        }),
        tee: match kind {
            StreamKind::Stdout => plan.stdout_tee.clone(),
            StreamKind::Stderr => plan.stderr_tee.clone(),
        },
        callback: match kind {
            StreamKind::Stdout => plan.on_stdout_line.clone(),
            StreamKind::Stderr => plan.on_stderr_line.clone(),
        },
        lines: line_tx
            .as_ref()
            .filter(|_| streamed(kind))
            .zip(dropped.as_ref())
            .map(|(tx, dropped)| LineSink {
                tx: tx.clone(),
                overflow: plan.overflow,
                dropped: dropped.clone(),
            }),
        decoder: plan.decoder.clone(),
        max_line_bytes: plan.max_line_bytes,
        limit: limit.clone(),
        prompt: prompt.clone(),
        exit: streamed(kind).then(|| proc.child.exit_watch()),
    };
    let (mut stdout, mut stderr) = (stdout, stderr);
    if !(raw_output && (cmd.stdout == Stdio::Raw || cmd.stderr == Stdio::Raw)) {
        (proc.stdout, proc.stderr) = Reader::start_pair(&mut stdout, &mut stderr, stream_plan)?;
    }
    if let Some(fd) = stdout {
        if raw_output && cmd.stdout == Stdio::Raw {
            proc.raw_stdout = Some(crate::raw_output::ChildOutput::new(fd)?);
        } else {
            proc.stdout = Some(Reader::start(fd, stream_plan(StreamKind::Stdout))?);
        }
    }
    if let Some(fd) = stderr {
        if raw_output && cmd.stderr == Stdio::Raw {
            proc.raw_stderr = Some(crate::raw_output::ChildOutput::new(fd)?);
        } else {
            proc.stderr = Some(Reader::start(fd, stream_plan(StreamKind::Stderr))?);
        }
    }
    if let Some(master) = pty {
        let (side, pumped) = crate::pty::attach(master, cmd.spawn.pty_raw)?;
        proc.pty = Some(side);
        if let Some(io) = pumped {
            proc.stdout = Some(Reader::start_pty(io, stream_plan(StreamKind::Stdout)));
        }
    }
    drop(line_tx); // the readers hold the only senders: the stream ends with them
    proc.lines = Some(Lines { rx: line_rx });
    proc.fail_limit = plan.fail_limit(stream_lines);
    if let Some(fd) = stdin {
        match (&cmd.stdin, reader) {
            (Input::Bytes(bytes), _) => {
                proc.stdin_task = feed_bytes(fd, bytes.clone(), stdin_held)?
            }
            (_, Some(r)) => {
                let failure = InputFailure::default();
                proc.input_failure = Some(failure.clone());
                proc.stdin_task = Some(feed_reader(fd, r, failure)?);
            }
            _ => proc.stdin = Some(ChildStdin::new(fd)?),
        }
    }
    Ok(())
}

/// A stdin feeding's task, when one is needed.
type Feeding = io::Result<Option<JoinHandle<()>>>;

/// Writes `bytes` to the child's stdin, then closes it. A child that exits
/// (or closes stdin) without reading is not an error: the write just stops.
///
/// Most inputs fit in the pipe's buffer: they are written here and now
/// (see `sys::write_now`), with no task. The rest of a bigger one is
/// written by a task. `held`: the child's end, open for the first write.
fn feed_bytes(fd: OwnedFd, bytes: Arc<[u8]>, held: Option<sys::ChildIo>) -> Feeding {
    // An error leaves it all to the async write, which ends quietly on one.
    let done = sys::write_now(&fd, &bytes, held.as_ref()).unwrap_or_default();
    drop(held);
    if done >= bytes.len() {
        return Ok(None); // dropping `fd` sends end of file
    }
    let mut tx = sys::pipe_sender(fd)?;
    Ok(Some(tokio::spawn(async move {
        let _ = tx.write_all(&bytes[done..]).await;
        let _ = tx.shutdown().await;
    })))
}

/// Copies `reader` into the child's stdin, then closes it; a child that
/// stops reading ends the copy quietly. A reader that fails or panics is
/// recorded in `failure` *before* the child's stdin is closed, so a child
/// that sees the (early) end of file has its failure on record.
fn feed_reader(
    fd: OwnedFd,
    reader: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    failure: InputFailure,
) -> io::Result<JoinHandle<()>> {
    let mut tx = sys::pipe_sender(fd)?;
    let mut reader = Recording {
        inner: reader,
        failure,
    };
    Ok(tokio::spawn(async move {
        // Not `io::copy`: a reader with nothing to give would hold this
        // task, the pipe and the reader once nobody reads the pipe.
        let mut buf = vec![0u8; 8192];
        loop {
            let n = tokio::select! {
                read = reader.read(&mut buf) => match read { Ok(n) if n > 0 => n, _ => break },
                () = sys::reader_gone(&tx) => break,
            };
            if tx.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = tx.shutdown().await;
    }))
}

/// A stdin reader whose errors and panics are recorded (a write error, the
/// child closing its stdin, is not the reader's and is not recorded).
struct Recording {
    inner: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    failure: InputFailure,
}

impl tokio::io::AsyncRead for Recording {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
        }));
        let polled = polled.unwrap_or_else(|_| {
            std::task::Poll::Ready(Err(io::Error::other("the stdin reader panicked")))
        });
        if let std::task::Poll::Ready(Err(e)) = &polled {
            *this.failure.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((e.kind(), e.to_string()));
        }
        polled
    }
}

fn output_request(stdio: Stdio) -> IoRequest {
    match stdio {
        Stdio::Piped | Stdio::Raw => IoRequest::Pipe,
        Stdio::Inherit => IoRequest::Inherit,
        Stdio::Null => IoRequest::Null,
    }
}
