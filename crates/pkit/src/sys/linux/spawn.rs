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
//!    assembly per architecture ([`clone3_shim`]) switch to the child's entry
//!    function right after the system call.
//! 2. Where clone3 is refused (ENOSYS, EPERM under seccomp, E2BIG on kernels
//!    without `CLONE_INTO_CGROUP`, EOPNOTSUPP) or this architecture has no
//!    shim: glibc's `clone(CLONE_VM | CLONE_VFORK)`, the child writing itself
//!    into the cgroup's pre-opened `cgroup.procs` just before `execve`, and
//!    `pidfd_open` in the parent. The group reports this placement.
//!
//! cgroup v1 limit cgroups (hybrid hosts) have no clone-time placement: the
//! child joins them with a `write` to their pre-opened `cgroup.procs`.
//!
//! # What the child may do
//!
//! Until `execve` the child runs on its own stack but in the parent's
//! memory, while the calling thread is suspended (`CLONE_VFORK`) and the
//! parent's other threads keep running. So [`child_main`] only makes raw,
//! async-signal-safe system calls (`dup2`, `chdir`, `write`, `setpgid`,
//! `sigaction`, `sigprocmask`, `close_range`, `execve`, `_exit`) on data the
//! parent prepared before the clone: the resolved path, argv and envp as
//! null-terminated arrays, the stdio fds, the fds to join through. It
//! allocates nothing, takes no lock, can't panic, and writes to the shared
//! memory only one thing: the errno of a failed step, into an atomic the
//! suspended parent reads once it resumes. (glibc's wrappers also store errno
//! in the calling thread's slot, which the child shares with the suspended
//! parent thread; nothing reads it in between.)
//!
//! # Signals
//!
//! The parent blocks every signal around the clone, so no handler of the
//! parent's ever runs in the child on shared memory. The child resets every
//! caught signal, and SIGPIPE (which the Rust runtime ignores), to the
//! default disposition — its handler table is a copy, as no `CLONE_SIGHAND`
//! is asked for — keeps inherited ignores (the `nohup` convention), and
//! unblocks all signals just before `execve`.

use std::ffi::{c_int, c_void, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use super::super::{ChildIo, SpawnError, SpawnSpec};

/// `CLONE_INTO_CGROUP` as the u64 the clone3 ABI wants (libc's constant is
/// a truncated `c_int` on some versions).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;

/// The child's stack. It runs a handful of system calls: 64 KiB is plenty,
/// and stays below glibc's mmap threshold (a cheap allocation).
const STACK_SIZE: usize = 64 * 1024;

/// `struct clone_args` (linux/sched.h), version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Everything the child touches, prepared before the clone.
struct Plan<'a> {
    path: &'a CString,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cwd: Option<&'a CString>,
    stdio: [Option<RawFd>; 3],
    /// `cgroup.procs` files to join through before exec ("0" = myself).
    join: &'a [RawFd],
    /// `Some(pgid)`: join process group `pgid` (0: lead a new one).
    pgid: Option<libc::pid_t>,
    /// The errno of the step that failed, or 0.
    err: AtomicI32,
}

/// Asks whether clone3 exists here without creating anything: a clone3 call
/// with a too-small argument size fails with `EINVAL` where the system call
/// is available, and with `ENOSYS` (or `EPERM` under some seccomp filters)
/// where it is not.
pub(crate) fn probe_clone3() -> Result<(), i32> {
    if !clone3_shim::AVAILABLE {
        return Err(libc::ENOSYS);
    }
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
/// `SpawnError::Refused` means clone3 itself was refused: the caller may
/// take the next rung.
pub(crate) fn spawn_into_cgroup(
    spec: &SpawnSpec,
    cgroup_dir: BorrowedFd<'_>,
    join: &[RawFd],
) -> Result<(i32, OwnedFd), SpawnError> {
    if !clone3_shim::AVAILABLE {
        return Err(SpawnError::Refused(io::Error::from_raw_os_error(
            libc::ENOSYS,
        )));
    }
    let plan = Plan::new(spec, join, None);
    let mut stack = Stack::new();
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_INTO_CGROUP,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.base() as u64,
        stack_size: STACK_SIZE as u64,
        cgroup: cgroup_dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };

    let old_mask = block_all_signals();
    // SAFETY: the shim makes the clone3 system call with `args`, which
    // lives (with `pidfd` and the stack) until the call returns; the child
    // runs `child_entry(&plan)` on its own stack and never returns into our
    // frames. With CLONE_VFORK this thread resumes only once the child has
    // called execve or exited, so `plan` outlives every use by the child.
    let rc = unsafe {
        clone3_shim::clone3(
            &mut args,
            std::mem::size_of::<CloneArgs>(),
            child_entry,
            &plan as *const Plan<'_> as *mut c_void,
        )
    };
    restore_signals(&old_mask);
    drop(stack);
    if rc < 0 {
        let err = io::Error::from_raw_os_error((-rc) as i32);
        return Err(match (-rc) as i32 {
            libc::ENOSYS | libc::EPERM | libc::E2BIG | libc::EOPNOTSUPP => SpawnError::Refused(err),
            _ => SpawnError::Os(err),
        });
    }
    // SAFETY: the kernel stored a new pidfd (CLONE_PIDFD) that nothing else
    // owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    finish(rc as i32, pidfd, &plan)
}

