//! The owner-death guard: one small process per owner that kills the
//! owner's groups when the owner dies by any means, SIGKILL included.
//!
//! # Shape
//!
//! The first group an owner creates starts the guard (once). The owner
//! makes a `SOCK_SEQPACKET` socket pair (both ends close-on-exec, so no
//! spawned program inherits either) and starts the guard so that it is
//! nobody's child in the owner's tree (it is reparented to init or the
//! nearest subreaper), so the owner never has to reap it and no
//! `waitpid(-1)` of the owner's can take it. The guard keeps only its end
//! of the socket. It is started in one of two ways:
//!
//! - By default, without copying the owner's address space: a vfork-style
//!   launcher (`linux/orphan.rs`) runs this program's own executable again
//!   (`/proc/self/exe`), and the new image becomes the guard before its
//!   `main` (`exec.rs`). Its memory is its own and small, whatever the
//!   owner's size.
//! - Where that is not possible (pkit is not in the main executable, the
//!   executable can't be run again, or `PKIT_GUARD_START=fork`): a double
//!   fork, an intermediate process forking the guard and exiting at once.
//!   [`GuardStatus::started`] says which, and why.
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
//! A forked guard comes from a process that may have many threads, so
//! from the fork on it runs only [`guard_main`]: raw, async-signal-safe
//! system calls on memory prepared before the fork (a table with a fixed
//! number of slots, a read buffer, paths as NUL-terminated bytes). No
//! allocation, no locks, no Rust I/O, no panics. A guard run from the
//! executable runs the same loop (on a table and buffer it maps itself,
//! before `main`), so one body of code serves both. It closes every fd
//! but its socket first, moves into its own session (a terminal's Ctrl-C
//! never reaches it), ignores SIGINT, SIGTERM, SIGHUP and SIGPIPE, and is
//! in none of the groups it guards (it stays in the owner's own cgroup,
//! which is the parent of the groups' cgroups, and in a process group of
//! its own).
//!
//! # Costs and limits
//!
//! - A guard run from the executable costs an `execve` of it (the dynamic
//!   loader, the shared libraries) at the first group, and holds a few
//!   pages of its own. It runs whatever other code the executable and its
//!   libraries run before `main` (static constructors), which Rust programs
//!   rarely have.
//! - A forked guard is a copy-on-write copy of the owner as it was at the
//!   first group: the fork copies the owner's page tables (about half a
//!   second at 8 GiB), pages the owner modifies later are duplicated, so
//!   the guard's resident memory can grow towards the owner's size at that
//!   moment, and it keeps the owner's memory mappings (a mapped, deleted
//!   file keeps its space) until it exits.
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
//! # No window at creation
//!
//! A group is registered before anything of it exists, so an owner
//! SIGKILLed at any moment leaves nothing behind:
//!
//! - A cgroup is registered by its path before its `mkdir` (the guard's
//!   teardown skips a path that was never made), and the guard itself is
//!   started before the first one.
//! - A process group's registration is booked before its leader is
//!   spawned, and sent by the leader itself: the vfork-style child, once it
//!   leads its process group and before it `exec`s, opens a pidfd for
//!   itself and sends it ([`LeaderRegistration`]). The leader holds a copy
//!   of the owner's end of the socket until its `exec`, so the guard can't
//!   see the owner's death before that message. Where the leader can't send
//!   it (a forked leader, for `pre_exec` hooks, shares no memory to report
//!   the outcome in; a full socket), the owner sends it right after the
//!   spawn, leaving an owner killed in between that one group unguarded,
//!   as does the portable backend (`posix_spawn` runs no code of ours in
//!   the child).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::linux::{spawn, spawn_steps};

mod exec;
mod owner;
mod process;
mod start;
mod sweep;
#[cfg(test)]
mod tests;
mod walk;

pub(crate) use owner::LeaderRegistration;
use start::{hung_up, recv_reply, remove_msg, wait_writable};
pub(crate) use sweep::sweep_stale_once;

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

pub use super::guard_status::GuardStatus;

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
    started: Started,
    /// What is registered; held only around non-blocking sends.
    state: Mutex<State>,
    /// One query (a message and its reply) at a time.
    query_lock: Mutex<()>,
}

/// How the guard was started.
enum Started {
    /// This program's executable, run again as the guard (`exec.rs`).
    Exec,
    /// A fork of the owner, and why the executable was not used.
    Fork(String),
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
            let r = start::start();
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
            if g.owner == crate::sys::pid::current() {
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
    let Some(me) = rustix::process::Pid::from_raw(crate::sys::pid::current() as i32) else {
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
                started: match &g.started {
                    Started::Exec => "this program's executable, run again as the guard (no copy of this process's memory)".into(),
                    Started::Fork(why) => format!("a fork of this process (a copy-on-write copy of its memory; not run from its executable: {why})"),
                },
            }
        }
    }
}
