//! Pseudo-terminals: opening a pair, sizing it, reading the terminal's
//! control characters, and the master side as non-blocking async I/O.
//!
//! The child gets the slave side as its stdin, stdout and stderr and makes
//! it its controlling terminal (`setsid` + `TIOCSCTTY`, in
//! `setup_steps.rs`, run by Linux's spawner or by the portable backend's
//! trampoline; on Linux without a trampoline, `unix/spawn_pty.rs`). The
//! parent keeps only the master side: once the child and every descendant
//! holding the slave have closed it, reading the master fails with `EIO`,
//! which is the end of the stream here, not an error.
//!
//! Linux, macOS and FreeBSD (the platforms with a trampoline); what
//! differs is marked: the slave is found by `TIOCGPTPEER` on Linux and by
//! its name elsewhere, and its settings are read through the master
//! elsewhere (one terminal there; Linux's master has settings of its own).
//! Only the Linux build is run: the others are type-checked.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use rustix::pty::OpenptFlags;
use rustix::termios::{SpecialCodeIndex, Winsize};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use super::Special;

/// Why a pty session can't start here: never, on Unix.
pub(crate) fn refusal() -> Option<(super::Mechanism, &'static str)> {
    None
}

/// The master side a session keeps: the pseudo-terminal's master.
pub(crate) type MasterEnd = OwnedFd;

/// Opens a new pseudo-terminal of `rows` x `cols`: the master, and the
/// slave as the child's stdin, stdout and stderr. All close-on-exec and
/// none a controlling terminal of this process; the master is
/// non-blocking.
pub(crate) fn open(rows: u16, cols: u16) -> io::Result<(MasterEnd, [super::ChildIo; 3])> {
    let (master, slave) = open_pair(rows, cols)?;
    let ends = [
        super::ChildIo::Fd(slave.try_clone()?),
        super::ChildIo::Fd(slave.try_clone()?),
        super::ChildIo::Fd(slave),
    ];
    Ok((master, ends))
}

/// The master twice, registered: (the typing side, the reading side).
pub(crate) fn split(master: MasterEnd) -> io::Result<(PtyIo, PtyIo)> {
    Ok((PtyIo::new(&master)?, PtyIo::new(&master)?))
}

/// (master, slave).
fn open_pair(rows: u16, cols: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    // Close-on-exec from the open on, so that no start on another thread
    // (std's included) can inherit the master. Linux: rustix opens
    // /dev/ptmx itself; FreeBSD: posix_openpt(2) takes O_CLOEXEC to
    // falloc (sys/kern/tty_pts.c).
    #[cfg(not(target_os = "macos"))]
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    // macOS: rustix has no CLOEXEC flag for it (not POSIX's), but Libc's
    // posix_openpt (stdlib/grantpt.c) is open("/dev/ptmx", flags), and
    // xnu's open1 (bsd/vfs/vfs_syscalls.c) sets FP_CLOEXEC for O_CLOEXEC
    // as it allocates the descriptor; ptmx_open checks no flag.
    #[cfg(target_os = "macos")]
    let flags = OpenptFlags::RDWR
        | OpenptFlags::NOCTTY
        | OpenptFlags::from_bits_retain(libc::O_CLOEXEC as u32);
    let master = rustix::pty::openpt(flags)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    #[cfg(target_os = "linux")]
    let peer = rustix::pty::ioctl_tiocgptpeer(&master, flags);
    // Elsewhere by its name, as on kernels before 4.13.
    #[cfg(not(target_os = "linux"))]
    let peer: rustix::io::Result<OwnedFd> = Err(rustix::io::Errno::NOSYS);
    let slave = match peer {
        Ok(fd) => fd,
        Err(_) => {
            let name = rustix::pty::ptsname(&master, Vec::new())?;
            rustix::fs::open(
                name.as_c_str(),
                rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?
        }
    };
    set_size(master.as_fd(), rows, cols)?;
    rustix::io::ioctl_fionbio(&master, true)?;
    Ok((above_stdio(master)?, above_stdio(slave)?))
}

/// A descriptor numbered 3 or above (this process may run with a closed
/// stdio descriptor, and the child's must not collide with its own).
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 3)?)
}

