//! The blocking [`Group`].

use std::fmt;
use std::time::Duration;

use super::process::RunningProcess;
use super::{block_on, enter, enter_for_drop};
use crate::command::Command;
use crate::error::Result;
use crate::group::ShutdownReport;
use crate::group_builder::GroupBuilder;
use crate::output::Output;
use crate::sys::{LimitInfo, Mechanism, Placement, ProcessInfo, Signal, Stats};

/// A [`Group`](crate::Group) for blocking code: the same container, the
/// same kill-on-drop, methods that block instead of returning futures.
pub struct Group {
    inner: Option<crate::Group>,
}

impl Group {
    /// A group with the default options ([`crate::Group::new`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::new`](crate::Group::new).
    #[track_caller]
    pub fn new() -> Result<Group> {
        enter("Group::new", crate::Group::new)?.map(Group::from)
    }

    /// A group built from `builder` (memory limits, mechanism...).
    ///
    /// # Errors
    ///
    /// Those of [`GroupBuilder::build`](crate::GroupBuilder::build).
    #[track_caller]
    pub fn with(builder: GroupBuilder) -> Result<Group> {
        enter("Group::with", || builder.build())?.map(Group::from)
    }

    fn get(&self) -> &crate::Group {
        self.inner.as_ref().expect("present until drop")
    }

    /// The async group this one wraps (for its read-only accessors).
    pub fn as_async(&self) -> &crate::Group {
        self.get()
    }

    /// The mechanism in force.
    pub fn mechanism(&self) -> Mechanism {
        self.get().mechanism()
    }

    /// How children are placed ([`crate::Group::placement`]).
    pub fn placement(&self) -> Placement {
        self.get().placement()
    }

    /// The name given with [`GroupBuilder::name`], if any.
    pub fn name(&self) -> Option<&str> {
        self.get().name()
    }

    /// One line for humans ([`crate::Group::description`]).
    pub fn description(&self) -> String {
        self.get().description()
    }

    /// Whether the owner-death guard covers this group now
    /// ([`crate::Group::guarded`]).
    pub fn guarded(&self) -> bool {
        self.get().guarded()
    }

    /// The resource caps in force and what enforces each
    /// ([`crate::Group::limits`]).
    pub fn limits(&self) -> Vec<LimitInfo> {
        self.get().limits()
    }

    /// Whether the group is suspended ([`crate::Group::is_suspended`]).
    pub fn is_suspended(&self) -> bool {
        self.get().is_suspended()
    }

