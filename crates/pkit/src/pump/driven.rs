//! A line stream's reader that its consumer drives while it waits for
//! lines.
//!
//! A reader in a task of its own costs two wake-ups per read: the pipe's
//! event wakes the reader's task, which reads, splits and queues the lines
//! and then wakes the consumer. When a read's bytes go nowhere but the line
//! stream and the consumer takes the stream's backpressure (the stream is
//! held, under [`Overflow::Backpressure`](super::Overflow::Backpressure)),
//! the reading need not run anywhere else: it is kept here, and whoever
//! has a reason polls it. A consumer waiting for lines polls it in its own
//! poll; the pipe's next event then wakes the consumer alone (as a plain
//! `lines()` on the pipe would). Any wake-up that comes while no consumer
//! waits goes to the reader's task, which polls it as before, so output
//! keeps being read when the consumer is busy elsewhere, gone, or stopped
//! waiting; and anything that needs the reading to finish (the owner's
//! `wait`, a dropped stream, the stream let go) hands it to that task
//! ([`Driven::kick`]).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};

use super::Captured;

type Reading = Pin<Box<dyn Future<Output = Captured> + Send>>;

/// The line stream a reading feeds, as the routing of its wake-ups sees
/// it (the queue, in `queue.rs`).
pub(super) trait Consumer: Send + Sync {
    /// A reading was woken: true when the consumer polls it (and was
    /// woken if it waits), false when the wake-up is for the reader's
    /// task.
    fn route_to_consumer(&self) -> bool;
    /// The consumer no longer polls the readings, for now.
    fn disengage(&self);
}
type Outcome = std::thread::Result<Captured>;

/// One stream's reading, polled by its task or by the line stream's
/// consumer, never both at once.
pub(crate) struct Driven {
    inner: Mutex<Inner>,
    /// The waker every poll of the reading gets: it routes the wake-up
    /// (see [`Route`]).
    waker: Waker,
    /// The line stream the reading feeds (who waits on it).
    queue: Arc<dyn Consumer>,
}

struct Inner {
    /// `None` while it is being polled, and once it is done.
    reading: Option<Reading>,
    polling: bool,
    /// Woken since its last poll began: it must be polled again.
    woken: bool,
    /// The reader task's waker.
    task: Option<Waker>,
    /// The reading's result, when the consumer's poll completed it (or
    /// saw it panic): the task hands it on.
    done: Option<Outcome>,
}

/// A wake-up of the reading: to the consumer when it waits for lines on
/// the queue (it polls the reading itself), else to the reader's task.
/// (A weak handle: the reading holds its wakers.)
struct Route(Weak<Driven>);

impl Wake for Route {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(driven) = self.0.upgrade() {
            driven.woken();
        }
    }
}

/// What one poll of the reading came to.
enum Step {
    /// Not woken since its last poll, being polled elsewhere, or done.
    Idle,
    /// Pending; `again` when it was woken during the poll.
    Pending {
        again: bool,
    },
    Done(Outcome),
}

impl Driven {
    pub(super) fn new(
        reading: impl Future<Output = Captured> + Send + 'static,
        queue: Arc<dyn Consumer>,
    ) -> Arc<Driven> {
        Arc::new_cyclic(|me| Driven {
            inner: Mutex::new(Inner {
                reading: Some(Box::pin(reading)),
                polling: false,
                woken: true,
                task: None,
                done: None,
            }),
            waker: Waker::from(Arc::new(Route(me.clone()))),
            queue,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn woken(&self) {
        let task = {
            let mut inner = self.lock();
            inner.woken = true;
            if inner.polling || inner.reading.is_none() {
                // The poll under way sees `woken`.
                return;
            }
            inner.task.clone()
        };
        if !self.queue.route_to_consumer() {
            if let Some(task) = task {
                task.wake();
            }
        }
    }

    /// Woken since its last poll began, and not being polled.
    pub(super) fn is_woken(&self) -> bool {
        let inner = self.lock();
        inner.woken && !inner.polling && inner.reading.is_some()
    }

    /// Polls the reading once if it was woken and nobody polls it now.
    fn step(&self) -> Step {
        let mut reading = {
            let mut inner = self.lock();
            if inner.polling || !inner.woken {
                return Step::Idle;
            }
            let Some(reading) = inner.reading.take() else {
                return Step::Idle;
            };
            inner.polling = true;
            inner.woken = false;
            reading
        };
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            reading.as_mut().poll(&mut Context::from_waker(&self.waker))
        }));
        let mut inner = self.lock();
        inner.polling = false;
        let out = match polled {
            Ok(Poll::Pending) => {
                inner.reading = Some(reading);
                return Step::Pending { again: inner.woken };
            }
            Ok(Poll::Ready(captured)) => Ok(captured),
            Err(panic) => Err(panic),
        };
        drop(inner);
        // Its senders go: the stream ends, or goes on with the other's.
        drop(reading);
        Step::Done(out)
    }

    /// The consumer's turn, while it waits for lines: polls the reading if
    /// it was woken. (One woken again during the poll, which yielded after
    /// a big read or used up its budget, is left woken: the consumer polls
    /// it again when it wants more lines.)
    pub(super) fn drive(&self) {
        match self.step() {
            Step::Idle | Step::Pending { .. } => {}
            Step::Done(out) => {
                let task = {
                    let mut inner = self.lock();
                    inner.done = Some(out);
                    inner.task.take()
                };
                if let Some(task) = task {
                    task.wake();
                }
            }
        }
    }

    /// Leaves the reading to its task: the consumer may not poll again.
    pub(crate) fn kick(&self) {
        self.queue.disengage();
        let task = {
            let mut inner = self.lock();
            inner.woken = true;
            inner.task.clone()
        };
        if let Some(task) = task {
            task.wake();
        }
    }

    /// The reader's task: polls the reading whenever a wake-up comes to
    /// it, until the reading is done (by either side).
    pub(super) async fn run(self: Arc<Self>) -> Captured {
        let out = std::future::poll_fn(|cx| {
            {
                let mut inner = self.lock();
                if let Some(out) = inner.done.take() {
                    return Poll::Ready(out);
                }
                if !inner.task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    inner.task = Some(cx.waker().clone());
                }
            }
            match self.step() {
                Step::Done(out) => Poll::Ready(out),
                Step::Pending { again: true } => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                // Being polled by the consumer: it leaves `done` and wakes
                // this task, or sees `woken` after its poll.
                Step::Pending { again: false } | Step::Idle => Poll::Pending,
            }
        })
        .await;
        out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}
