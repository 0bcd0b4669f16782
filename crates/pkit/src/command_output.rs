//! The output half of [`Command`]'s builder: the line stream, callbacks,
//! tees, decoding, line and capture bounds.

use std::sync::Arc;

use crate::command::Command;
use crate::pump::{CapturePolicy, DecoderFactory, Overflow, Tee};

impl Command {
    /// Enables the merged line stream of a started process:
    /// [`RunningProcess::lines`](crate::RunningProcess::lines) and
    /// [`wait_for_line`](crate::RunningProcess::wait_for_line). With it, the
    /// lines go to the stream, and the [`Output`](crate::Output) of the run holds no
    /// stdout/stderr bytes (mirror them with a tee to keep them); memory
    /// stays bounded however much the child writes. The verbs ignore it.
    pub fn stream_lines(mut self) -> Command {
        self.spec.io.stream_lines = true;
        self
    }

    /// The capacity of the line stream, in lines (default 1024): how many
    /// lines may wait for the consumer before the policy set with
    /// [`overflow`](Self::overflow) applies. (The stream takes lines from
    /// it one read's worth at a time, so the lines of one read, at most
    /// about 1 MiB of them, may wait on the consumer's side on top.)
    pub fn buffer_lines(mut self, lines: usize) -> Command {
        self.spec.io.buffer_lines = lines.max(1);
        self
    }

    /// What happens when the line stream is full (default: backpressure).
    pub fn overflow(mut self, overflow: Overflow) -> Command {
        self.spec.io.overflow = overflow;
        self
    }

