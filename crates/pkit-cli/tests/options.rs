//! `pkit run`'s other flags, run for real: capture, spawn options, caps,
//! the whole tree's stats, honest containment messages, and errors that
//! point at the flag.
// Unix only: these run the Linux CLI (signals, /proc, ttys); Windows has
// tests/windows.rs.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;

#[test]
fn capture_leaves_stdin_alone_and_is_bounded() {
    let mut child = pkit()
        .args([
            "run",
            "-q",
            "--capture",
            "--",
            "sh",
            "-c",
            "cat; echo err >&2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(Started::new)
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"from stdin\n");
    assert_eq!(out.stderr, b"err\n");

    // `yes` would fill memory: the default bound holds it (16M per stream).
    // 40 MiB of it, not a second's worth (at load 40 a second gave 9.7 MB,
    // under the bound: portable, par stage).
    let out = run(&[
        "run",
        "-q",
        "--json",
        "--capture",
        "--",
        "sh",
        "-c",
        "yes | head -c 41943040",
    ]);
    let v = report(&out);
    assert_eq!(
        v["stdout"]["truncated"], true,
        "{}",
        v["stdout"]["bytes_total"]
    );
    assert_eq!(v["stdout"]["bytes_kept"], 16 << 20);

    // --capture-limit with keep head / keep tail.
    for (keep, want) in [("head", "1\n2\n3\n"), ("tail", "8\n999\n1000\n")] {
        let out = run(&[
            "run",
            "-q",
            "--json",
            "--capture",
            "--capture-limit",
            if keep == "head" { "6" } else { "11" },
            "--capture-keep",
            keep,
            "--",
            "seq",
            "1000",
        ]);
        let v = report(&out);
        assert_eq!(v["stdout"]["data"], want, "{keep}");
        assert_eq!(v["stdout"]["bytes_total"], 3893);
    }
    // Capture flags without --capture are an error, not silently ignored.
    assert_eq!(
        run(&["run", "--capture-limit", "1M", "--", "true"])
            .status
            .code(),
        Some(125)
    );
    let help = String::from_utf8_lossy(&run(&["run", "--help"]).stdout).into_owned();
    assert!(help.contains("16M"), "the default bound is in --help");
    assert!(
        help.contains("closed"),
        "--help says fds above 2 are closed"
    );
}

/// -E takes any bytes but NUL for a name and a value (Unix's environment
/// is bytes): a name and a value that are not UTF-8 reach the program
/// byte for byte; a missing `=` or name is still refused.
#[test]
fn env_names_and_values_that_are_not_utf8_reach_the_program() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    for m in mechanisms() {
        let out = pkit()
            .args(["run", "-q", "--mechanism", m, "-i", "-E"])
            .arg(OsStr::from_bytes(b"VALUE=caf\xe9 \xff\xfe=x"))
            .arg("-E")
            .arg(OsStr::from_bytes(b"N\xe4ME=1"))
            .args(["--", "env"])
            .output()
            .unwrap();
        let mut lines: Vec<&[u8]> = out.stdout.split(|&b| b == b'\n').collect();
        lines.sort();
        assert_eq!(
            lines,
            [&b""[..], b"N\xe4ME=1", b"VALUE=caf\xe9 \xff\xfe=x"],
            "{m}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{m}");
    }
    for bad in [&b"\xff"[..], b"=\xff"] {
        let out = pkit()
            .args(["run", "-q", "-E"])
            .arg(OsStr::from_bytes(bad))
            .args(["--", "true"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{bad:?}: {err}");
        assert!(err.contains("expected K=V"), "{bad:?}: {err}");
    }
}

#[test]
fn spawn_options_reach_the_program() {
    let dir = std::env::temp_dir();
    let out = pkit()
        .args(["run", "-q", "-C", dir.to_str().unwrap(), "-i", "-E", "A=1", "-E", "B=x=y"])
        .args(["--nice", "7", "--rlimit", "NOFILE=100:200", "--rlimit", "core=0"])
        .args(["--", "/bin/sh", "-c"])
        .arg("pwd; env | grep -v '^PWD=' | sort; cut -d' ' -f19 /proc/$$/stat; ulimit -n; ulimit -Hn; ulimit -c")
        .env("SECRET_PARENT_VAR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            dir.to_str().unwrap().trim_end_matches('/'),
            "A=1",
            "B=x=y",
            "7",
            "100",
            "200",
            "0"
        ],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // As root: --uid (with the user's own group) and --gid.
    if std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .contains("nobody:")
        && unsafe_is_root()
    {
        let out = run(&[
            "run",
            "-q",
            "--uid",
            "nobody",
            "--",
            "sh",
            "-c",
            "id -u; id -G",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut it = text.lines();
        assert_eq!(it.next(), Some("65534"), "{text}");
        assert!(
            !it.next().unwrap_or("0").split(' ').any(|g| g == "0"),
            "root's groups dropped: {text}"
        );
        let out = run(&[
            "run", "-q", "--uid", "65534", "--gid", "12345", "--", "id", "-g",
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "12345\n");
    }
    let out = run(&["run", "-q", "--uid", "no-such-user-xyz", "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-user-xyz"));

    // --setsid: a session of its own, still contained by a cgroup; refused
    // under process groups (it would escape).
    let out = run(&[
        "run",
        "-q",
        "--mechanism",
        "cgroup",
        "--setsid",
        "--",
        "sh",
        "-c",
        "test $(cut -d' ' -f6 /proc/$$/stat) = $$",
    ]);
    assert_eq!(out.status.code(), Some(0), "a session leader");
    let out = run(&[
        "run",
        "-q",
        "--mechanism",
        "pgroup",
        "--setsid",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("setsid"));
}

fn unsafe_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn keep_fd_passes_a_descriptor_and_others_stay_closed() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let path = temp_path("fd");
    let file = std::fs::File::create(&path).unwrap();
    let fd = file.as_raw_fd();
    let script = "echo kept >&5; if echo leak >&6; then echo six-open; fi";
    let mut cmd = pkit();
    cmd.args(["run", "-q", "--keep-fd", "5", "--", "sh", "-c", script]);
    // SAFETY: dup2/fcntl in the forked child before exec, on fds it owns.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto its own number does nothing, close-on-exec
            // included: the file may have been given number 5 or 6 itself.
            let place = |to| {
                if fd == to {
                    libc::fcntl(to, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, to)
                }
            };
            if place(5) < 0 || place(6) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    drop(file);
    let written = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(written, "kept\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "fd 6 was closed");
    assert_eq!(
        run(&["run", "--keep-fd", "2", "--", "true"]).status.code(),
        Some(125)
    );
}

#[test]
fn stats_cover_the_whole_tree() {
    // An 80 MiB grandchild in a session of its own, orphaned (nobody
    // waits for it; it is still running when the program exits): rusage
    // would miss it, the cgroup counts it.
    let script = [
        "import os, time",
        "r, w = os.pipe()",
        "if os.fork() == 0:",
        "    if os.fork() == 0:",
        "        os.setsid()",
        "        b = bytearray(80 << 20)",
        "        for i in range(0, len(b), 4096): b[i] = 1",
        "        os.write(w, b'x')",
        "        time.sleep(300)",
        "    os._exit(0)",
        "os.wait()",
        "os.read(r, 1)",
    ]
    .join("\n");
    let out = run(&[
        "run",
        "-q",
        "--json",
        "--stats",
        "--mechanism",
        "cgroup",
        "--",
        "python3",
        "-c",
        &script,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = report(&out);
    let s = &v["stats"];
    assert!(
        s["cpu_source"].as_str().unwrap().starts_with("cgroup"),
        "{s}"
    );
    assert!(s["user_cpu_us"].as_u64().is_some() && s["system_cpu_us"].as_u64().is_some());
    if s["memory_source"].as_str().unwrap().starts_with("cgroup") {
        assert!(s["peak_memory_bytes"].as_u64().unwrap() >= 80 << 20, "{s}");
        assert!(
            s["minor_faults"].as_u64().unwrap() >= (80 << 20) / 4096,
            "{s}"
        );
    }
    for key in [
        "voluntary_context_switches",
        "io_read_bytes",
        "io_write_bytes",
    ] {
        assert!(s[key].as_u64().is_some(), "{key}: {s}");
    }

    // Without a cgroup: rusage, and it says so.
    let out = run(&[
        "run",
        "-q",
        "--json",
        "--stats",
        "--mechanism",
        "pgroup",
        "--",
        "true",
    ]);
    let s = report(&out)["stats"].clone();
    assert_eq!(s["cpu_source"], "rusage", "{s}");
    let out = run(&[
        "run",
        "-q",
        "--stats",
        "--mechanism",
        "pgroup",
        "--",
        "true",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("every reaped descendant") && err.contains("rusage"),
        "{err}"
    );
    let out = run(&[
        "run",
        "-q",
        "--stats",
        "--mechanism",
        "cgroup",
        "--",
        "true",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("User time") && err.contains("cgroup v2 cpu.stat"),
        "{err}"
    );
}

#[test]
fn containment_is_stated_honestly() {
    // Process groups: said once, unless --quiet.
    let out = run(&["run", "--mechanism", "pgroup", "--", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("setsid").count(), 1, "{err}");
    let out = run(&["run", "-q", "--mechanism", "pgroup", "--", "true"]);
    assert!(out.stderr.is_empty());
    let out = run(&["run", "--mechanism", "cgroup", "--", "true"]);
    assert!(out.stderr.is_empty(), "nothing to say under a cgroup");

    // What teardown verified, not assumed.
    for (m, container) in [("cgroup", "cgroup"), ("pgroup", "process group")] {
        let file = pid_file();
        let out = pkit()
            .args(["run", "--mechanism", m, "--", "sh", "-c"])
            .arg(format!("sleep 300 & echo $! > {}", file.display()))
            .output()
            .unwrap();
        let pids = read_pids(&file, 1);
        std::fs::remove_file(&file).unwrap();
        assert_all_gone(&pids);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("1 leftover process ended in the grace")
                && err.contains(&format!("0 processes left in the {container}")),
            "{m}: {err}"
        );
    }
}

#[test]
fn errors_point_at_the_flag_and_value() {
    let err = |args: &[&str]| {
        let out = run(args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = err(&["run", "--memory-max", "10k", "--", "true"]);
    assert!(e.contains("--memory-max") && e.contains("10240"), "{e}");
    // Refused when parsing now, naming the flag and its range.
    let e = err(&["run", "--max-procs", "0", "--", "true"]);
    assert!(
        e.contains("--max-procs") && e.contains("1..=4194304"),
        "{e}"
    );
    let e = err(&[
        "run",
        "--memory-max",
        "1G",
        "--mechanism",
        "pgroup",
        "--",
        "true",
    ]);
    assert!(
        e.contains("--memory-max") && e.contains("1073741824"),
        "{e}"
    );
    // KB is decimal, K binary.
    let out = run(&[
        "run",
        "--json",
        "--mechanism",
        "pgroup",
        "--memory-max",
        "512MB",
        "--",
        "true",
    ]);
    assert!(report(&out)["error"]
        .as_str()
        .unwrap()
        .contains("512000000"));
    let e = err(&["run", "--memory-max", "5XB", "--", "true"]);
    assert!(e.contains("powers of 1000"), "{e}");
    // Unknown values of pkit's variables are refused, not ignored.
    let out = pkit()
        .args(["run", "--", "true"])
        .env("PKIT_CLONE3", "no")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PKIT_CLONE3"));
    let out = pkit()
        .args(["run", "--", "true"])
        .env("PKIT_CLONE3", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn without_a_cgroup_cgroup_is_refused_and_auto_says_what_it_got() {
    if !unsafe_is_root() {
        return;
    }
    // pkit as an unprivileged user (started by pkit --uid): no writable
    // cgroup there.
    let me = env!("CARGO_BIN_EXE_pkit");
    let out = run(&[
        "run",
        "-q",
        "--uid",
        "nobody",
        "--",
        me,
        "run",
        "--mechanism",
        "cgroup",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--mechanism") && err.contains("cgroup"),
        "{err}"
    );
    let out = run(&[
        "run", "-q", "--uid", "nobody", "--", me, "run", "--", "true",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("process group") && err.contains("setsid"),
        "{err}"
    );
}

#[test]
fn a_setsid_escapee_is_ended_by_pkit_as_its_subreaper() {
    // Under process groups, `setsid` leaves the group: killpg misses it.
    // Once its parent is gone it is pkit's child (pkit is the subreaper),
    // and pkit kills it when the run ends, and says so.
    let file = pid_file();
    let out = pkit()
        .args(["run", "--json", "--mechanism", "pgroup", "--", "sh", "-c"])
        // The program waits until the escapee has its own session.
        .arg(format!(
            "setsid sh -c 'echo $$ > {f}; exec sleep 300' & \
             while [ ! -s {f} ]; do sleep 0.01; done",
            f = file.display()
        ))
        .output()
        .unwrap();
    let pids = read_pids(&file, 1);
    std::fs::remove_file(&file).unwrap();
    assert_all_gone(&pids);
    let v = report(&out);
    assert_eq!(v["escaped_processes_killed"], 1, "{v}");
    assert_eq!(v["processes_left"], 0);
}

#[test]
fn rusage_counts_orphans_that_pkit_reaps() {
    // A grandchild that burns ~0.4 s of CPU after its parent exited: its
    // rusage goes to whoever reaps it, pkit (the subreaper), not init.
    let script = [
        "import os, time",
        "r, w = os.pipe()",
        "if os.fork() == 0:",
        "    if os.fork() == 0:",
        "        end = time.process_time() + 0.4",
        "        while time.process_time() < end: pass",
        "        os._exit(0)",
        "    os._exit(0)",
        "os.wait()",
        "os.close(w)",
        "os.read(r, 1)",
    ]
    .join("\n");
    let out = run(&[
        "run",
        "-q",
        "--json",
        "--stats",
        "--mechanism",
        "pgroup",
        "--",
        "python3",
        "-c",
        &script,
    ]);
    let v = report(&out);
    let s = &v["stats"];
    assert_eq!(s["cpu_source"], "rusage", "{s}");
    let cpu = s["user_cpu_us"].as_u64().unwrap() + s["system_cpu_us"].as_u64().unwrap();
    assert!(cpu >= 300_000, "the orphan's CPU is counted: {s}");
}

#[test]
fn memory_high_swap_and_cpus_apply_or_are_refused_by_name() {
    // --cpus pins the whole tree (a grandchild too).
    let out = run(&[
        "run",
        "-q",
        "--mechanism",
        "cgroup",
        "--cpus",
        "0",
        "--",
        "sh",
        "-c",
        "sh -c 'grep Cpus_allowed_list /proc/$$/status'",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_end().ends_with("\t0"), "{text}");
    let out = run(&["run", "--cpus", "0-99999", "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cpus"));

    // memory.high and swap: applied where the host can (doctor says so),
    // else refused naming the flag and the value, never dropped.
    let doctor: serde_json::Value =
        serde_json::from_slice(&run(&["doctor", "--json"]).stdout).unwrap();
    for (flag, cap, value) in [
        ("--memory-high", "memory_high", "1G"),
        ("--memory-swap-max", "memory_swap_max", "0"),
    ] {
        let supported = doctor["caps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["cap"] == cap && !c["enforced_by"].is_null());
        let out = run(&[
            "run",
            "-q",
            "--mechanism",
            "cgroup",
            flag,
            value,
            "--",
            "true",
        ]);
        if supported {
            assert_eq!(out.status.code(), Some(0), "{flag}");
        } else {
            assert_eq!(out.status.code(), Some(125), "{flag}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(flag) && err.contains(cap), "{flag}: {err}");
        }
    }
}

#[test]
fn leftovers_get_the_signal_and_the_grace_before_sigkill() {
    for m in mechanisms() {
        // A leftover that cleans up on SIGTERM gets to do it.
        let file = temp_path("cleaned");
        let out = pkit()
            .args(["run", "-q", "--json", "--mechanism", m, "--", "sh", "-c"])
            .arg(format!(
                "sh -c 'trap \"echo cleaned > {f}; exit 0\" TERM; echo up > {f}; \
                 while :; do sleep 0.05; done' & \
                 while [ ! -s {f} ]; do sleep 0.01; done",
                f = file.display()
            ))
            .output()
            .unwrap();
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        std::fs::remove_file(&file).ok();
        assert_eq!(text, "cleaned\n", "{m}");
        let v = report(&out);
        assert_eq!(v["leftovers_killed"], 0, "{m}: {v}");
        assert!(v["leftover_processes"].as_u64().unwrap() >= 1, "{m}: {v}");

        // One that ignores it is SIGKILLed after -k, and counted.
        let pids = pid_file();
        let out = pkit()
            .args([
                "run",
                "-q",
                "--json",
                "-k",
                "0.3",
                "--mechanism",
                m,
                "--",
                "sh",
                "-c",
            ])
            .arg(format!(
                "sh -c 'trap \"\" TERM; echo $$ > {f}; while :; do sleep 0.05; done' & \
                 while [ ! -s {f} ]; do sleep 0.01; done",
                f = pids.display()
            ))
            .output()
            .unwrap();
        let left = read_pids(&pids, 1);
        std::fs::remove_file(&pids).unwrap();
        assert_all_gone(&left);
        let v = report(&out);
        assert!(v["leftovers_killed"].as_u64().unwrap() >= 1, "{m}: {v}");
        assert_eq!(v["processes_left"], 0);
    }
}

#[test]
fn name_names_the_cgroup_and_is_only_a_warning_under_process_groups() {
    // The program sees its own cgroup named; the run's directory is gone
    // afterwards.
    let out = run(&[
        "run",
        "--name",
        "job-7.a",
        "--mechanism",
        "cgroup",
        "--",
        "cat",
        "/proc/self/cgroup",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let v2 = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no v2 line: {text:?}"));
    let dir = v2
        .split('/')
        .find(|c| c.starts_with("pkit-") && c.ends_with("-job-7.a"))
        .unwrap_or_else(|| panic!("not named: {v2:?}"));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let full = std::path::Path::new("/sys/fs/cgroup/unified").join(
        v2.trim_start_matches('/')
            .split_once(dir)
            .map_or(String::new(), |(before, _)| format!("{before}{dir}")),
    );
    assert!(!full.exists(), "left behind: {}", full.display());

    // Under process groups: the run goes on, with a warning (not with -q).
    let out = run(&[
        "run",
        "--name",
        "job-7",
        "--mechanism",
        "pgroup",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: --name has no effect"), "{err}");
    let out = run(&[
        "run",
        "-q",
        "--name",
        "job-7",
        "--mechanism",
        "pgroup",
        "--",
        "true",
    ]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A name that can't be a directory name is refused before anything runs.
    for bad in ["a/b", ".x", "with space"] {
        let out = run(&["run", "--json", "--name", bad, "--", "true"]);
        assert_eq!(out.status.code(), Some(125), "{bad:?}");
        let v = report(&out);
        assert_eq!(v["error_kind"], "invalid_input", "{v}");
        assert!(v["error"].as_str().unwrap().contains("group name"), "{v}");
    }
}

/// Everything after PROGRAM is the program's, as with timeout(1) and
/// env(1): a first argument that looks like one of pkit's options (`-v`,
/// `-k 2`, `-i`, `-E K=V`, `--timeout 5`, `--`) is passed on, not taken.
#[test]
fn the_programs_first_argument_is_never_taken_for_an_option_of_pkits() {
    let printed = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    // A program that prints each of its arguments in brackets.
    let script = temp_path("argv");
    std::fs::write(&script, "#!/bin/sh\nprintf '[%s]' \"$@\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let prog = script.to_str().unwrap();
    for m in mechanisms() {
        for first in [
            &["-v"][..],
            &["-q"],
            &["-k", "2"],
            &["-i"],
            &["-E", "A=1"],
            &["--timeout", "5"],
            &["--", "x"],
            &["-s", "KILL"],
        ] {
            let mut argv = vec!["run", "-q", "--mechanism", m, prog];
            argv.extend_from_slice(first);
            let out = run(&argv);
            let want: String = first.iter().flat_map(|a| ["[", *a, "]"]).collect();
            assert_eq!(printed(&out), want, "{m}: {first:?}");
            assert!(out.status.success(), "{m}: {first:?}: {out:?}");
            // supervise too (one clean run).
            let mut argv = vec!["supervise", "-q", "--mechanism", m, prog];
            argv.extend_from_slice(first);
            let out = run(&argv);
            assert_eq!(printed(&out), want, "supervise {m}: {first:?}");
        }
        // pkit's own options still come before the program.
        let out = run(&[
            "run",
            "-q",
            "--mechanism",
            m,
            "-E",
            "A=7",
            "sh",
            "-c",
            "printf $A",
        ]);
        assert_eq!(printed(&out), "7", "{m}");
    }
    let _ = std::fs::remove_file(&script);
}

/// Every numeric flag refuses what is out of its range — NaN, infinities,
/// negatives, zero where it means nothing, values the kernel can't take —
/// with pkit's usage status (125), a short message that quotes the value
/// as given (never 300 digits of it), and without running the program.
#[test]
fn out_of_range_numbers_are_refused_with_a_clear_message() {
    let marker = temp_path("numeric-refused");
    let marker_arg = marker.to_str().unwrap().to_string();
    #[rustfmt::skip]
    let table: &[(&[&str], &str)] = &[
        (&["run", "--cpu", "1e300"], "out of range"),
        (&["run", "--cpu", "200000000"], "out of range"),
        (&["run", "--cpu", "1e-300"], "out of range"),
        (&["run", "--cpu", "0.001"], "out of range"),
        (&["run", "--cpu", "0"], "positive and finite"),
        (&["run", "--cpu", "-1"], "positive and finite"),
        (&["run", "--cpu=-0.5"], "positive and finite"),
        (&["run", "--cpu", "NaN"], "positive and finite"),
        (&["run", "--cpu", "inf"], "positive and finite"),
        (&["run", "--cpu", "-inf"], "positive and finite"),
        (&["run", "--cpu", "two"], "not a number of cores"),
        (&["run", "--max-procs", "0"], "not in 1..=4194304"),
        (&["run", "--max-procs", "5000000"], "not in 1..=4194304"),
        (&["run", "--max-procs", "99999999999999999999"], "--max-procs"),
        (&["run", "--timeout", "NaN"], "not a duration"),
        (&["run", "--timeout", "-1"], "can't be negative"),
        (&["run", "--timeout=-inf"], "can't be negative"),
        (&["run", "-k", "-5s"], "can't be negative"),
        (&["run", "--memory-max", "0"], "out of range"),
        (&["run", "--memory-max", "99999999999T"], "out of range"),
        // Fits a u64 but not the kernel's largest cap (2^63 - 1 bytes),
        // which it would silently clamp to.
        (&["run", "--memory-max", "16000000T"], "out of range"),
        (&["run", "--memory-max", "8388608T"], "out of range"),
        (&["run", "--memory-max", "9223372036854775808"], "8 EiB - 1"),
        (&["run", "--memory-max", "18446744073709551616"], "out of range"),
        (&["run", "--memory-high", "999999999999999999999999999999"], "out of range"),
        (&["run", "--memory-swap-max", "16000000T"], "out of range"),
        (&["run", "--cpus", "0-99999999"], "CPU 99999999 is out of range"),
        (&["run", "--cpus", "0,8192"], "CPU 8192 is out of range"),
        (&["run", "--cpus", "8191"], "CPU 8191 is not on this host"),
        (&["run", "--memory-max=-5"], "can't be negative"),
        (&["run", "--memory-high", "NaN"], "not a size"),
        (&["run", "--capture", "--capture-limit", "0"], "out of range"),
        (&["run", "--nice", "100"], "not in -20..=19"),
        (&["run", "--json-fd", "99999999999"], "--json-fd"),
        (&["run", "--rlimit", "NOFILE=99999999999999999999"], "out of range"),
        (&["supervise", "--max-restarts", "99999999999"], "--max-restarts"),
        (&["supervise", "--backoff", "1s,NaN"], "factor"),
        (&["supervise", "--backoff", "1s,0.5"], "factor"),
        (&["supervise", "--backoff", "1s,inf"], "factor"),
        (&["supervise", "--backoff", "1s,1e-300"], "factor"),
        (&["supervise", "--max-backoff", "NaN"], "not a duration"),
        (&["supervise", "--health-timeout", "-1"], "can't be negative"),
        (&["supervise", "-k", "NaN"], "not a duration"),
    ];
    for (flags, why) in table {
        let mut args: Vec<&str> = flags.to_vec();
        args.extend(["--", "touch", &marker_arg]);
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {err}");
        assert!(err.contains(why), "{flags:?}: wanted {why:?} in {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.len() < 200, "{flags:?}: a long message: {first}");
        assert!(!marker.exists(), "{flags:?}: the program ran");
    }
}

#[test]
fn an_unknown_rlimit_is_refused_with_the_names_taken() {
    let marker = common::temp_path("rlimit-marker");
    let marker_arg = marker.to_string_lossy().into_owned();
    let out = run(&["run", "--rlimit", "bogus=1", "--", "touch", &marker_arg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(!marker.exists(), "the program ran");
    assert!(err.contains("unknown resource limit \"bogus\""), "{err}");
    assert!(!err.contains("invalid input"), "{err}");
    let named = err.split_once("(one of ").expect("the names taken").1;
    let named = &named[..named.find(')').expect("a closed list")];
    // Each name listed is one --rlimit takes: `true` runs with it.
    for name in named.split(", ") {
        let flag = format!("{name}=unlimited:unlimited");
        let out = run(&["run", "--rlimit", &flag, "--", "true"]);
        // unlimited may be above the hard limit this process has, which
        // only root may raise: refused by the kernel, not by the parser.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("unknown resource"), "{name}: {err}");
    }
}

/// What stays accepted: a duration too long to count is forever, as in
/// timeout(1) (`inf`, `1e300`); a positive one too short to count is the
/// shortest timeout, never "no timeout"; the --cpu bounds themselves.
#[test]
fn edge_numbers_that_mean_something_are_accepted() {
    for timeout in ["inf", "1e300", "1e30d"] {
        let out = run(&["run", "--timeout", timeout, "--", "true"]);
        assert_eq!(out.status.code(), Some(0), "{timeout}: {out:?}");
    }
    for timeout in ["1e-300", "0.0000000001"] {
        let out = run(&["run", "--timeout", timeout, "--", "sleep", "30"]);
        assert_eq!(out.status.code(), Some(124), "{timeout}: {out:?}");
    }
    let out = run(&["run", "--cpu", "175921860", "--", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("out of range"), "{err}");
    // The largest memory cap the kernel takes as given.
    for size in ["8388607T", "9223372036854775807"] {
        let out = run(&["run", "--memory-max", size, "--", "true"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("out of range"), "{size}: {err}");
    }
}
