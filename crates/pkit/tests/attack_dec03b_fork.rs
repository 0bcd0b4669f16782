//! The blocking API in a child the application forks without `exec`,
//! after the parent used it (so its internal runtime was built). Before:
//! the child's calls registered their descriptors in the epoll instance it
//! shares with the parent's runtime (a forked copy of that runtime, whose
//! thread is not in the child), so the parent's runtime thread was woken
//! with an address in the child's memory and the whole parent died by
//! SIGSEGV; where it didn't, the child's call hung (a start's wait, a
//! timeout, and under the portable backend even a one-shot output).
//!
//! Its own binary: it forks, which is only sound with few threads about
//! (a lock another test's thread held at the fork would stay held in the
//! child).
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, Outcome};

/// What the forked child does with the blocking API: a one-shot output, a
/// start and wait, and a timeout. Its exit code says which failed.
fn child_calls() -> i32 {
    match Command::new("echo").arg("one").blocking().output() {
        Ok(out) if out.stdout_str() == "one\n" => {}
        other => {
            eprintln!("forked child: output: {other:?}");
            return 1;
        }
    }
    match Command::new("echo").arg("two").blocking().start() {
        Ok(mut p) => match p.wait() {
            Ok(out) if out.stdout_str() == "two\n" => {}
            other => {
                eprintln!("forked child: wait: {other:?}");
                return 2;
            }
        },
        Err(e) => {
            eprintln!("forked child: start: {e}");
            return 3;
        }
    }
    let timed = Command::new("sleep")
        .arg("30")
        .timeout(Duration::from_millis(100))
        .blocking()
        .output();
    match timed {
        Ok(out) if out.outcome() == Outcome::TimedOut => 0,
        other => {
            eprintln!("forked child: timeout: {other:?}");
            4
        }
    }
}

#[test]
fn a_forked_child_uses_the_blocking_api_and_its_parent_lives_on() {
    // The suite's runtime is a current-thread one: no thread of its own
    // is about at the fork.
    in_suite(
        "a_forked_child_uses_the_blocking_api_and_its_parent_lives_on",
        fork_and_use_the_blocking_api,
    );
}

/// The body of `a_forked_child_uses_the_blocking_api_and_its_parent_lives_on`.
fn fork_and_use_the_blocking_api() {
    // The parent's runtime is built, and busy with a process, at the fork.
    let mut parent_first = Command::new("echo")
        .arg("p")
        .blocking()
        .start()
        .expect("start");
    parent_first.wait().expect("wait");
    let mut running = Command::new("sleep")
        .arg("300")
        .blocking()
        .start()
        .expect("start");
    // Raw: the case under test is the application's own fork without
    // exec; rustix has no fork.
    // SAFETY: fork(2) with only this test's thread and pkit's own about;
    // the child calls the blocking API and leaves with exit(3) (its atexit
    // handlers run, as an application's would), never returning into the
    // test harness; alarm(2) ends it if a call hangs.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
    if child == 0 {
        // SAFETY: alarm(2) and exit(3) in the forked child (see above).
        unsafe {
            libc::alarm(60);
            libc::exit(child_calls());
        }
    }
    let mut status = 0;
    // Raw: the wait for the test's own raw fork.
    // SAFETY: `child` is ours; `status` a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked child's blocking calls failed or hung (wait status {status:#x})"
    );
    // The parent's runtime still serves what it started before the fork,
    // and new calls.
    assert!(
        !running.as_async().has_exited(),
        "the parent's process runs on"
    );
    running.kill().expect("kill");
    let out = running.wait().expect("wait after the child");
    assert_eq!(out.signal(), Some(libc::SIGKILL), "{out:?}");
    let mut again = Command::new("echo")
        .arg("q")
        .blocking()
        .start()
        .expect("start");
    assert_eq!(again.wait().expect("wait").stdout_str(), "q\n");
    drop((parent_first, running, again));
    // The child's groups are gone with it.
    if let Some(parent) = group_parent() {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let left = cgroup_dirs_of(&parent, child as u32);
            if left.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the child left {left:?}"
            );
            std::thread::sleep(POLL);
        }
    }
}
