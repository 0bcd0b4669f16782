//! [`GroupBuilder`]: a [`Group`] with options (mechanism, caps, guard,
//! name), and the constructors that start from it.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::group::Group;
use crate::log;
use crate::sys::{self, Container, MechanismChoice};

/// Builds a [`Group`] with options; see [`Group::builder`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct GroupBuilder {
    mechanism: Option<MechanismChoice>,
    limits: sys::Limits,
    /// `owner_death_guard(false)` was asked for.
    no_guard: bool,
    name: Option<String>,
    /// The name the group's lifecycle events carry, when pkit builds the
    /// group for one command (its log label); else [`Self::name`]'s.
    log_name: Option<Arc<str>>,
    /// A private group pkit makes for one run, whose resource use nobody
    /// reads (see [`one_shot`](Self::one_shot)).
    one_shot: bool,
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
    /// (4096 bytes) is refused, and so is more than `i64::MAX` bytes (the
    /// most the kernel takes: it would clamp a larger cap); a cap too small
    /// for a program to start (a few hundred KiB) makes `start` fail with
    /// an error that names the cap, rather than only `ENOMEM` or `E2BIG`.
    ///
    /// Caps apply to the group, not to a command: to bound a command, start
    /// it in a capped group. Where nothing on this host can enforce a cap,
    /// [`build`](Self::build) fails with [`Error::ResourceLimit`], as it does
    /// for zero, negative or non-finite values: never an uncapped group the
    /// caller believes capped. [`Group::limits`] says what enforces each.
    /// On Windows it is the job's memory limit (committed memory); Wine
    /// accepts one but does not enforce it, so there `build` fails with
    /// [`Error::ResourceLimit`] saying so.
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
    /// `cpuset.cpus`, else a cgroup v1 cpuset). A malformed list, a CPU
    /// past 8191 (no kernel has more) or past this host's
    /// (`/sys/devices/system/cpu/possible`), or CPUs the host does not
    /// offer, fail at [`build`](Self::build) with [`Error::ResourceLimit`]
    /// naming the CPU. On Windows it is the job's CPU affinity, which
    /// covers CPUs 0 to 63 (one processor group) and only those this
    /// process may use; Wine accepts an affinity but does not keep it, so
    /// there `build` fails with [`Error::ResourceLimit`] saying so.
    pub fn cpus(mut self, list: &str) -> GroupBuilder {
        self.limits.cpus = Some(list.to_string());
        self
    }

    /// Caps the number of live processes (and threads) in the whole tree;
    /// a `fork` past it fails with `EAGAIN`. On Linux at most 4194304
    /// (`PID_MAX_LIMIT`, as many tasks as the kernel can have): a larger
    /// number makes [`build`](Self::build) fail with
    /// [`Error::ResourceLimit`]. On Windows it is the job's
    /// active process limit (processes only); Wine accepts one but does not
    /// enforce it, so there [`build`](Self::build) fails with
    /// [`Error::ResourceLimit`] saying so.
    pub fn max_processes(mut self, n: u64) -> GroupBuilder {
        self.limits.max_processes = Some(n);
        self
    }

    /// Caps the whole tree's CPU use at `cores` (0.5 = half of one core,
    /// 2.0 = two cores), enforced per 100 ms period. From 0.01 to
    /// 175921860 cores (the kernel's smallest and largest quotas); a value
    /// outside that, or not finite, makes `build` fail with
    /// [`Error::ResourceLimit`](crate::Error::ResourceLimit). On Windows it
    /// is the job's CPU rate hard cap (a share of all the machine's CPUs);
    /// where the OS refuses one (Wine), `build` fails with
    /// [`Error::ResourceLimit`](crate::Error::ResourceLimit) saying so.
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
    ///
    /// On Windows the group's Job Object is its own guard (it is created
    /// with `KILL_ON_JOB_CLOSE`, which the owner's death sets off) and no
    /// guard process is used: this setting changes nothing there, and
    /// [`Group::guarded`] says true.
    pub fn owner_death_guard(mut self, on: bool) -> GroupBuilder {
        self.no_guard = !on;
        self
    }

    /// Names the group, so an operator can tell it apart: under cgroup v2
    /// its directory is `pkit-<owner pid>.<ns>.<start>-<n>-<name>` (the
    /// owner's pid namespace and start time after its pid; as
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

    /// The name the group's lifecycle events carry (created, shut down,
    /// closed, dropped): the command's log label when pkit builds the
    /// group for one command's run.
    pub(crate) fn log_name(mut self, name: impl Into<Arc<str>>) -> GroupBuilder {
        self.log_name = Some(name.into());
        self
    }

    /// Marks the group as a private one pkit makes for one run (a verb's,
    /// `Command::start`'s, a pipeline's, a supervised run's): nobody reads
    /// its stats, so a reused cgroup directory's earlier use needn't be
    /// measured when it is made (no `stat` of `memory.current`, no read
    /// of `cpu.stat`), and a spare with memory accounting may be reused.
    pub(crate) fn one_shot(mut self) -> GroupBuilder {
        self.one_shot = true;
        self
    }

    /// Creates the group's container.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an invalid [`name`](Self::name)
    /// or an unparseable `PKIT_MECHANISM`;
    /// [`Error::MechanismUnavailable`](crate::Error::MechanismUnavailable) when the mechanism
    /// asked for (cgroup v2 forced on a host without it, a process group forced on Windows)
    /// can't be had here, or no container at all can be made (a Job Object Windows refuses:
    /// `requested` is `None` then, nothing was forced);
    /// [`Error::ResourceLimit`](crate::Error::ResourceLimit) when a cap is invalid or nothing
    /// here can enforce it.
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
            None => MechanismChoice::from_env()
                .map_err(|bad| Error::InvalidInput(MechanismChoice::env_error(&bad)))?,
        };
        let name = self.name.as_deref();
        let stats = !self.one_shot;
        let container = Container::create(choice, &self.limits, !self.no_guard, name, stats)
            .map_err(|e| match e {
                sys::CreateError::Mechanism(reason) => Error::MechanismUnavailable {
                    requested: choice.requested(),
                    reason,
                },
                sys::CreateError::Limit(l) => Error::ResourceLimit {
                    cap: l.cap,
                    reason: l.reason,
                },
            })?;
        let log_name = self
            .log_name
            .or_else(|| self.name.as_deref().map(Arc::from));
        log::group_created(log_name.as_deref(), container.mechanism());
        Ok(Group::from_container(container, self.name, log_name))
    }
}

impl Group {
    /// A group with the default mechanism (`PKIT_MECHANISM`, else the
    /// strongest available).
    ///
    /// # Errors
    ///
    /// Those of [`GroupBuilder::build`]: [`Error::InvalidInput`](crate::Error::InvalidInput)
    /// for an unparseable `PKIT_MECHANISM`,
    /// [`Error::MechanismUnavailable`](crate::Error::MechanismUnavailable) when it forces a
    /// mechanism this host can't give, or (Windows) no Job Object can be made.
    pub fn new() -> Result<Group> {
        Group::builder().build()
    }

    /// A builder for a group with options.
    pub fn builder() -> GroupBuilder {
        GroupBuilder::default()
    }
}