/// Rung 2: a vfork-style child that joins the cgroups behind `join` (the
/// v2 cgroup's `cgroup.procs` among them) itself before exec; or, with
/// `pgid`, joins that process group (0: leads a new one).
pub(crate) fn spawn_joining(
    spec: &SpawnSpec,
    join: &[RawFd],
    pgid: Option<i32>,
) -> Result<(i32, OwnedFd), SpawnError> {
    let plan = Plan::new(spec, join, pgid);
    let mut stack = Stack::new();
    let old_mask = block_all_signals();
    // SAFETY: glibc's clone runs `child_entry(&plan)` on the new stack
    // (`top` is its 16-byte aligned end). With CLONE_VM | CLONE_VFORK this
    // thread resumes once the child has called execve or exited, so `plan`
    // and the stack outlive every use by the child.
    let pid = unsafe {
        libc::clone(
            child_entry,
            stack.top(),
            (CLONE_VM | CLONE_VFORK) as c_int | libc::SIGCHLD,
            &plan as *const Plan<'_> as *mut c_void,
        )
    };
    let clone_err = (pid < 0).then(io::Error::last_os_error);
    restore_signals(&old_mask);
    drop(stack);
    if let Some(e) = clone_err {
        return Err(SpawnError::Os(e));
    }
    let p = rustix::process::Pid::from_raw(pid).expect("clone returned a positive pid");
    let pidfd = match rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            // Without a pidfd we can't wait safely: kill it, reap it by pid
            // (it is our unreaped child, so the pid is still its own).
            let _ = super::signal::kill_pid(pid, libc::SIGKILL);
            let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
            return Err(SpawnError::Os(io::Error::new(
                e.kind(),
                format!("pidfd_open failed (Linux >= 5.3 is required): {e}"),
            )));
        }
    };
    finish(pid, pidfd, &plan)
}

/// After the clone: reports the child's pre-exec failure, if any (the
/// child has then exited; it is reaped here).
fn finish(pid: i32, pidfd: OwnedFd, plan: &Plan<'_>) -> Result<(i32, OwnedFd), SpawnError> {
    match plan.err.load(Ordering::Acquire) {
        0 => Ok((pid, pidfd)),
        code => {
            let child = super::child::ChildHandle::new(pid, pidfd);
            let _ = child.wait_blocking(None);
            drop(child);
            let source = io::Error::from_raw_os_error(code & 0xFFFF);
            Err(match Step::from_code(code >> 16) {
                Step::Exec => SpawnError::Exec(source),
                Step::Chdir => SpawnError::Chdir(source),
                step => SpawnError::Os(io::Error::new(
                    source.kind(),
                    format!("{}: {source}", step.what()),
                )),
            })
        }
    }
}

impl<'a> Plan<'a> {
    fn new(spec: &'a SpawnSpec, join: &'a [RawFd], pgid: Option<i32>) -> Plan<'a> {
        Plan {
            path: &spec.path,
            argv: null_terminated(&spec.argv),
            envp: null_terminated(&spec.envp),
            cwd: spec.cwd.as_ref(),
            stdio: spec.stdio_fds(),
            join,
            pgid,
            err: AtomicI32::new(0),
        }
    }
}

/// The child's stack: uninitialised heap memory, 16-byte aligned.
struct Stack(Vec<u128>);

impl Stack {
    fn new() -> Stack {
        Stack(Vec::with_capacity(STACK_SIZE / 16))
    }

    fn base(&mut self) -> *mut u8 {
        self.0.as_mut_ptr().cast()
    }

    fn top(&mut self) -> *mut c_void {
        // SAFETY: one past the end of the allocation, which is STACK_SIZE
        // bytes long; the stack grows down from there.
        unsafe { self.base().add(STACK_SIZE).cast() }
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

pub(crate) fn block_all_signals() -> libc::sigset_t {
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises `all`; pthread_sigmask writes `old`.
    unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr());
        old.assume_init()
    }
}

pub(crate) fn restore_signals(old: &libc::sigset_t) {
    // SAFETY: `old` is the mask pthread_sigmask returned above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
}

