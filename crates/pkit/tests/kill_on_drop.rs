//! The suite's own guard, `common::KillOnDrop`, on real processes: it kills
//! a script's `$!` read before that child's exec (still a `sh`), and it
//! leaves alone a process given the number of one it held that ended.

#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::kill_on_drop::start_time;
use common::*;

/// `( read x < fifo; exec sleep 30 ) & echo $!; wait`: the background
/// child blocks opening the FIFO, a `sh` still, when the test reads its
/// pid. Held and dropped, as at a failing assertion right after, it is
/// killed (it was left: it was no `sleep`, and ran on to `sleep 30`).
#[tokio::test]
async fn a_pid_read_before_its_exec_is_killed() {
    let suite = begin("a_pid_read_before_its_exec_is_killed").await;
    let fifo = TempPath::new("kill-on-drop-fifo");
    let made = Command::new("mkfifo")
        .arg(fifo.path())
        .status()
        .expect("mkfifo");
    assert!(made.success(), "mkfifo");
    let mut script = ChildOnDrop(
        Command::new("sh")
            .args([
                "-c",
                r#"( read x < "$1"; exec sleep 30 ) & echo $!; wait"#,
                "sh",
                fifo.as_str(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh"),
    );
    let mut line = String::new();
    BufReader::new(script.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the pid");
    let pid: u32 = line.trim().parse().expect("a pid");
    assert_eq!(comm(pid).as_deref(), Some("sh"), "not exec'd yet");
    drop(KillOnDrop::new(vec![pid]));
    assert_gone(&[pid], "the child held before its exec").await;
    // The script's `wait` returns: it ends of itself.
    let deadline = Instant::now() + DEADLINE;
    while script.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < deadline, "the script did not end");
        tokio::time::sleep(POLL).await;
    }
    suite.end().await;
}

/// A `sleep` of ours is held, then killed and reaped; `ns_last_pid` gives
/// its number to a new `sleep` of ours (a child, a `sleep`, started after
/// the test: everything but its start time says it is ours). Dropped, the
/// guard leaves the new one alone. Alone among the suite's binaries: it
/// steers pid allocation. Skipped, saying why, where `ns_last_pid` can't
/// be written.
#[tokio::test]
async fn a_pid_given_on_after_its_process_ended_is_left_alone() {
    const NS_LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";
    let writable = std::fs::OpenOptions::new()
        .write(true)
        .open(NS_LAST_PID)
        .is_ok();
    if !writable {
        skipped(
            "a_pid_given_on_after_its_process_ended_is_left_alone",
            "ns_last_pid can't be written here (not root in this pid namespace)",
        );
        return;
    }
    let alone = begin_exclusive().await;
    let sleep = || {
        ChildOnDrop(
            Command::new("sleep")
                .arg("30")
                .spawn()
                .expect("sleep starts"),
        )
    };
    let mut stranger = None;
    for _ in 0..20 {
        let mut first = sleep();
        let pid = first.id();
        let born = start_time(pid).expect("a start time");
        let guard = KillOnDrop::new(vec![pid]);
        first.kill().expect("kill");
        first.wait().expect("reap");
        // Start times count clock ticks: the next one starts in a later
        // tick.
        std::thread::sleep(Duration::from_millis(50));
        std::fs::write(NS_LAST_PID, format!("{}", pid - 1)).expect("ns_last_pid");
        let second = sleep();
        if second.id() == pid {
            assert_ne!(start_time(pid), Some(born), "started in the same tick");
            stranger = Some((guard, second));
            break;
        }
        // Another process took the number: again.
    }
    let (guard, mut second) = stranger.expect("a sleep given the number of one that ended");
    drop(guard);
    // A SIGKILL'd child ends at once; give it time to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        second.try_wait().expect("try_wait").is_none(),
        "the guard killed the process given its number"
    );
    drop(second);
    end_exclusive(
        alone,
        "a_pid_given_on_after_its_process_ended_is_left_alone",
    )
    .await;
}
