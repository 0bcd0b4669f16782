//! The Job Object backend, with real processes: built for
//! x86_64-pc-windows-gnu and run under Wine in CI (`.ci/run`), or natively.
//!
//! The helper processes are this test binary itself, started with
//! `PKIT_WIN_ROLE` set (see [`helper`]): Wine has no `sleep` or `cat`.
//! Tests that Wine can't honour print why and return early under Wine
//! (seen by ntdll's `wine_get_version` export: [`is_wine`]).
#![cfg(windows)]

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use pkit::{Command, ErrorKind, Group, Mechanism, Signal};

/// Env var naming the role a helper process plays.
const ROLE: &str = "PKIT_WIN_ROLE";

/// Not a test: the helper processes' entry point (a no-op in a normal run).
#[test]
fn helper() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let out = std::io::stdout();
    match role.as_str() {
        "sleep" => std::thread::sleep(Duration::from_secs(300)),
        "graceful" | "stubborn" => {
            // A console program that handles CTRL_BREAK: `graceful` says so
            // and exits with 42, `stubborn` ignores it.
            let handler = if role == "graceful" {
                on_break_exit
            } else {
                on_break_ignore
            };
            // SAFETY: installs a handler routine that lives as long as the
            // program (a plain function).
            let ok = unsafe {
                windows_sys::Win32::System::Console::SetConsoleCtrlHandler(Some(handler), 1)
            };
            assert_ne!(ok, 0, "SetConsoleCtrlHandler failed");
            writeln!(out.lock(), "READY").unwrap();
            out.lock().flush().unwrap();
            std::thread::sleep(Duration::from_secs(300));
        }
        "parent" => {
            // A grandchild of the test: this process's own child, started
            // with std (the job catches it all the same).
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args(helper_args())
                .env(ROLE, "sleep")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawning the grandchild");
            writeln!(out.lock(), "GRANDCHILD {}", child.id()).unwrap();
            out.lock().flush().unwrap();
            std::thread::sleep(Duration::from_secs(300));
            let _ = child.kill();
            let _ = child.wait();
        }
        "alloc" => {
            // Commits and touches 256 MiB.
            let v = vec![1u8; 256 << 20];
            writeln!(
                out.lock(),
                "ALLOCATED {}",
                v.iter().map(|&b| b as usize).sum::<usize>()
            )
            .unwrap();
        }
        "hello" => writeln!(out.lock(), "HELLO").unwrap(),
        "cat" => {
            let mut input = String::new();
            for line in std::io::stdin().lock().lines() {
                input.push_str(&line.unwrap());
                input.push('\n');
            }
            write!(out.lock(), "CAT[{input}]").unwrap();
        }
        "owner" => {
            // An owner that is killed outright: its group's job must take
            // its tree with it.
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let group = Group::new().unwrap();
                let mut p = group.start(&me("parent").stream_lines()).unwrap();
                let pid = grandchild_of(&mut p).await;
                writeln!(out.lock(), "GRANDCHILD {pid}").unwrap();
                out.lock().flush().unwrap();
                tokio::time::sleep(Duration::from_secs(300)).await;
            });
        }
        "adopting_owner" => {
            // An owner whose group, built with the guard turned off, adopts
            // a process started elsewhere (its own std child), says whether
            // the group is guarded, and is then killed outright.
            let mut stranger = std::process::Command::new(std::env::current_exe().unwrap())
                .args(helper_args())
                .env(ROLE, "sleep")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawning the stranger");
            let group = Group::builder().owner_death_guard(false).build().unwrap();
            let adopted = group.adopt(stranger.id());
            if adopted.is_ok() {
                writeln!(out.lock(), "GUARDED {}", group.guarded()).unwrap();
                writeln!(out.lock(), "GRANDCHILD {}", stranger.id()).unwrap();
                out.lock().flush().unwrap();
                std::thread::sleep(Duration::from_secs(300));
            }
            let _ = stranger.kill();
            let _ = stranger.wait();
            adopted.unwrap();
        }
        "count" => {
            // Counts aloud, one line every 20 ms.
            for i in 0u64.. {
                writeln!(out.lock(), "COUNT {i}").unwrap();
                out.lock().flush().unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        "tidy" => {
            // A console program whose CTRL_BREAK handler only raises a
            // flag: the main thread sees it, writes CLEAN to the file
            // `MARK` names and exits 0. Windows runs a handler in a thread
            // it creates for the break, which a suspension made before
            // does not hold: the cleanup (the main thread) it does hold.
            // SAFETY: installs a handler routine that lives as long as the
            // program (a plain function).
            let ok = unsafe {
                windows_sys::Win32::System::Console::SetConsoleCtrlHandler(Some(on_break_flag), 1)
            };
            assert_ne!(ok, 0, "SetConsoleCtrlHandler failed");
            writeln!(out.lock(), "READY").unwrap();
            out.lock().flush().unwrap();
            let deadline = Instant::now() + Duration::from_secs(300);
            while Instant::now() < deadline {
                if BROKEN.load(std::sync::atomic::Ordering::SeqCst) {
                    std::fs::write(std::env::var(MARK).unwrap(), "CLEAN").unwrap();
                    std::process::exit(0);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        "count_parent" => {
            // A `count` grandchild of the test (its output is this
            // process's), then sleeps.
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args(helper_args())
                .env(ROLE, "count")
                .spawn()
                .expect("spawning the counter");
            std::thread::sleep(Duration::from_secs(300));
            let _ = child.kill();
            let _ = child.wait();
        }
        "affinity" => {
            use windows_sys::Win32::System::Threading::{
                GetCurrentProcess, GetProcessAffinityMask,
            };
            let (mut own, mut host) = (0usize, 0usize);
            // SAFETY: this process's pseudo handle and two out-pointers.
            let ok = unsafe { GetProcessAffinityMask(GetCurrentProcess(), &mut own, &mut host) };
            assert_ne!(ok, 0, "GetProcessAffinityMask failed");
            writeln!(out.lock(), "AFFINITY {own}").unwrap();
        }
        "console" | "console_exit" => console_helper(role == "console_exit"),
        "console_flood" => {
            // Much output on a console, its last line written just
            // before the exit (see `a_pty_runs_output_keeps_its_end`).
            let mut con = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("CONOUT$")
                .expect("opening CONOUT$");
            for i in 0..3000 {
                write!(con, "flood line {i}\r\n").unwrap();
            }
            write!(con, "END OF FLOOD\r\n").unwrap();
            std::process::exit(7);
        }
        "pty_owner" => {
            // An owner of a pty session that is killed outright: the
            // session's program (in the job) and the console host (its own
            // child, outside the job) must not outlive it.
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let group = Group::new().unwrap();
                let p = group.start(&me("sleep").pty(24, 80)).unwrap();
                for pid in children_named("conhost.exe") {
                    writeln!(out.lock(), "CONHOST {pid}").unwrap();
                }
                writeln!(out.lock(), "GRANDCHILD {}", p.pid()).unwrap();
                out.lock().flush().unwrap();
                tokio::time::sleep(Duration::from_secs(300)).await;
            });
        }
        "pty_session_end" => {
            // A session that ends by itself: its console host must exit
            // too (pkit closes the console when the program exits).
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let before = children_named("conhost.exe");
                let mut p = me("console_exit").pty(24, 80).start().unwrap();
                let hosts: Vec<u32> = children_named("conhost.exe")
                    .into_iter()
                    .filter(|h| !before.contains(h))
                    .collect();
                let code = p.wait().await.unwrap().code();
                let deadline = Instant::now() + Duration::from_secs(30);
                while hosts.iter().any(|&h| !gone(h)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let left = hosts.iter().filter(|&&h| !gone(h)).count();
                writeln!(
                    out.lock(),
                    "HOSTS {} LEFT {left} CODE {code:?}",
                    hosts.len()
                )
                .unwrap();
            });
        }
        "pty_group_end" => {
            // A session ended by its group's teardown: the program and
            // its console host must both be gone.
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let group = Group::new().unwrap();
                let mut p = group.start(&console_session("console")).unwrap();
                let hosts = children_named("conhost.exe");
                p.wait_for_line(|l| l.text.contains("CONSOLE READY"), LIMIT)
                    .await
                    .unwrap();
                let pid = p.pid();
                drop(p);
                drop(group);
                let all = || std::iter::once(pid).chain(hosts.iter().copied());
                let deadline = Instant::now() + Duration::from_secs(30);
                while !all().all(gone) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let left: Vec<u32> = all().filter(|&p| !gone(p)).collect();
                all().for_each(cleanup);
                writeln!(out.lock(), "HOSTS {} LEFT {left:?}", hosts.len()).unwrap();
            });
        }
        "pty_spawn_race" => {
            // CreatePseudoConsole makes inheritable copies of its pipe
            // ends for the moment of the call: a spawn of pkit's at that
            // moment must not take them (the session's output would stay
            // open as long as the spawned program lives).
            use std::sync::atomic::{AtomicBool, Ordering};
            use std::sync::Arc;
            use tokio::io::AsyncReadExt;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let group = Arc::new(Group::new().unwrap());
                let done = Arc::new(AtomicBool::new(false));
                let spawner = tokio::spawn({
                    let (group, done) = (group.clone(), done.clone());
                    async move {
                        // Wine's CreateProcess fails now and then on a
                        // loaded machine (ERROR_INTERNAL_ERROR): such a
                        // spawn is counted, not fatal to what is tested.
                        let (mut sleepers, mut failed) = (Vec::new(), Vec::new());
                        while !done.load(Ordering::Relaxed) && sleepers.len() < 100 {
                            match group.start(&me("sleep")) {
                                Ok(p) => sleepers.push(p),
                                Err(e) => failed.push(e.to_string()),
                            }
                            tokio::task::yield_now().await;
                        }
                        (sleepers.len(), failed)
                    }
                });
                let mut ended = 0;
                for _ in 0..20 {
                    let mut p = me("console_exit").pty_raw(24, 80).start().unwrap();
                    let mut master = p.take_pty_master().unwrap();
                    let mut buf = [0u8; 4096];
                    let read = tokio::time::timeout(LIMIT, async {
                        while master.read(&mut buf).await.unwrap() > 0 {}
                    })
                    .await;
                    if read.is_err() {
                        break;
                    }
                    p.wait().await.unwrap();
                    ended += 1;
                }
                done.store(true, Ordering::Relaxed);
                let (started, failed) = spawner.await.unwrap();
                group.kill().unwrap();
                writeln!(
                    out.lock(),
                    "SESSIONS ENDED {ended} ({started} started meanwhile, failed: {failed:?})"
                )
                .unwrap();
            });
        }
        other => panic!("unknown role {other}"),
    }
}

