//! One-shot blocking runs waited for on the calling thread alone.
//!
//! The common blocking call (`cmd.blocking().output()`, and the verbs
//! built on it) needs none of the engine's machinery once its child is
//! born: nothing streams, nothing feeds stdin, nobody cancels. Such a run
//! is spawned by the same launch code as any other (same group, same
//! containment at birth, same errors and log events), then the calling
//! thread waits with `poll(2)` on the child's stdout and stderr pipes and
//! its pidfd together, as `std::process::Command::output` waits on its
//! pipes: no wake-up crosses to the `pkit-blocking` thread. A timeout is
//! `poll`'s; the group is ended exactly as the engine ends it (the
//! teardown, and after a timeout the signal and grace, are the engine's
//! own code, which only waits when the tree outlives its main process).
//!
//! A line callback ([`on_stdout_line`](Command::on_stdout_line),
//! [`on_stderr_line`](Command::on_stderr_line)) of such a run without a
//! bound is called here too, between the reads (see [`choose`]): the pipe
//! is read into the line splitter's buffer and the lines handed over as a
//! reader's are (`pump::LineFeed`), with no reader thread.
//!
//! [`choose`] is the one place that decides which runs go this way; the
//! rest go to the engine unchanged.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use crate::command::Command;
use crate::error::{Error, Result};
use crate::group::Group;
use crate::output::{Outcome, Output};
use crate::pump::{CaptureBuf, CapturePolicy, LineCallback, LineFeed, StreamKind};
use crate::spec::{Input, Spec};
use crate::sys::{ChildHandle, ChildIo};

/// How a blocking one-shot run is carried out.
enum Choice {
    /// By the engine, from the start.
    Engine,
    /// By the engine, in the group already made.
    EngineIn(Group),
    /// On the calling thread (see the module doc), in this group.
    Direct(Group),
}

/// The one decision (Linux; elsewhere every run is the engine's): a run
/// with nothing for the engine to drive (no runner of its own, cancel
/// token, inactivity bound, pty, tee, decoder or fail-fast capture limit;
/// no stdin to feed beyond a few bytes a fresh pipe takes at once) is
/// waited for on the calling thread when its children are held by pidfds
/// (cgroup v2 or process group, not the portable backend); any other goes
/// to the engine.
///
/// A line callback is called on the calling thread too, but only in a run
/// with no timeout and a callback on one stream alone. With a timeout: a
/// callback there holds the thread that would end the run at its
/// deadline, and the engine's promise is that the timeout kills the tree
/// on time while a callback blocks (its reader thread blocks, not the
/// run). With two callbacks: the engine calls each from its stream's own
/// reader, so one that blocks never holds back the other (which may be
/// waiting for it). Those runs are the engine's, their callbacks on
/// `pkit-reader` threads. The rest of the engine's promise holds here: the
/// lines, their order and cuts, a panicking callback disabled; nothing
/// else of the process waits for the callback. What differs: the run's
/// other stream is read by the same thread, so while the callback blocks
/// that stream's capture waits too (a full pipe stops the child's writes
/// there; the run waits for the callback either way).
fn choose(cmd: &Command) -> Result<Choice> {
    let (spec, io) = (&cmd.spec, &cmd.spec.io);
    let callbacks = io.on_stdout_line.is_some() || io.on_stderr_line.is_some();
    let unbounded = spec
        .timeout
        .is_none_or(|t| t >= crate::timing::NO_DEADLINE);
    let plain = cmd.runner.is_none()
        && spec.cancel.is_none()
        && spec.run.inactivity.is_none()
        && match &spec.stdin {
            Input::Null | Input::Inherit | Input::File(_) => true,
            Input::Bytes(bytes) => bytes.len() <= crate::sys::SMALL_WRITE,
            Input::Piped | Input::Reader(_) => false,
        }
        && spec.spawn.pty.is_none()
        && io.stdout_tee.is_none()
        && io.stderr_tee.is_none()
        && (unbounded || !callbacks)
        // One callback at most: the calling thread reads both streams, and
        // two callbacks called from it would no longer run apart (one
        // blocked would hold back the other, which may be waiting for it).
        && !(io.on_stdout_line.is_some() && io.on_stderr_line.is_some())
        && io.decoder.is_none()
        && io.capture_policy != CapturePolicy::Fail;
    if !plain {
        return Ok(Choice::Engine);
    }
    // As the engine's runner makes it (`run_contained`).
    let group = Group::builder()
        .log_name(cmd.log_label())
        .one_shot()
        .build()?;
    Ok(if group.container().holds_pidfds() {
        Choice::Direct(group)
    } else {
        Choice::EngineIn(group)
    })
}

