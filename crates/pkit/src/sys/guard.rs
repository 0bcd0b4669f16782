//! The owner-death guard: one small process per owner that kills the
//! owner's groups when the owner dies by any means, SIGKILL included.
//!
//! # Shape
//!
//! The first group an owner creates starts the guard (once). The owner
//! makes a `SOCK_SEQPACKET` socket pair (both ends close-on-exec, so no
//! spawned program inherits either), forks an intermediate process which
//! forks the guard and exits at once: the guard is then nobody's child in
//! the owner's tree (it is reparented to init or the nearest subreaper), so
//! the owner never has to reap it and no `waitpid(-1)` of the owner's can
//! take it. The guard keeps only its end of the socket.
//!
//! Groups register over the socket when created (a cgroup's directory, plus
//! any v1 cgroup directories that carry its caps; a process group's leader
//! as a pidfd passed with `SCM_RIGHTS`) and unregister when torn down. Each
//! message has one fixed size ([`Msg`]). The guard blocks in `recvmsg`,
//! costing nothing while idle. When `recvmsg` returns end of file, every
//! holder of the owner's end is gone, so the owner is dead: the guard kills
//! every registered group, waits (bounded) for the cgroups to empty,
//! removes their directories and exits.
//!
//! # What the guard may do
//!
//! It is forked without exec from a process that may have many threads, so
//! from the fork on it runs only [`guard_main`]: raw, async-signal-safe
//! system calls on memory prepared before the fork (a table with a fixed
//! number of slots, a read buffer, paths as NUL-terminated bytes). No
//! allocation, no locks, no Rust I/O, no panics. It closes every fd but its
//! socket first, moves into its own session (a terminal's Ctrl-C never
//! reaches it), ignores SIGINT, SIGTERM, SIGHUP and SIGPIPE, and is in none
//! of the groups it guards (it stays in the owner's own cgroup, which is the
//! parent of the groups' cgroups, and in a process group of its own).
//!
//! # Costs and limits
//!
//! - The guard is a copy-on-write copy of the owner as it was at the first
//!   group: pages the owner modifies later are duplicated, so the guard's
//!   resident memory can grow towards the owner's size at that moment, and
//!   it keeps the owner's memory mappings (a mapped, deleted file keeps its
//!   space) until it exits.
//! - A child the owner forks without exec inherits the owner's end of the
//!   socket, so the guard fires only once that child is gone too. An owner
//!   that `exec`s closes its end (close-on-exec): the guard then tears the
//!   groups down, since nothing in the new program knows about them.
//! - A guard that is itself killed is noticed ([`Guard::alive`]); groups
//!   made afterwards are reported unguarded. It is not restarted.
//! - The owner never blocks on the guard: messages are sent with
//!   `MSG_DONTWAIT`, the state lock is held only around those sends, and a
//!   guard that leaves its socket full for 2 s (stopped with SIGSTOP, or
//!   wedged) is given up on just like a dead one: groups made afterwards
//!   are created unguarded and say so (`Group::guarded`, the description,
//!   `GuardStatus::error`). If it runs again it still acts on what it has
//!   read, should the owner die.
//!
//! # Why a process group the guard signals is always ours
//!
//! A process-group id is a number, and a number is reused once the group's
//! last member is gone. While the owner lives it keeps the group leader
//! unreaped (see `unix/pgroup.rs`), but a killed owner's children are
//! reparented to init, which reaps the zombie leader; if every other member
//! were gone too, the number could be handed out again before the guard
//! acts. So the guard does not signal by number: it holds a pidfd for the
//! leader (the owner's own pidfd, passed over the socket, so it refers to
//! exactly that process) and sends SIGKILL with `pidfd_send_signal(...,
//! PIDFD_SIGNAL_PROCESS_GROUP)` (Linux 6.9+). The kernel then signals the
//! tasks whose process group is the leader's `struct pid`, the very object
//! the pidfd pins: a new group that reuses the number has a different
//! `struct pid` and cannot be hit. If the leader's group is empty the call
//! finds nobody (`ESRCH`), which is the right answer.
//!
//! Which entries can the guard still hold when it acts? The owner
//! unregisters a group before it releases (reaps) the leader, and the guard
//! reads every queued message before it sees end of file, so each process
//! group left in the table had an unreaped leader when the owner died.
//!
//! On older kernels the guard falls back to `killpg` by number, but only
//! after `pidfd_send_signal(leader, 0)` succeeds, which proves the leader is
//! not yet reaped (a zombie still answers; a reaped process gives `ESRCH`),
//! so its number is still allocated and the group is still ours. Between
//! that check and the `killpg` the leader could be reaped and the number
//! reused only if the kernel's cyclic pid allocator wrapped all the way
//! round in those microseconds; [`GuardStatus::process_groups`] says which
//! of the two methods is in use.
//!
//! A pgroup group registers right after its first child (the leader) is
//! spawned; an owner killed in the microseconds between the two leaves that
//! one group unguarded. A cgroup group registers before anything is placed
//! in it.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::linux::spawn;

/// Longest path (bytes, NUL included) a slot can hold.
const PATH_LEN: usize = 512;
/// Slots in the guard's table; one per cgroup, v1 directory or pgroup.
const TABLE_CAP: usize = 4096;
/// The guard's buffer for `cgroup.procs` (freeze-and-kill fallback).
const BUF_LEN: usize = 64 * 1024;
/// How long the owner waits for room in the guard's socket before it
/// gives the guard up as stopped or wedged.
const SEND_BOUND: std::time::Duration = std::time::Duration::from_secs(2);
/// How long the guard's teardown may wait for cgroups to empty.
const TEARDOWN_BOUND_MS: i64 = 10_000;

const OP_CGROUP: u32 = 1;
const OP_DIR: u32 = 2;
const OP_PGROUP: u32 = 3;
const OP_REMOVE: u32 = 4;
const OP_QUERY: u32 = 5;

/// `Msg::flags` for `OP_CGROUP`: the cgroup has `cgroup.kill`.
const FLAG_HAS_KILL: u32 = 1;

const REPLY_HELLO: u32 = 1;
const REPLY_COUNT: u32 = 2;

/// `PIDFD_SIGNAL_PROCESS_GROUP` (linux/pidfd.h, Linux 6.9).
const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;

