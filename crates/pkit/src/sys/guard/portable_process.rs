//! The portable guard's process (see `portable.rs`): the executable's
//! pre-`main` entry that forks it off a fresh image, and its loop. From the
//! fork on only raw, async-signal-safe calls on memory prepared before it:
//! no allocation, no locks, no Rust I/O, no panics.
//!
//! Raw: every libc call in this file stays raw on purpose: before `main`, then the
//! async-signal-safe guard loop after the fork.

use std::ffi::CStr;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use super::session::{may_sweep, now_ms, sweep_deadline, sweep_mapped, Mapped};
use super::start_time::birth;
use super::wire::{
    close_all_but, detach, parse_start, socket_of_kind, split_quiet, table_count, table_insert,
    table_remove, Msg, Plan, Reply, Slot, IGNORED_SIGNALS, OP_PGROUP, OP_QUERY, OP_REMOVE,
    REPLY_COUNT, REPLY_HELLO, TEARDOWN_BOUND_MS,
};

/// Set in the launched image's environment: `<fd>,0,<cap>,<quiet>` (the
/// socket's descriptor, 0, the table's slots, the quiet period in
/// milliseconds; the Linux guard's format, without the bell).
pub(super) const ENV: &str = "PKIT_PORTABLE_GUARD";
/// The descriptor the guard's socket gets in the launched image.
pub(super) const GUARD_FD: RawFd = 3;

/// Whether [`portable_entry`] ran in this process.
static ENTRY_RAN: AtomicBool = AtomicBool::new(false);

/// The executable's pre-`main` entry (see the module docs).
#[used]
#[cfg_attr(
    target_os = "macos",
    link_section = "__DATA,__mod_init_func,mod_init_funcs"
)]
#[cfg_attr(not(target_os = "macos"), link_section = ".init_array")]
static PORTABLE_ENTRY: extern "C" fn() = portable_entry;

/// Runs before `main` in every process of an executable linked with pkit:
/// notes that it ran and, only in an image started as the guard's
/// launcher, forks the guard and exits. Elsewhere it costs one `getenv`.
extern "C" fn portable_entry() {
    ENTRY_RAN.store(true, Ordering::Relaxed);
    // SAFETY: reads this process's environment (set up before any
    // constructor runs; `main` has not started); acts only when asked.
    unsafe { launch_if_asked() }
}

/// # Safety
/// Only from [`portable_entry`], before `main`.
unsafe fn launch_if_asked() {
    let value = libc::getenv(c"PKIT_PORTABLE_GUARD".as_ptr());
    if value.is_null() {
        return;
    }
    let Some((head, quiet_ms)) = split_quiet(CStr::from_ptr(value).to_bytes()) else {
        return;
    };
    let Some((sock, false, cap)) = parse_start(head) else {
        return;
    };
    // Only on a socket of the kind the owner makes.
    if !socket_of_kind(sock, libc::SOCK_STREAM) {
        return;
    }
    let Some(table) = map_table(cap) else {
        // No greeting: the owner falls back to a fork.
        libc::_exit(1);
    };
    let plan = Plan {
        sock,
        bell: -1,
        table,
        cap,
        buf: std::ptr::null_mut(),
        buf_len: 0,
        exact_pgroup: false,
        quiet_ms,
    };
    match libc::fork() {
        0 => guard_main(&plan),
        pid => libc::_exit(if pid > 0 { 0 } else { 1 }),
    }
}

/// A zeroed (all slots free) anonymous mapping for `cap` slots; untouched
/// pages cost no memory.
///
/// # Safety
/// Async-signal-safe; the mapping is the caller's.
pub(super) unsafe fn map_table(cap: usize) -> Option<*mut Slot> {
    let p = libc::mmap(
        std::ptr::null_mut(),
        cap * size_of::<Slot>(),
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANON,
        -1,
        0,
    );
    (p != libc::MAP_FAILED).then_some(p.cast())
}

