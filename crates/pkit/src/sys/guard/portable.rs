//! The portable owner-death guard: macOS and the BSDs, and Linux's portable
//! backend (`PKIT_MECHANISM=portable`, which is how this code is run and
//! tested on every CI run). No pidfds, no Linux system call (but one
//! cosmetic `prctl` naming the guard on Linux), no `/proc` (but a group
//! leader's start time from `/proc/<pid>/stat` on Linux, see below).
//!
//! # Shape
//!
//! As the Linux guard (see the module docs of `guard`): one small process
//! per owner, holding the only other end of a socket whose owner end only
//! the owner holds (close-on-exec). Groups register over the socket when
//! their leader is started and unregister when torn down; end of file on
//! the socket means the owner is dead, and the guard then kills every
//! registered process group and exits. The message layout, the
//! bookkeeping on the owner's side (`owner.rs`) and the table handling in
//! the guard (`wire.rs`) are the Linux guard's; the differences:
//!
//! - A `SOCK_STREAM` pair (macOS has no `SOCK_SEQPACKET` for `AF_UNIX`):
//!   fixed-size messages, read whole by the guard; a message the socket
//!   took only part of is completed by the owner (`Guard::send_rest`).
//! - Process groups by number (no pidfds): see below.
//! - Started without copying the owner's address space: the owner runs
//!   its own executable again with `posix_spawn` (the path from
//!   `/proc/self/exe` on Linux, `std::env::current_exe` elsewhere, which is
//!   `_NSGetExecutablePath` on macOS and `sysctl(KERN_PROC_PATHNAME)` on
//!   FreeBSD), with [`ENV`] in its environment. The new image finds it
//!   before `main` ([`portable_entry`], placed in `.init_array` on ELF
//!   systems and in `__DATA,__mod_init_func` on macOS): it forks the guard
//!   off (a copy of a fresh, small image, not of the owner) and exits, so
//!   the guard is nobody's child in the owner's tree and an owner's
//!   `wait()` for all its children never waits for it.
//! - Where that can't work (pkit's entry is not in the main executable, the
//!   executable can't be run, or `PKIT_GUARD_START=fork`), the owner forks
//!   the guard (twice, as on Linux): a copy-on-write copy of the owner.
//!   [`GuardStatus::started`](crate::GuardStatus::started) says which.
//!
//! # Why a process group the guard signals is ours, and when it may not be
//!
//! The owner unregisters a group before it reaps the group's leader, and
//! the guard reads every queued message before it sees end of file, so at
//! the owner's death each registered group's leader was unreaped: its
//! zombie held the number, so the number named our group. After the owner
//! dies, init reaps that zombie. From then on:
//!
//! - While any member of the group lives, no new process can be given the
//!   number (a pid that is some group's id is not handed out), so `killpg`
//!   reaches exactly our group's members.
//! - Once every member is gone, the number is free; `killpg` then finds
//!   nobody, unless a new process was given the number and made itself a
//!   process-group leader (a shell's job, a daemon's `setsid`) between the
//!   owner's death and the guard's kill, which needs the system's pids to
//!   wrap round in that time (microseconds to milliseconds).
//!
//! The guard tells such a stranger apart before each kill
//! (`portable_process::spares`): a process that holds the number must be
//! in the registered session (the owner's; a process-group leader can't
//! `setsid`, so ours can't have left it) and have the registered leader's
//! start time, else the group is not signalled. The owner reads that start
//! time right after the spawn, while the leader is its unreaped child, and
//! sends it with the registration (`start_time.rs`: `/proc/<pid>/stat`
//! field 22 on Linux, `proc_pidinfo`'s `pbi_start_tvsec`/`pbi_start_tvusec`
//! on macOS, `kinfo_proc.ki_start` less `kern.boottime` on FreeBSD; read
//! only if the process of that number is the owner's child, else 0: not
//! compared). A process other than our leader holds the number only once
//! our group is empty (the number is not handed out while a member
//! lives), so sparing it loses nothing. If no process holds the number,
//! our leader was reaped and `killpg` reaches our members, or nobody (pid
//! allocation never gives out a number some group still uses, so a
//! stranger's group of that number would need its leader born and gone in
//! the window). A pty session's leader is registered with its own session,
//! the number itself; the start time tells a stranger there too.
//!
//! So a stranger is signalled only if all of these hold: every member of
//! the group exited and the leader's zombie was reaped (by init or a
//! subreaper) after the owner's death and before the guard's `killpg` of
//! that entry (the guard reads to end of file and walks its table, so the
//! window grows with the queued messages and registered groups, and
//! outside Linux by up to the guard's quiet period, 20 ms, in which it may
//! not look at its socket, see `portable_process.rs`); pid
//! allocation reached that very number in between (a full wrap of
//! `kernel.pid_max` on Linux, of 99999 pids on macOS and FreeBSD, or a
//! random pick under FreeBSD's `kern.randompid`); the new process made
//! itself leader of a group of that number (`setpgid` in the owner's
//! session, as a job-control shell's job; `setsid` for a pty session's
//! group); and either
//! - it was started in the same clock tick as our leader (Linux counts
//!   start times in 1/100 s; macOS and FreeBSD in microseconds), so the
//!   start times match; or
//! - the leader's start time was not known at registration (0 sent: the
//!   session check alone applies); or
//! - all this happened between the guard's check and its `killpg` of that
//!   entry (microseconds).
//!
//! It can't happen while a member lives or the zombie is unreaped, for a
//! group the owner tore down itself (unregistered first), or under Linux's
//! own guard (pidfds). On macOS a zombie's `proc_pidinfo` may fail: a
//! zombie leader holds the number for our group, so it is killed by number
//! as a group with no process of that number would be.
//!
//! kqueue's `EVFILT_PROC`/`NOTE_EXIT` on the leader was considered and is
//! not used: it reports the leader's exit, not its reaping, and a group
//! outlives its leader, so it can't tell whether the number was freed.
//!
//! # What process-group containment catches
//!
//! Every process that stays in the group: the leader, its children and
//! grandchildren (they inherit the group), zombie leader or not. A process
//! that leaves it (`setsid`, a daemon's double fork, `setpgid` into a new
//! group) escapes the guard as it escapes `Group::kill` (a cgroup would
//! catch it: Linux's default mechanism), but for the leader itself: after
//! the group, the guard kills the process holding the leader's number if it
//! has the leader's start time (known: never on a 0), whatever its session
//! and process group, and the process group it leads, if it leads one (a
//! `setsid` after it left: numbered as the group was). The owner keeps a
//! leader that left registered after a later start leads a new process
//! group (see `container_pgroup.rs`).
//!
//! # Windows left
//!
//! - `posix_spawn` runs no code of ours in the child, so a group's first
//!   process is started as a trampoline (`unix/trampoline.rs`): this
//!   executable, held before `main` until the owner has sent the group's
//!   registration, then `exec`ing the real program; it exits without
//!   running it when the owner dies first. Where the trampoline can't be
//!   used (see `trampoline_exe` in `mod.rs`) the group is registered right
//!   after `posix_spawn` returns, and an owner killed in that window leaves
//!   that one group unguarded.
//! - macOS has no `SOCK_CLOEXEC`: the pair is made close-on-exec with
//!   `fcntl` just after, and another thread's fork and exec in between
//!   would hand the owner's end to a program (which then holds the guard
//!   off until it exits). pkit's own spawns on macOS close every
//!   descriptor they don't place (`POSIX_SPAWN_CLOEXEC_DEFAULT`).
//! - A child the owner forks without exec holds a copy of the owner's end;
//!   the guard fires once that child is gone too.

