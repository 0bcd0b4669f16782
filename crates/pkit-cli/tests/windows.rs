//! `pkit run` and `pkit supervise` on Windows, with real processes: built
//! for x86_64-pc-windows-gnu and run under Wine by `.ci/windows/run`, or
//! natively.
//!
//! The helper processes are this test binary itself, started with
//! `PKIT_WIN_ROLE` set (see [`helper`]). `pkit.exe` is found beside the
//! test binary's directory (cargo builds it there for the integration
//! tests), not through `CARGO_BIN_EXE_pkit`, a Unix path under Wine.
#![cfg(windows)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Env var naming the role a helper process plays.
const ROLE: &str = "PKIT_WIN_ROLE";
/// Env var naming the `flaky` helper's counter file.
const COUNTER: &str = "PKIT_WIN_COUNTER";

/// Not a test: the helper processes' entry point (a no-op in a normal run).
#[test]
fn helper() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let out = std::io::stdout();
    match role.as_str() {
        "sleep" => std::thread::sleep(Duration::from_secs(300)),
        "parent" => {
            // A grandchild of pkit: started with std, caught by the job.
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(helper_args())
                .env(ROLE, "sleep")
                .stdout(Stdio::null())
                .spawn()
                .expect("spawning the grandchild");
            writeln!(out.lock(), "GRANDCHILD {}", child.id()).unwrap();
            out.lock().flush().unwrap();
            std::thread::sleep(Duration::from_secs(300));
            let _ = child.kill();
            let _ = child.wait();
        }
        "flaky" => {
            // Exits 3 until its counter says it ran twice already.
            let path = std::env::var(COUNTER).unwrap();
            let n: u32 = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            std::fs::write(&path, (n + 1).to_string()).unwrap();
            writeln!(out.lock(), "attempt {n}").unwrap();
            out.lock().flush().unwrap();
            std::process::exit(if n >= 2 { 0 } else { 3 });
        }
        other => panic!("unknown helper role {other}"),
    }
}

/// The arguments that make this test binary run [`helper`] alone.
fn helper_args() -> [&'static str; 4] {
    ["--exact", "helper", "--nocapture", "--test-threads=1"]
}

/// `pkit.exe`: in the directory above this test binary's `deps`.
fn pkit() -> Command {
    let me = std::env::current_exe().unwrap();
    let dir = me.parent().and_then(|d| d.parent()).unwrap();
    let exe: PathBuf = dir.join("pkit.exe");
    assert!(exe.exists(), "{} not built", exe.display());
    Command::new(exe)
}

/// `pkit run [flags] -- <this binary as a helper>` (the role in the env).
fn run_helper(flags: &[&str], role: &str) -> Command {
    let mut c = pkit();
    c.arg("run")
        .args(flags)
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args(helper_args())
        .env(ROLE, role);
    c
}

/// Whether this test runs on Wine: Wine's ntdll exports
/// `wine_get_version`, which no Windows has (the library's tests ask the
/// same way; no environment variable to forget).
fn under_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
    let name: Vec<u16> = "ntdll.dll\0".encode_utf16().collect();
    // SAFETY: a NUL-terminated name; ntdll is loaded in every process.
    let ntdll = unsafe { GetModuleHandleW(name.as_ptr()) };
    assert!(!ntdll.is_null(), "ntdll is not loaded");
    // SAFETY: a valid module and a NUL-terminated name.
    unsafe { GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()) }.is_some()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The JSON report: the last line of stderr (`--json`).
