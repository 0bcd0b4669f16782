//! [`RunningProcess`]: a live process started in a [`Group`](crate::Group),
//! and the plumbing that turns a [`Command`] into one.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinHandle;

use crate::child::Child;
pub use crate::child_stdin::ChildStdin;
use crate::error::{Error, Result};
use crate::future::BoxFuture;
use crate::log;
use crate::output::{Outcome, Output};
use crate::pump::{Captured, LimitFlag, Lines, Reader, StreamKind};
use crate::sys::{self, ExitStatus, Mechanism};

/// A process started with [`Group::start`](crate::Group::start).
///
/// Its piped stdout and stderr are read concurrently in the background from
/// the moment it starts (so it can never block on a full pipe), and handed
/// over by [`wait`](Self::wait). What is kept is bounded: unless the
/// command sets [`capture_limit`](crate::Command::capture_limit), the last
/// [`DEFAULT_START_CAPTURE_BYTES`](crate::DEFAULT_START_CAPTURE_BYTES)
/// (1 MiB) of each stream, every byte counted; with
/// [`stream_lines`](crate::Command::stream_lines), at most
/// [`buffer_lines`](crate::Command::buffer_lines) lines until the stream
/// is taken (see [`lines`](Self::lines)). A process whose output nobody
/// reads keeps running and costs the owner a bounded amount of memory.
///
/// The process belongs to its group: dropping this handle neither kills nor
/// orphans it (it lives until it exits or the group is torn down, and is
/// reaped either way); its output goes on being drained and discarded, so
/// a chatty child neither blocks nor dies of SIGPIPE. Dropping the group
/// kills it.
pub struct RunningProcess {
    program: Arc<str>,
    pid: u32,
    mechanism: Mechanism,
    started: Instant,
    pub(crate) child: Child,
    pub(crate) stdout: Option<Reader>,
    pub(crate) stderr: Option<Reader>,
    /// Stdout's and stderr's captures as `finish` collects them (see there).
    collected: [Option<Captured>; 2],
    pub(crate) stdin: Option<ChildStdin>,
    /// The read ends of [`Stdio::Raw`](crate::Stdio::Raw) streams, until taken.
    pub(crate) raw_stdout: Option<crate::raw_output::ChildOutput>,
    pub(crate) raw_stderr: Option<crate::raw_output::ChildOutput>,
    /// Its streams' partial lines (with a line stream), and how much of
    /// which one a `wait_for_prompt` matched (stream, line number, bytes).
    pub(crate) prompt: Option<Arc<crate::pump::PromptSlot>>,
    pub(crate) prompt_seen: Option<(StreamKind, u64, usize)>,
    pub(crate) stdin_task: Option<JoinHandle<()>>,
    /// Set when a `stdin_reader` failed (or panicked) before its end.
    pub(crate) input_failure: Option<InputFailure>,
    /// What of its background work `finish` found gone with the runtime
    /// it ran on (see `check_input`).
    lost: Option<&'static str>,
    pub(crate) lines: Option<Lines>,
    /// The lines dropped from the line stream: made with the stream (no
    /// stream, no counter: a run allocates none).
    pub(crate) dropped: Option<Arc<AtomicU64>>,
    pub(crate) limit: Arc<LimitFlag>,
    /// The capture limit, when crossing it fails the run.
    pub(crate) fail_limit: Option<crate::plans::FailLimit>,
    /// Its own subtree and the bounds armed on it (started processes).
    pub(crate) watch: Option<crate::watch::Watch>,
    pub(crate) finished: Option<Output>,
    /// The command's `log_name`, for events.
    pub(crate) log_name: Option<Arc<str>>,
    /// Its command's `secret_output`, and the secrets its output must not
    /// show (`Spec::output_secrets`): every `Output` it gives carries them
    /// (`Output::redact`), so an error made of one hides them.
    pub(crate) secrets: (bool, Vec<Vec<u8>>),
    /// The private group of a process started with
    /// [`Command::start`](crate::Command::start): it ends (killing the
    /// tree) when this handle drops. Last, so it drops after the rest.
    pub(crate) own_group: Option<Box<dyn OwnGroup>>,
    /// Set by `set_kill_on_drop`: the drop kills the process's subtree.
    pub(crate) kill_on_drop: bool,
    /// The process that started it: a copy in a child forked without
    /// `exec` kills nothing when dropped.
    pub(crate) made_by: sys::Creator,
    /// The master side of a pty session (`pty.rs`).
    pub(crate) pty: Option<crate::pty::PtySide>,
}

