//! A spawned child held by its pid alone, for the platforms without pidfds
//! (and for the portable backend on Linux): waited for through SIGCHLD
//! (see [`sigchld`](super::sigchld)), read with `waitid(WNOWAIT)` so it
//! stays a zombie, and so keeps its pid, until its handle is dropped.
//!
//! Signalling by pid is exact here for the same reason: the number can't
//! be handed to another process while our unreaped zombie holds it.

use std::io;
use std::sync::Mutex;
#[cfg(test)]
use std::time::Instant;

use super::sigchld;
use crate::sys::ExitStatus;

/// A child process we spawned and have not yet reaped (pid only).
#[derive(Debug)]
pub(crate) struct PortableChild {
    pid: i32,
    /// The exit status once read; held across each `waitid` of the child,
    /// so that [`reap_if_exited`](Self::reap_if_exited) never reaps it
    /// between another caller's look at the cache and its `waitid` (which
    /// would then ask about a number that may be another child's).
    status: Mutex<Option<ExitStatus>>,
    /// Set (under `status`) once [`reap_if_exited`](Self::reap_if_exited)
    /// reaped it: its number is no longer ours.
    reaped: std::sync::atomic::AtomicBool,
}

impl PortableChild {
    /// Takes over the unreaped child `pid`.
    pub(crate) fn new(pid: i32) -> PortableChild {
        PortableChild {
            pid,
            status: Mutex::new(None),
            reaped: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    fn cached(&self) -> Option<ExitStatus> {
        *self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exit status if the child has exited, without blocking or reaping.
    pub(crate) fn try_status(&self) -> io::Result<Option<ExitStatus>> {
        let mut cached = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = *cached {
            return Ok(Some(s));
        }
        let status = peek(self.pid).map_err(reaped_elsewhere)?;
        *cached = status;
        Ok(status)
    }

    /// Reaps the child now if it has exited, keeping its status (a run's
    /// end: a worker's wait may hold a share of the handle a moment
    /// longer, and the child would stay a zombie until that share goes);
    /// whether it is reaped. From then on nothing here asks about or
    /// signals its number, which may be another process's.
    pub(crate) fn reap_if_exited(&self) -> bool {
        let mut cached = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if self.reaped.load(std::sync::atomic::Ordering::Acquire) {
            return true;
        }
        if cached.is_none() {
            match peek(self.pid) {
                Ok(Some(s)) => *cached = Some(s),
                _ => return false,
            }
        }
        // Exited, its status kept: reaped now (ECHILD: by someone else).
        sigchld::reap_now(self.pid);
        self.reaped
            .store(true, std::sync::atomic::Ordering::Release);
        true
    }

    /// Whether [`reap_if_exited`](Self::reap_if_exited) reaped it.
    pub(crate) fn reaped(&self) -> bool {
        self.reaped.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether someone else (the kernel, with SIGCHLD ignored, or a
    /// `waitpid(-1)` of the application's) has reaped the child already.
    pub(crate) fn reaped_by_kernel(&self) -> bool {
        self.cached().is_none()
            && matches!(peek(self.pid), Err(e) if e.raw_os_error() == Some(libc::ECHILD))
    }

    /// Waits for the child to exit: on macOS and the BSDs through a kqueue
    /// `EVFILT_PROC` watch in the reactor; elsewhere (and where that can't
    /// be made) woken by SIGCHLD.
    pub(crate) async fn wait(&self) -> io::Result<ExitStatus> {
        #[cfg(any(
            target_os = "macos",
            target_os = "freebsd",
            target_os = "dragonfly",
            target_os = "netbsd",
            target_os = "openbsd"
        ))]
        if self.cached().is_none() {
            if let Ok(Some(kq)) = super::kqueue::exit_watch(self.pid) {
                if let Ok(afd) = super::register(kq, tokio::io::Interest::READABLE) {
                    if self.try_status()?.is_none() {
                        let _ = afd.readable().await;
                    }
                }
            }
        }
        // The status is there now (or, without a kqueue, once SIGCHLD says).
        sigchld::wait_until(|| self.try_status()).await
    }

    /// Waits (blocking) until the child exits or `deadline` passes.
    #[cfg(test)]
    pub(crate) fn wait_blocking(
        &self,
        deadline: Option<Instant>,
    ) -> io::Result<Option<ExitStatus>> {
        sigchld::wait_blocking_until(deadline, || self.try_status())
    }

    /// Sends `sig` to the child (nothing happens once it has exited).
    pub(crate) fn signal(&self, sig: i32) -> io::Result<()> {
        // Held through the kill: `reap_if_exited` reaps only under this
        // lock, so it can't reap the child (and free its number) between
        // this look and the kill.
        let cached = self.status.lock().unwrap_or_else(|e| e.into_inner());
        // Exited and read (reaped or not): nothing to signal. Reaped by
        // someone else (see `reaped_elsewhere`): its number is no longer
        // ours to signal. (Such a reap between this look and the kill
        // can't be seen: no pidfd here.)
        if cached.is_some()
            || matches!(peek(self.pid), Err(e) if e.raw_os_error() == Some(libc::ECHILD))
        {
            return Ok(());
        }
        // The pid is our unreaped child's, so it names no other process.
        super::pgroup::kill(self.pid, sig)
    }

    /// Sends `sig` to the process group this child leads, by number: exact
    /// while the child is unreaped (its zombie keeps the number).
    pub(crate) fn signal_group(&self, sig: i32) -> io::Result<()> {
        // Reaped: the number is no longer ours (see `reap_if_exited`).
        if self.reaped() {
            return Ok(());
        }
        super::pgroup::killpg(self.pid, sig)
    }
}

impl Drop for PortableChild {
    fn drop(&mut self) {
        // Reaped already: the number may be another child's by now.
        if self.reaped() {
            return;
        }
        if !sigchld::reap_now(self.pid) {
            sigchld::reap_later(self.pid);
        }
    }
}

/// The error of a wait on a child of ours that someone else has reaped
/// (`ECHILD`): the application set SIGCHLD to `SIG_IGN` or `SA_NOCLDWAIT`
/// after pkit's handler was installed (which puts an earlier `SIG_IGN`
/// aside), so the kernel reaped the child at its exit, or the application
/// reaped it itself (`waitpid(-1)`). Its exit status is lost: said so,
/// rather than a bare "No child processes".
fn reaped_elsewhere(e: io::Error) -> io::Error {
    if e.raw_os_error() != Some(libc::ECHILD) {
        return e;
    }
    io::Error::new(
        io::ErrorKind::Unsupported,
        "the child was reaped before pkit could read its exit status: SIGCHLD was set to \
         SIG_IGN or SA_NOCLDWAIT after pkit installed its handler (the kernel then reaps \
         children itself), or the application reaped it (waitpid(-1)); leave SIGCHLD's \
         handling alone while pkit's children run",
    )
}

/// `waitid(P_PID, pid, WEXITED | WNOHANG | WNOWAIT)`: the exit status
/// without reaping; `Ok(None)` while the child runs.
#[cfg(not(any(target_os = "netbsd", target_os = "openbsd")))]
fn peek(pid: i32) -> io::Result<Option<ExitStatus>> {
    use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
    let Some(pid) = Pid::from_raw(pid) else {
        return Err(io::Error::from_raw_os_error(libc::ECHILD));
    };
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    let info = loop {
        match waitid(WaitId::Pid(pid), options) {
            Err(rustix::io::Errno::INTR) => continue,
            got => break got?,
        }
    };
    Ok(
        info.and_then(|st| match (st.exit_status(), st.terminating_signal()) {
            (Some(code), _) => Some(ExitStatus::Exited(code)),
            (None, Some(sig)) => Some(ExitStatus::Signalled(sig)),
            _ => None,
        }),
    )
}

/// [`peek`] on NetBSD and OpenBSD, where rustix's `waitid` can't be used
/// (see `waitid.rs`).
#[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
fn peek(pid: i32) -> io::Result<Option<ExitStatus>> {
    Ok(
        super::waitid::peek_exit(pid)?.and_then(|(code, status)| match code {
            libc::CLD_EXITED => Some(ExitStatus::Exited(status)),
            libc::CLD_KILLED | libc::CLD_DUMPED => Some(ExitStatus::Signalled(status)),
            _ => None,
        }),
    )
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    // The PortableChild takes over the child: it reaps it when dropped.
    #[allow(clippy::zombie_processes)]
    fn spawn(script: &str) -> PortableChild {
        sigchld::ensure();
        let child = std::process::Command::new("sh")
            .args(["-c", script])
            .spawn()
            .expect("sh");
        PortableChild::new(child.id() as i32)
    }

    #[test]
    fn blocking_wait_sees_the_exit_and_keeps_the_zombie() {
        let child = spawn("exit 7");
        let st = child.wait_blocking(None).expect("wait");
        assert_eq!(st, Some(ExitStatus::Exited(7)));
        // Not reaped by the wait: the zombie is still ours.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.pid()));
        assert!(stat.is_ok_and(|s| s.contains(") Z ")));
        let pid = child.pid();
        drop(child);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn async_wait_is_woken_by_sigchld() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Counted before the start: on a loaded machine the child can be
        // gone before the next line runs. And the notifier thread counts
        // the wake-up after the handler's write, which may be after the
        // wait saw the exit on its own: polled, with a generous deadline.
        sigchld::ensure();
        let before = sigchld::wakes();
        let child = spawn("sleep 0.2; kill -TERM $$");
        let st = rt.block_on(child.wait()).expect("wait");
        assert_eq!(st, ExitStatus::Signalled(libc::SIGTERM));
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while sigchld::wakes() == before {
            assert!(Instant::now() < deadline, "no SIGCHLD wake-up counted");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn a_deadline_ends_a_blocking_wait() {
        let child = spawn("sleep 30");
        let st = child
            .wait_blocking(Some(Instant::now() + std::time::Duration::from_millis(100)))
            .expect("wait");
        assert_eq!(st, None);
        child.signal(libc::SIGKILL).unwrap();
        let st = child.wait_blocking(None).expect("wait");
        assert_eq!(st, Some(ExitStatus::Signalled(libc::SIGKILL)));
    }

    #[test]
    fn signals_by_number_reach_the_child_named_or_not() {
        // Signal 0 only checks; a real-time signal has no rustix name and
        // goes the raw way; both end in the same status as a named one.
        let child = spawn("sleep 30");
        child.signal(0).unwrap();
        let rt = libc::SIGRTMIN() + 1;
        child.signal(rt).unwrap();
        let st = child.wait_blocking(None).expect("wait");
        assert_eq!(st, Some(ExitStatus::Signalled(rt)));
        // Gone (a zombie still ours until the drop): no error either.
        child.signal(libc::SIGTERM).unwrap();
        // A number that is no signal is refused by the kernel.
        let other = spawn("sleep 30");
        let err = other.signal(1000).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        other.signal(libc::SIGKILL).unwrap();
        let st = other.wait_blocking(None).expect("wait");
        assert_eq!(st, Some(ExitStatus::Signalled(libc::SIGKILL)));
    }
}
