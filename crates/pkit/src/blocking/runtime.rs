//! The blocking facade's internal runtime: one current-thread Tokio
//! runtime on its own thread, created on first use, and the three ways the
//! facade uses it (drive a future, enter for a start, enter for a drop).

use std::future::Future;
use std::sync::OnceLock;

/// The handle of the internal runtime, created on first use.
fn handle() -> &'static tokio::runtime::Handle {
    static HANDLE: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("pkit-blocking")
            .build()
            .expect("pkit::blocking: cannot build its internal Tokio runtime");
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("pkit-blocking".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .expect("pkit::blocking: cannot start its runtime thread");
        handle
    })
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

/// Drives `fut` to completion on this thread.
#[track_caller]
pub(crate) fn block_on<F: Future>(what: &str, fut: F) -> F::Output {
    refuse_inside_runtime(what);
    handle().block_on(fut)
}

/// Drives `fut` to completion on this thread, once
/// [`refuse_inside_runtime`] has passed.
#[cfg(target_os = "linux")]
pub(crate) fn drive<F: Future>(fut: F) -> F::Output {
    handle().block_on(fut)
}

/// Runs `f` (synchronous, but needing a runtime: a start, a drop) inside
/// the internal runtime's context.
#[track_caller]
pub(crate) fn enter<T>(what: &str, f: impl FnOnce() -> T) -> T {
    refuse_inside_runtime(what);
    let _guard = handle().enter();
    f()
}

/// Like `enter`, for drops: never panics (a handle dropped inside a
/// runtime is dropped in that runtime's context).
pub(crate) fn enter_for_drop<T>(value: T) {
    if tokio::runtime::Handle::try_current().is_ok() {
        drop(value);
    } else {
        let _guard = handle().enter();
        drop(value);
    }
}