/// The guard's whole life: raw, async-signal-safe calls only (a forked
/// guard comes from a process that may have many threads).
///
/// # Safety
/// Only in the freshly forked guard; `plan.table` points at `plan.cap`
/// zeroed slots that nothing else uses.
pub(super) unsafe fn guard_main(plan: &Plan) -> ! {
    // Keep only the socket (a forked guard holds copies of all the owner's
    // descriptors), stdio on /dev/null.
    close_all_but(plan.sock);
    // The session of the guard's launcher until now (the owner's), never
    // swept.
    let started_in = libc::getsid(0);
    detach();
    // Every signal at its default (the owner's handlers are not ours), but
    // the ones a terminal or a careless `kill` sends: ignored (see
    // `IGNORED_SIGNALS`; any of them pending is discarded).
    for sig in 1..128 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let mut act = MaybeUninit::<libc::sigaction>::zeroed();
        act.assume_init_mut().sa_sigaction = if IGNORED_SIGNALS.contains(&sig) {
            libc::SIG_IGN
        } else {
            libc::SIG_DFL
        };
        // Numbers that are no signal here fail with EINVAL: ignored.
        libc::sigaction(sig, act.as_ptr(), std::ptr::null_mut());
    }
    let mut none = MaybeUninit::<libc::sigset_t>::uninit();
    libc::sigemptyset(none.as_mut_ptr());
    libc::pthread_sigmask(libc::SIG_SETMASK, none.as_ptr(), std::ptr::null_mut());

    reply(
        plan.sock,
        &Reply {
            kind: REPLY_HELLO,
            pid: libc::getpid(),
            count: 0,
            lost: 0,
        },
    );
    let table = std::slice::from_raw_parts_mut(plan.table, plan.cap);
    let mut lost: u32 = 0;
    while let Some(msg) = read_msg(plan.sock) {
        match msg.op {
            // No slot left: counted as lost.
            OP_PGROUP => lost = lost.saturating_add(u32::from(!table_insert(table, &msg, -1))),
            OP_REMOVE => table_remove(table, msg.id, |_| {}),
            OP_QUERY => reply(
                plan.sock,
                &Reply {
                    kind: REPLY_COUNT,
                    pid: 0,
                    count: table_count(table),
                    lost,
                },
            ),
            // Cgroups are Linux's: never sent here.
            _ => {}
        }
        if plan.quiet_ms > 0 && !readable(plan.sock) {
            quiet(plan.sock, plan.quiet_ms);
        }
    }
    // End of file: every holder of the owner's end is gone.
    let deadline = now_ms() + TEARDOWN_BOUND_MS;
    // Mapped only if a pty session is swept.
    let mut buf = Mapped::none();
    // Each pty session's sweep has its share of the bound (see
    // `sweep_deadline`).
    let swept = |s: &Slot| s.op == OP_PGROUP && s.flags as i32 == s.pgid;
    let mut sessions = table.iter().filter(|s| swept(s)).count();
    for slot in table.iter() {
        if slot.op == OP_PGROUP {
            let own = sweep_deadline(now_ms(), deadline, sessions);
            sessions -= usize::from(swept(slot));
            kill_pgroup(slot, &mut buf, own, started_in);
        }
    }
    drop(buf);
    libc::_exit(0)
}

/// Whether a message (or the end of file) waits to be read on `sock`.
///
/// # Safety
/// Guard only.
unsafe fn readable(sock: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: sock,
        events: libc::POLLIN,
        revents: 0,
    };
    libc::poll(&mut pfd, 1, 0) > 0
}

/// The quiet period once the guard has read all that was queued (see
/// `QUIET_MS`): `sock` is left unwatched for `ms` milliseconds, so that the
/// messages sent meanwhile wake nobody, and read again after it. A `poll`
/// asking for no event: on Linux it returns early when the owner's end
/// closes (a hang-up is reported whatever was asked for); elsewhere it may
/// only sleep out the period, or return at once. Either way the next read
/// sees every message and the end of file: only how soon it looks depends
/// on it.
///
/// # Safety
/// Guard only.
unsafe fn quiet(sock: RawFd, ms: i32) {
    let mut pfd = libc::pollfd {
        fd: sock,
        events: 0,
        revents: 0,
    };
    libc::poll(&mut pfd, 1, ms);
}

/// Reads one whole message; `None` at end of file (or an error).
///
/// # Safety
/// Guard only.
unsafe fn read_msg(sock: RawFd) -> Option<Msg> {
    let mut msg = Msg::EMPTY;
    let bytes = (&mut msg as *mut Msg).cast::<u8>();
    let mut got = 0;
    while got < size_of::<Msg>() {
        let n = libc::read(sock, bytes.add(got).cast(), size_of::<Msg>() - got);
        if n > 0 {
            got += n as usize;
        } else if n < 0 && errno() == libc::EINTR {
            continue;
        } else {
            return None;
        }
    }
    Some(msg)
}

/// # Safety
/// Guard only.
unsafe fn reply(sock: RawFd, r: &Reply) {
    // SIGPIPE is ignored here: a gone owner is an EPIPE.
    libc::send(sock, (r as *const Reply).cast(), size_of::<Reply>(), 0);
}

