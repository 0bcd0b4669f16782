//! A group's OS container: a cgroup v2 directory or a POSIX process group,
//! behind one interface.

use std::fmt;
use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use super::guard;
use super::host::MechanismChoice;
#[cfg(target_os = "linux")]
use super::limits;
use super::limits::{Applied, LimitError, Limits};
#[cfg(target_os = "linux")]
use super::linux::cgroup::Cgroup;
#[cfg(target_os = "linux")]
use super::linux::host;
use super::unix::ptable;
use super::{ChildHandle, Mechanism};

pub(super) enum Kind {
    #[cfg(target_os = "linux")]
    Cgroup(Cgroup),
    Pgroup {
        /// The leader, kept unreaped so its pgid cannot be recycled.
        leader: Mutex<Option<Arc<ChildHandle>>>,
        /// Run by the portable backend (posix_spawn, pid-held children):
        /// always off Linux, and on Linux when forced.
        portable: bool,
    },
}

/// A group's OS container.
pub(crate) struct Container {
    pub(super) kind: Kind,
    /// Why `auto` ended up with a process group, when it did.
    fallback: Option<String>,
    /// Set when a close or teardown begins: no new child is placed.
    pub(super) torn_down: AtomicBool,
    /// Set only once a teardown has completed (everything killed and the
    /// directories removed or handed to the reaper). A close that was
    /// cancelled (its future dropped) or failed part-way leaves it unset, so
    /// `Drop` still does the whole teardown and keeps the guard's
    /// registration until then.
    finished: AtomicBool,
    /// Suspended by the user: a signal's freeze/thaw must not thaw it.
    pub(super) suspended: AtomicBool,
    /// Resource caps and the v1 cgroups carrying them.
    pub(super) limits: Applied,
    /// The group's standing with the owner-death guard.
    guard: Mutex<GuardLink>,
    /// Held shared by a start from its closed/suspended check through the
    /// child's placement, and exclusively while `close` marks the group
    /// closed and while `suspend`/`resume` change its state: a start is
    /// either placed before those begin (and is then ended, or frozen, with
    /// the rest) or sees their outcome and is refused.
    pub(super) lifecycle: RwLock<()>,
}

/// A container's standing with the owner-death guard.
pub(super) enum GuardLink {
    /// Turned off with `GroupBuilder::owner_death_guard(false)`.
    Off,
    /// Wanted, but impossible (the reason).
    Unavailable(String),
    /// A process group whose leader isn't started yet: it registers then.
    Pending,
    /// Registered.
    On(super::guard::Ticket),
    /// Unregistered at teardown.
    Released,
}

/// Why a container could not be created.
#[derive(Debug)]
pub(crate) enum CreateError {
    /// The forced mechanism is impossible here.
    Mechanism(String),
    /// A cap can't be enforced (or is invalid).
    Limit(LimitError),
}

