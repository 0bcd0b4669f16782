//! Caught signals with their sender, the portable way: what macOS and the
//! BSDs run, and Linux too when the CLI runs the portable backend
//! (`--mechanism portable`, or `PKIT_MECHANISM=portable` without
//! `--mechanism`), so that this code runs on every Linux CI run.
//!
//! A `sigaction(SA_SIGINFO)` handler marks each signal pending, by number
//! and by origin (the kernel's, a process's: from `si_code`, `si_pid`),
//! and when a mark is new writes one byte into a non-blocking self-pipe
//! (write(2) is async-signal-safe) to wake the run loop, which reads the
//! pipe through Tokio and takes the marks, in the order of the signal
//! numbers. Signals of one kind and origin that arrive before the run loop
//! takes the first are one, as the kernel keeps a blocked signal pending
//! once (the signalfd path's behaviour): a flood of one kind never crowds
//! another out, whatever the pipe holds. A SIGCONT drops a pending stop
//! signal, and a stop signal a pending SIGCONT, as the kernel does; the
//! stop signals taken together are one stop (the kernel's SIGCONT would
//! have dropped the rest after the first).
//! Each delivery also takes a number from one counter (the order the
//! handler saw the signals in: it runs with every caught signal blocked,
//! so one delivery's handler never interrupts another's and the order is
//! the kernel's), kept per signal number: the run loop, about to stop
//! pkit on a stop signal it took, tells by it whether a SIGCONT came
//! after that stop signal ([`continued_since_stop`]), which a mark can't
//! (the SIGCONT that continued pkit before may still be marked).
//! The caught signals stay blocked in every thread but
//! one, `pkit-signals`, which only waits in pause(2): they are delivered
//! there, and the other threads' terminal operations (tcsetpgrp from the
//! background, a write with TOSTOP) raise no SIGTTOU/SIGTTIN on pkit, as
//! with the blocked set signalfd reads on Linux.
//!
//! A handler installed later for one of these signals (the library's
//! SIGCHLD notifier) calls this one in turn.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::io::unix::AsyncFd;

use super::Received;

/// A pending mark's origins: the kernel, pkit's parent process, another
/// process.
const FROM_KERNEL: u8 = 1;
const FROM_PROCESS: u8 = 2;
const FROM_PARENT: u8 = 4;
/// The stop signals pkit catches.
const STOPS: [i32; 3] = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];
/// Signal numbers below this can be marked (every caught one is).
const MAX_SIGNAL: usize = 64;
/// Pending signals by number: [`FROM_KERNEL`] and/or [`FROM_PROCESS`].
static PENDING: [AtomicU8; MAX_SIGNAL] = [const { AtomicU8::new(0) }; MAX_SIGNAL];
/// The number of the last delivery handled (0: none yet).
static DELIVERIES: AtomicUsize = AtomicUsize::new(0);
/// By signal number, the number of its last delivery (0: none yet).
static LAST: [AtomicUsize; MAX_SIGNAL] = [const { AtomicUsize::new(0) }; MAX_SIGNAL];
/// The number of the latest delivery among the stop signals the run loop
/// took last ([`Signals::take_pending`]).
static STOP_TAKEN: AtomicUsize = AtomicUsize::new(0);

/// Whether a SIGCONT was delivered after the stop signal(s) the run loop
/// took last: the kernel would have dropped that stop (a SIGCONT discards
/// a pending stop signal), and pkit, acting on it, must not stop itself
/// after that SIGCONT, which nobody sends again. A SIGCONT from before
/// the stop signal (the one that continued pkit from an earlier stop, its
/// mark not yet taken) does not count: the stop is the kernel's then.
pub fn continued_since_stop() -> bool {
    LAST[libc::SIGCONT as usize].load(Ordering::Acquire) > STOP_TAKEN.load(Ordering::Acquire)
}

/// Marks a stop pkit makes of its own (no stop signal read): a SIGCONT
/// delivered from now on makes [`continued_since_stop`] true.
pub fn mark_stop() {
    STOP_TAKEN.fetch_max(DELIVERIES.load(Ordering::Acquire), Ordering::AcqRel);
}

/// The pipe's write end, for the handler (-1 until installed).
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
/// The pipe's read end, from [`install`] until [`Signals::new`] takes it.
static READER: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Whether [`install`] ran (and succeeded as far as the pipe): Linux
/// chooses between this and signalfd.
#[cfg(target_os = "linux")]
pub fn installed() -> bool {
    WRITE_FD.load(Ordering::Acquire) >= 0
}

/// A pipe, both ends non-blocking and close-on-exec (pipe2 is not on
/// macOS; this runs before any other thread exists, so no fork can see the
/// ends before FD_CLOEXEC is set).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    use rustix::io::{fcntl_setfd, FdFlags};
    let (r, w) = rustix::pipe::pipe()?;
    for fd in [&r, &w] {
        fcntl_setfl(fd, fcntl_getfl(fd)? | OFlags::NONBLOCK)?;
        fcntl_setfd(fd, FdFlags::CLOEXEC)?;
    }
    Ok((r, w))
}

