//! The CLI's Unix OS calls that need `unsafe`: receiving signals with their
//! sender (signalfd on Linux; a handler and a self-pipe, `sigpipe.rs`,
//! elsewhere and for the portable backend), re-raising a child's signal on
//! pkit itself, the rusage of reaped descendants, and writing the report to
//! an inherited fd. rustix has none of signalfd, sigprocmask, raise or
//! getrusage, so those use libc (each call says why); the rest goes
//! through rustix.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, RawFd};

use super::{ChildUsage, Received};

/// The signals pkit catches (and forwards, or acts on).
pub const CAUGHT: [i32; 13] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    // Orphans re-parented to pkit (its subreaper role) are reaped on it.
    libc::SIGCHLD,
];

// Every signal a group spares a nested pkit's groups for (the library's
// list) is one pkit catches and relays: checked when pkit is built.
const _: () = {
    let relayed = pkit::RELAYED_BY_PKIT_RUN;
    let mut i = 0;
    while i < relayed.len() {
        let mut found = false;
        let mut j = 0;
        while j < CAUGHT.len() {
            found |= CAUGHT[j] == relayed[i];
            j += 1;
        }
        assert!(
            found,
            "a signal the library spares nested groups for is not caught"
        );
        i += 1;
    }
};

/// The signals of [`CAUGHT`] this run catches: all but those ignored
/// when pkit started (`nohup`'s SIGHUP, a shell's `cmd &` SIGINT and
/// SIGQUIT, a `trap '' TERM`), which pkit leaves ignored, neither caught
/// nor blocked: the kernel discards them, pkit neither forwards nor acts
/// on them, and the program inherits the ignored disposition, as it would
/// without pkit. SIGCHLD is always caught (orphans are reaped on it).
/// Decided once, at the first call (`pkit run`: [`block_caught`];
/// `pkit supervise`: [`StopRequests::new`]; both before pkit changes any
/// disposition), the same for the signalfd, the self-pipe and the stop
/// requests.
fn caught() -> &'static [i32] {
    static CAUGHT_HERE: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();
    CAUGHT_HERE.get_or_init(|| {
        CAUGHT
            .into_iter()
            .filter(|&s| s == libc::SIGCHLD || !ignored(s))
            .collect()
    })
}

/// Whether `sig`'s disposition is SIG_IGN now.
fn ignored(sig: i32) -> bool {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // Raw: rustix has no sigaction.
    // SAFETY: sigaction(2) with a null new action only reads the current
    // one into our zeroed struct.
    let rc = unsafe { libc::sigaction(sig, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: zeroed, or filled by sigaction: a plain C struct.
    rc == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

fn caught_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
    // Raw: the C library's signal set (signalfd and sigprocmask take it;
    // rustix has no safe form of either).
    // SAFETY: sigemptyset initialises the set; sigaddset adds valid numbers.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for &s in caught() {
            libc::sigaddset(set.as_mut_ptr(), s);
        }
        set.assume_init()
    }
}

