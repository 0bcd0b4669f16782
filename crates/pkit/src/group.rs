//! [`Group`]: a kill-on-drop container for processes that must die
//! together.

use std::fmt;
use std::time::{Duration, Instant};

use crate::command::Command;
use crate::error::{Error, Result};
use crate::log;
use crate::process::RunningProcess;
pub use crate::shutdown::ShutdownReport;
use crate::sys::{
    self, Container, ControlError, LimitInfo, Mechanism, MechanismChoice, Placement, ProcessInfo,
    Signal, Stats,
};

/// A kill-on-drop OS container: every process started in it, and
/// everything those processes spawn, is ended with it.
///
/// On Linux a group is a cgroup v2 directory (which catches every
/// descendant, even one that calls `setsid`, and everything in the
/// sub-cgroups its programs make), else a POSIX process group;
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
    name: Option<String>,
    /// Scripted processes (feature `testing`), which no container holds.
    pub(crate) scripted: crate::child::ScriptedMembers,
}

/// Builds a [`Group`] with options; see [`Group::builder`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct GroupBuilder {
    mechanism: Option<MechanismChoice>,
    limits: sys::Limits,
    /// `owner_death_guard(false)` was asked for.
    no_guard: bool,
    name: Option<String>,
}

/// The longest name [`GroupBuilder::name`] accepts, in bytes.
const MAX_NAME: usize = 64;

/// Whether `name` is 1 to [`MAX_NAME`] of `A-Z a-z 0-9 . _ -`, not `.`-led.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl GroupBuilder {
    /// Forces the mechanism (overriding `PKIT_MECHANISM`).
    /// [`MechanismChoice::Cgroup`] where no cgroup can be created is an
    /// error at [`build`](Self::build), never a fallback.
    pub fn mechanism(mut self, choice: MechanismChoice) -> GroupBuilder {
        self.mechanism = Some(choice);
        self
    }

    /// Caps the memory of the whole tree at `bytes` (swap included where
    /// the host can cap it). A tree that needs more is OOM-killed; see
    /// [`Output::oom_killed`](crate::Output::oom_killed). Less than one page
    /// (4096 bytes) is refused; a cap too small for a program to start
    /// (a few hundred KiB) makes `start` fail with an error that names the
    /// cap, rather than only `ENOMEM` or `E2BIG`.
    ///
    /// Caps apply to the group, not to a command: to bound a command, start
    /// it in a capped group. Where nothing on this host can enforce a cap,
    /// [`build`](Self::build) fails with [`Error::ResourceLimit`], as it does
    /// for zero, negative or non-finite values: never an uncapped group the
    /// caller believes capped. [`Group::limits`] says what enforces each.
    pub fn memory_max(mut self, bytes: u64) -> GroupBuilder {
        self.limits.memory_max = Some(bytes);
        self
    }

    /// Throttles the whole tree's memory above `bytes`: past it the kernel
    /// reclaims the group's memory hard and slows its allocations, but
    /// kills nothing (unlike [`memory_max`](Self::memory_max)). cgroup v2
    /// only (`memory.high`): cgroup v1 has nothing with that meaning, so on
    /// a v1 host [`build`](Self::build) fails with [`Error::ResourceLimit`].
    pub fn memory_high(mut self, bytes: u64) -> GroupBuilder {
        self.limits.memory_high = Some(bytes);
        self
    }

    /// Caps the swap the whole tree may use at `bytes` (0: none). Without
    /// it, [`memory_max`](Self::memory_max) allows no swap where the host
    /// can cap swap. cgroup v2 only (`memory.swap.max`): cgroup v1 caps
    /// memory and swap together, not swap alone, so on a v1 host (or where
    /// the kernel does not account swap) [`build`](Self::build) fails with
    /// [`Error::ResourceLimit`].
    pub fn memory_swap_max(mut self, bytes: u64) -> GroupBuilder {
        self.limits.memory_swap_max = Some(bytes);
        self
    }

    /// Lets the whole tree run only on the CPUs in `list`, in the kernel's
    /// CPU-list format: `"0"`, `"0-3"`, `"0,2-3"` (a cpuset: cgroup v2
    /// `cpuset.cpus`, else a cgroup v1 cpuset). A malformed list, or CPUs
    /// the host does not offer, fail at [`build`](Self::build) with
    /// [`Error::ResourceLimit`].
    pub fn cpus(mut self, list: &str) -> GroupBuilder {
        self.limits.cpus = Some(list.to_string());
        self
    }

    /// Caps the number of live processes (and threads) in the whole tree;
    /// a `fork` past it fails with `EAGAIN`.
    pub fn max_processes(mut self, n: u64) -> GroupBuilder {
        self.limits.max_processes = Some(n);
        self
    }

    /// Caps the whole tree's CPU use at `cores` (0.5 = half of one core,
    /// 2.0 = two cores), enforced per 100 ms period.
    pub fn cpu_quota(mut self, cores: f64) -> GroupBuilder {
        self.limits.cpu_quota = Some(cores);
        self
    }

    /// Whether the owner-death guard covers this group (default: yes).
    ///
    /// The guard is a small process, started with this process's first
    /// group, that kills every group it covers if this process dies
    /// without tearing them down (SIGKILL, a crash, an abort). If it can't
    /// be started the group is still created, unguarded:
    /// [`Group::guarded`] says so, a warning is logged, and
    /// [`host_containment`](crate::host_containment) gives the reason.
    pub fn owner_death_guard(mut self, on: bool) -> GroupBuilder {
        self.no_guard = !on;
        self
    }

    /// Names the group, so an operator can tell it apart: under cgroup v2
    /// its directory is `pkit-<owner pid>-<n>-<name>` (as
    /// `/proc/<pid>/cgroup` of each member shows, and any cgroup v1 cap
    /// directory too), still swept as stale once its owner is dead.
    ///
    /// A name is 1 to 64 characters of `A-Z a-z 0-9 . _ -`, not starting
    /// with `.`; anything else fails at [`build`](Self::build) with
    /// [`Error::InvalidInput`]. Names need not be unique. Under the
    /// process-group mechanism a name has no OS object to carry it: it is
    /// kept for [`Group::name`] only. A named cgroup is never reused for
    /// another group once emptied, so a named group costs one `mkdir` more
    /// than an unnamed one.
    ///
    /// ```
    /// # fn demo() -> pkit::Result<()> {
    /// let group = pkit::Group::builder().name("web-1").build()?;
    /// assert_eq!(group.name(), Some("web-1"));
    /// # Ok(()) }
    /// ```
    pub fn name(mut self, name: &str) -> GroupBuilder {
        self.name = Some(name.to_string());
        self
    }

    /// Creates the group's container.
    pub fn build(self) -> Result<Group> {
        if let Some(name) = &self.name {
            if !valid_name(name) {
                return Err(Error::InvalidInput(format!(
                    "a group name must be 1 to {MAX_NAME} characters of A-Z a-z 0-9 . _ - \
                     not starting with '.'"
                )));
            }
        }
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
            Container::create(choice, &self.limits, !self.no_guard, self.name.as_deref()).map_err(
                |e| match e {
                    sys::CreateError::Mechanism(reason) => Error::MechanismUnavailable {
                        requested: Some(Mechanism::CgroupV2),
                        reason,
                    },
                    sys::CreateError::Limit(l) => Error::ResourceLimit {
                        cap: l.cap,
                        reason: l.reason,
                    },
                },
            )?;
        log::group_created(container.mechanism());
        Ok(Group {
            container,
            name: self.name,
            scripted: Default::default(),
        })
    }
}

