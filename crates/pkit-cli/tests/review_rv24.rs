//! Hostile review rv24 (2026-12-05) of the nofile2 merge: `pkit run`
//! raising its soft `RLIMIT_NOFILE` under the portable backend too (the
//! trampoline restores the pair; without one pkit gives its own back and
//! starts again without the restore), and the portable trampoline making
//! its exec report pipe before the spawn options are applied. Every case
//! runs the real binary under `prlimit`, with the kept descriptor opened
//! by `bash` (`exec N>/dev/null`) so that pkit inherits it.

#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use common::*;

fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `bash -c 'exec FD>/dev/null; exec prlimit --nofile=LIMIT pkit ARGS...'`
/// (no descriptor opened for `fd` 0), with `envs` set and
/// `PKIT_MECHANISM` removed.
fn run_with_fd(fd: u32, limit: &str, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let open = if fd == 0 {
        String::new()
    } else {
        format!("exec {fd}>/dev/null; ")
    };
    let script = format!("{open}exec prlimit --nofile={limit} \"$@\"");
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &script, "bash", env!("CARGO_BIN_EXE_pkit")])
        .args(args)
        .env_remove("PKIT_MECHANISM");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The descriptor numbers `ls /proc/self/fd` printed.
fn listed(out: &Output) -> BTreeSet<u32> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A descriptor kept at the limit minus 4 or minus 3 (one `--keep-fd`,
/// `prlimit --nofile=64:64`): the cgroup and pgroup mechanisms start the
/// program with it, and so did the portable backend before the merge. The
/// merged trampoline made its exec report pipe above every kept target
/// (`above` = the highest target or the gate, plus 1), where the gate's
/// and the passed descriptor's copies already sit: no two numbers were
/// left below 64, and the start failed with 125 "Too many open files".
/// The program sees 0, 1, 2, the kept descriptor and `ls`'s own directory
/// descriptor (the lowest free number, 3): nothing of the trampoline's.
#[test]
fn a_descriptor_kept_near_the_limit_is_passed_under_every_mechanism() {
    if !have("prlimit", "--version") || !have("bash", "--version") {
        eprintln!("skipped: no prlimit or bash");
        return;
    }
    for mech in ["cgroup", "pgroup", "portable"] {
        for fd in [10u32, 60, 61] {
            let keep = fd.to_string();
            let out = run_with_fd(
                fd,
                "64:64",
                &[],
                &[
                    "run",
                    "--mechanism",
                    mech,
                    "--keep-fd",
                    &keep,
                    "--",
                    "ls",
                    "/proc/self/fd",
                ],
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("containment unavailable") {
                continue;
            }
            assert_eq!(out.status.code(), Some(0), "{mech} fd {fd}: {stderr}");
            let want: BTreeSet<u32> = [0, 1, 2, 3, fd].into();
            assert_eq!(listed(&out), want, "{mech} fd {fd}");
        }
    }
}

/// The trampoline's pipe, made before `--rlimit NOFILE=4`, still reports
/// a failed exec as what it is (126: not executable; the owner resolved
/// a missing program before the start: 127), with a kept descriptor at 3
/// (the number the pipe would otherwise take), under every mechanism.
#[test]
fn a_failed_exec_under_nofile_4_with_a_kept_3_is_reported_typed() {
    if !have("prlimit", "--version") || !have("bash", "--version") {
        eprintln!("skipped: no prlimit or bash");
        return;
    }
    let script = temp_path("rv24-noexec");
    write_file(&script, "#!/bin/sh\necho ran\n", 0o644);
    let path = script.to_str().unwrap();
    for mech in ["cgroup", "pgroup", "portable"] {
        for (program, code) in [(path, 126), ("/nonexistent/rv24", 127)] {
            let out = run_with_fd(
                3,
                "64:1024",
                &[],
                &[
                    "run",
                    "--mechanism",
                    mech,
                    "--keep-fd",
                    "3",
                    "--rlimit",
                    "NOFILE=4",
                    "--",
                    program,
                ],
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("containment unavailable") {
                continue;
            }
            assert_eq!(out.status.code(), Some(code), "{mech} {program}: {stderr}");
            assert!(out.stdout.is_empty(), "{mech} {program}");
        }
    }
    let _ = std::fs::remove_file(&script);
}

/// Without a trampoline the restore is refused and pkit starts again
/// without it: a refusal of the user's own option (`--nice`, which only
/// the trampoline applies there) is still reported (125), and the
/// program never ran (its marker file is not made); the start that
/// succeeds keeps the environment, working directory, stdin and
/// `--timeout`, and the program sees exactly the pair pkit got.
#[test]
fn the_start_again_without_a_trampoline_keeps_everything_else() {
    if !have("prlimit", "--version") || !have("bash", "--version") {
        eprintln!("skipped: no prlimit or bash");
        return;
    }
    let off = [("PKIT_SPAWN_TRAMPOLINE", "off")];
    let marker = temp_path("rv24-marker");
    let touch = format!("touch {}", marker.display());
    let out = run_with_fd(
        0,
        "64:1024",
        &off,
        &[
            "run",
            "--mechanism",
            "portable",
            "--nice",
            "5",
            "--",
            "sh",
            "-c",
            &touch,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("PKIT_SPAWN_TRAMPOLINE=off"), "{stderr}");
    assert!(!marker.exists(), "the program ran without its --nice");

    let dir = std::env::temp_dir();
    let show = "echo \"$RV24 $(pwd) $(cat)\"; ulimit -Sn; ulimit -Hn; sleep 30; echo late";
    let mut cmd = Command::new("bash");
    cmd.args([
        "-c",
        "echo in | exec prlimit --nofile=64:1024 \"$@\"",
        "bash",
        env!("CARGO_BIN_EXE_pkit"),
        "run",
        "--mechanism",
        "portable",
        "--timeout",
        "1",
        "--env",
        "RV24=kept",
        "--chdir",
        dir.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        show,
    ])
    .env("PKIT_SPAWN_TRAMPOLINE", "off")
    .env_remove("PKIT_MECHANISM");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(124), "{stderr}");
    let real = std::fs::canonicalize(&dir).unwrap();
    let want = format!("kept {} in\n64\n1024\n", real.display());
    assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{stderr}");
}

/// A descriptor kept at the limit minus 2 (`prlimit --nofile=64:64`,
/// `--keep-fd 62`) starts under portable as under cgroup and pgroup.
/// Before the fix (pre-existing, before nofile2 too) the portable
/// trampoline moved the gate and the passed copy above every target (63,
/// then none left): 125 "passing a descriptor through: Too many open
/// files". Now each goes to the lowest free number that is no target.
#[test]
fn a_descriptor_kept_at_the_limit_minus_2_is_passed_under_portable() {
    if !have("prlimit", "--version") || !have("bash", "--version") {
        eprintln!("skipped: no prlimit or bash");
        return;
    }
    let args = ["run", "--mechanism", "portable", "--keep-fd", "62", "--"];
    let out = run_with_fd(
        62,
        "64:64",
        &[],
        &[&args[..], &["ls", "/proc/self/fd"]].concat(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(listed(&out), [0, 1, 2, 3, 62].into());
}

/// Descriptors kept up to the last number below the limit (`prlimit
/// --nofile=64:64`, `--keep-fd` 3, 4, 62 and 63, given out of order),
/// under every mechanism: each reaches the program as the file it was.
/// Before the fix pkit copied every passed descriptor above the highest
/// target in the owner (and the forked child's report pipe too): 63 left
/// no number, and every mechanism refused it with 125 "keep_fds:
/// descriptor 63 can't be passed: Invalid argument".
#[test]
fn descriptors_kept_up_to_the_limit_are_passed_under_every_mechanism() {
    if !have("prlimit", "--version") || !have("bash", "--version") {
        eprintln!("skipped: no prlimit or bash");
        return;
    }
    let fds = [63u32, 3, 62, 4];
    let files: Vec<_> = fds
        .iter()
        .map(|fd| {
            let path = temp_path(&format!("rv24-kept-{fd}"));
            write_file(&path, "", 0o644);
            path
        })
        .collect();
    let mut open = String::new();
    for (fd, path) in fds.iter().zip(&files) {
        open.push_str(&format!("exec {fd}<{}; ", path.display()));
    }
    let show = "for fd in 63 3 62 4; do readlink /proc/$$/fd/$fd; done";
    for mech in mechanisms() {
        let script = format!("{open}exec prlimit --nofile=64:64 \"$@\"");
        let mut cmd = Command::new("bash");
        cmd.args(["-c", &script, "bash", env!("CARGO_BIN_EXE_pkit")])
            .args(["run", "--mechanism", mech])
            .args(
                fds.iter()
                    .flat_map(|fd| ["--keep-fd".to_string(), fd.to_string()]),
            )
            .args(["--", "sh", "-c", show])
            .env_remove("PKIT_MECHANISM");
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("containment unavailable") {
            continue;
        }
        assert_eq!(out.status.code(), Some(0), "{mech}: {stderr}");
        let want: String = files.iter().map(|p| format!("{}\n", p.display())).collect();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want,
            "{mech}: {stderr}"
        );
    }
    for path in files {
        std::fs::remove_file(path).unwrap();
    }
}

/// Without a trampoline pkit gives its own soft limit back just before
/// the start; `--capture`'s pipes then need numbers below that limit.
/// Before the fix (as before nofile2) pkit's own ~18 descriptors held them
/// all under a soft limit of 18 or less: 125 "setting up stdio: Too many
/// open files" (the trampoline, cgroup and pgroup start it down to soft
/// 4). Now pkit's own go above a small limit (`sys::reserve_low`), and the
/// program still gets exactly the pair pkit was given. (Soft 6 or less
/// leaves no room for the two pipes at all: 3 numbers.)
#[test]
fn capture_without_a_trampoline_under_a_small_soft_limit() {
    if !have("prlimit", "--version") || !have("bash", "--version") {
        eprintln!("skipped: no prlimit or bash");
        return;
    }
    for soft in [8, 12, 16, 18] {
        let out = run_with_fd(
            0,
            &format!("{soft}:1024"),
            &[("PKIT_SPAWN_TRAMPOLINE", "off")],
            &[
                "run",
                "--mechanism",
                "portable",
                "--capture",
                "--",
                "sh",
                "-c",
                "echo hi; echo \"$(ulimit -Sn):$(ulimit -Hn)\"",
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "soft {soft}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("hi\n{soft}:1024\n"),
            "soft {soft}: {stderr}"
        );
    }
}
