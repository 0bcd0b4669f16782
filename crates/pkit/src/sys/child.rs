//! A spawned child, however it is held: by its pidfd (Linux) or by its
//! pid alone (the portable backend: macOS, the BSDs, and Linux when forced
//! with `PKIT_MECHANISM=portable`).

use std::io;
#[cfg(target_os = "linux")]
use std::sync::Arc;

#[cfg(target_os = "linux")]
use super::linux::child::PidfdChild;
pub(crate) use super::types::Usage;
use super::unix::child::PortableChild;
use super::ExitStatus;

/// A child process we spawned and have not yet reaped.
#[derive(Debug)]
pub(crate) enum ChildHandle {
    /// Held by a pidfd.
    #[cfg(target_os = "linux")]
    Pidfd(PidfdChild),
    /// Held by its pid, waited for through SIGCHLD.
    Portable(PortableChild),
}

impl ChildHandle {
    pub(crate) fn pid(&self) -> i32 {
        match self {
            #[cfg(target_os = "linux")]
            ChildHandle::Pidfd(c) => c.pid(),
            ChildHandle::Portable(c) => c.pid(),
        }
    }

    /// Whether the child is held by its pid alone (the portable backend).
    #[cfg(target_os = "linux")]
    pub(crate) fn is_portable(&self) -> bool {
        matches!(self, ChildHandle::Portable(_))
    }