    /// Snapshots of the group's [`Stats`] every `every`, as an
    /// [`Iterator`] that ends once the group is empty (the last snapshot
    /// shows 0 active processes) or after a snapshot that can't be read
    /// (an `Err` item); see [`crate::Group::sample_stats`]. An
    /// interval below [`MIN_SAMPLE_INTERVAL`](crate::MIN_SAMPLE_INTERVAL)
    /// samples every [`MIN_SAMPLE_INTERVAL`](crate::MIN_SAMPLE_INTERVAL).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let group = pkit::blocking::Group::new()?;
    /// let _p = group.start(&pkit::Command::new("sleep").arg("0.2"))?;
    /// let last = group.sample_stats(Duration::from_millis(20)).last().expect("a snapshot")?;
    /// assert_eq!(last.active_processes(), 0);
    /// # Ok::<(), pkit::Error>(())
    /// ```
    #[track_caller]
    pub fn sample_stats(&self, every: Duration) -> SampleStats<'_> {
        super::runtime::refuse_inside_runtime("Group::sample_stats");
        SampleStats {
            group: self.get(),
            // An interval too long for the clock (`Duration::MAX`) is one
            // snapshot, then none due for decades, as the async sampler's.
            every: every.clamp(
                crate::stats::MIN_SAMPLE_INTERVAL,
                crate::timing::NO_DEADLINE,
            ),
            next_at: None,
            done: false,
        }
    }

    /// Starts `cmd` in the group ([`crate::Group::start`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::start`](crate::Group::start).
    #[track_caller]
    pub fn start(&self, cmd: &Command) -> Result<RunningProcess> {
        enter("Group::start", || self.get().start(cmd))?.map(RunningProcess::from_async)
    }

    /// Runs `cmd` to its end in this group and tears the group down
    /// ([`crate::Group::output`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::output`](crate::Group::output).
    #[track_caller]
    pub fn output(mut self, cmd: &Command) -> Result<Output> {
        let group = self.inner.take().expect("present until drop");
        block_on("Group::output", group.output(cmd))
    }

    /// Runs `cmd` in this group, requires success, and returns its stdout
    /// trimmed ([`crate::Group::run`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::run`](crate::Group::run).
    #[track_caller]
    pub fn run(mut self, cmd: &Command) -> Result<String> {
        let group = self.inner.take().expect("present until drop");
        block_on("Group::run", group.run(cmd))
    }

    /// Runs `cmd` in this group and returns its exit code
    /// ([`crate::Group::exit_code`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::exit_code`](crate::Group::exit_code).
    #[track_caller]
    pub fn exit_code(mut self, cmd: &Command) -> Result<i32> {
        let group = self.inner.take().expect("present until drop");
        block_on("Group::exit_code", group.exit_code(cmd))
    }

    /// SIGKILL to every process of the group ([`crate::Group::kill`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::kill`](crate::Group::kill).
    pub fn kill(&self) -> Result<()> {
        self.get().kill()
    }

    /// SIGTERM, up to `grace`, then SIGKILL ([`crate::Group::shutdown`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::shutdown`](crate::Group::shutdown).
    #[track_caller]
    pub fn shutdown(&self, grace: Duration) -> Result<ShutdownReport> {
        block_on("Group::shutdown", self.get().shutdown(grace))
    }

    /// Kills everything and releases the container ([`crate::Group::close`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::close`](crate::Group::close).
    #[track_caller]
    pub fn close(&self) -> Result<()> {
        block_on("Group::close", self.get().close())
    }

    /// Sends `signal` to every process ([`crate::Group::signal`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::signal`](crate::Group::signal).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        self.get().signal(signal)
    }

    /// Freezes the group ([`crate::Group::suspend`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::suspend`](crate::Group::suspend).
    #[track_caller]
    pub fn suspend(&self) -> Result<()> {
        block_on("Group::suspend", self.get().suspend())
    }

    /// Thaws the group ([`crate::Group::resume`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::resume`](crate::Group::resume).
    #[track_caller]
    pub fn resume(&self) -> Result<()> {
        block_on("Group::resume", self.get().resume())
    }

    /// Moves a running process into the group ([`crate::Group::adopt`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::adopt`](crate::Group::adopt).
    pub fn adopt(&self, pid: u32) -> Result<()> {
        self.get().adopt(pid)
    }

    /// The live processes ([`crate::Group::processes`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::processes`](crate::Group::processes).
    pub fn processes(&self) -> Result<Vec<ProcessInfo>> {
        self.get().processes()
    }

    /// Resource figures ([`crate::Group::stats`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::stats`](crate::Group::stats).
    pub fn stats(&self) -> Result<Stats> {
        self.get().stats()
    }

    /// The pids of the live processes ([`crate::Group::pids`]).
    ///
    /// # Errors
    ///
    /// Those of [`Group::pids`](crate::Group::pids).
    pub fn pids(&self) -> Result<Vec<u32>> {
        self.get().pids()
    }
}

impl From<crate::Group> for Group {
    fn from(group: crate::Group) -> Group {
        Group { inner: Some(group) }
    }
}

impl Drop for Group {
    /// Kills the group's tree, as the async group does.
    fn drop(&mut self) {
        enter_for_drop(self.inner.take());
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::Group").field(&self.inner).finish()
    }
}

/// A group's [`Stats`] sampled at an interval, as an [`Iterator`]: each
/// `next` blocks until the next snapshot; `None` once the group is empty or
/// after a snapshot that failed (an `Err` item).
/// See [`Group::sample_stats`].
///
/// The calling thread sleeps between snapshots and takes them itself
/// (as [`crate::SampleStats`] does: the first at once, then one every
/// interval, a late one delaying the next); it needs no runtime.
pub struct SampleStats<'a> {
    group: &'a crate::Group,
    every: Duration,
    /// When the next snapshot is due (`None`: at once).
    next_at: Option<std::time::Instant>,
    done: bool,
}

impl Iterator for SampleStats<'_> {
    type Item = Result<Stats>;

    #[track_caller]
    fn next(&mut self) -> Option<Result<Stats>> {
        super::runtime::refuse_inside_runtime("SampleStats::next");
        if self.done {
            return None;
        }
        if let Some(at) = self.next_at {
            std::thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
        }
        self.next_at = Some(std::time::Instant::now() + self.every);
        Some(crate::stats::snapshot(self.group, &mut self.done))
    }
}

impl fmt::Debug for SampleStats<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::SampleStats")
            .field("every", &self.every)
            .field("done", &self.done)
            .finish()
    }
}
