//! The JSON report: every kind of run is valid against the schema in the
//! repository (checked by a small validator for the subset of JSON Schema
//! that file uses), and it never shares stdout with the program; pkit's own
//! output (the report, the captured output) that can't be written is a
//! failure with its own status.
// Unix only: these run the Linux CLI (signals, /proc, ttys); Windows has
// tests/windows.rs.
#![cfg(unix)]

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;

use serde_json::Value;

use common::*;

fn schema() -> Value {
    let text = include_str!("../schema/run-report.schema.json");
    serde_json::from_str(text).expect("the schema is JSON")
}

/// The keywords the validator implements, and those it may ignore.
const KEYWORDS: [&str; 11] = [
    "type",
    "enum",
    "const",
    "required",
    "properties",
    "additionalProperties",
    "minimum",
    "maximum",
    "items",
    "$ref",
    "$defs",
];
const ANNOTATIONS: [&str; 4] = ["$schema", "$id", "title", "description"];

fn type_ok(want: &str, v: &Value) -> bool {
    match want {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        other => panic!("unknown type {other} in the schema"),
    }
}

/// Validates `v` against `s`; errors name the JSON path.
fn validate(root: &Value, s: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let s = s.as_object().expect("a schema is an object");
    for key in s.keys() {
        assert!(
            KEYWORDS.contains(&key.as_str()) || ANNOTATIONS.contains(&key.as_str()),
            "the validator does not implement {key:?}: extend it or the schema"
        );
    }
    if let Some(r) = s.get("$ref") {
        let name = r
            .as_str()
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .expect("only local #/$defs/ refs");
        validate(root, &root["$defs"][name], v, path, errors);
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_ok(t.as_str().unwrap(), v)),
            _ => panic!("bad type"),
        };
        if !ok {
            errors.push(format!("{path}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(e) = s.get("enum") {
        if !e.as_array().unwrap().contains(v) {
            errors.push(format!("{path}: {v} not in {e}"));
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            errors.push(format!("{path}: {v} is not {c}"));
        }
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            if n < min {
                errors.push(format!("{path}: {n} < {min}"));
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            if n > max {
                errors.push(format!("{path}: {n} > {max}"));
            }
        }
    }
    if let Some(obj) = v.as_object() {
        if let Some(req) = s.get("required") {
            for k in req.as_array().unwrap() {
                if !obj.contains_key(k.as_str().unwrap()) {
                    errors.push(format!("{path}: missing {k}"));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(root, ps, val, &format!("{path}.{k}"), errors),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{path}: unexpected key {k}"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            validate(root, items, item, &format!("{path}[{i}]"), errors);
        }
    }
}

fn assert_valid(v: &Value, what: &str) {
    let root = schema();
    let mut errors = Vec::new();
    validate(&root, &root, v, "$", &mut errors);
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{v}");
}

#[test]
fn the_validator_catches_bad_reports() {
    let good = report(&run(&["run", "--json", "--", "true"]));
    assert_valid(&good, "true");
    for (key, bad) in [
        ("outcome", Value::from("exited(0)")),
        ("duration_us", Value::from(1.5)),
        ("schema", Value::from(2)),
        ("error_kind", Value::from("NotFound")),
    ] {
        let mut v = good.clone();
        v[key] = bad;
        let root = schema();
        let mut errors = Vec::new();
        validate(&root, &root, &v, "$", &mut errors);
        assert!(!errors.is_empty(), "{key} should be refused");
    }
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("pid");
    let mut errors = Vec::new();
    let root = schema();
    validate(&root, &root, &v, "$", &mut errors);
    assert!(!errors.is_empty(), "a missing key should be refused");
}

#[test]
fn every_kind_of_run_is_valid_and_has_the_same_keys() {
    // A cell: a try whose shell set its trap too late is renamed below.
    let reports = std::cell::RefCell::new(Vec::new());
    let check = |args: &[&str], what: &str| {
        let out = run(args);
        assert!(
            out.stdout.is_empty() || !args.contains(&"--capture"),
            "{what}"
        );
        let v = report(&out);
        assert_valid(&v, what);
        reports.borrow_mut().push((what.to_string(), v));
    };
    for m in mechanisms() {
        let base = ["run", "-q", "--json", "--mechanism", m];
        let with = |rest: &[&'static str]| [&base[..], rest].concat();
        check(
            &with(&["--capture", "--", "sh", "-c", "echo hi; exit 3"]),
            "exited",
        );
        check(
            &with(&["--capture", "--", "sh", "-c", "printf '\\377\\376'"]),
            "base64",
        );
        check(
            &with(&["--no-reraise", "--", "sh", "-c", "kill -9 $$"]),
            "signalled",
        );
        check(
            &with(&["--timeout", "0.2", "--", "sleep", "30"]),
            "timed out",
        );
        // The shell's trap must be set before the timeout's TERM: a try
        // whose shell was slower to set it than the timeout (a loaded
        // machine: no `set` in its file) is run again with twice the
        // timeout (1 s, then 2, 4, 8), its report kept under another name.
        let ready = temp_path("trap-set");
        let script = format!("trap '' TERM; echo set > {}; sleep 30", ready.display());
        let mut secs = 1;
        loop {
            let t = secs.to_string();
            let rest = ["--timeout", &t, "-k", "0.2", "--", "sh", "-c", &script];
            check(&[&base[..], &rest[..]].concat(), "killed after the grace");
            let set = std::fs::read_to_string(&ready).unwrap_or_default() == "set\n";
            let _ = std::fs::remove_file(&ready);
            if set {
                break;
            }
            assert!(secs < 8, "{m}: the trap was never set in time");
            reports.borrow_mut().last_mut().unwrap().0 = "a trap set too late".into();
            secs *= 2;
        }
        check(&with(&["--", "pkit-no-such-program-xyz"]), "not found");
        check(&with(&["--keep-fd", "1", "--", "true"]), "usage");
        check(
            &with(&["-C", "/nonexistent-dir-xyz", "--", "true"]),
            "current dir",
        );
        check(
            &with(&["--stats", "--", "sh", "-c", "sleep 0.1 & wait"]),
            "stats",
        );
        check(
            &with(&["--capture", "--capture-limit", "10", "--", "seq", "1000"]),
            "truncated",
        );
    }
    check(
        &[
            "run",
            "--json",
            "--mechanism",
            "pgroup",
            "--memory-max",
            "1G",
            "--",
            "true",
        ],
        "resource limit",
    );

    let reports = reports.into_inner();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let first = keys(&reports[0].1);
    for (what, v) in &reports {
        assert_eq!(keys(v), first, "{what}: the key set changed");
    }
    let find = |what: &str| &reports.iter().find(|(w, _)| w == what).unwrap().1;
    assert_eq!(find("base64")["stdout"]["encoding"], "base64");
    assert_eq!(find("base64")["stdout"]["data"], "//4=");
    assert_eq!(find("killed after the grace")["killed_after_grace"], true);
    assert_eq!(find("killed after the grace")["exit_status"], 137);
    assert_eq!(find("not found")["error_kind"], "not_found");
    assert!(find("not found")["pid"].is_null());
    assert_eq!(find("usage")["error_kind"], "usage");
    assert_eq!(find("current dir")["error_kind"], "current_dir");
    assert_eq!(find("resource limit")["error_kind"], "resource_limit");
    assert_eq!(find("truncated")["stdout"]["truncated"], true);
    assert_eq!(find("truncated")["stdout"]["bytes_kept"], 10);
    assert!(find("truncated")["stdout"]["bytes_total"].as_u64().unwrap() > 10);
}

/// Three SIGTERMs to pkit, whose tree ignores SIGTERM: the first is
/// forwarded, the second ends the tree, the third kills it at once. The
/// second and the third are each sent once pkit has said it acted on the
/// one before (`-v`'s notes, on stderr in a file): signals
/// sent faster than pkit runs are one pending signal to the kernel, and a
/// loaded machine merged the old fixed 100 ms apart into one request that
/// ended nothing (the tree's `sleep 300` ran out, 301 s).
#[test]
fn a_run_ended_by_signals_keeps_its_pid_and_duration() {
    for m in mechanisms() {
        let file = pid_file();
        let notes = temp_path("signals-report");
        let script = format!("trap '' TERM; {}", tree_script(&file));
        let child = pkit()
            .args(["run", "-v", "--json", "--mechanism", m, "--", "sh", "-c"])
            .arg(&script)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&notes).unwrap())
            .spawn()
            .map(Started::new)
            .unwrap();
        let pids = read_pids(&file, 3);
        kill(child.id(), libc::SIGTERM);
        wait_for_text(&notes, "pkit: sending SIGTERM to the");
        kill(child.id(), libc::SIGTERM);
        wait_for_text(&notes, "pkit: second SIGTERM: ending the whole tree");
        // A third kills at once, rather than after the grace.
        kill(child.id(), libc::SIGTERM);
        let mut out = child.wait_with_output().unwrap();
        out.stderr = std::fs::read(&notes).unwrap();
        std::fs::remove_file(&file).unwrap();
        std::fs::remove_file(&notes).unwrap();
        assert_all_gone(&pids);
        let v = report(&out);
        assert_valid(&v, "ended by signals");
        assert_eq!(v["outcome"], "signalled", "{m}: {v}");
        assert_eq!(v["pid"].as_i64(), Some(i64::from(pids[2])), "{m}");
        assert!(v["duration_us"].as_u64().unwrap() > 0);
        assert_eq!(v["signals_received"][0], "SIGTERM");
        assert_eq!(v["signals_received"][1], "SIGTERM", "{m}: {v}");
        assert_eq!(v["processes_left"], 0);
    }
}

#[test]
fn json_file_and_json_fd_keep_stdout_for_the_program() {
    let path = temp_path("report");
    let out = run(&[
        "run",
        "--json-file",
        path.to_str().unwrap(),
        "--",
        "echo",
        "hi",
    ]);
    assert_eq!(out.stdout, b"hi\n");
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_valid(&v, "--json-file");
    assert_eq!(v["exit_code"], 0);

    let path = temp_path("report-fd");
    let file = std::fs::File::create(&path).unwrap();
    let fd = file.as_raw_fd();
    let mut cmd = pkit();
    cmd.args([
        "run",
        "--json-fd",
        "7",
        "--",
        "sh",
        "-c",
        "echo hi; echo x >&7",
    ]);
    // SAFETY: dup2/fcntl in the forked child before exec, on fds it owns.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto its own number does nothing, close-on-exec
            // included: the file may have been given number 7 itself.
            let placed = if fd == 7 {
                libc::fcntl(7, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 7)
            };
            if placed < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    drop(file);
    assert_eq!(out.stdout, b"hi\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Bad file descriptor"),
        "fd 7 is not the program's: {err}"
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_valid(&v, "--json-fd");
    assert_eq!(v["program"], "sh");
}

/// `--json-file` opens its path as the shell's `>path` does: a symbolic
/// link is followed (the report lands in its target, which is truncated;
/// the link stays a link), and `/dev/stderr` works.
#[test]
fn json_file_follows_a_symbolic_link_as_shell_redirection_does() {
    let target = temp_path("report-target");
    let link = temp_path("report-link");
    std::fs::write(&target, "old contents, longer than nothing\n").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = run(&["run", "--json-file", link.to_str().unwrap(), "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    assert_valid(&v, "--json-file through a link");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_file(&target).unwrap();

    let out = run(&["run", "--json-file", "/dev/stderr", "--", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(v["exit_code"], 0);
}

/// The write end of a pipe whose reader went away (closed before pkit
/// writes): a write to it fails with EPIPE.
fn reader_gone() -> Stdio {
    let mut fds = [0; 2];
    // Close-on-exec from the start where the system can (a child another
    // test starts meanwhile must not hold the read end).
    // SAFETY: `fds` is two ints for pipe2 to fill.
    #[cfg(target_os = "linux")]
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: as above; then each end marked close-on-exec.
    #[cfg(not(target_os = "linux"))]
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        for fd in fds {
            assert_eq!(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC), 0);
        }
    }
    // SAFETY: both were just opened, and are owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

/// pkit's own output to a real pipe whose reader is gone (`| true`): the
/// captured stdout printed at the end, the report on stdout
/// (`--json-file /dev/stdout`). pkit says so on stderr and ends 141,
/// whatever the program's status: not 0 with the output lost, never a
/// panic. What goes to a broken stderr (the `--json` report, the captured
/// stderr) is dropped and changes no status. The program's own write there kills it by SIGPIPE,
/// which pkit passes on (141 too). `/dev/full` (ENOSPC) is 125; a stdout
/// closed at the start (`>&-`) is /dev/null to pkit (Rust's runtime).
#[test]
fn own_output_whose_reader_went_away_is_a_failure_with_its_own_status() {
    let said = |out: &std::process::Output, what: &str| {
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!text.contains("panicked"), "{text}");
        assert!(
            text.contains(&format!("pkit: cannot write {what}: ")),
            "{text}"
        );
        text.into_owned()
    };
    for m in mechanisms() {
        let pkit_m = |args: &[&str]| {
            let mut cmd = pkit();
            cmd.args(["run", "--mechanism", m]).args(args);
            cmd
        };
        // Captured stdout, the program exiting 0 and 3.
        for (script, code) in [("echo hi", 0), ("echo hi; echo err >&2; exit 3", 3)] {
            let out = pkit_m(&["--capture", "--", "sh", "-c", script])
                .stdout(reader_gone())
                .output()
                .unwrap();
            let text = said(&out, "the captured stdout");
            assert!(text.contains("Broken pipe"), "{m} {code}: {text}");
            assert_eq!(shell_status(out.status), 141, "{m} {code}: {text}");
            if code == 3 {
                // Stderr still got its share.
                assert!(text.contains("err\n"), "{m}: {text}");
            }
        }
        // The report on stderr (--json: it carries the captured output),
        // or the captured stderr, whose reader is gone: nowhere to say it,
        // no status changed (as attack_dec03b's broken stderr); without a
        // report the captured stdout is still printed.
        let rows: [(&[&str], i32, &[u8]); 2] = [
            (
                &["--json", "--capture", "--", "sh", "-c", "echo hi; exit 3"],
                3,
                b"",
            ),
            (
                &["--capture", "--", "sh", "-c", "echo hi; echo e >&2"],
                0,
                b"hi\n",
            ),
        ];
        for (args, code, stdout) in rows {
            let out = pkit_m(args).stderr(reader_gone()).output().unwrap();
            assert_eq!(shell_status(out.status), code, "{m} {args:?}");
            assert_eq!(out.stdout, stdout, "{m} {args:?}");
        }
        // The report on stdout (--json-file).
        let out = pkit_m(&[
            "--json-file",
            "/dev/stdout",
            "--capture",
            "--",
            "echo",
            "hi",
        ])
        .stdout(reader_gone())
        .output()
        .unwrap();
        let text = said(&out, "the report");
        assert_eq!(shell_status(out.status), 141, "{m}: {text}");
        // The program's own write: it dies of SIGPIPE, pkit passes it on.
        let out = pkit_m(&["--", "echo", "hi"])
            .stdout(reader_gone())
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{m}: {out:?}");
        // Any other write failure is pkit's: 125.
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = pkit_m(&["--capture", "--", "echo", "hi"])
            .stdout(full)
            .output()
            .unwrap();
        let text = said(&out, "the captured stdout");
        assert_eq!(shell_status(out.status), 125, "{m}: {text}");
        // A stdout closed at the start: /dev/null to pkit.
        let out = std::process::Command::new("sh")
            .args(["-c", r#"exec "$@" >&-"#, "sh", env!("CARGO_BIN_EXE_pkit")])
            .args(["run", "--mechanism", m, "--capture", "--", "echo", "hi"])
            .output()
            .unwrap();
        assert_eq!(shell_status(out.status), 0, "{m}: {out:?}");
    }
}

/// `pkit run --pty` without `--capture` relays the program's terminal to
/// its stdout as it comes; a relay that can't be written is pkit's own
/// output lost, as `--capture`'s: 141 when the reader went away, 125 for
/// `/dev/full`, with `pkit: cannot write the program's output: ...` on
/// stderr, whatever the program's status. So for `pkit doctor`'s findings
/// (`pkit doctor | true`). Both were status 0 and silent.
#[test]
fn a_relay_or_findings_whose_reader_went_away_is_a_failure_with_its_own_status() {
    for m in mechanisms() {
        for (script, code) in [("echo hi", 0), ("echo hi; exit 3", 3)] {
            let out = pkit()
                .args(["run", "--mechanism", m, "--pty", "--", "sh", "-c", script])
                .stdin(Stdio::null())
                .stdout(reader_gone())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stderr);
            assert!(
                text.contains("pkit: cannot write the program's output: Broken pipe"),
                "{m} {code}: {text}"
            );
            assert_eq!(shell_status(out.status), 141, "{m} {code}: {text}");
        }
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = pkit()
            .args(["run", "--mechanism", m, "--pty", "--", "echo", "hi"])
            .stdin(Stdio::null())
            .stdout(full)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("cannot write the program's output"),
            "{m}: {text}"
        );
        assert_eq!(shell_status(out.status), 125, "{m}: {text}");
        // Written: the program's status.
        let out = pkit()
            .args([
                "run",
                "--mechanism",
                m,
                "--pty",
                "--",
                "sh",
                "-c",
                "echo hi; exit 3",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(shell_status(out.status), 3, "{m}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("hi"), "{m}");
    }
    for json in [false, true] {
        let mut cmd = pkit();
        cmd.arg("doctor");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.stdout(reader_gone()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("pkit: cannot write the findings: Broken pipe"),
            "{json}: {text}"
        );
        assert_eq!(shell_status(out.status), 141, "{json}: {text}");
    }
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = pkit().arg("doctor").stdout(full).output().unwrap();
    assert_eq!(shell_status(out.status), 125, "{out:?}");
    let out = pkit().arg("doctor").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("New groups get"));
}

/// pkit's stderr a regular file: the `--json` report starts a line of its
/// own after a program's unfinished last line, and follows a finished one
/// (or a quiet program) with no empty line; `supervise --json`'s events
/// likewise.
#[test]
fn the_report_in_a_file_is_a_line_of_its_own_and_no_more() {
    for (script, want_prefix) in [
        ("printf '50%%\\r' >&2; exit 3", "50%\r\n{"),
        ("echo done >&2; exit 3", "done\n{"),
        ("exit 3", "{"),
    ] {
        for m in mechanisms() {
            let err = temp_path("json-fresh-line");
            let out = pkit()
                .args(["run", "-q", "--json", "--mechanism", m, "--"])
                .args(["sh", "-c", script])
                .stderr(std::fs::File::create(&err).unwrap())
                .output()
                .unwrap();
            let text = std::fs::read_to_string(&err).unwrap();
            let _ = std::fs::remove_file(&err);
            assert_eq!(out.status.code(), Some(3), "{m}: {out:?}");
            assert!(text.starts_with(want_prefix), "{m}: {script}: {text:?}");
            let last = text.trim_end_matches('\n').rsplit('\n').next().unwrap();
            assert!(
                serde_json::from_str::<Value>(last).is_ok(),
                "{m}: {script}: {text:?}"
            );
        }
    }
}

/// `supervise --json` with its stderr a regular file: the events after a
/// run's unfinished last line start a line of their own.
#[test]
fn supervise_events_in_a_file_are_lines_of_their_own() {
    let err = temp_path("json-fresh-events");
    let out = pkit()
        .args(["supervise", "--json", "--restart", "never", "--"])
        .args(["sh", "-c", "printf '50%%\\r' >&2; exit 3"])
        .stderr(std::fs::File::create(&err).unwrap())
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&err).unwrap();
    let _ = std::fs::remove_file(&err);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    // (`lines` takes the `\r\n` after the meter for a line's end.)
    let lines: Vec<&str> = text.lines().filter(|l| *l != "50%").collect();
    assert!(!lines.is_empty(), "{text:?}");
    for l in lines {
        assert!(
            serde_json::from_str::<Value>(l).is_ok(),
            "not a JSON line: {l:?} in {text:?}"
        );
    }
    assert!(!text.contains("\n\n"), "an empty line: {text:?}");
}
