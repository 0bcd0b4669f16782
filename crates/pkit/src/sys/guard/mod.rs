//! The owner-death guard: one small process per owner that kills the
//! owner's groups when the owner dies by any means, SIGKILL included.
//!
//! There are two. What follows describes Linux's, for cgroups and for
//! process groups held through pidfds. The portable one (`portable.rs`,
//! process groups by number) is the only one on macOS and the BSDs, and on
//! Linux serves the groups of the portable backend
//! (`PKIT_MECHANISM=portable`), which is how it is tested. Both share the
//! message layout and table handling (`wire.rs`) and the owner's
//! bookkeeping (`owner.rs`); [`get_for`] gives a group its guard.
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
//!   executable can't be run again or would run with other privileges
//!   than the owner's, see `executable.rs`, or
//!   `PKIT_GUARD_START=fork`): a double
//!   fork, an intermediate process forking the guard and exiting at once.
//!   [`GuardStatus::started`] says which, and why.
//!
//! Groups register over the socket when created (a cgroup's directory, plus
//! any v1 cgroup directories that carry its caps; a process group's leader
//! as a pidfd passed with `SCM_RIGHTS`) and unregister when torn down: a
//! cgroup only once its directories are removed (by the reaper thread, when
//! they can't be at once), so an owner killed in between leaves them to
//! the guard, not behind. Each message has one fixed size ([`Msg`]).
//!
//! A guard is not woken per message (a wake-up of another process costs a
//! one-shot run tens of microseconds). Once it has read what was queued it
//! leaves its socket unwatched for a quiet period
//! ([`QUIET_MS`](wire::QUIET_MS), 20 ms), sleeping in `poll` on it asking
//! for no event, which reports only the owner's end closing (a hang-up is
//! reported whatever was asked; an arriving message wakes only a poller
//! that asked for `POLLIN`); then it reads again. A read that found
//! nothing makes it wait for the next message instead. So a busy owner
//! wakes its guard at most twice per period, however many groups it
//! starts, an idle one never, and no message waits longer than the period
//! unread: a registration's pidfd (`SCM_RIGHTS`) counts, while in flight,
//! against its user's `RLIMIT_NOFILE` (`ETOOMANYREFS`), so idle owners
//! can't pile them up. Linux's guard also has a "bell", an eventfd the
//! owner writes to before a status query, every
//! [`BELL_EVERY`](wire::BELL_EVERY) messages (before a burst can fill the
//! socket), when the socket is full, and when the kernel refuses a
//! descriptor in flight; rung, it reads at once. When the socket reaches
//! end of file, after every queued message has been read, every holder of
//! the owner's end is gone, so the owner is dead: the guard kills every
//! registered group, waits (bounded) for the cgroups to empty, removes
//! their directories and exits. (The portable guard, which has no bell,
//! rests the same way between reads; see `portable_process.rs`.)
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
//! never reaches it; one run from the executable is started leading it,
//! with the terminal's signals blocked until it ignores them, so a `^Z` to
//! the owner's job while it starts can't stop it), ignores SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT
//! and the stop signals SIGTSTP, SIGTTIN and SIGTTOU, and is
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
//! - A child the owner forks without exec drops its copy of the owner's
//!   end (`copies.rs`), even one forked while the guard starts, but not
//!   a child made by `vfork`, a raw `clone` or `_Fork` (no `pthread_atfork`
//!   handler runs there): the guard fires only once such a child has
//!   exec'd or is gone too. An owner
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
//! After the group the guard SIGKILLs the leader itself through the same
//! pidfd (`pidfd_send_signal` with no flag: that process, wherever it is).
//! A leader that left its process group (`setpgid` into another group of
//! its session, maybe `setsid` after) runs on outside it; the owner keeps
//! its registration after a later start led a new process group, until it
//! has ended or the group is torn down (`container_pgroup.rs`), so an owner
//! killed at any point after the leader left still takes it along. The
//! process group such a leader leads after a `setsid` is numbered by its
//! pid, the same `struct pid`: the group signal reaches it.
//!
//! A group whose leader was started leading a session of its own (a pty)
//! is registered so (`FLAG_SESSION`; the portable guard's registration
//! carries the session, the leader's number), and before the group the
//! guard sweeps that session: a job-control shell there puts each job in
//! a process group of its own, out of the group signal's reach. Only
//! while the session is surely ours: the leader unreaped (its pidfd
//! answers) and leading it, or no process holding its number; never the
//! guard's own session nor the one it was started in. See `session.rs`.
//! A process that calls `setsid` itself still escapes (as from
//! `Group::kill`; a cgroup catches it).
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
//!   started before the first one. The owner confirms the `mkdir`, with
//!   the directory's inode number, before anything is put in it: names
//!   are unique per pid namespace only, and the teardown ends only a
//!   directory its owner made (see `claim.rs`).
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