impl fmt::Debug for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Container {
    /// Creates a container as `choice` asks, with `limits` applied to it.
    pub(crate) fn create(
        choice: MechanismChoice,
        limits: &Limits,
        want_guard: bool,
        name: Option<&str>,
    ) -> Result<Container, CreateError> {
        limits.validate().map_err(CreateError::Limit)?;
        #[cfg(not(target_os = "linux"))]
        let _ = name;
        #[cfg(not(target_os = "linux"))]
        let (kind, fallback, kept): (Kind, Option<String>, Option<guard::Ticket>) = match choice {
            MechanismChoice::Cgroup => {
                return Err(CreateError::Mechanism(
                    "cgroup v2 exists on Linux only".into(),
                ))
            }
            _ => (Self::pgroup(true), None, None),
        };
        #[cfg(target_os = "linux")]
        let cgroup = || -> Result<(Cgroup, Option<guard::Ticket>), String> {
            let h = host::cgroup_host().as_ref().map_err(Clone::clone)?;
            guard::sweep_stale_once(&h.parent_dir);
            // The guard (started here for the first group) learns of a new
            // directory before it is made: see `Cgroup::create`.
            let g = if want_guard { guard::get().ok() } else { None };
            Cgroup::create(&h.parent_dir, h.has_kill, name, g)
                .map_err(|e| format!("cannot create a cgroup in {}: {e}", h.parent_dir.display()))
        };
        // A spare or new directory comes with its guard registration
        // (`kept`).
        #[cfg(target_os = "linux")]
        let (kind, fallback, kept) = match choice {
            MechanismChoice::ProcessGroup => (Self::pgroup(false), None, None),
            MechanismChoice::Portable => (Self::pgroup(true), None, None),
            MechanismChoice::Cgroup => {
                let (cg, kept) = cgroup().map_err(CreateError::Mechanism)?;
                (Kind::Cgroup(cg), None, kept)
            }
            MechanismChoice::Auto => match cgroup() {
                Ok((cg, kept)) => (Kind::Cgroup(cg), None, kept),
                Err(why) => (Self::pgroup(false), Some(why), None),
            },
        };
        #[allow(unused_mut)]
        let mut kept = kept;
        // Whatever happens below, a registration not taken over is dropped.
        let release_kept = |kept: Option<guard::Ticket>| {
            if let (Some(t), Ok(g)) = (kept, guard::get()) {
                g.unregister(t);
            }
        };
        // A capped group's v1 directories are registered before they exist.
        #[cfg(target_os = "linux")]
        let v1_in = match (&kind, want_guard) {
            (Kind::Cgroup(cg), true) => limits::guard_v1_first(cg, limits, &mut kept),
            _ => false,
        };
        let applied = match (&kind, limits.is_empty()) {
            (_, true) => Applied::default(),
            #[cfg(target_os = "linux")]
            (Kind::Cgroup(cg), false) => match limits::apply(cg, limits) {
                Ok(applied) => applied,
                Err(e) => {
                    release_kept(kept);
                    return Err(CreateError::Limit(e));
                }
            },
            (Kind::Pgroup { .. }, false) => {
                let cap = limits.first_cap();
                let why = match &fallback {
                    Some(why) => format!("cgroup v2 is unusable here ({why})"),
                    None if !cfg!(target_os = "linux") => "cgroups exist on Linux only".to_string(),
                    None => "the process-group mechanism was chosen".to_string(),
                };
                return Err(CreateError::Limit(LimitError::new(
                    cap,
                    format!("caps need a cgroup, and {why}: a process group can't enforce them"),
                )));
            }
        };
        let link = if !want_guard {
            GuardLink::Off
        } else {
            match (guard::get(), &kind) {
                (Err(why), _) => GuardLink::Unavailable(why),
                (Ok(_), Kind::Pgroup { .. }) => GuardLink::Pending,
                // The registration made with the directory (or a spare's,
                // or the one with its v1 directories) covers it; else v1 cap
                // directories need one, made before the old one's release.
                #[cfg(target_os = "linux")]
                (Ok(g), Kind::Cgroup(_)) if kept.is_some() && (v1_in || applied.v1.is_empty()) => {
                    let ticket = kept.take().expect("checked");
                    g.set_spare(&ticket, false);
                    GuardLink::On(ticket)
                }
                #[cfg(target_os = "linux")]
                (Ok(g), Kind::Cgroup(cg)) => {
                    let v1: Vec<std::path::PathBuf> = applied
                        .v1
                        .iter()
                        .map(|(_, g)| g.path().to_path_buf())
                        .collect();
                    match g.register_cgroup(cg.path(), cg.has_kill(), &v1) {
                        Ok(t) => GuardLink::On(t),
                        Err(why) => {
                            tracing::warn!(target: "pkit", reason = %why, "group not covered by the owner-death guard");
                            GuardLink::Unavailable(why)
                        }
                    }
                }
            }
        };
        release_kept(kept);
        Ok(Container {
            kind,
            fallback,
            torn_down: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            suspended: AtomicBool::new(false),
            limits: applied,
            guard: Mutex::new(link),
            lifecycle: RwLock::new(()),
        })
    }

