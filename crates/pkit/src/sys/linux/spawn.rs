//! Spawning without copying the parent's address space, straight into the
//! group's container.
//!
//! # Why not fork
//!
//! A `fork` (or a `clone` without `CLONE_VM`) copies the parent's page
//! tables: its cost grows with the parent's resident memory (tens of
//! milliseconds for a few GiB). `posix_spawn`, which `std::process` uses,
//! avoids that with a vfork-style child that borrows the parent's memory
//! until it calls `execve`. pkit does the same, and adds what `posix_spawn`
//! can't: placement into the cgroup at birth.
//!
//! # The ladder
//!
//! 1. `clone3(CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP | CLONE_PIDFD)` on a
//!    small stack of its own: the child is in its cgroup from its first
//!    instruction, and the parent gets a pidfd from the kernel. `clone3` with
//!    a new stack can't be called through `libc::syscall` (the child would
//!    return into the parent's frames on the wrong stack), so a few lines of
//!    assembly per architecture (`clone3.rs`) switch to the child's entry
//!    function right after the system call.
//! 2. Where clone3 is refused (ENOSYS, EPERM under seccomp, E2BIG on kernels
//!    without `CLONE_INTO_CGROUP`, EOPNOTSUPP, or EINVAL from a sandbox that
//!    has clone3 but not these flags — the probe, whose deliberately invalid
//!    call also gets EINVAL, can't tell) or this architecture has no shim:
//!    glibc's `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`, the child
//!    writing itself into the cgroup's pre-opened `cgroup.procs` just before
//!    `execve`. The group reports this placement.
//!
//! Both rungs get the child's pidfd from the kernel at birth, so the child
//! is never named by its pid number: not even to kill it on an error path,
//! since an application that ignores SIGCHLD lets the kernel reap (and
//! recycle) that number at any time.
//!
//! cgroup v1 limit cgroups (hybrid hosts) have no clone-time placement: the
//! child joins them with a `write` to their pre-opened `cgroup.procs`.
//!
//! # What the child may do
//!
//! Until `execve` the child runs on its own stack but in the parent's
//! memory, while the calling thread is suspended (`CLONE_VFORK`) and the
//! parent's other threads keep running. So the child (`prexec.rs`) only
//! makes raw, async-signal-safe system calls (`dup2`, `chdir`, `write`,
//! `setpgid`, `setsid`, `prlimit64`, `setpriority`, `umask`, the
//! `setgroups`/`setresgid`/`setresuid` system calls — never glibc's
//! wrappers, which signal every thread of the parent —, `sigaction`,
//! `sigprocmask`, `close_range`, `execve`, `_exit`) on data the parent
//! prepared before the clone: the resolved path, argv and envp as
//! null-terminated arrays, the stdio fds, the fds to join through, the
//! spawn options as plain numbers (`sys/setup.rs`). It
//! allocates nothing, takes no lock, can't panic, and writes to the shared
//! memory only one thing: the errno of a failed step, into an atomic the
//! suspended parent reads once it resumes. (glibc's wrappers also store errno
//! in the calling thread's slot, which the child shares with the suspended
//! parent thread; nothing reads it in between.)
//!
//! # Signals
//!
//! The parent blocks every signal it can around the clone, so no handler of
//! the application's runs in the child on shared memory. Every caught
//! signal, and SIGPIPE (which the Rust runtime ignores), is put back to the
//! default disposition in the child — its handler table is a copy, as no
//! `CLONE_SIGHAND` is asked for —, inherited ignores are kept (the `nohup`
//! convention), and all signals are unblocked just before `execve`. Where
//! clone3 takes `CLONE_CLEAR_SIGHAND` (Linux 5.5), the kernel resets the
//! caught ones at the clone and the child only SIGPIPE; elsewhere the child
//! asks for each signal's disposition and resets it (63 system calls with
//! Rust's usual handlers, which the suspended parent waits through).
//!
//! One exception, glibc's own: its two internal signals (32 and 33, used for
//! thread cancellation and for broadcasting credential changes) can be
//! neither blocked through `pthread_sigmask` nor reset through `sigaction`,
//! so without `CLONE_CLEAR_SIGHAND` glibc's handlers for them stay
//! installed in the child until just before `execve`, where the raw
//! `rt_sigaction` sets them to the default (as it does in every child: an
//! ignore inherited from a `posix_spawn`, which the flag keeps, would
//! outlive the exec). They are harmless there: each acts only on a signal
//! its own process sent (it checks the sender's pid against `getpid()`),
//! and the child sends none — the privilege drop uses the raw system
//! calls, not glibc's broadcasting wrappers.