/// One message from the owner to the guard.
#[repr(C)]
#[derive(Clone, Copy)]
struct Msg {
    op: u32,
    flags: u32,
    /// The registration (group) this message is about.
    id: u64,
    /// The process group id, for `OP_PGROUP`.
    pgid: i32,
    _pad: u32,
    /// NUL-terminated directory path, for `OP_CGROUP` and `OP_DIR`.
    path: [u8; PATH_LEN],
}

impl Msg {
    const EMPTY: Msg = Msg {
        op: 0,
        flags: 0,
        id: 0,
        pgid: 0,
        _pad: 0,
        path: [0; PATH_LEN],
    };
}

/// One message from the guard to the owner.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Reply {
    kind: u32,
    pid: i32,
    /// Slots in use.
    count: u32,
    /// Registrations the guard could not take (no slot, no fd).
    lost: u32,
}

/// One registered item in the guard's table. All zeroes is a free slot
/// (`op == 0`), so the table is allocated zeroed and costs no memory until
/// slots are used.
#[derive(Clone, Copy)]
struct Slot {
    op: u32,
    flags: u32,
    id: u64,
    pgid: i32,
    pidfd: RawFd,
    path: [u8; PATH_LEN],
}

impl Slot {
    const FREE: Slot = Slot {
        op: 0,
        flags: 0,
        id: 0,
        pgid: 0,
        pidfd: 0, // meaningful only for OP_PGROUP
        path: [0; PATH_LEN],
    };
}

/// What the guard needs, prepared before the fork.
struct Plan {
    sock: RawFd,
    table: *mut Slot,
    cap: usize,
    buf: *mut u8,
    buf_len: usize,
    exact_pgroup: bool,
}

/// The state of this process's owner-death guard; see
/// [`HostContainment::guard`](crate::HostContainment::guard).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GuardStatus {
    /// Whether the guard is running now.
    pub running: bool,
    /// Its pid, once started.
    pub pid: Option<u32>,
    /// The groups it covers now: `cgroup <dir>` or `process group <pgid>`.
    pub groups: Vec<String>,
    /// Emptied cgroup directories kept for reuse by later one-shot runs
    /// ([`release_spare_cgroups`](crate::release_spare_cgroups)): the guard
    /// removes them too if this process is killed.
    pub spares: usize,
    /// How many entries the guard itself reports holding (a cgroup with v1
    /// cap directories takes one per directory); `None` when it can't be
    /// asked.
    pub entries: Option<usize>,
    /// Registrations the guard could not take (table or fd limit).
    pub lost: Option<u32>,
    /// Why it is not running (it could not be started, or it died).
    pub error: Option<String>,
    /// How it kills process groups: by the leader's pidfd (exact), or by
    /// number after checking that the leader is unreaped (kernels < 6.9).
    pub process_groups: String,
}

/// The owner's handle on its guard.
pub(crate) struct Guard {
    /// The process that started it (a forked copy of the owner must not
    /// use the owner's guard: it would die with the owner, not with it).
    owner: u32,
    sock: OwnedFd,
    pid: i32,
    pidfd: Option<OwnedFd>,
    exact_pgroup: bool,
    cap: usize,
    /// What is registered; held only around non-blocking sends.
    state: Mutex<State>,
    /// One query (a message and its reply) at a time.
    query_lock: Mutex<()>,
}

struct State {
    /// Registration id -> (description, slots used).
    live: BTreeMap<u64, Entry>,
    used: usize,
    /// Set once a send failed: the guard is gone.
    failed: Option<String>,
}

/// One registration, as the owner keeps track of it.
struct Entry {
    /// `cgroup <dir>` or `process group <pgid>`.
    what: String,
    /// Table slots it uses in the guard.
    slots: usize,
    /// An emptied cgroup kept for reuse (see `cgroup_pool`): it stays
    /// registered so that the guard removes it if the owner is killed.
    spare: bool,
}

/// A group's registration with the guard.
#[derive(Debug)]
pub(crate) struct Ticket(u64);

static GUARD: OnceLock<Result<Guard, String>> = OnceLock::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// This process's guard, started on first use. `Err` says why there is
/// none (logged once as a warning).
pub(crate) fn get() -> Result<&'static Guard, String> {
    GUARD
        .get_or_init(|| {
            let r = start();
            match &r {
                Ok(g) => tracing::debug!(target: "pkit", pid = g.pid, "owner-death guard started"),
                Err(why) => tracing::warn!(
                    target: "pkit",
                    reason = %why,
                    "no owner-death guard: groups will not outlive a killed owner's teardown"
                ),
            }
            r
        })
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|g| {
            if g.owner == std::process::id() {
                Ok(g)
            } else {
                Err(format!(
                    "this process is a fork of pkit process {} and can't share its owner-death guard",
                    g.owner
                ))
            }
        })
}

/// Whether process groups can be signalled through the leader's pidfd.
fn probe_exact_pgroup() -> bool {
    // Signal 0 through our own pidfd to the process group whose id is our
    // pid: no signal is delivered. Kernels before 6.9 reject the flag with
    // EINVAL; newer ones answer 0, or ESRCH when we lead no group.
    let Some(me) = rustix::process::Pid::from_raw(std::process::id() as i32) else {
        return false;
    };
    let Ok(fd) = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty()) else {
        return false;
    };
    matches!(
        pidfd_send(fd.as_fd(), 0, PIDFD_SIGNAL_PROCESS_GROUP),
        0 | libc::ESRCH
    )
}

/// `pidfd_send_signal(fd, sig, NULL, flags)`; returns 0 or the errno.
fn pidfd_send(fd: BorrowedFd<'_>, sig: i32, flags: libc::c_uint) -> i32 {
    // SAFETY: a borrowed fd, a signal number, a null siginfo and flags; the
    // kernel reads nothing else.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            flags,
        )
    };
    if rc == 0 {
        0
    } else {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    }
}

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

fn start() -> Result<Guard, String> {
    start_with(probe_exact_pgroup())
}

