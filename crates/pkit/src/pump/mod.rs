//! The line pump: read -> (tee) -> (capture) -> decode -> split -> sinks.
//!
//! One reader task per piped output stream (one for both when no code of
//! the caller's runs in either: see `pair.rs`). Every consumer of a process's
//! output — the captured `Output`, tees, per-line callbacks, the merged
//! line stream and the readiness probe that waits for a line — is fed from
//! here, so they all see the same bytes and the same split.

mod apart;
mod batch;
mod capture;
mod decode;
mod exit_mark;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod lazy;
mod limit;
mod line_feed;
mod lines;
mod owing;
mod pair;
mod prompt;
mod queue;
mod source;
mod split;
mod tee;
mod thread;
mod unwound;

use thread::{Control, BIG_READ_CHUNK};

/// How long a reader of the line stream (the stream itself, `wait_for_line`)
/// keeps reading after the process exited while no line arrives — a
/// background descendant may hold the pipes open, or output may still be on
/// the way — before it reports the exit.
pub(crate) const AFTER_EXIT_QUIET: std::time::Duration = std::time::Duration::from_millis(250);

/// How long after the exit such a reader keeps waiting for lines, at most,
/// however often they come, counted once it has taken the lines queued when
/// it saw the exit (those are owed): a background job that writes on must
/// not hold the exit back for good.
pub(crate) const AFTER_EXIT_MOST: std::time::Duration = std::time::Duration::from_secs(2);

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

pub(crate) use apart::{mark_thread, marked};
use batch::Batch;
pub use capture::CapturePolicy;
pub(crate) use capture::{CaptureBuf, Captured, TeeError};
pub use decode::{Decoder, DecoderFactory, Utf8Decoder};
pub(crate) use lazy::aside;
pub(crate) use limit::LimitFlag;
pub(crate) use line_feed::LineCallback;
crate::sys::with_direct_wait! {
    pub(crate) use line_feed::LineFeed;
}
pub(crate) use exit_mark::ExitWatch;
pub use lines::{Line, StreamKind};
pub(crate) use prompt::{PromptSink, PromptSlot};
pub(crate) use queue::queue;
pub use queue::{Lines, Overflow};
use split::Splitter;
#[cfg(feature = "testing")]
pub(crate) use tee::RecordChunk;
pub(crate) use tee::Tee;
use tee::{mirror, own_tee};

/// The sending side of a process's merged line stream.
#[derive(Clone)]
pub(crate) struct LineSink {
    pub tx: queue::Sender,
    pub overflow: Overflow,
    pub dropped: Arc<AtomicU64>,
}

/// Everything one reader task does with its stream.
pub(crate) struct StreamPlan {
    pub kind: StreamKind,
    pub capture: Option<CaptureBuf>,
    pub tee: Option<Tee>,
    pub callback: Option<LineCallback>,
    pub lines: Option<LineSink>,
    pub decoder: Option<DecoderFactory>,
    pub max_line_bytes: usize,
    pub limit: Arc<LimitFlag>,
    /// Where the stream's partial line is published (a line stream's).
    pub prompt: Option<Arc<PromptSlot>>,
    /// The process's exit, for a line stream's reader (see `owing.rs`).
    pub exit: Option<ExitWatch>,
}

/// A running reader: a task on the async runtime.
///
/// Small outputs — most runs — are read on the reactor, with no thread of
/// their own. A stream that only feeds the capture and passes
/// [`HANDOFF_BYTES`] moves to a thread of its own doing `poll` + `read`,
/// as `std::process::Command::output` does, so big outputs don't pay a
/// trip through the reactor per chunk.
pub(crate) struct Reader {
    task: Task,
    control: Arc<Control>,
}

/// Where a reader's capture comes back from.
enum Task {
    /// A task of its own.
    Own(JoinHandle<Captured>),
    /// Its half of one task reading both streams (see `pair.rs`), or the
    /// panic that ended the half; the stdout half holds the way to claim
    /// that task while it waits for its first event. Also a lone reader's
    /// task spawned by its first event (`Reader::start_lazy`), or a
    /// reader running the caller's code on a thread of its own (`apart.rs`).
    Half(
        tokio::sync::oneshot::Receiver<std::thread::Result<Captured>>,
        Option<Arc<lazy::SpawnOnWake>>,
    ),
}

