//! A future held until its first wake-up, which spawns it as a task (see
//! `pair.rs`), and the taking back of such a future to be driven with
//! other work ([`alongside`], [`aside`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use super::source::Source;

/// A pair's reading task taken back from its first wake-up: polled by
/// [`alongside`], and spawned when dropped unfinished, so the pipes are
/// drained to their end as an unclaimed pair's are.
pub(crate) struct Claimed {
    held: Option<Held>,
    runtime: tokio::runtime::Handle,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        if let Some(fut) = self.held.take() {
            drop(self.runtime.spawn(fut));
        }
    }
}

/// Runs `work` with the claimed reading task (see [`alongside`]) in a task
/// spawned by their first wake-up (a pipe's event or `work`'s), and hands
/// the first half of its result back through the channel returned; the
/// second half, and the pipes the reading task read to their end, are
/// dropped after that, so what their drops do (each a deregistration from
/// the reactor; a pipe's `close`) comes after the receiver's wake-up, not
/// before it. Must be called within a Tokio runtime.
pub(crate) fn aside<T: Send + 'static, L: Send + 'static>(
    claimed: Claimed,
    work: impl Future<Output = (T, L)> + Send + 'static,
) -> tokio::sync::oneshot::Receiver<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawn_on_wake(
        async move {
            let ((out, later), ends) = alongside(claimed, work).await;
            drop(tx.send(out));
            drop(later);
            drop(ends);
            [None, None]
        },
        None,
    );
    rx
}

/// Runs `work`, polling the claimed reading task along with it in
/// the same task: the pipes' events wake this task, which reads them. When
/// `work` is done, a reading task that has not finished is spawned; the
/// pipes of one that has are handed back with `work`'s output, still open.
async fn alongside<F: Future>(mut claimed: Claimed, work: F) -> (F::Output, Ends) {
    let mut work = std::pin::pin!(work);
    let mut ends: Ends = [None, None];
    let mut read = |cx: &mut Context<'_>| {
        if let Some(Poll::Ready(done)) = claimed.held.as_mut().map(|f| f.as_mut().poll(cx)) {
            ends = done;
            claimed.held = None;
        }
    };
    let out = std::future::poll_fn(|cx| {
        // The reads first: when the exit and the pipes' end of file come
        // in one wake-up, the output is taken before the exit is seen.
        read(cx);
        let out = work.as_mut().poll(cx);
        if out.is_ready() {
            // Once more: an exiting process's pipes close before its exit
            // is reported, so an end of file that came while the exit was
            // being seen is read here rather than by a spawned task.
            read(cx);
        }
        out
    })
    .await;
    // Dropping `claimed` spawns what is left.
    drop(claimed);
    (out, ends)
}

/// The pipes a pair's reading task read to their end (stdout's, stderr's),
/// handed back open by the task (see `pair.rs`): what drops them closes
/// them.
pub(super) type Ends = [Option<Source>; 2];

type Held = Pin<Box<dyn Future<Output = Ends> + Send>>;

/// A future waiting for its first wake-up, which spawns it as a task.
pub(crate) struct SpawnOnWake {
    state: Mutex<Lazy>,
    runtime: tokio::runtime::Handle,
    /// Set when the future is claimed (the future's own way to know it).
    claimed: Option<Arc<AtomicBool>>,
}

struct Lazy {
    /// The future, once its first poll returned (taken by the wake-up).
    held: Option<Held>,
    /// A wake-up came before the future was held (during or right after
    /// its first poll): it is spawned as soon as it is.
    woken: bool,
}

impl SpawnOnWake {
    /// Takes the future back when no wake-up has spawned it yet.
    pub(super) fn claim(&self) -> Option<Claimed> {
        let held = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .held
            .take()?;
        // Before the claimed future's next poll, which is the claimer's.
        if let Some(flag) = &self.claimed {
            flag.store(true, Ordering::Release);
        }
        Some(Claimed {
            held: Some(held),
            runtime: self.runtime.clone(),
        })
    }
}

impl Wake for SpawnOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let held = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.woken = true;
            state.held.take()
        };
        // Spawned where the wake-up happens (the reactor's worker, or the
        // thread that stops the reader); the task's own polls then wake the
        // task, not this. A runtime shutting down drops the future, and
        // with it the pipes.
        if let Some(fut) = held {
            drop(self.runtime.spawn(fut));
        }
    }
}

/// Polls `fut` once here, then leaves it to be spawned by its first
/// wake-up (see the module doc). A future that finishes in that first
/// poll is done; one woken during it is spawned at once. Returns the way
/// to claim a future that is left held (see [`Reader::claim_pair`]), which
/// sets `claimed` if given.
pub(super) fn spawn_on_wake(
    fut: impl Future<Output = Ends> + Send + 'static,
    claimed: Option<Arc<AtomicBool>>,
) -> Option<Arc<SpawnOnWake>> {
    let lazy = Arc::new(SpawnOnWake {
        state: Mutex::new(Lazy {
            held: None,
            woken: false,
        }),
        runtime: tokio::runtime::Handle::current(),
        claimed,
    });
    let waker = Waker::from(lazy.clone());
    let mut fut: Held = Box::pin(fut);
    if fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_ready()
    {
        return None;
    }
    let mut state = lazy.state.lock().unwrap_or_else(PoisonError::into_inner);
    if state.woken {
        drop(state);
        drop(lazy.runtime.spawn(fut));
        None
    } else {
        state.held = Some(fut);
        drop(state);
        Some(lazy)
    }
}
