//! The one fork-based spawn: for a command with `pre_exec` hooks, which
//! can't run in a child that borrows the parent's memory (see
//! `Command::pre_exec`). The child is a copy (a raw `clone` with
//! `CLONE_VFORK` and `CLONE_PIDFD` but without `CLONE_VM`); it runs the same
//! setup as the vfork-style child (`prexec.rs`), joins its container itself
//! before exec, and, sharing no memory with the parent, reports a failed
//! step through a pipe. `CLONE_VFORK` keeps the calling thread until the
//! child has executed the program or exited, so the report, if any, is in
//! the pipe by then: it is read without waiting (waiting for end of file
//! instead would hang whenever another process forked in the meantime
//! holds a copy of the write end).

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::birth::Birth;
use super::clone3::CloneArgs;
use super::prexec::{child_main, Plan};
use super::spawn_steps::{
    block_all_signals, cloned_pidfd, failure, finish_code, pidfds_supported, restore_signals,
};
use crate::sys::{SpawnError, SpawnSpec};

/// Forks a child for `spec` that joins the cgroups behind `join` (or, with
/// `pgid`, that process group) before exec, and returns its pid and pidfd.
/// With `birth`, the child is published there before it runs (see
/// `birth.rs`).
pub(crate) fn spawn_forked(
    spec: &SpawnSpec,
    join: &[RawFd],
    pgid: Option<i32>,
    birth: Option<&Birth>,
) -> Result<(i32, OwnedFd), SpawnError> {
    let (read, write) = prepare(spec, "pre_exec hooks")?;
    let mut plan = Plan::new(spec, join, pgid);
    plan.report_to(write.as_raw_fd());
    // SAFETY: the child, our copy, only runs `child_main`, which never
    // returns.
    let (pid, pidfd, clone_err) = unsafe { fork_vfork(true, birth, || child_main(&plan)) };
    drop(write);
    // As in spawn_joining: never name the child by number.
    let pidfd = match cloned_pidfd(clone_err, pidfd) {
        Ok(pidfd) => pidfd,
        Err(e) => {
            if let Some(birth) = birth {
                birth.take_back();
            }
            return Err(e);
        }
    };
    let code = read_words(read.as_fd()).next().unwrap_or(0);
    // The child has executed the program or failed (its report pipe is
    // closed): the pidfd is ours again before a failure's reaping closes
    // it (see `birth.rs`).
    if let Some(birth) = birth {
        birth.take_back();
    }
    finish_code(pid, pidfd, code)
}

/// What both forked starts begin with: the architecture check (the raw
/// clone passes its pidfd pointer as the third argument, where x86_64 and
/// aarch64 take it), pidfds, and the pipe a child reports a failed step on.
fn prepare(spec: &SpawnSpec, what: &str) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return Err(SpawnError::Os(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{what} are supported on x86_64 and aarch64 only"),
        )));
    }
    pidfds_supported()?;
    report_pipe(spec)
}

/// A fork-style clone (no `CLONE_VM`, no new stack) with `CLONE_VFORK`,
/// and `CLONE_PIDFD` when `with_pidfd`, every signal blocked across it: the
/// child continues on a copy of this stack and memory and runs `child`;
/// this thread resumes once the child has called execve or exited. Returns
/// the child's pid, the pidfd the kernel stored (-1 without one) and the
/// clone's error. With `birth` (and `with_pidfd`) the clone is a `clone3`
/// that publishes the child there before it runs (see `birth.rs`); where
/// `clone3` is refused, the older clone publishes nothing.
///
/// # Safety
/// `child` runs in the forked copy of a threaded process: raw,
/// async-signal-safe calls only, and it must end in `execve` or `_exit`
/// (never return).
unsafe fn fork_vfork(
    with_pidfd: bool,
    birth: Option<&Birth>,
    child: impl FnOnce(),
) -> (i32, libc::c_int, Option<io::Error>) {
    let mut pidfd: libc::c_int = -1;
    let flags = libc::CLONE_VFORK | libc::SIGCHLD | if with_pidfd { libc::CLONE_PIDFD } else { 0 };
    let old_mask = block_all_signals();
    if let Some(birth) = birth.filter(|_| with_pidfd) {
        let mut args = CloneArgs {
            flags: (libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::CLONE_PARENT_SETTID) as u64,
            pidfd: birth.pidfd_ptr(),
            parent_tid: birth.pid_ptr(),
            exit_signal: libc::SIGCHLD as u64,
            ..CloneArgs::default()
        };
        let (pid, clone_err) = match crate::sys::fault::check(crate::sys::fault::Point::Clone3) {
            Err(errno) => (-1, Some(io::Error::from_raw_os_error(errno))),
            Ok(()) => {
                // Raw: clone3 without a new stack or CLONE_VM (a fork-style
                // copy, as below): rustix has no clone3.
                // SAFETY: as below; `args` and `birth`, where the kernel
                // writes the pidfd and the pid, outlive the call.
                let pid = unsafe {
                    libc::syscall(
                        libc::SYS_clone3,
                        &mut args as *mut CloneArgs,
                        std::mem::size_of::<CloneArgs>(),
                    )
                };
                if pid == 0 {
                    child();
                    // Raw: _exit in the cloned child (rustix has no exit).
                    // SAFETY: only reached if `child` returned, against its
                    // contract.
                    unsafe { libc::_exit(127) }
                }
                (pid, (pid < 0).then(io::Error::last_os_error))
            }
        };
        let refused = clone_err
            .as_ref()
            .and_then(|e| e.raw_os_error())
            .is_some_and(super::clone3::refused);
        if !refused {
            restore_signals(&old_mask);
            return (pid as i32, birth.pidfd(), clone_err);
        }
        birth.unpublished();
    }
    // Raw: the clone shim: rustix has no clone (a fork-style clone with
    // CLONE_VFORK and CLONE_PIDFD).
    // SAFETY: the caller's child never returns (see above). CLONE_VFORK
    // resumes this thread once the child has called execve or exited. With
    // CLONE_PIDFD the kernel stores the pidfd through the parent_tid
    // argument (the third on x86_64 and aarch64) into `pidfd`.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags as libc::c_ulong,
            0usize,
            &mut pidfd as *mut libc::c_int,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        child();
        // Raw: _exit in the cloned child (rustix has no exit).
        // SAFETY: only reached if `child` returned, against its contract.
        unsafe { libc::_exit(127) }
    }
    let clone_err = (pid < 0).then(io::Error::last_os_error);
    restore_signals(&old_mask);
    (pid as i32, pidfd, clone_err)
}