/// Sets the terminal's size (`TIOCSWINSZ` on the master): the kernel sends
/// SIGWINCH to the terminal's foreground process group when it changes.
fn set_size(master: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    rustix::termios::tcsetwinsize(
        master,
        Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(())
}

/// The terminal's size: (rows, cols).
fn size(master: BorrowedFd<'_>) -> io::Result<(u16, u16)> {
    let w = rustix::termios::tcgetwinsize(master)?;
    Ok((w.ws_row, w.ws_col))
}

/// The byte the terminal currently treats as `which` (e.g. `^C` for
/// INTR), read from its settings; the usual default when they can't be
/// read (the slave is gone). `None` when the program disabled it.
fn special_char(master: BorrowedFd<'_>, which: Special) -> Option<u8> {
    let (index, default) = match which {
        Special::Intr => (SpecialCodeIndex::VINTR, 0x03),
        Special::Eof => (SpecialCodeIndex::VEOF, 0x04),
        Special::Susp => (SpecialCodeIndex::VSUSP, 0x1a),
        Special::Quit => (SpecialCodeIndex::VQUIT, 0x1c),
    };
    // Linux: the slave's settings, not the master's own.
    #[cfg(target_os = "linux")]
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    #[cfg(target_os = "linux")]
    let Ok(slave) = rustix::pty::ioctl_tiocgptpeer(master, flags) else {
        return Some(default);
    };
    // Elsewhere master and slave are one terminal, with one set.
    #[cfg(not(target_os = "linux"))]
    let slave = master;
    match rustix::termios::tcgetattr(slave.as_fd()) {
        // _POSIX_VDISABLE (0) turns a special character off.
        Ok(t) => Some(t.special_codes[index]).filter(|&b| b != 0),
        Err(_) => Some(default),
    }
}

/// The master side of a pseudo-terminal, registered with the reactor:
/// `AsyncRead` (where `EIO`, the slave closed by everyone, is the end of
/// the stream) and `AsyncWrite`.
pub(crate) struct PtyIo {
    fd: AsyncFd<OwnedFd>,
}

impl PtyIo {
    /// Registers (a duplicate of) a non-blocking master descriptor.
    fn new(master: &OwnedFd) -> io::Result<PtyIo> {
        let dup = rustix::io::fcntl_dupfd_cloexec(master, 3)?;
        let interest = Interest::READABLE | Interest::WRITABLE;
        Ok(PtyIo {
            fd: super::unix::register(dup, interest)?,
        })
    }

    /// The registered master descriptor.
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }

    /// Sets the terminal's size (see [`set_size`]).
    pub(crate) fn set_size(&self, rows: u16, cols: u16) -> io::Result<()> {
        set_size(self.fd(), rows, cols)
    }

    /// The terminal's size: (rows, cols).
    pub(crate) fn size(&self) -> io::Result<(u16, u16)> {
        size(self.fd())
    }

    /// The byte the terminal treats as `which` (see [`special_char`]);
    /// never refused here (`Err` is another platform's "no such key").
    pub(crate) fn special_char(&self, which: Special) -> Result<Option<u8>, &'static str> {
        Ok(special_char(self.fd(), which))
    }

    /// The bytes the master holds unread now (`FIONREAD`; none when that
    /// can't be told). What the terminal has not yet passed to the master
    /// (its line discipline's work, done apart) is not counted.
    pub(crate) fn unread(&self) -> usize {
        rustix::io::ioctl_fionread(self.fd())
            .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Reads what the master already holds into `buf`, without waiting
    /// (at most 1 MiB, so a writer that never stops can't keep us here).
    pub(crate) async fn drain(&self, buf: &mut Vec<u8>) {
        let mut chunk = [0u8; 16 * 1024];
        while buf.len() < 1 << 20 {
            match read(self.fd(), &mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub(crate) fn poll_read_buf(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| read(fd.get_ref().as_fd(), unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }

    pub(crate) fn poll_write_bytes(
        &self,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| Ok(rustix::io::write(fd.get_ref(), bytes)?)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }
}

impl PtyIo {
    /// Writes all of `bytes`, waiting while the terminal's buffer is full
    /// (any number of tasks may wait at once).
    pub(crate) async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| Ok(rustix::io::write(fd.get_ref(), bytes)?)) {
                Ok(Ok(n)) => bytes = &bytes[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }
}

/// One read of the master: `EIO` (no slave left open) is the end of file.
fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::IO) => return Ok(0),
            Err(e) => return Err(e.into()),
        }
    }
}

impl AsyncRead for PtyIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().poll_read_buf(cx, buf)
    }
}

impl AsyncWrite for PtyIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_bytes(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
