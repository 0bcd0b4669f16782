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

use std::process::{ExitCode, Stdio};

use crate::watcher::Watcher;

/// pkit's first argument when it runs as the watcher.
pub const ARG: &str = "__pkit-foreground-watcher";

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
    use std::io::Read;
    sys::ignore_job_signals();
    sys::set_name(c"pkit-fgwatch");
    let mut args = std::env::args().skip(2).map(|a| a.parse::<i32>().ok());
    let (Some(Some(own)), Some(Some(program))) = (args.next(), args.next()) else {
        return ExitCode::FAILURE;
    };
    let mut tag = [0u8];
    // Until "done", or the end of the pipe (or an error).
    loop {
        match std::io::stdin().lock().read(&mut tag) {
            Ok(1) if tag[0] == crate::watcher::DONE => return ExitCode::SUCCESS,
            Ok(1) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            _ => break,
        }
    }
    // pkit is gone: its job gets the terminal back from its program.
    if let Some(tty) = sys::Ctty::open() {
        if tty.foreground() == Some(program) && tty.set_foreground(own).is_ok() {
            sys::continue_group(own);
        }
    }
    ExitCode::SUCCESS
}

/// No terminal to watch on Windows.
#[cfg(not(unix))]
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
