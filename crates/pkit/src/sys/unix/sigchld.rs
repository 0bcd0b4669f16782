//! Exit notification without pidfds: a SIGCHLD handler that wakes every
//! waiter, which then asks the kernel about its own child (`waitid` with
//! `WNOHANG | WNOWAIT`), as tokio's process driver does.
//!
//! The handler only writes one byte to a non-blocking pipe (async-signal
//! safe) and then calls whatever handler was installed before it, so an
//! application's own SIGCHLD handler keeps working. A thread reads the pipe
//! and wakes the async waiters (a [`tokio::sync::Notify`]) and the blocking
//! ones (a condition variable). Every wait also re-checks on a short timer,
//! so a handler replaced later by someone who does not chain to it slows
//! waits down but never hangs them.
//!
//! Installing a handler changes one thing for an application that had set
//! SIGCHLD to `SIG_IGN`: its children are no longer reaped by the kernel
//! (pkit needs their exit statuses), as with tokio's process support.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[cfg(test)]
use std::time::Instant;

/// How often a waiter re-checks on its own, whatever the signals say.
pub(crate) const RECHECK: Duration = Duration::from_millis(250);

struct Notifier {
    notify: tokio::sync::Notify,
    /// Bumped on every wake-up; blocking waiters sleep until it changes.
    generation: Mutex<u64>,
    changed: Condvar,
    /// Pids of dropped children still running: reaped once they exit.
    orphans: Mutex<Vec<i32>>,
}

/// The pipe's write end, for the handler (-1 until installed).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// The pipe's read end (-1 until installed), which the notifier thread
/// owns, and the pipe's identity (`sys::file_id`): a forked copy, which
/// has its maker's pipe but not its thread, closes its copies of both
/// ends once it made its own (see [`install`]).
static READ_FD: AtomicI32 = AtomicI32::new(-1);
static PIPE_DEV: AtomicU64 = AtomicU64::new(0);
static PIPE_INO: AtomicU64 = AtomicU64::new(0);
/// The previous `sigaction`, for chaining (boxed, leaked, set once).
static PREVIOUS: AtomicUsize = AtomicUsize::new(0);
/// Whether the handler is installed: set once, and inherited with it by a
/// forked copy.
static HANDLER: AtomicBool = AtomicBool::new(false);
/// Wake-ups seen, for tests.
static WAKES: AtomicU64 = AtomicU64::new(0);

/// This process's notifier (leaked; null: none could be made, exits are
/// polled), valid when [`READY`] is this process's identity.
static CURRENT: AtomicPtr<Notifier> = AtomicPtr::new(std::ptr::null_mut());
/// The identity (`sys::pid::identity`) whose notifier [`CURRENT`] is.
static READY: AtomicU64 = AtomicU64::new(0);
/// The identity of the process making its notifier.
static CLAIM: AtomicU64 = AtomicU64::new(0);

/// This process's notifier, made at the first use. A copy forked (plain
/// `fork`) after its maker's first use inherits the notifier's memory and
/// the handler, but not the thread that reads the pipe: it makes its own
/// (a new pipe, whose write end the handler is given, and a new thread),
/// as a first use would, and never uses its maker's state (whose locks a
/// thread it does not have may hold). A copy forked while its maker was
/// making one makes its own too. (Atomics rather than a `OnceLock`, whose
/// initialisation a copy forked half way would wait for for ever.)
fn notifier() -> Option<&'static Notifier> {
    let me = crate::sys::pid::identity();
    loop {
        if READY.load(Ordering::Acquire) == me {
            // SAFETY: a leaked `Notifier`, never freed, or null.
            return unsafe { CURRENT.load(Ordering::Acquire).as_ref() };
        }
        let claimed = CLAIM.load(Ordering::Acquire);
        if claimed == me {
            // Another thread of this process is making it.
            std::thread::yield_now();
            continue;
        }
        if CLAIM
            .compare_exchange(claimed, me, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let made = match install() {
                Ok(n) => n as *const Notifier as *mut Notifier,
                Err(e) => {
                    tracing::warn!(target: "pkit", error = %e, "no SIGCHLD handler: child exits are found by polling");
                    std::ptr::null_mut()
                }
            };
            CURRENT.store(made, Ordering::Release);
            READY.store(me, Ordering::Release);
        }
    }
}

/// Makes sure the handler is installed (before the first spawn, so no exit
/// goes unnoticed).
pub(crate) fn ensure() {
    let _ = notifier();
}

/// Waits (asynchronously) until `done` returns `Some`, checking it after
/// every SIGCHLD and at least every [`RECHECK`].
pub(crate) async fn wait_until<T>(
    mut done: impl FnMut() -> std::io::Result<Option<T>>,
) -> std::io::Result<T> {
    let n = notifier();
    loop {
        let notified = n.map(|n| n.notify.notified());
        let mut notified = std::pin::pin!(notified);
        if let Some(f) = notified.as_mut().as_pin_mut() {
            // Registered before the check: a wake-up after it is not lost.
            f.enable();
        }
        if let Some(v) = done()? {
            return Ok(v);
        }
        match notified.as_pin_mut() {
            Some(f) => {
                let _ = tokio::time::timeout(RECHECK, f).await;
            }
            None => tokio::time::sleep(RECHECK / 10).await,
        }
    }
}

