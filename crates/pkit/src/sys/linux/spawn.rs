//! Spawning a child straight into a cgroup with `clone3(CLONE_INTO_CGROUP |
//! CLONE_PIDFD)`, so it is inside its container from its first instruction.
//!
//! # What the child may do
//!
//! `clone3` here has fork semantics: the child is a copy of the calling
//! thread only, in a copy of the address space in which other threads may
//! have held locks (the allocator's, stdio's, tracing's). So between the
//! clone and `execve` the child runs only the code in [`child_main`], which
//! makes async-signal-safe system calls on data prepared beforehand: no
//! allocation, no locks, no panics, no return. Everything it needs (the
//! resolved program path, argv and envp as C arrays, the working directory,
//! the stdio fds, the error pipe) is built in the parent before the clone.
//!
//! # Signals
//!
//! The parent blocks every signal around the clone so that no handler of
//! the parent's can run in the child before it has reset its dispositions
//! (a handler writing to a shared pipe, as tokio's does, would otherwise do
//! so from the wrong process). The child resets every caught signal to its
//! default, resets SIGPIPE (which the Rust runtime ignores) to default,
//! keeps other inherited ignores (the `nohup` convention), and unblocks all
//! signals just before `execve`.
//!
//! # Errors
//!
//! A pre-exec failure (chdir, dup2, execve) is written as a 4-byte errno to
//! a close-on-exec pipe; the parent reads it: EOF means `execve` succeeded.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::super::{ChildIo, SpawnError, SpawnSpec};

/// `CLONE_INTO_CGROUP` as the u64 the clone3 ABI wants (libc's constant is
/// a truncated `c_int` on some versions).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const CLONE_PIDFD: u64 = 0x1000;

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
    err_fd: RawFd,
    /// Open `cgroup.procs` files of v1 cgroups to join before exec.
    join: &'a [RawFd],
}

/// Asks whether clone3 exists here without creating anything: a clone3 call
/// with a too-small argument size fails with `EINVAL` where the system call
/// is available, and with `ENOSYS` (or `EPERM` under some seccomp filters)
/// where it is not.
pub(crate) fn probe_clone3() -> Result<(), i32> {
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

/// Spawns `spec` into the cgroup whose directory is `cgroup_dir`.
///
/// `SpawnError::Refused` means clone3 itself was refused (no such system
/// call, seccomp, a kernel without CLONE_INTO_CGROUP): the caller may fall
/// back to another placement.
pub(crate) fn spawn_into_cgroup(
    spec: &SpawnSpec,
    cgroup_dir: BorrowedFd<'_>,
    join: &[RawFd],
) -> Result<(i32, OwnedFd), SpawnError> {
    let stdio = spec.stdio_fds();
    let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| SpawnError::Os(e.into()))?;
    let plan = Plan {
        path: &spec.path,
        argv: null_terminated(&spec.argv),
        envp: null_terminated(&spec.envp),
        cwd: spec.cwd.as_ref(),
        stdio,
        err_fd: err_w.as_raw_fd(),
        join,
    };

    let mut pidfd: RawFd = -1;
    let args = CloneArgs {
        flags: CLONE_PIDFD | CLONE_INTO_CGROUP,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };

    let old_mask = block_all_signals();
    // SAFETY: clone3 with fork semantics (no CLONE_VM, no new stack): the
    // child continues on a private copy of this stack and only runs
    // `child_main`, which never returns. `args` and `pidfd` outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc == 0 {
        // SAFETY: we are the child; see the module docs for what it may do.
        unsafe { child_main(&plan) }
    }
    let clone_err = (rc < 0).then(io::Error::last_os_error);
    restore_signals(&old_mask);
    drop(err_w);

    if let Some(err) = clone_err {
        return Err(match err.raw_os_error() {
            Some(libc::ENOSYS | libc::EPERM | libc::E2BIG | libc::EOPNOTSUPP) => {
                SpawnError::Refused(err)
            }
            _ => SpawnError::Os(err),
        });
    }
    let pid = rc as i32;
    // SAFETY: the kernel stored a new pidfd (CLONE_PIDFD) that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop(plan);

    match read_exec_error(&err_r) {
        None => Ok((pid, pidfd)),
        Some(errno) => {
            // The child has exited (or is about to) with 127: reap it.
            let child = super::child::ChildHandle::new(pid, pidfd);
            let _ = child.wait_blocking(None);
            drop(child);
            Err(SpawnError::Exec(io::Error::from_raw_os_error(errno)))
        }
    }
}

/// Reads the child's errno report: `None` when the pipe closed empty
/// (execve succeeded and closed it).
fn read_exec_error(fd: &OwnedFd) -> Option<i32> {
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match rustix::io::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    (got == 4).then(|| i32::from_ne_bytes(buf))
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

/// The child between clone and exec.
///
/// # Safety
/// Must only be called in the freshly cloned child. It makes raw,
/// async-signal-safe calls on the pre-built `plan` and never returns.
unsafe fn child_main(plan: &Plan<'_>) -> ! {
    // Stdio. Sources are all >= 3 (see SpawnSpec::stdio_fds), so no dup2
    // overwrites a source still to be used; dup2 clears close-on-exec.
    for (target, src) in plan.stdio.iter().enumerate() {
        if let Some(fd) = *src {
            if libc::dup2(fd, target as RawFd) < 0 {
                fail(plan.err_fd);
            }
        }
    }
    if let Some(dir) = plan.cwd {
        if libc::chdir(dir.as_ptr()) < 0 {
            fail(plan.err_fd);
        }
    }
    // v1 limit cgroups: "0" means the writing process itself.
    for &procs in plan.join {
        if libc::write(procs, b"0".as_ptr().cast(), 1) < 0 {
            fail(plan.err_fd);
        }
    }
    reset_signal_dispositions();
    // Any fd a library opened without O_CLOEXEC must not leak into the child.
    // CLOSE_RANGE_CLOEXEC keeps our error pipe usable until execve. Failure
    // (kernels before 5.11) is harmless.
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
    fail(plan.err_fd)
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

/// Reports errno to the parent and exits with 127.
///
/// # Safety
/// Child only (see `child_main`).
unsafe fn fail(err_fd: RawFd) -> ! {
    let errno = *libc::__errno_location();
    let bytes = errno.to_ne_bytes();
    libc::write(err_fd, bytes.as_ptr().cast(), bytes.len());
    libc::_exit(127)
}

impl SpawnSpec {
    /// The child's stdio fds (`None` = inherit the parent's).
    fn stdio_fds(&self) -> [Option<RawFd>; 3] {
        let pick = |io: &ChildIo| match io {
            ChildIo::Inherit => None,
            ChildIo::Fd(fd) => Some(fd.as_raw_fd()),
        };
        [pick(&self.stdin), pick(&self.stdout), pick(&self.stderr)]
    }
}