use std::ffi::{c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use super::super::{ChildIo, SpawnError, SpawnSpec};
use super::clone3::{self, CloneArgs};
pub(crate) use super::prexec::reset_signal_dispositions;
use super::prexec::{child_entry, Plan};
use super::spawn_steps::{
    block_all_signals, cloned_pidfd, finish_code, pidfds_supported, restore_signals, Stack,
    STACK_SIZE,
};
use crate::sys::guard::LeaderRegistration;

/// `CLONE_INTO_CGROUP` as the u64 the clone3 ABI wants (libc's constant is
/// a truncated `c_int` on some versions).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `CLONE_CLEAR_SIGHAND` (Linux 5.5): the kernel starts the child with every
/// caught signal at its default disposition (ignores kept), as the child's
/// own loop over the signals does otherwise (see the module docs).
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// Set once a clone3 with [`CLONE_CLEAR_SIGHAND`] was refused with
/// `EINVAL` (a kernel before 5.5, or a filter that knows the other flags
/// only): every later clone3 goes without it.
static CLEAR_SIGHAND_REFUSED: AtomicBool = AtomicBool::new(false);

/// The "errno" of a clone3 given up on because the kernel killed a child it
/// placed in its cgroup at birth (see [`spawn_into_cgroup`]).
pub(crate) const CLONE3_BIRTH_KILLED: i32 = i32::MAX - 1;

/// Asks whether clone3 exists here without creating anything: a clone3 call
/// with a too-small argument size fails with `EINVAL` where the system call
/// is available, and with `ENOSYS` (or `EPERM` under some seccomp filters)
/// where it is not.
pub(crate) fn probe_clone3() -> Result<(), i32> {
    if !clone3::AVAILABLE {
        return Err(libc::ENOSYS);
    }
    // Raw: the clone shim: rustix has no clone/clone3 (a child on its own stack, CLONE_PIDFD,
    // CLONE_INTO_CGROUP).
    // SAFETY: a null pointer with size 0 is rejected by the kernel before it
    // reads anything; no process is created.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<CloneArgs>(), 0usize) };
    let errno = if rc < 0 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    };
    match errno {
        libc::EINVAL => Ok(()),
        e => Err(e),
    }
}

/// Rung 1: spawns `spec` into the cgroup whose directory is `cgroup_dir`,
/// joining the v1 cgroups behind `join` before exec.
///
/// `SpawnError::Refused` means clone3 itself was refused, or the kernel
/// killed the child at birth (its errno is then [`CLONE3_BIRTH_KILLED`]):
/// the caller may take the next rung.
///
/// # Killed at birth
///
/// Some kernels (seen on 6.18) SIGKILL a child placed with
/// `CLONE_INTO_CGROUP` before it runs a single instruction whenever the
/// parent's cgroup and the target cgroup have different kill sequences:
/// one of them was written `cgroup.kill` at some time (a spare cgroup that
/// someone killed from outside, or an owner that lives in a cgroup killed
/// before it joined), which no cgroup file shows. The child sets
/// `Plan::entered` first thing, so a clone that returns with it unset had
/// a child that never ran: it can only have died of SIGKILL. `kills`
/// counts the group's own kills (`Group::kill`, `close`), `None` while one
/// is under way: the same `Some` before the clone and after it means no
/// kill of the group's could have reached the child, and it is reaped here
/// and the start refused with that errno; else the child is left to its
/// start, which then reports the kill as the child's fate.
pub(crate) fn spawn_into_cgroup(
    spec: &SpawnSpec,
    cgroup_dir: BorrowedFd<'_>,
    join: &[RawFd],
    kills: &dyn Fn() -> Option<u64>,
) -> Result<(i32, OwnedFd), SpawnError> {
    // A child taking other ids in our memory marks us not dumpable (a
    // forked one, for hooks, has memory of its own).
    let ids = spec.setup.ids().change() && spec.setup.pre_exec.is_empty();
    super::dumpable::kept(ids, || into_cgroup(spec, cgroup_dir, join, kills))
}

