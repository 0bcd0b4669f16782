//! Starting a child inside a group's container: where and how it is
//! placed, and the checks that make a start atomic with `close` and
//! `suspend`.

use std::fmt;
#[cfg(unix)]
use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{AsRawFd, RawFd};
#[cfg(unix)]
use std::sync::atomic::Ordering;
#[cfg(unix)]
use std::sync::Arc;

#[cfg(unix)]
use super::container::{Container, GuardLink, Kind};
#[cfg(unix)]
use super::guard;
#[cfg(target_os = "linux")]
use super::host::{birth_kill_is_owners, clone3_refusal, clone3_status, mark_clone3_refused};
#[cfg(target_os = "linux")]
use super::linux::{child::PidfdChild, leaf::Leaf, spawn};
#[cfg(target_os = "linux")]
use super::place_guard::guard_session;
#[cfg(unix)]
use super::place_guard::register_pgroup;
#[cfg(unix)]
use super::tree::ProcTree;
#[cfg(unix)]
use super::unix::child::PortableChild;
#[cfg(unix)]
use super::unix::ptable::Scope;
#[cfg(unix)]
use super::{ChildHandle, SpawnError, SpawnSpec};
#[cfg(unix)]
use crate::sys::ChildStep;

/// How children are put into their container.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placement {
    /// Born inside the cgroup: `clone3(CLONE_INTO_CGROUP)`.
    Clone3IntoCgroup,
    /// The child writes itself into the cgroup just before `exec`, because
    /// `clone3` is refused here (the reason is given).
    JoinBeforeExec {
        /// Why clone3 could not be used, e.g. `ENOSYS: ...`.
        reason: String,
    },
    /// The child starts (or joins) the group's process group at spawn.
    ProcessGroup,
    /// The child is created suspended, assigned to the group's Job Object,
    /// then resumed: it runs nothing outside the job (Windows).
    SuspendedIntoJob,
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Clone3IntoCgroup => {
                f.write_str("placed in the cgroup at birth by a vfork-style clone3(CLONE_INTO_CGROUP)")
            }
            Placement::JoinBeforeExec { reason } => write!(
                f,
                "each child (a vfork-style clone) joins the cgroup itself before exec (clone3 refused: {reason})"
            ),
            Placement::ProcessGroup => f.write_str("each child joins the group's process group"),
            Placement::SuspendedIntoJob => {
                f.write_str("each child is created suspended, assigned to the job, then resumed")
            }
        }
    }
}

