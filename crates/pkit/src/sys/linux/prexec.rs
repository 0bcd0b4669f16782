//! The child's side of a spawn: what it does between the clone and `execve`
//! (see the rules in `spawn.rs`'s module docs: raw, async-signal-safe calls
//! on data prepared before the clone, no allocation, no lock, no panic).
//!
//! Raw: every libc call in this file stays raw on purpose: between the clone and `execve`
//! only raw, async-signal-safe calls on prepared memory may run.

use std::ffi::{c_int, c_void, CString};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use crate::sys::guard::LeaderRegistration;
use crate::sys::setup_steps::{self, StepCalls};
pub(super) use crate::sys::step::FailedStep as Step;
use crate::sys::ChildStep;
use crate::sys::{envp_vector, nul_terminated, ChildSetup, Rlimit, SpawnSpec};

/// Everything the child touches, prepared before the clone.
pub(super) struct Plan<'a> {
    path: &'a CString,
    argv: Vec<*const libc::c_char>,
    envp: &'a [*const libc::c_char],
    cwd: Option<&'a CString>,
    stdio: [Option<RawFd>; 3],
    /// `cgroup.procs` files to join through before exec ("0" = myself).
    join: &'a [RawFd],
    /// `Some(pgid)`: join process group `pgid` (0: lead a new one).
    pgid: Option<libc::pid_t>,
    setup: &'a ChildSetup,
    /// `setup.keep` as raw numbers: (source, target).
    keep: Vec<(RawFd, RawFd)>,
    /// The step that failed and its errno, or 0.
    pub(super) err: AtomicI32,
    /// Set by the child first thing: a vfork-style clone that returns with
    /// it unset had a child that never ran an instruction of ours (killed
    /// by SIGKILL before it first ran; see `spawn::spawn_into_cgroup`).
    pub(super) entered: AtomicBool,
    /// Set by the parent before a clone3 with `CLONE_CLEAR_SIGHAND`: the
    /// kernel has reset the child's caught signals already (see
    /// `spawn::vfork_clone3_clearing`), and only SIGPIPE is left to reset.
    pub(super) handlers_cleared: AtomicBool,
    /// Forked children (no shared memory) report a failure here instead:
    /// the code as 4 bytes; the pipe closes at exec.
    report: RawFd,
    /// A new process group's registration with the owner-death guard, sent
    /// by the child once it leads the group (vfork-style children only).
    leader: Option<&'a LeaderRegistration>,
    /// The signal mask the program starts with: empty, or the terminal's
    /// signals ([`Plan::hold_terminal_signals`]).
    exec_mask: libc::sigset_t,
}

impl<'a> Plan<'a> {
    pub(super) fn new(spec: &'a SpawnSpec, join: &'a [RawFd], pgid: Option<i32>) -> Plan<'a> {
        Plan {
            path: &spec.path,
            argv: nul_terminated(&spec.argv),
            envp: envp_vector(&spec.envp),
            cwd: spec.cwd.as_ref(),
            stdio: spec.stdio_fds(),
            join,
            pgid,
            setup: &spec.setup,
            keep: spec
                .setup
                .keep
                .iter()
                .map(|(src, target)| (src.as_raw_fd(), *target))
                .collect(),
            err: AtomicI32::new(0),
            entered: AtomicBool::new(false),
            handlers_cleared: AtomicBool::new(false),
            report: -1,
            leader: None,
            exec_mask: crate::sys::unix::held_signals::blocked_at_start(false),
        }
    }

    /// Makes the program start with the terminal's signals blocked (see
    /// `unix/held_signals.rs`): pkit's own executable run as the
    /// owner-death guard, which ignores them (discarding any that came
    /// meanwhile) before it unblocks them.
    pub(super) fn hold_terminal_signals(&mut self) {
        self.exec_mask = crate::sys::unix::held_signals::blocked_at_start(true);
    }

    /// Makes a vfork-style child that leads a new process group send `reg`
    /// to the owner-death guard before it execs.
    pub(super) fn register_leader(&mut self, reg: Option<&'a LeaderRegistration>) {
        self.leader = reg;
    }

    /// Makes a forked child report a failed step on `fd` (a pipe's write
    /// end, close-on-exec, numbered as no `keep_fds` target).
    pub(super) fn report_to(&mut self, fd: RawFd) {
        self.report = fd;
    }
}