/// The pipe a forked child reports a failed step on: non-blocking,
/// close-on-exec, its write end moved off stdio and every kept
/// descriptor's target, so no dup2 of the child's setup overwrites it.
fn report_pipe(spec: &SpawnSpec) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let (read, write) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )
    .map_err(|e| SpawnError::Os(e.into()))?;
    let targets: Vec<_> = spec.setup.keep.iter().map(|(_, target)| *target).collect();
    let off = crate::sys::dup_off_targets(write.as_raw_fd(), &targets).map_err(SpawnError::Os)?;
    Ok((read, off))
}

/// Starts `spec` outside any container and outside this process's
/// children: a forked intermediate forks the program's process and exits,
/// so the program is re-parented (to init, or the nearest subreaper). The
/// program's setup includes `setsid` (the caller sets it). Returns the
/// program's pid, for information only: pkit holds nothing on it.
///
/// Both clones are `CLONE_VFORK` without `CLONE_VM`: this thread resumes
/// once the intermediate has exited, which it does once the program has
/// executed or failed, so every report is in the pipe by then. The program
/// reports a failed step as a positive code; the intermediate writes the
/// program's pid, negated.
pub(crate) fn spawn_detached(spec: &SpawnSpec) -> Result<i32, SpawnError> {
    let (read, write) = prepare(spec, "detached spawns")?;
    let mut plan = Plan::new(spec, &[], None);
    plan.report_to(write.as_raw_fd());
    let report = write.as_raw_fd();
    // SAFETY: the intermediate child makes raw calls only (clone, write,
    // _exit); the program's process, a copy of it, runs `child_main`, which
    // never returns.
    let (pid, pidfd, clone_err) = unsafe {
        fork_vfork(true, None, || {
            let (program, _, _) = fork_vfork(false, None, || child_main(&plan));
            if program > 0 {
                let bytes = (-program).to_ne_bytes();
                // Raw: in the intermediate child: the raw fd's write, then `_exit`.
                libc::write(report, bytes.as_ptr().cast(), bytes.len());
            }
            libc::_exit(if program > 0 { 0 } else { 1 });
        })
    };
    drop(write);
    if let Some(e) = clone_err {
        return Err(SpawnError::Os(e));
    }
    if pidfd >= 0 {
        // SAFETY: the kernel stored a new pidfd (CLONE_PIDFD) that nothing
        // else owns. The intermediate has exited: this reaps it.
        let intermediate =
            super::child::PidfdChild::new(pid, unsafe { OwnedFd::from_raw_fd(pidfd) });
        let _ = intermediate.wait_blocking(None);
    }
    let mut program = None;
    let mut failed = 0;
    for word in read_words(read.as_fd()) {
        if word < 0 {
            program = Some(-word);
        } else if word > 0 {
            failed = word;
        }
    }
    match (failed, program) {
        (0, Some(pid)) => Ok(pid),
        (0, None) => Err(SpawnError::Os(io::Error::other(
            "the detached process could not be created",
        ))),
        // The program's process exited; its new parent reaps it.
        (code, _) => Err(failure(code)),
    }
}

/// The 4-byte words written to a report pipe (non-blocking; all written),
/// without allocating (it runs on every forked spawn).
fn read_words(fd: std::os::fd::BorrowedFd<'_>) -> impl Iterator<Item = i32> {
    let mut buf = [0u8; 16];
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    let mut words = [0i32; 4];
    for (word, w) in words.iter_mut().zip(buf.chunks_exact(4)) {
        *word = i32::from_ne_bytes([w[0], w[1], w[2], w[3]]);
    }
    words.into_iter().take(got / 4)
}
