//! A lock that a forked copy never waits on for ever ([`CopyLock`]).
//!
//! A `std::sync::Mutex` held by one thread while another forks (plain
//! `fork`, which pkit supports) is held in the copy too, by a thread the
//! copy does not have: the copy's first attempt to take it waits for
//! ever. For a lock held across a slow step (starting the owner-death
//! guard, building the blocking facade's runtime: milliseconds) that is a
//! hang a copy forked at the wrong moment meets at its first run.
//!
//! This lock is one word holding the identity ([`identity`]: pid and fork
//! generation) of the process whose thread holds it, 0 when free. A
//! thread that finds its own process's identity there waits (yielding,
//! then polling: the locks this serves are held briefly, or around a
//! step made once); one that finds another process's (its parent's, held at the
//! fork, or an ancestor's) knows that holder is not in this process, and
//! takes the lock over. The value may have been half written at the fork:
//! it is replaced by its default, the old one leaked, not dropped.
//!
//! A child made without `pthread_atfork` handlers (a raw `clone`, `vfork`,
//! `_Fork`) keeps its parent's identity where its pid is the same number
//! (see `pid.rs`), and would wait like a thread of its parent: such
//! children are not supported copies anyway.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::Duration;

pub(crate) struct CopyLock<T> {
    /// The identity of the process whose thread holds the lock, 0 when
    /// free.
    held_by: AtomicU64,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a `CopyGuard`, which one
// thread at a time holds (`held_by`), as with a `Mutex`.
unsafe impl<T: Send> Sync for CopyLock<T> {}

/// This process's identity: never 0.
fn me() -> u64 {
    #[cfg(unix)]
    {
        crate::sys::pid::identity()
    }
    // No fork here: one process.
    #[cfg(not(unix))]
    {
        1
    }
}

impl<T: Default> CopyLock<T> {
    pub(crate) const fn new(value: T) -> CopyLock<T> {
        CopyLock {
            held_by: AtomicU64::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock: waits while another thread of this process holds
    /// it, takes it over from a process this one was forked from.
    pub(crate) fn lock(&self) -> CopyGuard<'_, T> {
        let me = me();
        let mut waits = 0u32;
        loop {
            let seen =
                match self
                    .held_by
                    .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                {
                    Ok(_) => return CopyGuard(self),
                    Err(seen) => seen,
                };
            if seen == me {
                // Another thread of this process: the holds of the
                // busier locks (the reaper's queue of work) are short, so
                // yield first, then nap 50 us doubling to 1 ms (a guard's
                // or a thread's start).
                waits += 1;
                if waits <= 64 {
                    std::thread::yield_now();
                } else {
                    let nap = 50u64 << (waits - 65).min(4);
                    std::thread::sleep(Duration::from_micros(nap.min(1000)));
                }
                continue;
            }
            if self
                .held_by
                .compare_exchange(seen, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: this thread holds the lock now; the old value is
                // overwritten without being read or dropped (it may be
                // half written).
                unsafe { std::ptr::write(self.value.get(), T::default()) };
                return CopyGuard(self);
            }
        }
    }
}

/// The lock, held: released when dropped (on a panic too: there is no
/// poisoning).
pub(crate) struct CopyGuard<'a, T>(&'a CopyLock<T>);

impl<T> std::ops::Deref for CopyGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard's thread is the lock's only holder.
        unsafe { &*self.0.value.get() }
    }
}

