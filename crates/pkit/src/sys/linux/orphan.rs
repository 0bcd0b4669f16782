//! Starting a program that is nobody's child in this process's tree,
//! without copying this process's address space.
//!
//! The owner-death guard must outlive its owner and must not be the
//! owner's child (the owner would have to reap it, and an application's
//! `waitpid(-1)` could take it). The classic way is a double fork, which
//! copies the page tables twice: hundreds of milliseconds in a parent
//! holding gigabytes. Here both steps are vfork-style instead, as in
//! `spawn.rs`:
//!
//! 1. This thread clones a launcher with `CLONE_VM | CLONE_VFORK |
//!    CLONE_FILES` on a small stack of its own: it borrows our memory and
//!    shares our descriptor table, and this thread is suspended until it
//!    exits.
//! 2. The launcher spawns the program exactly as `spawn_joining` does
//!    (`CLONE_VM | CLONE_VFORK | CLONE_PIDFD`, the child running
//!    `prexec.rs` up to `execve`), then exits. The program's pidfd lands in
//!    the shared descriptor table, so it is ours; the program is reparented
//!    to init (or the nearest subreaper).
//!
//! The launcher runs only raw calls on data prepared before the first
//! clone (the same rules as the spawned child's: no allocation, no lock,
//! no panic), with every signal blocked (inherited from this thread's mask).

use std::ffi::{c_int, c_void};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use super::prexec::{child_entry, Plan};
use super::spawn_steps::{block_all_signals, failure, pidfds_supported, restore_signals, Stack};
use crate::sys::{SpawnError, SpawnSpec};

const CLONE_VM: c_int = 0x100;
const CLONE_FILES: c_int = 0x400;
const CLONE_VFORK: c_int = 0x4000;
const CLONE_PIDFD: c_int = 0x1000;

/// What the launcher works on, prepared before the first clone.
struct Launch<'a> {
    plan: Plan<'a>,
    /// The program's stack (the launcher's is another).
    stack_top: *mut c_void,
    /// The program's pid, or -errno of the launcher's clone.
    pid: AtomicI32,
    /// The program's pidfd (stored by the kernel).
    pidfd: c_int,
}

/// Spawns `spec` as an orphan (see the module docs): its pid and pidfd. The
/// program is not our child: it is never reaped here. It starts with the
/// terminal's signals blocked (`unix/held_signals.rs`): the guard, the one
/// program started this way, is in this process's group until its
/// `setsid` (which `spec` makes the child's first step), and a `^Z`, `^C`
/// or `^\` there must not stop or kill it before it ignores them.
pub(crate) fn spawn_orphan(spec: &SpawnSpec) -> Result<(i32, OwnedFd), SpawnError> {
    pidfds_supported()?;
    let mut launcher_stack = Stack::new();
    let mut program_stack = Stack::new();
    let mut plan = Plan::new(spec, &[], None);
    plan.hold_terminal_signals();
    let mut launch = Launch {
        plan,
        stack_top: program_stack.top(),
        pid: AtomicI32::new(0),
        pidfd: -1,
    };
    let mut launcher_pidfd: c_int = -1;
    let old_mask = block_all_signals();
    // Raw: the clone shim: rustix has no clone/clone3 (a child on its own stack, CLONE_PIDFD,
    // CLONE_INTO_CGROUP).
    // SAFETY: glibc's clone runs `launcher_entry(&launch)` on the
    // launcher's stack; with CLONE_VM | CLONE_VFORK this thread resumes
    // only once the launcher has exited, so `launch`, both stacks and the
    // plan outlive every use by the launcher and by the program (which the
    // launcher waits for the same way). CLONE_PIDFD stores the launcher's
    // pidfd (in our descriptor table) into `launcher_pidfd`.
    let pid = unsafe {
        libc::clone(
            launcher_entry,
            launcher_stack.top(),
            CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_PIDFD | libc::SIGCHLD,
            &mut launch as *mut Launch<'_> as *mut c_void,
            &mut launcher_pidfd as *mut c_int,
        )
    };
    let clone_err = (pid < 0).then(io::Error::last_os_error);
    restore_signals(&old_mask);
    drop(launcher_stack);
    drop(program_stack);
    if let Some(e) = clone_err {
        return Err(SpawnError::Os(e));
    }
    // Reap the launcher (it has exited, or is about to: CLONE_VFORK ends
    // when it releases the memory, a moment before it is a zombie). By its
    // pidfd, never by number; an error (SIGCHLD ignored: the kernel reaped
    // it) changes nothing, as the launcher reports through `launch`.
    if launcher_pidfd >= 0 {
        // SAFETY: the kernel stored a new pidfd (CLONE_PIDFD) that nothing
        // else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(launcher_pidfd) };
        let launcher = super::child::PidfdChild::new(pid, fd);
        let _ = launcher.wait_blocking(None);
    }
    let program = launch.pid.load(Ordering::Acquire);
    // A failed clone owns nothing: the kernel writes the pidfd's number
    // before its last checks (a full `pids.max` refuses the fork after
    // that), and on failure never installs it, so the number may name no
    // descriptor, or another one of ours by the time we look.
    if program < 0 {
        return Err(SpawnError::Os(io::Error::from_raw_os_error(-program)));
    }
    // SAFETY: the launcher's clone succeeded; when nonnegative, the kernel
    // stored a new pidfd (CLONE_PIDFD) in our shared descriptor table,
    // owned by nobody else.
    let pidfd = (launch.pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(launch.pidfd) });
    let Some(pidfd) = pidfd else {
        return Err(SpawnError::Os(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel gave no pidfd for the child (Linux 5.3 or later is required)",
        )));
    };
    match launch.plan.err.load(Ordering::Acquire) {
        0 => Ok((program, pidfd)),
        // It exited before exec (init reaps it: it is not ours).
        code => Err(failure(code)),
    }
}

