//! Separate stdout and stderr line streams of a started process, besides
//! the merged one: [`RunningProcess::split_lines`].

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::process::RunningProcess;
use crate::pump::{Line, Overflow, StreamKind};

/// One stream's lines (stdout's or stderr's), from
/// [`RunningProcess::split_lines`]. Ends when the process has closed both
/// outputs.
pub struct StreamLines {
    rx: mpsc::Receiver<Line>,
}

impl StreamLines {
    /// The next line, or `None` at the end.
    pub async fn next_line(&mut self) -> Option<Line> {
        self.rx.recv().await
    }
}

impl futures_core::Stream for StreamLines {
    type Item = Line;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Line>> {
        self.rx.poll_recv(cx)
    }
}

impl fmt::Debug for StreamLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamLines").finish_non_exhaustive()
    }
}

impl RunningProcess {
    /// Its stdout lines and its stderr lines as two streams (needs
    /// [`Command::stream_lines`](crate::Command::stream_lines)). Takes the
    /// merged stream (see [`lines`](Self::lines): take it right after the
    /// start to see every line); each stream keeps its own order.
    ///
    /// Each stream holds up to
    /// [`DEFAULT_BUFFER_LINES`](crate::DEFAULT_BUFFER_LINES) lines; when
    /// one is full, the command's overflow policy applies: under the
    /// default backpressure the lines wait for it (and the other stream's
    /// with them): read both concurrently, or drop the one you don't want —
    /// a dropped stream's lines are discarded; under
    /// [`Overflow::DropNewest`] the full stream's new lines are dropped and
    /// counted in [`dropped_lines`](Self::dropped_lines), and the other
    /// stream goes on. Before they are split, both streams' lines share the
    /// command's one line queue ([`buffer_lines`](crate::Command::buffer_lines)),
    /// so under `DropNewest` a stream that floods can fill it and have the
    /// other stream's lines dropped there too, even when the other's
    /// consumer keeps up; to keep one stream whole while the other floods,
    /// use backpressure and drop the unwanted stream.
    /// Needs a Tokio runtime (a small task routes the lines).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (a process started in one and moved out of
    /// it: every start needs one), as `tokio::spawn` does.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// let mut p = pkit::Command::new("sh")
    ///     .args(["-c", "echo out; echo err >&2"])
    ///     .stream_lines()
    ///     .start()?;
    /// let (mut out, mut err) = p.split_lines();
    /// assert_eq!(out.next_line().await.unwrap().text, "out");
    /// assert_eq!(err.next_line().await.unwrap().text, "err");
    /// # Ok(()) }
    /// ```
    pub fn split_lines(&mut self) -> (StreamLines, StreamLines) {
        let mut merged = self.lines();
        let overflow = merged.rx.as_ref().map(|rx| rx.overflow());
        let dropped = self.dropped.get_or_insert_with(Default::default).clone();
        let (out_tx, out_rx) = mpsc::channel(crate::DEFAULT_BUFFER_LINES);
        let (err_tx, err_rx) = mpsc::channel(crate::DEFAULT_BUFFER_LINES);
        tokio::spawn(async move {
            let (mut out, mut err) = (Some(out_tx), Some(err_tx));
            while let Some(line) = merged.next_line().await {
                let side = match line.stream {
                    StreamKind::Stdout => &mut out,
                    StreamKind::Stderr => &mut err,
                };
                let Some(tx) = side else { continue };
                if overflow == Some(Overflow::DropNewest) {
                    // A full side drops its new line (counted) instead of
                    // holding the other side back: the policy's promise
                    // that a slow consumer stalls nothing.
                    match tx.try_send(line) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => *side = None,
                    }
                } else if tx.send(line).await.is_err() {
                    *side = None;
                }
            }
        });
        (StreamLines { rx: out_rx }, StreamLines { rx: err_rx })
    }
}