impl<T> std::ops::DerefMut for CopyGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`.
        unsafe { &mut *self.0.value.get() }
    }
}

impl<T> Drop for CopyGuard<'_, T> {
    fn drop(&mut self) {
        self.0.held_by.store(0, Ordering::Release);
    }
}

/// A value set (and set again) without a lock or a `Once`, each value
/// leaked (kept for the life of the process): a copy forked while one is
/// being set never waits on it. For what is set rarely (once per process,
/// or once per forked copy).
pub(crate) struct Leaked<T: 'static>(AtomicPtr<T>);

impl<T: Sync + 'static> Leaked<T> {
    pub(crate) const fn new() -> Leaked<T> {
        Leaked(AtomicPtr::new(std::ptr::null_mut()))
    }

    /// The value last set, if any.
    pub(crate) fn get(&self) -> Option<&'static T> {
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: a non-null pointer is a leaked `Box<T>`, never freed.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// Sets `value` (leaked), replacing the one there was (which stays,
    /// leaked, for whoever holds it).
    pub(crate) fn set(&self, value: T) -> &'static T {
        let value: &'static T = Box::leak(Box::new(value));
        self.0
            .store(std::ptr::from_ref(value).cast_mut(), Ordering::Release);
        value
    }
}

/// A value computed once, as by `OnceLock::get_or_init`, but under a
/// [`CopyLock`]: a copy forked while another thread of its parent
/// computes it (a probe, a read: a slow step) computes its own instead of
/// waiting for ever on the `Once`. A value computed before the fork is the
/// copy's too (what these hold is a fact about the host or the program,
/// or names the process it is for: the readers' pool in `pump/apart.rs`).
pub(crate) struct CopyOnce<T: 'static> {
    value: Leaked<T>,
    lock: CopyLock<()>,
}

impl<T: Sync + 'static> CopyOnce<T> {
    pub(crate) const fn new() -> CopyOnce<T> {
        CopyOnce {
            value: Leaked::new(),
            lock: CopyLock::new(()),
        }
    }

    /// The value, computed by `init` if it is not yet.
    pub(crate) fn get_or_init(&self, init: impl FnOnce() -> T) -> &'static T {
        match self.get_or_try_init(|| Ok::<T, std::convert::Infallible>(init())) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// The value, computed by `init` if it is not yet; an error `init`
    /// returns is handed back and nothing kept (the next call computes
    /// again).
    pub(crate) fn get_or_try_init<E>(
        &self,
        init: impl FnOnce() -> Result<T, E>,
    ) -> Result<&'static T, E> {
        if let Some(v) = self.value.get() {
            return Ok(v);
        }
        let _one = self.lock.lock();
        if let Some(v) = self.value.get() {
            return Ok(v);
        }
        Ok(self.value.set(init()?))
    }
}

/// `pthread_atfork` handlers registered once per process, without a
/// `Once`: a copy forked while another thread of its parent registers them
/// would wait on the `Once` for ever. Here a copy takes the lock over (see
/// [`CopyLock`]) and registers them itself, unless they were registered
/// at the fork: their child handler calls [`forked`](Self::forked), so a
/// copy forked as they were being registered has them, and knows it.
/// A thread of the same process waits for the one registering them, so
/// that none goes on before they are (a fork could then copy what they
/// are there to mend).
///
/// `sys::pid`'s handler is registered otherwise: this lock asks for the
/// identity that handler keeps.
#[cfg(unix)]
pub(crate) struct AtForkOnce {
    /// Whether the handlers are registered.
    registered: std::sync::atomic::AtomicBool,
    /// Whether this process tried (held across the try).
    tried: CopyLock<bool>,
}

#[cfg(unix)]
impl AtForkOnce {
    pub(crate) const fn new() -> AtForkOnce {
        AtForkOnce {
            registered: std::sync::atomic::AtomicBool::new(false),
            tried: CopyLock::new(false),
        }
    }

    /// Runs `register` (which registers the handlers and tells whether
    /// `pthread_atfork` took them) unless they are registered or this
    /// process tried already (a copy forked while its parent's thread
    /// tried, and did not register them before the fork, tries itself).
    pub(crate) fn register(&self, register: impl FnOnce() -> bool) {
        if self.registered.load(Ordering::Acquire) {
            return;
        }
        let mut tried = self.tried.lock();
        if *tried || self.registered.load(Ordering::Acquire) {
            return;
        }
        *tried = true;
        if register() {
            self.registered.store(true, Ordering::Release);
        }
    }

    /// Notes, from the handlers' child handler, that this copy has them.
    /// One atomic store: async-signal-safe.
    pub(crate) fn forked(&self) {
        self.registered.store(true, Ordering::Release);
    }
}

/// The identity of the file descriptor `fd` names (device and inode), for
/// telling later whether a descriptor number a forked copy inherited still
/// names it ([`close_inherited`]).
#[cfg(unix)]
pub(crate) fn file_id(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u64, u64)> {
    let st = rustix::fs::fstat(fd).ok()?;
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Some((st.st_dev as u64, st.st_ino as u64))
}

/// Whether descriptor number `fd` names the file `id` ([`file_id`]) now.
#[cfg(unix)]
pub(crate) fn names_file(fd: std::os::fd::RawFd, id: (u64, u64)) -> bool {
    if fd < 0 {
        return false;
    }
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // Raw: a number that may name nothing open (no `BorrowedFd` for it).
    // SAFETY: fstat(2) writes `st` or fails (EBADF for a number not open).
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat succeeded: `st` is written.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let named = (st.st_dev as u64, st.st_ino as u64);
    named == id
}

/// Closes descriptor `fd`, a forked copy's copy of one its parent's pkit
/// thread owned (a pipe that thread read: the thread is not in the copy,
/// so nothing here ever closes it), if it still names the file `id`
/// ([`names_file`]): an application that closed it and opened something
/// else on that number keeps what it opened. Whether it was closed.
#[cfg(unix)]
pub(crate) fn close_inherited(fd: std::os::fd::RawFd, id: (u64, u64)) -> bool {
    use std::os::fd::{FromRawFd, OwnedFd};
    if !names_file(fd, id) {
        return false;
    }
    // SAFETY: the descriptor names the inherited file, and its owner (a
    // thread of the parent, or a value the caller never drops) never
    // closes it in this process: this is its only close here.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    true
}

/// Lets go of the number `inherited`, a forked copy's copy of a
/// descriptor its maker kept, of the file `id` ([`file_id`], noted when
/// the maker opened it), now that the copy keeps `fresh`, its own, in its
/// place: closed (in this process only, [`close_inherited`]) where it
/// still names that file and is not `fresh`'s number; else left alone.
/// The record the copy inherited is not to be dropped: `fork` copies the
/// descriptor table a moment before the memory, so a thread of the maker
/// that opened the descriptor in between left the copy a record of a
/// number its table never had. That number is free in the copy, and the
/// copy's next open (`fresh`, or a file of the application's) gets it:
/// dropping the record closed that (seen: a copy's kept `/proc` closed by
/// its own replacement, the number taken by an epoll instance next, the
/// copy's group close failing with `ENOTDIR`). Linux only: the kept
/// descriptors it serves (`/proc`, the cgroup's) are Linux's.
#[cfg(target_os = "linux")]
pub(crate) fn let_go_inherited(
    inherited: std::os::fd::RawFd,
    id: Option<(u64, u64)>,
    fresh: std::os::fd::RawFd,
) {
    if let Some(id) = id.filter(|_| inherited != fresh) {
        close_inherited(inherited, id);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::CopyLock;

    /// A copy forked while another thread holds the lock takes it (and
    /// finds the value reset); the parent's holder is undisturbed.
    #[test]
    fn a_copy_takes_over_a_lock_its_parent_held() {
        static LOCK: CopyLock<Option<u32>> = CopyLock::new(None);
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let mut g = LOCK.lock();
            *g = Some(7);
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            assert_eq!(*g, Some(7));
        });
        held_rx.recv().unwrap();
        // Raw: libc's fork (running the atfork handlers) is what is tested; rustix has no fork.
        // SAFETY: the child only takes the lock (atomics; no allocation:
        // the default is `None`), reads it and `_exit`s; bounded by alarm.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // Raw: the C library's alarm and _exit in the forked child.
            // SAFETY: as above.
            unsafe { libc::alarm(30) };
            let code = if LOCK.lock().is_none() { 0 } else { 1 };
            unsafe { libc::_exit(code) };
        }
        crate::sys::pid::reap_forked_ok(pid);
        go_tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(*LOCK.lock(), Some(7));
    }
}