/// Blocks until `done` returns `Some` or `deadline` passes (`Ok(None)`).
#[cfg(test)]
pub(crate) fn wait_blocking_until<T>(
    deadline: Option<Instant>,
    mut done: impl FnMut() -> std::io::Result<Option<T>>,
) -> std::io::Result<Option<T>> {
    let n = notifier();
    loop {
        let seen = n.map(|n| *n.generation.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(v) = done()? {
            return Ok(Some(v));
        }
        let mut nap = RECHECK;
        if let Some(d) = deadline {
            let now = Instant::now();
            if now >= d {
                return Ok(None);
            }
            nap = nap.min(d - now);
        }
        match (n, seen) {
            (Some(n), Some(seen)) => {
                let g = n.generation.lock().unwrap_or_else(|e| e.into_inner());
                let _ = n
                    .changed
                    .wait_timeout_while(g, nap, |g| *g == seen)
                    .unwrap_or_else(|e| e.into_inner());
            }
            _ => std::thread::sleep(nap.min(RECHECK / 10)),
        }
    }
}

/// Hands a dropped, still running child to the notifier thread, which
/// reaps it once it exits (without a handler: polled by a short-lived
/// thread).
pub(crate) fn reap_later(pid: i32) {
    match notifier() {
        Some(n) => n
            .orphans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pid),
        None => {
            let _ = crate::sys::spawn_thread("pkit-reap", move || {
                while !reap_now(pid) {
                    std::thread::sleep(RECHECK);
                }
            });
        }
    }
}

/// How many SIGCHLD wake-ups the notifier thread has handled.
#[cfg(test)]
pub(crate) fn wakes() -> u64 {
    WAKES.load(Ordering::Relaxed)
}

/// Makes this process's notifier: a pipe, the thread that reads it, and
/// the handler that writes to it (installed once; a forked copy has its
/// maker's).
fn install() -> std::io::Result<&'static Notifier> {
    let (r, w) = super::super::stop_pipe()?;
    let r: OwnedFd = r;
    // The reader blocks: clear O_NONBLOCK on its end only.
    rustix::fs::fcntl_setfl(&r, rustix::fs::OFlags::empty())?;
    let n: &'static Notifier = Box::leak(Box::new(Notifier {
        notify: tokio::sync::Notify::new(),
        generation: Mutex::new(0),
        changed: Condvar::new(),
        orphans: Mutex::new(Vec::new()),
    }));
    let (read_fd, id) = (r.as_raw_fd(), crate::sys::file_id(r.as_fd()));
    crate::sys::spawn_thread("pkit-sigchld", move || pump(r, n))?;
    // A copy's maker's pipe (none in the process that made the first): its
    // read end, owned by a thread that is not here, and its write end.
    let inherited = (
        PIPE_DEV.load(Ordering::Acquire),
        PIPE_INO.load(Ordering::Acquire),
    );
    let old_read = READ_FD.swap(read_fd, Ordering::AcqRel);
    if let Some((dev, ino)) = id {
        PIPE_DEV.store(dev, Ordering::Release);
        PIPE_INO.store(ino, Ordering::Release);
    }
    // A copy's handler wrote to its maker's pipe, read by its maker's
    // thread: now to this one. Onto the same number where it still names
    // the maker's pipe (`dup3` replaces it at once: a handler running now
    // writes to one pipe or the other, never to a closed or reused
    // number), the new one closed then; else the new one's number.
    let old_wake = WAKE_FD.load(Ordering::Acquire);
    if old_wake >= 0 && redirect(&w, old_wake, inherited) {
        drop(w);
    } else {
        WAKE_FD.store(w.as_raw_fd(), Ordering::Release);
        std::mem::forget(w); // the handler may write to it for the process's life
    }
    // The maker's read end: no thread here reads it (its copy in this
    // process kept a pipe of the maker's open for ever, one per forked
    // generation).
    crate::sys::close_inherited(old_read, inherited);
    if HANDLER.load(Ordering::Acquire) {
        return Ok(n);
    }
    // SAFETY: sigaction(2) with a zeroed struct filled with our handler, an
    // empty mask and flags; the old action is written into a buffer we own.
    // The handler only calls async-signal-safe functions (write, and the
    // previous handler, which was itself installed as a signal handler).
    unsafe {
        // Raw: installing a handler: rustix has no safe sigaction.
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = handler as *const () as usize;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut new.sa_mask);
        let old = Box::into_raw(Box::new(std::mem::zeroed::<libc::sigaction>()));
        if libc::sigaction(libc::SIGCHLD, &new, old) != 0 {
            let e = std::io::Error::last_os_error();
            drop(Box::from_raw(old));
            return Err(e);
        }
        // Our own handler already (a copy forked half way through its
        // maker's install): nothing to chain to.
        if (*old).sa_sigaction == handler as *const () as usize {
            drop(Box::from_raw(old));
        } else {
            PREVIOUS.store(old as usize, Ordering::Release);
        }
    }
    HANDLER.store(true, Ordering::Release);
    Ok(n)
}

