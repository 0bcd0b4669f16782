//! A new process group's first process between its birth and its `exec`,
//! published for the group's signals, `kill` and `close`.
//!
//! The start of a group's first process holds the leader's mutex (no second
//! start may lead another group) and waits, suspended by `CLONE_VFORK`,
//! until the child has executed the program. A child stopped before that
//! (a `pre_exec` hook that raises SIGSTOP, a `kill -STOP` from outside)
//! leads no process group the group's signals could reach yet, and they
//! took the leader's mutex: nothing reached it until it was continued from
//! outside. So the clone (`clone3`) has the kernel write the child's pidfd
//! (`CLONE_PIDFD`) and then its pid (`CLONE_PARENT_SETTID`) here, in the
//! parent's memory, before the child first runs: another thread reaches
//! the child through that pidfd while its start still waits.
//!
//! The pid is written after the pidfd has been installed, so a pid read
//! means a usable pidfd. The descriptor stays the start's: as soon as its
//! clone has returned (the child has executed the program, or failed), and
//! before anything may close that descriptor, the start takes the birth
//! back ([`Birth::take_back`], under the birth's own mutex, which a signal
//! holds across its `pidfd_send_signal`): from then on no signal reads it.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

/// Where the kernel writes a first process's pidfd and pid (see the module
/// docs). Boxed or in an `Arc`: its address must not move during the clone.
#[derive(Debug)]
pub(crate) struct Birth {
    /// The pidfd (`CLONE_PIDFD`); -1 until written.
    pidfd: AtomicI32,
    /// The pid (`CLONE_PARENT_SETTID`), written once the pidfd is
    /// installed and before the child runs; 0 until then, -1 when the
    /// clone could not publish it (`clone3` refused: an older clone) or
    /// once the start has taken the birth back.
    pid: AtomicI32,
    /// Held by a signal across its send through the pidfd, and by the
    /// start while it takes the birth back: a pidfd a signal is using is
    /// never closed under it.
    sending: Mutex<()>,
}

/// What a signal to a [`Birth`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Sent through the child's pidfd.
    Sent,
    /// The child is not born yet (its clone has not got that far).
    NotYet,
    /// The clone does not publish the child (see [`Birth::unpublished`]).
    Unreachable,
}

impl Default for Birth {
    fn default() -> Self {
        Birth {
            pidfd: AtomicI32::new(-1),
            pid: AtomicI32::new(0),
            sending: Mutex::new(()),
        }
    }
}

impl Birth {
    /// Where the kernel is to write the pidfd (`clone_args.pidfd`).
    pub(super) fn pidfd_ptr(&self) -> u64 {
        self.pidfd.as_ptr() as u64
    }

    /// Where the kernel is to write the pid (`clone_args.parent_tid`).
    pub(super) fn pid_ptr(&self) -> u64 {
        self.pid.as_ptr() as u64
    }

    /// The pidfd the kernel wrote (-1 if none).
    pub(super) fn pidfd(&self) -> i32 {
        self.pidfd.load(Ordering::Acquire)
    }

    /// Notes that the child is spawned by a clone that publishes nothing.
    pub(super) fn unpublished(&self) {
        self.pid.store(-1, Ordering::Release);
    }

    /// The start takes the child's pidfd back, as soon as its clone has
    /// returned and before anything may close that pidfd (a failed child
    /// is reaped and its pidfd closed right away): waits for a signal
    /// sending through it, and from then on no signal reads it (they find
    /// the birth unreachable and go the way of a started group).
    pub(super) fn take_back(&self) {
        let _sending = self.sending.lock().unwrap_or_else(|e| e.into_inner());
        self.pid.store(-1, Ordering::Release);
    }

    /// `f` of the child's pid, once it is born and until its start takes
    /// it back; else why not ([`Reach::NotYet`], [`Reach::Unreachable`]).
    /// `f` runs before the start may take the birth back: the child is
    /// not reaped, its pid not reused, while it runs.
    pub(crate) fn with_pid<T>(&self, f: impl FnOnce(i32) -> T) -> Result<T, Reach> {
        let _sending = self.sending.lock().unwrap_or_else(|e| e.into_inner());
        match self.pid.load(Ordering::Acquire) {
            0 => Err(Reach::NotYet),
            p if p < 0 => Err(Reach::Unreachable),
            p => Ok(f(p)),
        }
    }

    /// Sends `sig` to the child through its pidfd, once it is born and
    /// until its start takes it back.
    pub(crate) fn signal(&self, sig: i32) -> (Reach, io::Result<()>) {
        let _sending = self.sending.lock().unwrap_or_else(|e| e.into_inner());
        match self.pid.load(Ordering::Acquire) {
            0 => return (Reach::NotYet, Ok(())),
            p if p < 0 => return (Reach::Unreachable, Ok(())),
            _ => {}
        }
        let fd = self.pidfd();
        if fd < 0 {
            return (Reach::Unreachable, Ok(()));
        }
        // SAFETY: the kernel installed `fd` before it wrote the pid read
        // above, and the start, which owns it, may close it only after
        // `take_back`, which waits for the `sending` lock we hold and then
        // makes the pid read -1: it is open for this call.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        (Reach::Sent, super::signal::pidfd_signal(fd, sig))
    }
}
