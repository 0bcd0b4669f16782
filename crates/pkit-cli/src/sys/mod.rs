//! The CLI's OS calls: every `unsafe` of the CLI is under here. Unix in
//! `unix.rs` (caught signals read from a signalfd on Linux, `signalfd.rs`,
//! or through a handler and a self-pipe, `sigpipe.rs`: macOS, the BSDs,
//! and Linux under the portable backend); Windows in `windows.rs`, with
//! the same functions (the terminal and subreaper ones answer "none"
//! there).

#[cfg(target_os = "linux")]
mod nofile;
#[cfg(target_os = "linux")]
pub use nofile::{
    give_back as give_back_nofile, original as original_nofile, raise_nofile, reserve_low,
};
#[cfg(unix)]
mod ctty;
#[cfg(unix)]
pub use ctty::{continue_group, job_mates, stop_pending, stop_self_for_terminal, Ctty};
#[cfg(unix)]
mod orphan;
#[cfg(unix)]
pub use orphan::{exited, own_group_orphaned, stop_signal};
#[cfg(unix)]
mod parent;
#[cfg(unix)]
mod vfork;
#[cfg(unix)]
pub use vfork::held_by_stopped_child;
#[cfg(target_os = "linux")]
mod signalfd;
#[cfg(unix)]
mod sigpipe;
#[cfg(unix)]
mod term;
#[cfg(unix)]
pub use term::{ignore_job_signals, may_change, set_name, Settings as TermSettings};
#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

/// One received signal and who sent it (on Windows, a console event,
/// named by the signal it stands for).
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub signo: i32,
    /// The terminal (or another kernel source) sent it, not `kill(2)`.
    /// Always false on Windows: a console event is a request to pkit,
    /// which passes it on (the program's own group ignores Ctrl-C).
    pub from_kernel: bool,
    /// pkit's parent process sent it with kill(2), and may be an outer
    /// `pkit run` relaying it. On Linux, only a parent that runs pkit
    /// (the same executable, or one of its name) counts: another parent
    /// relays nothing. Always false on Windows.
    pub from_parent: bool,
}

/// Resource use of this process's reaped children (and what they reaped),
/// as `getrusage(RUSAGE_CHILDREN)` tells it on Unix ([`children_usage`];
/// always `None` on Windows).
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildUsage {
    pub user_us: u64,
    pub system_us: u64,
    pub max_rss_bytes: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub blocks_in: u64,
    pub blocks_out: u64,
}

impl ChildUsage {
    /// What was used after `before` (an earlier reading): the sums less
    /// `before`'s. The peak is a maximum, not a sum: one no higher than
    /// `before`'s, or than `floor`, may be theirs, so it is unknown then
    /// (0). (`floor`: pkit's own peak, which a program started vfork-style
    /// inherits in its figure.)
    pub fn since(self, before: &ChildUsage, floor: u64) -> ChildUsage {
        ChildUsage {
            user_us: self.user_us.saturating_sub(before.user_us),
            system_us: self.system_us.saturating_sub(before.system_us),
            max_rss_bytes: if self.max_rss_bytes > before.max_rss_bytes.max(floor) {
                self.max_rss_bytes
            } else {
                0
            },
            minor_faults: self.minor_faults.saturating_sub(before.minor_faults),
            major_faults: self.major_faults.saturating_sub(before.major_faults),
            voluntary_switches: self
                .voluntary_switches
                .saturating_sub(before.voluntary_switches),
            involuntary_switches: self
                .involuntary_switches
                .saturating_sub(before.involuntary_switches),
            blocks_in: self.blocks_in.saturating_sub(before.blocks_in),
            blocks_out: self.blocks_out.saturating_sub(before.blocks_out),
        }
    }
}

/// Signal numbers by name: libc's on Unix; on Windows, which has no
/// signals, Linux's numbers (as `pkit::Signal` and `signame` use), naming
/// what a console event stands for (see `windows.rs`).
pub mod sig {
    #[cfg(unix)]
    pub use libc::{
        SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM, SIGTSTP, SIGTTIN, SIGTTOU,
        SIGWINCH,
    };
    #[cfg(windows)]
    mod linux {
        pub const SIGHUP: i32 = 1;
        pub const SIGINT: i32 = 2;
        pub const SIGQUIT: i32 = 3;
        pub const SIGKILL: i32 = 9;
        pub const SIGTERM: i32 = 15;
        pub const SIGCHLD: i32 = 17;
        pub const SIGCONT: i32 = 18;
        pub const SIGTSTP: i32 = 20;
        pub const SIGTTIN: i32 = 21;
        pub const SIGTTOU: i32 = 22;
        pub const SIGWINCH: i32 = 28;
    }
    #[cfg(windows)]
    pub use linux::*;
}