/// Blocks [`caught`] in the calling thread. Call before any other thread
/// starts, so they all inherit the mask (children get an empty mask: the
/// library's spawn resets it before exec).
pub fn block_caught() -> io::Result<()> {
    let set = caught_set();
    // Raw: rustix's sigprocmask is only in its unsafe `runtime` module.
    // SAFETY: `set` is initialised; a null old mask is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Whether [`Signals`] is the portable self-pipe: always outside Linux; on
/// Linux when the run uses the portable backend (`--mechanism portable`,
/// or `PKIT_MECHANISM=portable` and no `--mechanism`), so that the code
/// macOS runs is exercised where CI runs.
pub fn signal_pipe_wanted(mechanism: Option<pkit::MechanismChoice>) -> bool {
    let choice = mechanism.or_else(|| pkit::MechanismChoice::from_env().ok());
    cfg!(not(target_os = "linux")) || choice == Some(pkit::MechanismChoice::Portable)
}

/// Catches [`caught`] (blocked already: [`block_caught`]) with a handler
/// writing to a self-pipe, which [`Signals::new`] then reads. Call before
/// any other thread starts.
pub fn install_signal_pipe() -> io::Result<()> {
    super::sigpipe::install(caught())
}

/// The caught signals with their sender: the self-pipe once
/// [`install_signal_pipe`] ran, else (Linux) a signalfd.
pub enum Signals {
    #[cfg(target_os = "linux")]
    Fd(super::signalfd::SignalFd),
    Pipe(super::sigpipe::Signals),
}

impl Signals {
    /// Starts reading them. Needs a Tokio runtime.
    pub fn new() -> io::Result<Signals> {
        #[cfg(target_os = "linux")]
        if !super::sigpipe::installed() {
            return super::signalfd::SignalFd::new(caught_set()).map(Signals::Fd);
        }
        super::sigpipe::Signals::new().map(Signals::Pipe)
    }

    /// The next signal.
    pub async fn recv(&mut self) -> io::Result<Received> {
        match self {
            #[cfg(target_os = "linux")]
            Signals::Fd(s) => s.recv().await,
            Signals::Pipe(s) => s.recv().await,
        }
    }
}

/// Sends `sig` to one process.
pub fn kill(pid: u32, sig: i32) -> io::Result<()> {
    // Raw: any signal number the user names (real-time ones too): rustix's
    // Signal is made from such a number only unsafely.
    // SAFETY: kill(2) with plain integers; the caller holds `pid` unreaped.
    if unsafe { libc::kill(pid as libc::pid_t, sig) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `sig` to the process group `pgid` (its leader's pid).
#[cfg(target_os = "linux")]
pub fn kill_group(pgid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) of a negated group id, plain integers; the caller
    // holds the group's leader unreaped.
    if unsafe { libc::kill(-(pgid as libc::pid_t), sig) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether a SIGCONT came after the stop signal the run loop read last
/// (and is about to stop pkit on): the kernel's rule is that a SIGCONT
/// discards a stop signal pending before it, so pkit, which took the stop
/// signal already, must not stop itself after that SIGCONT (nobody would
/// continue it again). Through the self-pipe, the deliveries' order; through
/// the signalfd, a SIGCONT still pending: the kernel discards a pending
/// SIGCONT when a stop signal comes, so one pending now came after every
/// stop signal, the one read included.
/// Through the self-pipe, a SIGCONT still pending too: delivered to the
/// signal thread, it is not numbered until that thread runs its handler,
/// which on a loaded machine can come after this look.
pub fn continued_since_stop() -> bool {
    #[cfg(target_os = "linux")]
    if !super::sigpipe::installed() {
        return continue_pending();
    }
    super::sigpipe::continued_since_stop() || continue_pending()
}

/// Marks the stop pkit is about to make of its job, no stop signal read
/// (its program's group stopped): a SIGCONT from now on makes
/// [`continued_since_stop`] true. False when that can't be told (a
/// SIGCONT pending, not yet read, already).
pub fn mark_stop() -> bool {
    #[cfg(target_os = "linux")]
    if !super::sigpipe::installed() {
        return !continue_pending();
    }
    super::sigpipe::mark_stop();
    !continue_pending()
}

/// Whether a SIGCONT waits, blocked in this thread, to be read (from the
/// signalfd) or handled (by the self-pipe's signal thread).
fn continue_pending() -> bool {
    let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
    // Raw: rustix has no sigpending.
    // SAFETY: sigpending(2) fills the zeroed set; sigismember reads it.
    unsafe {
        libc::sigpending(set.as_mut_ptr()) == 0
            && libc::sigismember(set.as_ptr(), libc::SIGCONT) == 1
    }
}

/// Stops pkit itself (as SIGTSTP would have, had it not been caught).
pub fn stop_self() {
    // Raw: raise is a C library call (rustix has none).
    // SAFETY: raise(3) of SIGSTOP on this process.
    unsafe {
        libc::raise(libc::SIGSTOP);
    }
}

/// Ends pkit with signal `sig` (as the child ended): no core dump, default
/// disposition, unblocked, raised. Returns only if that did not end it.
pub fn reraise(sig: i32) {
    use rustix::process::{setrlimit, Resource, Rlimit};
    // RLIMIT_CORE to 0, so a re-raised SIGSEGV does not dump pkit's core
    // in its working directory; and on Linux not dumpable, as timeout(1)
    // does: the kernel ignores RLIMIT_CORE when `core_pattern` pipes the
    // dump to a program (systemd-coredump, apport), which would then
    // record a crash of pkit's that was its program's.
    let no_core = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    let _ = setrlimit(Resource::Core, no_core);
    #[cfg(target_os = "linux")]
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    crate::testpause::at("reraise");
    let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
    // Raw: rustix has no safe sigaction nor sigprocmask, and no raise (a C
    // library call).
    // SAFETY: plain calls on initialised data: the default action for
    // `sig`, `sig` unblocked, then raised.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, set.as_ptr(), std::ptr::null_mut());
        libc::raise(sig);
    }
}

/// pkit's own peak resident memory (`getrusage(RUSAGE_SELF)`), in bytes.
/// A program started vfork-style shares pkit's memory until its `execve`,
/// and the kernel counts that memory's peak in the program's.
pub fn own_peak_rss() -> u64 {
    let mut u = MaybeUninit::<libc::rusage>::zeroed();
    // Raw: rustix has no getrusage.
    // SAFETY: getrusage fills the struct it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: filled above.
    let u = unsafe { u.assume_init() };
    (u.ru_maxrss.max(0) as u64) * 1024
}

/// `getrusage(RUSAGE_CHILDREN)`.
pub fn children_usage() -> Option<ChildUsage> {
    let mut u = MaybeUninit::<libc::rusage>::zeroed();
    // Raw: rustix has no getrusage.
    // SAFETY: getrusage fills the struct it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, u.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: filled above.
    let u = unsafe { u.assume_init() };
    let us = |t: libc::timeval| (t.tv_sec.max(0) as u64) * 1_000_000 + t.tv_usec.max(0) as u64;
    let n = |v: libc::c_long| v.max(0) as u64;
    Some(ChildUsage {
        user_us: us(u.ru_utime),
        system_us: us(u.ru_stime),
        // macOS counts it in bytes, Linux and the BSDs in KiB.
        max_rss_bytes: if cfg!(target_vendor = "apple") {
            n(u.ru_maxrss)
        } else {
            n(u.ru_maxrss) * 1024
        },
        minor_faults: n(u.ru_minflt),
        major_faults: n(u.ru_majflt),
        voluntary_switches: n(u.ru_nvcsw),
        involuntary_switches: n(u.ru_nivcsw),
        blocks_in: n(u.ru_inblock),
        blocks_out: n(u.ru_oublock),
    })
}

/// Whether `path`, which the kernel refused to execute, is a file
/// execvp(3) hands to `/bin/sh`: a regular file this process may execute
/// that starts neither with `#!` nor as an ELF binary (so the refusal was
/// ENOEXEC: no format the kernel knows); not one it may not (no execute
/// permission, a `noexec` mount), nor a script whose interpreter failed.
pub fn shell_script(path: &std::path::Path) -> bool {
    use std::io::Read;
    // A regular file before it is opened: opening a FIFO would wait.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; 4];
    let Ok(n) = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)) else {
        return false;
    };
    !head[..n].starts_with(b"#!")
        && !head[..n].starts_with(b"\x7fELF")
        && rustix::fs::access(path, rustix::fs::Access::EXEC_OK).is_ok()
}

/// Whether descriptor `fd` is open in this process.
pub fn fd_open(fd: RawFd) -> bool {
    // Raw: `fd` may not be open, which a BorrowedFd may not be.
    // SAFETY: F_GETFD only inspects the fd table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// A writer for inherited fd `fd` (for `--json-fd`), or why not.
pub fn inherited_fd(fd: RawFd) -> io::Result<File> {
    if fd <= 2 {
        return Err(io::Error::other(
            "use --json for stderr; stdout is the child's",
        ));
    }
    if !fd_open(fd) {
        // fcntl's EBADF, left in errno by `fd_open`.
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is open (checked above) and was handed to pkit for
    // this purpose; nothing else in pkit uses it.
    let file = unsafe { File::from_raw_fd(fd) };
    // Close-on-exec, so the child does not get it.
    let _ = rustix::io::fcntl_setfd(&file, rustix::io::FdFlags::CLOEXEC);
    Ok(file)
}

/// Whether `pid` is in pkit's own process group.
pub fn same_pgrp(pid: u32) -> bool {
    pgrp_of_pid(pid) == Some(own_pgrp())
}

/// pkit's own process group.
pub fn own_pgrp() -> i32 {
    // Raw: rustix's getpgrp panics on a 0 answer (see clippy.toml).
    // SAFETY: getpgrp has no preconditions.
    unsafe { libc::getpgrp() }
}

/// The process group of `pid`.
pub fn pgrp_of_pid(pid: u32) -> Option<i32> {
    // Raw: rustix's getpgid panics on a 0 answer (see clippy.toml).
    // SAFETY: getpgid(2) with a plain integer.
    let pg = unsafe { libc::getpgid(pid as libc::pid_t) };
    (pg > 0).then_some(pg)
}

/// Whether stdin is pkit's controlling terminal, still there: a hung-up
/// terminal answers no more (EIO), nor does one that is not pkit's.
pub fn stdin_is_own_terminal() -> bool {
    // Raw: rustix's tcgetsid panics on a 0 answer (see clippy.toml), a
    // session led from outside this pid namespace, which is an answer.
    // SAFETY: tcgetsid(3) on a plain fd number; it only asks.
    unsafe { libc::tcgetsid(0) != -1 }
}

/// The state letter of `pid` (`R`, `S`, `T`, …) from `/proc`; under
/// the portable signal path, the way macOS and the BSDs tell it
/// ([`stopped`]), so that CI runs that code.
#[cfg(target_os = "linux")]
pub fn state_of(pid: u32) -> Option<char> {
    if super::sigpipe::installed() {
        return stopped(pid);
    }
    super::orphan::read_stat(pid).map(|(state, ..)| state)
}

/// The state of `pid` where there is no `/proc`: `T` while it is
/// stopped, else unknown.
#[cfg(not(target_os = "linux"))]
pub fn state_of(pid: u32) -> Option<char> {
    stopped(pid)
}

/// `T` while `pid`, a child of pkit, is stopped, else `None`
/// ([`super::stop_signal`]'s `waitid`, which leaves the stop to be
/// collected by the child's own waiter).
fn stopped(pid: u32) -> Option<char> {
    super::stop_signal(pid).map(|_| 'T')
}

/// Makes pkit the child subreaper of everything it starts: an orphaned
/// descendant is re-parented to pkit instead of init.
#[cfg(target_os = "linux")]
pub fn set_child_subreaper() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    Ok(())
}

/// Makes pkit the reaper of everything it starts
/// (`procctl(PROC_REAP_ACQUIRE)`): an orphaned descendant is re-parented
/// to pkit instead of init.
#[cfg(target_os = "freebsd")]
pub fn set_child_subreaper() -> io::Result<()> {
    rustix::process::set_reaper_status(true)?;
    Ok(())
}

/// No subreaper on macOS, NetBSD and OpenBSD: an orphaned descendant goes
/// to launchd or init. (DragonFly has FreeBSD's `procctl` reaper, but
/// pkit does not read DragonFly's process table for the orphans it would
/// adopt, so it does not take it.)
#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
pub fn set_child_subreaper() -> io::Result<()> {
    let why = if cfg!(target_os = "dragonfly") {
        "pkit does not use DragonFly's procctl(PROC_REAP_ACQUIRE): it lists no orphans there"
            .to_string()
    } else {
        format!("{} has no subreaper", std::env::consts::OS)
    };
    Err(io::Error::new(io::ErrorKind::Unsupported, why))
}

/// This process's children (pid, state letter with `Z` for a zombie),
/// from the `kern.proc.proc` sysctl.
#[cfg(target_os = "freebsd")]
pub fn children() -> Vec<(i32, char)> {
    let mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_PROC];
    let each = std::mem::size_of::<libc::kinfo_proc>();
    let me = std::process::id() as libc::pid_t;
    for _ in 0..8 {
        let mut size: libc::size_t = 0;
        // Raw: FreeBSD's process table (sysctl kern.proc): no rustix form.
        // SAFETY: a size query: null buffer, the size written to ours.
        let rc = unsafe {
            libc::sysctl(
                mib.as_ptr(),
                mib.len() as libc::c_uint,
                std::ptr::null_mut(),
                &mut size,
                std::ptr::null(),
                0,
            )
        };
        if rc != 0 {
            return Vec::new();
        }
        let mut buf: Vec<libc::kinfo_proc> = Vec::with_capacity(size / each + 16);
        let mut len = buf.capacity() * each;
        // Raw: as above.
        // SAFETY: the buffer has room for `len` bytes of kinfo_proc.
        let rc = unsafe {
            libc::sysctl(
                mib.as_ptr(),
                mib.len() as libc::c_uint,
                buf.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null(),
                0,
            )
        };
        if rc != 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::ENOMEM) {
                continue; // the table grew meanwhile
            }
            return Vec::new();
        }
        // SAFETY: the kernel filled `len` bytes: whole records.
        unsafe { buf.set_len(len / each) };
        return buf
            .iter()
            .filter(|k| k.ki_ppid == me)
            .map(|k| (k.ki_pid, if k.ki_stat == libc::SZOMB { 'Z' } else { 'R' }))
            .collect();
    }
    Vec::new()
}

