//! What the owner and the guard share: the table and message layouts, the
//! protocol's constants, and the small socket and pidfd helpers both sides
//! use. A leaf: it names nothing else in `guard`.

// The cgroup half (and the fork's buffer) is Linux's; the portable guard
// shares the rest.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// How the portable guard kills process groups ([`GuardStatus::process_groups`](crate::GuardStatus::process_groups)).
pub(super) const PORTABLE_METHOD: &str = "the portable guard: killpg by number, skipped for a number that now names a process of another session or of another start time than the leader's (no pidfds: exact while any member lives; see the docs for what is left)";
/// The same, before the guard is started.
pub(super) const PORTABLE_WOULD: &str = "would be killed by the portable guard: killpg by number, skipped for a number that now names a process of another session or of another start time than the leader's";

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
/// The owner rings the Linux guard's bell at least every this many
/// messages (see `process.rs`): well below what the socket holds (about
/// 160 of them at the default `wmem_default`), so that a burst faster than
/// the guard's [`QUIET_MS`] never finds it full and waits.
pub(super) const BELL_EVERY: usize = 64;
/// How long a guard that has just read messages leaves its socket
/// unwatched (but for the owner's end closing and, on Linux, the bell)
/// before it reads again. Messages sent meanwhile wake nobody (a wake-up of
/// the guard costs a one-shot run tens of microseconds), yet none waits
/// longer than this unread: the descriptors an idle owner's registrations
/// pass stay in flight, where the kernel counts them per user against
/// `RLIMIT_NOFILE` (`ETOOMANYREFS`), only this long. A busy owner wakes its
/// guard at most twice per period; a guard whose last read found nothing
/// waits for the next message.
pub(super) const QUIET_MS: i32 = 20;
/// Overrides [`QUIET_MS`] for the guards this process starts (whole
/// milliseconds, at most 9 digits; 0: read every message as it arrives).
/// For tests and measurements: a long period leaves registrations unread
/// and their descriptors in flight that long. The portable guard, which
/// has no bell, takes at most 1 s (see [`portable_quiet_ms`]).
pub(super) const QUIET_ENV_VAR: &str = "PKIT_GUARD_QUIET_MS";

/// The quiet period for a guard started now: [`QUIET_ENV_VAR`] if set to
/// a number (else a warning), else [`QUIET_MS`].
pub(super) fn quiet_ms() -> i32 {
    let Some(v) = std::env::var_os(QUIET_ENV_VAR) else {
        return QUIET_MS;
    };
    match number(v.as_encoded_bytes()) {
        Some(ms) => ms as i32,
        None => {
            tracing::warn!(target: "pkit", "{QUIET_ENV_VAR} is not a number of milliseconds (at most 9 digits); ignored");
            QUIET_MS
        }
    }
}

/// The quiet period for a portable guard started now: [`quiet_ms`], but
/// at most 1 s. That guard has no bell, so a status query waits for the
/// end of its quiet period: longer than the owner's wait for an answer,
/// and the owner would give a working guard up.
pub(super) fn portable_quiet_ms() -> i32 {
    quiet_ms().min(1000)
}

/// A decimal number of 1 to 9 digits, strictly.
fn number(text: &[u8]) -> Option<usize> {
    if text.is_empty() || text.len() > 9 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0, |n, &d| n * 10 + usize::from(d - b'0')))
}

/// Splits a guard's start variable's last field, the quiet period in
/// milliseconds (`<rest>,<quiet>`), off the rest, strictly.
pub(super) fn split_quiet(text: &[u8]) -> Option<(&[u8], i32)> {
    let comma = text.iter().rposition(|&b| b == b',')?;
    let ms = number(&text[comma + 1..])?;
    Some((&text[..comma], ms as i32))
}

pub(super) const OP_CGROUP: u32 = 1;
pub(super) const OP_DIR: u32 = 2;
pub(super) const OP_PGROUP: u32 = 3;
pub(super) const OP_REMOVE: u32 = 4;
pub(super) const OP_QUERY: u32 = 5;
/// The Linux guard: the owner made the directory of an `OP_CGROUP`
/// registration (sent after its `mkdir`, before any process is put in
/// it); `start` carries its inode number (see `claim.rs`).
pub(super) const OP_MADE: u32 = 6;

