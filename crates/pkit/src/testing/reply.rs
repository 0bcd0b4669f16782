//! [`Reply`]: what a scripted command answers — a script of writes and
//! pauses, and how it ends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cancel::CancelToken;
use crate::command::Command;
use crate::error::{Error, Result};
use crate::launch_spec::Launch;
use crate::output::{Outcome, Output};
use crate::process::RunningProcess;
use crate::pump::StreamKind;
use crate::timing::{deadline_after, sleep_until_or_never};

use super::copy_error::copy_error;
use super::started::{Chunk, End, Script};

/// What a [`ScriptedRunner`](super::ScriptedRunner) answers for a command:
/// a script of what the program writes — in order, with pauses — and how
/// it ends. The constructors give the first write (if any) and the end;
/// [`stdout`](Self::stdout), [`stderr`](Self::stderr) and
/// [`pause`](Self::pause) add to the script, and
/// [`keep_running`](Self::keep_running) makes it a process that never
/// exits on its own (a server).
///
/// A verb ([`output`](Command::output), [`run`](Command::run)…) gets the
/// script's writes gathered into its [`Output`] (after its pauses, bounded
/// by the command's timeout, inactivity timeout and cancel token, as a
/// real run is; its duration is the time the pauses took, zero without;
/// a [`timed_out`](Self::timed_out) one's, at least the command's timeout).
/// A *started* run ([`Group::start`](crate::Group::start),
/// [`Command::start`], a [`Pipe`](crate::Pipe) stage, a
/// [`Supervisor`](crate::Supervisor)'s runs) plays the script live: the
/// writes go through real pipes into the same line pump as a real child's
/// output, so [`lines`](RunningProcess::lines),
/// [`wait_for_line`](RunningProcess::wait_for_line), line callbacks, tees
/// and captures behave as with a real process. A started scripted process
/// has a pid no real process can have (above the kernel's `pid_max`), is
/// reached by its own handle's `kill`, `signal` and `shutdown` (a
/// terminating signal ends it, reported as killed by that signal) and by
/// its group's (`kill`, `signal`, `shutdown`, `close`, drop). It reads and
/// discards its stdin, and exits only once that is at its end (as a
/// filter does, so a real producer piped into it never dies of SIGPIPE
/// for it); a write to a consumer that went away ends it as `SIGPIPE`
/// would.
///
/// Where a started script's output goes follows the command, as for a
/// real process: a piped stream (the default) goes through a pipe into
/// the pump, a [`Stdio::Raw`](crate::Stdio::Raw) one through a pipe handed
/// over by [`take_stdout`](RunningProcess::take_stdout); a
/// [`stdout_file`](Command::stdout_file) or
/// [`stderr_file`](Command::stderr_file) gets the bytes written into the
/// file (opened — created, truncated or appended — as for a real start);
/// under [`merge_stderr`](Command::merge_stderr) the stderr writes go
/// where stdout goes, in order; [`Stdio::Inherit`](crate::Stdio::Inherit)
/// writes them to the test process's own stdout or stderr;
/// [`Stdio::Null`](crate::Stdio::Null) discards them; a
/// [`pty`](Command::pty) session writes them to its terminal (which turns
/// `\n` into `\r\n`, as for a real program; its rules on what else can be
/// set apply), and leaves its stdin to the terminal. The order of the
/// writes across stdout and stderr is kept: a write waits until the other
/// stream's reader has taken what it was given. Stdin bytes, a stdin
/// reader or a piped stdin are read to their end and discarded; a
/// [`stdin_file`](Command::stdin_file) is opened (a missing one fails the
/// start, as for a real one) and not read; an inherited stdin is not read
/// (the test's own stdin is never taken).
///
/// A reply can be given any number of times: each run plays its own copy
/// ([`sequence`](Self::sequence) gives different runs different replies).
///
/// ```
/// use std::time::Duration;
/// use pkit::testing::{Reply, ScriptedRunner};
/// use pkit::{Command, Group};
///
/// # async fn demo() -> pkit::Result<()> {
/// // A server that logs, becomes ready, and runs until stopped.
/// let script = ScriptedRunner::new().on(
///     ["my-server", "--port", "8080"],
///     Reply::ok("booting\n")
///         .pause(Duration::from_millis(20))
///         .stderr("cache cold\n")
///         .stdout("listening on :8080\n")
///         .keep_running(),
/// );
/// let cmd = Command::new("my-server")
///     .args(["--port", "8080"])
///     .stream_lines()
///     .runner(std::sync::Arc::new(script));
/// let group = Group::new()?;
/// let mut server = group.start(&cmd)?;
/// let ready = server
///     .wait_for_line(|l| l.text.starts_with("listening"), Duration::from_secs(5))
///     .await?;
/// assert_eq!(ready.text, "listening on :8080");
/// server.kill()?;
/// assert!(server.wait().await?.outcome() == pkit::Outcome::Signalled(9));
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct Reply(Kind);

