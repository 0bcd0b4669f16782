//! A program whose session is led from outside its pid namespace: what a
//! container's or a CI runner's exec gives a program started without
//! `setsid`. `getsid` then answers 0 for the program and for every child
//! of it that stays in its session (the process-group mechanism's
//! children do), and pkit must treat that as "not a session leader", not
//! as an invalid pid (it panicked in debug builds: the CI failure of
//! `blocking::a_blocking_group_starts_streams_and_kills`).
//!
//! The test re-runs itself as pid 2 of a new pid namespace (`unshare`,
//! root only) behind a tiny init that reaps orphans, in a process group of
//! its own but still in the outer session, which that namespace can't see.
//! Only the process-group mechanism (or the portable backend) runs inside:
//! a cgroup group there would sweep "stale" cgroup directories whose owners
//! it can't see in that namespace.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, ErrorKind, MechanismChoice};

/// Set in the re-run inside the namespace.
const INNER: &str = "PKIT_TEST_FOREIGN_SESSION_INNER";

/// pid 1 of the namespace: forks the test binary into a process group of
/// its own, reaps every orphan, and exits with the test's status.
const INIT: &str = r#"
import os, sys
child = os.fork()
if child == 0:
    os.setpgid(0, 0)
    os.execv(sys.argv[1], sys.argv[1:])
while True:
    pid, status = os.wait()
    if pid == child:
        code = os.waitstatus_to_exitcode(status)
        sys.exit(code if code >= 0 else 128 - code)
"#;

/// The session field of `/proc/self/stat` (0: led from outside this pid
/// namespace).
fn own_session() -> i64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("own stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    after
        .split(' ')
        .nth(3)
        .expect("session")
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn a_group_runs_in_a_session_led_from_outside_the_pid_namespace() {
    if std::env::var_os(INNER).is_some() {
        inner().await;
        return;
    }
    let suite = begin("a_group_runs_in_a_session_led_from_outside_the_pid_namespace").await;
    let usable = rustix::process::geteuid().is_root()
        && std::process::Command::new("unshare")
            .args(["-pf", "--mount-proc", "true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !usable {
        skipped(
            "a session led from outside the pid namespace",
            "needs root and `unshare --pid --fork --mount-proc` (util-linux)",
        );
        suite.end().await;
        return;
    }
    let me = std::env::current_exe().expect("own path");
    let out = Command::new("unshare")
        .args(["-pf", "--mount-proc", "python3", "-c", INIT])
        .arg(me)
        .args([
            "--exact",
            "a_group_runs_in_a_session_led_from_outside_the_pid_namespace",
            "--nocapture",
        ])
        .env(INNER, "1")
        .timeout(Duration::from_secs(300))
        .output()
        .await
        .expect("unshare");
    let said = format!(
        "{:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.outcome(),
        out.stdout_str(),
        out.stderr_str()
    );
    assert!(out.success(), "the run inside the namespace failed: {said}");
    assert!(
        out.stdout_str().contains("inner: done"),
        "the run inside the namespace did not finish: {said}"
    );
    suite.end().await;
}

/// Inside the namespace: a process group's second start (the leader
/// exited and was waited for, so pkit asks the leader's session), a pty
/// session's group still refusing a joiner, everything gone at the end.
async fn inner() {
    assert_eq!(own_session(), 0, "the session's leader is visible here");
    println!("inner: session 0, pid {}", std::process::id());
    let choice = match portable_run() {
        true => MechanismChoice::Portable,
        false => MechanismChoice::ProcessGroup,
    };
    let group = group(choice);
    let mut first = group
        .start(&Command::new("sh").args(["-c", "echo one"]))
        .expect("first start");
    assert_eq!(first.wait().await.expect("wait").stdout_str(), "one\n");
    let mut second = group
        .start(
            &Command::new("sh")
                .args(["-c", "sleep 300 & echo $!; exec cat"])
                .stdin_piped()
                .stream_lines(),
        )
        .expect("second start, into the first's process group");
    let mut pids = vec![first.pid(), second.pid()];
    let line = second
        .wait_for_line(|l| !l.text.is_empty(), Duration::from_secs(60))
        .await
        .expect("the grandchild's pid");
    pids.push(line.text.parse().expect("a pid"));
    assert!(
        group.pids().expect("pids").contains(&pids[2]),
        "{choice}: the grandchild is in the group"
    );
    group.kill().expect("kill");
    assert!(!second.wait().await.expect("wait").success());
    drop((first, second, group));
    assert_gone(&pids, &format!("{choice}: the group's tree")).await;

    if choice == MechanismChoice::ProcessGroup {
        // A pty session leads its own session, which is visible here: a
        // second start into its group is still refused.
        let group = common::group(choice);
        let leader = group
            .start(&Command::new("sleep").arg("300").pty(24, 80))
            .expect("a pty session first");
        let e = group
            .start(&Command::new("sleep").arg("300"))
            .expect_err("nothing can join a pty session's process group");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        let pid = leader.pid();
        drop((leader, group));
        assert_gone(&[pid], "the pty session").await;
    }
    println!("inner: done");
}
