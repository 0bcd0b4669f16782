//! A spawned child, held by its process handle: the handle keeps its exit
//! code and accounting readable and its id from being reused while pkit
//! holds it.

use std::ffi::c_void;
use std::io;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    FILETIME, HANDLE, INVALID_HANDLE_VALUE, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::ProcessStatus::{K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS};
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, GetProcessTimes, RegisterWaitForSingleObject, TerminateProcess,
    UnregisterWaitEx, WaitForSingleObject, INFINITE, WT_EXECUTEONLYONCE,
};

use super::{cvt, unsupported, KILLED_EXIT_CODE};
use crate::sys::signal::nums::SIGKILL;
use crate::sys::ExitStatus;

/// CPU time and peak memory of a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub cpu: Duration,
    pub max_rss_bytes: u64,
}

/// A child process we spawned.
#[derive(Debug)]
pub(crate) struct ChildHandle {
    pid: i32,
    process: OwnedHandle,
    status: Mutex<Option<ExitStatus>>,
}

impl ChildHandle {
    pub(crate) fn new(pid: u32, process: OwnedHandle) -> ChildHandle {
        ChildHandle {
            pid: pid as i32,
            process,
            status: Mutex::new(None),
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    pub(crate) fn handle(&self) -> &OwnedHandle {
        &self.process
    }

    fn raw(&self) -> HANDLE {
        self.process.as_raw_handle()
    }

    /// Waits up to `ms` milliseconds; whether the process has exited.
    fn wait_ms(&self, ms: u32) -> io::Result<bool> {
        // SAFETY: the process handle is valid while `self` lives.
        match unsafe { WaitForSingleObject(self.raw(), ms) } {
            WAIT_OBJECT_0 => Ok(true),
            WAIT_TIMEOUT => Ok(false),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// The exit status if the child has exited, without blocking.
    pub(crate) fn try_status(&self) -> io::Result<Option<ExitStatus>> {
        let mut cached = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = *cached {
            return Ok(Some(s));
        }
        if !self.wait_ms(0)? {
            return Ok(None);
        }
        let mut code = 0u32;
        // SAFETY: valid handle and out-pointer.
        cvt(unsafe { GetExitCodeProcess(self.raw(), &mut code) })?;
        let status = if code == KILLED_EXIT_CODE {
            ExitStatus::Signalled(SIGKILL)
        } else {
            ExitStatus::Exited(code as i32)
        };
        *cached = Some(status);
        Ok(Some(status))
    }

    /// Never: a process handle keeps its process's identity until closed
    /// (the Linux handle says whether its pid may name another process).
    pub(crate) fn reaped(&self) -> bool {
        false
    }

    /// CPU time and peak working set (live or exited).
    pub(crate) fn rusage(&self) -> Option<Usage> {
        let zero = FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 0,
        };
        let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
        // SAFETY: valid handle and four valid out-pointers.
        cvt(unsafe {
            GetProcessTimes(
                self.raw(),
                &mut created,
                &mut exited,
                &mut kernel,
                &mut user,
            )
        })
        .ok()?;
        let ticks = |t: FILETIME| (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime);
        // SAFETY: all-zero is a valid PROCESS_MEMORY_COUNTERS; its size is
        // passed in `cb` and in the record itself.
        let mut mem: PROCESS_MEMORY_COUNTERS = unsafe { std::mem::zeroed() };
        mem.cb = std::mem::size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
        // SAFETY: valid handle; `mem` is writable and `cb` bytes long.
        let peak = match cvt(unsafe { K32GetProcessMemoryInfo(self.raw(), &mut mem, mem.cb) }) {
            Ok(()) => mem.PeakWorkingSetSize as u64,
            Err(_) => 0,
        };
        Some(Usage {
            cpu: Duration::from_nanos((ticks(kernel) + ticks(user)).saturating_mul(100)),
            max_rss_bytes: peak,
        })
    }

    /// Runs `work` (an end of the child's tree under way): as the Unix
    /// backends' does, less the early reap, which Windows has no need of
    /// (an exited process keeps no slot the system waits for its parent to
    /// free; its handle is closed with this one).
    pub(crate) async fn reaped_during<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        work.await
    }

    /// Never completes: nothing to reap early here (see
    /// [`reaped_during`](Self::reaped_during)).
    pub(crate) async fn reap_at_exit(&self) {
        std::future::pending().await
    }

    /// Waits for the child to exit: a thread-pool wait on the process
    /// handle (`RegisterWaitForSingleObject`) wakes the task.
    pub(crate) async fn wait(&self) -> io::Result<ExitStatus> {
        if let Some(s) = self.try_status()? {
            return Ok(s);
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let wait = Registration::new(self.raw(), tx)?;
        let _ = rx.await;
        drop(wait);
        match self.try_status()? {
            Some(s) => Ok(s),
            None => Err(io::Error::other(
                "the process wait ended before the process",
            )),
        }
    }

    /// Waits (blocking) until the child exits or `deadline` passes.
    pub(crate) fn wait_blocking(
        &self,
        deadline: Option<Instant>,
    ) -> io::Result<Option<ExitStatus>> {
        loop {
            if let Some(s) = self.try_status()? {
                return Ok(Some(s));
            }
            let ms = match deadline {
                None => INFINITE,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(None);
                    }
                    (d - now).as_millis().clamp(1, u128::from(INFINITE - 1)) as u32
                }
            };
            self.wait_ms(ms)?;
        }
    }

    /// Sends `sig`: SIGKILL is `TerminateProcess`; SIGTERM and SIGINT are a
    /// CTRL_BREAK to the process's console group (see `ctrl.rs`: console
    /// programs only); any other is refused.
    pub(crate) fn signal(&self, sig: i32) -> io::Result<()> {
        if super::ctrl::is_break(sig) {
            return match self.try_status()? {
                Some(_) => Ok(()),
                None => super::ctrl::send_break([self.pid as u32]).map(drop),
            };
        }
        if sig != SIGKILL {
            return Err(unsupported(
                "Windows has no such signal: only Signal::Kill (TerminateProcess), and \
                 Signal::Term or Signal::Int (CTRL_BREAK to a console program), can be sent",
            ));
        }
        if self.try_status()?.is_some() {
            return Ok(());
        }
        // SAFETY: valid handle with PROCESS_TERMINATE access (ours).
        match cvt(unsafe { TerminateProcess(self.raw(), KILLED_EXIT_CODE) }) {
            // Access denied once the process is already exiting.
            Err(_) if self.wait_ms(0).unwrap_or(false) => Ok(()),
            other => other,
        }
    }
}

/// A registered thread-pool wait on a process handle; unregistered (and
/// any running callback waited for) on drop.
struct Registration {
    wait: HANDLE,
    context: *const Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

// SAFETY: the wait handle may be unregistered from any thread, and the
// context is a `Mutex` shared through an `Arc`.
unsafe impl Send for Registration {}
// SAFETY: as above; `&Registration` gives no access to either.
unsafe impl Sync for Registration {}

impl Registration {
    fn new(process: HANDLE, tx: tokio::sync::oneshot::Sender<()>) -> io::Result<Registration> {
        let context = Arc::into_raw(Arc::new(Mutex::new(Some(tx))));
        let mut wait: HANDLE = std::ptr::null_mut();
        // SAFETY: `wait` is a valid out-pointer; `context` stays alive
        // until `drop` has unregistered the wait and waited for a running
        // callback (UnregisterWaitEx with INVALID_HANDLE_VALUE).
        let ok = unsafe {
            RegisterWaitForSingleObject(
                &mut wait,
                process,
                Some(on_exit),
                context as *const c_void,
                INFINITE,
                WT_EXECUTEONLYONCE,
            )
        };
        if ok == 0 {
            let e = io::Error::last_os_error();
            // SAFETY: registration failed: the callback never runs; the
            // count taken by `into_raw` is given back.
            drop(unsafe { Arc::from_raw(context) });
            return Err(e);
        }
        Ok(Registration { wait, context })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: `wait` came from RegisterWaitForSingleObject and is
        // unregistered once; INVALID_HANDLE_VALUE makes the call wait for a
        // callback in progress, after which none can run.
        unsafe { UnregisterWaitEx(self.wait, INVALID_HANDLE_VALUE) };
        // SAFETY: no callback can use `context` any more: give back the
        // count taken by `into_raw`.
        drop(unsafe { Arc::from_raw(self.context) });
    }
}

/// The thread-pool callback: the process exited.
unsafe extern "system" fn on_exit(context: *mut c_void, _timed_out: bool) {
    // SAFETY: `context` is the `Arc` kept alive by the `Registration`,
    // which waits for this callback before releasing it.
    let slot = unsafe { &*(context as *const Mutex<Option<tokio::sync::oneshot::Sender<()>>>) };
    if let Some(tx) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = tx.send(());
    }
}
