#![cfg(target_os = "linux")]
//! attack19: a hostile round on `pkit supervise` (restart storms, signals
//! at bad moments, hostile output, daemons), every mechanism.
//!
//! What broke (fixed): under process groups (`pgroup`, `portable`) a
//! program that daemonized (a `setsid` descendant) left one live daemon
//! per run, restart after restart, and all of them after `pkit supervise`
//! ended, where `pkit run` kills such a descendant as its subreaper
//! ([`a_setsid_daemon_dies_with_each_run`]). The fix makes pkit the
//! runs' subreaper there: [`a_runs_exited_orphans_are_reaped_while_it_runs`]
//! checks that the orphans it adopts are reaped as they exit, not kept as
//! zombies until the run ends. Everything else here probed and held:
//! these stay as regular tests.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// The pids in `file` (one a line), as many as there are now.
fn pids_in(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// SIGKILLs every pid in `file` still alive (a failed test's daemons).
fn kill_all(file: &Path) {
    for p in pids_in(file) {
        if !pid_gone(p) {
            // SAFETY: kill(2) with plain integers.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
}

/// A program that daemonizes (a double fork with `setsid`: the daemon, a
/// `sleep 300`, is orphaned at once) and then crashes: each run's daemon
/// is gone before the next run starts, and none is left after `pkit
/// supervise` ends, in every mechanism. (The cgroup holds it; under
/// process groups pkit, the runs' subreaper, kills it once its run ended,
/// as `pkit run` does.)
#[test]
fn a_setsid_daemon_dies_with_each_run() {
    at_once(mechanisms(), |mech| {
        let daemons = temp_path("a19-daemons");
        let leaks = temp_path("a19-leaks");
        // At each start: any earlier run's daemon still alive is a leak.
        let script = format!(
            r#"for p in $(cat {d} 2>/dev/null); do
                 [ "$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null)" = S ] && echo $p >> {l}
               done
               n=$(cat {d} 2>/dev/null | wc -l)
               (setsid sh -c 'echo $$ >> {d}; exec sleep 300' &)
               while [ "$(cat {d} 2>/dev/null | wc -l)" -le "$n" ]; do sleep 0.01; done
               exit 3"#,
            d = daemons.display(),
            l = leaks.display()
        );
        // Its stderr to a file: a leaked daemon would hold a pipe open.
        let err = temp_path("a19-stderr");
        let status = pkit()
            .args(["supervise", "--mechanism", mech, "--backoff", "50ms,1"])
            .args(["--max-restarts", "2", "--", "sh", "-c"])
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        let _ = std::fs::remove_file(&err);
        let pids = pids_in(&daemons);
        let alive: Vec<i32> = pids.iter().copied().filter(|&p| !pid_gone(p)).collect();
        let leaked = std::fs::read_to_string(&leaks).unwrap_or_default();
        kill_all(&daemons);
        let _ = std::fs::remove_file(&daemons);
        let _ = std::fs::remove_file(&leaks);
        assert_eq!(status.code(), Some(3), "{mech}: {stderr}");
        assert_eq!(pids.len(), 3, "{mech}: three runs, three daemons: {stderr}");
        assert!(
            leaked.is_empty(),
            "{mech}: an earlier run's daemon still ran at a restart: {leaked:?}"
        );
        assert!(
            alive.is_empty(),
            "{mech}: daemons left after pkit supervise ended: {alive:?}"
        );
    });
}

/// The zombie children of `pid`.
fn zombie_children(pid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut f = stat[close + 1..].split_whitespace();
        if f.next() == Some("Z") && f.next() == Some(pid.to_string().as_str()) {
            out.push(p);
        }
    }
    out
}

/// A run that keeps going while descendants it orphaned exit (a shell's
/// `(cmd &)`, ten of them): pkit, their subreaper, reaps them as they
/// end; no zombie of pkit's piles up for as long as the run lasts.
#[test]
fn a_runs_exited_orphans_are_reaped_while_it_runs() {
    at_once(mechanisms(), |mech| {
        let marks = temp_path("a19-orphans");
        let script = format!(
            "i=0; while [ $i -lt 10 ]; do (sh -c 'sleep 0.2' &); i=$((i+1)); done; \
             sleep 1; echo done > {m}; exec sleep 300",
            m = marks.display()
        );
        let mut child = pkit()
            .args(["supervise", "--mechanism", mech, "--", "sh", "-c"])
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_text(&marks, "done");
        // Reaped within the deadline: none left for good.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut zombies = zombie_children(child.id());
        while !zombies.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            zombies = zombie_children(child.id());
        }
        kill(child.id(), libc::SIGTERM);
        let status = child.wait().unwrap();
        let _ = std::fs::remove_file(&marks);
        assert!(
            zombies.is_empty(),
            "{mech}: pkit's zombie children 10 s after they exited: {zombies:?}"
        );
        assert_eq!(status.code(), Some(0), "{mech}: a stop is status 0");
    });
}
