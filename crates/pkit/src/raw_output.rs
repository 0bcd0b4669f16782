//! [`Stdio::Raw`](crate::Stdio::Raw): a started process's stdout or
//! stderr as a raw [`AsyncRead`], for callers who want the bytes
//! themselves (a binary protocol, their own framing) instead of pkit's
//! capture or lines.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use crate::sys::{OwnedFd, PipeReceiver};

/// The read end of a started child's stdout or stderr set to
/// [`Stdio::Raw`](crate::Stdio::Raw): an [`AsyncRead`] with backpressure
/// (the child blocks once the pipe is full and nobody reads). It reads end
/// of file once the child and every descendant holding the pipe have
/// closed it. Dropping it closes the read end: the child's next write
/// fails (`EPIPE`, or death by SIGPIPE unless it ignores the signal), as
/// with `std` and `tokio` pipes.
pub struct ChildOutput {
    rx: PipeReceiver,
}

impl ChildOutput {
    pub(crate) fn new(fd: OwnedFd) -> io::Result<ChildOutput> {
        Ok(ChildOutput {
            rx: crate::sys::pipe_receiver(fd)?,
        })
    }
}

impl AsyncRead for ChildOutput {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.rx).poll_read(cx, buf)
    }
}

impl fmt::Debug for ChildOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildOutput").finish_non_exhaustive()
    }
}
