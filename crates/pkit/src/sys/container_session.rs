//! A pty-led process group's session: the sweep that reaches the jobs a
//! job-control shell on the pty put in process groups of their own.
//!
//! A group whose leader was started leading a session of its own (a
//! pty) takes in that whole session (see [`Scope`]): its number is the
//! leader's pid, and its members are found by asking every process its
//! session (one `getsid` each, only for such groups). The answer is
//! exact while the leader is unreaped: its zombie keeps the number from
//! being reused, and a session is entered only by a fork from a member,
//! so every process in it descends from our leader. A member that calls
//! `setsid` itself leaves the session, and escapes (only a cgroup holds
//! it then).

use std::collections::HashSet;
use std::io;

use super::container::Container;
use super::unix::pgroup::group_of;
use super::unix::ptable::{self, Scope};
use super::ChildHandle;

/// How many passes a teardown without a wait (`Drop`) makes over the
/// session: a killed parent can't fork afterwards (a fork with a fatal
/// signal pending is aborted), so a second pass finds at most what forked
/// during the first.
const SWEEPS: usize = 4;

impl Container {
    /// What the group led by `leader` reaches (see [`leader_scope`]).
    pub(super) fn session_scope(&self, leader: &ChildHandle) -> Scope {
        leader_scope(leader, self.leader_started_session())
    }

    /// Sends `sig` to the members of session `sid` outside its process
    /// group `sid` (the process group's signal reached those), but those
    /// in `skip`: the pids it signalled.
    pub(super) fn signal_session(
        &self,
        sid: i32,
        sig: i32,
        skip: &HashSet<i32>,
    ) -> io::Result<Vec<i32>> {
        let scope = Scope::Session(sid);
        let mut sent = Vec::new();
        for pid in ptable::members(scope)? {
            if skip.contains(&pid) || group_of(pid) == Some(sid) {
                continue;
            }
            if self.signal_member(pid, scope, sig) {
                sent.push(pid);
            }
        }
        Ok(sent)
    }

    /// SIGKILL to those of `members` (listed in session `sid`) outside its
    /// process group: the close's turns catch so a job forked while the
    /// first kill went round.
    pub(super) fn kill_session_members(&self, sid: i32, members: &[i32]) {
        for &pid in members.iter().filter(|&&p| group_of(p) != Some(sid)) {
            self.signal_member(pid, Scope::Session(sid), libc::SIGKILL);
        }
    }

    /// For a pty-led group: SIGKILL to its session, pass after pass, until
    /// a pass reaches no live member it hadn't signalled already (at most
    /// [`SWEEPS`]). The teardown of `Drop`, which can't wait, makes them
    /// after its `kill`, so that a job forked during that kill's pass
    /// doesn't outlive the group.
    pub(super) fn sweep_session(&self) {
        let Some(Scope::Session(sid)) = self.scope() else {
            return;
        };
        let mut seen = HashSet::new();
        for _ in 0..SWEEPS {
            match self.signal_session(sid, libc::SIGKILL, &seen) {
                Ok(sent) if !sent.is_empty() => seen.extend(sent),
                _ => break,
            }
        }
    }

    /// Polls until none of `pids` is a running member of `scope` any more,
    /// or `deadline`; how many still are.
    pub(super) async fn poll_members(
        pids: &[i32],
        scope: Scope,
        deadline: tokio::time::Instant,
    ) -> usize {
        let left = || {
            pids.iter()
                .filter(|&&p| ptable::is_live_member(p, scope))
                .count()
        };
        super::nap::poll_until(|| left() == 0, Some(deadline)).await;
        left()
    }

    /// Sends `sig` to `pid`, listed as a member of `scope`, if it still is
    /// one: through a pidfd opened and then checked (never a reused
    /// number) where the group holds its children so, else by number
    /// after the check (a window of microseconds, as for the portable
    /// backend's process groups). Whether it was sent.
    pub(super) fn signal_member(&self, pid: i32, scope: Scope, sig: i32) -> bool {
        #[cfg(target_os = "linux")]
        if self.holds_pidfds() {
            use rustix::process::{pidfd_open, Pid, PidfdFlags};
            use std::os::fd::AsFd;
            let Some(id) = Pid::from_raw(pid) else {
                return false;
            };
            match pidfd_open(id, PidfdFlags::empty()) {
                Ok(fd) => {
                    return scope.holds(pid)
                        && super::linux::signal::pidfd_signal(fd.as_fd(), sig).is_ok();
                }
                Err(rustix::io::Errno::SRCH) => return false,
                // No descriptor free: by number, as below.
                Err(_) => {}
            }
        }
        ptable::is_live_member(pid, scope) && super::unix::pgroup::kill(pid, sig).is_ok()
    }
}

/// What the group led by `leader` reaches: its session when the leader
/// was started leading one (`session`: a pty), else its process group.
/// The session is ours only while the leader's pid is pinned: a leader
/// the owner has not reaped (a zombie at worst) holds it. A leader the
/// kernel reaped (the owner ignores SIGCHLD) pins nothing: its number may
/// already be a stranger's session (a daemon's fork, `setsid`, fork and
/// exit leaves a live session whose leader pid nobody holds: rv28), so
/// then only the process group is reached, as before the sweep existed.
/// Never the owner's own session ([`ptable::sweepable`]): the one check
/// every session scope passes.
pub(super) fn leader_scope(leader: &ChildHandle, session: bool) -> Scope {
    let n = leader.pid();
    match session && !leader.reaped_by_kernel() && ptable::sweepable(n) {
        true => Scope::Session(n),
        false => Scope::Pgroup(n),
    }
}