const READ_CHUNK: usize = 64 * 1024;
/// The first read's room: most streams are small (stderr often empty).
const FIRST_READ: usize = 8 * 1024;
/// Past this many bytes a stream grows its pipe and reads bigger chunks,
/// and a capture-only stream moves to a blocking thread.
const HANDOFF_BYTES: usize = 4 * READ_CHUNK;

impl Reader {
    /// Starts reading a pseudo-terminal's master (a pty session's output).
    pub(crate) fn start_pty(pty: crate::sys::PtyIo, plan: StreamPlan) -> Reader {
        Reader::start_source(source::Source::Pty(pty), plan)
    }

    pub(super) fn start_source(rx: source::Source, plan: StreamPlan) -> Reader {
        let control = Arc::new(Control::default());
        let callers = plan.tee.is_some() || plan.callback.is_some() || plan.decoder.is_some();
        let read = run(rx, plan, control.clone());
        // The caller's code, under the blocking API: on a thread of its own.
        let task = match if callers {
            apart::start(read)
        } else {
            Err(read)
        } {
            Ok(done) => Task::Half(done, None),
            Err(read) => Task::Own(tokio::spawn(read)),
        };
        Reader { task, control }
    }

    /// Stops reading — after taking what is already in the pipe, even if an
    /// escaped process still holds its write end — and returns the capture.
    /// Cancel-safe: dropped before its end, it can be called again (drop
    /// the reader only once it has returned; it must not be polled again).
    ///
    /// `timed_out`: a bound of the run passed (its timeout: the tree is
    /// gone; or any after the exit, see [`finish_within`](Self::finish_within)):
    /// the tee is cut (see [`abandon_tee`](Self::abandon_tee)).
    pub(crate) async fn finish(&mut self, timed_out: bool) -> Captured {
        if timed_out {
            self.abandon_tee();
        }
        self.control.stopping.store(true, Ordering::Release);
        self.control.stop.notify_one();
        // No result: the task was dropped with the runtime it ran on.
        let lost = || Captured {
            lost: true,
            ..Captured::default()
        };
        match &mut self.task {
            Task::Own(task) => match task.await {
                Ok(captured) => captured,
                // A bug of pkit's own: not hidden as an empty capture.
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => lost(),
            },
            Task::Half(done, _) => match done.await {
                Ok(Ok(captured)) => captured,
                // Its half's panic, caught in the shared task: as above.
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => lost(),
            },
        }
    }

    /// [`finish`](Self::finish), with the stream's async tee abandoned
    /// (see [`abandon_tee`](Self::abandon_tee)) once `bound` completes
    /// before the finish does, or at once when `*passed` already: a bound
    /// of the run passed after its process exited. Sets `*passed` when
    /// `bound` completes, for the next stream's finish. A finish that
    /// completes at the first look is never cut.
    pub(crate) async fn finish_within(
        &mut self,
        passed: &mut bool,
        bound: std::pin::Pin<&mut impl std::future::Future>,
    ) -> Captured {
        if !*passed {
            // `finish` is cancel-safe: called again below, cutting.
            tokio::select! {
                biased;
                captured = self.finish(false) => return captured,
                _ = bound => *passed = true,
            }
        }
        self.finish(true).await
    }

    /// Abandons the stream's async tee once its write (or flush) is under
    /// way and blocked, or at its next: a bound of the run passed (it ended
    /// by its timeout and its tree is gone, or one passed after its process
    /// exited), so a writer that takes no bytes must not hold the run. The tee is disabled, its
    /// error says so (`TimedOut`), and what was left is not written.
    fn abandon_tee(&self) {
        self.control.tee_cutting.store(true, Ordering::Release);
        self.control.tee_cut.notify_waiters();
    }

    /// Lets the reader go on without its owner: it drops what it captured
    /// and keeps draining the pipe (tee, callbacks and a taken line stream
    /// still get their lines) until end of file, so the child never blocks
    /// on a full pipe or dies of SIGPIPE. The child's end closes when it
    /// and its descendants exit, at the latest when the group ends.
    pub(crate) fn detach(self) {
        self.control.detached.store(true, Ordering::Release);
        // Dropping the handle (or the half's receiver) leaves the task
        // running.
        drop(self.task);
    }
}

