//! The portable backend's registration gate, the child's half: a new
//! process group's first process is this program's own executable, started
//! by `posix_spawn` with every attribute and file action the real program
//! would have had (its process group or session, signal mask and
//! defaults, stdio, working directory, no other descriptor), plus one
//! socket on [`GATE_FD`] and [`ENV`] (the real program's path) first in
//! its environment. Before `main` ([`trampoline_entry`], placed in
//! `.init_array` on ELF systems and in `__DATA,__mod_init_func` on macOS)
//! it says it is there, waits on the socket for the owner's go byte (sent
//! once the owner has registered the new process group with the
//! owner-death guard) and then `execve`s the real program with its own
//! argument vector and the environment without [`ENV`]. End of file
//! instead of the go byte means the owner died before it could register
//! the group: the trampoline exits, and the program never runs. An
//! `execve` that fails sends its errno back and exits; one that succeeds
//! closes the socket (close-on-exec), which the owner reads as success.
//! The owner's half is in `spawn.rs` ([`Gated`](super::spawn::Gated)).
//!
//! The C library hands `.init_array` functions `argc`, `argv` and `envp`
//! on glibc and FreeBSD, and dyld does on macOS; musl passes nothing, so
//! there is no trampoline on musl (the group is then registered after
//! `posix_spawn` returns, as where the executable can't be run again).

use std::os::fd::RawFd;
use std::sync::atomic::AtomicBool;
#[cfg(any(
    all(target_os = "linux", target_env = "gnu"),
    target_os = "macos",
    target_os = "freebsd"
))]
use std::sync::atomic::Ordering;

/// Put first in the trampoline's environment: `PKIT_TRAMPOLINE_EXEC=<path
/// of the real program>`.
pub(crate) const ENV: &str = "PKIT_TRAMPOLINE_EXEC";
/// The gate socket's descriptor in the trampoline.
pub(crate) const GATE_FD: RawFd = 3;
/// Sent by the trampoline when it reached the gate.
pub(crate) const READY: u8 = b'r';
/// Sent by the owner: registered, go on.
pub(crate) const GO: u8 = b'g';

/// Whether [`trampoline_entry`] ran in this process (so the executable
/// carries it).
static ENTRY_RAN: AtomicBool = AtomicBool::new(false);

#[cfg(any(
    all(target_os = "linux", target_env = "gnu"),
    target_os = "macos",
    target_os = "freebsd"
))]
#[used]
#[cfg_attr(
    target_os = "macos",
    link_section = "__DATA,__mod_init_func,mod_init_funcs"
)]
#[cfg_attr(not(target_os = "macos"), link_section = ".init_array")]
static TRAMPOLINE_ENTRY: extern "C" fn(
    libc::c_int,
    *const *const libc::c_char,
    *mut *const libc::c_char,
) = trampoline_entry;

/// Runs before `main` in every process of an executable linked with pkit:
/// notes that it ran and, only in an image started as a trampoline (its
/// environment starts with [`ENV`] and [`GATE_FD`] is a stream socket),
/// waits at the gate and execs the real program, never returning.
/// Elsewhere it costs one comparison of the first environment string.
#[cfg(any(
    all(target_os = "linux", target_env = "gnu"),
    target_os = "macos",
    target_os = "freebsd"
))]
extern "C" fn trampoline_entry(
    _argc: libc::c_int,
    argv: *const *const libc::c_char,
    envp: *mut *const libc::c_char,
) {
    ENTRY_RAN.store(true, Ordering::Relaxed);
    // SAFETY: `argv` and `envp` are the process's own vectors, handed to
    // `.init_array` functions by the C library (glibc, FreeBSD) or dyld,
    // null-terminated; `main` has not started, so nothing else uses them.
    unsafe { gate_if_asked(argv, envp) }
}

