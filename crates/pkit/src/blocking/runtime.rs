//! The blocking facade's internal runtime: one current-thread Tokio
//! runtime on its own thread, created on first use, and the ways the
//! facade uses it (drive a future, enter for a start, enter for a drop).
//! Its thread, and a thread while it drives or enters it, is marked
//! (`pump::marked`): a reader started there that runs the caller's code
//! (a line callback, a tee, a decoder) runs on a thread of its own.
//!
//! Building it takes file descriptors (an epoll instance, an eventfd; with
//! Tokio's `signal` feature on, a socket pair too) and a thread. When the process has none to spare at the first blocking
//! call, that call returns [`Error::Io`] saying so, and the next call
//! tries again: a failure is never kept.

use crate::sys::{CopyLock, Leaked};
use std::future::Future;
use std::io;

use tokio::runtime::Handle;

use crate::error::{Error, Result};

/// A built runtime: its handle, and the process that built it.
struct Built {
    handle: Handle,
    owner: crate::sys::Creator,
}

/// The latest runtime built, by this process or (in a child forked
/// without `exec`) by one it was copied from: leaked, never taken down. A
/// value set under [`BUILDING`], no `Once` or `Mutex`, which a copy
/// forked while one is set or held would wait on for ever.
static LATEST: Leaked<Built> = Leaked::new();

/// One builder at a time: two threads' first calls must not both start a
/// runtime thread. A [`CopyLock`]: held across a build (a thread started:
/// milliseconds), a `Mutex` was inherited held by a copy forked then,
/// whose first blocking call waited on it for ever.
static BUILDING: CopyLock<()> = CopyLock::new(());

/// This process's runtime, if it built one. A forked child's copy of its
/// parent's is not: its thread is not in the child, and the epoll
/// instance its I/O driver waits on is shared with the parent. A
/// registration the child made there would wake the parent's runtime
/// thread with a token that is an address in the child's memory, and the
/// parent would follow it (seen: the parent killed by SIGSEGV).
fn current() -> Option<&'static Handle> {
    let built = LATEST.get()?;
    built.owner.is_here().then_some(&built.handle)
}

/// The handle of the internal runtime, built on first use (in a forked
/// child, its own: see [`current`]); `what` (the blocking call) names the
/// call in the error when it can't be built.
fn handle(what: &str) -> Result<&'static Handle> {
    if let Some(handle) = current() {
        return Ok(handle);
    }
    let _one = BUILDING.lock();
    if let Some(handle) = current() {
        return Ok(handle);
    }
    let failed = |step: &str, e: io::Error| {
        Error::io(
            format!(
                "pkit::blocking::{what}: cannot {step} (the blocking API runs on it; \
                 the next blocking call tries again)"
            ),
            e,
        )
    };
    spare_descriptors().map_err(|e| failed("build its internal Tokio runtime", e))?;
    // Its threads (this one's and its blocking pool's) are marked: a reader
    // started there runs the caller's code on a thread of its own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("pkit-blocking")
        .on_thread_start(crate::pump::mark_thread)
        .build()
        .map_err(|e| failed("build its internal Tokio runtime", e))?;
    let built = Built {
        handle: rt.handle().clone(),
        owner: crate::sys::Creator::here(),
    };
    // On failure the closure, and the runtime in it, is dropped here.
    // Not a `std::thread`: one would never run in a copy forked while a
    // thread of its maker started or ended (see `sys::detached`).
    crate::sys::spawn_thread("pkit-blocking", move || {
        crate::pump::mark_thread();
        rt.block_on(std::future::pending::<()>())
    })
    .map_err(|e| failed("start its internal Tokio runtime's thread", e))?;
    // A forked child's own replaces (in its memory) its parent's, which
    // is leaked there.
    let built = LATEST.set(built);
    Ok(&built.handle)
}

