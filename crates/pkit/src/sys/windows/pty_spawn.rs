//! Creating a process on a pseudo console: `CreateProcessW` with the
//! console in its startup attributes (`PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE`),
//! which `std::process::Command` can't pass on a stable compiler. So this
//! path builds what std would: the command line (quoted as the C runtime
//! and `CommandLineToArgvW` split it), the environment block, the working
//! directory.
//!
//! The child gets `STARTF_USESTDHANDLES` with no handles: Windows then
//! gives a console program the console's own input and output. Without it,
//! Windows would hand the child copies of the owner's standard handles
//! when they are not console handles (an owner whose output is piped),
//! and the program would write there instead of to its console. (Wine 8
//! gives such a child no standard handles at all: a program that opens
//! `CONIN$` and `CONOUT$` itself works there, one that writes to its
//! standard output shows nothing.)
//!
//! The child does not lead a new console process group (Windows would
//! turn Ctrl-C off in it): a typed Ctrl-C reaches it as on a real console.
//! It does inherit the owner's ignore-Ctrl-C setting, though: under an
//! owner that ignores Ctrl-C (`SetConsoleCtrlHandler(NULL, TRUE)`) the
//! program ignores it too, unless it turns it back on itself.

use std::ffi::{c_void, OsStr};
use std::io;
use std::mem::{size_of, zeroed};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::OwnedHandle;
use std::sync::Arc;

use windows_sys::Win32::System::Console::HPCON;
use windows_sys::Win32::System::Threading::{
    CreateProcessW, DeleteProcThreadAttributeList, InitializeProcThreadAttributeList,
    TerminateProcess, UpdateProcThreadAttribute, CREATE_SUSPENDED, CREATE_UNICODE_ENVIRONMENT,
    EXTENDED_STARTUPINFO_PRESENT, LPPROC_THREAD_ATTRIBUTE_LIST, PROCESS_INFORMATION,
    PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE, STARTF_USESTDHANDLES, STARTUPINFOEXW,
};

use super::super::{ChildEnv, Mechanism, SpawnError, SpawnSpec};
use super::console::{close_at_exit, Console};
use super::{cvt, owned, wide, NativeString};

/// Creates `spec`'s process on `console`, suspended unless `run`: its id
/// and handle. The console is closed when the process exits.
pub(super) fn create(
    spec: &SpawnSpec,
    console: &Arc<Console>,
    run: bool,
) -> Result<(u32, OwnedHandle), SpawnError> {
    if is_batch_file(&spec.path) {
        return Err(SpawnError::Unsupported(
            "pty",
            Mechanism::JobObject,
            "a batch file on a pseudo console: pkit does not pass arguments through cmd.exe's \
             parser here; run `cmd /c` with the script and arguments you have checked"
                .into(),
        ));
    }
    let hpc = console.handle().ok_or_else(|| {
        SpawnError::Os(io::Error::other(
            "the pseudo console was closed before its program started",
        ))
    })?;
    let mut line = command_line(&spec.path, &spec.argv).map_err(SpawnError::Os)?;
    let app = wide(&spec.path);
    let env = env_block(&spec.envp);
    let cwd = spec.cwd.as_deref().map(wide);
    let mut attributes = Attributes::pseudo_console(hpc).map_err(SpawnError::Os)?;
    // SAFETY: all-zero is a valid STARTUPINFOEXW (no handles, no strings).
    let mut si: STARTUPINFOEXW = unsafe { zeroed() };
    si.StartupInfo.cb = size_of::<STARTUPINFOEXW>() as u32;
    // No handles: the console's own (see the module's doc).
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.lpAttributeList = attributes.list();
    let mut flags = EXTENDED_STARTUPINFO_PRESENT | CREATE_UNICODE_ENVIRONMENT;
    if !run {
        flags |= CREATE_SUSPENDED;
    }
    // SAFETY: all-zero is a valid PROCESS_INFORMATION to be filled in.
    let mut pi: PROCESS_INFORMATION = unsafe { zeroed() };
    // SAFETY: every string is NUL-terminated UTF-16 that outlives the
    // call (the command line writable, as required), the environment
    // block is double-NUL-terminated UTF-16 (CREATE_UNICODE_ENVIRONMENT),
    // the startup record is a STARTUPINFOEXW of the size in `cb` with a
    // live attribute list, and no handle is inherited.
    let created = cvt(unsafe {
        CreateProcessW(
            app.as_ptr(),
            line.as_mut_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            0,
            flags,
            env.as_ref()
                .map_or(std::ptr::null(), |e| e.as_ptr() as *const c_void),
            cwd.as_ref().map_or(std::ptr::null(), |d| d.as_ptr()),
            &si.StartupInfo,
            &mut pi,
        )
    });
    drop(attributes);
    created.map_err(SpawnError::Exec)?;
    // Both handles owned before anything can fail.
    let (process, thread) = (owned(pi.hProcess), owned(pi.hThread));
    drop(thread);
    let process = process.map_err(SpawnError::Os)?;
    let watched = process
        .try_clone()
        .and_then(|dup| close_at_exit(console.clone(), dup));
    if let Err(e) = watched {
        // Never left running (or suspended) outside the job.
        use std::os::windows::io::AsRawHandle;
        // SAFETY: our process handle, with PROCESS_TERMINATE (all access).
        unsafe { TerminateProcess(process.as_raw_handle(), super::KILLED_EXIT_CODE) };
        return Err(SpawnError::Os(e));
    }
    Ok((pi.dwProcessId, process))
}

