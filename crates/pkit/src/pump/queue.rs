//! The bounded queue between the readers and a [`Lines`] stream (its
//! consumer end, and the [`Overflow`] policy when it is full), counted in
//! lines but moved in [`Batch`]es: a reader pushes the lines of one read
//! under one lock, and the consumer takes a batch at a time, so the queue
//! costs nothing per line.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;

use super::driven::Driven;
use super::split::Batch;
use super::Line;

/// What happens when the line stream's buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Wait for the reader: a slow consumer slows the child (its writes
    /// block once the pipe is full). The default.
    #[default]
    Backpressure,
    /// Drop the new line and count it
    /// ([`RunningProcess::dropped_lines`](crate::RunningProcess::dropped_lines)):
    /// a slow consumer never stalls the child.
    DropNewest,
}

/// The merged stream of a process's stdout and stderr lines, in arrival
/// order per stream. It ends when the process has closed both outputs.
///
/// It implements [`futures_core::Stream`]; [`next_line`](Self::next_line)
/// needs no extra crate.
pub struct Lines {
    pub(crate) rx: Option<super::queue::Receiver>,
}

impl Lines {
    /// The next line, or `None` at the end.
    pub async fn next_line(&mut self) -> Option<Line> {
        match &mut self.rx {
            Some(rx) => rx.recv().await,
            None => None,
        }
    }
}

impl futures_core::Stream for Lines {
    type Item = Line;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Line>> {
        match &mut self.rx {
            // Not polled through a future of ours, whose drop says when it
            // stops waiting: the readers' tasks read.
            Some(rx) => rx.poll_recv(cx, false),
            None => Poll::Ready(None),
        }
    }
}

impl fmt::Debug for Lines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lines").finish_non_exhaustive()
    }
}

struct State {
    batches: VecDeque<Batch>,
    /// Lines in `batches`.
    queued: usize,
    capacity: usize,
    /// The command's policy, for a consumer that routes the lines on
    /// (`split_lines`).
    overflow: Overflow,
    senders: usize,
    receiver: bool,
    /// Someone consumes the queue: the stream was taken, or a probe reads
    /// it; the overflow policy applies. Until then (and after a probe)
    /// backpressure could stall the child for good on a queue nobody
    /// drains: a full queue holds the child back for at most
    /// [`UNHELD_PATIENCE`], then `dropping` is set.
    held: bool,
    /// Not held, and full for longer than the patience (or let go by
    /// `wait`): lines that don't fit are dropped and counted, whatever the
    /// overflow policy, until the queue is held again.
    dropping: bool,
    /// The consumer, waiting for lines (or the end).
    consumer: Option<Waker>,
    /// The consumer polls the readings itself (see `driven.rs`): their
    /// wake-ups are left to it, until it stops (see `kick_drivers`).
    engaged: bool,
    /// And it waits for lines now: their next wake-up wakes it.
    attending: bool,
    /// The readings a consumer may poll (see `driven.rs`).
    drivers: Vec<Weak<Driven>>,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the producers: room made, or the consumer gone.
    writable: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets `driven` be polled by the consumer.
    pub(super) fn add_driver(&self, driven: &Arc<Driven>) {
        self.lock().drivers.push(Arc::downgrade(driven));
    }

    /// Leaves every reading to its reader's task (the consumer stops, or
    /// may stop, polling them).
    fn kick_drivers(&self) {
        let drivers: Vec<Arc<Driven>> = {
            let st = self.lock();
            st.drivers.iter().filter_map(Weak::upgrade).collect()
        };
        for d in drivers {
            d.kick();
        }
    }
}

