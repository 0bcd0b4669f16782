#![cfg(target_os = "linux")]
//! rv42: a hostile review of the sixth session's merges (library half:
//! ff057d7's `Creator::is_here_confirmed`, 8e2b5a8's `AtForkOnce` and
//! `CopyOnce`). Findings would be `#[ignore = "rv42: ..."]` tests; none was
//! found in this half. Run in the three passes (unset,
//! `PKIT_MECHANISM=pgroup`, `PKIT_MECHANISM=portable`).
//!
//! Probes that held (every pass):
//! - [`a_raw_clone_childs_drops_of_a_group_and_a_pipe_leave_the_makers_alone`]:
//!   ff057d7 confirmed its fix with a `RunningProcess` only (rv41); the
//!   same raw `clone(SIGCHLD)` child (no atfork handlers, its own pid, the
//!   maker's kept identity) drops a copy of a started blocking
//!   `RunningPipe` (`pipe_started.rs`'s drop) and of a `Group` with a
//!   member (`container_close.rs`'s drop: under cgroup v2 a `cgroup.kill`
//!   and an `rmdir` a pid-namespace copy could still make): the maker's
//!   stages and member live on, its cgroup directory stays, and the
//!   maker's own drops then end them all.
//!
//! Read, not tested (see the report): a raw-clone child that is pid 1 of
//! a new pid namespace made by a pid-1 maker passes `is_here_confirmed`
//! (its `getpid()` is 1 too) and, under cgroup v2, would kill the maker's
//! group through `cgroup.kill`: the README's "one with its maker's pid
//! number can't be told apart" names that case. The hot checks that keep
//! `is_here` (the reaper's wake, the guard's `owned`, the readers' pool,
//! the blocking runtime, the kept `/proc`) only hand such a child the
//! maker's threads' handles (it hangs or writes a wake byte to the
//! maker's reaper): no run may be made there, as the README says, and a
//! wake is harmless.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, Pipe};

const SUITE: &str = "review_rv42";

/// Makes a child by a raw `clone(SIGCHLD)` (no `pthread_atfork`
/// handlers: it keeps this process's identity in memory, with a pid of
/// its own) that drops `held` (its copy) and `_exit`s (bounded by a 20 s
/// alarm); waits for it. Its exit code, or 128 + the signal that ended it.
fn raw_clone_and_drop<T>(held: T) -> i32 {
    // SAFETY: clone without CLONE_VM: a fork-like copy that runs no atfork
    // handler; the child only drops its copy of `held` and `_exit`s,
    // bounded by an alarm (a lock another thread held at the clone would
    // hang it: the alarm ends it, and the maker's processes are looked at
    // all the same).
    let child =
        unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) as i32 };
    assert!(child >= 0, "clone: {}", std::io::Error::last_os_error());
    if child == 0 {
        // SAFETY: plain values.
        unsafe { libc::alarm(20) };
        drop(held);
        // SAFETY: ends the child without running this process's exit code.
        unsafe { libc::_exit(0) };
    }
    std::mem::forget(held);
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// Whether any of `pids` dies within `within` (a kill the child sent, or a
/// `cgroup.kill` it wrote, lands within moments; a loaded machine gets
/// seconds).
fn any_dies_within(pids: &[u32], within: Duration) -> bool {
    let end = Instant::now() + within;
    loop {
        if pids.iter().any(|&p| pid_gone(p)) {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Probe (ff057d7 beyond `RunningProcess`): a raw-clone child with a pid
/// of its own drops its copies of a blocking `RunningPipe` and of a
/// `Group` holding a started member; the maker's processes live on and
/// (cgroup) its directory stays; the maker's own drops end them.
#[test]
fn a_raw_clone_childs_drops_of_a_group_and_a_pipe_leave_the_makers_alone() {
    in_suite(SUITE, || {
        for choice in mechanisms() {
            // The pipe's handle: the child drops a copy of it. (A handle
            // the child copies is the maker's still: the maker's copy is
            // kept and dropped below.)
            let pipe = Pipe::new([
                cmd(choice, "sleep").arg("300"),
                cmd(choice, "sleep").arg("300"),
            ])
            .blocking()
            .start()
            .unwrap_or_else(|e| panic!("{choice}: pipe start: {e}"));
            let stages = pipe.pids();
            assert_eq!(stages.len(), 2, "{choice}: two stages");
            let group = pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice))
                .unwrap_or_else(|e| panic!("{choice}: group: {e}"));
            let member = group
                .start(&Command::new("sleep").arg("300"))
                .unwrap_or_else(|e| panic!("{choice}: member start: {e}"));
            let member_pid = member.pid();
            let dir = cgroup_dir(group.as_async());

            // The copies: bitwise, as a raw clone makes them; the maker's
            // own are dropped below, once.
            // SAFETY: each copy is dropped in the child only (its memory
            // is the child's); the maker never touches the copy.
            let copies = unsafe {
                (
                    std::ptr::read(&pipe),
                    std::ptr::read(&group),
                    std::ptr::read(&member),
                )
            };
            let code = raw_clone_and_drop(copies);
            let mut watched = stages.clone();
            watched.push(member_pid);
            let died = any_dies_within(&watched, Duration::from_secs(3));
            let dir_left = dir.as_ref().is_none_or(|d| d.exists());

            // The maker's own drops end everything, whatever happened.
            drop(member);
            drop(group);
            drop(pipe);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(assert_gone(&watched, "the maker's own drops"));
            assert!(
                !died,
                "{choice}: the raw-clone child's drops (child ended {code}) killed its maker's processes"
            );
            assert!(
                dir_left,
                "{choice}: the raw-clone child's drop removed its maker's cgroup {dir:?}"
            );
            eprintln!("{choice}: raw-clone child ended {code}; the maker's processes lived");
        }
    });
}