/// Starts a guard that signals process groups exactly (through the
/// leader's pidfd) or by number after the liveness check.
fn start_with(exact_pgroup: bool) -> Result<Guard, String> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: socketpair writes two fds into the array we pass.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "cannot create the guard's socket pair: {}",
            io::Error::last_os_error()
        ));
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    let (owner_end, guard_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let err = |e: io::Error| format!("cannot set up the guard's socket: {e}");
    let owner_end = above_stdio(owner_end).map_err(err)?;
    let guard_end = above_stdio(guard_end).map_err(err)?;

    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let hard = nofile.maximum.unwrap_or(u64::MAX);
    let cap = TABLE_CAP.min(hard.saturating_sub(16) as usize).max(1);
    let table = ZeroedTable::new(cap)?;
    let mut buf = vec![0u8; BUF_LEN];
    let plan = Plan {
        sock: guard_end.as_raw_fd(),
        table: table.ptr,
        cap,
        buf: buf.as_mut_ptr(),
        buf_len: buf.len(),
        exact_pgroup,
    };

    let old_mask = spawn::block_all_signals();
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
            libc::_exit(if g < 0 { 1 } else { 0 });
        }
    }
    let fork_err = (pid < 0).then(io::Error::last_os_error);
    spawn::restore_signals(&old_mask);
    drop(guard_end);
    // The guard has its own copies; the owner needs none of this.
    drop(table);
    drop(buf);
    if let Some(e) = fork_err {
        return Err(format!("cannot fork the guard: {e}"));
    }
    let mut status = 0;
    loop {
        // SAFETY: waits for the intermediate child we just forked.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            // Reaped by someone else's waitpid(-1): the greeting (or its
            // absence) tells whether the guard started.
            Some(libc::ECHILD) => {
                status = 0;
                break;
            }
            _ => {
                return Err(format!(
                    "cannot wait for the guard's launcher: {}",
                    io::Error::last_os_error()
                ))
            }
        }
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
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
    Ok(Guard {
        owner: std::process::id(),
        sock: owner_end,
        pid: hello.pid,
        pidfd,
        exact_pgroup,
        cap,
        state: Mutex::new(State {
            live: BTreeMap::new(),
            used: 0,
            failed: None,
        }),
        query_lock: Mutex::new(()),
    })
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

/// A message that unregisters `id`.
fn remove_msg(id: u64) -> Msg {
    let mut m = Msg::EMPTY;
    m.op = OP_REMOVE;
    m.id = id;
    m
}

/// Waits until `sock` has room to send, or `deadline`; false on the
/// deadline (or an error).
fn wait_writable(sock: BorrowedFd<'_>, deadline: std::time::Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: polls one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        // Readable-for-error states (POLLHUP, POLLERR) end the wait too: the
        // next send reports them.
        return n > 0;
    }
}

/// Whether the peer of `sock` has closed its end.
fn hung_up(sock: BorrowedFd<'_>) -> bool {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: polls one valid pollfd without waiting.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

/// Waits up to `timeout_ms` for one reply.
fn recv_reply(sock: BorrowedFd<'_>, timeout_ms: i32) -> Option<Reply> {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: polls one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if n <= 0 || pfd.revents & libc::POLLIN == 0 {
            return None;
        }
        break;
    }
    let mut reply = Reply::default();
    // SAFETY: receives at most size_of::<Reply>() bytes into `reply`, a
    // plain C struct for which any bytes are valid.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            (&mut reply as *mut Reply).cast(),
            size_of::<Reply>(),
            libc::MSG_DONTWAIT,
        )
    };
    (n == size_of::<Reply>() as isize).then_some(reply)
}

impl Guard {
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the guard is still running.
    pub(crate) fn alive(&self) -> bool {
        if self.lock().failed.is_some() || hung_up(self.sock.as_fd()) {
            return false;
        }
        match &self.pidfd {
            Some(fd) => !super::linux::child::pidfd_exited_now(fd),
            None => true,
        }
    }

    /// Tries to send one message (with an fd attached, for `OP_PGROUP`)
    /// without blocking: `WouldBlock` when the socket's buffer is full.
    fn try_send(&self, msg: &Msg, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
        let mut iov = libc::iovec {
            iov_base: (msg as *const Msg).cast_mut().cast(),
            iov_len: size_of::<Msg>(),
        };
        // Room for one fd's control message, 8-byte aligned.
        let mut control = [0u64; 4];
        // SAFETY: msghdr is a plain C struct; zeroed is a valid empty value.
        let mut mh: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        if let Some(fd) = fd {
            // SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic; the control buffer
            // is 32 bytes, more than CMSG_SPACE(4) (24), and CMSG_FIRSTHDR
            // of a msghdr with that buffer points at its start.
            unsafe {
                mh.msg_control = control.as_mut_ptr().cast();
                mh.msg_controllen = libc::CMSG_SPACE(size_of::<RawFd>() as u32) as _;
                let cm = libc::CMSG_FIRSTHDR(&mh);
                (*cm).cmsg_level = libc::SOL_SOCKET;
                (*cm).cmsg_type = libc::SCM_RIGHTS;
                (*cm).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<RawFd>(), fd.as_raw_fd());
            }
        }
        loop {
            // SAFETY: `mh` points at `iov`, `msg` and `control`, all alive
            // for the call; MSG_NOSIGNAL turns a dead peer into EPIPE and
            // MSG_DONTWAIT a full buffer into EAGAIN.
            let n = unsafe {
                libc::sendmsg(
                    self.sock.as_raw_fd(),
                    &mh,
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if n == size_of::<Msg>() as isize {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if n < 0 && e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if n >= 0 {
                return Err(io::Error::other("a short send"));
            }
            return Err(e);
        }
    }

    /// Sends `msgs` in order (the fd goes with each; only `OP_PGROUP`
    /// passes one). The owner never blocks on the guard: the state lock is
    /// held only around non-blocking sends, and a guard that does not make
    /// room in its socket within [`SEND_BOUND`] (stopped by a debugger or an
    /// administrator, or wedged) is given up on. It is then marked failed:
    /// groups from then on are created unguarded, which
    /// [`Group::guarded`](crate::Group::guarded), the group's description and
    /// [`GuardStatus::error`] report (and a warning is logged once).
    fn deliver(&self, msgs: &[Msg], fd: Option<BorrowedFd<'_>>) -> Result<(), String> {
        let deadline = std::time::Instant::now() + SEND_BOUND;
        let mut sent = 0;
        loop {
            {
                let mut state = self.lock();
                if let Some(why) = &state.failed {
                    return Err(why.clone());
                }
                while sent < msgs.len() {
                    match self.try_send(&msgs[sent], fd) {
                        Ok(()) => sent += 1,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            let why =
                                format!("the owner-death guard (pid {}) is gone: {e}", self.pid);
                            return Err(Self::fail(&mut state, why));
                        }
                    }
                }
                if sent == msgs.len() {
                    return Ok(());
                }
            }
            // The lock is released while waiting for room.
            if !wait_writable(self.sock.as_fd(), deadline) {
                let why = format!(
                    "the owner-death guard (pid {}) stopped reading its messages for {} s (stopped or wedged); groups are no longer guarded",
                    self.pid,
                    SEND_BOUND.as_secs()
                );
                let mut state = self.lock();
                if let Some(why) = &state.failed {
                    return Err(why.clone());
                }
                return Err(Self::fail(&mut state, why));
            }
        }
    }

    /// Marks the guard failed (once) and says why.
    fn fail(state: &mut State, why: String) -> String {
        if let Some(earlier) = &state.failed {
            return earlier.clone();
        }
        tracing::warn!(target: "pkit", reason = %why, "owner-death guard lost");
        state.failed = Some(why.clone());
        why
    }

    /// Registers a cgroup (and the v1 directories to remove after it).
    pub(crate) fn register_cgroup(
        &self,
        dir: &Path,
        has_kill: bool,
        then_remove: &[PathBuf],
    ) -> Result<Ticket, String> {
        let mut msgs = Vec::with_capacity(1 + then_remove.len());
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        for (i, path) in std::iter::once(dir)
            .chain(then_remove.iter().map(|p| p.as_path()))
            .enumerate()
        {
            let mut m = Msg::EMPTY;
            m.op = if i == 0 { OP_CGROUP } else { OP_DIR };
            m.flags = if has_kill { FLAG_HAS_KILL } else { 0 };
            m.id = id;
            let bytes = path.as_os_str().as_bytes();
            if bytes.len() >= PATH_LEN || bytes.contains(&0) {
                return Err(format!(
                    "the path {} is too long for the owner-death guard",
                    path.display()
                ));
            }
            m.path[..bytes.len()].copy_from_slice(bytes);
            msgs.push(m);
        }
        let what = format!("cgroup {}", dir.display());
        self.book(id, what, msgs.len())?;
        if let Err(e) = self.deliver(&msgs, None) {
            // Whatever part arrived is dropped with the failed guard, or
            // (a failure after the first message) removed by id.
            self.unbook(id);
            let _ = self.deliver(&[remove_msg(id)], None);
            return Err(e);
        }
        Ok(Ticket(id))
    }

    /// Registers a process group by its leader's pidfd.
    pub(crate) fn register_pgroup(
        &self,
        leader: BorrowedFd<'_>,
        pgid: i32,
    ) -> Result<Ticket, String> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut m = Msg::EMPTY;
        m.op = OP_PGROUP;
        m.id = id;
        m.pgid = pgid;
        self.book(id, format!("process group {pgid}"), 1)?;
        if let Err(e) = self.deliver(&[m], Some(leader)) {
            self.unbook(id);
            return Err(e);
        }
        Ok(Ticket(id))
    }

