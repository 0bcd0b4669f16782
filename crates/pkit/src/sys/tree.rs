//! One started process and everything it spawns, inside its group: what a
//! started process's `timeout`, `grace` and cancel token end.
//!
//! - cgroup v2: the process is born in a leaf sub-cgroup of its own
//!   ([`Leaf`]); its whole subtree is exactly that leaf and what is below
//!   it, whatever its processes do (`setsid` included). The group's first
//!   started process is born in the group's own directory instead (see
//!   [`Leaves`]); its subtree is that directory and what is below it, less
//!   the later processes' leaves — while the directory is the group's:
//!   once the closed group's directory went to the pool of spares, it acts
//!   on nothing (see [`Tenure`]).
//! - process group: the group's processes share one process group, so a
//!   process's subtree is found by following parent links among the
//!   members (a `/proc` scan) and signalled through pidfds. A descendant
//!   that is re-parented (its parent exited first) or that left the process
//!   group is not found: the group's own teardown still ends the first, not
//!   the second. An end's first signal goes to the members found then,
//!   and those are waited for and killed after the grace even when that
//!   end is resumed after their parent exited (see [`Signalled`]).

#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

#[cfg(target_os = "linux")]
use super::linux::cgroup::Tenure;
#[cfg(target_os = "linux")]
use super::linux::leaf::{Leaf, Leaves};
#[cfg(target_os = "linux")]
use super::linux::subtree::Reach;
#[cfg(target_os = "linux")]
use super::linux::{child, signal::pidfd_signal};
use super::tree_signalled::{Reached, Signalled};
use super::unix::ptable::{self, Scope};
use super::ChildHandle;
#[cfg(target_os = "linux")]
use std::path::PathBuf;

/// A started process's subtree (see the module docs).
#[derive(Debug)]
pub(crate) enum ProcTree {
    /// Its own sub-cgroup, and the started process itself (`root`: see
    /// [`escaped_root`](Self::escaped_root)).
    #[cfg(target_os = "linux")]
    Leaf(Leaf, Arc<ChildHandle>),
    /// The group's own cgroup directory `dir`, less the leaves of the
    /// group's later processes (the group's first started process, `root`),
    /// while the group holds the directory (`tenure`).
    #[cfg(target_os = "linux")]
    GroupDir {
        dir: PathBuf,
        leaves: Arc<Leaves>,
        tenure: Arc<Tenure>,
        root: Arc<ChildHandle>,
    },
    /// Its descendants in the group's process group, or for a pty-led
    /// group's leader its whole session (`scope`); `signalled`: those an
    /// end under way sent its first signal to.
    Pgroup {
        root: Arc<ChildHandle>,
        scope: Scope,
        signalled: Signalled,
    },
}

impl ProcTree {
    /// The subtree of `root`, started in `scope`: its process group, or
    /// the session a pty-led group's leader leads (all of it).
    pub(crate) fn pgroup(root: Arc<ChildHandle>, scope: Scope) -> ProcTree {
        ProcTree::Pgroup {
            root,
            scope,
            signalled: Signalled::default(),
        }
    }

    /// Whether the root may be reaped as soon as it exits while an end of
    /// the subtree goes on: a cgroup's subtree is listed from its cgroup,
    /// its root reached through its pidfd, never by number. Not a process
    /// group's: its members are found by their parents' numbers (a reaped
    /// root's could name a process of another subtree), and a group's first
    /// process's number is the group's id, kept by its zombie until the end.
    pub(crate) fn reaps_root_early(&self) -> bool {
        match self {
            #[cfg(target_os = "linux")]
            ProcTree::Leaf(..) | ProcTree::GroupDir { .. } => true,
            ProcTree::Pgroup { .. } => false,
        }
    }

