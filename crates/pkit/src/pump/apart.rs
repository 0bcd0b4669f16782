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
//!
//! A reader thread whose reader ended waits a short while for the next one
//! ([`Pool`]): repeated blocking runs with a callback reuse a few threads
//! instead of starting and ending one each. A waiting thread takes one
//! reader, and only while it waits, so no reader ever waits behind
//! another's callback.

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, Instant};

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
///
/// The thread is an idle one that an earlier reader ran on, when there is
/// one (see [`Pool`]), else a new one; either way it runs this reader alone
/// until the reader ends.
pub(super) fn start<F>(read: F) -> Result<Done<F::Output>, F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if !here() {
        return Err(read);
    }
    let (report, done) = tokio::sync::oneshot::channel();
    let reading = Reading {
        read,
        handle: tokio::runtime::Handle::current(),
        report,
    };
    let pool = Pool::here();
    let reading = match pool {
        Some(pool) => match pool.hand_over(reading) {
            Ok(()) => return Ok(done),
            Err(reading) => reading,
        },
        None => reading,
    };
    // The reader is handed over once the thread exists, so that a thread
    // that can't be had loses nothing.
    let (first, jobs) = std::sync::mpsc::sync_channel::<Reading<F>>(1);
    // A `std::thread`, unlike pkit's other background threads (see
    // `sys::detached`): the caller's code runs here, and
    // `std::thread::current().name()` names it `pkit-reader` only on a
    // thread the standard library started.
    let spawned = std::thread::Builder::new()
        .name("pkit-reader".into())
        .spawn(move || {
            let Ok(reading) = jobs.recv() else { return };
            reading.run();
            if let Some(pool) = pool {
                pool.serve();
            }
        });
    if spawned.is_err() {
        return Err(reading.read);
    }
    match first.send(reading) {
        Ok(()) => Ok(done),
        // The thread is gone (it can't be: it waits for this).
        Err(std::sync::mpsc::SendError(reading)) => Err(reading.read),
    }
}

/// A reader to run on a thread of its own, and where its output goes.
struct Reading<F: Future> {
    read: F,
    handle: tokio::runtime::Handle,
    report: tokio::sync::oneshot::Sender<std::thread::Result<F::Output>>,
}

impl<F: Future> Reading<F> {
    /// Drives the reader to its end on this thread and hands its output
    /// over (an owner gone, detached or dropped, just fails to take it).
    fn run(self) {
        drop(self.report.send(self.handle.block_on(caught(self.read))));
    }
}

/// How long a reader thread whose reader ended waits for another one
/// before it exits.
const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// At most this many reader threads wait idle at once; a reader thread
/// whose reader ends with this many waiting exits at once.
const MAX_IDLE: usize = 4;

/// The reader threads that wait idle for another reader, for a short
/// while after theirs ended: a blocking run with a callback, repeated,
/// then costs a hand-over to a waiting thread instead of a thread's start
/// and end (a dozen system calls and more). A waiting thread takes one
/// reader at a time, and only while it waits: a reader is never queued
/// behind another one's callback.
struct Pool {
    /// The process the threads are in: a child forked without `exec` has
    /// none of them (its copy of the pool is never used; its readers get a
    /// thread each, which then exits).
    owner: crate::sys::Creator,
    /// A `Mutex`, not a `CopyLock`: a copy may inherit it held by one of
    /// the threads, but never takes it (see `owner`).
    idle: Mutex<Idle>,
    wake: Condvar,
}

struct Idle {
    /// Readers handed over and not yet taken: never more than `waiting`.
    jobs: VecDeque<Box<dyn FnOnce() + Send>>,
    /// The threads waiting for a reader.
    waiting: usize,
}

impl Pool {
    /// This process's pool (`None` in a forked child: see `owner`).
    fn here() -> Option<&'static Pool> {
        // Not a `OnceLock`: see `CopyOnce` (a copy forked while another
        // thread makes the pool asks it for its owner).
        static POOL: crate::sys::CopyOnce<Pool> = crate::sys::CopyOnce::new();
        let pool = POOL.get_or_init(|| Pool {
            owner: crate::sys::Creator::here(),
            idle: Mutex::new(Idle {
                jobs: VecDeque::new(),
                waiting: 0,
            }),
            wake: Condvar::new(),
        });
        pool.owner.is_here().then_some(pool)
    }

    fn lock(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `reading` to a waiting thread that no other reader has been
    /// handed to; gives it back when there is none.
    fn hand_over<F>(&self, reading: Reading<F>) -> Result<(), Reading<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut idle = self.lock();
        if idle.waiting <= idle.jobs.len() {
            return Err(reading);
        }
        idle.jobs.push_back(Box::new(move || reading.run()));
        drop(idle);
        self.wake.notify_one();
        Ok(())
    }

    /// A reader thread's life after its first reader: waits (up to
    /// [`KEEP_ALIVE`]) for another and runs it, again and again, and exits
    /// once none came, or at once when [`MAX_IDLE`] threads wait already.
    fn serve(&self) {
        let mut idle = self.lock();
        while idle.waiting < MAX_IDLE {
            idle.waiting += 1;
            let until = Instant::now() + KEEP_ALIVE;
            let job = loop {
                if let Some(job) = idle.jobs.pop_front() {
                    break Some(job);
                }
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break None;
                }
                idle = self
                    .wake
                    .wait_timeout(idle, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            };
            // Taken with the job (the two stay paired), or with none left.
            idle.waiting -= 1;
            let Some(job) = job else { return };
            drop(idle);
            job();
            idle = self.lock();
        }
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
