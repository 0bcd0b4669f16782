//! Terminal settings (termios) and the terminal watcher's own process
//! setup: the calls `pkit run --pty` needs to put the user's terminal in raw
//! mode and to get it back, even when pkit itself can't.
//!
//! Raw: the settings are the C library's `termios` (handed to the watcher
//! as its bytes, and made raw by the C library's `cfmakeraw`); rustix's
//! `Termios` is a struct of its own, so `tcgetattr`/`tcsetattr` on them
//! stay libc.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

/// A terminal's settings, as `tcgetattr` read them.
#[derive(Clone, Copy)]
pub struct Settings(libc::termios);

impl Settings {
    /// How many bytes [`Settings::as_bytes`] gives.
    pub const LEN: usize = std::mem::size_of::<libc::termios>();

    /// The settings of the terminal on `fd`; `None` if it is not one.
    pub fn of(fd: RawFd) -> Option<Settings> {
        let mut t = MaybeUninit::<libc::termios>::zeroed();
        // SAFETY: isatty/tcgetattr inspect `fd` and fill `t`, a termios.
        if unsafe { libc::isatty(fd) != 1 || libc::tcgetattr(fd, t.as_mut_ptr()) != 0 } {
            return None;
        }
        // SAFETY: filled by tcgetattr above.
        Some(Settings(unsafe { t.assume_init() }))
    }

    /// Gives the terminal on `fd` these settings, at once.
    pub fn apply(&self, fd: RawFd) -> io::Result<()> {
        loop {
            // SAFETY: tcsetattr reads an initialised termios.
            if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &self.0) } == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// These settings in raw mode (`cfmakeraw`): no echo, no line editing,
    /// no signal characters, no output processing.
    pub fn raw(&self) -> Settings {
        let mut t = self.0;
        // SAFETY: cfmakeraw edits the termios it is given.
        unsafe { libc::cfmakeraw(&mut t) };
        Settings(t)
    }

    /// The raw bytes, for the watcher: the same executable reads them back
    /// (so the same layout).
    pub fn as_bytes(&self) -> &[u8] {
        let p = (&self.0 as *const libc::termios).cast::<u8>();
        // SAFETY: a plain C struct of LEN bytes, read as bytes for as long
        // as `self` is borrowed.
        unsafe { std::slice::from_raw_parts(p, Self::LEN) }
    }

    /// Settings from [`Settings::as_bytes`]'s bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Settings> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let mut t = MaybeUninit::<libc::termios>::zeroed();
        // SAFETY: LEN bytes into a termios, a plain C struct for which any
        // bytes are a valid value.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), t.as_mut_ptr().cast::<u8>(), Self::LEN);
            Some(Settings(t.assume_init()))
        }
    }
}

/// Whether pkit may change the terminal on `fd` now: it is not pkit's
/// controlling terminal, or pkit's process group is its foreground group
/// (changing it from the background would take it from the shell's job).
pub fn may_change(fd: RawFd) -> bool {
    // Raw: `fd` is a bare number (rustix wants a BorrowedFd), and rustix's
    // getpgrp panics on the 0 this compares (see clippy.toml).
    // SAFETY: tcgetpgrp and getpgrp only inspect.
    unsafe {
        let fg = libc::tcgetpgrp(fd);
        fg < 0 || fg == libc::getpgrp()
    }
}

/// The watcher ignores what a terminal or a shell's job control sends
/// (it must outlive pkit, and act from the background).
pub fn ignore_job_signals() {
    for s in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGPIPE,
    ] {
        // Raw: rustix has no safe sigaction.
        // SAFETY: sets a valid signal's disposition to "ignore".
        unsafe {
            libc::signal(s, libc::SIG_IGN);
        }
    }
}

/// Names this process (`comm`, what `ps` shows) on Linux. Elsewhere `ps`
/// shows the executable with its arguments (the watcher's hidden one
/// names it), and this does nothing.
pub fn set_name(name: &std::ffi::CStr) {
    // PR_SET_NAME: names the calling thread (cut at 16 bytes), the main
    // thread's name being the one `ps` shows.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::set_name(name);
    #[cfg(not(target_os = "linux"))]
    let _ = name;
}
