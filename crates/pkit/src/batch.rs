//! Batches: many commands, at most N at once.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::command::Command;
use crate::error::Result;
use crate::output::Output;

/// Runs every command (each in its own private group, as
/// [`Command::output`] does) with at most `concurrency` running at once (0
/// counts as 1; `usize::MAX` bounds nothing), and returns the results in
/// input order. Dropping the future cancels the
/// batch: every running command's tree is torn down. A command whose run
/// panics (a bug in its [`Runner`](crate::Runner)) makes this panic with
/// that panic, once the other commands have finished.
///
/// ```
/// # async fn demo() {
/// let cmds = (1..=5).map(|i| pkit::Command::new("echo").arg(i.to_string()));
/// let results = pkit::output_all(cmds, 2).await;
/// let texts: Vec<String> = results.into_iter().map(|r| r.unwrap().stdout_str().trim().to_string()).collect();
/// assert_eq!(texts, ["1", "2", "3", "4", "5"]);
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo());
/// ```
pub async fn output_all(
    commands: impl IntoIterator<Item = Command>,
    concurrency: usize,
) -> Vec<Result<Output>> {
    let mut stream = output_unordered(commands, concurrency);
    let mut slots: Vec<Option<Result<Output>>> = (0..stream.len).map(|_| None).collect();
    while let Some((i, result)) = stream.next().await {
        slots[i] = Some(result);
    }
    slots
        .into_iter()
        .map(|r| r.expect("every command reports once"))
        .collect()
}

/// Like [`output_all`], but yields `(index, result)` pairs in completion
/// order, as each command finishes. Dropping the stream cancels the rest.
///
/// A command whose run panics (a bug in its [`Runner`](crate::Runner),
/// say) has no result: once every other command has reported, the stream
/// resumes that panic in its consumer (in `output_all` too), rather than
/// end as if the batch were whole.
///
/// Called outside a Tokio runtime, it runs nothing and does not panic:
/// each command's result is [`Error::InvalidInput`](crate::Error::InvalidInput),
/// as starting a command there is (the blocking facade's
/// [`output_unordered`](crate::blocking::output_unordered) needs no runtime).
pub fn output_unordered(
    commands: impl IntoIterator<Item = Command>,
    concurrency: usize,
) -> Completions {
    let commands: Vec<Command> = commands.into_iter().collect();
    let len = commands.len();
    let (tx, rx) = mpsc::channel(len.max(1));
    if tokio::runtime::Handle::try_current().is_err() {
        for (i, cmd) in commands.iter().enumerate() {
            let refused = crate::launch::no_runtime(&cmd.log_label());
            // The channel holds `len` results: none waits.
            let _ = tx.try_send((i, Err(refused)));
        }
        return Completions {
            rx,
            driver: None,
            panic: Panic::default(),
            len,
        };
    }
    let panic = Panic::default();
    let caught = panic.clone();
    // 0 runs one at a time; a bound past Tokio's largest (`usize::MAX`
    // for "no bound") lets every command run at once.
    let permits = Arc::new(Semaphore::new(concurrency.clamp(1, Semaphore::MAX_PERMITS)));
    let driver = tokio::spawn(async move {
        let mut running = tokio::task::JoinSet::new();
        for (i, cmd) in commands.into_iter().enumerate() {
            let permit = permits.clone().acquire_owned().await.expect("never closed");
            let tx = tx.clone();
            running.spawn(async move {
                let result = cmd.output().await;
                drop(permit);
                let _ = tx.send((i, result)).await;
            });
            // Reap finished tasks as we go so the set stays small.
            while let Some(done) = running.try_join_next() {
                keep_panic(&caught, done);
            }
        }
        while let Some(done) = running.join_next().await {
            keep_panic(&caught, done);
        }
        // `tx` goes now: the stream ends after the payload is kept.
    });
    Completions {
        rx,
        driver: Some(driver),
        panic,
        len,
    }
}

/// The first panic of a command's task, kept for the consumer.
#[derive(Clone, Default)]
struct Panic(Arc<Mutex<Option<Box<dyn Any + Send>>>>);

/// Keeps `done`'s panic, if it is the first.
fn keep_panic(panic: &Panic, done: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            let mut kept = panic.0.lock().unwrap_or_else(|e| e.into_inner());
            kept.get_or_insert(e.into_panic());
        }
    }
}

/// The results of [`output_unordered`], in completion order. Implements
/// [`futures_core::Stream`].
pub struct Completions {
    rx: mpsc::Receiver<(usize, Result<Output>)>,
    /// None when nothing runs (no runtime: every result is an error).
    driver: Option<JoinHandle<()>>,
    /// A command's panic, resumed once every other result is out.
    panic: Panic,
    len: usize,
}

impl Completions {
    /// The next finished command's index and result, or `None` when all
    /// have been reported. Resumes the panic of a command whose run
    /// panicked, once the others have been reported.
    pub async fn next(&mut self) -> Option<(usize, Result<Output>)> {
        let next = self.rx.recv().await;
        if next.is_none() {
            self.resume_panic();
        }
        next
    }

    /// Resumes a command's panic, if one was kept.
    fn resume_panic(&self) {
        let kept = self
            .panic
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(payload) = kept {
            std::panic::resume_unwind(payload);
        }
    }

    /// How many commands the batch has in all.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch has no commands.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl futures_core::Stream for Completions {
    type Item = (usize, Result<Output>);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.rx.poll_recv(cx);
        if let Poll::Ready(None) = next {
            self.resume_panic();
        }
        next
    }
}

impl Drop for Completions {
    fn drop(&mut self) {
        // Aborting the driver drops its JoinSet, which aborts every running
        // command; each one's group is torn down as its future is dropped.
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}

impl fmt::Debug for Completions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completions")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}
