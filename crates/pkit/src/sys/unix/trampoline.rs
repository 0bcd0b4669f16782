//! The portable backend's registration gate, the child's half: a new
//! process group's first process is this program's own executable, started
//! by `posix_spawn` with every attribute and file action the real program
//! would have had (its process group, signal mask and defaults, stdio,
//! working directory, no other descriptor; a pty session's trampoline
//! leads a session of its own, below), plus one socket on [`GATE_FD`] and [`ENV`] (the real program's path) first in
//! its environment. Before `main` ([`trampoline_entry`], placed in
//! `.init_array` on ELF systems and in `__DATA,__mod_init_func` on macOS)
//! it says it is there, waits on the socket for the owner's go byte (sent
//! once the owner has registered the new process group with the
//! owner-death guard), applies the spawn options the owner sends after it
//! (`gate_setup.rs`: a process joining an existing group is started this
//! way too when it has options) and then `execve`s the real program with
//! its own argument vector and the environment without [`ENV`] and the
//! owner's loader variables (below). End of file
//! instead of the go byte means the owner died before it could register
//! the group: the trampoline exits, and the program never runs. A setup
//! step that fails sends back its code (the step and the errno,
//! `FailedStep::pack`) and exits. Before the `execve` it makes a
//! close-on-exec pipe and passes its read end to the owner on the socket
//! (`gate_apply::exec_reported`): the pipe's end of file is the exec done,
//! a code written there a failed exec. Not the socket's end of file: a
//! copy of the owner forked (without exec) while this end of the socket
//! was open in the owner holds it for as long as it lives, and the owner
//! also stops waiting when the trampoline ends. The owner's half is in
//! `spawn.rs` ([`Gated`](super::spawn::Gated)) and `gate_setup.rs`.
//!
//! A pty session's trampoline (the first field of [`ENV`] is 1) leads a
//! new session before it says it is there (if the spawn did not), so that
//! the session the guard registers exists before the program can run (see
//! `spawn_pty.rs`); a failed `setsid` is reported after the go byte by the
//! session step, which counts one done before as done. Every trampoline
//! starts with the terminal's signals blocked and lets them in before it
//! says it is there (`held_signals.rs`).
//!
//! The trampoline is the owner's executable, so it is loaded with the
//! owner's loader variables (`LD_*`, `DYLD_*`, `GLIBC_TUNABLES`: see
//! [`is_loader_variable`]), not the child's: a child's
//! `LD_LIBRARY_PATH` or `LD_PRELOAD` is meant for the child's program and
//! could break the owner's image or run a preload's constructors twice.
//! Its environment is `ENV=<s>:<n>:<m>:<i1>:...:<im>:<path>` (`s`: 1
//! for a new session, above, else 0), then the
//! owner's `n` loader variables, then the child's environment in its
//! order, where the `m` loader variables (at indices `i1..im` of it) sit
//! behind a one-byte prefix (`_LD_PRELOAD=...`, which no loader reads).
//! Before the exec the trampoline steps over those prefixes (pointers
//! moved by one byte, nothing allocated) and passes the environment from
//! the child's first entry on.
//!
//! The C library hands `.init_array` functions `argc`, `argv` and `envp`
//! on glibc and FreeBSD, and dyld does on macOS; musl passes nothing, so
//! there is no trampoline on musl (the group is then registered after
//! `posix_spawn` returns, as where the executable can't be run again).
//!
//! Every unsafe call carries its own `// SAFETY:` comment, in the bodies
//! of `unsafe fn`s too (`unsafe_op_in_unsafe_fn`).

#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use libc::c_char;

#[cfg(any(
    all(target_os = "linux", target_env = "gnu"),
    target_os = "macos",
    target_os = "freebsd"
))]
use super::gate_apply::{exec_reported, Setup, NO_SIGPIPE};
use crate::sys::{SpawnError, SpawnSpec};
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
/// Whether an environment entry (`NAME=value`) is read by the dynamic
/// loader or the C library as the image loads: `LD_*` (glibc, the BSDs'
/// rtld), `DYLD_*` (macOS) and `GLIBC_TUNABLES`.
pub(crate) fn is_loader_variable(entry: &[u8]) -> bool {
    let name = entry.split(|&b| b == b'=').next().unwrap_or_default();
    name.starts_with(b"LD_") || name.starts_with(b"DYLD_") || name == b"GLIBC_TUNABLES"
}

