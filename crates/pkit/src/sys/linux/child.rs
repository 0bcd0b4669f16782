//! A spawned child, held by its pidfd: waiting, signalling and reaping
//! without a SIGCHLD handler and without pid-reuse races.
//!
//! Waiting reads the exit status with `WNOWAIT`, leaving the child a zombie
//! until its handle is dropped. That keeps its pid (and, for a process-group
//! leader, its process group id) reserved for as long as pkit might still
//! signal it. Dropping the handle reaps it, or hands it to the reaper thread
//! if it is still running. (A one-shot run under cgroup v2, which nothing
//! signals by number after the exit, has its child reaped by the wait that
//! sees the exit instead: see `PidfdChild::reap_when_seen`; and under
//! cgroup v2 a child that exits while an end of its tree is under way, its
//! grace going on for a descendant, is reaped at its exit: see
//! `ChildHandle::reaped_during`. Under process groups it is not: the end
//! finds descendants by their parents' numbers, and a group leader's
//! zombie keeps the group's number, which killpg and the close's scans of
//! the group use, from reuse.) (Not when the application sets SIGCHLD to
//! `SIG_IGN` or `SA_NOCLDWAIT`: the kernel then reaps every child as it
//! exits, and the exit status is read from the pidfd; see `wait_raw`.)
//!
//! Only pkit's own children are reaped, each through its pidfd: pkit never
//! calls `waitpid(-1)`, which would take the application's other children.
//! So when the application is a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`), descendants of pkit's children that are
//! orphaned (their parent died first) are re-parented to the application
//! and wait for the application to reap them, as any orphan it adopts
//! does; pkit ends them with their group but does not reap them.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::sys::child::Usage;
use crate::sys::ExitStatus;

use super::pidfd_info::PIDFD_INFO_EXIT;

/// A child process we spawned and have not yet reaped.
#[derive(Debug)]
pub(crate) struct PidfdChild {
    pid: i32,
    pidfd: Option<OwnedFd>,
    /// The exit status once read, with the resource usage read with it
    /// (final once the child has exited; `None` when the kernel reaped it).
    status: Mutex<Option<(ExitStatus, Option<Usage>)>>,
    /// Set once reaped by [`reap_if_exited`](Self::reap_if_exited): the
    /// resource usage read by that reap (`None` inside when the kernel had
    /// reaped the child itself).
    reaped: Mutex<Option<Option<Usage>>>,
    /// Set by [`reap_when_seen`](Self::reap_when_seen): the exit is reaped
    /// as soon as a wait sees it, not left a zombie until the drop.
    reap_early: AtomicBool,
}

impl PidfdChild {
    pub(crate) fn new(pid: i32, pidfd: OwnedFd) -> PidfdChild {
        PidfdChild {
            pid,
            pidfd: Some(pidfd),
            status: Mutex::new(None),
            reaped: Mutex::new(None),
            reap_early: AtomicBool::new(false),
        }
    }

    /// From now on a wait that sees the exit reaps it (a wait of its own in
    /// one `waitid` that also reads the status; a worker's kept wait after
    /// it has handed the exit on, see `KeptWatch`), each after the pidfd's
    /// registration with the reactor is dropped, keeping the status
    /// and resource usage as [`reap_if_exited`](Self::reap_if_exited) does.
    /// For a child whose number nothing asks for after its exit: a one-shot
    /// run's under cgroup v2, whose proof that the tree is gone is the
    /// cgroup's `populated 0` (an exiting task leaves its cgroup at its
    /// exit, not at its reap), and which reaps it before it returns anyway.
    /// Never for a process-group leader, whose zombie keeps the group's
    /// number until the group's close.
    pub(crate) fn reap_when_seen(&self) {
        self.reap_early.store(true, Ordering::Relaxed);
    }