/// `cmd.output()`, blocking: on the calling thread when [`choose`] says
/// so, else through the engine.
#[track_caller]
pub(crate) fn output(what: &str, cmd: &Command, text: bool) -> Result<Output> {
    super::runtime::refuse_inside_runtime(what);
    match choose(cmd)? {
        Choice::Engine => super::block_on(what, cmd.output_as(text)),
        Choice::EngineIn(group) => {
            super::block_on(what, crate::runner::run_in(group, cmd, text))
        }
        Choice::Direct(group) => run(what, group, cmd, text),
    }
}

/// One captured stream: the parent's end while it is read, and what it
/// kept.
struct Stream {
    fd: Option<OwnedFd>,
    capture: CaptureBuf,
    /// Where a bounded capture reads before keeping what it may.
    scratch: Vec<u8>,
    /// Its line callback, while it is called: the reads go to its
    /// splitter's buffer, then to the capture.
    lines: Option<LineFeed>,
}

/// The first read's room; later reads get what the buffer has grown to.
const FIRST_READ: usize = 8 * 1024;

/// The most a closing drain takes from one pipe whose writer escaped
/// the group (a process group's `setsid` descendant) and keeps filling it.
const DRAIN_BUDGET: usize = 4 << 20;

impl Stream {
    /// `text`: validated as UTF-8 as it arrives (`run()`'s stdout).
    fn new(fd: Option<OwnedFd>, spec: &Spec, text: bool) -> Stream {
        Stream {
            fd,
            capture: CaptureBuf::new(spec.io.capture_limit, spec.io.capture_policy).text_if(text),
            scratch: Vec::new(),
            lines: None,
        }
    }

    /// With `callback` called for each line read (in `context`).
    fn calling(
        mut self,
        kind: StreamKind,
        callback: Option<&LineCallback>,
        spec: &Spec,
        context: Option<&tokio::runtime::Handle>,
    ) -> Stream {
        if let (Some(cb), Some(cx), Some(_)) = (callback, context, &self.fd) {
            let max = spec.io.max_line_bytes;
            self.lines = Some(LineFeed::new(kind, cb.clone(), max, cx.clone()));
        }
        self
    }

    /// One read of a pipe `poll` found ready; the bytes read (0 once it is
    /// at its end, or failed: then it is closed, and its last line told).
    fn read(&mut self) -> usize {
        let Some(fd) = &self.fd else { return 0 };
        if self.lines.as_ref().is_some_and(|l| !l.wanted()) {
            self.lines = None; // it panicked: the capture alone from here
        }
        let got = if let Some(lines) = &mut self.lines {
            let got = crate::sys::read_ready(fd.as_fd(), lines.room(), 0);
            if let Ok(n) = got {
                let capture = &mut self.capture;
                lines.read(n, |bytes| {
                    capture.push(bytes);
                });
            }
            got
        } else {
            self.read_captured()
        };
        match got {
            Ok(n) if n > 0 => n,
            _ => {
                self.fd = None;
                self.finish_lines();
                0
            }
        }
    }

    /// The last line, unterminated, to the callback (once).
    fn finish_lines(&mut self) {
        if let Some(mut lines) = self.lines.take() {
            lines.finish();
        }
    }

    /// One read of a pipe into the capture alone.
    fn read_captured(&mut self) -> std::io::Result<usize> {
        let Some(fd) = &self.fd else { return Ok(0) };
        match self.capture.direct() {
            Some(buf) => {
                let got = buf.read_ready(fd.as_fd(), FIRST_READ);
                if let Ok(n) = got {
                    self.capture.note_direct(n);
                }
                got
            }
            None => {
                self.scratch.clear();
                let got = crate::sys::read_ready(fd.as_fd(), &mut self.scratch, 64 * 1024);
                self.capture.push(&self.scratch);
                got
            }
        }
    }

    /// Takes what is already in the pipe, without waiting (the engine's
    /// readers do the same when a run ends).
    fn drain(&mut self) {
        let mut taken = 0;
        while taken < DRAIN_BUDGET {
            let Some(fd) = &self.fd else { return };
            match crate::sys::poll_readable(
                [Some(fd.as_fd()), None, None],
                Some(Default::default()),
            ) {
                Ok([true, ..]) => taken += self.read(),
                _ => return,
            }
        }
    }
}

