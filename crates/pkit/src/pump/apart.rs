//! The caller's code in a blocking run's reader, on a thread of the
//! reader's own.
//!
//! Under the blocking API every run's I/O is dispatched by one internal
//! runtime thread (see [`blocking`](crate::blocking)'s "One engine"); a
//! reader spawned there as a task would run the caller's code in it (a
//! line callback, a tee's writer, a decoder) on that shared thread, and a
//! callback that blocks would stall every blocking run of the process,
//! their timeouts included. So a reader that runs such code and is started
//! where the facade drives (a thread [`marked`] for a blocking call, or the
//! runtime's own thread, [`mark_thread`]) runs on a thread of its own
//! instead, driving itself with the runtime's
//! [`Handle::block_on`](tokio::runtime::Handle::block_on) as the facade's
//! callers do: the shared thread only dispatches its wake-ups, and a slow
//! callback holds back its own stream alone. The async API is untouched:
//! there the caller owns the runtime its readers run on.

use std::cell::Cell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::task::Poll;

thread_local! {
    /// Readers started on this thread run the caller's code apart.
    // The initializer is const: Debian's older clippy says otherwise on
    // OpenBSD, where std's thread-local takes another form.
    #[allow(clippy::missing_const_for_thread_local)]
    static APART: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread, for good, as one whose readers run the caller's code
/// apart (the blocking facade's runtime threads).
pub(crate) fn mark_thread() {
    let _ = APART.try_with(|a| a.set(true));
}

/// Runs `f` (a blocking call driving or entering the facade's runtime)
/// with this thread marked (see [`mark_thread`]), then as it was.
pub(crate) fn marked<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(Option<bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(was) = self.0 {
                let _ = APART.try_with(|a| a.set(was));
            }
        }
    }
    let _restore = Restore(APART.try_with(|a| a.replace(true)).ok());
    f()
}

fn here() -> bool {
    APART.try_with(Cell::get).unwrap_or(false)
}

/// What a reader on its own thread hands back: its output, or the panic
/// that ended it (pkit's own bug, resumed by its owner).
pub(super) type Done<T> = tokio::sync::oneshot::Receiver<std::thread::Result<T>>;

/// Starts `read` (a reader that runs the caller's code) on a thread of its
/// own, driven through the current runtime's handle, when this thread is
/// marked; gives it back, to be spawned as a task, when it is not or when
/// no thread can be had (the process is out of them: the reader then runs
/// where it always did). Must be called within a Tokio runtime.
pub(super) fn start<F>(read: F) -> Result<Done<F::Output>, F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if !here() {
        return Err(read);
    }
    let handle = tokio::runtime::Handle::current();
    // The reader is handed over once the thread exists, so that a thread
    // that can't be had loses nothing.
    let (job, jobs) = std::sync::mpsc::sync_channel::<F>(1);
    let (report, done) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("pkit-reader".into())
        .spawn(move || {
            let Ok(read) = jobs.recv() else { return };
            // An owner gone (detached, or dropped) just fails to take it.
            drop(report.send(handle.block_on(caught(read))));
        });
    if spawned.is_err() {
        return Err(read);
    }
    match job.send(read) {
        Ok(()) => Ok(done),
        // The thread is gone (it can't be: it waits for this).
        Err(std::sync::mpsc::SendError(read)) => Err(read),
    }
}

/// `fut`'s output, or the panic one of its polls raised (not polled
/// again after it).
pub(super) async fn caught<F: Future>(fut: F) -> std::thread::Result<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await
}