    /// The child's pidfd, when it is held by one.
    #[cfg(target_os = "linux")]
    pub(crate) fn pidfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match self {
            ChildHandle::Pidfd(c) => Some(c.pidfd()),
            ChildHandle::Portable(_) => None,
        }
    }

    /// The exit status if the child has exited, without blocking or reaping.
    pub(crate) fn try_status(&self) -> io::Result<Option<ExitStatus>> {
        match self {
            #[cfg(target_os = "linux")]
            ChildHandle::Pidfd(c) => c.try_status(),
            ChildHandle::Portable(c) => c.try_status(),
        }
    }

    /// [`try_status`](Self::try_status) for a wait that saw the child's
    /// pidfd ready: reaps it in the same call when
    /// [`reap_when_seen`](Self::reap_when_seen) was asked (see
    /// `PidfdChild::seen_status`).
    #[cfg(target_os = "linux")]
    pub(crate) fn seen_status(&self) -> io::Result<Option<ExitStatus>> {
        match self {
            ChildHandle::Pidfd(c) => c.seen_status(),
            ChildHandle::Portable(c) => c.try_status(),
        }
    }

    /// Whether the child was reaped by someone else (this process ignores
    /// SIGCHLD), so that its pid, and the process group it led, may be
    /// gone.
    pub(crate) fn reaped_by_kernel(&self) -> bool {
        match self {
            #[cfg(target_os = "linux")]
            ChildHandle::Pidfd(c) => c.reaped_by_kernel(),
            ChildHandle::Portable(c) => c.reaped_by_kernel(),
        }
    }

    /// Whether the child has ended: reaped by someone else
    /// ([`reaped_by_kernel`](Self::reaped_by_kernel)) or exited. A process
    /// group whose leader has ended and that no member holds is gone (a
    /// leader that left its group before it ended leaves no zombie in it).
    pub(crate) fn ended(&self) -> bool {
        self.reaped_by_kernel() || matches!(self.try_status(), Ok(Some(_)))
    }

    /// Whether the child, the leader of a process group, runs in another
    /// process group now (it moved with `setpgid`, or `setsid` after that).
    /// Exact: it is running, so unreaped, and its number is its own.
    pub(crate) fn left_group(&self) -> bool {
        matches!(self.try_status(), Ok(None))
            && !self.reaped_by_kernel()
            && super::unix::pgroup::group_of(self.pid()) != Some(self.pid())
    }

    /// Whether the child leads a session (its session id is its pid). Its
    /// number names it only while it is unreaped, so that is asked before
    /// and after: a child reaped in between may have handed its number to
    /// a stranger, whose session says nothing about ours. (The session id
    /// is 0 when its leader is outside this pid namespace: never a pid.)
    pub(crate) fn leads_session(&self) -> bool {
        !self.reaped_by_kernel()
            && super::unix::pgroup::session_of(self.pid()) == Some(self.pid())
            && !self.reaped_by_kernel()
    }

    /// CPU time and peak memory of the exited child; `None` while it runs,
    /// or where the wait that keeps it a zombie can't report them (the
    /// portable backend).
    pub(crate) fn rusage(&self) -> Option<Usage> {
        match self {
            #[cfg(target_os = "linux")]
            ChildHandle::Pidfd(c) => c.rusage(),
            ChildHandle::Portable(_) => None,
        }
    }

    /// Whether the child was reaped by [`reap_if_exited`](Self::reap_if_exited)
    /// (its pid may then name another process).
    pub(crate) fn reaped(&self) -> bool {
        match self {
            #[cfg(target_os = "linux")]
            ChildHandle::Pidfd(c) => c.reaped(),
            ChildHandle::Portable(c) => c.reaped(),
        }
    }

    /// Reaps the child now if it has exited, keeping its status and usage
    /// for later questions; whether it is reaped. A child held by its pid
    /// alone is then never signalled or asked about by number again (see
    /// `PortableChild::reap_if_exited`).
    pub(crate) fn reap_if_exited(&self) -> bool {
        match self {
            #[cfg(target_os = "linux")]
            ChildHandle::Pidfd(c) => c.reap_if_exited(),
            ChildHandle::Portable(c) => c.reap_if_exited(),
        }
    }

    /// Has a wait that sees the exit reap it (a pidfd-held child only; see
    /// `PidfdChild::reap_when_seen`).
    #[cfg(target_os = "linux")]
    pub(crate) fn reap_when_seen(&self) {
        if let ChildHandle::Pidfd(c) = self {
            c.reap_when_seen();
        }
    }

    /// Whether any process still belongs to the process group this child
    /// leads, asked exactly through its pidfd; `None` where that can't be
    /// asked (a kernel before 6.9, a child held by its pid alone).
    #[cfg(target_os = "linux")]
    pub(crate) fn group_occupied(&self) -> Option<bool> {
        match self {
            ChildHandle::Pidfd(c) => c.group_occupied(),
            ChildHandle::Portable(_) => None,
        }
    }

    /// Waits for the child to exit.
    pub(crate) async fn wait(&self) -> io::Result<ExitStatus> {
        match self {
            #[cfg(target_os = "linux")]
            ChildHandle::Pidfd(c) => c.wait().await,
            ChildHandle::Portable(c) => c.wait().await,
        }
    }

    /// Runs `work` (an end of the child's tree under way) and reaps the
    /// child as soon as it exits meanwhile, keeping its status and usage
    /// (see [`reap_if_exited`](Self::reap_if_exited)): a child that exits on
    /// the end's first signal while a descendant ignores it is not kept a
    /// zombie for the rest of the grace. Only for a child whose number
    /// nothing asks for after its exit (a cgroup's: see
    /// `ProcTree::reaps_root_early`).
    pub(crate) async fn reaped_during<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        tokio::select! {
            out = work => out,
            () = self.reap_at_exit() => unreachable!("never completes"),
        }
    }

    /// Waits for the child's exit and reaps it (see
    /// [`reaped_during`](Self::reaped_during)), then never completes (nor
    /// after a wait that failed: the child is then left to its handle).
    pub(crate) async fn reap_at_exit(&self) {
        if self.wait().await.is_ok() {
            self.reap_if_exited();
        }
        std::future::pending().await
    }

    /// Waits for the child to exit, as [`wait`](Self::wait) does, and
    /// hands back with the status the registration it waited on (a
    /// pidfd-held child's; `None` for one held by its pid, or when a wait of
    /// its own is registered already): the caller drops it once it has
    /// passed the status on, so that the reactor's deregistration (an
    /// `epoll_ctl`) comes after the hand-over, not before it.
    #[cfg(target_os = "linux")]
    pub(crate) async fn wait_keeping(
        self: Arc<Self>,
    ) -> (io::Result<ExitStatus>, Option<KeptWatch>) {
        let ChildHandle::Pidfd(c) = &*self else {
            return (self.wait().await, None);
        };
        if let Some(s) = c.cached() {
            return (Ok(s), None);
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(&c.pidfd());
        let interest = tokio::io::Interest::READABLE;
        // SAFETY: the registration lives no longer than this share of the
        // handle: dropped before `self` if this future is dropped midway (a
        // local goes before the arguments), else kept in a `KeptWatch` with
        // `self` (its `child`, dropped after its `afd`, which its drop takes
        // and drops first). A `PidfdChild`'s
        // pidfd is only taken out and closed by its `Drop`, so the
        // descriptor stays open, and names the same pidfd, for as long as
        // the registration lives; `FdNumber::as_raw_fd` always returns that
        // same number.
        let afd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(super::linux::FdNumber(fd), interest)
        };
        let afd = match afd {
            Ok(afd) => afd,
            // Registered already (another wait): a wait of its own.
            Err(_) => return (self.wait().await, None),
        };
        // Not reaped here even when asked (see `reap_when_seen`): the
        // status is handed on first, and the `KeptWatch`'s drop reaps.
        let status = c.wait_on(&afd).await;
        let kept = KeptWatch {
            afd: Some(afd),
            child: self,
        };
        (status, Some(kept))
    }

    /// Sends `sig` to the child (nothing happens once it has exited).
    pub(crate) fn signal(&self, sig: i32) -> io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            ChildHandle::Pidfd(c) => c.signal(sig),
            ChildHandle::Portable(c) => c.signal(sig),
        }
    }

    /// Sends `sig` to the process group this child leads; no member left
    /// is not an error.
    pub(crate) fn signal_group(&self, sig: i32) -> io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            ChildHandle::Pidfd(c) => c.signal_group(sig),
            ChildHandle::Portable(c) => c.signal_group(sig),
        }
    }
}

/// A pidfd's registration with the reactor kept past the wait on it (see
/// [`ChildHandle::wait_keeping`]). Dropping it deregisters the pidfd, then
/// reaps the child when it was asked to be reaped once seen
/// (`PidfdChild::reap_when_seen`) and has exited: after the status was
/// handed on, so off the waiter's path (a waiter that reaps first finds it
/// reaped, or waits for this reap, and this one then finds it reaped), and
/// after the deregistration, since a reap makes a registered pidfd report
/// again. The share of the child it holds is dropped last, so the pidfd is
/// open until then.
#[cfg(target_os = "linux")]
pub(crate) struct KeptWatch {
    /// Taken (and dropped) first by the drop.
    afd: Option<tokio::io::unix::AsyncFd<super::linux::FdNumber>>,
    child: Arc<ChildHandle>,
}

#[cfg(target_os = "linux")]
impl Drop for KeptWatch {
    fn drop(&mut self) {
        drop(self.afd.take());
        if let ChildHandle::Pidfd(c) = &*self.child {
            if c.reaps_when_seen() {
                c.reap_if_exited();
            }
        }
    }
}