/// `Msg::flags` for `OP_CGROUP`: the cgroup has `cgroup.kill`.
pub(super) const FLAG_HAS_KILL: u32 = 1;
/// `Msg::flags` for the Linux guard's `OP_PGROUP`: the leader was started
/// leading a session of its own (a pty), numbered as the process group;
/// its session's members are swept too (see `session.rs`). (The portable
/// guard's `flags` is the session id itself.)
pub(super) const FLAG_SESSION: u32 = 2;
/// `Msg::flags` and `Slot::flags` for the Linux guard's `OP_CGROUP`: the
/// owner made the directory, whose inode number is in `start` (set by the
/// registration of an existing directory, or by `OP_MADE`).
pub(super) const FLAG_MADE: u32 = 4;

pub(super) const REPLY_HELLO: u32 = 1;
pub(super) const REPLY_COUNT: u32 = 2;

// Signalling through pidfds is the spawner's too: one definition of each.
#[cfg(target_os = "linux")]
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
    // For the portable guard's `OP_PGROUP`, `flags` holds the owner's
    // session id (see `portable.rs`).
    pub(super) _pad: u32,
    /// For the portable guard's `OP_PGROUP`: the leader's start time as
    /// `start_time::birth` gives it (0: unknown, not compared). For
    /// `OP_MADE`, and `OP_CGROUP` with `FLAG_MADE`: the directory's inode.
    pub(super) start: u64,
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
        start: 0,
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
    /// The leader's start time (the portable guard's `OP_PGROUP`; 0 if
    /// unknown); an `OP_CGROUP`'s inode number once `FLAG_MADE`.
    pub(super) start: u64,
    pub(super) path: [u8; PATH_LEN],
}

impl Slot {
    pub(super) const FREE: Slot = Slot {
        op: 0,
        flags: 0,
        id: 0,
        pgid: 0,
        pidfd: 0, // meaningful only for OP_PGROUP
        start: 0,
        path: [0; PATH_LEN],
    };
}

/// What the guard needs, prepared before the fork.
pub(super) struct Plan {
    pub(super) sock: RawFd,
    /// The bell (an eventfd the owner writes to when the guard should read
    /// its messages at once; -1: none).
    pub(super) bell: RawFd,
    pub(super) table: *mut Slot,
    pub(super) cap: usize,
    pub(super) buf: *mut u8,
    pub(super) buf_len: usize,
    pub(super) exact_pgroup: bool,
    /// [`QUIET_MS`], or what [`QUIET_ENV_VAR`] set.
    pub(super) quiet_ms: i32,
}

/// The flags of every send to the guard: never blocking, and a dead peer
/// an `EPIPE`, not a SIGPIPE (macOS has no `MSG_NOSIGNAL`: its sockets are
/// made with `SO_NOSIGPIPE` instead, see `portable.rs`).
#[cfg(not(target_os = "macos"))]
pub(super) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
#[cfg(target_os = "macos")]
pub(super) const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT;

/// Whether the guard's end of `sock` is closed: a hang-up, or end of file
/// waiting to be read (how a closed stream peer shows on some systems). A
/// pending reply is left unread.
pub(super) fn peer_closed(sock: BorrowedFd<'_>) -> bool {
    if hung_up(sock) {
        return true;
    }
    if !poll_one(sock, PollFlags::IN, 0).is_ok_and(|ev| ev.contains(PollFlags::IN)) {
        return false;
    }
    let mut byte = [0u8; 1];
    // Peeks at most one byte, consuming nothing: 0 is the end of file.
    use rustix::net::{recv, RecvFlags};
    matches!(
        recv(sock, &mut byte[..], RecvFlags::PEEK | RecvFlags::DONTWAIT),
        Ok((0, _))
    )
}

/// `poll(2)` on one descriptor for `events`, waiting up to `timeout_ms`:
/// the events it has (none on the timeout).
fn poll_one(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    timeout_ms: i32,
) -> rustix::io::Result<PollFlags> {
    let ms = i64::from(timeout_ms.max(0));
    let timeout = Timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    };
    let mut fds = [PollFd::from_borrowed_fd(fd, events)];
    match poll(&mut fds, Some(&timeout))? {
        0 => Ok(PollFlags::empty()),
        _ => Ok(fds[0].revents()),
    }
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
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // Readable-for-error states (POLLHUP, POLLERR) end the wait too: the
        // next send reports them.
        match poll_one(sock, PollFlags::OUT, ms) {
            Err(rustix::io::Errno::INTR) => continue,
            ready => return ready.is_ok_and(|ev| !ev.is_empty()),
        }
    }
}

