//! [`Line`] and the merged [`Lines`] stream.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

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
