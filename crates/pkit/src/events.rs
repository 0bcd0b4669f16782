//! [`RunningProcess::events`]: a started process's life as one stream of
//! [`ProcessEvent`]s, for UIs.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::output::Outcome;
use crate::process::{outcome_of, RunningProcess};
use crate::pump::{Line, Lines, AFTER_EXIT_MOST, AFTER_EXIT_QUIET};
use crate::watch::Verdict;

/// What happens to a started process, in order: see
/// [`RunningProcess::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessEvent {
    /// The process is running (always the first event).
    Started {
        /// Its process id.
        pid: u32,
    },
    /// A line of its stdout or stderr (with
    /// [`Command::stream_lines`](crate::Command::stream_lines)).
    Line(Line),
    /// It exited (always the last event). A process its command's
    /// [`timeout`](crate::Command::timeout) ended shows
    /// [`Outcome::TimedOut`]; one its cancel token ended shows the signal
    /// that ended it.
    Exited {
        /// Its process id.
        pid: u32,
        /// How it ended.
        outcome: Outcome,
    },
}

type ExitWait = Pin<Box<dyn Future<Output = io::Result<Outcome>> + Send>>;

/// The stream of a started process's [`ProcessEvent`]s, from
/// [`RunningProcess::events`]. It implements [`futures_core::Stream`];
/// [`next_event`](Self::next_event) needs no extra crate.
///
/// Every line the process itself wrote before it exited comes before
/// [`ProcessEvent::Exited`], however slowly the stream is read: those
/// queued when the stream sees the exit and those of the output still in
/// its pipes then. Lines its descendants write after those are told for
/// 2 s at most, until 250 ms of quiet (see [`RunningProcess::events`]).
pub struct Events {
    pid: u32,
    started: bool,
    lines: Lines,
    lines_done: bool,
    exit: ExitWait,
    exited: Option<Outcome>,
    verdict: Option<Verdict>,
    quiet: Pin<Box<tokio::time::Sleep>>,
    /// When the exit is told whatever descendants still write: the moment
    /// the owed lines (see `pump/owed.rs`) are all told plus
    /// [`AFTER_EXIT_MOST`].
    last_call: Option<tokio::time::Instant>,
    done: bool,
}

impl RunningProcess {
    /// The process's life as one stream, for UIs: [`ProcessEvent::Started`]
    /// with its pid, then each line of its output as it comes (needs
    /// [`Command::stream_lines`](crate::Command::stream_lines); it takes
    /// the line stream, as [`lines`](Self::lines) does), then
    /// [`ProcessEvent::Exited`] with its outcome, last.
    ///
    /// Every line the process wrote before it exited is told before the
    /// exit, however slowly the stream is read: when the stream first
    /// sees the exit (reading it is what sees it), the lines queued then
    /// and those of the output still in its pipes then (up to 1 MiB a
    /// pipe) are owed; the stream waits, whatever the time, for the pump
    /// to read and queue that output, and tells every owed line (with any
    /// a descendant wrote before them) before the exit. A last line the
    /// process left without a line ending is owed too, and told as a line
    /// though a descendant still holds the pipe open (no end of file
    /// comes): once, when the pump has read what the pipes held at the
    /// exit (it watches the exit itself; a pseudo-terminal's at the
    /// first look after it), with a decoder's held bytes (a cut
    /// character) on it as at the end of file. What is written
    /// after it on that line comes as a line of its own (under the rules
    /// that follow), except that a `\n` right after a told line's last
    /// `\r` only ends that line (no empty line). A line a descendant writes
    /// after the pump has seen the exit is never cut by the pump, however
    /// often and whenever the stream or
    /// [`wait_for_line`](Self::wait_for_line) looks; the pump sees it at
    /// once unless its runtime is held up (a current-thread runtime the
    /// caller blocks, a loaded machine), and what the pipes hold then is
    /// taken for the process's: a descendant's half line written in
    /// between is cut there. Every line consumer (this stream,
    /// [`lines`](Self::lines), and the
    /// [`on_stdout_line`](crate::Command::on_stdout_line) and
    /// [`on_stderr_line`](crate::Command::on_stderr_line) callbacks of a
    /// line stream's run) gets the same lines; captures and tees keep the
    /// bytes as written. After the owed
    /// lines, lines are still told until the pipes close (every descendant
    /// holding them is gone) or stay quiet for 250 ms (no line at hand),
    /// and for 2 s at most: 2 s after the owed lines are told, the exit
    /// comes next, ahead of any line still waiting, and the stream ends
    /// (those lines are not told). A descendant that writes without a
    /// pause (a flood) can't hold the exit back more than 2 s past the
    /// owed lines (to which it adds at most what the pipes held at the
    /// exit and the [`buffer_lines`](crate::Command::buffer_lines) queued
    /// meanwhile); a line it writes after 250 ms of quiet is not told. A
    /// [tee](crate::Command::stdout_tee) that takes no bytes holds the
    /// owed lines, and so the exit, back until it does. On a pseudo-terminal
    /// ([`Command::pty`](crate::Command::pty)), output the terminal had not
    /// yet passed on at the exit, and on Windows output still in the pipes
    /// at the exit, is not owed: it comes under the 2 s rule. The
    /// process itself is left alone: reading or dropping the stream
    /// changes nothing about it, and [`wait`](Self::wait) still works (its
    /// output capture holds no bytes the stream took).
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use pkit::{Command, Outcome, ProcessEvent};
    ///
    /// let mut p = Command::new("sh").args(["-c", "echo one; exit 3"]).stream_lines().start()?;
    /// let mut events = p.events();
    /// let mut seen = Vec::new();
    /// while let Some(event) = events.next_event().await {
    ///     seen.push(event);
    /// }
    /// assert!(matches!(seen[0], ProcessEvent::Started { .. }));
    /// assert!(matches!(&seen[1], ProcessEvent::Line(l) if l.text == "one"));
    /// assert!(matches!(seen[2], ProcessEvent::Exited { outcome: Outcome::Exited(3), .. }));
    /// # Ok(()) }
    /// ```
    pub fn events(&mut self) -> Events {
        let child = self.child.clone();
        Events {
            pid: self.pid(),
            started: false,
            lines: self.lines(),
            lines_done: false,
            exit: Box::pin(async move {
                let status = child.wait().await?;
                Ok(child.event_outcome(outcome_of(status)))
            }),
            exited: None,
            verdict: crate::watch::verdict(&self.watch),
            quiet: Box::pin(tokio::time::sleep(AFTER_EXIT_QUIET)),
            last_call: None,
            done: false,
        }
    }
}

