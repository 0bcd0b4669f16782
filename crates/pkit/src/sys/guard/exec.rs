//! Starting the guard without copying the owner's address space: this
//! program's own executable, run again as the guard.
//!
//! A fork would copy the owner's page tables (about half a second in a
//! parent holding 8 GiB) and leave the guard a copy-on-write copy of the
//! owner's memory. Instead the owner starts `/proc/self/exe` the way it
//! starts any program: a vfork-style child that borrows the owner's memory
//! until `execve` (`linux/orphan.rs`, which also makes it nobody's child in
//! the owner's tree). The new image finds [`ENV`] in its environment and
//! becomes the guard before `main` runs: pkit places [`guard_entry`] in
//! the executable's `.init_array`, the list of functions the dynamic loader
//! (or a static binary's startup code) calls before `main`. The guard then
//! runs exactly the loop a forked guard runs (`process.rs`), with a table
//! and buffer of its own and nothing of the owner's memory.
//!
//! This needs pkit's entry function in the main executable (not in a
//! shared library loaded into another program, such as a Python
//! extension), and an executable that can be run again through
//! `/proc/self/exe`. [`usable`] checks the first; a start that fails or
//! whose image does not report in is ended (through its pidfd) and the
//! guard is forked as before. `PKIT_GUARD_START=fork` forces the fork.

use std::ffi::{CStr, CString};

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use super::portable::{env_plus, may_run_executable};
use super::process::guard_main;
use super::wire::{parse_start_bell, socket_of_kind, split_quiet, Plan, Slot, BUF_LEN};
use crate::sys::setup::dup_above;
use crate::sys::{child_io, ChildSetup, IoRequest, SpawnError, SpawnSpec};

/// Set in the guard's environment: `<fd>,<exact>,<cap>,<bell>,<quiet>`
/// (the socket's descriptor, 1 if process groups are signalled exactly,
/// the table's slots, the bell's descriptor, the quiet period in
/// milliseconds: see `process.rs`).
const ENV: &str = "PKIT_OWNER_DEATH_GUARD";
/// The descriptor the guard's socket gets in the new image.
const GUARD_FD: RawFd = 3;
/// The descriptor the guard's bell gets in the new image.
const BELL_FD: RawFd = 4;

/// Whether [`guard_entry`] ran in this process (so the executable carries
/// it, and the linker kept it).
static ENTRY_RAN: AtomicBool = AtomicBool::new(false);

/// The executable's pre-`main` entry: see the module docs.
#[used]
#[link_section = ".init_array"]
static GUARD_ENTRY: extern "C" fn() = guard_entry;

/// Runs before `main` in every process of an executable linked with pkit:
/// notes that it ran and, only in a process started as a guard, becomes the
/// guard (never returning). Elsewhere it costs one `getenv`.
extern "C" fn guard_entry() {
    ENTRY_RAN.store(true, Ordering::Relaxed);
    // SAFETY: reads this process's environment (set up before any
    // `.init_array` function runs, and not yet changed by anyone: `main`
    // has not started); becomes the guard only when asked through it.
    unsafe { become_guard_if_asked() }
}

/// # Safety
/// Only from [`guard_entry`], before `main`.
unsafe fn become_guard_if_asked() {
    // Raw: before `main` (std's environment is not ours to use yet) and, from the mapping on, the
    // guard's async-signal-safe start: getenv, mmap, _exit.
    let value = libc::getenv(c"PKIT_OWNER_DEATH_GUARD".as_ptr());
    if value.is_null() {
        return;
    }
    let Some((head, quiet_ms)) = split_quiet(CStr::from_ptr(value).to_bytes()) else {
        return;
    };
    let Some((sock, exact_pgroup, cap, bell)) = parse_start_bell(head) else {
        return;
    };
    // Only on a socket of the kind the owner makes: anything else means
    // the variable was not set by pkit for this process.
    if !socket_of_kind(sock, libc::SOCK_SEQPACKET) {
        return;
    }
    // Anonymous mappings are zero-filled (all slots free) and cost no
    // memory until touched.
    let map = |bytes: usize| {
        let p = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            // No greeting: the owner falls back to a fork.
            libc::_exit(1);
        }
        p
    };
    let table = map(cap * size_of::<Slot>()).cast::<Slot>();
    let buf = map(BUF_LEN).cast::<u8>();
    let plan = Plan {
        sock,
        bell,
        table,
        cap,
        buf,
        buf_len: BUF_LEN,
        exact_pgroup,
        quiet_ms,
    };
    guard_main(&plan)
}

