//! The terminal of a [`Command::pty`](crate::Command::pty) session, for
//! blocking code.

use std::fmt;
use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::runtime::enter_for_drop;
use super::{block_on, block_on_made};
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
    ///
    /// # Errors
    ///
    /// Those of [`Pty::write_line`](crate::Pty::write_line).
    pub fn write_line(&self, line: &str) -> Result<()> {
        block_on("Pty::write_line", self.inner.write_line(line))
    }

    /// Types Ctrl and `key`, as the terminal defines it
    /// ([`crate::Pty::send_control`]).
    ///
    /// # Errors
    ///
    /// Those of [`Pty::send_control`](crate::Pty::send_control).
    pub fn send_control(&self, key: char) -> Result<()> {
        block_on("Pty::send_control", self.inner.send_control(key))
    }

    /// Changes the terminal's size; SIGWINCH follows
    /// ([`crate::Pty::resize`]).
    ///
    /// # Errors
    ///
    /// Those of [`Pty::resize`](crate::Pty::resize).
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        self.inner.resize(rows, cols)
    }

    /// The terminal's size: (rows, cols).
    ///
    /// # Errors
    ///
    /// Those of [`Pty::size`](crate::Pty::size).
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
        block_on_made("Pty::write", self.inner.write(buf))
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

/// The whole master side of a [`Command::pty_raw`](crate::Command::pty_raw)
/// session, blocking ([`RunningProcess::take_pty_master`](super::RunningProcess::take_pty_master)):
/// [`std::io::Read`] of everything the program writes to its terminal
/// (stdout and stderr alike, with the terminal's `\r\n` line ends and
/// echo; a read returns 0 once the program and every descendant have
/// closed the terminal) and [`std::io::Write`] of what is typed;
/// [`pty`](Self::pty) has the controls. The blocking form of
/// [`crate::PtyMaster`].
///
/// Reading and typing from two threads: type through a [`Pty`] clone
/// ([`pty`](Self::pty)) on one thread while this is read on another.
/// Dropping it closes pkit's master side (the program's terminal hangs up
/// once every copy is gone: the program gets SIGHUP).
///
/// ```
/// # // Pseudo-terminals are Linux-only so far.
/// # if !cfg!(target_os = "linux") { return Ok(()); }
/// use std::io::{Read, Write};
///
/// let group = pkit::blocking::Group::new()?;
/// let mut p = group.start(&pkit::Command::new("sh").args(["-c", "read x; echo got $x"]).pty_raw(24, 80))?;
/// let mut tty = p.take_pty_master().expect("a raw pty session");
/// tty.write_all(b"it\r")?;
/// let mut seen = String::new();
/// tty.read_to_string(&mut seen)?;
/// // The terminal's echo of what was typed, then the answer.
/// assert_eq!(seen, "it\r\ngot it\r\n");
/// assert!(p.wait()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PtyMaster {
    inner: Option<crate::PtyMaster>,
}

impl PtyMaster {
    pub(crate) fn new(inner: crate::PtyMaster) -> PtyMaster {
        PtyMaster { inner: Some(inner) }
    }

    /// The terminal's controls (resize, control characters, typing from
    /// another thread).
    pub fn pty(&self) -> Pty {
        Pty {
            inner: self.get().pty().clone(),
        }
    }

    fn get(&self) -> &crate::PtyMaster {
        self.inner.as_ref().expect("present until drop")
    }

    fn get_mut(&mut self) -> &mut crate::PtyMaster {
        self.inner.as_mut().expect("present until drop")
    }
}

impl io::Read for PtyMaster {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        block_on_made("PtyMaster::read", self.get_mut().read(buf))
    }
}

impl io::Write for PtyMaster {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        block_on_made("PtyMaster::write", self.get_mut().write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PtyMaster {
    fn drop(&mut self) {
        enter_for_drop(self.inner.take());
    }
}

impl fmt::Debug for PtyMaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::PtyMaster")
            .finish_non_exhaustive()
    }
}
