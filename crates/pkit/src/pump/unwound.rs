//! A caller's tee writer that panics: the panic is caught and taken as a
//! failed write, so the tee is disabled and its stream goes on being read
//! (as for a line callback that panics), instead of ending the reading
//! task (whose pipe would close, killing the child with SIGPIPE).

use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The error a panicking writer's call becomes.
pub(super) fn panicked() -> io::Error {
    io::Error::other("the tee's writer panicked; tee disabled")
}

/// `f()`, a blocking writer's call, with a panic taken as [`panicked`].
pub(super) fn call(f: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(panicked()))
}

/// An async writer's call (`write_all`, `flush`), with a panic in any of
/// its polls taken as [`panicked`]. It is not polled again after one: the
/// caller drops the tee.
pub(super) struct Unwound<F>(pub(super) F);

impl<F: Future<Output = io::Result<()>> + Unpin> Future for Unwound<F> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let inner = &mut self.0;
        std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx)))
            .unwrap_or_else(|_| Poll::Ready(Err(panicked())))
    }
}

/// An async tee's `write`, unless [`Reader::abandon_tee`] comes first (a
/// blocking tee's call ends first: it can't be cut).
pub(super) async fn cut_short(
    write: impl Future<Output = io::Result<()>>,
    control: &super::thread::Control,
) -> io::Result<()> {
    // Created before the flag is looked at: a cut between the look and the
    // wait still wakes it (`notify_waiters` ends every `Notified` made
    // before it). The write is polled first, so one that completes at
    // once is never cut.
    let notified = control.tee_cut.notified();
    tokio::select! {
        biased;
        r = write => r,
        () = async {
            if !control.tee_cutting.load(std::sync::atomic::Ordering::Acquire) {
                notified.await;
            }
        } => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the tee's writer took no more bytes before a bound of the run passed (its \
             timeout or inactivity timeout, or a cancellation, also after the program \
             exited): its write was abandoned, and the rest not written",
        )),
    }
}
