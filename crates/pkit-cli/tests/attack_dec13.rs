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
//! zombies until the run ends. Everything else here probed and held (a
//! stop during a long backoff, a tree that ignores SIGTERM, a restart
//! storm with no backoff, SIGTERM at every moment of a start): these stay
//! as regular tests.

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
            .map(Started::new)
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

/// `pkit supervise --json` on `args`, stderr to a file (read back by the
/// test as the events come).
fn supervise_json(mech: &str, args: &[&str], err: &Path) -> Started {
    pkit()
        .args(["supervise", "--json", "--mechanism", mech])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(err).unwrap())
        .spawn()
        .map(Started::new)
        .unwrap()
}

/// The exit status of `child`, waited for up to `within` (killed and
/// `None` after that).
fn status_within(child: &mut std::process::Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(shell_status(s));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A SIGTERM during a long backoff (30 s) ends `pkit supervise` at once
/// with status 0, `stop_requested`, and nothing started again.
#[test]
fn a_stop_during_the_backoff_ends_it_at_once() {
    at_once(mechanisms(), |mech| {
        let err = temp_path("a19-backoff");
        let mut child = supervise_json(mech, &["--backoff", "30s,1", "--", "false"], &err);
        wait_for_text(&err, "\"backoff\"");
        kill(child.id(), libc::SIGTERM);
        let status = status_within(&mut child, Duration::from_secs(15));
        let text = std::fs::read_to_string(&err).unwrap_or_default();
        let _ = std::fs::remove_file(&err);
        assert_eq!(status, Some(0), "{mech}: {text}");
        assert_eq!(text.matches("\"started\"").count(), 1, "{mech}: {text}");
        assert!(text.contains("\"stop_requested\""), "{mech}: {text}");
    });
}

/// A program and its child that both ignore SIGTERM: the stop's grace
/// (`--kill-after 1s`) ends in SIGKILL for the whole tree, status 0.
#[test]
fn a_stop_kills_a_tree_that_ignores_sigterm_after_the_grace() {
    at_once(mechanisms(), |mech| {
        let err = temp_path("a19-ignorer");
        let pids = pid_file();
        let script = format!(
            "trap '' TERM; sh -c 'trap \"\" TERM; echo $$ >> {p}; exec sleep 300' & \
             echo $$ >> {p}; while :; do sleep 0.1; done",
            p = pids.display()
        );
        let mut child = supervise_json(
            mech,
            &["--kill-after", "1s", "--", "sh", "-c", &script],
            &err,
        );
        let tree = read_pids(&pids, 2);
        kill(child.id(), libc::SIGTERM);
        let status = status_within(&mut child, Duration::from_secs(20));
        let text = std::fs::read_to_string(&err).unwrap_or_default();
        let _ = std::fs::remove_file(&err);
        let _ = std::fs::remove_file(&pids);
        assert_eq!(status, Some(0), "{mech}: {text}");
        assert!(text.contains("\"signal\":9"), "{mech}: SIGKILLed: {text}");
        assert_all_gone(&tree);
    });
}

/// A restart storm with no backoff at all is bounded by
/// `--max-restarts`: it ends with `restarts_exhausted` after exactly that
/// many restarts, every run's start and exit reported.
#[test]
fn a_restart_storm_without_backoff_is_bounded() {
    at_once(mechanisms(), |mech| {
        let err = temp_path("a19-storm");
        let mut child = supervise_json(
            mech,
            &["--backoff", "0,1", "--max-restarts", "100", "--", "false"],
            &err,
        );
        let status = status_within(&mut child, Duration::from_secs(60));
        let text = std::fs::read_to_string(&err).unwrap_or_default();
        let _ = std::fs::remove_file(&err);
        assert_eq!(status, Some(1), "{mech}: the last run's status");
        assert!(
            text.contains("\"reason\":\"restarts_exhausted\",\"restarts\":100"),
            "{mech}: {}",
            text.lines().last().unwrap_or_default()
        );
        assert_eq!(text.matches("\"started\"").count(), 101, "{mech}");
        assert_eq!(text.matches("\"exited\"").count(), 101, "{mech}");
    });
}

/// SIGTERM at every moment of a start (0 to 45 ms after `pkit supervise`
/// was spawned: before its handlers, during the first group's creation,
/// the spawn, the program's first instructions): it ends with 0 (or, when
/// the signal came before pkit caught it, killed by it), and the program,
/// if it ran, is gone.
#[test]
fn a_stop_at_any_moment_of_the_start_leaves_nothing() {
    at_once(mechanisms(), |mech| {
        for delay in (0..=45).step_by(5) {
            let pids = pid_file();
            let script = format!("echo $$ >> {}; exec sleep 300", pids.display());
            let mut child = pkit()
                .args(["supervise", "-q", "--mechanism", mech, "--", "sh", "-c"])
                .arg(&script)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map(Started::new)
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay));
            kill(child.id(), libc::SIGTERM);
            let status = status_within(&mut child, Duration::from_secs(20));
            // Killed with pkit or not at all: looked at before the cleanup.
            let alive: Vec<i32> = pids_in(&pids)
                .into_iter()
                .filter(|&p| !pid_gone(p))
                .collect();
            kill_all(&pids);
            let _ = std::fs::remove_file(&pids);
            assert!(
                matches!(status, Some(0 | 143)),
                "{mech}, TERM after {delay} ms: status {status:?}"
            );
            assert!(
                alive.is_empty(),
                "{mech}, TERM after {delay} ms: left {alive:?}"
            );
        }
    });
}
