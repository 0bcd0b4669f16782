//! A spawned child, held by its pidfd: waiting, signalling and reaping
//! without a SIGCHLD handler and without pid-reuse races.
//!
//! Waiting reads the exit status with `WNOWAIT`, leaving the child a zombie
//! until its handle is dropped. That keeps its pid (and, for a process-group
//! leader, its process group id) reserved for as long as pkit might still
//! signal it. Dropping the handle reaps it, or hands it to the reaper thread
//! if it is still running.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::Instant;

use rustix::process::{waitid, WaitId, WaitIdOptions, WaitIdStatus};

use crate::sys::ExitStatus;

/// CPU time and peak memory of an exited child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub cpu: std::time::Duration,
    pub max_rss_bytes: u64,
}

/// A child process we spawned and have not yet reaped.
#[derive(Debug)]
pub(crate) struct ChildHandle {
    pid: i32,
    pidfd: Option<OwnedFd>,
    status: Mutex<Option<ExitStatus>>,
}

impl ChildHandle {
    pub(crate) fn new(pid: i32, pidfd: OwnedFd) -> ChildHandle {
        ChildHandle {
            pid,
            pidfd: Some(pidfd),
            status: Mutex::new(None),
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
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

    fn cached(&self) -> Option<ExitStatus> {
        *self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exit status if the child has exited, without blocking or reaping.
    pub(crate) fn try_status(&self) -> io::Result<Option<ExitStatus>> {
        if let Some(s) = self.cached() {
            return Ok(Some(s));
        }
        let st = waitid(
            WaitId::PidFd(self.fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
        )?;
        // With NOHANG, a still-running child yields either None or a status
        // whose pid field is zero; both mean "not yet".
        let status = st.and_then(convert);
        if let Some(s) = status {
            *self.status.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
        }
        Ok(status)
    }

    /// The resource usage of the exited child (with its waited-for
    /// descendants): CPU time and peak resident memory. `None` while it
    /// runs, or once reaped.
    pub(crate) fn rusage(&self) -> Option<Usage> {
        let pidfd = self.pidfd.as_ref()?;
        let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: the raw waitid(2) with its fifth (rusage) argument, which
        // libc's wrapper lacks. Both out-pointers are valid, zeroed buffers
        // of the kernel's types; WNOWAIT leaves the child unreaped.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_waitid,
                libc::P_PIDFD,
                std::os::fd::AsRawFd::as_raw_fd(pidfd),
                info.as_mut_ptr(),
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                usage.as_mut_ptr(),
            )
        };
        // SAFETY: zero-initialised above and possibly filled by the kernel;
        // both types are plain C structs valid when zeroed.
        let (info, usage) = unsafe { (info.assume_init(), usage.assume_init()) };
        // SAFETY: reading si_pid of a siginfo_t filled by waitid (or zeroed).
        if rc != 0 || unsafe { info.si_pid() } == 0 {
            return None;
        }
        let tv = |t: libc::timeval| {
            std::time::Duration::from_secs(t.tv_sec.max(0) as u64)
                + std::time::Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        Some(Usage {
            cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
            max_rss_bytes: (usage.ru_maxrss.max(0) as u64) * 1024,
        })
    }

    /// Waits for the child to exit (driven by pidfd readiness in tokio).
    pub(crate) async fn wait(&self) -> io::Result<ExitStatus> {
        if let Some(s) = self.try_status()? {
            return Ok(s);
        }
        let afd = super::register(
            rustix::io::fcntl_dupfd_cloexec(self.fd(), 3)?,
            tokio::io::Interest::READABLE,
        )?;
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

impl Drop for ChildHandle {
    fn drop(&mut self) {
        let Some(fd) = self.pidfd.take() else { return };
        if !try_reap(fd.as_fd()) {
            super::reaper::reap_later(fd);
        }
    }
}

/// Reaps the child if it has exited; returns whether it is gone.
pub(crate) fn try_reap(pidfd: BorrowedFd<'_>) -> bool {
    match waitid(
        WaitId::PidFd(pidfd),
        WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
    ) {
        Ok(Some(st)) => convert(st).is_some(),
        Ok(None) => false,
        // ECHILD: already reaped by someone else; nothing left to do.
        Err(_) => true,
    }
}

fn convert(st: WaitIdStatus) -> Option<ExitStatus> {
    if let Some(code) = st.exit_status() {
        if st.exited() {
            return Some(ExitStatus::Exited(code));
        }
    }
    if st.killed() || st.dumped() {
        return st.terminating_signal().map(ExitStatus::Signalled);
    }
    None
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
