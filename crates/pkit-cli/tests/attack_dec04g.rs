//! A hostile user of the `pkit` CLI (seventh pass of 2026-12-04): signals
//! at bad moments.

#![cfg(unix)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::*;

/// Polls until `pid` has left state `T` (stopped), or 30 s passed: whether it did.
fn continues(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while state(pid) == Some('T') {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// `kill -TSTP <pkit>; kill -CONT <pkit>` at once: the SIGCONT can come
/// while pkit, having stopped the tree, has yet to stop itself. The kernel
/// drops a stop signal still pending when a SIGCONT comes; pkit, which
/// took the SIGTSTP already, must do the same: not stop after that SIGCONT
/// (nobody would continue it again) but go on with the tree continued.
/// A test pause (`PKIT_TEST_PAUSE=stopping`) holds pkit just before its
/// own stop so the SIGCONT lands there every time. Before the fix pkit
/// stopped itself after the SIGCONT and stayed stopped, with its tree
/// (seen under the portable backend without the pause, once in a dozen
/// `kill -TSTP; kill -TERM; kill -CONT` bursts).
#[test]
fn a_continue_right_after_a_stop_does_not_leave_pkit_stopped() {
    at_once(mechanisms(), |mechanism| {
        let file = temp_path(&format!("tstp-cont-{mechanism}"));
        let mut child = pkit()
            .env("PKIT_TEST_PAUSE", "stopping:3000")
            .args(["run", "-q", "-k", "1", "--mechanism", mechanism, "--"])
            .args(["sh", "-c", &tree_script(&file)])
            .spawn()
            .unwrap();
        let pids = read_pids(&file, 3);
        let sh = pids[2];
        kill(child.id(), libc::SIGTSTP);
        // The tree stopped: pkit is in its pause, about to stop itself.
        wait_state(sh, 'T');
        kill(child.id(), libc::SIGCONT);
        let tree_continued = continues(sh);
        let pkit_running = continues(child.id() as i32);
        if !(tree_continued && pkit_running) {
            // SAFETY: kill(2) on our unreaped child and its tree's pids.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGKILL);
                for &p in &pids {
                    libc::kill(p, libc::SIGKILL);
                }
            }
        }
        kill(child.id(), libc::SIGTERM);
        let status = child.wait().unwrap();
        assert_all_gone(&pids);
        let _ = std::fs::remove_file(&file);
        assert!(
            tree_continued && pkit_running,
            "{mechanism}: left stopped after TSTP+CONT (tree continued: {tree_continued}, \
             pkit running: {pkit_running})"
        );
        // sh ended by the forwarded SIGTERM: pkit ends by it too.
        assert_eq!(
            status.signal(),
            Some(libc::SIGTERM),
            "{mechanism}: {status:?}"
        );
    });
}
