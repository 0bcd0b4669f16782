//! Registering a new process group's leader with the owner-death guard
//! (split from `place.rs`).

use super::guard;
use super::ChildHandle;

/// Whether Linux's guard is to sweep the session of a leader started
/// leading one (`setsid`: a pty). Not when this process lets the kernel
/// reap its children (SIGCHLD ignored, or `SA_NOCLDWAIT`): a leader the
/// kernel reaped frees its number, which a stranger's session may bear by
/// the time the owner dies (a daemon's fork, `setsid`, fork and exit), and
/// the guard could not tell that session from what is left of ours. (A
/// disposition changed after the registration is not seen.)
#[cfg(target_os = "linux")]
pub(super) fn guard_session(setsid: bool) -> bool {
    if !setsid {
        return false;
    }
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a query (no new action) into a zeroed `sigaction` we own.
    let rc = unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), old.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: `sigaction` returned 0, so it filled `old`.
    let old = unsafe { old.assume_init() };
    old.sa_sigaction != libc::SIG_IGN && old.sa_flags & libc::SA_NOCLDWAIT == 0
}

/// The session a new group's leader is in, for the portable guard: its
/// own when it leads one (a pty session), else `None` (the owner's). Asked
/// while the leader is unreaped, so its number is exact.
#[cfg(unix)]
fn leader_session(leader: &ChildHandle) -> Option<i32> {
    leader.leads_session().then_some(leader.pid())
}

/// Registers a process group's leader with the guard, which on Linux
/// holds the leader's pidfd (opened here for a pid-held child: exact, as
/// the child is unreaped). `session`: the leader was started leading a
/// session of its own (a pty), which Linux's guard sweeps too (the
/// portable guard asks the leader, see [`leader_session`]).
#[cfg(target_os = "linux")]
pub(super) fn register_pgroup(
    g: &guard::Guard,
    leader: &ChildHandle,
    session: bool,
) -> Result<guard::Ticket, String> {
    if g.is_portable() {
        return g.register_pgroup_number(leader.pid(), leader_session(leader));
    }
    match leader.pidfd() {
        Some(fd) => g.register_pgroup(fd, leader.pid(), session),
        None => {
            let pid = rustix::process::Pid::from_raw(leader.pid())
                .ok_or_else(|| "no leader pid".to_string())?;
            let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
                .map_err(|e| format!("pidfd_open of the group's leader: {e}"))?;
            g.register_pgroup(std::os::fd::AsFd::as_fd(&fd), leader.pid(), session)
        }
    }
}

/// Registers a process group's leader with the (portable) guard, by
/// number.
#[cfg(all(unix, not(target_os = "linux")))]
pub(super) fn register_pgroup(
    g: &guard::Guard,
    leader: &ChildHandle,
    _session: bool,
) -> Result<guard::Ticket, String> {
    g.register_pgroup_number(leader.pid(), leader_session(leader))
}
