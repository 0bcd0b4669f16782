//! The `pkit` binary, run for real: exit statuses, JSON, signals, and that
//! nothing it started is left behind.
// Unix only: these run the Linux CLI (signals, /proc, ttys); Windows has
// tests/windows.rs.
#![cfg(unix)]

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::*;

/// The JSON doctor prints on stdout.
fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

#[test]
fn exit_codes_mirror_the_child() {
    for m in mechanisms() {
        for code in [0, 3, 255] {
            let out = run(&[
                "run",
                "--mechanism",
                m,
                "--",
                "sh",
                "-c",
                &format!("exit {code}"),
            ]);
            assert_eq!(out.status.code(), Some(code), "mechanism {m}");
        }
        // A signalled child's signal is re-raised on pkit, as timeout(1)
        // does; --no-reraise gives the shell's 128+N instead.
        let out = run(&["run", "--mechanism", m, "--", "sh", "-c", "kill -9 $$"]);
        assert_eq!(out.status.signal(), Some(9), "mechanism {m}");
        let out = run(&["run", "--mechanism", m, "--", "sh", "-c", "kill -TERM $$"]);
        assert_eq!(out.status.signal(), Some(15), "mechanism {m}");
        let out = run(&[
            "run",
            "--no-reraise",
            "--mechanism",
            m,
            "--",
            "sh",
            "-c",
            "kill -TERM $$",
        ]);
        assert_eq!(out.status.code(), Some(128 + 15), "mechanism {m}");
    }
}

#[test]
fn not_found_not_executable_and_bad_usage() {
    let out = run(&["run", "--", "pkit-no-such-program-xyz"]);
    assert_eq!(out.status.code(), Some(127));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pkit-no-such-program-xyz") && err.contains("PATH"),
        "{err}"
    );

    let file = pid_file();
    std::fs::write(&file, "#!/bin/sh\necho hi\n").unwrap();
    let out = run(&["run", "--", file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(out.status.code(), Some(126));

    assert_eq!(
        run(&["run", "--timeout", "soon", "--", "true"])
            .status
            .code(),
        Some(125)
    );
    assert_eq!(run(&["run"]).status.code(), Some(125));
    assert_eq!(run(&["--help"]).status.code(), Some(0));
}

#[test]
fn timeout_tears_down_the_tree_and_exits_124() {
    for m in mechanisms() {
        // 1 s, or more where the shell was slower to start.
        let (out, pids) = until_the_tree_started(1, |secs, file| {
            let script = tree_script(file);
            run(&[
                "run",
                "--timeout",
                secs,
                "--mechanism",
                m,
                "--",
                "sh",
                "-c",
                &script,
            ])
        });
        assert_eq!(out.status.code(), Some(124), "mechanism {m}");
        assert_all_gone(&pids);
    }
}

/// `--mechanism portable` runs the portable Unix backend (what macOS and
/// the BSDs use) on Linux: the report names a process group, and a timeout
/// still ends the whole tree.
#[test]
fn the_portable_backend_is_selectable_and_contains_the_tree() {
    // 1 s, or more where the shell was slower to start.
    let (out, pids) = until_the_tree_started(1, |secs, file| {
        let script = tree_script(file);
        run(&[
            "run",
            "--timeout",
            secs,
            "--mechanism",
            "portable",
            "--json",
            "--",
            "sh",
            "-c",
            &script,
        ])
    });
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value =
        serde_json::from_str(err.lines().last().unwrap_or_default()).expect("report");
    assert_eq!(report["mechanism"], "process-group", "{report}");
    assert_all_gone(&pids);
}

#[test]
fn grace_lets_the_child_clean_up() {
    for m in mechanisms() {
        // The shell must set its trap before the timeout's TERM: a try
        // whose shell was slower to start (a loaded machine: no `up`) is
        // run again with twice the timeout (1 s, then 2, 4, 8).
        let mut secs = 1;
        let v = loop {
            let timeout = format!("{secs}s");
            let out = run(&[
                "run",
                "--timeout",
                &timeout,
                "--grace",
                "5s",
                "--mechanism",
                m,
                "--json",
                "--capture",
                "--",
                "sh",
                "-c",
                "trap 'echo got-term; exit 0' TERM; echo up; while :; do sleep 0.05; done",
            ]);
            assert_eq!(out.status.code(), Some(124), "mechanism {m}");
            let v = report(&out);
            if v["stdout"]["data"]
                .as_str()
                .is_some_and(|d| d.contains("up"))
            {
                break v;
            }
            assert!(secs < 8, "{m}: the trap was never set in time: {v}");
            secs *= 2;
        };
        assert_eq!(v["timed_out"], true);
        assert_eq!(v["outcome"], "timed_out");
        assert_eq!(v["exit_code"], 0, "the trap's exit is reported");
        let stdout = v["stdout"]["data"].as_str().unwrap();
        assert!(
            stdout.contains("up") && stdout.contains("got-term"),
            "{stdout:?}"
        );
    }
}

#[test]
fn json_reports_the_run() {
    for (m, name) in [("cgroup", "cgroup-v2"), ("pgroup", "process-group")] {
        let out = run(&[
            "run",
            "--json",
            "--capture",
            "--mechanism",
            m,
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ]);
        assert_eq!(out.status.code(), Some(7));
        assert!(out.stdout.is_empty(), "the report is not on stdout");
        let v = report(&out);
        assert_eq!(v["schema"], 1);
        assert_eq!(v["program"], "sh");
        assert_eq!(v["outcome"], "exited");
        assert_eq!(v["exit_code"], 7);
        assert_eq!(v["exit_status"], 7);
        assert_eq!(v["signal"], serde_json::Value::Null);
        assert_eq!(v["timed_out"], false);
        assert_eq!(v["mechanism"], name);
        assert_eq!(v["stdout"]["data"], "out\n");
        assert_eq!(v["stdout"]["encoding"], "utf-8");
        assert_eq!(v["stderr"]["data"], "err\n");
        assert!(v["duration_us"].as_u64().unwrap() > 0);
        assert!(v["pid"].as_u64().unwrap() > 0);

        let out = run(&[
            "run",
            "--json",
            "--mechanism",
            m,
            "--",
            "sh",
            "-c",
            "kill -9 $$",
        ]);
        let v = report(&out);
        assert_eq!(v["outcome"], "signalled");
        assert_eq!(v["signal"], 9);
        assert_eq!(v["signal_name"], "SIGKILL");
        assert_eq!(v["exit_status"], 137);
        assert!(v["stdout"].is_null(), "no capture: null stdout");
    }
    let out = run(&[
        "run",
        "--json",
        "--",
        "pkit-no-such-program-xyz",
        "SECRET-ARG",
    ]);
    assert_eq!(out.status.code(), Some(127));
    let v = report(&out);
    assert_eq!(v["outcome"], "error");
    assert_eq!(v["error_kind"], "not_found");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains("SECRET-ARG"),
        "arguments never appear in messages"
    );
}

