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

    /// Whether `pid`, of pkit's job, is a background command of a shell
    /// without job control (`sh -c 'helper & pkit run …'`): such a shell
    /// starts it with SIGINT and SIGQUIT ignored and its stdin on
    /// `/dev/null` (POSIX, "Asynchronous Lists"; dash and bash do). It
    /// takes neither Ctrl-C nor Ctrl-\, and does not read this terminal
    /// through its stdin: the job's terminal is not its, as it is a
    /// pipeline stage's. Told by both: SIGINT and SIGQUIT ignored, stdin
    /// not this terminal (nor `/dev/tty`; closed counts as not). False
    /// where that can't be read (another user's process).
    #[cfg(target_os = "linux")]
    pub fn shell_background(&self, pid: u32) -> bool {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        const INT_QUIT: u64 = (1 << (libc::SIGINT - 1)) | (1 << (libc::SIGQUIT - 1));
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return false;
        };
        let ignored = super::vfork::signal_mask(&status, "SigIgn:");
        if ignored.is_none_or(|mask| mask & INT_QUIT != INT_QUIT) {
            return false;
        }
        let Ok(own) = rustix::fs::fstat(&self.0) else {
            return false;
        };
        let any_tty = std::fs::metadata("/dev/tty").map(|m| m.rdev()).ok();
        match std::fs::metadata(format!("/proc/{pid}/fd/0")) {
            Ok(m) => {
                let rdev = m.rdev();
                !(m.file_type().is_char_device() && (rdev == own.st_rdev || Some(rdev) == any_tty))
            }
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        }
    }

    /// Where processes can't be looked at: none is known to be one.
    #[cfg(not(target_os = "linux"))]
    pub fn shell_background(&self, _pid: u32) -> bool {
        false
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

/// Whether a stop signal (SIGTSTP, SIGTTIN, SIGTTOU, SIGSTOP) is pending
/// at one of `pids`: sent to it while it was stopped already (a Ctrl-Z at
/// a program stopped by a read of the terminal), it waits there, and the
/// next SIGCONT would discard it. False where that can't be read.
#[cfg(target_os = "linux")]
pub fn stop_pending(pids: &[u32]) -> bool {
    pids.iter()
        .any(|&pid| super::vfork::pending_stop(pid).is_some())
}

/// Where processes can't be looked at: none known.
#[cfg(not(target_os = "linux"))]
pub fn stop_pending(_pids: &[u32]) -> bool {
    false
}

/// Where processes can't be listed: unknown.
#[cfg(not(target_os = "linux"))]
pub fn job_mates() -> Option<Vec<(u32, Option<usize>)>> {
    None
}

/// Stops pkit itself by `sig`, SIGTTIN or SIGTTOU (its program's stop for
/// the terminal), where [`super::stop_self`] stops it by SIGSTOP: what
/// waits for pkit sees the stop it would have seen of the program. An
/// outer `pkit run` whose program is this pkit takes it for a program
/// that asked for the terminal (and hands it over on `fg`); a shell says
/// "Stopped (tty input)". pkit catches (or blocks) both signals: the
/// default action is put back and the signal unblocked in this thread
/// alone for the raise, which stops pkit before it returns, and both
/// restored once pkit continues. (One sent to pkit meanwhile stops it
/// too, as it would have stopped pkit's job.) Any other `sig`: SIGSTOP.
pub fn stop_self_for_terminal(sig: i32) {
    if sig != libc::SIGTTIN && sig != libc::SIGTTOU {
        super::stop_self();
        return;
    }
    // Raw: rustix has no safe sigaction nor sigprocmask, and no raise.
    // SAFETY: sigaction(2) and pthread_sigmask(3) on zeroed, initialised
    // structs and sets (sigemptyset, sigaddset of a valid number); raise(3)
    // of a stop signal on this thread; both put back as they were after.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut default.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, &default, &mut old) != 0 {
            super::stop_self();
            return;
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, &mut mask);
        libc::raise(sig);
        libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
        libc::sigaction(sig, &old, std::ptr::null_mut());
    }
}

/// Continues process group `pgid` (SIGCONT); nothing if it is gone.
pub fn continue_group(pgid: i32) {
    if let Some(pgid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::CONT);
    }
}