/// The private group a handle owns (see `own_group`): a trait, so this
/// file, a layer below [`Group`](crate::Group), needs no `Group`.
pub(crate) trait OwnGroup: Send + Sync {
    /// [`Group::close`](crate::Group::close).
    fn close(&self) -> BoxFuture<'_, Result<()>>;
}

impl RunningProcess {
    /// A handle with nothing wired yet; `limit` is the flag its readers
    /// and watch share (a pipeline's stages share one).
    pub(crate) fn new(
        program: Arc<str>,
        pid: u32,
        mechanism: Mechanism,
        started: Instant,
        child: Child,
        limit: Arc<LimitFlag>,
    ) -> RunningProcess {
        RunningProcess {
            program,
            pid,
            mechanism,
            started,
            child,
            stdout: None,
            stderr: None,
            collected: [None, None],
            stdin: None,
            raw_stdout: None,
            raw_stderr: None,
            prompt: None,
            prompt_seen: None,
            stdin_task: None,
            input_failure: None,
            lost: None,
            lines: None,
            dropped: None,
            limit,
            fail_limit: None,
            watch: None,
            finished: None,
            own_group: None,
            kill_on_drop: false,
            made_by: sys::Creator::here(),
            log_name: None,
            secrets: (false, Vec::new()),
            pty: None,
        }
    }

    /// The merged stream of stdout and stderr lines (needs
    /// [`Command::stream_lines`](crate::Command::stream_lines)). It can be
    /// taken once; later calls, or a command without `stream_lines`, give an
    /// empty stream.
    ///
    /// Take it right after the start to see every line. Until it is taken
    /// (and while no [`wait_for_line`](Self::wait_for_line) reads it), up to
    /// [`buffer_lines`](crate::Command::buffer_lines) lines wait for it; when
    /// more come, the child is held back for at most a second, then the
    /// lines that don't fit are dropped and counted in
    /// [`dropped_lines`](Self::dropped_lines) until the stream is taken, so
    /// a process whose stream nobody reads never blocks for good.
    /// [`wait`](Self::wait) drops them at once. Once taken, the command's
    /// [`overflow`](crate::Command::overflow) policy applies: under the
    /// default backpressure a consumer that stops reading stalls the child,
    /// so drain it concurrently with [`wait`](Self::wait). Dropping it is
    /// fine: the output keeps being drained, so the child never blocks.
    pub fn lines(&mut self) -> Lines {
        let lines = self.lines.take().unwrap_or(Lines { rx: None });
        if let Some(rx) = &lines.rx {
            rx.hold(true);
        }
        lines
    }

    /// How many lines were dropped because the stream was full under
    /// [`Overflow::DropNewest`](crate::Overflow::DropNewest), or full while
    /// nobody read it (see [`lines`](Self::lines)).
    pub fn dropped_lines(&self) -> u64 {
        self.dropped
            .as_ref()
            .map_or(0, |d| d.load(Ordering::Relaxed))
    }

    /// The child's stdin, when the command used
    /// [`stdin_piped`](crate::Command::stdin_piped). Drop it (or call
    /// `shutdown`) to send end of file.
    pub fn stdin(&mut self) -> Option<&mut ChildStdin> {
        self.stdin.as_mut()
    }

    /// Takes the child's stdin handle, to move it elsewhere.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// The CPU time (user + system) this process has used so far, from
    /// `/proc` (after its exit, from the kernel's accounting).
    pub fn cpu_time(&self) -> Option<std::time::Duration> {
        // Once reaped (a process-group leader, at its group's close), the
        // pid may name another process: the kept usage answers.
        if self.child.reaped() {
            return self.child.rusage().map(|u| u.cpu);
        }
        match sys::proc_usage(self.pid as i32) {
            Some((cpu, Some(_), _)) => Some(cpu),
            _ => self.child.rusage().map(|u| u.cpu),
        }
    }