#[cfg(unix)]
impl Container {
    /// Why a start must be refused now, if it must (see
    /// [`spawn`](Self::spawn)): the group is closed, or suspended (an
    /// error of kind `WouldBlock`: starting would block until `resume`).
    pub(crate) fn refusal(&self) -> Option<io::Error> {
        if self.is_closed() {
            return Some(io::Error::other("the group has been closed"));
        }
        if self.suspended.load(Ordering::Acquire) {
            return Some(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the group is suspended: resume it to start processes",
            ));
        }
        None
    }

    /// Whether a close or teardown has begun (no start is taken any more):
    /// [`refusal`](Self::refusal)'s first case, without building its error.
    pub(crate) fn is_closed(&self) -> bool {
        self.torn_down.load(Ordering::Acquire)
    }

    /// How children are put into the container.
    pub(crate) fn placement(&self) -> Placement {
        match self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => match clone3_status() {
                Ok(()) => Placement::Clone3IntoCgroup,
                Err(e) => Placement::JoinBeforeExec {
                    reason: clone3_refusal(e),
                },
            },
            Kind::Pgroup { .. } => Placement::ProcessGroup,
        }
    }

    /// Starts `spec` inside the container.
    ///
    /// Refused (never blocking) when the group is closed or closing, or
    /// suspended: a child placed in a frozen cgroup would freeze before it
    /// can `exec`, and the vfork-style spawn would wait for it, blocking
    /// this thread until `resume`. The check and the placement hold the
    /// lifecycle lock shared, so they are atomic with `close` and
    /// `suspend` (which take it exclusively). A child stopped before its
    /// `exec` (by the group's SIGSTOP) holds its start until it is
    /// continued, which a signal pass still can (see `lifecycle`), or
    /// ended, which a `close` or `kill` does.
    ///
    /// `own_tree`: give the child a subtree of its own, which can be ended
    /// without ending the rest of the group (see [`ProcTree`]); under
    /// cgroup v2 the child is then born in a new leaf sub-cgroup of the
    /// group's, unless it is the group's first (see `Leaves`): that one is
    /// born in the group's cgroup itself, as is a child without `own_tree`
    /// (a verb's private group), which costs no extra directory.
    ///
    /// A start that fails for want of memory under a memory cap says so.
    pub(crate) fn spawn(
        &self,
        spec: &SpawnSpec,
        own_tree: bool,
    ) -> Result<(Arc<ChildHandle>, Option<ProcTree>), SpawnError> {
        self.spawn_placed(spec, own_tree).map_err(|e| match e {
            SpawnError::Exec(e) => SpawnError::Exec(self.limits.explain_spawn_failure(e)),
            SpawnError::Os(e) => SpawnError::Os(self.limits.explain_spawn_failure(e)),
            SpawnError::Step(step, e) => {
                SpawnError::Step(step, self.limits.explain_spawn_failure(e))
            }
            other => other,
        })
    }

    fn spawn_placed(
        &self,
        spec: &SpawnSpec,
        own_tree: bool,
    ) -> Result<(Arc<ChildHandle>, Option<ProcTree>), SpawnError> {
        let _placing = self.lifecycle.read().unwrap_or_else(|e| e.into_inner());
        if let Some(refusal) = self.refusal() {
            return Err(SpawnError::Os(refusal));
        }
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => {
                let leaf = match (own_tree, self.leaves.claim_dir()) {
                    (true, false) => {
                        Some(Leaf::create(cg.path(), &self.leaves).map_err(SpawnError::Os)?)
                    }
                    _ => None,
                };
                // The subtree of a started child: its leaf, or the group's
                // directory less the later children's leaves.
                let tree = |leaf: Option<Leaf>, root: &Arc<ChildHandle>| match (own_tree, leaf) {
                    (_, Some(leaf)) => Some(ProcTree::Leaf(leaf, root.clone())),
                    (true, None) => Some(ProcTree::GroupDir {
                        dir: cg.path().to_path_buf(),
                        leaves: self.leaves.clone(),
                        tenure: cg.tenure().clone(),
                        root: root.clone(),
                    }),
                    (false, None) => None,
                };
                let join: Vec<RawFd> = self
                    .limits
                    .v1
                    .iter()
                    .map(|(_, g)| g.procs_fd().as_raw_fd())
                    .collect();
                // clone3's refusal, taken for every later start only once
                // the next rung has placed this child (see below).
                let mut refused = None;
                if clone3_status().is_ok() {
                    let held = match &leaf {
                        Some(_) => None,
                        None => Some(cg.dir().map_err(SpawnError::Os)?),
                    };
                    let into = leaf.as_ref().map_or_else(
                        || std::os::fd::AsFd::as_fd(&**held.as_ref().expect("held without a leaf")),
                        |l| l.dir_fd(),
                    );
                    let kills = || self.kills();
                    match spawn::spawn_into_cgroup(spec, into, &join, &kills) {
                        Ok((pid, pidfd)) => {
                            let child = Arc::new(ChildHandle::Pidfd(PidfdChild::new(pid, pidfd)));
                            self.note_started(&child);
                            let tree = tree(leaf, &child);
                            return Ok((child, tree));
                        }
                        Err(SpawnError::Refused(e)) => {
                            let errno = e.raw_os_error().unwrap_or(libc::ENOSYS);
                            refused = Some(errno);
                            if errno == spawn::CLONE3_BIRTH_KILLED {
                                // The kernel's kill at birth: this child joins by the next rung.
                                let spare = leaf.is_none() && cg.note_birth_kill();
                                refused = birth_kill_is_owners(spare).then_some(errno);
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                // The next rung: the child writes itself into the cgroup.
                let procs = match &leaf {
                    Some(l) => l.open_procs_for_join(),
                    None => cg.open_procs_for_join(),
                }
                .map_err(SpawnError::Os)?;
                let mut fds = join;
                fds.push(procs.as_raw_fd());
                let (pid, pidfd) = spawn::spawn_joining(spec, &fds, None, None, None)?;
                // Some of clone3's refusals are the target cgroup's (a leaf
                // that can take no process, EOPNOTSUPP, once a program made
                // the group's directory a threaded subtree's root): this
                // rung's join then fails alike, and clone3 stays in use.
                if let Some(errno) = refused {
                    tracing::warn!(
                        target: "pkit",
                        reason = %clone3_refusal(errno),
                        "clone3 refused; children will join their cgroup before exec"
                    );
                    mark_clone3_refused(errno);
                }
                let child = Arc::new(ChildHandle::Pidfd(PidfdChild::new(pid, pidfd)));
                self.note_started(&child);
                let tree = tree(leaf, &child);
                Ok((child, tree))
            }
            #[cfg(target_os = "linux")]
            Kind::Pgroup {
                leader,
                portable: false,
                ..
            } => loop {
                // The leader's lock is held across the spawn only for a new
                // group's first process (so that no second start leads
                // another), which no signal of the group can reach yet. A
                // child joining the group is in reach from its `setpgid`
                // on: stopped there by the group's SIGSTOP, its start waits
                // for the SIGCONT, which must not wait for this lock.
                let mut held = leader.lock().unwrap_or_else(|e| e.into_inner());
                pty_session_check(spec, held.as_deref(), self.leader_started_session())?;
                let Some(current) = held.clone() else {
                    let handle = self.spawn_leader(spec)?;
                    *held = Some(handle.clone());
                    self.note_leader_session(spec.setup.setsid);
                    let scope = Scope::new(handle.pid(), spec.setup.setsid);
                    return Ok((handle.clone(), pgroup_tree(own_tree, handle, scope)));
                };
                drop(held);
                let pgid = current.pid();
                match spawn::spawn_joining(spec, &[], Some(pgid), None, None) {
                    // The group's process group is gone: its leader has
                    // ended (reaped by the kernel where this process
                    // ignores SIGCHLD, or after it had left the group: no
                    // zombie held the group) or has left it and runs
                    // elsewhere, and no member is left in this session
                    // (EPERM). The next turn's child leads a new one (or
                    // joins the one another start made meanwhile); a leader
                    // that runs on stays within reach (`retire_leader`).
                    Err(SpawnError::Step(ChildStep::ProcessGroup, e))
                        if e.raw_os_error() == Some(libc::EPERM) && self.leader_left(&current) =>
                    {
                        self.retire_if_leader(leader, &current);
                    }
                    other => {
                        let (pid, pidfd) = other?;
                        let handle = Arc::new(ChildHandle::Pidfd(PidfdChild::new(pid, pidfd)));
                        return Ok((
                            handle.clone(),
                            pgroup_tree(own_tree, handle, Scope::Pgroup(pgid)),
                        ));
                    }
                }
            },
            // As above, with the leader's lock held only for a first process.
            Kind::Pgroup { leader, .. } => loop {
                let mut held = leader.lock().unwrap_or_else(|e| e.into_inner());
                pty_session_check(spec, held.as_deref(), self.leader_started_session())?;
                let Some(current) = held.clone() else {
                    let pid = self.spawn_portable(spec, 0)?;
                    let handle = Arc::new(ChildHandle::Portable(PortableChild::new(pid)));
                    *held = Some(handle.clone());
                    self.note_leader_session(spec.setup.setsid);
                    self.register_leader(&handle);
                    let scope = Scope::new(pid, spec.setup.setsid);
                    return Ok((handle.clone(), pgroup_tree(own_tree, handle, scope)));
                };
                drop(held);
                let pgid = current.pid();
                match self.spawn_portable(spec, pgid) {
                    Err(SpawnError::Step(ChildStep::ProcessGroup, e))
                        if e.raw_os_error() == Some(libc::EPERM) && self.leader_left(&current) =>
                    {
                        self.retire_if_leader(leader, &current);
                    }
                    other => {
                        let handle = Arc::new(ChildHandle::Portable(PortableChild::new(other?)));
                        return Ok((
                            handle.clone(),
                            pgroup_tree(own_tree, handle, Scope::Pgroup(pgid)),
                        ));
                    }
                }
            },
        }
    }

    /// Retires `current` (see `retire_leader`) if it still leads the
    /// group: another start may have retired it, and made a new leader,
    /// while this one was spawning.
    fn retire_if_leader(
        &self,
        leader: &std::sync::Mutex<Option<Arc<ChildHandle>>>,
        current: &Arc<ChildHandle>,
    ) {
        let mut held = leader.lock().unwrap_or_else(|e| e.into_inner());
        if held.as_ref().is_some_and(|l| Arc::ptr_eq(l, current)) {
            self.retire_leader(&mut held);
        }
    }

    /// Spawns a new process group's leader. The group's registration with
    /// the owner-death guard is booked first and sent by the leader itself
    /// before it execs (see `guard::LeaderRegistration`): an owner killed
    /// at any point of the start leaves nothing running.
    #[cfg(target_os = "linux")]
    fn spawn_leader(&self, spec: &SpawnSpec) -> Result<Arc<ChildHandle>, SpawnError> {
        let pending = matches!(*self.guard_link(), GuardLink::Pending);
        let g = pending.then(guard::get).and_then(Result::ok);
        // A refusal here (a failed guard, a full table) is met again by
        // `register_leader` below, which reports it.
        let reg = g.and_then(|g| g.prepare_leader(guard_session(spec.setup.setsid)).ok());
        // Published while its start waits for its exec (see `birth.rs`).
        let birth = self.begin_birth();
        let spawned = spawn::spawn_joining(spec, &[], Some(0), reg.as_ref(), birth.as_deref());
        self.end_birth();
        let (pid, pidfd) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                if let (Some(g), Some(reg)) = (g, reg) {
                    g.abandon_leader(reg);
                }
                return Err(e);
            }
        };
        let handle = Arc::new(ChildHandle::Pidfd(PidfdChild::new(pid, pidfd)));
        match (g, reg, handle.pidfd()) {
            (Some(g), Some(reg), Some(fd)) => {
                let mut link = self.guard_link();
                if matches!(*link, GuardLink::Pending) {
                    *link = match g.complete_leader(reg, fd, pid) {
                        Ok(t) => GuardLink::On(t),
                        Err(why) => {
                            tracing::warn!(target: "pkit", reason = %why, "group not covered by the owner-death guard");
                            GuardLink::Unavailable(why)
                        }
                    };
                } else {
                    drop(link);
                    g.abandon_leader(reg);
                }
            }
            (g, reg, _) => {
                if let (Some(g), Some(reg)) = (g, reg) {
                    g.abandon_leader(reg);
                }
                self.register_leader_with(|g| {
                    register_pgroup(g, &handle, guard_session(spec.setup.setsid))
                });
            }
        }
        Ok(handle)
    }

    /// Spawns a child on the portable backend into process group `pgid`
    /// (0: as a new group's first process). A child is held at the gate of
    /// a trampoline (`unix/trampoline.rs`, this program's executable run
    /// before the program) when its new group will be registered with the
    /// guard, until the registration has been sent (an owner killed at any
    /// point of the start leaves no program running unguarded: the held
    /// child exits when it reads end of file), whenever it has spawn
    /// options that only the trampoline can apply (`unix/gate_setup.rs`),
    /// for a pty session, which takes its terminal there
    /// (`unix/spawn_pty.rs`; on Linux it can do without), and for every
    /// start where a stop signal could catch a plain spawn's child before
    /// its `exec` (`unix/spawn.rs`, `STOPS_CATCH_A_PLAIN_SPAWN`).
    /// Without a trampoline a new group is registered after `posix_spawn`
    /// returns (by [`register_leader`](Self::register_leader), a no-op once
    /// the group is registered here), and such options are refused
    /// ([`Error::Unsupported`](crate::Error::Unsupported), saying why).
    #[cfg(unix)]
    fn spawn_portable(&self, spec: &SpawnSpec, pgid: i32) -> Result<i32, SpawnError> {
        use super::unix::spawn::{needs_trampoline, no_trampoline, spawn, spawn_gated, Passed};
        let options = needs_trampoline(spec);
        // What no start here can honour is refused by the plain spawn.
        let refused = super::unix::spawn::unsupported_setup(spec).is_some();
        let register =
            pgid == 0 && matches!(*self.guard_link(), GuardLink::Pending) && self.guard().is_ok();
        // A pty session takes its terminal in the trampoline on Linux too,
        // as macOS and FreeBSD must (`unix/spawn_pty.rs`); and where a stop
        // signal could catch a plain spawn's child, every start goes there.
        let prefer = super::unix::spawn_pty::prefers_trampoline(spec)
            || super::unix::spawn::STOPS_CATCH_A_PLAIN_SPAWN;
        if refused || (!register && !prefer && options.is_none()) {
            return spawn(spec, pgid);
        }
        let exe = match (guard::trampoline_exe(), options) {
            (Ok(exe), _) => exe,
            (Err(_), None) => return spawn(spec, pgid),
            (Err(why), Some(what)) => return Err(no_trampoline(what, why)),
        };
        let held = match (spawn_gated(spec, exe, pgid), options) {
            (Ok(held), _) => held,
            // The plain spawn reports the spawn's own error exactly.
            (Err(_), None) => return spawn(spec, pgid),
            // The executable could not be run again.
            (Err(SpawnError::Exec(e)), Some(what)) => {
                let why = format!("this program's executable could not be started: {e}");
                return Err(no_trampoline(what, &why));
            }
            // The program's own (its process group, its working
            // directory), or the system's.
            (Err(e), Some(_)) => return Err(e),
        };
        // The held child is unreaped and waiting: its number and session
        // are exact.
        let pid = held.pid;
        if register {
            // A pty session's trampoline leads a session of its own before
            // it is let go, maybe not yet (`unix/trampoline.rs`).
            let own_session =
                spec.setup.setsid || crate::sys::unix::pgroup::session_of(pid) == Some(pid);
            self.register_leader_with(|g| {
                g.register_pgroup_number(pid, own_session.then_some(pid))
            });
        }
        let passed = held.open(spec);
        if matches!(passed, Passed::Running) {
            return Ok(pid);
        }
        // Unregistered before the held child is reaped (its zombie keeps
        // the number ours until then).
        if register {
            self.release_leader_registration();
        }
        held.reap();
        match passed {
            Passed::Failed(e) => Err(e),
            _ => {
                guard::trampoline_broken();
                match options {
                    None => spawn(spec, pgid),
                    Some(what) => Err(no_trampoline(
                        what,
                        "this program's executable did not run as a trampoline",
                    )),
                }
            }
        }
    }

    /// Drops the guard's registration of a leader that is gone (its group
    /// emptied; see `spawn`), so that the next leader registers afresh.
    pub(super) fn release_leader_registration(&self) {
        let mut link = self.guard_link();
        if matches!(*link, GuardLink::On(_)) {
            if let GuardLink::On(old) = std::mem::replace(&mut *link, GuardLink::Pending) {
                if let Ok(g) = self.guard() {
                    g.unregister(old);
                }
            }
        }
    }

    /// Registers a process group's new leader with the portable guard
    /// (which asks the leader for its session: no session flag here).
    fn register_leader(&self, leader: &ChildHandle) {
        self.register_leader_with(|g| register_pgroup(g, leader, false));
    }

    /// Registers a process group with the guard through `register`, if it
    /// is not registered yet.
    fn register_leader_with(
        &self,
        register: impl FnOnce(&guard::Guard) -> Result<guard::Ticket, String>,
    ) {
        let mut link = self.guard_link();
        if !matches!(*link, GuardLink::Pending) {
            return;
        }
        *link = match self.guard().and_then(register) {
            Ok(t) => GuardLink::On(t),
            Err(why) => {
                tracing::warn!(target: "pkit", reason = %why, "group not covered by the owner-death guard");
                GuardLink::Unavailable(why)
            }
        };
    }
}