/// Whether the peer of `sock` has closed its end.
pub(super) fn hung_up(sock: BorrowedFd<'_>) -> bool {
    poll_one(sock, PollFlags::empty(), 0)
        .is_ok_and(|ev| ev.intersects(PollFlags::HUP | PollFlags::ERR))
}

/// Waits up to `timeout_ms` for one reply.
pub(super) fn recv_reply(sock: BorrowedFd<'_>, timeout_ms: i32) -> Option<Reply> {
    loop {
        match poll_one(sock, PollFlags::IN, timeout_ms) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(ev) if ev.contains(PollFlags::IN) => break,
            _ => return None,
        }
    }
    let mut reply = Reply::default();
    // Raw: received straight into the C struct (rustix's recv takes a byte buffer, which would
    // need the same unsafe view).
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

/// Parses the guard's start variable, `<fd>,<exact>,<cap>` (the socket's
/// descriptor, 1 if process groups are signalled exactly, the table's
/// slots), strictly.
pub(super) fn parse_start(text: &[u8]) -> Option<(RawFd, bool, usize)> {
    let mut fields = text.split(|&b| b == b',');
    let mut next = || number(fields.next()?);
    let fd = next()? as RawFd;
    let exact = next()?;
    let cap = next()?;
    if fields.next().is_some() || fd < 3 || exact > 1 || cap == 0 || cap > TABLE_CAP {
        return None;
    }
    Some((fd, exact == 1, cap))
}

/// Parses the Linux guard's start variable, `<fd>,<exact>,<cap>,<bell>`:
/// [`parse_start`]'s fields and the bell's descriptor, strictly.
pub(super) fn parse_start_bell(text: &[u8]) -> Option<(RawFd, bool, usize, RawFd)> {
    let comma = text.iter().rposition(|&b| b == b',')?;
    let (head, bell) = (&text[..comma], &text[comma + 1..]);
    let (sock, exact, cap) = parse_start(head)?;
    let bell = number(bell)? as RawFd;
    (bell >= 3 && bell != sock).then_some((sock, exact, cap, bell))
}

/// Whether `sock` is a socket of type `kind` (the pre-`main` entries'
/// check that the start variable names a socket pkit made, not some
/// descriptor an unrelated program happened to inherit).
///
/// # Safety
/// Async-signal-safe (one `getsockopt`); before `main` or after a fork.
pub(super) unsafe fn socket_of_kind(sock: RawFd, kind: libc::c_int) -> bool {
    // Raw: before `main` or in the forked guard: async-signal-safe only (rustix's socket_type wants
    // a BorrowedFd of an fd not yet known to be open).
    let mut got: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    libc::getsockopt(
        sock,
        libc::SOL_SOCKET,
        libc::SO_TYPE,
        (&mut got as *mut libc::c_int).cast(),
        &mut len,
    ) == 0
        && got == kind
}

