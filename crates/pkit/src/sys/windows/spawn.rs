//! Creating a process: through `std::process::Command` (which quotes the
//! command line, and starts `.bat`/`.cmd` files through `cmd.exe` with the
//! escaping that keeps their arguments from being commands), created
//! suspended so that it can be put in its job before it runs.

use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::OwnedHandle;
use std::os::windows::process::CommandExt;
use std::process::Stdio;

use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, Thread32First, Thread32Next, TH32CS_SNAPTHREAD, THREADENTRY32,
};
use windows_sys::Win32::System::Threading::{
    OpenThread, ResumeThread, CREATE_NEW_PROCESS_GROUP, CREATE_SUSPENDED, THREAD_SUSPEND_RESUME,
};

use super::super::{SpawnError, SpawnSpec};
use super::{owned, ChildIo};

/// Held while handles that must not leak into a child are inheritable:
/// `CreatePseudoConsole` makes inheritable copies of its pipe ends for the
/// moment of the call, and an ordinary spawn (std's, which inherits every
/// inheritable handle of the owner) at that moment would take copies that
/// keep the session's output open. pkit's own spawns and console creations
/// take it; a spawn outside pkit (another library's, or std's directly)
/// can still race with a console's creation.
pub(super) fn inheritance_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates the process, suspended unless `run` (a detached start): its id
/// and handle. It leads a new console process group (so a CTRL_BREAK can
/// be aimed at it and not at the owner), unless it is a pty session's
/// (`pty_spawn.rs`: a console of its own).
pub(crate) fn create(spec: &SpawnSpec, run: bool) -> Result<(u32, OwnedHandle), SpawnError> {
    if !spec.setup.pre_exec.is_empty() || !spec.setup.keep.is_empty() {
        return Err(SpawnError::Os(super::unsupported(
            "pre_exec hooks and kept descriptors exist on Unix only",
        )));
    }
    if let ChildIo::Console(console) = &spec.stdin {
        return super::pty_spawn::create(spec, console, run);
    }
    // std passes on a command line of any length: Windows refuses one
    // too long, Wine runs it cut short. Refused here, with its length;
    // built to be measured only when it could be too long (quoting at
    // most doubles a string's units and adds two quotes and a space).
    let units = |s: &std::ffi::OsStr| 2 * s.encode_wide().count() + 3;
    let bound =
        units(spec.path.as_ref()) + spec.argv.iter().skip(1).map(|a| units(a)).sum::<usize>();
    if bound > super::pty_spawn::MAX_COMMAND_LINE {
        super::pty_spawn::command_line(&spec.path, &spec.argv).map_err(SpawnError::Os)?;
    }
    let mut cmd = std::process::Command::new(&spec.path);
    cmd.args(spec.argv.iter().skip(1));
    // An inherited environment is std's default (the parent's block).
    let entries = match &spec.envp {
        crate::sys::ChildEnv::Inherited => &[][..],
        crate::sys::ChildEnv::Exactly(entries) => {
            cmd.env_clear();
            &entries[..]
        }
    };
    for kv in entries {
        let s = kv.to_string_lossy();
        // Names never contain '=' (checked before), values may.
        if let Some(at) = s.find('=') {
            let (k, v) = kv.as_encoded_bytes().split_at(at);
            // SAFETY: both halves come from an OsStr split at an ASCII '='.
            let (k, v) = unsafe {
                (
                    std::ffi::OsStr::from_encoded_bytes_unchecked(k),
                    std::ffi::OsStr::from_encoded_bytes_unchecked(&v[1..]),
                )
            };
            cmd.env(k, v);
        }
    }
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let stdout = stdio(&spec.stdout).map_err(SpawnError::Os)?;
    let stderr = match &spec.stderr {
        ChildIo::SameAsStdout => stdio(&spec.stdout),
        other => stdio(other),
    }
    .map_err(SpawnError::Os)?;
    cmd.stdin(stdio(&spec.stdin).map_err(SpawnError::Os)?)
        .stdout(stdout)
        .stderr(stderr);
    let mut flags = CREATE_NEW_PROCESS_GROUP;
    if !run {
        flags |= CREATE_SUSPENDED;
    }
    cmd.creation_flags(flags);
    let spawned = {
        let _inheritance = inheritance_lock();
        cmd.spawn()
    };
    let child = spawned.map_err(|e| match e.kind() {
        // A .bat/.cmd argument std can't quote safely, and the like.
        io::ErrorKind::InvalidInput => SpawnError::Os(e),
        _ => SpawnError::Exec(e),
    })?;
    let pid = child.id();
    Ok((pid, OwnedHandle::from(child)))
}

fn stdio(io: &ChildIo) -> io::Result<Stdio> {
    Ok(match io {
        ChildIo::Inherit => Stdio::inherit(),
        ChildIo::Null => Stdio::null(),
        ChildIo::Fd(h) => Stdio::from(h.try_clone()?),
        ChildIo::SameAsStdout => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "only stderr can be the same as stdout",
            ))
        }
        ChildIo::Console(_) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a pseudo console is all of a child's stdio or none of it",
            ))
        }
    })
}

/// Resumes every thread of the suspended process `pid` (a new process has
/// exactly one).
pub(crate) fn resume(pid: u32) -> io::Result<()> {
    // SAFETY: a snapshot of all threads; the handle is checked and owned.
    let snap = owned(unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0) })?;
    // SAFETY: all-zero is a valid THREADENTRY32; dwSize is set as required.
    let mut entry: THREADENTRY32 = unsafe { std::mem::zeroed() };
    entry.dwSize = std::mem::size_of::<THREADENTRY32>() as u32;
    use std::os::windows::io::AsRawHandle;
    // SAFETY: valid snapshot handle and entry of the size given in dwSize.
    let mut more = unsafe { Thread32First(snap.as_raw_handle(), &mut entry) } != 0;
    let mut resumed = 0;
    while more {
        if entry.th32OwnerProcessID == pid {
            // SAFETY: opens the thread by id; the handle is checked and owned.
            let thread =
                owned(unsafe { OpenThread(THREAD_SUSPEND_RESUME, 0, entry.th32ThreadID) })?;
            // SAFETY: valid thread handle with THREAD_SUSPEND_RESUME.
            if unsafe { ResumeThread(thread.as_raw_handle()) } == u32::MAX {
                return Err(io::Error::last_os_error());
            }
            resumed += 1;
        }
        // SAFETY: as for Thread32First.
        more = unsafe { Thread32Next(snap.as_raw_handle(), &mut entry) } != 0;
    }
    if resumed == 0 {
        return Err(io::Error::other("the new process has no thread to resume"));
    }
    Ok(())
}

/// Starts `spec` outside every job ([`Command::spawn_detached`](crate::Command::spawn_detached)):
/// the owner is in no job of pkit's, so a child it starts without one
/// outlives it.
pub(crate) fn spawn_detached(spec: &SpawnSpec) -> Result<i32, SpawnError> {
    let (pid, _handle) = create(spec, true)?;
    Ok(pid as i32)
}