    /// Notes a registration in the owner's bookkeeping, if the table has
    /// room for `slots` more entries.
    fn book(&self, id: u64, what: String, slots: usize) -> Result<(), String> {
        let mut state = self.lock();
        if let Some(why) = &state.failed {
            return Err(why.clone());
        }
        if state.used + slots > self.cap {
            return Err(format!(
                "the owner-death guard's table is full ({} entries)",
                self.cap
            ));
        }
        state.used += slots;
        let entry = Entry {
            what,
            slots,
            spare: false,
        };
        state.live.insert(id, entry);
        Ok(())
    }

    fn unbook(&self, id: u64) {
        let mut state = self.lock();
        if let Some(entry) = state.live.remove(&id) {
            state.used -= entry.slots;
        }
    }

    /// Unregisters a group (after it has been killed). Never blocks for
    /// long (see [`deliver`](Self::deliver)).
    pub(crate) fn unregister(&self, ticket: Ticket) {
        self.unbook(ticket.0);
        let _ = self.deliver(&[remove_msg(ticket.0)], None);
    }

    /// Marks a cgroup's registration as a spare directory (or a group's
    /// again). Only the owner's bookkeeping changes: the guard removes a
    /// spare at the owner's death just as it ends a group.
    pub(crate) fn set_spare(&self, ticket: &Ticket, spare: bool) {
        if let Some(entry) = self.lock().live.get_mut(&ticket.0) {
            entry.spare = spare;
        }
    }

    /// Asks the guard how many entries it holds and how many it lost. The
    /// state lock is not held while waiting for the answer.
    fn query(&self) -> Option<(usize, u32)> {
        let _one_at_a_time = self.query_lock.lock().unwrap_or_else(|e| e.into_inner());
        // Drop a reply that arrived after an earlier query gave up.
        while recv_reply(self.sock.as_fd(), 0).is_some() {}
        let mut m = Msg::EMPTY;
        m.op = OP_QUERY;
        self.deliver(&[m], None).ok()?;
        let r = recv_reply(self.sock.as_fd(), 2000)?;
        (r.kind == REPLY_COUNT).then_some((r.count as usize, r.lost))
    }

    fn method(&self) -> &'static str {
        if self.exact_pgroup {
            "signalled through the leader's pidfd (PIDFD_SIGNAL_PROCESS_GROUP): exact"
        } else {
            "killpg after checking through its pidfd that the leader is unreaped (kernel < 6.9)"
        }
    }
}

