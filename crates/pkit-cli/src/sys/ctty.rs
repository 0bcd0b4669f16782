//! pkit's controlling terminal (`/dev/tty`), whatever its stdio are: the
//! terminal whose foreground process group decides who may read it, and
//! which job Ctrl-C and Ctrl-Z reach.

use std::io;
use std::os::fd::OwnedFd;

/// pkit's controlling terminal, open (close-on-exec: the program never
/// gets this descriptor).
pub struct Ctty(OwnedFd);

impl Ctty {
    /// `/dev/tty`; `None` when pkit has no controlling terminal.
    pub fn open() -> Option<Ctty> {
        use rustix::fs::{open, Mode, OFlags};
        let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NONBLOCK;
        open("/dev/tty", flags, Mode::empty()).ok().map(Ctty)
    }

    /// The terminal's foreground process group. A 0 answer (no
    /// foreground group, or one led from outside this pid namespace) is
    /// `None` too.
    pub fn foreground(&self) -> Option<i32> {
        rustix::termios::tcgetpgrp(&self.0)
            .ok()
            .map(|pg| pg.as_raw_nonzero().get())
    }

    /// Makes `pgid` the terminal's foreground process group. pkit blocks
    /// SIGTTOU in this thread (every thread but the portable signal
    /// receiver, `sigpipe.rs`), so this works from the background too.
    pub fn set_foreground(&self, pgid: i32) -> io::Result<()> {
        let pgid = rustix::process::Pid::from_raw(pgid)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        rustix::termios::tcsetpgrp(&self.0, pgid)?;
        Ok(())
    }
}
