//! The Windows backend: every group is a Job Object created with
//! `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`, so the kernel ends the whole tree
//! when the group's handle closes — at teardown, or when the owner dies by
//! any means (no guard process is needed). Children are created suspended,
//! assigned to the job, then resumed: nothing they run, and no process
//! they start, is ever outside it.
//!
//! A graceful stop (`shutdown`, a timeout's grace, SIGTERM or SIGINT) is a
//! `CTRL_BREAK_EVENT` to each started child's console process group, then
//! the grace, then `TerminateJobObject`; where no break can be delivered
//! (no console shared with the owner, GUI programs, Wine) it goes straight
//! to termination (`ctrl.rs`).
//!
//! A pty session's program is created on a ConPTY pseudo console
//! (`pty.rs`, `console.rs`, `pty_spawn.rs`), in the job like any child.
//!
//! A group's suspension, and `Signal::Stop`/`Signal::Cont` to the group
//! or to a started process's tree, suspend every process of the job one by
//! one (`suspend.rs`); each of the three holds its own suspensions. A
//! graceful stop of a suspended group (its shutdown, or a started
//! process's end with a grace) resumes the group's suspension right after
//! the break, so the programs can handle it within the grace.
//!
//! What Windows can't do is refused with a typed error, never skipped:
//! other signals, the Unix spawn options, and caps the job
//! can't express.

mod child;
mod console;
mod container;
mod ctrl;
mod host;
mod io;
mod job;
pub(crate) mod pty;
mod pty_spawn;
mod resolve;
mod spawn;
mod suspend;
mod tree;

use std::os::windows::io::{FromRawHandle, OwnedHandle};

use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};

pub(crate) use child::ChildHandle;
pub(crate) use container::{Container, CreateError};
pub use host::host_containment;
pub(crate) use io::*;
pub(crate) use resolve::{missing_interpreter, resolve};
pub(crate) use spawn::spawn_detached;
pub(crate) use tree::ProcTree;

/// What a process ended by pkit (a group's kill or teardown, a timeout)
/// exits with: 137, as a shell reports a SIGKILLed process. A process that
/// exits with 137 by itself is reported as killed too.
pub(crate) const KILLED_EXIT_CODE: u32 = 128 + 9;

/// The CPU time and peak memory of a live or exited process: Windows keeps
/// a process's accounting for as long as a handle to it is open.
pub(crate) fn proc_usage(_pid: i32) -> Option<(std::time::Duration, Option<u64>, Option<u64>)> {
    // Answered from the process handle instead (`ChildHandle::rusage`).
    None
}

/// Turns a Win32 `BOOL` result into an `io::Result`.
fn cvt(ok: windows_sys::core::BOOL) -> std::io::Result<()> {
    if ok == 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Takes ownership of a handle a Win32 call just returned (null or
/// `INVALID_HANDLE_VALUE` mean failure, with the reason in the last error).
fn owned(h: HANDLE) -> std::io::Result<OwnedHandle> {
    if h.is_null() || h == INVALID_HANDLE_VALUE {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `h` is a valid handle just returned to us by the OS, owned by
    // nobody else; the OwnedHandle closes it exactly once.
    Ok(unsafe { OwnedHandle::from_raw_handle(h) })
}

/// A NUL-terminated UTF-16 copy of `s`, for the `W` functions.
fn wide(s: &std::ffi::OsStr) -> Vec<u16> {
    use std::os::windows::ffi::OsStrExt;
    s.encode_wide().chain(std::iter::once(0)).collect()
}

/// ntdll's module, loaded in every process and never unloaded.
fn ntdll() -> Option<windows_sys::Win32::Foundation::HMODULE> {
    use windows_sys::Win32::System::LibraryLoader::GetModuleHandleW;
    let name = wide(std::ffi::OsStr::new("ntdll.dll"));
    // SAFETY: a NUL-terminated name; the module stays loaded.
    let module = unsafe { GetModuleHandleW(name.as_ptr()) };
    (!module.is_null()).then_some(module)
}

/// Whether this is Wine, not Windows: Wine's ntdll exports
/// `wine_get_version`, which no Windows has. For the reasons of refusals
/// only Wine makes.
fn under_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::GetProcAddress;
    static WINE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WINE.get_or_init(|| {
        // SAFETY: a valid module and a NUL-terminated ASCII name.
        ntdll().is_some_and(|m| {
            unsafe { GetProcAddress(m, c"wine_get_version".as_ptr().cast()) }.is_some()
        })
    })
}

/// The error for what Windows can't do.
fn unsupported(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Unsupported, what.to_string())
}

/// Opens a running process for adoption into a job, and (`suspend`) for
/// suspending it too.
fn open_process(pid: u32, suspend: bool) -> std::io::Result<OwnedHandle> {
    use windows_sys::Win32::System::Threading::{
        OpenProcess, PROCESS_QUERY_INFORMATION, PROCESS_SET_QUOTA, PROCESS_SUSPEND_RESUME,
        PROCESS_SYNCHRONIZE, PROCESS_TERMINATE,
    };
    let mut access = PROCESS_SET_QUOTA | PROCESS_TERMINATE;
    if suspend {
        access |= PROCESS_SUSPEND_RESUME | PROCESS_QUERY_INFORMATION | PROCESS_SYNCHRONIZE;
    }
    // SAFETY: opens a process by id; the handle is checked and owned.
    owned(unsafe { OpenProcess(access, 0, pid) })
}

/// Every process's executable name, by id (empty when the snapshot fails).
fn process_names() -> std::collections::HashMap<u32, String> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, Process32FirstW, Process32NextW, PROCESSENTRY32W,
        TH32CS_SNAPPROCESS,
    };
    let mut names = std::collections::HashMap::new();
    // SAFETY: a snapshot of all processes; the handle is checked and owned.
    let Ok(snap) = owned(unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) }) else {
        return names;
    };
    // SAFETY: all-zero is a valid PROCESSENTRY32W; dwSize is set as required.
    let mut entry: PROCESSENTRY32W = unsafe { std::mem::zeroed() };
    entry.dwSize = std::mem::size_of::<PROCESSENTRY32W>() as u32;
    // SAFETY: valid snapshot handle and an entry of the size in dwSize.
    let mut more = unsafe { Process32FirstW(snap.as_raw_handle(), &mut entry) } != 0;
    while more {
        let len = entry
            .szExeFile
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(entry.szExeFile.len());
        names.insert(
            entry.th32ProcessID,
            String::from_utf16_lossy(&entry.szExeFile[..len]),
        );
        // SAFETY: as for Process32FirstW.
        more = unsafe { Process32NextW(snap.as_raw_handle(), &mut entry) } != 0;
    }
    names
}
