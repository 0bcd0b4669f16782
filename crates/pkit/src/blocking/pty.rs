//! The terminal of a [`Command::pty`](crate::Command::pty) session, for
//! blocking code.

use std::fmt;
use std::io;

use tokio::io::AsyncWriteExt;

use super::block_on;
use crate::error::Result;

/// The typing side of a pty session's terminal
/// ([`RunningProcess::pty`](super::RunningProcess::pty)), blocking: the
/// same operations as [`crate::Pty`], and [`std::io::Write`] for any bytes.
/// Cheap to clone; every clone is the same terminal.
#[derive(Clone)]
pub struct Pty {
    pub(crate) inner: crate::Pty,
}

impl Pty {
    /// Types `line` and Enter ([`crate::Pty::write_line`]).
    pub fn write_line(&self, line: &str) -> Result<()> {
        block_on("Pty::write_line", self.inner.write_line(line))
    }

    /// Types Ctrl and `key`, as the terminal defines it
    /// ([`crate::Pty::send_control`]).
    pub fn send_control(&self, key: char) -> Result<()> {
        block_on("Pty::send_control", self.inner.send_control(key))
    }

    /// Changes the terminal's size; SIGWINCH follows
    /// ([`crate::Pty::resize`]).
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        self.inner.resize(rows, cols)
    }

    /// The terminal's size: (rows, cols).
    pub fn size(&self) -> Result<(u16, u16)> {
        self.inner.size()
    }

    /// The async terminal this one wraps.
    pub fn as_async(&self) -> &crate::Pty {
        &self.inner
    }
}

impl io::Write for Pty {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        block_on("Pty::write", self.inner.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for Pty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pty").finish_non_exhaustive()
    }
}
