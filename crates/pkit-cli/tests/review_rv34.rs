#![cfg(target_os = "linux")]
//! rv34: a hostile review of attack19 (`pkit supervise` under process
//! groups as the runs' subreaper: the sweep between runs and after the
//! last, the reaping of exited strays on SIGCHLD).
//!
//! Findings (failing on 6baadcc, fixed by sup2):
//! - [`a_run_that_joins_pkits_process_group_keeps_its_exit_status`][]: the
//!   stray reaping takes a run's program for a stray when it is no group
//!   leader in pkit's session any more, and reaps its zombie before the
//!   library: under `portable` the run's exit status is lost.
//! - [`an_orphan_named_pkit_guard_is_swept_too`][]: the sweep spares any
//!   child whose name is `pkit-guard`, so a daemon that takes the name
//!   outlives every run and pkit.
//!
//! Probes that held stay regular tests.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// A run's program that moves itself into pkit's own process group (a
/// legal `setpgid` within the session) and exits 7: every run's status is
/// 7, and pkit supervise exits 7 once its restarts are spent. Under
/// `portable` the CLI's stray reaping (SIGCHLD: a zombie child that leads
/// no group in pkit's session "can't be a program") reaps the program
/// before the library does: the run's line names no exit and pkit exits
/// 125 (its own failure) instead of 7. (Under `pgroup` the library's
/// pidfd wait wins the race here.)
#[test]
fn a_run_that_joins_pkits_process_group_keeps_its_exit_status() {
    let prog = "import os, time\n\
                os.setpgid(0, os.getpgid(os.getppid()))\n\
                time.sleep(0.05)\n\
                os._exit(7)\n";
    at_once(mechanisms(), |mech| {
        for round in 0..3 {
            let out = pkit()
                .args(["supervise", "--mechanism", mech, "--backoff", "10ms,1"])
                .args(["--max-restarts", "2", "--", "python3", "-c", prog])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(7), "{mech} round {round}: {stderr}");
            assert_eq!(
                stderr.matches("exited with code 7").count(),
                3,
                "{mech} round {round}: every run's status: {stderr}"
            );
        }
    });
}

/// A `setsid` daemon whose name is `pkit-guard` (a copy of `sleep` by
/// that name): killed when its run ends, as any other daemon is. The
/// sweep knows the guard's pid, yet spares every child by that name.
#[test]
fn an_orphan_named_pkit_guard_is_swept_too() {
    let dir = temp_path("rv34-guardname");
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("pkit-guard");
    std::fs::copy("/bin/sleep", &fake).unwrap();
    at_once(mechanisms(), |mech| {
        for verb in ["supervise", "run"] {
            let pidf = dir.join(format!("{verb}-{mech}.pid"));
            let script = format!(
                "(setsid sh -c 'echo $$ > {p}; exec {f} 300' &); \
                 while [ ! -s {p} ]; do sleep 0.01; done; exit 3",
                p = pidf.display(),
                f = fake.display()
            );
            let mut c = pkit();
            c.args([verb, "--mechanism", mech]);
            if verb == "supervise" {
                c.args(["--max-restarts", "0"]);
            }
            let status = c
                .args(["--", "sh", "-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            let pid: i32 = std::fs::read_to_string(&pidf)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            // Given a moment to die, as a SIGKILL takes (generous: on a
            // loaded machine the killed process can wait seconds for the
            // CPU it needs to exit).
            let deadline = Instant::now() + Duration::from_secs(30);
            while !pid_gone(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let alive = !pid_gone(pid);
            if alive {
                kill(pid as u32, libc::SIGKILL);
            }
            assert_eq!(status.code(), Some(3), "{verb} {mech}");
            assert!(
                !alive,
                "{verb} {mech}: the daemon named pkit-guard outlived pkit"
            );
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// The health-port probe and the owner-death guard are no orphans: a
/// supervised server that is healthy, then crashes, restarts with its
/// code, and pkit's guard (if any) lives on through the sweeps; the
/// restart count and the final code are right.
#[test]
fn the_sweep_spares_the_guard_and_the_runs_statuses_hold() {
    at_once(mechanisms(), |mech| {
        let pidf = temp_path("rv34-daemons");
        let script = format!(
            "(setsid sh -c 'echo $$ >> {p}; exec sleep 300' &); (sh -c 'exit 0' &); \
             sleep 0.1; exit 5",
            p = pidf.display()
        );
        let out = pkit()
            .args(["supervise", "--mechanism", mech, "--backoff", "10ms,1"])
            .args(["--max-restarts", "3", "--", "sh", "-c"])
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let daemons: Vec<i32> = std::fs::read_to_string(&pidf)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        let _ = std::fs::remove_file(&pidf);
        let alive: Vec<i32> = daemons.iter().copied().filter(|&p| !pid_gone(p)).collect();
        for &p in &alive {
            kill(p as u32, libc::SIGKILL);
        }
        assert!(alive.is_empty(), "{mech}: daemons left: {alive:?}");
        assert_eq!(out.status.code(), Some(5), "{mech}: {stderr}");
        assert_eq!(
            stderr.matches("exited with code 5").count(),
            4,
            "{mech}: {stderr}"
        );
        assert!(!stderr.contains("pkit: error"), "{mech}: {stderr}");
    });
}
