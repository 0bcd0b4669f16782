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

    /// Whether one of `mates` (pkit's job's other processes, as
    /// [`job_mates`] lists them) is a stage of pkit's pipeline, whose
    /// terminal the job's is: pkit then keeps it for the job. The pkit
    /// side is pkit and the shells waiting for it (`up` given); any other
    /// mate is a stage when its stdin is this terminal (or `/dev/tty`), or
    /// when a pipe joins one of its stdio to the pkit side's in the
    /// pipeline's direction: its stdin a pipe the pkit side writes to, or
    /// its stdout or stderr one the pkit side reads. A mate whose stdin is
    /// no pipe (closed, a file, `/dev/null`) is a stage too while the pkit
    /// side writes to a pipe that nothing reads any more: the stage after
    /// pkit let go of it (`pkit run -- prog | stage <file`, or a stage
    /// that closed its stdin), joined to pkit by no pipe now (that it has
    /// ended instead is a dying pipeline: it errs on the stage's side);
    /// so is one whose stdout is no pipe while the pkit side reads a pipe
    /// that nothing writes to any more (the stage before pkit closed its
    /// stdout: `producer </dev/null | pkit run …`). Those two only when
    /// the mate lacks the marks of a background command of a shell
    /// without job control (stdin on `/dev/null`, SIGINT and SIGQUIT
    /// ignored: [`background_command`]): `sh -c 'helper & pkit run … |
    /// true'`, whose stage has ended, has no stage left. A
    /// script's background command (`sh -c 'helper & pkit run …'`: stdin
    /// on `/dev/null`) is none, even when it writes to pkit's pipe (`… |
    /// tee`: a co-writer, not joined by it; `tee` is). Told by the pipes
    /// first, not by the signals a shell ignores in its background
    /// commands: a script may ignore Ctrl-C itself (`trap '' INT QUIT`),
    /// and a helper may catch it; those marks only tell a helper from a
    /// stage that let go of pkit's pipe, which no pipe tells. One
    /// stage joined to pkit is enough (`a | b | pkit run …`: `b`); a mate
    /// whose descriptors can't be read (another user's) is one, and so is
    /// every mate when a shell of the pkit side can't be read.
    #[cfg(target_os = "linux")]
    pub fn job_has_stage(&self, mates: &[(u32, Option<usize>)]) -> bool {
        use std::os::unix::fs::MetadataExt;
        let ttys = [
            controlling_terminal(),
            std::fs::metadata("/dev/tty").ok().map(|m| device(m.rdev())),
        ];
        let mut side = stdio_ends(std::process::id(), &ttys, false);
        for &(pid, _) in mates.iter().filter(|m| m.1.is_some()) {
            match (side.as_mut(), stdio_ends(pid, &ttys, true)) {
                (Some(side), Some(ends)) => side.extend(ends),
                _ => side = None,
            }
        }
        // Whether the pkit side writes to a pipe nothing reads any more,
        // reads one nothing writes to any more (each looked at once, for
        // the first mate it may decide).
        let unread = std::cell::OnceCell::new();
        let unwritten = std::cell::OnceCell::new();
        let piped = |e: End| matches!(e, End::Pipe { .. } | End::Socket);
        let stage = |pid: u32| {
            let Some(ends) = stdio_ends(pid, &ttys, false) else {
                return true;
            };
            let let_go = || {
                (!piped(ends[0]) && *unread.get_or_init(|| side_unjoined(mates, Dir::Writes)))
                    || (!piped(ends[1])
                        && *unwritten.get_or_init(|| side_unjoined(mates, Dir::Reads)))
            };
            ends[0] == End::Terminal
                || side
                    .as_ref()
                    .is_none_or(|s| ends.iter().any(|e| e.joined(s)))
                || (let_go() && !background_command(pid))
        };
        mates.iter().any(|&(pid, up)| up.is_none() && stage(pid))
    }

    /// Where processes can't be looked at: any mate but the shells waiting
    /// for pkit is one.
    #[cfg(not(target_os = "linux"))]
    pub fn job_has_stage(&self, mates: &[(u32, Option<usize>)]) -> bool {
        mates.iter().any(|&(_, up)| up.is_none())
    }
}

/// Which way the pkit side uses a pipe: writes to it (a stage after
/// pkit reads it), reads it (a stage before pkit writes to it).
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, PartialEq)]
enum Dir {
    Writes,
    Reads,
}

