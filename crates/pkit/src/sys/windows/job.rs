//! One Job Object: creation with `KILL_ON_JOB_CLOSE`, caps, assignment,
//! termination and accounting.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::time::Duration;

use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JobObjectBasicAccountingInformation,
    JobObjectBasicProcessIdList, JobObjectCpuRateControlInformation,
    JobObjectExtendedLimitInformation, QueryInformationJobObject, SetInformationJobObject,
    TerminateJobObject, JOBOBJECTINFOCLASS, JOBOBJECT_BASIC_ACCOUNTING_INFORMATION,
    JOBOBJECT_CPU_RATE_CONTROL_INFORMATION, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JOB_OBJECT_CPU_RATE_CONTROL_ENABLE, JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP,
    JOB_OBJECT_LIMIT_ACTIVE_PROCESS, JOB_OBJECT_LIMIT_AFFINITY, JOB_OBJECT_LIMIT_JOB_MEMORY,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
};

use super::{cvt, owned, KILLED_EXIT_CODE};

/// A Job Object; closing its last handle kills every process in it.
#[derive(Debug)]
pub(crate) struct Job {
    handle: OwnedHandle,
}

/// The caps a job carries (Windows' side of `Limits`).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct JobCaps {
    /// Committed memory of all processes together, in bytes.
    pub memory: Option<u64>,
    /// Processes alive at once.
    pub processes: Option<u32>,
}

/// A snapshot of the job's accounting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Accounting {
    pub cpu: Duration,
    pub active: u32,
    /// `None` when the job's limit record can't be read.
    pub peak_memory: Option<u64>,
}

impl Job {
    /// Creates an anonymous job with `KILL_ON_JOB_CLOSE` (when `kill_on_close`)
    /// and `caps` (the CPU caps are [`cap_cpu_rate`](Self::cap_cpu_rate)'s
    /// and [`set_affinity`](Self::set_affinity)'s).
    pub(crate) fn create(kill_on_close: bool, caps: JobCaps) -> io::Result<Job> {
        // SAFETY: no security attributes (the handle is not inherited) and
        // no name; the returned handle is checked and owned below.
        let handle = owned(unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) })?;
        let job = Job { handle };
        // SAFETY: an all-zero JOBOBJECT_EXTENDED_LIMIT_INFORMATION is valid
        // (no limits); only the fields set below are read by the kernel.
        let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { zeroed() };
        if kill_on_close {
            info.BasicLimitInformation.LimitFlags |= JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        }
        if let Some(bytes) = caps.memory {
            info.BasicLimitInformation.LimitFlags |= JOB_OBJECT_LIMIT_JOB_MEMORY;
            info.JobMemoryLimit = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        if let Some(n) = caps.processes {
            info.BasicLimitInformation.LimitFlags |= JOB_OBJECT_LIMIT_ACTIVE_PROCESS;
            info.BasicLimitInformation.ActiveProcessLimit = n;
        }
        job.set(JobObjectExtendedLimitInformation, &info)?;
        Ok(job)
    }

    /// Lets the job's processes run on the CPUs of `mask` only (of the
    /// first 64), keeping its other limits.
    pub(crate) fn set_affinity(&self, mask: usize) -> io::Result<()> {
        // SAFETY: all-zero is a valid record before the query.
        let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { zeroed() };
        self.query(JobObjectExtendedLimitInformation, &mut info)?;
        info.BasicLimitInformation.LimitFlags |= JOB_OBJECT_LIMIT_AFFINITY;
        info.BasicLimitInformation.Affinity = mask;
        self.set(JobObjectExtendedLimitInformation, &info)
    }

    /// The CPU affinity the job keeps, if it keeps one (Wine accepts one
    /// and drops it).
    pub(crate) fn affinity(&self) -> io::Result<Option<usize>> {
        // SAFETY: all-zero is a valid record before the query.
        let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { zeroed() };
        self.query(JobObjectExtendedLimitInformation, &mut info)?;
        let basic = &info.BasicLimitInformation;
        Ok((basic.LimitFlags & JOB_OBJECT_LIMIT_AFFINITY != 0).then_some(basic.Affinity))
    }

    /// Caps the job's CPU use at `rate` 1/10000ths of the whole machine
    /// (a hard cap: `JobObjectCpuRateControlInformation`, Windows 8 and
    /// later; Wine refuses it).
    pub(crate) fn cap_cpu_rate(&self, rate: u32) -> io::Result<()> {
        // SAFETY: all-zero is a valid (disabled) rate control record.
        let mut cpu: JOBOBJECT_CPU_RATE_CONTROL_INFORMATION = unsafe { zeroed() };
        cpu.ControlFlags =
            JOB_OBJECT_CPU_RATE_CONTROL_ENABLE | JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP;
        cpu.Anonymous.CpuRate = rate.clamp(1, 10_000);
        self.set(JobObjectCpuRateControlInformation, &cpu)
    }

    fn set<T>(&self, class: JOBOBJECTINFOCLASS, info: &T) -> io::Result<()> {
        // SAFETY: `info` points to a live `T`, the record `class` names, of
        // the size passed; the job handle is valid while `self` lives.
        cvt(unsafe {
            SetInformationJobObject(
                self.raw(),
                class,
                info as *const T as *const _,
                size_of::<T>() as u32,
            )
        })
    }

    fn query<T>(&self, class: JOBOBJECTINFOCLASS, info: &mut T) -> io::Result<()> {
        // SAFETY: `info` points to a writable `T` of the size passed, the
        // record `class` names; the job handle is valid.
        cvt(unsafe {
            QueryInformationJobObject(
                self.raw(),
                class,
                info as *mut T as *mut _,
                size_of::<T>() as u32,
                std::ptr::null_mut(),
            )
        })
    }

    pub(super) fn raw(&self) -> windows_sys::Win32::Foundation::HANDLE {
        self.handle.as_raw_handle()
    }

    /// Puts `process` (a handle with `PROCESS_SET_QUOTA` and
    /// `PROCESS_TERMINATE`) in the job; its future children follow it.
    pub(crate) fn assign(&self, process: &impl AsRawHandle) -> io::Result<()> {
        // SAFETY: both handles are valid for the call.
        cvt(unsafe { AssignProcessToJobObject(self.raw(), process.as_raw_handle()) })
    }

    /// Ends every process in the job now; the job stays usable.
    pub(crate) fn terminate(&self) -> io::Result<()> {
        // SAFETY: the job handle is valid.
        cvt(unsafe { TerminateJobObject(self.raw(), KILLED_EXIT_CODE) })
    }

    /// CPU time, live processes and peak committed memory.
    pub(crate) fn accounting(&self) -> io::Result<Accounting> {
        // SAFETY: plain C records; all-zero is valid before the query.
        let mut basic: JOBOBJECT_BASIC_ACCOUNTING_INFORMATION = unsafe { zeroed() };
        self.query(JobObjectBasicAccountingInformation, &mut basic)?;
        // SAFETY: as above.
        let mut ext: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { zeroed() };
        let peak = self
            .query(JobObjectExtendedLimitInformation, &mut ext)
            .ok()
            .map(|()| ext.PeakJobMemoryUsed as u64);
        let ticks = (basic.TotalUserTime.max(0) + basic.TotalKernelTime.max(0)) as u64;
        Ok(Accounting {
            cpu: Duration::from_nanos(ticks.saturating_mul(100)),
            active: basic.ActiveProcesses,
            peak_memory: peak,
        })
    }

    /// The ids of the processes in the job now (the buffer grown, and the
    /// job listed again, while it has more than fit).
    pub(crate) fn pids(&self) -> io::Result<Vec<u32>> {
        use windows_sys::Win32::Foundation::ERROR_MORE_DATA;
        // JOBOBJECT_BASIC_PROCESS_ID_LIST: two u32 counts (assigned,
        // listed), then the ids, each a ULONG_PTR; held in usizes, so
        // aligned, the counts taking the first 8 bytes.
        let head = 8 / size_of::<usize>();
        let mut room = 256usize;
        loop {
            let mut buf = vec![0usize; head + room];
            let bytes = u32::try_from(buf.len() * size_of::<usize>()).unwrap_or(u32::MAX);
            // SAFETY: `buf` is a writable, usize-aligned block of `bytes`
            // bytes, laid out as the list record with room for `room` ids.
            let listed = cvt(unsafe {
                QueryInformationJobObject(
                    self.raw(),
                    JobObjectBasicProcessIdList,
                    buf.as_mut_ptr() as *mut _,
                    bytes,
                    std::ptr::null_mut(),
                )
            });
            // SAFETY: the first 8 bytes of `buf` are the two u32 counts
            // (zero if the call wrote nothing); usize alignment covers u32.
            let (assigned, listed_n) = unsafe {
                let counts = buf.as_ptr() as *const u32;
                (*counts as usize, *counts.add(1) as usize)
            };
            let more = match listed {
                // Fewer listed than assigned counts only when the room
                // was full (the count may include a process on its way out).
                Ok(()) => assigned > listed_n && listed_n >= room,
                Err(e) if e.raw_os_error() == Some(ERROR_MORE_DATA as i32) => true,
                Err(e) => return Err(e),
            };
            if more {
                if room >= MAX_LISTED {
                    return Err(io::Error::other(format!(
                        "the job has more than {MAX_LISTED} processes to list"
                    )));
                }
                // Room for all assigned now, and some that may start.
                room = room.max(assigned).saturating_mul(2).min(MAX_LISTED);
                continue;
            }
            let n = listed_n.min(room);
            return Ok(buf[head..head + n].iter().map(|&id| id as u32).collect());
        }
    }
}

