//! The per-process flag the readers share: a crossed `Fail` capture limit,
//! and when output last arrived.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

/// Set when a `CapturePolicy::Fail` limit is crossed; also records when
/// the process last produced output (for `Command::inactivity_timeout`).
#[derive(Default, Debug)]
pub(crate) struct LimitFlag {
    hit: AtomicBool,
    notify: Notify,
    /// Nanoseconds after [`activity_base`] of the last read that got
    /// bytes; 0 before any.
    last_output: AtomicU64,
}

/// The instant output times are counted from.
fn activity_base() -> tokio::time::Instant {
    // Not a `OnceLock`: see `CopyOnce` (a copy forked while another thread
    // takes the instant reads output times too).
    static BASE: crate::sys::CopyOnce<tokio::time::Instant> = crate::sys::CopyOnce::new();
    *BASE.get_or_init(tokio::time::Instant::now)
}

impl LimitFlag {
    /// Notes that output just arrived.
    pub(crate) fn touch(&self) {
        let nanos = activity_base().elapsed().as_nanos().max(1);
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        self.last_output.store(nanos, Ordering::Release);
    }

    /// When output last arrived, if it did.
    pub(crate) fn last_output(&self) -> Option<tokio::time::Instant> {
        match self.last_output.load(Ordering::Acquire) {
            0 => None,
            n => Some(activity_base() + std::time::Duration::from_nanos(n)),
        }
    }

    /// [`idle_for`](Self::idle_for) with an inactivity timeout that may be
    /// unset: then it never resolves (a bound not set, in a `select!`).
    pub(crate) async fn idle_for_or_never(
        &self,
        since: tokio::time::Instant,
        idle: Option<std::time::Duration>,
    ) {
        match idle {
            Some(d) => self.idle_for(since, d).await,
            None => std::future::pending().await,
        }
    }

    /// Resolves once no output has arrived for `idle`, counting from
    /// `since` (the start) until some does.
    pub(crate) async fn idle_for(&self, since: tokio::time::Instant, idle: std::time::Duration) {
        loop {
            let last = self.last_output().map_or(since, |t| t.max(since));
            let due = last + idle;
            if tokio::time::Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    }

    pub(crate) fn is_hit(&self) -> bool {
        self.hit.load(Ordering::Acquire)
    }

    pub(super) fn set(&self) {
        self.hit.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Resolves once the flag is set.
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_hit() {
                return;
            }
            notified.await;
        }
    }
}