/// The child's entry point, on its own stack.
extern "C" fn child_entry(plan: *mut c_void) -> c_int {
    // SAFETY: `plan` is the `Plan` the suspended parent passed to the clone;
    // it stays valid until this child execs or exits. We are the child.
    unsafe { child_main(&*(plan as *const Plan<'_>)) }
}

/// The child between clone and exec (see the module docs).
///
/// # Safety
/// Must only run in the freshly cloned child. It makes raw,
/// async-signal-safe calls on the pre-built `plan` and never returns.
unsafe fn child_main(plan: &Plan<'_>) -> ! {
    // Stdio. Sources are all >= 3 (see SpawnSpec::stdio_fds), so no dup2
    // overwrites a source still to be used; dup2 clears close-on-exec.
    for (target, src) in plan.stdio.iter().enumerate() {
        if let Some(fd) = *src {
            if libc::dup2(fd, target as RawFd) < 0 {
                fail(plan, Step::Stdio);
            }
        }
    }
    if let Some(dir) = plan.cwd {
        if libc::chdir(dir.as_ptr()) < 0 {
            fail(plan, Step::Chdir);
        }
    }
    if let Some(pgid) = plan.pgid {
        if libc::setpgid(0, pgid) < 0 {
            fail(plan, Step::ProcessGroup);
        }
    }
    // cgroups: "0" means the writing process itself.
    for &procs in plan.join {
        if libc::write(procs, b"0".as_ptr().cast(), 1) < 0 {
            fail(plan, Step::JoinCgroup);
        }
    }
    reset_signal_dispositions();
    // Any fd a library opened without O_CLOEXEC must not leak into the
    // program. Failure (kernels before 5.11) is harmless.
    libc::syscall(
        libc::SYS_close_range,
        3u32,
        u32::MAX,
        libc::CLOSE_RANGE_CLOEXEC,
    );
    let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
    libc::sigemptyset(empty.as_mut_ptr());
    libc::pthread_sigmask(libc::SIG_SETMASK, empty.as_ptr(), std::ptr::null_mut());

    libc::execve(plan.path.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
    fail(plan, Step::Exec)
}

/// Resets caught signals, and SIGPIPE, to their default disposition.
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
        if sig == libc::SIGPIPE || (handler != libc::SIG_DFL && handler != libc::SIG_IGN) {
            let mut new = MaybeUninit::<libc::sigaction>::zeroed();
            new.assume_init_mut().sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, new.as_ptr(), std::ptr::null_mut());
        }
    }
}

/// The child's steps before exec that can fail, reported with the errno so
/// that the parent can tell a missing program from a missing directory or a
/// refused cgroup join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
enum Step {
    Stdio = 1,
    Chdir = 2,
    ProcessGroup = 3,
    JoinCgroup = 4,
    Exec = 5,
}

impl Step {
    fn from_code(code: i32) -> Step {
        match code {
            1 => Step::Stdio,
            2 => Step::Chdir,
            3 => Step::ProcessGroup,
            4 => Step::JoinCgroup,
            _ => Step::Exec,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Step::Stdio => "setting up stdio",
            Step::Chdir => "changing directory",
            Step::ProcessGroup => "joining the process group",
            Step::JoinCgroup => "joining the cgroup",
            Step::Exec => "exec",
        }
    }
}

/// Reports the failed step and errno to the parent (through the shared
/// atomic: errno in the low 16 bits, the step above) and exits 127.
///
/// # Safety
/// Child only (see `child_main`).
unsafe fn fail(plan: &Plan<'_>, step: Step) -> ! {
    let errno = *libc::__errno_location();
    plan.err.store(
        ((step as i32) << 16) | (errno.clamp(1, 0xFFFF)),
        Ordering::Release,
    );
    libc::_exit(127)
}

impl SpawnSpec {
    /// The child's stdio fds (`None` = inherit the parent's).
    fn stdio_fds(&self) -> [Option<RawFd>; 3] {
        let pick = |io: &ChildIo| match io {
            ChildIo::Inherit => None,
            ChildIo::Fd(fd) => Some(fd.as_raw_fd()),
            ChildIo::Null(fd) => Some(*fd),
        };
        [pick(&self.stdin), pick(&self.stdout), pick(&self.stderr)]
    }
}

/// The clone3 entry shim: makes the system call, and in the child (on its
/// new stack) calls `entry(arg)` instead of returning. Returns the child's
/// pid, or `-errno`, in the parent.
mod clone3_shim {
    use std::ffi::{c_int, c_void};

    use super::CloneArgs;

    type Entry = extern "C" fn(*mut c_void) -> c_int;

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub(super) const AVAILABLE: bool = true;
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub(super) const AVAILABLE: bool = false;

    // x86_64: the syscall instruction clobbers rcx and r11 only, and the
    // child starts with the parent's other registers (rax = 0, rsp = the new
    // stack's top), so entry and arg travel in r8 and r9.
    #[cfg(target_arch = "x86_64")]
    std::arch::global_asm!(
        ".pushsection .text.pkit_clone3_vfork_shim,\"ax\",@progbits",
        ".globl pkit_clone3_vfork_shim_0_1",
        ".hidden pkit_clone3_vfork_shim_0_1",
        ".type pkit_clone3_vfork_shim_0_1,@function",
        "pkit_clone3_vfork_shim_0_1:",
        "mov r8, rdx",
        "mov r9, rcx",
        "mov eax, 435",
        "syscall",
        "test rax, rax",
        "jnz 2f",
        "xor ebp, ebp",
        "and rsp, -16",
        "mov rdi, r9",
        "call r8",
        "ud2",
        "2:",
        "ret",
        ".size pkit_clone3_vfork_shim_0_1, .-pkit_clone3_vfork_shim_0_1",
        ".popsection",
    );

    // aarch64: `svc` preserves every register but x0, so entry and arg
    // travel in x9 and x10; the kernel sets sp to the new stack's top.
    #[cfg(target_arch = "aarch64")]
    std::arch::global_asm!(
        ".pushsection .text.pkit_clone3_vfork_shim,\"ax\",@progbits",
        ".globl pkit_clone3_vfork_shim_0_1",
        ".hidden pkit_clone3_vfork_shim_0_1",
        ".type pkit_clone3_vfork_shim_0_1,%function",
        "pkit_clone3_vfork_shim_0_1:",
        "mov x9, x2",
        "mov x10, x3",
        "mov x8, #435",
        "svc #0",
        "cbnz x0, 2f",
        "mov x29, xzr",
        "mov x30, xzr",
        "mov x0, x10",
        "blr x9",
        "brk #0x1",
        "2:",
        "ret",
        ".size pkit_clone3_vfork_shim_0_1, .-pkit_clone3_vfork_shim_0_1",
        ".popsection",
    );

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    extern "C" {
        fn pkit_clone3_vfork_shim_0_1(
            args: *mut CloneArgs,
            size: usize,
            entry: Entry,
            arg: *mut c_void,
        ) -> isize;
    }

    /// # Safety
    /// `args` must describe a clone with its own stack; `entry(arg)` runs in
    /// the child and must never return.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub(super) unsafe fn clone3(
        args: *mut CloneArgs,
        size: usize,
        entry: Entry,
        arg: *mut c_void,
    ) -> isize {
        pkit_clone3_vfork_shim_0_1(args, size, entry, arg)
    }

    /// # Safety
    /// Never called: `AVAILABLE` is false on this architecture.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub(super) unsafe fn clone3(_: *mut CloneArgs, _: usize, _: Entry, _: *mut c_void) -> isize {
        -(libc::ENOSYS as isize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::ChildIo;
    use std::os::fd::AsRawFd;

    fn spec(path: &str, cwd: Option<&str>) -> SpawnSpec {
        let c = |s: &str| CString::new(s).unwrap();
        SpawnSpec {
            path: c(path),
            argv: vec![c(path)],
            envp: Vec::new(),
            cwd: cwd.map(c),
            stdin: ChildIo::Inherit,
            stdout: ChildIo::Inherit,
            stderr: ChildIo::Inherit,
        }
    }

    /// Each failing step before exec comes back as what it is, not as an
    /// exec errno that would read as "program not found".
    #[test]
    fn a_failed_step_is_reported_as_that_step() {
        match spawn_joining(&spec("/bin/true", Some("/nonexistent-pkit-dir")), &[], None) {
            Err(SpawnError::Chdir(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("chdir: {other:?}"),
        }
        // A "cgroup.procs" that refuses the write (open read-only).
        let procs = std::fs::File::open("/dev/null").unwrap();
        match spawn_joining(&spec("/bin/true", None), &[procs.as_raw_fd()], None) {
            Err(SpawnError::Os(e)) => {
                assert!(e.to_string().contains("joining the cgroup"), "{e}")
            }
            other => panic!("join: {other:?}"),
        }
        match spawn_joining(&spec("/nonexistent-pkit-program", None), &[], None) {
            Err(SpawnError::Exec(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("exec: {other:?}"),
        }
        // And a good spawn still works: the pid is reaped here.
        let (pid, pidfd) = spawn_joining(&spec("/bin/true", None), &[], None).unwrap();
        let child = super::super::child::ChildHandle::new(pid, pidfd);
        child.wait_blocking(None).unwrap();
    }
}