use std::ffi::{c_char, CString};
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::copies::{owner_pair, OwnerEnd, Which};
use super::owner::{Guard, Started, State};
use super::portable_process::{entry_address, entry_ran, guard_main, map_table, ENV, GUARD_FD};
use super::wire::{portable_quiet_ms, recv_reply, Plan, Slot, REPLY_HELLO, TABLE_CAP};

/// `PKIT_GUARD_START=fork` makes the owner fork its guard (the way used
/// where running the executable again is not possible), for tests and for
/// comparing the two; `exec` (or unset) tries the executable first.
pub(super) const START_ENV_VAR: &str = "PKIT_GUARD_START";

/// Starts this process's portable guard: this executable run again as its
/// launcher, else a fork.
pub(super) fn start() -> Result<Guard, String> {
    if let Err(errno) = crate::sys::fault::check(crate::sys::fault::Point::GuardSocket) {
        return Err(format!(
            "cannot create the guard's socket pair: {}",
            io::Error::from_raw_os_error(errno)
        ));
    }
    let cap = TABLE_CAP;
    let why = match usable() {
        Ok(()) => match start_exec(cap) {
            Ok(guard) => return Ok(guard),
            Err(why) => {
                tracing::debug!(target: "pkit", reason = %why, "owner-death guard: the executable could not be run as the guard's launcher; forking it");
                why
            }
        },
        Err(why) => why,
    };
    start_forked(cap, why)
}