/// The guard's state, for [`host_containment`](crate::host_containment).
/// Never starts the guard.
pub(crate) fn status() -> GuardStatus {
    match GUARD.get() {
        None => GuardStatus {
            error: None,
            process_groups: if probe_exact_pgroup() {
                "would be signalled through the leader's pidfd (PIDFD_SIGNAL_PROCESS_GROUP): exact"
            } else {
                "would be killed by killpg after checking that the leader is unreaped (kernel < 6.9)"
            }
            .into(),
            ..GuardStatus::default()
        },
        Some(Err(why)) => GuardStatus {
            error: Some(why.clone()),
            ..GuardStatus::default()
        },
        Some(Ok(g)) => {
            let running = g.alive();
            let (entries, lost) = match running.then(|| g.query()).flatten() {
                Some((n, lost)) => (Some(n), Some(lost)),
                None => (None, None),
            };
            let state = g.lock();
            GuardStatus {
                running,
                pid: Some(g.pid as u32),
                groups: state
                    .live
                    .values()
                    .filter(|e| !e.spare)
                    .map(|e| e.what.clone())
                    .collect(),
                spares: state.live.values().filter(|e| e.spare).count(),
                entries,
                lost,
                error: if running {
                    None
                } else {
                    Some(state.failed.clone().unwrap_or_else(|| {
                        format!("the owner-death guard (pid {}) has exited", g.pid)
                    }))
                },
                process_groups: g.method().into(),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The guard process. Everything below runs after the fork: raw calls only.
// ---------------------------------------------------------------------------

/// The guard's whole life.
///
/// # Safety
/// Only in the freshly forked guard; `plan`'s pointers are valid (the
/// guard's copy of the owner's memory) and nothing else uses them.
unsafe fn guard_main(plan: &Plan) -> ! {
    // Keep only our socket: no pipe, cgroup or pidfd of the owner's stays
    // open here (stdio becomes /dev/null).
    let sock = plan.sock as libc::c_uint;
    if libc::syscall(libc::SYS_close_range, 0u32, sock - 1, 0u32) != 0 {
        for fd in 0..sock {
            libc::close(fd as RawFd);
        }
    }
    if libc::syscall(libc::SYS_close_range, sock + 1, u32::MAX, 0u32) != 0 {
        for fd in sock + 1..65536 {
            libc::close(fd as RawFd);
        }
    }
    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
    if null >= 0 {
        for fd in 0..3 {
            if fd != null {
                libc::dup2(null, fd);
            }
        }
        if null > 2 {
            libc::close(null);
        }
    }
    libc::setsid();
    libc::chdir(c"/".as_ptr());
    libc::prctl(
        libc::PR_SET_NAME,
        c"pkit-guard".as_ptr() as libc::c_ulong,
        0,
        0,
        0,
    );
    // Room for one pidfd per slot.
    let mut lim = MaybeUninit::<libc::rlimit>::zeroed();
    if libc::getrlimit(libc::RLIMIT_NOFILE, lim.as_mut_ptr()) == 0 {
        let mut lim = lim.assume_init();
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    spawn::reset_signal_dispositions();
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
        let mut act = MaybeUninit::<libc::sigaction>::zeroed();
        act.assume_init_mut().sa_sigaction = libc::SIG_IGN;
        libc::sigaction(sig, act.as_ptr(), std::ptr::null_mut());
    }
    let mut none = MaybeUninit::<libc::sigset_t>::uninit();
    libc::sigemptyset(none.as_mut_ptr());
    libc::pthread_sigmask(libc::SIG_SETMASK, none.as_ptr(), std::ptr::null_mut());

    let hello = Reply {
        kind: REPLY_HELLO,
        pid: libc::getpid(),
        count: 0,
        lost: 0,
    };
    reply(plan.sock, &hello);

    let table = std::slice::from_raw_parts_mut(plan.table, plan.cap);
    let buf = std::slice::from_raw_parts_mut(plan.buf, plan.buf_len);
    let mut lost: u32 = 0;
    loop {
        let mut msg = Msg::EMPTY;
        let mut iov = libc::iovec {
            iov_base: (&mut msg as *mut Msg).cast(),
            iov_len: size_of::<Msg>(),
        };
        let mut control = [0u64; 8];
        let mut mh: libc::msghdr = MaybeUninit::zeroed().assume_init();
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        mh.msg_control = control.as_mut_ptr().cast();
        mh.msg_controllen = size_of::<[u64; 8]>() as _;
        let n = libc::recvmsg(plan.sock, &mut mh, libc::MSG_CMSG_CLOEXEC);
        if n == 0 {
            break; // every holder of the owner's end is gone
        }
        if n < 0 {
            if *libc::__errno_location() == libc::EINTR {
                continue;
            }
            break;
        }
        // Take the first passed fd; close any other.
        let mut passed: RawFd = -1;
        let mut cm = libc::CMSG_FIRSTHDR(&mh);
        while !cm.is_null() {
            if (*cm).cmsg_level == libc::SOL_SOCKET && (*cm).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cm).cast::<RawFd>();
                let count = ((*cm).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize)
                    / size_of::<RawFd>();
                for i in 0..count {
                    let fd = std::ptr::read_unaligned(data.add(i));
                    if passed < 0 {
                        passed = fd;
                    } else {
                        libc::close(fd);
                    }
                }
            }
            cm = libc::CMSG_NXTHDR(&mh, cm);
        }
        if n as usize != size_of::<Msg>() {
            close_fd(passed);
            continue;
        }
        match msg.op {
            OP_CGROUP | OP_DIR | OP_PGROUP => {
                if msg.op == OP_PGROUP && passed < 0 {
                    lost = lost.saturating_add(1);
                    continue;
                }
                match table.iter_mut().find(|s| s.op == 0) {
                    Some(slot) => {
                        slot.op = msg.op;
                        slot.flags = msg.flags;
                        slot.id = msg.id;
                        slot.pgid = msg.pgid;
                        slot.pidfd = if msg.op == OP_PGROUP { passed } else { -1 };
                        slot.path = msg.path;
                        if let Some(last) = slot.path.last_mut() {
                            *last = 0;
                        }
                        if msg.op != OP_PGROUP {
                            close_fd(passed);
                        }
                    }
                    None => {
                        lost = lost.saturating_add(1);
                        close_fd(passed);
                    }
                }
            }
            OP_REMOVE => {
                close_fd(passed);
                for slot in table.iter_mut() {
                    if slot.op != 0 && slot.id == msg.id {
                        if slot.op == OP_PGROUP {
                            close_fd(slot.pidfd);
                        }
                        *slot = Slot::FREE;
                    }
                }
            }
            OP_QUERY => {
                close_fd(passed);
                let count = table.iter().filter(|s| s.op != 0).count() as u32;
                reply(
                    plan.sock,
                    &Reply {
                        kind: REPLY_COUNT,
                        pid: 0,
                        count,
                        lost,
                    },
                );
            }
            _ => close_fd(passed),
        }
    }
    teardown(plan, table, buf);
    libc::_exit(0)
}

/// # Safety
/// Guard only.
unsafe fn close_fd(fd: RawFd) {
    if fd >= 0 {
        libc::close(fd);
    }
}

/// # Safety
/// Guard only.
unsafe fn reply(sock: RawFd, r: &Reply) {
    libc::send(
        sock,
        (r as *const Reply).cast(),
        size_of::<Reply>(),
        libc::MSG_NOSIGNAL,
    );
}

/// Kills everything registered, waits for the cgroups to empty, removes
/// the directories.
///
/// # Safety
/// Guard only.
unsafe fn teardown(plan: &Plan, table: &mut [Slot], buf: &mut [u8]) {
    let deadline = now_ms() + TEARDOWN_BOUND_MS;
    for slot in table.iter() {
        if slot.op == OP_CGROUP {
            kill_cgroup(slot, buf, deadline);
        }
    }
    for slot in table.iter() {
        if slot.op == OP_PGROUP {
            kill_pgroup(slot, plan.exact_pgroup);
        }
    }
    for slot in table.iter() {
        if slot.op == OP_CGROUP {
            wait_empty(slot, deadline);
            // Sub-cgroups first (a program in the group may have made some,
            // e.g. a nested pkit): rmdir refuses a cgroup that has any.
            let dir = libc::open(
                slot.path.as_ptr().cast(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if dir >= 0 {
                rmdir_below(dir, 0);
                libc::close(dir);
            }
            libc::rmdir(slot.path.as_ptr().cast());
        }
    }
    // v1 cap directories: their members were in the v2 cgroups, now gone.
    for slot in table.iter() {
        if slot.op == OP_DIR {
            libc::rmdir(slot.path.as_ptr().cast());
        }
    }
}

/// # Safety
/// Guard only.
unsafe fn kill_pgroup(slot: &Slot, exact: bool) {
    let sig = |s: i32, flags: libc::c_uint| {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            slot.pidfd,
            s,
            std::ptr::null::<libc::siginfo_t>(),
            flags,
        )
    };
    if exact {
        sig(libc::SIGKILL, PIDFD_SIGNAL_PROCESS_GROUP);
    } else if sig(0, 0) == 0 {
        // The leader is unreaped, so its pid (the pgid) is still allocated.
        libc::killpg(slot.pgid, libc::SIGKILL);
    }
}

/// `dir/name` as a NUL-terminated string in `out`; false if it won't fit.
fn join(dir: &[u8; PATH_LEN], name: &[u8], out: &mut [u8; PATH_LEN + 32]) -> bool {
    let len = dir.iter().position(|&b| b == 0).unwrap_or(PATH_LEN);
    if len + 1 + name.len() + 1 > out.len() {
        return false;
    }
    out[..len].copy_from_slice(&dir[..len]);
    out[len] = b'/';
    out[len + 1..len + 1 + name.len()].copy_from_slice(name);
    out[len + 1 + name.len()] = 0;
    true
}

/// Opens `dir/name`; -1 on failure.
///
/// # Safety
/// Guard only.
unsafe fn open_in(dir: &[u8; PATH_LEN], name: &[u8], flags: i32) -> RawFd {
    let mut path = [0u8; PATH_LEN + 32];
    if !join(dir, name, &mut path) {
        return -1;
    }
    libc::open(path.as_ptr().cast(), flags | libc::O_CLOEXEC)
}

/// Writes `value` to `dir/name`; whether it worked.
///
/// # Safety
/// Guard only.
unsafe fn write_in(dir: &[u8; PATH_LEN], name: &[u8], value: &[u8]) -> bool {
    let fd = open_in(dir, name, libc::O_WRONLY);
    if fd < 0 {
        return false;
    }
    let ok = libc::write(fd, value.as_ptr().cast(), value.len()) == value.len() as isize;
    libc::close(fd);
    ok
}

/// Reads `fd` from offset 0 into `buf`; bytes read.
///
/// # Safety
/// Guard only.
unsafe fn pread_all(fd: RawFd, buf: &mut [u8]) -> usize {
    let mut got = 0usize;
    while got < buf.len() {
        let n = libc::pread(
            fd,
            buf[got..].as_mut_ptr().cast(),
            buf.len() - got,
            got as libc::off_t,
        );
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    got
}

/// The value of `key` (`populated`, `frozen`) in `cgroup.events` text.
fn event_field(text: &[u8], key: &[u8]) -> Option<bool> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(b" ")?;
        Some(rest.first() == Some(&b'1'))
    })
}

/// # Safety
/// Guard only.
unsafe fn events(fd: RawFd) -> (bool, bool) {
    let mut text = [0u8; 256];
    let n = pread_all(fd, &mut text);
    let text = &text[..n];
    (
        event_field(text, b"populated").unwrap_or(false),
        event_field(text, b"frozen").unwrap_or(false),
    )
}

/// Waits for `cgroup.events` to change, up to `deadline`.
///
/// # Safety
/// Guard only.
unsafe fn wait_change(fd: RawFd, deadline: i64) -> bool {
    let left = deadline - now_ms();
    if left <= 0 {
        return false;
    }
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLPRI,
        revents: 0,
    };
    libc::poll(&mut pfd, 1, left.min(i32::MAX as i64) as i32) != 0
}

