//! `pkit doctor`'s output: what the system said (cgroup paths from
//! `/proc/self/mountinfo` and `/proc/self/cgroup`, which can hold any byte
//! but a line feed, and the reasons quoting them) is shown with control
//! and bidi characters escaped, as pkit's other lines; its `--json` keeps
//! the exact values in JSON text with every control escaped. A stdout
//! closed when it starts is `/dev/null` to it, as to `pkit run`.

#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// A window title (OSC) with its bell, a carriage return, a backspace, a
/// tab, a C1 CSI, a right-to-left override and an accented letter that
/// stays. (No line feed: the kernel refuses one in a cgroup's name.)
const HOSTILE: &str = "doctor\u{1b}]0;pwned\u{7}\r\u{8}\t\u{9b}2J\u{202e}é";
/// `HOSTILE` as pkit's lines show it.
const SHOWN: &str = r"doctor\u{1b}]0;pwned\u{7}\r\u{8}\t\u{9b}2J\u{202e}é";

/// Whether `c` may not reach a line of pkit's raw (line breaks end them).
fn raw_control(c: char) -> bool {
    (c.is_control() && c != '\n') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `pkit doctor` (with `args`) started inside the cgroups `dirs` (each the
/// directory of a cgroup, v2 or v1: the shell moves itself into each, then
/// execs pkit).
fn doctor_in(dirs: &[PathBuf], args: &[&str]) -> std::process::Output {
    // `sh -c SCRIPT sh PKIT DIR... ARG...`: each directory is moved into,
    // then they and pkit's path are shifted off, leaving pkit's arguments.
    let mut script = String::new();
    for i in 0..dirs.len() {
        script += &format!("echo $$ > \"${}/cgroup.procs\" || exit 99; ", i + 2);
    }
    script += &format!(
        "p=\"$1\"; shift {}; exec \"$p\" doctor \"$@\"",
        dirs.len() + 1
    );
    std::process::Command::new("sh")
        .args(["-c", &script, "sh", env!("CARGO_BIN_EXE_pkit")])
        .args(dirs)
        .args(args)
        .output()
        .expect("sh")
}

/// Removes the cgroup directory `dir`, retrying while the kernel still
/// counts the process that just left it (EBUSY); says so on stderr if it
/// can't (it runs in a drop, maybe while a failed test unwinds).
fn remove_cgroup(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if Instant::now() >= deadline => {
                eprintln!("LEFT the cgroup {:?}: {e}", dir);
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The cgroup directories made for a test, removed when dropped.
struct Dirs(Vec<PathBuf>);

impl Drop for Dirs {
    fn drop(&mut self) {
        for d in &self.0 {
            remove_cgroup(d);
        }
    }
}

/// `pkit doctor` run in a cgroup v2 directory named with terminal controls
/// (and, where a cgroup v1 `pids` hierarchy is mounted, in one of its
/// directories named so too, which the `max_processes` cap's reason
/// names): its lines show the names escaped (`\u{1b}`), none raw; its
/// `--json` keeps the exact paths. They were printed raw (as the paths
/// `Display`). Root with a writable cgroup v2 only (skipped otherwise).
#[test]
fn doctor_shows_cgroup_paths_with_controls_escaped() {
    let out = run(&["doctor", "--json"]);
    let host: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let Some(mount) = host["cgroup_mount"].as_str().filter(|_| root) else {
        eprintln!(
            "SKIPPED doctor_shows_cgroup_paths_with_controls_escaped: needs root and cgroup v2"
        );
        return;
    };
    let name = format!("{HOSTILE}-{}", std::process::id());
    let shown = format!("{SHOWN}-{}", std::process::id());
    let mut dirs = Dirs(Vec::new());
    let v2 = Path::new(mount).join(&name);
    if let Err(e) = std::fs::create_dir(&v2) {
        eprintln!("SKIPPED doctor_shows_cgroup_paths_with_controls_escaped: {e}");
        return;
    }
    dirs.0.push(v2.clone());
    let pids_v1 = Path::new("/sys/fs/cgroup/pids");
    let v1 = pids_v1.join(&name);
    if pids_v1.join("cgroup.procs").exists() && std::fs::create_dir(&v1).is_ok() {
        dirs.0.push(v1.clone());
    }
    let v1_used = dirs.0.len() == 2;

    let out = doctor_in(&dirs.0, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(99), "not moved: {out:?}");
    assert!(!text.chars().any(raw_control), "raw control in {text:?}");
    assert!(
        text.contains(&format!("this process's cgroup: /{shown}\n")),
        "{text}"
    );
    if v1_used {
        let at = format!("the v1 hierarchy at {}", pids_v1.join(&shown).display());
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("max_processes") && l.contains(&at)),
            "{at:?} not in {text}"
        );
    }

    let out = doctor_in(&dirs.0, &["--json"]);
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        !line.trim_end().chars().any(raw_control),
        "raw control in {line:?}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(
        v["owner_cgroup"].as_str(),
        Some(format!("/{name}").as_str()),
        "{line}"
    );
    if v1_used {
        let reason = v["caps"]
            .as_array()
            .and_then(|caps| caps.iter().find(|c| c["cap"] == "max_processes"))
            .and_then(|c| c["reason"].as_str())
            .unwrap_or_default();
        assert!(reason.contains(&name), "{line}");
    }
}

/// A stdout closed when `pkit doctor` starts (`>&-`) is `/dev/null` to it,
/// as to `pkit run` (Rust's runtime opens that in its place before
/// `main`): the status is the one `>/dev/null` gives (the findings',
/// never a write failure's 141 or 125) and nothing is said on stderr.
/// (Findings whose reader went away, or that a full disk refuses, fail:
/// tests/report.rs.)
#[test]
fn a_stdout_closed_at_the_start_is_dev_null_to_doctor_as_to_run() {
    for json in [false, true] {
        let mut args = vec!["doctor"];
        if json {
            args.push("--json");
        }
        let to_null = pkit()
            .args(&args)
            .stdout(std::process::Stdio::null())
            .output()
            .unwrap();
        let closed = std::process::Command::new("sh")
            .args(["-c", r#"exec "$@" >&-"#, "sh", env!("CARGO_BIN_EXE_pkit")])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(
            shell_status(closed.status),
            shell_status(to_null.status),
            "{json}: {closed:?} vs {to_null:?}"
        );
        assert!(
            matches!(shell_status(closed.status), 0 | 125),
            "{json}: {closed:?}"
        );
        assert!(closed.stderr.is_empty(), "{json}: {closed:?}");
    }
}