/// Whether the executable may be run again as the guard's launcher.
fn usable() -> Result<(), String> {
    may_run_executable(entry_ran(), entry_address())
}

/// Whether a guard (or its launcher) may be started by running the
/// executable again, given whether pkit's pre-`main` entry ran and where
/// it is; if not, why not. Both guards' check.
pub(super) fn may_run_executable(entry_ran: bool, entry: usize) -> Result<(), String> {
    match std::env::var_os(START_ENV_VAR) {
        Some(v) if v == "fork" => return Err(format!("{START_ENV_VAR}=fork")),
        Some(v) if v == "exec" || v.is_empty() => {}
        None => {}
        Some(_) => {
            tracing::warn!(target: "pkit", "{START_ENV_VAR} is neither exec nor fork; ignored")
        }
    }
    if !entry_ran {
        return Err("pkit's pre-main entry did not run in this process".into());
    }
    if !in_main_executable(entry) {
        return Err("pkit is not linked into the main executable".into());
    }
    super::executable::exec_changes_credentials().map_or(Ok(()), Err)
}

/// The owner's environment (but `name`) plus `name=value`, for running
/// this executable again as a guard, read as a child's is
/// (`sys::derived_env`: under std's lock, or once the program opted in
/// straight from `environ`). Both guards' environment.
pub(super) fn env_plus(name: &str, value: &str) -> io::Result<crate::sys::EnvBlock> {
    let mut env = crate::sys::derived_env(false, |n, v, env| {
        if n != name.as_bytes() {
            env.push_unchecked(n, v);
        }
    });
    if !env.push(name.as_bytes(), value.as_bytes()) {
        return Err(io::Error::other("a NUL byte in the guard's variable"));
    }
    Ok(env.finish())
}

/// ELF's loadable segment type (the System V gABI's 1; the libc crate
/// does not define it for DragonFly and NetBSD).
#[cfg(not(any(target_os = "macos", target_os = "linux")))]
const PT_LOAD: u32 = 1;
#[cfg(target_os = "linux")]
pub(super) use super::main_exe::in_main_executable;

/// Whether `addr` lies in the main executable (the first object
/// `dl_iterate_phdr` reports; on Linux: `main_exe.rs`).
#[cfg(not(any(target_os = "macos", target_os = "linux")))]
pub(super) fn in_main_executable(addr: usize) -> bool {
    use std::ffi::c_void;
    struct Query {
        addr: usize,
        found: bool,
    }
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `Query` passed below; `info` and its
        // program headers are valid for this callback (dl_iterate_phdr).
        let (query, info) = unsafe { (&mut *data.cast::<Query>(), &*info) };
        for i in 0..usize::from(info.dlpi_phnum) {
            // SAFETY: `dlpi_phdr` points at `dlpi_phnum` headers.
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            if ph.p_type != PT_LOAD {
                continue;
            }
            let start = (info.dlpi_addr as usize).wrapping_add(ph.p_vaddr as usize);
            if query.addr >= start && query.addr - start < ph.p_memsz as usize {
                query.found = true;
            }
        }
        1 // only the first object: the main program
    }
    let mut query = Query { addr, found: false };
    // Raw: rustix has no dl_iterate_phdr (a C library call, not a system call).
    // SAFETY: the callback only reads what the C library hands it and
    // writes the `Query` behind `data`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first), (&mut query as *mut Query).cast()) };
    query.found
}

#[cfg(target_os = "macos")]
extern "C" {
    // dyld's image list; image 0 is the main executable (the libc crate's
    // declaration is deprecated in favour of another crate).
    fn _dyld_get_image_header(image_index: u32) -> *const libc::c_void;
}