/// # Safety
/// Guard only.
unsafe fn kill_cgroup(slot: &Slot, buf: &mut [u8], deadline: i64) {
    if slot.flags & FLAG_HAS_KILL != 0 && write_in(&slot.path, b"cgroup.kill", b"1") {
        return;
    }
    // No cgroup.kill: freeze (nobody forks meanwhile), SIGKILL each member,
    // thaw (the kills take effect). Repeat only if the list overflowed.
    let ev = open_in(&slot.path, b"cgroup.events", libc::O_RDONLY);
    if ev < 0 {
        return;
    }
    for _ in 0..16 {
        if !events(ev).0 {
            break;
        }
        write_in(&slot.path, b"cgroup.freeze", b"1");
        let freeze_deadline = deadline.min(now_ms() + 2000);
        loop {
            let (populated, frozen) = events(ev);
            if frozen || !populated || !wait_change(ev, freeze_deadline) {
                break;
            }
        }
        let procs = open_in(&slot.path, b"cgroup.procs", libc::O_RDONLY);
        let mut complete = true;
        if procs >= 0 {
            let n = pread_all(procs, buf);
            libc::close(procs);
            complete = n < buf.len();
            let mut pid: i32 = 0;
            let mut digits = false;
            for &b in &buf[..n] {
                if b.is_ascii_digit() {
                    pid = pid.saturating_mul(10).saturating_add((b - b'0') as i32);
                    digits = true;
                } else {
                    if digits && pid > 0 {
                        libc::kill(pid, libc::SIGKILL);
                    }
                    pid = 0;
                    digits = false;
                }
            }
            if digits && pid > 0 && complete {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        write_in(&slot.path, b"cgroup.freeze", b"0");
        if complete || now_ms() >= deadline {
            break;
        }
    }
    libc::close(ev);
}

/// Waits (bounded) until the cgroup has no live member.
///
/// Removes every (empty) directory below the open directory `dir`,
/// deepest first, with raw calls on a stack buffer only (async-signal-safe:
/// no allocation, no lock). Gives up below a depth no cgroup tree reaches.
///
/// # Safety
/// Guard only; `dir` is an open directory fd.
unsafe fn rmdir_below(dir: libc::c_int, depth: u32) {
    if depth > 32 {
        return;
    }
    let mut buf = [0u8; 2048];
    // Each pass removes the first sub-directory found, then starts over
    // (removing entries while a listing is read would skip some).
    loop {
        libc::lseek(dir, 0, libc::SEEK_SET);
        let mut found = false;
        loop {
            let n = libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len());
            if n <= 0 {
                break;
            }
            let mut off = 0usize;
            while off + 19 < n as usize {
                // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8
                // type, then the NUL-terminated name.
                let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
                let kind = buf[off + 18];
                let name = buf.as_ptr().add(off + 19).cast::<libc::c_char>();
                let dot = buf[off + 19] == b'.'
                    && (buf[off + 20] == 0 || (buf[off + 20] == b'.' && buf[off + 21] == 0));
                if kind == libc::DT_DIR && !dot && reclen > 0 {
                    let sub = libc::openat(
                        dir,
                        name,
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    );
                    if sub >= 0 {
                        rmdir_below(sub, depth + 1);
                        libc::close(sub);
                    }
                    if libc::unlinkat(dir, name, libc::AT_REMOVEDIR) == 0 {
                        found = true;
                        break;
                    }
                }
                if reclen == 0 {
                    break;
                }
                off += reclen;
            }
            if found {
                break;
            }
        }
        if !found {
            return;
        }
    }
}

/// # Safety
/// Guard only.
unsafe fn wait_empty(slot: &Slot, deadline: i64) {
    let ev = open_in(&slot.path, b"cgroup.events", libc::O_RDONLY);
    if ev < 0 {
        return;
    }
    while events(ev).0 && wait_change(ev, deadline) {}
    libc::close(ev);
}

/// Monotonic milliseconds.
///
/// # Safety
/// Guard only (safe anywhere, but kept with its callers).
unsafe fn now_ms() -> i64 {
    let mut ts = MaybeUninit::<libc::timespec>::zeroed();
    libc::clock_gettime(libc::CLOCK_MONOTONIC, ts.as_mut_ptr());
    let ts = ts.assume_init();
    // time_t and c_long are i64 on the 64-bit targets pkit builds for.
    #[allow(clippy::useless_conversion)]
    let (sec, nsec) = (i64::from(ts.tv_sec), i64::from(ts.tv_nsec));
    sec * 1000 + nsec / 1_000_000
}

// ---------------------------------------------------------------------------
// Stale directories
// ---------------------------------------------------------------------------

/// How many directory entries one sweep looks at, at most.
const SWEEP_LIMIT: usize = 4096;

/// Once per process: removes empty `pkit-<pid>-<seq>` directories under
/// `parent` whose owner is dead (left by an owner killed before the guard
/// existed, or whose guard was itself killed).
///
/// "Dead" is judged in this process's pid namespace: an owner in another
/// pid namespace that shares this cgroup would look dead. Only our own
/// cgroup directory (and the matching v1 ones) is swept, which another
/// container's pkit does not normally share.
pub(crate) fn sweep_stale_once(parent: &Path) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::AcqRel) {
        return;
    }
    let mut dirs = vec![parent.to_path_buf()];
    // The v1 directories that carried caps have the same names.
    dirs.extend(
        super::linux::v1::hierarchies()
            .values()
            .map(|h| h.owner_dir.clone()),
    );
    let mut budget = SWEEP_LIMIT;
    for dir in dirs {
        let removed = sweep(&dir, &mut budget);
        if removed > 0 {
            tracing::debug!(target: "pkit", dir = %dir.display(), removed, "removed stale cgroup directories");
        }
    }
}

