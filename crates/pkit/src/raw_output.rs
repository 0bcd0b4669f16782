//! [`Stdio::Raw`](crate::Stdio::Raw): a started process's stdout or
//! stderr as a raw [`AsyncRead`], for callers who want the bytes
//! themselves (a binary protocol, their own framing) instead of pkit's
//! capture or lines.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use crate::process::RunningProcess;

/// The read end of a started child's stdout or stderr set to
/// [`Stdio::Raw`](crate::Stdio::Raw): an [`AsyncRead`] with backpressure
/// (the child blocks once the pipe is full and nobody reads). It reads end
/// of file once the child and every descendant holding the pipe have
/// closed it. Dropping it closes the read end: the child's next write
/// fails (`EPIPE`, or death by SIGPIPE unless it ignores the signal), as
/// with `std` and `tokio` pipes.
pub struct ChildOutput {
    rx: tokio::net::unix::pipe::Receiver,
}

impl ChildOutput {
    pub(crate) fn new(fd: OwnedFd) -> io::Result<ChildOutput> {
        Ok(ChildOutput {
            rx: tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?,
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

impl RunningProcess {
    /// Takes the child's stdout as a raw [`AsyncRead`], when the command
    /// set `stdout(Stdio::Raw)`; `None` otherwise, or once taken.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use tokio::io::AsyncReadExt;
    /// use pkit::{Command, Stdio};
    ///
    /// let mut p = Command::new("printf").arg("\\001\\002\\003").stdout(Stdio::Raw).start()?;
    /// let mut bytes = Vec::new();
    /// p.take_stdout().expect("raw stdout").read_to_end(&mut bytes).await?;
    /// assert_eq!(bytes, [1, 2, 3]);
    /// assert!(p.wait().await?.success());
    /// # Ok(()) }
    /// ```
    pub fn take_stdout(&mut self) -> Option<ChildOutput> {
        self.raw_stdout.take()
    }

    /// Takes the child's stderr as a raw [`AsyncRead`], when the command
    /// set `stderr(Stdio::Raw)`; `None` otherwise, or once taken.
    pub fn take_stderr(&mut self) -> Option<ChildOutput> {
        self.raw_stderr.take()
    }
}
