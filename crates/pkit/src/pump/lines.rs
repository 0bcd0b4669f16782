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

/// Tells the lines a program wrote from the later pieces of a line cut by
/// `max_line_bytes`, stream by stream (their pieces interleave): a
/// predicate that sees text only (`first_line`, a supervisor's
/// `ready_when_line`) is offered a cut line's first piece alone.
#[derive(Debug, Default)]
pub(crate) struct FirstPieces {
    /// Per stream (stdout, stderr): the last line seen was a piece that
    /// more pieces follow.
    in_cut_line: [bool; 2],
}

impl FirstPieces {
    /// Whether `line` is to be offered: a whole line, or the first piece of
    /// a cut one.
    pub(crate) fn offers(&mut self, line: &Line) -> bool {
        let rest = &mut self.in_cut_line[usize::from(line.stream == StreamKind::Stderr)];
        !std::mem::replace(rest, line.partial)
    }
}
