//! Signals from pkit's parent when that parent is not a pkit: never an
//! outer pkit's relay, so each one is a request of its own.

#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

use common::*;

/// INT from another process, then at once a genuine INT from pkit's
/// parent (this test): two requests, so the second ends the run (TERM to
/// the tree). Before, a parent's INT within 2 s of the same signal from
/// another sender was taken for an outer pkit's relay of it and dropped:
/// the run went on.
#[test]
fn a_parents_second_int_soon_after_the_first_is_a_second_request() {
    for m in mechanisms() {
        let log = temp_path("int-log");
        let script = format!(
            "trap 'echo INT >> {l}' INT; trap 'echo TERM >> {l}; exit 5' TERM; \
             echo up >> {l}; while :; do sleep 0.05; done",
            l = log.display()
        );
        let mut child = pkit()
            .args(["run", "-q", "--mechanism", m, "-k", "300", "--"])
            .args(["sh", "-c", &script])
            .spawn()
            .map(Started::new)
            .expect("pkit runs");
        wait_for_text(&log, "up");
        // From a process other than pkit's parent: kill(1).
        let sent = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        wait_for_text(&log, "INT");
        kill(child.id(), libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let seen = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        let Some(status) = status else {
            kill(child.id(), libc::SIGTERM);
            kill(child.id(), libc::SIGTERM);
            let _ = child.wait();
            panic!("{m}: the parent's second INT was dropped; the program got {seen:?}");
        };
        assert_eq!(status.code(), Some(5), "{m}: the program got {seen:?}");
        assert!(seen.contains("TERM"), "{m}: {seen:?}");
    }
}