    pub(super) fn guard_link(&self) -> std::sync::MutexGuard<'_, GuardLink> {
        self.guard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the owner-death guard covers this group now (for a process
    /// group not started yet: whether it will once its first process is).
    pub(crate) fn guarded(&self) -> bool {
        let covered = matches!(*self.guard_link(), GuardLink::On(_) | GuardLink::Pending);
        covered && guard::get().is_ok_and(|g| g.alive())
    }

    /// Says how the owner-death guard stands for this group.
    fn describe_guard(&self) -> String {
        match &*self.guard_link() {
            GuardLink::Off => "no owner-death guard (turned off)".into(),
            GuardLink::Unavailable(why) => format!("no owner-death guard: {why}"),
            GuardLink::Released => "owner-death guard released".into(),
            GuardLink::On(_) | GuardLink::Pending => match guard::get() {
                Ok(g) if g.alive() => format!("owner-death guard pid {}", g.pid()),
                Ok(g) => format!("owner-death guard pid {} has exited: unguarded", g.pid()),
                Err(why) => format!("no owner-death guard: {why}"),
            },
        }
    }

    /// Unregisters from the guard (idempotent). For a process group this
    /// must happen before the leader is released (reaped).
    pub(super) fn release_guard(&self) {
        let mut link = self.guard_link();
        match std::mem::replace(&mut *link, GuardLink::Released) {
            GuardLink::On(ticket) => {
                if let Ok(g) = guard::get() {
                    g.unregister(ticket);
                }
            }
            GuardLink::Pending | GuardLink::Released => {}
            // Off and Unavailable keep saying why there is no guard.
            other => *link = other,
        }
    }

    /// Hands an emptied cgroup to the pool of spares, with its guard
    /// registration, or removes it; false when it isn't empty.
    #[cfg(target_os = "linux")]
    fn retire(&self, cg: &Cgroup) -> bool {
        let mut link = self.guard_link();
        let ticket = match std::mem::replace(&mut *link, GuardLink::Released) {
            GuardLink::On(ticket) => Some(ticket),
            other => {
                *link = other;
                None
            }
        };
        match cg.retire_if_empty(ticket) {
            Ok(left) => {
                // Pooled: the spare keeps the registration. Removed: done.
                if let (Some(t), Ok(g)) = (left, guard::get()) {
                    g.unregister(t);
                }
                true
            }
            Err(ticket) => {
                if let Some(t) = ticket {
                    *link = GuardLink::On(t);
                }
                false
            }
        }
    }

    pub(crate) fn mechanism(&self) -> Mechanism {
        match self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => Mechanism::CgroupV2,
            Kind::Pgroup { .. } => Mechanism::ProcessGroup,
        }
    }

    /// One line for humans: mechanism, where, placement, teardown.
    pub(crate) fn describe(&self) -> String {
        let main = self.describe_container();
        format!("{main}; {}", self.describe_guard())
    }