/// A program on a pseudo console: says `CONSOLE READY` and its arguments
/// on the console, reads one typed line and says `GOT [line]`, then exits
/// 0 (`then_exit`: says `BYE` and exits 5 at once). It opens `CONOUT$`
/// and `CONIN$` itself: Wine 8 gives a pseudo console's program no
/// standard handles (Windows gives it the console's).
fn console_helper(then_exit: bool) {
    use std::io::Read;
    let mut con = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("CONOUT$")
        .expect("opening CONOUT$");
    // The harness's own arguments first (see `helper_args`).
    let args: Vec<String> = std::env::args().skip(1 + helper_args().len()).collect();
    write!(con, "CONSOLE READY\r\nARGS {args:?}\r\n").unwrap();
    if then_exit {
        write!(con, "BYE\r\n").unwrap();
        std::process::exit(5);
    }
    let mut input = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("CONIN$")
        .expect("opening CONIN$");
    // A line-mode console read returns one line, with its CR LF.
    let mut buf = [0u8; 256];
    let n = input.read(&mut buf).unwrap();
    let line = String::from_utf8_lossy(&buf[..n]);
    write!(con, "GOT [{}]\r\n", line.trim_end()).unwrap();
}

/// The ids of this process's children named `exe` (a tool-help snapshot).
fn children_named(exe: &str) -> Vec<u32> {
    use windows_sys::Win32::Foundation::{CloseHandle, INVALID_HANDLE_VALUE};
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, Process32FirstW, Process32NextW, PROCESSENTRY32W,
        TH32CS_SNAPPROCESS,
    };
    let me = std::process::id();
    let mut found = Vec::new();
    // SAFETY: a snapshot of all processes, closed below.
    let snap = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) };
    if snap == INVALID_HANDLE_VALUE {
        return found;
    }
    // SAFETY: all-zero is a valid PROCESSENTRY32W; dwSize is set.
    let mut entry: PROCESSENTRY32W = unsafe { std::mem::zeroed() };
    entry.dwSize = std::mem::size_of::<PROCESSENTRY32W>() as u32;
    // SAFETY: a valid snapshot and an entry of the size in dwSize.
    let mut more = unsafe { Process32FirstW(snap, &mut entry) } != 0;
    while more {
        let len = entry.szExeFile.iter().position(|&c| c == 0).unwrap_or(0);
        let name = String::from_utf16_lossy(&entry.szExeFile[..len]);
        if entry.th32ParentProcessID == me && name.eq_ignore_ascii_case(exe) {
            found.push(entry.th32ProcessID);
        }
        // SAFETY: as above.
        more = unsafe { Process32NextW(snap, &mut entry) } != 0;
    }
    // SAFETY: the snapshot handle, closed once.
    unsafe { CloseHandle(snap) };
    found
}

/// The `graceful` helper's console control handler: says BREAK, exits 42.
unsafe extern "system" fn on_break_exit(event: u32) -> windows_sys::core::BOOL {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "BREAK {event}");
    let _ = out.flush();
    std::process::exit(42);
}

/// Raised by the `tidy` helper's handler.
static BROKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Env var naming the file a `tidy` helper writes as it ends.
const MARK: &str = "PKIT_WIN_MARK";

/// The `tidy` helper's handler: raises [`BROKEN`], and the event is
/// handled (the main thread ends the program).
unsafe extern "system" fn on_break_flag(_event: u32) -> windows_sys::core::BOOL {
    BROKEN.store(true, std::sync::atomic::Ordering::SeqCst);
    1
}

/// The `stubborn` helper's handler: the event is handled, nothing done.
unsafe extern "system" fn on_break_ignore(_event: u32) -> windows_sys::core::BOOL {
    1
}

/// Why a CTRL_BREAK can't be delivered from this test process, if it
/// can't: Wine 8 does not implement it (GenerateConsoleCtrlEvent fails for
/// CTRL_BREAK_EVENT), and a process without a console has none to send.
fn no_break_here() -> Option<&'static str> {
    if is_wine() {
        return Some("Wine 8 does not implement CTRL_BREAK_EVENT");
    }
    let mut ids = [0u32; 4];
    // SAFETY: `ids` is writable for the count passed.
    let n =
        unsafe { windows_sys::Win32::System::Console::GetConsoleProcessList(ids.as_mut_ptr(), 4) };
    (n == 0).then_some("this test process has no console")
}

/// Waits for the `READY` line of a `graceful` or `stubborn` helper (its
/// handler is installed).
async fn ready(p: &mut pkit::RunningProcess) {
    let mut lines = p.lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await {
            if line.text.contains("READY") {
                return;
            }
        }
        panic!("the helper ended before it was ready");
    })
    .await
    .expect("the helper got ready in time");
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

/// The pid in a `GRANDCHILD <pid>` line (the test harness may have put
/// `test helper ... ` before it).
fn named_pid(line: &str) -> Option<u32> {
    line.split("GRANDCHILD ").nth(1)?.trim().parse().ok()
}

