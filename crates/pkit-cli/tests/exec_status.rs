//! The exit status when the program can't be run: 127 not found, 126 found
//! but its exec failed (whatever the reason), 125 pkit's own failure; and
//! the report says the same. Real exec failures, in every mechanism.

#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// A scratch directory with the cases: a script without exec permission, a
/// directory, a script whose `#!` interpreter is missing, one whose
/// interpreter is a symbolic-link loop (ELOOP at exec).
struct Cases {
    dir: std::path::PathBuf,
}

impl Cases {
    fn new() -> Cases {
        let dir = temp_path("exec");
        std::fs::create_dir(&dir).unwrap();
        let script = |name: &str, text: &str, mode: u32| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        script("no-exec.sh", "#!/bin/sh\necho hi\n", 0o644);
        script(
            "no-interp.sh",
            "#!/nonexistent/pkit-interp\necho hi\n",
            0o755,
        );
        let a = dir.join("loop-a");
        let b = dir.join("loop-b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        script(
            "loop-interp.sh",
            &format!("#!{}\necho hi\n", a.display()),
            0o755,
        );
        std::fs::create_dir(dir.join("a-dir")).unwrap();
        // A program in a directory only root may enter, for a run as
        // another user (EACCES on the directory, at exec).
        let locked = dir.join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::copy("/bin/true", locked.join("true")).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
        Cases { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Cases {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `pkit run --json --mechanism m ARGS`: its status and report.
fn run_json(m: &str, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = pkit()
        .args(["run", "--json", "--mechanism", m])
        .args(args)
        .output()
        .unwrap();
    (out.status.code(), report(&out))
}

fn assert_status(m: &str, args: &[&str], want: i32, kind: &str) {
    let (code, r) = run_json(m, args);
    let shown = args
        .iter()
        .map(|a| &a[..a.len().min(80)])
        .collect::<Vec<_>>();
    assert_eq!(code, Some(want), "{m}: {shown:?}: {r}");
    assert_eq!(r["exit_status"], want, "{m}: {shown:?}: {r}");
    assert_eq!(r["outcome"], "error", "{m}: {shown:?}: {r}");
    assert_eq!(r["error_kind"], kind, "{m}: {shown:?}: {r}");
    assert!(r["pid"].is_null(), "{m}: nothing started: {r}");
}

#[test]
fn found_but_not_runnable_is_126() {
    let cases = Cases::new();
    for m in mechanisms() {
        assert_status(m, &["--", &cases.path("no-exec.sh")], 126, "not_executable");
        assert_status(m, &["--", &cases.path("a-dir")], 126, "not_executable");
        // Found; what it needs to run is missing (timeout(1) says 127
        // here, from the exec's ENOENT; the program was there).
        assert_status(m, &["--", &cases.path("no-interp.sh")], 126, "spawn");
        assert_status(m, &["--", &cases.path("loop-interp.sh")], 126, "spawn");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let locked = cases.path("locked/true");
            assert_status(m, &["--uid", "65534", "--", &locked], 126, "not_executable");
        }
    }
}

/// An argument list the program's exec refuses (E2BIG) though pkit's own
/// took it: the program's stack limit, 1 MiB, allows it a quarter of that
/// (256 KiB) for its arguments and environment; pkit gets 400 KB of them.
#[test]
fn an_argument_list_too_long_for_the_program_is_126() {
    let arg = "x".repeat(100);
    let mut args = vec!["--rlimit", "STACK=1M", "--", "true"];
    args.extend(std::iter::repeat_n(arg.as_str(), 4000));
    for m in mechanisms() {
        assert_status(m, &args, 126, "spawn");
        // The same list under the usual stack limit runs.
        let out = pkit()
            .args(["run", "--mechanism", m, "--"])
            .args(&args[3..])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{m}: {out:?}");
    }
}

#[test]
fn not_found_is_127_and_pkits_own_failures_125() {
    let cases = Cases::new();
    for m in mechanisms() {
        assert_status(m, &["--", &cases.path("missing")], 127, "not_found");
        // The program's own path a symbolic-link loop: no file to run.
        assert_status(m, &["--", &cases.path("loop-a")], 127, "not_found");
    }
    // A working directory that is not one: pkit's failure to set up the
    // run, not the program's.
    let file = cases.path("no-exec.sh");
    let (code, r) = run_json("cgroup", &["-C", &file, "--", "true"]);
    assert_eq!(code, Some(125), "{r}");
    assert!(Path::new(&file).exists());
}

#[test]
fn supervise_says_126_for_a_program_that_cannot_run() {
    let cases = Cases::new();
    let out = pkit()
        .args(["supervise", "--max-restarts", "0", "--"])
        .arg(cases.path("no-interp.sh"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126), "{out:?}");
}
