//! A group's OS container: a cgroup v2 directory or a POSIX process group,
//! behind one interface.

use std::fmt;
use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
#[cfg(target_os = "linux")]
use std::sync::Weak;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use super::former::Former;
use super::limits::{Applied, LimitError};
#[cfg(target_os = "linux")]
use super::linux::cgroup::Cgroup;
use super::unix::ptable;
use super::{ChildHandle, Mechanism};

pub(super) enum Kind {
    #[cfg(target_os = "linux")]
    Cgroup(Cgroup),
    Pgroup {
        /// The leader, kept unreaped so its pgid cannot be recycled.
        leader: Mutex<Option<Arc<ChildHandle>>>,
        /// A first process whose start waits for its exec (see `birth.rs`).
        #[cfg(target_os = "linux")]
        birth: Mutex<Option<Arc<super::linux::birth::Birth>>>,
        /// Former leaders that left the process group they led (`setpgid`
        /// to another group of the session) and still ran when a start
        /// found that group empty and led a new one: still our children,
        /// reached through their handles by the group's signals, kill and
        /// close, and by the owner-death guard through the registration
        /// each had as leader (see `retire_leader`).
        former: Mutex<Vec<Former>>,
        /// Whether the current leader was started leading a session of
        /// its own (a pty session): its process group can't be joined.
        /// A leader started without one that leads a session now called
        /// `setsid` itself, after it left the group (see
        /// `Container::leader_left`).
        leader_session: AtomicBool,
        /// Members found stopped (pid, start time) by a `suspend`, before
        /// its SIGSTOP: its `resume` leaves them stopped (see `control.rs`).
        stopped_before: Mutex<Vec<(i32, u64)>>,
        /// Run by the portable backend (posix_spawn, pid-held children):
        /// always off Linux, and on Linux when forced.
        portable: bool,
    },
}

