//! Pseudo-terminal sessions: [`Command::pty`](crate::Command::pty) runs a program on a terminal
//! of its own, for programs that behave differently without one (colours,
//! prompts, line editing, progress bars, password questions, `isatty`
//! checks).
//!
//! The child gets the terminal's slave side as stdin, stdout and stderr,
//! leads a new session and has the terminal as its controlling terminal;
//! it stays in its group's container, so it and everything it starts die
//! with the group as usual. pkit keeps the master side:
//!
//! - What the program writes to the terminal (stdout and stderr alike, in
//!   the order written) is read like a piped stdout: captured into the
//!   [`Output`](crate::Output), split into [`lines`](crate::RunningProcess::lines),
//!   matched by [`wait_for_line`](crate::RunningProcess::wait_for_line).
//!   It is terminal output: lines end with `\r\n` (the line splitter drops
//!   the `\r`), what is typed is echoed unless the program turns echo off,
//!   and many programs add escape sequences;
//!   [`DecoderFactory::utf8_strip_vt`](crate::DecoderFactory::utf8_strip_vt)
//!   removes those before lines are split.
//! - What is typed goes through [`Pty`] ([`RunningProcess::pty`](crate::RunningProcess::pty)):
//!   [`write_line`](Pty::write_line), [`send_control`](Pty::send_control)
//!   (Ctrl-C as the terminal's own interrupt character),
//!   [`resize`](Pty::resize) (the program gets SIGWINCH), or any bytes as
//!   an [`AsyncWrite`].
//! - With [`Command::pty_raw`](crate::Command::pty_raw) pkit reads nothing, and
//!   [`RunningProcess::take_pty_master`](crate::RunningProcess::take_pty_master) hands over the master side as one
//!   `AsyncRead + AsyncWrite`: for relaying a terminal byte for byte.
//!
//! ```
//! # async fn demo() -> pkit::Result<()> {
//! use std::time::Duration;
//!
//! // An interactive shell (its stdin is a terminal), with a prompt that
//! // ends its line, so that waiting for the prompt is waiting for a line.
//! let mut sh = pkit::Command::new("sh")
//!     .env("PS1", "ready\n")
//!     .pty(24, 80)
//!     .stream_lines()
//!     .decoder(pkit::DecoderFactory::utf8_strip_vt())
//!     .start()?;
//! let limit = Duration::from_secs(10);
//! sh.wait_for_line(|l| l.text == "ready", limit).await?;
//! let tty = sh.pty().expect("a pty session");
//! tty.write_line("test -t 0 && echo on a terminal").await?;
//! // The terminal echoes the typed line first; then comes the answer.
//! sh.wait_for_line(|l| l.text == "on a terminal", limit).await?;
//! tty.send_control('d').await?; // end of input: the shell exits
//! assert!(sh.wait().await?.success());
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! **Mechanisms.** Under cgroup v2 a pty session is contained like any
//! process. Under the process-group mechanism the session's leader must be
//! the group's process-group leader (a new session always starts a new
//! process group, numbered by its leader's pid): a pty command runs only
//! as the first process of its group (every verb, and
//! [`Command::start`](crate::Command::start), use a fresh group), and once it leads, no other
//! process can join that group. Either start is refused with
//! [`Error::Unsupported`]. And as always under
//! process groups, a descendant that leaves the process group escapes the
//! teardown: an interactive shell with job control does that for every
//! job it runs (use cgroup v2, or a non-interactive `sh -c`).
//!
//! **Platforms.** Linux, macOS and FreeBSD; neither way forks the owner.
//! Linux's own spawner takes the terminal with `setsid` and `TIOCSCTTY`
//! in the child. The portable `posix_spawn` backend (macOS, FreeBSD, and
//! Linux under `PKIT_MECHANISM=portable`) starts the session's program
//! through its spawn trampoline (this program's executable, run again
//! before the program, as for spawn options such as
//! [`Command::uid`](crate::Command::uid)), which calls `setsid` and
//! `TIOCSCTTY` before it executes the program; a failed step is
//! [`Error::ChildSetup`] naming it
//! ([`ChildStep::Session`](crate::ChildStep::Session),
//! [`ChildStep::Terminal`](crate::ChildStep::Terminal)). Where the
//! trampoline can't be used (pkit not linked into the main executable, an
//! executable that can't be run again, a set-user-id one, musl's C
//! library, `PKIT_SPAWN_TRAMPOLINE=off`) Linux still starts it, with
//! `POSIX_SPAWN_SETSID` and the terminal opened again in the child, which
//! Linux makes the new session's controlling terminal; macOS and FreeBSD
//! refuse it with [`Error::Unsupported`], saying why (only `TIOCSCTTY`
//! makes a controlling terminal there). The macOS and FreeBSD builds are
//! type-checked, never run: the trampoline's path is the one Linux's
//! portable backend runs in CI.
//!
//! **Windows** (10 version 1809 or later; refused with
//! [`Error::Unsupported`] before): a ConPTY pseudo console. The program
//! is created on the console (in its group's Job Object like every
//! child) and gets the console as its stdin, stdout and stderr; the
//! console host (`conhost.exe`) is a child of the owner, outside the job,
//! and exits when the session ends. What differs from a Unix terminal:
//!
//! - The output is the console's rendering of its screen, not the bytes
//!   the program wrote: VT escape sequences (the screen cleared first,
//!   the cursor hidden and shown, a window title), lines wrapped at the
//!   width, and a run of blanks may come as a cursor movement. Strip with
//!   [`DecoderFactory::utf8_strip_vt`](crate::DecoderFactory::utf8_strip_vt)
//!   and match lines loosely (`contains`).
//! - The session ends when the program exits: pkit then closes the
//!   console, whose host writes what it still has and ends any process
//!   still attached to it (a descendant that needs to run on must not
//!   stay on the console). Until then the output stays open, whatever
//!   the program does with its handles.
//! - [`send_control`](Pty::send_control): `'c'` types `^C`, which the
//!   console turns into a CTRL_C_EVENT for the programs on it (unless a
//!   program turned processed input off; then it reads the byte). A
//!   console has no end-of-file, suspend or quit character: `'d'`, `'z'`
//!   and `'\\'` are [`Error::Unsupported`] (many programs take Ctrl-Z and
//!   Enter as the end of input: `write_line("\u{1a}")`). Other letters
//!   type their control character.
//! - A line typed with [`write_line`](Pty::write_line) is echoed while the
//!   program reads in the console's line mode, its default.
//! - [`resize`](Pty::resize) is `ResizePseudoConsole` (the program sees a
//!   window-size event if it reads console input events); where that is
//!   not implemented (Wine) it is [`Error::Unsupported`].
//!   [`size`](Pty::size) is the size last set.
//! - A graceful stop (`shutdown`, a grace, `Signal::Term`) can't send a
//!   CTRL_BREAK to a program on a console of its own: it gets no warning
//!   and is terminated with the rest of the tree, at once when no other
//!   member of the group can take the break, else once the grace is over
//!   (type Ctrl-C first to ask it to stop).
//! - A `.bat` or `.cmd` file is refused ([`Error::Unsupported`]): pkit
//!   builds the command line itself here and does not quote arguments
//!   for `cmd.exe`.
//! - A raw session's master must be read (or dropped): the console host
//!   waits while its output pipe is full, and so does the session's end.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{Error, Result};
use crate::sys::{MasterEnd, Mechanism, PtyIo, Special};

