//! Replaying a failed run: [`Command::retry`] and [`is_transient`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::command::Command;
use crate::error::{Error, Result};
use crate::log;
use crate::plans::RetryPolicy;

impl Command {
    /// Replays a failed run: the success-requiring verbs
    /// ([`run`](Self::run), [`exit_code`](Self::exit_code),
    /// [`probe`](Self::probe), and [`first_line`](Self::first_line) when
    /// no line matched) run the command at most `max_attempts` times
    /// in all (0 counts as 1), pausing `backoff` between attempts, and
    /// stop at the first success, at the first failure `retry_if` rejects,
    /// or when the attempts are used up. The error returned is the last
    /// attempt's.
    ///
    /// There is no default classifier: say which failures are worth
    /// another try ([`is_transient`] is a ready one for spawn failures the
    /// OS calls temporary). Cancellation is never retried: a
    /// [`CancelToken`](crate::CancelToken) cancelled during an attempt or
    /// a pause ends the verb with [`Error::Cancelled`] at once, and
    /// dropping the verb's future ends it too (the current attempt's tree
    /// dies with it). Stdin given as bytes ([`stdin_bytes`](Self::stdin_bytes))
    /// is fed identically to every attempt; a
    /// [`stdin_reader`](Self::stdin_reader) is consumed by the first
    /// attempt that starts, which is then the last (its error is returned).
    ///
    /// The command's [`timeout`](Self::timeout) bounds each attempt, not
    /// the retry as a whole: `max_attempts` attempts that each time out
    /// take `max_attempts` timeouts (and their graces), plus the pauses.
    /// For an overall bound, cancel a [`CancelToken`](crate::CancelToken)
    /// or drop the future.
    ///
    /// [`output`](Self::output) is not retried: a failed run is data there.
    /// Nor is what hands out a running process or a stream
    /// ([`start`](Self::start), `json_lines`): what it
    /// gave out can't be taken back.
    /// Every attempt goes through the command's [`Runner`](crate::Runner).
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use std::time::Duration;
    ///
    /// let version = pkit::Command::new("sh")
    ///     .args(["-c", "echo 1.2.3"])
    ///     .timeout(Duration::from_secs(10))
    ///     .retry(5, Duration::from_millis(200), |e| e.is_timeout() || pkit::is_transient(e))
    ///     .run()
    ///     .await?;
    /// assert_eq!(version, "1.2.3");
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn retry(
        mut self,
        max_attempts: u32,
        backoff: Duration,
        retry_if: impl Fn(&Error) -> bool + Send + Sync + 'static,
    ) -> Command {
        let jitter = self.retry.as_ref().map_or(0.0, |r| r.jitter);
        self.retry = Some(RetryPolicy {
            max_attempts: max_attempts.max(1),
            backoff,
            jitter,
            retry_if: Arc::new(retry_if),
        });
        self
    }

    /// Randomises each pause between retries by up to `fraction` of the
    /// backoff either way (clamped to `0.0..=1.0`; default 0, none), so many
    /// clients failing together do not retry in lockstep. Needs
    /// [`retry`](Self::retry) (before or after this call).
    pub fn retry_jitter(mut self, fraction: f64) -> Command {
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        match &mut self.retry {
            Some(r) => r.jitter = fraction,
            None => {
                self.retry = Some(RetryPolicy {
                    max_attempts: 1,
                    backoff: Duration::ZERO,
                    jitter: fraction,
                    retry_if: Arc::new(|_| false),
                })
            }
        }
        self
    }
}

/// Whether `err` is a failure to start a program that the OS reports as
/// temporary. On Unix: out of processes or memory for now (`EAGAIN`,
/// `ENOMEM`), the executable busy being written (`ETXTBSY`), out of file
/// descriptors (`EMFILE`, `ENFILE`), or an interrupted call (`EINTR`). On
/// Windows: out of memory or system resources (`ERROR_NOT_ENOUGH_MEMORY`,
/// `ERROR_OUTOFMEMORY`, `ERROR_NO_SYSTEM_RESOURCES` and its pool, quota
/// and commit-limit kinds), a process's or a job's quota used up
/// (`ERROR_NOT_ENOUGH_QUOTA`), no process or thread to be had now (`ERROR_NO_PROC_SLOTS`,
/// `ERROR_MAX_THRDS_REACHED`), out of handles (`ERROR_TOO_MANY_OPEN_FILES`),
/// or the executable held open by a writer (`ERROR_SHARING_VIOLATION`). A
/// ready classifier for [`Command::retry`]; a run that started and then
/// failed is never transient by this test.
pub fn is_transient(err: &Error) -> bool {
    let source = match err {
        Error::Spawn { source, .. } | Error::ChildSetup { source, .. } => source,
        Error::Io { source, .. } => source,
        _ => return false,
    };
    source
        .raw_os_error()
        .is_some_and(crate::sys::is_transient_os_error)
}

/// A random factor in `1 - jitter ..= 1 + jitter`.
fn jitter_factor(jitter: f64) -> f64 {
    if jitter <= 0.0 {
        return 1.0;
    }
    use std::hash::{BuildHasher, Hasher};
    // std's per-instance random keys are the only randomness needed here.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    let unit = (h.finish() >> 11) as f64 / (1u64 << 53) as f64; // 0..1
    1.0 + jitter * (2.0 * unit - 1.0)
}

/// `d` randomised by up to `jitter` of itself either way; a product too
/// long for a `Duration` (a pause near `Duration::MAX`) is `Duration::MAX`.
pub(crate) fn jittered(d: Duration, jitter: f64) -> Duration {
    if jitter <= 0.0 {
        return d;
    }
    // Not `mul_f64`: it panics when the product overflows.
    Duration::try_from_secs_f64(d.as_secs_f64() * jitter_factor(jitter)).unwrap_or(Duration::MAX)
}

/// Runs `attempt` under `cmd`'s retry policy (once without one).
pub(crate) async fn with_retry<T, F, Fut>(cmd: &Command, attempt: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let Some(policy) = &cmd.retry else {
        return attempt().await;
    };
    let mut tried = 0u32;
    loop {
        tried += 1;
        let err = match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        // An attempt that took a stdin reader is the last: the next could
        // not be fed it, and its refusal would hide this failure.
        let spent = cmd.spec.stdin.reader_taken();
        if err.is_cancelled() || tried >= policy.max_attempts || spent || !(policy.retry_if)(&err) {
            return Err(err);
        }
        let pause = jittered(policy.backoff, policy.jitter);
        let label = cmd.log_label();
        let program = cmd.display_name();
        log::retry(
            log::Subject::new(&program, &label),
            tried,
            policy.max_attempts,
            err.kind(),
            pause,
        );
        let sleep = tokio::time::sleep(pause);
        match &cmd.spec.cancel {
            Some(token) => {
                tokio::select! {
                    () = sleep => {}
                    () = token.cancelled() => {
                        log::cancelled(log::Subject::new(&program, &label));
                        return Err(Error::Cancelled { program: cmd.display_name() });
                    }
                }
            }
            None => sleep.await,
        }
    }
}
