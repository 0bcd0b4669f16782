//! Closing a process-group container: telling when the group is gone,
//! scanning the process table only when the kernel can't say.

use std::io;
use std::time::Instant;

use super::container::{Container, GuardLink, Kind};
use super::former::Former;
use super::guard;
use super::unix::ptable::{self, Scope};
use super::ChildHandle;

impl Kind {
    /// Whether this is a process group of the portable backend.
    pub(super) fn is_portable(&self) -> bool {
        matches!(self, Kind::Pgroup { portable: true, .. })
    }
}

impl Container {
    /// A new process-group container. On Linux the native one (not the
    /// portable backend) has its dropped children reaped by the reaper
    /// thread, started now, before the first child (see `reaper::ensure`).
    /// On Linux `/proc` is opened and kept now, for the close to list the
    /// group without a fresh descriptor (see `procfs::keep_proc_dir`).
    pub(super) fn pgroup(portable: bool) -> Kind {
        #[cfg(target_os = "linux")]
        crate::sys::linux::procfs::keep_proc_dir();
        #[cfg(target_os = "linux")]
        if !portable {
            crate::sys::linux::reaper::ensure();
        }
        Kind::Pgroup {
            leader: std::sync::Mutex::new(None),
            #[cfg(target_os = "linux")]
            birth: std::sync::Mutex::new(None),
            former: std::sync::Mutex::new(Vec::new()),
            leader_session: std::sync::atomic::AtomicBool::new(false),
            stopped_before: std::sync::Mutex::new(Vec::new()),
            portable,
        }
    }

