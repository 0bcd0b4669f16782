//! Suspending and resuming processes: `NtSuspendProcess` and
//! `NtResumeProcess` (ntdll; not in the Windows SDK's headers, so looked
//! up at run time, as `console.rs` does for ConPTY), which raise and lower
//! the suspend count of each thread a process has at the time. Each thread
//! stays suspended while its own count is above zero: one suspension takes
//! one resumption, and a process its parent created suspended stays so. A
//! thread created afterwards starts with a count of zero and runs (Windows
//! itself creates one in a console process for a Ctrl-Break, say): a
//! suspended process is held still, not frozen as a cgroup is.
//!
//! A job has no call of its own for this: every process in it is suspended
//! one by one, listing the job again until a listing shows no process
//! that is not suspended yet (one may start another meanwhile). The
//! handles of the processes suspended are kept, and a resumption resumes
//! exactly those: a process that joined the job later (a child its parent
//! created suspended and placed after the last listing) is left as it is.

use std::collections::HashSet;
use std::io;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::sync::OnceLock;

use windows_sys::Win32::Foundation::{
    RtlNtStatusToDosError, ERROR_INVALID_PARAMETER, HANDLE, NTSTATUS,
    STATUS_PROCESS_IS_TERMINATING, WAIT_OBJECT_0,
};
use windows_sys::Win32::System::JobObjects::IsProcessInJob;
use windows_sys::Win32::System::LibraryLoader::GetProcAddress;
use windows_sys::Win32::System::Threading::{
    GetProcessId, OpenProcess, WaitForSingleObject, PROCESS_QUERY_INFORMATION,
    PROCESS_SUSPEND_RESUME, PROCESS_SYNCHRONIZE,
};

use super::job::Job;
use super::{cvt, owned, unsupported};

type NtFn = unsafe extern "system" fn(HANDLE) -> NTSTATUS;

/// `NtSuspendProcess`, `NtResumeProcess`.
struct Api {
    suspend: NtFn,
    resume: NtFn,
}

/// The two calls, if this Windows has them.
fn api() -> Option<&'static Api> {
    static API: OnceLock<Option<Api>> = OnceLock::new();
    API.get_or_init(|| {
        let module = super::ntdll()?;
        // SAFETY: a valid module and NUL-terminated ASCII names.
        let find = |name: &[u8]| unsafe { GetProcAddress(module, name.as_ptr()) };
        let (suspend, resume) = (find(b"NtSuspendProcess\0")?, find(b"NtResumeProcess\0")?);
        // SAFETY: both exports take a process handle and return an
        // NTSTATUS; a function pointer is converted to another function
        // pointer type of the same size.
        unsafe {
            Some(Api {
                suspend: std::mem::transmute::<unsafe extern "system" fn() -> isize, NtFn>(suspend),
                resume: std::mem::transmute::<unsafe extern "system" fn() -> isize, NtFn>(resume),
            })
        }
    })
    .as_ref()
}

/// Suspending or resuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Suspend,
    Resume,
}

impl Step {
    fn call(self, api: &Api) -> NtFn {
        match self {
            Step::Suspend => api.suspend,
            Step::Resume => api.resume,
        }
    }
}

fn missing() -> io::Error {
    unsupported("this Windows has no NtSuspendProcess/NtResumeProcess")
}

/// Takes `step` once on `process` (a handle with `PROCESS_SUSPEND_RESUME`).
/// A process that has exited, or is exiting (its handle not signalled
/// yet), is no error: it is ending.
pub(super) fn process(process: &impl AsRawHandle, step: Step) -> io::Result<()> {
    let api = api().ok_or_else(missing)?;
    // SAFETY: a valid process handle.
    let status = unsafe { step.call(api)(process.as_raw_handle()) };
    if status >= 0 || status == STATUS_PROCESS_IS_TERMINATING {
        return Ok(());
    }
    // SAFETY: a valid process handle; a zero timeout only polls.
    if unsafe { WaitForSingleObject(process.as_raw_handle(), 0) } == WAIT_OBJECT_0 {
        return Ok(());
    }
    // SAFETY: a plain conversion of a status code.
    let code = unsafe { RtlNtStatusToDosError(status) };
    Err(io::Error::from_raw_os_error(code as i32))
}

