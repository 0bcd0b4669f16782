//! The real start in a group: a command's start data ([`Spec`]) started
//! in the group's container. Beside the group and above the start itself
//! (`launch.rs`); below the command, its runner and the [`Launch`] they
//! hand on ([`Group::start`](crate::Group::start), in `runner.rs`, comes
//! here through [`Runner::start`](crate::Runner::start)).
//!
//! [`Launch`]: crate::Launch

use crate::error::{Error, Result};
use crate::group::Group;
use crate::launch::StartOpts;
use crate::process::RunningProcess;
use crate::spec::Spec;

impl Group {
    /// The real start (the command's runner is not asked).
    pub(crate) fn start_with(&self, cmd: &Spec, opts: StartOpts) -> Result<RunningProcess> {
        self.check_open(cmd)?;
        crate::launch::start(self.container(), cmd, opts)
    }

    /// The error for a start the group refuses now (closed, suspended).
    /// Checked again, atomically with the placement, by the container.
    pub(crate) fn check_open(&self, cmd: &Spec) -> Result<()> {
        match self.container().refusal() {
            Some(source) => Err(Error::Spawn {
                program: cmd.display_name(),
                source,
            }),
            None => Ok(()),
        }
    }
}
