//! attack18: a hostile round on the Job Object backend, under Wine (CI's
//! `.ci/windows/run`) or natively: a three-level tree in a job, odd
//! arguments and environment round-tripped through a child, large binary
//! output and input, a missing program, options Windows can't honour, a
//! breakaway from the job, batch-file arguments.
//!
//! The helper processes are this test binary itself, started with
//! `PKIT_A18_ROLE` set (see [`helper`]).
//!
//! What broke (fixed): `Command::arg0`, documented for all platforms, was
//! dropped on Windows (the child saw its path as `argv[0]`): it is now
//! refused there, as the other options Windows can't honour.
//! Left (ignored, LOW, Wine only): a batch file's argument with quotes
//! around an `&` runs a command of its own under Wine's cmd.exe
//! ([`a_quoted_batch_argument_never_runs_as_a_command`]): std quotes a
//! batch file's arguments for Windows' cmd.exe.
//! Sound: a job refuses `CREATE_BREAKAWAY_FROM_JOB`; odd arguments, a
//! unicode variable, binary stdin and 4 MiB of binary output round-trip
//! exactly; both streams flooded at once don't deadlock.
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
        "breakaway" => {
            // A child asking for its own child to leave the job
            // (CREATE_BREAKAWAY_FROM_JOB): refused by a job without
            // JOB_OBJECT_LIMIT_BREAKAWAY_OK.
            use std::os::windows::process::CommandExt;
            const CREATE_BREAKAWAY_FROM_JOB: u32 = 0x0100_0000;
            let spawned = std::process::Command::new(std::env::current_exe().unwrap())
                .args(helper_args())
                .env(ROLE, "sleep")
                .creation_flags(CREATE_BREAKAWAY_FROM_JOB)
                .spawn();
            match spawned {
                Ok(mut child) => {
                    writeln!(out, "GRANDCHILD {}", child.id()).unwrap();
                    out.flush().unwrap();
                    std::thread::sleep(Duration::from_secs(300));
                    let _ = child.kill();
                    let _ = child.wait();
                }
                Err(e) => {
                    writeln!(out, "REFUSED {e}").unwrap();
                    out.flush().unwrap();
                    std::thread::sleep(Duration::from_secs(300));
                }
            }
        }
        "both" => {
            // 2 MiB on each stream, interleaved in 64 KiB pieces: a reader
            // that drained one stream before the other would deadlock.
            let piece = vec![b'o'; 64 * 1024];
            let mut err = std::io::stderr().lock();
            for _ in 0..32 {
                out.write_all(&piece).unwrap();
                err.write_all(&piece).unwrap();
            }
        }
        "stdin_binary" => {
            // Echoes stdin's bytes to stdout as they are.
            let mut input = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut input).unwrap();
            out.write_all(b"\0BEGIN").unwrap();
            out.write_all(&input).unwrap();
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
        "C:\\Program Files\\pkit a18 nope\\x.exe",
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
    // No name at all: invalid input, said so.
    let e = Command::new("").output().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
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

/// A child that asks for its own child to break away from the job
/// (`CREATE_BREAKAWAY_FROM_JOB`) is refused, or its child is still ended
/// with the group: nothing escapes the job that way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breakaway_from_the_job_is_refused_or_still_contained() {
    let group = Group::new().unwrap();
    let mut p = group.start(&me("breakaway").stream_lines()).unwrap();
    let child = p.pid();
    let line = p
        .wait_for_line(
            |l| l.text.contains("GRANDCHILD ") || l.text.contains("REFUSED"),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let grandchild: Option<u32> = line
        .text
        .split("GRANDCHILD ")
        .nth(1)
        .and_then(|p| p.trim().parse().ok());
    drop(p);
    drop(group);
    let mut pids = vec![child];
    pids.extend(grandchild);
    assert_gone(&pids, &format!("the breakaway child ({})", line.text));
}

/// Binary stdin (every byte value, NUL, CR, LF, ^Z among them) reaches the
/// child and comes back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_stdin_round_trips_exactly() {
    let payload: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    let out = me("stdin_binary")
        .stdin_bytes(payload.clone())
        .output()
        .await
        .unwrap();
    assert!(out.success(), "{:?}", out.outcome());
    let got = out.stdout();
    let at = got
        .windows(6)
        .position(|w| w == b"\0BEGIN")
        .expect("the helper's marker")
        + 6;
    // (The test harness's own lines follow the helper's output.)
    assert!(got.len() - at >= payload.len(), "{} bytes", got.len() - at);
    assert!(
        got[at..at + payload.len()] == payload[..],
        "the bytes differ"
    );
}

/// Big output on both streams at once is captured whole (no deadlock on a
/// full pipe), with a timeout as the backstop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_streams_flooded_at_once_are_captured_whole() {
    let out = me("both")
        .timeout(Duration::from_secs(120))
        .output()
        .await
        .unwrap();
    assert!(out.success(), "{:?}", out.outcome());
    let count = |b: &[u8]| b.iter().filter(|&&c| c == b'o').count();
    assert!(count(out.stdout()) >= 2 << 20, "{}", out.stdout().len());
    assert!(count(out.stderr()) >= 2 << 20, "{}", out.stderr().len());
}

/// Runs `echoarg.bat` (which echoes its first argument) with `arg`: the
/// output, or the refusal.
async fn run_bat(arg: &str) -> pkit::Result<pkit::Output> {
    let dir = std::env::temp_dir().join(format!("pkit-a18-bat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bat = dir.join("echoarg.bat");
    std::fs::write(&bat, "@echo off\r\necho ARG[%~1]\r\n").unwrap();
    Command::new(&bat).arg(arg).output().await
}

/// Asserts that `arg`, given to a batch file, never runs as a command of
/// its own: refused (std's check) or echoed as one argument.
async fn assert_not_injected(arg: &str) {
    match run_bat(arg).await {
        Ok(out) => {
            let text = out.stdout_str();
            assert!(
                !text.lines().any(|l| l.trim() == "INJECTED"),
                "{arg:?}: {text:?}"
            );
        }
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::Spawn),
            "{arg:?}: {e:?}"
        ),
    }
}

/// A batch file's argument that would be a second command if cmd.exe
/// took it as written is refused (std's check) or arrives as one
/// argument: the injected command never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_files_argument_never_runs_as_a_command() {
    for arg in [
        "a&echo INJECTED",
        "\"&echo INJECTED",
        "%COMSPEC%",
        "^&echo INJECTED",
        "a\r\necho INJECTED",
    ] {
        assert_not_injected(arg).await;
    }
}

/// The same with a quote before and after the command: std quotes it for
/// Windows' cmd.exe (the BatBadBut fix), and Wine's cmd.exe, which parses
/// the doubled quotes otherwise, runs the injected command. pkit hands a
/// batch file's arguments to std; not checked on a real Windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "attack18: LOW: under Wine a .bat argument a\"&echo INJECTED&\" runs INJECTED (std quotes for Windows' cmd.exe, not Wine's)"]
async fn a_quoted_batch_argument_never_runs_as_a_command() {
    assert_not_injected("a\"&echo INJECTED&\"").await;
}