/// A trampoline's environment, the owner's half of the layout the module
/// docs give: `ENV=<s>:<n>:<m>:<i1>:...:<im>:<path>` (`s`: whether it
/// leads a new session before it is ready), the owner's `n` loader
/// variables (the trampoline is the owner's executable and loads as the
/// owner did), then the child's environment in its order, its `m` loader
/// variables (at indices `i1..im`) behind a one-byte prefix that no loader
/// reads and the trampoline steps over before the exec.
pub(crate) struct GateEnv {
    first: CString,
    owner_loader: Vec<CString>,
    /// The child's loader variables, prefixed, by index in its environment.
    hidden: Vec<(usize, CString)>,
}

impl GateEnv {
    pub(crate) fn new(spec: &SpawnSpec) -> Result<GateEnv, SpawnError> {
        // Only the loader variables are kept (`each_variable`: under std's
        // lock, or, once the program opted in, straight from `environ`).
        let mut owner_loader: Vec<CString> = Vec::new();
        crate::sys::env_block::each_variable(|e| {
            if is_loader_variable(e) {
                owner_loader.extend(CString::new(e).ok());
            }
        });
        let hidden: Vec<(usize, CString)> = spec
            .envp
            .block()
            .entries()
            .enumerate()
            .filter(|(_, e)| is_loader_variable(e))
            .filter_map(|(i, e)| {
                let mut h = Vec::with_capacity(e.len() + 1);
                h.push(b'_');
                h.extend_from_slice(e);
                Some((i, CString::new(h).ok()?))
            })
            .collect();
        let mut first = format!(
            "{ENV}={}:{}:{}:",
            u8::from(spec.setup.setsid),
            owner_loader.len(),
            hidden.len()
        );
        for (i, _) in &hidden {
            first.push_str(&format!("{i}:"));
        }
        let mut first = first.into_bytes();
        first.extend_from_slice(spec.path.as_bytes());
        let first = CString::new(first).map_err(|e| SpawnError::Os(io::Error::other(e)))?;
        Ok(GateEnv {
            first,
            owner_loader,
            hidden,
        })
    }

    /// The null-terminated pointer vector (borrowing `self` and `spec`).
    pub(crate) fn pointers(&self, spec: &SpawnSpec) -> Vec<*const c_char> {
        let mut hidden = self.hidden.iter().peekable();
        let entries = spec.envp.block().entry_pointers().iter().enumerate();
        let child = entries.map(|(i, &e)| match hidden.next_if(|(at, _)| *at == i) {
            Some((_, h)) => h.as_ptr(),
            None => e,
        });
        std::iter::once(self.first.as_ptr())
            .chain(self.owner_loader.iter().map(|e| e.as_ptr()))
            .chain(child)
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    }
}