impl Events {
    /// The owed lines are all told: from now on, lines are told until 250 ms
    /// of quiet, and for 2 s at most.
    fn start_cap(&mut self) {
        let now = tokio::time::Instant::now();
        self.last_call = Some(now + AFTER_EXIT_MOST);
        self.quiet.as_mut().reset(now + AFTER_EXIT_QUIET);
    }

    /// Starts the cap once the exit is seen, every reader has queued what
    /// its pipe held then, and the owed lines are all told.
    fn cap_once_owed_told(&mut self) {
        if self.exited.is_some() && self.last_call.is_none() && self.lines.owed() == Some(0) {
            self.start_cap();
        }
    }

    /// The next event, or `None` after [`ProcessEvent::Exited`].
    pub async fn next_event(&mut self) -> Option<ProcessEvent> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<ProcessEvent>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.started {
            self.started = true;
            return Poll::Ready(Some(ProcessEvent::Started { pid: self.pid }));
        }
        if self.exited.is_none() {
            if let Poll::Ready(status) = self.exit.as_mut().poll(cx) {
                let outcome = match status {
                    _ if self.verdict.as_ref().is_some_and(Verdict::timed_out) => Outcome::TimedOut,
                    Ok(outcome) => outcome,
                    // Waiting failed: the process can't be followed any
                    // further; say it ended as killed.
                    Err(_) => Outcome::Signalled(crate::sys::Signal::Kill.as_raw()),
                };
                self.exited = Some(outcome);
                // What is queued now, or still in the pipes, was written
                // before the exit was seen (by the process, or by a
                // descendant before it): owed. The readers say when they
                // have queued it (the last answer wakes this task).
                self.lines.ask_owed();
            }
        }
        // Ahead of the next line: a flood always has one at hand.
        self.cap_once_owed_told();
        // Past the cap, the exit comes ahead of any line still waiting: a
        // descendant that floods the pipe without a pause would otherwise
        // hold it back for good (a line is always at hand).
        let capped = self
            .last_call
            .is_some_and(|last| tokio::time::Instant::now() >= last);
        if !self.lines_done && !capped {
            match Pin::new(&mut self.lines).poll_next(cx) {
                Poll::Ready(Some(line)) => {
                    if let Some(last) = self.last_call {
                        let until = tokio::time::Instant::now() + AFTER_EXIT_QUIET;
                        self.quiet.as_mut().reset(until.min(last));
                    }
                    return Poll::Ready(Some(ProcessEvent::Line(line)));
                }
                Poll::Ready(None) => self.lines_done = true,
                Poll::Pending => {}
            }
        }
        let Some(outcome) = self.exited else {
            return Poll::Pending;
        };
        // The last answer may have come since the look above (it wakes
        // this task only once the line queue has its waker).
        self.cap_once_owed_told();
        // Owed lines are waited for whatever the time (queued, or being
        // read: the stream never waits long for one).
        let waiting =
            self.last_call.is_none() || (!capped && self.quiet.as_mut().poll(cx).is_pending());
        if !self.lines_done && waiting {
            return Poll::Pending;
        }
        self.done = true;
        Poll::Ready(Some(ProcessEvent::Exited {
            pid: self.pid,
            outcome,
        }))
    }
}

impl Stream for Events {
    type Item = ProcessEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ProcessEvent>> {
        self.get_mut().poll_event(cx)
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("pid", &self.pid)
            .field("exited", &self.exited)
            .finish_non_exhaustive()
    }
}
