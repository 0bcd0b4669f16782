//! What the owner and the guard share: the table and message layouts, the
//! protocol's constants, and the small socket and pidfd helpers both sides
//! use. A leaf: it names nothing else in `guard`.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// Longest path (bytes, NUL included) a slot can hold.
pub(super) const PATH_LEN: usize = 512;
/// Slots in the guard's table; one per cgroup, v1 directory or pgroup.
pub(super) const TABLE_CAP: usize = 4096;
/// The guard's buffer for `cgroup.procs` (freeze-and-kill fallback).
pub(super) const BUF_LEN: usize = 64 * 1024;
/// How long the owner waits for room in the guard's socket before it
/// gives the guard up as stopped or wedged.
pub(super) const SEND_BOUND: std::time::Duration = std::time::Duration::from_secs(2);
/// How long the guard's teardown may wait for cgroups to empty.
pub(super) const TEARDOWN_BOUND_MS: i64 = 10_000;

pub(super) const OP_CGROUP: u32 = 1;
pub(super) const OP_DIR: u32 = 2;
pub(super) const OP_PGROUP: u32 = 3;
pub(super) const OP_REMOVE: u32 = 4;
pub(super) const OP_QUERY: u32 = 5;

/// `Msg::flags` for `OP_CGROUP`: the cgroup has `cgroup.kill`.
pub(super) const FLAG_HAS_KILL: u32 = 1;

pub(super) const REPLY_HELLO: u32 = 1;
pub(super) const REPLY_COUNT: u32 = 2;

// Signalling through pidfds is the spawner's too: one definition of each.
pub(super) use crate::sys::linux::signal::{
    exact_pgroup_signals as probe_exact_pgroup, pidfd_signal_raw as pidfd_send,
    PIDFD_SIGNAL_PROCESS_GROUP,
};

/// One message from the owner to the guard.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct Msg {
    pub(super) op: u32,
    pub(super) flags: u32,
    /// The registration (group) this message is about.
    pub(super) id: u64,
    /// The process group id, for `OP_PGROUP`.
    pub(super) pgid: i32,
    pub(super) _pad: u32,
    /// NUL-terminated directory path, for `OP_CGROUP` and `OP_DIR`.
    pub(super) path: [u8; PATH_LEN],
}

impl Msg {
    pub(super) const EMPTY: Msg = Msg {
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
pub(super) struct Reply {
    pub(super) kind: u32,
    pub(super) pid: i32,
    /// Slots in use.
    pub(super) count: u32,
    /// Registrations the guard could not take (no slot, no fd).
    pub(super) lost: u32,
}

/// One registered item in the guard's table. All zeroes is a free slot
/// (`op == 0`), so the table is allocated zeroed and costs no memory until
/// slots are used.
#[derive(Clone, Copy)]
pub(super) struct Slot {
    pub(super) op: u32,
    pub(super) flags: u32,
    pub(super) id: u64,
    pub(super) pgid: i32,
    pub(super) pidfd: RawFd,
    pub(super) path: [u8; PATH_LEN],
}

impl Slot {
    pub(super) const FREE: Slot = Slot {
        op: 0,
        flags: 0,
        id: 0,
        pgid: 0,
        pidfd: 0, // meaningful only for OP_PGROUP
        path: [0; PATH_LEN],
    };
}

/// What the guard needs, prepared before the fork.
pub(super) struct Plan {
    pub(super) sock: RawFd,
    pub(super) table: *mut Slot,
    pub(super) cap: usize,
    pub(super) buf: *mut u8,
    pub(super) buf_len: usize,
    pub(super) exact_pgroup: bool,
}

/// A message that unregisters `id`.
pub(super) fn remove_msg(id: u64) -> Msg {
    let mut m = Msg::EMPTY;
    m.op = OP_REMOVE;
    m.id = id;
    m
}

/// Waits until `sock` has room to send, or `deadline`; false on the
/// deadline (or an error).
pub(super) fn wait_writable(sock: BorrowedFd<'_>, deadline: std::time::Instant) -> bool {
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
pub(super) fn hung_up(sock: BorrowedFd<'_>) -> bool {
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
pub(super) fn recv_reply(sock: BorrowedFd<'_>, timeout_ms: i32) -> Option<Reply> {
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
