//! The unterminated end of each output stream, for
//! [`RunningProcess::wait_for_prompt`](crate::RunningProcess::wait_for_prompt):
//! a prompt such as `Password: ` is written without a line ending, so no
//! line ever carries it while the process waits for an answer.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::StreamKind;

/// A partial line longer than this is not taken for a prompt (and not
/// copied after every read).
pub(crate) const PROMPT_MAX_BYTES: usize = 4096;

/// What each stream has written since its last line ending.
#[derive(Default)]
pub(crate) struct PromptSlot {
    /// Per stream (stdout, stderr): the line's number (lines the stream
    /// completed before it) and its text so far; empty when the stream
    /// ends at a line ending.
    tails: Mutex<[(u64, String); 2]>,
    /// Woken on every change.
    pub(crate) changed: Notify,
}

fn index(kind: StreamKind) -> usize {
    match kind {
        StreamKind::Stdout => 0,
        StreamKind::Stderr => 1,
    }
}

impl PromptSlot {
    /// The partial lines now, stdout's then stderr's, with their numbers.
    pub(crate) fn tails(&self) -> [(StreamKind, u64, String); 2] {
        let t = self.tails.lock().unwrap_or_else(|e| e.into_inner());
        [
            (StreamKind::Stdout, t[0].0, t[0].1.clone()),
            (StreamKind::Stderr, t[1].0, t[1].1.clone()),
        ]
    }
}

/// A reader's side: publishes its stream's partial line when it changed.
pub(crate) struct PromptSink {
    slot: Arc<PromptSlot>,
    /// The last published (line number, length): a partial line only grows
    /// until its line ends, so these tell a change.
    last: (u64, usize),
}

impl PromptSink {
    pub(crate) fn new(slot: Arc<PromptSlot>) -> PromptSink {
        PromptSink { slot, last: (0, 0) }
    }

    /// After a split: `tail` is what the stream wrote since its last line
    /// ending (`line` lines before it).
    pub(crate) fn publish(&mut self, kind: StreamKind, line: u64, tail: &[u8]) {
        let tail = if tail.len() > PROMPT_MAX_BYTES {
            &[][..]
        } else {
            tail
        };
        let now = (line, tail.len());
        if now == self.last || (tail.is_empty() && self.last.1 == 0) {
            return;
        }
        self.last = now;
        {
            let mut t = self.slot.tails.lock().unwrap_or_else(|e| e.into_inner());
            t[index(kind)] = (line, String::from_utf8_lossy(tail).into_owned());
        }
        self.slot.changed.notify_waiters();
    }
}
