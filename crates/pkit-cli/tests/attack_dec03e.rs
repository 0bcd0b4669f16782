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
            .map(Started::new)
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

/// `kill -INT -<group>` (one INT to a whole job, as a script or a tool
/// does) to a `pkit run` nested in a cgroup-mechanism `pkit run`: the
/// nested pkit shares the outer's process group, so it gets the INT from
/// the sender and again relayed by the outer. One INT is one request: the
/// program gets INT, and the run goes on. Before: the nested pkit counted
/// the relay as a second request and ended the run with TERM.
#[test]
fn one_int_to_the_job_of_a_nested_run_is_one_request() {
    use std::os::unix::process::CommandExt;
    for inner in mechanisms() {
        let log = temp_path("int-log");
        let stop = temp_path("int-stop");
        let pids = pid_file();
        let script = format!(
            "trap 'echo INT >> {l}' INT; trap 'echo TERM >> {l}; exit 5' TERM; echo $$ > {p}; \
             while [ ! -e {s} ]; do sleep 0.05; done",
            p = pids.display(),
            l = log.display(),
            s = stop.display()
        );
        let mut child = pkit()
            .args(["run", "-q", "--mechanism", "cgroup", "--"])
            .arg(env!("CARGO_BIN_EXE_pkit"))
            .args(["run", "-q", "--json", "--mechanism", inner, "--"])
            .args(["sh", "-c", &script])
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map(Started::new)
            .expect("pkit runs");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read_to_string(&pids).map_or(true, |s| !s.ends_with('\n')) {
            if let Some(status) = child.try_wait().expect("try_wait") {
                eprintln!("SKIPPED cgroup>{inner}: the outer cgroup run ended ({status})");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cgroup>{inner}: the program never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if child.try_wait().expect("try_wait").is_some() {
            continue;
        }
        let program = read_pids(&pids, 1)[0];
        let pgid = child.id() as i32;
        // SAFETY: kill(2) on the process group this test made (pkit leads it).
        assert_eq!(unsafe { libc::kill(-pgid, libc::SIGINT) }, 0);
        wait_for_text(&log, "INT");
        // Time for a relay counted twice to end the run.
        std::thread::sleep(Duration::from_secs(2));
        let seen = std::fs::read_to_string(&log).unwrap_or_default();
        let ended = child.try_wait().expect("try_wait");
        // The program ends on its own; the nested pkit's report follows.
        std::fs::write(&stop, b"").unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("try_wait").is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; everything ends with its guards.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let out = child.wait_with_output().expect("the outer pkit's output");
        let _ = std::fs::remove_file(&pids);
        let _ = std::fs::remove_file(&log);
        let _ = std::fs::remove_file(&stop);
        assert!(
            ended.is_none() && !seen.contains("TERM"),
            "cgroup>{inner}: one INT ended the run ({ended:?}); the program got {seen:?}"
        );
        assert_all_gone(&[program]);
        // One request, listed once (the relay was listed too before).
        // `--json` writes the report to stderr, which the outer passes on.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.lines().rev().find(|l| l.starts_with('{'));
        let report: serde_json::Value = line
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("cgroup>{inner}: no report: {out:?}"));
        assert_eq!(
            report["signals_received"],
            serde_json::json!(["SIGINT"]),
            "cgroup>{inner}: {report}"
        );
    }
}