#[derive(Clone)]
enum Kind {
    /// Writes, pauses, and an end.
    Script(Script),
    /// Could not run (each run gets a copy of the error).
    Err(Arc<Error>),
    /// One reply per run, the last repeated.
    Sequence(Arc<Sequence>),
}

struct Sequence {
    replies: Vec<Reply>,
    next: AtomicUsize,
}

impl Reply {
    fn script(chunks: Vec<Chunk>, end: End) -> Reply {
        Reply(Kind::Script(Script { chunks, end }))
    }

    fn write(kind: StreamKind, bytes: Vec<u8>) -> Vec<Chunk> {
        if bytes.is_empty() {
            Vec::new()
        } else {
            vec![Chunk::Write(kind, bytes.into())]
        }
    }

    /// The program writes `stdout` and exits 0.
    pub fn ok(stdout: impl Into<Vec<u8>>) -> Reply {
        let chunks = Reply::write(StreamKind::Stdout, stdout.into());
        Reply::script(chunks, End::Exit(Outcome::Exited(0)))
    }

    /// The program writes `stderr` and exits with `code`.
    pub fn fail(code: i32, stderr: impl Into<Vec<u8>>) -> Reply {
        let chunks = Reply::write(StreamKind::Stderr, stderr.into());
        Reply::script(chunks, End::Exit(Outcome::Exited(code)))
    }

    /// The run exceeded its timeout ([`Output::timed_out`]); `run`,
    /// `exit_code` and `probe` turn it into [`Error::Timeout`] (through a
    /// verb, its duration is the command's timeout: "timed out after"
    /// that, as a real run's error says, not "after 0ns"). A started
    /// run ends at the end of its script, reported as timed out.
    pub fn timed_out() -> Reply {
        Reply::script(Vec::new(), End::Exit(Outcome::TimedOut))
    }

    /// The program was killed by signal `sig` (a raw number, e.g.
    /// `Signal::Kill.as_raw()`).
    pub fn signalled(sig: i32) -> Reply {
        Reply::script(Vec::new(), End::Exit(Outcome::Signalled(sig)))
    }

    /// The run could not happen: every verb, and a start, returns (a copy
    /// of) `error`, as when the program is not found or can't start.
    pub fn err(error: Error) -> Reply {
        Reply(Kind::Err(Arc::new(error)))
    }

    /// The run never completes on its own: it ends with
    /// [`Error::Cancelled`] when the command's cancel token fires, with a
    /// timed-out `Output` when the command's timeout (or inactivity
    /// timeout) passes, and otherwise only when its future is dropped (a
    /// started one: when it is killed). For testing cancellation and
    /// timeout paths. The same as `Reply::ok("").keep_running()`.
    pub fn pending() -> Reply {
        Reply::script(Vec::new(), End::Pending)
    }

    /// Answers with exactly `output` (build it with
    /// [`Output::builder`]); a started run writes its stdout and stderr,
    /// then ends with its outcome.
    pub fn output(output: Output) -> Reply {
        Reply::script(Vec::new(), End::Output(Box::new(output)))
    }

    /// The first run gets the first reply, the second run the second, and
    /// so on; once they are used up, every later run gets the last one
    /// (the rule a cassette follows). For a flaky tool, or a supervised
    /// program that crashes twice and then stays up:
    ///
    /// ```
    /// use pkit::testing::Reply;
    /// let flaky = Reply::sequence([Reply::fail(1, "busy\n"), Reply::fail(1, "busy\n"), Reply::ok("done\n")]);
    /// # let _ = flaky;
    /// ```
    ///
    /// The position is shared by the clones of this reply (and of the
    /// runner holding it).
    ///
    /// # Panics
    ///
    /// When `replies` is empty.
    pub fn sequence(replies: impl IntoIterator<Item = Reply>) -> Reply {
        let replies: Vec<Reply> = replies.into_iter().collect();
        assert!(
            !replies.is_empty(),
            "Reply::sequence needs at least one reply"
        );
        Reply(Kind::Sequence(Arc::new(Sequence {
            replies,
            next: AtomicUsize::new(0),
        })))
    }