    /// This process's peak resident memory so far (`VmHWM`; after its exit,
    /// the kernel's `ru_maxrss`).
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        if self.child.reaped() {
            return self.child.rusage().map(|u| u.max_rss_bytes);
        }
        match sys::proc_usage(self.pid as i32) {
            Some((_, _, Some(hwm))) => Some(hwm),
            _ => self.child.rusage().map(|u| u.max_rss_bytes),
        }
    }

    /// The terminal of a [`Command::pty`](crate::Command::pty) (or
    /// [`pty_raw`](crate::Command::pty_raw)) session, to type into and
    /// resize; `None` for a process without one.
    pub fn pty(&self) -> Option<crate::Pty> {
        self.pty.as_ref().map(|side| side.pty())
    }

    /// The whole master side of a [`Command::pty_raw`](crate::Command::pty_raw)
    /// session, as one `AsyncRead + AsyncWrite`. Once: later calls, and a
    /// process started without `pty_raw`, give `None`.
    pub fn take_pty_master(&mut self) -> Option<crate::PtyMaster> {
        self.pty.as_mut()?.take_master()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The program, as given to [`Command::new`](crate::Command::new).
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The mechanism containing the process.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Waits for the process to exit and returns its [`Output`], with
    /// what was kept of its piped stdout and stderr (see the type's docs).
    ///
    /// It returns once the process itself has exited: output that its
    /// descendants write afterwards (they live on until the group ends) is
    /// not included. The captured bytes are handed over once: calling it again
    /// returns the same outcome, with empty stdout and stderr (or the same
    /// error, as below).
    ///
    /// Under [`CapturePolicy::Fail`](crate::CapturePolicy::Fail), a stream
    /// that went over its limit makes this an [`Error::OutputLimit`] (the
    /// process itself is left to its group). A
    /// [`stdin_reader`](crate::Command::stdin_reader) that failed or
    /// panicked makes a successful exit an [`Error::Io`]: the process read a
    /// truncated input.
    ///
    /// When the command's [`timeout`](crate::Command::timeout) ended the
    /// process, the outcome is [`Outcome::TimedOut`] (and this returns once
    /// the grace, if any, is over and the process's subtree is gone); when
    /// its cancel token did, this is [`Error::Cancelled`].
    ///
    /// # Errors
    ///
    /// - [`Error::OutputLimit`] and [`Error::Cancelled`] as above;
    /// - [`Error::Io`] when the exit status can't be read, when a
    ///   [`stdin_reader`](crate::Command::stdin_reader) failed (see above),
    ///   or when the runtime it was started on shut down first, taking its
    ///   output or input with it (see [`Group::start`](crate::Group::start)).
    pub async fn wait(&mut self) -> Result<Output> {
        self.wait_within(std::future::pending::<()>()).await
    }

    /// [`wait`](Self::wait), with `also` bounding the output's finish after
    /// the exit besides the command's own bounds (see `AfterExit`): a
    /// supervisor's stop and cancel tokens.
    pub(crate) async fn wait_within(&mut self, also: impl Future) -> Result<Output> {
        if let Some(out) = &self.finished {
            // The same answer as the first wait's: output or input lost
            // with the start's runtime, or output over a `Fail` limit, is
            // an error again, never a success.
            let out = self.check_input(out.clone())?;
            return self.check_limit(out);
        }
        // A line stream nobody took can't be read while we wait: it must
        // not hold the child back.
        if let Some(rx) = self.lines.as_ref().and_then(|l| l.rx.as_ref()) {
            rx.let_go();
        }
        crate::watch::rearm(&mut self.watch);
        // Its outputs read to their end, the child has most likely exited:
        // a status check now (kept by the child) spares the reactor's round
        // trip, a worker woken by the exit's event only to wake this thread.
        let outputs = [&self.stdout, &self.stderr];
        if outputs.iter().any(|r| r.is_some())
            && outputs.iter().all(|r| r.as_ref().is_none_or(Reader::ended))
        {
            let _ = self.child.try_status();
        }
        // The watch's task is started again should its runtime shut down
        // while this waits (see `watch::lost`).
        let status = tokio::select! {
            s = self.child.wait() => s.map_err(|e| Error::io(format!("{}: wait", self.program), e))?,
            () = crate::watch::lost(&mut self.watch) => unreachable!("never completes"),
        };
        let (outcome, killed_after_grace, idle) =
            crate::watch::outcome(&mut self.watch, &self.program, outcome_of(status)).await?;
        let (outcome, script_idle) = self.child.reported(&self.program, outcome)?;
        let idle = idle || script_idle;
        let after = crate::watch::after_exit(&self.watch);
        let bound = async {
            tokio::select! { () = after.passed() => {}, _ = also => {} }
        };
        let mut out = self.finish(outcome, bound).await;
        out.killed_after_grace = killed_after_grace;
        out.inactivity_timed_out = idle;
        if let Some(kept) = &mut self.finished {
            kept.killed_after_grace = killed_after_grace;
            kept.inactivity_timed_out = idle;
        }
        let out = self.check_input(out)?;
        self.check_limit(out)
    }

    /// `out`, or the error for a crossed `Fail` capture limit (carrying
    /// `out`) if one was.
    pub(crate) fn check_limit(&self, out: Output) -> Result<Output> {
        crate::plans::over_limit(&self.program, self.fail_limit, out)
    }

    /// `out`, or an error when a [`stdin_reader`](crate::Command::stdin_reader)
    /// failed or panicked and the process nonetheless succeeded: it read a
    /// truncated input, which must not pass for success. (A process that
    /// failed anyway keeps its `Output`.) Always an error when its output
    /// or input was lost with the runtime it was started on.
    pub(crate) fn check_input(&self, out: Output) -> Result<Output> {
        if let Some(what) = self.lost {
            return Err(Error::io(
                format!(
                    "{}: {what} was read or written by tasks of the Tokio runtime the process \
                     was started on, which shut down before this wait: it is incomplete",
                    self.program
                ),
                io::Error::other("the runtime that started the process has shut down"),
            ));
        }
        if !out.success() {
            return Ok(out);
        }
        let failure = self
            .input_failure
            .as_ref()
            .and_then(|f| f.lock().unwrap_or_else(|e| e.into_inner()).clone());
        match failure {
            None => Ok(out),
            Some((kind, what)) => Err(Error::io(
                format!(
                    "{}: its stdin reader failed, so it read a truncated input",
                    self.program
                ),
                io::Error::new(kind, what),
            )),
        }
    }

    /// Sends SIGKILL to this process (not to its descendants: to end the
    /// whole tree, kill or drop the group). Does nothing once it has exited.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the system refuses the signal (an exited process is
    /// not an error).
    pub fn kill(&self) -> Result<()> {
        self.child
            .signal(sys::Signal::Kill.as_raw())
            .map_err(|e| Error::io(format!("{}: kill", self.program), e))
    }

    /// Sends SIGKILL to this process and everything it spawned: its own
    /// subtree within the group (see [`Group::start`](crate::Group::start)
    /// for what that is under each mechanism). The rest of the group runs
    /// on. Works after the process itself has exited too, for descendants
    /// it left behind (under cgroup v2; a process group finds descendants
    /// only through living parents).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the system refuses the signal, where the process is
    /// signalled alone (no subtree of its own); and under a process group
    /// when the subtree could not be listed (no descriptor free to read a
    /// member's parent): the process itself has had the SIGKILL, its
    /// descendants may run on.
    pub fn kill_tree(&self) -> Result<()> {
        match crate::watch::tree(&self.watch) {
            Some(tree) => tree
                .kill()
                .map_err(|e| Error::io(format!("{}: kill_tree", self.program), e)),
            None => self.kill(),
        }
    }

    /// Whether the process has exited (it may still be waiting to be
    /// collected by [`wait`](Self::wait)).
    pub fn has_exited(&self) -> bool {
        matches!(self.child.try_status(), Ok(Some(_)))
    }

    /// Waits for the exit status only.
    pub(crate) async fn wait_status(&self) -> Result<ExitStatus> {
        self.child.wait().await.map_err(|e| self.wait_error(e))
    }

    /// Waits for the exit in the task that reads the output, when both
    /// streams share a reading task that no event has started yet: that
    /// task is spawned by the first event on the pipes or the exit, on the
    /// worker that saw it, and hands back the exit once the output is read.
    /// For a caller that is no task of a multi-thread runtime (its
    /// `block_on`), which is then woken once, with both, instead of for the
    /// exit and again for the output. `None` when there is no such task.
    /// Dropping the returned future leaves the task to end with the process.
    /// Its error is the wait's own: the caller names the program (see
    /// [`wait_error`](Self::wait_error)).
    pub(crate) fn wait_aside(
        &self,
    ) -> Option<impl std::future::Future<Output = io::Result<ExitStatus>> + Send + 'static> {
        let readers = self.stdout.as_ref().and_then(Reader::claim_pair)?;
        let child = self.child.clone();
        let done = crate::pump::aside(readers, child.wait_keeping());
        Some(async move {
            done.await
                .unwrap_or_else(|_| Err(io::Error::other("the runtime is shutting down")))
        })
    }

    /// A failed wait for the exit, naming the program.
    pub(crate) fn wait_error(&self, e: io::Error) -> Error {
        Error::io(format!("{}: wait", self.program), e)
    }

    /// Stops reading output (taking whatever is already buffered in the
    /// pipes) and builds the result. A tee's stuck write is abandoned if
    /// it timed out, or once `bound` (see `AfterExit`) completes.
    pub(crate) async fn finish(&mut self, outcome: Outcome, bound: impl Future) -> Output {
        // Nothing but a shut-down runtime ends an input feed before its
        // end without this abort.
        let input_lost = match self.stdin_task.take() {
            Some(task) if task.is_finished() => task.await.is_err(),
            Some(task) => {
                task.abort();
                false
            }
            None => false,
        };
        self.stdin = None;
        let usage = self.child.rusage();
        // A reader's capture is kept here before the reader goes: a wait
        // dropped half way (a caller's own timeout) loses none of it, and
        // the next wait takes it.
        let readers = [&mut self.stdout, &mut self.stderr];
        let (mut bound, mut passed) = (std::pin::pin!(bound), outcome == Outcome::TimedOut);
        for (reader, kept) in readers.into_iter().zip(&mut self.collected) {
            if let Some(r) = reader {
                *kept = Some(r.finish_within(&mut passed, bound.as_mut()).await);
                *reader = None;
            }
        }
        let [stdout, stderr] = std::mem::take(&mut self.collected).map(Option::unwrap_or_default);
        self.lost = [
            (stdout.lost, "its stdout"),
            (stderr.lost, "its stderr"),
            (input_lost, "its stdin input"),
        ]
        .into_iter()
        .find_map(|(lost, what)| lost.then_some(what));
        let out = Output {
            program: self.program.clone(),
            outcome,
            stdout: stdout.bytes,
            stderr: stderr.bytes.into_vec(),
            duration: self.started.elapsed(),
            mechanism: self.mechanism,
            pid: self.pid,
            stdout_seen: stdout.seen,
            stderr_seen: stderr.seen,
            stages: Vec::new(),
            cpu_time: usage.map(|u| u.cpu),
            peak_memory: usage.map(|u| u.max_rss_bytes),
            oom_killed: false,
            killed_after_grace: false,
            inactivity_timed_out: false,
            secret_output: self.secrets.0,
            redact: self.secrets.1.clone(),
            stdout_tee_error: stdout.tee_error,
            stderr_tee_error: stderr.tee_error,
        };
        log::finished(
            &self.program,
            self.log_name.as_deref(),
            self.pid,
            self.mechanism,
            outcome,
            out.duration,
        );
        // Keep the result for a later `wait`, without copying the bytes
        // (a 64 MiB capture must not cost a second 64 MiB).
        self.finished = Some(out.clone_meta());
        out
    }
}