impl Group {
    /// A group with the default mechanism (`PKIT_MECHANISM`, else the
    /// strongest available).
    pub fn new() -> Result<Group> {
        Group::builder().build()
    }

    /// The name given with [`GroupBuilder::name`], if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
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

    /// Whether the owner-death guard covers this group now: if this
    /// process is killed, the guard kills the group's whole tree and
    /// removes its container. False when it was turned off
    /// ([`GroupBuilder::owner_death_guard`]), could not be started, has
    /// died, or stopped reading (stopped or wedged for 2 s: pkit never
    /// blocks on it, it gives it up). A process group is registered when its first process starts;
    /// before that this says whether it will be.
    pub fn guarded(&self) -> bool {
        self.container.guarded()
    }

    /// The resource caps in force and what enforces each (empty without
    /// caps).
    pub fn limits(&self) -> Vec<LimitInfo> {
        self.container.limit_info()
    }

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
    pub fn start(&self, cmd: &Command) -> Result<RunningProcess> {
        let opts = crate::launch::StartOpts {
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
        let launch = crate::launch::Launch { group: self, opts };
        cmd.run_with().start(cmd, launch)
    }

    /// The real start (the command's runner is not asked).
    pub(crate) fn start_with(
        &self,
        cmd: &Command,
        opts: crate::launch::StartOpts,
    ) -> Result<RunningProcess> {
        self.check_open(cmd)?;
        crate::launch::start(&self.container, cmd, opts)
    }

    /// The error for a start the group refuses now (closed, suspended).
    /// Checked again, atomically with the placement, by the container.
    pub(crate) fn check_open(&self, cmd: &Command) -> Result<()> {
        match self.container.refusal() {
            Some(source) => Err(Error::Spawn {
                program: cmd.display_name(),
                source,
            }),
            None => Ok(()),
        }
    }

    /// Kills every process in the group, grandchildren included, now
    /// (SIGKILL: `killpg`, or to each member of the frozen cgroup and of
    /// every cgroup below it, such as those a nested pkit makes). The
    /// group stays usable, and a suspended group stays suspended.
    pub fn kill(&self) -> Result<()> {
        self.scripted.signal(Signal::Kill.as_raw());
        self.container
            .kill_keep_usable()
            .map_err(|e| Error::io("killing the group", e))
    }

    /// Ends the group gracefully: SIGTERM to every process in it, up to
    /// `grace` for them to exit, then SIGKILL to whatever is left; then the
    /// container is removed. The group can't start processes afterwards.
    /// On Windows each started process's console group gets a
    /// `CTRL_BREAK_EVENT` for SIGTERM (console programs only), then the
    /// grace, then the job is terminated; where no break can be sent (no
    /// console, GUI programs only, Wine) it is terminated at once, every
    /// process counted as killed.
    ///
    /// Any `grace` is accepted: one too long for the clock
    /// (`Duration::MAX`) waits for the processes without bound.
    pub async fn shutdown(&self, grace: Duration) -> Result<ShutdownReport> {
        self.shutdown_with(Signal::Term, grace).await
    }

    /// [`shutdown`](Self::shutdown) with `signal` in place of SIGTERM (a
    /// timed-out run's [`Command::timeout_signal`]). A `grace` too long for
    /// the clock waits without bound.
    pub(crate) async fn shutdown_with(
        &self,
        signal: Signal,
        grace: Duration,
    ) -> Result<ShutdownReport> {
        let began = Instant::now();
        let members = self.members()?;
        let scripted = self.scripted.count();
        // Signalled and still there after the grace; killed unsignalled.
        let (mut remaining, mut unasked) = (0, 0);
        if scripted > 0 {
            self.scripted.signal(signal.as_raw());
            let grace = grace.min(crate::timing::NO_DEADLINE);
            remaining += self.scripted.wait_until(Instant::now() + grace).await;
        }
        if !members.is_empty() {
            match self.container.signal(signal.as_raw()) {
                Ok(()) => {
                    let grace = grace.min(crate::timing::NO_DEADLINE);
                    remaining += self
                        .container
                        .wait_members(&members, Instant::now() + grace)
                        .await
                        .map_err(|e| Error::io("waiting for the group", e))?;
                }
                // No such signal here (Windows: no console for a break, or
                // a signal it lacks): straight to termination, unsignalled.
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => unasked = members.len(),
                Err(e) => return Err(Error::io("signalling the group", e)),
            }
        }
        self.close().await?;
        let signalled = members.len() + scripted - unasked;
        let report = ShutdownReport {
            signalled,
            exited_in_grace: signalled.saturating_sub(remaining),
            killed: remaining + unasked,
            elapsed: began.elapsed(),
        };
        log::shutdown(
            self.mechanism(),
            report.signalled,
            report.exited_in_grace,
            report.killed,
            report.elapsed,
        );
        Ok(report)
    }

    /// Kills the whole tree, waits until every process is gone (driven by
    /// kernel events, not polling) and removes the container — under
    /// cgroup v2 depth-first, with the sub-cgroups its started processes
    /// and their programs (a nested pkit, a container runtime) made. Once
    /// the tree is gone, a directory that still can't be removed is left to
    /// a background thread and is never this call's error.
    pub async fn close(&self) -> Result<()> {
        let began = Instant::now();
        self.scripted.signal(Signal::Kill.as_raw());
        self.container
            .close()
            .await
            .map_err(|e| Error::io("closing the group", e))?;
        log::group_closed(self.mechanism(), began.elapsed());
        Ok(())
    }

    /// Ends the group after a run: like `close` (the tree is gone when it
    /// returns, in either mechanism), but an emptied cgroup may be kept for
    /// the next run.
    pub(crate) async fn end_run(&self) -> Result<()> {
        let began = Instant::now();
        self.scripted.signal(Signal::Kill.as_raw());
        self.container
            .close_with(true)
            .await
            .map_err(|e| Error::io("closing the group", e))?;
        log::group_closed(self.mechanism(), began.elapsed());
        Ok(())
    }

    /// Sends `signal` to every process in the group, grandchildren and
    /// processes in sub-cgroups included. A cgroup is frozen while the
    /// signal is delivered to each member through a pidfd checked to name a
    /// member (so nobody forks an unsignalled child and no reused pid is
    /// ever signalled); a process group gets `killpg`. Every member is
    /// tried; the first error is reported after. [`Signal::Kill`] is
    /// [`kill`](Self::kill): the group stays usable. On Windows (a Job
    /// Object) [`Signal::Term`] and [`Signal::Int`] are a `CTRL_BREAK_EVENT`
    /// to each started process's console group (see [`shutdown`](Self::shutdown));
    /// any other signal but [`Signal::Kill`], a break nobody can be sent,
    /// and [`suspend`](Self::suspend)/[`resume`](Self::resume), are
    /// [`Error::Unsupported`].
    pub fn signal(&self, signal: Signal) -> Result<()> {
        self.scripted.signal(signal.as_raw());
        self.container
            .signal(signal.as_raw())
            .map_err(|e| self.refused("signal", format!("sending {signal} to the group"), e))
    }

    /// An OS error as [`Error::Io`], or as [`Error::Unsupported`] when the
    /// mechanism can't do `operation` at all (Windows has no signals but
    /// Kill and the console's break, and no suspend).
    fn refused(&self, operation: &'static str, context: String, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::Unsupported {
            return Error::Unsupported {
                operation,
                mechanism: self.mechanism(),
                reason: e.to_string(),
            };
        }
        Error::io(context, e)
    }