/// # Safety
/// Only from [`trampoline_entry`], with its arguments.
#[cfg(any(
    all(target_os = "linux", target_env = "gnu"),
    target_os = "macos",
    target_os = "freebsd"
))]
unsafe fn gate_if_asked(argv: *const *const libc::c_char, envp: *mut *const libc::c_char) {
    if envp.is_null() || argv.is_null() {
        return;
    }
    let first = *envp;
    if first.is_null() {
        return;
    }
    // "PKIT_TRAMPOLINE_EXEC=" first: the owner puts it there.
    let name = ENV.as_bytes();
    let entry = std::ffi::CStr::from_ptr(first).to_bytes();
    if entry.len() <= name.len() + 1 || &entry[..name.len()] != name || entry[name.len()] != b'=' {
        return;
    }
    let path = first.add(name.len() + 1);
    let mut kind: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    if libc::getsockopt(
        GATE_FD,
        libc::SOL_SOCKET,
        libc::SO_TYPE,
        (&mut kind as *mut libc::c_int).cast(),
        &mut len,
    ) != 0
        || kind != libc::SOCK_STREAM
    {
        return;
    }
    // From here on this image is a trampoline: it execs or exits.
    // A dead owner's closed end is an EPIPE here, not a SIGPIPE (which is
    // at its default in this image): MSG_NOSIGNAL, or on macOS the
    // socket's SO_NOSIGPIPE, set by the owner.
    let ready = [READY];
    if libc::send(GATE_FD, ready.as_ptr().cast(), 1, NO_SIGPIPE) != 1 {
        libc::_exit(127);
    }
    let mut go = [0u8];
    let n = loop {
        let n = libc::read(GATE_FD, go.as_mut_ptr().cast(), 1);
        if n < 0 && *errno_location() == libc::EINTR {
            continue;
        }
        break n;
    };
    if n != 1 || go[0] != GO {
        // The owner died before it registered the group (end of file):
        // the program must not run unguarded.
        libc::_exit(127);
    }
    libc::fcntl(GATE_FD, libc::F_SETFD, libc::FD_CLOEXEC);
    // The real program's environment: ours without the first entry.
    libc::execve(path, argv.cast(), envp.add(1).cast());
    let e: i32 = *errno_location();
    let bytes = e.to_ne_bytes();
    libc::send(GATE_FD, bytes.as_ptr().cast(), bytes.len(), NO_SIGPIPE);
    libc::_exit(127)
}

#[cfg(any(all(target_os = "linux", target_env = "gnu"), target_os = "freebsd"))]
const NO_SIGPIPE: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(target_os = "macos")]
const NO_SIGPIPE: libc::c_int = 0;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe fn errno_location() -> *mut libc::c_int {
    libc::__errno_location()
}

#[cfg(any(target_os = "macos", target_os = "freebsd"))]
unsafe fn errno_location() -> *mut libc::c_int {
    libc::__error()
}

/// Whether [`trampoline_entry`] ran in this process (so the executable
/// carries it).
pub(crate) fn entry_ran() -> bool {
    ENTRY_RAN.load(std::sync::atomic::Ordering::Relaxed)
}

/// Where the trampoline's entry is (to ask which object holds it); 0
/// where there is none (musl).
pub(crate) fn entry_address() -> usize {
    #[cfg(any(
        all(target_os = "linux", target_env = "gnu"),
        target_os = "macos",
        target_os = "freebsd"
    ))]
    return trampoline_entry as *const () as usize;
    #[cfg(not(any(
        all(target_os = "linux", target_env = "gnu"),
        target_os = "macos",
        target_os = "freebsd"
    )))]
    0
}

