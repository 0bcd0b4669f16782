//! A hostile user of the `pkit` CLI (fourth pass of 2026-12-03): a program
//! that leaves its container.

#![cfg(unix)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// The script that writes its pid to `$1`, leaves the container the
/// mechanism put it in, writes a second line to `$1` saying where it went,
/// and `exec`s `sleep 300` (the program's pid stays the one written):
/// under a cgroup (root only) it writes its pid into this test's own
/// cgroup and then its new cgroup path; under a process group it joins
/// `anchor`'s process group (perl does; the shell can't) and then its new
/// process group id. With the script, the line it should write: this
/// test's own cgroup, or the anchor's group. `None` when this user can't
/// (said on stderr).
fn leave(mechanism: &str, anchor: &Anchor) -> Option<(String, String)> {
    if mechanism == "cgroup" {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let root = status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
        let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
        let mount = mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1].to_string())
        })?;
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let own = own.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
        let dir = format!("{mount}{}", own.trim_end_matches('/'));
        let writable = std::fs::metadata(format!("{dir}/cgroup.procs")).is_ok();
        if !(root && writable) {
            eprintln!("SKIPPED cgroup: leaving a cgroup needs root and a cgroup v2 of ours");
            return None;
        }
        let script = format!(
            "echo $$ > \"$1\"; echo $$ > {dir}/cgroup.procs || exit 9; \
             sed -n 's/^0:://p' /proc/$$/cgroup >> \"$1\"; exec sleep 300"
        );
        return Some((script, own.trim_end().to_string()));
    }
    let perl = std::process::Command::new("perl")
        .args(["-e", ""])
        .status()
        .is_ok_and(|s| s.success());
    if !perl {
        eprintln!("SKIPPED {mechanism}: leaving a process group needs perl, not installed");
        return None;
    }
    let pgid = anchor.0.id();
    let script = format!(
        "echo $$ > \"$1\"; exec perl -e 'setpgrp(0, {pgid}) or exit 9; \
         open(my $f, \">>\", $ARGV[0]) or exit 8; print $f getpgrp(), \"\\n\"; close($f); \
         exec \"sleep\", \"300\"' \"$1\""
    );
    Some((script, pgid.to_string()))
}

/// A process group of this test's session for the program to move to: a
/// `sleep` leading a group of its own. The test's own process group will
/// not do: in a pid namespace of its own (CI runs the suite under
/// `unshare -pf`) it was made outside, and reads as 0, so the program
/// "joined" group 0, that is stayed in its own. Killed and reaped when
/// dropped.
struct Anchor(std::process::Child);

impl Anchor {
    fn new() -> Anchor {
        use std::os::unix::process::CommandExt;
        Anchor(
            std::process::Command::new("sleep")
                .arg("300")
                .process_group(0)
                .spawn()
                .expect("sleep starts"),
        )
    }
}

impl Drop for Anchor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The two lines the script writes: the program's pid, then where it went
/// (read once both are there, or `None` after `DEADLINE`-like 30 s).
fn pid_and_whereabouts(file: &Path) -> Option<(i32, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() >= 2 {
            return Some((lines[0].trim().parse().ok()?, lines[1].trim().to_string()));
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `pkit run --timeout` of a program that leaves its container ends it at
/// the timeout, with timeout(1)'s status. Before: under a cgroup the
/// timeout's TERM and the grace's SIGKILL went to the emptied cgroup only,
/// and pkit waited for the program for ever. The program says where it
/// went, and the test checks it really left (it once joined "group 0"
/// in a pid namespace, which left nothing).
#[test]
fn a_program_that_leaves_its_container_still_ends_at_the_timeout() {
    for m in mechanisms() {
        // Growing timeouts: on a loaded machine perl may not have left and
        // said so before a short one fired (then the run proves nothing
        // and is tried again).
        for timeout in ["2", "8", "30"] {
            let anchor = Anchor::new();
            let Some((script, destination)) = leave(m, &anchor) else {
                break;
            };
            let pids = pid_file();
            let mut child = pkit()
                .args([
                    "run",
                    "-q",
                    "--mechanism",
                    m,
                    "--timeout",
                    timeout,
                    "-k",
                    "1",
                    "--",
                ])
                .args(["sh", "-c", &script, "sh"])
                .arg(&pids)
                .spawn()
                .map(Started::new)
                .expect("pkit runs");
            let program = read_pids(&pids, 1)[0];
            let whereabouts = pid_and_whereabouts(&pids);
            let deadline = Instant::now() + Duration::from_secs(90);
            let status = loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    break Some(status);
                }
                if Instant::now() >= deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let _ = std::fs::remove_file(&pids);
            let Some(status) = status else {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::process::Command::new("kill")
                    .args(["-9", &program.to_string()])
                    .status();
                panic!("{m}: pkit still waits for the program 90 s after its {timeout} s timeout");
            };
            let code = shell_status(status);
            assert!(code == 124 || code == 137, "{m}: status {code}");
            assert_all_gone(&[program]);
            let Some((_, went)) = whereabouts else {
                assert!(
                    timeout != "30",
                    "{m}: the program never said it left (pkit's status {code})"
                );
                continue;
            };
            assert_eq!(went, destination, "{m}: where the program went");
            break;
        }
    }
}