/// Whether `addr` lies in the main executable: the image `dladdr` finds it
/// in is dyld's image 0.
#[cfg(target_os = "macos")]
pub(super) fn in_main_executable(addr: usize) -> bool {
    let mut info = MaybeUninit::<libc::Dl_info>::zeroed();
    // Raw: rustix has no dladdr nor dyld's image list (C library calls).
    // SAFETY: dladdr fills `info` for an address of ours; image 0's header
    // pointer is only compared.
    unsafe {
        libc::dladdr(addr as *const libc::c_void, info.as_mut_ptr()) != 0
            && std::ptr::eq(
                info.assume_init().dli_fbase.cast_const(),
                _dyld_get_image_header(0),
            )
    }
}

/// A `SOCK_STREAM` pair, both ends close-on-exec, above stdio (and, on
/// macOS, with `SO_NOSIGPIPE`): the owner's end and the guard's.
fn socket_pair() -> Result<(OwnerEnd, OwnedFd), String> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    #[cfg(not(target_os = "macos"))]
    let flags = SocketFlags::CLOEXEC;
    #[cfg(target_os = "macos")]
    let flags = SocketFlags::empty();
    // Noted for forked copies (`copies.rs`); dup_above makes close-on-exec
    // copies (on macOS the first time).
    let (owner_end, guard_end) = owner_pair(Which::Portable, || {
        let (a, b) = rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, flags, None)?;
        let owner_end = crate::sys::dup_above(a.as_raw_fd(), 3)?;
        Ok((owner_end, crate::sys::dup_above(b.as_raw_fd(), 3)?))
    })
    .map_err(|e| format!("cannot create the guard's socket pair: {e}"))?;
    #[cfg(target_os = "macos")]
    for fd in [owner_end.as_fd(), guard_end.as_fd()] {
        let _ = rustix::net::sockopt::set_socket_nosigpipe(fd, true);
    }
    Ok((owner_end, guard_end))
}

/// Runs the executable again as the guard's launcher (see the module docs).
fn start_exec(cap: usize) -> Result<Guard, String> {
    let (owner_end, guard_end) = socket_pair()?;
    let path = super::executable::own_executable()
        .map_err(|e| format!("this program's executable: {e}"))?;
    let launcher = spawn_launcher(&path, &guard_end, cap)
        .map_err(|e| format!("cannot run this program's executable: {e}"))?;
    drop(guard_end);
    let hello = recv_reply(owner_end.as_fd(), 10_000);
    let ok = matches!(hello, Some(h) if h.kind == REPLY_HELLO && h.pid > 0);
    if !ok {
        // Whatever runs, it is not a launcher: our unreaped child, so the
        // pid is exact.
        if let Some(launcher) = rustix::process::Pid::from_raw(launcher) {
            let _ = rustix::process::kill_process(launcher, rustix::process::Signal::KILL);
        }
    }
    reap(launcher);
    let hello = hello
        .filter(|_| ok)
        .ok_or("the executable run as the guard's launcher did not report in")?;
    Ok(finish(owner_end.keep(), hello.pid, Started::PortableExec))
}