    /// Stops every process in the group until [`resume`](Self::resume):
    /// cgroup v2 freezes the cgroup (waiting until the kernel reports it
    /// frozen; the processes can't tell); a process group gets SIGSTOP.
    /// While suspended, [`start`](Self::start) is refused (an
    /// [`Error::Spawn`] of kind `WouldBlock`), and [`kill`](Self::kill)
    /// kills without resuming.
    pub async fn suspend(&self) -> Result<()> {
        self.container
            .suspend()
            .await
            .map_err(|e| self.refused("suspend", "suspending the group".into(), e))
    }

    /// Lets a suspended group run again (thaw, or SIGCONT).
    pub async fn resume(&self) -> Result<()> {
        self.container
            .resume()
            .await
            .map_err(|e| self.refused("resume", "resuming the group".into(), e))
    }

    /// Whether the group is suspended.
    pub fn is_suspended(&self) -> bool {
        self.container.is_suspended()
    }

    /// Pulls a process started elsewhere into the group: it (and what it
    /// spawns from then on) is ended with the group.
    ///
    /// cgroup v2 takes any process this one may move. A process group can
    /// take only a child of this process that has not yet called `exec`
    /// (the rules of `setpgid(2)`), so for an already running program it is
    /// [`Error::Unsupported`].
    pub fn adopt(&self, pid: u32) -> Result<()> {
        self.container.adopt(pid as i32).map_err(|e| match e {
            ControlError::Unsupported(reason) => Error::Unsupported {
                operation: "adopt",
                mechanism: self.mechanism(),
                reason,
            },
            ControlError::Os(source) => Error::io(format!("adopting pid {pid}"), source),
        })
    }

    /// The live processes in the group (under cgroup v2, in its cgroup and
    /// every cgroup below it), with their names where readable.
    pub fn processes(&self) -> Result<Vec<ProcessInfo>> {
        self.container
            .processes()
            .map_err(|e| Error::io("listing the group's processes", e))
    }

    /// A snapshot of the group's resource use.
    pub fn stats(&self) -> Result<Stats> {
        self.container
            .stats()
            .map_err(|e| Error::io("reading the group's stats", e))
    }

    pub(crate) fn oom_kills(&self) -> Option<u64> {
        self.container.oom_kills()
    }

    /// The pids of the live processes in the group (under cgroup v2, in
    /// its cgroup and every cgroup below it).
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

impl crate::process::OwnGroup for Group {
    fn close(&self) -> crate::BoxFuture<'_, Result<()>> {
        Box::pin(Group::close(self))
    }
}

impl Drop for Group {
    /// The container's own drop kills the tree; this only says so in the
    /// log when the group was still open.
    fn drop(&mut self) {
        self.scripted.signal(Signal::Kill.as_raw());
        let open = match self.container.refusal() {
            None => true,
            Some(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        };
        if open {
            log::group_dropped(self.mechanism());
        }
    }
}