/// The typing side of a [`Command::pty`](crate::Command::pty) session's terminal: an
/// [`AsyncWrite`] of the bytes a user would type, and the terminal's
/// controls. Cheap to clone; every clone is the same terminal, and
/// [`write_line`](Self::write_line) and [`send_control`](Self::send_control)
/// may be called from several tasks at once (as an `AsyncWrite`, write from
/// one task at a time, as with any shared writer). It stays usable after
/// the process exits.
#[derive(Clone)]
pub struct Pty {
    io: Arc<PtyIo>,
}

/// The mechanism a running session's refusals name: only Windows refuses
/// a key or a resize once a session runs (the Unix `PtyIo` never does),
/// and every group there is a job object.
const REFUSING_MECHANISM: Mechanism = Mechanism::JobObject;

impl Pty {
    /// Types `line` and Enter (a carriage return, which the terminal turns
    /// into the line feed a program reads unless the program switched that
    /// off, as a real keyboard's Enter). The terminal echoes it into the
    /// output unless the program turned echo off.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when writing to the terminal fails (the session's master
    /// was closed).
    pub async fn write_line(&self, line: &str) -> Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\r');
        self.type_bytes(&bytes).await
    }

    /// Types Ctrl and `key`: for `'c'`, `'d'`, `'z'` and `'\\'` the
    /// terminal's own interrupt (INTR: SIGINT to the foreground process
    /// group), end-of-file (EOF), suspend (SUSP: SIGTSTP) and quit (QUIT:
    /// SIGQUIT) characters as the program has set them (`^C`, `^D`, `^Z`,
    /// `^\` unless changed); for other letters and `@[]^_`, that control
    /// character. A key the program disabled (e.g. `stty intr undef`), or
    /// one that has no control character, is [`Error::InvalidInput`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a key the program disabled or
    /// that has no control character; [`Error::Unsupported`] on Windows
    /// for `'d'`, `'z'` and `'\\'` (a console has no such characters: see
    /// the [module's doc](crate::pty)); [`Error::Io`] when reading the
    /// terminal's settings or writing fails.
    pub async fn send_control(&self, key: char) -> Result<()> {
        let special = match key.to_ascii_lowercase() {
            'c' => Some(Special::Intr),
            'd' => Some(Special::Eof),
            'z' => Some(Special::Susp),
            '\\' => Some(Special::Quit),
            _ => None,
        };
        let byte = match special {
            Some(which) => match self.io.special_char(which) {
                Ok(Some(byte)) => byte,
                Ok(None) => {
                    return Err(Error::InvalidInput(format!(
                        "Ctrl-{key}: the program disabled it"
                    )))
                }
                Err(reason) => {
                    return Err(Error::Unsupported {
                        operation: "send_control",
                        mechanism: REFUSING_MECHANISM,
                        reason: reason.into(),
                    })
                }
            },
            None => match key.to_ascii_uppercase() {
                c @ ('@'..='_') => c as u8 & 0x1f,
                _ => {
                    return Err(Error::InvalidInput(format!(
                        "Ctrl-{key:?} is not a control character"
                    )))
                }
            },
        };
        self.type_bytes(&[byte]).await
    }

    /// Changes the terminal's size; the kernel sends SIGWINCH to the
    /// terminal's foreground process group (Windows: a window-size event
    /// for a program that reads console input events). A size of 0 is
    /// [`Error::InvalidInput`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for 0 rows or columns (on Windows, also
    /// above 32767); [`Error::Unsupported`] where the OS can't resize a
    /// pseudo console (Wine); [`Error::Io`] when the OS refuses the new
    /// size, or (Windows) the session has ended.
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        check_size(rows, cols)?;
        self.io.set_size(rows, cols).map_err(|e| match e.kind() {
            io::ErrorKind::Unsupported if cfg!(windows) => Error::Unsupported {
                operation: "resize",
                mechanism: REFUSING_MECHANISM,
                reason: e.to_string(),
            },
            _ => Error::io("resizing the terminal", e),
        })
    }

    /// The terminal's size: (rows, cols).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the OS can't report the size.
    pub fn size(&self) -> Result<(u16, u16)> {
        self.io
            .size()
            .map_err(|e| Error::io("reading the terminal size", e))
    }

    async fn type_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.io
            .write_all(bytes)
            .await
            .map_err(|e| Error::io("writing to the terminal", e))
    }
}