    /// Whether [`reap_when_seen`](Self::reap_when_seen) was asked.
    pub(crate) fn reaps_when_seen(&self) -> bool {
        self.reap_early.load(Ordering::Relaxed)
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// The pidfd, taken out by the handle's `Drop` (in `reaper.rs`); the
    /// handle must not be used after.
    pub(super) fn take_pidfd(&mut self) -> Option<OwnedFd> {
        self.pidfd.take()
    }

    /// Whether [`reap_if_exited`](Self::reap_if_exited) has reaped it (as
    /// every process-group leader is at its group's end): its `Drop` then
    /// needs no `waitid` to learn that again.
    pub(super) fn is_reaped(&mut self) -> bool {
        self.reaped
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The child's pidfd (valid while the handle lives).
    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        self.fd()
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.pidfd
            .as_ref()
            .expect("pidfd present until drop")
            .as_fd()
    }

    /// The exit status, once a wait or a check has read it.
    pub(crate) fn cached(&self) -> Option<ExitStatus> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(s, _)| s)
    }

    /// The exit status if the child has exited, without blocking or reaping.
    pub(crate) fn try_status(&self) -> io::Result<Option<ExitStatus>> {
        if let Some(s) = self.cached() {
            return Ok(Some(s));
        }
        let found = wait_raw(self.fd(), libc::WNOHANG | libc::WNOWAIT)?;
        let Some((status, usage)) = found else {
            return Ok(None);
        };
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((status, usage.map(usage_of)));
        Ok(Some(status))
    }

    /// Whether the kernel has already reaped the child itself (this process
    /// ignores SIGCHLD), so that its pid, and the process group it led, may
    /// be gone.
    pub(crate) fn reaped_by_kernel(&self) -> bool {
        let Some(pidfd) = self.pidfd.as_ref() else {
            return false;
        };
        use rustix::process::{waitid, WaitId, WaitIdOptions};
        // WNOWAIT leaves a zombie unreaped.
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        matches!(
            waitid(WaitId::PidFd(pidfd.as_fd()), options),
            Err(rustix::io::Errno::CHILD)
        )
    }

    /// The resource usage of the exited child (with its waited-for
    /// descendants): CPU time and peak resident memory. `None` while it
    /// runs, or once reaped.
    pub(crate) fn rusage(&self) -> Option<Usage> {
        if let Some(kept) = *self.reaped.lock().unwrap_or_else(|e| e.into_inner()) {
            return kept;
        }
        // Read with the exit status (an exited child's usage is final).
        if let Some((_, kept)) = *self.status.lock().unwrap_or_else(|e| e.into_inner()) {
            return kept;
        }
        let pidfd = self.pidfd.as_ref()?;
        let (_, usage) = wait_raw(pidfd.as_fd(), libc::WNOHANG | libc::WNOWAIT).ok()??;
        Some(usage_of(usage?))
    }

    /// Whether [`reap_if_exited`](Self::reap_if_exited) reaped the child:
    /// its pid may then name another process.
    pub(crate) fn reaped(&self) -> bool {
        self.reaped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Reaps the child now if it has exited, keeping its exit status and
    /// resource usage for later questions (which answer as before); whether
    /// it is reaped (by this call, an earlier one, or the kernel).
    ///
    /// For a process-group leader: its group stays reachable through the
    /// pidfd ([`signal_group`](Self::signal_group),
    /// [`group_occupied`](Self::group_occupied)), but no longer by number.
    pub(crate) fn reap_if_exited(&self) -> bool {
        let Some(pidfd) = self.pidfd.as_ref() else {
            return false;
        };
        let mut reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
        if reaped.is_some() {
            return true;
        }
        // Read (and keep) the status first: after the reap, a kernel older
        // than 6.15 could no longer say it.
        if !matches!(self.try_status(), Ok(Some(_))) {
            return false;
        }
        match wait_raw(pidfd.as_fd(), libc::WNOHANG) {
            Ok(Some((_, usage))) => {
                *reaped = Some(usage.map(usage_of));
                true
            }
            Ok(None) => false,
            // ECHILD: the kernel reaped it (this process ignores SIGCHLD).
            Err(_) => {
                *reaped = Some(None);
                true
            }
        }
    }

    /// The exit status if the child has exited, reaping it in the same
    /// `waitid` (no `WNOWAIT`), with its status and resource usage kept as
    /// [`reap_if_exited`](Self::reap_if_exited) keeps them. One system call
    /// where a look and a reap take two.
    fn reap_now(&self) -> io::Result<Option<ExitStatus>> {
        let Some(pidfd) = self.pidfd.as_ref() else {
            return self.try_status();
        };
        let mut reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
        if reaped.is_some() {
            // Reaped only after its status was kept.
            return Ok(self.cached());
        }
        match wait_raw(pidfd.as_fd(), libc::WNOHANG) {
            Ok(Some((status, usage))) => {
                let usage = usage.map(usage_of);
                *self.status.lock().unwrap_or_else(|e| e.into_inner()) = Some((status, usage));
                *reaped = Some(usage);
                Ok(Some(status))
            }
            Ok(None) => Ok(None),
            // ECHILD: the kernel reaped it (this process ignores SIGCHLD):
            // the status is the pidfd's, as for any look.
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                drop(reaped);
                self.try_status()
            }
            Err(e) => Err(e),
        }
    }

    /// The exit status if the child has exited, without blocking: reaped
    /// in the same `waitid` when [`reap_when_seen`](Self::reap_when_seen)
    /// was asked (a wait that saw its pidfd ready, with no reactor
    /// registration to drop first), else left a zombie as by
    /// [`try_status`](Self::try_status).
    pub(crate) fn seen_status(&self) -> io::Result<Option<ExitStatus>> {
        if self.reaps_when_seen() {
            self.reap_now()
        } else {
            self.try_status()
        }
    }

    /// Whether any process still belongs to the process group this child
    /// leads (an exited one not yet reaped by its parent counts), asked
    /// through the pidfd (`PIDFD_SIGNAL_PROCESS_GROUP` with signal 0): exact
    /// whatever became of the leader and its number. `None` where the
    /// kernel can't say (before 6.9).
    pub(crate) fn group_occupied(&self) -> Option<bool> {
        let flag = super::signal::PIDFD_SIGNAL_PROCESS_GROUP;
        match super::signal::pidfd_signal_raw(self.fd(), 0, flag) {
            0 => Some(true),
            libc::ESRCH => Some(false),
            _ => None,
        }
    }

    /// Waits for the child to exit (driven by pidfd readiness in tokio).
    ///
    /// The pidfd itself is registered with the reactor (no status check
    /// first: a pidfd that is readable already reports so at once). Only a
    /// second waiter at the same time registers a duplicate of it.
    pub(crate) async fn wait(&self) -> io::Result<ExitStatus> {
        if let Some(s) = self.cached() {
            return Ok(s);
        }
        if self.reaps_when_seen() {
            return self.wait_and_reap().await;
        }
        let interest = tokio::io::Interest::READABLE;
        match super::register_borrowed(self.fd(), interest) {
            Ok(reg) => self.wait_on(reg.get()).await,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let dup = rustix::io::fcntl_dupfd_cloexec(self.fd(), 3)?;
                self.wait_on(&super::register(dup, interest)?).await
            }
            Err(e) => Err(e),
        }
    }

    /// [`wait`](Self::wait) for a child to be reaped once seen (see
    /// [`reap_when_seen`](Self::reap_when_seen)): the pidfd's readiness
    /// (it polls readable once the child has exited) is awaited, the
    /// registration dropped, and the child reaped in one `waitid`, which
    /// reads its status and usage. In that order: a reap makes the pidfd
    /// report again (`EPOLLHUP`), which would wake the reactor's thread for
    /// nothing while it is registered.
    async fn wait_and_reap(&self) -> io::Result<ExitStatus> {
        let interest = tokio::io::Interest::READABLE;
        loop {
            match super::register_borrowed(self.fd(), interest) {
                Ok(reg) => drop(reg.get().readable().await?),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let dup = rustix::io::fcntl_dupfd_cloexec(self.fd(), 3)?;
                    drop(super::register(dup, interest)?.readable().await?);
                }
                Err(e) => return Err(e),
            }
            if let Some(s) = self.reap_now()? {
                return Ok(s);
            }
        }
    }

    /// Waits for the exit on `afd`, a registration of this child's pidfd
    /// (or of a duplicate of it).
    pub(crate) async fn wait_on<T: AsRawFd>(
        &self,
        afd: &tokio::io::unix::AsyncFd<T>,
    ) -> io::Result<ExitStatus> {
        loop {
            let mut guard = afd.readable().await?;
            if let Some(s) = self.try_status()? {
                return Ok(s);
            }
            guard.clear_ready();
        }
    }

    /// Waits (blocking) until the child exits or `deadline` passes.
    pub(crate) fn wait_blocking(
        &self,
        deadline: Option<Instant>,
    ) -> io::Result<Option<ExitStatus>> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        loop {
            if let Some(s) = self.try_status()? {
                return Ok(Some(s));
            }
            let ts = match deadline {
                None => None,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(None);
                    }
                    let left = d - now;
                    Some(Timespec {
                        tv_sec: left.as_secs() as _,
                        tv_nsec: left.subsec_nanos() as _,
                    })
                }
            };
            let fd = self.fd();
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            match poll(&mut fds, ts.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends `sig` to the child (nothing happens once it has exited).
    pub(crate) fn signal(&self, sig: i32) -> io::Result<()> {
        if self.cached().is_some() {
            return Ok(());
        }
        super::signal::pidfd_signal(self.fd(), sig)
    }
}

