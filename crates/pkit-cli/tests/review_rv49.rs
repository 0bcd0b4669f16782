#![cfg(target_os = "linux")]
//! rv49: a hostile review of the thirteenth session's merges (CLI half:
//! zcont's queue of relays polled beside `pkit run`'s loop, and the final
//! sweep's kill of an adopted orphan's whole process group). Run in the
//! three passes (unset, `PKIT_MECHANISM=pgroup`, `PKIT_MECHANISM=portable`).

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// Waits for `child` to end, at most `DEADLINE`.
fn ended(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let until = Instant::now() + DEADLINE;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        assert!(Instant::now() < until, "{what}: pkit never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A burst of 100 SIGUSR1, then SIGTERM and SIGINT, to `pkit run` whose
/// program and its child ignore all three: the USR1s go to the program
/// (queued relays, in order; the kernel merges those still pending), the
/// TERM and the INT are two requests to end, the second of which ends the
/// whole tree (its SIGTERM ignored, the grace's SIGKILL). The run ends
/// with nothing left; the queue neither loses the second request nor
/// holds it up for ever.
#[test]
fn a_signal_storm_still_ends_the_run() {
    at_once(mechanisms(), |m| {
        let pids = Reap::new(&format!("rv49-storm-{m}"));
        let script = format!(
            "trap '' USR1 TERM INT; sleep 300 & echo $! >> {p}; echo $$ >> {p}; \
             while :; do sleep 0.05; done",
            p = pids.path()
        );
        let mut child = pkit()
            .args(["run", "-k", "1s", "--mechanism", m, "--"])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map(Started::new)
            .expect("pkit starts")
            .into_child();
        let tree = read_pids(&pids.0, 2);
        let pkit_pid = child.id();
        for _ in 0..100 {
            kill(pkit_pid, libc::SIGUSR1);
        }
        kill(pkit_pid, libc::SIGTERM);
        kill(pkit_pid, libc::SIGINT);
        let st = ended(&mut child, m);
        let mut err = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(!st.success(), "{m}: {st:?} {err}");
        assert!(
            // The kernel hands pending signals over lowest first: the
            // INT may be the first request, the TERM the second.
            err.contains("pkit: second SIGINT: ending the whole tree")
                || err.contains("pkit: second SIGTERM: ending the whole tree"),
            "{m}: the second request was lost in the storm: {err}"
        );
        assert_all_gone(&tree);
    });
}

/// `pkit run -- pkit run -- sh` where the inner pkit is SIGKILLed: its
/// program (under process groups the leader of a group of its own) and
/// that program's `setsid` child with its own child are orphans the outer
/// pkit adopts; its final sweep ends every one of them, group and all.
#[test]
fn a_killed_inner_pkits_tree_is_swept_by_the_outer() {
    at_once(mechanisms(), |m| {
        let pids = Reap::new(&format!("rv49-nest-{m}"));
        let script = format!(
            "setsid sh -c 'sleep 300 & echo $! >> {p}; echo $$ >> {p}; wait' \
             </dev/null >/dev/null 2>&1 & sleep 300 & echo $! >> {p}; echo $$ >> {p}; wait",
            p = pids.path()
        );
        let inner_file = Reap::new(&format!("rv49-nest-inner-{m}"));
        let pkit_bin = env!("CARGO_BIN_EXE_pkit");
        let wrapper = format!(
            "echo $$ > {f}; exec {pkit_bin} run -q --mechanism {m} -- sh -c \"$1\"",
            f = inner_file.path()
        );
        let mut child = pkit()
            .args(["run", "-q", "--mechanism", m, "--"])
            .args(["sh", "-c", &wrapper, "sh", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Started::new)
            .expect("pkit starts")
            .into_child();
        let tree = read_pids(&pids.0, 4);
        let inner = read_pids(&inner_file.0, 1)[0];
        kill(inner as u32, libc::SIGKILL);
        let st = ended(&mut child, m);
        assert!(!st.success(), "{m}: {st:?}");
        assert_all_gone(&tree);
    });
}

/// The sweep's group kill as a user who is not root (uid 65534): an
/// orphan that left with `setsid` is killed with its group, and nothing
/// of the tree is left.
#[test]
fn the_sweep_kills_a_setsid_group_as_nobody() {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 || !std::path::Path::new("/usr/bin/setpriv").exists() {
        eprintln!("SKIPPED in tests/review_rv49.rs: needs root and setpriv");
        return;
    }
    at_once(process_group_mechanisms(), |m| {
        let pids = Reap::new(&format!("rv49-nobody-{m}"));
        std::fs::write(&pids.0, "").unwrap();
        std::fs::set_permissions(
            &pids.0,
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )
        .unwrap();
        let script = format!(
            "setsid sh -c 'sleep 300 & echo $! >> {p}; echo $$ >> {p}; wait' \
             </dev/null >/dev/null 2>&1 & while [ $(wc -l < {p}) -lt 2 ]; do sleep 0.05; done",
            p = pids.path()
        );
        let out = std::process::Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_pkit"))
            .args(["run", "-q", "--timeout", "60s", "--mechanism", m, "--"])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{m}: {out:?}");
        let tree = read_pids(&pids.0, 2);
        assert_all_gone(&tree);
    });
}
