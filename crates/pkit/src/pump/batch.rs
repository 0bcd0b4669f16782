//! [`Batch`]: whole lines of one stream sharing one text buffer, as the
//! splitter (`split.rs`) makes them and the line queue (`queue.rs`) hands
//! them out.

use std::sync::Arc;

use super::{Line, StreamKind};

/// Where one line (or piece of an over-long line) lies in a batch's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) end: usize,
    /// More of the same line follows (the cap cut it).
    pub(super) partial: bool,
}

/// Whole lines of one stream, in order, sharing one text buffer.
///
/// Splitting a batch (when the queue has room for only part of it) shares
/// the buffer instead of copying it.
#[derive(Debug)]
pub(crate) struct Batch {
    stream: StreamKind,
    shared: Arc<BatchText>,
    /// The lines `next..end` of `shared` are this batch's, not yet taken.
    next: usize,
    end: usize,
}

#[derive(Debug)]
struct BatchText {
    text: String,
    spans: Vec<Span>,
    /// The first span is a later piece of a line cut in an earlier batch
    /// (the splitter's last piece before it was partial).
    continued: bool,
}

impl Batch {
    pub(super) fn new(
        stream: StreamKind,
        text: String,
        spans: Vec<Span>,
        continued: bool,
    ) -> Batch {
        let end = spans.len();
        Batch {
            stream,
            shared: Arc::new(BatchText {
                text,
                spans,
                continued,
            }),
            next: 0,
            end,
        }
    }

    /// Lines not yet taken.
    pub(crate) fn len(&self) -> usize {
        self.end - self.next
    }

    /// The text of the lines not yet taken, without taking them.
    pub(crate) fn texts(&self) -> impl Iterator<Item = &str> {
        let BatchText { text, spans, .. } = &*self.shared;
        spans[self.next..self.end]
            .iter()
            .map(|s| text.get(s.start..s.end).unwrap_or_default())
    }

    /// Takes the next line.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Line> {
        if self.next == self.end {
            return None;
        }
        let span = self.shared.spans[self.next];
        let continued = self.continued(self.next);
        self.next += 1;
        // A batch of one line (what a trickle of lines brings) gives its
        // buffer to the line, no copy. (Checked before `get_mut`, which
        // costs two atomic operations: not something to do per line.)
        let whole = self.shared.spans.len() == 1 && span.start == 0;
        let own = if whole {
            Arc::get_mut(&mut self.shared)
        } else {
            None
        };
        let text = match own {
            Some(own) => {
                let mut text = std::mem::take(&mut own.text);
                text.truncate(span.end);
                text
            }
            None => self
                .shared
                .text
                .get(span.start..span.end)
                .unwrap_or_default()
                .to_owned(),
        };
        Some(Line {
            stream: self.stream,
            text,
            partial: span.partial,
            continued,
        })
    }

    /// Whether line `i` of the shared spans is a later piece of a cut line
    /// (the piece before it, kept or dropped, was partial).
    fn continued(&self, i: usize) -> bool {
        match i.checked_sub(1) {
            Some(before) => self.shared.spans[before].partial,
            None => self.shared.continued,
        }
    }

    /// Copies this batch's lines into a buffer of their own when they are
    /// a small part of the one they share (after the rest was dropped), so
    /// a queue of a few lines never holds whole read buffers.
    pub(crate) fn compact(&mut self) {
        let spans = &self.shared.spans[self.next..self.end];
        let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
            return;
        };
        let (from, to) = (first.start, last.end);
        if (to - from) * 2 >= self.shared.text.capacity() {
            return;
        }
        let text = self
            .shared
            .text
            .get(from..to)
            .unwrap_or_default()
            .to_owned();
        let spans = spans
            .iter()
            .map(|s| Span {
                start: s.start - from,
                end: s.end - from,
                partial: s.partial,
            })
            .collect();
        let continued = self.continued(self.next);
        *self = Batch::new(self.stream, text, spans, continued);
    }

    /// The text buffer back, emptied, once every line was taken and no
    /// other batch shares it (see [`Splitter::give_spare`]).
    pub(crate) fn into_spare(self) -> Option<Vec<u8>> {
        if self.next != self.end {
            return None;
        }
        let text = Arc::try_unwrap(self.shared).ok()?.text;
        let mut bytes = text.into_bytes();
        bytes.clear();
        (bytes.capacity() > 0).then_some(bytes)
    }

    crate::sys::with_direct_wait! {
        /// The text buffer back, emptied, once a consumer had every line
        /// without taking them (a callback: see `line_feed.rs`), when no
        /// other batch shares it.
        pub(crate) fn spent(mut self) -> Option<Vec<u8>> {
            self.next = self.end;
            self.into_spare()
        }
    }

    /// Moves the first `n` lines not yet taken into a batch of their own
    /// (sharing the buffer), leaving the rest here.
    pub(crate) fn split_front(&mut self, n: usize) -> Batch {
        let n = n.min(self.len());
        let front = Batch {
            stream: self.stream,
            shared: self.shared.clone(),
            next: self.next,
            end: self.next + n,
        };
        self.next += n;
        front
    }

    /// Where the text buffer lies (to tell buffers apart in tests).
    #[cfg(test)]
    pub(super) fn text_ptr(&self) -> *const u8 {
        self.shared.text.as_ptr()
    }

    /// The text buffer's length and capacity (in tests).
    #[cfg(test)]
    pub(super) fn text_room(&self) -> (usize, usize) {
        (self.shared.text.len(), self.shared.text.capacity())
    }
}
