//! Group control beyond kill: suspend, resume, adopt, listing members.

use std::io;
#[cfg(unix)]
use std::sync::atomic::Ordering;

#[cfg(unix)]
use super::container::{Container, Kind};
#[cfg(unix)]
use super::unix::ptable;

/// Why an operation could not be done, for the layer above to type.
#[derive(Debug)]
pub(crate) enum ControlError {
    /// The mechanism can't do this at all, or not for this process.
    Unsupported(String),
    /// The OS refused.
    Os(io::Error),
}

impl From<io::Error> for ControlError {
    fn from(e: io::Error) -> Self {
        ControlError::Os(e)
    }
}

/// A live member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: u32,
    /// Its command name (`/proc/<pid>/comm`), when readable.
    pub name: Option<String>,
}

#[cfg(unix)]
impl Container {
    /// Stops every process: cgroup v2 freezes the cgroup and waits until
    /// the kernel reports `frozen 1`; a process group gets SIGSTOP (its
    /// members already stopped are noted first, for the resume to leave
    /// them so) and, on Linux, waits until every thread of its members
    /// has stopped (see `container_suspend.rs`). A group suspended
    /// already gets neither (the wait is still done).
    ///
    /// From here until [`resume`](Self::resume), starts are refused (see
    /// [`spawn`](Container::spawn)): the flag is set under the lifecycle
    /// lock, so a start racing this either placed its child before (which
    /// is then frozen or stopped with the rest) or is refused. A start
    /// whose child was stopped before its `exec` is waited for until that
    /// child is continued (a signal pass still can: see `lifecycle`) or
    /// ended.
    pub(crate) async fn suspend(&self) -> io::Result<()> {
        let (stopped, closed) = {
            let _state = self.lifecycle.write().unwrap_or_else(|e| e.into_inner());
            let _freezing = self.freezing.lock().unwrap_or_else(|e| e.into_inner());
            let was = self.suspended.swap(true, Ordering::AcqRel);
            let closed = self.torn_down.load(Ordering::Acquire);
            // Closed (a close has begun: it marks the group closed before
            // it waits for this lock): nothing is left to stop, and the
            // cgroup may be gone (see `closed`).
            let stopped = match &self.kind {
                _ if closed => Ok(()),
                // Suspended already: frozen by that suspend, which set the
                // flag under these locks (a thaw clears it under
                // `freezing`). Nothing to do, as for a process group (a
                // write that failed here cleared the flag of a group left
                // frozen).
                #[cfg(target_os = "linux")]
                Kind::Cgroup(_) if was => Ok(()),
                #[cfg(target_os = "linux")]
                Kind::Cgroup(cg) => super::fault::io_check(super::fault::Point::SuspendStop)
                    .and_then(|()| cg.write_freeze(true)),
                Kind::Pgroup { .. } => self.stop_pgroup(was),
            };
            if stopped.is_err() {
                // Not frozen (nor stopped): don't claim it is. Under the
                // same locks, so no other suspend finds the flag set
                // meanwhile and takes the group for suspended.
                self.suspended.store(false, Ordering::Release);
            }
            (stopped, closed)
        };
        if stopped.is_err() {
            // A test's hold (fault injection; nothing otherwise).
            super::fault::pause(super::fault::Point::SuspendFailed);
        }
        stopped?;
        if closed {
            return Ok(());
        }
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => cg.wait_frozen().await,
            Kind::Pgroup { .. } => {
                self.wait_stopped().await;
                Ok(())
            }
        }
    }

    /// Lets a suspended group run again. The group is thawed before starts
    /// are allowed again, so no start lands in a still-frozen cgroup. A
    /// closed group (a close has begun) has nothing left to resume, and
    /// its cgroup may be gone: nothing is done.
    ///
    /// The lifecycle lock's shared side is enough (a suspend holds the
    /// exclusive one; a close marks the group closed before it waits for
    /// the exclusive side, and removes the cgroup only after), with
    /// `freezing` against a signal pass's freeze and thaw.
    pub(crate) async fn resume(&self) -> io::Result<()> {
        let _state = self.lifecycle.read().unwrap_or_else(|e| e.into_inner());
        let _freezing = self.freezing.lock().unwrap_or_else(|e| e.into_inner());
        self.thaw_held()
    }

    /// Lets a group the caller suspended run again after an end's signal
    /// went to it (or to a started process's subtree in it), as
    /// [`resume`](Self::resume) does: the signal is then handled, not held
    /// through the grace. Nothing for a group not suspended, or closed.
    ///
    /// It sends SIGCONT (a thaw or a process group's), so, like a signal
    /// pass, it takes only `freezing`, never `lifecycle` (see there).
    /// Nor does it need close's: a cgroup goes to the pool of spares only
    /// unfrozen, so after the thaw that marked the group not suspended
    /// (under `freezing`, which a later thaw then finds), and the write
    /// goes through the directory's tenure, which the hand-over waits for
    /// and which refuses every write after it (`linux/tenure.rs`; the
    /// `races` test `a_thaw_racing_close_reaches_no_pooled_or_later_group`).
    pub(crate) fn thaw_suspended(&self) -> io::Result<()> {
        let _freezing = self.freezing.lock().unwrap_or_else(|e| e.into_inner());
        if !self.suspended.load(Ordering::Acquire) {
            return Ok(());
        }
        self.thaw_held()
    }

    /// Thaws the cgroup (or continues the process group, when suspended:
    /// a resume without a suspend leaves its members as they are, as an
    /// unfrozen cgroup's thaw does), unless the group is torn down, and
    /// marks it not suspended. The caller holds `freezing`.
    fn thaw_held(&self) -> io::Result<()> {
        let thawed = match &self.kind {
            _ if self.torn_down.load(Ordering::Acquire) => Ok(()),
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => cg.write_freeze(false),
            // Not suspended: its stops are someone else's (see there).
            Kind::Pgroup { .. } if !self.suspended.load(Ordering::Acquire) => Ok(()),
            Kind::Pgroup { .. } => self.continue_pgroup(),
        };
        self.suspended.store(false, Ordering::Release);
        thawed
    }

    pub(crate) fn is_suspended(&self) -> bool {
        self.suspended.load(Ordering::Acquire)
    }

    /// Moves the running process `pid` into the container.
    ///
    /// A cgroup takes any process this one may move (written to
    /// `cgroup.procs`; its future children follow). A process group takes
    /// only a child of this process that has not yet called `exec` and is in
    /// this session (the rules of `setpgid(2)`), and only into a group that
    /// already has a process: in practice, hardly ever.
    pub(crate) fn adopt(&self, pid: i32) -> Result<(), ControlError> {
        if pid <= 0 {
            return Err(ControlError::Os(io::Error::from_raw_os_error(libc::ESRCH)));
        }
        // As a start's placement: a close marks the group closed, then
        // waits for the write side, so a move either checks after the mark
        // and is refused, or holds the shared side and lands before the
        // close's kill (and the process is killed with the rest). Unguarded, a move landing
        // after the close's kill ran on in a cgroup nobody would end, and
        // one after its removal failed with ENOENT.
        let _placing = self.lifecycle.read().unwrap_or_else(|e| e.into_inner());
        if self.torn_down.load(Ordering::Acquire) {
            return Err(ControlError::Os(io::Error::other(
                "the group has been closed",
            )));
        }
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => {
                // In the group's own directory, which no started process
                // claims from here on, unless the first started process
                // lives there: its subtree would then include this one.
                // Only while the directory is the group's: once the closed
                // group's directory went to the pool, it (and a leaf made
                // in it) is another group's.
                cg.tenure().during_or_closed(|| {
                    if self.leaves.use_dir() {
                        cg.add_process(pid)
                    } else {
                        super::linux::leaf::adopt_into_leaf(cg.path(), &self.leaves, pid)
                    }
                })?;
                for (_, g) in &self.limits.v1 {
                    g.add_process(pid)?;
                }
                Ok(())
            }
            Kind::Pgroup { .. } => {
                use super::container_pgroup::Joinable;
                let pgid = match self.joinable() {
                    Joinable::Pgid(pgid) => pgid,
                    Joinable::Empty => {
                        return Err(ControlError::Unsupported(
                            "a process group can adopt only once it has a process of its own \
                             (its id is that process's pid)"
                                .into(),
                        ))
                    }
                    Joinable::FirstStopped => {
                        return Err(ControlError::Unsupported(
                            "the process group's first process is stopped before it executed \
                             its program (it may never start)"
                                .into(),
                        ))
                    }
                };
                let to = rustix::process::Pid::from_raw(pid);
                let group = rustix::process::Pid::from_raw(pgid);
                match rustix::process::setpgid(to, group) {
                    Ok(()) => Ok(()),
                    Err(rustix::io::Errno::ACCESS) => Err(ControlError::Unsupported(
                        "setpgid(2) refuses a child that has already called exec".into(),
                    )),
                    Err(rustix::io::Errno::SRCH) => Err(ControlError::Unsupported(
                        "setpgid(2) moves only this process's own children".into(),
                    )),
                    Err(rustix::io::Errno::PERM) => Err(ControlError::Unsupported(
                        "setpgid(2) moves only processes in this session".into(),
                    )),
                    Err(e) => Err(ControlError::Os(e.into())),
                }
            }
        }
    }

    pub(crate) fn limit_info(&self) -> Vec<super::LimitInfo> {
        self.limits.info.clone()
    }

    /// The live members, with their command names where readable.
    pub(crate) fn processes(&self) -> io::Result<Vec<ProcessInfo>> {
        Ok(self
            .members()?
            .into_iter()
            .map(|pid| ProcessInfo {
                pid: pid as u32,
                name: ptable::comm(pid),
            })
            .collect())
    }
}
