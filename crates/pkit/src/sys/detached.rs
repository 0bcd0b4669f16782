//! pkit's own background threads (the blocking facade's runtime, the
//! SIGCHLD notifier, the reaper, the capture hand-off), started detached
//! and, on Unix, without `std::thread`. Not the `pkit-reader` threads
//! that run the caller's callbacks, tees and decoders: those stay
//! `std::thread`s, so that `std::thread::current().name()` names them
//! there (a copy that runs callbacks can still meet the lock below).
//!
//! Every thread `std::thread` starts, and every one that ends, takes a
//! lock of the standard library's (its stack-overflow bookkeeping, one
//! `Mutex` for the process) for a moment. A copy forked (plain `fork`)
//! while another thread of its maker (the application's, or pkit's) was
//! starting or ending has that lock held by a thread it does not have:
//! every `std::thread` it starts then waits for it for ever before running
//! a line of its own, and the copy's first run waited for its runtime's
//! thread until killed (seen: copies of copies, about 1 run in 100 under
//! load). These threads are started with `pthread_create` instead, which
//! takes no such lock: they run in such a copy too. What they give up is
//! the standard library's "has overflowed its stack" message (a stack
//! overflow there is a plain SIGSEGV) and a name `std::thread::current()`
//! knows (it reads `None` on these threads).

use std::io;

/// The stack of a thread started here: the standard library's default
/// for the threads it starts (`RUST_MIN_STACK` is not read: an
/// environment read takes a lock a copy may have inherited held too).
#[cfg(unix)]
const STACK: usize = 2 * 1024 * 1024;

/// Starts a thread named `name` (at most 15 bytes are kept, as for every
/// thread name on Linux) that runs `f`, detached. A panic in `f` is
/// reported by the panic hook and ends the thread only.
pub(crate) fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    imp::spawn(name, Box::new(f))
}

#[cfg(unix)]
mod imp {
    use std::ffi::{c_void, CString};
    use std::io;

    type Job = Box<dyn FnOnce() + Send + 'static>;

    /// What the new thread is handed: its name and its work.
    struct Start {
        name: Option<CString>,
        job: Job,
    }

    pub(super) fn spawn(name: &str, job: Job) -> io::Result<()> {
        // Linux keeps 15 bytes and refuses a longer name: cut on a
        // character boundary.
        let mut cut = name.len().min(15);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let start = Box::new(Start {
            name: CString::new(&name[..cut]).ok(),
            job,
        });
        let arg = Box::into_raw(start).cast::<c_void>();
        // Raw: rustix has no threads; the point is to start one without
        // `std::thread` (see the module's doc).
        // SAFETY: `attr` is initialised before use and destroyed after;
        // `arg` is a leaked `Box<Start>` that `run` takes back exactly once
        // when the thread starts, or that is taken back here when none
        // started.
        unsafe {
            let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
            let rc = libc::pthread_attr_init(attr.as_mut_ptr());
            if rc != 0 {
                drop(Box::from_raw(arg.cast::<Start>()));
                return Err(io::Error::from_raw_os_error(rc));
            }
            let attr = attr.as_mut_ptr();
            // A size the C library refuses (below its minimum) leaves its
            // default: no error for that.
            let _ = libc::pthread_attr_setstacksize(attr, super::STACK);
            let _ = libc::pthread_attr_setdetachstate(attr, libc::PTHREAD_CREATE_DETACHED);
            let mut thread: libc::pthread_t = std::mem::zeroed();
            let rc = libc::pthread_create(&mut thread, attr, run, arg);
            libc::pthread_attr_destroy(attr);
            if rc != 0 {
                drop(Box::from_raw(arg.cast::<Start>()));
                return Err(io::Error::from_raw_os_error(rc));
            }
        }
        Ok(())
    }

    /// The new thread: names itself, runs its work, ends (a panic caught:
    /// it must not unwind out of this C entry point).
    extern "C" fn run(arg: *mut c_void) -> *mut c_void {
        // SAFETY: `spawn` handed this thread a leaked `Box<Start>`, taken
        // back here once.
        let start = unsafe { Box::from_raw(arg.cast::<Start>()) };
        let Start { name, job } = *start;
        if let Some(name) = name {
            set_name(&name);
        }
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        std::ptr::null_mut()
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn set_name(name: &CString) {
        // Raw: naming the calling thread; rustix has no pthread names.
        // SAFETY: a NUL-terminated name of at most 15 bytes.
        unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr()) };
    }

    #[cfg(any(target_os = "macos", target_os = "ios"))]
    fn set_name(name: &CString) {
        // Raw: naming the calling thread; rustix has no pthread names.
        // SAFETY: a NUL-terminated name.
        unsafe { libc::pthread_setname_np(name.as_ptr()) };
    }

    #[cfg(any(target_os = "freebsd", target_os = "dragonfly", target_os = "openbsd"))]
    fn set_name(name: &CString) {
        // Raw: naming the calling thread; rustix has no pthread names.
        // SAFETY: a NUL-terminated name.
        unsafe { libc::pthread_set_name_np(libc::pthread_self(), name.as_ptr()) };
    }

    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "openbsd"
    )))]
    fn set_name(_: &CString) {}
}

/// No `fork` elsewhere: `std::thread`.
#[cfg(not(unix))]
mod imp {
    use std::io;

    pub(super) fn spawn(name: &str, job: Box<dyn FnOnce() + Send + 'static>) -> io::Result<()> {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(job)
            .map(drop)
    }
}
