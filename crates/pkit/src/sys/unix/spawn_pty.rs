//! A pty session (`ctty`): the child must lead a new session and take the
//! terminal's slave side (its stdin) as that session's controlling
//! terminal before its program runs. Wherever a trampoline can be used
//! (glibc Linux, macOS, FreeBSD), it does both, started with the slave on
//! fd 0, 1 and 2 and without `POSIX_SPAWN_SETPGROUP` (a process-group
//! leader can't call `setsid`).
//!
//! It must never be in the owner's process group: a terminal's `^Z`
//! (SIGTSTP to its foreground group, the owner's) would stop it there,
//! with the default action, while an owner that catches the signal waits
//! for its ready byte for ever; a `^C` would kill it. So it is started
//! leading a new session where the C library can
//! ([`trampoline_session_flag`]: `POSIX_SPAWN_SETSID` on glibc and macOS
//! 10.15 or later), and calls `setsid` itself before it says it is ready
//! (see `trampoline.rs`; found done where the spawn did it): FreeBSD's
//! `posix_spawn` has no such flag, and there the trampoline is in the
//! owner's group from the spawn to that call. For that window (and
//! glibc's, between its clone and its `setsid`) it starts with the
//! terminal's signals blocked, and lets them in once in its own session
//! (`held_signals.rs`).
//!
//! The owner-death guard registers the group as a session of its own,
//! and spares a holder of the number in another session as a stranger,
//! so the session must exist before the program can run (a trampoline
//! still in the owner's session when the owner dies is spared, and exits
//! at end of file without running the program). After the go byte the
//! shared session steps (`setup_steps::session`: `setsid` found done,
//! then `ioctl(0, TIOCSCTTY, 0)`), a failure reported as the step that
//! failed. This is one path on every platform, so that
//! `PKIT_MECHANISM=portable` on Linux runs what macOS and FreeBSD run
//! (FreeBSD's start without `POSIX_SPAWN_SETSID` runs on Linux under the
//! `fault-injection` feature's [`Point::SpawnSetsid`](crate::sys::fault::Point::SpawnSetsid)).
//!
//! Without a trampoline (musl, `PKIT_SPAWN_TRAMPOLINE=off`, an executable
//! that can't be run again) only Linux can start a pty session:
//! `POSIX_SPAWN_SETSID` makes the child lead a new session (and a new
//! process group numbered by its pid, the group's: a pty child is always
//! its group's first process), then the file actions open the terminal's
//! slave side again as fd 0, through `/proc/self/fd/N` (the child's copy
//! of the slave descriptor), without `O_NOCTTY`: on Linux a session leader
//! without a controlling terminal acquires the terminal it opens, which is
//! what `TIOCSCTTY` would have done. The C library runs `setsid` before
//! the file actions (glibc and musl both). Elsewhere an open does not make
//! a controlling terminal (the BSDs and macOS want `TIOCSCTTY`), and the
//! start is refused ([`needs_trampoline`](super::spawn::needs_trampoline)).

use std::ffi::CString;
use std::io;

use super::spawn_check as check;
use crate::sys::{ChildIo, SpawnError, SpawnSpec};

/// Whether a start goes through the trampoline whenever one can be used,
/// even where `posix_spawn` alone could serve it: a pty session, which
/// takes its terminal there on every platform (see the module docs).
pub(crate) fn prefers_trampoline(spec: &SpawnSpec) -> bool {
    spec.setup.ctty
}

/// The process-group or session flag of a pty session's start
/// (`ctty`; `in_trampoline`: through a trampoline, which leads a new
/// session, started so where the C library can, else by its own
/// `setsid`: never as a process-group leader, which can't call it).
pub(super) fn group_flag(ctty: bool, in_trampoline: bool) -> libc::c_int {
    match (ctty, in_trampoline) {
        (false, _) => libc::POSIX_SPAWN_SETPGROUP,
        (true, true) => trampoline_session_flag(),
        (true, false) => session_flag(),
    }
}

/// `POSIX_SPAWN_SETSID` for a pty session's trampoline where the C
/// library has it: glibc (2.26 and later; pkit's Linux start without a
/// trampoline needs it too) and macOS (xnu's `bsd/sys/spawn.h`, 0x0400,
/// applied by `posix_spawn` in `kern_exec.c` since xnu-6153, macOS
/// 10.15; an older kernel ignores the bit and the trampoline's own
/// `setsid` makes the session). Not FreeBSD: its `posix_spawn`
/// (`lib/libc/gen/posix_spawn.c`) has no such flag, and its
/// `posix_spawnattr_setflags` refuses a flag it does not know.
fn trampoline_session_flag() -> libc::c_int {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let flag = libc::POSIX_SPAWN_SETSID as libc::c_int;
    // Not in the libc crate for macOS.
    #[cfg(target_os = "macos")]
    let flag: libc::c_int = 0x0400;
    #[cfg(not(any(all(target_os = "linux", target_env = "gnu"), target_os = "macos")))]
    let flag: libc::c_int = 0;
    // FreeBSD's start, on a platform that has the flag (tests).
    match crate::sys::fault::check(crate::sys::fault::Point::SpawnSetsid) {
        Ok(()) => flag,
        Err(_) => 0,
    }
}