impl PidfdChild {
    /// Sends `sig` to the process group this child leads. Through its
    /// pidfd with `PIDFD_SIGNAL_PROCESS_GROUP` (Linux 6.9): the kernel
    /// signals the group of this very process, whatever happened to its
    /// number, so a group whose leader was reaped by the kernel (this
    /// process ignores SIGCHLD) and whose number went to a stranger after
    /// its last member left is never the stranger's. Older kernels: `killpg`
    /// by number, exact while the leader is unreaped (its zombie keeps the
    /// number), which holds unless SIGCHLD is ignored. No member left is not
    /// an error.
    pub(crate) fn signal_group(&self, sig: i32) -> io::Result<()> {
        let flag = super::signal::PIDFD_SIGNAL_PROCESS_GROUP;
        match super::signal::pidfd_signal_flags(self.fd(), sig, flag) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                crate::sys::unix::pgroup::killpg(self.pid, sig)
            }
            other => other,
        }
    }
}

// Dropping a `PidfdChild` reaps it or hands it to the reaper thread: its
// `Drop` is in `reaper.rs`, which sits above this file.

fn usage_of(usage: libc::rusage) -> Usage {
    let tv = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec.max(0) as u64)
            + std::time::Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Usage {
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_bytes: (usage.ru_maxrss.max(0) as u64) * 1024,
    }
}