    /// The started process itself when it is still running and was not
    /// among `reached`, the members a pass over its sub-cgroup found: a
    /// program run as root can write its pid into any other cgroup. It is
    /// still our unreaped child, held by its pidfd, so it is still
    /// signalled, exactly; its descendants outside are not found. No second
    /// walk over the subtree: the pass that signalled it says who was in.
    /// (A process group's root is always signalled through its handle.)
    #[cfg(target_os = "linux")]
    fn escaped_root<'a>(
        root: &'a Arc<ChildHandle>,
        reached: &[i32],
    ) -> Option<&'a Arc<ChildHandle>> {
        (matches!(root.try_status(), Ok(None)) && !reached.contains(&root.pid())).then_some(root)
    }

    /// Sends `sig` to the root through its handle where the pass that
    /// `reached` the subtree's members did not (see
    /// [`escaped_root`](Self::escaped_root)), or failed.
    #[cfg(target_os = "linux")]
    fn signal_escaped(root: &Arc<ChildHandle>, reached: &std::io::Result<Vec<i32>>, sig: i32) {
        let reached = reached.as_deref().unwrap_or(&[]);
        if let Some(root) = Self::escaped_root(root, reached) {
            let _ = root.signal(sig);
        }
    }

    /// Pidfds of a group directory's subtree (see [`ProcTree::GroupDir`]):
    /// of its live processes, each checked to name a member (never a
    /// reused pid), at `reach` (nested pkit groups left out or not), and of
    /// its root if it is running and was not among them
    /// ([`escaped_root`](Self::escaped_root)). An error when any can't be
    /// had (no descriptor free for one, or to list them): a subtree taken
    /// as only those found would leave the rest running.
    #[cfg(target_os = "linux")]
    fn dir_pidfds(
        dir: &std::path::Path,
        leaves: &Leaves,
        tenure: &Tenure,
        root: &Arc<ChildHandle>,
        reach: Reach,
    ) -> std::io::Result<Vec<OwnedFd>> {
        let found = tenure
            .during(|| super::linux::subtree::member_pidfds_but(dir, leaves, reach))
            .unwrap_or_else(|| Ok(Vec::new()))?;
        let pids: Vec<i32> = found.iter().map(|(p, _)| *p).collect();
        let mut fds: Vec<OwnedFd> = found.into_iter().map(|(_, fd)| fd).collect();
        if let Some(p) = Self::escaped_root(root, &pids).and_then(|r| r.pidfd()) {
            fds.push(rustix::io::fcntl_dupfd_cloexec(p, 3)?);
        }
        Ok(fds)
    }

    /// Whether a group directory's subtree has ended: nothing listed in it
    /// and its root exited. Where it can't be listed, its root alone says.
    #[cfg(target_os = "linux")]
    fn dir_ended(
        dir: &std::path::Path,
        leaves: &Leaves,
        tenure: &Tenure,
        root: &ChildHandle,
    ) -> bool {
        let listed = tenure
            .during(|| super::linux::subtree::pids_but(dir, Some(leaves), Reach::All))
            .unwrap_or_else(|| Ok(Vec::new()));
        matches!(root.try_status(), Ok(Some(_))) && listed.is_ok_and(|p| p.is_empty())
    }

    /// A native process group's subtree as pidfds ([`pgroup_pidfds`]);
    /// `None` for any other subtree, and where they can't all be had: the
    /// subtree is then reached as the portable backend's is (the root
    /// through its handle, the others by number after a check), which
    /// needs no descriptor. Always `None` off Linux.
    fn pgroup_fds(&self) -> Option<PgroupFds> {
        match self {
            #[cfg(target_os = "linux")]
            ProcTree::Pgroup { root, scope, .. } if !root.is_portable() => {
                pgroup_pidfds(root, scope_now(root, *scope)).ok()
            }
            _ => None,
        }
    }

    /// Ends the subtree: with `first = Some((sig, deadline))`, sends `sig`
    /// and waits until every process of it has exited or `deadline`
    /// (`None`: no deadline) passes; then SIGKILLs whatever is left.
    /// Returns whether anything was left for SIGKILL after a signal.
    /// `then` runs right after a signal that is followed by SIGCONT (see
    /// [`continues`]) went out, before the wait: the group resumed, if the
    /// caller suspended it.
    ///
    /// An error when the subtree could not be listed or reached (no
    /// descriptor free, under a cgroup not even the reserve's): the root
    /// has been ended through its handle, its descendants may run on, and
    /// nothing says the subtree ended.
    pub(crate) async fn end(
        &self,
        first: Option<(i32, Option<tokio::time::Instant>)>,
        then: &(dyn Fn() + Send + Sync),
    ) -> std::io::Result<bool> {
        match first {
            Some((sig, deadline)) => self.end_as(sig, sig, deadline, then).await,
            None => self.kill().map(|()| false),
        }
    }

    /// [`end`](Self::end) of a subtree that has had `sig` already (its
    /// end was under way in a task dropped with its runtime): the same
    /// wait, for the same processes, until `deadline`, then SIGKILL;
    /// nothing is sent twice.
    pub(crate) async fn end_after(
        &self,
        sig: i32,
        deadline: Option<tokio::time::Instant>,
    ) -> std::io::Result<bool> {
        self.end_as(sig, 0, deadline, &|| ()).await
    }

    /// `end` with `sig` deciding who is waited for and `send` sent (0:
    /// nothing, the processes are only checked to be there: an end
    /// resumed, which under a process group also waits for, and kills,
    /// those its first signal went to: see [`Signalled`]).
    async fn end_as(
        &self,
        sig: i32,
        send: i32,
        deadline: Option<tokio::time::Instant>,
        then: &(dyn Fn() + Send + Sync),
    ) -> std::io::Result<bool> {
        // Only a cgroup's listing tells apart whom the signal reaches.
        #[cfg(not(target_os = "linux"))]
        let _ = sig;
        let mut listed = Ok(());
        let signalled = match self {
            ProcTree::Pgroup { signalled, .. } => Some(signalled),
            #[cfg(target_os = "linux")]
            _ => None,
        };
        // Resumed: what the first signal went to. Begun: what it goes to
        // (noted before it is sent).
        let before = signalled.filter(|_| send == 0).and_then(Signalled::get);
        let mut noted = None;
        let mut note = |reached: Reached| {
            let reached = Arc::new(reached);
            if let (Some(s), true) = (signalled, send != 0) {
                s.note(&reached);
                noted = Some(reached.clone());
            }
            reached
        };
        let pg_fds = self.pgroup_fds();
        // A resumed end goes the way its first signal went: through the
        // pidfds it had (even where no fresh ones can be had), or by number.
        #[cfg(target_os = "linux")]
        let pg_fds = match &before {
            Some(b) if !b.fds.is_empty() => Some(pg_fds.unwrap_or_default()),
            Some(b) if !b.pids.is_empty() => None,
            _ => pg_fds,
        };
        let left = match self {
            ProcTree::Pgroup { root, scope, .. } if pg_fds.is_none() => {
                let mut pids = match portable_pids(root, scope_now(root, *scope)) {
                    Ok(pids) => pids,
                    Err(e) => {
                        listed = Err(e);
                        vec![root.pid()]
                    }
                };
                for &p in before.iter().flat_map(|b| &b.pids) {
                    if !pids.contains(&p) {
                        pids.push(p);
                    }
                }
                let reached = note(Reached::by_number(pids));
                let pids = &reached.pids;
                portable_signal(root, scope_now(root, *scope), pids, send);
                if continues(send) {
                    portable_signal(root, scope_now(root, *scope), pids, libc::SIGCONT);
                    then();
                }
                let left = || {
                    pids.iter()
                        .filter(|&&p| match p == root.pid() {
                            true => !matches!(root.try_status(), Ok(Some(_))),
                            false => ptable::is_live_member(p, scope_now(root, *scope)),
                        })
                        .count()
                };
                let left = !super::nap::poll_until(|| left() == 0, deadline).await;
                portable_signal(root, scope_now(root, *scope), pids, libc::SIGKILL);
                left
            }
            // A leaf whose root left it: the root's exit is waited for
            // too (through a copy of its pidfd).
            #[cfg(target_os = "linux")]
            ProcTree::Leaf(leaf, root) => {
                let reached = leaf.signal(send).unwrap_or_else(|e| {
                    listed = Err(e);
                    Vec::new()
                });
                if continues(send) {
                    let _ = leaf.signal(libc::SIGCONT);
                }
                let outside = Self::escaped_root(root, &reached);
                if let Some(r) = outside {
                    let _ = r.signal(send);
                    if continues(send) {
                        let _ = r.signal(libc::SIGCONT);
                    }
                }
                if continues(send) {
                    then();
                }
                let root_fd = outside
                    .and_then(|r| r.pidfd())
                    .and_then(|p| rustix::io::fcntl_dupfd_cloexec(p, 3).ok());
                let root_gone = || root_fd.as_ref().is_none_or(child::pidfd_exited_now);
                let both = async {
                    let r = leaf.wait_empty().await;
                    if let Some(fd) = &root_fd {
                        let _ = child::pidfd_exited(fd).await;
                    }
                    r
                };
                tokio::select! {
                    r = both => r.is_err() && !leaf.is_empty(),
                    () = until(deadline) => !leaf.is_empty() || !root_gone(),
                }
            }
            // No kernel event tells when a directory less some of its
            // sub-cgroups is empty: its members' pidfds are waited on.
            // A nested pkit's group is left to its owner (one of the
            // members) until the SIGKILL, which reaches it too. Where not
            // every member can be pinned (no descriptor free for a pidfd),
            // the signal reaches them by number where need be, and the
            // subtree's listing is polled.
            #[cfg(target_os = "linux")]
            ProcTree::GroupDir {
                dir,
                leaves,
                tenure,
                root,
            } if pg_fds.is_none() => {
                match Self::dir_pidfds(dir, leaves, tenure, root, Reach::of(sig)) {
                    Ok(fds) => {
                        let fds = fds.iter().collect::<Vec<_>>();
                        signal_and_wait(&fds, send, deadline, then).await
                    }
                    Err(_) => {
                        listed = self.signal(send);
                        if continues(send) {
                            let _ = self.signal(libc::SIGCONT);
                            then();
                        }
                        let ended = || Self::dir_ended(dir, leaves, tenure, root);
                        !super::nap::poll_until(ended, deadline).await
                    }
                }
            }
            // Found before the signal: once a parent exits, its children
            // are re-parented and no longer found by links (a resumed end
            // has those its first signal went to).
            #[cfg(target_os = "linux")]
            ProcTree::Pgroup { .. } | ProcTree::GroupDir { .. } => {
                let reached = note(Reached {
                    pids: Vec::new(),
                    fds: pg_fds.unwrap_or_default(),
                });
                let earlier = before.iter().flat_map(|b| &b.fds);
                let fds: Vec<&OwnedFd> = reached.fds.iter().chain(earlier).collect();
                signal_and_wait(&fds, send, deadline, then).await
            }
            #[cfg(not(target_os = "linux"))]
            ProcTree::Pgroup { .. } => unreachable!("off Linux every child is held by pid"),
        };
        let killed = self.kill();
        // The SIGKILL went out: nothing is left for a resumed end.
        if let (Some(s), Some(r)) = (signalled, noted.as_ref().or(before.as_ref())) {
            s.forget(r);
        }
        listed.and(killed).map(|()| left)
    }

    /// Sends `sig` to every process of the subtree, now (a process that
    /// exits meanwhile is not an error).
    ///
    /// An error when the subtree could not be listed or a member refused
    /// `sig` (no descriptor free, under a cgroup not even the reserve's):
    /// the root has had `sig` through its handle, its descendants may not.
    pub(crate) fn signal(&self, sig: i32) -> std::io::Result<()> {
        let pg_fds = self.pgroup_fds();
        match self {
            ProcTree::Pgroup { root, scope, .. } if pg_fds.is_none() => {
                portable_signal_tree(root, scope_now(root, *scope), sig)?;
            }
            #[cfg(target_os = "linux")]
            ProcTree::Leaf(leaf, root) => {
                let reached = leaf.signal(sig);
                Self::signal_escaped(root, &reached, sig);
                reached?;
            }
            #[cfg(target_os = "linux")]
            ProcTree::GroupDir {
                dir,
                leaves,
                tenure,
                root,
            } => {
                let reached = tenure
                    .during(|| super::linux::subtree::signal_members_but(dir, sig, Some(leaves)))
                    .unwrap_or_else(|| Ok(Vec::new()));
                Self::signal_escaped(root, &reached, sig);
                reached?;
            }
            #[cfg(target_os = "linux")]
            ProcTree::Pgroup { .. } => {
                for fd in pg_fds.into_iter().flatten() {
                    let _ = pidfd_signal(fd.as_fd(), sig);
                }
            }
            #[cfg(not(target_os = "linux"))]
            ProcTree::Pgroup { .. } => unreachable!("off Linux every child is held by pid"),
        }
        Ok(())
    }

    /// SIGKILLs every process of the subtree, now.
    ///
    /// An error when the subtree could not be listed or reached (no
    /// descriptor free, under a cgroup not even the reserve's): the root
    /// has had the SIGKILL through its handle, its descendants may not.
    pub(crate) fn kill(&self) -> std::io::Result<()> {
        let pg_fds = self.pgroup_fds();
        match self {
            ProcTree::Pgroup { root, scope, .. } if pg_fds.is_none() => {
                portable_signal_tree(root, scope_now(root, *scope), libc::SIGKILL)?;
            }
            // The root through its handle too: exact, and it may have
            // left the cgroup (see `escaped_root`).
            #[cfg(target_os = "linux")]
            ProcTree::Leaf(leaf, root) => {
                let _ = root.signal(libc::SIGKILL);
                leaf.kill()?;
            }
            #[cfg(target_os = "linux")]
            ProcTree::GroupDir {
                dir,
                leaves,
                tenure,
                root,
            } => {
                let _ = root.signal(libc::SIGKILL);
                let killed =
                    tenure.during(|| super::linux::subtree::kill_members_but(dir, Some(leaves)));
                killed.unwrap_or(Ok(()))?;
            }
            #[cfg(target_os = "linux")]
            ProcTree::Pgroup { .. } => {
                for fd in pg_fds.into_iter().flatten() {
                    let _ = pidfd_signal(fd.as_fd(), libc::SIGKILL);
                }
            }
            #[cfg(not(target_os = "linux"))]
            ProcTree::Pgroup { .. } => unreachable!("off Linux every child is held by pid"),
        }
        Ok(())
    }
}

