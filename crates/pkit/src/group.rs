//! [`Group`]: a kill-on-drop container for processes that must die
//! together.

use std::fmt;
use std::time::{Duration, Instant};

use crate::command::Command;
use crate::error::{Error, Result};
use crate::log;
use crate::process::{self, RunningProcess};
use crate::sys::{self, Container, Mechanism, MechanismChoice, Placement};

/// A kill-on-drop OS container: every process started in it, and
/// everything those processes spawn, is ended with it.
///
/// On Linux a group is a cgroup v2 directory (which catches every
/// descendant, even one that calls `setsid`), else a POSIX process group;
/// [`mechanism`](Self::mechanism) says which. Dropping the group kills the
/// whole tree synchronously and removes the container; [`shutdown`](Self::shutdown)
/// ends it gracefully and [`close`](Self::close) ends it and waits until it
/// is gone.
///
/// ```
/// # async fn demo() -> pkit::Result<()> {
/// use std::time::Duration;
/// use pkit::{Command, Group};
///
/// let group = Group::new()?;
/// let server = group.start(&Command::new("sh").args(["-c", "sleep 300 & sleep 300; wait"]))?;
/// println!("server {} contained by {}", server.pid(), group.mechanism());
/// let report = group.shutdown(Duration::from_secs(2)).await?;
/// assert_eq!(report.killed(), 0); // sleep and sh end on SIGTERM
/// # Ok(()) }
/// ```
pub struct Group {
    container: Container,
}

/// Builds a [`Group`] with options; see [`Group::builder`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct GroupBuilder {
    mechanism: Option<MechanismChoice>,
}

impl GroupBuilder {
    /// Forces the mechanism (overriding `PKIT_MECHANISM`).
    /// [`MechanismChoice::Cgroup`] where no cgroup can be created is an
    /// error at [`build`](Self::build), never a fallback.
    pub fn mechanism(mut self, choice: MechanismChoice) -> GroupBuilder {
        self.mechanism = Some(choice);
        self
    }

    /// Creates the group's container.
    pub fn build(self) -> Result<Group> {
        let choice = match self.mechanism {
            Some(c) => c,
            None => MechanismChoice::from_env().map_err(|bad| {
                Error::InvalidInput(format!(
                    "{}={bad:?} is not one of auto, cgroup, pgroup",
                    MechanismChoice::ENV_VAR
                ))
            })?,
        };
        let container =
            Container::create(choice).map_err(|reason| Error::MechanismUnavailable {
                requested: Some(Mechanism::CgroupV2),
                reason,
            })?;
        log::group_created(container.mechanism());
        Ok(Group { container })
    }
}

impl Group {
    /// A group with the default mechanism (`PKIT_MECHANISM`, else the
    /// strongest available).
    pub fn new() -> Result<Group> {
        Group::builder().build()
    }

    /// A builder for a group with options.
    pub fn builder() -> GroupBuilder {
        GroupBuilder::default()
    }

    /// The mechanism containing this group's processes.
    pub fn mechanism(&self) -> Mechanism {
        self.container.mechanism()
    }

    /// How children are put into the container (clone3 at birth, a join
    /// before exec, or a process group).
    pub fn placement(&self) -> Placement {
        self.container.placement()
    }

    /// One line for humans: the mechanism, where it lives, how children
    /// are placed, how it is torn down, and any fallback taken.
    pub fn description(&self) -> String {
        self.container.describe()
    }

    /// Starts `cmd` in the group. Must be called within a Tokio runtime.
    ///
    /// The command's `timeout` and `grace` apply to the verbs only; a
    /// started process runs until it exits or the group ends.
    pub fn start(&self, cmd: &Command) -> Result<RunningProcess> {
        if self.container.is_closed() {
            return Err(Error::Spawn {
                program: cmd.display_name(),
                source: std::io::Error::other("the group has been closed"),
            });
        }
        process::start(&self.container, cmd)
    }

    /// Kills every process in the group, grandchildren included, now
    /// (SIGKILL: `killpg`, or to each member of the frozen cgroup). The
    /// group stays usable.
    pub fn kill(&self) -> Result<()> {
        self.container
            .kill_keep_usable()
            .map_err(|e| Error::io("killing the group", e))
    }

    /// Ends the group gracefully: SIGTERM to every process in it, up to
    /// `grace` for them to exit, then SIGKILL to whatever is left; then the
    /// container is removed. The group can't start processes afterwards.
    pub async fn shutdown(&self, grace: Duration) -> Result<ShutdownReport> {
        let began = Instant::now();
        let members = self.members()?;
        let signalled = members.len();
        let mut remaining = 0;
        if signalled > 0 {
            self.container
                .signal(sys::signals::TERM)
                .map_err(|e| Error::io("signalling the group", e))?;
            remaining = self
                .container
                .wait_members(&members, Instant::now() + grace)
                .await
                .map_err(|e| Error::io("waiting for the group", e))?;
        }
        self.close().await?;
        let report = ShutdownReport {
            signalled,
            exited_in_grace: signalled.saturating_sub(remaining),
            killed: remaining,
            elapsed: began.elapsed(),
        };
        log::shutdown(self.mechanism(), &report);
        Ok(report)
    }

    /// Kills the whole tree, waits until every process is gone (driven by
    /// kernel events, not polling) and removes the container.
    pub async fn close(&self) -> Result<()> {
        self.container
            .close()
            .await
            .map_err(|e| Error::io("closing the group", e))
    }

    /// The pids of the live processes in the group.
    pub fn pids(&self) -> Result<Vec<u32>> {
        Ok(self.members()?.into_iter().map(|p| p as u32).collect())
    }

    fn members(&self) -> Result<Vec<i32>> {
        self.container
            .members()
            .map_err(|e| Error::io("listing the group's processes", e))
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("mechanism", &self.mechanism())
            .field("description", &self.description())
            .finish()
    }
}

/// What [`Group::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    signalled: usize,
    exited_in_grace: usize,
    killed: usize,
    elapsed: Duration,
}

impl ShutdownReport {
    /// How many processes were sent SIGTERM.
    pub fn signalled(&self) -> usize {
        self.signalled
    }

    /// How many of them exited within the grace period.
    pub fn exited_in_grace(&self) -> usize {
        self.exited_in_grace
    }

    /// How many were still alive after the grace and were killed.
    pub fn killed(&self) -> usize {
        self.killed
    }

    /// How long the shutdown took, removal included.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}
