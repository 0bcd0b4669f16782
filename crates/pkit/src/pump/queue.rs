//! The bounded queue between the readers and a [`Lines`] stream (its
//! consumer end, and the [`Overflow`] policy when it is full), counted in
//! lines but moved in [`Batch`]es: a reader pushes the lines of one read
//! under one lock, and the consumer takes a batch at a time, so the queue
//! costs nothing per line.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use super::batch::Batch;
use super::Line;

#[path = "owed.rs"]
mod owed;
pub(crate) use owed::Asking;

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
        // Polled in place (no future within the future): a line is moved
        // out once, not once per layer.
        std::future::poll_fn(|cx| match &mut self.rx {
            Some(rx) => rx.poll_recv(cx),
            None => Poll::Ready(None),
        })
        .await
    }
}

impl futures_core::Stream for Lines {
    type Item = Line;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Line>> {
        match &mut self.rx {
            Some(rx) => rx.poll_recv(cx),
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
    /// Senders waiting for room (registered under the lock, with their
    /// `Notified` made before it): the consumer wakes them once the queue
    /// is half empty, not on every batch it takes.
    producers_waiting: usize,
    /// Emptied batch buffers the consumer gave back, for the readers'
    /// next batches (at most [`SPARES`]).
    spares: Vec<Vec<u8>>,
    /// Lines ever queued, and ever taken out of `batches` (see
    /// [`Receiver::owed`]).
    pushed: u64,
    popped: u64,
    /// The latest ask for what is owed ([`Receiver::ask_owed`]), the
    /// senders yet to answer it, and the lines owed: the first
    /// `owed_until` ever queued.
    asked: u64,
    unanswered: usize,
    owed_until: u64,
}

/// How many emptied batch buffers a queue keeps for its readers: a read
/// buffer becomes its batch (see `Splitter::read_room`), so a steady stream
/// needs one back per batch, and two streams share the queue.
const SPARES: usize = 4;

struct Shared {
    state: Mutex<State>,
    /// Wakes the producers: room made, or the consumer gone.
    writable: Notify,
    /// `State::asked`, for the readers to look at without the lock.
    asks: AtomicU64,
    /// Wakes the readers (waiting for their pipes) when the consumer asks
    /// what is owed.
    asking: Notify,
    /// Wakes an [`OwedWatch`] when the last sender answers.
    answered: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
            producers_waiting: 0,
            spares: Vec::new(),
            pushed: 0,
            popped: 0,
            asked: 0,
            unanswered: 0,
            owed_until: 0,
        }),
        writable: Notify::new(),
        asks: AtomicU64::new(0),
        asking: Notify::new(),
        answered: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
            seen: 0,
            answered: 0,
        },
        Receiver {
            shared,
            local: None,
        },
    )
}

/// A reader's end.
pub(crate) struct Sender {
    shared: Arc<Shared>,
    /// The latest ask for what is owed this sender took on, and the latest
    /// it answered (see [`Receiver::ask_owed`]).
    seen: u64,
    answered: u64,
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        let asked = {
            let mut st = self.shared.lock();
            st.senders += 1;
            st.asked
        };
        // Not counted in an ask made before it: none to answer.
        Sender {
            shared: self.shared.clone(),
            seen: asked,
            answered: asked,
        }
    }
}