/// Installs the handler for `caught` (already blocked in this thread and
/// so in every later one: [`super::block_caught`]) and starts the thread
/// that receives them. Call before any other thread starts.
pub fn install(caught: &[i32]) -> io::Result<()> {
    let (r, w) = pipe()?;
    WRITE_FD.store(w.as_raw_fd(), Ordering::Release);
    // The handler may write to it for the rest of the process's life.
    std::mem::forget(w);
    *READER.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    // (`caught` holds no signal ignored when pkit started: see
    // `unix::caught`.)
    for &s in caught {
        // Raw: an SA_SIGINFO handler: rustix has no safe sigaction (nor
        // the C library's signal sets).
        // SAFETY: sigaction(2) with a zeroed struct filled with our
        // handler (SA_SIGINFO: the three-argument form it has), an empty
        // mask and flags; a null old action is allowed. The handler calls
        // only async-signal-safe functions.
        let rc = unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = handler as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            // Every caught signal blocked while the handler runs: a
            // delivery after this one waits for it to return, so the
            // handlers run (and number the deliveries) in the kernel's
            // order. (Unblocked, a SIGTSTP sent right after a SIGCONT
            // could run its handler inside the SIGCONT's, before the
            // SIGCONT's number and mark, which then dropped the later
            // stop's mark and looked the later of the two.)
            libc::sigemptyset(&mut new.sa_mask);
            for &c in caught {
                libc::sigaddset(&mut new.sa_mask, c);
            }
            libc::sigaction(s, &new, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let caught = caught.to_vec();
    std::thread::Builder::new()
        .name("pkit-signals".into())
        .spawn(move || receiver(&caught))?;
    Ok(())
}

/// The one thread with the caught signals unblocked: their handler runs
/// here, between pauses.
fn receiver(caught: &[i32]) {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
    // Raw: rustix's sigprocmask is only in its unsafe `runtime` module, and
    // it has no pause.
    // SAFETY: sigemptyset initialises the set, sigaddset adds valid
    // numbers; pthread_sigmask changes this thread's mask only; pause(2)
    // just waits for a signal.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for &s in caught {
            libc::sigaddset(set.as_mut_ptr(), s);
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, set.as_ptr(), std::ptr::null_mut());
        loop {
            libc::pause();
        }
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let saved = io::Error::last_os_error().raw_os_error();
    let (code, pid) = if info.is_null() {
        (0, 0)
    } else {
        // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO
        // handler; si_pid is read as the union member every signal sent
        // by kill(2) or a terminal fills (0 where nothing set it).
        unsafe { ((*info).si_code, (*info).si_pid()) }
    };
    let origin = if from_kernel(code, pid) {
        FROM_KERNEL
    } else if pid != 0
        && rustix::process::getppid().is_some_and(|p| p.as_raw_nonzero().get() == pid)
    {
        // getppid(2) is async-signal-safe.
        FROM_PARENT
    } else {
        FROM_PROCESS
    };
    let Some(n) = usize::try_from(sig).ok().filter(|&n| n < MAX_SIGNAL) else {
        return;
    };
    let mark = &PENDING[n];
    // This delivery's number, before its mark: whoever takes the mark
    // reads a number at least this one's.
    let number = DELIVERIES.fetch_add(1, Ordering::AcqRel) + 1;
    LAST[n].store(number, Ordering::Release);
    // What the kernel does with pending signals: a continue drops a
    // pending stop, a stop a pending continue.
    if sig == libc::SIGCONT {
        for s in STOPS {
            PENDING[s as usize].store(0, Ordering::Release);
        }
    } else if STOPS.contains(&sig) {
        PENDING[libc::SIGCONT as usize].store(0, Ordering::Release);
    }
    let fd = WRITE_FD.load(Ordering::Acquire);
    // A new mark wakes the run loop (an old one has its byte already, or
    // the loop is about to take it).
    if mark.fetch_or(origin, Ordering::AcqRel) == 0 && fd >= 0 {
        // Raw: in the signal handler: the one async-signal-safe call, on a
        // raw fd kept in an atomic (no BorrowedFd for rustix's write).
        // SAFETY: write(2) is async-signal-safe; one byte from a live
        // array; the pipe is non-blocking, so a full pipe (which wakes the
        // loop all the same) fails with EAGAIN instead of hanging the
        // handler.
        unsafe { libc::write(fd, [0u8].as_ptr().cast(), 1) };
    }
    if let Some(e) = saved {
        set_errno(e);
    }
}

/// Restores `errno` at the end of the handler.
fn set_errno(e: i32) {
    // Raw: errno itself has no rustix form.
    // SAFETY: each platform's errno location is this thread's own.
    unsafe {
        #[cfg(target_os = "linux")]
        {
            *libc::__errno_location() = e;
        }
        #[cfg(any(target_os = "macos", target_os = "freebsd"))]
        {
            *libc::__error() = e;
        }
        #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
        {
            *libc::__errno() = e;
        }
        // DragonFly's C library exports `__errno_location` (its `__error`
        // is an inline function of errno.h).
        #[cfg(target_os = "dragonfly")]
        {
            *libc::__errno_location() = e;
        }
        #[cfg(not(any(
            target_os = "linux",
            target_os = "macos",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "dragonfly"
        )))]
        {
            let _ = e;
        }
    }
}

