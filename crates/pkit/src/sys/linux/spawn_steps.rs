//! The steps every Linux spawner shares (the vfork-class one in `spawn.rs`,
//! the forked one for `pre_exec` hooks and detached starts in `forked.rs`,
//! the guard's orphan in `orphan.rs`): the pidfd check before a spawn, all
//! signals blocked around the clone, the child's own stack, and the child's
//! failure code turned into an error.

use std::ffi::{c_int, c_void};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd};

use super::prexec::Step;
use crate::sys::SpawnError;

/// Whether this kernel has pidfds (`pidfd_open` came with Linux 5.3,
/// `CLONE_PIDFD` with 5.2): a spawn that could not hold its child by a
/// pidfd is refused before the program runs. The kernel's answer is kept
/// once given; a moment's shortage (no free descriptor or memory) is not
/// an answer: that spawn fails with it, and the next one asks again.
pub(super) fn pidfds_supported() -> Result<(), SpawnError> {
    // Not a `OnceLock`: see `CopyOnce`.
    static REFUSED: crate::sys::CopyOnce<Option<i32>> = crate::sys::CopyOnce::new();
    let refused = *REFUSED.get_or_try_init(|| {
        let errno = match crate::sys::fault::check(crate::sys::fault::Point::PidfdOpen) {
            Err(errno) => Some(errno),
            Ok(()) => {
                let me = rustix::process::getpid();
                rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty())
                    .err()
                    .map(|e| e.raw_os_error())
            }
        };
        match errno {
            Some(e @ (libc::EMFILE | libc::ENFILE | libc::ENOMEM)) => {
                Err(SpawnError::Os(io::Error::from_raw_os_error(e)))
            }
            answer => Ok(answer),
        }
    })?;
    match refused {
        None => Ok(()),
        Some(errno) => {
            let e = io::Error::from_raw_os_error(errno);
            Err(SpawnError::Os(io::Error::new(
                e.kind(),
                format!("this kernel has no pidfds (Linux 5.3 or later is required): {e}"),
            )))
        }
    }
}

/// The child's stack. It runs a handful of system calls: 64 KiB is plenty,
/// and stays below glibc's mmap threshold (a cheap allocation).
pub(super) const STACK_SIZE: usize = 64 * 1024;

/// The pidfd a `CLONE_PIDFD` clone stored into `raw`, once the clone
/// succeeded (`clone_err` is its error otherwise).
///
/// Without one (unreachable where [`pidfds_supported`] passed:
/// `CLONE_PIDFD` is older than `pidfd_open`) the child is not signalled by
/// number: if this process ignores SIGCHLD the kernel may already have
/// reaped it and its pid may name another process. It joined its container
/// before exec, and the container's teardown ends it.
pub(super) fn cloned_pidfd(
    clone_err: Option<io::Error>,
    raw: c_int,
) -> Result<OwnedFd, SpawnError> {
    if let Some(e) = clone_err {
        return Err(SpawnError::Os(e));
    }
    if raw < 0 {
        return Err(SpawnError::Os(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel gave no pidfd for the child (Linux 5.3 or later is required)",
        )));
    }
    // SAFETY: the kernel stored a new pidfd (CLONE_PIDFD) that nothing else
    // owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `finish` with the child's failure code (0: none) in hand.
pub(super) fn finish_code(
    pid: i32,
    pidfd: OwnedFd,
    code: i32,
) -> Result<(i32, OwnedFd), SpawnError> {
    match code {
        0 => Ok((pid, pidfd)),
        code => {
            let child = super::child::PidfdChild::new(pid, pidfd);
            let _ = child.wait_blocking(None);
            drop(child);
            Err(failure(code))
        }
    }
}

/// The error of a child's failure code (its step, and the errno).
pub(super) fn failure(code: i32) -> SpawnError {
    let (step, source) = Step::unpack(code);
    match step {
        Step::Exec => SpawnError::Exec(source),
        Step::Chdir => SpawnError::Chdir(source),
        Step::Setup(step) => SpawnError::Step(step, source),
    }
}

/// The child's stack: uninitialised heap memory, 16-byte aligned.
///
/// One stack is kept for the next spawn when dropped (issue 20): a 64 KiB
/// allocation and its free per spawn each made glibc consolidate its fast
/// bins, which made the run's many small allocations (the environment
/// copy's) take its slow path. Every spawner's clone has `CLONE_VFORK`, so
/// once the clone returns no child runs on the stack any more and it can
/// be handed to the next one. A spawn that finds the slot taken or busy
/// (another thread's spawn) allocates its own, as before.
pub(super) struct Stack(Vec<u128>);

/// The kept stack (see [`Stack`]).
static SPARE_STACK: std::sync::Mutex<Option<Vec<u128>>> = std::sync::Mutex::new(None);

impl Stack {
    pub(super) fn new() -> Stack {
        let kept = match SPARE_STACK.try_lock() {
            Ok(mut slot) => slot.take(),
            Err(_) => None,
        };
        Stack(kept.unwrap_or_else(|| Vec::with_capacity(STACK_SIZE / 16)))
    }

    pub(super) fn base(&mut self) -> *mut u8 {
        self.0.as_mut_ptr().cast()
    }

    pub(super) fn top(&mut self) -> *mut c_void {
        // SAFETY: one past the end of the allocation, which is STACK_SIZE
        // bytes long; the stack grows down from there.
        unsafe { self.base().add(STACK_SIZE).cast() }
    }
}

impl Drop for Stack {
    /// Keeps the stack for the next spawn if the slot is free (see
    /// [`Stack`]); the caller drops it only after its clone returned.
    fn drop(&mut self) {
        if let Ok(mut slot) = SPARE_STACK.try_lock() {
            if slot.is_none() {
                *slot = Some(std::mem::take(&mut self.0));
            }
        }
    }
}

pub(crate) fn block_all_signals() -> libc::sigset_t {
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises `all`; pthread_sigmask writes `old`.
    unsafe {
        // Raw: rustix's sigprocmask is only in its unsafe `runtime` module, and a sigset has no
        // safe form there.
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr());
        old.assume_init()
    }
}

pub(crate) fn restore_signals(old: &libc::sigset_t) {
    // SAFETY: `old` is the mask pthread_sigmask returned above.
    unsafe {
        // Raw: as above (no safe sigprocmask in rustix).
        libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
}