/// The most process ids [`Job::pids`] lists.
const MAX_LISTED: usize = 1 << 20;

/// The affinity mask of a CPU list (`0-3,5`, already checked as well
/// formed): a job's affinity covers the CPUs of one processor group, at
/// most 64, and only CPUs this process may use.
pub(crate) fn affinity_mask(list: &str) -> Result<usize, String> {
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, GetProcessAffinityMask};
    let (mut own, mut host) = (0usize, 0usize);
    // SAFETY: the pseudo handle of this process and two out-pointers.
    cvt(unsafe { GetProcessAffinityMask(GetCurrentProcess(), &mut own, &mut host) })
        .map_err(|e| format!("cannot read the CPUs this process may use: {e}"))?;
    if own == 0 {
        // Windows answers no mask for a process whose threads span more
        // than one processor group (hosts of more than 64 CPUs).
        return Err(
            "this process runs in more than one processor group (more than 64 \
                    CPUs): a Job Object's affinity covers one group's CPUs only"
                .to_string(),
        );
    }
    let mut mask = 0usize;
    for part in list.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) else {
            return Err(format!("{list:?} is not a CPU list"));
        };
        for cpu in a..=b {
            if cpu >= usize::BITS {
                return Err(format!(
                    "CPU {cpu}: a Job Object's affinity covers CPUs 0 to {} (one processor \
                     group) only",
                    usize::BITS - 1
                ));
            }
            if own & (1 << cpu) == 0 {
                return Err(format!(
                    "CPU {cpu} is not one this process may use (its CPUs are the mask {own:#x})"
                ));
            }
            mask |= 1 << cpu;
        }
    }
    Ok(mask)
}
