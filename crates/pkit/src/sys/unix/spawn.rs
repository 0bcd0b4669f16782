//! Spawning with `posix_spawn(3)`: the child joins (or starts) a process
//! group at birth (`POSIX_SPAWN_SETPGROUP`; a pty session's child leads a
//! session instead, see `spawn_pty.rs`), and no fork of this process's
//! address space happens (the C library uses a vfork-style clone, or the
//! kernel's own spawn on macOS). As with pkit's Linux spawner, the child
//! starts with an empty signal mask (a trampoline empties its own, see
//! `held_signals.rs`), SIGPIPE (which the Rust runtime
//! ignores) at its default disposition, caught signals reset by `exec`, and
//! ignored ones still ignored (as `nohup` relies on); and no descriptor but
//! its stdio: `POSIX_SPAWN_CLOEXEC_DEFAULT` on macOS, a `closefrom(3)` file
//! action on glibc and FreeBSD.
//!
//! A new process group's first process can be started held, through a
//! trampoline (this program's executable, see `trampoline.rs`), so that
//! the group is registered with the owner-death guard before its program
//! runs: [`spawn_gated`] and [`Gated`].
//!
//! Raw: the `posix_spawn` calls stay raw: rustix has no `posix_spawn` (nor the signal
//! sets its attributes take).
//!
//! The spawn options a child applies to itself before `exec` (limits,
//! priorities, the umask, credentials, kept descriptors) have no
//! `posix_spawn` attribute: a start that asks for them goes through the
//! trampoline too, whatever its process group, which applies them after
//! the go byte (`gate_setup.rs`); where no trampoline can be used it is
//! refused with [`SpawnError::Unsupported`] ([`needs_trampoline`],
//! [`no_trampoline`]). Hooks (closures) can't cross that exec and are
//! refused everywhere here ([`unsupported_setup`]).
//!
//! A pty session takes its terminal in the trampoline, or on Linux
//! without one through `/proc`: see `spawn_pty.rs`.

use std::ffi::{c_char, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::gate_setup::{read_exec_report, receive_all, receive_report, Report};
use super::held_signals::blocked_at_start;
use super::spawn_check as check;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
use super::spawn_place::add_glibc_internal;
use super::spawn_place::place;
use super::spawn_pty::{group_flag, terminal};
use super::trampoline::{GateEnv, GATE_FD, GO, READY};

use crate::sys::step::FailedStep;
use crate::sys::{SpawnError, SpawnSpec};

#[cfg(target_os = "freebsd")]
extern "C" {
    // FreeBSD 13.1+ (not in the libc crate for FreeBSD).
    fn posix_spawn_file_actions_addchdir_np(
        actions: *mut libc::posix_spawn_file_actions_t,
        path: *const c_char,
    ) -> libc::c_int;
    pub(crate) fn posix_spawn_file_actions_addclosefrom_np(
        actions: *mut libc::posix_spawn_file_actions_t,
        from: libc::c_int,
    ) -> libc::c_int;
}
#[cfg(not(any(
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
use libc::posix_spawn_file_actions_addchdir_np;

/// Whether `posix_spawn` can enter the child's working directory itself
/// (a chdir file action: glibc 2.29+, musl 1.1.24+, macOS 10.15+, FreeBSD
/// 13.1+). The libc crate declares none for DragonFly, NetBSD and
/// OpenBSD, and pkit declares none of its own there: a working directory
/// is entered by the trampoline, or refused where there is none.
pub(crate) const CHDIR_ACTION: bool = cfg!(not(any(
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
)));
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) use libc::posix_spawn_file_actions_addclosefrom_np;

/// Why a spawn option can't be honoured on this backend at all, if one
/// can't.
pub(crate) fn unsupported_setup(spec: &SpawnSpec) -> Option<&'static str> {
    let s = &spec.setup;
    if !s.pre_exec.is_empty() {
        Some(
            "pre_exec hooks are closures of this process, which can't cross the exec of \
             the trampoline that applies the spawn options here",
        )
    } else if s.setsid && !s.ctty {
        Some("setsid would leave the group's process group")
    } else if s.ioprio.is_some() && !cfg!(target_os = "linux") {
        Some("I/O priorities (ioprio_set) are Linux's")
    } else if s.cpus.is_some() && !cfg!(target_os = "linux") {
        Some("CPU affinity is implemented on Linux only")
    } else if s.rlimits.iter().any(|l| l.resource < 0) {
        Some("this platform has no such resource limit")
    } else {
        None
    }
}

