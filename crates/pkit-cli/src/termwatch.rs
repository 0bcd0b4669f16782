//! The user's terminal in raw mode for `pkit run --pty`, and a watcher
//! that gives it back its settings if pkit can't (SIGKILL, a crash).
//!
//! Before switching the terminal to raw mode pkit starts its own
//! executable again (`/proc/self/exe`, a hidden mode: [`ARG`]) as the
//! watcher, with `posix_spawn` (std's spawn, no fork of pkit's address
//! space), in a process group of its own (a signal to pkit's job does not
//! reach it) and ignoring the terminal's and job control's signals. The
//! watcher gets the terminal on its stdout and, on its stdin, a pipe whose
//! write end only pkit holds (close-on-exec; pkit's children get only
//! their stdio). pkit writes the terminal's settings into it; when pkit
//! has put them back itself, it writes "done" and the watcher ends without
//! touching anything. If the pipe reaches its end without "done", pkit is
//! gone: the watcher puts the settings back and ends.
//!
//! While pkit is stopped (Ctrl-Z, its job stopped) the terminal has its
//! settings back and the watcher is told not to touch it; once pkit
//! continues in the foreground it reads them again (the user may have
//! changed them meanwhile), tells the watcher and goes raw again.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{ExitCode, Stdio};

use crate::sys::{self, TermSettings as Settings};
use crate::watcher::Watcher;

/// pkit's first argument when it runs as the watcher.
pub const ARG: &str = "__pkit-terminal-watcher";
/// Settings follow ([`Settings::LEN`] bytes); the watcher is armed.
const SAVE: u8 = b'S';
/// pkit stopped with the settings put back: leave the terminal alone.
const PAUSE: u8 = b'P';

/// The terminal on stdin in raw mode, its settings restored on drop (or by
/// the watcher, if pkit dies without dropping it).
pub struct Raw {
    saved: Settings,
    raw: bool,
    watcher: Option<Watcher>,
}

impl Raw {
    /// Switches the terminal on stdin to raw mode; `None` if stdin is not
    /// a terminal, pkit is not its foreground job, or it refuses.
    pub fn enter() -> Option<Raw> {
        if !sys::may_change(0) {
            return None;
        }
        let saved = Settings::of(0)?;
        // Raw mode still goes on without a watcher, but not silently: the
        // user learns that a killed pkit would leave the terminal raw.
        let watcher = match start_watcher(&saved) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!(
                    "pkit: warning: cannot start the terminal watcher ({e}): if pkit is \
                     killed, the terminal stays in raw mode (`stty sane` restores it)"
                );
                None
            }
        };
        if saved.raw().apply(0).is_err() {
            if let Some(w) = watcher {
                w.finish();
            }
            return None;
        }
        Some(Raw {
            saved,
            raw: true,
            watcher,
        })
    }

    /// Puts the terminal's settings back (pkit is about to stop).
    pub fn suspend(&mut self) {
        if !std::mem::replace(&mut self.raw, false) {
            return;
        }
        let _ = self.saved.apply(0);
        if let Some(w) = &mut self.watcher {
            w.send(&[PAUSE]);
        }
    }

    /// Raw mode again after [`Raw::suspend`], if pkit is in the foreground
    /// (its settings re-read first).
    pub fn resume(&mut self) {
        if self.raw || !sys::may_change(0) {
            return;
        }
        let Some(now) = Settings::of(0) else { return };
        self.saved = now;
        if let Some(w) = &mut self.watcher {
            arm(w, &now);
        }
        self.raw = now.raw().apply(0).is_ok();
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if self.raw {
            let _ = self.saved.apply(0);
        }
        if let Some(w) = self.watcher.take() {
            w.finish();
        }
    }
}

/// Starts the watcher, armed with `saved`; the error if it can't start
/// (raw mode goes on without one, with a warning).
fn start_watcher(saved: &Settings) -> std::io::Result<Watcher> {
    let tty = std::os::fd::AsFd::as_fd(&std::io::stdin()).try_clone_to_owned()?;
    let mut watcher = Watcher::start(
        std::process::Command::new("/proc/self/exe")
            .arg(ARG)
            .stdout(Stdio::from(tty))
            .stderr(Stdio::null())
            .process_group(0),
    )?;
    arm(&mut watcher, saved);
    Ok(watcher)
}

/// Gives the watcher the settings to put back (it is armed).
fn arm(watcher: &mut Watcher, saved: &Settings) {
    let mut msg = Vec::with_capacity(1 + Settings::LEN);
    msg.push(SAVE);
    msg.extend_from_slice(saved.as_bytes());
    watcher.send(&msg);
}

/// The watcher: stdin is the pipe from pkit, stdout the terminal.
pub fn main() -> ExitCode {
    sys::ignore_job_signals();
    sys::set_name(c"pkit-termwatch");
    let mut pipe = std::io::stdin().lock();
    // The settings to put back, while armed.
    let mut armed = None;
    let mut tag = [0u8];
    // Until the end of the pipe (or an error).
    while pipe.read_exact(&mut tag).is_ok() {
        match tag[0] {
            SAVE => {
                let mut bytes = vec![0u8; Settings::LEN];
                if pipe.read_exact(&mut bytes).is_err() {
                    break;
                }
                armed = Settings::from_bytes(&bytes);
            }
            PAUSE => armed = None,
            // `watcher::DONE`, or anything pkit never writes: leave the terminal be.
            _ => return ExitCode::SUCCESS,
        }
    }
    // The end of the pipe without "done": pkit is gone.
    if let Some(s) = armed {
        let _ = s.apply(1);
    }
    ExitCode::SUCCESS
}