/// `posix_spawn` of the launcher: `path` with the owner's environment plus
/// [`ENV`], stdio on `/dev/null`, `guard_end` as [`GUARD_FD`] and no other
/// descriptor, in a process group of its own, the terminal's signals
/// blocked.
fn spawn_launcher(path: &CString, guard_end: &OwnedFd, cap: usize) -> io::Result<libc::pid_t> {
    use crate::sys::unix::spawn::Attrs;
    let env = env_plus(ENV, &format!("{GUARD_FD},0,{cap},{}", portable_quiet_ms()))?;
    let argv = [c"pkit-guard".as_ptr(), std::ptr::null()];
    let envp = env.pointers();
    // A source above the target: dup2 onto GUARD_FD then clears its
    // close-on-exec flag.
    let sock = crate::sys::dup_above(guard_end.as_raw_fd(), GUARD_FD + 1)?;
    let check = |rc: libc::c_int| match rc {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    };
    let mut a = Attrs::new()?;
    #[allow(unused_mut)]
    let mut flags = libc::POSIX_SPAWN_SETPGROUP | libc::POSIX_SPAWN_SETSIGMASK;
    #[cfg(target_os = "macos")]
    {
        flags |= libc::POSIX_SPAWN_CLOEXEC_DEFAULT;
    }
    // Raw: rustix has no posix_spawn (a C library call) nor a safe sigset.
    // SAFETY: the attribute objects are initialised and ours (destroyed
    // by `Attrs`'s Drop); every pointer passed to posix_spawn (path, argv,
    // envp, the null device's name) outlives the call.
    unsafe {
        check(libc::posix_spawnattr_setflags(&mut a.attr, flags as _))?;
        check(libc::posix_spawnattr_setpgroup(&mut a.attr, 0))?;
        // The terminal's signals blocked until it exits: between the
        // spawn's clone and its setpgid it is in our process group, where
        // a ^Z would stop it (`held_signals.rs`); the guard it forks
        // starts with none pending and sets its own mask.
        let held = crate::sys::unix::held_signals::blocked_at_start(true);
        check(libc::posix_spawnattr_setsigmask(&mut a.attr, &held))?;
        for fd in 0..3 {
            check(libc::posix_spawn_file_actions_addopen(
                &mut a.actions,
                fd,
                c"/dev/null".as_ptr(),
                libc::O_RDWR,
                0,
            ))?;
        }
        check(libc::posix_spawn_file_actions_adddup2(
            &mut a.actions,
            sock.as_raw_fd(),
            GUARD_FD,
        ))?;
        // Every other descriptor closed in the launcher: macOS has
        // POSIX_SPAWN_CLOEXEC_DEFAULT (above), glibc and FreeBSD 13.1+ a
        // closefrom file action; elsewhere the guard closes them itself
        // (`guard_main`), after the launcher's fork.
        #[cfg(any(all(target_os = "linux", target_env = "gnu"), target_os = "freebsd"))]
        check(
            crate::sys::unix::spawn::posix_spawn_file_actions_addclosefrom_np(
                &mut a.actions,
                GUARD_FD + 1,
            ),
        )?;
        let mut pid: libc::pid_t = 0;
        check(libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            &a.actions,
            &a.attr,
            argv.as_ptr() as *const *mut c_char,
            envp.as_ptr() as *const *mut c_char,
        ))?;
        Ok(pid)
    }
}

/// Forks the guard (twice, so that it is nobody's child here): where the
/// executable can't be run as its launcher, given as `why`.
pub(super) fn start_forked(cap: usize, why: String) -> Result<Guard, String> {
    let (owner_end, guard_end) = socket_pair()?;
    // SAFETY: a fresh anonymous mapping, ours until unmapped below.
    let table = unsafe { map_table(cap) }.ok_or("cannot map the guard's table")?;
    let plan = Plan {
        sock: guard_end.as_raw_fd(),
        bell: -1,
        table,
        cap,
        buf: std::ptr::null_mut(),
        buf_len: 0,
        exact_pgroup: false,
        quiet_ms: portable_quiet_ms(),
    };
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // Raw: rustix has no fork (its `runtime::kernel_fork` is unsafe and
    // bypasses the C library's atfork handlers) nor a safe sigprocmask.
    // SAFETY: signal-set calls on our own buffers; fork semantics: the
    // child runs only the raw calls below and `guard_main`, and never
    // returns. Signals are blocked across the fork, so no handler of the
    // owner's runs in the child (guard_main unblocks them after resetting
    // every disposition).
    let pid = unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr());
        let pid = libc::fork();
        if pid == 0 {
            let g = libc::fork();
            if g == 0 {
                guard_main(&plan);
            }
            libc::_exit(if g < 0 { 1 } else { 0 });
        }
        let e = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut());
        if pid < 0 {
            Err(e)
        } else {
            Ok(pid)
        }
    };
    drop(guard_end);
    // Raw: undoes `map_table`'s raw mmap (kept raw for the pre-`main`
    // entry in portable_process.rs).
    // SAFETY: the mapping made above; the guard has its own copy.
    unsafe { libc::munmap(table.cast(), cap * size_of::<Slot>()) };
    let pid = pid.map_err(|e| format!("cannot fork the guard: {e}"))?;
    reap(pid);
    let hello = recv_reply(owner_end.as_fd(), 10_000)
        .filter(|h| h.kind == REPLY_HELLO && h.pid > 0)
        .ok_or("the guard did not report in")?;
    Ok(finish(owner_end.keep(), hello.pid, Started::Fork(why)))
}

