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

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Wake, Waker};

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
        spawn_on_wake(async move {
            // A half whose owner is gone (detached) just fails to send.
            tokio::join!(
                async { drop(out_tx.send(run(Source::Pipe(out_rx), out_plan, out_c).await)) },
                async { drop(err_tx.send(run(Source::Pipe(err_rx), err_plan, err_c).await)) },
            );
        });
        let half = |done, control| Reader {
            task: Task::Half(done),
            control,
        };
        Ok((Some(half(out_done, out_ctl)), Some(half(err_done, err_ctl))))
    }
}

type Held = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A future waiting for its first wake-up, which spawns it as a task.
struct SpawnOnWake {
    state: Mutex<Lazy>,
    runtime: tokio::runtime::Handle,
}

struct Lazy {
    /// The future, once its first poll returned (taken by the wake-up).
    held: Option<Held>,
    /// A wake-up came before the future was held (during or right after
    /// its first poll): it is spawned as soon as it is.
    woken: bool,
}

impl Wake for SpawnOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let held = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.woken = true;
            state.held.take()
        };
        // Spawned where the wake-up happens (the reactor's worker, or the
        // thread that stops the reader); the task's own polls then wake the
        // task, not this. A runtime shutting down drops the future, and
        // with it the pipes.
        if let Some(fut) = held {
            drop(self.runtime.spawn(fut));
        }
    }
}

/// Polls `fut` once here, then leaves it to be spawned by its first
/// wake-up (see the module doc). A future that finishes in that first
/// poll is done; one woken during it is spawned at once.
fn spawn_on_wake(fut: impl Future<Output = ()> + Send + 'static) {
    let lazy = Arc::new(SpawnOnWake {
        state: Mutex::new(Lazy {
            held: None,
            woken: false,
        }),
        runtime: tokio::runtime::Handle::current(),
    });
    let waker = Waker::from(lazy.clone());
    let mut fut: Held = Box::pin(fut);
    if fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_ready()
    {
        return;
    }
    let mut state = lazy.state.lock().unwrap_or_else(PoisonError::into_inner);
    if state.woken {
        drop(state);
        drop(lazy.runtime.spawn(fut));
    } else {
        state.held = Some(fut);
    }
}