/// Suspends every process in `job` once, listing the job again until no
/// process in it is left out (one may have started another meanwhile);
/// processes that exit meanwhile are skipped. Returns the handles of those
/// suspended, for [`resume`]: exactly these are resumed, never a process
/// that joined later (a child its parent created suspended, say, which
/// must stay so). If a suspension fails, those already taken are resumed
/// and the error returned.
pub(super) fn job(job: &Job) -> io::Result<Vec<OwnedHandle>> {
    let mut held = Vec::new();
    more(job, &mut held)?;
    Ok(held)
}

/// As [`job`], for a hold taken before: suspends once each process in
/// `job` that `held` does not hold yet, and adds it there (a stop sent
/// again reaches the processes started since, as SIGSTOP to a process
/// group does, and only those). The handles of held processes that have
/// exited are dropped first: a live handle keeps its process's id from
/// being reused, a dropped one no longer. If a suspension fails, those
/// this call took are resumed and removed, and the error returned.
pub(super) fn more(job: &Job, held: &mut Vec<OwnedHandle>) -> io::Result<()> {
    api().ok_or_else(missing)?;
    // SAFETY: a valid handle; a zero timeout only polls.
    held.retain(|h| unsafe { WaitForSingleObject(h.as_raw_handle(), 0) } != WAIT_OBJECT_0);
    // SAFETY: valid process handles (opened with PROCESS_QUERY_INFORMATION).
    let mut seen: HashSet<u32> = held
        .iter()
        .map(|h| unsafe { GetProcessId(h.as_raw_handle()) })
        .collect();
    let kept = held.len();
    let taken = loop {
        // Only the ids of processes whose handle is held are `seen`: a
        // held handle keeps its id from being reused, while an id skipped
        // (exited, or outside the job) may name a new member next time.
        let fresh: Vec<u32> = match job.pids() {
            Ok(pids) => pids.into_iter().filter(|p| !seen.contains(p)).collect(),
            Err(e) => break Err(e),
        };
        let before = held.len();
        let round = fresh.into_iter().try_for_each(|pid| {
            let Some(handle) = open_member(job, pid)? else {
                return Ok(());
            };
            process(&handle, Step::Suspend)?;
            seen.insert(pid);
            held.push(handle);
            Ok(())
        });
        if let Err(e) = round {
            break Err(e);
        }
        // A round that took nothing new found every member already taken.
        if held.len() == before {
            break Ok(());
        }
    };
    taken.inspect_err(|_| {
        let _ = resume(held.split_off(kept));
    })
}

/// Resumes each of `suspended` once (what [`job`] returned, or handles
/// suspended one by one); all are tried, and the first error is returned.
pub(super) fn resume(suspended: Vec<OwnedHandle>) -> io::Result<()> {
    let mut first = Ok(());
    for handle in &suspended {
        if let Err(e) = process(handle, Step::Resume) {
            first = first.and(Err(e));
        }
    }
    first
}

/// Opens process `pid` for suspending, if it still runs in `job` (`None`
/// when it has exited, or its id now names a process outside the job).
fn open_member(job: &Job, pid: u32) -> io::Result<Option<OwnedHandle>> {
    let handle = match open(pid) {
        Ok(h) => h,
        // No such process any more.
        Err(e) if e.raw_os_error() == Some(ERROR_INVALID_PARAMETER as i32) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut inside = 0;
    // SAFETY: valid process and job handles and an out-pointer.
    cvt(unsafe { IsProcessInJob(handle.as_raw_handle(), job.raw(), &mut inside) })?;
    Ok((inside != 0).then_some(handle))
}

/// Opens process `pid` for [`process`].
pub(super) fn open(pid: u32) -> io::Result<OwnedHandle> {
    let access = PROCESS_SUSPEND_RESUME | PROCESS_QUERY_INFORMATION | PROCESS_SYNCHRONIZE;
    // SAFETY: opens a process by id; the handle is checked and owned.
    owned(unsafe { OpenProcess(access, 0, pid) })
}
