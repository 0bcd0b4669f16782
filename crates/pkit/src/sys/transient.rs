//! Which OS error codes say "temporary, try again": out of processes,
//! memory or descriptors for now, the executable busy. One table per
//! platform, since the numbers mean different things: Unix errno values
//! on Unix, Win32 error codes (what `GetLastError` gives a failed
//! `CreateProcessW`) on Windows.

/// Whether the raw OS error `code` reports a temporary failure to start a
/// program: `EAGAIN`, `ENOMEM`, `ETXTBSY`, `EMFILE`, `ENFILE`, `EINTR`.
#[cfg(unix)]
pub(crate) fn is_transient_os_error(code: i32) -> bool {
    [
        libc::EAGAIN,
        libc::ENOMEM,
        libc::ETXTBSY,
        libc::EMFILE,
        libc::ENFILE,
        libc::EINTR,
    ]
    .contains(&code)
}

/// Whether the Win32 error `code` reports a temporary failure to start a
/// program: out of memory or system resources (`ERROR_NOT_ENOUGH_MEMORY`,
/// `ERROR_OUTOFMEMORY`, `ERROR_NO_SYSTEM_RESOURCES` and the pool, quota
/// and commit-limit kinds of it), a process's or a job's quota used up
/// (`ERROR_NOT_ENOUGH_QUOTA`, as `EAGAIN` says a cgroup's `pids.max` or
/// `RLIMIT_NPROC` is reached on Unix), no process or thread to be had now
/// (`ERROR_NO_PROC_SLOTS`, `ERROR_MAX_THRDS_REACHED`), out of handles
/// (`ERROR_TOO_MANY_OPEN_FILES`), or the executable held open by a writer
/// (`ERROR_SHARING_VIOLATION`, what `ETXTBSY` is on Unix). Each goes away
/// when other processes end or let go: a retry may start the program.
#[cfg(windows)]
pub(crate) fn is_transient_os_error(code: i32) -> bool {
    use windows_sys::Win32::Foundation::{
        ERROR_COMMITMENT_LIMIT, ERROR_MAX_THRDS_REACHED, ERROR_NONPAGED_SYSTEM_RESOURCES,
        ERROR_NOT_ENOUGH_MEMORY, ERROR_NOT_ENOUGH_QUOTA, ERROR_NO_PROC_SLOTS,
        ERROR_NO_SYSTEM_RESOURCES, ERROR_OUTOFMEMORY, ERROR_PAGED_SYSTEM_RESOURCES,
        ERROR_PAGEFILE_QUOTA, ERROR_SHARING_VIOLATION, ERROR_TOO_MANY_OPEN_FILES,
        ERROR_WORKING_SET_QUOTA,
    };
    let Ok(code) = u32::try_from(code) else {
        return false;
    };
    [
        ERROR_NOT_ENOUGH_MEMORY,
        ERROR_OUTOFMEMORY,
        ERROR_NO_SYSTEM_RESOURCES,
        ERROR_NONPAGED_SYSTEM_RESOURCES,
        ERROR_PAGED_SYSTEM_RESOURCES,
        ERROR_WORKING_SET_QUOTA,
        ERROR_PAGEFILE_QUOTA,
        ERROR_COMMITMENT_LIMIT,
        ERROR_NOT_ENOUGH_QUOTA,
        ERROR_NO_PROC_SLOTS,
        ERROR_MAX_THRDS_REACHED,
        ERROR_TOO_MANY_OPEN_FILES,
        ERROR_SHARING_VIOLATION,
    ]
    .contains(&code)
}

// Both tables are checked through `pkit::is_transient`: the Unix one by
// tests/retry.rs, the Windows one by tests/windows.rs under Wine.