    fn push(mut self, chunk: Chunk, what: &str) -> Reply {
        match &mut self.0 {
            Kind::Script(s) => s.chunks.push(chunk),
            Kind::Err(_) => panic!("Reply::{what}: an err reply runs nothing, it writes nothing"),
            Kind::Sequence(_) => {
                panic!("Reply::{what}: add it to the replies of the sequence, not to the sequence")
            }
        }
        self
    }

    /// Then the program writes `bytes` to its stdout.
    ///
    /// # Panics
    ///
    /// On an [`err`](Self::err) or [`sequence`](Self::sequence) reply.
    pub fn stdout(self, bytes: impl Into<Vec<u8>>) -> Reply {
        let bytes: Vec<u8> = bytes.into();
        self.push(Chunk::Write(StreamKind::Stdout, bytes.into()), "stdout")
    }

    /// Then the program writes `bytes` to its stderr.
    ///
    /// # Panics
    ///
    /// On an [`err`](Self::err) or [`sequence`](Self::sequence) reply.
    pub fn stderr(self, bytes: impl Into<Vec<u8>>) -> Reply {
        let bytes: Vec<u8> = bytes.into();
        self.push(Chunk::Write(StreamKind::Stderr, bytes.into()), "stderr")
    }

    /// Then the program writes nothing for `d`.
    ///
    /// # Panics
    ///
    /// On an [`err`](Self::err) or [`sequence`](Self::sequence) reply.
    pub fn pause(self, d: Duration) -> Reply {
        self.push(Chunk::Pause(d), "pause")
    }

    /// After its script, the program runs on until it is killed, its
    /// timeout passes or its cancel token fires, instead of ending as the
    /// constructor said.
    ///
    /// # Panics
    ///
    /// On an [`err`](Self::err) or [`sequence`](Self::sequence) reply.
    pub fn keep_running(mut self) -> Reply {
        match &mut self.0 {
            Kind::Script(s) => s.end = End::Pending,
            _ => panic!("Reply::keep_running applies to a script, not an err reply or a sequence"),
        }
        self
    }

    /// The reply for this run (a sequence's current one).
    fn pick(&self) -> &Reply {
        match &self.0 {
            Kind::Sequence(seq) => {
                let i = seq.next.fetch_add(1, Ordering::Relaxed);
                seq.replies[i.min(seq.replies.len() - 1)].pick()
            }
            _ => self,
        }
    }

    /// The answer to one run of `cmd` by a verb.
    pub(crate) async fn answer(&self, cmd: &Command) -> Result<Output> {
        // As the real runner: a run cancelled before it starts is not run.
        if cmd.spec.cancel.as_ref().is_some_and(|t| t.is_cancelled()) {
            return Err(cancelled(cmd));
        }
        match &self.pick().0 {
            Kind::Script(s) => s.answer(cmd).await,
            Kind::Err(e) => Err(copy_error(e)),
            Kind::Sequence(_) => unreachable!("pick resolves sequences"),
        }
    }

    /// Starts `cmd` as a scripted live process where `launch` says.
    ///
    /// A custom [`Runner`](crate::Runner) can answer
    /// [`start`](crate::Runner::start) this way; [`ScriptedRunner`](super::ScriptedRunner)
    /// does.
    ///
    /// # Errors
    ///
    /// An error reply's error (a copy of it); else the errors a start has before the process
    /// runs: a closed or suspended group ([`Error::Spawn`](crate::Error::Spawn)), a cancel
    /// token cancelled already ([`Error::Cancelled`](crate::Error::Cancelled)).
    pub fn start(&self, cmd: &Command, launch: Launch<'_>) -> Result<RunningProcess> {
        match &self.pick().0 {
            Kind::Script(s) => s.start(cmd, launch),
            Kind::Err(e) => Err(copy_error(e)),
            Kind::Sequence(_) => unreachable!("pick resolves sequences"),
        }
    }
}

/// How a pause of a verb's script ended.
enum Paused {
    Done,
    TimedOut { idle: bool },
    Cancelled,
}