/// SIGKILLs a registered process group by number, unless [`spares`] says
/// the number now names a stranger: see the module docs of `portable.rs`.
/// Then the leader itself, wherever it went ([`kill_leader`]). A leader
/// registered leading its own session (a pty: the session is the number)
/// has its session swept first ([`sweep_session`]).
///
/// # Safety
/// Guard only.
unsafe fn kill_pgroup(slot: &Slot, buf: &mut Mapped, deadline: i64, started_in: i32) {
    if !spares(slot) {
        if slot.flags as i32 == slot.pgid {
            sweep_session(slot, buf, deadline, started_in);
        }
        libc::killpg(slot.pgid, libc::SIGKILL);
    }
    kill_leader(slot);
}

/// Sweeps the session of `slot`'s leader (see `session.rs`), if it is
/// surely ours: the process holding the number is our leader (its start
/// time, known, is the registered one), or no process holds it (the
/// leader was reaped: the session of that number, if any, is what is left
/// of ours, as with the process group, see `portable.rs`). A number held
/// by anyone else (another start time, or one not known) is not swept:
/// the session may be a stranger's. Never the guard's own session nor its
/// launcher's (the owner's). Our leader is stopped first, so it starts no
/// new job while its session's members are killed by number; it dies
/// after, with its process group.
///
/// # Safety
/// Guard only.
unsafe fn sweep_session(slot: &Slot, buf: &mut Mapped, deadline: i64, started_in: i32) {
    let sid = slot.pgid;
    let held = libc::getsid(sid);
    let leader =
        held == sid && slot.start != 0 && matches!(birth(sid), Some(b) if b.time == slot.start);
    let nobody = held < 0 && errno() == libc::ESRCH;
    if !(leader || nobody) || !may_sweep(sid, started_in) {
        return;
    }
    if leader {
        libc::kill(sid, libc::SIGSTOP);
    }
    sweep_mapped(sid, buf, deadline, &mut |pid| {
        libc::kill(pid, libc::SIGKILL) == 0
    });
}

/// SIGKILLs the registered leader by its number, if the process holding
/// the number has the leader's start time (known: never on a 0), and the
/// process group it leads, if it leads one. A leader that left its process
/// group (moved to another of its session, maybe calling `setsid` after)
/// runs on outside it, and the `killpg` above missed it (the group it left
/// is empty, or after a `setsid` of another session: spared). It is ours
/// whatever its session, and the process group it leads now is numbered
/// by its pid, as the group's was: its members are its own. The start
/// time tells it from a stranger given the number (see `portable.rs`);
/// one that merely joined another's process group leads none, and that
/// group is left alone. Async-signal-safe.
///
/// # Safety
/// Guard only.
unsafe fn kill_leader(slot: &Slot) {
    if slot.start == 0 || !matches!(birth(slot.pgid), Some(b) if b.time == slot.start) {
        return;
    }
    // One signal: the group it leads includes it.
    if libc::getpgid(slot.pgid) == slot.pgid {
        libc::killpg(slot.pgid, libc::SIGKILL);
    } else {
        libc::kill(slot.pgid, libc::SIGKILL);
    }
}

/// Whether the guard leaves registered group `slot` alone because its
/// number now names a process that is not our leader: one in another
/// session than the registered one (`flags`), or started at another time
/// than the registered leader (`start`, when known). A number that names
/// no process is never spared: our leader was reaped, and the number names
/// our group while a member lives (no new process can be given it then)
/// and nobody once none does. Nor is our leader's zombie (the same start
/// time; on macOS, where it may not be read, by number). A process that
/// is not our leader can hold the number only once our group is empty, so
/// sparing it loses nothing. Async-signal-safe, no allocation.
pub(super) fn spares(slot: &Slot) -> bool {
    // SAFETY: getsid(2) only reads the process table.
    let sid = unsafe { libc::getsid(slot.pgid) };
    // (A failure, mostly no such process, is left to the start time.)
    if sid >= 0 && sid as u32 != slot.flags {
        return true;
    }
    slot.start != 0 && matches!(birth(slot.pgid), Some(b) if b.time != slot.start)
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Whether [`portable_entry`] ran in this process (so the executable
/// carries it).
pub(super) fn entry_ran() -> bool {
    ENTRY_RAN.load(Ordering::Relaxed)
}

/// Where [`portable_entry`] is (to ask which object holds it).
pub(super) fn entry_address() -> usize {
    portable_entry as *const () as usize
}
