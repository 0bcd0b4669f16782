//! [`Launch`]: where and how a [`Runner::start`](crate::Runner::start)
//! starts its process, as plain data. It sits below the command and the
//! runner that name it, above the group it holds and the start itself
//! (`launch.rs`, which defines the `StartOpts` it carries).

use crate::error::Result;
use crate::group::Group;
use crate::launch::StartOpts;
use crate::process::RunningProcess;
use crate::spec::Spec;

/// Where and how a [`Runner::start`](crate::Runner::start) starts its
/// process: the [`Group`](crate::Group) it joins, and how the caller wires
/// it (a pipeline stage's pipes, a line stream), which a runner passes on
/// untouched.
pub struct Launch<'a> {
    pub(crate) group: &'a Group,
    pub(crate) opts: StartOpts,
}

impl Launch<'_> {
    /// The group the process is started in.
    pub fn group(&self) -> &Group {
        self.group
    }

    /// The real start, as [`SystemRunner`](crate::SystemRunner) does it
    /// (and `Runner::start` by default).
    pub(crate) fn start_real(self, cmd: &Spec) -> Result<RunningProcess> {
        self.group.start_with(cmd, self.opts)
    }
}

impl std::fmt::Debug for Launch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launch")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}
