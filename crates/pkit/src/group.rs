//! [`Group`]: a kill-on-drop container for processes that must die
//! together.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::log;
pub use crate::shutdown::ShutdownReport;
use crate::sys::{
    Container, ControlError, LimitInfo, Mechanism, Placement, ProcessInfo, Signal, Stats,
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
    /// Shared with its started processes' watches, which resume it when
    /// an end's signal goes to a suspended group (see [`Group::suspend`]).
    container: Arc<Container>,
    name: Option<String>,
    /// The name its lifecycle events carry, if any
    /// (see `GroupBuilder::log_name`).
    log_name: Option<Arc<str>>,
    /// Scripted processes (feature `testing`), which no container holds.
    pub(crate) scripted: crate::child::ScriptedMembers,
}

impl Group {
    /// A group around a created container (see [`GroupBuilder::build`](crate::GroupBuilder::build)).
    pub(crate) fn from_container(
        container: Container,
        name: Option<String>,
        log_name: Option<Arc<str>>,
    ) -> Group {
        Group {
            container: Arc::new(container),
            name,
            log_name,
            scripted: Default::default(),
        }
    }

    /// The group's OS container.
    pub(crate) fn container(&self) -> &Arc<Container> {
        &self.container
    }

    /// The name given with [`GroupBuilder::name`](crate::GroupBuilder::name), if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
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
    /// are placed, how it is torn down, and any fallback taken. Once the
    /// group is closed (or a close has begun), only the mechanism and
    /// `closed` (`"cgroup v2; closed"`): its cgroup directory may already
    /// serve a newer group, and its process group number another process.
    pub fn description(&self) -> String {
        self.container.describe()
    }

    /// Whether the owner-death guard covers this group now: if this
    /// process is killed, the guard kills the group's whole tree and
    /// removes its container. False when it was turned off
    /// ([`GroupBuilder::owner_death_guard`](crate::GroupBuilder::owner_death_guard)), could not be started, has
    /// died, or stopped reading (stopped or wedged for 2 s: pkit never
    /// blocks on it, it gives it up), and when the system refused this
    /// group's registration for 2 s (a non-root user's descriptors in
    /// flight, `ETOOMANYREFS`: see docs/gotchas.md). A process group is
    /// registered when its first process starts;
    /// before that this says whether it will be. False once the group is
    /// closed: the close releases the guard.
    ///
    /// On Windows the guard is the Job Object's `KILL_ON_JOB_CLOSE`: the
    /// owner's death closes its handle to the job, and the kernel ends
    /// every process in it, adopted ones included. Every group's job is
    /// created with it (a group is not made without it), so this is true
    /// for every open group, one built with
    /// [`owner_death_guard(false)`](crate::GroupBuilder::owner_death_guard)
    /// too, and false once the group is closed, as on Unix.
    pub fn guarded(&self) -> bool {
        self.container.guarded()
    }

    /// The resource caps in force and what enforces each (empty without
    /// caps).
    pub fn limits(&self) -> Vec<LimitInfo> {
        self.container.limit_info()
    }

    /// Ends the group gracefully: SIGTERM to every process in it (a nested
    /// pkit's group through its owner alone, as for [`signal`](Self::signal)),
    /// up to `grace` for them to exit, then SIGKILL to whatever is left,
    /// nested groups included; then the container is removed. The group
    /// can't start processes afterwards. Right after the signal a group
    /// [`suspend`](Self::suspend)ed is resumed (thawed, SIGCONT, or on
    /// Windows each process it suspended resumed) and no longer suspended:
    /// its programs get their grace to handle the signal. On Unix the group
    /// is also continued (SIGCONT, as timeout(1) sends).
    /// On Windows each started process's console group gets a
    /// `CTRL_BREAK_EVENT` for SIGTERM (console programs only), then the
    /// grace, then the job is terminated; where no break can be sent (no
    /// console, GUI programs only, Wine) it is terminated at once, every
    /// process counted as killed, and nothing is resumed.
    ///
    /// Any `grace` is accepted: one too long for the clock
    /// (`Duration::MAX`) waits for the processes without bound.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when listing, signalling or waiting for the group's
    /// processes, or closing the group, fails. A signal the mechanism can't send (Windows
    /// without a console) is not an error: the processes are terminated and counted as killed.
    /// Nor is a member that refuses the signal (`EPERM`: a process of another user that this
    /// owner may not signal): the others keep their grace, and it is killed with whatever is
    /// left once the grace is over (counted as signalled, and killed).
    /// [`Error::Unsupported`](crate::Error::Unsupported) where the group's processes can't be
    /// listed at all (OpenBSD, NetBSD, DragonFly).
    pub async fn shutdown(&self, grace: Duration) -> Result<ShutdownReport> {
        self.shutdown_with(Signal::Term, grace, std::future::pending())
            .await
    }

