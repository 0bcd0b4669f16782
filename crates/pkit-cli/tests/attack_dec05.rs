//! Attack round dec05 on `pkit run`: closed standard streams, pkit as PID
//! 1 of a pid namespace, and no process left to fork, in every mechanism.
//! These passed when written; they stay as the strongest of the round's
//! attacks on the CLI (the library's are in crates/pkit/tests/attack_dec05.rs).
#![cfg(target_os = "linux")]

mod common;

use std::process::Stdio;

use common::*;

/// Whether `program` is on PATH and runs.
fn have(program: &str, probe: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Started with stdin, stdout and stderr all closed (`<&- >&- 2>&-`),
/// `pkit run` gives the program `/dev/null` for each, never one of its own
/// descriptors (a socket, a pipe, an epoll set, a pidfd that took the
/// lowest free numbers), and mirrors its exit.
#[test]
fn closed_standard_streams_reach_the_program_as_dev_null() {
    for m in mechanisms() {
        let file = temp_path("fds");
        let script = format!("ls -l /proc/$$/fd > {}; exit 7", file.display());
        let status = std::process::Command::new("sh")
            .args(["-c", r#"exec "$0" "$@" <&- >&- 2>&-"#])
            .arg(env!("CARGO_BIN_EXE_pkit"))
            .args(["run", "-q", "--mechanism", m, "--", "sh", "-c", &script])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(7), "{m}");
        let listing = std::fs::read_to_string(&file).unwrap();
        let _ = std::fs::remove_file(&file);
        for fd in ["0", "2"] {
            let line = listing
                .lines()
                .find(|l| l.split_whitespace().rev().nth(2) == Some(fd))
                .unwrap_or_else(|| panic!("{m}: no fd {fd} in {listing}"));
            assert!(line.ends_with("/dev/null"), "{m}: fd {fd}: {line}");
        }
        for bad in ["socket:", "pipe:", "anon_inode:"] {
            assert!(
                !listing.contains(bad),
                "{m}: pkit's own {bad} leaked: {listing}"
            );
        }
    }
}

/// `pkit run` as PID 1 of a new pid namespace (`unshare -pf
/// --mount-proc`): a descendant orphaned there is reparented to pkit
/// itself. The run mirrors the program's status, and a timeout still ends
/// the whole tree with 124.
#[test]
fn pkit_as_pid_1_of_a_pid_namespace() {
    if !have("unshare", &["-pf", "--mount-proc", "true"]) {
        eprintln!("SKIPPED pkit_as_pid_1_of_a_pid_namespace: unshare -pf refused here");
        return;
    }
    for m in mechanisms() {
        for (args, want) in [
            (vec!["sh", "-c", "sleep 100 & exit 3"], 3),
            (
                vec!["--timeout", "1", "sh", "-c", "sleep 100 & sleep 100"],
                124,
            ),
        ] {
            let out = std::process::Command::new("unshare")
                .args(["-pf", "--mount-proc"])
                .arg(env!("CARGO_BIN_EXE_pkit"))
                .args(["run", "-q", "--mechanism", m])
                .args(&args[..args.len() - 3])
                .arg("--")
                .args(&args[args.len() - 3..])
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(want),
                "{m} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// With no process left to fork for its user (`RLIMIT_NPROC` of 1 to 4 for
/// `nobody`, whose count root's limits don't bypass), `pkit run` fails
/// with its own status 125 and a `pkit:` message, or runs the program
/// (which may fail to fork on its own): never killed by a signal, never
/// hung.
#[test]
fn no_process_left_to_fork() {
    let euid = unsafe_free_euid();
    if euid != Some(0) || !have("setpriv", &["--version"]) || !have("prlimit", &["--version"]) {
        eprintln!("SKIPPED no_process_left_to_fork: needs root, setpriv and prlimit");
        return;
    }
    for m in mechanisms() {
        for n in ["1", "2", "3", "4"] {
            let out = std::process::Command::new("setpriv")
                .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
                .args(["prlimit", &format!("--nproc={n}")])
                .arg(env!("CARGO_BIN_EXE_pkit"))
                .args(["run", "-q", "--mechanism", m, "--", "sh", "-c", "echo ran"])
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            let code = out.status.code();
            assert!(
                code.is_some(),
                "{m} nproc {n}: killed: {:?} {err}",
                out.status
            );
            if code == Some(125) {
                assert!(err.starts_with("pkit: "), "{m} nproc {n}: {err}");
            }
        }
    }
}

/// The effective user id, read from /proc (no `unsafe` here).
fn unsafe_free_euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}