/// Whether this process was started by running its dynamic loader as the
/// program (`ld.so program args...`, as some bundlers and wrappers do):
/// the kernel then executed the loader, so `/proc/self/exe` names the
/// loader, which, run again with a child's argument vector, would load and
/// run that vector's second entry as a program. Told by the main program
/// asking for an interpreter (`PT_INTERP`) that the kernel did not load
/// (`AT_BASE` 0): glibc's loader rewrites `AT_PHDR` and `AT_EXECFN` for
/// the program it loads, not `AT_BASE`. A static program has no
/// interpreter.
#[cfg(target_os = "linux")]
pub(crate) fn started_by_its_loader() -> bool {
    use std::ffi::c_void;
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `bool` passed below; `info` and its
        // program headers are valid for this callback (dl_iterate_phdr).
        let (has_interp, info) = unsafe { (&mut *data.cast::<bool>(), &*info) };
        for i in 0..usize::from(info.dlpi_phnum) {
            // SAFETY: `dlpi_phdr` points at `dlpi_phnum` headers.
            if unsafe { (*info.dlpi_phdr.add(i)).p_type } == libc::PT_INTERP {
                *has_interp = true;
            }
        }
        1 // only the first object: the main program
    }
    let mut has_interp = false;
    // SAFETY: the callback only reads what the C library hands it and
    // writes the `bool` behind `data`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first), (&mut has_interp as *mut bool).cast()) };
    // Raw libc: neither std nor rustix reads AT_BASE.
    // SAFETY: getauxval(3) reads this process's auxiliary vector.
    has_interp && unsafe { libc::getauxval(libc::AT_BASE) } == 0
}

/// See the Linux version: elsewhere the executable is found by its path.
#[cfg(not(target_os = "linux"))]
pub(crate) fn started_by_its_loader() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::super::spawn::{spawn_gated, Passed};
    use crate::sys::{ChildIo, SpawnError, SpawnSpec};
    use std::ffi::CString;

    fn spec(argv: &[&str]) -> SpawnSpec {
        let c = |s: &str| CString::new(s).unwrap();
        SpawnSpec {
            path: c(argv[0]),
            argv: argv.iter().map(|a| c(a)).collect(),
            envp: vec![c("PATH=/usr/bin:/bin")],
            cwd: None,
            stdin: ChildIo::Inherit,
            stdout: ChildIo::Inherit,
            stderr: ChildIo::Inherit,
            setup: Default::default(),
        }
    }

    /// Reaps our child `pid`: its exit code.
    fn exit_code(pid: i32) -> i32 {
        let mut status = 0;
        // SAFETY: waitpid(2) of our own child with a valid buffer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        libc::WEXITSTATUS(status)
    }

    fn exe() -> CString {
        assert!(
            super::entry_ran(),
            "the trampoline entry ran in this binary"
        );
        c"/proc/self/exe".to_owned()
    }

    /// The owner's end closed before the go byte (as an owner's death
    /// does): the held child exits and its program never runs.
    #[test]
    fn a_held_child_never_runs_its_program_without_the_go() {
        let marker = std::env::temp_dir().join(format!("pkit-gate-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let script = format!("touch {}", marker.display());
        let held = spawn_gated(&spec(&["/bin/sh", "-c", &script]), &exe()).expect("held");
        let pid = held.pid;
        // SAFETY: getpgid(2) of our own unreaped child.
        assert_eq!(unsafe { libc::getpgid(pid) }, pid, "leads a new group");
        drop(held);
        assert_eq!(exit_code(pid), 127);
        assert!(!marker.exists(), "the program ran without the go");
    }

    /// After the go: the program runs with its own argv and environment
    /// (no gate variable, no gate descriptor); a program that can't be
    /// executed comes back as the exec's own errno.
    #[test]
    fn the_go_runs_the_program_and_exec_errors_come_back_exact() {
        let script = "[ \"$0\" = me ] || exit 2; \
                      env | grep -q PKIT_TRAMPOLINE && exit 3; \
                      [ -e /proc/$$/fd/3 ] && exit 4; exit 7";
        let held = spawn_gated(&spec(&["/bin/sh", "-c", script, "me"]), &exe()).expect("held");
        assert!(matches!(held.open(&spec(&["/bin/sh"])), Passed::Running));
        assert_eq!(exit_code(held.pid), 7);

        let missing = spec(&["/nonexistent/pkit-program"]);
        let held = spawn_gated(&missing, &exe()).expect("held");
        match held.open(&missing) {
            Passed::Failed(SpawnError::Exec(e)) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOENT))
            }
            _ => panic!("not an exec error"),
        }
        held.reap();
    }
}