/// The gate socket's descriptor in the trampoline.
pub(crate) const GATE_FD: RawFd = 3;
/// Sent by the trampoline when it reached the gate. Its value names the
/// protocol: a trampoline that reads the session field of [`ENV`] and
/// spawn options after the go byte, unblocks a pty session's terminal
/// signals and reports its exec through a pipe says `U`; an older
/// executable on disk (replaced while its owner runs) said `T` (the exec
/// told by the socket's end of file), `S` (it would leave them blocked),
/// `R` (no session field) or `r` (no spawn options) and would run the
/// program wrongly, so the owner lets only `U` go on.
pub(crate) const READY: u8 = b'U';
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
    // Raw: the whole gate runs before `main`, in an image that then execs
    // or exits: the execve takes the process's own argument and
    // environment vectors as they are (rustix has no execve outside its
    // unstable `runtime` module), the errno it sends back is read from the
    // C library's, and the socket calls before it work on a descriptor
    // number not yet known to be open (rustix wants a `BorrowedFd`).
    if envp.is_null() || argv.is_null() {
        return;
    }
    // SAFETY: `envp` is the null-terminated environment vector (the
    // caller's promise): its first entry can be read.
    let first = unsafe { *envp };
    if first.is_null() {
        return;
    }
    // "PKIT_TRAMPOLINE_EXEC=" first: the owner puts it there.
    let name = ENV.as_bytes();
    // SAFETY: an environment entry: a NUL-terminated string that stays
    // (the vector is not changed before `main`, but by the code below).
    let entry = unsafe { std::ffi::CStr::from_ptr(first) }.to_bytes();
    if entry.len() <= name.len() + 1 || &entry[..name.len()] != name || entry[name.len()] != b'=' {
        return;
    }
    let mut kind: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt(2) writes at most `len` bytes into `kind`; a
    // number that is no open socket is an error.
    let asked = unsafe {
        libc::getsockopt(
            GATE_FD,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if asked != 0 || kind != libc::SOCK_STREAM {
        return;
    }
    // From here on this image is a trampoline: it execs or exits.
    // "<s>:<n>:<m>:<path>": a new session or not, then the owner's n
    // loader variables follow this entry, then the child's m hidden ones
    // (see the module docs). Malformed (an owner of another version): exit
    // without a ready byte, which the owner reads as a trampoline that
    // can't work.
    let Some((session, rest)) = leading_number(&entry[name.len() + 1..]) else {
        give_up();
    };
    if session > 1 {
        give_up();
    }
    let Some((owner_vars, rest)) = leading_number(rest) else {
        give_up();
    };
    let Some((hidden, mut rest)) = leading_number(rest) else {
        give_up();
    };
    // SAFETY: (the walk over the vector) the owner put `owner_vars`
    // entries after this one, so the child's part starts within the
    // vector, and is read up to its null terminator.
    let child_env = unsafe { envp.add(1 + owner_vars) };
    let mut child_vars = 0;
    // SAFETY: as above: not past the terminator.
    while !unsafe { *child_env.add(child_vars) }.is_null() {
        child_vars += 1;
    }
    // The child's loader variables, by index: step over their prefix (the
    // vector is ours to change before main).
    for _ in 0..hidden {
        let Some((i, after)) = leading_number(rest) else {
            give_up();
        };
        rest = after;
        if i >= child_vars {
            give_up();
        }
        // SAFETY: `i` is below the child's entry count (checked): a live
        // entry, a NUL-terminated string, whose first byte can be read;
        // one that is `_` has a second one (at worst its NUL) to point
        // at instead. Nothing else reads the vector before `main`.
        unsafe {
            let var = child_env.add(i);
            if *(*var).cast::<u8>() != b'_' {
                give_up();
            }
            *var = (*var).add(1);
        }
    }
    // SAFETY: `rest` is the tail of `entry`, which starts at `first`.
    let path = unsafe { first.add(entry.len() - rest.len()) };
    // A pty session's: lead a new session before the ready byte (see the
    // module docs; a failure is reported after the go byte); then the
    // terminal's signals, held back until now (`held_signals.rs`).
    // SAFETY: before `main`, in the trampoline, as it requires.
    unsafe { super::held_signals::release(session == 1) };
    // A dead owner's closed end is an EPIPE here (`NO_SIGPIPE`).
    let ready = [READY];
    // SAFETY: send(2) reads the one byte of `ready`.
    if unsafe { libc::send(GATE_FD, ready.as_ptr().cast(), 1, NO_SIGPIPE) } != 1 {
        give_up();
    }
    let mut go = [0u8];
    let n = loop {
        // SAFETY: read(2) writes at most the one byte of `go`.
        let n = unsafe { libc::read(GATE_FD, go.as_mut_ptr().cast(), 1) };
        // SAFETY: this thread's errno location, read at once.
        if n < 0 && unsafe { *errno_location() } == libc::EINTR {
            continue;
        }
        break n;
    };
    if n != 1 || go[0] != GO {
        // The owner died before it registered the group (end of file):
        // the program must not run unguarded.
        give_up();
    }
    // The spawn options, sent after the go byte (`gate_setup.rs`); the
    // gate may move to another number.
    let mut gate = GATE_FD;
    // SAFETY: in the trampoline, before `main`, between the go byte and
    // the exec, as it requires.
    let code = match unsafe { super::gate_apply::receive_and_apply(&mut gate) } {
        Setup::Gone => give_up(),
        Setup::Failed(code) => code,
        Setup::Done(pipe) => {
            // SAFETY: the gate's number, open (the setup used it), and the
            // setup's pipe; `path`, `argv` and `child_env` are NUL-terminated
            // strings and null-terminated vectors of this process (the
            // caller's promise, and the walk above), unchanged since.
            match unsafe { exec_reported(gate, pipe, path, argv.cast(), child_env.cast()) } {
                Some(code) => code,
                None => give_up(),
            }
        }
    };
    super::gate_apply::report_failed(gate, code);
    give_up()
}

/// The trampoline's end where the program can't run: `_exit(127)`, with
/// nothing of the C library's or Rust's run (this image runs no `main`).
#[cfg(any(
    all(target_os = "linux", target_env = "gnu"),
    target_os = "macos",
    target_os = "freebsd"
))]
fn give_up() -> ! {
    // SAFETY: _exit(2) ends the process at once; nothing runs after it.
    unsafe { libc::_exit(127) }
}

/// `"<digits>:<rest>"`: the number and the rest; no allocation (runs
/// before `main`).
#[cfg(any(
    all(target_os = "linux", target_env = "gnu"),
    target_os = "macos",
    target_os = "freebsd"
))]
fn leading_number(text: &[u8]) -> Option<(usize, &[u8])> {
    let colon = text.iter().position(|&b| b == b':')?;
    if colon == 0 || colon > 9 {
        return None;
    }
    let mut n = 0usize;
    for &b in &text[..colon] {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + usize::from(b - b'0');
    }
    Some((n, &text[colon + 1..]))
}