/// [`spawn_into_cgroup`], the dumpable flag aside.
fn into_cgroup(
    spec: &SpawnSpec,
    cgroup_dir: BorrowedFd<'_>,
    join: &[RawFd],
    kills: &dyn Fn() -> Option<u64>,
) -> Result<(i32, OwnedFd), SpawnError> {
    if !spec.setup.pre_exec.is_empty() {
        // A hook needs a real fork; that child joins the cgroup itself.
        let procs = rustix::fs::openat(
            cgroup_dir,
            "cgroup.procs",
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| SpawnError::Os(e.into()))?;
        let mut fds = join.to_vec();
        fds.push(procs.as_raw_fd());
        return super::forked::spawn_forked(spec, &fds, None, None);
    }
    if !clone3::AVAILABLE {
        return Err(SpawnError::Refused(io::Error::from_raw_os_error(
            libc::ENOSYS,
        )));
    }
    let plan = Plan::new(spec, join, None);
    let mut stack = Stack::new();
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64 | CLONE_INTO_CGROUP,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.base() as u64,
        stack_size: STACK_SIZE as u64,
        cgroup: cgroup_dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };

    let injected = crate::sys::fault::check(crate::sys::fault::Point::Clone3);
    let kills_before = kills();
    let old_mask = block_all_signals();
    // SAFETY: `args` points at the stack and at `pidfd`, both alive until
    // the call returns; it has CLONE_VFORK.
    let rc = unsafe { vfork_clone3_clearing(injected, &mut args, &plan) };
    restore_signals(&old_mask);
    drop(stack);
    if rc < 0 {
        let err = io::Error::from_raw_os_error((-rc) as i32);
        return Err(if clone3::refused((-rc) as i32) {
            SpawnError::Refused(err)
        } else {
            SpawnError::Os(err)
        });
    }
    // SAFETY: the kernel stored a new pidfd (CLONE_PIDFD) that nothing else
    // owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let unkilled = matches!((kills_before, kills()), (Some(a), Some(b)) if a == b);
    if !plan.entered.load(Ordering::Acquire) && unkilled {
        let child = super::child::PidfdChild::new(rc as i32, pidfd);
        let status = child.wait_blocking(None);
        tracing::debug!(target: "pkit", ?status, "a child placed with clone3(CLONE_INTO_CGROUP) was killed before it ran");
        return Err(SpawnError::Refused(io::Error::from_raw_os_error(
            CLONE3_BIRTH_KILLED,
        )));
    }
    finish(rc as i32, pidfd, &plan)
}

/// Rung 2: a vfork-style child that joins the cgroups behind `join` (the
/// v2 cgroup's `cgroup.procs` among them) itself before exec; or, with
/// `pgid`, joins that process group (0: leads a new one, and sends
/// `leader`, if given, to the owner-death guard once it does; a forked
/// child, for `pre_exec` hooks, does not). With `birth`, the child is
/// published there before it runs (see `birth.rs`), by a `clone3` where
/// it is allowed (the glibc clone, this rung's own, can't publish both
/// the pidfd and the pid).
pub(crate) fn spawn_joining(
    spec: &SpawnSpec,
    join: &[RawFd],
    pgid: Option<i32>,
    leader: Option<&LeaderRegistration>,
    birth: Option<&super::birth::Birth>,
) -> Result<(i32, OwnedFd), SpawnError> {
    // A child taking other ids in our memory marks us not dumpable (a
    // forked one, for hooks, has memory of its own).
    let ids = spec.setup.ids().change() && spec.setup.pre_exec.is_empty();
    super::dumpable::kept(ids, || joining(spec, join, pgid, leader, birth))
}

