//! [`Launch`]: where and how a [`Runner::start`](crate::Runner::start)
//! starts its process, as plain data. It sits below the command and the
//! runner that name it; the start itself (`launch.rs`) and
//! [`Group::start`](crate::Group::start) (`group_start.rs`) sit above.

use std::sync::Arc;

use crate::group::Group;
use crate::pump::LimitFlag;
use crate::sys;

/// How a start differs from what the command itself says.
#[derive(Default)]
pub(crate) struct StartOpts {
    /// Enable the line stream (the verbs, which have no consumer for one,
    /// leave it off whatever the command says).
    pub stream_lines: bool,
    /// The child's stdin end of a pipeline pipe, replacing the command's.
    pub stdin: Option<sys::ChildIo>,
    /// The flag to raise when a `CapturePolicy::Fail` limit is crossed
    /// (one for all of a pipeline's stages); a fresh one when `None`.
    pub limit: Option<Arc<LimitFlag>>,
    /// The child's stdout end of a pipeline pipe, replacing the command's.
    pub stdout: Option<sys::ChildIo>,
    /// A started process (not a verb's): without a capture limit of the
    /// command's, keep only the last `DEFAULT_START_CAPTURE_BYTES`.
    pub bounded_capture: bool,
    /// Give the process a subtree of its own and arm its command's
    /// timeout and cancel token on it ([`Group::start`](crate::Group::start));
    /// see [`crate::watch`].
    pub own_tree: bool,
    /// Hand a [`Stdio::Raw`](crate::Stdio::Raw) stream's pipe to the caller instead of
    /// reading it (a started process's; elsewhere it is captured).
    pub raw_output: bool,
}

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
}

impl std::fmt::Debug for Launch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launch")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}
