//! A process-group group used while this process has no descriptor free:
//! a signal reaches its leader once, and `pids()` and `close()` succeed. The
//! leader's "did it leave its group?" check used to need a descriptor (a
//! pidfd or a `/proc` read) and, without one, took the leader for gone and
//! sent it the signal directly as well as through the group: twice. And a
//! close that could not list the group's members failed, or waited out its
//! deadline.
//!
//! One test in its own binary: it changes this process's descriptor limit.
#![cfg(unix)]

mod common;

use common::descriptors::{fill, highest_fd, set_nofile};

use common::*;
use pkit::{MechanismChoice, Signal};

/// Appends `SIG` to `$1` for each signal numbered `$2` it receives, a
/// real-time one kept blocked and taken with sigtimedwait: each sending is
/// queued and counted (a shell's trap, or two SIGUSR1, would merge two
/// that arrive together); `ready` once it is blocked.
const COUNTS_RT: &str = r#"
import signal, sys
f, s = sys.argv[1], int(sys.argv[2])
signal.pthread_sigmask(signal.SIG_BLOCK, [s])
open(f, "a").write("ready\n")
while True:
    if signal.sigtimedwait([s], 0.1):
        open(f, "a").write("SIG\n")
"#;

fn lines(file: &TempPath, what: &str) -> usize {
    std::fs::read_to_string(file.path())
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == what)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_group_without_free_descriptors_is_signalled_once_listed_and_closed() {
    if std::process::Command::new("python3")
        .arg("-c")
        .arg("")
        .status()
        .map_or(true, |s| !s.success())
    {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let suite = begin("pgroup-no-fds").await;
    for choice in mechanisms() {
        if choice == MechanismChoice::Cgroup {
            continue;
        }
        let rt = libc::SIGRTMIN() + 2;
        let file = TempPath::new("usr1");
        let g = group(choice);
        let p = g
            .start(&cmd(choice, "python3").args(["-c", COUNTS_RT, file.as_str(), &rt.to_string()]))
            .unwrap();
        let leader = p.pid();
        let deadline = std::time::Instant::now() + DEADLINE;
        while lines(&file, "ready") == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{choice}: never ready"
            );
            tokio::time::sleep(POLL).await;
        }

        let old = set_nofile(highest_fd() + 16);
        let held = fill();
        let signalled = g.signal(Signal::Raw(rt));
        let listed = g.pids();
        drop(held);
        set_nofile(old);
        signalled.unwrap_or_else(|e| panic!("{choice}: signal with no descriptor free: {e}"));
        // (Which members are listed is not checked: without a descriptor
        // a member's exit can't be told from its running, see the report.)
        listed.unwrap_or_else(|e| panic!("{choice}: pids with no descriptor free: {e}"));
        let deadline = std::time::Instant::now() + DEADLINE;
        while lines(&file, "SIG") == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{choice}: the leader never got the signal"
            );
            tokio::time::sleep(POLL).await;
        }
        // Room for a second delivery to show up, were there one.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(
            lines(&file, "SIG"),
            1,
            "{choice}: real-time signals the leader saw"
        );

        let old = set_nofile(highest_fd() + 16);
        let held = fill();
        let closed = g.close().await;
        drop(held);
        set_nofile(old);
        closed.unwrap_or_else(|e| panic!("{choice}: close with no descriptor free: {e}"));
        assert_gone(&[leader], &format!("{choice}: after the close")).await;
        drop(p);
    }
    suite.end().await;
}