/// [`spawn_joining`], the dumpable flag aside.
fn joining(
    spec: &SpawnSpec,
    join: &[RawFd],
    pgid: Option<i32>,
    leader: Option<&LeaderRegistration>,
    birth: Option<&super::birth::Birth>,
) -> Result<(i32, OwnedFd), SpawnError> {
    if !spec.setup.pre_exec.is_empty() {
        return super::forked::spawn_forked(spec, join, pgid, birth);
    }
    pidfds_supported()?;
    let mut plan = Plan::new(spec, join, pgid);
    if pgid == Some(0) {
        plan.register_leader(leader);
    }
    let mut stack = Stack::new();
    let mut pidfd: c_int = -1;
    let old_mask = block_all_signals();
    if let Some(birth) = birth {
        match clone3_published(&plan, &mut stack, birth) {
            Some(rc) => {
                // The child has executed the program or failed: the pidfd
                // is ours again before a failure's reaping closes it.
                birth.take_back();
                restore_signals(&old_mask);
                drop(stack);
                if rc < 0 {
                    return Err(SpawnError::Os(io::Error::from_raw_os_error((-rc) as i32)));
                }
                let pidfd = cloned_pidfd(None, birth.pidfd())?;
                return finish(rc as i32, pidfd, &plan);
            }
            None => birth.unpublished(),
        }
    }
    // Raw: the clone shim: rustix has no clone/clone3 (a child on its own stack, CLONE_PIDFD,
    // CLONE_INTO_CGROUP).
    // SAFETY: glibc's clone runs `child_entry(&plan)` on the new stack
    // (`top` is its 16-byte aligned end) and, with CLONE_PIDFD, stores the
    // child's pidfd through the parent_tid argument into `pidfd`. With
    // CLONE_VM | CLONE_VFORK this thread resumes once the child has called
    // execve or exited, so `plan` and the stack outlive every use by the
    // child.
    let pid = unsafe {
        libc::clone(
            child_entry,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
            &plan as *const Plan<'_> as *mut c_void,
            &mut pidfd as *mut c_int,
        )
    };
    let clone_err = (pid < 0).then(io::Error::last_os_error);
    restore_signals(&old_mask);
    drop(stack);
    let pidfd = cloned_pidfd(clone_err, pidfd)?;
    finish(pid, pidfd, &plan)
}

/// `clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_PARENT_SETTID)` of
/// `plan`'s child on `stack`, publishing it in `birth` before it runs (see
/// `birth.rs`): the child's pid or `-errno`, or `None` where clone3 is
/// refused (nothing was cloned). Every signal is blocked by the caller.
fn clone3_published(
    plan: &Plan<'_>,
    stack: &mut Stack,
    birth: &super::birth::Birth,
) -> Option<isize> {
    if !clone3::AVAILABLE {
        return None;
    }
    let mut args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::CLONE_PARENT_SETTID)
            as u64,
        pidfd: birth.pidfd_ptr(),
        parent_tid: birth.pid_ptr(),
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.base() as u64,
        stack_size: STACK_SIZE as u64,
        ..CloneArgs::default()
    };
    let injected = crate::sys::fault::check(crate::sys::fault::Point::Clone3);
    // SAFETY: `args` points at the stack and at `birth` (where the kernel
    // writes the pidfd and the pid), both alive until the call returns; it
    // has CLONE_VFORK.
    let rc = unsafe { vfork_clone3_clearing(injected, &mut args, plan) };
    (rc >= 0 || !clone3::refused((-rc) as i32)).then_some(rc)
}