/// Raw output (`Stdio::Raw`; the handle is in `raw_output.rs`).
impl RunningProcess {
    /// Takes the child's stdout as a raw [`AsyncRead`](tokio::io::AsyncRead), when the command
    /// set `stdout(Stdio::Raw)`; `None` otherwise, or once taken.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use tokio::io::AsyncReadExt;
    /// use pkit::{Command, Stdio};
    ///
    /// let mut p = Command::new("printf").arg("\\001\\002\\003").stdout(Stdio::Raw).start()?;
    /// let mut bytes = Vec::new();
    /// p.take_stdout().expect("raw stdout").read_to_end(&mut bytes).await?;
    /// assert_eq!(bytes, [1, 2, 3]);
    /// assert!(p.wait().await?.success());
    /// # Ok(()) }
    /// ```
    pub fn take_stdout(&mut self) -> Option<crate::raw_output::ChildOutput> {
        self.raw_stdout.take()
    }

    /// Takes the child's stderr as a raw [`AsyncRead`](tokio::io::AsyncRead), when the command
    /// set `stderr(Stdio::Raw)`; `None` otherwise, or once taken.
    pub fn take_stderr(&mut self) -> Option<crate::raw_output::ChildOutput> {
        self.raw_stderr.take()
    }
}

impl Drop for RunningProcess {
    /// Neither kills nor orphans the process: its output goes on being
    /// drained (and discarded; a tee, a callback and a taken line stream
    /// still get it) until it and its descendants close their ends — at the
    /// latest when the group ends — and its stdin input goes on being fed.
    ///
    /// A copy in a child the application forked without `exec` kills
    /// nothing, `set_kill_on_drop` or not: the process is its parent's.
    fn drop(&mut self) {
        if self.kill_on_drop && self.made_by.is_here_confirmed() {
            let _ = self.kill_tree();
        }
        for r in [self.stdout.take(), self.stderr.take()]
            .into_iter()
            .flatten()
        {
            r.detach();
        }
        // A feeding task (stdin bytes or reader) is left to finish: it ends
        // once everything is written or the child closes its stdin.
        drop(self.stdin_task.take());
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

/// Where a failed `stdin_reader` leaves its error (kind and text).
pub(crate) type InputFailure = Arc<std::sync::Mutex<Option<(io::ErrorKind, String)>>>;