// Raw: the C library's errno after the gate's raw calls (above).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: no precondition: this thread's errno location.
    unsafe { libc::__errno_location() }
}

// Raw: as above.
#[cfg(any(target_os = "macos", target_os = "freebsd"))]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: no precondition: this thread's errno location.
    unsafe { libc::__error() }
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

/// See the Linux version (`guard/main_exe.rs`): elsewhere the executable
/// is found by its path.
#[cfg(not(target_os = "linux"))]
pub(crate) fn started_by_its_loader() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::super::spawn::{spawn_gated, Passed};
    use crate::sys::{ChildIo, SpawnError, SpawnSpec};
    use std::ffi::{CString, OsStr};

    fn spec(argv: &[&str]) -> SpawnSpec {
        let c = |s: &str| CString::new(s).unwrap();
        SpawnSpec {
            path: c(argv[0]),
            argv: argv.iter().map(|a| c(a)).collect(),
            envp: crate::sys::exact_env(&[("PATH", "/usr/bin:/bin")]).unwrap(),
            cwd: None,
            stdin: ChildIo::Inherit,
            stdout: ChildIo::Inherit,
            stderr: ChildIo::Inherit,
            setup: Default::default(),
        }
    }

    /// Reaps our child `pid`: its exit code.
    fn exit_code(pid: i32) -> i32 {
        use rustix::process::{waitpid, Pid, WaitOptions};
        let pid = Pid::from_raw(pid).expect("a pid");
        let (reaped, status) = waitpid(Some(pid), WaitOptions::empty())
            .expect("waitpid")
            .expect("a status");
        assert_eq!(reaped, pid);
        status.exit_status().unwrap_or_else(|| panic!("{status:?}"))
    }

    fn exe() -> CString {
        assert!(
            super::entry_ran(),
            "the trampoline entry ran in this binary"
        );
        c"/proc/self/exe".to_owned()
    }

    /// The child's loader variables are the child's: the trampoline (this
    /// test binary, which needs libgcc_s) loads as the owner did, so a
    /// child's `LD_LIBRARY_PATH` holding a broken `libgcc_s.so.1` can't stop
    /// it; the program gets the variable as it was set, and no prefixed
    /// copy. (Before, the trampoline loaded with the child's environment,
    /// failed to load, and the gate was given up for the whole process.)
    #[test]
    fn a_childs_loader_variables_are_not_the_trampolines() {
        let dir = std::env::temp_dir().join(format!("pkit-gate-ld-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("libgcc_s.so.1"), b"").unwrap();
        let script = format!(
            "[ \"$LD_LIBRARY_PATH\" = {d} ] || exit 2; \
             env | grep -q '^_LD_' && exit 3; exit 7",
            d = dir.display()
        );
        let mut s = spec(&["/bin/sh", "-c", &script]);
        let path = OsStr::new("/usr/bin:/bin");
        let env = [("PATH", path), ("LD_LIBRARY_PATH", dir.as_os_str())];
        s.envp = crate::sys::exact_env(&env).unwrap();
        let held = spawn_gated(&s, &exe(), 0).expect("held");
        let passed = held.open(&s);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            matches!(passed, Passed::Running),
            "the trampoline did not reach the gate"
        );
        assert_eq!(exit_code(held.pid), 7);
    }

    /// The owner's end closed before the go byte (as an owner's death
    /// does): the held child exits and its program never runs.
    #[test]
    fn a_held_child_never_runs_its_program_without_the_go() {
        let marker = std::env::temp_dir().join(format!("pkit-gate-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let script = format!("touch {}", marker.display());
        let held = spawn_gated(&spec(&["/bin/sh", "-c", &script]), &exe(), 0).expect("held");
        let pid = held.pid;
        // Raw: rustix's getpgid panics on a 0 answer (see clippy.toml).
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
        let held = spawn_gated(&spec(&["/bin/sh", "-c", script, "me"]), &exe(), 0).expect("held");
        assert!(matches!(held.open(&spec(&["/bin/sh"])), Passed::Running));
        assert_eq!(exit_code(held.pid), 7);

        let missing = spec(&["/nonexistent/pkit-program"]);
        let held = spawn_gated(&missing, &exe(), 0).expect("held");
        match held.open(&missing) {
            Passed::Failed(SpawnError::Exec(e)) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOENT))
            }
            _ => panic!("not an exec error"),
        }
        held.reap();
    }
}