/// Whether the C library's `posix_spawn` child runs code of its own
/// between its clone and its `exec` (glibc, FreeBSD: a vfork-style child
/// that joins its process group, then unblocks the signals, then execs;
/// macOS's spawn is the kernel's, which returns before the program runs).
/// A stop signal (a terminal's `^Z` to the owner's job, whose process group
/// the child is in until its `setpgid`; a SIGTTIN or SIGTTOU to the group
/// it joins) is pending at that unmask with its default action: it stops
/// the child before its `exec`, and the owner's thread, waiting in
/// `posix_spawn`, with it, until someone continues a process group the
/// owner's `fg` does not reach. So every start goes through the trampoline
/// there when one can be used: it is spawned with those signals blocked
/// through its `exec` and discards them (`held_signals.rs`).
pub(crate) const STOPS_CATCH_A_PLAIN_SPAWN: bool = !cfg!(target_os = "macos");

/// What of a start's spawn options the child must apply itself before
/// its program runs, which only the trampoline can do (see
/// `gate_setup.rs`); `None` when `posix_spawn` alone serves. (A pty
/// session on Linux is started through the trampoline too when one can
/// be used, but can do without: see `spawn_pty.rs`.)
pub(crate) fn needs_trampoline(spec: &SpawnSpec) -> Option<&'static str> {
    let s = &spec.setup;
    if s.ctty && !cfg!(target_os = "linux") {
        Some("a pty session's controlling terminal (setsid, TIOCSCTTY)")
    } else if !s.rlimits.is_empty()
        || s.nice.is_some()
        || s.umask.is_some()
        || s.ioprio.is_some()
        || s.cpus.is_some()
    {
        Some("resource limits, the umask, priorities and CPU affinity")
    } else if s.groups.is_some() || s.gid.is_some() || s.uid.is_some() {
        Some("credentials (uid, gid, groups)")
    } else if !s.keep.is_empty() {
        Some("descriptors passed through (keep_fds)")
    } else if spec.cwd.is_some() && !CHDIR_ACTION {
        Some("the working directory (this C library's posix_spawn has no chdir file action)")
    } else {
        None
    }
}

/// Owns the two attribute objects for the length of a spawn (also the
/// portable guard's launcher's, `guard/portable.rs`).
pub(crate) struct Attrs {
    pub(crate) attr: libc::posix_spawnattr_t,
    pub(crate) actions: libc::posix_spawn_file_actions_t,
}

impl Attrs {
    /// Both objects, initialised (an init failure leaves nothing to
    /// destroy).
    pub(crate) fn new() -> io::Result<Self> {
        let check = |rc: libc::c_int| match rc {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        };
        // SAFETY: zeroed storage is what the init functions expect to
        // fill; an init failure returns before `Attrs` (and its Drop)
        // exists.
        unsafe {
            let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
            let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
            check(libc::posix_spawnattr_init(&mut attr))?;
            if let Err(e) = check(libc::posix_spawn_file_actions_init(&mut actions)) {
                libc::posix_spawnattr_destroy(&mut attr);
                return Err(e);
            }
            Ok(Attrs { attr, actions })
        }
    }
}

impl Drop for Attrs {
    fn drop(&mut self) {
        // SAFETY: both were initialised by `Attrs::new` and are destroyed
        // once, here.
        unsafe {
            libc::posix_spawnattr_destroy(&mut self.attr);
            libc::posix_spawn_file_actions_destroy(&mut self.actions);
        }
    }
}

/// The refusal of `what` (what [`needs_trampoline`] says) where no
/// trampoline can be used, and `why`.
pub(crate) fn no_trampoline(what: &str, why: &str) -> SpawnError {
    SpawnError::Unsupported(
        "spawn options",
        crate::sys::Mechanism::ProcessGroup,
        format!(
            "the portable backend applies {what} in a trampoline (this program's executable, \
             run before the program), and can't use one here: {why}"
        ),
    )
}

/// Spawns `spec` into process group `pgid` (0: a new group led by the
/// child) and returns its pid. The caller owns the unreaped child.
pub(crate) fn spawn(spec: &SpawnSpec, pgid: i32) -> Result<i32, SpawnError> {
    start(spec, pgid, None)
}

