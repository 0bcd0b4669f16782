//! [`ChildStdin`]: the write end of a started child's stdin, handed to
//! the caller ([`Command::stdin_piped`](crate::Command::stdin_piped)).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use crate::sys;

/// The write end of a child's stdin (see
/// [`Command::stdin_piped`](crate::Command::stdin_piped)): an [`AsyncWrite`].
/// Dropping it, or `shutdown`, sends end of file; a write after the
/// `shutdown` fails with `BrokenPipe`.
pub struct ChildStdin {
    /// `None` once shut down: the pipe's write end is closed then (the
    /// pipe's own `shutdown` leaves it open on Unix).
    tx: Option<sys::PipeSender>,
}

impl ChildStdin {
    pub(crate) fn new(fd: sys::OwnedFd) -> io::Result<ChildStdin> {
        Ok(ChildStdin {
            tx: Some(sys::pipe_sender(fd)?),
        })
    }
}

impl AsyncWrite for ChildStdin {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.tx.as_mut() {
            Some(tx) => Pin::new(tx).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tx.as_mut() {
            Some(tx) => Pin::new(tx).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Sends end of file: the pipe's write end is closed (once what the
    /// pipe itself holds back is flushed).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(tx) = self.tx.as_mut() {
            std::task::ready!(Pin::new(tx).poll_shutdown(cx))?;
        }
        self.tx = None;
        Poll::Ready(Ok(()))
    }
}

impl fmt::Debug for ChildStdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildStdin").finish_non_exhaustive()
    }
}
