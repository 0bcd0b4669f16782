//! Copies of the owner that are not the owner: a child the application
//! forks without `exec` (which may live on long after the owner), and
//! pkit's own forked child running `pre_exec` hooks (which may block, or
//! stop, before its `exec`). Each would hold a copy of the owner's end of
//! the guard's socket, and the guard, which learns of the owner's death
//! from that end closing, would wait for the copy too: an owner SIGKILLed
//! meanwhile left its groups running. In such a copy the owner's end is
//! replaced (same descriptor number) by a socket whose peer is closed, so
//! the copy holds nothing of the guard's, and its own handle on the guard
//! reads as gone.
//!
//! The owner's end is known to forked copies from the moment it exists:
//! it is made, and noted, while no fork can copy this process (a
//! `pthread_atfork` prepare handler waits for the making), so a thread
//! forking while another starts the guard never copies an end not yet
//! noted (before, the end was noted only once the guard had reported in,
//! and a fork meanwhile, milliseconds, kept it); and an end given up
//! (the guard's start failed) is un-noted before it is closed, so its
//! number, free again, is never replaced in a copy.

use crate::sys::AtForkOnce;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Which guard a socket end is: a process may have both (Linux: groups of
/// the portable backend beside the others), each with its own socket.
#[derive(Clone, Copy)]
pub(super) enum Which {
    /// Linux's guard (elsewhere only the portable one exists).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Native = 0,
    Portable = 1,
}

/// The owner's ends of its guards' sockets, by [`Which`] (-1: none).
/// A guard's socket is kept for the process's life once started.
static OWNER_ENDS: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];
/// A socket whose peer is closed, put over [`OWNER_ENDS`] in a copy.
static DEAD_END: AtomicI32 = AtomicI32::new(-1);
/// Held while an owner's end is made or given up, and by a `fork` from
/// its prepare handler to its parent (or child) handler: no fork copies
/// this process in between.
static MAKING: AtomicBool = AtomicBool::new(false);
/// The `pthread_atfork` handlers, registered by the first guard's start
/// (noted in a copy by [`at_fork`]: a copy forked as they were being
/// registered has them).
static HOOKS: AtForkOnce = AtForkOnce::new();

/// The owner's end of a guard's socket, noted for forked copies (see the
/// module docs) until it is dropped; [`OwnerEnd::keep`] keeps it noted.
pub(super) struct OwnerEnd {
    which: Which,
    fd: Option<OwnedFd>,
}

impl OwnerEnd {
    /// The guard started: this end stays noted, for the process's life.
    pub(super) fn keep(mut self) -> OwnedFd {
        self.fd.take().expect("an owner end is kept once")
    }
}

impl AsFd for OwnerEnd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_ref().expect("an owner end is kept once").as_fd()
    }
}

impl Drop for OwnerEnd {
    /// The guard's start failed: un-noted, then closed, with no fork in
    /// between (a copy would replace the number, free again, whatever
    /// the owner opens there next).
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            let _making = Making::enter();
            OWNER_ENDS[self.which as usize].store(-1, Ordering::Release);
            drop(fd);
        }
    }
}

/// Makes a guard's socket pair with `pair` (the owner's end first) and
/// notes the owner's end, so that no fork of this process, from another
/// thread or a signal handler, copies it unnoted. `pair` must not
/// allocate (a fork waits meanwhile in its prepare handler, which other
/// libraries' handlers, an allocator's, may run after taking locks).
pub(super) fn owner_pair(
    which: Which,
    pair: impl FnOnce() -> io::Result<(OwnedFd, OwnedFd)>,
) -> io::Result<(OwnerEnd, OwnedFd)> {
    // Not a `Once` (see `AtForkOnce`): a copy forked while another thread
    // of its parent runs this (its first guard's start) registers the
    // handlers unless they were at the fork ([`at_fork`] ran in it).
    HOOKS.register(hook);
    let making = Making::enter();
    let (owner, guard) = pair()?;
    OWNER_ENDS[which as usize].store(owner.as_raw_fd(), Ordering::Release);
    drop(making);
    Ok((
        OwnerEnd {
            which,
            fd: Some(owner),
        },
        guard,
    ))
}

/// Makes the dead socket and registers the `pthread_atfork` handlers;
/// whether they are.
fn hook() -> bool {
    let Some(dead) = dead_socket() else {
        return false;
    };
    // Kept for the process's life (a copy may be forked at any time).
    let dead: RawFd = std::os::fd::IntoRawFd::into_raw_fd(dead);
    DEAD_END.store(dead, Ordering::Release);
    // Raw: pthread_atfork has no rustix form.
    // SAFETY: the handlers make atomic operations and sched_yield,
    // pthread_sigmask and dup3 calls only, which are async-signal-safe
    // (all a forked child of a threaded process may do before exec).
    let rc = unsafe { libc::pthread_atfork(Some(acquire), Some(release), Some(at_fork)) };
    rc == 0
}

