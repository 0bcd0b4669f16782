//! Pseudo-terminal sessions on Windows: a ConPTY pseudo console.
//!
//! `CreatePseudoConsole` starts a console host (`conhost.exe`, a child of
//! the owner, outside the group's job) that reads what is typed from one
//! pipe and writes its rendering of the screen, as text with VT escape
//! sequences, into another. pkit keeps the other ends of both pipes (the
//! "master"); the program is created with the console in its startup
//! attributes (`pty_spawn.rs`) and with no standard handles of its own, so
//! that Windows gives it the console's.
//!
//! The output pipe reaches its end only when the console host exits, not
//! when the program does: when the program exits, a thread of the
//! session's closes the console (`console::close_at_exit`); the host then writes
//! what it still has, ends any process still attached to the console, and
//! exits. The output must be read meanwhile (a full pipe blocks the host,
//! and with it the close): a pumped session's reader reads it to its end;
//! a raw session's master must be read, or dropped.
//!
//! On a Windows older than ConPTY (10, version 1809) a pty session is
//! refused (`console.rs` looks the calls up at run time).

use std::io;
use std::os::windows::io::OwnedHandle;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::ReadBuf;
use tokio::net::windows::named_pipe::NamedPipeServer;

use super::super::{Mechanism, Special};
use super::console::{api, Console};
use super::io::{drain_chunks, named_pipe, ChildIo};
use super::pipe_receiver;

/// Why a pty session can't start here: a Windows without ConPTY.
pub(crate) fn refusal() -> Option<(Mechanism, &'static str)> {
    api().is_none().then_some((
        Mechanism::JobObject,
        "this Windows has no ConPTY (CreatePseudoConsole: Windows 10 version 1809 or later)",
    ))
}

/// The owner's side of a session: the pipe it types into, the pipe it
/// reads the console's output from, and the console.
pub(crate) struct MasterEnd {
    input: OwnedHandle,
    output: OwnedHandle,
    console: Arc<Console>,
}

/// Opens a pseudo console of `rows` x `cols`: the master, and what the
/// child's stdin, stdout and stderr are (the console, taken by the spawn).
pub(crate) fn open(rows: u16, cols: u16) -> io::Result<(MasterEnd, [ChildIo; 3])> {
    let (input, console_input) = named_pipe(true)?;
    let (output, console_output) = named_pipe(false)?;
    // No spawn of pkit's may inherit the console's pipe ends meanwhile.
    let console = {
        let _inheritance = super::spawn::inheritance_lock();
        Arc::new(Console::create(
            rows,
            cols,
            &console_input,
            &console_output,
        )?)
    };
    let master = MasterEnd {
        input,
        output,
        console: console.clone(),
    };
    let ends = [
        ChildIo::Console(console.clone()),
        ChildIo::Console(console.clone()),
        ChildIo::Console(console),
    ];
    Ok((master, ends))
}

/// The master as (the typing side, the reading side).
pub(crate) fn split(master: MasterEnd) -> io::Result<(PtyIo, PtyIo)> {
    let typing = PtyIo {
        pipe: pipe_receiver(master.input)?,
        console: master.console.clone(),
    };
    let reading = PtyIo {
        pipe: pipe_receiver(master.output)?,
        console: master.console,
    };
    Ok((typing, reading))
}

/// Why `Ctrl` and this key can't be typed with its Unix meaning here, if
/// it can't; Ctrl-C is the console's own (see [`PtyIo::special_char`]).
fn refused_control(which: Special) -> Option<&'static str> {
    match which {
        Special::Intr => None,
        Special::Eof => Some(
            "a Windows console has no end-of-file character (many programs take Ctrl-Z and \
             Enter as the end of input: write_line(\"\\u{1a}\"))",
        ),
        Special::Susp => Some("a Windows console can't suspend a program (no job control)"),
        Special::Quit => Some("a Windows console has no quit character"),
    }
}

/// One pipe of a session's master, registered with the runtime: the
/// typing side writes the input pipe, the reading side reads the output
/// pipe (whose end, `ERROR_BROKEN_PIPE`, is the end of the stream).
pub(crate) struct PtyIo {
    pipe: NamedPipeServer,
    console: Arc<Console>,
}

/// How long a drain waits for the end of the output at most. The end
/// comes once the console is closed (at the program's exit), after the
/// host wrote its last screen, which may take a while under load: a quiet
/// spell is no sign of the end here.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
impl PtyIo {
    /// Resizes the console (`ResizePseudoConsole`): the program sees a
    /// window-size event if it reads console input events.
    pub(crate) fn set_size(&self, rows: u16, cols: u16) -> io::Result<()> {
        self.console.resize(rows, cols)
    }

    /// The size last set: (rows, cols).
    pub(crate) fn size(&self) -> io::Result<(u16, u16)> {
        Ok(self.console.size())
    }

    /// The byte to type for `which`: `^C` for the interrupt (the console
    /// turns it into CTRL_C_EVENT while the program keeps processed input
    /// on, else the program reads it); `Err` with the reason for what a
    /// Windows console has no character for.
    pub(crate) fn special_char(&self, which: Special) -> Result<Option<u8>, &'static str> {
        match refused_control(which) {
            Some(reason) => Err(reason),
            None => Ok(Some(0x03)),
        }
    }

    /// None counted: as for a pipe (see `pipe_unread`).
    pub(crate) fn unread(&self) -> usize {
        0
    }

    /// Reads what the console still sends, until the end of the pipe
    /// (the console is closed once the program exited, which ends it),
    /// [`DRAIN_LIMIT`], or `DRAIN_BUDGET` bytes (see [`drain_chunks`]).
    pub(crate) async fn drain(&self, buf: &mut Vec<u8>) {
        let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
        drain_chunks(buf, || deadline, |cx, chunk| self.poll_read_buf(cx, chunk)).await;
    }

    pub(crate) fn poll_read_buf(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.pipe.poll_read_ready(cx))?;
            match self.pipe.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                // The console host closed its end: the end of the stream.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    pub(crate) fn poll_write_bytes(
        &self,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.pipe.poll_write_ready(cx))?;
            match self.pipe.try_write(bytes) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    /// Writes all of `bytes`, waiting while the pipe is full (any number
    /// of tasks may wait at once).
    pub(crate) async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            self.pipe.writable().await?;
            match self.pipe.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