/// Spawns `spec` into process group `pgid` (0: as a new group's first
/// process), held at the gate (see `trampoline.rs`): `exe` (this program's
/// executable) runs first, in the group, and applies the spawn options and
/// executes the real program only once [`Gated::open`] says so. `Err` when
/// the trampoline could not be started; for a start without options that
/// need it, the caller then spawns the plain way, which reports the
/// spawn's own error exactly.
pub(crate) fn spawn_gated(spec: &SpawnSpec, exe: &CString, pgid: i32) -> Result<Gated, SpawnError> {
    let (owner_end, child_end) = gate_pair().map_err(SpawnError::Os)?;
    // A source above the target: its dup2 onto GATE_FD then clears the
    // close-on-exec flag in the child only.
    let child_end =
        crate::sys::dup_above(child_end.as_raw_fd(), GATE_FD + 1).map_err(SpawnError::Os)?;
    let pid = start(spec, pgid, Some((exe, child_end.as_raw_fd())))?;
    Ok(Gated {
        pid,
        sock: owner_end,
    })
}

/// A socket pair for the gate, both ends close-on-exec: the owner's, the
/// child's.
fn gate_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    #[cfg(not(target_os = "macos"))]
    let flags = SocketFlags::CLOEXEC;
    #[cfg(target_os = "macos")]
    let flags = SocketFlags::empty();
    let (a, b) = rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, flags, None)?;
    // No SOCK_CLOEXEC on macOS (pkit's own spawns there close every
    // descriptor they don't place anyway), nor MSG_NOSIGNAL.
    #[cfg(target_os = "macos")]
    for fd in [&a, &b] {
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
        let _ = rustix::net::sockopt::set_socket_nosigpipe(fd, true);
    }
    Ok((a, b))
}

/// A child held at the gate of its trampoline (see `trampoline.rs`), and
/// the owner's end of its gate socket.
pub(crate) struct Gated {
    pub(crate) pid: i32,
    sock: OwnedFd,
}

/// How a gated start went.
pub(crate) enum Passed {
    /// The real program runs (or the child was killed at the gate, which
    /// its exit status then says).
    Running,
    /// The real program could not be executed: the error, as a plain
    /// spawn reports it. The trampoline has exited, unreaped.
    Failed(SpawnError),
    /// The trampoline never reached the gate (it could not be loaded, or
    /// is not pkit's): the caller drops it ([`Gated::reap`]) and spawns the
    /// plain way.
    Broken,
}

impl Gated {
    /// Lets the held child go on (once its process group is registered),
    /// sends it its spawn options, and waits until it has executed the
    /// real program, or failed to.
    pub(crate) fn open(&self, spec: &SpawnSpec) -> Passed {
        let fd = &self.sock;
        // READY first: only a trampoline that reads the spawn options is
        // let go (an older one on disk would run the program without
        // them); one that never reached the gate is not sent the go byte.
        let mut ready = [0u8];
        match receive_all(fd, self.pid, &mut ready) {
            1 if ready[0] == READY => {}
            // Another version's trampoline (it reads the start otherwise):
            // broken at once, not after waiting to see it killed.
            1 => return Passed::Broken,
            _ => return self.stopped_at_gate(),
        }
        // The go byte and the spawn options. A trampoline that died
        // meanwhile (EPIPE) is told by the reads below; any other failure
        // to send would leave it waiting: the caller reaps it.
        let cwd = spec.cwd.as_deref().filter(|_| chdir_in_trampoline(spec));
        match super::gate_setup::send_go(fd, GO, &spec.setup, cwd) {
            Err(e) if e.raw_os_error() != Some(libc::EPIPE) => {
                return Passed::Failed(SpawnError::Os(e));
            }
            _ => {}
        }
        // The code of the step that failed, or the exec report pipe: its
        // end of file is the exec done (not the gate's, which a copy of
        // this process forked meanwhile may hold open).
        let code = match receive_report(fd, self.pid) {
            Report::Pipe(pipe) => match read_exec_report(&pipe) {
                Ok(None) => return Passed::Running,
                Ok(Some(code)) => code,
                Err(e) => return Passed::Failed(SpawnError::Os(e)),
            },
            Report::Failed(code) => code,
            Report::Lost(e) => return Passed::Failed(SpawnError::Os(e)),
            Report::Closed => return self.stopped_at_gate(),
        };
        Passed::Failed(match FailedStep::unpack(code) {
            (FailedStep::Setup(step), e) => SpawnError::Step(step, e),
            (FailedStep::Chdir, e) => SpawnError::Chdir(e),
            (FailedStep::Exec, e) => exec_error(spec, 0, e.raw_os_error().unwrap_or(libc::EIO)),
        })
    }

    /// A held child that did not pass the gate: killed there (a group kill
    /// racing the start), or not a trampoline of this version.
    fn stopped_at_gate(&self) -> Passed {
        if killed(self.pid) {
            Passed::Running
        } else {
            Passed::Broken
        }
    }

