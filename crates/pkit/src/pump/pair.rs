//! A process's two streams, stdout and stderr, when nothing of the
//! caller's runs where they are read (a capture, a line stream, a prompt;
//! no tee, callback or decoder): one task reads both, and it is spawned by
//! the first event on either (data, end of file, a stop), not when the
//! process starts.
//!
//! A task spawned at start wakes a runtime worker (and that worker another)
//! only to find the pipes empty: a one-shot capture of a small program
//! paid those wake-ups on every run. Here the readers are polled once where
//! the process starts, which registers their interest with a waker that
//! spawns the task; the reactor's first event on a pipe spawns it on the
//! worker that saw the event, and that worker runs it at once.
//!
//! When both only feed a capture (the verbs'), a verb awaited outside the
//! runtime's tasks (a multi-thread runtime's `block_on`) claims that task before its first event
//! ([`Reader::claim_pair`]) and puts it, with its wait for the exit, into
//! one task spawned the same way (`lazy::aside`): the worker that sees the
//! exit has the output read in the same go, and the verb's thread is woken
//! once, with both, instead of once for the exit and again for the reading
//! task. What is still unread when the exit is seen (a big output, a pipe a
//! descendant holds open) goes on in a task of its own, as before.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::apart::caught;
use super::lazy::{spawn_on_wake, Claimed};
use super::{run_keeping, source::Source, Captured, Control, Reader, StreamKind, StreamPlan, Task};
use crate::sys::OwnedFd;

impl Reader {
    /// Starts reading `fd` (the parent's end of an output pipe), in a task
    /// spawned by the pipe's first event ([`start_lazy`](Self::start_lazy),
    /// whose first poll, made here on the caller's thread, may read) unless
    /// the caller's code (tee, callback, decoder) runs in it: never in `start`.
    pub(crate) fn start(fd: OwnedFd, plan: StreamPlan) -> io::Result<Reader> {
        let rx = Source::Pipe(crate::sys::pipe_receiver(fd)?);
        Ok(if Reader::shareable(&plan) {
            Reader::start_lazy(rx, plan)
        } else {
            Reader::start_source(rx, plan)
        })
    }

    /// Whether nothing of the caller's (tee, callback, decoder) runs where
    /// `plan`'s stream is read: its reading may then start inside `start`
    /// (its first poll) and share a task with the other stream's.
    fn shareable(plan: &StreamPlan) -> bool {
        plan.tee.is_none() && plan.callback.is_none() && plan.decoder.is_none()
    }

    /// Whether `plan` only feeds a capture: a pair of such streams is what
    /// a verb may claim ([`claim_pair`](Self::claim_pair)), nothing pushing
    /// back on its reading.
    fn capture_only(plan: &StreamPlan) -> bool {
        plan.capture.is_some()
            && plan.tee.is_none()
            && plan.callback.is_none()
            && plan.lines.is_none()
            && plan.prompt.is_none()
    }

    /// Starts reading stdout's and stderr's pipes in one task spawned by
    /// their first event, when both are there and both plans (made by
    /// `plan`) are [shareable](Self::shareable): a capture, a line stream,
    /// a prompt; the pipes are taken then. Otherwise leaves them, and
    /// returns no readers. Each half is still finished, stopped and
    /// detached on its own. Must be called within a Tokio runtime.
    ///
    /// The halves take turns: the task's polls poll both (`join!` starts
    /// with each in turn), and a half that keeps reading without waiting
    /// yields after a few big reads, which lets the other read; both feed
    /// one line queue, so room there holds back both, as with two tasks.
    pub(crate) fn start_pair(
        stdout: &mut Option<OwnedFd>,
        stderr: &mut Option<OwnedFd>,
        plan: impl Fn(StreamKind) -> StreamPlan,
    ) -> io::Result<(Option<Reader>, Option<Reader>)> {
        if stdout.is_none() || stderr.is_none() {
            return Ok((None, None));
        }
        let (out_plan, err_plan) = (plan(StreamKind::Stdout), plan(StreamKind::Stderr));
        if !Reader::shareable(&out_plan) || !Reader::shareable(&err_plan) {
            return Ok((None, None));
        }
        let claimable = Reader::capture_only(&out_plan) && Reader::capture_only(&err_plan);
        let (Some(out), Some(err)) = (stdout.take(), stderr.take()) else {
            return Ok((None, None));
        };
        let out_rx = crate::sys::pipe_receiver(out)?;
        let err_rx = crate::sys::pipe_receiver(err)?;
        let (out, err) = Reader::pair_of(
            |c| run_keeping(Source::Pipe(out_rx), out_plan, c),
            |c| run_keeping(Source::Pipe(err_rx), err_plan, c),
            claimable,
        );
        Ok((Some(out), Some(err)))
    }