/// Reaps our child `pid` (the launcher, which exits at once), blocking;
/// someone else's `waitpid(-1)` may have taken it.
fn reap(pid: libc::pid_t) {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    let wait = || rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
    while matches!(wait(), Err(rustix::io::Errno::INTR)) {}
}

/// The owner's handle on a guard that reported in as `pid`.
fn finish(sock: OwnedFd, pid: i32, started: Started) -> Guard {
    // An owner that is a subreaper inherits the guard when its launcher
    // exits: it is then reaped once it exits, as the owner's child. (A
    // pid that is not our child answers ECHILD and is left alone.)
    let running = rustix::process::Pid::from_raw(pid).is_some_and(|p| {
        matches!(
            rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG),
            Ok(None)
        )
    });
    if running {
        crate::sys::unix::sigchld::ensure();
        crate::sys::unix::sigchld::reap_later(pid);
    }
    Guard {
        owner: crate::sys::creator::Creator::here(),
        sock,
        bell: None,
        pid,
        pidfd: None,
        exact_pgroup: false,
        portable: true,
        cap: TABLE_CAP,
        started,
        state: std::sync::Mutex::new(State {
            live: Default::default(),
            used: 0,
            unrung: 0,
            failed: None,
        }),
        query_lock: std::sync::Mutex::new(()),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    /// Thousands of registrations sent faster than the guard reads them,
    /// then removed: every message arrives whole (a stream socket), the
    /// guard's count is exact; and end of file on the owner's end kills a
    /// registered process group.
    #[test]
    fn a_burst_of_registrations_stays_framed_and_eof_kills() {
        let mut sleeper = crate::sys::guard::tests::sleeper();
        let pgid = sleeper.id() as i32;
        let g = start().expect("the portable guard");
        assert!(matches!(g.started, Started::PortableExec));
        let n = 4000;
        let tickets: Vec<_> = (0..n)
            .map(|_| g.register_pgroup_number(pgid, None).expect("register"))
            .collect();
        assert_eq!(g.query(), Some((n, 0)));
        for t in tickets {
            g.unregister(t);
        }
        assert_eq!(g.query(), Some((0, 0)));
        assert!(g.alive());
        let _ticket = g.register_pgroup_number(pgid, None).expect("register");
        // The owner's end closes: the guard kills the group, then exits.
        drop(g);
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = sleeper.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = sleeper.kill();
                let _ = sleeper.wait();
                panic!("the guard did not kill the registered group");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    /// A registered number that, when the guard acts, names a process
    /// leading another session than the owner's (as a number reused by a
    /// stranger's `setsid` would) is not signalled. Registered with no
    /// start time (0, unknown), so the session check alone tells it: with
    /// the start time known and equal, the process would be our leader that
    /// left its group and called `setsid`, which the guard kills
    /// (`portable_process::kill_leader`).
    #[test]
    fn a_number_leading_another_session_is_spared() {
        let mut stranger = std::process::Command::new("sleep");
        stranger.arg("300");
        // SAFETY: setsid(2) is async-signal-safe (rustix makes the system
        // call directly); the child only calls it before exec.
        unsafe {
            stranger.pre_exec(|| {
                rustix::process::setsid()?;
                Ok(())
            });
        }
        let mut stranger = stranger.spawn().expect("sleep");
        let g = start().expect("the portable guard");
        let guard_pid = g.pid;
        // Raw: as `register_pgroup_number` (rustix's getsid panics on a 0).
        // SAFETY: getsid(2) of this process has no preconditions.
        let session = unsafe { libc::getsid(0) };
        let _ticket = g
            .register_pgroup_started(stranger.id() as i32, session, 0)
            .expect("register");
        drop(g);
        // The guard has acted once it is gone (it is not our child).
        let deadline = Instant::now() + Duration::from_secs(10);
        let guard = rustix::process::Pid::from_raw(guard_pid).expect("a guard pid");
        while rustix::process::test_kill_process(guard).is_ok() {
            assert!(Instant::now() < deadline, "the guard did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
        let alive = stranger.try_wait().expect("try_wait").is_none();
        let _ = stranger.kill();
        let _ = stranger.wait();
        assert!(alive, "the guard killed a group of another session");
    }
}