/// The signals a guard ignores: a terminal's (`^C`, `^\`, `^Z`, a
/// background read or write, a hangup), SIGTERM (a careless `kill`) and
/// SIGPIPE (a gone owner is an `EPIPE`). The stop signals' default action
/// would stop the guard (the kernel discards them for a process group with
/// no parent in its session, which a guard in its own session is, but an
/// ignored signal never stops it anywhere); SIGQUIT's would kill it while
/// its owner lives. Only SIGKILL and SIGSTOP reach it (neither can be
/// ignored; a stopped guard is given up on, see `owner.rs`).
pub(super) const IGNORED_SIGNALS: [libc::c_int; 8] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGPIPE,
    libc::SIGQUIT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Closes every descriptor but `keep` (a forked guard holds copies of all
/// the owner's): `close_range` on Linux, `closefrom` on the BSDs, and
/// elsewhere (and on a Linux before 5.9) one `close` per number up to the
/// real descriptor limit (`RLIMIT_NOFILE`'s soft limit, which on Linux
/// can't exceed `fs.nr_open`; on macOS `getdtablesize`, that limit capped
/// at `kern.maxfilesperproc`): no descriptor above it can be open.
///
/// # Safety
/// Async-signal-safe calls only; only in a freshly forked guard.
pub(super) unsafe fn close_all_but(keep: RawFd) {
    close_all_but_two(keep, keep)
}

/// [`close_all_but`], keeping two descriptors (the Linux guard's socket
/// and bell; `a == b` keeps one).
///
/// # Safety
/// As [`close_all_but`].
pub(super) unsafe fn close_all_but_two(a: RawFd, b: RawFd) {
    // Raw: in the freshly forked guard: async-signal-safe calls only (the
    // guard loop's rules, see `process.rs`), on numbers not known to be open
    // (rustix's close takes an owned descriptor); rustix has no closefrom nor
    // getdtablesize.
    let (keep, high) = (a.min(b), a.max(b));
    for fd in 0..keep {
        libc::close(fd);
    }
    if high > keep + 1 {
        #[cfg(target_os = "linux")]
        let done = libc::syscall(
            libc::SYS_close_range,
            (keep + 1) as libc::c_uint,
            (high - 1) as libc::c_uint,
            0u32,
        ) == 0;
        #[cfg(not(target_os = "linux"))]
        let done = false;
        if !done {
            for fd in keep + 1..high {
                libc::close(fd);
            }
        }
    }
    let from = high + 1;
    #[cfg(target_os = "linux")]
    if libc::syscall(libc::SYS_close_range, from as libc::c_uint, u32::MAX, 0u32) == 0 {
        return;
    }
    #[cfg(target_os = "freebsd")]
    {
        libc::closefrom(from);
        return;
    }
    // A system call on OpenBSD and DragonFly (closefrom(2)), fcntl's
    // F_CLOSEM on NetBSD (closefrom(3)); these report failure.
    #[cfg(any(target_os = "netbsd", target_os = "openbsd", target_os = "dragonfly"))]
    if libc::closefrom(from) == 0 {
        return;
    }
    #[allow(unreachable_code)]
    {
        #[cfg(target_os = "macos")]
        let top = libc::getdtablesize();
        #[cfg(not(target_os = "macos"))]
        let top = {
            let mut lim = std::mem::MaybeUninit::<libc::rlimit>::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, lim.as_mut_ptr()) == 0 {
                let cur = lim.assume_init().rlim_cur;
                // Unlimited (where allowed): the largest descriptor number.
                if cur == libc::RLIM_INFINITY || cur > libc::c_int::MAX as libc::rlim_t {
                    libc::c_int::MAX
                } else {
                    cur as libc::c_int
                }
            } else {
                65_536
            }
        };
        for fd in from..top {
            libc::close(fd);
        }
    }
}

/// The guard's detachment, once it has closed every descriptor but its
/// socket: stdio on `/dev/null`, a session of its own (a fork is never a
/// process-group leader, so `setsid` works: out of reach of the owner's
/// terminal), `/` as its directory, and on Linux the name `pkit-guard`.
///
/// # Safety
/// Async-signal-safe calls only; only in the freshly forked guard.
pub(super) unsafe fn detach() {
    // Raw: in the freshly forked guard: async-signal-safe calls only (the guard loop's rules, see
    // `process.rs`).
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
    #[cfg(target_os = "linux")]
    libc::prctl(
        libc::PR_SET_NAME,
        c"pkit-guard".as_ptr() as libc::c_ulong,
        0,
        0,
        0,
    );
}

/// The guard's table: takes `msg` (with `pidfd`, for `OP_PGROUP` on
/// Linux; -1 elsewhere) into a free slot; false if there is none.
/// Async-signal-safe.
pub(super) fn table_insert(table: &mut [Slot], msg: &Msg, pidfd: RawFd) -> bool {
    let Some(slot) = table.iter_mut().find(|s| s.op == 0) else {
        return false;
    };
    slot.op = msg.op;
    slot.flags = msg.flags;
    slot.id = msg.id;
    slot.pgid = msg.pgid;
    slot.pidfd = pidfd;
    slot.start = msg.start;
    slot.path = msg.path;
    if let Some(last) = slot.path.last_mut() {
        *last = 0;
    }
    true
}

/// The guard's table: frees every slot of registration `id`, handing each
/// to `release` first (to close its pidfd). Async-signal-safe.
pub(super) fn table_remove(table: &mut [Slot], id: u64, mut release: impl FnMut(&Slot)) {
    for slot in table.iter_mut() {
        if slot.op != 0 && slot.id == id {
            release(slot);
            *slot = Slot::FREE;
        }
    }
}

/// The guard's table: notes that the directory of registration `id`'s
/// `OP_CGROUP` slot was made, with inode number `ino`. Async-signal-safe.
pub(super) fn table_made(table: &mut [Slot], id: u64, ino: u64) {
    for slot in table.iter_mut() {
        if slot.op == OP_CGROUP && slot.id == id {
            slot.flags |= FLAG_MADE;
            slot.start = ino;
        }
    }
}

/// The guard's table: slots in use.
pub(super) fn table_count(table: &[Slot]) -> u32 {
    table.iter().filter(|s| s.op != 0).count() as u32
}