/// Sweeps one directory; returns how many stale directories it removed.
fn sweep(dir: &Path, budget: &mut usize) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let me = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        let name = entry.file_name();
        let Some(owner) = owner_of(name.as_bytes()) else {
            continue;
        };
        if owner == me {
            continue;
        }
        let path = entry.path();
        if owner_alive(owner, &path) {
            continue;
        }
        // rmdir refuses a cgroup with members: only empty ones go, their
        // (empty) sub-cgroups first.
        if super::linux::subtree::remove_tree(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The owner pid in a `pkit-<pid>-<seq>` name.
fn owner_of(name: &[u8]) -> Option<u32> {
    let rest = name.strip_prefix(super::linux::cgroup::NAME_PREFIX.as_bytes())?;
    let dash = rest.iter().position(|&b| b == b'-')?;
    let (pid, seq) = (&rest[..dash], &rest[dash + 1..]);
    if pid.is_empty() || seq.is_empty() || !seq.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}

/// Whether the process that created `dir` may still be alive: a process
/// with its pid exists and did not start after the directory was made.
/// Errs towards "alive": a live owner's directory is never touched.
fn owner_alive(pid: u32, dir: &Path) -> bool {
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return false; // no such process
    };
    let (Some(started), Some(made)) = (process_start_secs(&stat), dir_ctime_secs(dir)) else {
        return true;
    };
    // Generous slack: clock adjustments move the two estimates apart.
    started <= made + 60
}

/// A process's start time as wall-clock seconds (boot time plus its start
/// in clock ticks), from its `/proc/<pid>/stat` text.
fn process_start_secs(stat: &[u8]) -> Option<i64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After the comm: field 3 (state) is the first; starttime is field 22.
    let ticks: i64 = rest.split_ascii_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let mut text = String::new();
    std::fs::File::open("/proc/stat")
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    let btime: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + ticks / hz as i64)
}

