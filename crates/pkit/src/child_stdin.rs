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
/// Dropping it, or `shutdown`, sends end of file.
pub struct ChildStdin {
    tx: sys::PipeSender,
}

impl ChildStdin {
    pub(crate) fn new(fd: sys::OwnedFd) -> io::Result<ChildStdin> {
        Ok(ChildStdin {
            tx: sys::pipe_sender(fd)?,
        })
    }
}

impl AsyncWrite for ChildStdin {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tx).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tx).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tx).poll_shutdown(cx)
    }
}

impl fmt::Debug for ChildStdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildStdin").finish_non_exhaustive()
    }
}
