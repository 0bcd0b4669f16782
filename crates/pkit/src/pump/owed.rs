//! What a line stream's consumer is owed when the process exits: the
//! lines of everything the process wrote, queued or still in its pipes.
//!
//! At the exit the consumer asks ([`Receiver::ask_owed`]); each reader
//! takes the ask on at its next turn (an ask wakes one waiting for its
//! pipe), notes how many bytes its pipe holds then, and answers
//! ([`Sender::answer`]) once it has read and queued that many more, or
//! when it ends (its sender dropped). The exited process wrote nothing
//! after its exit, so by then the lines of all it wrote are queued (a
//! reader tells the process's partial last line as a line, once, when it
//! has read what its pipe held at the exit, before it answers; later asks
//! cut nothing: see `pump/owing.rs`): every line queued at the last answer
//! is owed. A descendant still writing adds
//! at most a pipe's worth (what the pipe held when the reader looked).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::futures::Notified;

use super::{Batch, Lines, Receiver, Sender, Shared, State};

impl Lines {
    /// See [`Receiver::ask_owed`] (nothing without a queue).
    pub(crate) fn ask_owed(&self) {
        if let Some(rx) = &self.rx {
            rx.ask_owed();
        }
    }

    /// See [`Receiver::owed`] (none without a queue).
    pub(crate) fn owed(&self) -> Option<usize> {
        self.rx.as_ref().map_or(Some(0), Receiver::owed)
    }
}

impl State {
    /// A sender's answer to the latest ask: every line queued so far is
    /// owed. Whether it was the last answer.
    pub(super) fn answer(&mut self) -> bool {
        self.unanswered = self.unanswered.saturating_sub(1);
        self.owed_until = self.owed_until.max(self.pushed);
        self.unanswered == 0
    }
}

/// Wakes a reader when its consumer asks what is owed (see
/// [`Receiver::ask_owed`]).
pub(crate) struct Asking(Arc<Shared>);

impl Asking {
    /// Completes at the next ask (made from now on, polled or not).
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.0.asking.notified()
    }
}

impl Sender {
    /// What wakes this sender's reader when the consumer asks.
    pub(crate) fn asking(&self) -> Asking {
        Asking(self.shared.clone())
    }

    /// Whether the consumer asked what is owed since this was last called:
    /// the reader then notes how much its pipe holds, and [`answers`](Self::answer)
    /// once it has queued that much.
    pub(crate) fn take_ask(&mut self) -> bool {
        let asked = self.shared.asks.load(Ordering::Acquire);
        let new = asked > self.seen;
        self.seen = asked;
        new
    }

    /// Answers the ask taken on: every line queued so far is owed.
    pub(crate) fn answer(&mut self) {
        if self.answered >= self.seen {
            return;
        }
        self.answered = self.seen;
        let waker = {
            let mut st = self.shared.lock();
            // A later ask is answered once taken on (`unanswered` counts
            // this sender for it).
            if st.asked != self.seen || st.unanswered == 0 || !st.answer() {
                return;
            }
            st.consumer.take()
        };
        self.shared.answered.notify_waiters();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Receiver {
    /// Asks the readers what is owed, at the process's exit: each answers
    /// once it has queued the lines of what its pipe held when it took
    /// the ask on (the exited process's output is all there by then, or
    /// read), or by ending; the lines queued by then are owed (see
    /// [`owed`](Self::owed)).
    pub(crate) fn ask_owed(&self) {
        {
            let mut st = self.shared.lock();
            st.asked += 1;
            st.unanswered = st.senders;
            if st.senders == 0 {
                st.owed_until = st.owed_until.max(st.pushed);
            }
            self.shared.asks.store(st.asked, Ordering::Release);
        }
        self.shared.asking.notify_waiters();
    }

    /// The owed lines not yet handed out, once every reader has answered
    /// the latest [`ask`](Self::ask_owed) (`None` until then: the consumer
    /// is woken by the last answer).
    pub(crate) fn owed(&self) -> Option<usize> {
        let st = self.shared.lock();
        if st.unanswered > 0 {
            return None;
        }
        let taken = st.popped - self.local.as_ref().map_or(0, Batch::len) as u64;
        Some(st.owed_until.saturating_sub(taken) as usize)
    }

    /// Waits for the readers' answers apart from this receiver.
    pub(crate) fn owed_watch(&self) -> OwedWatch {
        OwedWatch(self.shared.clone())
    }
}

/// See [`Receiver::owed_watch`].
pub(crate) struct OwedWatch(Arc<Shared>);

impl OwedWatch {
    /// Completes once every reader has answered the latest ask.
    pub(crate) async fn answered(&self) {
        loop {
            let answered = self.0.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            if self.0.lock().unanswered == 0 {
                return;
            }
            answered.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::super::{queue, Overflow};
    use super::*;
    use crate::pump::split::Splitter;
    use crate::pump::StreamKind;

    /// A batch of `n` lines.
    fn batch(n: usize) -> Batch {
        let mut s = Splitter::new(1024);
        for i in 0..n {
            s.extend(format!("{i}\n").as_bytes());
        }
        s.split(StreamKind::Stdout).expect("whole lines")
    }

    /// The owed lines are those queued by the last answer (a sender's own,
    /// or its end), less those taken since; none are owed until every
    /// sender has answered; a later ask counts afresh.
    #[test]
    fn the_lines_queued_by_the_last_answer_are_owed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (mut tx, mut rx) = queue(100, Overflow::Backpressure);
            rx.hold(true);
            let other = tx.clone();
            let dropped = AtomicU64::new(0);
            tx.send(batch(3), Overflow::Backpressure, &dropped).await;
            rx.recv().await.expect("a line");
            rx.ask_owed();
            assert_eq!(rx.owed(), None, "nobody answered");
            assert!(tx.take_ask() && !tx.take_ask(), "one ask, taken once");
            tx.answer();
            assert_eq!(rx.owed(), None, "one sender to answer");
            tx.send(batch(2), Overflow::Backpressure, &dropped).await;
            // Its end answers for the other sender.
            drop(other);
            assert_eq!(rx.owed(), Some(4));
            for _ in 0..3 {
                rx.recv().await.expect("a line");
            }
            assert_eq!(rx.owed(), Some(1));
            tx.send(batch(5), Overflow::Backpressure, &dropped).await;
            rx.recv().await.expect("a line");
            assert_eq!(
                rx.owed(),
                Some(0),
                "the lines after the answer are not owed"
            );
            rx.ask_owed();
            assert_eq!(rx.owed(), None);
            assert!(tx.take_ask());
            tx.answer();
            assert_eq!(rx.owed(), Some(5), "what is queued at the new answer");
            drop(tx);
            rx.ask_owed();
            assert_eq!(rx.owed(), Some(5), "no sender left: what is queued");
        });
    }
}