/// Whether pkit or a shell waiting for it (`mates` with `up` given) holds
/// the write end of a pipe that nothing reads any more (`Dir::Writes`:
/// its stdout or stderr, or a shell's saved stdio): the stage after pkit
/// let go of it (closed its stdin, or took it from a file: `pkit run --
/// prog | stage <file`), or ended; or (`Dir::Reads`) the read end of one
/// that nothing writes to any more: the stage before pkit closed its
/// stdout, or ended. Asked by opening the pipe again the same way without
/// blocking ([`unjoined_pipe`]; closed again at once, nothing written nor
/// read).
#[cfg(target_os = "linux")]
fn side_unjoined(mates: &[(u32, Option<usize>)], dir: Dir) -> bool {
    let mut side = std::iter::once(std::process::id())
        .chain(mates.iter().filter(|m| m.1.is_some()).map(|m| m.0));
    side.any(|pid| {
        let mut fds = vec![0, 1, 2];
        if pid != std::process::id() {
            fds.extend(saved_fds(pid));
        }
        fds.into_iter().any(|fd| unjoined_pipe(pid, fd, dir))
    })
}

/// Whether `pid`'s descriptor `fd` writes to a pipe (or FIFO) that has no
/// reader left (`Dir::Writes`: opened again for writing, through `/proc`,
/// which for a pipe neither waits for a reader nor fails without one, it
/// polls POLLERR; a FIFO opened by name fails with ENXIO instead), or
/// (`Dir::Reads`) reads a pipe that has no writer left (opened again for
/// reading, it polls POLLHUP; a FIFO opened by name does not until a
/// writer came and went: taken for one still written to).
#[cfg(target_os = "linux")]
fn unjoined_pipe(pid: u32, fd: u32, dir: Dir) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::fs::{open, Mode, OFlags};
    let path = format!("/proc/{pid}/fd/{fd}");
    let (access, gone) = match dir {
        Dir::Writes => (OFlags::WRONLY, PollFlags::ERR),
        Dir::Reads => (OFlags::RDONLY, PollFlags::HUP),
    };
    // The descriptor's access mode (0 reads, 1 writes, 2 both): a reader
    // that writes too is a writer of its own pipe.
    let used = fd_flags(pid, fd).is_some_and(|f| (f & 3 == 0) == (dir == Dir::Reads));
    let pipe = std::fs::metadata(&path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_fifo()
    });
    if !used || !pipe {
        return false;
    }
    let flags = access | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let end = match open(path.as_str(), flags, Mode::empty()) {
        Ok(end) => end,
        Err(e) => return dir == Dir::Writes && e == rustix::io::Errno::NXIO,
    };
    let mut fds = [PollFd::new(&end, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&now)).is_ok() && fds[0].revents().contains(gone)
}

/// Whether `pid` has the marks POSIX gives a background command of a
/// shell without job control (`sh -c 'helper & pkit run …'`): its stdin
/// on `/dev/null` and SIGINT and SIGQUIT ignored. Such a mate is no
/// stage that let go of pkit's pipe (`Ctty::job_has_stage`), whose stdin
/// is a file or closed, or whose stdout is. A stage with both marks (its
/// stdin `/dev/null`, in a script that ignores Ctrl-C: `trap '' INT QUIT`,
/// or that started with them ignored) is taken for one.
#[cfg(target_os = "linux")]
fn background_command(pid: u32) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let null = |path: String| {
        std::fs::metadata(path)
            .ok()
            .filter(|m| m.file_type().is_char_device())
            .map(|m| m.rdev())
    };
    let on_null =
        null(format!("/proc/{pid}/fd/0")).is_some_and(|d| Some(d) == null("/dev/null".into()));
    on_null
        && std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
            let ignored = status.lines().find_map(|l| l.strip_prefix("SigIgn:"));
            let ignored = ignored.and_then(|m| u64::from_str_radix(m.trim(), 16).ok());
            let both = 1 << (libc::SIGINT - 1) | 1 << (libc::SIGQUIT - 1);
            ignored.is_some_and(|m| m & both == both)
        })
}

/// What one of a process's descriptors is, for telling a stage of pkit's
/// pipeline ([`Ctty::job_has_stage`]).
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, PartialEq)]
enum End {
    /// pkit's terminal (or `/dev/tty`).
    Terminal,
    /// A pipe (or FIFO): its device and inode, the same at both ends, and
    /// whether this end reads it, writes it (both when unknown).
    Pipe {
        id: (u64, u64),
        reads: bool,
        writes: bool,
    },
    /// A socket: some shells (ksh93) join a pipeline's stages by socket
    /// pairs, whose two ends are two inodes.
    Socket,
    /// Anything else, or closed.
    Other,
}