/// Under the process-group mechanism a pty session and the group's process
/// group must be one and the same: a child that calls `setsid` leads a new
/// process group numbered by its pid, which is the group's only when that
/// child is the group's first process (its leader). And once the leader
/// leads a session, no later process can join its process group (`setpgid`
/// refuses a group of another session). Both are refused as unsupported
/// rather than started outside the group.
#[cfg(unix)]
fn pty_session_check(
    spec: &SpawnSpec,
    leader: Option<&ChildHandle>,
    pty_leader: bool,
) -> Result<(), SpawnError> {
    let unsupported = |operation, reason: &str| {
        Err(SpawnError::Unsupported(
            operation,
            crate::sys::Mechanism::ProcessGroup,
            reason.into(),
        ))
    };
    let Some(leader) = leader else {
        return Ok(());
    };
    // A leader started without a session of its own that leads one now
    // left the group and called `setsid`: the start goes on (and finds the
    // group's process group in another session: `Container::leader_left`).
    if pty_leader && leader.leads_session() {
        return unsupported(
            "start",
            "the group's process group is led by a pty session; a process of this session \
             can't join it (start it in another group)",
        );
    }
    if spec.setup.ctty {
        return unsupported(
            "pty",
            "a pty child leads its own session and process group, which is the group's only \
             when it is the group's first process (start it in a new group, as every verb does)",
        );
    }
    Ok(())
}

/// The subtree of a child started in `scope` (see [`Scope`]), when it is
/// to have one (`own_tree`).
#[cfg(unix)]
fn pgroup_tree(own_tree: bool, root: Arc<ChildHandle>, scope: Scope) -> Option<ProcTree> {
    own_tree.then(|| ProcTree::pgroup(root, scope))
}