    /// Calls `f` once per stdout line (the same lines the stream sees), in
    /// order, one call at a time. A callback that panics is disabled; the
    /// run goes on.
    ///
    /// Where `f` runs: in the async API, on the task that reads the pipe, a
    /// task of your runtime, so keep it fast: while it runs, that stream is
    /// not read and that task's worker thread runs nothing else (on a
    /// current-thread runtime, nothing at all: a callback that blocks stalls
    /// every task of that runtime, timers included). Under the
    /// [blocking](crate::blocking) API, on a thread of the stream's reader's
    /// own (not the facade's shared runtime thread): a slow callback holds
    /// back only this stream, and the run's end waits for it, but other
    /// runs, other threads and this run's own timeout are not delayed (see
    /// the blocking module's "One engine"). Except in a one-shot blocking
    /// verb (`cmd.blocking().output()`, `.run()`...) with no timeout and a
    /// callback on one stream only, on Linux (cgroup v2 or process group;
    /// not the portable mechanism) and with no tee or decoder: there it
    /// runs on the thread that called the verb, between its reads of the
    /// child's pipes, and a slow callback holds back the run's other
    /// stream too (nothing else). Either way, send slow work
    /// elsewhere (a channel, a thread) to keep the stream flowing.
    pub fn on_stdout_line(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Command {
        self.spec.io.on_stdout_line = Some(Arc::new(f));
        self
    }

    /// Calls `f` once per stderr line. A callback that panics is disabled.
    /// It runs where [`on_stdout_line`](Self::on_stdout_line)'s does (on
    /// its own stream's reader); keep it fast, as that one.
    pub fn on_stderr_line(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Command {
        self.spec.io.on_stderr_line = Some(Arc::new(f));
        self
    }

    /// Mirrors stdout's raw bytes (not decoded, not split) to `writer`.
    /// Clones of this command share the writer. A writer that fails or
    /// panics is disabled and the run goes on (see
    /// [`Output::stdout_tee_error`](crate::Output::stdout_tee_error)).
    ///
    /// A writer that takes no bytes holds the stream's reading, and the
    /// run waits for it to take what was read: the writer is the caller's.
    /// The run's bounds bound it too, also after the program exited
    /// (`output`, [`RunningProcess::wait`](crate::RunningProcess::wait), a
    /// pipeline's stages alike): when the [`timeout`](Self::timeout) passes
    /// (the tree is then gone), or the
    /// [`inactivity_timeout`](Self::inactivity_timeout) (no output read for
    /// that long), or the [cancel token](Self::cancel_token) fires once the
    /// program has exited, a write still blocked is abandoned (what was
    /// left of it, and the rest, is not written, though captured; the tee
    /// error says so, [`std::io::ErrorKind::TimedOut`]) and the run
    /// returns. The outcome is what ended the program: `TimedOut` when the
    /// timeout did, the exit's own when it exited first (only the tee was
    /// cut). A run cancelled while its program runs returns
    /// [`Error::Cancelled`](crate::Error::Cancelled) at once and leaves the
    /// write to its reader. A run without bounds waits for the writer.
    pub fn stdout_tee(
        mut self,
        writer: impl tokio::io::AsyncWrite + Send + Unpin + 'static,
    ) -> Command {
        self.spec.io.stdout_tee = Some(Tee::Async(Arc::new(tokio::sync::Mutex::new(Box::new(
            writer,
        )))));
        self
    }

    /// Mirrors stderr's raw bytes to `writer`, as
    /// [`stdout_tee`](Self::stdout_tee) does stdout's (a stuck writer
    /// included).
    pub fn stderr_tee(
        mut self,
        writer: impl tokio::io::AsyncWrite + Send + Unpin + 'static,
    ) -> Command {
        self.spec.io.stderr_tee = Some(Tee::Async(Arc::new(tokio::sync::Mutex::new(Box::new(
            writer,
        )))));
        self
    }

    /// Mirrors stdout's raw bytes to a blocking writer (called on the
    /// reading task: keep it fast, e.g. a file or a buffer). It runs where a
    /// line callback does (see [`on_stdout_line`](Self::on_stdout_line)):
    /// on your runtime's task in the async API, where a slow write stalls
    /// that task's thread; on the stream's own reader thread under the
    /// blocking API, where it holds back only this stream. A call that
    /// never returns can't be abandoned as an async tee's write is (see
    /// [`stdout_tee`](Self::stdout_tee)): it holds the run, and a thread,
    /// whatever the bounds.
    pub fn stdout_tee_blocking(mut self, writer: impl std::io::Write + Send + 'static) -> Command {
        self.spec.io.stdout_tee = Some(Tee::Blocking(Arc::new(std::sync::Mutex::new(Box::new(
            writer,
        )))));
        self
    }

    /// Mirrors stderr's raw bytes to a blocking writer.
    pub fn stderr_tee_blocking(mut self, writer: impl std::io::Write + Send + 'static) -> Command {
        self.spec.io.stderr_tee = Some(Tee::Blocking(Arc::new(std::sync::Mutex::new(Box::new(
            writer,
        )))));
        self
    }

    /// Decodes each stream with decoders from `factory` before it is split
    /// into lines (default: UTF-8, invalid sequences replaced).
    pub fn decoder(mut self, factory: DecoderFactory) -> Command {
        self.spec.io.decoder = Some(factory);
        self
    }

    /// The longest line delivered whole (default 1 MiB). A longer line is
    /// delivered in pieces of at most this many bytes, cut at a character
    /// boundary, every piece but the last marked
    /// [`partial`](crate::Line::partial): nothing is lost and memory stays
    /// bounded.
    pub fn max_line_bytes(mut self, bytes: usize) -> Command {
        self.spec.io.max_line_bytes = bytes.max(4);
        self
    }

    /// Bounds the captured stdout and stderr to `bytes` each, with
    /// `policy` deciding what is kept (or that the run fails). The
    /// [`Output`](crate::Output) says when something was cut and how much was seen.
    ///
    /// Without it the verbs keep everything and a started process keeps
    /// the last [`DEFAULT_START_CAPTURE_BYTES`](crate::DEFAULT_START_CAPTURE_BYTES); `usize::MAX` keeps
    /// everything in both.
    pub fn capture_limit(mut self, bytes: usize, policy: CapturePolicy) -> Command {
        self.spec.io.capture_limit = Some(bytes);
        self.spec.io.capture_policy = policy;
        self
    }
}