/// Makes sure the runtime's descriptors can be had now. With Tokio's
/// `signal` feature on (an application's `tokio/full` turns it on for
/// every crate), the first runtime of the process also makes a socket
/// pair, with an `expect`: at `RLIMIT_NOFILE` that is a panic, not the
/// error `build` returns. Five descriptors at most (epoll, eventfd, that
/// pair, a copy of one end): six are opened and closed again first.
#[cfg(unix)]
fn spare_descriptors() -> io::Result<()> {
    let held: Vec<_> = (0..3)
        .map(|_| std::os::unix::net::UnixStream::pair())
        .collect::<io::Result<_>>()?;
    drop(held);
    Ok(())
}

/// Elsewhere the runtime's build reports every failure itself.
#[cfg(not(unix))]
fn spare_descriptors() -> io::Result<()> {
    Ok(())
}

/// The handle, for a handle or stream that was made in the runtime (a
/// started process, its lines, a supervision): its existence means the
/// runtime was built, and a built runtime is kept.
fn built() -> &'static Handle {
    current().expect(
        "pkit::blocking: a handle made in the internal runtime is used where that runtime is \
         not (in a child forked without exec, from its parent's)",
    )
}

/// Panics, clearly, where blocking would stall a runtime.
#[track_caller]
pub(crate) fn refuse_inside_runtime(what: &str) {
    if tokio::runtime::Handle::try_current().is_ok() {
        panic!(
            "pkit::blocking::{what} called inside a Tokio runtime context \
             (an async fn, a task, spawn_blocking or Runtime::enter): blocking here would \
             stall the runtime. Use the async API (`.await`) instead, or call it from a \
             thread without a runtime"
        );
    }
}

/// Drives `fut` to completion on this thread; when the runtime can't be
/// built, returns that error instead.
#[track_caller]
pub(crate) fn block_on<T>(what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    refuse_inside_runtime(what);
    let handle = handle(what)?;
    crate::pump::marked(|| handle.block_on(fut))
}

/// Drives `fut`, a call on something made in the runtime (see
/// [`built`]), to completion on this thread.
#[track_caller]
pub(crate) fn block_on_made<F: Future>(what: &str, fut: F) -> F::Output {
    refuse_inside_runtime(what);
    crate::pump::marked(|| built().block_on(fut))
}

crate::sys::with_direct_wait! {
    /// Drives `fut` to completion on this thread, once
    /// [`refuse_inside_runtime`] has passed.
    pub(crate) fn drive<F: Future>(what: &str, fut: F) -> Result<F::Output> {
        let handle = handle(what)?;
        Ok(crate::pump::marked(|| handle.block_on(fut)))
    }

    /// The runtime's handle, for the caller's code that a one-shot run
    /// calls on this thread (a line callback: see `direct.rs`) inside the
    /// runtime's context, as a reader thread calls it.
    pub(crate) fn context(what: &str) -> Result<Handle> {
        handle(what).cloned()
    }
}

/// Runs `f` (synchronous, but needing a runtime: a start) inside the
/// internal runtime's context; the error when the runtime can't be built.
#[track_caller]
pub(crate) fn enter<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    refuse_inside_runtime(what);
    let _guard = handle(what)?.enter();
    Ok(crate::pump::marked(f))
}

/// Like `enter`, for a call on something made in the runtime (see
/// [`built`]).
#[track_caller]
pub(crate) fn enter_made<T>(what: &str, f: impl FnOnce() -> T) -> T {
    refuse_inside_runtime(what);
    let _guard = built().enter();
    crate::pump::marked(f)
}

/// Drops `value` inside the internal runtime's context when it is built
/// (what was made in it is dropped in it); never panics, and never builds
/// it (a value made without it is dropped without it). A value dropped
/// inside another runtime is dropped in that runtime's context.
pub(crate) fn enter_for_drop<T>(value: T) {
    match current() {
        Some(handle) if tokio::runtime::Handle::try_current().is_err() => {
            let _guard = handle.enter();
            drop(value);
        }
        _ => drop(value),
    }
}

/// Another copy of the runtime's error (`handle`'s), for a call that
/// reports it more than once (a batch: once per command).
pub(crate) fn again(error: &Error) -> Error {
    match error {
        Error::Io { context, source } => Error::Io {
            context: context.clone(),
            source: match source.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(source.kind(), source.to_string()),
            },
        },
        other => Error::InvalidInput(other.to_string()),
    }
}