    /// The two halves of one task running both readings, each made with
    /// its half's control (see [`start_pair`](Self::start_pair)). Only a
    /// `claimable` pair's task may be claimed by a verb's wait; claimed, it
    /// hands its pipes back open at its end (see `lazy::aside`). Otherwise
    /// each half closes its pipe at its own end, not at the other's: a
    /// stream closed early is not held open while the other lives on.
    fn pair_of<O, E>(
        out: impl FnOnce(Arc<Control>) -> O,
        err: impl FnOnce(Arc<Control>) -> E,
        claimable: bool,
    ) -> (Reader, Reader)
    where
        O: Future<Output = (Captured, Option<Source>)> + Send + 'static,
        E: Future<Output = (Captured, Option<Source>)> + Send + 'static,
    {
        let out_ctl = Arc::new(Control::default());
        let err_ctl = Arc::new(Control::default());
        let (out_tx, out_done) = tokio::sync::oneshot::channel();
        let (err_tx, err_done) = tokio::sync::oneshot::channel();
        let (out_read, err_read) = (out(out_ctl.clone()), err(err_ctl.clone()));
        let claimed = claimable.then(|| Arc::new(AtomicBool::new(false)));
        let kept = claimed.clone();
        let keep = move || kept.as_ref().is_some_and(|k| k.load(Ordering::Acquire));
        let lazy = spawn_on_wake(
            async move {
                // A half whose owner is gone (detached) just fails to send.
                // A half's panic goes to its owner, as a task's own would
                // (the other half reads on). A claimed task hands the pipes
                // read to their end back, to be closed after the exit is
                // handed over (`lazy::aside`); else each closes at its end.
                let out = async {
                    let (captured, end) = parted(caught(out_read).await);
                    drop(out_tx.send(captured));
                    end.filter(|_| keep())
                };
                let err = async {
                    let (captured, end) = parted(caught(err_read).await);
                    drop(err_tx.send(captured));
                    end.filter(|_| keep())
                };
                let (out, err) = tokio::join!(out, err);
                [out, err]
            },
            claimed,
        );
        // The stdout half keeps the way to claim the task (a claimable
        // pair's only).
        let out = Reader {
            task: Task::Half(out_done, lazy.filter(|_| claimable)),
            control: out_ctl,
        };
        let err = Reader {
            task: Task::Half(err_done, None),
            control: err_ctl,
        };
        (out, err)
    }

    /// Starts reading `rx` in a task of its own, spawned by the source's
    /// first event (data, end of file, a stop) rather than here: a task
    /// spawned from outside the runtime's workers (a `block_on` thread)
    /// wakes a worker, which as the last one searching for work wakes the
    /// other, only for the reader to find the pipe still empty. Spawned by
    /// the reactor's event, it runs on the worker that saw the event, and
    /// no other is woken.
    pub(super) fn start_lazy(rx: Source, plan: StreamPlan) -> Reader {
        let control = Arc::new(Control::default());
        let (tx, done) = tokio::sync::oneshot::channel();
        let read = run_keeping(rx, plan, control.clone());
        // The source read to its end is closed when the task ends (the
        // handle for claiming is not kept: nothing claims a lone reader).
        drop(spawn_on_wake(
            async move {
                let (captured, end) = parted(caught(read).await);
                // An owner gone (detached, or dropped) just fails to take it.
                drop(tx.send(captured));
                [end, None]
            },
            None,
        ));
        Reader {
            task: Task::Half(done, None),
            control,
        }
    }

    /// Whether this reader has met its stream's end of file: every
    /// writer closed it, the process most likely by exiting.
    pub(crate) fn ended(&self) -> bool {
        self.control
            .ended
            .load(std::sync::atomic::Ordering::Acquire)
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

/// A half's result for its owner, and the source it read to its end.
fn parted(
    read: std::thread::Result<(Captured, Option<Source>)>,
) -> (std::thread::Result<Captured>, Option<Source>) {
    match read {
        Ok((captured, end)) => (Ok(captured), end),
        Err(panic) => (Err(panic), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic in one half of the shared reading task (pkit's own bug) is
    /// resumed by that half's `finish`, as a reader task's own panic is,
    /// not taken for a capture lost with its runtime; the other half's
    /// capture still comes back.
    #[test]
    fn a_half_that_panics_is_resumed_by_its_finish() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (out, err) = rt.block_on(async {
            let (out, err) = Reader::pair_of(
                |_| async {
                    tokio::task::yield_now().await;
                    panic!("pkit pair half")
                },
                |_| async {
                    tokio::task::yield_now().await;
                    let captured = Captured {
                        seen: 3,
                        ..Captured::default()
                    };
                    (captured, None)
                },
                true,
            );
            let out = tokio::spawn(async move { { out }.finish(false).await }).await;
            let err = tokio::spawn(async move { { err }.finish(false).await }).await;
            (out, err)
        });
        let err = err.expect("the other half");
        assert!(!err.lost && err.seen == 3, "the other half's capture");
        let panic = match out {
            Err(e) if e.is_panic() => e.into_panic(),
            Err(e) => panic!("the half's finish: {e}"),
            Ok(c) => panic!("the half's finish returned (lost: {})", c.lost),
        };
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"pkit pair half"));
    }
}