#[cfg(target_os = "linux")]
impl End {
    /// Whether this end and one of `others` are a pipe's writer and its
    /// reader (two writers of one pipe are not joined by it). (Any two
    /// sockets may be: a socket pair can't be told from here.)
    fn joined(self, others: &[End]) -> bool {
        match self {
            End::Pipe { id, reads, writes } => others.iter().any(|o| {
                matches!(*o, End::Pipe { id: i, reads: r, writes: w }
                    if i == id && ((reads && w) || (writes && r)))
            }),
            End::Socket => others.contains(&End::Socket),
            _ => false,
        }
    }
}

/// The ends of `pid`'s stdin, stdout and stderr, in that order; with
/// `saved`, a shell waiting for pkit, then its close-on-exec pipes too:
/// a shell's stdio saved aside while a command's redirections hold its
/// own (dash's `{ pkit run … >/dev/null; echo; } | cat` waits with its
/// stdout on `/dev/null`, the pipe to `cat` moved to descriptor 10).
/// `None` where they can't be read (another user's process); closed, or
/// the process gone: [`End::Other`].
#[cfg(target_os = "linux")]
fn stdio_ends(pid: u32, ttys: &[Option<(u32, u32)>], saved: bool) -> Option<Vec<End>> {
    let mut ends = Vec::new();
    for fd in 0..3 {
        ends.push(fd_end(pid, fd, ttys)?);
    }
    if saved {
        for fd in saved_fds(pid) {
            let end = fd_end(pid, fd, ttys)?;
            if matches!(end, End::Pipe { .. }) {
                ends.push(end);
            }
        }
    }
    Some(ends)
}

/// `pid`'s close-on-exec descriptors above 2: where a shell waiting for
/// pkit keeps its stdio saved aside (see [`stdio_ends`]); none where they
/// can't be listed.
#[cfg(target_os = "linux")]
fn saved_fds(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&fd| fd > 2 && fd_flags(pid, fd).is_some_and(|f| f & O_CLOEXEC != 0))
        .collect()
}

/// A device number's major and minor.
#[cfg(target_os = "linux")]
fn device(rdev: u64) -> (u32, u32) {
    (rustix::fs::major(rdev), rustix::fs::minor(rdev))
}

/// pkit's controlling terminal's major and minor (`/proc/self/stat`'s
/// `tty_nr`: the `Ctty` descriptor, opened as `/dev/tty`, is that
/// device's, not the terminal's).
#[cfg(target_os = "linux")]
fn controlling_terminal() -> Option<(u32, u32)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let nr: u32 = rest.split_whitespace().nth(4)?.parse::<i64>().ok()? as u32;
    (nr != 0).then_some(((nr >> 8) & 0xfff, (nr & 0xff) | ((nr >> 12) & 0xfff00)))
}

/// fdinfo's close-on-exec flag (octal, as `flags:` shows it).
#[cfg(target_os = "linux")]
const O_CLOEXEC: u32 = 0o2000000;

/// The open flags of `pid`'s descriptor `fd` (`/proc/<pid>/fdinfo`).
#[cfg(target_os = "linux")]
fn fd_flags(pid: u32, fd: u32) -> Option<u32> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
    u32::from_str_radix(flags.trim(), 8).ok()
}

/// Descriptor `fd` of process `pid`; `None` where it can't be read.
#[cfg(target_os = "linux")]
fn fd_end(pid: u32, fd: u32, ttys: &[Option<(u32, u32)>]) -> Option<End> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = match std::fs::metadata(format!("/proc/{pid}/fd/{fd}")) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(End::Other),
        Err(_) => return None,
    };
    let kind = m.file_type();
    Some(
        if kind.is_char_device() && ttys.contains(&Some(device(m.rdev()))) {
            End::Terminal
        } else if kind.is_fifo() {
            let mode = fd_flags(pid, fd).map(|f| f & 3);
            End::Pipe {
                id: (m.dev(), m.ino()),
                reads: mode != Some(1),
                writes: mode.is_none_or(|m| m != 0),
            }
        } else if kind.is_socket() {
            End::Socket
        } else {
            End::Other
        },
    )
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
