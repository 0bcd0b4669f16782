//! Time bounds shared by the runner, the live process's watcher, pipes and
//! supervisors: "no deadline", the timeout's signal-and-grace plan, and a
//! race of futures.

use std::future::Future;
use std::time::Duration;

use crate::plans::DEFAULT_TIMEOUT_GRACE;
use crate::sys::Signal;

/// The index and output of the first of `futs` to finish (each is taken
/// out when it does); pending for ever when none is left.
pub(crate) async fn first_of<F: Future + Unpin>(futs: &mut [Option<F>]) -> (usize, F::Output) {
    std::future::poll_fn(|cx| {
        for (i, slot) in futs.iter_mut().enumerate() {
            if let Some(f) = slot {
                if let std::task::Poll::Ready(out) = std::pin::Pin::new(f).poll(cx) {
                    *slot = None;
                    return std::task::Poll::Ready((i, out));
                }
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Waits longer than this are no deadline at all: about 30 years, the
/// horizon Tokio itself uses for "never". (A deadline past the clock's
/// range, `Duration::MAX` for one, would otherwise overflow.)
/// Sleeps until `deadline`; without one, never ends (a bound not set, in
/// a `select!`).
pub(crate) async fn sleep_until_or_never(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

pub(crate) const NO_DEADLINE: Duration = Duration::from_secs(30 * 365 * 86_400);

/// What is left of a run's `timeout` at this instant when the run's start
/// call was at `began`: one budget from the start call, which the time a
/// start waited for a FIFO's other end (`sys/open_wait.rs`) counts against.
pub(crate) fn left_of(timeout: Option<Duration>, began: std::time::Instant) -> Option<Duration> {
    timeout.map(|t| {
        if t < NO_DEADLINE {
            t.saturating_sub(began.elapsed())
        } else {
            t
        }
    })
}

/// `now + d`, or `None` (no deadline) when `d` reaches [`NO_DEADLINE`].
pub(crate) fn deadline_after(d: Duration) -> Option<tokio::time::Instant> {
    (d < NO_DEADLINE).then(|| tokio::time::Instant::now() + d)
}

/// How a timed-out tree is ended: the signal, and how long the tree gets
/// after it before SIGKILL (`None`: SIGKILL at once). See
/// [`Command::timeout_signal`] for the rule.
pub(crate) fn timeout_plan(
    signal: Option<Signal>,
    grace: Option<Duration>,
) -> Option<(Signal, Duration)> {
    let plan = match (signal, grace) {
        (None, None) => return None,
        (None, Some(g)) if g.is_zero() => return None,
        (None, Some(g)) => (Signal::Term, g),
        (Some(s), None) => (s, DEFAULT_TIMEOUT_GRACE),
        (Some(s), Some(g)) => (s, g),
    };
    (plan.0.as_raw() != Signal::Kill.as_raw()).then_some(plan)
}
