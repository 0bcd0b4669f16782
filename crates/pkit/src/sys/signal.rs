//! [`Signal`]: the signals a group can be sent, by name.

use std::fmt;

/// A signal to send to a group ([`Group::signal`](crate::Group::signal)).
///
/// The common ones by name, and [`Signal::Raw`] for any other number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// SIGHUP: the terminal hung up; daemons often reload on it.
    Hup,
    /// SIGINT: interrupt (Ctrl-C).
    Int,
    /// SIGQUIT: quit with a core dump.
    Quit,
    /// SIGABRT: abort.
    Abrt,
    /// SIGKILL: the whole tree dies at once and can't refuse.
    Kill,
    /// SIGUSR1.
    Usr1,
    /// SIGUSR2.
    Usr2,
    /// SIGPIPE.
    Pipe,
    /// SIGALRM.
    Alrm,
    /// SIGTERM: please exit.
    Term,
    /// SIGCONT: continue a stopped process.
    Cont,
    /// SIGSTOP: stop (can't be caught).
    Stop,
    /// SIGTSTP: stop from the terminal (can be caught).
    Tstp,
    /// SIGWINCH: the terminal was resized.
    Winch,
    /// Any signal, by number.
    Raw(i32),
}

impl Signal {
    /// The signal's number on this platform.
    pub fn as_raw(self) -> i32 {
        match self {
            Signal::Hup => libc::SIGHUP,
            Signal::Int => libc::SIGINT,
            Signal::Quit => libc::SIGQUIT,
            Signal::Abrt => libc::SIGABRT,
            Signal::Kill => libc::SIGKILL,
            Signal::Usr1 => libc::SIGUSR1,
            Signal::Usr2 => libc::SIGUSR2,
            Signal::Pipe => libc::SIGPIPE,
            Signal::Alrm => libc::SIGALRM,
            Signal::Term => libc::SIGTERM,
            Signal::Cont => libc::SIGCONT,
            Signal::Stop => libc::SIGSTOP,
            Signal::Tstp => libc::SIGTSTP,
            Signal::Winch => libc::SIGWINCH,
            Signal::Raw(n) => n,
        }
    }

    /// The named variant for a number, else [`Signal::Raw`].
    pub fn from_raw(n: i32) -> Signal {
        const NAMED: [Signal; 14] = [
            Signal::Hup,
            Signal::Int,
            Signal::Quit,
            Signal::Abrt,
            Signal::Kill,
            Signal::Usr1,
            Signal::Usr2,
            Signal::Pipe,
            Signal::Alrm,
            Signal::Term,
            Signal::Cont,
            Signal::Stop,
            Signal::Tstp,
            Signal::Winch,
        ];
        NAMED
            .into_iter()
            .find(|s| s.as_raw() == n)
            .unwrap_or(Signal::Raw(n))
    }
}

impl fmt::Display for Signal {
    /// `SIGTERM`, or the number for a signal without a name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match super::signal_name(self.as_raw()) {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.as_raw()),
        }
    }
}
