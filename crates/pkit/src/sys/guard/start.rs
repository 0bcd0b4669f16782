//! Starting the guard: the socket pair, running the executable again (or
//! the double fork), the greeting;
//! and the owner-side socket helpers.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Mutex;

use super::copies::{owner_pair, OwnerEnd, Which};
use super::exec;
use super::owner::{Guard, Started, State};
use super::process::guard_main;
use super::wire::{
    hung_up, pidfd_send, probe_exact_pgroup, quiet_ms, recv_reply, Plan, Slot, BUF_LEN,
    REPLY_HELLO, TABLE_CAP,
};
use crate::sys::linux::orphan::spawn_orphan;
use crate::sys::linux::spawn_steps;

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 3)?)
}

/// `fork` as a raw system call: no `pthread_atfork` handlers run (they
/// may take locks another thread held), and the child makes only raw calls.
///
/// # Safety
/// The child must only make async-signal-safe calls and must not return
/// into code that expects the parent's threads.
// Raw: a fork as a raw clone: rustix has no fork, and libc's runs the atfork handlers.
unsafe fn raw_fork() -> libc::pid_t {
    libc::syscall(
        libc::SYS_clone,
        libc::SIGCHLD as libc::c_ulong,
        0usize,
        0usize,
        0usize,
        0usize,
    ) as libc::pid_t
}

pub(super) fn start() -> Result<Guard, String> {
    start_with(probe_exact_pgroup())
}

/// Starts a guard that signals process groups exactly (through the
/// leader's pidfd) or by number after the liveness check: by running this
/// program's executable again (`exec.rs`), else by a fork.
pub(super) fn start_with(exact_pgroup: bool) -> Result<Guard, String> {
    if let Err(errno) = crate::sys::fault::check(crate::sys::fault::Point::GuardSocket) {
        return Err(format!(
            "cannot create the guard's socket pair: {}",
            io::Error::from_raw_os_error(errno)
        ));
    }
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let hard = nofile.maximum.unwrap_or(u64::MAX);
    let cap = TABLE_CAP.min(hard.saturating_sub(16) as usize).max(1);
    let quiet = quiet_ms();
    let no_exec = match exec::usable() {
        Ok(()) => match start_exec(exact_pgroup, cap, quiet) {
            Ok(guard) => return Ok(guard),
            Err(why) => {
                tracing::debug!(target: "pkit", reason = %why, "owner-death guard: the executable could not be run as the guard; forking it");
                why
            }
        },
        Err(why) => why,
    };
    start_forked(exact_pgroup, cap, quiet, no_exec)
}

/// A `SOCK_SEQPACKET` pair, both ends close-on-exec and above stdio: the
/// owner's end (noted for forked copies, `copies.rs`) and the guard's.
fn socket_pair() -> Result<(OwnerEnd, OwnedFd), String> {
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    owner_pair(Which::Native, || {
        let (owner_end, guard_end) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((above_stdio(owner_end)?, above_stdio(guard_end)?))
    })
    .map_err(|e| format!("cannot create the guard's socket pair: {e}"))
}

/// The guard's bell (see `process.rs`): an eventfd, close-on-exec, above
/// stdio, never blocking a ring.
fn bell() -> Result<OwnedFd, String> {
    use rustix::event::{eventfd, EventfdFlags};
    let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
        .map_err(|e| format!("cannot create the guard's bell: {e}"))?;
    above_stdio(fd).map_err(|e| format!("cannot set up the guard's bell: {e}"))
}

/// Runs this program's executable as the guard (see `exec.rs`): no copy of
/// the owner's memory.
fn start_exec(exact_pgroup: bool, cap: usize, quiet_ms: i32) -> Result<Guard, String> {
    let (owner_end, guard_end) = socket_pair()?;
    let bell = bell()?;
    let spec = exec::spawn_spec(&guard_end, &bell, exact_pgroup, cap, quiet_ms)
        .map_err(|e| format!("cannot prepare the guard's start: {e}"))?;
    let (pid, pidfd) = spawn_orphan(&spec).map_err(|e| {
        format!(
            "cannot run this program's executable as the guard: {}",
            exec::describe(&e)
        )
    })?;
    drop(spec);
    drop(guard_end);
    let hello = recv_reply(owner_end.as_fd(), 10_000);
    reap_if_ours(pid, &pidfd);
    match hello {
        Some(h) if h.kind == REPLY_HELLO && h.pid == pid => {}
        other => {
            // Whatever it is, it is not a guard: end it (by its pidfd).
            let _ = pidfd_send(pidfd.as_fd(), libc::SIGKILL, 0);
            return Err(match other {
                None => "the executable run as the guard did not report in".into(),
                Some(_) => "the executable run as the guard sent a bad greeting".into(),
            });
        }
    }
    Ok(new_guard(
        (owner_end.keep(), bell),
        pid,
        Some(pidfd),
        exact_pgroup,
        cap,
        Started::Exec,
    ))
}

