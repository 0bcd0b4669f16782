//! The four verbs of a [`Command`] ([`output`](Command::output),
//! [`run`](Command::run), [`exit_code`](Command::exit_code),
//! [`probe`](Command::probe)), through its [`Runner`], and the helpers that
//! interpret an `Output`, shared with [`Pipe`](crate::Pipe).

use crate::command::Command;
use crate::error::{Error, Result};
use crate::output::{Outcome, Output};
use crate::runner::{Runner, SystemRunner};

/// Turns a signal or a timeout into the matching error.
fn require_exit(out: Output) -> Result<Output> {
    match out.outcome() {
        Outcome::Exited(_) => Ok(out),
        Outcome::Signalled(_) => Err(Error::Signalled(Box::new(out))),
        Outcome::TimedOut => Err(Error::Timeout(Box::new(out))),
    }
}

/// An exit with a code in `ok` (`[0]` unless the command set
/// `ok_codes`), else the matching error.
pub(crate) fn require_success(out: Output, ok: &[i32]) -> Result<Output> {
    let out = require_exit(out)?;
    match out.code() {
        Some(c) if ok.contains(&c) => Ok(out),
        _ => Err(Error::NonZeroExit(Box::new(out))),
    }
}

pub(crate) fn run(out: Output, ok: &[i32]) -> Result<String> {
    let mut out = require_success(out, ok)?;
    // A cut stdout is not the program's answer: never hand back part
    // of it as if it were the whole.
    if out.stdout_truncated() {
        return Err(Error::OutputLimit {
            program: out.program.to_string(),
            stream: crate::StreamKind::Stdout,
            limit: out.stdout.len(),
            output: Box::new(out),
        });
    }
    // The captured bytes become the String in place (not copied: a copy
    // of a 64 MiB answer costs as much as capturing it), validated only
    // past what the capture validated as it arrived; only invalid UTF-8 is
    // copied, with U+FFFD for the bad bytes.
    let mut text = std::mem::take(&mut out.stdout).into_string_lossy();
    // Only the trailing line ending(s) go, by truncating: leading and
    // inner whitespace is data (`git status --porcelain` starts with a
    // space).
    let kept = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(kept);
    Ok(text)
}

/// Any exit code, or with `ok_codes` set, one of them.
pub(crate) fn exit_code(out: Output, ok: Option<&[i32]>) -> Result<i32> {
    let out = match ok {
        Some(ok) => require_success(out, ok)?,
        None => require_exit(out)?,
    };
    Ok(out.code().expect("require_exit leaves only exits"))
}

pub(crate) fn probe(out: Output) -> Result<bool> {
    let out = require_exit(out)?;
    match out.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(Error::NonZeroExit(Box::new(out))),
    }
}

/// The four verbs.
impl Command {
    pub(crate) fn run_with(&self) -> &dyn Runner {
        match &self.runner {
            Some(r) => r.as_ref(),
            None => &SystemRunner::DEFAULT,
        }
    }

    /// Runs the command to its end and returns everything about the run.
    ///
    /// A non-zero exit, a signal and a timeout are data in the [`Output`];
    /// `Err` means the program could not be started (or the run was
    /// cancelled). Dropping the future kills the whole tree.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound),
    /// [`Error::NotExecutable`](crate::Error::NotExecutable),
    /// [`Error::CurrentDir`](crate::Error::CurrentDir), [`Error::Spawn`](crate::Error::Spawn)
    /// or [`Error::ChildSetup`](crate::Error::ChildSetup) when the program can't be started;
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a command that can't be run as
    /// set (a NUL byte in an argument, conflicting stdio, an unparseable `PKIT_MECHANISM`);
    /// [`Error::Unsupported`](crate::Error::Unsupported) for an option this mechanism can't
    /// honour; [`Error::MechanismUnavailable`](crate::Error::MechanismUnavailable) when
    /// `PKIT_MECHANISM` forces a mechanism this host can't give (on Windows, also when no
    /// Job Object can be made);
    /// [`Error::Cancelled`](crate::Error::Cancelled) when the command's cancel token fires;
    /// [`Error::OutputLimit`](crate::Error::OutputLimit) when a stream crosses its limit under
    /// [`CapturePolicy::Fail`](crate::CapturePolicy::Fail); [`Error::Io`](crate::Error::Io)
    /// when managing the process or its container fails. A non-zero exit, a signal and a
    /// timeout are not errors: they are in the [`Output`](crate::Output). A command given
    /// another [`runner`](crate::Command::runner) has that runner's errors (a test double's
    /// [`Error::Unscripted`](crate::Error::Unscripted), for instance).
    pub async fn output(&self) -> Result<Output> {
        self.output_as(false).await
    }

