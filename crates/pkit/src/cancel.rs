//! [`CancelToken`]: cancel runs from elsewhere.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// A cheap, cloneable handle that cancels every run it was given to.
///
/// Dropping a verb's future is the usual way to cancel it (its whole tree
/// dies with it). A token is for cancelling from somewhere else: a run
/// whose [`Command`](crate::Command) carries a cancelled token tears its
/// tree down and returns [`Error::Cancelled`](crate::Error::Cancelled).
///
/// ```
/// # async fn demo() -> pkit::Result<()> {
/// let token = pkit::CancelToken::new();
/// let cmd = pkit::Command::new("sleep").arg("300").cancel_token(&token);
/// let run = tokio::spawn(async move { cmd.output().await });
/// token.cancel();
/// assert!(run.await.unwrap().unwrap_err().is_cancelled());
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancels every run holding this token, now and later.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::Release);
        self.inner.notify.notify_waiters();
    }

    /// Whether [`cancel`](Self::cancel) has been called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// Resolves once `token` is cancelled; without one, never ends (a
    /// bound not set, in a `select!`).
    pub(crate) async fn cancelled_or_never(token: Option<&CancelToken>) {
        match token {
            Some(t) => t.cancelled().await,
            None => std::future::pending().await,
        }
    }

    /// Resolves once the token is cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Register before checking the flag, so a cancel in between is
            // not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
