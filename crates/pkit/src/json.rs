//! The `json` cargo feature: [`Command::output_json`] and
//! [`Command::json_lines`].

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde::de::DeserializeOwned;

use crate::command::Command;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::process::RunningProcess;
use crate::pump::{Lines, StreamKind};
use crate::verbs;

/// How many stderr lines a failed `json_lines` run keeps for its error.
const STDERR_TAIL_LINES: usize = 10;

impl Command {
    /// Runs the command like [`run`](Self::run) (success required, see
    /// [`ok_codes`](Self::ok_codes)) and deserializes its whole stdout as
    /// one JSON value of type `T`. Stdout that is not such a value is an
    /// [`Error::Json`] naming the type, the line and the column, never the
    /// text. Cargo feature `json`.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// let v: Vec<u32> = pkit::Command::new("echo").arg("[1, 2, 3]").output_json().await?;
    /// assert_eq!(v, [1, 2, 3]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`run`](Self::run), and [`Error::Json`](crate::Error::Json) when stdout is not
    /// the JSON asked for.
    pub async fn output_json<T: DeserializeOwned>(&self) -> Result<T> {
        let text = self.run().await?;
        serde_json::from_str(&text).map_err(|e| json_error::<T>(self.display_name(), &e, None))
    }

    /// Starts the command as a one-off live process (as
    /// [`start`](Self::start) does: a private group, ended when the stream
    /// drops) and reads its stdout as JSON lines: each line is
    /// deserialized as a `T` and handed over as it comes. Cargo feature
    /// `json`.
    ///
    /// A line that is not a `T` is an [`Error::Json`] item carrying its
    /// line number (counted from 1 over every stdout line); the stream
    /// goes on with the next line, so stop reading to give up. Blank lines
    /// are skipped. A line longer than the command's
    /// [`max_line_bytes`](Self::max_line_bytes) is one `"line too long"`
    /// error (it is never held whole). Stderr is not parsed. When stdout
    /// ends, the run is waited for: the stream ends, after the run's error
    /// as a last item if it failed (as [`run`](Self::run) would report it,
    /// with the tail of its stderr). The command's timeout and cancel token
    /// apply.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// #[derive(serde::Deserialize)]
    /// struct Event { n: u32 }
    ///
    /// let mut events = pkit::Command::new("printf")
    ///     .arg(r#"{"n": 1}\n{"n": 2}\n"#)
    ///     .json_lines::<Event>()?;
    /// let mut sum = 0;
    /// while let Some(event) = events.next().await {
    ///     sum += event?.n;
    /// }
    /// assert_eq!(sum, 3);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The start errors of [`start`](Self::start). A line that is not the JSON asked for is an
    /// [`Error::Json`](crate::Error::Json) item of the stream, not an error here.
    pub fn json_lines<T: DeserializeOwned>(&self) -> Result<JsonLines<T>> {
        let mut proc = self.clone().stream_lines().start()?;
        let lines = proc.lines();
        Ok(JsonLines {
            program: self.display_name(),
            pid: proc.pid(),
            ok: self.ok().into(),
            secret: self.spec.io.secret_output,
            redact: self.secret_values(),
            proc: Some(proc),
            lines,
            line: 0,
            stderr_tail: VecDeque::new(),
            finishing: None,
            done: false,
            _type: PhantomData,
        })
    }
}

/// The `Error::Json` for `e`: where and what, never the text. `line`
/// overrides serde's line (a `json_lines` line number).
fn json_error<T>(program: String, e: &serde_json::Error, line: Option<usize>) -> Error {
    use serde_json::error::Category;
    Error::Json {
        program,
        target: std::any::type_name::<T>(),
        line: line.unwrap_or(e.line()),
        column: e.column(),
        problem: match e.classify() {
            Category::Syntax => "syntax error",
            Category::Eof => "unexpected end",
            Category::Data => "not the expected shape",
            Category::Io => "read error",
        },
    }
}

type Finishing = Pin<Box<dyn Future<Output = Result<Output>> + Send>>;

/// A started command's stdout as a stream of JSON values, from
/// [`Command::json_lines`]. It implements [`futures_core::Stream`];
/// [`next`](Self::next) needs no extra crate. Dropping it ends the run
/// (its whole tree is killed).
#[must_use = "a JsonLines does nothing unless read, and dropping it ends the run"]
pub struct JsonLines<T> {
    program: String,
    pid: u32,
    ok: Arc<[i32]>,
    secret: bool,
    /// The command's secret arguments (see `Output::redact`).
    redact: Vec<Vec<u8>>,
    proc: Option<RunningProcess>,
    lines: Lines,
    /// Stdout lines seen so far.
    line: usize,
    stderr_tail: VecDeque<String>,
    finishing: Option<Finishing>,
    done: bool,
    _type: PhantomData<fn() -> T>,
}

impl<T> JsonLines<T> {
    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl<T: DeserializeOwned> JsonLines<T> {
    /// The next value (or the error for its line), or the run's error at
    /// the end if it failed, or `None` once the run is over.
    pub async fn next(&mut self) -> Option<Result<T>> {
        std::future::poll_fn(|cx| self.poll_item(cx)).await
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.finishing.is_none() {
            loop {
                let line = match Pin::new(&mut self.lines).poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(line)) => line,
                    Poll::Ready(None) => break,
                };
                if line.stream == StreamKind::Stderr {
                    if self.stderr_tail.len() == STDERR_TAIL_LINES {
                        self.stderr_tail.pop_front();
                    }
                    self.stderr_tail.push_back(line.text);
                    continue;
                }
                // The later pieces of an over-long line: reported with its
                // first piece (or dropped with it, under `DropNewest`).
                if !line.begins_a_line() {
                    continue;
                }
                if let Some(item) = self.parse(line.text, line.partial) {
                    return Poll::Ready(Some(item));
                }
            }
            let mut proc = self.proc.take().expect("present until the end");
            self.finishing = Some(Box::pin(async move { proc.wait().await }));
        }
        let finishing = self.finishing.as_mut().expect("set above");
        let Poll::Ready(result) = finishing.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        self.done = true;
        self.finishing = None;
        let checked = result.and_then(|mut out| {
            out.secret_output = self.secret;
            out.redact = std::mem::take(&mut self.redact);
            if out.stderr.is_empty() {
                for l in self.stderr_tail.drain(..) {
                    out.stderr.extend_from_slice(l.as_bytes());
                    out.stderr.push(b'\n');
                }
            }
            verbs::require_success(out, &self.ok)
        });
        Poll::Ready(checked.err().map(Err))
    }

    /// One stdout line (or the first piece of one cut by `max_line_bytes`):
    /// the item it gives, if any.
    fn parse(&mut self, text: String, partial: bool) -> Option<Result<T>> {
        self.line += 1;
        if partial {
            return Some(Err(Error::Json {
                program: self.program.clone(),
                target: std::any::type_name::<T>(),
                line: self.line,
                column: 0,
                problem: "line too long",
            }));
        }
        if text.trim().is_empty() {
            return None;
        }
        Some(
            serde_json::from_str(&text)
                .map_err(|e| json_error::<T>(self.program.clone(), &e, Some(self.line))),
        )
    }
}

impl<T: DeserializeOwned> futures_core::Stream for JsonLines<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        self.get_mut().poll_item(cx)
    }
}

impl<T> fmt::Debug for JsonLines<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLines")
            .field("program", &self.program)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}
