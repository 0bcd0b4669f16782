//! `pkit supervise` under a small soft `RLIMIT_NOFILE` (nofile3): pkit
//! raises its own soft limit to the hard one at start, as `pkit run` does,
//! and every run of the supervision gets exactly the pair pkit was given
//! (or the user's `--rlimit NOFILE`). Every case runs the real binary
//! under `prlimit` with a program that prints its limits and exits 1, so
//! that each restart shows what it got.

#![cfg(target_os = "linux")]

mod common;

use std::process::{Command, Output};

use common::*;

/// The program: its soft and hard limit, then the soft and hard columns
/// of `/proc/self/limits` (read after an exec), then exit 1 (a crash: the
/// supervision starts it again).
const SHOW: &str = "ulimit -Sn; ulimit -Hn; \
     grep 'open files' /proc/self/limits | tr -s ' ' | cut -d ' ' -f 4,5 | tr ' ' '\\n'; \
     exit 1";

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

/// This process's hard descriptor limit, at most 1024 (what `prlimit`
/// may set here without privilege).
fn hard() -> u64 {
    let out = Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .unwrap();
    let ours: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    ours.min(1024)
}

/// `prlimit --nofile=SOFT:HARD pkit supervise --max-restarts 2 --backoff
/// 0 FLAGS... -- PROGRAM...`, with `envs` set and `PKIT_MECHANISM`
/// removed.
fn supervise(
    soft: u64,
    hard: u64,
    envs: &[(&str, &str)],
    flags: &[&str],
    program: &[&str],
) -> Output {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={soft}:{hard}"))
        .arg(env!("CARGO_BIN_EXE_pkit"))
        .args(["supervise", "--max-restarts", "2", "--backoff", "0"])
        .args(flags)
        .arg("--")
        .args(program)
        .env_remove("PKIT_MECHANISM");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The lines the three runs printed, or `None` when this host lacks the
/// mechanism (for another reason than the descriptor limit). The
/// supervision ended as it should: the last run's exit 1, after two
/// restarts, with no run that could not start.
fn three_runs(out: &Output, what: &str) -> Option<Vec<String>> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("containment unavailable") && !stderr.contains("Too many open files") {
        eprintln!("{what}: skipped: {stderr}");
        return None;
    }
    assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
    assert!(
        stderr.contains("restarts exhausted after 2 restarts"),
        "{what}: {stderr}"
    );
    assert!(!stderr.contains("could not start"), "{what}: {stderr}");
    assert!(!stderr.contains("warning"), "{what}: {stderr}");
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

/// What [`SHOW`] prints for `soft:hard`, three times (one per run).
fn pairs(soft: u64, hard: u64) -> Vec<String> {
    [soft, hard, soft, hard]
        .repeat(3)
        .iter()
        .map(u64::to_string)
        .collect()
}

/// Soft 8 and 16 under every mechanism: the supervision starts (before,
/// soft 8 was a 125 "cannot start the async runtime: Too many open
/// files" under every mechanism, and soft 16 under cgroup a 125
/// "containment unavailable: cannot create a cgroup ...: Too many open
/// files"), and each of the three runs sees exactly the pair pkit was
/// given, in `ulimit` and in `/proc/self/limits`.
#[test]
fn every_run_gets_the_pair_pkit_was_given() {
    if !have_prlimit() {
        return;
    }
    let hard = hard();
    for mechanism in mechanisms() {
        for soft in [8, 16] {
            let what = format!("{mechanism} {soft}:{hard}");
            let out = supervise(
                soft,
                hard,
                &[],
                &["--mechanism", mechanism],
                &["sh", "-c", SHOW],
            );
            if let Some(got) = three_runs(&out, &what) {
                assert_eq!(got, pairs(soft, hard), "{what}");
            }
        }
    }
}

/// The mechanism chosen by `PKIT_MECHANISM` rather than the flag, and a
/// script without a `#!` line (supervised as `/bin/sh script`, a second
/// supervision after the first start's refusal): the same pairs.
#[test]
fn the_environments_mechanism_and_a_script_get_the_pair_too() {
    if !have_prlimit() {
        return;
    }
    let hard = hard();
    let script = temp_path("nofile3-script");
    write_file(&script, SHOW, 0o755);
    let script = script.to_str().unwrap();
    for mechanism in mechanisms() {
        let what = format!("PKIT_MECHANISM={mechanism}");
        let env = [("PKIT_MECHANISM", mechanism)];
        let out = supervise(8, hard, &env, &[], &["sh", "-c", SHOW]);
        if let Some(got) = three_runs(&out, &what) {
            assert_eq!(got, pairs(8, hard), "{what}");
        }
        // Soft 16: dash moves the script's descriptor to 10 or above.
        let what = format!("{mechanism} script");
        let out = supervise(16, hard, &[], &["--mechanism", mechanism], &[script]);
        if let Some(got) = three_runs(&out, &what) {
            assert_eq!(got, pairs(16, hard), "{what}");
        }
    }
    let _ = std::fs::remove_file(script);
}

/// `--rlimit NOFILE=...` (new on `supervise`) decides every run's pair in
/// any spelling (the last of two wins); another resource's `--rlimit`
/// does not stop the restore.
#[test]
fn the_users_nofile_wins_on_every_run() {
    if !have_prlimit() {
        return;
    }
    let hard = hard();
    let cases: [(&[&str], (u64, u64)); 4] = [
        (&["--rlimit", "NOFILE=30"], (30, 30)),
        (&["--rlimit", "nofile=30:40"], (30, 40)),
        (
            &["--rlimit", "RLIMIT_NOFILE=30", "--rlimit", "NOFILE=40"],
            (40, 40),
        ),
        (&["--rlimit", "CORE=0"], (8, hard)),
    ];
    for mechanism in mechanisms() {
        for (extra, (soft, hard_want)) in &cases {
            let what = format!("{mechanism} {extra:?}");
            let mut flags = vec!["--mechanism", mechanism];
            flags.extend_from_slice(extra);
            let out = supervise(8, hard, &[], &flags, &["sh", "-c", SHOW]);
            if let Some(got) = three_runs(&out, &what) {
                assert_eq!(got, pairs(*soft, *hard_want), "{what}");
            }
        }
    }
}

/// The portable backend without a trampoline (`PKIT_SPAWN_TRAMPOLINE=off`)
/// can't restore the limit in a run: the library refuses the first start
/// (`Unsupported`, before anything runs, and the supervision ends there),
/// and pkit gives its own raised limit back and supervises again without
/// the restore, so every run inherits exactly the pair pkit got. The
/// refused start is not reported (no `spawn_failed` event in `--json`):
/// three runs, numbered from 1. Failed with the raise alone (125, "a run
/// could not start (unsupported)").
#[test]
fn without_a_trampoline_every_run_inherits_the_pair() {
    if !have_prlimit() {
        return;
    }
    let hard = hard();
    let off = [("PKIT_SPAWN_TRAMPOLINE", "off")];
    for soft in [16, 20] {
        let what = format!("no trampoline {soft}:{hard}");
        let flags = ["--mechanism", "portable", "--json"];
        let out = supervise(soft, hard, &off, &flags, &["sh", "-c", SHOW]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(!stderr.contains("spawn_failed"), "{what}: {stderr}");
        let runs: Vec<u64> = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == "started")
            .filter_map(|v| v["run"].as_u64())
            .collect();
        assert_eq!(runs, [1, 2, 3], "{what}: {stderr}");
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(got, pairs(soft, hard), "{what}");
    }
}

/// Without a trampoline a user's own limit (`--rlimit CORE=0`) is still
/// refused, as `pkit run` refuses it: the supervision ends at once with
/// 125 and the typed reason, and the program never ran (its marker file
/// is not made).
#[test]
fn without_a_trampoline_the_users_own_limit_is_still_refused() {
    if !have_prlimit() {
        return;
    }
    let marker = temp_path("nofile3-marker");
    let touch = format!("touch {}", marker.display());
    let flags = ["--mechanism", "portable", "--rlimit", "CORE=0"];
    let out = supervise(
        20,
        hard(),
        &[("PKIT_SPAWN_TRAMPOLINE", "off")],
        &flags,
        &["sh", "-c", &touch],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("could not start (unsupported)") && stderr.contains("cannot start"),
        "{stderr}"
    );
    assert!(!marker.exists(), "the program ran without its --rlimit");
}

/// Without a trampoline pkit gives its own limit back only after the
/// first start was refused; the runs then need numbers below it. Before
/// the fix pkit's own descriptors (runtime, signals, the shared
/// `/dev/null` a run's stdin gets) held every number below 13: under a
/// soft limit of 12 or less no run could start (125, "a run could not
/// start (spawn)": glibc's `posix_spawn` takes no descriptor at or above
/// the soft limit as a source). Now pkit's own go above a small limit
/// (`sys::reserve_low`) and a source above it is copied below it for the
/// spawn: soft 8 and 12 start every run, each with exactly the pair.
#[test]
fn without_a_trampoline_soft_8_starts() {
    if !have_prlimit() {
        return;
    }
    let hard = hard();
    for soft in [8, 12] {
        let out = supervise(
            soft,
            hard,
            &[("PKIT_SPAWN_TRAMPOLINE", "off")],
            &["--mechanism", "portable"],
            &["sh", "-c", SHOW],
        );
        let got = three_runs(&out, &format!("no trampoline {soft}")).unwrap();
        assert_eq!(got, pairs(soft, hard));
    }
}
