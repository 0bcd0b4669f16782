//! Where a reader's bytes come from: a pipe, or a pseudo-terminal's master.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::sys::PtyIo;
use crate::sys::{OwnedFd, PipeReceiver, TextBytes};

/// A stream a reader reads.
pub(crate) enum Source {
    /// The parent's end of an output pipe.
    Pipe(PipeReceiver),
    /// A pty's master: `EIO` once no slave is left open is its end of file.
    Pty(PtyIo),
}

impl Source {
    /// A pipe can be grown and handed to a blocking thread; a pty can't.
    pub(crate) fn is_pipe(&self) -> bool {
        matches!(self, Source::Pipe(_))
    }

    /// Grows a pipe's buffer (nothing for a pty).
    pub(crate) fn grow(&self) {
        if let Source::Pipe(rx) = self {
            crate::sys::grow_receiver(rx);
        }
    }

    /// How many bytes the source holds unread now, `None` where that can't
    /// be told (a Windows pipe): see `owed.rs` and `owing.rs`.
    pub(crate) fn unread(&self) -> Option<usize> {
        match self {
            Source::Pipe(rx) => crate::sys::pipe_unread(rx)
                .ok()
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            Source::Pty(pty) => Some(pty.unread()),
        }
    }

    /// Takes what is already buffered (see `sys::drain_receiver`: on
    /// Windows, what is still on its way too).
    pub(crate) async fn drain(&mut self, buf: &mut Vec<u8>) {
        match self {
            Source::Pipe(rx) => {
                crate::sys::drain_receiver(rx, buf).await;
            }
            Source::Pty(pty) => pty.drain(buf).await,
        }
    }

    /// The pipe's descriptor in non-blocking mode (`None` for a pty).
    pub(crate) fn into_pipe_fd(self) -> Option<io::Result<OwnedFd>> {
        match self {
            Source::Pipe(rx) => Some(crate::sys::receiver_into_fd(rx)),
            Source::Pty(_) => None,
        }
    }
}

impl AsyncRead for Source {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Source::Pipe(rx) => Pin::new(rx).poll_read(cx, buf),
            Source::Pty(pty) => pty.poll_read_buf(cx, buf),
        }
    }
}

/// Where a reader's next read goes: an unbounded capture (validated as
/// text when it is wanted as text), or a buffer of bytes.
pub(crate) enum Target<'a> {
    Text(&'a mut TextBytes),
    Bytes(&'a mut Vec<u8>),
}

impl Target<'_> {
    /// Makes room for `n` more bytes; the length before the read.
    pub(crate) fn reserve(&mut self, n: usize) -> usize {
        match self {
            Target::Text(t) => {
                t.reserve(n);
                t.len()
            }
            Target::Bytes(b) => {
                b.reserve(n);
                b.len()
            }
        }
    }

    /// One read from `rx`, appended. Cancel-safe, as `read_buf`.
    pub(crate) async fn read(&mut self, rx: &mut Source) -> io::Result<usize> {
        match self {
            Target::Text(t) => t.read_from(rx).await,
            Target::Bytes(b) => rx.read_buf(*b).await,
        }
    }
}

/// How many big reads a reader makes in a row without waiting (for its
/// pipe, or for room in the line queue) before it yields to the runtime's
/// other tasks. Not one: on a multi-thread runtime each yield wakes another
/// worker (the yielded task is queued where it can be stolen), and a
/// producer faster than its reader makes such reads back to back.
pub(super) const BIG_READS_PER_YIELD: u32 = 4;

/// The count of big reads in a row without a wait after one more turn of
/// a reader: none after a turn that waited.
pub(super) fn unwaited_after(before: u32, big_read: bool, waited: bool) -> u32 {
    if waited {
        0
    } else {
        before + u32::from(big_read)
    }
}

/// `fut`'s output; sets `waited` when one of its polls returned pending
/// (the task was suspended in it, and other tasks could run).
pub(super) async fn noting_wait<F: std::future::Future>(fut: F, waited: &mut bool) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let out = fut.as_mut().poll(cx);
        *waited |= out.is_pending();
        out
    })
    .await
}