impl super::driven::Consumer for Shared {
    /// A reading was woken: true when its consumer polls it, which is
    /// woken if it waits (once: it says so again when it waits again).
    /// False when the wake-up is for the reader's task.
    fn route_to_consumer(&self) -> bool {
        let waker = {
            let mut st = self.lock();
            if !st.engaged {
                return false;
            }
            if !std::mem::take(&mut st.attending) {
                // Busy with the lines it has: it polls the reading when it
                // wants more (as a pipe read with no waiter wakes nobody).
                return true;
            }
            st.consumer.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// The consumer no longer polls the readings (for now): their
    /// wake-ups go to the readers' tasks.
    fn disengage(&self) {
        let mut st = self.lock();
        st.engaged = false;
        st.attending = false;
    }
}

/// How long a full queue that nobody holds makes the child wait before it
/// starts dropping lines: time enough to take a stream right after the
/// start (or after a probe) without losing a line, short enough that a
/// stream nobody takes stalls nothing for long.
pub(crate) const UNHELD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Makes a queue holding at most `capacity` lines, under `overflow`.
pub(crate) fn queue(capacity: usize, overflow: Overflow) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            batches: VecDeque::new(),
            queued: 0,
            capacity: capacity.max(1),
            overflow,
            senders: 1,
            receiver: true,
            held: false,
            dropping: false,
            consumer: None,
            engaged: false,
            attending: false,
            drivers: Vec::new(),
        }),
        writable: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver {
            shared,
            local: None,
            drivers: Vec::new(),
        },
    )
}

/// A reader's end.
pub(crate) struct Sender {
    shared: Arc<Shared>,
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let waker = {
            let mut st = self.shared.lock();
            st.senders -= 1;
            if st.senders == 0 {
                st.consumer.take()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Sender {
    /// The queue, for a reading its consumer may poll.
    pub(super) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Queues `batch`. Under backpressure it queues what fits and waits for
    /// the consumer to make room for the rest; under `DropNewest` the lines
    /// that don't fit are counted in `dropped`. While nobody holds the
    /// queue, it waits at most [`UNHELD_PATIENCE`], then drops too (see
    /// `State::held`). Returns false once the consumer is gone.
    pub(crate) async fn send(&self, batch: Batch, overflow: Overflow, dropped: &AtomicU64) -> bool {
        let mut rest = Some(batch);
        let mut patience: Option<tokio::time::Instant> = None;
        while let Some(batch) = rest.as_mut() {
            let wait = self.shared.writable.notified();
            tokio::pin!(wait);
            wait.as_mut().enable();
            let (waker, held) = {
                let mut st = self.shared.lock();
                if !st.receiver {
                    return false;
                }
                let room = st.capacity.saturating_sub(st.queued);
                let mut part = if room >= batch.len() {
                    rest.take()
                } else if room > 0 {
                    Some(batch.split_front(room))
                } else {
                    None
                };
                let drop_rest = if st.held {
                    overflow == Overflow::DropNewest
                } else {
                    st.dropping
                };
                if drop_rest {
                    if let Some(left) = rest.take() {
                        dropped.fetch_add(left.len() as u64, Ordering::Relaxed);
                        // The dropped lines' text must not stay alive
                        // through the kept ones.
                        drop(left);
                        if let Some(p) = &mut part {
                            p.compact();
                        }
                    }
                }
                let waker = part.filter(|p| p.len() > 0).and_then(|part| {
                    st.queued += part.len();
                    st.batches.push_back(part);
                    st.consumer.take()
                });
                (waker, st.held)
            };
            if let Some(w) = waker {
                w.wake();
            }
            if rest.is_none() {
                break;
            }
            if held {
                patience = None;
                wait.await;
            } else {
                let until =
                    *patience.get_or_insert_with(|| tokio::time::Instant::now() + UNHELD_PATIENCE);
                if tokio::time::timeout_at(until, wait).await.is_err() {
                    // Nobody took the stream in time: drop from now on.
                    let mut st = self.shared.lock();
                    if !st.held {
                        st.dropping = true;
                    }
                }
            }
        }
        true
    }
}

fn hold(shared: &Shared, held: bool) {
    {
        let mut st = shared.lock();
        st.held = held;
        st.dropping = false;
    }
    // Waiting producers re-evaluate under the new rule.
    shared.writable.notify_waiters();
    shared.kick_drivers();
}

/// See [`Receiver::hold_for_now`].
pub(crate) struct HoldGuard {
    shared: Arc<Shared>,
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        hold(&self.shared, false);
    }
}

/// The consumer's end.
pub(crate) struct Receiver {
    shared: Arc<Shared>,
    /// The batch taken from the queue, not yet all handed out.
    local: Option<Batch>,
    /// The readings it polls while it waits (see `driven.rs`).
    drivers: Vec<Arc<Driven>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.lock().receiver = false;
        self.shared.writable.notify_waiters();
        self.shared.kick_drivers();
    }
}

/// [`Receiver::recv`]'s future: dropped while it waits, it leaves the
/// readings it polls to their tasks.
pub(crate) struct Recv<'a> {
    rx: &'a mut Receiver,
    waiting: bool,
}