/// Whether a signal with this `si_code` and `si_pid` came from the kernel
/// (a terminal's Ctrl-C, a hang-up) rather than from a process's kill(2).
fn from_kernel(code: i32, pid: i32) -> bool {
    #[cfg(target_os = "linux")]
    {
        let _ = pid;
        code == libc::SI_KERNEL
    }
    // FreeBSD: kill(2) gives SI_USER, sigqueue(2) SI_QUEUE, thr_kill(2)
    // SI_LWP; the terminal's signals come with SI_KERNEL.
    #[cfg(target_os = "freebsd")]
    {
        const SI_USER: i32 = 0x10001;
        const SI_QUEUE: i32 = 0x10002;
        const SI_LWP: i32 = 0x10007;
        let _ = pid;
        !matches!(code, SI_USER | SI_QUEUE | SI_LWP)
    }
    // macOS sets no code for either: si_pid is the process in whose
    // context the signal was sent, 0 for the kernel's own. (A terminal
    // emulator's pty can make its Ctrl-C look sent by the emulator: then
    // it counts as a request to end, whose first one is forwarded all the
    // same.) NetBSD, OpenBSD and DragonFly take the same test, not
    // checked on them: a kill(2) fills in si_pid (POSIX's SI_USER).
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        let _ = code;
        pid == 0
    }
}

/// The read end of the self-pipe, as the run loop reads it.
pub struct Signals {
    fd: AsyncFd<OwnedFd>,
    ready: VecDeque<Received>,
    parent: super::parent::Parent,
}

impl Signals {
    /// The self-pipe [`install`] made. Needs a Tokio runtime.
    pub fn new() -> io::Result<Signals> {
        let fd = READER
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| io::Error::other("the signal handlers are not installed"))?;
        // SAFETY: an OwnedFd stays open and keeps its fd until dropped,
        // which happens with the AsyncFd.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Signals {
            fd,
            ready: VecDeque::new(),
            parent: super::parent::Parent::default(),
        })
    }

    /// The next signal.
    pub async fn recv(&mut self) -> io::Result<Received> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Ok(r);
            }
            self.take_pending();
            if !self.ready.is_empty() {
                continue;
            }
            // Nothing pending: wait for a wake-up byte, and empty the pipe
            // (the marks are read next).
            let mut guard = self.fd.readable().await?;
            let mut buf = [0u8; 512];
            loop {
                let e = match rustix::io::read(self.fd.get_ref(), &mut buf) {
                    Ok(0) => return Err(io::Error::other("the signal pipe was closed")),
                    Ok(_) => continue,
                    Err(e) => io::Error::from(e),
                };
                match e.kind() {
                    io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        break;
                    }
                    io::ErrorKind::Interrupted => {}
                    _ => return Err(e),
                }
            }
        }
    }

    /// Takes the pending marks, in the order of the signal numbers (as
    /// the kernel delivers pending signals): the kernel's first. The stop
    /// signals taken together are one, the first of them (from the kernel
    /// only if all were): the kernel hands a signalfd one, pkit stops,
    /// and the SIGCONT that continues it discards the others, still
    /// pending; taken here, they would each have stopped pkit again.
    fn take_pending(&mut self) {
        // The first stop signal taken, where it goes, and all their origins.
        let mut stop: Option<(i32, usize, u8)> = None;
        for (signo, mark) in PENDING.iter().enumerate() {
            let origins = mark.swap(0, Ordering::AcqRel);
            let signo = signo as i32;
            if origins != 0 && STOPS.contains(&signo) {
                // (Read after the mark: this delivery's number, or a later
                // one's, whose stop is then taken with this one.)
                let number = LAST[signo as usize].load(Ordering::Acquire);
                STOP_TAKEN.fetch_max(number, Ordering::AcqRel);
                let at = self.ready.len();
                let (_, _, all) = stop.get_or_insert((signo, at, 0));
                *all |= origins;
                continue;
            }
            for origin in [FROM_KERNEL, FROM_PROCESS, FROM_PARENT] {
                if origins & origin != 0 {
                    let from_parent = origin == FROM_PARENT && self.parent_may_relay();
                    self.ready.push_back(Received {
                        signo,
                        from_kernel: origin == FROM_KERNEL,
                        from_parent,
                    });
                }
            }
        }
        if let Some((signo, at, all)) = stop {
            // (A stop is never a request to end: whether pkit's parent
            // sent it does not matter.)
            let one = Received {
                signo,
                from_kernel: all == FROM_KERNEL,
                from_parent: false,
            };
            self.ready.insert(at, one);
        }
    }

    fn parent_may_relay(&mut self) -> bool {
        self.parent
            .may_relay(rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get()))
    }
}