/// Reaps the child if it has exited; returns whether it is gone.
pub(crate) fn try_reap(pidfd: BorrowedFd<'_>) -> bool {
    match wait_raw(pidfd, libc::WNOHANG) {
        Ok(Some(_)) => true,
        Ok(None) => false,
        // ECHILD: already reaped by someone else; nothing left to do.
        Err(_) => true,
    }
}

/// `waitid(P_PIDFD, pidfd, WEXITED | flags)` with the child's resource
/// usage (the raw system call: libc's wrapper has no rusage argument).
/// `Ok(None)` while it runs (with `WNOHANG`).
///
/// When this process sets SIGCHLD to `SIG_IGN` or `SA_NOCLDWAIT` (servers
/// often do), the kernel reaps children itself as they exit, and `waitid`
/// says `ECHILD`. The exit status then comes from the pidfd, which keeps it
/// on Linux 6.15 and later ([`exit_of_reaped`]); the resource usage is lost.
/// (Spawning with exit signal 0 would not help: the kernel turns a child's
/// exit signal back into SIGCHLD when it execs.)
fn wait_raw(
    pidfd: BorrowedFd<'_>,
    flags: libc::c_int,
) -> io::Result<Option<(ExitStatus, Option<libc::rusage>)>> {
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    loop {
        // Raw: waitid with rusage: rustix's waitid has no rusage argument.
        // SAFETY: the raw waitid(2) with its fifth (rusage) argument. Both
        // out-pointers are valid, zeroed buffers of the kernel's types; the
        // pidfd is borrowed for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_waitid,
                libc::P_PIDFD,
                pidfd.as_raw_fd(),
                info.as_mut_ptr(),
                libc::WEXITED | flags,
                usage.as_mut_ptr(),
            )
        };
        if rc == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ECHILD) if flags & libc::WNOWAIT != 0 => {
                return Ok(exit_of_reaped(pidfd)?.map(|s| (s, None)));
            }
            _ => return Err(err),
        }
    }
    // SAFETY: zero-initialised above and possibly filled by the kernel; both
    // types are plain C structs valid when zeroed.
    let (info, usage) = unsafe { (info.assume_init(), usage.assume_init()) };
    // SAFETY: reading the fields of a siginfo_t filled by waitid (or still
    // zeroed: pid 0 means "not yet" under WNOHANG).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    let status = match info.si_code {
        libc::CLD_EXITED => ExitStatus::Exited(status),
        libc::CLD_KILLED | libc::CLD_DUMPED => ExitStatus::Signalled(status),
        // Only WEXITED is asked for; anything else is not an exit.
        _ => return Ok(None),
    };
    Ok(Some((status, Some(usage))))
}