/// Sends `sig` through each of `fds` (a subtree's pidfds), waits until
/// every one has exited or `deadline` passes, then SIGKILLs them all;
/// whether any was left for the SIGKILL. `then` runs after a signal
/// followed by SIGCONT, before the wait (see [`ProcTree::end`]).
#[cfg(target_os = "linux")]
async fn signal_and_wait(
    fds: &[&OwnedFd],
    sig: i32,
    deadline: Option<tokio::time::Instant>,
    then: &(dyn Fn() + Send + Sync),
) -> bool {
    for fd in fds {
        let _ = pidfd_signal(fd.as_fd(), sig);
    }
    if continues(sig) {
        for fd in fds {
            let _ = pidfd_signal(fd.as_fd(), libc::SIGCONT);
        }
        then();
    }
    let all = async {
        for fd in fds {
            let _ = child::pidfd_exited(fd).await;
        }
    };
    let left = tokio::select! {
        () = all => false,
        () = until(deadline) => fds.iter().any(|fd| !child::pidfd_exited_now(fd)),
    };
    for fd in fds {
        let _ = pidfd_signal(fd.as_fd(), libc::SIGKILL);
    }
    left
}

/// Whether an end's first signal `sig` is followed by SIGCONT (see
/// [`Signal::continued_after`](crate::Signal::continued_after), which a
/// group's shutdown follows too).
fn continues(sig: i32) -> bool {
    crate::Signal::Raw(sig).continued_after()
}

