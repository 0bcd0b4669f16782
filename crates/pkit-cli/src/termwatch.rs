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

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::sys::{self, TermSettings as Settings};

/// pkit's first argument when it runs as the watcher.
pub const ARG: &str = "__pkit-terminal-watcher";
/// Settings follow ([`Settings::LEN`] bytes); the watcher is armed.
const SAVE: u8 = b'S';
/// pkit stopped with the settings put back: leave the terminal alone.
const PAUSE: u8 = b'P';
/// pkit put the settings back and ends: leave the terminal alone, end.
const DONE: u8 = b'D';

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
        let watcher = match Watcher::start(&saved) {
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
            w.arm(&now);
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

/// pkit's side of the watcher: the child and the pipe's write end.
struct Watcher {
    child: Child,
    pipe: ChildStdin,
}

impl Watcher {
    /// Starts the watcher, armed with `saved`; the error if it can't start
    /// (raw mode goes on without one, with a warning).
    fn start(saved: &Settings) -> std::io::Result<Watcher> {
        let tty = std::os::fd::AsFd::as_fd(&std::io::stdin()).try_clone_to_owned()?;
        // std's pipe: both ends close-on-exec, the write end pkit's alone.
        let mut child = std::process::Command::new("/proc/self/exe")
            .arg(ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(tty))
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let pipe = child.stdin.take().expect("stdin was piped");
        let mut watcher = Watcher { child, pipe };
        watcher.arm(saved);
        Ok(watcher)
    }

    fn arm(&mut self, saved: &Settings) {
        let mut msg = Vec::with_capacity(1 + Settings::LEN);
        msg.push(SAVE);
        msg.extend_from_slice(saved.as_bytes());
        self.send(&msg);
    }

    /// A message, whole (a pipe takes 4 KiB at once); an ended watcher
    /// makes it fail (EPIPE), which changes nothing.
    fn send(&mut self, msg: &[u8]) {
        let _ = self.pipe.write_all(msg);
    }

    /// Tells the watcher pkit is done, and waits (briefly) for it to end.
    fn finish(mut self) {
        self.send(&[DONE]);
        drop(self.pipe);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.child.try_wait() {
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
                // Ended (or reaped already as an orphan of the run).
                _ => return,
            }
        }
    }
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
            // DONE, or anything pkit never writes: leave the terminal be.
            _ => return ExitCode::SUCCESS,
        }
    }
    // The end of the pipe without "done": pkit is gone.
    if let Some(s) = armed {
        let _ = s.apply(1);
    }
    ExitCode::SUCCESS
}