impl AsyncWrite for Pty {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_write_bytes(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl std::fmt::Debug for Pty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pty").finish_non_exhaustive()
    }
}

/// The whole master side of a [`Command::pty_raw`](crate::Command::pty_raw) session: an
/// [`AsyncRead`] of everything the program writes to its terminal (it ends
/// once the program and every descendant closed the terminal) and an
/// [`AsyncWrite`] of what is typed; [`pty`](Self::pty) has the controls.
pub struct PtyMaster {
    read: PtyIo,
    pty: Pty,
}

impl PtyMaster {
    /// The terminal's controls (resize, control characters).
    pub fn pty(&self) -> &Pty {
        &self.pty
    }
}

impl AsyncRead for PtyMaster {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.read.poll_read_buf(cx, buf)
    }
}

impl AsyncWrite for PtyMaster {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.pty.io.poll_write_bytes(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl std::fmt::Debug for PtyMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtyMaster").finish_non_exhaustive()
    }
}

/// A started pty session's master side, kept by its [`RunningProcess`](crate::RunningProcess).
pub(crate) struct PtySide {
    pty: Pty,
    /// `pty_raw`: the reading side, until taken.
    raw: Option<PtyIo>,
}

impl PtySide {
    /// The terminal, to type into and resize.
    pub(crate) fn pty(&self) -> Pty {
        self.pty.clone()
    }

    /// The whole master side of a raw session, once.
    pub(crate) fn take_master(&mut self) -> Option<PtyMaster> {
        let read = self.raw.take()?;
        Some(PtyMaster {
            read,
            pty: self.pty.clone(),
        })
    }
}

pub(crate) fn check_size(rows: u16, cols: u16) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Err(Error::InvalidInput(format!(
            "a terminal of {rows}x{cols}: rows and columns must be at least 1"
        )));
    }
    // A Windows console's size is two i16s.
    if cfg!(windows) && (rows > i16::MAX as u16 || cols > i16::MAX as u16) {
        return Err(Error::InvalidInput(format!(
            "a terminal of {rows}x{cols}: a Windows console has at most 32767 rows and columns"
        )));
    }
    Ok(())
}

/// The master side a process keeps, and the reader of its output unless
/// the session is raw.
pub(crate) fn attach(master: MasterEnd, raw: bool) -> io::Result<(PtySide, Option<PtyIo>)> {
    let (typing, reader) = crate::sys::split_pty(master)?;
    let pty = Pty {
        io: Arc::new(typing),
    };
    let (raw_side, pumped) = if raw {
        (Some(reader), None)
    } else {
        (None, Some(reader))
    };
    Ok((PtySide { pty, raw: raw_side }, pumped))
}