/// Whether the guard may be started by running the executable again; if
/// not, why not (`PKIT_GUARD_START`, see `portable.rs`).
pub(super) fn usable() -> Result<(), String> {
    may_run_executable(
        ENTRY_RAN.load(Ordering::Relaxed),
        guard_entry as *const () as usize,
    )
}

/// The guard's spawn: this executable, with stdio on `/dev/null`, the
/// owner's environment plus [`ENV`], `guard_end` as [`GUARD_FD`] and
/// `bell` as [`BELL_FD`].
pub(super) fn spawn_spec(
    guard_end: &OwnedFd,
    bell: &OwnedFd,
    exact_pgroup: bool,
    cap: usize,
    quiet_ms: i32,
) -> io::Result<SpawnSpec> {
    let cstr = |b: Vec<u8>| CString::new(b).map_err(io::Error::other);
    let start = format!(
        "{GUARD_FD},{},{cap},{BELL_FD},{quiet_ms}",
        u8::from(exact_pgroup)
    );
    let envp = env_plus(ENV, &start)?;
    let null = || child_io(IoRequest::Null, false).map(|(io, _)| io);
    // `keep` sources must be numbered above every target.
    let sock = dup_above(guard_end.as_raw_fd(), BELL_FD + 1)?;
    let bell = dup_above(bell.as_raw_fd(), BELL_FD + 1)?;
    Ok(SpawnSpec {
        path: cstr(b"/proc/self/exe".to_vec())?,
        argv: vec![cstr(b"pkit-guard".to_vec())?],
        envp: crate::sys::ChildEnv::Exactly(envp),
        cwd: None,
        stdin: null()?,
        stdout: null()?,
        stderr: null()?,
        // Out of the owner's process group and session before anything
        // else, so that no terminal signal sent to the owner's job after
        // that reaches it; the ones sent before stay blocked until the
        // guard ignores them (`spawn_orphan`).
        setup: ChildSetup {
            setsid: true,
            keep: vec![(sock, GUARD_FD), (bell, BELL_FD)],
            ..ChildSetup::default()
        },
    })
}

/// A spawn error in words (no argument or environment value in it).
pub(super) fn describe(e: &SpawnError) -> String {
    match e {
        SpawnError::Exec(e) => format!("exec failed: {e}"),
        SpawnError::Chdir(e) => format!("chdir failed: {e}"),
        SpawnError::Step(step, e) => format!("{step:?} failed: {e}"),
        SpawnError::Refused(e) | SpawnError::Os(e) => e.to_string(),
        SpawnError::Unsupported(operation, mechanism, why) => {
            format!("{operation} unsupported by {mechanism}: {why}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::portable::in_main_executable;
    use super::super::wire::parse_start;
    use super::*;

    #[test]
    fn the_guard_variable_is_parsed_strictly() {
        assert_eq!(parse_start_bell(b"3,1,4096,4"), Some((3, true, 4096, 4)));
        assert_eq!(parse_start_bell(b"3,1,4096"), None);
        assert_eq!(parse_start_bell(b"3,1,4096,3"), None);
        assert_eq!(parse_start_bell(b"3,1,4096,2"), None);
        assert_eq!(parse_start_bell(b"3,1,4096,x"), None);
        assert_eq!(
            split_quiet(b"3,1,4096,4,20"),
            Some((&b"3,1,4096,4"[..], 20))
        );
        assert_eq!(split_quiet(b"3,0,4096,0"), Some((&b"3,0,4096"[..], 0)));
        for bad in [
            &b"3,1,4096,4,"[..],
            b"20",
            b"3,1,4096,4,-1",
            b"3,4,1234567890",
        ] {
            assert_eq!(split_quiet(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_start(b"3,1,4096"), Some((3, true, 4096)));
        assert_eq!(parse_start(b"7,0,1"), Some((7, false, 1)));
        for bad in [
            &b""[..],
            b"3,1",
            b"3,1,4096,",
            b"2,1,10",
            b"3,2,10",
            b"3,1,0",
            b"3,1,4097",
            b"-3,1,10",
            b"3, 1,10",
            b"99999999999,1,1",
        ] {
            assert_eq!(parse_start(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// The entry is linked into this test binary, in its main executable.
    #[test]
    fn the_pre_main_entry_ran_here() {
        assert!(ENTRY_RAN.load(Ordering::Relaxed));
        assert!(in_main_executable(guard_entry as *const () as usize));
    }
}
