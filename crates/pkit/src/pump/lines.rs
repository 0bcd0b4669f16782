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
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Line {
    /// The stream it came from.
    pub stream: StreamKind,
    /// The text, decoded (UTF-8 with replacement by default).
    pub text: String,
    /// True when the line was longer than `max_line_bytes` and this is a
    /// piece of it that more pieces follow.
    pub partial: bool,
}
