//! A stream's line callback fed by a reader of the caller's own: the
//! blocking facade's one-shot runs read their pipes on the calling thread
//! (`blocking/direct.rs`) and, when a line callback is all the caller's
//! code in them, call it there too, with no reader task or thread. The
//! lines are the reader tasks' own: the same `Splitter` (the pipe read
//! straight into its buffer, as a task reads undecoded lines), the same
//! cut at `max_line_bytes`, the same containment of a callback that
//! panics ([`call_back`], which the tasks call too).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use super::batch::Batch;
use super::lines::StreamKind;

/// Called once per line of one stream.
pub(crate) type LineCallback = Arc<dyn Fn(&str) + Send + Sync>;

/// Calls `callback` with each of `batch`'s lines, in order. One that
/// panics is disabled (`None`, with a warning) and is not offered the
/// rest: the stream goes on being read.
pub(super) fn call_back(callback: &mut Option<LineCallback>, kind: StreamKind, batch: &Batch) {
    let Some(cb) = callback else { return };
    for text in batch.texts() {
        if std::panic::catch_unwind(AssertUnwindSafe(|| cb(text))).is_err() {
            tracing::warn!(target: "pkit", stream = %kind, "line callback panicked; callback disabled");
            *callback = None;
            return;
        }
    }
}

// Linux alone has the blocking direct path (elsewhere every run is the
// engine's).
crate::sys::with_direct_wait! {
    use super::split::Splitter;

    /// One stream's bytes, as read, split into lines for its callback.
    pub(crate) struct LineFeed {
        kind: StreamKind,
        splitter: Splitter,
        callback: Option<LineCallback>,
        /// The runtime whose context the callback runs in, as a reader's
        /// does: a blocking call of pkit's inside it is refused the same way
        /// (see `blocking::runtime::refuse_inside_runtime`).
        context: tokio::runtime::Handle,
        /// Where the last read's bytes start in the splitter's buffer.
        from: usize,
    }

    impl LineFeed {
        pub(crate) fn new(
            kind: StreamKind,
            callback: LineCallback,
            max_line_bytes: usize,
            context: tokio::runtime::Handle,
        ) -> LineFeed {
            LineFeed {
                kind,
                splitter: Splitter::new(max_line_bytes),
                callback: Some(callback),
                context,
                from: 0,
            }
        }

        /// The callback is still called (it has not panicked).
        pub(crate) fn wanted(&self) -> bool {
            self.callback.is_some()
        }

        /// The buffer for the next read, sized as a reader task's read in
        /// place (see [`Splitter::read_room`]): read into its spare capacity,
        /// then call [`read`](Self::read).
        pub(crate) fn room(&mut self) -> &mut Vec<u8> {
            self.from = self.splitter.read_room();
            self.splitter.input()
        }

        /// After a read of `n` bytes into [`room`](Self::room): hands those
        /// bytes to `keep` (the capture), then their whole lines to the
        /// callback.
        pub(crate) fn read(&mut self, n: usize, keep: impl FnOnce(&[u8])) {
            keep(&self.splitter.buffered()[self.from..]);
            self.splitter.note_read(n);
            if let Some(batch) = self.splitter.split(self.kind) {
                self.deliver(batch);
            }
        }

        /// End of the stream: the last line, unterminated, to the callback.
        pub(crate) fn finish(&mut self) {
            if !self.wanted() {
                return;
            }
            if let Some(batch) = self.splitter.finish(self.kind) {
                self.deliver(batch);
            }
        }

        fn deliver(&mut self, batch: Batch) {
            {
                let _cx = self.context.enter();
                call_back(&mut self.callback, self.kind, &batch);
            }
            // The callback had every line: the batch's buffer is the
            // splitter's again, for a later read.
            if let Some(spare) = batch.spent() {
                self.splitter.give_spare(spare);
            }
        }
    }
}