/// No subreaper here (see [`set_child_subreaper`]), so no orphan of the
/// run is pkit's child.
#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
pub fn children() -> Vec<(i32, char)> {
    Vec::new()
}

/// Reaps child `pid` if it has exited; true when it was reaped.
pub fn reap_if_exited(pid: i32) -> bool {
    use rustix::process::{waitpid, Pid, WaitOptions};
    let Some(pid) = Pid::from_raw(pid) else {
        return false;
    };
    matches!(waitpid(Some(pid), WaitOptions::NOHANG), Ok(Some((p, _))) if p == pid)
}

/// The size (rows, cols) of the terminal on `fd`, if it is one.
pub fn terminal_size(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws = MaybeUninit::<libc::winsize>::zeroed();
    // Raw: `fd` is a number that may not be open (EBADF is the answer),
    // which a BorrowedFd for rustix's tcgetwinsize may not be.
    // SAFETY: TIOCGWINSZ fills a winsize, which `ws` is; a descriptor that
    // is not a terminal makes it fail.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, ws.as_mut_ptr()) };
    if rc < 0 {
        return None;
    }
    // SAFETY: zeroed, then filled by the kernel: a plain C struct.
    let ws = unsafe { ws.assume_init() };
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Children's exits (SIGCHLD), for `pkit supervise` to reap the runs'
/// orphans as they end.
pub struct ChildExits(Option<tokio::signal::unix::Signal>);

impl ChildExits {
    /// Catches SIGCHLD from now on (where it can't, [`recv`](Self::recv)
    /// never ends). Needs a Tokio runtime.
    pub fn new() -> ChildExits {
        use tokio::signal::unix::{signal, SignalKind};
        ChildExits(signal(SignalKind::child()).ok())
    }

    /// The next exit (or several: they coalesce).
    pub async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// What `pkit supervise` hears: SIGTERM, SIGINT, SIGHUP and SIGQUIT ask
/// it to stop; SIGUSR1, SIGUSR2, SIGALRM and SIGWINCH are for the current
/// run's program ([`for_the_program`]); each only if [`caught`] has it
/// (one ignored when pkit started stays ignored, in pkit and in the
/// program).
pub struct StopRequests(Vec<(i32, tokio::signal::unix::Signal)>);

impl StopRequests {
    /// Catches them from now on. Needs a Tokio runtime.
    pub fn new() -> io::Result<StopRequests> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut heard = Vec::new();
        for sig in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGALRM,
            libc::SIGWINCH,
        ] {
            if caught().contains(&sig) {
                heard.push((sig, signal(SignalKind::from_raw(sig))?));
            }
        }
        Ok(StopRequests(heard))
    }

    /// The next signal heard, by number.
    pub async fn recv(&mut self) -> i32 {
        std::future::poll_fn(|cx| {
            for (sig, s) in &mut self.0 {
                if s.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*sig);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}

/// Whether `sig`, heard by `pkit supervise`, is passed on to the current
/// run's program (as `pkit run` passes it on) rather than a stop request.
pub fn for_the_program(sig: i32) -> bool {
    [libc::SIGUSR1, libc::SIGUSR2, libc::SIGALRM, libc::SIGWINCH].contains(&sig)
}
