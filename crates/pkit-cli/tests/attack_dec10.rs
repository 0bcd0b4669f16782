//! attack16: `pkit doctor` as a hostile user reads it: under every
//! `PKIT_MECHANISM`, with `/sys/fs/cgroup` hidden (a mount namespace with a
//! tmpfs over it), as a non-root user. Its JSON must be one valid object,
//! and what it says must agree with what `pkit run` then does.
//!
//! What broke (fixed): where no cgroup can be made (none mounted, or not
//! writable: a non-root user), the prose still said "whole-tree kill:
//! freeze, SIGKILL each member, thaw" (or "cgroup.kill (atomic)") and
//! "placement at birth (clone3 CLONE_INTO_CGROUP): yes", which no group
//! here could get; with the cgroup v2 mount read-only and cgroup v1
//! hierarchies writable, its caps said "yes, by cgroup v1 ..." while every
//! capped run failed; a bad `PKIT_CLONE3` left `doctor --json` with no JSON
//! on stdout.
#![cfg(target_os = "linux")]

mod common;

use std::process::{Output, Stdio};

use common::*;

fn have(program: &str, probe: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn json_of(out: &Output, what: &str) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not one JSON object ({e}): {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Whether the cap `name` is said to be enforceable.
fn cap_enforced(v: &serde_json::Value, name: &str) -> bool {
    v["caps"]
        .as_array()
        .expect("caps")
        .iter()
        .find(|c| c["cap"] == name)
        .unwrap_or_else(|| panic!("no cap {name}: {v}"))["enforced_by"]
        .is_string()
}

/// `sh -c script` in a new mount namespace where a tmpfs hides
/// `/sys/fs/cgroup`; `$PKIT` is the pkit binary.
fn without_cgroupfs(script: &str) -> Output {
    std::process::Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(format!(
            "mount --make-rprivate / && mount -t tmpfs none /sys/fs/cgroup && {script}"
        ))
        .env("PKIT", env!("CARGO_BIN_EXE_pkit"))
        .env_remove("PKIT_MECHANISM")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// With `/sys/fs/cgroup` hidden, doctor says process groups, no cgroup
/// mount, no cap, and no cgroup teardown or placement; a capped run fails
/// (125) and a plain one runs.
#[test]
fn doctor_with_the_cgroup_fs_hidden_claims_no_cgroup_anything() {
    if euid() != Some(0) || !have("unshare", &["--version"]) {
        eprintln!("SKIPPED doctor_with_the_cgroup_fs_hidden: needs root and unshare");
        return;
    }
    let out = without_cgroupfs(r#""$PKIT" doctor --json"#);
    assert!(out.status.success(), "{out:?}");
    let v = json_of(&out, "doctor --json");
    assert_eq!(v["mechanism"], "process-group", "{v}");
    assert!(v["cgroup_mount"].is_null(), "{v}");
    assert_eq!(v["cgroup_writable"], false, "{v}");
    assert_eq!(v["cgroup_kill"], false, "{v}");
    for cap in ["memory_max", "max_processes", "cpu_quota", "cpus"] {
        assert!(!cap_enforced(&v, cap), "{cap}: {v}");
    }
    let out = without_cgroupfs(r#""$PKIT" doctor"#);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("New groups get: process-group"), "{text}");
    assert!(
        !text.contains("freeze, SIGKILL each member, thaw"),
        "a cgroup teardown claimed with no cgroup: {text}"
    );
    assert!(
        !text.contains("CLONE_INTO_CGROUP): yes"),
        "a cgroup placement claimed with no cgroup: {text}"
    );
    let out = without_cgroupfs(r#""$PKIT" run -q --memory-max 64M -- true"#);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("memory_max"),
        "{out:?}"
    );
    let out = without_cgroupfs(r#""$PKIT" run -q -- sh -c 'echo ran'"#);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"ran\n");
}

/// As uid 65534 (no writable cgroup, no writable cgroup v1 hierarchy):
/// under every `PKIT_MECHANISM` one valid JSON object that says process
/// groups and no cap, and a capped run fails as it says.
#[test]
fn doctor_as_a_non_root_user_is_valid_json_and_agrees_with_a_run() {
    if euid() != Some(0) || !have("setpriv", &["--version"]) {
        eprintln!("SKIPPED doctor_as_a_non_root_user: needs root and setpriv");
        return;
    }
    let as_nobody = |choice: Option<&str>, args: &[&str]| {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_pkit"))
            .args(args)
            .current_dir("/")
            .stdin(Stdio::null());
        match choice {
            Some(c) => cmd.env("PKIT_MECHANISM", c),
            None => cmd.env_remove("PKIT_MECHANISM"),
        };
        cmd.output().unwrap()
    };
    for choice in [None, Some("pgroup"), Some("portable")] {
        let out = as_nobody(choice, &["doctor", "--json"]);
        assert!(out.status.success(), "{choice:?}: {out:?}");
        let v = json_of(&out, &format!("{choice:?}"));
        assert_eq!(v["mechanism"], "process-group", "{choice:?}: {v}");
        assert_eq!(v["cgroup_writable"], false, "{choice:?}: {v}");
        assert_eq!(v["choice"], choice.unwrap_or("auto"), "{v}");
        for cap in ["memory_max", "max_processes", "cpu_quota"] {
            assert!(!cap_enforced(&v, cap), "{choice:?} {cap}: {v}");
        }
        let out = as_nobody(choice, &["run", "-q", "--max-procs", "50", "--", "true"]);
        assert_eq!(out.status.code(), Some(125), "{choice:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("cannot cap max_processes"),
            "{choice:?}: {err}"
        );
        let out = as_nobody(choice, &["doctor"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("cgroup.kill (atomic)") && !text.contains("CLONE_INTO_CGROUP): yes"),
            "{choice:?}: a cgroup teardown or placement claimed where none can be made: {text}"
        );
        let out = as_nobody(choice, &["run", "-q", "--", "sh", "-c", "echo ran"]);
        assert_eq!(out.status.code(), Some(0), "{choice:?}: {out:?}");
        assert_eq!(out.stdout, b"ran\n");
    }
    // A forced cgroup: nothing can run, and no kill is described.
    let out = as_nobody(Some("cgroup"), &["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(json_of(&out, "cgroup")["mechanism"].is_null());
    let out = as_nobody(Some("cgroup"), &["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("New groups get: nothing"), "{text}");
    assert!(!text.contains("whole-tree kill"), "{text}");
}

/// Under every `PKIT_MECHANISM` (and a bad one): one valid JSON object
/// whose `choice` is the variable's, and whose caps agree with a capped
/// run forced into a cgroup (the caps are what a cgroup group could carry).
#[test]
fn doctor_json_under_every_mechanism_agrees_with_capped_runs() {
    for choice in ["auto", "cgroup", "pgroup", "portable", "bogus"] {
        let out = pkit()
            .args(["doctor", "--json"])
            .env("PKIT_MECHANISM", choice)
            .output()
            .unwrap();
        let v = json_of(&out, choice);
        if choice == "bogus" {
            assert_eq!(out.status.code(), Some(125), "{v}");
            assert!(v["mechanism"].is_null(), "{v}");
            continue;
        }
        assert_eq!(v["choice"], choice, "{v}");
        if v["mechanism"].is_null() {
            // Only a forced cgroup can be impossible.
            assert_eq!(choice, "cgroup", "{v}");
            continue;
        }
        for (cap, flag, value) in [
            ("memory_max", "--memory-max", "256M"),
            ("max_processes", "--max-procs", "50"),
        ] {
            let out = pkit()
                .args([
                    "run",
                    "-q",
                    "--mechanism",
                    "cgroup",
                    flag,
                    value,
                    "--",
                    "true",
                ])
                .env("PKIT_MECHANISM", choice)
                .output()
                .unwrap();
            let want = if cap_enforced(&v, cap) { 0 } else { 125 };
            assert_eq!(out.status.code(), Some(want), "{choice} {cap}: {out:?} {v}");
            if want == 125 {
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    err.contains(&format!("cannot cap {cap}")),
                    "{choice}: {err}"
                );
            }
        }
    }
}

/// LOW, fixed: a bad `PKIT_CLONE3` made `pkit doctor --json` print nothing
/// on stdout (the message went to stderr, status 125), where a bad
/// `PKIT_MECHANISM` still gives one JSON object that says why nothing can
/// run (mechanism null, the reason). Now both do.
#[test]
fn doctor_json_with_a_bad_clone3_variable_is_still_one_object() {
    let out = pkit()
        .args(["doctor", "--json"])
        .env("PKIT_CLONE3", "bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let v = json_of(&out, "PKIT_CLONE3=bogus");
    assert!(v["mechanism"].is_null(), "{v}");
    assert!(
        v["reason"]
            .as_str()
            .is_some_and(|r| r.contains("PKIT_CLONE3")),
        "{v}"
    );
}

/// With the cgroup v2 mount read-only (a bind mount remounted so) and the
/// v1 hierarchies still writable, no cgroup group can be made, so no cap
/// can be had: doctor says so, as the capped run that fails shows. Before,
/// its caps said "yes, by cgroup v1 memory controller" (and the like)
/// while every capped run failed with status 125.
#[test]
fn doctor_with_a_read_only_cgroup_v2_claims_no_cap() {
    if euid() != Some(0) || !have("unshare", &["--version"]) {
        eprintln!("SKIPPED doctor_with_a_read_only_cgroup_v2: needs root and unshare");
        return;
    }
    let host = json_of(&run(&["doctor", "--json"]), "doctor --json");
    let Some(mount) = host["cgroup_mount"].as_str().map(str::to_string) else {
        eprintln!("SKIPPED doctor_with_a_read_only_cgroup_v2: no cgroup v2 mount");
        return;
    };
    let in_ns = |script: &str| {
        std::process::Command::new("unshare")
            .args(["-m", "sh", "-c"])
            .arg(format!(
                "mount --make-rprivate / && mount --bind \"$M\" \"$M\" && \
                 mount -o bind,remount,ro \"$M\" && {script}"
            ))
            .env("M", &mount)
            .env("PKIT", env!("CARGO_BIN_EXE_pkit"))
            .env_remove("PKIT_MECHANISM")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = in_ns(r#""$PKIT" doctor --json"#);
    assert!(out.status.success(), "{out:?}");
    let v = json_of(&out, "doctor --json, v2 read-only");
    assert_eq!(v["cgroup_writable"], false, "{v}");
    assert_eq!(v["mechanism"], "process-group", "{v}");
    for cap in ["memory_max", "max_processes", "cpu_quota", "cpus"] {
        assert!(!cap_enforced(&v, cap), "{cap}: {v}");
    }
    for flags in [["--memory-max", "64M"], ["--max-procs", "50"]] {
        let out = in_ns(&format!(
            r#""$PKIT" run -q {} {} -- true"#,
            flags[0], flags[1]
        ));
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {out:?}");
    }
}
