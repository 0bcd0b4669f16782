//! A watcher that gives the terminal back to pkit's job if pkit dies
//! (SIGKILL, the OOM killer) while its program's process group holds it:
//! without it the terminal's foreground group stays the dead program's,
//! and the rest of the shell's job (`pkit run -- job; read x`, a script's
//! next step) is stopped by SIGTTIN at its next read.
//!
//! Started once pkit first hands the terminal over (`tty.rs`), as `--pty`'s
//! terminal watcher is (`termwatch.rs`): pkit's own executable again
//! (`/proc/self/exe`, a hidden mode: [`ARG`], then pkit's process group
//! and the program's, as numbers), with std's spawn, in a process group
//! of its own (a signal to pkit's job does not reach it), ignoring the
//! terminal's and job control's signals (SIGTTOU: it changes the terminal
//! from the background). Its stdin is a pipe whose write end only pkit
//! holds (close-on-exec). pkit writes "done" when it ends as it should
//! (the terminal taken back already); the end of the pipe without "done"
//! is pkit's death: if the program's group is still the terminal's
//! foreground group, the watcher makes pkit's group the foreground group
//! again (it shares pkit's session and controlling terminal) and continues
//! that group (a process of it that read the terminal meanwhile was
//! stopped by SIGTTIN).
//!
//! It also stops the shells waiting for pkit in its job once pkit has
//! stopped (`tty::stop_job_mates`): pkit, about to stop with its program,
//! sends [`STOP`] (`S<pkit's pid> <signal> <pid>…\n`); the watcher looks
//! at pkit's state every millisecond until it is stopped, then sends the
//! signal to each pid in turn. [`CONTINUED`] (pkit continued) calls off a
//! stop not yet seen. If pkit dies instead of stopping, the watcher
//! continues pkit's job (the stages pkit stopped already would otherwise
//! stay stopped, their shell waiting on them). Started then if it was not
//! yet.

use std::process::{ExitCode, Stdio};

use crate::watcher::Watcher;

/// pkit's first argument when it runs as the watcher.
pub const ARG: &str = "__pkit-foreground-watcher";
/// pkit is about to stop: stop these processes once it is.
const STOP: u8 = b'S';
/// pkit continued: a [`STOP`] not yet carried out is off.
pub const CONTINUED: u8 = b'C';

/// The [`STOP`] message: once `pkit` is stopped, `sig` to each of `pids`,
/// in their order.
pub fn stop_message(pkit: u32, sig: i32, pids: &[u32]) -> Vec<u8> {
    let mut text = format!("{pkit} {sig}");
    for p in pids {
        text.push_str(&format!(" {p}"));
    }
    let mut msg = vec![STOP];
    msg.extend_from_slice(text.as_bytes());
    msg.push(b'\n');
    msg
}

/// Starts the watcher for pkit's group `own` and the program's `program`.
pub fn start(own: i32, program: i32) -> std::io::Result<Watcher> {
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg(ARG)
        .arg(own.to_string())
        .arg(program.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    Watcher::start(&mut cmd)
}

/// The watcher: stdin is the pipe from pkit; its arguments (after
/// [`ARG`]) pkit's process group and the program's.
#[cfg(unix)]
pub fn main() -> ExitCode {
    use crate::sys;
    sys::ignore_job_signals();
    sys::set_name(c"pkit-fgwatch");
    let mut args = std::env::args().skip(2).map(|a| a.parse::<i32>().ok());
    let (Some(Some(own)), Some(Some(program))) = (args.next(), args.next()) else {
        return ExitCode::FAILURE;
    };
    let mut pipe = Pipe::default();
    // A stop to make once pkit is stopped: pkit's pid, the signal, the pids.
    let mut stop: Option<Vec<i64>> = None;
    // pkit was seen gone with a stop pending.
    let mut died_stopping = false;
    // Until "done", or the end of the pipe (or an error).
    while let Some(more) = pipe.fill(stop.is_some()) {
        if more {
            while let Some(msg) = pipe.next() {
                match msg {
                    Msg::Done => return ExitCode::SUCCESS,
                    Msg::Continued => stop = None,
                    Msg::Stop(numbers) => stop = Some(numbers),
                }
            }
        }
        if let Some([pkit, sig, pids @ ..]) = stop.as_deref() {
            match u32::try_from(*pkit).ok().and_then(sys::state_of) {
                Some('T') => {
                    for &pid in pids {
                        if let (Ok(pid), Ok(sig)) = (u32::try_from(pid), i32::try_from(*sig)) {
                            let _ = sys::kill(pid, sig);
                        }
                    }
                    stop = None;
                }
                // Gone (or a zombie) before its stop: the end of the pipe
                // comes next (see below).
                None | Some('Z' | 'X') => {
                    died_stopping = true;
                    stop = None;
                }
                Some(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        } else {
            stop = None;
        }
    }
    // pkit is gone: its job gets the terminal back from its program.
    if let Some(tty) = sys::Ctty::open() {
        if tty.foreground() == Some(program) && tty.set_foreground(own).is_ok() {
            sys::continue_group(own);
        }
    }
    // Gone before its stop: what pkit stopped of its job already (a
    // pipeline's other stage) would stay stopped for ever, its shells
    // neither stopped nor told: the job goes on.
    if died_stopping || stop.is_some() {
        sys::continue_group(own);
    }
    ExitCode::SUCCESS
}

/// A message from pkit.
#[cfg(unix)]
enum Msg {
    Done,
    Continued,
    /// pkit's pid, the signal, the pids.
    Stop(Vec<i64>),
}

/// The pipe from pkit (stdin), read whole messages at a time.
#[cfg(unix)]
#[derive(Default)]
struct Pipe {
    bytes: Vec<u8>,
    nonblocking: bool,
}

#[cfg(unix)]
impl Pipe {
    /// Reads what the pipe has: waits for it unless `poll`; `None` at its
    /// end (or an error), else whether anything came.
    fn fill(&mut self, poll: bool) -> Option<bool> {
        use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
        use rustix::io::Errno;
        let stdin = std::io::stdin();
        let fd = std::os::fd::AsFd::as_fd(&stdin);
        if poll != self.nonblocking {
            let flags = fcntl_getfl(fd).ok()?;
            let flags = if poll {
                flags | OFlags::NONBLOCK
            } else {
                flags - OFlags::NONBLOCK
            };
            fcntl_setfl(fd, flags).ok()?;
            self.nonblocking = poll;
        }
        let mut buf = [0u8; 512];
        loop {
            return match rustix::io::read(fd, &mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    self.bytes.extend_from_slice(&buf[..n]);
                    Some(true)
                }
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => Some(false),
                Err(_) => None,
            };
        }
    }

    /// The next whole message read, if any (a byte pkit never sends is
    /// passed over).
    fn next(&mut self) -> Option<Msg> {
        loop {
            let tag = *self.bytes.first()?;
            if tag == STOP {
                let end = self.bytes.iter().position(|&b| b == b'\n')?;
                let line: Vec<u8> = self.bytes.drain(..=end).collect();
                let numbers = String::from_utf8_lossy(&line[1..end])
                    .split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect();
                return Some(Msg::Stop(numbers));
            }
            self.bytes.remove(0);
            match tag {
                crate::watcher::DONE => return Some(Msg::Done),
                CONTINUED => return Some(Msg::Continued),
                _ => {}
            }
        }
    }
}

/// No terminal to watch on Windows.
#[cfg(not(unix))]
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