/// Puts the write end `w` on `old`, the number of an inherited write end,
/// if it still names the pipe `inherited` (see `sys::close_inherited`);
/// whether it did.
fn redirect(w: &OwnedFd, old: RawFd, inherited: (u64, u64)) -> bool {
    crate::sys::names_file(old, inherited) && dup_onto(w, old)
}

/// `dup3(w, old, O_CLOEXEC)`: whether it did.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn dup_onto(w: &OwnedFd, old: RawFd) -> bool {
    // Raw: dup3 onto a number no `OwnedFd` here holds (rustix's wants one
    // for the target).
    // SAFETY: `old` names the maker's pipe, which nothing of this process
    // owns but the handler (through WAKE_FD); replacing it atomically is
    // what the handler needs.
    unsafe { libc::dup3(w.as_raw_fd(), old, libc::O_CLOEXEC) == old }
}

/// No `dup3` (close-on-exec set atomically) everywhere: the maker's write
/// end stays open there.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn dup_onto(_: &OwnedFd, _: RawFd) -> bool {
    false
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let saved = std::io::Error::last_os_error().raw_os_error();
    let fd: RawFd = WAKE_FD.load(Ordering::Acquire);
    if fd >= 0 {
        // Raw: in the signal handler: the one async-signal-safe call, on a raw fd kept in an atomic
        // (no BorrowedFd to hand rustix).
        // SAFETY: write(2) is async-signal-safe; the pipe is non-blocking,
        // so a full pipe (wake-ups pending anyway) returns EAGAIN at once.
        unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
    }
    let prev = PREVIOUS.load(Ordering::Acquire) as *const libc::sigaction;
    if !prev.is_null() {
        // SAFETY: PREVIOUS points to a leaked sigaction written once by
        // sigaction(2) before this handler could run, never freed.
        let prev = unsafe { &*prev };
        let f = prev.sa_sigaction;
        if f != libc::SIG_DFL && f != libc::SIG_IGN {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: installed with SA_SIGINFO, so it has this signature.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(f) };
                f(sig, info, ctx);
            } else {
                // SAFETY: installed without SA_SIGINFO: a one-argument handler.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(f) };
                f(sig);
            }
        }
    }
    if let Some(e) = saved {
        set_errno(e);
    }
}

/// Sets this thread's `errno` (the handler restores it at its end; the
/// trampoline's refused steps report through it).
pub(super) fn set_errno(e: i32) {
    // Raw: errno itself has no rustix form (restored after the handler's write).
    // SAFETY: each platform's errno location is this thread's own.
    unsafe {
        // DragonFly's C library exports `__errno_location` too (its
        // `__error` is an inline function of errno.h).
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "dragonfly"))]
        {
            *libc::__errno_location() = e;
        }
        #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
        {
            *libc::__error() = e;
        }
        #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
        {
            *libc::__errno() = e;
        }
        #[cfg(not(any(
            target_os = "linux",
            target_os = "android",
            target_os = "dragonfly",
            target_os = "macos",
            target_os = "ios",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd"
        )))]
        {
            let _ = e;
        }
    }
}

/// The notifier thread: one wake-up per batch of bytes read.
fn pump(r: OwnedFd, n: &'static Notifier) {
    let mut buf = [0u8; 64];
    loop {
        match rustix::io::read(&r, &mut buf) {
            Ok(0) => return,
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => std::thread::sleep(RECHECK),
        }
        WAKES.fetch_add(1, Ordering::Relaxed);
        {
            let mut g = n.generation.lock().unwrap_or_else(|e| e.into_inner());
            *g += 1;
        }
        n.changed.notify_all();
        n.notify.notify_waiters();
        let mut orphans = n.orphans.lock().unwrap_or_else(|e| e.into_inner());
        orphans.retain(|&pid| !reap_now(pid));
    }
}

/// Reaps `pid` if it has exited; returns whether it is gone.
pub(crate) fn reap_now(pid: i32) -> bool {
    use rustix::process::{waitpid, Pid, WaitOptions};
    let Some(pid) = Pid::from_raw(pid) else {
        return true;
    };
    loop {
        match waitpid(Some(pid), WaitOptions::NOHANG) {
            Ok(None) => return false,
            Err(rustix::io::Errno::INTR) => continue,
            // Reaped, or ECHILD: already reaped by someone else.
            _ => return true,
        }
    }
}