impl Drop for Sender {
    /// A sender's end answers the ask it has not answered: all its lines
    /// are queued.
    fn drop(&mut self) {
        let (waker, answered) = {
            let mut st = self.shared.lock();
            st.senders -= 1;
            let answered = self.answered < st.asked && st.answer();
            let waker = if st.senders == 0 || answered {
                st.consumer.take()
            } else {
                None
            };
            (waker, answered)
        };
        if answered {
            self.shared.answered.notify_waiters();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Sender {
    /// Queues `batch`, and returns with the outcome an emptied batch buffer
    /// the consumer gave back, if one is kept (taken under the same lock).
    /// Under backpressure it queues what fits and waits for the consumer to
    /// make room for the rest; under `DropNewest` the lines that don't fit
    /// are counted in `dropped`. While nobody holds the queue, it waits at
    /// most [`UNHELD_PATIENCE`], then drops too (see `State::held`). The
    /// outcome is false once the consumer is gone.
    ///
    /// A batch that fits costs one lock and no `Notified`. No wake-up is
    /// lost on the slow path: a sender waits only on a `Notified` made and
    /// enabled before the lock under which it found the queue full and
    /// counted itself in `producers_waiting`, and `notify_waiters`
    /// completes every `Notified` made before it. The consumer's pops after
    /// that lock see the count; the queue, full under it, is half empty
    /// before the consumer can find it empty and wait, and the pop that
    /// leaves it so notifies. `hold`, `let_go` and the receiver's drop
    /// notify whatever the count.
    pub(crate) async fn send(
        &self,
        batch: Batch,
        overflow: Overflow,
        dropped: &AtomicU64,
    ) -> (bool, Option<Vec<u8>>) {
        let mut rest = Some(batch);
        let mut spare = None;
        let mut patience: Option<tokio::time::Instant> = None;
        let mut waiting = Waiting {
            shared: &self.shared,
            counted: false,
        };
        // Made (and enabled) once a pass found no room for the rest.
        let mut wait = std::pin::pin!(None::<Notified<'_>>);
        while let Some(batch) = rest.as_mut() {
            let (waker, held) = {
                let mut st = self.shared.lock();
                if waiting.counted {
                    st.producers_waiting -= 1;
                    waiting.counted = false;
                }
                if spare.is_none() {
                    spare = st.spares.pop();
                }
                if !st.receiver {
                    return (false, spare);
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
                    st.pushed += part.len() as u64;
                    st.batches.push_back(part);
                    st.consumer.take()
                });
                if rest.is_some() && wait.is_some() {
                    st.producers_waiting += 1;
                    waiting.counted = true;
                }
                (waker, st.held)
            };
            if let Some(w) = waker {
                w.wake();
            }
            if rest.is_none() {
                break;
            }
            if let Some(notified) = wait.as_mut().as_pin_mut() {
                if held {
                    patience = None;
                    notified.await;
                } else {
                    let until = *patience
                        .get_or_insert_with(|| tokio::time::Instant::now() + UNHELD_PATIENCE);
                    if tokio::time::timeout_at(until, notified).await.is_err() {
                        // Nobody took the stream in time: drop from now on.
                        let mut st = self.shared.lock();
                        if !st.held {
                            st.dropping = true;
                        }
                    }
                }
            }
            // The slow path: a fresh `Notified`, enabled before the next
            // look under the lock.
            wait.set(Some(self.shared.writable.notified()));
            if let Some(notified) = wait.as_mut().as_pin_mut() {
                notified.enable();
            }
        }
        (true, spare)
    }
}

/// A sender counted in `State::producers_waiting`: uncounted by its next
/// pass under the lock, or here if its `send` is dropped while it waits.
struct Waiting<'a> {
    shared: &'a Shared,
    counted: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.shared.lock().producers_waiting -= 1;
        }
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
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.lock().receiver = false;
        self.shared.writable.notify_waiters();
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
    pub(crate) async fn recv(&mut self) -> Option<Line> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    #[inline]
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Line>> {
        if let Some(line) = self.local.as_mut().and_then(Batch::pop) {
            return Poll::Ready(Some(line));
        }
        self.poll_queue(cx)
    }

    /// [`poll_recv`](Self::poll_recv) once the batch taken is all handed out.
    fn poll_queue(&mut self, cx: &mut Context<'_>) -> Poll<Option<Line>> {
        // The batch handed out is done with: its buffer goes back to the
        // readers. (One not kept is freed after the lock is let go: `st`
        // is dropped first.)
        let mut spare = self.local.take().and_then(Batch::into_spare);
        let mut st = self.shared.lock();
        if st.spares.len() < SPARES {
            st.spares.extend(spare.take());
        }
        let Some(mut batch) = st.batches.pop_front() else {
            if st.senders == 0 {
                return Poll::Ready(None);
            }
            st.consumer = Some(cx.waker().clone());
            return Poll::Pending;
        };
        st.queued -= batch.len();
        st.popped += batch.len() as u64;
        // Senders wait for half the queue, not for every batch taken: one
        // wake-up lets them fill it again (see `Sender::send`).
        let wake = st.producers_waiting > 0 && st.queued <= st.capacity / 2;
        drop(st);
        if wake {
            self.shared.writable.notify_waiters();
        }
        // Batches in the queue are never empty.
        let line = batch.pop();
        self.local = Some(batch);
        Poll::Ready(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pump::split::Splitter;
    use crate::pump::StreamKind;

    /// A batch of the lines `from..from + n` ("0", "1", ...).
    fn batch(from: usize, n: usize) -> Batch {
        let mut s = Splitter::new(1024);
        for i in from..from + n {
            s.extend(format!("{i}\n").as_bytes());
        }
        s.split(StreamKind::Stdout).expect("whole lines")
    }

    /// D1's lost wake-up check: a queue of 4 lines that is full at almost
    /// every send (batches of 1 to 7 lines, the consumer taking one line at
    /// a time on another worker) delivers all 10,000 lines, in order, with
    /// none dropped, well within 10 s.
    #[test]
    fn a_small_queue_taken_one_line_at_a_time_loses_no_wake_up() {
        const LINES: usize = 10_000;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (seen, dropped) = rt.block_on(async {
            let (tx, mut rx) = queue(4, Overflow::Backpressure);
            rx.hold(true);
            let dropped = Arc::new(AtomicU64::new(0));
            let producer = tokio::spawn({
                let dropped = dropped.clone();
                async move {
                    let mut next = 0;
                    while next < LINES {
                        let n = (next % 7 + 1).min(LINES - next);
                        let (open, _) = tx
                            .send(batch(next, n), Overflow::Backpressure, &dropped)
                            .await;
                        assert!(open, "the receiver is alive");
                        next += n;
                    }
                }
            });
            let consume = async {
                let mut seen = 0;
                while let Some(line) = rx.recv().await {
                    assert_eq!(line.text, seen.to_string(), "in order");
                    seen += 1;
                    if seen % 3 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                seen
            };
            let seen = tokio::time::timeout(std::time::Duration::from_secs(10), consume)
                .await
                .expect("a sender or the consumer hung: a lost wake-up");
            producer.await.expect("producer");
            (seen, dropped.load(Ordering::Relaxed))
        });
        assert_eq!(seen, LINES);
        assert_eq!(dropped, 0);
    }
}