/// [`MAKING`] held by this thread (see [`acquire`]).
struct Making;

impl Making {
    fn enter() -> Making {
        acquire();
        Making
    }
}

impl Drop for Making {
    fn drop(&mut self) {
        release();
    }
}

/// The signal mask of [`MAKING`]'s holder before [`acquire`]; only the
/// holder reads or writes it.
struct HeldMask(std::cell::UnsafeCell<MaybeUninit<libc::sigset_t>>);

// SAFETY: accessed only by the thread holding MAKING (see `acquire`).
unsafe impl Sync for HeldMask {}

static HELD_MASK: HeldMask = HeldMask(std::cell::UnsafeCell::new(MaybeUninit::uninit()));

/// Takes [`MAKING`], every signal blocked until [`release`]: a handler
/// that forked on this thread meanwhile would wait for it for ever.
/// Async-signal-safe (the `pthread_atfork` prepare handler).
extern "C" fn acquire() {
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    // Raw: rustix has no safe sigset nor pthread_sigmask.
    // SAFETY: sigfillset initialises `all`; pthread_sigmask writes `old`.
    unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr());
    }
    while MAKING
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        // Raw: sched_yield, async-signal-safe (rustix's is the same call).
        // SAFETY: no arguments, no memory.
        unsafe { libc::sched_yield() };
    }
    // SAFETY: this thread holds MAKING: nobody else touches HELD_MASK.
    unsafe { *HELD_MASK.0.get() = old };
}

/// Lets [`MAKING`] go and gives this thread its signal mask back (the
/// `pthread_atfork` parent and, in the copy, child handlers).
extern "C" fn release() {
    // SAFETY: this thread holds MAKING (`acquire` wrote the mask).
    let old = unsafe { *HELD_MASK.0.get() };
    MAKING.store(false, Ordering::Release);
    // SAFETY: a mask pthread_sigmask wrote in `acquire`.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut()) };
}

/// A socket whose peer is closed, close-on-exec.
fn dead_socket() -> Option<OwnedFd> {
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    // macOS has neither SOCK_SEQPACKET for unix sockets nor SOCK_CLOEXEC:
    // a stream pair, marked close-on-exec after (a fork in between hands
    // a child a socket that is dead anyway).
    #[cfg(target_os = "macos")]
    let (kind, flags) = (SocketType::STREAM, SocketFlags::empty());
    #[cfg(not(target_os = "macos"))]
    let (kind, flags) = (SocketType::SEQPACKET, SocketFlags::CLOEXEC);
    let (dead, peer) = socketpair(AddressFamily::UNIX, kind, flags, None).ok()?;
    drop(peer);
    #[cfg(target_os = "macos")]
    rustix::io::fcntl_setfd(&dead, rustix::io::FdFlags::CLOEXEC).ok()?;
    Some(dead)
}

/// The `pthread_atfork` child handler (the application's `fork`).
extern "C" fn at_fork() {
    // SAFETY: this is the child of a fork, a copy of the owner.
    unsafe { in_forked_copy() };
    HOOKS.forked();
    release();
}

/// Replaces the owner's end of each guard's socket with a dead socket.
/// First thing in a copy: a number the copy sets up for its own use (a
/// start's stdio or `keep_fds` target) may be the owner's end's. Forgets
/// the ends (in this copy's memory), so that copies of the copy never
/// replace what the copy has put at those numbers since.
///
/// # Safety
/// Only in a forked copy of the owner (no `CLONE_VM`): async-signal-safe
/// calls only; the owner's own descriptor must not be touched.
pub(crate) unsafe fn in_forked_copy() {
    let dead = DEAD_END.load(Ordering::Acquire);
    for end in &OWNER_ENDS {
        let owner = end.load(Ordering::Acquire);
        if owner < 0 || dead < 0 {
            continue;
        }
        // This copy's own memory: its own forks leave that number alone
        // (the copy may close it and reuse it for a file of its own).
        end.store(-1, Ordering::Relaxed);
        // Raw: in a forked child: async-signal-safe system calls, no
        // allocation.
        // SAFETY: dup3 atomically closes this copy's `owner` and makes it
        // the dead socket (close-on-exec, as the owner's end is).
        #[cfg(not(target_os = "macos"))]
        unsafe {
            libc::dup3(dead, owner, libc::O_CLOEXEC)
        };
        // SAFETY: as dup3 (macOS has none), then close-on-exec again
        // (dup2 clears it on the new number).
        #[cfg(target_os = "macos")]
        unsafe {
            if libc::dup2(dead, owner) == owner {
                libc::fcntl(owner, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
}