    /// After a shutdown's `signal`, SIGCONT to the group (as timeout(1)
    /// sends after its signal): a member stopped by SIGSTOP or a terminal
    /// stop would otherwise hold its signal unhandled for the whole grace
    /// and then be killed. A group the caller suspended is resumed (thawed,
    /// or SIGCONT), and no longer suspended. Not after signal 0, a stop
    /// signal or SIGKILL (as a started process's own end). On Windows,
    /// after a break (SIGTERM, SIGINT), a suspended group's processes are
    /// resumed and it is no longer suspended; Windows has no SIGCONT to
    /// send (what [`Signal::Stop`] holds stays held until [`Signal::Cont`]).
    async fn continue_stopped(&self, signal: Signal) {
        #[cfg(unix)]
        if signal.continued_after() {
            // Checked and resumed under the container's own lock: a
            // suspend racing this comes wholly before it or after.
            if self.is_suspended() {
                let _ = self.container.thaw_suspended();
            }
            if !self.is_suspended() {
                let _ = self.container.signal_async(Signal::Cont.as_raw()).await;
            }
        }
        #[cfg(not(unix))]
        if signal.continued_after() {
            let _ = self.container.thaw_suspended();
        }
    }

    /// [`shutdown`](Self::shutdown) with `signal` in place of SIGTERM (a
    /// timed-out run's [`Command::timeout_signal`]). A `grace` too long for
    /// the clock waits without bound. The grace ends early when `cut`
    /// completes (another bound of the run passed: its cancel token, or
    /// its timeout during a cancel's grace): what is left is killed then.
    pub(crate) async fn shutdown_with(
        &self,
        signal: Signal,
        grace: Duration,
        cut: impl std::future::Future<Output = ()>,
    ) -> Result<ShutdownReport> {
        let began = Instant::now();
        let mut cut = std::pin::pin!(cut);
        let mut members = self.members("shutdown")?;
        // And a started process moved out of the cgroup: signalled with
        // the rest (`signal_started`), it has the same grace.
        members.extend(self.container.started_outside(&members));
        let scripted = self.scripted.count();
        // Signalled and still there after the grace; killed unsignalled.
        let (mut remaining, mut unasked) = (0, 0);
        if scripted > 0 {
            self.scripted.signal(signal.as_raw());
            let grace = grace.min(crate::timing::NO_DEADLINE);
            remaining += tokio::select! {
                left = self.scripted.wait_until(Instant::now() + grace) => left,
                () = cut.as_mut() => self.scripted.wait_until(Instant::now()).await,
            };
        }
        if !members.is_empty() {
            // The cgroup's freeze around the pass is awaited: this thread
            // runs other tasks meanwhile (see `signal_async`).
            match self.container.signal_async(signal.as_raw()).await {
                // No such signal here (Windows: no console for a break, or
                // a signal it lacks): straight to termination, unsignalled.
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => unasked = members.len(),
                Err(e) if e.kind() != std::io::ErrorKind::PermissionDenied => {
                    return Err(Error::io("signalling the group", e))
                }
                // Sent; or refused by a member this owner may not signal
                // (EPERM: another user's process), which keeps no one else
                // from their grace: the close kills it with the rest.
                _ => {
                    self.continue_stopped(signal).await;
                    let grace = grace.min(crate::timing::NO_DEADLINE);
                    let left = tokio::select! {
                        left = self.container.wait_members(&members, Instant::now() + grace) => left,
                        // Those still there now are killed by the close.
                        () = cut.as_mut() => self.container.wait_members(&members, Instant::now()).await,
                    };
                    remaining += left.map_err(|e| Error::io("waiting for the group", e))?;
                }
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
            self.log_name.as_deref(),
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
    /// a background thread and is never this call's error. A start racing
    /// the close is refused or has its process killed: the close kills
    /// again until every start under way has returned, so a child born or
    /// placed after its first kill (one stopped before its `exec`, say)
    /// can't hold it up (one case is left: docs/gotchas.md, "A stop that
    /// catches a start").
    ///
    /// Under cgroup v2 a group found empty (every process exited already,
    /// none killed), without caps, name or sub-cgroups, keeps its directory
    /// for the next group instead (see [`release_spare_cgroups`](crate::release_spare_cgroups)):
    /// that one then costs no `mkdir`, and this close no `rmdir`. The
    /// closed group acts on that directory no more: its methods, and its
    /// started processes' [`kill_tree`](crate::RunningProcess::kill_tree),
    /// reach nothing of the next group's. The same holds when a group is
    /// dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when killing the tree or waiting for it to be gone
    /// fails. A directory that can't be removed once the tree is gone is never this call's
    /// error.
    pub async fn close(&self) -> Result<()> {
        let began = Instant::now();
        self.scripted.signal(Signal::Kill.as_raw());
        self.container
            .close()
            .await
            .map_err(|e| self.refused("close", "closing the group".into(), e))?;
        log::group_closed(self.log_name.as_deref(), self.mechanism(), began.elapsed());
        Ok(())
    }

    /// An OS error as [`Error::Io`], or as [`Error::Unsupported`] when the
    /// mechanism can't do `operation` at all (Windows has no signals but
    /// Kill, the console's break, and Stop and Cont; OpenBSD, NetBSD and DragonFly no
    /// process-table listing).
    pub(crate) fn refused(
        &self,
        operation: &'static str,
        context: String,
        e: std::io::Error,
    ) -> Error {
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
    /// frozen; the processes can't tell); a process group gets SIGSTOP
    /// (on Linux the suspend returns once every thread of every member
    /// has stopped, or ended, or is blocked in the kernel outside a fork
    /// of its own, such as on a disk read or at a `vfork`'s wait for its
    /// child; up to 5 s: a member's fork is over then, and its child is
    /// resumed with the rest, where before it could stay stopped. Where
    /// a blocked thread is can be read only with ptrace rights over its
    /// process: an owner that is not root can't tell a member that is not
    /// dumpable, such as one that changed its ids, blocked at a `vfork`'s
    /// wait from one blocked inside a fork, and its suspend waits the
    /// whole 5 s while such a member waits for its stopped `vfork` child,
    /// as one that lands in its `posix_spawn` can leave it); a
    /// Job Object's processes are each suspended (`NtSuspendProcess`, the
    /// job listed again until none is left running; a process adopted
    /// meanwhile is suspended too): the threads each has then, while a
    /// thread created later, such as the one Windows starts in a console
    /// process to handle a Ctrl-Break, runs. While suspended, [`start`](Self::start)
    /// is refused (an [`Error::Spawn`] of kind `WouldBlock`), and
    /// [`kill`](Self::kill) kills without resuming. An end that gives a
    /// grace resumes the group right after its signal, as timeout(1)
    /// does, so the programs can handle it (a frozen or stopped one would
    /// hold it for the whole grace and then be killed): a
    /// [`shutdown`](Self::shutdown), and a started process's end
    /// with a grace ([`RunningProcess::shutdown`](crate::RunningProcess::shutdown),
    /// its timeout or cancel token). The whole group runs again then, and
    /// is no longer suspended. (On Windows that signal is a
    /// `CTRL_BREAK_EVENT`: where none can be sent, the end is a termination
    /// at once, which resumes nothing, as a kill.) Suspending a suspended
    /// group does nothing. A closed group has nothing left to stop: it is
    /// only marked suspended, and this succeeds.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`](crate::Error::Unsupported) where the OS can't suspend (a
    /// Windows without `NtSuspendProcess`); [`Error::Io`](crate::Error::Io) when freezing
    /// the cgroup, SIGSTOP to the process group, or suspending a process fails (on
    /// Windows the processes already suspended are resumed first).
    pub async fn suspend(&self) -> Result<()> {
        self.container
            .suspend()
            .await
            .map_err(|e| self.refused("suspend", "suspending the group".into(), e))
    }

    /// Lets a suspended group run again (thaw, SIGCONT, or on Windows each
    /// process [`suspend`](Self::suspend) suspended resumed once: one
    /// suspended by other means as well, such as its parent, stays
    /// suspended, and one that joined the job since, such as a child its
    /// parent created suspended, is left as it is). A closed group's mark
    /// is lifted, and nothing resumed. A group not suspended is left as it
    /// is: a process group gets no SIGCONT (as an unfrozen cgroup's thaw
    /// continues nothing), so this never lifts a [`Signal::Stop`](crate::Signal::Stop)
    /// sent to the group or a stop by someone else.
    ///
    /// A member someone else had stopped (SIGSTOP) before the suspend stays
    /// stopped, as under a cgroup's thaw: a process group's suspend notes
    /// the members stopped then (on Linux: elsewhere the resume's SIGCONT
    /// continues them too), and its resume then continues the others one
    /// by one. A member stopped by someone else while the group is
    /// suspended (or during the suspend itself) is continued under a
    /// process group: the two stops can't be told apart.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`](crate::Error::Unsupported) where the OS can't resume (a
    /// Windows without `NtResumeProcess`); [`Error::Io`](crate::Error::Io) when thawing
    /// the cgroup, SIGCONT to the process group, or resuming a process fails.
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
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`](crate::Error::Unsupported) when the mechanism can't take the
    /// process (a process group, for anything but a child of this process that has not called
    /// `exec`, and while the group's first process is stopped before its `exec`);
    /// [`Error::Io`](crate::Error::Io) when the OS refuses the move (no such process,
    /// no permission), and once a close, shutdown or drop of the group has begun ("the group
    /// has been closed": the process is left where it was). A move racing a close either
    /// lands first, and the process is ended with the group, or is refused so.
    ///
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for this process
    /// itself (its pid, or the id of one of its threads) and for its
    /// owner-death guard ([`guard_pids`](crate::guard_pids)): the group's
    /// end would kill its owner, or the guard of every group (none is
    /// started again). Also when whether `pid` is one of this process's
    /// threads cannot be told: a sandbox (a seccomp filter, an LSM) refuses
    /// the kernel's check and `/proc` does not list this process's threads.
    pub fn adopt(&self, pid: u32) -> Result<()> {
        let own = crate::sys::is_this_process(pid).map_err(|e| {
            Error::InvalidInput(format!(
                "pid {pid} may be one of this process's threads, which a group that adopted it \
                 would kill when it ends: the kernel refused the check ({e}) and /proc does not \
                 list this process's threads"
            ))
        })?;
        let refused = if own {
            Some("this process")
        } else if crate::sys::guard_pids().contains(&pid) {
            Some("this process's owner-death guard")
        } else {
            None
        };
        if let Some(what) = refused {
            return Err(Error::InvalidInput(format!(
                "pid {pid} is {what}: a group that adopted it would kill it when it ends"
            )));
        }
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
    ///
    /// A name is what the OS shows now: a process started or adopted a
    /// moment ago may still show the name of the thread that started it
    /// (Linux renames a process late in its `exec`, after the starting
    /// thread may already run on), so poll for a name you expect.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when the group's member list (`cgroup.procs`, or the
    /// process table) can't be read; [`Error::Unsupported`](crate::Error::Unsupported) where
    /// the process table can't be listed at all (OpenBSD, NetBSD, DragonFly).
    pub fn processes(&self) -> Result<Vec<ProcessInfo>> {
        self.container
            .processes()
            .map_err(|e| self.refused("processes", "listing the group's processes".into(), e))
    }

    /// A snapshot of the group's resource use.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when the group's accounting (the cgroup's stat files, or
    /// the members' `/proc` entries) can't be read; [`Error::Unsupported`](crate::Error::Unsupported)
    /// where the process table can't be listed at all (OpenBSD, NetBSD, DragonFly).
    pub fn stats(&self) -> Result<Stats> {
        self.container
            .stats()
            .map_err(|e| self.refused("stats", "reading the group's stats".into(), e))
    }

    pub(crate) fn oom_kills(&self) -> Option<u64> {
        self.container.oom_kills()
    }

    /// The pids of the live processes in the group (under cgroup v2, in
    /// its cgroup and every cgroup below it; under process groups, in its
    /// process group, and a first process that left it and runs on: see
    /// `docs/gotchas.md`).
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when the group's member list (`cgroup.procs`, or the
    /// process table) can't be read; [`Error::Unsupported`](crate::Error::Unsupported) where
    /// the process table can't be listed at all (OpenBSD, NetBSD, DragonFly).
    pub fn pids(&self) -> Result<Vec<u32>> {
        Ok(self
            .members("pids")?
            .into_iter()
            .map(|p| p as u32)
            .collect())
    }

    /// The members, for `operation`.
    fn members(&self, operation: &'static str) -> Result<Vec<i32>> {
        self.container
            .members()
            .map_err(|e| self.refused(operation, "listing the group's processes".into(), e))
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
    fn close(&self) -> crate::future::BoxFuture<'_, Result<()>> {
        Box::pin(Group::close(self))
    }
}

impl Drop for Group {
    /// The container's own drop kills the tree; this only says so in the
    /// log when the group was still open.
    fn drop(&mut self) {
        self.scripted.signal(Signal::Kill.as_raw());
        // Still open (suspended counts as open): no close or teardown began.
        if !self.container.is_closed() {
            log::group_dropped(self.log_name.as_deref(), self.mechanism());
        }
    }
}