/// The child's entry point, on its own stack.
pub(super) extern "C" fn child_entry(plan: *mut c_void) -> c_int {
    // SAFETY: `plan` is the `Plan` the suspended parent passed to the clone;
    // it stays valid until this child execs or exits. We are the child.
    let plan = unsafe { &*(plan as *const Plan<'_>) };
    plan.entered.store(true, Ordering::Release);
    // SAFETY: as above.
    unsafe { child_main(plan) }
}

/// The credential system calls, by number: glibc's `setuid` family
/// broadcasts the change to every thread of the (parent's) process, which
/// must not happen from a child sharing the parent's memory; the raw calls
/// change this process only.
pub(super) mod nr {
    #[cfg(not(any(target_arch = "x86", target_arch = "arm")))]
    pub(in crate::sys::linux) use libc::{
        SYS_setgroups as SETGROUPS, SYS_setresgid as SETRESGID, SYS_setresuid as SETRESUID,
    };
    #[cfg(any(target_arch = "x86", target_arch = "arm"))]
    pub(in crate::sys::linux) use libc::{
        SYS_setgroups32 as SETGROUPS, SYS_setresgid32 as SETRESGID, SYS_setresuid32 as SETRESUID,
    };
}

/// A signed system call argument, widened to a full register: variadic
/// `syscall(2)` reads every argument as a `long`.
fn arg(v: libc::c_int) -> libc::c_long {
    libc::c_long::from(v)
}

/// A user or group id as a full-register system call argument.
pub(super) fn id(v: u32) -> libc::c_long {
    libc::c_long::from(v)
}

/// `struct rlimit64`.
#[repr(C)]
struct Rlimit64 {
    cur: u64,
    max: u64,
}

/// The setup steps' system calls in a child sharing the owner's memory:
/// raw, changing this process only (see [`nr`]).
struct RawCalls;

impl StepCalls for RawCalls {
    fn setsid(&self) -> bool {
        // SAFETY: setsid(2) changes this process only.
        unsafe { libc::setsid() >= 0 }
    }

    fn take_terminal(&self) -> bool {
        // SAFETY: ioctl(TIOCSCTTY) on this process's fd 0, no pointer.
        unsafe { libc::ioctl(0, libc::TIOCSCTTY as _, 0) >= 0 }
    }

    fn rlimit(&self, limit: &Rlimit) -> bool {
        let lim = Rlimit64 {
            cur: limit.soft,
            max: limit.hard,
        };
        let none = std::ptr::null_mut::<Rlimit64>();
        // SAFETY: prlimit64 of this process, reading `lim` (on our stack).
        unsafe {
            libc::syscall(
                libc::SYS_prlimit64,
                arg(0),
                limit.resource as libc::c_long,
                &lim as *const Rlimit64,
                none,
            ) >= 0
        }
    }

    fn nice(&self, nice: c_int) -> bool {
        let which = arg(libc::PRIO_PROCESS as libc::c_int);
        // SAFETY: setpriority of this process; plain numbers.
        unsafe { libc::syscall(libc::SYS_setpriority, which, arg(0), arg(nice)) >= 0 }
    }

    fn ioprio(&self, value: c_int) -> bool {
        // IOPRIO_WHO_PROCESS (1), this process (0).
        // SAFETY: ioprio_set of this process; plain numbers.
        unsafe { libc::syscall(libc::SYS_ioprio_set, arg(1), arg(0), arg(value)) >= 0 }
    }

    fn cpus(&self, mask: &[libc::c_ulong]) -> bool {
        let bytes = std::mem::size_of_val(mask);
        // SAFETY: sched_setaffinity of this process, reading `bytes` bytes
        // of `mask`.
        unsafe { libc::syscall(libc::SYS_sched_setaffinity, arg(0), bytes, mask.as_ptr()) >= 0 }
    }

    fn umask(&self, mode: libc::mode_t) {
        // SAFETY: umask(2) only sets this process's mask.
        unsafe { libc::umask(mode) };
    }

    fn groups(&self, list: &[libc::gid_t]) -> bool {
        // SAFETY: setgroups of this process, reading `list`.
        unsafe { libc::syscall(nr::SETGROUPS, list.len(), list.as_ptr()) >= 0 }
    }

    fn gid(&self, gid: libc::gid_t) -> bool {
        // SAFETY: setresgid of this process; plain numbers.
        unsafe { libc::syscall(nr::SETRESGID, id(gid), id(gid), id(gid)) >= 0 }
    }

    fn uid(&self, uid: libc::uid_t) -> bool {
        // SAFETY: setresuid of this process; plain numbers.
        unsafe { libc::syscall(nr::SETRESUID, id(uid), id(uid), id(uid)) >= 0 }
    }
}

/// The child between clone and exec (see the module docs).
///
/// # Safety
/// Must only run in the freshly cloned child. It makes raw,
/// async-signal-safe calls on the pre-built `plan` and never returns.
pub(super) unsafe fn child_main(plan: &Plan<'_>) -> ! {
    let setup = plan.setup;
    // A forked copy of the owner (for `pre_exec` hooks, the only ones): a
    // hook that blocks or stops must not keep the owner's end of the
    // guard's socket open after the owner's death. Replaced first, while
    // the numbers are the owner's: a stdio or `keep_fds` target set up
    // below may be that end's number, and is the child's from then on.
    if !setup.pre_exec.is_empty() {
        crate::sys::guard::in_forked_copy();
    }
    // Stdio. Sources are all >= 3 (see SpawnSpec::stdio_fds), so no dup2
    // overwrites a source still to be used; dup2 clears close-on-exec.
    for (target, src) in plan.stdio.iter().enumerate() {
        if let Some(fd) = *src {
            if libc::dup2(fd, target as RawFd) < 0 {
                fail(plan, Step::Setup(ChildStep::Stdio));
            }
        }
    }
    // A new session; for a pty session, the terminal on stdin becomes its
    // controlling one (`setup_steps.rs`).
    if let Err(step) = setup_steps::session(setup.setsid, setup.ctty, &RawCalls) {
        fail(plan, Step::Setup(step));
    }
    match plan.pgid {
        // A new session's leader already leads a new process group, the
        // one asked for (its pid); setpgid would refuse a session leader.
        Some(0) if setup.setsid => {}
        Some(pgid) if libc::setpgid(0, pgid) < 0 => {
            fail(plan, Step::Setup(ChildStep::ProcessGroup));
        }
        _ => {}
    }
    // Leading its process group now: the guard learns of the group before
    // anything of it runs (see `guard::LeaderRegistration`).
    if let Some(reg) = plan.leader {
        reg.send_from_leader();
    }
    // cgroups: "0" means the writing process itself. Joined while the
    // child still has the owner's credentials.
    for &procs in plan.join {
        if libc::write(procs, b"0".as_ptr().cast(), 1) < 0 {
            fail(plan, Step::Setup(ChildStep::JoinCgroup));
        }
    }
    // Limits, priorities, umask, the privilege drop (`setup_steps.rs`).
    if let Err(step) = setup_steps::apply(&setup.steps(), &RawCalls) {
        fail(plan, Step::Setup(step));
    }
    if let Some(dir) = plan.cwd {
        if libc::chdir(dir.as_ptr()) < 0 {
            fail(plan, Step::Chdir);
        }
    }
    if plan.handlers_cleared.load(Ordering::Relaxed) {
        default_sigpipe();
    } else {
        reset_signal_dispositions();
    }
    reset_glibc_internal_signals();
    // Any fd a library opened without O_CLOEXEC must not leak into the
    // program. Failure (kernels before 5.11) is harmless.
    libc::syscall(
        libc::SYS_close_range,
        3u32,
        u32::MAX,
        libc::CLOSE_RANGE_CLOEXEC,
    );
    // Descriptors passed through: after close_range, as dup2 clears the
    // target's close-on-exec flag. No source is numbered as a target.
    for &(src, target) in &plan.keep {
        if libc::dup2(src, target) < 0 {
            fail(plan, Step::Setup(ChildStep::KeepFds));
        }
    }
    let caught = catch_stops_while_blocked();
    // Empty, unless the terminal's signals stay held (prepared before the
    // clone).
    libc::pthread_sigmask(libc::SIG_SETMASK, &plan.exec_mask, std::ptr::null_mut());

    // The caller's hooks (only in a forked child: see `forked.rs`). They
    // run with the stop signals at their default, as under std's
    // `pre_exec`: with the no-op handler, a hook touching the terminal
    // from a background process group would get SIGTTOU, have its call
    // restarted, and loop for ever (sending SIGTTOU to the whole process
    // group each time). The ones pending at the unmask were discarded
    // already; after the hooks they are caught again until the exec.
    if !setup.pre_exec.is_empty() {
        set_default(caught);
        for hook in &setup.pre_exec {
            if let Err(e) = hook() {
                *libc::__errno_location() = e.raw_os_error().unwrap_or(libc::EINVAL);
                fail(plan, Step::Setup(ChildStep::PreExec));
            }
        }
        catch_stops_until_exec();
    }
    libc::execve(plan.path.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
    fail(plan, Step::Exec)
}

/// Resets caught signals, and SIGPIPE and SIGCHLD, to their default
/// disposition.
///
/// SIGCHLD even when ignored: the portable backend (`posix_spawn`, which
/// can put a signal back to its default but never ignore it) starts every
/// program with it at its default (its own SIGCHLD handler replaced an
/// ignore in the owner), and each mechanism starts a program alike. A
/// program that inherited it ignored would have its children reaped by the
/// kernel, its `wait` failing with ECHILD.
///
/// # Safety
/// Child only (see `child_main`).
pub(crate) unsafe fn reset_signal_dispositions() {
    // 64 is the highest signal number on Linux (_NSIG - 1); numbers glibc
    // reserves for itself fail with EINVAL and are skipped.
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        if libc::sigaction(sig, std::ptr::null(), old.as_mut_ptr()) != 0 {
            continue;
        }
        let handler = old.assume_init_ref().sa_sigaction;
        if sig == libc::SIGPIPE
            || sig == libc::SIGCHLD
            || (handler != libc::SIG_DFL && handler != libc::SIG_IGN)
        {
            let mut new = MaybeUninit::<libc::sigaction>::zeroed();
            new.assume_init_mut().sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, new.as_ptr(), std::ptr::null_mut());
        }
    }
}

/// Puts SIGPIPE (the Rust runtime ignores it; an ignore would outlive
/// `execve`) and SIGCHLD back to their default disposition: what is left
/// of [`reset_signal_dispositions`] in a child the kernel cloned with
/// `CLONE_CLEAR_SIGHAND`.
///
/// # Safety
/// Child only (see `child_main`).
unsafe fn default_sigpipe() {
    let mut new = MaybeUninit::<libc::sigaction>::zeroed();
    new.assume_init_mut().sa_sigaction = libc::SIG_DFL;
    libc::sigaction(libc::SIGPIPE, new.as_ptr(), std::ptr::null_mut());
    libc::sigaction(libc::SIGCHLD, new.as_ptr(), std::ptr::null_mut());
}

/// Catches the terminal's stop signals (SIGTSTP, SIGTTIN, SIGTTOU) that
/// are at their default action with a handler that does nothing, until
/// `execve` puts the default back (it resets every caught signal).
///
/// This child was in the owner's process group from the clone (the whole
/// time for a plain start under cgroup v2, until the `setpgid` above for a
/// process group's) with every signal blocked: a stop signal to that group
/// meanwhile (a terminal's `^Z` to an owner that catches it and goes on)
/// would stop it at the unmask, before its exec, and the owner, waiting
/// for the exec, with it, until a SIGCONT. Caught, it is discarded, and so
/// is one that comes after the unmask and before the exec; one that comes
/// during `execve`, once the handlers are reset, stops the new program, as
/// it would any started by `std::process::Command`, after the owner has
/// gone on. An ignored one stays ignored (the program inherits that), and
/// other signals are left alone: a SIGTERM that came meanwhile ends the
/// child, as its sender meant.
///
/// # Safety
/// Child only (see `child_main`), after `reset_signal_dispositions` (or,
/// in a child cloned with `CLONE_CLEAR_SIGHAND`, `default_sigpipe`).
unsafe fn catch_stops_until_exec() -> [bool; 3] {
    let mut caught = [false; 3];
    for (i, sig) in STOPS.into_iter().enumerate() {
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        if libc::sigaction(sig, std::ptr::null(), old.as_mut_ptr()) != 0
            || old.assume_init_ref().sa_sigaction != libc::SIG_DFL
        {
            continue;
        }
        // Zeroed: an empty mask; SA_RESTART: no call before the exec
        // fails with EINTR for it.
        let mut catch = MaybeUninit::<libc::sigaction>::zeroed();
        let action = catch.assume_init_mut();
        action.sa_sigaction = discard as extern "C" fn(c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        caught[i] = libc::sigaction(sig, catch.as_ptr(), std::ptr::null_mut()) == 0;
    }
    caught
}

/// [`catch_stops_until_exec`] in one `sigaction` per signal, not two,
/// while every signal is still blocked (the clone's mask, before the
/// unmask): the handler is set and the old disposition read at once, and
/// a signal that was not at its default gets its old disposition back.
/// Blocked, no signal can meet the handler in between. A child cloned
/// with `CLONE_CLEAR_SIGHAND`, or after `reset_signal_dispositions`, has no
/// handler left, so the old one is the default or an ignore; the put-back
/// is for an ignore alone (an ignored stop stays ignored, as there). Every
/// spawn makes these calls while the owner's thread waits for the exec.
///
/// # Safety
/// As [`catch_stops_until_exec`], with every signal blocked.
unsafe fn catch_stops_while_blocked() -> [bool; 3] {
    let mut caught = [false; 3];
    // Zeroed: an empty mask; SA_RESTART: no call before the exec fails
    // with EINTR for it.
    let mut catch = MaybeUninit::<libc::sigaction>::zeroed();
    let action = catch.assume_init_mut();
    action.sa_sigaction = discard as extern "C" fn(c_int) as libc::sighandler_t;
    action.sa_flags = libc::SA_RESTART;
    for (i, sig) in STOPS.into_iter().enumerate() {
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        if libc::sigaction(sig, catch.as_ptr(), old.as_mut_ptr()) != 0 {
            continue;
        }
        if old.assume_init_ref().sa_sigaction == libc::SIG_DFL {
            caught[i] = true;
        } else {
            libc::sigaction(sig, old.as_ptr(), std::ptr::null_mut());
        }
    }
    caught
}

/// The terminal's stop signals, as [`catch_stops_until_exec`] handles them.
const STOPS: [c_int; 3] = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

/// Puts the stop signals [`catch_stops_until_exec`] caught back to their
/// default action.
///
/// # Safety
/// Child only (see `child_main`).
unsafe fn set_default(caught: [bool; 3]) {
    for (sig, _) in STOPS.into_iter().zip(caught).filter(|(_, c)| *c) {
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// The handler of [`catch_stops_until_exec`]: does nothing (it runs on
/// the child's own stack and touches no memory).
extern "C" fn discard(_: c_int) {}

/// Resets glibc's two internal signals (32, 33), which its `sigaction`
/// refuses, to their default: a process started by glibc's `posix_spawn`
/// (as `std::process::Command` starts one) has them ignored, and an ignore
/// survives `execve`, so the program would start with them ignored. For a
/// child about to exec: glibc's own handlers for them are gone from then on.
///
/// # Safety
/// Child only (see `child_main`).
unsafe fn reset_glibc_internal_signals() {
    // The kernel's `sigaction` for SIG_DFL (0), no flags, no restorer and
    // an empty mask is all zeros on these architectures (32 bytes at most).
    #[cfg(all(
        target_env = "gnu",
        any(
            target_arch = "x86_64",
            target_arch = "aarch64",
            target_arch = "riscv64"
        )
    ))]
    for sig in [32, 33] {
        let dfl = [0u64; 4];
        // Raw: rt_sigaction, which glibc's wrapper refuses for these two.
        // SAFETY: a zeroed kernel sigaction (SIG_DFL) and no old one; the
        // sigset size is the kernel's (8 bytes).
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            dfl.as_ptr(),
            std::ptr::null_mut::<c_void>(),
            8usize,
        );
    }
}

/// Reports the failed step and errno to the parent (through the shared
/// atomic: errno in the low 16 bits, the step above) and exits 127.
///
/// # Safety
/// Child only (see `child_main`).
unsafe fn fail(plan: &Plan<'_>, step: Step) -> ! {
    let code = step.pack(*libc::__errno_location());
    plan.err.store(code, Ordering::Release);
    if plan.report >= 0 {
        let bytes = code.to_ne_bytes();
        libc::write(plan.report, bytes.as_ptr().cast(), bytes.len());
    }
    libc::_exit(127)
}
