//! Readiness probes on a [`RunningProcess`]: wait until it prints a line,
//! opens a port, or passes a check. A probe never kills the process.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{Error, NotReadyReason, Result};
use crate::process::{outcome_of, RunningProcess};
use crate::pump::{Line, AFTER_EXIT_MOST, AFTER_EXIT_QUIET};

/// How often [`wait_for_port`](RunningProcess::wait_for_port) and
/// [`wait_for`](RunningProcess::wait_for) retry. There is no kernel event
/// for "a port accepts" or for an arbitrary check, so these poll.
const RETRY_EVERY: Duration = Duration::from_millis(25);

/// How long `wait_for_line` waits, once the output has ended, for the exit
/// that usually follows (within the probe's own deadline), before it says
/// the output closed with the process still running. Generous: on a loaded
/// machine the exit can trail the pipes' closing.
const EXIT_AFTER_CLOSE: Duration = Duration::from_secs(2);

impl RunningProcess {
    /// Waits until a line (stdout or stderr) satisfies `pred` and returns
    /// it. Needs [`Command::stream_lines`](crate::Command::stream_lines);
    /// a line longer than [`max_line_bytes`](crate::Command::max_line_bytes)
    /// is offered by its first piece alone (`partial`), as
    /// [`first_line`](crate::Command::first_line) and a
    /// [`Supervisor`](crate::Supervisor)'s ready line are: its later pieces
    /// are no lines the program wrote (a long line ending in `ready` is no
    /// line `ready`), and are passed over;
    /// the lines it reads are consumed (they don't reach
    /// [`lines`](Self::lines) afterwards). Once it returns, the stream is
    /// back to "not taken" (see [`lines`](Self::lines)): take it at once to
    /// see the lines that follow; otherwise they wait up to `buffer_lines`,
    /// later ones are dropped and counted, and the process is not stalled
    /// by them for more than a second.
    ///
    /// Gives up with [`Error::NotReady`] when `timeout` passes, when the
    /// process exits first, or when its output ends. After the exit it
    /// still looks at every line the process wrote, however slow the
    /// predicate (within `timeout`): the lines queued when it saw the exit
    /// and those of the output still in the pipes then (up to 1 MiB a
    /// pipe; as for [`events`](Self::events), not on Windows nor what a
    /// pseudo-terminal had not yet passed on), the process's last line
    /// without a line ending among them (told once, as for
    /// [`events`](Self::events): what a descendant still holding the pipe
    /// writes after it on that line is a line of its own, and a line a
    /// descendant writes after the pump saw the exit is never cut,
    /// whenever this is called). Then it looks at the lines
    /// that come until the output stays quiet for 250 ms, and for 2 s at
    /// most (lines still waiting then are not looked at): what descendants
    /// write without a 250 ms pause. A descendant that floods the output
    /// holds the answer back 2 s at most past those owed lines (to which it
    /// adds at most what the pipes held at the exit and the `buffer_lines`
    /// queued meanwhile); the `timeout` is kept under any flood.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidInput`] when the command had no
    ///   [`stream_lines`](crate::Command::stream_lines) or the line stream is
    ///   taken;
    /// - [`Error::NotReady`] when `timeout` passes, the process exits first
    ///   or its output ends;
    /// - [`Error::Io`] when the process's exit can't be read.
    pub async fn wait_for_line(
        &mut self,
        mut pred: impl FnMut(&Line) -> bool,
        timeout: Duration,
    ) -> Result<Line> {
        let program = self.program().to_string();
        let child = self.child.clone();
        let Some(lines) = self.lines.as_mut().and_then(|l| l.rx.as_mut()) else {
            return Err(Error::InvalidInput(format!(
                "{program}: wait_for_line needs Command::stream_lines, and the line stream not taken"
            )));
        };
        // While the probe reads, the queue applies the command's overflow
        // policy (no line the probe waits for is dropped); afterwards it is
        // left unheld again, so a server that goes on logging is not
        // stalled by lines nobody reads.
        let _held = lines.hold_for_now();
        let not_ready = |reason| Error::NotReady {
            program: program.clone(),
            reason,
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        // Once the process has exited, the lines it wrote are still on their
        // way through the pump: keep reading until the stream ends, or until
        // it has been quiet for a while (a background descendant may hold
        // the pipe open), or for as long as one may keep writing.
        //
        // A flood (a line always at hand) must starve neither the deadline
        // nor the exit nor the cap: they are looked at on every turn, ahead
        // of the next line, and the task gives way to others when its
        // budget is spent (the line queue alone never makes it).
        let mut exited = None;
        let mut last_call = None;
        // The lines of all the process wrote (queued, or still in the
        // pipes, when the exit was seen) are owed: all looked at, however
        // slow the predicate, before the cap starts (see `pump/owed.rs`).
        // The readers' answers come through `answers`.
        let answers = lines.owed_watch();
        let wait = child.wait();
        tokio::pin!(wait);
        loop {
            tokio::task::consume_budget().await;
            let now = tokio::time::Instant::now();
            if now >= deadline.deadline() {
                return Err(not_ready(NotReadyReason::Deadline(timeout)));
            }
            // Not yet answered by every reader (the exit seen): `None`.
            let owed = exited.and(if last_call.is_none() {
                lines.owed()
            } else {
                Some(0)
            });
            if exited.is_some() && last_call.is_none() && owed == Some(0) {
                last_call = Some(now + AFTER_EXIT_MOST);
            }
            if let (Some(st), Some(last)) = (exited, last_call) {
                if now >= last {
                    return Err(not_ready(NotReadyReason::Exited(outcome_of(st))));
                }
            }
            let quiet = async {
                match last_call {
                    Some(last) => {
                        let quiet = tokio::time::Instant::now() + AFTER_EXIT_QUIET;
                        tokio::time::sleep_until(quiet.min(last)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                status = &mut wait, if exited.is_none() => {
                    exited = Some(status.map_err(|e| Error::io(format!("{program}: wait"), e))?);
                    lines.ask_owed();
                }
                line = lines.recv() => match line {
                    // A later piece of a line cut by `max_line_bytes` is no
                    // line the program wrote: never offered.
                    Some(line) if line.begins_a_line() && pred(&line) => return Ok(line),
                    Some(_) => {}
                    None => {
                        // The output ended: the process is exiting (its
                        // status follows its closing of the pipes), or it
                        // closed its outputs and can never match.
                        let status = match exited {
                            Some(st) => Some(st),
                            None => {
                                let until = deadline
                                    .deadline()
                                    .min(tokio::time::Instant::now() + EXIT_AFTER_CLOSE);
                                tokio::time::timeout_at(until, child.wait())
                                    .await
                                    .ok()
                                    .and_then(Result::ok)
                            }
                        };
                        let reason = match status {
                            Some(st) => NotReadyReason::Exited(outcome_of(st)),
                            None => NotReadyReason::OutputClosed,
                        };
                        return Err(not_ready(reason));
                    }
                },
                // Every reader answered: the next turn starts the cap once
                // the owed lines are looked at.
                () = answers.answered(), if exited.is_some() && owed.is_none() => {}
                () = quiet => {
                    let st = exited.expect("quiet only runs after the exit");
                    return Err(not_ready(NotReadyReason::Exited(outcome_of(st))));
                }
                () = &mut deadline => return Err(not_ready(NotReadyReason::Deadline(timeout))),
            }
        }
    }

    /// Waits until a TCP connection to `addr` succeeds (the connection is
    /// closed at once). Gives up with [`Error::NotReady`] on `timeout` or if
    /// the process exits first.
    ///
    /// Any listener counts, not only this process's: a port another
    /// process already listens on (a stale instance, a stranger) passes at
    /// once, even if this process then fails to bind it and exits. Where
    /// that can happen, wait for the line the program prints once it
    /// listens ([`wait_for_line`](Self::wait_for_line)), or ask it
    /// something only it answers ([`wait_for`](Self::wait_for)).
    ///
    /// # Errors
    ///
    /// [`Error::NotReady`] when `timeout` passes or the process exits first;
    /// [`Error::Io`] when its exit can't be read.
    pub async fn wait_for_port(&self, addr: SocketAddr, timeout: Duration) -> Result<()> {
        self.wait_for(
            || async move { tokio::net::TcpStream::connect(addr).await.is_ok() },
            timeout,
        )
        .await
    }

    /// Waits until `check` returns true, retrying every 25 ms. Gives up with
    /// [`Error::NotReady`] on `timeout` or if the process exits first,
    /// even while a check is still running (a check that hangs does not
    /// hide the exit; a check running when the process exits still has a
    /// quarter of a second to pass).
    ///
    /// # Errors
    ///
    /// [`Error::NotReady`] when `timeout` passes or the process exits first;
    /// [`Error::Io`] when its exit can't be read.
    pub async fn wait_for<F, Fut>(&self, mut check: F, timeout: Duration) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let program = self.program().to_string();
        let not_ready = |reason| Error::NotReady {
            program: program.clone(),
            reason,
        };
        // The exit is watched while a check runs too: a check that hangs (a
        // connection nobody answers) must not hide it until the deadline.
        // Once the process has exited, a check still has AFTER_EXIT_QUIET
        // to pass (a server may have been ready just before it exited).
        let exited = |status: std::io::Result<_>| {
            status
                .map(|st| not_ready(NotReadyReason::Exited(outcome_of(st))))
                .unwrap_or_else(|e| Error::io(format!("{program}: wait"), e))
        };
        let work = async {
            loop {
                let pending = check();
                tokio::pin!(pending);
                tokio::select! {
                    biased;
                    ok = &mut pending => if ok {
                        return Ok(());
                    },
                    status = self.child.wait() => return last_look(pending, exited(status)).await,
                }
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_EVERY) => {}
                    status = self.child.wait() => return last_look(check(), exited(status)).await,
                }
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(not_ready(NotReadyReason::Deadline(timeout))),
        }
    }

    /// Waits until the process has written, on stdout or stderr, a
    /// partial line that `pred` accepts — text not (yet) ended by a line
    /// ending, as a prompt like `Password: ` or `Continue? [y/n] ` is — and
    /// returns it. No line carries such text while the process waits for
    /// its answer, so [`wait_for_line`](Self::wait_for_line) can't see it.
    /// Needs [`Command::stream_lines`](crate::Command::stream_lines) (it
    /// reads neither the line stream nor its lines: they stay for
    /// [`lines`](Self::lines)). A partial line longer than 4 KiB is not
    /// taken for a prompt.
    ///
    /// A prompt is matched once: a later call looks only at what the
    /// process writes after it — on the same line (a second prompt after
    /// an answer that a pipe does not echo: `User: ` then `Password: `
    /// arrive as one line) or on a new one — so it waits for the next
    /// prompt even if the process has not answered yet. Gives up with
    /// [`Error::NotReady`] when `timeout` passes (kept under any flood of
    /// output), or when the process exits first (what comes within 250 ms
    /// of the exit is still looked at).
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use std::time::Duration;
    /// use tokio::io::AsyncWriteExt;
    /// use pkit::Command;
    ///
    /// let mut p = Command::new("sh")
    ///     .args(["-c", r#"printf 'Name: '; read n; echo "hi $n""#])
    ///     .stdin_piped()
    ///     .stream_lines()
    ///     .start()?;
    /// let prompt = p.wait_for_prompt(|t| t.ends_with(": "), Duration::from_secs(10)).await?;
    /// assert_eq!(prompt, "Name: ");
    /// p.stdin().expect("piped").write_all(b"ada\n").await?;
    /// let line = p.wait_for_line(|l| l.text.contains("hi"), Duration::from_secs(10)).await?;
    /// assert_eq!(line.text, "Name: hi ada");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidInput`] when the command had no
    ///   [`stream_lines`](crate::Command::stream_lines);
    /// - [`Error::NotReady`] when `timeout` passes or the process exits first;
    /// - [`Error::Io`] when the process's exit can't be read.
    pub async fn wait_for_prompt(
        &mut self,
        mut pred: impl FnMut(&str) -> bool,
        timeout: Duration,
    ) -> Result<String> {
        let program = self.program().to_string();
        let Some(slot) = self.prompt.clone() else {
            return Err(Error::InvalidInput(format!(
                "{program}: wait_for_prompt needs Command::stream_lines"
            )));
        };
        let child = self.child.clone();
        let not_ready = |reason| Error::NotReady {
            program: program.clone(),
            reason,
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        // After the exit, output may still be on its way through the pump:
        // keep looking for a moment.
        let quiet = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(quiet);
        let mut exited = None;
        // As in `wait_for_line`: a flood (a change always at hand) starves
        // neither the deadline nor the exit nor the quiet after it.
        let wait = child.wait();
        tokio::pin!(wait);
        loop {
            tokio::task::consume_budget().await;
            let now = tokio::time::Instant::now();
            if now >= deadline.deadline() {
                return Err(not_ready(NotReadyReason::Deadline(timeout)));
            }
            if let Some(st) = exited.filter(|_| now >= quiet.deadline()) {
                return Err(not_ready(NotReadyReason::Exited(outcome_of(st))));
            }
            let changed = slot.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            for (kind, line, text) in slot.tails() {
                // What an earlier match took of this same line is skipped.
                let from = match self.prompt_seen {
                    Some((k, l, used)) if (k, l) == (kind, line) => used,
                    _ => 0,
                };
                let Some(fresh) = text.get(from..).filter(|t| !t.is_empty()) else {
                    continue;
                };
                if pred(fresh) {
                    self.prompt_seen = Some((kind, line, text.len()));
                    return Ok(fresh.to_string());
                }
            }
            tokio::select! {
                biased;
                status = &mut wait, if exited.is_none() => {
                    exited = Some(status.map_err(|e| Error::io(format!("{program}: wait"), e))?);
                    quiet.as_mut().reset(tokio::time::Instant::now() + AFTER_EXIT_QUIET);
                }
                () = &mut changed => {}
                () = &mut quiet, if exited.is_some() => {
                    let st = exited.expect("checked");
                    return Err(not_ready(NotReadyReason::Exited(outcome_of(st))));
                }
                () = &mut deadline => return Err(not_ready(NotReadyReason::Deadline(timeout))),
            }
        }
    }
}

/// A check's last chance once the process has exited: `Ok` when it passes
/// within [`AFTER_EXIT_QUIET`], else `exit` (the error that says so).
async fn last_look(check: impl Future<Output = bool>, exit: Error) -> Result<()> {
    match tokio::time::timeout(AFTER_EXIT_QUIET, check).await {
        Ok(true) => Ok(()),
        _ => Err(exit),
    }
}
