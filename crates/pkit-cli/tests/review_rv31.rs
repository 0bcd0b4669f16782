//! rv31: hostile review of h/lows (the CLI's reservation of low numbers
//! under a small soft `RLIMIT_NOFILE`, keep-fd placement) at main 76d14b5,
//! with the real binary under `prlimit`. Findings are `#[ignore =
//! "rv31: ..."]`d tests that fail on 76d14b5 (run with `--ignored`); the
//! probes that passed, ignored at first only because a CI run was under
//! way, run with the suite.

#![cfg(target_os = "linux")]

mod common;

use std::process::{Command, Output};

use common::*;

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

/// `bash -c 'exec 3<... N<...; exec prlimit --nofile=SOFT:HARD pkit ARGS'`:
/// pkit started under the pair with `/dev/null` open as every number in
/// `open` (each inherited).
fn under(soft: u64, hard: u64, open: &[i32], args: &[&str]) -> Output {
    let redirs: String = open.iter().map(|n| format!("{n}</dev/null ")).collect();
    let script = format!("exec {redirs}prlimit --nofile={soft}:{hard} \"$0\" \"$@\"",);
    // bash: dash takes only one-digit numbers in a redirection.
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_pkit"))
        .args(args)
        .env_remove("PKIT_MECHANISM")
        .output()
        .unwrap()
}

/// Whether this host can't give `mechanism` at all (not for lack of
/// descriptors).
fn lacks(out: &Output) -> bool {
    let err = String::from_utf8_lossy(&out.stderr);
    err.contains("containment unavailable") && !err.contains("Too many open files")
}

/// Soft limits 4 to 10 and 64, every mechanism: every number from 3 to
/// the limit less two is open, inherited and kept (`--keep-fd` each; the
/// last one is the dynamic loader's room), and the program gets each of
/// them and the soft limit pkit was given.
#[test]
fn keep_every_number_below_a_tiny_limit() {
    if !have_prlimit() {
        return;
    }
    for m in mechanisms() {
        for soft in [4u64, 5, 6, 7, 8, 10, 64] {
            let open: Vec<i32> = (3..soft as i32 - 1).collect();
            let mut args = vec!["run".to_string(), "--mechanism".into(), m.into()];
            for n in &open {
                args.push("--keep-fd".into());
                args.push(n.to_string());
            }
            let script = "for f in /proc/self/fd/*; do :; done; n=3; \
                while [ -e /proc/self/fd/$n ]; do n=$((n+1)); done; echo $n; ulimit -Sn";
            args.extend(["--", "sh", "-c", script].map(String::from));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = under(soft, 1024, &open, &args);
            if lacks(&out) {
                continue;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{m} soft {soft}: {err}");
            assert!(!err.contains("warning"), "{m} soft {soft}: {err}");
            // The first number not open is the first after the kept ones.
            let want = format!("{}\n{soft}\n", soft - 1);
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                want,
                "{m} soft {soft}: {err}"
            );
        }
    }
}

/// pkit's own descriptors over 20 restarts of a supervision under soft
/// limits 8, 10 and 64, every mechanism: each run reports how many its
/// parent (pkit) holds; from the second run on the count stays within two
/// of the second's (one closing as the next run starts may show; a leak
/// would add one per restart, 19 in all), and no run failed to start.
#[test]
fn no_descriptor_leaks_across_restarts_under_a_tiny_limit() {
    if !have_prlimit() {
        return;
    }
    for m in mechanisms() {
        for soft in [8u64, 10, 64] {
            let out = under(
                soft,
                1024,
                &[],
                &[
                    "supervise",
                    "--mechanism",
                    m,
                    "--max-restarts",
                    "20",
                    "--backoff",
                    "0",
                    "--",
                    "sh",
                    "-c",
                    "set -- /proc/$PPID/fd/*; echo $#; exit 1",
                ],
            );
            if lacks(&out) {
                continue;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{m} soft {soft}: {err}");
            assert!(
                err.contains("restarts exhausted after 20 restarts"),
                "{m} {soft}: {err}"
            );
            assert!(!err.contains("could not start"), "{m} soft {soft}: {err}");
            let counts: Vec<u32> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim().parse().unwrap())
                .collect();
            assert_eq!(counts.len(), 21, "{m} soft {soft}: {counts:?}");
            // One in flight (a run's descriptor being closed as the next
            // starts) may show; a leak would add one per restart.
            let most = *counts.iter().max().unwrap();
            assert!(
                most <= counts[1] + 2,
                "{m} soft {soft}: pkit's descriptors grow per restart: {counts:?}"
            );
        }
    }
}

/// rv31 LOW: a hard `NOFILE` equal to a small soft one (`ulimit -n 16`
/// in a shell sets both; systemd `LimitNOFILE=16`) leaves pkit no room to
/// raise, and `reserve_low` only acts after a raise (`sys/nofile.rs`
/// `raise_nofile` returns early when soft >= hard). `pkit run -- true`
/// under 16:16 then fails under cgroup (125, "containment unavailable:
/// cannot create a cgroup ...: Too many open files") and, under pgroup
/// and portable, runs with "warning: the run had no owner-death guard:
/// cannot create the guard's socket pair: Too many open files"; at 20:20
/// cgroup still fails ("true: cannot start: Too many open files"). `true`
/// alone runs at 4:4. README's `--rlimit` row and docs/deploy.md's "A
/// low `ulimit -n`" (checked at 64) do not say pkit needs ~24
/// descriptors of its own when it can't raise.
#[test]
#[ignore = "rv31: LOW: soft == hard NOFILE of 16..20: cgroup run fails 125 (EMFILE), pgroup/portable run with no owner-death guard; undocumented"]
fn an_equal_hard_limit_still_runs_with_its_guard() {
    if !have_prlimit() {
        return;
    }
    for m in mechanisms() {
        for n in [16u64, 20] {
            let out = under(n, n, &[], &["run", "--mechanism", m, "--", "true"]);
            if lacks(&out) {
                continue;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{m} {n}:{n}: {err}");
            assert!(!err.contains("warning"), "{m} {n}:{n}: {err}");
        }
    }
}