/// [`vfork_clone3`] with [`CLONE_CLEAR_SIGHAND`] added where the kernel
/// takes it, telling the child so (`Plan::handlers_cleared`): the child
/// then makes one `sigaction` (SIGPIPE) instead of one or two per signal
/// (63 calls with Rust's usual handlers), which the calling thread waits
/// through: it is suspended until the child's `execve`. After an `EINVAL`
/// with the flag the clone is made again without it (nothing was cloned);
/// if that one works, the kernel doesn't know the flag, and all later
/// clones go without it.
///
/// # Safety
/// As for [`vfork_clone3`].
unsafe fn vfork_clone3_clearing(
    injected: Result<(), i32>,
    args: &mut CloneArgs,
    plan: &Plan<'_>,
) -> isize {
    if !CLEAR_SIGHAND_REFUSED.load(Ordering::Relaxed) {
        args.flags |= CLONE_CLEAR_SIGHAND;
        plan.handlers_cleared.store(true, Ordering::Relaxed);
        // SAFETY: the caller's promise.
        let rc = unsafe { vfork_clone3(injected, args, plan) };
        if rc >= 0 {
            return rc;
        }
        // Nothing was cloned: a child of the next rung, cloned with this
        // plan, resets its handlers itself.
        plan.handlers_cleared.store(false, Ordering::Relaxed);
        args.flags &= !CLONE_CLEAR_SIGHAND;
        // An injected fault says nothing about the flag.
        if rc != -(libc::EINVAL as isize) || injected.is_err() {
            return rc;
        }
        // SAFETY: the caller's promise.
        let rc = unsafe { vfork_clone3(injected, args, plan) };
        // The flag is given up on only if the clone works without it (an
        // `EINVAL` for another reason says nothing about the flag either).
        if rc >= 0 {
            CLEAR_SIGHAND_REFUSED.store(true, Ordering::Relaxed);
        }
        return rc;
    }
    // SAFETY: the caller's promise.
    unsafe { vfork_clone3(injected, args, plan) }
}

/// The vfork-style `clone3` of `args`, the child running
/// `child_entry(plan)` on its own stack; an `injected` fault instead
/// (`fault::Point::Clone3`) as its negative errno, as the call returns one.
///
/// # Safety
/// `args` has `CLONE_VFORK`, and every address in it (the stack, where the
/// kernel writes a pidfd or a pid) stays valid until this returns.
unsafe fn vfork_clone3(injected: Result<(), i32>, args: &mut CloneArgs, plan: &Plan<'_>) -> isize {
    match injected {
        Err(errno) => -(errno as isize),
        // SAFETY: the shim makes the clone3 system call with `args`, valid
        // (with what it points at) until the call returns (the caller's
        // promise); the child runs `child_entry(plan)` on its own stack and
        // never returns into our frames. With CLONE_VFORK this thread
        // resumes only once the child has called execve or exited, so
        // `plan` outlives every use by the child.
        Ok(()) => unsafe {
            clone3::clone3(
                args,
                std::mem::size_of::<CloneArgs>(),
                child_entry,
                plan as *const Plan<'_> as *mut c_void,
            )
        },
    }
}

fn finish(pid: i32, pidfd: OwnedFd, plan: &Plan<'_>) -> Result<(i32, OwnedFd), SpawnError> {
    finish_code(pid, pidfd, plan.err.load(Ordering::Acquire))
}