async fn run(rx: source::Source, plan: StreamPlan, control: Arc<Control>) -> Captured {
    run_keeping(rx, plan, control).await.0
}

/// [`run`], handing back with the capture the source it read to its end
/// (`None` when a thread took it over), for the caller to close when that
/// costs its waiter nothing (see `lazy::aside`).
async fn run_keeping(
    mut rx: source::Source,
    mut plan: StreamPlan,
    control: Arc<Control>,
) -> (Captured, Option<source::Source>) {
    // A pipe's: a pseudo-terminal may not have passed all on at the exit.
    let mut exit = plan
        .exit
        .take()
        .filter(|_| plan.lines.is_some() && rx.is_pipe());
    let mut sinks = Sinks::new(plan, control.clone());
    let mut chunk: Vec<u8> = Vec::new();
    // Small outputs use the pipe as made; once a stream has produced a few
    // chunks' worth, grow the pipe and read in bigger chunks.
    let mut read_size = FIRST_READ;
    let mut total = 0usize;
    // The task waited (for the pipe, or for room in the line queue) in
    // this turn: other tasks ran meanwhile. Big reads since it last did.
    let mut waited;
    let mut unwaited = 0;
    enum Step {
        Read(io::Result<usize>),
        Stop,
        Asked,
        Exited,
    }
    // One registration on the stop for the whole stream, not one per
    // pending read; let go before a thread takes over (it waits on the
    // stop itself).
    let mut stop = std::pin::pin!(Some(control.stop.notified()));
    // The line stream's consumer asks, at the exit, what it is owed (see
    // `owed.rs`): the ask wakes a read waiting for the pipe.
    let asking = sinks.lines.as_ref().map(|l| l.tx.asking());
    let mut asked = std::pin::pin!(asking.as_ref().map(queue::Asking::notified));
    // Where the process's output ended, and the latest ask (`owing.rs`).
    let mut owing = exit_mark::Owing::default();
    loop {
        if sinks.capture.is_some() && control.detached() {
            // Nobody will collect the capture: free it, keep draining.
            sinks.capture = None;
        }
        // Everything read so far is fed (its lines queued).
        sinks.answer_owed(&rx, total, &mut owing).await;
        // Where the read goes: straight into an unbounded capture when
        // nothing else is fed (no copy), into the splitter's buffer when
        // undecoded lines are wanted, else into a chunk buffer.
        let direct = sinks.direct_capture();
        let in_place = !direct && sinks.splits_in_place();
        let (step, from) = {
            let mut target = if direct {
                source::Target::Text(sinks.capture_direct())
            } else if in_place {
                // A buffer sized to the read, to become the batch as is.
                sinks.splitter.read_room();
                source::Target::Bytes(sinks.splitter.input())
            } else {
                chunk.clear();
                source::Target::Bytes(&mut chunk)
            };
            let from = target.reserve(if in_place { 0 } else { read_size });
            // The flag first: a stream that is always ready to read would
            // otherwise never let the select see the stop.
            waited = false;
            let step = if control.stopping() {
                Step::Stop
            } else {
                let read = async {
                    tokio::select! {
                        biased;
                        read = target.read(&mut rx) => Step::Read(read),
                        _ = stop.as_mut().as_pin_mut().expect("until a handoff") => Step::Stop,
                        _ = async {
                            match asked.as_mut().as_pin_mut() {
                                Some(asked) => asked.await,
                                None => std::future::pending().await,
                            }
                        } => Step::Asked,
                        _ = async {
                            match exit.as_mut() {
                                Some(exit) => exit.await,
                                None => std::future::pending().await,
                            }
                        } => Step::Exited,
                    }
                };
                source::noting_wait(read, &mut waited).await
            };
            (step, from)
        };
        if let Step::Read(Ok(n)) = step {
            read_size = read_size.max(READ_CHUNK);
            total += n;
            if n > 0 {
                sinks.limit.touch();
            }
        }
        // Splitting a big read into lines is real work, and when nothing
        // makes the task wait (lines dropped, or no line consumer that
        // pushes back), the read alone yields only every 128 reads: let
        // the runtime's other tasks run after a few big reads with no wait
        // between them (see `source::BIG_READS_PER_YIELD`).
        let busy = match step {
            // A read in place that filled a room of half the largest
            // class or more (the pipe may hold more).
            Step::Read(Ok(n)) if in_place => {
                sinks.splitter.note_read(n) && n >= split::MAX_CLASS / 2
            }
            Step::Read(Ok(n)) => n >= READ_CHUNK && !direct,
            _ => false,
        };
        match step {
            Step::Read(Ok(0)) => {
                control.ended.store(true, Ordering::Release);
                break;
            }
            Step::Read(Ok(n)) if direct => sinks.note_direct(n),
            Step::Read(Ok(_)) if in_place => {
                source::noting_wait(sinks.feed_in_place(from), &mut waited).await
            }
            Step::Read(Ok(_)) => source::noting_wait(sinks.feed(&chunk), &mut waited).await,
            Step::Read(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Step::Read(Err(_)) => break,
            Step::Asked => asked.set(asking.as_ref().map(queue::Asking::notified)),
            Step::Exited => {
                exit = None;
                owing.exited(&rx, total);
            }
            Step::Stop => {
                let mut rest = Vec::new();
                rx.drain(&mut rest).await;
                sinks.feed(&rest).await;
                break;
            }
        }
        unwaited = source::unwaited_after(unwaited, busy, waited);
        if unwaited >= source::BIG_READS_PER_YIELD {
            unwaited = 0;
            tokio::task::yield_now().await;
        }
        if read_size < BIG_READ_CHUNK && total >= HANDOFF_BYTES && rx.is_pipe() {
            rx.grow();
            read_size = BIG_READ_CHUNK;
            // Out of threads or descriptors, the stream stays here.
            let handoff = (crate::sys::BLOCKING_HANDOFF && sinks.capture_only())
                .then(thread::Handoff::prepare)
                .flatten();
            if let Some(handoff) = handoff {
                let capture = sinks.capture.take().expect("checked by capture_only");
                stop.set(None);
                let captured = match rx.into_pipe_fd() {
                    Some(Ok(fd)) => handoff.run(fd, capture, sinks.limit, control.clone()).await,
                    _ => capture.finish(),
                };
                return (captured, None);
            }
        }
    }
    let captured = sinks.finish().await;
    (captured, Some(rx))
}

/// The consumers of one stream, with the splitting and decoding state.
struct Sinks {
    kind: StreamKind,
    capture: Option<CaptureBuf>,
    tee: Option<Tee>,
    callback: Option<LineCallback>,
    lines: Option<LineSink>,
    decoder: Option<Box<dyn Decoder>>,
    /// The decoder's maker, for a fresh one after the exit (`owing.rs`).
    factory: Option<DecoderFactory>,
    text: String,
    splitter: Splitter,
    limit: Arc<LimitFlag>,
    prompt: Option<PromptSink>,
    /// The write error that disabled the tee.
    tee_error: Option<io::Error>,
    /// Its reader's control (see `Reader::abandon_tee`).
    control: Arc<Control>,
}

impl Sinks {
    fn new(plan: StreamPlan, control: Arc<Control>) -> Sinks {
        let (mut callback, mut lines) = (plan.callback, plan.lines);
        let factory = plan.decoder;
        let decoder = factory.as_ref().and_then(|factory| {
            let made = decode::made(factory);
            if made.is_none() {
                // Contained as a decoder that panics is (see `decode`).
                tracing::warn!(target: "pkit", stream = %plan.kind, "decoder factory panicked; its lines end");
                (callback, lines) = (None, None);
            }
            made
        });
        Sinks {
            kind: plan.kind,
            capture: plan.capture,
            tee: plan.tee,
            callback,
            lines,
            decoder,
            factory,
            text: String::new(),
            splitter: Splitter::new(plan.max_line_bytes),
            limit: plan.limit,
            prompt: plan.prompt.map(PromptSink::new),
            tee_error: None,
            control,
        }
    }

    fn wants_lines(&self) -> bool {
        self.callback.is_some() || self.lines.is_some()
    }

    /// Nothing to feed but the capture (bounded or not).
    fn capture_only(&self) -> bool {
        self.tee.is_none() && !self.wants_lines() && self.capture.is_some()
    }

    /// Nothing to feed but an unbounded capture, which can be read into.
    fn direct_capture(&mut self) -> bool {
        self.tee.is_none()
            && !self.wants_lines()
            && self.capture.as_mut().is_some_and(|c| c.direct().is_some())
    }

    fn capture_direct(&mut self) -> &mut crate::sys::TextBytes {
        self.capture
            .as_mut()
            .and_then(CaptureBuf::direct)
            .expect("checked by direct_capture")
    }

    fn note_direct(&mut self, n: usize) {
        if let Some(c) = &mut self.capture {
            c.note_direct(n);
        }
    }

    /// Undecoded lines are wanted: read into the splitter's own buffer.
    fn splits_in_place(&self) -> bool {
        self.wants_lines() && self.decoder.is_none()
    }

    /// Feeds bytes read into a chunk buffer of the caller's.
    async fn feed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let failed = mirror(
            (self.kind, &self.control),
            &mut self.tee,
            &mut self.capture,
            &self.limit,
            bytes,
        )
        .await;
        self.tee_error = self.tee_error.take().or(failed);
        if !self.wants_lines() {
            return;
        }
        if self.decoder.is_none() {
            self.splitter.extend(bytes);
        } else if !self.decode(bytes, false) {
            return;
        }
        self.split().await;
    }

    /// Decodes `bytes` into the splitter (with a decoder). One that panics
    /// is disabled with the lines it feeds (see [`Decoder`]): `false`.
    fn decode(&mut self, bytes: &[u8], last: bool) -> bool {
        let Some(d) = &mut self.decoder else {
            return true;
        };
        if !decode::contained(&mut **d, bytes, last, &mut self.text) {
            tracing::warn!(target: "pkit", stream = %self.kind, "decoder panicked; its lines end");
            (self.decoder, self.callback, self.lines) = (None, None, None);
            return false;
        }
        self.splitter.extend(self.text.as_bytes());
        self.text.clear();
        true
    }

    /// Feeds the bytes read into the splitter's buffer from `from` on.
    async fn feed_in_place(&mut self, from: usize) {
        let Sinks {
            kind,
            capture,
            tee,
            splitter,
            limit,
            control,
            ..
        } = self;
        let bytes = &splitter.buffered()[from..];
        let failed = mirror((*kind, control), tee, capture, limit, bytes).await;
        self.tee_error = self.tee_error.take().or(failed);
        self.split().await;
    }

    async fn split(&mut self) {
        if let Some(batch) = self.splitter.split(self.kind) {
            self.deliver(batch).await;
        }
        // After the lines before it are delivered.
        if let Some(p) = &mut self.prompt {
            let (line, tail) = self.splitter.tail();
            p.publish(self.kind, line, tail);
        }
    }

    async fn finish(mut self) -> Captured {
        if self.wants_lines() && self.decode(&[], true) {
            if let Some(batch) = self.splitter.finish(self.kind) {
                self.deliver(batch).await;
            }
            if let Some(p) = &mut self.prompt {
                let (line, _) = self.splitter.tail();
                p.publish(self.kind, line, &[]);
            }
        }
        if let Some(Tee::Async(w)) = own_tee(&mut self.tee) {
            let flushed = async {
                let mut w = w.lock().await;
                unwound::Unwound(std::pin::pin!(w.flush())).await
            };
            if let Err(e) = unwound::cut_short(flushed, &self.control).await {
                self.tee_error = self.tee_error.take().or(Some(e));
            }
        }
        let mut captured = self
            .capture
            .take()
            .map(CaptureBuf::finish)
            .unwrap_or_default();
        captured.tee_error = self.tee_error.take().map(|e| TeeError(Arc::new(e)));
        captured
    }

    /// Hands a batch of lines to the callback and the line stream.
    async fn deliver(&mut self, batch: Batch) {
        line_feed::call_back(&mut self.callback, self.kind, &batch);
        let Some(sink) = &self.lines else { return };
        let (open, spare) = sink.tx.send(batch, sink.overflow, &sink.dropped).await;
        // A batch buffer the consumer gave back, for a later batch (the
        // splitter lets its oldest go when it holds enough).
        if let Some(spare) = spare {
            self.splitter.give_spare(spare);
        }
        if !open {
            // Nobody listens any more; keep draining the pipe regardless,
            // so the child never blocks on a full pipe.
            self.lines = None;
        }
    }
}