/// Forks the guard (twice, so that it is nobody's child here): the way
/// used where the executable can't be run as the guard, given as `why`.
fn start_forked(
    exact_pgroup: bool,
    cap: usize,
    quiet_ms: i32,
    why: String,
) -> Result<Guard, String> {
    let (owner_end, guard_end) = socket_pair()?;
    let bell = bell()?;
    let table = ZeroedTable::new(cap)?;
    let mut buf = vec![0u8; BUF_LEN];
    let plan = Plan {
        sock: guard_end.as_raw_fd(),
        bell: bell.as_raw_fd(),
        table: table.ptr,
        cap,
        buf: buf.as_mut_ptr(),
        buf_len: buf.len(),
        exact_pgroup,
        quiet_ms,
    };

    let old_mask = spawn_steps::block_all_signals();
    // SAFETY: fork semantics; the child only runs the raw calls below and
    // `guard_main`, which never return.
    let pid = unsafe { raw_fork() };
    if pid == 0 {
        // SAFETY: we are the intermediate child: one more raw fork, then
        // `_exit`; the grandchild runs `guard_main` on the prepared plan.
        unsafe {
            let g = raw_fork();
            if g == 0 {
                guard_main(&plan);
            }
            // Raw: _exit in the intermediate child (async-signal-safe; rustix has no exit).
            libc::_exit(if g < 0 { 1 } else { 0 });
        }
    }
    let fork_err = (pid < 0).then(io::Error::last_os_error);
    spawn_steps::restore_signals(&old_mask);
    drop(guard_end);
    // The guard has its own copies; the owner needs none of this.
    drop(table);
    drop(buf);
    if let Some(e) = fork_err {
        return Err(format!("cannot fork the guard: {e}"));
    }
    let launcher = rustix::process::Pid::from_raw(pid).ok_or("the guard's launcher has no pid")?;
    let launched = loop {
        match rustix::process::waitpid(Some(launcher), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => break status.exit_status() == Some(0),
            Ok(None) | Err(rustix::io::Errno::INTR) => continue,
            // Reaped by someone else's waitpid(-1): the greeting (or its
            // absence) tells whether the guard started.
            Err(rustix::io::Errno::CHILD) => break true,
            Err(e) => return Err(format!("cannot wait for the guard's launcher: {e}")),
        }
    };
    if !launched {
        return Err("the guard's launcher could not fork it".into());
    }
    let hello = recv_reply(owner_end.as_fd(), 10_000)
        .ok_or_else(|| "the guard did not report in".to_string())?;
    if hello.kind != REPLY_HELLO || hello.pid <= 0 {
        return Err("the guard sent a bad greeting".into());
    }
    let pidfd = rustix::process::Pid::from_raw(hello.pid)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    // The pidfd is the guard's only if the guard still held its end after
    // it was opened.
    if hung_up(owner_end.as_fd()) {
        return Err("the guard exited as soon as it started".into());
    }
    if let Some(fd) = &pidfd {
        reap_if_ours(hello.pid, fd);
    }
    Ok(new_guard(
        (owner_end.keep(), bell),
        hello.pid,
        pidfd,
        exact_pgroup,
        cap,
        Started::Fork(why),
    ))
}

/// An owner that is a subreaper (PR_SET_CHILD_SUBREAPER: a supervisor, an
/// init in a container) inherits the guard when its launcher exits. Then
/// nobody else reaps it, and a guard that dies before the owner would stay
/// a zombie: the reaper thread reaps it once it exits.
fn reap_if_ours(pid: i32, pidfd: &OwnedFd) {
    if parent_of(pid) == Some(crate::sys::pid::current()) {
        if let Ok(dup) = pidfd.try_clone() {
            crate::sys::linux::reaper::reap_later(dup);
        }
    }
}

/// The owner's handle: its end of the socket and the bell, the guard.
fn new_guard(
    (sock, bell): (OwnedFd, OwnedFd),
    pid: i32,
    pidfd: Option<OwnedFd>,
    exact_pgroup: bool,
    cap: usize,
    started: Started,
) -> Guard {
    Guard {
        owner: crate::sys::creator::Creator::here(),
        sock,
        bell: Some(bell),
        pid,
        pidfd,
        exact_pgroup,
        portable: false,
        cap,
        started,
        state: Mutex::new(State {
            live: BTreeMap::new(),
            used: 0,
            unrung: 0,
            failed: None,
        }),
        query_lock: Mutex::new(()),
    }
}

/// The guard's table, allocated zeroed (all free slots): untouched pages
/// cost no memory in the owner or the guard until slots are used.
struct ZeroedTable {
    ptr: *mut Slot,
    layout: std::alloc::Layout,
}

impl ZeroedTable {
    fn new(cap: usize) -> Result<ZeroedTable, String> {
        let layout = std::alloc::Layout::array::<Slot>(cap)
            .map_err(|e| format!("the guard's table: {e}"))?;
        // SAFETY: the layout is non-zero-sized (cap >= 1); the result is
        // checked for null. All-zero bytes are a valid (free) `Slot`.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Slot>();
        if ptr.is_null() {
            return Err("cannot allocate the guard's table".into());
        }
        Ok(ZeroedTable { ptr, layout })
    }
}

impl Drop for ZeroedTable {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.cast(), self.layout) }
    }
}

/// The parent pid of `pid`, from `/proc/<pid>/stat` (field 4).
fn parent_of(pid: i32) -> Option<u32> {
    crate::sys::linux::procfs::stat_fields(pid)
        .ok()?
        .get(1)?
        .parse()
        .ok()
}
