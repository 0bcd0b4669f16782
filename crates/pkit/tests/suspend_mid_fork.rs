//! A group suspended and resumed while a member is in the middle of a
//! fork: the child runs after the resume.
//!
//! A child forked while a signal goes to its parent's process group gets
//! that signal once the fork is done (the kernel keeps a set of them for
//! each fork in progress), and a SIGCONT drops the stop from that set,
//! but only where the forking process does not ignore SIGCONT (the
//! default is to ignore it). So a process group's SIGSTOP and SIGCONT
//! both sent during one fork continued the parent, and the child, born
//! with the stop, stayed stopped for good. Seen as
//! attack_dec04h_nested's `outer_suspends_inner_mid_start` hanging once
//! under load ("no progress after resume 6"): the inner pkit owner waited
//! for ever on its start's child, stopped before its `exec` (reproduced at
//! load 30 with suspends held 0 to 30 ms: the child in `T` from
//! `ret_from_fork`, its parent's thread in `clone3`). Now a process
//! group's suspend waits until every thread of every member has stopped:
//! the fork is over then, and the child a member the resume's SIGCONT
//! reaches. (Waiting only until no thread ran was not enough: a forking
//! thread blocked for a moment inside the fork, `D`, and running again
//! when its system call was read, was taken for stopped; this failed about
//! one run in 30, in both process-group backends.)
//!
//! The window is widened here: the forker maps many small regions, so
//! each of its forks copies them for tens of milliseconds, and most
//! suspends land in one. Its own binary: the forker forks without `exec`.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use pkit::Command;

/// Marks a run of this binary as [`forker`].
const FORKER: &str = "PKIT_SUSPEND_MID_FORK_FORKER";

/// How many regions the forker maps (below the default
/// `vm.max_map_count` of 65530).
const MAPPINGS: usize = 30_000;

/// How many suspends and resumes each mechanism's case does (the wait
/// that ended mid-fork, taking a thread blocked for a moment there for
/// stopped, failed about one run in 30 at 20 of them).
const CYCLES: u64 = 50;

/// Now on `CLOCK_MONOTONIC`, which every process reads alike, in ns.
fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0);
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// The forker (does nothing in a plain run): maps [`MAPPINGS`] one-page
/// regions, alternately read-only and writable so they stay apart, then
/// forks a child that exits at once, waits for it and says
/// `FORKER forked <n> at <monotonic ns>`, again and again. A child left
/// stopped keeps it in its wait: it says nothing more.
#[test]
fn forker() {
    if std::env::var_os(FORKER).is_none() {
        return;
    }
    for i in 0..MAPPINGS {
        let prot = match i % 2 {
            0 => libc::PROT_READ,
            _ => libc::PROT_READ | libc::PROT_WRITE,
        };
        // SAFETY: a new private anonymous mapping; nothing else uses it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mapping {i}");
    }
    for n in 0u64.. {
        // SAFETY: the child calls only `_exit`, which is async-signal-safe.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(0) };
        }
        assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
        let mut status = 0;
        // SAFETY: `status` is valid for the call to write.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
        println!("FORKER forked {n} at {}", monotonic_ns());
    }
}

/// Waits (with a deadline) for a fork the forker finished after `after`
/// (monotonic ns); lines said before may still be queued.
async fn fork_after(lines: &mut pkit::Lines, after: u128) -> Result<bool, String> {
    let mut last = None;
    let seen = tokio::time::timeout(DEADLINE * 3, async {
        while let Some(l) = lines.next_line().await {
            let Some((_, at)) = l.text.split_once(" at ") else {
                continue;
            };
            last = Some(l.text.clone());
            if at.trim().parse::<u128>().is_ok_and(|at| at > after) {
                return true;
            }
        }
        false
    })
    .await;
    seen.map_err(|_| format!("no fork ended for {:?}; last: {last:?}", DEADLINE * 3))
}

/// What each member (of the forker's process group) is doing, for a
/// failure's message.
fn members(leader: u32) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some(s) = stat(pid) {
            if s.pgrp == leader || s.ppid == leader {
                out.push(format!("{pid} {:?} {s:?}", comm(pid)));
            }
        }
    }
    out
}

/// Each mechanism's group suspended and resumed [`CYCLES`] times while
/// its member forks again and again (most suspends land in a fork): after
/// each resume the member goes on forking. Before, under a process group
/// (and the portable backend), a child forked across a suspend stayed
/// stopped, and its parent waited for it for ever, within a few cycles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_forked_across_a_suspend_runs_after_the_resume() {
    if std::env::var_os(FORKER).is_some() {
        return;
    }
    let suite = begin("a_child_forked_across_a_suspend_runs_after_the_resume").await;
    all_at_once(mechanisms(), |choice| async move {
        let group = group(choice);
        let mut p = group
            .start(
                &Command::new(std::env::current_exe().unwrap())
                    .args(["--exact", "forker", "--nocapture", "--test-threads=1"])
                    .env(FORKER, "1")
                    .stream_lines(),
            )
            .unwrap();
        let leader = p.pid();
        let mut lines = p.lines();
        let started = fork_after(&mut lines, 0).await;
        assert_eq!(started, Ok(true), "{choice}: the forker forks");
        for cycle in 0..CYCLES {
            group.suspend().await.unwrap();
            group.resume().await.unwrap();
            let resumed = monotonic_ns();
            let next = fork_after(&mut lines, resumed).await;
            if next != Ok(true) {
                let left = members(leader);
                group.kill().unwrap();
                panic!("{choice}: after resume {cycle}: {next:?}; members: {left:#?}");
            }
        }
        drop(lines);
        group.kill().unwrap();
        let _ = tokio::time::timeout(DEADLINE, p.wait()).await;
        drop(group);
        assert_gone(&[leader], &format!("{choice}: the forker")).await;
    })
    .await;
    suite.end().await;
}
