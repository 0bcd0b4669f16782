//! A hostile user of the `pkit` CLI (fourth pass of 2026-12-03): a program
//! that leaves its container.

#![cfg(unix)]

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The script that writes its pid to `$1`, leaves the container the
/// mechanism put it in and `exec`s `sleep 300`: under a cgroup (root only)
/// it writes its pid into this test's own cgroup, under a process group it
/// joins this test's process group. `None` when this user can't.
fn leave(mechanism: &str) -> Option<String> {
    if mechanism == "cgroup" {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let root = status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
        let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
        let mount = mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1].to_string())
        })?;
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let own = own.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
        let dir = format!("{mount}{}", own.trim_end_matches('/'));
        let writable = std::fs::metadata(format!("{dir}/cgroup.procs")).is_ok();
        return (root && writable).then(|| {
            format!("echo $$ > \"$1\"; echo $$ > {dir}/cgroup.procs || exit 9; exec sleep 300")
        });
    }
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let pgid: i32 = stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()?;
    Some(format!(
        "echo $$ > \"$1\"; exec perl -e 'setpgrp(0, {pgid}) or exit 9; exec \"sleep\", \"300\"'"
    ))
}

/// `pkit run --timeout` of a program that leaves its container ends it at
/// the timeout, with timeout(1)'s status. Before: under a cgroup the
/// timeout's TERM and the grace's SIGKILL went to the emptied cgroup only,
/// and pkit waited for the program for ever.
#[test]
fn a_program_that_leaves_its_container_still_ends_at_the_timeout() {
    for m in mechanisms() {
        let Some(script) = leave(m) else {
            eprintln!("SKIPPED {m}: leaving a cgroup needs root and a cgroup v2 of ours");
            continue;
        };
        let pids = pid_file();
        let mut child = pkit()
            .args([
                "run",
                "-q",
                "--mechanism",
                m,
                "--timeout",
                "2",
                "-k",
                "1",
                "--",
            ])
            .args(["sh", "-c", &script, "sh"])
            .arg(&pids)
            .spawn()
            .expect("pkit runs");
        let program = read_pids(&pids, 1)[0];
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = std::fs::remove_file(&pids);
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::process::Command::new("kill")
                .args(["-9", &program.to_string()])
                .status();
            panic!("{m}: pkit still waits for the program 60 s after its 2 s timeout");
        };
        let code = shell_status(status);
        assert!(code == 124 || code == 137, "{m}: status {code}");
        assert_all_gone(&[program]);
    }
}