/// Reads the `GRANDCHILD <pid>` line a `parent` or `owner` helper prints.
async fn grandchild_of(p: &mut pkit::RunningProcess) -> u32 {
    let mut lines = p.lines();
    let deadline = Duration::from_secs(60);
    tokio::time::timeout(deadline, async {
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await {
            if let Some(pid) = named_pid(&line.text) {
                return pid;
            }
            seen.push(line.text);
        }
        panic!("the helper ended without naming its grandchild; it said {seen:?}");
    })
    .await
    .expect("the helper named its grandchild in time")
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

/// Polls until `pid` is gone; panics after a generous deadline.
fn assert_gone(pid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gone(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) is still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ends `pid` if a failed test left it running (only pids we started).
fn cleanup(pid: u32) {
    if !gone(pid) {
        let _ = std::process::Command::new("taskkill")
            .args(["/F", "/PID", &pid.to_string()])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_captures_stdout_and_the_exit_code() {
    let out = Command::new("cmd")
        .args(["/c", "echo hello& exit 3"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.mechanism(), Mechanism::JobObject);
    assert_eq!(out.stdout_str().trim(), "hello");
    assert_eq!(out.code(), Some(3));
}

/// `is_transient` reads a spawn error's code as the Win32 error it is,
/// not as a Unix errno (11, 12, 23, 24 are EAGAIN, ENOMEM, ENFILE, EMFILE
/// there, but bad format, invalid access, CRC, bad length here).
#[test]
fn is_transient_reads_win32_error_codes() {
    let spawn = |code| pkit::Error::Spawn {
        program: "x".into(),
        source: std::io::Error::from_raw_os_error(code),
    };
    // Not enough memory, out of memory, no system resources, commit
    // limit, too many open files, sharing violation; a quota used up, no
    // process slot, no more threads.
    for code in [8, 14, 1450, 1455, 4, 32, 1816, 89, 164] {
        assert!(pkit::is_transient(&spawn(code)), "{code}");
    }
    for code in [11, 12, 23, 24, 2, 5, 193] {
        assert!(!pkit::is_transient(&spawn(code)), "{code}");
    }
}

/// A forced mechanism Windows can't give is refused naming the mechanism
/// asked for, not another one.
#[test]
fn a_forced_mechanism_is_refused_naming_it() {
    use pkit::MechanismChoice;
    for (choice, asked) in [
        (MechanismChoice::ProcessGroup, Mechanism::ProcessGroup),
        (MechanismChoice::Portable, Mechanism::ProcessGroup),
        (MechanismChoice::Cgroup, Mechanism::CgroupV2),
    ] {
        let e = Group::builder().mechanism(choice).build().unwrap_err();
        assert!(
            matches!(e, pkit::Error::MechanismUnavailable { requested: Some(m), .. } if m == asked),
            "{choice}: {e:?}"
        );
    }
}

/// A started chain's shutdown answers as a started process's does:
/// natively the helper ignores the break and is killed after the grace
/// (`true`); under Wine no break can be sent, so it is terminated at once
/// (`false`: nothing was asked to stop first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_shutdown_answers_as_a_process_shutdown_does() {
    let group = Group::new().unwrap();
    let mut p = group.start(&me("stubborn").stream_lines()).unwrap();
    ready(&mut p).await;
    let killed_after_grace = !is_wine();
    let answer = p.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!(answer, killed_after_grace, "process");
    let mut chain = pkit::Pipe::new([me("stubborn")])
        .stream_lines()
        .start()
        .unwrap();
    let line = chain
        .wait_for_line(|l| l.text.contains("READY"), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(line.text.contains("READY"));
    let answer = chain.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!(answer, killed_after_grace, "chain");
    chain.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_bytes_reach_the_child_and_come_back_intact() {
    let mut payload = String::new();
    for i in 0..2000 {
        writeln!(payload, "line {i}").unwrap();
    }
    let out = me("cat").stdin_str(&payload).output().await.unwrap();
    assert!(out.success(), "{out:?}");
    let text = out.stdout_str();
    let got = text
        .split_once("CAT[")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(body, _)| body.replace("\r\n", "\n"))
        .expect("the helper's echo");
    assert_eq!(got, payload);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grandchild_dies_with_its_group() {
    let group = Group::new().unwrap();
    assert_eq!(group.mechanism(), Mechanism::JobObject);
    let mut p = group.start(&me("parent").stream_lines()).unwrap();
    let grandchild = grandchild_of(&mut p).await;
    let child = p.pid();
    // Both are in the job, the grandchild through its parent.
    let pids = group.pids().unwrap();
    assert!(
        pids.contains(&child) && pids.contains(&grandchild),
        "{pids:?}"
    );
    assert!(group.stats().unwrap().active_processes() >= 2);
    drop(p);
    drop(group);
    assert_gone(grandchild, "the grandchild");
    assert_gone(child, "the child");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_ends_the_whole_tree() {
    let run = me("parent")
        .timeout(Duration::from_secs(3))
        .output()
        .await
        .unwrap();
    let text = run.stdout_str().to_string();
    let pid = text
        .lines()
        .find_map(named_pid)
        .unwrap_or_else(|| panic!("the grandchild's pid was not captured: {run:?}"));
    assert!(run.timed_out(), "{run:?}");
    assert_gone(pid, "the grandchild of a timed-out run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_death_kills_the_tree() {
    // The owner is an ordinary (std) child of the test, outside any job.
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args(helper_args())
        .env(ROLE, "owner")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = owner.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| named_pid(&l))
    })
    .await
    .unwrap()
    .expect("the owner named its grandchild");
    let pid = line;
    owner.kill().unwrap();
    owner.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survived = !gone(pid);
    cleanup(pid);
    assert!(!survived, "the grandchild outlived its killed owner");
}

/// `guarded` says whether the Job Object's KILL_ON_JOB_CLOSE, Windows's
/// owner-death guard, covers the group: for every open group (the job
/// can't be made without it, so even one built with the guard turned
/// off), adopted processes included (an owner killed outright takes the
/// process it adopted with it); and, as on Unix, where a close releases
/// the guard, no more once the group is closed (it used to say true
/// whatever the group's state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_is_the_jobs_kill_on_close_until_the_group_is_closed() {
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args(helper_args())
        .env(ROLE, "adopting_owner")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = owner.stdout.take().unwrap();
    let said = tokio::task::spawn_blocking(move || {
        let mut guarded = None;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(g) = line.split("GUARDED ").nth(1) {
                guarded = Some(g.trim().to_string());
            }
            if let Some(pid) = named_pid(&line) {
                return Some((guarded, pid));
            }
        }
        None
    })
    .await
    .unwrap();
    let _ = owner.kill();
    owner.wait().unwrap();
    let (guarded, pid) = said.expect("the owner named the process it adopted");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survived = !gone(pid);
    cleanup(pid);
    assert_eq!(guarded.as_deref(), Some("true"), "the owner's group said");
    assert!(!survived, "the adopted process outlived its killed owner");

    let group = Group::new().unwrap();
    assert!(group.guarded(), "an open group without processes");
    let mut p = group.start(&me("sleep")).unwrap();
    assert!(group.guarded(), "an open group with a process");
    group.close().await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), p.wait())
        .await
        .expect("the closed group's process ended")
        .unwrap();
    assert_eq!(out.signal(), Some(9), "{out:?}");
    assert!(!group.guarded(), "a closed group says it is guarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_breaks_console_programs_then_terminates() {
    let group = Group::new().unwrap();
    let mut graceful = group.start(&me("graceful").stream_lines()).unwrap();
    ready(&mut graceful).await;
    let mut parent = group.start(&me("parent").stream_lines()).unwrap();
    let grandchild = grandchild_of(&mut parent).await;
    let report = group.shutdown(Duration::from_secs(120)).await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), graceful.wait())
        .await
        .unwrap()
        .unwrap();
    assert_gone(grandchild, "the grandchild");
    match no_break_here() {
        None => {
            // Every process got the break and left in the grace: the
            // handler's exit code, and the parent and its grandchild (one
            // console group) by the default handler.
            assert_eq!(report.killed(), 0, "{report:?}");
            assert_eq!(report.exited_in_grace(), report.signalled(), "{report:?}");
            assert_eq!(out.code(), Some(42), "{out:?}");
        }
        Some(why) => {
            println!("no break delivered ({why}): checking the fallback, straight to termination");
            assert!(report.killed() >= 3, "{report:?}");
            // Not the grace: nothing was asked to stop, so none was given.
            assert!(report.elapsed() < Duration::from_secs(100), "{report:?}");
            assert_eq!(out.signal(), Some(9), "{out:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_ignores_the_break_is_terminated_after_the_grace() {
    if let Some(why) = no_break_here() {
        println!("skipped: {why}; the fallback is checked by shutdown_breaks_console_programs_then_terminates");
        return;
    }
    let group = Group::new().unwrap();
    let mut p = group.start(&me("stubborn").stream_lines()).unwrap();
    ready(&mut p).await;
    let grace = Duration::from_secs(2);
    let report = group.shutdown(grace).await.unwrap();
    assert_eq!(report.killed(), 1, "{report:?}");
    assert!(report.elapsed() >= grace, "{report:?}");
    let out = p.wait().await.unwrap();
    assert_eq!(out.signal(), Some(9), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_with_a_grace_sends_the_break_first() {
    // Long enough for the helper to install its handler first.
    let out = me("graceful")
        .timeout(Duration::from_secs(8))
        .grace(Duration::from_secs(120))
        .output()
        .await
        .unwrap();
    assert!(out.timed_out(), "{out:?}");
    assert!(out.stdout_str().contains("READY"), "{out:?}");
    match no_break_here() {
        None => {
            assert!(!out.killed_after_grace(), "{out:?}");
            assert!(out.stdout_str().contains("BREAK 1"), "{out:?}");
            assert_eq!(out.code(), Some(42), "{out:?}");
        }
        Some(why) => {
            println!("no break delivered ({why}): checking the fallback, straight to termination");
            assert!(!out.killed_after_grace(), "{out:?}");
            // Not the grace: nothing was asked to stop, so none was given.
            assert!(out.duration() < Duration::from_secs(100), "{out:?}");
            assert!(!out.stdout_str().contains("BREAK"), "{out:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_shutdown_breaks_its_own_tree_only() {
    let group = Group::new().unwrap();
    let mut p = group.start(&me("graceful").stream_lines()).unwrap();
    ready(&mut p).await;
    let other = group.start(&me("sleep")).unwrap();
    let killed = p.shutdown(Duration::from_secs(120)).await.unwrap();
    let out = p.wait().await.unwrap();
    assert!(!killed, "{out:?}");
    match no_break_here() {
        None => assert_eq!(out.code(), Some(42), "{out:?}"),
        Some(why) => {
            println!("no break delivered ({why}): checking the fallback, straight to termination");
            assert_eq!(out.signal(), Some(9), "{out:?}");
        }
    }
    assert!(other.is_running(), "the rest of the group runs on");
    let err = group.signal(Signal::Term);
    match no_break_here() {
        None => err.unwrap(),
        Some(_) => assert_eq!(err.unwrap_err().kind(), ErrorKind::Unsupported),
    }
    let pid = other.pid();
    drop(other);
    drop(group);
    assert_gone(pid, "the other process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_is_terminate_and_reported_as_sigkill() {
    let group = Group::new().unwrap();
    let mut p = group.start(&me("sleep")).unwrap();
    group.signal(Signal::Kill).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), p.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.signal(), Some(9), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_signals_are_refused() {
    let group = Group::new().unwrap();
    let p = group.start(&me("sleep")).unwrap();
    let err = group.signal(Signal::Usr1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    let err = p.signal(Signal::Hup).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(p.is_running(), "a refused signal must not end the process");
    let pid = p.pid();
    drop(p);
    drop(group);
    assert_gone(pid, "the sleeper");
}

/// A supervisor's `signal_program` on Windows: Kill terminates the run's
/// program (a crash, reported as SIGKILL), a signal Windows can't send is
/// `Unsupported` and leaves it running, and with no run going on the
/// answer is `None`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisors_signal_program_kills_or_is_refused() {
    use pkit::{Outcome, Restart, StopReason, Supervisor, SupervisorEvent};
    let mut handle = Supervisor::new(me("sleep")).restart(Restart::Never).start();
    async fn next(h: &mut pkit::SupervisorHandle) -> Option<SupervisorEvent> {
        tokio::time::timeout(Duration::from_secs(60), h.next_event())
            .await
            .expect("an event in time")
    }
    let Some(SupervisorEvent::Started { pid, .. }) = next(&mut handle).await else {
        panic!("the first event is the start")
    };
    let err = handle.signal_program(Signal::Usr1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(!gone(pid), "a refused signal must not end the program");
    assert_eq!(handle.signal_program(Signal::Kill).unwrap(), Some(pid));
    assert_eq!(
        next(&mut handle).await,
        Some(SupervisorEvent::Exited {
            pid,
            outcome: Outcome::Signalled(9),
            crashed: true,
        })
    );
    assert_eq!(
        next(&mut handle).await,
        Some(SupervisorEvent::Stopped(StopReason::PolicySatisfied))
    );
    assert_eq!(handle.signal_program(Signal::Kill).unwrap(), None);
    handle.wait().await.unwrap();
    assert_gone(pid, "the supervised sleeper");
}

/// A closed group has nothing left to signal: every signal Windows can
/// send (Kill, Term, Int, Stop, Cont) is `Ok` and does nothing, as on
/// Unix, where a closed group's signals all succeed (Term and Int used to
/// be `Unsupported`: no process was left to take a break). A signal
/// Windows can't send at all stays `Unsupported`, closed or not: the
/// answer to "can this mechanism send it" does not change with the
/// group's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_group_takes_every_signal_windows_can_send() {
    let group = Group::new().unwrap();
    let mut p = group.start(&me("sleep")).unwrap();
    group.close().await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), p.wait())
        .await
        .expect("the closed group's process ended")
        .unwrap();
    assert_eq!(out.signal(), Some(9), "{out:?}");
    let mut wrong = Vec::new();
    for sig in [
        Signal::Term,
        Signal::Int,
        Signal::Stop,
        Signal::Cont,
        Signal::Kill,
        Signal::Stop,
        Signal::Term,
    ] {
        if let Err(e) = group.signal(sig) {
            wrong.push(format!("{sig}: {e}"));
        }
    }
    assert!(wrong.is_empty(), "refused by a closed group: {wrong:?}");
    assert!(!group.is_suspended(), "a stop is no suspension");
    for sig in [Signal::Hup, Signal::Usr1, Signal::Raw(0)] {
        let err = group.signal(sig).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{sig}: {err}");
    }
    let err = group.start(&me("sleep")).unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
}

/// A closed group's suspend and resume succeed without acting on the job,
/// as on Unix: the suspend marks the group suspended (starts stay refused
/// as closed), the resume lifts the mark, and neither lists, suspends or
/// resumes a process of the terminated job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_groups_suspend_and_resume_only_mark_it() {
    let group = Group::new().unwrap();
    let mut p = group.start(&me("sleep")).unwrap();
    group.close().await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), p.wait())
        .await
        .expect("the closed group's process ended")
        .unwrap();
    assert_eq!(out.signal(), Some(9), "{out:?}");
    group.suspend().await.expect("suspending a closed group");
    assert!(group.is_suspended(), "marked suspended, as on Unix");
    group.suspend().await.expect("suspending it again");
    let err = group.start(&me("sleep")).unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    group.resume().await.expect("resuming a closed group");
    assert!(!group.is_suspended());
    group.resume().await.expect("resuming it again");
}

/// The number in a `COUNT <n>` line (the test harness may have put
/// `test helper ... ` before it).
fn count_in(line: &str) -> Option<u64> {
    line.split("COUNT ").nth(1)?.trim().parse().ok()
}

/// The next count a `count` helper says (panics if none comes in time).
async fn next_count(lines: &mut pkit::Lines) -> u64 {
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await {
            if let Some(n) = count_in(&line.text) {
                return n;
            }
        }
        panic!("the counter ended");
    })
    .await
    .expect("the counter counts")
}

/// Asserts that the counter has stopped: once what it said before is read
/// (the lines stop for half a second, within 30 s) its last count is N;
/// two seconds later (a running counter says a hundred lines meanwhile),
/// what it has said since holds no count above N. Returns N.
async fn assert_stopped(lines: &mut pkit::Lines, last: u64) -> u64 {
    let mut last = last;
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(Some(line)) =
        tokio::time::timeout(Duration::from_millis(500), lines.next_line()).await
    {
        last = count_in(&line.text).unwrap_or(last);
        assert!(Instant::now() < deadline, "still counting: {last}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // What it has said since (a few lines suffice: a running counter
    // would not let this end otherwise).
    let mut since = Vec::new();
    while since.len() < 20 {
        match tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await {
            Ok(Some(line)) => since.extend(count_in(&line.text)),
            _ => break,
        }
    }
    assert!(
        since.iter().all(|&n| n <= last),
        "the suspended counter counted on after {last}: {since:?}"
    );
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_group_stops_until_resumed() {
    let group = Group::new().unwrap();
    let mut p = group.start(&me("count").stream_lines()).unwrap();
    let mut lines = p.lines();
    let first = next_count(&mut lines).await;
    group.suspend().await.unwrap();
    assert!(group.is_suspended());
    // A second suspension is nothing: one resume is enough below.
    group.suspend().await.unwrap();
    let err = group.start(&me("sleep")).unwrap_err();
    assert!(err.to_string().contains("suspended"), "{err}");
    let last = assert_stopped(&mut lines, first).await;
    group.resume().await.unwrap();
    assert!(!group.is_suspended());
    let again = next_count(&mut lines).await;
    assert!(again > last, "counted {again} after {last}");
    kill_and_wait(&group, &mut p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_group_can_be_killed() {
    let group = Group::new().unwrap();
    let mut p = group.start(&me("count").stream_lines()).unwrap();
    let mut lines = p.lines();
    next_count(&mut lines).await;
    group.suspend().await.unwrap();
    group.kill().unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), p.wait())
        .await
        .expect("a suspended process is killed")
        .unwrap();
    assert_eq!(out.signal(), Some(9), "{out:?}");
    assert!(group.is_suspended(), "a kill does not resume the group");
}

/// Where a `tidy` helper writes as it ends; removed on drop.
struct Mark(std::path::PathBuf);

impl Mark {
    fn new(what: &str) -> Mark {
        let path = std::env::temp_dir().join(format!("pkit-tidy-{what}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Mark(path)
    }

    /// What the helper wrote, if it did.
    fn read(&self) -> Option<String> {
        std::fs::read_to_string(&self.0).ok()
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A `tidy` helper writing to `mark`, as `cmd` builds it from this
/// binary, once its handler is installed.
async fn tidy(
    group: &Group,
    mark: &Mark,
    cmd: impl FnOnce(Command) -> Command,
) -> pkit::RunningProcess {
    let mut p = group
        .start(&cmd(me("tidy").env(MARK, &mark.0).stream_lines()))
        .unwrap();
    ready(&mut p).await;
    p
}

/// A suspended group's shutdown sends the break, then resumes the group:
/// the program handles the break within the grace (before, a suspended
/// program sat through the whole grace and was terminated at its end,
/// its cleanup never run). Under Wine no break can be sent: the shutdown
/// terminates the suspended program at once, and that is what is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_groups_shutdown_resumes_it_for_the_grace() {
    let group = Group::new().unwrap();
    let mark = Mark::new("shutdown");
    let mut p = tidy(&group, &mark, |c| c).await;
    group.suspend().await.unwrap();
    let report = group.shutdown(Duration::from_secs(60)).await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), p.wait())
        .await
        .expect("the process ended")
        .unwrap();
    match no_break_here() {
        None => {
            assert_eq!(report.killed(), 0, "{report:?}");
            assert_eq!(report.exited_in_grace(), 1, "{report:?}");
            assert_eq!(out.code(), Some(0), "{out:?}");
            assert_eq!(mark.read().as_deref(), Some("CLEAN"), "{out:?}");
            assert!(!group.is_suspended(), "the shutdown resumed the group");
        }
        Some(why) => {
            println!("no break delivered ({why}): checking the fallback, straight to termination");
            assert_eq!(report.killed(), 1, "{report:?}");
            assert!(report.elapsed() < Duration::from_secs(50), "{report:?}");
            assert_eq!(out.signal(), Some(9), "{out:?}");
            assert_eq!(mark.read(), None, "{out:?}");
        }
    }
}

/// A started process's end with a grace in a suspended group (its own
/// shutdown, its cancel token) sends the break to its tree, then resumes
/// the whole group, as on Unix: the program cleans up and exits within
/// the grace, another of the group runs on, and the group is no longer
/// suspended. Under Wine no break can be sent: the process is terminated
/// at once, and the group, like a killed one, stays suspended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_groups_process_ends_resume_it_for_the_grace() {
    let group = Group::new().unwrap();
    let mut counter = group.start(&me("count").stream_lines()).unwrap();
    let mut lines = counter.lines();
    let first = next_count(&mut lines).await;
    let token = pkit::CancelToken::new();
    let (shut, cancelled) = (Mark::new("process"), Mark::new("cancel"));
    let mut a = tidy(&group, &shut, |c| c).await;
    let mut b = tidy(&group, &cancelled, |c| {
        c.cancel_token(&token).cancel_grace(Duration::from_secs(60))
    })
    .await;
    group.suspend().await.unwrap();
    let last = assert_stopped(&mut lines, first).await;
    let killed = a.shutdown(Duration::from_secs(60)).await.unwrap();
    let out = a.wait().await.unwrap();
    assert!(!killed, "{out:?}");
    match no_break_here() {
        None => {
            assert_eq!(out.code(), Some(0), "{out:?}");
            assert_eq!(shut.read().as_deref(), Some("CLEAN"), "{out:?}");
            assert!(!group.is_suspended(), "the end resumed the group");
            let again = next_count(&mut lines).await;
            assert!(again > last, "counted {again} after {last}");
            // Suspended again: a cancelled process gets its grace too.
            group.suspend().await.unwrap();
            token.cancel();
            let err = b.wait().await.unwrap_err();
            assert!(err.is_cancelled(), "{err:?}");
            assert_eq!(cancelled.read().as_deref(), Some("CLEAN"), "{err:?}");
            assert!(!group.is_suspended(), "the cancel resumed the group");
        }
        Some(why) => {
            println!("no break delivered ({why}): checking the fallback, straight to termination");
            assert_eq!(out.signal(), Some(9), "{out:?}");
            assert_eq!(shut.read(), None, "{out:?}");
            assert!(group.is_suspended(), "a termination resumes nothing");
            assert_stopped(&mut lines, last).await;
            token.cancel();
            let err = b.wait().await.unwrap_err();
            assert!(err.is_cancelled(), "{err:?}");
            assert_eq!(cancelled.read(), None, "{err:?}");
            assert!(group.is_suspended(), "a termination resumes nothing");
        }
    }
    kill_and_wait(&group, &mut counter).await;
}

/// Kills the group and waits for `p`, killed.
async fn kill_and_wait(group: &Group, p: &mut pkit::RunningProcess) {
    group.kill().unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), p.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.signal(), Some(9), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_cont_to_the_group_are_a_hold_apart_from_suspend() {
    let group = Group::new().unwrap();
    let mut p = group.start(&me("count").stream_lines()).unwrap();
    let mut lines = p.lines();
    let first = next_count(&mut lines).await;
    // Stopped twice, continued once (below): as with SIGSTOP and SIGCONT.
    group.signal(Signal::Stop).unwrap();
    group.signal(Signal::Stop).unwrap();
    assert!(!group.is_suspended(), "a stop is no suspension");
    let last = assert_stopped(&mut lines, first).await;
    // Suspended as well: the continue lifts the stop alone, as SIGCONT
    // leaves a frozen cgroup frozen.
    group.suspend().await.unwrap();
    group.signal(Signal::Cont).unwrap();
    assert!(group.is_suspended());
    let last = assert_stopped(&mut lines, last).await;
    group.resume().await.unwrap();
    let again = next_count(&mut lines).await;
    assert!(again > last, "counted {again} after {last}");
    // A continue of a running group is nothing.
    group.signal(Signal::Cont).unwrap();
    let more = next_count(&mut lines).await;
    assert!(more > again, "counted {more} after {again}");
    kill_and_wait(&group, &mut p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_group_starts_and_a_second_stop_reaches_the_new_process() {
    let group = Group::new().unwrap();
    let mut a = group.start(&me("count").stream_lines()).unwrap();
    let mut a_lines = a.lines();
    let first = next_count(&mut a_lines).await;
    group.signal(Signal::Stop).unwrap();
    let a_last = assert_stopped(&mut a_lines, first).await;
    // A resumption lifts no stop (the group is not suspended).
    group.resume().await.unwrap();
    // A stop refuses no start (a suspension does): the new one runs...
    let mut b = group.start(&me("count").stream_lines()).unwrap();
    let mut b_lines = b.lines();
    let b_first = next_count(&mut b_lines).await;
    let a_last = assert_stopped(&mut a_lines, a_last).await;
    // ...until stopped in turn.
    group.signal(Signal::Stop).unwrap();
    let b_last = assert_stopped(&mut b_lines, b_first).await;
    // One continue lifts both stops.
    group.signal(Signal::Cont).unwrap();
    let a_again = next_count(&mut a_lines).await;
    assert!(a_again > a_last, "a counted {a_again} after {a_last}");
    let b_again = next_count(&mut b_lines).await;
    assert!(b_again > b_last, "b counted {b_again} after {b_last}");
    kill_and_wait(&group, &mut a).await;
    tokio::time::timeout(Duration::from_secs(30), b.wait())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_cont_suspend_a_started_processs_tree() {
    // The counter is the started process's child: the whole tree stops.
    let group = Group::new().unwrap();
    let mut p = group.start(&me("count_parent").stream_lines()).unwrap();
    let mut lines = p.lines();
    let first = next_count(&mut lines).await;
    p.signal(Signal::Stop).unwrap();
    // Stopped twice, continued once: it runs, as with SIGSTOP and SIGCONT.
    p.signal(Signal::Stop).unwrap();
    let last = assert_stopped(&mut lines, first).await;
    assert!(!group.is_suspended(), "the group itself is not suspended");
    p.signal(Signal::Cont).unwrap();
    let again = next_count(&mut lines).await;
    assert!(again > last, "counted {again} after {last}");
    p.kill_tree().unwrap();
    tokio::time::timeout(Duration::from_secs(30), p.wait())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_tree_is_killed_alone() {
    let group = Group::new().unwrap();
    let mut a = group.start(&me("parent").stream_lines()).unwrap();
    let a_grandchild = grandchild_of(&mut a).await;
    let b = group.start(&me("sleep")).unwrap();
    a.kill_tree().unwrap();
    assert_gone(a_grandchild, "the killed tree's grandchild");
    assert!(b.is_running(), "the rest of the group runs on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_are_carried_by_the_job() {
    // A cap the job can't express is refused, never ignored.
    assert!(Group::builder().memory_high(1 << 30).build().is_err());
    if is_wine() {
        // Wine takes both limits and enforces neither: each is refused,
        // by name, and host_containment says it is not enforced.
        assert_refused_on_wine(Group::builder().max_processes(8).build(), "max_processes");
        assert_refused_on_wine(Group::builder().memory_max(512 << 20).build(), "memory_max");
        return;
    }
    let group = Group::builder()
        .max_processes(8)
        .memory_max(512 << 20)
        .build()
        .unwrap();
    let caps: Vec<&str> = group.limits().iter().map(|l| l.cap).collect();
    assert!(
        caps.contains(&"max_processes") && caps.contains(&"memory_max"),
        "{caps:?}"
    );
}

/// Asserts that `built` is the refusal of `cap` naming Wine, and that
/// host_containment says the cap is not enforced.
fn assert_refused_on_wine(built: pkit::Result<Group>, cap: &str) {
    match built {
        Err(pkit::Error::ResourceLimit { cap: named, reason }) => {
            assert_eq!(named, cap);
            assert!(reason.contains("Wine"), "{reason}");
        }
        other => panic!("{cap} under Wine: {other:?}"),
    }
    let host = pkit::host_containment();
    let said = host.caps.iter().find(|c| c.cap == cap).unwrap();
    assert!(said.enforced_by.is_none(), "{said:?}");
}

/// Whether this test runs on Wine: Wine's ntdll exports
/// `wine_get_version`, which no Windows has.
fn is_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
    let name: Vec<u16> = "ntdll.dll\0".encode_utf16().collect();
    // SAFETY: a NUL-terminated name; ntdll is loaded in every process.
    let ntdll = unsafe { GetModuleHandleW(name.as_ptr()) };
    assert!(!ntdll.is_null(), "ntdll is not loaded");
    // SAFETY: a valid module and a NUL-terminated name.
    unsafe { GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()) }.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpu_quota_is_a_job_rate_cap_or_refused_by_name_on_wine() {
    let built = Group::builder().cpu_quota(0.5).build();
    if is_wine() {
        // Wine refuses JobObjectCpuRateControlInformation: a typed
        // refusal that names the cap and Wine, and nothing else.
        assert_refused_on_wine(built, "cpu_quota");
        return;
    }
    let group = built.unwrap();
    let cap = group.limits().into_iter().find(|l| l.cap == "cpu_quota");
    assert!(
        cap.is_some_and(|l| l.enforced_by.contains("CPU rate")),
        "{:?}",
        group.limits()
    );
    let out = group.start(&me("alloc")).unwrap().wait().await.unwrap();
    assert!(out.success(), "a capped group runs its programs: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpu_set_is_the_jobs_affinity_or_refused_by_name_on_wine() {
    // Past the first 64 CPUs: refused on any Windows, before the job.
    match Group::builder().cpus("0,64").build() {
        Err(pkit::Error::ResourceLimit { cap, reason }) => {
            assert_eq!(cap, "cpus");
            assert!(reason.contains("CPU 64"), "{reason}");
        }
        other => panic!("CPU 64: {other:?}"),
    }
    let built = Group::builder().cpus("0").build();
    if is_wine() {
        // Wine takes JOB_OBJECT_LIMIT_AFFINITY and drops it: a typed
        // refusal that names the cap and Wine, never a silent no-op.
        assert_refused_on_wine(built, "cpus");
        return;
    }
    let group = built.unwrap();
    let out = group.start(&me("affinity")).unwrap().wait().await.unwrap();
    let mask = out
        .stdout_str()
        .split("AFFINITY ")
        .nth(1)
        .map(|m| m.trim().to_string());
    assert_eq!(mask.as_deref(), Some("1"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_file_runs_through_cmd_with_its_argument_intact() {
    let dir = std::env::temp_dir().join(format!("pkit-bat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bat = dir.join("echoarg.bat");
    std::fs::write(&bat, "@echo off\r\necho ARG[%~1]\r\n").unwrap();
    let out = Command::new(&bat).arg("two words").output().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.stdout_str().trim(), "ARG[two words]", "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_cap_refuses_a_grandchild() {
    if is_wine() {
        // Wine would accept the limit and not enforce it: refused instead.
        assert_refused_on_wine(Group::builder().max_processes(1).build(), "max_processes");
        return;
    }
    let group = Group::builder().max_processes(1).build().unwrap();
    let mut p = group.start(&me("parent")).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), p.wait())
        .await
        .expect("the parent ends when its grandchild is refused")
        .unwrap();
    assert!(!out.success(), "{out:?}");
    assert!(named_pid(&out.stdout_str()).is_none(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_cap_stops_a_big_allocation() {
    if is_wine() {
        // Wine would accept the limit and not enforce it: refused instead.
        assert_refused_on_wine(Group::builder().memory_max(64 << 20).build(), "memory_max");
        return;
    }
    let group = Group::builder().memory_max(64 << 20).build().unwrap();
    let mut p = group.start(&me("alloc")).unwrap();
    let out = p.wait().await.unwrap();
    assert!(!out.success(), "{out:?}");
    assert!(!out.stdout_str().contains("ALLOCATED"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_process_dies_with_the_group() {
    let mut stranger = std::process::Command::new(std::env::current_exe().unwrap())
        .args(helper_args())
        .env(ROLE, "sleep")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = stranger.id();
    let group = Group::new().unwrap();
    let adopted = group.adopt(pid);
    if adopted.is_err() {
        let _ = stranger.kill();
    }
    adopted.unwrap();
    assert!(group.pids().unwrap().contains(&pid));
    drop(group);
    assert_gone(pid, "the adopted process");
    let _ = stranger.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_adopted_into_a_suspended_group_is_suspended_with_it() {
    // A counter started elsewhere (std), its lines read by a thread.
    let mut stranger = std::process::Command::new(std::env::current_exe().unwrap())
        .args(helper_args())
        .env(ROLE, "count")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = stranger.id();
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let stdout = stranger.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = count_in(&line) {
                if tx.send(n).is_err() {
                    break;
                }
            }
        }
    });
    // The latest count said within `wait`, if any.
    let latest = |wait: Duration| {
        let mut last = rx.recv_timeout(wait).ok();
        while let Ok(n) = rx.try_recv() {
            last = Some(n);
        }
        last
    };
    let group = Group::new().unwrap();
    let counted = latest(Duration::from_secs(60)).is_some();
    group.suspend().await.unwrap();
    let adopted = group.adopt(pid);
    if !counted || adopted.is_err() {
        cleanup(pid);
        panic!("the stranger counted: {counted}; adopted: {adopted:?}");
    }
    // What it said before the adoption drains; then nothing for 2 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    while latest(Duration::from_millis(500)).is_some() {
        assert!(Instant::now() < deadline, "the adopted counter counts on");
    }
    assert_eq!(
        latest(Duration::from_secs(2)),
        None,
        "counted while suspended"
    );
    group.resume().await.unwrap();
    assert!(
        latest(Duration::from_secs(60)).is_some(),
        "counts again once resumed"
    );
    drop(group);
    assert_gone(pid, "the adopted counter");
    let _ = stranger.wait();
    reader.join().unwrap();
}

/// A `sleep` helper started elsewhere (std, not pkit), its output dropped.
fn stranger() -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(helper_args())
        .env(ROLE, "sleep")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("starting a stranger")
}

/// Ends a stranger of ours and reaps it.
fn end_stranger(mut stranger: std::process::Child) {
    let _ = stranger.kill();
    let _ = stranger.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_group_refuses_to_adopt_and_leaves_the_process_where_it_was() {
    // Closed while suspended, with a process: as on Unix, an adoption is
    // refused with Io "the group has been closed" (a terminated job stays
    // usable: it used to take the process, which then ran on until the
    // group was dropped), and suspend and resume succeed.
    let s = stranger();
    let pid = s.id();
    let group = Group::new().unwrap();
    let mut p = group.start(&me("sleep")).unwrap();
    group.suspend().await.unwrap();
    group.close().await.unwrap();
    let adopted = group.adopt(pid);
    let listed = group.pids();
    let suspended = group.suspend().await;
    let resumed = group.resume().await;
    let out = tokio::time::timeout(Duration::from_secs(30), p.wait()).await;
    drop(group);
    // Had the job taken it, the group's drop (closing the job's handle)
    // would end it now: given time to, it still runs.
    std::thread::sleep(Duration::from_secs(1));
    let running = !gone(pid);
    end_stranger(s);
    let err = adopted.expect_err("a closed group adopted a running process");
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.to_string().contains("has been closed"), "{err}");
    assert!(!listed.unwrap().contains(&pid), "listed after a refusal");
    assert!(running, "the process refused was ended with the group");
    suspended.expect("suspending a closed group");
    resumed.expect("resuming a closed group");
    let out = out.expect("the closed group's process ended").unwrap();
    assert_eq!(out.signal(), Some(9), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adoption_racing_a_close_lands_first_or_is_refused() {
    // Either way round: taken before the close (and ended with the
    // group), or refused and left running; never taken into the job the
    // close has already terminated, running on in a closed group.
    for round in 0..6 {
        let s = stranger();
        let pid = s.id();
        let group = std::sync::Arc::new(Group::new().unwrap());
        let mut p = group.start(&me("sleep")).unwrap();
        // Which of the two is set going first changes each round.
        let close = |group: std::sync::Arc<Group>| tokio::spawn(async move { group.close().await });
        let adopt =
            |group: std::sync::Arc<Group>| tokio::task::spawn_blocking(move || group.adopt(pid));
        let (adopted, closed) = if round % 2 == 0 {
            let closer = close(group.clone());
            (adopt(group.clone()).await.unwrap(), closer.await.unwrap())
        } else {
            let adopter = adopt(group.clone());
            let closed = close(group.clone()).await.unwrap();
            (adopter.await.unwrap(), closed)
        };
        // The close has returned: what the job took is gone.
        let deadline = Instant::now() + Duration::from_secs(30);
        while adopted.is_ok() && !gone(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let running = !gone(pid);
        end_stranger(s);
        closed.unwrap();
        println!("round {round}: adopted {adopted:?}");
        match adopted {
            Ok(()) => assert!(
                !running,
                "round {round}: adopted, and running after the close"
            ),
            Err(e) => {
                assert!(
                    e.to_string().contains("has been closed"),
                    "round {round}: {e}"
                );
                assert!(running, "round {round}: refused, and ended all the same");
            }
        }
        let out = tokio::time::timeout(Duration::from_secs(30), p.wait())
            .await
            .expect("the group's process ended with the close")
            .unwrap();
        assert_eq!(out.signal(), Some(9), "round {round}: {out:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_and_stats_read_the_jobs_members() {
    let group = Group::new().unwrap();
    let mut p = group.start(&me("parent").stream_lines()).unwrap();
    let grandchild = grandchild_of(&mut p).await;
    let listed = group.processes().unwrap();
    let pids: Vec<u32> = listed.iter().map(|i| i.pid).collect();
    assert!(pids.contains(&p.pid()), "{listed:?}");
    assert!(pids.contains(&grandchild), "{listed:?}");
    let exe = std::env::current_exe().unwrap();
    let name = exe.file_name().unwrap().to_string_lossy().to_lowercase();
    for info in listed
        .iter()
        .filter(|i| i.pid == grandchild || i.pid == p.pid())
    {
        let named = info.name.as_deref().map(str::to_lowercase);
        assert_eq!(named.as_deref(), Some(name.as_str()), "{listed:?}");
    }
    let stats = group.stats().unwrap();
    assert_eq!(
        stats.active_processes(),
        listed.len(),
        "{stats:?} {listed:?}"
    );
    assert!(stats.active_processes() >= 2, "{stats:?}");
    // Wine keeps no job CPU time nor peak memory: unknown there, not 0.
    assert_eq!(stats.cpu_time().is_some(), !is_wine(), "{stats:?}");
    assert_eq!(stats.peak_memory_bytes().is_some(), !is_wine(), "{stats:?}");
    group.kill().unwrap();
    p.wait().await.unwrap();
    assert_gone(grandchild, "the grandchild");
    let deadline = Instant::now() + Duration::from_secs(30);
    while group.stats().unwrap().active_processes() > 0 {
        assert!(Instant::now() < deadline, "the job still counts processes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(group.processes().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_found_on_the_commands_own_path_through_pathext() {
    let root = std::env::temp_dir().join(format!("pkit-pathext-{}", std::process::id()));
    let (first, second) = (root.join("first"), root.join("second"));
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    // No PATHEXT extension: never the program, though first on the path.
    std::fs::write(first.join("pkitfind"), "not a program").unwrap();
    std::fs::write(first.join("pkitfind.txt"), "not a program").unwrap();
    // .BAT comes before .CMD in PATHEXT.
    std::fs::write(
        second.join("pkitfind.bat"),
        "@echo off\r\necho FOUND bat\r\n",
    )
    .unwrap();
    std::fs::write(
        second.join("pkitfind.cmd"),
        "@echo off\r\necho FOUND cmd\r\n",
    )
    .unwrap();
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let mut path = std::ffi::OsString::from(format!("{};{};", first.display(), second.display()));
    path.push(&inherited);
    // Spelled `Path` (as Windows itself spells it): the same variable as
    // the `PATH` this process has.
    let found = Command::new("pkitfind")
        .env("Path", &path)
        .resolve_program();
    let explicit = Command::new("pkitfind.cmd")
        .env("Path", &path)
        .resolve_program();
    let out = Command::new("pkitfind").env("Path", &path).output().await;
    let elsewhere = Command::new("pkitfind").resolve_program();
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(found.unwrap(), second.join("pkitfind.bat"));
    assert_eq!(explicit.unwrap(), second.join("pkitfind.cmd"));
    let out = out.unwrap();
    assert_eq!(out.stdout_str().trim(), "FOUND bat", "{out:?}");
    assert!(
        matches!(elsewhere, Err(pkit::Error::NotFound { .. })),
        "not on this process's PATH: {elsewhere:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executable_held_open_by_a_writer_is_a_transient_start_failure() {
    use std::os::windows::fs::OpenOptionsExt;
    // This test binary's bytes, in a file still open for writing and
    // shared with nobody: Windows won't run it (a sharing violation). Its
    // own directory, which has the DLLs it needs beside it (Wine's).
    let me = std::env::current_exe().unwrap();
    let exe = me.with_file_name(format!("pkit-busy-{}.exe", std::process::id()));
    let bytes = std::fs::read(&me).unwrap();
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .share_mode(0)
        .open(&exe)
        .unwrap();
    writer.write_all(&bytes).unwrap();
    let busy = || Command::new(&exe).args(helper_args()).env(ROLE, "hello");
    let err = busy().output().await.unwrap_err();
    assert!(pkit::is_transient(&err), "{err:?}");
    // Retried: the writer closes when the first failure is classified.
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};
    let writer = Arc::new(Mutex::new(Some(writer)));
    let tries = Arc::new(AtomicU32::new(0));
    let (w, t) = (writer.clone(), tries.clone());
    let out = busy()
        .retry(20, Duration::from_millis(50), move |e| {
            t.fetch_add(1, Ordering::SeqCst);
            drop(w.lock().unwrap().take());
            pkit::is_transient(e)
        })
        .run()
        .await;
    drop(writer.lock().unwrap().take());
    let _ = std::fs::remove_file(&exe);
    let out = out.expect("runs once the writer is gone");
    assert!(out.contains("HELLO"), "{out:?}");
    assert!(tries.load(Ordering::SeqCst) >= 1, "the first try failed");
}

/// A pty session of the `console` helper, its lines stripped of the
/// console's escape sequences (wide, so no line wraps).
fn console_session(role: &str) -> Command {
    me(role)
        .pty(24, 200)
        .stream_lines()
        .decoder(pkit::DecoderFactory::utf8_strip_vt())
}

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pty_session_shows_the_console_and_takes_a_typed_line() {
    // Arguments that need the command line's quoting rules (the program
    // is started with CreateProcessW here, not std's Command).
    let args = [
        "two words",
        "a\"quote",
        r"trail\",
        r"back\\",
        r#"both\"x"#,
        "",
        // Backslashes in a quoted argument: before its closing quote, and
        // before a quote inside it.
        r"two words\",
        r#"a \" b"#,
        "tab\there",
    ];
    let mut p = console_session("console").args(args).start().unwrap();
    assert_eq!(p.mechanism(), Mechanism::JobObject);
    p.wait_for_line(|l| l.text.contains("CONSOLE READY"), LIMIT)
        .await
        .unwrap();
    // The console may draw a blank as a cursor movement (stripped with
    // the other sequences): compare without blanks.
    let want = format!("ARGS {args:?}").replace(' ', "");
    p.wait_for_line(|l| l.text.replace(' ', "").contains(&want), LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{want}: {e}"));
    let tty = p.pty().expect("a pty session");
    assert_eq!(tty.size().unwrap(), (24, 200));
    tty.write_line("typed words").await.unwrap();
    // The console echoes the typed line; then the program's answer
    // (without blanks, as above: a blank over a blank cell may be drawn as
    // a cursor movement).
    p.wait_for_line(
        |l| l.text.replace(' ', "").contains("GOT[typedwords]"),
        LIMIT,
    )
    .await
    .unwrap_or_else(|e| panic!("GOT [typed words]: {e}"));
    let out = p.wait().await.unwrap();
    assert!(out.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pty_run_captures_the_console_and_the_exit_code() {
    // The output ends only when the console host does: closed when the
    // program exits, after it wrote what it still had.
    let out = me("console_exit").pty(24, 80).output().await.unwrap();
    assert_eq!(out.code(), Some(5), "{out:?}");
    let text = pkit::strip_vt(&out.stdout_str());
    assert!(text.contains("CONSOLE READY"), "{text:?}");
    assert!(text.contains("BYE"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pty_runs_output_keeps_its_end() {
    // The console host writes its last screen only once pkit closes the
    // console at the program's exit, which can take long under load: the
    // output is read to its end, not to a quiet spell.
    for round in 0..3 {
        let out = me("console_flood").pty(24, 80).output().await.unwrap();
        assert_eq!(out.code(), Some(7), "{out:?}");
        let text = pkit::strip_vt(&out.stdout_str());
        assert!(
            text.replace(' ', "").contains("ENDOFFLOOD"),
            "round {round}: the end is missing: {:?}",
            text.get(text.len().saturating_sub(2000)..).unwrap_or(&text)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawns_meanwhile_do_not_keep_a_pty_sessions_output_open() {
    // In a process of its own: its many programs must not slow the
    // other tests' sessions.
    let out = me("pty_spawn_race").output().await.unwrap();
    let text = out.stdout_str();
    assert!(
        text.contains("SESSIONS ENDED 20"),
        "{out:?}: {text}\nstderr: {}",
        out.stderr_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pty_session_refuses_a_batch_file_however_spelled() {
    // Windows drops a file name's trailing dots and spaces: `x.bat.` and
    // `x.bat ` are `x.bat`, run through cmd.exe's parser all the same.
    let dir = std::env::temp_dir().join(format!("pkit-ptybat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("ran");
    let script = format!("@echo off\r\necho ran> \"{}\"\r\n", marker.display());
    std::fs::write(dir.join("x.bat"), &script).unwrap();
    std::fs::write(dir.join("y.cmd"), &script).unwrap();
    let mut refused = Vec::new();
    for name in [
        "x.bat", "x.BAT", "x.bat.", "x.bat ", "x.bat. .", "y.cmd", "y.Cmd.",
    ] {
        let mut path = dir.clone().into_os_string();
        path.push("\\");
        path.push(name);
        let got = Command::new(&path).arg("a").pty(24, 80).output().await;
        refused.push((name, got.map(|o| o.code()).map_err(|e| e.kind())));
    }
    let ran = marker.exists();
    let _ = std::fs::remove_dir_all(&dir);
    for (name, got) in &refused {
        assert_eq!(*got, Err(ErrorKind::Unsupported), "{name:?}");
    }
    assert!(!ran, "a batch file ran: {refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pty_session_refuses_what_a_console_cannot_do() {
    let mut p = console_session("console").start().unwrap();
    p.wait_for_line(|l| l.text.contains("CONSOLE READY"), LIMIT)
        .await
        .unwrap();
    let tty = p.pty().unwrap();
    for key in ['d', 'z', '\\'] {
        let err = tty.send_control(key).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "Ctrl-{key}: {err}");
    }
    match tty.resize(30, 100) {
        Ok(()) => assert_eq!(tty.size().unwrap(), (30, 100)),
        Err(e) if is_wine() => {
            // Wine 8's ResizePseudoConsole is E_NOTIMPL.
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            assert_eq!(tty.size().unwrap(), (24, 200));
        }
        Err(e) => panic!("resize: {e}"),
    }
    // A console's size is two i16s.
    for (rows, cols) in [(32768, 80), (24, u16::MAX)] {
        let err = tty.resize(rows, cols).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{rows}x{cols}: {err}");
    }
    assert!(p.is_running(), "nothing refused may end the program");
    tty.write_line("done").await.unwrap();
    let out = p.wait().await.unwrap();
    assert!(out.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pty_session_bigger_than_a_console_is_invalid_input() {
    for (rows, cols) in [(32768, 80), (24, 32768), (u16::MAX, u16::MAX)] {
        let err = me("console").pty(rows, cols).start().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{rows}x{cols}: {err}");
    }
    // The largest size is a size.
    let mut p = me("console").pty(24, 32767).start().unwrap();
    p.kill().unwrap();
    p.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_pty_session_hands_over_the_console() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut p = me("console").pty_raw(24, 200).start().unwrap();
    let mut master = p.take_pty_master().expect("a raw session's master");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(LIMIT, async {
        while !pkit::strip_vt(&seen).contains("CONSOLE READY") {
            let n = master.read(&mut buf).await.unwrap();
            assert!(n > 0, "the console ended early: {seen:?}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        master.write_all(b"raw line\r").await.unwrap();
        while !pkit::strip_vt(&seen)
            .replace(' ', "")
            .contains("GOT[rawline]")
        {
            let n = master.read(&mut buf).await.unwrap();
            assert!(n > 0, "the console ended early: {seen:?}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        // The end of the stream once the program exited.
        while master.read(&mut buf).await.unwrap() > 0 {}
    })
    .await
    .unwrap_or_else(|_| panic!("the raw session stalled: {seen:?}"));
    assert!(p.wait().await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pty_session_dies_with_its_group() {
    let group = Group::new().unwrap();
    let mut p = group.start(&console_session("console")).unwrap();
    p.wait_for_line(|l| l.text.contains("CONSOLE READY"), LIMIT)
        .await
        .unwrap();
    let pid = p.pid();
    assert!(group.pids().unwrap().contains(&pid));
    drop(p);
    drop(group);
    assert_gone(pid, "the pty session's program");
    // The console host too, counted in a process of its own (so that no
    // other test's host is counted).
    let out = me("pty_group_end").output().await.unwrap();
    let text = out.stdout_str();
    assert!(text.contains("HOSTS 1 LEFT []"), "{out:?}: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pty_session_and_its_console_host_die_with_a_killed_owner() {
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args(helper_args())
        .env(ROLE, "pty_owner")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = owner.stdout.take().unwrap();
    let said = tokio::task::spawn_blocking(move || {
        let mut said = Vec::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let done = line.contains("GRANDCHILD");
            said.push(line);
            if done {
                break;
            }
        }
        said
    })
    .await
    .unwrap();
    let child = said
        .iter()
        .find_map(|l| named_pid(l))
        .expect("the pty program's pid");
    let hosts: Vec<u32> = said
        .iter()
        .filter_map(|l| l.split("CONHOST ").nth(1)?.trim().parse().ok())
        .collect();
    owner.kill().unwrap();
    owner.wait().unwrap();
    assert!(
        !hosts.is_empty(),
        "the owner named no console host: {said:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let all = || std::iter::once(child).chain(hosts.iter().copied());
    while !all().all(gone) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u32> = all().filter(|&p| !gone(p)).collect();
    all().for_each(cleanup);
    assert!(
        left.is_empty(),
        "outlived their killed owner: {left:?} (program {child}, hosts {hosts:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_programs_standard_output_reaches_the_pty() {
    if is_wine() {
        println!(
            "skipped under Wine: Wine 8 gives a pseudo console's program no standard handles \
             (the console helper, which opens CONOUT$, is checked instead)"
        );
        return;
    }
    let out = Command::new("cmd")
        .args(["/c", "echo hello pty& exit 4"])
        .pty(24, 80)
        .output()
        .await
        .unwrap();
    assert_eq!(out.code(), Some(4), "{out:?}");
    assert!(
        pkit::strip_vt(&out.stdout_str()).contains("hello pty"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_ctrl_c_interrupts_a_console_program() {
    let mut p = console_session("console").start().unwrap();
    p.wait_for_line(|l| l.text.contains("CONSOLE READY"), LIMIT)
        .await
        .unwrap();
    p.pty().unwrap().send_control('c').await.unwrap();
    // Under Wine a ^C typed before the program starts its read (it says
    // READY first) is lost: type it again while the program runs (only
    // ^C, so only ^C can end it).
    let deadline = Instant::now() + LIMIT;
    while p.is_running() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if is_wine() && p.is_running() {
            let _ = p.pty().unwrap().send_control('c').await;
        }
    }
    // Without it the program would wait for a line for ever.
    let out = tokio::time::timeout(LIMIT, p.wait())
        .await
        .expect("Ctrl-C ended the program")
        .unwrap();
    if is_wine() {
        // Wine 8 ends the read and the program exits as if it returned.
        println!("under Wine the interrupted program exits with {out:?}");
        return;
    }
    // The default handler's exit: STATUS_CONTROL_C_EXIT.
    assert_eq!(out.code(), Some(0xC000013Au32 as i32), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pty_sessions_console_host_exits_with_its_program() {
    // In a process of its own, so that no other test's console host is
    // counted.
    let out = me("pty_session_end").output().await.unwrap();
    let text = out.stdout_str();
    assert!(
        text.contains("HOSTS 1 LEFT 0 CODE Some(5)"),
        "{out:?}: {text}"
    );
}