/// The exit status of a process that exited and was reaped by the kernel
/// (SIGCHLD ignored), read from its pidfd, which keeps it from Linux 6.15.
/// `Ok(None)` while the process runs. Between the exit and the reap there
/// are a few microseconds in which the status is in neither place: this
/// polls through them.
fn exit_of_reaped(pidfd: BorrowedFd<'_>) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let info = super::pidfd_info::pidfd_info(pidfd, PIDFD_INFO_EXIT);
        let exited = pidfd_is_readable(pidfd);
        let info = match info {
            Ok(info) if info.mask & PIDFD_INFO_EXIT != 0 => {
                let code = info.exit_code;
                return Ok(Some(if code & 0x7f == 0 {
                    ExitStatus::Exited((code >> 8) & 0xff)
                } else {
                    ExitStatus::Signalled(code & 0x7f)
                }));
            }
            info => info,
        };
        let unsupported = info.as_ref().is_err_and(super::pidfd_info::unsupported);
        if !exited {
            return Ok(None);
        }
        if unsupported || Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the child was reaped by the kernel because this process ignores SIGCHLD \
                 (SIG_IGN or SA_NOCLDWAIT), and this kernel does not keep exit statuses \
                 for pidfds (Linux 6.15 does): restore SIGCHLD's default disposition",
            ));
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

/// Whether a pidfd polls readable (its process has exited).
fn pidfd_is_readable(pidfd: BorrowedFd<'_>) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
}

/// Resolves once the process behind `pidfd` has exited (zombies count).
pub(crate) async fn pidfd_exited(pidfd: &OwnedFd) -> io::Result<()> {
    let afd = super::register(
        rustix::io::fcntl_dupfd_cloexec(pidfd, 3)?,
        tokio::io::Interest::READABLE,
    )?;
    let _ready = afd.readable().await?;
    Ok(())
}

/// Whether the process behind `pidfd` has exited (zombies count), without
/// waiting: a pidfd polls readable once its process has exited.
pub(crate) fn pidfd_exited_now(pidfd: &OwnedFd) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
}

#[cfg(test)]
#[path = "child_tests.rs"]
mod tests;
