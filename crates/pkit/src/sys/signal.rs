//! [`Signal`]: the signals a group can be sent, by name.

use std::fmt;

#[cfg(unix)]
pub(crate) use libc as nums;

/// Windows has no signals: the conventional (Linux) numbers name them, so
/// that `Signal` means the same everywhere. Which ones Windows can deliver
/// is the backend's business (see `sys::windows`).
#[cfg(windows)]
pub(crate) mod nums {
    pub const SIGHUP: i32 = 1;
    pub const SIGINT: i32 = 2;
    pub const SIGQUIT: i32 = 3;
    pub const SIGILL: i32 = 4;
    pub const SIGTRAP: i32 = 5;
    pub const SIGABRT: i32 = 6;
    pub const SIGBUS: i32 = 7;
    pub const SIGFPE: i32 = 8;
    pub const SIGKILL: i32 = 9;
    pub const SIGUSR1: i32 = 10;
    pub const SIGSEGV: i32 = 11;
    pub const SIGUSR2: i32 = 12;
    pub const SIGPIPE: i32 = 13;
    pub const SIGALRM: i32 = 14;
    pub const SIGTERM: i32 = 15;
    pub const SIGCHLD: i32 = 17;
    pub const SIGCONT: i32 = 18;
    pub const SIGSTOP: i32 = 19;
    pub const SIGTSTP: i32 = 20;
    pub const SIGTTIN: i32 = 21;
    pub const SIGTTOU: i32 = 22;
    pub const SIGURG: i32 = 23;
    pub const SIGXCPU: i32 = 24;
    pub const SIGXFSZ: i32 = 25;
    pub const SIGVTALRM: i32 = 26;
    pub const SIGPROF: i32 = 27;
    pub const SIGWINCH: i32 = 28;
    pub const SIGIO: i32 = 29;
    pub const SIGSYS: i32 = 31;
}

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
            Signal::Hup => nums::SIGHUP,
            Signal::Int => nums::SIGINT,
            Signal::Quit => nums::SIGQUIT,
            Signal::Abrt => nums::SIGABRT,
            Signal::Kill => nums::SIGKILL,
            Signal::Usr1 => nums::SIGUSR1,
            Signal::Usr2 => nums::SIGUSR2,
            Signal::Pipe => nums::SIGPIPE,
            Signal::Alrm => nums::SIGALRM,
            Signal::Term => nums::SIGTERM,
            Signal::Cont => nums::SIGCONT,
            Signal::Stop => nums::SIGSTOP,
            Signal::Tstp => nums::SIGTSTP,
            Signal::Winch => nums::SIGWINCH,
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

    /// Whether an end whose first signal is this one follows it with
    /// SIGCONT, as timeout(1) does: a stopped process would otherwise hold
    /// it unhandled for the whole grace and then be killed. Not after
    /// nothing (0), SIGKILL, SIGCONT itself or a stop signal (the SIGCONT
    /// would discard a pending SIGTSTP, SIGTTIN or SIGTTOU unhandled).
    /// On Windows, which sends no SIGCONT, whether a group the caller
    /// suspended is resumed after it: true of the two that go as a
    /// CTRL_BREAK (SIGTERM, SIGINT), false of SIGKILL, SIGSTOP and
    /// SIGCONT (the rest can't be sent there at all).
    pub(crate) fn continued_after(self) -> bool {
        ![
            0,
            nums::SIGKILL,
            nums::SIGCONT,
            nums::SIGSTOP,
            nums::SIGTSTP,
            nums::SIGTTIN,
            nums::SIGTTOU,
        ]
        .contains(&self.as_raw())
    }
}

/// The signals `pkit run` catches and passes on (to its program, or to its
/// whole tree): a catchable signal to a group spares a nested pkit's groups
/// (under cgroup v2) for these alone, which their owner relays; every other
/// signal reaches the nested groups directly. Shared with the CLI, which
/// catches at least these (it checks so when it is built).
#[doc(hidden)]
pub const RELAYED_BY_PKIT_RUN: [i32; 9] = [
    nums::SIGTERM,
    nums::SIGINT,
    nums::SIGHUP,
    nums::SIGQUIT,
    nums::SIGUSR1,
    nums::SIGUSR2,
    nums::SIGALRM,
    nums::SIGWINCH,
    nums::SIGTSTP,
];

impl fmt::Display for Signal {
    /// `SIGTERM`, or the number for a signal without a name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match signal_name(self.as_raw()) {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.as_raw()),
        }
    }
}

/// The conventional name of a signal number (`SIGKILL`), if it has one.
pub(crate) fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        nums::SIGHUP => "SIGHUP",
        nums::SIGINT => "SIGINT",
        nums::SIGQUIT => "SIGQUIT",
        nums::SIGILL => "SIGILL",
        nums::SIGTRAP => "SIGTRAP",
        nums::SIGABRT => "SIGABRT",
        nums::SIGBUS => "SIGBUS",
        nums::SIGFPE => "SIGFPE",
        nums::SIGKILL => "SIGKILL",
        nums::SIGUSR1 => "SIGUSR1",
        nums::SIGSEGV => "SIGSEGV",
        nums::SIGUSR2 => "SIGUSR2",
        nums::SIGPIPE => "SIGPIPE",
        nums::SIGALRM => "SIGALRM",
        nums::SIGTERM => "SIGTERM",
        nums::SIGCHLD => "SIGCHLD",
        nums::SIGCONT => "SIGCONT",
        nums::SIGSTOP => "SIGSTOP",
        nums::SIGTSTP => "SIGTSTP",
        nums::SIGTTIN => "SIGTTIN",
        nums::SIGTTOU => "SIGTTOU",
        nums::SIGURG => "SIGURG",
        nums::SIGXCPU => "SIGXCPU",
        nums::SIGXFSZ => "SIGXFSZ",
        nums::SIGVTALRM => "SIGVTALRM",
        nums::SIGPROF => "SIGPROF",
        nums::SIGWINCH => "SIGWINCH",
        nums::SIGIO => "SIGIO",
        nums::SIGSYS => "SIGSYS",
        _ => return None,
    })
}