    fn describe_container(&self) -> String {
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => format!(
                "cgroup v2 at {}; {}; teardown by {}",
                cg.path().display(),
                self.placement(),
                if cg.has_kill() {
                    "cgroup.kill"
                } else {
                    "freeze, SIGKILL to each member, thaw"
                }
            ),
            Kind::Pgroup { leader, portable } => {
                let pgid = leader
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .map(|l| l.pid());
                let mut s = match pgid {
                    Some(p) => format!("process group {p}"),
                    None => "process group (none started yet)".to_string(),
                };
                if *portable {
                    s.push_str("; portable backend (posix_spawn, SIGCHLD waits)");
                }
                s.push_str("; teardown by killpg; a descendant that calls setsid escapes it");
                if let Some(why) = &self.fallback {
                    s.push_str(&format!("; chosen because cgroup v2 is unusable: {why}"));
                }
                s
            }
        }
    }

    /// SIGKILL to the whole tree, now.
    pub(crate) fn kill(&self) -> io::Result<()> {
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => cg.kill(),
            Kind::Pgroup { .. } => self.signal_pgroup(libc::SIGKILL),
        }
    }

    /// SIGKILL to the whole tree, now, leaving the container usable for
    /// new children (so a cgroup is not killed through `cgroup.kill`; see
    /// [`Cgroup::kill_each`]).
    pub(crate) fn kill_keep_usable(&self) -> io::Result<()> {
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => cg.kill_each(self.suspended.load(Ordering::Acquire)),
            Kind::Pgroup { .. } => self.kill(),
        }
    }

    /// Sends `sig` to the process group (see
    /// [`ChildHandle::signal_group`]: through the leader's pidfd, never to a
    /// reused number); nothing to do before the first start.
    pub(super) fn signal_pgroup(&self, sig: i32) -> io::Result<()> {
        let leader = match &self.kind {
            Kind::Pgroup { leader, .. } => leader.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => None,
        };
        match leader {
            Some(l) => l.signal_group(sig),
            None => Ok(()),
        }
    }

    pub(super) fn pgid(&self) -> Option<i32> {
        match &self.kind {
            Kind::Pgroup { leader, .. } => leader
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|l| l.pid()),
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => None,
        }
    }

    /// Sends `sig` to every process in the container. SIGKILL is
    /// [`kill_keep_usable`](Self::kill_keep_usable): the container stays
    /// usable, as after `Group::kill`.
    pub(crate) fn signal(&self, sig: i32) -> io::Result<()> {
        if sig == libc::SIGKILL {
            return self.kill_keep_usable();
        }
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => cg.signal_each(sig, self.suspended.load(Ordering::Acquire)),
            Kind::Pgroup { .. } => self.signal_pgroup(sig),
        }
    }

    /// The live processes in the container.
    pub(crate) fn members(&self) -> io::Result<Vec<i32>> {
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => {
                if cg.is_removed() {
                    return Ok(Vec::new());
                }
                // cgroup.procs may still list exiting tasks; drop zombies.
                Ok(cg
                    .pids()?
                    .into_iter()
                    .filter(|&p| !matches!(super::linux::procfs::stat(p), Ok(('Z', _)) | Err(_)))
                    .collect())
            }
            Kind::Pgroup { .. } => match self.pgid() {
                Some(pgid) => ptable::members(pgid),
                None => Ok(Vec::new()),
            },
        }
    }

    /// Waits until the processes in `pids` (and, for a cgroup, everything
    /// in it) have exited, or `deadline`; returns how many are still alive.
    pub(crate) async fn wait_members(&self, pids: &[i32], deadline: Instant) -> io::Result<usize> {
        let deadline = tokio::time::Instant::from_std(deadline);
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => {
                let _ = tokio::time::timeout_at(deadline, cg.wait_empty()).await;
                Ok(self.members()?.len())
            }
            #[cfg(target_os = "linux")]
            Kind::Pgroup {
                portable: false, ..
            } => {
                let fds: Vec<OwnedFd> = pids
                    .iter()
                    .filter_map(|&p| {
                        crate::sys::fault::check(crate::sys::fault::Point::PidfdOpen).ok()?;
                        let fd = rustix::process::pidfd_open(
                            rustix::process::Pid::from_raw(p)?,
                            rustix::process::PidfdFlags::empty(),
                        )
                        .ok()?;
                        // The pid was listed before the pidfd was opened: make
                        // sure it is still a member and not a reused number.
                        let pgid = self.pgid()?;
                        ptable::is_live_member(p, pgid).then_some(fd)
                    })
                    .collect();
                // One epoll set for them all: a batch of exits is one wake-up.
                super::linux::exits::wait_all(&fds, deadline).await
            }
            Kind::Pgroup { .. } => {
                // No pidfds: the members are not our children, so they are
                // polled (is each still a running member of the group?).
                let Some(pgid) = self.pgid() else {
                    return Ok(0);
                };
                let left = || {
                    pids.iter()
                        .filter(|&&p| ptable::is_live_member(p, pgid))
                        .count()
                };
                let mut nap = std::time::Duration::from_millis(1);
                loop {
                    let n = left();
                    if n == 0 || tokio::time::Instant::now() >= deadline {
                        return Ok(n);
                    }
                    tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + nap)).await;
                    nap = (nap * 2).min(std::time::Duration::from_millis(50));
                }
            }
        }
    }

    /// Kills the tree, waits (asynchronously) until it is gone, and removes
    /// the container. The container can't be used afterwards.
    pub(crate) async fn close(&self) -> io::Result<()> {
        self.close_with(false).await
    }

    /// [`close`](Self::close). A process group is waited for too: after
    /// `killpg`, until no member is left running (zombies awaiting their
    /// parent's or init's reaping count as gone; see
    /// [`wait_pgroup_gone`](Self::wait_pgroup_gone)), so a verb that returns
    /// after a timeout or a cancellation leaves no process of its tree
    /// running, in either mechanism.
    ///
    /// `pool: true` lets an emptied, uncapped cgroup be kept for the next
    /// group instead of removed (a one-shot run's private group, whose
    /// directory nobody else sees).
    ///
    /// Cancelling the returned future, or an error part-way, leaves the
    /// teardown to a later `close` or to `Drop` (see `finished`).
    pub(crate) async fn close_with(&self, pool: bool) -> io::Result<()> {
        if self.finished.load(Ordering::Acquire) {
            return Ok(());
        }
        {
            // Waits for a start that is placing a child (it is then ended
            // below with the rest); every later start sees `torn_down`.
            let _closing = self.lifecycle.write().unwrap_or_else(|e| e.into_inner());
            self.torn_down.store(true, Ordering::Release);
        }
        #[cfg(target_os = "linux")]
        if let Kind::Cgroup(cg) = &self.kind {
            // The common end of a run: everything has exited already. The
            // kernel refuses to remove a populated cgroup, so a successful
            // rmdir proves there is nothing left to kill.
            let retired = if pool && self.limits.info.is_empty() {
                self.retire(cg)
            } else {
                cg.remove().is_ok()
            };
            if retired {
                for (_, g) in &self.limits.v1 {
                    g.remove();
                }
                self.release_guard();
                self.finished.store(true, Ordering::Release);
                return Ok(());
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = pool;
        self.kill()?;
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => {
                cg.wait_empty().await?;
                // Every member was in the v2 cgroup too: the v1 ones are
                // empty now. The tree is gone: a directory that still can't
                // be removed (sub-cgroups made meanwhile by someone outside
                // the group) is the reaper's, never the caller's error.
                let v1 = self.limits.v1.iter().map(|(_, g)| g.path().to_path_buf());
                cg.remove_later(v1.collect());
                self.release_guard();
                self.finished.store(true, Ordering::Release);
                Ok(())
            }
            Kind::Pgroup { leader, .. } => {
                // SIGKILLed processes exit promptly; the bound only guards
                // against one stuck in uninterruptible sleep.
                if !self.pgroup_ended_with_leader() {
                    self.wait_pgroup_gone(Instant::now() + CLOSE_WAIT).await?;
                }
                self.release_guard();
                leader.lock().unwrap_or_else(|e| e.into_inner()).take();
                self.finished.store(true, Ordering::Release);
                Ok(())
            }
        }
    }

    /// Kills the tree now and cleans up without blocking for long (the
    /// synchronous path, for `Drop`).
    pub(crate) fn teardown_now(&self) {
        self.torn_down.store(true, Ordering::Release);
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => {
                let v1 = self.limits.v1.iter().map(|(_, g)| g.path().to_path_buf());
                cg.teardown(v1.collect());
                // Killed; a directory still being removed by the reaper is
                // swept by a later pkit process if this one dies first.
                self.release_guard();
            }
            Kind::Pgroup { leader, .. } => {
                let _ = self.kill();
                self.release_guard();
                leader.lock().unwrap_or_else(|e| e.into_inner()).take();
            }
        }
    }
}

/// How long `close` waits for a killed process group to be gone.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Drop for Container {
    fn drop(&mut self) {
        // Also after a cancelled or failed close(): only a completed
        // teardown is skipped. The guard is left before the leader (a
        // field) is released.
        self.teardown_now();
        self.release_guard();
    }
}
