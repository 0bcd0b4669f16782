//! An application that ignores SIGCHLD (`SIG_IGN`, or `SA_NOCLDWAIT`), as
//! many servers do: every verb and `start` still work in both mechanisms
//! and on both spawn rungs, exit statuses are intact (read from the pidfd,
//! which keeps them from Linux 6.15, once the kernel has reaped the child),
//! and no child is left behind (review F4). The program starts with
//! SIGCHLD at its default under every mechanism (rv39).
//!
//! The disposition is process-wide, so each case runs in a fresh copy of
//! this test binary (the `inner` test, which does nothing unless
//! `PKIT_SIGCHLD_TEST` says which disposition to set).

mod common;

use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pkit::{Command, Group, MechanismChoice, Signal, SystemRunner};

#[test]
fn verbs_and_start_work_when_the_owner_ignores_sigchld() {
    // Alone: each fresh copy steers pid allocation (`ns_last_pid`, for
    // `stranger_with_the_old_group_number_is_left_alone`).
    common::in_suite_exclusive(
        "verbs_and_start_work_when_the_owner_ignores_sigchld",
        each_disposition_in_a_fresh_process,
    );
}

/// Runs `inner` in a fresh copy of this binary for each disposition and
/// spawn rung.
fn each_disposition_in_a_fresh_process() {
    let exe = std::env::current_exe().expect("test binary");
    for disposition in ["ignore", "nocldwait"] {
        for clone3 in ["on", "off"] {
            let out = std::process::Command::new(&exe)
                .args(["--exact", "inner", "--nocapture", "--test-threads=1"])
                .env("PKIT_SIGCHLD_TEST", disposition)
                .env("PKIT_CLONE3", clone3)
                .output()
                .expect("re-run the test binary");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && text.contains("INNER-DONE"),
                "SIGCHLD {disposition}, clone3 {clone3}: {}\n{text}",
                out.status
            );
        }
    }
}

/// Sets SIGCHLD's disposition in this (fresh) process.
fn set_disposition(how: &str) {
    // SAFETY: test-only, before any runtime thread exists; a zeroed
    // sigaction with SIG_IGN, or SIG_DFL plus SA_NOCLDWAIT.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        match how {
            "ignore" => sa.sa_sigaction = libc::SIG_IGN,
            "nocldwait" => {
                sa.sa_sigaction = libc::SIG_DFL;
                sa.sa_flags = libc::SA_NOCLDWAIT;
            }
            other => panic!("unknown disposition {other}"),
        }
        assert_eq!(libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut()), 0);
    }
}

