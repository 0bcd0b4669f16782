//! The verbs people reach for beyond the four: [`parse`](Command::parse),
//! [`first_line`](Command::first_line), and
//! [`ok_codes`](Command::ok_codes); and a group's one-command
//! [`run`](Group::run) and [`exit_code`](Group::exit_code).

use std::str::FromStr;
use std::sync::Arc;

use crate::command::Command;
use crate::error::{Error, Result};
use crate::group::Group;
use crate::pump::StreamKind;
use crate::verbs;

impl Command {
    /// The exit codes that count as success for [`run`](Self::run) (and
    /// [`parse`](Self::parse), [`first_line`](Self::first_line)); with it
    /// set, [`exit_code`](Self::exit_code) returns one of them or the
    /// [`Error::NonZeroExit`]. Without it: `0` only, and `exit_code`
    /// returns any code. The same codes decide a [`Pipe`](crate::Pipe)
    /// stage's success, a [`Supervisor`](crate::Supervisor)'s clean exit
    /// and [`Group::run`]/[`Group::exit_code`]'s. `grep` answers "no match"
    /// with 1:
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// let found = pkit::Command::new("grep").args(["-c", "x"]).stdin_str("a\nb\n")
    ///     .ok_codes([0, 1])
    ///     .run()
    ///     .await?;
    /// assert_eq!(found, "0");
    /// # Ok(()) }
    /// ```
    pub fn ok_codes(mut self, codes: impl IntoIterator<Item = i32>) -> Command {
        self.spec.io.ok_codes = Some(codes.into_iter().collect::<Arc<[i32]>>());
        self
    }

    /// The codes `run` counts as success.
    pub(crate) fn ok(&self) -> &[i32] {
        self.spec.io.ok_codes.as_deref().unwrap_or(&[0])
    }

    /// Runs the command like [`run`](Self::run), then parses its stdout,
    /// surrounding whitespace trimmed, as a `T`. A stdout that doesn't
    /// parse is an [`Error::Parse`] (naming the type, not the text; the
    /// parser's error is its source, with any [`secret_arg`](Self::secret_arg)
    /// value it quotes as `<secret>` — as given, as text with U+FFFD for
    /// bytes that are not UTF-8, or escaped as a `Debug` writes it
    /// (`\"`, `\n`: what `unwrap()` prints) — and not shown for a
    /// [`secret_output`](Self::secret_output) command).
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// let n: u64 = pkit::Command::new("sh").args(["-c", "echo ' 42'"]).parse().await?;
    /// assert_eq!(n, 42);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`run`](Self::run) (a non-zero exit, a signal, a timeout, a
    /// failed start, …), and [`Error::Parse`] when stdout doesn't parse as a
    /// `T`.
    pub async fn parse<T>(&self) -> Result<T>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        let text = self.run().await?;
        text.trim().parse().map_err(|e: T::Err| Error::Parse {
            program: self.display_name(),
            target: std::any::type_name::<T>(),
            source: crate::redact::parser_error(
                Box::new(e),
                &self.secret_values(),
                self.spec.io.secret_output,
            ),
        })
    }

    /// Starts the command and returns the first stdout line that `pred`
    /// accepts, as soon as it comes; then the run is ended: its whole tree
    /// is killed and gone when this returns (as `cmd | grep -m1` ends
    /// `cmd`, but without waiting for a SIGPIPE). Stderr lines are not
    /// looked at. When stdout ends without a match, the run is waited for:
    /// `Ok(None)` if it succeeded, else its error (as [`run`](Self::run)
    /// would give it). The command's timeout and cancel token apply.
    ///
    /// A line longer than [`max_line_bytes`](Self::max_line_bytes) (1 MiB
    /// unless set) is offered to `pred` as its first piece only: its first
    /// `max_line_bytes` bytes, cut at a character boundary, which is what a
    /// match returns. The pieces after the first are not offered: they are
    /// not lines the program wrote (a line `<16 x>ready` cut at 16 bytes
    /// never matches `l == "ready"`).
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// let line = pkit::Command::new("sh")
    ///     .args(["-c", "echo starting; echo listening on 8080; sleep 300"])
    ///     .first_line(|l| l.starts_with("listening"))
    ///     .await?;
    /// assert_eq!(line.as_deref(), Some("listening on 8080"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`start`](Self::start) when it can't start; without a match,
    /// those of [`run`](Self::run) (a non-zero exit, a signal, a timeout);
    /// [`Error::Cancelled`] when the cancel token fires first. Under a
    /// [`retry`](Self::retry) policy an attempt that fails without a match
    /// is replayed as a failed [`run`](Self::run) is (`pred` then sees the
    /// next attempt's lines too); a match ends the retries.
    pub async fn first_line(&self, pred: impl FnMut(&str) -> bool) -> Result<Option<String>> {
        // Called by one attempt at a time; the lock is never held across
        // an await.
        let pred = std::sync::Mutex::new(pred);
        crate::retry::with_retry(self, || self.first_line_once(&pred)).await
    }

    /// One attempt of [`first_line`](Self::first_line).
    async fn first_line_once(
        &self,
        pred: &std::sync::Mutex<impl FnMut(&str) -> bool>,
    ) -> Result<Option<String>> {
        let mut p = self.clone().stream_lines().start()?;
        // Nobody can write to a verb's piped stdin: end of file at once,
        // as the other verbs give it.
        drop(p.take_stdin());
        let mut lines = p.lines();
        // The line stream takes the stderr a failed run's error quotes:
        // keep its last lines for that.
        let mut stderr_tail = std::collections::VecDeque::new();
        while let Some(line) = lines.next_line().await {
            if line.stream == StreamKind::Stderr {
                if stderr_tail.len() == 10 {
                    stderr_tail.pop_front();
                }
                stderr_tail.push_back(line.text);
                continue;
            }
            // A line cut by `max_line_bytes`: the pieces after its first are
            // no lines the program wrote.
            if !line.begins_a_line() {
                continue;
            }
            let matched = {
                let mut pred = pred
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                (*pred)(&line.text)
            };
            if matched {
                drop(lines);
                if let Some(group) = p.own_group.take() {
                    group.close().await?;
                }
                return Ok(Some(line.text));
            }
        }
        drop(lines);
        let mut out = self.secret(p.wait().await?);
        if out.stderr.is_empty() {
            for l in stderr_tail {
                out.stderr.extend_from_slice(l.as_bytes());
                out.stderr.push(b'\n');
            }
        }
        verbs::require_success(out, self.ok())?;
        Ok(None)
    }
}