/// Reads `streams` as they fill until the child exits (its status) or
/// `deadline` passes (`None`). At the deadline, one look without waiting:
/// a child that exited as it passed (its pidfd ready after `poll` gave
/// up, or in the same instant) reports its exit, not a timeout.
fn wait_until(
    child: &crate::sys::ChildHandle,
    streams: &mut [Stream; 2],
    deadline: Option<Instant>,
) -> std::io::Result<Option<crate::sys::ExitStatus>> {
    loop {
        let left = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return child.try_status(),
            },
        };
        let [out, err] = &*streams;
        let ready = crate::sys::poll_readable(
            [
                out.fd.as_ref().map(AsFd::as_fd),
                err.fd.as_ref().map(AsFd::as_fd),
                child.pidfd(),
            ],
            left,
        )?;
        for (stream, ready) in streams.iter_mut().zip(ready) {
            if ready {
                stream.read();
            }
        }
        if ready[2] {
            if let Some(status) = child.seen_status()? {
                return Ok(Some(status));
            }
        }
    }
}

/// What [`start`] gives.
type Started = (Arc<ChildHandle>, Instant, [Option<OwnedFd>; 3], Option<ChildIo>);

/// Starts `spec` in `group` with the stdio it asks for: the child, when
/// it started, the parent's ends of its stdin, stdout and stderr, and the
/// child's end of a stdin pipe for bytes, kept open for their write (see
/// `sys::write_small`).
fn start(
    group: &Group,
    spec: &Spec,
    program: &str,
) -> Result<Started> {
    let prepared = crate::launch_prepare::prepare(spec, program)?;
    let mut no_reader = None;
    let ((stdin, stdin_parent), (stdout, stdout_parent), (stderr, stderr_parent)) =
        crate::launch::stdio(spec, program, None, None, &mut no_reader)?;
    let keep_stdin = stdin_parent.is_some() && matches!(spec.stdin, Input::Bytes(_));
    let (child, _, started, stdin_held) = crate::launch::spawn_in(
        group.container(),
        spec,
        program,
        prepared,
        [stdin, stdout, stderr],
        (false, keep_stdin),
    )?;
    Ok((
        child,
        started,
        [stdin_parent, stdout_parent, stderr_parent],
        stdin_held,
    ))
}