#[test]
fn inner() {
    let Ok(how) = std::env::var("PKIT_SIGCHLD_TEST") else {
        return;
    };
    set_disposition(&how);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for choice in common::mechanisms() {
            let runner = Arc::new(SystemRunner::with_mechanism(choice));
            let on = |c: Command| c.runner(runner.clone());
            // The program starts with SIGCHLD at its default under every
            // mechanism (the portable backend's `posix_spawn` can't ignore
            // it), whatever the owner's disposition: its own children are
            // its to wait for (rv39).
            let status = on(Command::new("grep").args(["SigIgn:", "/proc/self/status"]))
                .run()
                .await
                .unwrap_or_else(|e| panic!("{choice}: SigIgn: {e}"));
            let hex = status.split_whitespace().nth(1).unwrap_or_default();
            let ignored = u64::from_str_radix(hex, 16).expect("SigIgn's mask");
            assert_eq!(
                ignored & (1 << (libc::SIGCHLD - 1)),
                0,
                "{choice}: SIGCHLD {how} in the owner is inherited: SigIgn {hex}"
            );
            let out = on(Command::new("sh").args(["-c", "echo hi; exit 3"]))
                .output()
                .await
                .unwrap_or_else(|e| panic!("{choice}: output: {e}"));
            assert_eq!((out.code(), out.stdout_str().as_ref()), (Some(3), "hi\n"));
            // A signal death is read back as such.
            let out = on(Command::new("sh").args(["-c", "kill -9 $$"]))
                .output()
                .await
                .unwrap_or_else(|e| panic!("{choice}: output: {e}"));
            assert_eq!(out.signal(), Some(9), "{choice}: {out:?}");
            let text = on(Command::new("echo").arg("ok")).run().await;
            assert_eq!(text.expect("run"), "ok", "{choice}");
            let code = on(Command::new("sh").args(["-c", "exit 7"]))
                .exit_code()
                .await;
            assert_eq!(code.expect("exit_code"), 7, "{choice}");
            assert!(!on(Command::new("false")).probe().await.expect("probe"));
            let out = on(Command::new("sleep").arg("30"))
                .timeout(Duration::from_millis(100))
                .output()
                .await
                .expect("timeout");
            assert!(out.timed_out(), "{choice}: {out:?}");

            // start and wait, and a kill.
            let group = Group::builder().mechanism(choice).build().unwrap();
            let sleeper = group
                .start(&Command::new("sleep").arg("30"))
                .expect("start");
            let mut first = group.start(&Command::new("true")).expect("start");
            assert_eq!(first.wait().await.expect("wait").code(), Some(0));
            let mut second = group
                .start(&Command::new("sh").args(["-c", "exit 5"]))
                .expect("start");
            assert_eq!(second.wait().await.expect("wait").code(), Some(5));
            let spid = sleeper.pid();
            group.kill().expect("kill");
            common::assert_gone(&[spid], &format!("{choice}: killed")).await;
            drop((first, second, sleeper));

            // A group whose every process is gone, the first one included
            // (under the process-group mechanism the kernel reaped the
            // leader: its process group went with it), still starts: the
            // next process leads a new group, which teardown covers.
            let group = Group::builder().mechanism(choice).build().unwrap();
            let mut lead = group.start(&Command::new("true")).expect("start");
            assert_eq!(lead.wait().await.expect("wait").code(), Some(0));
            drop(lead);
            let mut next = group
                .start(&Command::new("sh").args(["-c", "exit 6"]))
                .expect("start after the first process is gone");
            assert_eq!(next.wait().await.expect("wait").code(), Some(6));
            let sleeper = group
                .start(&Command::new("sleep").arg("30"))
                .expect("start");
            let spid = sleeper.pid();
            group.kill().expect("kill");
            common::assert_gone(&[spid], &format!("{choice}: killed in the new group")).await;
            drop((next, sleeper));
            group.close().await.expect("close");
        }
        if common::portable_run() {
            // The portable backend installed its SIGCHLD handler above, in
            // place of SIG_IGN (as tokio's process support does): the kernel
            // no longer reaps this process's children, so the old group
            // number stays held by its zombie and can't be handed out.
            eprintln!(
                "skipped on the portable backend: its SIGCHLD handler replaced SIG_IGN, \
                 so no group number is freed for a stranger"
            );
        } else {
            stranger_with_the_old_group_number_is_left_alone().await;
        }

        // pkit reaped every child it started: none is left, not even a
        // zombie (with exit signal 0, nothing else could have reaped them).
        let deadline = Instant::now() + common::DEADLINE;
        while !common::own_children().is_empty() {
            assert!(
                Instant::now() < deadline,
                "children left: {:?}",
                common::own_children()
            );
            tokio::time::sleep(common::POLL).await;
        }
    });
    println!("INNER-DONE");
}

/// Under the process-group mechanism, once the kernel has reaped a group's
/// leader and its last member, the group's number is free: a stranger may
/// get it and lead a group of its own. The group's signals must not reach
/// the stranger. The stranger is made with `ns_last_pid` (we are root), so
/// that it gets exactly that number.
async fn stranger_with_the_old_group_number_is_left_alone() {
    let group = Group::builder()
        .mechanism(MechanismChoice::ProcessGroup)
        .build()
        .unwrap();
    let mut leader = group.start(&Command::new("true")).expect("start");
    let number = leader.pid();
    leader.wait().await.expect("wait");
    // Reaped by the kernel, and no member left: the number is free.
    let deadline = Instant::now() + common::DEADLINE;
    let stranger = loop {
        assert!(
            Instant::now() < deadline,
            "could not get pid {number} again"
        );
        if std::fs::write("/proc/sys/kernel/ns_last_pid", (number - 1).to_string()).is_err() {
            eprintln!("skipped: ns_last_pid is not writable here");
            return;
        }
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("sleep");
        if child.id() == number {
            break child;
        }
        let _ = child.kill();
        let _ = child.wait(); // ECHILD: SIGCHLD is ignored here
    };
    assert_eq!(common::stat(number).map(|s| s.pgrp), Some(number));
    group.signal(Signal::Term).expect("signal");
    group.kill().expect("kill");
    std::thread::sleep(Duration::from_millis(200));
    let alive = !common::pid_gone(number);
    let mut stranger = stranger;
    let _ = stranger.kill();
    let _ = stranger.wait();
    drop(leader);
    group.close().await.expect("close");
    assert!(
        alive,
        "the group's signal reached a stranger that got its number"
    );
}
