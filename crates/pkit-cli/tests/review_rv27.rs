//! Review rv27: hostile review of nofile3 (`pkit supervise` restores the
//! descriptor limit pkit was given in every run; `supervise --rlimit`).

#![cfg(target_os = "linux")]

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

fn pkit() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pkit"));
    cmd.env_remove("PKIT_MECHANISM");
    cmd
}

fn have_prlimit() -> bool {
    let ok = Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: no prlimit");
    }
    ok
}

/// This process's hard descriptor limit, at most 1024.
fn hard() -> u64 {
    let out = Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .unwrap();
    let ours: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    ours.min(1024)
}

/// A soft limit above the hard one is a usage error of `--rlimit`, named
/// as such, for `pkit run` and `pkit supervise` alike: 125, the reason
/// given, nothing run. (Before: `supervise` said only "a run could not
/// start (invalid_input)".)
#[test]
fn a_soft_limit_above_the_hard_one_is_refused_with_its_reason() {
    for verb in [&["run"][..], &["supervise", "--max-restarts", "1"][..]] {
        for flag in ["NOFILE=10:5", "CORE=unlimited:0"] {
            let out = pkit()
                .args(verb)
                .args(["--rlimit", flag, "--", "sh", "-c", "echo ran"])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(125), "{verb:?} {flag}: {stderr}");
            assert!(
                stderr.contains("above the hard"),
                "{verb:?} {flag}: no reason: {stderr}"
            );
            assert!(out.stdout.is_empty(), "{verb:?} {flag}: it ran");
        }
    }
}

/// Bad `--rlimit` values for `supervise`: each a usage error (125) that
/// names the value, before anything runs.
#[test]
fn bad_rlimit_values_are_usage_errors() {
    for flag in [
        "NOFILE",
        "NOFILE=",
        "NOFILE=abc",
        "BOGUS=1",
        "NOFILE=-1",
        "NOFILE=1:",
    ] {
        let out = pkit()
            .args(["supervise", "--rlimit", flag, "--", "sh", "-c", "echo ran"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{flag}: {stderr}");
        assert!(stderr.contains("--rlimit"), "{flag}: {stderr}");
        assert!(out.stdout.is_empty(), "{flag}: it ran");
    }
}

/// A restart storm (ten crashes at once, `--json`) under every mechanism,
/// and without a trampoline: every run sees exactly the pair pkit was
/// given, and no start is reported refused.
#[test]
fn every_run_of_a_restart_storm_gets_the_pair() {
    if !have_prlimit() {
        return;
    }
    let hard = hard();
    let mut cases: Vec<(&str, Option<&str>)> =
        mechanisms().into_iter().map(|m| (m, None)).collect();
    cases.push(("portable", Some("off")));
    for (mechanism, trampoline) in cases {
        let what = format!("{mechanism} trampoline {trampoline:?}");
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile=24:{hard}"))
            .arg(env!("CARGO_BIN_EXE_pkit"))
            .args([
                "supervise",
                "--json",
                "--restart",
                "always",
                "--max-restarts",
                "10",
            ])
            .args([
                "--backoff",
                "0",
                "--storm-pause",
                "10ms",
                "--mechanism",
                mechanism,
            ])
            .args(["--", "sh", "-c", "echo $(ulimit -Sn):$(ulimit -Hn); exit 1"])
            .env_remove("PKIT_MECHANISM");
        if let Some(t) = trampoline {
            cmd.env("PKIT_SPAWN_TRAMPOLINE", t);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("containment unavailable") {
            eprintln!("{what}: skipped: {stderr}");
            continue;
        }
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(!stderr.contains("spawn_failed"), "{what}: {stderr}");
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(got, vec![format!("24:{hard}"); 11], "{what}: {stderr}");
    }
}

/// SIGTERM to `pkit supervise` while it starts, without a trampoline
/// (the first start refused, held back, the supervision started again
/// with pkit's own limit given back): a stop, as with a trampoline (0,
/// `stop_requested`), never a refused start (125, `spawn_failed`
/// `unsupported`, `cannot_start`).
///
/// Before the fix (rv27 LOW): when the signal landed before the first
/// start's refusal was handled (the first few ms), the held `unsupported`
/// refusal was not tried again and was reported as the end: exit 125 and
/// a `spawn_failed` for what was only pkit's own first try (9-16 of these
/// 40 rounds). The same held for the older held refusal, a script without
/// `#!` (`not_executable`). Now the start is tried again, stopped before
/// it starts anything.
#[test]
fn a_stop_during_the_no_trampoline_retry_is_a_stop() {
    if !have_prlimit() {
        return;
    }
    let hard = hard();
    let mut bad = Vec::new();
    for round in 0..40u64 {
        let child = Command::new("prlimit")
            .arg(format!("--nofile=64:{hard}"))
            .arg(env!("CARGO_BIN_EXE_pkit"))
            .args(["supervise", "--json", "--mechanism", "portable"])
            .args(["--", "sh", "-c", "exec sleep 30"])
            .env_remove("PKIT_MECHANISM")
            .env("PKIT_SPAWN_TRAMPOLINE", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map(Started::new)
            .unwrap();
        std::thread::sleep(Duration::from_micros(500 * (round % 20)));
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let out: Output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Killed before its handlers were installed: no report at all.
        if out.status.code() == Some(125) || stderr.contains("spawn_failed") {
            bad.push(format!("round {round}: {:?}: {stderr}", out.status.code()));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of 40 stops misreported: {bad:#?}",
        bad.len()
    );
}

/// A limit the system refuses at every start (a hard NOFILE above
/// `fs.nr_open`): `pkit run` says why ("setting a resource limit:
/// Operation not permitted"); `pkit supervise` does too, in prose and in
/// `--json` (the `spawn_failed` event's `message`). Before the fix (rv27
/// LOW) it printed only the refusal's kind ("a run could not start
/// (child_setup)"; `--json`: `spawn_failed` with `error_kind` alone).
#[test]
fn a_refused_start_under_supervise_says_why() {
    let out = pkit()
        .args(["supervise", "--max-restarts", "1", "--rlimit"])
        .args(["NOFILE=4000000000:4000000000", "--", "true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("could not start (child_setup): true: ")
            && stderr.contains("resource limit"),
        "no reason: {stderr}"
    );

    let out = pkit()
        .args(["supervise", "--json", "--max-restarts", "1", "--rlimit"])
        .args(["NOFILE=4000000000:4000000000", "--", "true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    let failed: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "spawn_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{stderr}");
    assert_eq!(failed[0]["error_kind"], "child_setup", "{stderr}");
    let message = failed[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("resource limit"), "no reason: {stderr}");
}