/// Whether `path` names a `.bat` or `.cmd` file (which Windows runs
/// through `cmd.exe`). Windows drops the trailing dots and spaces of a
/// file name (`x.bat.` and `x.bat ` open `x.bat`): so does the check.
fn is_batch_file(path: &OsStr) -> bool {
    let name = path.to_string_lossy();
    let name = name.trim_end_matches(['.', ' ']).to_ascii_lowercase();
    name.ends_with(".bat") || name.ends_with(".cmd")
}

/// The most UTF-16 units of a command line `CreateProcessW` takes, its
/// terminating NUL included.
pub(super) const MAX_COMMAND_LINE: usize = 32_767;

/// The command line: the program's path (quoted, as std does), then each
/// argument after `argv[0]`, NUL-terminated. One longer than Windows takes
/// is refused (Windows refuses it too; Wine cuts it short and runs it).
/// An ordinary start checks its line with this as well (std's quoting is
/// the same, less quotes around an argument with a newline or a vertical
/// tab and no space or tab).
pub(super) fn command_line(path: &OsStr, argv: &[NativeString]) -> io::Result<Vec<u16>> {
    if path.encode_wide().any(|c| c == u16::from(b'"')) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a program path with a double quote can't be put on a command line",
        ));
    }
    let mut line = Vec::new();
    push_arg(&mut line, path, true);
    for arg in argv.iter().skip(1) {
        line.push(u16::from(b' '));
        push_arg(&mut line, arg, false);
    }
    line.push(0);
    if line.len() > MAX_COMMAND_LINE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the command line is {} UTF-16 units long with its NUL: Windows takes \
                 {MAX_COMMAND_LINE} at most",
                line.len()
            ),
        ));
    }
    Ok(line)
}

