//! The guard process. Everything here runs after the fork: raw,
//! async-signal-safe calls on memory prepared before it (see the rules in
//! the module docs of `guard`): no allocation, no locks, no Rust I/O, no
//! panics.
//!
//! Raw: every libc call in this file stays raw on purpose: the async-signal-safe guard loop.

use std::mem::MaybeUninit;
use std::os::fd::RawFd;

use super::session::{may_sweep, sweep, sweep_deadline};
use super::walk::{for_each_dir, kill_listed, pread_all, remove_tree};
use super::wire::*;
use crate::sys::linux::spawn;

/// The guard's whole life.
///
/// # Safety
/// Only in the freshly forked guard; `plan`'s pointers are valid (the
/// guard's copy of the owner's memory) and nothing else uses them.
pub(super) unsafe fn guard_main(plan: &Plan) -> ! {
    // Keep only our socket and bell: no pipe, cgroup or pidfd of the
    // owner's stays open here (stdio becomes /dev/null).
    close_all_but_two(plan.sock, if plan.bell < 0 { plan.sock } else { plan.bell });
    // A forked guard's session until now is its owner's, never swept.
    let started_in = libc::getsid(0);
    detach();
    // Room for one pidfd per slot.
    let mut lim = MaybeUninit::<libc::rlimit>::zeroed();
    if libc::getrlimit(libc::RLIMIT_NOFILE, lim.as_mut_ptr()) == 0 {
        let mut lim = lim.assume_init();
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    spawn::reset_signal_dispositions();
    // Ignoring also discards any of them pending (sent while they were
    // blocked: before the fork or the exec's start, see `exec.rs`).
    for sig in IGNORED_SIGNALS {
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
    let mut bell = plan.bell;
    // Whether the last read found messages: then the socket is left
    // unwatched for the quiet period, so that messages sent meanwhile
    // wake nobody, and read at its end (or when the bell rings, or the
    // owner's end closes); else the guard waits for the next message.
    let mut busy = false;
    loop {
        // POLLHUP is reported whatever was asked for, while a message
        // arriving wakes only a poller that asked for POLLIN (the kernel's
        // wake-up carries the event, and poll's waiters filter on it).
        let quiet = busy && plan.quiet_ms > 0;
        let mut fds = [
            libc::pollfd {
                fd: plan.sock,
                events: if quiet { 0 } else { libc::POLLIN },
                revents: 0,
            },
            libc::pollfd {
                fd: bell,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let watched = if bell < 0 { 1 } else { 2 };
        let timeout = if quiet { plan.quiet_ms } else { -1 };
        if libc::poll(fds.as_mut_ptr(), watched, timeout) < 0 {
            match *libc::__errno_location() {
                libc::EINTR | libc::ENOMEM | libc::EAGAIN => continue,
                _ => break,
            }
        }
        let mut rung = false;
        if bell >= 0 {
            let ev = fds[1].revents;
            if ev & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                // Not a usable bell: the quiet period alone bounds a wait.
                bell = -1;
            } else if ev & libc::POLLIN != 0 {
                let mut rings = 0u64;
                libc::read(bell, (&mut rings as *mut u64).cast(), size_of::<u64>());
                rung = true;
            }
        }
        // Every message queued, in order; at the end of file (the owner is
        // gone) every one sent before it has been read, so a group
        // registered just before the owner died is in the table.
        // (A ring that finds nothing, its messages read already, changes
        // nothing: the quiet period goes on.)
        match drain(plan.sock, table, &mut lost) {
            Some(read) => busy = read > 0 || (rung && busy),
            None => break,
        }
    }
    teardown(plan, table, buf, started_in);
    libc::_exit(0)
}

/// Reads and acts on every message queued in `sock`, without blocking:
/// how many it read, or `None` once the owner's end is closed (end of
/// file) or the socket fails.
///
/// # Safety
/// Guard only.
unsafe fn drain(sock: RawFd, table: &mut [Slot], lost: &mut u32) -> Option<usize> {
    let mut read = 0;
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
        let n = libc::recvmsg(sock, &mut mh, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT);
        if n == 0 {
            return None; // every holder of the owner's end is gone
        }
        if n < 0 {
            match *libc::__errno_location() {
                // The owner's end closed with replies of ours unread in it
                // (a query that gave up waiting): the kernel reports that
                // once, before the messages still queued here, which must
                // all be read (registrations among them).
                libc::EINTR | libc::ECONNRESET => continue,
                libc::EAGAIN => return Some(read),
                _ => return None,
            }
        }
        read += 1;
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
        act(sock, table, lost, &msg, passed);
    }
}

/// Acts on one message (`passed`: the descriptor that came with it, or -1).
///
/// # Safety
/// Guard only.
unsafe fn act(sock: RawFd, table: &mut [Slot], lost: &mut u32, msg: &Msg, passed: RawFd) {
    match msg.op {
        OP_CGROUP | OP_DIR | OP_PGROUP => {
            if msg.op == OP_PGROUP && passed < 0 {
                *lost = lost.saturating_add(1);
                return;
            }
            let pidfd = if msg.op == OP_PGROUP { passed } else { -1 };
            if table_insert(table, msg, pidfd) {
                if msg.op != OP_PGROUP {
                    close_fd(passed);
                }
            } else {
                *lost = lost.saturating_add(1);
                close_fd(passed);
            }
        }
        OP_REMOVE => {
            close_fd(passed);
            table_remove(table, msg.id, |slot| {
                if slot.op == OP_PGROUP {
                    close_fd(slot.pidfd);
                }
            });
        }
        OP_MADE => {
            close_fd(passed);
            table_made(table, msg.id, msg.start);
        }
        OP_QUERY => {
            close_fd(passed);
            let count = table_count(table);
            reply(
                sock,
                &Reply {
                    kind: REPLY_COUNT,
                    pid: 0,
                    count,
                    lost: *lost,
                },
            );
        }
        _ => close_fd(passed),
    }
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
/// the directories. `started_in`: the session the guard was started in.
///
/// # Safety
/// Guard only.
unsafe fn teardown(plan: &Plan, table: &mut [Slot], buf: &mut [u8], started_in: i32) {
    let deadline = now_ms() + TEARDOWN_BOUND_MS;
    // Only directories the owner made are ended (see `claim.rs`).
    super::claim::settle(table);
    for slot in table.iter() {
        if slot.op == OP_CGROUP {
            kill_cgroup(slot, buf, deadline);
        }
    }
    // Each pty session's sweep has its share of the bound (see
    // `sweep_deadline`).
    let swept = |s: &Slot| s.op == OP_PGROUP && s.flags & FLAG_SESSION != 0;
    let mut sessions = table.iter().filter(|s| swept(s)).count();
    for slot in table.iter() {
        if slot.op == OP_PGROUP {
            let own = sweep_deadline(now_ms(), deadline, sessions);
            sessions -= usize::from(swept(slot));
            kill_pgroup(slot, plan.exact_pgroup, buf, own, started_in);
        }
    }
    for slot in table.iter() {
        if slot.op == OP_CGROUP {
            // `cgroup.kill` misses a process whose main thread has ended
            // while other threads run on (its SIGKILL goes to the ended
            // leader alone): still populated after a second, each member is
            // killed through its pidfd, which reaches the whole process.
            if !wait_empty(slot, deadline.min(now_ms() + 1000)) {
                kill_members(slot, buf, deadline);
                wait_empty(slot, deadline);
            }
            remove_tree(&slot.path);
        }
    }
    // v1 cap directories: their members were in the v2 cgroups, now gone.
    // A nested pkit's own v1 cap directories sit inside them.
    for slot in table.iter() {
        if slot.op == OP_DIR {
            remove_tree(&slot.path);
        }
    }
}

/// SIGKILLs a registered process group through its leader's pidfd, then
/// the leader itself: one that left the group (moved to another process
/// group of its session, maybe calling `setsid` after) runs on outside it,
/// and the pidfd reaches exactly that process, wherever it went (a reaped
/// one answers `ESRCH`). The process group it leads after a `setsid` is
/// the one the first signal reached: numbered by its pid, the very
/// `struct pid` the pidfd pins. (The group first: on a kernel before 6.9
/// the `killpg` by number needs the leader unreaped.)
///
/// A leader started leading a session of its own (a pty: `FLAG_SESSION`)
/// has its session swept before (`session.rs`): a job-control shell's
/// jobs are in process groups of their own there.
///
/// # Safety
/// Guard only.
unsafe fn kill_pgroup(slot: &Slot, exact: bool, buf: &mut [u8], deadline: i64, started_in: i32) {
    let sig = |s: i32, flags: libc::c_uint| {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            slot.pidfd,
            s,
            std::ptr::null::<libc::siginfo_t>(),
            flags,
        )
    };
    if slot.flags & FLAG_SESSION != 0 {
        sweep_session(slot, buf, deadline, started_in);
    }
    if exact {
        sig(libc::SIGKILL, PIDFD_SIGNAL_PROCESS_GROUP);
    } else if sig(0, 0) == 0 {
        // The leader is unreaped, so its pid (the pgid) is still allocated.
        libc::killpg(slot.pgid, libc::SIGKILL);
    }
    sig(libc::SIGKILL, 0);
}

/// Sweeps the session of `slot`'s leader (see `session.rs`), if it is
/// surely ours: either the leader is unreaped (its pidfd answers signal
/// 0), so its number is pinned, and it leads the session of that number;
/// or no process holds the number (the leader was reaped, and the session
/// of that number, if any, is what is left of ours: a stranger's would
/// need a new process given the number, leading a session and gone, all
/// since the owner died; an owner whose children the kernel reaps, which
/// frees the number long before, never sets the flag: see
/// `place_guard::guard_session`). Never the guard's own session nor the one it
/// was started in. The leader is stopped first (through its pidfd), so
/// it starts no new job while its members are killed; it dies after, with
/// its process group. Each member is signalled through a pidfd opened
/// and then checked to be in the session still.
///
/// # Safety
/// Guard only.
unsafe fn sweep_session(slot: &Slot, buf: &mut [u8], deadline: i64, started_in: i32) {
    let sid = slot.pgid;
    let sig = |s: i32| {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            slot.pidfd,
            s,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    let unreaped = sig(0) == 0;
    let held = libc::getsid(sid);
    let ours = if unreaped {
        held == sid
    } else {
        held < 0 && *libc::__errno_location() == libc::ESRCH
    };
    if !ours || !may_sweep(sid, started_in) {
        return;
    }
    if unreaped {
        sig(libc::SIGSTOP);
    }
    sweep(sid, buf, deadline, &mut |pid| {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid, 0u32);
        if fd >= 0 {
            let sent = libc::getsid(pid) == sid
                && libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd as RawFd,
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0u32,
                ) == 0;
            libc::close(fd as RawFd);
            sent
        } else if *libc::__errno_location() == libc::ENOSYS {
            libc::kill(pid, libc::SIGKILL) == 0
        } else if super::walk::no_room(*libc::__errno_location()) {
            // No pidfd (no descriptor or memory left): by number, if still
            // in the session, as the pidfd path checks (rv30 LOW: it was
            // skipped). No start time to compare: the listing kept none.
            libc::getsid(pid) == sid && libc::kill(pid, libc::SIGKILL) == 0
        } else {
            false
        }
    });
}

/// `dir/name` as a NUL-terminated string in `out`; false if it won't fit.
pub(super) fn join(dir: &[u8; PATH_LEN], name: &[u8], out: &mut [u8; PATH_LEN + 32]) -> bool {
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

/// The value of `key` (`populated`, `frozen`) in `cgroup.events` text.
pub(super) fn event_field(text: &[u8], key: &[u8]) -> Option<bool> {
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
    kill_members(slot, buf, deadline);
}

/// Without (or after) `cgroup.kill`: freeze (nobody forks meanwhile),
/// SIGKILL each member of the subtree, thaw (the kills take effect).
/// Repeated only if a list overflowed.
///
/// # Safety
/// Guard only.
unsafe fn kill_members(slot: &Slot, buf: &mut [u8], deadline: i64) {
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
        // The freeze is recursive; the members of every sub-cgroup (a
        // nested pkit's, a container runtime's) are listed only in their
        // own directory's cgroup.procs: walk the whole subtree.
        let mut complete = true;
        let top = libc::open(
            slot.path.as_ptr().cast(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        if top >= 0 {
            for_each_dir(top, 0, &mut |dir| {
                if !kill_listed(dir, buf) {
                    complete = false;
                }
            });
            libc::close(top);
        }
        write_in(&slot.path, b"cgroup.freeze", b"0");
        if complete || now_ms() >= deadline {
            break;
        }
    }
    libc::close(ev);
}

/// Waits (bounded) until the cgroup has no live member; whether it has
/// none (a cgroup that can't be read counts as empty: nothing more to do).
///
/// # Safety
/// Guard only.
unsafe fn wait_empty(slot: &Slot, deadline: i64) -> bool {
    let ev = open_in(&slot.path, b"cgroup.events", libc::O_RDONLY);
    if ev < 0 {
        return true;
    }
    let mut populated = events(ev).0;
    while populated && wait_change(ev, deadline) {
        populated = events(ev).0;
    }
    // The last change may have come as the deadline passed.
    populated = populated && events(ev).0;
    libc::close(ev);
    !populated
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