/// A group's OS container.
pub(crate) struct Container {
    pub(super) kind: Kind,
    /// Why `auto` ended up with a process group, when it did.
    pub(super) fallback: Option<String>,
    /// Set when a close or teardown begins: no new child is placed.
    pub(super) torn_down: AtomicBool,
    /// Set only once a teardown has completed (everything killed and the
    /// directories removed or handed to the reaper). A close that was
    /// cancelled (its future dropped) or failed part-way leaves it unset, so
    /// `Drop` still does the whole teardown and keeps the guard's
    /// registration until then.
    pub(super) finished: AtomicBool,
    /// Suspended by the user: a signal's freeze/thaw must not thaw it.
    pub(super) suspended: AtomicBool,
    /// Resource caps and the v1 cgroups carrying them.
    pub(super) limits: Applied,
    /// The group's standing with the owner-death guard.
    pub(super) guard: Mutex<GuardLink>,
    /// Under cgroup v2: whether its own directory is still free for the
    /// first started process, and its started processes' leaves.
    #[cfg(target_os = "linux")]
    pub(super) leaves: Arc<super::linux::leaf::Leaves>,
    /// Under cgroup v2: the processes started in it, by their handles. A
    /// program run as root can write its pid into another cgroup, out of
    /// reach of `cgroup.kill`; it is still our child, held by its pidfd
    /// (see [`signal_started`](Self::signal_started)).
    #[cfg(target_os = "linux")]
    pub(super) started: Started,
    /// Held shared by a start from its closed/suspended check through the
    /// child's placement (until the child has executed its program), by an
    /// adoption, and by `resume`; exclusively by `suspend` while it changes
    /// the group's state, and by `close` just to wait for the starts
    /// already placing (it marks the group closed first): a start is either
    /// placed before those (and is then ended, or frozen, with the rest) or
    /// sees their outcome and is refused.
    ///
    /// A child can stop before its `exec` (a SIGSTOP from a signal pass),
    /// and its start then waits, holding this lock, until a SIGCONT or its
    /// end. So nothing that sends those takes this lock: a signal pass
    /// and `kill` take only [`freezing`](Self::freezing), and a close ends
    /// the placing children (see `close`) before it waits here. (A signal
    /// pass that took this lock waited behind a `suspend`, itself waiting
    /// behind such a start: nobody moved again.)
    ///
    /// Lock order, never the other way round: `closing`, then `lifecycle`,
    /// then `freezing`, then a process group's `leader` (held by a start
    /// only while no other process can reach the child it waits for: a new
    /// group's first; see `spawn`), then `guard`.
    pub(super) lifecycle: RwLock<()>,
    /// Held by a signal pass and `kill_keep_usable` (which freeze and thaw
    /// a cgroup around their signals) and by `suspend`/`resume` while they
    /// freeze or thaw it and set `suspended`: a pass then either comes
    /// wholly before a suspend, or after it and leaves its freeze alone
    /// (one that read `suspended` unset thawed the freeze a suspend had
    /// just made). Never held while waiting for a start.
    pub(super) freezing: Mutex<()>,
    /// How many kills of the whole tree (`kill`, `kill_keep_usable`, and so
    /// `close`) have begun, and how many are under way: a start compares
    /// them across its clone to tell the group's kill of its child from the
    /// kernel's (see [`kills`](Self::kills)).
    pub(super) kills: [std::sync::atomic::AtomicU64; 2],
    /// Held for the whole of a `close`: a second close (another task's
    /// `close` or `shutdown`) waits for the first and finds it finished,
    /// rather than killing and removing what the first just removed (it
    /// failed with `ENOENT`). It guards no data, so a panic while it is
    /// held breaks nothing: asserted unwind-safe, keeping `Group`
    /// `RefUnwindSafe` as it was (tokio's mutex is not).
    pub(super) closing: std::panic::AssertUnwindSafe<tokio::sync::Mutex<()>>,
    /// The process that made it: a copy in a child forked without `exec`
    /// leaves the container alone (see `Drop`).
    pub(super) owner: super::Creator,
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

/// The processes started in a cgroup, by weak handles (see
/// `Container::started`). The first has a slot of its own, set without a
/// lock or an allocation: a one-shot group's only start pays neither. Later
/// ones go to a list, which forgets the ended handles only when it is full
/// and then keeps room for as many again: a start costs the same however
/// many handles the group's processes keep alive (it walked them all).
#[cfg(target_os = "linux")]
#[derive(Default)]
pub(super) struct Started {
    first: std::sync::OnceLock<Weak<ChildHandle>>,
    more: Mutex<Vec<Weak<ChildHandle>>>,
}

#[cfg(target_os = "linux")]
impl Started {
    /// Notes `child`.
    fn note(&self, child: &Arc<ChildHandle>) {
        let Err(weak) = self.first.set(Arc::downgrade(child)) else {
            return;
        };
        let mut more = self.more.lock().unwrap_or_else(|e| e.into_inner());
        if more.len() == more.capacity() {
            more.retain(|w| w.strong_count() > 0);
            // The next walk comes after at least as many starts as are
            // kept (amortised: never one walk per start).
            let kept = more.len();
            more.reserve(kept.max(4));
        }
        more.push(weak);
    }

