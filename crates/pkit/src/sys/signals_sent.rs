//! [`SignalsSent`]: the signals a caller sent a group of processes (a
//! started pipeline's stages), and whether a process's end is one of
//! them at work.

use std::sync::atomic::{AtomicU64, Ordering};

use super::signal::{nums, Signal};
use super::types::ExitStatus;

/// A set of signal numbers (1 to 64), each recorded before it is sent so
/// that an end it brings about is never seen before it.
#[derive(Debug, Default)]
pub(crate) struct SignalsSent(AtomicU64);

/// The bit of signal `n`, none for a number no signal has (0, the probe
/// that sends nothing, among them).
fn bit(n: i32) -> u64 {
    match n {
        1..=64 => 1 << (n - 1),
        _ => 0,
    }
}

impl SignalsSent {
    /// Records `signal` as sent.
    pub(crate) fn record(&self, signal: Signal) {
        self.0.fetch_or(bit(signal.as_raw()), Ordering::SeqCst);
    }

    fn has(&self, n: i32) -> bool {
        let b = bit(n);
        b != 0 && self.0.load(Ordering::SeqCst) & b != 0
    }

    /// Whether a process that ended with `status` ended of one of the
    /// signals sent: it died of it, or it exited 128 plus its number, as a
    /// shell reports a death by that signal and as a program that caught
    /// it and cleaned up says it (a trap's `exit 143` after SIGTERM, a
    /// JVM's shutdown). On Windows, where SIGTERM and SIGINT go as a
    /// CTRL_BREAK, also the exit a console program's default break handler
    /// makes (`STATUS_CONTROL_C_EXIT`); SIGKILL, a termination there, is
    /// reported as a death by SIGKILL as on Unix.
    pub(crate) fn ended(&self, status: ExitStatus) -> bool {
        match status {
            ExitStatus::Signalled(n) => self.has(n),
            #[cfg(windows)]
            ExitStatus::Exited(STATUS_CONTROL_C_EXIT)
                if self.has(nums::SIGTERM) || self.has(nums::SIGINT) =>
            {
                true
            }
            ExitStatus::Exited(code) => code > 128 && self.has(code - 128) && code - 128 != STOP,
        }
    }
}

/// A stop can't be caught, nor does it end anything: an exit of 128 plus
/// its number is a program's own.
const STOP: i32 = nums::SIGSTOP;

/// The exit code of a console program its default handler ended on a
/// CTRL_BREAK (an NTSTATUS, as a signed code).
#[cfg(windows)]
const STATUS_CONTROL_C_EXIT: i32 = 0xC000_013A_u32 as i32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ends_of_the_signals_sent() {
        let sent = SignalsSent::default();
        let term = ExitStatus::Signalled(nums::SIGTERM);
        assert!(!sent.ended(term));
        sent.record(Signal::Term);
        sent.record(Signal::Term);
        assert!(sent.ended(term));
        assert!(sent.ended(ExitStatus::Exited(128 + nums::SIGTERM)));
        assert!(!sent.ended(ExitStatus::Signalled(nums::SIGKILL)));
        assert!(!sent.ended(ExitStatus::Exited(1)));
        assert!(!sent.ended(ExitStatus::Exited(nums::SIGTERM)));
        sent.record(Signal::Raw(64));
        assert!(sent.ended(ExitStatus::Signalled(64)));
        sent.record(Signal::Raw(0));
        sent.record(Signal::Raw(65));
        assert!(!sent.ended(ExitStatus::Signalled(65)));
        assert!(!sent.ended(ExitStatus::Exited(128)));
        sent.record(Signal::Stop);
        assert!(!sent.ended(ExitStatus::Exited(128 + nums::SIGSTOP)));
        assert!(sent.ended(ExitStatus::Signalled(64)));
    }
}