/// The launcher (see the module docs).
extern "C" fn launcher_entry(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Launch` the suspended parent thread passed; it
    // stays valid until this launcher exits. We are the launcher: the
    // clone below is glibc's thin wrapper, and the program it starts runs
    // `child_entry` on its own stack, as in `spawn_joining`; with
    // CLONE_VFORK we resume once it has called execve or exited.
    unsafe {
        // Raw: in the launcher (a vfork-style child): the clone shim, errno and _exit, none of
        // which rustix has.
        let launch = &mut *(arg as *mut Launch<'_>);
        let pid = libc::clone(
            child_entry,
            launch.stack_top,
            CLONE_VM | CLONE_VFORK | CLONE_PIDFD | libc::SIGCHLD,
            &launch.plan as *const Plan<'_> as *mut c_void,
            &mut launch.pidfd as *mut c_int,
        );
        let value = if pid < 0 {
            -(*libc::__errno_location()).max(1)
        } else {
            pid
        };
        launch.pid.store(value, Ordering::Release);
        libc::_exit(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::ChildIo;
    use std::ffi::CString;
    use std::os::fd::AsFd;

    fn spec(argv: &[&str]) -> SpawnSpec {
        let c = |s: &str| CString::new(s).unwrap();
        SpawnSpec {
            path: c(argv[0]),
            argv: argv.iter().map(|a| c(a)).collect(),
            envp: crate::sys::ChildEnv::Exactly(Default::default()),
            cwd: None,
            stdin: ChildIo::Inherit,
            stdout: ChildIo::Inherit,
            stderr: ChildIo::Inherit,
            setup: Default::default(),
        }
    }

    fn parent_of(pid: i32) -> Option<u32> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &text[text.rfind(')')? + 1..];
        rest.split_whitespace().nth(1)?.parse().ok()
    }

    /// The program runs, is not our child, and its pidfd is ours.
    #[test]
    fn an_orphan_is_nobodys_child_here() {
        let (pid, pidfd) = spawn_orphan(&spec(&["/bin/sleep", "30"])).expect("spawn");
        let parent = parent_of(pid).expect("running");
        assert_ne!(parent, std::process::id(), "not our child");
        // Ours to end, through the pidfd; init reaps it.
        rustix::process::pidfd_send_signal(pidfd.as_fd(), rustix::process::Signal::KILL)
            .expect("SIGKILL through the pidfd");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|t| {
                    t[t.rfind(')')? + 1..]
                        .split_whitespace()
                        .next()
                        .map(String::from)
                });
            if matches!(state.as_deref(), None | Some("Z") | Some("X")) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "still {state:?}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn a_failed_exec_is_reported() {
        match spawn_orphan(&spec(&["/nonexistent-pkit-program"])) {
            Err(SpawnError::Exec(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("{other:?}"),
        }
    }
}