    /// Ends and reaps the held child (after [`Passed::Failed`] or
    /// [`Passed::Broken`]), once the caller has unregistered its group.
    pub(crate) fn reap(self) {
        use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions};
        // Our own unreaped child: the pid names no other process.
        let Some(pid) = Pid::from_raw(self.pid) else {
            return;
        };
        let _ = kill_process(pid, Signal::KILL);
        while matches!(
            waitpid(Some(pid), WaitOptions::empty()),
            Err(rustix::io::Errno::INTR)
        ) {}
    }
}

/// Whether our child `pid`, which ended (or closed its end of the gate)
/// without a word, was killed by a signal (waited for up to a second, unreaped).
fn killed(pid: i32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match killed_now(pid) {
            Ok(Some(by_signal)) => return by_signal,
            Ok(None) => {}
            Err(_) => return false,
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Whether our child `pid` was killed by a signal, if it has ended
/// (`waitid`, not reaped: NOWAIT).
#[cfg(not(target_os = "openbsd"))]
fn killed_now(pid: i32) -> io::Result<Option<bool>> {
    use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::from_raw_os_error(libc::ECHILD))?;
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    Ok(waitid(WaitId::Pid(pid), options)?.map(|st| st.killed() || st.dumped()))
}

/// Whether our child `pid` was killed by a signal, if it has ended
/// (`waitid`, not reaped: NOWAIT).
#[cfg(target_os = "openbsd")]
fn killed_now(pid: i32) -> io::Result<Option<bool>> {
    Ok(super::waitid::peek_exit(pid)?
        .map(|(code, _)| code == libc::CLD_KILLED || code == libc::CLD_DUMPED))
}

/// The error a failed `posix_spawn` (or the trampoline's `execve`) with
/// errno `e` stands for.
fn exec_error(spec: &SpawnSpec, pgid: i32, e: i32) -> SpawnError {
    match e {
        // glibc reports the failed chdir or exec by its errno alone; a
        // working directory that can't be entered is told apart by the
        // caller's resolution, which already checked the program.
        e if spec.cwd.is_some() && cwd_error(spec.cwd.as_ref(), e) => {
            SpawnError::Chdir(io::Error::from_raw_os_error(e))
        }
        libc::EPERM if pgid != 0 => SpawnError::Step(
            crate::spawn_options::ChildStep::ProcessGroup,
            io::Error::from_raw_os_error(libc::EPERM),
        ),
        e => SpawnError::Exec(io::Error::from_raw_os_error(e)),
    }
}

/// Spawns `spec` into process group `pgid`; `via`: as a trampoline, this
/// executable with the gate socket (see [`spawn_gated`]).
fn start(spec: &SpawnSpec, pgid: i32, via: Option<(&CString, RawFd)>) -> Result<i32, SpawnError> {
    if let Some(why) = unsupported_setup(spec) {
        return Err(SpawnError::Unsupported(
            "spawn options",
            crate::sys::Mechanism::ProcessGroup,
            format!("the portable backend starts children with posix_spawn: {why}"),
        ));
    }
    // Never started without the options it asks for (the caller chooses
    // the trampoline for them, see `place.rs`).
    if let (Some(what), None) = (needs_trampoline(spec), via) {
        return Err(no_trampoline(what, "none was chosen for this start"));
    }
    super::sigchld::ensure();
    let mut a = Attrs::new().map_err(SpawnError::Os)?;
    // A pty child leads a new session, so a new process group: its
    // group's only when it is the group's first process.
    let ctty = spec.setup.ctty;
    if ctty && pgid != 0 {
        return Err(SpawnError::Unsupported(
            "pty",
            crate::sys::Mechanism::ProcessGroup,
            "a pty child leads its own process group: it must be its group's first process".into(),
        ));
    }
    // A pty session through a trampoline: it leads a new session, made by
    // the spawn where the C library can (see `spawn_pty.rs`).
    let in_trampoline = ctty && via.is_some();
    #[allow(unused_mut)]
    let mut flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
    flags |= group_flag(ctty, in_trampoline);
    #[cfg(target_os = "macos")]
    {
        flags |= libc::POSIX_SPAWN_CLOEXEC_DEFAULT;
    }
    // SAFETY: the attribute objects are initialised and ours; the signal
    // sets are initialised by sigemptyset before use (`blocked_at_start`'s
    // too).
    unsafe {
        check(libc::posix_spawnattr_setflags(&mut a.attr, flags as _))?;
        check(libc::posix_spawnattr_setpgroup(&mut a.attr, pgid))?;
        // A trampoline's: the terminal's signals held back until it is
        // out of the owner's process group (`held_signals.rs`).
        let mask = blocked_at_start(via.is_some());
        check(libc::posix_spawnattr_setsigmask(&mut a.attr, &mask))?;
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        // At its default under every mechanism (see the Linux backend's
        // `reset_signal_dispositions`), even if pkit's handler is missing.
        libc::sigaddset(&mut pipe, libc::SIGCHLD);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        add_glibc_internal(&mut pipe);
        check(libc::posix_spawnattr_setsigdefault(&mut a.attr, &pipe))?;
    }
    // Copies of stdio sources made below the descriptor limit (see
    // `place`), open until the spawn returns.
    let mut low = Vec::new();
    if ctty && !in_trampoline {
        terminal(&mut a.actions, &spec.stdin)?;
    } else {
        place(&mut a.actions, &spec.stdin, 0, None, &mut low)?;
        place(&mut a.actions, &spec.stdout, 1, None, &mut low)?;
        place(
            &mut a.actions,
            &spec.stderr,
            2,
            Some(&spec.stdout),
            &mut low,
        )?;
    }
    // After the stdio moves (a source may be GATE_FD): the gate socket.
    let mut keep_below = 3;
    if let Some((_, sock)) = via {
        // SAFETY: our initialised actions object and two fd numbers; the
        // source is above GATE_FD and open until posix_spawn returns.
        check(unsafe { libc::posix_spawn_file_actions_adddup2(&mut a.actions, sock, GATE_FD) })?;
        keep_below = GATE_FD + 1;
    }
    // Then every other descriptor is closed in the child.
    #[cfg(any(all(target_os = "linux", target_env = "gnu"), target_os = "freebsd"))]
    // SAFETY: our initialised actions object and a descriptor number.
    check(unsafe { posix_spawn_file_actions_addclosefrom_np(&mut a.actions, keep_below) })?;
    #[cfg(not(any(all(target_os = "linux", target_env = "gnu"), target_os = "freebsd")))]
    let _ = keep_below;
    #[cfg(not(any(target_os = "dragonfly", target_os = "netbsd", target_os = "openbsd")))]
    if let Some(dir) = spec.cwd.as_ref().filter(|_| !chdir_in_trampoline(spec)) {
        // SAFETY: a C string that outlives the call (copied by the C
        // library), and our initialised actions object.
        check(unsafe { posix_spawn_file_actions_addchdir_np(&mut a.actions, dir.as_ptr()) })
            .map_err(|e| match e {
                SpawnError::Os(e) => SpawnError::Chdir(e),
                other => other,
            })?;
    }
    let argv = crate::sys::nul_terminated(&spec.argv);
    // A trampoline's environment: see `GateEnv`.
    let gate_env = match via {
        Some(_) => Some(GateEnv::new(spec)?),
        None => None,
    };
    let gate_envp = gate_env.as_ref().map(|g| g.pointers(spec));
    let envp = match &gate_envp {
        Some(g) => &g[..],
        None => crate::sys::envp_vector(&spec.envp),
    };
    let path = via.map_or(&spec.path, |(exe, _)| exe);
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer is valid for the call: the path and the
    // argument and environment strings (owned by `spec`), their
    // null-terminated pointer
    // arrays, and the initialised attributes.
    let rc = unsafe {
        libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            &a.actions,
            &a.attr,
            argv.as_ptr() as *const *mut c_char,
            envp.as_ptr() as *const *mut c_char,
        )
    };
    match rc {
        0 => Ok(pid),
        e => Err(exec_error(spec, pgid, e)),
    }
}

/// Whether a trampoline enters the child's working directory (after the
/// privilege drop, with the child's credentials, as Linux's spawner does)
/// rather than `posix_spawn`'s file actions (with the owner's).
fn chdir_in_trampoline(spec: &SpawnSpec) -> bool {
    let s = &spec.setup;
    !CHDIR_ACTION || s.uid.is_some() || s.gid.is_some() || s.groups.is_some()
}

/// Whether error `e` from a spawn with working directory `dir` is the
/// directory's: it can't be entered by this process either.
fn cwd_error(dir: Option<&CString>, e: i32) -> bool {
    let Some(dir) = dir else { return false };
    if !matches!(e, libc::ENOENT | libc::ENOTDIR | libc::EACCES) {
        return false;
    }
    use std::os::unix::ffi::OsStrExt;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(dir.as_bytes()));
    !path.is_dir() || rustix::fs::access(path, rustix::fs::Access::EXEC_OK).is_err()
}
