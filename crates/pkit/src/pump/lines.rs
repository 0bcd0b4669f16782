//! [`Line`] and [`StreamKind`]: one line of output and the stream it came
//! from (the merged [`Lines`](super::Lines) stream is in `queue.rs`).

use std::fmt;

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// The child's stdout.
    Stdout,
    /// The child's stderr.
    Stderr,
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        })
    }
}

/// One line of a child's output, without its line ending.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Line {
    /// The stream it came from.
    pub stream: StreamKind,
    /// The text, decoded (UTF-8 with replacement by default).
    pub text: String,
    /// True when the line was longer than `max_line_bytes` and this is a
    /// piece of it that more pieces follow.
    pub partial: bool,
    /// A later piece of a line cut by `max_line_bytes`: the piece before it
    /// in its stream was partial. Set where the line is cut, so that it
    /// holds when pieces in between were dropped (`Overflow::DropNewest`):
    /// the previous line taken from the stream need not be the one before.
    pub(crate) continued: bool,
}

impl fmt::Debug for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Line")
            .field("stream", &self.stream)
            .field("text", &self.text)
            .field("partial", &self.partial)
            .finish()
    }
}

impl Line {
    /// Whether this is a line the program wrote: a whole line, or the first
    /// piece of one cut by `max_line_bytes`, not a later piece. A predicate
    /// that sees text only (`first_line`, a supervisor's `ready_when_line`)
    /// is offered these alone. (Read from the line itself, not from the
    /// line taken before it: under `Overflow::DropNewest` pieces in between
    /// may have been dropped.)
    pub(crate) fn begins_a_line(&self) -> bool {
        !self.continued
    }
}
