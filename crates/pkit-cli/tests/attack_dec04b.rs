//! A hostile user of the `pkit` CLI (second pass of 2026-12-04): a
//! `--json-fd` that names a descriptor pkit did not inherit.

#![cfg(unix)]

mod common;

use std::os::unix::process::CommandExt;

use common::*;

/// `--json-fd N` for an N that is not open when pkit starts is refused
/// (status 125, nothing run), whatever number pkit's own descriptors (the
/// runtime's, the signal pipe's) then get. Before the fix the check ran
/// after the runtime was built: for the numbers the runtime or the signal
/// pipe had taken, pkit ran the program, wrote the report into its own
/// socket or pipe (or got EINVAL from an epoll/eventfd) and then aborted
/// with "IO Safety violation: owned file descriptor already closed"
/// (status 134), or exited 0 with the report lost.
#[test]
fn a_json_fd_that_is_not_open_is_refused_before_anything_runs() {
    for mechanism in mechanisms() {
        for fd in 3..=16 {
            let mut cmd = pkit();
            cmd.args(["run", "-q", "--mechanism", mechanism, "--json-fd"])
                .arg(fd.to_string())
                .args(["--", "echo", "ran"]);
            // SAFETY: close(2) on a plain number, between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    libc::close(fd);
                    Ok(())
                });
            }
            let out = cmd.output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(125),
                "{mechanism} --json-fd {fd}: {:?}, stdout {stdout:?}, stderr {stderr:?}",
                out.status
            );
            assert!(!stdout.contains("ran"), "{mechanism} --json-fd {fd}: ran");
            assert!(
                stderr.contains("cannot open the report's destination: Bad file descriptor"),
                "{mechanism} --json-fd {fd}: {stderr:?}"
            );
        }
    }
}

/// `--keep-fd N` for an N that is not open when pkit starts is refused
/// (status 125, nothing run), as it is for a number pkit never uses.
/// Before the fix, for the numbers pkit's runtime, signalfd or signal pipe
/// had taken by then, the program was handed that descriptor of pkit's
/// (an epoll, an eventfd, the signal self-pipe, the signalfd) and ran.
#[test]
fn a_keep_fd_that_is_not_open_is_refused_and_no_descriptor_of_pkit_leaks() {
    for mechanism in mechanisms() {
        for fd in 3..=16 {
            let mut cmd = pkit();
            cmd.args(["run", "-q", "--mechanism", mechanism, "--keep-fd"])
                .arg(fd.to_string())
                .args(["--", "sh", "-c", "echo ran; ls -l /proc/self/fd/$1", "sh"])
                .arg(fd.to_string());
            // SAFETY: close(2) on a plain number, between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    libc::close(fd);
                    Ok(())
                });
            }
            let out = cmd.output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(125),
                "{mechanism} --keep-fd {fd}: {:?}, stdout {stdout:?}, stderr {stderr:?}",
                out.status
            );
            assert!(!stdout.contains("ran"), "{mechanism} --keep-fd {fd}: ran");
            assert!(
                stderr.contains(&format!("--keep-fd {fd}")) && stderr.contains("not open"),
                "{mechanism} --keep-fd {fd}: {stderr:?}"
            );
        }
    }
}