    /// [`output`](Self::output), for a verb that wants stdout as text when
    /// `text`: the real runner then validates it as UTF-8 as it arrives.
    /// The real runner's run (the default's, or a given `SystemRunner`'s)
    /// is awaited in place, not boxed by `Runner::output`: its future is
    /// over 2 KiB, an allocation of the allocator's slow path (issue 20).
    pub(crate) async fn output_as(&self, text: bool) -> Result<Output> {
        let mechanism = match &self.runner {
            None => None,
            Some(r) => match r.system_mechanism() {
                Some(choice) => choice,
                None if text => return r.output_text(self).await,
                None => return r.output(self).await,
            },
        };
        crate::runner::run_contained(self, mechanism, text).await
    }

    /// Runs the command, requires success, and returns stdout as text
    /// without its trailing line ending(s) (`\n`, `\r\n`, several of them):
    /// leading and inner whitespace is data, kept as written. Bytes that are
    /// not valid UTF-8 are replaced with U+FFFD, as
    /// [`Output::stdout_str`](crate::Output::stdout_str) does (no error):
    /// for exact bytes, use [`output`](Self::output). The real runner
    /// ([`SystemRunner`], the default or given) validates stdout while it
    /// captures it; the output of another [`runner`](Self::runner) (a test
    /// double, one that wraps a runner in its own [`Runner::output`]) is
    /// validated once, when the run has ended.
    ///
    /// A non-zero exit is [`Error::NonZeroExit`](crate::Error::NonZeroExit), a signal
    /// [`Error::Signalled`](crate::Error::Signalled), a timeout [`Error::Timeout`](crate::Error::Timeout); each carries the
    /// whole [`Output`], stderr included. A stdout cut by a
    /// [`capture_limit`](Self::capture_limit) is
    /// [`Error::OutputLimit`](crate::Error::OutputLimit) (carrying the
    /// `Output`, with what was kept), never a silently shortened answer.
    ///
    /// # Errors
    ///
    /// Those of [`output`](Self::output), and [`Error::NonZeroExit`](crate::Error::NonZeroExit)
    /// for an exit code that is not accepted, [`Error::Signalled`](crate::Error::Signalled) for
    /// a signal, [`Error::Timeout`](crate::Error::Timeout) for a timeout, each carrying the
    /// whole [`Output`](crate::Output); [`Error::OutputLimit`](crate::Error::OutputLimit) when
    /// stdout was cut by a [`capture_limit`](Self::capture_limit).
    pub async fn run(&self) -> Result<String> {
        crate::retry::with_retry(self, || async {
            run(self.secret(self.output_as(true).await?), self.ok())
        })
        .await
    }

    /// Runs the command and returns its exit code. A signal or a timeout is
    /// an `Err`, never an invented code.
    ///
    /// # Errors
    ///
    /// Those of [`output`](Self::output), and [`Error::Signalled`](crate::Error::Signalled) or
    /// [`Error::Timeout`](crate::Error::Timeout) (there is no code to return); with
    /// [`ok_codes`](Self::ok_codes), [`Error::NonZeroExit`](crate::Error::NonZeroExit) for a
    /// code not listed.
    pub async fn exit_code(&self) -> Result<i32> {
        crate::retry::with_retry(self, || async {
            exit_code(
                self.secret(self.output().await?),
                self.spec.io.ok_codes.as_deref(),
            )
        })
        .await
    }