/// The success-requiring verbs of a [`Group`] running one command (beside
/// [`Group::output`]).
impl Group {
    /// Runs `cmd` as [`output`](Self::output) does (the group is consumed),
    /// requires success as [`Command::run`] does (exit 0, or one of its
    /// [`ok_codes`](Command::ok_codes)), and returns its stdout trimmed.
    ///
    /// # Errors
    ///
    /// Those of [`Command::run`], and those of [`output`](Self::output)
    /// (a command with a [`runner`](Command::runner)). A command with a
    /// [`retry`](Command::retry) policy of more than one attempt is
    /// [`Error::InvalidInput`]: the first attempt ends the group, so there
    /// is none to replay it in.
    pub async fn run(self, cmd: &Command) -> Result<String> {
        refuse_retry(cmd)?;
        verbs::run(cmd.secret(self.output_as(cmd, true).await?), cmd.ok())
    }

    /// Runs `cmd` as [`output`](Self::output) does (the group is consumed)
    /// and returns its exit code, as [`Command::exit_code`] does.
    ///
    /// # Errors
    ///
    /// Those of [`Command::exit_code`], and [`Error::InvalidInput`] for a
    /// [`retry`](Command::retry) policy or a [`runner`](Command::runner),
    /// as for [`run`](Self::run).
    pub async fn exit_code(self, cmd: &Command) -> Result<i32> {
        refuse_retry(cmd)?;
        let out = cmd.secret(self.output(cmd).await?);
        verbs::exit_code(out, cmd.spec.io.ok_codes.as_deref())
    }
}

/// A group's success-requiring verbs can't replay a run: refuses a retry
/// policy rather than ignore it.
fn refuse_retry(cmd: &Command) -> Result<()> {
    if cmd.retries() {
        return Err(Error::InvalidInput(format!(
            "{}: a group runs one command once (the run ends the group): it can't be retried",
            cmd.display_name()
        )));
    }
    Ok(())
}