/// Sleeps until `deadline`, forever without one.
#[cfg(target_os = "linux")]
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// What [`ProcTree::pgroup_fds`] gives: pidfds on Linux, never anything
/// elsewhere.
#[cfg(target_os = "linux")]
type PgroupFds = Vec<OwnedFd>;
#[cfg(not(target_os = "linux"))]
type PgroupFds = std::convert::Infallible;

/// Sends `sig` to a process group's subtree the portable way (see
/// [`portable_signal`]); where it can't be listed, to the root alone
/// (through its handle), then the listing's error.
fn portable_signal_tree(root: &ChildHandle, scope: Scope, sig: i32) -> std::io::Result<()> {
    let found = portable_pids(root, scope);
    let alone = [root.pid()];
    portable_signal(root, scope, found.as_deref().unwrap_or(&alone), sig);
    found.map(drop)
}

/// The portable backend's subtree: the root (our child) and its live
/// descendants in the process group, by pid. An error when they can't be
/// listed (no descriptor free), except where no process group can be
/// listed at all (`Unsupported`: the root alone, as ever).
fn portable_pids(root: &ChildHandle, scope: Scope) -> std::io::Result<Vec<i32>> {
    let mut pids = match ptable::descendants(scope, root.pid()) {
        Ok(pids) => pids,
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Vec::new(),
        Err(e) => return Err(e),
    };
    if !pids.contains(&root.pid()) {
        pids.push(root.pid());
    }
    Ok(pids)
}