    /// Runs the command as a yes/no question: exit 0 is `true`, exit 1 is
    /// `false`, anything else is an `Err`.
    ///
    /// # Errors
    ///
    /// Those of [`output`](Self::output), and [`Error::NonZeroExit`](crate::Error::NonZeroExit)
    /// for an exit code other than 0 and 1, [`Error::Signalled`](crate::Error::Signalled) for a
    /// signal, [`Error::Timeout`](crate::Error::Timeout) for a timeout.
    pub async fn probe(&self) -> Result<bool> {
        crate::retry::with_retry(self, || async { probe(self.secret(self.output().await?)) }).await
    }
}

#[cfg(test)]
mod tests {
    use crate::command::Command;
    use crate::runner::SystemRunner;

    /// `size` bytes of multi-byte text, captured for `run()` (`text`) or
    /// `output()`: how many bytes were captured, and how many of them the
    /// capture validated as they arrived.
    async fn captured(size: usize, text: bool) -> (usize, usize) {
        let script = format!("yes 'aé€😀' | head -c {size}");
        let out = Command::new("sh")
            .args(["-c", &script])
            .output_as(text)
            .await
            .expect("sh");
        (out.stdout.len(), out.stdout.valid())
    }

    /// `run()`'s capture is validated while it arrives, on the reactor
    /// (100 KiB) and on the reading thread (3 MiB): at most the last
    /// batch (32 KiB) is left for `run()` itself. `output()`'s is not
    /// validated at all.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_capture_is_validated_as_it_arrives() {
        for size in [100 << 10, 3 << 20] {
            let (len, valid) = captured(size, true).await;
            assert_eq!(len, size);
            assert!(valid + (32 << 10) >= len, "{size}: {valid} of {len}");
            assert_eq!(captured(size, false).await, (size, 0), "output()");
        }
    }

    /// A `SystemRunner` given to the command (`Command::runner`) validates
    /// `run()`'s capture as it arrives too, in the mechanism it names (with
    /// the `testing` feature, through a `RecordingRunner` around it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_given_system_runners_run_is_validated_as_it_arrives() {
        use crate::sys::MechanismChoice;
        let size = 3 << 20;
        let script = format!("yes 'aé€😀' | head -c {size}");
        for choice in [
            MechanismChoice::ProcessGroup,
            MechanismChoice::from_env().unwrap(),
        ] {
            let runner = std::sync::Arc::new(SystemRunner::with_mechanism(choice));
            // A recording runner hands the run on as it is.
            #[cfg(feature = "testing")]
            let runner = std::sync::Arc::new(crate::testing::RecordingRunner::new(runner));
            let cmd = Command::new("sh").args(["-c", &script]).runner(runner);
            for text in [true, false] {
                let out = cmd.output_as(text).await.expect("sh");
                let (len, valid) = (out.stdout.len(), out.stdout.valid());
                assert_eq!(len, size, "{choice}");
                match text {
                    true => assert!(valid + (32 << 10) >= len, "{choice}: {valid} of {len}"),
                    false => assert_eq!(valid, 0, "{choice}: output()"),
                }
            }
        }
    }

    /// A pipeline's `run()` validates the last stage's capture as it
    /// arrives too (two and three stages, 100 KiB and 3 MiB); its
    /// `exit_code()` does not validate at all.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pipelines_run_is_validated_as_it_arrives() {
        for size in [100 << 10, 3 << 20] {
            let head = || Command::new("yes").arg("aé€😀").unchecked_in_pipe();
            let cut = Command::new("head").args(["-c", &size.to_string()]);
            let three = head().pipe(cut.clone()).pipe(Command::new("cat"));
            for (stages, pipe) in [(2, head().pipe(cut)), (3, three)] {
                for text in [true, false] {
                    let (out, _) = pipe.judged(text).await.expect("the pipeline");
                    let (len, valid) = (out.stdout.len(), out.stdout.valid());
                    assert_eq!(len, size, "{stages} stages");
                    match text {
                        true => assert!(valid + (32 << 10) >= len, "{size}: {valid} of {len}"),
                        false => assert_eq!(valid, 0, "{stages} stages, exit_code()"),
                    }
                }
            }
        }
    }
}
