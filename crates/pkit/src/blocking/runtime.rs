//! The blocking facade's runtimes: the shared internal one (a
//! current-thread Tokio runtime on its own thread, created on first use)
//! and the three ways the facade uses it (drive a future, enter for a
//! start, enter for a drop); and, for the one-shot verbs, a current-thread
//! runtime per calling thread, driven by that thread.

use std::cell::RefCell;
use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

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
fn refuse_inside_runtime(what: &str) {
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

thread_local! {
    /// This thread's own runtime for the one-shot verbs (see
    /// [`block_on_here`]): built on the thread's first one-shot call, kept
    /// between calls, empty (no task alive) whenever it sits here.
    static LOCAL: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

/// Drives a one-shot run (`fut`: a verb whose whole life is inside the
/// call) to completion on this thread, with this thread as the I/O and
/// timer driver too: the readiness of the child's pipes and exit wakes
/// the thread that waits for them, with no hop through the shared
/// runtime's thread.
///
/// Nothing is left behind on the thread's runtime: when the run leaves a
/// task alive (a reader still draining a pipe an escaped process holds,
/// a stdin feed), the runtime is handed, with its tasks, to a thread of its
/// own that drives them to their end and then drops it; this thread builds
/// a new one on its next call. Without a usable thread-local slot (a
/// thread being torn down) it falls back to [`block_on`].
#[track_caller]
pub(crate) fn block_on_here<F: Future>(what: &str, fut: F) -> F::Output {
    refuse_inside_runtime(what);
    let rt = LOCAL
        .try_with(|slot| slot.borrow_mut().take())
        .ok()
        .flatten()
        .or_else(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()
        });
    let Some(rt) = rt else {
        return handle().block_on(fut);
    };
    // Put back (or handed off) on the way out, a panic included.
    let local = Local(Some(rt));
    let rt = local.0.as_ref().expect("just set");
    rt.block_on(fut)
}

/// A thread-local runtime lent to one call; see [`block_on_here`].
struct Local(Option<Runtime>);

impl Drop for Local {
    fn drop(&mut self) {
        let Some(rt) = self.0.take() else { return };
        let alive = |rt: &Runtime| rt.handle().metrics().num_alive_tasks();
        if alive(&rt) > 0 && !std::thread::panicking() {
            // A task woken by the run's end (a reader at end of file) gets
            // its last turns here.
            rt.block_on(async {
                for _ in 0..4 {
                    if tokio::runtime::Handle::current()
                        .metrics()
                        .num_alive_tasks()
                        == 0
                    {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            });
        }
        if alive(&rt) == 0 {
            // Back in the slot for this thread's next call (dropped here,
            // harmlessly, if the slot is gone).
            let _ = LOCAL.try_with(move |slot| *slot.borrow_mut() = Some(rt));
            return;
        }
        hand_off(rt);
    }
}

/// Gives a runtime with tasks still alive a thread that drives them to
/// their end, then drops it. Should no thread start, the runtime is
/// dropped with the refused closure, which cancels the tasks (closing their
/// pipes).
fn hand_off(rt: Runtime) {
    let _ = std::thread::Builder::new()
        .name("pkit-leftovers".into())
        .spawn(move || {
            rt.block_on(async {
                let metrics = tokio::runtime::Handle::current().metrics();
                while metrics.num_alive_tasks() > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            });
        });
}