    /// The noted processes whose handles are still held somewhere.
    fn live(&self) -> Vec<Arc<ChildHandle>> {
        let first = self.first.get().and_then(Weak::upgrade);
        let more = self.more.lock().unwrap_or_else(|e| e.into_inner());
        first
            .into_iter()
            .chain(more.iter().filter_map(Weak::upgrade))
            .collect()
    }
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
    pub(super) fn guard_link(&self) -> std::sync::MutexGuard<'_, GuardLink> {
        self.guard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the owner-death guard covers this group now (for a process
    /// group not started yet: whether it will once its first process is).
    pub(crate) fn guarded(&self) -> bool {
        let covered = matches!(*self.guard_link(), GuardLink::On(_) | GuardLink::Pending);
        covered && self.guard().is_ok_and(|g| g.alive())
    }

    /// Says how the owner-death guard stands for this group.
    fn describe_guard(&self) -> String {
        match &*self.guard_link() {
            GuardLink::Off => "no owner-death guard (turned off)".into(),
            GuardLink::Unavailable(why) => format!("no owner-death guard: {why}"),
            GuardLink::Released => "owner-death guard released".into(),
            GuardLink::On(_) | GuardLink::Pending => match self.guard() {
                Ok(g) if g.alive() => format!("owner-death guard pid {}", g.pid()),
                Ok(g) => format!("owner-death guard pid {} has exited: unguarded", g.pid()),
                Err(why) => format!("no owner-death guard: {why}"),
            },
        }
    }

    /// Unregisters from the guard (idempotent), the former leaders too.
    /// For a process group this must happen before the leader is released
    /// (reaped).
    pub(super) fn release_guard(&self) {
        let mut link = self.guard_link();
        match std::mem::replace(&mut *link, GuardLink::Released) {
            GuardLink::On(ticket) => {
                if let Ok(g) = self.guard() {
                    g.unregister(ticket);
                }
            }
            GuardLink::Pending | GuardLink::Released => {}
            // Off and Unavailable keep saying why there is no guard.
            other => *link = other,
        }
        drop(link);
        self.release_former_registrations();
    }

    /// Whether the children started here are held by a pidfd (Linux, but
    /// not the portable backend forced there), which a thread can wait on
    /// with `poll` beside their pipes.
    #[cfg(target_os = "linux")]
    pub(crate) fn holds_pidfds(&self) -> bool {
        match self.kind {
            Kind::Cgroup(_) => true,
            Kind::Pgroup { portable, .. } => !portable,
        }
    }

    pub(crate) fn mechanism(&self) -> Mechanism {
        match self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => Mechanism::CgroupV2,
            Kind::Pgroup { .. } => Mechanism::ProcessGroup,
        }
    }

    /// One line for humans: mechanism, where, placement, teardown. Once a
    /// close or teardown has begun, only the mechanism and that it is
    /// closed: its cgroup directory may serve a newer group by then (the
    /// spare pool), and its process group number another process.
    pub(crate) fn describe(&self) -> String {
        if self.torn_down.load(std::sync::atomic::Ordering::Acquire) {
            return format!("{}{}; closed", self.kind_name(), self.backend_note());
        }
        let main = self.describe_container();
        format!("{main}; {}", self.describe_guard())
    }

