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

/// The other live processes of pkit's process group (its job's other
/// members: a pipeline's other stages, a shell waiting for pkit), each
/// with, for one of pkit's ancestors, how far up it is (1: pkit's
/// parent); zombies left out. `None` where they can't be listed (no
/// `/proc`).
#[cfg(target_os = "linux")]
pub fn job_mates() -> Option<Vec<(u32, Option<usize>)>> {
    use super::orphan::read_stat;
    let me = std::process::id();
    let pgrp = super::own_pgrp();
    let mut ancestors = Vec::new();
    let mut up = read_stat(me).map(|(_, ppid, _)| ppid);
    while let Some(p) = up.filter(|&p| p > 1 && ancestors.len() < 4096) {
        ancestors.push(p as u32);
        up = read_stat(p as u32).map(|(_, ppid, _)| ppid);
    }
    let mut mates = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // (Gone meanwhile: not a member any more.)
        match read_stat(pid) {
            Some((state, _, group)) if group == pgrp && state != 'Z' && state != 'X' => {
                mates.push((pid, ancestors.iter().position(|&a| a == pid).map(|i| i + 1)));
            }
            _ => {}
        }
    }
    Some(mates)
}

/// Where processes can't be listed: unknown.
#[cfg(not(target_os = "linux"))]
pub fn job_mates() -> Option<Vec<(u32, Option<usize>)>> {
    None
}

/// Continues process group `pgid` (SIGCONT); nothing if it is gone.
pub fn continue_group(pgid: i32) {
    if let Some(pgid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::CONT);
    }
}