impl Future for Recv<'_> {
    type Output = Option<Line>;

    #[inline]
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Line>> {
        let polled = self.rx.poll_recv(cx, true);
        self.waiting = polled.is_pending();
        polled
    }
}

impl Drop for Recv<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.waiting {
            self.rx.shared.kick_drivers();
        }
    }
}

impl Receiver {
    /// Says whether someone consumes the queue now (see `State::held`).
    pub(crate) fn hold(&self, held: bool) {
        hold(&self.shared, held);
    }

    /// The command's overflow policy.
    pub(crate) fn overflow(&self) -> Overflow {
        self.shared.lock().overflow
    }

    /// Lets go of the queue for good, dropping at once what doesn't fit
    /// (nobody can take it any more, or waits on the process instead).
    pub(crate) fn let_go(&self) {
        {
            let mut st = self.shared.lock();
            st.held = false;
            st.dropping = true;
        }
        self.shared.writable.notify_waiters();
        self.shared.kick_drivers();
    }

    /// Holds the queue until the guard is dropped (a probe reading it in
    /// place), then lets go again.
    pub(crate) fn hold_for_now(&self) -> HoldGuard {
        hold(&self.shared, true);
        HoldGuard {
            shared: self.shared.clone(),
        }
    }

    /// The next line, or `None` once every reader is done.
    pub(crate) fn recv(&mut self) -> Recv<'_> {
        Recv {
            rx: self,
            waiting: false,
        }
    }

    /// The next line. With the queue empty, a consumer that takes the
    /// stream's backpressure and `attend`s (its future leaves the
    /// readings to their tasks when dropped: [`Recv`]) polls the readings
    /// that were woken itself (see `driven.rs`), then waits for their next
    /// wake-up.
    #[inline]
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>, attend: bool) -> Poll<Option<Line>> {
        if let Some(line) = self.local.as_mut().and_then(Batch::pop) {
            return Poll::Ready(Some(line));
        }
        self.poll_queue(cx, attend)
    }

    /// [`poll_recv`](Self::poll_recv) once the batch taken is all handed out.
    fn poll_queue(&mut self, cx: &mut Context<'_>, attend: bool) -> Poll<Option<Line>> {
        let mut rounds = 0;
        loop {
            let mut st = self.shared.lock();
            st.attending = false;
            if let Some(mut batch) = st.batches.pop_front() {
                st.queued -= batch.len();
                drop(st);
                self.shared.writable.notify_waiters();
                // Batches in the queue are never empty.
                let line = batch.pop();
                self.local = Some(batch);
                return Poll::Ready(line);
            }
            if st.senders == 0 {
                return Poll::Ready(None);
            }
            let direct = attend
                && st.held
                && st.overflow == Overflow::Backpressure
                && !st.drivers.is_empty();
            if rounds > 0 || !direct {
                if !st
                    .consumer
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    st.consumer = Some(cx.waker().clone());
                }
                if !direct {
                    return Poll::Pending;
                }
                st.attending = true;
                drop(st);
                // A reading woken before `attending` was set was left to
                // this poll.
                if !self.drivers.iter().any(|d| d.is_woken()) {
                    return Poll::Pending;
                }
                if rounds > 3 {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                st = self.shared.lock();
                st.attending = false;
            }
            st.engaged = true;
            // Lines this poll queues are seen on the next round: no wake-up.
            st.consumer = None;
            if self.drivers.len() != st.drivers.len() {
                self.drivers = st.drivers.iter().filter_map(Weak::upgrade).collect();
            }
            drop(st);
            for d in &self.drivers {
                d.drive();
            }
            rounds += 1;
        }
    }
}