#[test]
fn passes_stdio_through_without_capture() {
    let out = pkit()
        .args(["run", "--quiet", "--", "sh", "-c", "cat; echo done >&2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(Started::new)
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"through\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"through\n");
    assert_eq!(out.stderr, b"done\n");
}

#[test]
fn a_signal_that_ends_the_program_ends_the_tree_and_pkit() {
    // INT and HUP go to the whole tree (as a terminal sends them), TERM to
    // the program (as `kill` would): either way the program dies of it, the
    // rest of the tree is torn down, and pkit ends by the same signal.
    for m in mechanisms() {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            let file = pid_file();
            let mut child = pkit()
                .args([
                    "run",
                    "--mechanism",
                    m,
                    "--",
                    "sh",
                    "-c",
                    &tree_script(&file),
                ])
                .stdin(Stdio::null())
                .spawn()
                .map(Started::new)
                .unwrap();
            let pids = read_pids(&file, 3);
            kill(child.id(), sig);
            let status = child.wait().unwrap();
            std::fs::remove_file(&file).unwrap();
            assert_eq!(status.signal(), Some(sig), "mechanism {m}, signal {sig}");
            assert_all_gone(&pids);
        }
    }
}

#[test]
fn help_carries_examples() {
    for args in [&["--help"][..], &["run", "--help"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Examples:") && text.contains("pkit run"),
            "{text}"
        );
    }
    let text = String::from_utf8_lossy(&run(&["run", "--help"]).stdout).into_owned();
    for needle in [
        "Exit status",
        "Signals to pkit",
        "powers of 1000",
        "timeout(1)",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

/// The README's section on the CLI, which documents its flags and report.
fn readme_cli_section() -> &'static str {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("## The CLI")
        .expect("the README has a CLI section");
    let end = readme[start..]
        .find("\n## ")
        .map_or(readme.len(), |n| start + n);
    &readme[start..end]
}

#[test]
fn the_readme_documents_every_flag_of_run_and_supervise() {
    let readme = readme_cli_section();
    for sub in ["run", "supervise"] {
        let out = run(&[sub, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        let help = String::from_utf8_lossy(&out.stdout);
        let flags: Vec<&str> = help
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with('-'))
            .filter_map(|l| l.split([' ', ',']).find(|w| w.starts_with("--")))
            .filter(|f| *f != "--help")
            .collect();
        assert!(flags.len() > 10, "{sub}: {flags:?} from {help}");
        for flag in flags {
            // As the README writes a flag: in backticks, alone or after
            // its short form (`-k, --kill-after DUR`).
            let named = readme.contains(&format!("`{flag}"))
                || readme.contains(&format!(", {flag}"))
                || readme.contains(&format!("/{flag}"));
            assert!(
                named,
                "pkit {sub} {flag} is not in the README's CLI section"
            );
        }
    }
}

#[test]
fn the_readme_names_every_key_of_the_report() {
    let readme = readme_cli_section();
    let start = readme
        .find("**The report**")
        .expect("a paragraph on the report");
    let para = &readme[start..start + readme[start..].find("\n\n").unwrap()];
    let out = run(&["run", "--json", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let report = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_str(report.lines().last().unwrap()).unwrap();
    let keys: Vec<&String> = report.as_object().unwrap().keys().collect();
    assert!(keys.len() > 20, "{report}");
    for key in keys {
        assert!(
            para.contains(&format!("`{key}`")),
            "the report's key {key} is not in the README's paragraph on it"
        );
    }
}

#[test]
fn doctor_explains_the_host() {
    let out = run(&["doctor"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("New groups get"), "{text}");

    let out = run(&["doctor", "--json"]);
    assert!(out.status.success());
    let v = json(&out);
    for key in [
        "mechanism",
        "reason",
        "kernel",
        "cgroup_kill",
        "clone3",
        "cgroup_writable",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }

    let out = pkit()
        .args(["doctor", "--json"])
        .env("PKIT_MECHANISM", "pgroup")
        .output()
        .unwrap();
    assert_eq!(json(&out)["mechanism"], "process-group");
    let out = pkit()
        .args(["doctor"])
        .env("PKIT_MECHANISM", "bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PKIT_MECHANISM: \"bogus\" (not a choice)"),
        "{text}"
    );
}

#[test]
fn a_bad_pkit_mechanism_names_every_choice_and_each_one_runs() {
    let out = pkit()
        .args(["run", "--", "true"])
        .env("PKIT_MECHANISM", "bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    let named = err
        .split_once("is not one of ")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no list of choices: {err}"));
    let choices = ["auto", "cgroup", "pgroup", "portable"];
    for choice in choices {
        assert!(named.contains(choice), "{choice} not named: {err}");
    }
    // Every named choice is one the variable takes: `true` runs under it
    // (cgroup only where a cgroup can be made).
    for choice in choices {
        let host = pkit()
            .args(["doctor", "--json"])
            .env("PKIT_MECHANISM", choice)
            .output()
            .unwrap();
        if json(&host)["mechanism"].is_null() {
            assert_eq!(choice, "cgroup", "{host:?}");
            continue;
        }
        let out = pkit()
            .args(["run", "--", "sh", "-c", "echo ran"])
            .env("PKIT_MECHANISM", choice)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{choice}: {out:?}");
        assert_eq!(out.stdout, b"ran\n", "{choice}");
    }
}

#[test]
fn no_cgroup_directory_is_left_behind() {
    // pkit processes are our children; their cgroups are named after their
    // own pids. After a run (any outcome), none may remain.
    let Some(parent) = cgroup_parent() else {
        return;
    };
    let mut child = pkit()
        .args([
            "run",
            "--mechanism",
            "cgroup",
            "--timeout",
            "300ms",
            "--",
            "sh",
            "-c",
            "sleep 300 & wait",
        ])
        .spawn()
        .map(Started::new)
        .unwrap();
    let pid = child.id();
    assert_eq!(child.wait().unwrap().code(), Some(124));
    let prefix = common::name_prefix(pid);
    let left: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn cgroup_parent() -> Option<PathBuf> {
    let out = run(&["doctor", "--json"]);
    json(&out)["group_parent"].as_str().map(PathBuf::from)
}

#[test]
fn caps_and_stats() {
    let out = run(&[
        "run",
        "--mechanism",
        "cgroup",
        "--json",
        "--stats",
        "--memory-max",
        "100M",
        "--",
        "python3",
        "-c",
        "b = bytearray(300 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1",
    ]);
    assert_eq!(out.status.signal(), Some(9), "SIGKILL re-raised");
    let v = report(&out);
    assert_eq!(v["oom_killed"], true, "{v}");
    assert_eq!(v["outcome"], "signalled");
    assert_eq!(v["signal_name"], "SIGKILL");

    let out = run(&[
        "run",
        "--mechanism",
        "cgroup",
        "--json",
        "--stats",
        "--cpu",
        "0.5",
        "--max-procs",
        "10",
        "--",
        "sh",
        "-c",
        "echo hi",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = report(&out);
    assert!(v["stats"]["user_cpu_us"].as_u64().is_some(), "{v}");
    assert!(v["stats"]["peak_memory_bytes"].as_u64().unwrap() > 0, "{v}");

    let out = run(&["run", "--stats", "--", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("User time") && err.contains("Peak memory"),
        "{err}"
    );

    // Caps are refused, not dropped, where they can't be enforced.
    let out = run(&[
        "run",
        "--mechanism",
        "pgroup",
        "--memory-max",
        "1G",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("memory_max"));
    assert_eq!(
        run(&["run", "--memory-max", "lots", "--", "true"])
            .status
            .code(),
        Some(125)
    );
    assert_eq!(
        run(&["run", "--cpu", "0", "--", "true"]).status.code(),
        Some(125)
    );

    let v = json(&run(&["doctor", "--json"]));
    let caps = v["caps"].as_array().unwrap();
    let names: Vec<&str> = caps.iter().filter_map(|c| c["cap"].as_str()).collect();
    for cap in [
        "memory_max",
        "memory_high",
        "memory_swap_max",
        "max_processes",
        "cpu_quota",
        "cpus",
    ] {
        assert!(names.contains(&cap), "{cap} missing from {names:?}");
    }
    assert!(caps
        .iter()
        .all(|c| c["cap"].is_string() && c["reason"].is_string()));
}

/// The owner-death guard of the `pkit` process started with
/// `PKIT_TEST_TAG=<tag>`: a forked copy of it, so it has the same
/// environment, named `pkit-guard`. Polls until it shows up.
fn guard_of(tag: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(&pid) = guards_tagged(tag).first() {
            return pid;
        }
        assert!(Instant::now() < deadline, "no guard tagged {tag}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tag() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls until no `pkit-<pid>-*` directory is left under the cgroup parent.
fn assert_no_cgroup_of(pid: u32) {
    let Some(parent) = cgroup_parent() else {
        return;
    };
    let prefix = common::name_prefix(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<_> = std::fs::read_dir(&parent)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A tree that ignores SIGINT, as a job's background children do.
fn tree_ignoring_int(file: &Path) -> String {
    format!("trap '' INT; {}", tree_script(file))
}

#[test]
fn a_sigkilled_pkit_run_leaves_nothing_behind() {
    for m in mechanisms() {
        let (file, tag) = (pid_file(), tag());
        let mut child = pkit()
            .args(["run", "--mechanism", m, "--", "sh", "-c"])
            .arg(tree_script(&file))
            .env("PKIT_TEST_TAG", &tag)
            .stdin(Stdio::null())
            .spawn()
            .map(Started::new)
            .unwrap();
        let pids = read_pids(&file, 3);
        let guard = guard_of(&tag);
        assert!(!pid_gone(guard), "{m}: the guard runs");
        child.kill().unwrap(); // SIGKILL: pkit runs no teardown at all
        child.wait().unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_all_gone(&pids);
        assert_no_cgroup_of(child.id());
        assert_all_gone(&[guard]);
    }
}

/// The program's first act is to SIGKILL the pkit that started it, so pkit
/// dies at some point of its start: its spawn call returned or not, the
/// group registered with the owner-death guard or not. Nothing may be left
/// either way. (Found with `ctrl_c_to_a_foreground_pkit_run_does_not_stop_its_guard`,
/// which failed under load when the test's SIGKILL came that early: on the
/// portable backend a group was registered with the guard only after
/// `posix_spawn` returned; its first process now waits at a gate until then.)
#[test]
fn a_pkit_killed_by_its_program_at_once_leaves_nothing_behind() {
    for m in mechanisms() {
        for round in 0..10 {
            let (file, tag) = (pid_file(), tag());
            let script = format!(
                "echo $$ >> {f}; kill -KILL $PPID; sleep 300 & echo $! >> {f}; \
                 sleep 300 & echo $! >> {f}; wait",
                f = file.display()
            );
            let mut child = pkit()
                .args(["run", "--quiet", "--mechanism", m, "--", "sh", "-c"])
                .arg(script)
                .env("PKIT_TEST_TAG", &tag)
                .stdin(Stdio::null())
                .spawn()
                .map(Started::new)
                .unwrap();
            let status = child.wait().unwrap();
            assert_eq!(status.signal(), Some(libc::SIGKILL), "{m} round {round}");
            // The guard exits once it has acted; the shell wrote its own
            // pid before the kill, and its children's if it got that far.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !guards_tagged(&tag).is_empty() {
                assert!(Instant::now() < deadline, "{m}: the guard never finished");
                std::thread::sleep(Duration::from_millis(20));
            }
            let pids = read_pids(&file, 1);
            let _ = std::fs::remove_file(&file);
            assert_all_gone(&pids);
            assert_no_cgroup_of(child.id());
        }
    }
}

#[test]
fn ctrl_c_to_a_foreground_pkit_run_does_not_stop_its_guard() {
    // Ctrl-C goes to the terminal's foreground process group: here pkit
    // leads one. The tree ignores SIGINT; pkit is SIGKILLed right after the
    // SIGINT, so whether its own teardown got anywhere or not, the guard
    // (in its own session, ignoring SIGINT) must finish the job.
    for m in mechanisms() {
        let (file, tag) = (pid_file(), tag());
        let mut child = pkit()
            .args(["run", "--mechanism", m, "--", "sh", "-c"])
            .arg(tree_ignoring_int(&file))
            .env("PKIT_TEST_TAG", &tag)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .map(Started::new)
            .unwrap();
        let pids = read_pids(&file, 3);
        let guard = guard_of(&tag);
        let pgid = child.id() as i32;
        // The guard is outside the group a terminal signals, and ignores
        // SIGINT anyway. (Whether it is still there a moment after the
        // SIGINT depends on how fast pkit's own teardown ends the run: the
        // outcome below is what matters.)
        let status = std::fs::read_to_string(format!("/proc/{guard}/status")).unwrap();
        let ignored = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        assert_ne!(
            ignored & (1 << (libc::SIGINT - 1)),
            0,
            "{m}: the guard ignores SIGINT"
        );
        let stat = std::fs::read_to_string(format!("/proc/{guard}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        assert_ne!(
            fields[2].parse::<i32>().unwrap(),
            pgid,
            "{m}: the guard is not in pkit's group"
        );
        // SAFETY: signalling the process group our own unreaped child leads.
        assert_eq!(unsafe { libc::killpg(pgid, libc::SIGINT) }, 0);
        let _ = child.kill();
        child.wait().unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_all_gone(&pids);
        assert_no_cgroup_of(child.id());
        assert_all_gone(&[guard]);
    }
}

#[test]
fn doctor_reports_the_guard() {
    let out = run(&["doctor", "--json"]);
    let v = json(&out);
    let guard = &v["guard"];
    // doctor creates no group, so its own guard never starts.
    assert_eq!(guard["running"], false, "{v}");
    assert!(guard["process_groups"].as_str().is_some(), "{v}");
    let text = String::from_utf8_lossy(&run(&["doctor"]).stdout).into_owned();
    assert!(text.contains("owner-death guard"), "{text}");
}

/// The suite's own guard, `common::Started`: a `pkit run` dropped before
/// it was waited for (as at a failing assertion) is killed with its tree,
/// and reaped: nothing of it is left to the next test.
#[test]
fn a_started_pkit_dropped_unfinished_leaves_nothing_running() {
    for m in mechanisms() {
        let file = pid_file();
        let child = pkit()
            .args(["run", "-q", "--mechanism", m, "--", "sh", "-c"])
            .arg(tree_script(&file))
            .stdin(Stdio::null())
            .spawn()
            .map(Started::new)
            .unwrap();
        let pkit_pid = child.id() as i32;
        let pids = read_pids(&file, 3);
        drop(child);
        let _ = std::fs::remove_file(&file);
        assert_all_gone(&pids);
        // Reaped: no child of ours (a number given on names another's).
        let stat = std::fs::read_to_string(format!("/proc/{pkit_pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|f| f.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        assert_ne!(ppid, Some(std::process::id()), "{m}: pkit was not reaped");
    }
}