/// When the directory was made (kernfs sets ctime at creation).
fn dir_ctime_secs(dir: &Path) -> Option<i64> {
    use std::os::unix::fs::MetadataExt;
    Some(std::fs::metadata(dir).ok()?.ctime())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    fn gone(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(t) => matches!(
                t[t.rfind(')').map_or(0, |i| i + 1)..]
                    .split_whitespace()
                    .next(),
                Some("Z" | "X")
            ),
        }
    }

    fn wait_gone(pid: u32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if gone(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A process group whose leader has exited and been reaped while a
    /// member (a `sleep`) lives on: returns the leader's pidfd (opened
    /// before the reap), the pgid and the member's pid.
    fn group_with_reaped_leader() -> (OwnedFd, i32, u32) {
        let (mut leader, pidfd, pgid, member) = group_of("sleep 300 & echo $!");
        leader.wait().expect("reap the leader");
        (pidfd, pgid, member)
    }

    /// A shell leading its own process group, running `script` (which
    /// prints a member's pid first): the shell, its pidfd, the pgid and the
    /// member's pid.
    fn group_of(script: &str) -> (std::process::Child, OwnedFd, i32, u32) {
        let mut leader = std::process::Command::new("sh")
            .args(["-c", script])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("sh");
        let pgid = leader.id() as i32;
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pgid).expect("pid"),
            rustix::process::PidfdFlags::empty(),
        )
        .expect("pidfd");
        let mut line = String::new();
        std::io::BufReader::new(leader.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("member pid");
        let member: u32 = line.trim().parse().expect("a pid");
        (leader, pidfd, pgid, member)
    }

    /// Exact mode signals the group through the leader's `struct pid`: it
    /// reaches the member even though the leader is reaped (and so would a
    /// recycled number not be confused with it).
    #[test]
    fn exact_mode_reaches_a_group_whose_leader_was_reaped() {
        if !probe_exact_pgroup() {
            eprintln!("skipped: PIDFD_SIGNAL_PROCESS_GROUP needs Linux 6.9");
            return;
        }
        let (pidfd, pgid, member) = group_with_reaped_leader();
        let guard = start_with(true).expect("guard");
        guard
            .register_pgroup(pidfd.as_fd(), pgid)
            .expect("register");
        drop(guard); // the owner's end closes: the guard acts
        assert!(
            wait_gone(member),
            "the member of the guarded group survived"
        );
    }

    /// The by-number fallback refuses to signal once the leader is reaped:
    /// it can no longer prove the number is still this group's.
    #[test]
    fn fallback_mode_never_signals_a_group_it_cannot_prove_is_ours() {
        let (pidfd, pgid, member) = group_with_reaped_leader();
        let guard = start_with(false).expect("guard");
        let guard_pid = guard.pid() as u32;
        guard
            .register_pgroup(pidfd.as_fd(), pgid)
            .expect("register");
        drop(guard);
        assert!(wait_gone(guard_pid), "the guard did not exit");
        let survived = !gone(member);
        let _ = std::process::Command::new("kill")
            .args(["-9", &member.to_string()])
            .status();
        assert!(
            survived,
            "the fallback signalled a group whose leader was reaped"
        );
    }

    /// Without `cgroup.kill` (kernels before 5.14) the guard freezes the
    /// cgroup, kills each member and thaws it; then it removes the
    /// directory and the extra (v1-style) directories registered with it.
    #[test]
    fn freeze_and_kill_fallback_empties_and_removes_the_cgroup() {
        let Ok(host) = super::super::linux::host::cgroup_host() else {
            eprintln!("skipped: no cgroup v2 here");
            return;
        };
        let name = |n: u32| {
            host.parent_dir
                .join(format!("pkit-{}-{}", std::process::id(), 900_000 + n))
        };
        let (dir, extra) = (name(1), name(2));
        if std::fs::create_dir(&dir).is_err() {
            eprintln!("skipped: cannot create cgroups here");
            return;
        }
        std::fs::create_dir(&extra).expect("extra dir");
        // The shell forks its member only once it is in the cgroup.
        let mut sleeper = std::process::Command::new("sh")
            .args(["-c", "read go; sleep 300 & echo $!; wait"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        std::fs::write(dir.join("cgroup.procs"), sleeper.id().to_string()).expect("join");
        std::io::Write::write_all(&mut sleeper.stdin.take().expect("stdin"), b"go\n").expect("go");
        let mut line = String::new();
        std::io::BufReader::new(sleeper.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("member pid");
        let member: u32 = line.trim().parse().expect("a pid");
        let guard = start_with(false).expect("guard");
        guard
            .register_cgroup(&dir, false, std::slice::from_ref(&extra))
            .expect("register");
        drop(guard);
        let killed = wait_gone(member);
        let status = sleeper.wait().expect("reap");
        let deadline = Instant::now() + Duration::from_secs(10);
        while (dir.exists() || extra.exists()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = (dir.exists(), extra.exists());
        let _ = std::fs::remove_dir(&extra);
        if !killed {
            let _ = std::process::Command::new("kill")
                .args(["-9", &member.to_string()])
                .status();
        }
        assert!(killed, "the member survived");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!(left, (false, false), "directories left behind");
    }

    /// The fallback does kill the group while its leader is unreaped.
    #[test]
    fn fallback_mode_kills_a_group_with_an_unreaped_leader() {
        let (mut leader, pidfd, pgid, member) = group_of("sleep 300 & echo $!; wait");
        let guard = start_with(false).expect("guard");
        guard
            .register_pgroup(pidfd.as_fd(), pgid)
            .expect("register");
        drop(guard);
        let killed = wait_gone(member);
        let status = leader.wait().expect("reap");
        assert!(killed, "the member survived");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "the leader was killed"
        );
    }

    #[test]
    fn owner_names() {
        assert_eq!(owner_of(b"pkit-123-4"), Some(123));
        assert_eq!(owner_of(b"pkit-123-"), None);
        assert_eq!(owner_of(b"pkit--4"), None);
        assert_eq!(owner_of(b"pkit-12x-4"), None);
        assert_eq!(owner_of(b"other-1-2"), None);
    }

    #[test]
    fn events_parse() {
        let text = b"populated 1\nfrozen 0\n";
        assert_eq!(event_field(text, b"populated"), Some(true));
        assert_eq!(event_field(text, b"frozen"), Some(false));
        assert_eq!(event_field(text, b"nothing"), None);
    }

    #[test]
    fn joins_paths() {
        let mut dir = [0u8; PATH_LEN];
        dir[..4].copy_from_slice(b"/a/b");
        let mut out = [0u8; PATH_LEN + 32];
        assert!(join(&dir, b"cgroup.kill", &mut out));
        assert_eq!(&out[..17], b"/a/b/cgroup.kill\0");
    }
}
