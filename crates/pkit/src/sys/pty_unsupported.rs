//! Pseudo-terminals where pkit has none yet (the BSDs but FreeBSD: a
//! controlling terminal takes `TIOCSCTTY` in the child, which
//! `posix_spawn` can't issue, and the portable backend's spawn trampoline,
//! which does on macOS and FreeBSD, is not built here).
//! [`refusal`] says so before anything is opened; the rest exists only so
//! that the layers above type-check, and is never reached.

use std::io;
use std::task::{Context, Poll};

use tokio::io::ReadBuf;

use super::{ChildIo, Mechanism, OwnedFd, Special};

/// Why a pty session can't start here.
pub(crate) fn refusal() -> Option<(Mechanism, &'static str)> {
    Some((
        Mechanism::ProcessGroup,
        "pseudo-terminal sessions are implemented on Linux, macOS, FreeBSD and Windows only so \
         far: here a controlling terminal takes TIOCSCTTY in the child, which posix_spawn can't \
         issue, and pkit has no spawn trampoline here to issue it",
    ))
}

/// No master can exist here.
pub(crate) type MasterEnd = OwnedFd;

/// Never succeeds (see [`refusal`]).
pub(crate) fn open(_rows: u16, _cols: u16) -> io::Result<(MasterEnd, [ChildIo; 3])> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Never succeeds (see [`refusal`]).
pub(crate) fn split(_master: MasterEnd) -> io::Result<(PtyIo, PtyIo)> {
    Err(io::ErrorKind::Unsupported.into())
}

/// A pty master: none can exist here.
pub(crate) enum PtyIo {}

impl PtyIo {
    pub(crate) fn set_size(&self, _rows: u16, _cols: u16) -> io::Result<()> {
        match *self {}
    }

    pub(crate) fn size(&self) -> io::Result<(u16, u16)> {
        match *self {}
    }

    pub(crate) fn special_char(&self, _which: Special) -> Result<Option<u8>, &'static str> {
        match *self {}
    }

    pub(crate) fn unread(&self) -> usize {
        match *self {}
    }

    #[allow(clippy::ptr_arg)] // the Unix function's signature
    pub(crate) async fn drain(&self, _buf: &mut Vec<u8>) {
        match *self {}
    }

    pub(crate) fn poll_read_buf(
        &self,
        _cx: &mut Context<'_>,
        _buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match *self {}
    }

    pub(crate) fn poll_write_bytes(
        &self,
        _cx: &mut Context<'_>,
        _bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        match *self {}
    }

    pub(crate) async fn write_all(&self, _bytes: &[u8]) -> io::Result<()> {
        match *self {}
    }
}
