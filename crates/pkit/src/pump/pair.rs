//! The verbs' two streams, stdout and stderr, when both only feed a
//! capture: one task reads both, and it is spawned by the first event on
//! either (data, end of file, a stop), not when the process starts.
//!
//! A task spawned at start wakes a runtime worker (and that worker another)
//! only to find the pipes empty: a one-shot capture of a small program
//! paid those wake-ups on every run. Here the readers are polled once where
//! the process starts, which registers their interest with a waker that
//! spawns the task; the reactor's first event on a pipe spawns it on the
//! worker that saw the event, and that worker runs it at once.
//!
//! A verb awaited outside the runtime's tasks (a multi-thread runtime's
//! `block_on`) claims that task before its first event
//! ([`Reader::claim_pair`]) and puts it, with its wait for the exit, into
//! one task spawned the same way (`lazy::aside`): the worker that sees the
//! exit has the output read in the same go, and the verb's thread is woken
//! once, with both, instead of once for the exit and again for the reading
//! task. What is still unread when the exit is seen (a big output, a pipe a
//! descendant holds open) goes on in a task of its own, as before.

use std::io;
use std::sync::Arc;

use super::lazy::{spawn_on_wake, Claimed};
use super::{run, source::Source, Control, Reader, StreamKind, StreamPlan, Task};
use crate::sys::OwnedFd;

impl Reader {
    /// Whether `plan` only feeds a capture, so its stream may share a task
    /// (nothing of the caller's runs in it, nothing pushes back on it).
    pub(crate) fn capture_only(plan: &StreamPlan) -> bool {
        plan.capture.is_some()
            && plan.tee.is_none()
            && plan.callback.is_none()
            && plan.lines.is_none()
            && plan.prompt.is_none()
    }

    /// Starts reading stdout's and stderr's pipes in one task spawned by
    /// their first event, when both are there and both plans (made by
    /// `plan`) only feed a capture (see [`capture_only`](Self::capture_only));
    /// the pipes are taken then. Otherwise leaves them, and returns no
    /// readers. Each half is still finished, stopped and detached on its
    /// own. Must be called within a Tokio runtime.
    pub(crate) fn start_pair(
        stdout: &mut Option<OwnedFd>,
        stderr: &mut Option<OwnedFd>,
        plan: impl Fn(StreamKind) -> StreamPlan,
    ) -> io::Result<(Option<Reader>, Option<Reader>)> {
        if stdout.is_none() || stderr.is_none() {
            return Ok((None, None));
        }
        let (out_plan, err_plan) = (plan(StreamKind::Stdout), plan(StreamKind::Stderr));
        if !Reader::capture_only(&out_plan) || !Reader::capture_only(&err_plan) {
            return Ok((None, None));
        }
        let (Some(out), Some(err)) = (stdout.take(), stderr.take()) else {
            return Ok((None, None));
        };
        let out_rx = crate::sys::pipe_receiver(out)?;
        let err_rx = crate::sys::pipe_receiver(err)?;
        let out_ctl = Arc::new(Control::default());
        let err_ctl = Arc::new(Control::default());
        let (out_tx, out_done) = tokio::sync::oneshot::channel();
        let (err_tx, err_done) = tokio::sync::oneshot::channel();
        let (out_c, err_c) = (out_ctl.clone(), err_ctl.clone());
        let lazy = spawn_on_wake(async move {
            // A half whose owner is gone (detached) just fails to send.
            tokio::join!(
                async { drop(out_tx.send(run(Source::Pipe(out_rx), out_plan, out_c).await)) },
                async { drop(err_tx.send(run(Source::Pipe(err_rx), err_plan, err_c).await)) },
            );
        });
        // The stdout half keeps the way to claim the task.
        let out = Reader {
            task: Task::Half(out_done, lazy),
            control: out_ctl,
        };
        let err = Reader {
            task: Task::Half(err_done, None),
            control: err_ctl,
        };
        Ok((Some(out), Some(err)))
    }

    /// Takes the task reading both streams of a pair (see
    /// [`start_pair`](Self::start_pair)) when no event has spawned it yet,
    /// to be driven by the caller with [`aside`](super::lazy::aside).
    /// `None` when this is not a pair's stdout half, or its task runs
    /// already.
    pub(crate) fn claim_pair(&self) -> Option<Claimed> {
        let Task::Half(_, Some(lazy)) = &self.task else {
            return None;
        };
        lazy.claim()
    }
}