/// The run itself, in `group` (whose children have pidfds).
#[track_caller]
fn run(what: &str, group: Group, cmd: &Command, text: bool) -> Result<Output> {
    let spec = &cmd.spec;
    let program = spec.shared_display_name();
    group.check_open(spec)?;
    // The runtime whose context line callbacks run in: built (or its
    // failure told) before the child starts.
    let io = &spec.io;
    let context = if io.on_stdout_line.is_some() || io.on_stderr_line.is_some() {
        Some(super::runtime::context(what)?)
    } else {
        None
    };
    let cx = context.as_ref();
    let began = Instant::now();
    let (child, started, [stdin_parent, stdout_parent, stderr_parent], stdin_held) =
        start(&group, spec, &program)?;
    let pid = child.pid() as u32;
    // Under cgroup v2 the proof that the tree is gone is the cgroup's
    // (`populated 0`), and nothing asks for the child by number after its
    // exit: the look that sees the exit reaps it (one `waitid`, not a look
    // and a reap at the end), as the engine's one-shot runs do. A process
    // group keeps its leader's zombie (the group's number) until its close.
    let reap_early = group.mechanism() == crate::sys::Mechanism::CgroupV2;
    if reap_early {
        child.reap_when_seen();
    }
    // A small input fits the fresh pipe: written now, then end of file.
    if let (Some(fd), Input::Bytes(bytes)) = (stdin_parent, &spec.stdin) {
        crate::sys::write_small(fd.as_fd(), bytes, stdin_held.as_ref());
    }
    drop(stdin_held);
    let mut streams = [
        Stream::new(stdout_parent, spec, text).calling(
            StreamKind::Stdout,
            io.on_stdout_line.as_ref(),
            spec,
            cx,
        ),
        Stream::new(stderr_parent, spec, false).calling(
            StreamKind::Stderr,
            io.on_stderr_line.as_ref(),
            spec,
            cx,
        ),
    ];
    let wait_error = |e| Error::io(format!("{program}: wait"), e);
    let deadline = spec
        .timeout
        .filter(|t| *t < crate::timing::NO_DEADLINE)
        .map(|t| began + t);
    let status = wait_until(&child, &mut streams, deadline).map_err(wait_error)?;
    let label = cmd.log_label();
    let who = crate::log::Subject::new(&program, &label)
        .pid(pid)
        .mechanism(group.mechanism());
    if status.is_none() {
        crate::log::timed_out(who, spec.timeout);
    }
    let oom_before = group.oom_kills();
    // The engine's own teardown, driven here: it returns at once when the
    // tree ended with its main process (a cgroup emptied, a process group
    // gone with its leader); it waits, on the engine's driver, only for a
    // tree that outlived it or timed out.
    let (timed_out, never) = (status.is_none(), std::future::pending());
    // Pinned here, and lent: the future below holds a pointer to it, not
    // a copy.
    let end = std::pin::pin!(crate::runner::end_group(
        &group,
        timed_out,
        spec.timeout_signal,
        spec.grace,
        never
    ));
    // A child that exits during a timeout's grace is reaped then (nothing
    // else sees its exit until the end), under cgroup v2.
    let end = async {
        match reap_early {
            true => child.reaped_during(end).await,
            false => end.await,
        }
    };
    let killed_after_grace = super::runtime::drive(what, end)??;
    if killed_after_grace {
        crate::log::killed_after_grace(who);
    }
    for stream in &mut streams {
        stream.drain();
        stream.finish_lines();
    }
    let outcome = match status {
        Some(status) => crate::process::outcome_of(status),
        None => Outcome::TimedOut,
    };
    let usage = child.rusage();
    let [stdout, stderr] = streams.map(|s| s.capture.finish());
    let (secret_output, redact) = spec.output_marks();
    let out = Output {
        program,
        outcome,
        stdout: stdout.bytes,
        stderr: stderr.bytes.into_vec(),
        duration: started.elapsed(),
        mechanism: group.mechanism(),
        pid,
        stdout_seen: stdout.seen,
        stderr_seen: stderr.seen,
        stages: Vec::new(),
        cpu_time: usage.map(|u| u.cpu),
        peak_memory: usage.map(|u| u.max_rss_bytes),
        oom_killed: oom_before.is_some_and(|n| n > 0),
        killed_after_grace,
        inactivity_timed_out: false,
        secret_output,
        redact,
        stdout_tee_error: None,
        stderr_tee_error: None,
    };
    crate::log::finished(
        &out.program,
        spec.log_name.as_deref(),
        pid,
        out.mechanism,
        outcome,
        out.duration,
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{wait_until, Stream};
    use crate::command::Command;
    use crate::group::Group;

    /// The decision at the deadline, with a real child: one that has
    /// exited by the time the deadline is looked at reports its exit
    /// status, never a timeout (before, a passed deadline ended the wait
    /// without looking).
    #[test]
    fn an_exited_child_at_the_deadline_reports_its_exit() {
        let cmd = Command::new("sh").args(["-c", "exit 7"]);
        let spec = &cmd.spec;
        let program = spec.display_name();
        let group = Group::builder().one_shot().build().unwrap();
        if !group.container().holds_pidfds() {
            return; // the portable backend: never the direct path
        }
        let (child, _, _, _) = super::start(&group, spec, &program).unwrap();
        // Exited (its pidfd readable), not yet looked at.
        let ready =
            crate::sys::poll_readable([None, None, child.pidfd()], Some(Duration::from_secs(60)))
                .unwrap();
        assert!(ready[2], "the child did not exit within 60 s");
        let mut streams = [Stream::new(None, spec, false), Stream::new(None, spec, false)];
        for deadline in [Instant::now(), Instant::now() - Duration::from_secs(1)] {
            let status = wait_until(&child, &mut streams, Some(deadline)).unwrap();
            let outcome = status.map(crate::process::outcome_of);
            assert_eq!(outcome, Some(crate::output::Outcome::Exited(7)));
        }
        drop(group);
    }

    /// The blocking `run()`'s capture, read on the calling thread, is
    /// validated as it arrives (at most the last 32 KiB batch left), and
    /// `output()`'s is not.
    #[test]
    fn the_direct_runs_capture_is_validated_as_it_arrives() {
        let size = 3 << 20;
        let script = format!("yes 'aé€😀' | head -c {size}");
        let cmd = Command::new("sh").args(["-c", &script]);
        let group = Group::builder().one_shot().build().unwrap();
        if !group.container().holds_pidfds() {
            return; // the portable backend: never the direct path
        }
        let out = super::run("run", group, &cmd, true).unwrap();
        let (len, valid) = (out.stdout.len(), out.stdout.valid());
        assert_eq!(len, size);
        assert!(valid + (32 << 10) >= len, "{valid} of {len}");
        let group = Group::builder().one_shot().build().unwrap();
        let out = super::run("output", group, &cmd, false).unwrap();
        assert_eq!((out.stdout.len(), out.stdout.valid()), (size, 0));
    }
}