fn report(out: &Output) -> serde_json::Value {
    let err = text(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {err:?}"))
}

/// Whether process `pid` has exited (or no longer exists).
fn gone(pid: u32) -> bool {
    use windows_sys::Win32::Foundation::{CloseHandle, WAIT_OBJECT_0};
    use windows_sys::Win32::System::Threading::{
        OpenProcess, WaitForSingleObject, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE,
    };
    // SAFETY: opening a process by id; the handle is closed below.
    let h = unsafe {
        OpenProcess(
            PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION,
            0,
            pid,
        )
    };
    if h.is_null() {
        return true;
    }
    // SAFETY: `h` is a valid process handle, closed exactly once.
    unsafe {
        let exited = WaitForSingleObject(h, 0) == WAIT_OBJECT_0;
        CloseHandle(h);
        exited
    }
}

/// Polls until `pid` is gone; on a generous deadline ends it (only pids
/// this test started) and fails.
fn assert_gone(pid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gone(pid) {
        if Instant::now() > deadline {
            let _ = Command::new("taskkill")
                .args(["/F", "/PID", &pid.to_string()])
                .output();
            panic!("{what} (pid {pid}) is still running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_programs_output_and_exit_code_pass_through() {
    let out = pkit()
        .args(["run", "--", "cmd", "/c", "echo hello& exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(text(&out.stdout), "hello\r\n");
}

#[test]
fn a_windows_exit_code_above_255_is_passed_on_whole() {
    let out = pkit()
        .args(["run", "--json", "--", "cmd", "/c", "exit 300"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(300), "{out:?}");
    let r = report(&out);
    assert_eq!(r["outcome"], "exited");
    assert_eq!(r["exit_code"], 300);
    assert_eq!(r["mechanism"], "job-object");
    assert_eq!(r["processes_left"], 0);
}

#[test]
fn a_missing_program_is_127() {
    let out = pkit()
        .args(["run", "--", "no-such-program-pkit-win"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "{out:?}");
}

#[test]
fn a_timeout_ends_the_whole_tree() {
    // No CTRL_BREAK can stop the helper under Wine (and a break is not
    // delivered to a program without pkit's console either): the stop is
    // the job's termination; natively the helper's default handler exits
    // on the break. Either way the tree is gone and the status is 124.
    let out = run_helper(&["--timeout", "1", "-k", "2", "--json"], "parent")
        .output()
        .unwrap();
    let pid = text(&out.stdout)
        .split("GRANDCHILD ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no grandchild named: {out:?}"));
    assert_gone(pid, "the grandchild");
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    let r = report(&out);
    assert_eq!(r["outcome"], "timed_out");
    assert_eq!(r["processes_left"], 0);
}

#[test]
fn stats_come_from_the_jobs_accounting() {
    let out = pkit()
        .args(["run", "--stats", "--json", "--", "cmd", "/c", "echo x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let r = report(&out);
    let stats = &r["stats"];
    let peak = stats["peak_memory_bytes"].as_u64();
    if under_wine() {
        // Wine 8 keeps no job CPU time nor peak memory (it reads zeros):
        // unknown, not 0.
        println!("under Wine: the job's CPU time and peak memory are unknown");
        assert!(peak.is_none(), "{stats}");
        assert!(stats["user_cpu_us"].is_null(), "{stats}");
        assert!(stats["cpu_source"].is_null(), "{stats}");
        return;
    }
    assert!(peak.is_some_and(|b| b > 0), "{stats}");
    assert!(stats["user_cpu_us"].as_u64().is_some(), "{stats}");
    assert!(
        stats["cpu_source"]
            .as_str()
            .is_some_and(|s| s.starts_with("job accounting")),
        "{stats}"
    );
}

#[test]
fn json_fd_is_refused_by_name() {
    let out = pkit()
        .args(["run", "--json-fd", "3", "--", "cmd", "/c", "echo x"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stderr).contains("--json-fd"), "{out:?}");
}

#[test]
fn pty_is_refused_before_the_program_starts() {
    // README: no `--pty` on Windows (relaying pkit's console into a
    // pseudo console is not implemented): status 125, a typed refusal,
    // and the program never runs.
    let marker = std::env::temp_dir().join(format!("pkit-win-pty-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let out = pkit()
        .args(["run", "--pty", "--json", "--", "cmd", "/c"])
        .arg(format!("echo ran> {}", marker.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("--pty") && err.contains("not implemented on Windows"),
        "{err:?}"
    );
    let r = report(&out);
    assert_eq!(r["outcome"], "error", "{r}");
    assert_eq!(r["error_kind"], "unsupported", "{r}");
    assert_eq!(r["exit_status"], 125, "{r}");
    assert!(!marker.exists(), "the program ran: {out:?}");
}

#[test]
fn supervise_restarts_a_crashing_program_until_it_runs_clean() {
    let counter = std::env::temp_dir().join(format!("pkit-win-counter-{}", std::process::id()));
    let _ = std::fs::remove_file(&counter);
    let out = pkit()
        .args(["supervise", "--backoff", "20ms", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(helper_args())
        .env(ROLE, "flaky")
        .env(COUNTER, &counter)
        .output()
        .unwrap();
    let runs = std::fs::read_to_string(&counter).unwrap_or_default();
    let _ = std::fs::remove_file(&counter);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(runs.trim(), "3", "three runs");
    let stdout = text(&out.stdout);
    for n in 0..3 {
        assert!(stdout.contains(&format!("attempt {n}")), "{stdout}");
    }
    let err = text(&out.stderr);
    assert_eq!(
        err.matches("exited with code 3 (crash)").count(),
        2,
        "{err}"
    );
    assert!(
        err.contains("exited with code 0 (clean); stopping"),
        "{err}"
    );
}

#[test]
fn doctor_describes_the_job_not_cgroups() {
    let out = pkit().arg("doctor").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let said = text(&out.stdout);
    assert!(said.contains("New groups get: job-object"), "{said}");
    assert!(said.contains("TerminateJobObject"), "{said}");
    assert!(!said.contains("cgroup"), "{said}");
    let out = pkit().args(["doctor", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mechanism"], "job-object");
}

#[test]
fn ctrl_break_to_pkit_stops_the_run_and_its_tree() {
    use std::os::windows::process::CommandExt;
    use windows_sys::Win32::System::Console::{
        GenerateConsoleCtrlEvent, GetConsoleProcessList, CTRL_BREAK_EVENT,
    };
    let mut ids = [0u32; 4];
    // SAFETY: `ids` is writable for the count passed.
    if unsafe { GetConsoleProcessList(ids.as_mut_ptr(), 4) } == 0 {
        println!("skipped: this test process has no console to send Ctrl-Break through");
        return;
    }
    // pkit leads a console process group of its own, so the break is
    // aimed at it alone (never at this test or the shell running it).
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x200;
    let mut child = run_helper(&["--json"], "sleep")
        .creation_flags(CREATE_NEW_PROCESS_GROUP)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // pkit reads console events once its run started: send until it
        // ends.
        std::thread::sleep(Duration::from_millis(300));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("pkit did not end after Ctrl-Break");
        }
        // SAFETY: plain call with the id of pkit, a live child of this
        // process leading its own group.
        if unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, child.id()) } == 0 {
            let e = std::io::Error::last_os_error();
            let _ = child.kill();
            let _ = child.wait();
            println!("skipped: Ctrl-Break could not be sent ({e}; Wine 8 does not implement it)");
            return;
        }
    }
    let out = child.wait_with_output().unwrap();
    let r = report(&out);
    assert_eq!(r["signals_received"][0], "SIGTERM", "{r}");
    assert_eq!(r["processes_left"], 0, "{r}");
}
