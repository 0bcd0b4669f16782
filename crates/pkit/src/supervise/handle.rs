//! [`SupervisorHandle`]: a supervision running in a background task, and
//! the queue of its events.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::current::CurrentRun;
use super::{SupervisionOutcome, SupervisorEvent};
use crate::cancel::CancelToken;
use crate::error::{Error, Result};
use crate::sys::Signal;

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
    /// The run going on, if any (see [`signal_program`](Self::signal_program)).
    pub(super) current: Arc<CurrentRun>,
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

    /// Sends `signal` to the current run's program — the process the
    /// supervisor started, as [`SupervisorEvent::Started`] reported it —
    /// and returns its pid; `Ok(None)` when no run is going on: before the
    /// first start, during a backoff pause between runs, after the
    /// supervision ended, and as soon as the run's program has exited,
    /// even before its [`SupervisorEvent::Exited`] was read (or sent).
    /// Nothing is sent then: the supervisor signals the process through
    /// its own record of it (a pidfd on Linux, its unreaped child
    /// elsewhere), never a pid that may have been handed to another
    /// process meanwhile. A run in the grace of a
    /// [`stop`](Self::stop) is still going on and gets the signal.
    ///
    /// The program only, not its children: this is for the signals a
    /// service handles itself — SIGHUP to reload, SIGUSR1 to reopen its
    /// logs — as `pkit run` and `pkit supervise` pass them on. Sent to the
    /// whole tree, such a signal would also reach helpers that do not
    /// expect it, and its default action (for SIGHUP, SIGUSR1, SIGUSR2,
    /// SIGALRM) ends them; a program that runs workers relays it to them
    /// as it sees fit. Ending the run is what [`stop`](Self::stop) (the
    /// tree gets the signal and the grace) and the cancel token are for.
    /// A program this signal ends (SIGKILL, or any it does not handle)
    /// ended on its own as far as the policy is concerned: a crash.
    ///
    /// On Windows [`Signal::Kill`] terminates the program,
    /// [`Signal::Term`] and [`Signal::Int`] are a `CTRL_BREAK_EVENT` to
    /// its console process group (console programs only), and any other
    /// signal is [`Error::Unsupported`](crate::Error::Unsupported).
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use pkit::{Command, Signal, Supervisor, SupervisorEvent};
    ///
    /// let script = "trap 'echo reloaded' HUP; while :; do sleep 0.1; done";
    /// let mut handle = Supervisor::new(Command::new("sh").args(["-c", script])).start();
    /// let Some(SupervisorEvent::Started { pid, .. }) = handle.next_event().await else {
    ///     panic!("the first event is the start")
    /// };
    /// assert_eq!(handle.signal_program(Signal::Hup)?, Some(pid));
    /// handle.stop().await?;
    /// # Ok(()) }
    /// # #[cfg(unix)]
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`](crate::Error::Unsupported) for a signal the
    /// platform can't send to one process (above); [`Error::Io`](crate::Error::Io)
    /// when the OS refuses it, or the program's state can't be read.
    #[doc(alias = "signal")]
    #[doc(alias = "kill")]
    pub fn signal_program(&self, signal: Signal) -> Result<Option<u32>> {
        self.current.signal(signal)
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