/// `POSIX_SPAWN_SETSID`, for a pty session without a trampoline, where
/// the platform's open then makes the controlling terminal (Linux: glibc
/// and musl).
#[cfg(target_os = "linux")]
fn session_flag() -> libc::c_int {
    libc::POSIX_SPAWN_SETSID as libc::c_int
}

/// Never used: [`needs_trampoline`](super::spawn::needs_trampoline) refuses a pty without a trampoline
/// first.
#[cfg(not(target_os = "linux"))]
fn session_flag() -> libc::c_int {
    0
}

/// A pty child's stdio without a trampoline (Linux): the terminal's
/// slave side (`slave`, the spawn's stdin) opened again as fd 0 in the
/// child, after `setsid`, so that it becomes the child's controlling
/// terminal (see the module docs); then fd 1 and 2 are copies of it.
pub(super) fn terminal(
    actions: &mut libc::posix_spawn_file_actions_t,
    slave: &ChildIo,
) -> Result<(), SpawnError> {
    use std::os::fd::AsRawFd;
    let ChildIo::Fd(fd) = slave else {
        return Err(SpawnError::Os(io::Error::from_raw_os_error(libc::EINVAL)));
    };
    let path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| SpawnError::Os(io::Error::from_raw_os_error(libc::EINVAL)))?;
    // SAFETY: our initialised actions object; the path is copied by the C
    // library (glibc and musl both copy it at this call); fd numbers.
    unsafe {
        check(libc::posix_spawn_file_actions_addopen(
            actions,
            0,
            path.as_ptr(),
            libc::O_RDWR,
            0,
        ))?;
        check(libc::posix_spawn_file_actions_adddup2(actions, 0, 1))?;
        check(libc::posix_spawn_file_actions_adddup2(actions, 0, 2))
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::super::spawn::{spawn_gated, Passed};
    use crate::sys::{ChildIo, ChildSetup, ChildStep, SpawnError, SpawnSpec};
    use std::ffi::CString;
    use std::os::fd::OwnedFd;

    /// `argv` on the terminal whose slave is `slave`, as a pty session.
    fn on_terminal(argv: &[&str], slave: &OwnedFd) -> SpawnSpec {
        let c = |s: &str| CString::new(s).unwrap();
        let end = || ChildIo::Fd(slave.try_clone().expect("dup"));
        SpawnSpec {
            path: c(argv[0]),
            argv: argv.iter().map(|a| c(a)).collect(),
            envp: crate::sys::exact_env(&[("PATH", "/usr/bin:/bin")]).unwrap(),
            cwd: None,
            stdin: end(),
            stdout: end(),
            stderr: end(),
            setup: ChildSetup {
                setsid: true,
                ctty: true,
                ..Default::default()
            },
        }
    }

    /// Fields 6 and 7 of `/proc/<pid>/stat`: session, tty_nr.
    fn session_and_tty(pid: i32) -> (i32, i32) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let after = &stat[stat.rfind(')').expect("comm") + 2..];
        let f: Vec<i32> = after
            .split(' ')
            .take(5)
            .map(|v| v.parse().unwrap_or(-1))
            .collect();
        (f[3], f[4])
    }

    fn end(pid: i32) {
        use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions};
        let pid = Pid::from_raw(pid).expect("a pid");
        let _ = kill_process(pid, Signal::KILL);
        let _ = waitpid(Some(pid), WaitOptions::empty());
    }

    /// The trampoline's session step: the program runs as the leader of a
    /// new session whose controlling terminal is the pty (tty_nr: the
    /// slave's device number). A second session can't take a terminal
    /// that is already another's (`TIOCSCTTY` refuses, EPERM, even to
    /// root without the steal argument): that comes back as the typed
    /// step, not as an exec failure or a program run without its
    /// terminal.
    #[test]
    fn the_trampoline_takes_the_terminal_and_a_taken_one_is_the_terminal_step() {
        assert!(super::super::trampoline::entry_ran(), "a trampoline here");
        let exe = c"/proc/self/exe".to_owned();
        let (master, _) = crate::sys::open_pty(24, 80).expect("a pty");
        let name = rustix::pty::ptsname(&master, Vec::new()).expect("ptsname");
        let slave = rustix::fs::open(
            name.as_c_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .expect("the slave");
        let rdev = rustix::fs::fstat(&slave).expect("fstat").st_rdev;
        let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        // The kernel's tty_nr: minor's low byte, major, minor's high bits.
        let tty_nr = ((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)) as i32;

        let first = on_terminal(&["/bin/sleep", "300"], &slave);
        let held = spawn_gated(&first, &exe, 0).expect("held");
        assert!(matches!(held.open(&first), Passed::Running), "started");
        let leader = held.pid;
        // Exec'd (the gate socket closed at exec): its session and
        // terminal are the program's.
        assert_eq!(session_and_tty(leader), (leader, tty_nr), "{name:?}");

        let second = on_terminal(&["/bin/true"], &slave);
        let held = spawn_gated(&second, &exe, 0).expect("held");
        let passed = held.open(&second);
        let step = match passed {
            Passed::Failed(SpawnError::Step(step, e)) => {
                assert_eq!(e.raw_os_error(), Some(libc::EPERM));
                step
            }
            Passed::Failed(e) => panic!("another error: {e:?}"),
            _ => panic!("the second session took a taken terminal"),
        };
        assert_eq!(step, ChildStep::Terminal);
        held.reap();
        end(leader);
    }
}