#[cfg(target_os = "linux")]
mod claim;
mod copies;
#[cfg(target_os = "linux")]
pub(crate) use copies::in_forked_copy;
#[cfg(target_os = "linux")]
mod exec;
mod executable;
#[cfg(target_os = "linux")]
mod leader;
#[cfg(target_os = "linux")]
mod main_exe;
mod owner;
pub(crate) use owner::attach_fd;
mod portable;
mod portable_process;
#[cfg(target_os = "linux")]
mod process;
#[cfg(all(test, target_os = "linux"))]
mod reuse_tests;
mod session;
#[cfg(all(test, target_os = "linux"))]
mod session_tests;
mod slot;
#[cfg(target_os = "linux")]
mod start;
mod start_time;
#[cfg(target_os = "linux")]
mod sweep;
#[cfg(all(test, target_os = "linux"))]
mod tests;
#[cfg(target_os = "linux")]
mod walk;
mod wire;

#[cfg(target_os = "linux")]
pub(crate) use leader::LeaderRegistration;
use owner::Started;
pub(crate) use owner::{Guard, Ticket};
#[cfg(target_os = "linux")]
pub(crate) use sweep::sweep_stale_once;
#[cfg(target_os = "linux")]
use wire::probe_exact_pgroup;

pub use super::guard_status::GuardStatus;

/// The Linux guard (cgroups, and process groups through pidfds).
#[cfg(target_os = "linux")]
static GUARD: Slot = Slot::new();
/// The portable guard (process groups by number): macOS and the BSDs, and
/// Linux's portable backend (`PKIT_MECHANISM=portable`).
static PORTABLE: Slot = Slot::new();

// Where a guard is kept once started (`slot.rs`). A start that failed is
// not kept: the failure may be a moment's shortage (no free descriptor,
// memory or process slot), so a group made `slot::RETRY_AFTER` or more later
// tries again (groups made meanwhile are unguarded and say why). Before,
// the first failure was kept for the life of the process.
use slot::Slot;

/// The pids of this process's owner-death guards that were started (on
/// Linux up to two: the one for cgroups and pidfd-held process groups,
/// and the portable backend's), without starting one or asking it
/// anything. A guard leaves this process by a double fork: where this
/// process is a child subreaper, it is adopted as an orphan, and a
/// subreaper that kills its adopted orphans (`pkit run`, `pkit
/// supervise`) spares exactly these. Only guards still running are named:
/// one that ended (none is started again) no longer owns its pid, which
/// the system may give to an unrelated process. Cheap: a poll of a
/// descriptor per guard, no message to it.
pub fn guard_pids() -> Vec<u32> {
    let mut pids = Vec::new();
    #[cfg(target_os = "linux")]
    if let Some(g) = GUARD.started().filter(|g| g.running()) {
        pids.push(g.pid as u32);
    }
    if let Some(g) = PORTABLE.started().filter(|g| g.running()) {
        pids.push(g.pid as u32);
    }
    pids
}

/// This process's guard for groups of the portable backend (`portable`)
/// or the others; everywhere but Linux there is only the portable one.
pub(crate) fn get_for(portable: bool) -> Result<&'static Guard, String> {
    #[cfg(target_os = "linux")]
    if !portable {
        return get();
    }
    let _ = portable;
    PORTABLE.get_or_start(portable::start)
}

/// This process's guard, started on first use: on Linux the one for
/// cgroups and pidfd-held process groups, elsewhere the portable one.
/// `Err` says why there is none (each failed start is logged as a
/// warning; one is tried at most every [`RETRY_AFTER`](slot::RETRY_AFTER)).
#[cfg(not(target_os = "linux"))]
pub(crate) fn get() -> Result<&'static Guard, String> {
    get_for(true)
}

/// Set to `off` (or `0`), `PKIT_SPAWN_TRAMPOLINE` makes the portable
/// backend start a new process group's first process (and every other
/// start) the plain way and register the group after `posix_spawn`
/// returns, as where the trampoline can't be used (for tests and for
/// measuring its cost).
const TRAMPOLINE_ENV_VAR: &str = "PKIT_SPAWN_TRAMPOLINE";