impl Script {
    /// A verb's answer: the writes gathered, the pauses waited for within
    /// the command's bounds.
    async fn answer(&self, cmd: &Command) -> Result<Output> {
        let (mut stdout, mut stderr) = match &self.end {
            End::Output(o) => (o.stdout.to_vec(), o.stderr.clone()),
            _ => (Vec::new(), Vec::new()),
        };
        let start = tokio::time::Instant::now();
        let deadline = cmd.spec.timeout.and_then(deadline_after);
        let mut last_write = start;
        let mut paused = Duration::ZERO;
        let mut ended = Paused::Done;
        let steps = self.chunks.iter().map(Some).chain(
            // The pending end: a pause without end.
            matches!(self.end, End::Pending).then_some(None),
        );
        for step in steps {
            match step {
                Some(Chunk::Write(kind, bytes)) => {
                    match kind {
                        StreamKind::Stdout => stdout.extend_from_slice(bytes),
                        StreamKind::Stderr => stderr.extend_from_slice(bytes),
                    }
                    last_write = tokio::time::Instant::now();
                }
                Some(Chunk::Pause(d)) => {
                    ended = pause(cmd, Some(*d), deadline, last_write).await;
                    paused += *d;
                }
                None => ended = pause(cmd, None, deadline, last_write).await,
            }
            if !matches!(ended, Paused::Done) {
                break;
            }
        }
        let build = |outcome| {
            Output::builder(cmd.display_name())
                .outcome(outcome)
                .stdout(stdout.clone())
                .stderr(stderr.clone())
        };
        match ended {
            Paused::Cancelled => Err(cancelled(cmd)),
            Paused::TimedOut { idle: false } => Ok(build(Outcome::TimedOut)
                .duration(cmd.spec.timeout.unwrap_or(Duration::ZERO))
                .build()),
            Paused::TimedOut { idle: true } => Ok(build(Outcome::TimedOut)
                .inactivity_timed_out(true)
                .duration(start.elapsed())
                .build()),
            Paused::Done => match &self.end {
                // A timeout took the command's limit at least (its error
                // says "timed out after" it, as a real run's does).
                End::Exit(Outcome::TimedOut) => Ok(build(Outcome::TimedOut)
                    .duration(paused.max(cmd.spec.timeout.unwrap_or_default()))
                    .build()),
                End::Exit(outcome) => Ok(build(*outcome).duration(paused).build()),
                End::Output(o) => {
                    let mut out = (**o).clone();
                    out.stdout = stdout.into();
                    out.stderr = stderr;
                    Ok(out)
                }
                End::Pending => unreachable!("a pending end never finishes its pause"),
            },
        }
    }
}

/// Waits `d` (`None`: for ever) within the command's timeout (`deadline`),
/// inactivity timeout (counted from `last_write`) and cancel token.
async fn pause(
    cmd: &Command,
    d: Option<Duration>,
    deadline: Option<tokio::time::Instant>,
    last_write: tokio::time::Instant,
) -> Paused {
    let sleep = sleep_until_or_never(d.and_then(deadline_after));
    let timer = sleep_until_or_never(deadline);
    let idle = sleep_until_or_never(
        cmd.spec
            .run
            .inactivity
            .and_then(|d| deadline_after(d).map(|_| last_write + d)),
    );
    let cancel = CancelToken::cancelled_or_never(cmd.spec.cancel.as_ref());
    tokio::select! {
        () = sleep => Paused::Done,
        () = timer => Paused::TimedOut { idle: false },
        () = idle => Paused::TimedOut { idle: true },
        () = cancel => Paused::Cancelled,
    }
}

impl std::fmt::Debug for Reply {
    /// Shows the kind of reply, not its output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::Script(s) => match &s.end {
                End::Exit(outcome) => write!(f, "Reply({outcome}, {} steps)", s.chunks.len()),
                End::Output(o) => write!(f, "Reply({}, {} steps)", o.outcome(), s.chunks.len()),
                End::Pending => write!(f, "Reply(pending, {} steps)", s.chunks.len()),
            },
            Kind::Err(e) => write!(f, "Reply(error: {:?})", e.kind()),
            Kind::Sequence(seq) => write!(f, "Reply(sequence of {})", seq.replies.len()),
        }
    }
}

fn cancelled(cmd: &Command) -> Error {
    Error::Cancelled {
        program: cmd.display_name(),
    }
}
