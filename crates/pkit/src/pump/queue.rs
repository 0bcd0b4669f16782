//! The bounded queue between the readers and a [`Lines`](super::Lines)
//! stream, counted in lines but moved in batches: a reader pushes every line
//! of a chunk under one lock, and the consumer takes everything queued at
//! once, so the cost per line is a `VecDeque` push and pop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;

use super::{Line, Overflow};

struct State {
    lines: VecDeque<Line>,
    capacity: usize,
    senders: usize,
    receiver: bool,
    /// The consumer, waiting for lines (or the end).
    consumer: Option<Waker>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the producers: room made, or the consumer gone.
    writable: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Makes a queue holding at most `capacity` lines.
pub(crate) fn queue(capacity: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            lines: VecDeque::new(),
            capacity: capacity.max(1),
            senders: 1,
            receiver: true,
            consumer: None,
        }),
        writable: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver {
            shared,
            local: VecDeque::new(),
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
    /// Queues `batch` (in order). Under backpressure it waits for room;
    /// under `DropNewest` what doesn't fit is counted in `dropped`. Returns
    /// false once the consumer is gone.
    pub(crate) async fn send(
        &self,
        batch: Vec<Line>,
        overflow: Overflow,
        dropped: &AtomicU64,
    ) -> bool {
        let mut batch = batch.into_iter().peekable();
        loop {
            let wait = self.shared.writable.notified();
            tokio::pin!(wait);
            wait.as_mut().enable();
            let (waker, done) = {
                let mut st = self.shared.lock();
                if !st.receiver {
                    return false;
                }
                let room = st.capacity.saturating_sub(st.lines.len());
                let before = st.lines.len();
                st.lines.extend(batch.by_ref().take(room));
                let waker = if st.lines.len() > before {
                    st.consumer.take()
                } else {
                    None
                };
                let done = if batch.peek().is_none() {
                    true
                } else if overflow == Overflow::DropNewest {
                    dropped.fetch_add(batch.by_ref().count() as u64, Ordering::Relaxed);
                    true
                } else {
                    false
                };
                (waker, done)
            };
            if let Some(w) = waker {
                w.wake();
            }
            if done {
                return true;
            }
            wait.await;
        }
    }
}

/// The consumer's end.
pub(crate) struct Receiver {
    shared: Arc<Shared>,
    /// Lines taken from the queue, not yet handed out.
    local: VecDeque<Line>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.lock().receiver = false;
        self.shared.writable.notify_waiters();
    }
}

impl Receiver {
    /// The next line, or `None` once every reader is done.
    pub(crate) async fn recv(&mut self) -> Option<Line> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Line>> {
        if let Some(line) = self.local.pop_front() {
            return Poll::Ready(Some(line));
        }
        let mut st = self.shared.lock();
        if st.lines.is_empty() {
            if st.senders == 0 {
                return Poll::Ready(None);
            }
            st.consumer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        std::mem::swap(&mut st.lines, &mut self.local);
        drop(st);
        self.shared.writable.notify_waiters();
        Poll::Ready(self.local.pop_front())
    }
}
