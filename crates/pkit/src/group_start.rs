//! [`Group::start`]: a command started in a group. Above the group, the
//! command and the launch it joins (a `Group` holds no `Command`), beside
//! the real start that [`Launch`] hands to.

use crate::command::Command;
use crate::error::{Error, Result};
use crate::group::Group;
use crate::launch::StartOpts;
use crate::launch_spec::Launch;
use crate::process::RunningProcess;

impl Group {
    /// Starts `cmd` in the group. Must be called within a Tokio runtime.
    /// The command's [`runner`](Command::runner) starts it
    /// ([`Runner::start`](crate::Runner::start)): the real process
    /// described here, unless a test double plays it.
    ///
    /// The process gets a subtree of its own within the group: under
    /// cgroup v2 it is born in a sub-cgroup of the group's cgroup (one per
    /// started process), which holds it and everything it spawns; under a
    /// process group, its subtree is the group's processes descended from
    /// it (found through parent links, so a descendant re-parented after
    /// its parent exited, or one that left the process group, is not part
    /// of it). The group's own operations (`kill`, `signal`, `suspend`,
    /// `close`, …) still cover every process of the group.
    ///
    /// The command's bounds apply to that subtree, as a verb's do to its
    /// tree: when its [`timeout`](Command::timeout) passes first, the
    /// subtree gets the [`timeout_signal`](Command::timeout_signal), the
    /// [`grace`](Command::grace), then SIGKILL, and
    /// [`RunningProcess::wait`] reports [`Outcome::TimedOut`](crate::Outcome::TimedOut)
    /// (with [`Output::killed_after_grace`](crate::Output::killed_after_grace)); when its
    /// [cancel token](Command::cancel_token) fires first, the subtree is
    /// SIGKILLed and `wait` returns [`Error::Cancelled`] (a token cancelled
    /// already makes `start` itself return it, starting nothing). This
    /// happens whether or not anyone waits. Without bounds, a started
    /// process runs until it exits or the group ends.
    ///
    /// Its output is drained in the background and what is kept is bounded
    /// (the last [`DEFAULT_START_CAPTURE_BYTES`](crate::DEFAULT_START_CAPTURE_BYTES)
    /// of each stream unless the command sets a
    /// [`capture_limit`](Command::capture_limit)): a process whose output
    /// nobody reads keeps running; see [`RunningProcess`].
    ///
    /// A start never blocks on the group's state; it is refused with
    /// [`Error::Spawn`] when the group
    /// - is closed or being closed ([`close`](Self::close),
    ///   [`shutdown`](Self::shutdown)): a start racing `close` either
    ///   starts its process before the group is marked closed, and the
    ///   process is then ended with the group, or is refused;
    /// - is [suspended](Self::suspend): the error's source has
    ///   [`std::io::ErrorKind::WouldBlock`] (a process started into a frozen
    ///   cgroup could not even reach `exec` until the group is resumed);
    ///   [`resume`](Self::resume) first.
    ///
    /// # Errors
    ///
    /// The start errors of [`Command::output`](crate::Command::output)
    /// ([`Error::NotFound`](crate::Error::NotFound), [`Error::Spawn`](crate::Error::Spawn),
    /// ...); [`Error::Spawn`](crate::Error::Spawn) when the group is closed or suspended
    /// (above); [`Error::Cancelled`](crate::Error::Cancelled) when the command's cancel token
    /// is cancelled already; [`Error::InvalidInput`](crate::Error::InvalidInput) outside a
    /// Tokio runtime. A command given another [`runner`](crate::Command::runner) has that
    /// runner's errors.
    pub fn start(&self, cmd: &Command) -> Result<RunningProcess> {
        let opts = StartOpts {
            stream_lines: cmd.io.stream_lines,
            bounded_capture: true,
            own_tree: true,
            raw_output: true,
            ..Default::default()
        };
        // A token cancelled already: nothing is started.
        if cmd.cancel.as_ref().is_some_and(|t| t.is_cancelled()) {
            return Err(Error::Cancelled {
                program: cmd.display_name(),
            });
        }
        let launch = Launch { group: self, opts };
        cmd.run_with().start(cmd, launch)
    }

    /// The real start (the command's runner is not asked).
    pub(crate) fn start_with(&self, cmd: &Command, opts: StartOpts) -> Result<RunningProcess> {
        self.check_open(cmd)?;
        crate::launch::start(self.container(), cmd, opts)
    }

    /// The error for a start the group refuses now (closed, suspended).
    /// Checked again, atomically with the placement, by the container.
    pub(crate) fn check_open(&self, cmd: &Command) -> Result<()> {
        match self.container().refusal() {
            Some(source) => Err(Error::Spawn {
                program: cmd.display_name(),
                source,
            }),
            None => Ok(()),
        }
    }
}

impl Launch<'_> {
    /// The real start, as [`SystemRunner`](crate::SystemRunner) does it
    /// (and `Runner::start` by default).
    pub(crate) fn start_real(self, cmd: &Command) -> Result<RunningProcess> {
        self.group.start_with(cmd, self.opts)
    }
}