impl SpawnSpec {
    /// The child's stdio fds (`None` = inherit the parent's). Every source
    /// is 3 or above, but for stderr as stdout, whose source is the child's
    /// own fd 1, placed just before.
    pub(super) fn stdio_fds(&self) -> [Option<RawFd>; 3] {
        let pick = |io: &ChildIo| match io {
            ChildIo::Inherit => None,
            ChildIo::Fd(fd) => Some(fd.as_raw_fd()),
            ChildIo::Null(fd) => Some(*fd),
            // dup2(1, 2), after fd 1 is in place (the targets go in order).
            ChildIo::SameAsStdout => Some(1),
        };
        [pick(&self.stdin), pick(&self.stdout), pick(&self.stderr)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::ChildIo;
    use std::ffi::CString;
    use std::os::fd::{AsFd, AsRawFd};

    fn spec(path: &str, cwd: Option<&str>) -> SpawnSpec {
        let c = |s: &str| CString::new(s).unwrap();
        SpawnSpec {
            path: c(path),
            argv: vec![c(path)],
            envp: crate::sys::ChildEnv::Exactly(Default::default()),
            cwd: cwd.map(c),
            stdin: ChildIo::Inherit,
            stdout: ChildIo::Inherit,
            stderr: ChildIo::Inherit,
            setup: Default::default(),
        }
    }

    /// Each failing step before exec comes back as what it is, not as an
    /// exec errno that would read as "program not found".
    #[test]
    fn a_failed_step_is_reported_as_that_step() {
        match spawn_joining(
            &spec("/bin/true", Some("/nonexistent-pkit-dir")),
            &[],
            None,
            None,
            None,
        ) {
            Err(SpawnError::Chdir(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("chdir: {other:?}"),
        }
        // A "cgroup.procs" that refuses the write (open read-only).
        let procs = std::fs::File::open("/dev/null").unwrap();
        match spawn_joining(
            &spec("/bin/true", None),
            &[procs.as_raw_fd()],
            None,
            None,
            None,
        ) {
            Err(SpawnError::Step(step, e)) => {
                assert_eq!(step, crate::sys::ChildStep::JoinCgroup, "{e}")
            }
            other => panic!("join: {other:?}"),
        }
        match spawn_joining(
            &spec("/nonexistent-pkit-program", None),
            &[],
            None,
            None,
            None,
        ) {
            Err(SpawnError::Exec(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("exec: {other:?}"),
        }
        // And a good spawn still works: the pid is reaped here.
        let (pid, pidfd) = spawn_joining(&spec("/bin/true", None), &[], None, None, None).unwrap();
        let child = super::super::child::PidfdChild::new(pid, pidfd);
        child.wait_blocking(None).unwrap();
    }

    /// The kernel's kill at birth (a cgroup once written `cgroup.kill`,
    /// ours never) is refused as such when the group's kill count stayed
    /// the same across the clone, so the start takes the next rung; when it
    /// changed (the group's own kill came meanwhile), the dead child is the
    /// start's, to be reported as killed: never placed again.
    #[test]
    fn a_kill_at_birth_is_refused_unless_the_group_killed() {
        let Ok(host) = super::super::host::cgroup_host() else {
            eprintln!("skipped: no cgroup v2 here");
            return;
        };
        let made = super::super::cgroup::Cgroup::create(
            &host.parent_dir,
            host.has_kill,
            Some("kseq"),
            None,
            false,
        );
        let Ok((cg, None)) = made else {
            eprintln!("skipped: cannot create cgroups here");
            return;
        };
        // Killed once: a sleep moved in, then `cgroup.kill`.
        let mut sleep = std::process::Command::new("sleep")
            .arg("300")
            .spawn()
            .unwrap();
        let moved = cg.add_process(sleep.id() as i32);
        let killed = moved.and_then(|()| std::fs::write(cg.path().join("cgroup.kill"), "1"));
        if killed.is_err() {
            let _ = sleep.kill();
        }
        let _ = sleep.wait();
        killed.expect("moving a sleep in and killing it");
        let dir = cg.dir().unwrap();
        let spec = spec("/bin/true", None);
        match spawn_into_cgroup(&spec, dir.as_fd(), &[], &|| Some(7)) {
            Err(SpawnError::Refused(e)) => {
                assert_eq!(e.raw_os_error(), Some(CLONE3_BIRTH_KILLED))
            }
            Ok((pid, pidfd)) => {
                // A kernel that compares the right kill sequences.
                let child = super::super::child::PidfdChild::new(pid, pidfd);
                let status = child.wait_blocking(None).unwrap();
                assert_eq!(status, Some(crate::sys::ExitStatus::Exited(0)));
                eprintln!("skipped: this kernel does not kill at birth");
                cg.remove().unwrap();
                return;
            }
            Err(e) => panic!("{e:?}"),
        }
        // A kill begun during the clone, and one under way at its start.
        let kills = std::sync::atomic::AtomicU64::new(0);
        let counting = || Some(kills.fetch_add(1, Ordering::AcqRel));
        let under_way = || None;
        for kills in [&counting as &dyn Fn() -> Option<u64>, &under_way] {
            let (pid, pidfd) =
                spawn_into_cgroup(&spec, dir.as_fd(), &[], kills).expect("the killed child");
            let child = super::super::child::PidfdChild::new(pid, pidfd);
            let status = child.wait_blocking(None).unwrap();
            assert_eq!(
                status,
                Some(crate::sys::ExitStatus::Signalled(libc::SIGKILL))
            );
        }
        cg.remove().unwrap();
    }
}
