//! A hostile user of the `pkit` CLI (fifth pass of 2026-12-03): signals
//! at bad moments.

#![cfg(unix)]

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Once the program has ended, what it left running has `--kill-after`'s
/// grace; TERM to pkit meanwhile kills it at once and pkit ends with the
/// program's status. Before: pkit read no signal after the program ended,
/// so TERM, a third TERM or Ctrl-C did nothing and pkit sat out the whole
/// grace (here 300 s) for a leftover that ignores TERM.
#[test]
fn term_during_the_leftovers_grace_kills_them_at_once() {
    for m in mechanisms() {
        let pids = pid_file();
        let script = format!(
            "trap '' TERM; (trap '' TERM INT; exec sleep 300) & echo $! > {f}; echo $$ >> {f}; exit 3",
            f = pids.display()
        );
        let mut child = pkit()
            .args(["run", "-q", "--mechanism", m, "-k", "300", "--"])
            .args(["sh", "-c", &script])
            .spawn()
            .expect("pkit runs");
        let got = read_pids(&pids, 2);
        let _ = std::fs::remove_file(&pids);
        let (leftover, program) = (got[0], got[1]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !pid_gone(program) {
            assert!(Instant::now() < deadline, "{m}: the program never ended");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Once or more: a TERM read before pkit saw the program end is
        // forwarded to it, as to any running program.
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            kill(child.id(), libc::SIGTERM);
            std::thread::sleep(Duration::from_millis(500));
        };
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::process::Command::new("kill")
                .args(["-9", &leftover.to_string()])
                .status();
            panic!("{m}: pkit sat out the grace for 60 s though it was sent TERM");
        };
        assert_eq!(status.code(), Some(3), "{m}: the program's status");
        assert_all_gone(&[leftover]);
    }
}