    /// How [`describe`](Self::describe) names the kind of container.
    fn kind_name(&self) -> &'static str {
        match self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => "cgroup v2",
            Kind::Pgroup { .. } => "process group",
        }
    }

    /// What [`describe`](Self::describe) adds for the portable backend.
    fn backend_note(&self) -> &'static str {
        match self.kind {
            Kind::Pgroup { portable: true, .. } => {
                "; portable backend (posix_spawn, SIGCHLD waits)"
            }
            _ => "",
        }
    }

    fn describe_container(&self) -> String {
        let name = self.kind_name();
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => format!(
                "{name} at {}; {}; teardown by {}",
                cg.path().display(),
                self.placement(),
                if cg.has_kill() {
                    "cgroup.kill"
                } else {
                    "freeze, SIGKILL to each member, thaw"
                }
            ),
            Kind::Pgroup { leader, .. } => {
                let pgid = leader
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .map(|l| l.pid());
                let mut s = match pgid {
                    Some(p) => format!("{name} {p}"),
                    None => format!("{name} (none started yet)"),
                };
                s.push_str(self.backend_note());
                s.push_str(match self.leader_started_session() {
                    true => "; teardown by killpg and a sweep of its (pty) session",
                    false => "; teardown by killpg",
                });
                s.push_str("; a descendant that calls setsid or setpgid escapes it");
                if let Some(why) = &self.fallback {
                    s.push_str(&format!("; chosen because cgroup v2 is unusable: {why}"));
                }
                s
            }
        }
    }

    /// Notes a process started in the cgroup (see `started`).
    #[cfg(target_os = "linux")]
    pub(super) fn note_started(&self, child: &Arc<ChildHandle>) {
        self.started.note(child);
    }

    /// The processes this container started that have not ended (whose
    /// handles are still held).
    #[cfg(target_os = "linux")]
    pub(super) fn started_running(&self) -> Vec<Arc<ChildHandle>> {
        self.started
            .live()
            .into_iter()
            .filter(|c| matches!(c.try_status(), Ok(None)))
            .collect()
    }

    /// The pids of the processes started in the cgroup that still run
    /// outside it (moved out: see `started`), `inside` being its members:
    /// a shutdown signals them with the rest and gives them its grace.
    /// None under process groups (a former leader is a member already).
    pub(crate) fn started_outside(&self, inside: &[i32]) -> Vec<i32> {
        #[cfg(target_os = "linux")]
        if let Kind::Cgroup(_) = &self.kind {
            let running = self.started_running().into_iter().map(|c| c.pid());
            return running.filter(|p| !inside.contains(p)).collect();
        }
        let _ = inside;
        Vec::new()
    }

    /// Sends `sig` to the processes started in the cgroup that still run
    /// outside it (see `started`): SIGKILL to every one still running
    /// (once more is harmless to one inside), another signal only to
    /// those not found in the cgroup's subtree (never twice to one).
    #[cfg(target_os = "linux")]
    pub(super) fn signal_started(&self, cg: &super::linux::cgroup::Cgroup, sig: i32) {
        let running = self.started_running();
        if running.is_empty() {
            return;
        }
        let inside = match sig {
            libc::SIGKILL => Vec::new(),
            _ => match super::linux::subtree::pids(cg.path()) {
                Ok(pids) => pids,
                // Not knowing who is inside, send nothing twice.
                Err(_) => return,
            },
        };
        for child in running.iter().filter(|c| !inside.contains(&c.pid())) {
            let _ = child.signal(sig);
        }
    }

    /// SIGKILL to the whole tree, now.
    pub(crate) fn kill(&self) -> io::Result<()> {
        self.counting_kill(|| match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => {
                // The cgroup first: `cgroup.kill` reaches every member at
                // once, where the started processes' signals go one by one
                // (a stage killed first let the next exit 0 on end of file).
                // The started processes' SIGKILLs follow even when
                // `cgroup.kill` was written: one that moved itself out of
                // the cgroup (as root) is reached only so (attack_dec03d's
                // a_program_that_left_its_cgroup_is_ended_by_a_close_...).
                let killed = cg.kill();
                self.signal_started(cg, libc::SIGKILL);
                killed
            }
            Kind::Pgroup { .. } => self.signal_pgroup(libc::SIGKILL),
        })
    }

    /// `kill` counted in `kills`, from before its first signal to after
    /// its last.
    pub(super) fn counting_kill<T>(&self, kill: impl FnOnce() -> T) -> T {
        self.kills[1].fetch_add(1, Ordering::AcqRel);
        self.kills[0].fetch_add(1, Ordering::AcqRel);
        let done = kill();
        self.kills[1].fetch_sub(1, Ordering::AcqRel);
        done
    }

    /// How many kills of the whole tree have begun; `None` while one is
    /// under way. A start whose child died before it ran, with the same
    /// `Some` before and after its clone, knows no kill of the group's
    /// reached that child (see `spawn::spawn_into_cgroup`).
    ///
    /// `None` too once the group is being closed (`torn_down`, set before
    /// close's first kill): close writes `cgroup.kill`, after which the
    /// kernel kills every child placed in that directory at birth, and a
    /// start that read the count after one of close's kills ended and
    /// before the next began took that for the kernel's own kill (rv13: the
    /// program ran after the close began, and clone3 was given up for the
    /// whole process).
    #[cfg(target_os = "linux")]
    pub(super) fn kills(&self) -> Option<u64> {
        let begun = self.kills[0].load(Ordering::Acquire);
        let quiet =
            self.kills[1].load(Ordering::Acquire) == 0 && !self.torn_down.load(Ordering::Acquire);
        quiet.then_some(begun)
    }

    /// The live processes in the container.
    pub(crate) fn members(&self) -> io::Result<Vec<i32>> {
        crate::sys::fault::io_check(crate::sys::fault::Point::Members)?;
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => {
                if cg.is_removed() {
                    return Ok(Vec::new());
                }
                // cgroup.procs may still list exiting tasks; drop zombies
                // (not a process whose main thread alone has ended).
                Ok(cg
                    .pids()?
                    .into_iter()
                    .filter(|&p| !super::linux::procfs::exited(p))
                    .collect())
            }
            Kind::Pgroup { .. } => {
                // A pty-led group's whole session (see `Scope`).
                let mut members = match self.scope() {
                    Some(scope) => ptable::members(scope)?,
                    None => Vec::new(),
                };
                // The former leaders still running are members too,
                // wherever they went (see `former`), and a first process
                // whose start waits for its `exec`.
                let former = self.live_former_leaders().into_iter().map(|f| f.pid());
                for pid in former.chain(self.member_at_birth()) {
                    if !members.contains(&pid) {
                        members.push(pid);
                    }
                }
                Ok(members)
            }
        }
    }

    /// Waits until the processes in `pids` (and, for a cgroup, everything
    /// in it) have exited, or `deadline`; returns how many are still alive.
    /// A process group's former leaders among `pids` (see `former`) are
    /// waited for through their handles, the rest as members of the
    /// process group.
    pub(crate) async fn wait_members(&self, pids: &[i32], deadline: Instant) -> io::Result<usize> {
        let mut former = self.live_former_leaders();
        #[cfg(target_os = "linux")]
        if let Kind::Cgroup(cg) = &self.kind {
            // Started processes moved out of the cgroup (`started_outside`),
            // waited for through their handles as former leaders are.
            former = self.started_running();
            if !former.is_empty() {
                match cg.pids() {
                    Ok(inside) => former.retain(|c| !inside.contains(&c.pid())),
                    Err(_) => former.clear(),
                }
            }
        }
        former.retain(|f| pids.contains(&f.pid()));
        if former.is_empty() {
            return self.wait_in_container(pids, deadline).await;
        }
        let rest: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|p| !former.iter().any(|f| f.pid() == *p))
            .collect();
        let left = match rest.is_empty() {
            true => 0,
            false => self.wait_in_container(&rest, deadline).await?,
        };
        Ok(left + Self::wait_handles(&former, deadline).await)
    }

    /// [`wait_members`](Self::wait_members) for processes in the container.
    async fn wait_in_container(&self, pids: &[i32], deadline: Instant) -> io::Result<usize> {
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
                let Some(scope) = self.scope() else {
                    return Ok(0);
                };
                let mut fds: Vec<OwnedFd> = Vec::with_capacity(pids.len());
                for &p in pids {
                    let opened = crate::sys::fault::io_check(crate::sys::fault::Point::PidfdOpen)
                        .and_then(|()| {
                            let pid = rustix::process::Pid::from_raw(p)
                                .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
                            Ok(rustix::process::pidfd_open(
                                pid,
                                rustix::process::PidfdFlags::empty(),
                            )?)
                        });
                    match opened {
                        // The pid was listed before the pidfd was opened:
                        // make sure it is still a member and not a reused
                        // number (one that has exited since reads ready at
                        // once). A pty session's job counts (dropped, the
                        // close's scan found it again: a busy loop).
                        Ok(fd) => {
                            if scope.holds(p) {
                                fds.push(fd);
                            }
                        }
                        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                        // No pidfd to be had (no descriptor free): a
                        // member not waited for would be taken for gone,
                        // so every one is polled instead, with the
                        // descriptors held so far given back first.
                        Err(_) => {
                            drop(fds);
                            return Ok(Self::poll_members(pids, scope, deadline).await);
                        }
                    }
                }
                // One epoll set for them all: a batch of exits is one
                // wake-up. Where that set can't be made (a descriptor freed
                // for a pidfd was taken again), the members are polled.
                match super::linux::exits::wait_all(&fds, deadline).await {
                    Ok(n) => Ok(n),
                    Err(_) => {
                        drop(fds);
                        Ok(Self::poll_members(pids, scope, deadline).await)
                    }
                }
            }
            Kind::Pgroup { .. } => {
                // No pidfds: the members are not our children, so they are
                // polled (is each still a running member of the group?).
                let Some(scope) = self.scope() else {
                    return Ok(0);
                };
                Ok(Self::poll_members(pids, scope, deadline).await)
            }
        }
    }
}
