//! Polling a condition that no kernel event announces (a process without a
//! descriptor to wait on, a listing that must come up empty): naps from
//! 1 ms, doubling up to 50 ms, so a quick end is seen at once and a slow
//! one costs few wake-ups.

use std::time::Duration;

use tokio::time::Instant;

/// Polls `done` until it holds, or `deadline` passes (`None`: no
/// deadline); whether it held. `done` is asked once more at the deadline.
pub(crate) async fn poll_until(mut done: impl FnMut() -> bool, deadline: Option<Instant>) -> bool {
    poll_until_async(|| std::future::ready(done()), deadline).await
}

/// [`poll_until`] with a condition that is itself awaited (one that does
/// async work each time it is asked, as a close's kill while a start is
/// placing its child).
pub(crate) async fn poll_until_async<F>(
    mut done: impl FnMut() -> F,
    deadline: Option<Instant>,
) -> bool
where
    F: std::future::Future<Output = bool>,
{
    let mut nap = Duration::from_millis(1);
    loop {
        if done().await {
            return true;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return false;
        }
        let wake = now + nap;
        tokio::time::sleep_until(deadline.map_or(wake, |d| d.min(wake))).await;
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}
