//! [`SupervisorHandle`]: a supervision running in a background task, and
//! the queue of its events.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::{SupervisionOutcome, SupervisorEvent};
use crate::cancel::CancelToken;
use crate::error::{Error, Result};

/// How many events a [`SupervisorHandle`] keeps unread: past that, the
/// oldest is dropped for each new one (the last, `Stopped`, is always
/// kept), so a handle nobody reads events from holds a bounded amount.
pub const EVENT_BUFFER: usize = 1024;

/// The events not yet read, shared by the supervising task and its handle.
#[derive(Debug, Default)]
pub(super) struct EventQueue {
    state: Mutex<QueueState>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct QueueState {
    events: VecDeque<SupervisorEvent>,
    /// The supervising task is gone: no event will come.
    closed: bool,
    dropped: u64,
}

impl EventQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The supervising task's end of the queue; dropping it closes the queue.
pub(super) struct EventSender(pub(super) Arc<EventQueue>);

impl EventSender {
    pub(super) fn push(&self, event: SupervisorEvent) {
        {
            let mut s = self.0.lock();
            if s.events.len() >= EVENT_BUFFER {
                s.events.pop_front();
                s.dropped = s.dropped.saturating_add(1);
            }
            s.events.push_back(event);
        }
        self.0.notify.notify_one();
    }
}

impl Drop for EventSender {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.notify.notify_one();
    }
}

/// A running supervision (see [`Supervisor::start`](crate::Supervisor::start)). Dropping it ends the
/// supervision and kills the current run's tree.
#[derive(Debug)]
pub struct SupervisorHandle {
    pub(super) events: Arc<EventQueue>,
    pub(super) stop: CancelToken,
    /// Cancelled when the handle is dropped: gives up a start waiting for
    /// a FIFO's other end, which aborting the task cannot interrupt.
    pub(super) dropped: CancelToken,
    /// The supervising task, or why there is none (no runtime).
    pub(super) task: Option<Result<tokio::task::JoinHandle<Result<SupervisionOutcome>>>>,
}

impl SupervisorHandle {
    /// The next event, in order; `None` once the supervision has ended
    /// and every event was read. Events wait until read, up to
    /// [`EVENT_BUFFER`] of them: past that the oldest unread one is dropped
    /// for each new one (counted by [`events_dropped`](Self::events_dropped);
    /// the last event, `Stopped`, is always kept).
    pub async fn next_event(&mut self) -> Option<SupervisorEvent> {
        loop {
            let notified = self.events.notify.notified();
            {
                let mut s = self.events.lock();
                if let Some(event) = s.events.pop_front() {
                    return Some(event);
                }
                if s.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// How many events were dropped unread because [`EVENT_BUFFER`] of them
    /// were waiting already.
    pub fn events_dropped(&self) -> u64 {
        self.events.lock().dropped
    }

    /// Asks for the graceful stop of [`stop`](Self::stop) and returns at
    /// once, keeping the handle: read the rest of the events (the stopped
    /// run's [`SupervisorEvent::Exited`], with `crashed: false`, then
    /// [`SupervisorEvent::Stopped`]), then [`wait`](Self::wait) for the
    /// outcome. Asking again does nothing more.
    pub fn request_stop(&self) {
        self.stop.cancel();
    }

    /// Stops gracefully: the current run's tree gets the command's
    /// [`timeout_signal`](crate::Command::timeout_signal) (SIGTERM unless set) and
    /// its [`grace`](crate::Command::grace) ([`DEFAULT_TIMEOUT_GRACE`](crate::DEFAULT_TIMEOUT_GRACE)
    /// unless set) before SIGKILL; a pause ends at once. A
    /// [`cancel_token`](crate::Supervisor::cancel_token) cancelled during the
    /// grace cuts it short: the tree is killed at once and the outcome is
    /// [`StopReason::Cancelled`](crate::StopReason::Cancelled). Returns the outcome (usually
    /// [`StopReason::StopRequested`](crate::StopReason::StopRequested), or how the supervision had ended
    /// already).
    ///
    /// # Errors
    ///
    /// Those of [`run`](crate::Supervisor::run); [`Error::Io`](crate::Error::Io) when the
    /// supervising task was cancelled (its runtime shut down);
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) when
    /// [`start`](crate::Supervisor::start) was called outside a Tokio runtime
    /// (nothing ran). A panic in the task is resumed here.
    pub async fn stop(mut self) -> Result<SupervisionOutcome> {
        self.stop.cancel();
        self.join().await
    }

    /// Waits for the supervision to end by itself.
    ///
    /// # Errors
    ///
    /// Those of [`run`](crate::Supervisor::run); [`Error::Io`](crate::Error::Io) when the
    /// supervising task was cancelled (its runtime shut down);
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) when
    /// [`start`](crate::Supervisor::start) was called outside a Tokio runtime
    /// (nothing ran). A panic in the task is resumed here.
    pub async fn wait(mut self) -> Result<SupervisionOutcome> {
        self.join().await
    }

    async fn join(&mut self) -> Result<SupervisionOutcome> {
        let task = self.task.take().expect("joined once")?;
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(Error::io("supervisor task", std::io::Error::other(e))),
        }
    }
}

impl Drop for SupervisorHandle {
    fn drop(&mut self) {
        // A start blocked in a FIFO's open (on a runtime thread, where the
        // abort cannot reach) gives up and lets that thread go.
        self.dropped.cancel();
        if let Some(Ok(task)) = self.task.take() {
            // Dropping the task's future drops the run's group: its tree
            // is killed.
            task.abort();
        }
    }
}
