//! attack18: a hostile round on the Job Object backend, under Wine (CI's
//! `.ci/windows/run`) or natively: a three-level tree in a job, odd
//! arguments and environment round-tripped through a child, large binary
//! output, a missing program, options Windows can't honour.
//!
//! The helper processes are this test binary itself, started with
//! `PKIT_A18_ROLE` set (see [`helper`]).
//!
//! What broke (fixed): `Command::arg0`, documented for all platforms, was
//! dropped on Windows (the child saw its path as `argv[0]`): it is now
//! refused there, as the other options Windows can't honour.
#![cfg(windows)]

use std::io::Write;
use std::time::{Duration, Instant};

use pkit::{Command, ErrorKind, Group};

/// Env var naming the role a helper process plays.
const ROLE: &str = "PKIT_A18_ROLE";
/// A variable with a name and a value outside ASCII.
const U_NAME: &str = "PKIT_A18_ÜNÏ_名";
const U_VALUE: &str = "ü✓ 日本語 \u{1F600} \"q\" %PATH% ^&|<>";
/// Bytes the `binary` helper writes: every byte value, this many times.
const BINARY_ROUNDS: usize = 16 * 1024;

/// Not a test: the helper processes' entry point (a no-op in a normal run).
#[test]
fn helper() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let out = std::io::stdout();
    let mut out = out.lock();
    match role.as_str() {
        "sleep" => std::thread::sleep(Duration::from_secs(300)),
        "argv" => {
            // argv[0], then every argument after the harness's own, one
            // Debug-quoted string a line.
            let all: Vec<String> = std::env::args().collect();
            writeln!(out, "ARGV0 {:?}", all[0]).unwrap();
            for a in &all[1 + helper_args().len()..] {
                writeln!(out, "ARG {a:?}").unwrap();
            }
            writeln!(out, "END").unwrap();
        }
        "env" => {
            let v = std::env::var(U_NAME).unwrap_or_else(|e| format!("<{e}>"));
            writeln!(out, "ENV {v:?}").unwrap();
        }
        "binary" => {
            let block: Vec<u8> = (0..=255u8).collect();
            for _ in 0..BINARY_ROUNDS {
                out.write_all(&block).unwrap();
            }
            out.flush().unwrap();
        }
        "chain" => {
            // A child that starts a grandchild that starts a sleep: each
            // level names the next one's pid, on the test's pipe.
            let depth: u32 = std::env::var("PKIT_A18_DEPTH").unwrap().parse().unwrap();
            let mut next = std::process::Command::new(std::env::current_exe().unwrap());
            next.args(helper_args());
            if depth == 0 {
                next.env(ROLE, "sleep");
            } else {
                next.env(ROLE, "chain")
                    .env("PKIT_A18_DEPTH", (depth - 1).to_string());
            }
            let mut child = next.spawn().expect("spawning the next level");
            writeln!(out, "PID {}", child.id()).unwrap();
            out.flush().unwrap();
            drop(out);
            std::thread::sleep(Duration::from_secs(300));
            let _ = child.kill();
            let _ = child.wait();
        }
        other => panic!("unknown role {other}"),
    }
}

/// The arguments that make this test binary run [`helper`] alone.
fn helper_args() -> [&'static str; 4] {
    ["--exact", "helper", "--nocapture", "--test-threads=1"]
}