/// Appends `arg` so that the C runtime's rules split it back out whole:
/// in quotes when it is empty or has blanks (or `always`); a quote in it
/// escaped with a backslash, and the backslashes just before a quote (the
/// closing one included) doubled; other backslashes as they are.
fn push_arg(line: &mut Vec<u16>, arg: &OsStr, always: bool) {
    const QUOTE: u16 = b'"' as u16;
    const BACKSLASH: u16 = b'\\' as u16;
    let units: Vec<u16> = arg.encode_wide().collect();
    let blank = |c: &u16| matches!(*c, 0x20 | 0x09 | 0x0a | 0x0b);
    let quoted = always || units.is_empty() || units.iter().any(blank);
    if quoted {
        line.push(QUOTE);
    }
    let mut backslashes = 0usize;
    for &c in &units {
        match c {
            BACKSLASH => backslashes += 1,
            QUOTE => {
                line.extend(std::iter::repeat_n(BACKSLASH, backslashes + 1));
                backslashes = 0;
            }
            _ => backslashes = 0,
        }
        line.push(c);
    }
    if quoted {
        line.extend(std::iter::repeat_n(BACKSLASH, backslashes));
        line.push(QUOTE);
    }
}

/// The environment block for `CREATE_UNICODE_ENVIRONMENT` (`None`: the
/// owner's own): `NAME=value` entries sorted by name without regard to
/// case, as Windows keeps them, each NUL-terminated, then a NUL.
fn env_block(env: &ChildEnv) -> Option<Vec<u16>> {
    let entries = match env {
        ChildEnv::Inherited => return None,
        ChildEnv::Exactly(entries) => entries,
    };
    let mut sorted: Vec<Vec<u16>> = entries
        .iter()
        .map(|kv| kv.encode_wide().collect())
        .collect();
    // The name ends at the first '=' after its first character (names
    // like `=C:` exist).
    let name = |kv: &[u16]| -> Vec<u16> {
        let end = kv
            .iter()
            .skip(1)
            .position(|&c| c == u16::from(b'='))
            .map_or(kv.len(), |i| i + 1);
        kv[..end]
            .iter()
            .map(|&c| match u8::try_from(c) {
                Ok(b) => u16::from(b.to_ascii_uppercase()),
                Err(_) => c,
            })
            .collect()
    };
    sorted.sort_by_cached_key(|kv| name(kv));
    let mut block = Vec::new();
    for kv in sorted {
        block.extend_from_slice(&kv);
        block.push(0);
    }
    if block.is_empty() {
        block.push(0);
    }
    block.push(0);
    Some(block)
}

/// A process-thread attribute list holding one pseudo console; deleted on
/// drop.
struct Attributes {
    /// The list's memory (pointer-aligned).
    buf: Vec<usize>,
}

impl Attributes {
    fn pseudo_console(hpc: HPCON) -> io::Result<Attributes> {
        let mut size = 0usize;
        // SAFETY: a size query (null list): fails, with the size needed.
        unsafe { InitializeProcThreadAttributeList(std::ptr::null_mut(), 1, 0, &mut size) };
        if size == 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0usize; size.div_ceil(size_of::<usize>())];
        // SAFETY: `buf` is writable for `size` bytes and pointer-aligned.
        cvt(unsafe {
            InitializeProcThreadAttributeList(
                buf.as_mut_ptr() as LPPROC_THREAD_ATTRIBUTE_LIST,
                1,
                0,
                &mut size,
            )
        })?;
        let mut list = Attributes { buf };
        // SAFETY: an initialised list with room for one attribute; the
        // pseudo console attribute's value is the console itself (an
        // HPCON-sized value, not a pointer to one), which stays open
        // until the process is created.
        cvt(unsafe {
            UpdateProcThreadAttribute(
                list.list(),
                0,
                PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE as usize,
                hpc as *const c_void,
                size_of::<HPCON>(),
                std::ptr::null_mut(),
                std::ptr::null(),
            )
        })?;
        Ok(list)
    }

    fn list(&mut self) -> LPPROC_THREAD_ATTRIBUTE_LIST {
        self.buf.as_mut_ptr() as LPPROC_THREAD_ATTRIBUTE_LIST
    }
}

impl Drop for Attributes {
    fn drop(&mut self) {
        // SAFETY: the list was initialised (an `Attributes` exists only
        // then) and is deleted once.
        unsafe { DeleteProcThreadAttributeList(self.list()) };
    }
}