/// Set once a trampoline failed to reach its gate: not tried again.
static TRAMPOLINE_BROKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The executable to start a child through, held at the gate (see
/// `unix/trampoline.rs`): a new process group's first process, until its
/// group is registered with the portable guard, and any child whose spawn
/// options the trampoline applies. It can be used when pkit's pre-`main`
/// entry is in the main executable, which can be run again. `Err` says why
/// not: a new group is then registered just after `posix_spawn` returns
/// (the window `portable.rs` describes), and spawn options that need the
/// trampoline are refused.
pub(crate) fn trampoline_exe() -> Result<&'static std::ffi::CString, &'static str> {
    // Not a `OnceLock`: see `CopyOnce` (this reads the executable).
    static EXE: crate::sys::CopyOnce<Result<std::ffi::CString, String>> =
        crate::sys::CopyOnce::new();
    if TRAMPOLINE_BROKEN.load(std::sync::atomic::Ordering::Relaxed) {
        return Err("this program's executable did not run as a trampoline");
    }
    EXE.get_or_init(|| {
        #[cfg(target_os = "linux")]
        use main_exe::started_by_its_loader;
        use crate::sys::unix::trampoline::{entry_address, entry_ran};
        #[cfg(not(target_os = "linux"))]
        use crate::sys::unix::trampoline::started_by_its_loader;
        let off = std::env::var_os(TRAMPOLINE_ENV_VAR).is_some_and(|v| v == "off" || v == "0");
        let why = if off {
            Err(format!("{TRAMPOLINE_ENV_VAR}=off"))
        } else if entry_address() == 0 {
            Err(if cfg!(target_os = "linux") {
                "pkit has no pre-main trampoline entry with this C library (musl hands \
                 .init_array functions no arguments)"
                    .into()
            } else {
                format!(
                    "pkit has no pre-main trampoline entry on {} (it needs the C library to hand \
                     .init_array functions argc, argv and the environment, which pkit relies on \
                     only where it was checked: glibc, macOS, FreeBSD)",
                    std::env::consts::OS
                )
            })
        } else if !entry_ran() {
            Err("pkit's pre-main trampoline entry did not run in this process".into())
        } else if !portable::in_main_executable(entry_address()) {
            Err("pkit is not linked into the main executable".into())
        } else if started_by_its_loader() {
            Err("this program was started by running its dynamic loader, which this program's executable names".into())
        } else if let Some(why) = executable::exec_changes_credentials() {
            Err(why)
        } else {
            executable::own_executable().map_err(|e| format!("this program's executable: {e}"))
        };
        if let Err(why) = &why {
            tracing::debug!(target: "pkit", reason = %why, "portable backend: no trampoline; a new process group is registered with the guard after posix_spawn returns, and spawn options that need the trampoline are refused");
        }
        why
    })
    .as_ref()
    .map_err(String::as_str)
}

/// A trampoline did not reach its gate (it could not be loaded, or the
/// executable is not pkit's): new groups start the plain way from now on.
pub(crate) fn trampoline_broken() {
    if !TRAMPOLINE_BROKEN.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(target: "pkit", "portable backend: this program's executable did not run as a trampoline; new process groups are registered with the owner-death guard after posix_spawn returns");
    }
}

/// This process's guard, started on first use. `Err` says why there is
/// none (each failed start is logged as a warning; one is tried at most
/// every [`RETRY_AFTER`](slot::RETRY_AFTER)).
#[cfg(target_os = "linux")]
pub(crate) fn get() -> Result<&'static Guard, String> {
    GUARD.get_or_start(start::start)
}

/// The guard's state, for [`host_containment`](crate::host_containment).
/// Never starts the guard. On Linux, where the portable backend has a
/// guard of its own: the one that is started, if only one is; else the
/// one groups get by default (the portable one when `forced_portable`,
/// `PKIT_MECHANISM=portable`).
pub(crate) fn status(forced_portable: bool) -> GuardStatus {
    #[cfg(target_os = "linux")]
    {
        let portable = match (GUARD.get().is_some(), PORTABLE.get().is_some()) {
            (true, false) => false,
            (false, true) => true,
            _ => forced_portable,
        };
        if !portable {
            return status_of(GUARD.get());
        }
    }
    let _ = forced_portable;
    match PORTABLE.get() {
        None => GuardStatus {
            error: None,
            process_groups: wire::PORTABLE_WOULD.into(),
            ..GuardStatus::default()
        },
        some => status_of(some),
    }
}

fn status_of(guard: Option<Result<&Guard, String>>) -> GuardStatus {
    match guard {
        #[cfg(not(target_os = "linux"))]
        None => GuardStatus::default(),
        #[cfg(target_os = "linux")]
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
            error: Some(why),
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
                    Started::PortableExec => "this program's executable, run again (its fresh image, before main, forks off the guard and exits: no copy of this process's memory)".into(),
                },
            }
        }
    }
}