/// A native process group's subtree as pidfds: a copy of the root's (our
/// unreaped child's: exact) and one for each descendant, each checked to
/// name a member (never a reused pid). An error when any can't be had (no
/// descriptor free for one, or to list the descendants): a subtree taken
/// as only those found would leave the rest running.
#[cfg(target_os = "linux")]
fn pgroup_pidfds(root: &ChildHandle, scope: Scope) -> std::io::Result<Vec<OwnedFd>> {
    let mut fds = Vec::new();
    if let Some(p) = root.pidfd() {
        fds.push(rustix::io::fcntl_dupfd_cloexec(p, 3)?);
    }
    let found = ptable::descendants(scope, root.pid())?;
    for pid in found.into_iter().filter(|&p| p != root.pid()) {
        let Some(p) = rustix::process::Pid::from_raw(pid) else {
            continue;
        };
        match rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
            // Listed before the pidfd was opened: still a member, not a
            // reused number?
            Ok(fd) => {
                if ptable::is_live_member(pid, scope) {
                    fds.push(fd);
                }
            }
            Err(rustix::io::Errno::SRCH) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(fds)
}

/// Sends `sig` to each of `pids`: the root through its handle (exact: it
/// is unreaped), the others by number after checking that each is still a
/// live member of the group (without pidfds, a member that exits and is
/// reaped between that check and the signal could have its number reused:
/// a window of microseconds, which the Linux pidfd path doesn't have).
fn portable_signal(root: &ChildHandle, scope: Scope, pids: &[i32], sig: i32) {
    for &pid in pids {
        if pid == root.pid() {
            let _ = root.signal(sig);
        } else if ptable::is_live_member(pid, scope) {
            let _ = super::unix::pgroup::kill(pid, sig);
        }
    }
}

/// `scope` as it stands for `root`, its leader (see
/// `container_session::leader_scope`: a session whose leader the kernel
/// reaped and whose number a stranger holds now is not swept).
fn scope_now(root: &ChildHandle, scope: Scope) -> Scope {
    match scope {
        Scope::Session(_) => super::container_session::leader_scope(root, true),
        pgroup => pgroup,
    }
}