    /// The former leaders (see `Kind::Pgroup::former`).
    pub(super) fn former_leaders(&self) -> Vec<std::sync::Arc<super::ChildHandle>> {
        match &self.kind {
            Kind::Pgroup { former, .. } => former
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|f| f.handle.clone())
                .collect(),
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => Vec::new(),
        }
    }

    /// Drops the former leaders' guard registrations (idempotent; at the
    /// teardown, before their handles are let go).
    pub(super) fn release_former_registrations(&self) {
        let former = match &self.kind {
            Kind::Pgroup { former, .. } => former,
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => return,
        };
        for f in former.lock().unwrap_or_else(|e| e.into_inner()).iter_mut() {
            self.unregister_ticket(f.ticket.take());
        }
    }

    /// Unregisters `ticket`, if any, from the group's guard.
    fn unregister_ticket(&self, ticket: Option<guard::Ticket>) {
        if let (Some(t), Ok(g)) = (ticket, self.guard()) {
            g.unregister(t);
        }
    }

    /// The former leaders still running (unreaped, not exited): members
    /// of the group wherever they went.
    pub(super) fn live_former_leaders(&self) -> Vec<std::sync::Arc<super::ChildHandle>> {
        let mut former = self.former_leaders();
        former.retain(|f| !f.reaped_by_kernel() && matches!(f.try_status(), Ok(None)));
        former
    }

    /// Notes whether the group's new leader was started leading a session
    /// of its own (see `Kind::Pgroup::leader_session`).
    pub(super) fn note_leader_session(&self, own_session: bool) {
        match &self.kind {
            Kind::Pgroup { leader_session, .. } => {
                leader_session.store(own_session, std::sync::atomic::Ordering::Release);
            }
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => {}
        }
    }

    /// Whether the leader was started leading a session of its own (a pty
    /// session; see `Kind::Pgroup::leader_session`).
    pub(super) fn leader_started_session(&self) -> bool {
        match &self.kind {
            Kind::Pgroup { leader_session, .. } => {
                leader_session.load(std::sync::atomic::Ordering::Acquire)
            }
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => false,
        }
    }

    /// Whether `leader`, the group's, no longer holds the group's process
    /// group for a start to join: it has ended, runs in another process
    /// group, or leads a session it made itself (`setsid` after it left
    /// the group: possible only once the group had emptied, and the
    /// process group it leads now, numbered as the old one, is of another
    /// session). A pty session's leader, started so, has not left.
    pub(super) fn leader_left(&self, leader: &super::ChildHandle) -> bool {
        if leader.ended() || leader.left_group() {
            return true;
        }
        !self.leader_started_session() && leader.leads_session()
    }

    /// Retires `leader` (the group's, whose process group a start found
    /// empty): the group's guard registration is taken (the new leader
    /// registers afresh), then the handle is let go, the registration
    /// dropped first, or kept among the former leaders with its
    /// registration while its process runs (it left the group and runs on
    /// elsewhere: still ours to end, by the guard too: see [`Former`]).
    /// Those that have ended since are let go now, likewise.
    pub(super) fn retire_leader(&self, leader: &mut Option<std::sync::Arc<super::ChildHandle>>) {
        let ticket = {
            let mut link = self.guard_link();
            match std::mem::replace(&mut *link, GuardLink::Pending) {
                GuardLink::On(t) => Some(t),
                other => {
                    *link = other;
                    None
                }
            }
        };
        let former = match &self.kind {
            Kind::Pgroup { former, .. } => former,
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => return self.unregister_ticket(ticket),
        };
        let mut former = former.lock().unwrap_or_else(|e| e.into_inner());
        former.retain_mut(|f| {
            let ended = f.handle.ended();
            if ended {
                self.unregister_ticket(f.ticket.take());
            }
            !ended
        });
        match leader.take() {
            Some(old) if !old.ended() => {
                if let (Some(t), Ok(g)) = (&ticket, self.guard()) {
                    g.describe(t, format!("former leader {} of a process group", old.pid()));
                }
                former.push(Former {
                    handle: old,
                    ticket,
                });
            }
            _ => self.unregister_ticket(ticket),
        }
    }

    /// Waits until every former leader (see `Kind::Pgroup::former`) has
    /// exited, or `deadline`, after the close's SIGKILL.
    pub(super) async fn wait_former_leaders(&self, deadline: Instant) {
        Self::wait_handles(&self.former_leaders(), deadline).await;
    }

    /// Waits until every one of `children` has exited, or `deadline`; how
    /// many have not. A wait that fails (another wait pending and no
    /// descriptor free for its own) is not an exit: the child is then
    /// polled until it has ended, or `deadline`.
    pub(super) async fn wait_handles(
        children: &[std::sync::Arc<super::ChildHandle>],
        deadline: Instant,
    ) -> usize {
        let deadline = tokio::time::Instant::from_std(deadline);
        let mut left = 0;
        for f in children {
            if let Ok(Ok(_)) = tokio::time::timeout_at(deadline, f.wait()).await {
                continue;
            }
            super::nap::poll_until(|| f.ended(), Some(deadline)).await;
            left += usize::from(!f.ended());
        }
        left
    }

    /// Lets go of the former leaders' handles (at the end of a teardown;
    /// their registrations first, if any is left).
    pub(super) fn drop_former_leaders(&self) {
        self.release_former_registrations();
        match &self.kind {
            Kind::Pgroup { former, .. } => {
                former.lock().unwrap_or_else(|e| e.into_inner()).clear();
            }
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => {}
        }
    }

    /// The owner-death guard this group registers with: the portable one
    /// for the portable backend (everywhere but Linux, the only one).
    pub(super) fn guard(&self) -> Result<&'static guard::Guard, String> {
        guard::get_for(self.kind.is_portable())
    }

    /// The common end of a process-group run, told without scanning
    /// `/proc`: the leader has exited and nothing else is left in its
    /// group. The leader is reaped (after the guard lets go of the group,
    /// which must come first), and then the kernel says, through the
    /// leader's pidfd, whether any process still has the group
    /// ([`ChildHandle::group_occupied`]: exact, the number plays no part).
    /// False otherwise (members left, or a kernel before 6.9, which can't
    /// be asked): then [`wait_pgroup_gone`](Self::wait_pgroup_gone) scans.
    pub(super) fn pgroup_ended_with_leader(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Kind::Pgroup {
            leader,
            portable: false,
            ..
        } = &self.kind
        {
            let Some(leader) = leader.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
                return false;
            };
            // No kernel call says a session is empty, and reaping the
            // leader would unpin its number: a pty session is scanned.
            if matches!(self.session_scope(&leader), Scope::Session(_)) {
                return false;
            }
            if !crate::sys::linux::signal::exact_pgroup_signals()
                || !matches!(leader.try_status(), Ok(Some(_)))
            {
                return false;
            }
            self.release_guard();
            return leader.reap_if_exited() && leader.group_occupied() == Some(false);
        }
        false
    }

    /// Waits, after `killpg`, until no member of the process group is left
    /// running, or `deadline` (a SIGKILLed process can linger only in
    /// uninterruptible sleep). A process group has no "empty" event, so the
    /// members are found by a scan of `/proc` (their pgid is ours: the
    /// unreaped leader keeps the number from being reused) and waited for
    /// through pidfds; a second scan confirms. No new member can appear: a
    /// fork racing the `killpg` is killed with its parent.
    ///
    /// A pty-led group's session (see [`Scope`]) is scanned each turn, and
    /// its members outside the process group, which the `killpg` did not
    /// reach, are killed: a job forked while the first kill went round is
    /// caught so.
    pub(super) async fn wait_pgroup_gone(&self, deadline: Instant) -> io::Result<()> {
        let Some(scope) = self.scope() else {
            return Ok(());
        };
        #[cfg(target_os = "linux")]
        let leader = match &self.kind {
            Kind::Pgroup {
                leader,
                portable: false,
                ..
            } => leader.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            _ => None,
        };
        loop {
            // An empty group needs no scan (where the kernel can say so).
            #[cfg(target_os = "linux")]
            if matches!(scope, Scope::Pgroup(_))
                && leader.as_ref().and_then(|l| l.group_occupied()) == Some(false)
            {
                return Ok(());
            }
            // The listing needs no fresh descriptor where `/proc` was
            // kept open when the group was made (Linux); one that fails
            // (none was free even then) fails the close at once: waiting
            // for a descriptor to free up made a run that used up its
            // descriptor limit end only at the deadline.
            let members = ptable::members(scope)?;
            if members.is_empty() || Instant::now() >= deadline {
                return Ok(());
            }
            if let Scope::Session(sid) = scope {
                self.kill_session_members(sid, &members);
            }
            self.wait_members(&members, deadline).await?;
        }
    }

    /// Sends `sig` to the process group (see
    /// [`ChildHandle::signal_group`]: through the leader's pidfd, never to a
    /// reused number); nothing to do before the first start. A leader that
    /// left the group (`setpgid` to another group of its session) is still
    /// our child: it gets `sig` through its handle, exactly, and so does
    /// every former leader (see `former`), with the process group each
    /// led. (A group is read with getpgid, which needs no descriptor: a
    /// check that needed one took a leader for gone at the descriptor
    /// limit, and signalled it twice.)
    ///
    /// A group's first process whose start waits for its `exec` (it may be
    /// stopped before it) gets `sig` through its pidfd (see `birth.rs`),
    /// without the leader's mutex, which that start holds.
    pub(super) fn signal_pgroup(&self, sig: i32) -> io::Result<()> {
        let (sent, leader) = match &self.kind {
            Kind::Pgroup { leader, .. } => self.birth_or_leader(
                leader,
                || {
                    #[cfg(target_os = "linux")]
                    if let (true, sent) = self.signal_birth(sig) {
                        return Some((sent, None));
                    }
                    None
                },
                |leader| (Ok(()), leader),
            ),
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => return Ok(()),
        };
        let former = self.former_leaders();
        let pgid = leader.as_ref().map(|l| l.pid());
        for f in &former {
            let _ = signal_led(f, sig, pgid);
        }
        let Some(leader) = leader else {
            return sent;
        };
        let sent = signal_led(&leader, sig, None);
        // After the process group's signal: a job between its fork and
        // its `setpgid` gets it twice rather than never.
        if let Scope::Session(sid) = self.session_scope(&leader) {
            let _ = self.signal_session(sid, sig, &Default::default());
        }
        sent
    }

    /// `at_birth`'s answer while the group's first start waits for its
    /// `exec` (see `birth.rs`; `None`: ask the leader), else `with_leader`'s,
    /// given the leader. Never waits for the leader's mutex while a first
    /// start holds it: that start publishes its birth only after taking
    /// the mutex, and a call that came in between and waited for the mutex
    /// waited for ever once the child stopped before its `exec` (a `kill`,
    /// `close`, listing or `adopt` racing such a start hung). It asks
    /// `at_birth` again instead, until the mutex is free.
    fn birth_or_leader<T>(
        &self,
        leader: &std::sync::Mutex<Option<std::sync::Arc<ChildHandle>>>,
        mut at_birth: impl FnMut() -> Option<T>,
        with_leader: impl FnOnce(Option<std::sync::Arc<ChildHandle>>) -> T,
    ) -> T {
        let mut nap = std::time::Duration::from_micros(50);
        loop {
            if let Some(answer) = at_birth() {
                return answer;
            }
            // No birth is published where the mutex is the only wait.
            if self.kind.is_portable() || cfg!(not(target_os = "linux")) {
                let held = leader.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return with_leader(held);
            }
            let held = match leader.try_lock() {
                Ok(held) => held.clone(),
                Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner().clone(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(std::time::Duration::from_millis(5));
                    continue;
                }
            };
            return with_leader(held);
        }
    }

    /// What the group reaches (see [`Scope`]): its process group (its
    /// leader's pid, or while the group's first start waits for its
    /// `exec`, the pid of its child, which is to lead it: see
    /// [`birth_or_leader`](Self::birth_or_leader)), or its leader's pty
    /// session (see [`session_scope`](Self::session_scope)); nothing
    /// before its first start.
    pub(super) fn scope(&self) -> Option<Scope> {
        match &self.kind {
            Kind::Pgroup { leader, .. } => self.birth_or_leader(
                leader,
                || self.at_birth(|pid| Some(Scope::Pgroup(pid))),
                |leader| leader.map(|l| self.session_scope(&l)),
            ),
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => None,
        }
    }

    /// The group's first process while its start waits for its `exec`,
    /// unless it has exited: a member, whether it has made its process
    /// group yet or not.
    pub(super) fn member_at_birth(&self) -> Option<i32> {
        #[cfg(target_os = "linux")]
        return self
            .at_birth(|pid| (!super::linux::procfs::exited(pid)).then_some(pid))
            .flatten();
        #[cfg(not(target_os = "linux"))]
        None
    }

    /// What `adopt` may move a process into (see [`Joinable`]): waits for
    /// a first start under way, but not for one whose child is stopped
    /// before its `exec`, which may never run on.
    pub(super) fn joinable(&self) -> Joinable {
        match &self.kind {
            Kind::Pgroup { leader, .. } => self.birth_or_leader(
                leader,
                || {
                    #[cfg(target_os = "linux")]
                    if self.at_birth(|pid| {
                        matches!(super::linux::procfs::stat(pid), Ok(('T' | 't', _)))
                    }) == Some(true)
                    {
                        return Some(Joinable::FirstStopped);
                    }
                    None
                },
                |leader| leader.map_or(Joinable::Empty, |l| Joinable::Pgid(l.pid())),
            ),
            #[cfg(target_os = "linux")]
            Kind::Cgroup(_) => Joinable::Empty,
        }
    }

    /// `f` of the pid of the group's first process while its start waits
    /// for its `exec` (see `birth.rs`; `f` runs while that child is not
    /// reaped); `None` when no such start is under way. A child not born
    /// yet is waited for, as [`signal_birth`](Self::signal_birth) does.
    #[cfg(target_os = "linux")]
    fn at_birth<T>(&self, f: impl FnOnce(i32) -> T) -> Option<T> {
        use super::linux::birth::Reach;
        let Kind::Pgroup { birth, .. } = &self.kind else {
            return None;
        };
        let mut f = Some(f);
        loop {
            let held = birth.lock().unwrap_or_else(|e| e.into_inner());
            match held.as_ref()?.with_pid(|pid| f.take().map(|f| f(pid))) {
                Ok(answer) => return answer,
                Err(Reach::NotYet) => {}
                Err(_) => return None,
            }
            drop(held);
            std::thread::yield_now();
        }
    }

    /// No birth is published here (see `birth.rs`).
    #[cfg(not(target_os = "linux"))]
    fn at_birth<T>(&self, _f: impl FnOnce(i32) -> T) -> Option<T> {
        None
    }

    /// Sends `sig` to the group's first process while its start waits for
    /// its `exec` (see `birth.rs`): whether there is one it reached, and
    /// the signal's result. A child not born yet is waited for (its clone
    /// is under way: it takes no longer than the kernel's work), so that no
    /// kill misses a child that would then stop before its `exec`.
    #[cfg(target_os = "linux")]
    pub(super) fn signal_birth(&self, sig: i32) -> (bool, io::Result<()>) {
        use super::linux::birth::Reach;
        let Kind::Pgroup { birth, .. } = &self.kind else {
            return (false, Ok(()));
        };
        loop {
            let held = birth.lock().unwrap_or_else(|e| e.into_inner());
            let Some(b) = held.as_ref() else {
                return (false, Ok(()));
            };
            match b.signal(sig) {
                (Reach::Sent, r) => return (true, r),
                (Reach::Unreachable, _) => return (false, Ok(())),
                (Reach::NotYet, _) => {}
            }
            drop(held);
            std::thread::yield_now();
        }
    }

    /// Publishes the birth of the group's first process (see `birth.rs`)
    /// until [`end_birth`](Self::end_birth); called by its start, which
    /// holds the leader's mutex.
    #[cfg(target_os = "linux")]
    pub(super) fn begin_birth(&self) -> Option<std::sync::Arc<super::linux::birth::Birth>> {
        let Kind::Pgroup { birth, .. } = &self.kind else {
            return None;
        };
        let b = std::sync::Arc::new(super::linux::birth::Birth::default());
        *birth.lock().unwrap_or_else(|e| e.into_inner()) = Some(b.clone());
        Some(b)
    }

    /// Unpublishes the birth once its start has returned (the start took
    /// the child's pidfd back already, see `Birth::take_back`).
    #[cfg(target_os = "linux")]
    pub(super) fn end_birth(&self) {
        if let Kind::Pgroup { birth, .. } = &self.kind {
            birth.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }
}

/// What a process group may move a process into (`adopt`).
pub(super) enum Joinable {
    /// The process group of that number.
    Pgid(i32),
    /// Nothing: the group has no process of its own yet.
    Empty,
    /// Nothing: its first process is stopped before its `exec`. Its start
    /// may never end, and a process moved into the process group that
    /// child is to lead would outlive a start that then fails, out of the
    /// group's reach. (Only Linux publishes a first process's birth.)
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    FirstStopped,
}

/// Sends `sig` to the process group `leader` led and, through its handle,
/// to `leader` itself if it runs outside that group and outside `current`
/// (the group's process group now, which is signalled on its own): never
/// twice to one process.
fn signal_led(leader: &ChildHandle, sig: i32, current: Option<i32>) -> io::Result<()> {
    if matches!(leader.try_status(), Ok(None)) {
        let now = super::unix::pgroup::group_of(leader.pid());
        if now != Some(leader.pid()) && (current.is_none() || now != current) {
            let _ = leader.signal(sig);
        }
    }
    leader.signal_group(sig)
}