/// This test binary as a helper playing `role`.
fn me(role: &str) -> Command {
    Command::new(std::env::current_exe().unwrap())
        .args(helper_args())
        .env(ROLE, role)
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

/// Polls until each of `pids` is gone; panics after a generous deadline
/// (ending those left first: only pids this test's tree started).
fn assert_gone(pids: &[u32], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pids.iter().all(|&p| gone(p)) {
        if Instant::now() > deadline {
            for &p in pids.iter().filter(|&&p| !gone(p)) {
                let _ = std::process::Command::new("taskkill")
                    .args(["/F", "/PID", &p.to_string()])
                    .output();
            }
            panic!("{what}: still running: {pids:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Arguments that need the command line's quoting rules, each round-trip
/// through a child's own argv exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_arguments_reach_the_child_exactly() {
    let odd = [
        "",
        " ",
        "two words",
        "a\"quote",
        "\"",
        "\"\"",
        "trailing\\",
        "trailing two\\\\",
        "in the middle \\ of",
        "\\\"",
        "quoted \\\"inner\\\" ",
        "back\\\\\"slash",
        "\t tab \t",
        "ünïcödé ✓ 日本語 \u{1F600}",
        "%PATH%",
        "^&|<>()!",
        "-",
        "--",
        "/c",
    ];
    let out = me("argv").args(odd).output().await.unwrap();
    assert!(out.success(), "{out:?}");
    let text = out.stdout_str();
    let got: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once("ARG ").map(|(_, a)| a))
        .collect();
    let want: Vec<String> = odd.iter().map(|a| format!("{a:?}")).collect();
    assert_eq!(got, want, "{text}");
    assert!(text.lines().any(|l| l.ends_with("END")), "{text}");
}

/// `arg0`, documented for all platforms, is either the child's own
/// `argv[0]` or refused by name: never silently dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arg0_is_honoured_or_refused() {
    match me("argv").arg0("renamed-a18").output().await {
        Ok(out) => {
            let text = out.stdout_str();
            assert!(
                text.lines().any(|l| l.ends_with("ARGV0 \"renamed-a18\"")),
                "arg0 was dropped: {text}"
            );
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported, "{e:?}"),
    }
}

/// A variable whose name and value are not ASCII reaches the child intact,
/// set alone or in an exact environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unicode_variable_reaches_the_child() {
    let want = format!("ENV {U_VALUE:?}");
    let out = me("env").env(U_NAME, U_VALUE).output().await.unwrap();
    assert!(out.stdout_str().contains(&want), "{out:?}");
    // An exact environment: only what is set (SystemRoot keeps the
    // runtime working).
    let mut exact = me("env").env_clear().env(U_NAME, U_VALUE).env(ROLE, "env");
    if let Some(root) = std::env::var_os("SystemRoot") {
        exact = exact.env("SystemRoot", root);
    }
    let out = exact.output().await.unwrap();
    assert!(out.stdout_str().contains(&want), "{out:?}");
}

/// 4 MiB of every byte value, CR and LF and NUL among them, captured byte
/// for byte (no newline translation, nothing lost or added).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_binary_output_is_captured_exactly() {
    let out = me("binary").output().await.unwrap();
    assert!(out.success(), "{:?}", out.outcome());
    let got = out.stdout();
    // The harness may print before the helper runs: the block starts at
    // the first NUL.
    let at = got.iter().position(|&b| b == 0).expect("no output block");
    let body = &got[at..];
    let len = BINARY_ROUNDS * 256;
    assert!(body.len() >= len, "{} bytes of {len}", body.len());
    for (i, &b) in body[..len].iter().enumerate() {
        assert_eq!(b, (i % 256) as u8, "byte {i} of the block");
    }
}

/// A three-level tree under the child (child, grandchild, great-grandchild,
/// each started by std, outside pkit) is in the job: a timeout ends every
/// level, and the group's listing saw them all before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_ends_a_three_level_tree() {
    let group = Group::new().unwrap();
    let mut p = group
        .start(
            &me("chain")
                .env("PKIT_A18_DEPTH", "2")
                .timeout(Duration::from_secs(60))
                .stream_lines(),
        )
        .unwrap();
    let mut pids = vec![p.pid()];
    let mut lines = p.lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while pids.len() < 4 {
            let line = lines.next_line().await.expect("the tree ended early");
            if let Some(pid) = line.text.split("PID ").nth(1) {
                pids.push(pid.trim().parse().unwrap());
            }
        }
    })
    .await
    .expect("every level named its child in time");
    drop(lines);
    let listed = group.pids().unwrap();
    assert!(
        pids.iter().all(|p| listed.contains(p)),
        "{pids:?} vs {listed:?}"
    );
    // The same tree under a short timeout, its pids read from the Output.
    let out = me("chain")
        .env("PKIT_A18_DEPTH", "2")
        .timeout(Duration::from_secs(3))
        .output()
        .await
        .unwrap();
    assert!(out.timed_out(), "{:?}", out.outcome());
    let text = out.stdout_str();
    let mut timed: Vec<u32> = text
        .lines()
        .filter_map(|l| l.split("PID ").nth(1)?.trim().parse().ok())
        .collect();
    timed.push(out.pid());
    assert_eq!(timed.len(), 4, "{text}");
    assert_gone(&timed, "the three-level tree after its timeout");
    group.kill().unwrap();
    drop(p);
    drop(group);
    assert_gone(&pids, "the three-level tree after the group's kill");
}

/// A missing program is `NotFound`, by name and by path, and nothing of it
/// is left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_is_not_found() {
    for program in [
        "pkit-a18-no-such-program",
        "C:\\pkit-a18-no-such-dir\\x.exe",
        ".\\pkit-a18-nope",
    ] {
        let e = Command::new(program).output().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{program}: {e:?}");
        let e = Group::new()
            .unwrap()
            .start(&Command::new(program))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{program}: {e:?}");
    }
    // A working directory that does not exist: an error, not a hang or a
    // child started elsewhere.
    let e = me("argv")
        .current_dir("C:\\pkit-a18-no-such-dir")
        .output()
        .await
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::CurrentDir), "{e:?}");
}

/// Caps and options Windows can't honour are typed refusals, never
/// ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_windows_cannot_honour_is_refused_by_kind() {
    for built in [
        Group::builder().memory_high(64 << 20).build(),
        Group::builder().memory_swap_max(64 << 20).build(),
    ] {
        let e = built.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ResourceLimit, "{e:?}");
    }
    for cmd in [
        me("argv").uid(1),
        me("argv").umask(0o22),
        me("argv").setsid(),
        me("argv").priority(5),
    ] {
        let e = cmd.output().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e:?}");
    }
}
