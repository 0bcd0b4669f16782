//! att18: a second hostile round on the Job Object backend, under Wine
//! (CI's `.ci/windows/run`) or natively: every short argument of quotes,
//! spaces, tabs and backslashes round-tripped through a child's argv,
//! 64 MiB of output and 16 MiB of stdin, a timeout on a tree of 21
//! processes, nested groups (a pkit group inside a process already in one),
//! a breakaway from inside a job that allows breakaway, a kill of an
//! exited child, a directory, a non-executable file and batch files as
//! programs, environment names in any case.
//!
//! The helper processes are this test binary itself, started with
//! `PKIT_A2_ROLE` set (see [`helper`]); the roles that nest a group of
//! their own are in `windows_attack2/nest.rs`.
//!
//! What broke (fixed): a directory named as the program was `NotFound`
//! (now `NotExecutable`, as on Unix); under Wine a group's stats gave 0
//! CPU time and 0 peak memory after a process had burnt half a second
//! (Wine keeps neither for a job: now `None`); under Wine a command line
//! past Windows' 32767 units ran cut short (now refused, as Windows does).
//! Sound: a job refuses `CREATE_BREAKAWAY_FROM_JOB` even when the owner's
//! own job allows breakaway, and a child's own job that allows it lets
//! its grandchild out of that job only, not the group's; nested groups die with the outer one; every
//! short argument of quotes and backslashes, 64 MiB out and 16 MiB in
//! round-trip exactly; a timeout, a close racing starts and a dropped
//! `output` future leave nothing running.
//! Under Wine only (not checked on a real Windows): the breakaway and
//! nested-job semantics are Wine's (nested jobs since Wine 6).
#![cfg(windows)]

use std::io::Write;
use std::time::{Duration, Instant};

use pkit::{Command, ErrorKind, Group};

#[path = "windows_attack2/edges.rs"]
mod edges;
#[path = "windows_attack2/nest.rs"]
mod nest;
#[path = "windows_attack2/races.rs"]
mod races;

/// Env var naming the role a helper process plays.
const ROLE: &str = "PKIT_A2_ROLE";
/// What starts the `flood` helper's output, after the harness's own lines.
const FLOOD_MARK: &[u8] = b"\0FLOOD\0";

/// Not a test: the helper processes' entry point (a no-op in a normal run).
#[test]
fn helper() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    match role.as_str() {
        "sleep" => std::thread::sleep(Duration::from_secs(300)),
        "exit7" => std::process::exit(7),
        "argv" => {
            let mut out = std::io::stdout().lock();
            let all: Vec<String> = std::env::args().collect();
            for a in &all[1 + helper_args().len()..] {
                writeln!(out, "ARG {a:?}").unwrap();
            }
            writeln!(out, "END").unwrap();
        }
        "env" => {
            // Every variable whose name is the one asked for, in any case.
            let want = var("PKIT_A2_NAME");
            let mut out = std::io::stdout().lock();
            for (k, v) in std::env::vars_os() {
                if k.to_string_lossy().eq_ignore_ascii_case(&want) {
                    writeln!(out, "VAR {k:?}={v:?}").unwrap();
                }
            }
            writeln!(out, "END").unwrap();
        }
        "flood" => {
            // The mark, then PKIT_A2_MIB MiB of little-endian u32s
            // counting up from 0: a byte lost, doubled or moved shows.
            let mib: usize = var("PKIT_A2_MIB").parse().unwrap();
            let mut out = std::io::stdout().lock();
            out.write_all(FLOOD_MARK).unwrap();
            let mut block = vec![0u8; 1 << 20];
            for m in 0..mib {
                for (w, chunk) in block.chunks_exact_mut(4).enumerate() {
                    let n = (m * (1 << 18) + w) as u32;
                    chunk.copy_from_slice(&n.to_le_bytes());
                }
                out.write_all(&block).unwrap();
            }
            out.flush().unwrap();
        }
        "stdin_hash" => {
            let mut input = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut input).unwrap();
            println!("LEN {} HASH {:016x}", input.len(), fnv(&input));
        }
        "fan" => {
            // Names itself, starts PKIT_A2_WIDTH children one level down
            // (std's spawn, outside pkit), each doing the same until
            // PKIT_A2_DEPTH is 0, and sleeps.
            println!("PID {}", std::process::id());
            std::io::stdout().flush().unwrap();
            if let Some(dir) = std::env::var_os("PKIT_A2_PIDDIR") {
                let pid = std::process::id().to_string();
                std::fs::write(std::path::Path::new(&dir).join(pid), "").unwrap();
            }
            let depth: u32 = var("PKIT_A2_DEPTH").parse().unwrap();
            let width: u32 = var("PKIT_A2_WIDTH").parse().unwrap();
            let mut kids = Vec::new();
            if depth > 0 {
                for _ in 0..width {
                    let kid = std::process::Command::new(std::env::current_exe().unwrap())
                        .args(helper_args())
                        .env(ROLE, "fan")
                        .env("PKIT_A2_DEPTH", (depth - 1).to_string())
                        .spawn()
                        .expect("spawning the next level");
                    kids.push(kid);
                }
            }
            std::thread::sleep(Duration::from_secs(300));
            for mut k in kids {
                let _ = k.kill();
                let _ = k.wait();
            }
        }
        "leave" => {
            // Leaves a sleeping grandchild holding stdout, and exits.
            let kid = std::process::Command::new(std::env::current_exe().unwrap())
                .args(helper_args())
                .env(ROLE, "sleep")
                .spawn()
                .expect("spawning the grandchild");
            println!("PID {}", kid.id());
            std::io::stdout().flush().unwrap();
            std::process::exit(5);
        }
        "burn" => {
            // About half a second of CPU, then out.
            let start = Instant::now();
            let mut x = 1u64;
            while start.elapsed() < Duration::from_millis(500) {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005) + 1);
                }
            }
        }
        other => nest::helper(other),
    }
}

/// Whether this runs under Wine (ntdll's `wine_get_version` export).
fn is_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
    let name: Vec<u16> = "ntdll.dll\0".encode_utf16().collect();
    // SAFETY: a NUL-terminated name; ntdll is loaded in every process.
    let ntdll = unsafe { GetModuleHandleW(name.as_ptr()) };
    assert!(!ntdll.is_null(), "ntdll is not loaded");
    // SAFETY: a valid module and a NUL-terminated name.
    unsafe { GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()) }.is_some()
}

/// FNV-1a, 64 bits.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
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
/// (ending those left first: only pids this test's trees started).
fn assert_gone(pids: &[u32], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pids.iter().all(|&p| gone(p)) {
        if Instant::now() > deadline {
            let left: Vec<u32> = pids.iter().copied().filter(|&p| !gone(p)).collect();
            for &p in &left {
                let _ = std::process::Command::new("taskkill")
                    .args(["/F", "/PID", &p.to_string()])
                    .output();
            }
            panic!("{what}: still running: {left:?} of {pids:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pids named by `PID n` lines in `text`.
fn named_pids(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| l.split("PID ").nth(1)?.trim().parse().ok())
        .collect()
}

/// Every argument of up to three characters drawn from `a`, space, tab,
/// `"` and `\` (156 of them, the empty one first), and runs of trailing
/// backslashes before and after a quote, reach the child's argv exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_short_argument_of_quotes_and_backslashes_reaches_the_child() {
    let alphabet = ['a', ' ', '\t', '"', '\\'];
    let mut args = vec![String::new()];
    let mut last = vec![String::new()];
    for _ in 0..3 {
        last = last
            .iter()
            .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
            .collect();
        args.extend(last.iter().cloned());
    }
    for n in 1..=9 {
        let run = "\\".repeat(n);
        args.push(format!("x{run}"));
        args.push(format!("{run}\"{run}"));
        args.push(format!("\"{run}"));
    }
    let out = me("argv").args(&args).output().await.unwrap();
    assert!(out.success(), "{:?}", out.outcome());
    let text = out.stdout_str();
    let got: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once("ARG ").map(|(_, a)| a))
        .collect();
    let want: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    for (i, w) in want.iter().enumerate() {
        assert_eq!(
            got.get(i).copied(),
            Some(w.as_str()),
            "argument {i}: {got:?}"
        );
    }
    assert_eq!(got.len(), want.len(), "{text}");
}

/// 64 MiB on stdout is captured whole and in order (a running count, so
/// any byte lost, doubled or moved shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_of_output_are_captured_intact() {
    const MIB: usize = 64;
    let out = me("flood")
        .env("PKIT_A2_MIB", MIB.to_string())
        .output()
        .await
        .unwrap();
    assert!(out.success(), "{:?}", out.outcome());
    let got = out.stdout();
    let at = got
        .windows(FLOOD_MARK.len())
        .position(|w| w == FLOOD_MARK)
        .expect("the helper's mark")
        + FLOOD_MARK.len();
    let body = &got[at..];
    assert!(
        body.len() >= MIB << 20,
        "{} bytes of {}",
        body.len(),
        MIB << 20
    );
    for (i, word) in body[..MIB << 20].chunks_exact(4).enumerate() {
        let n = u32::from_le_bytes(word.try_into().unwrap());
        assert_eq!(n, i as u32, "word {i} (byte {})", i * 4);
    }
}

/// 16 MiB of stdin (every byte value) reach the child whole: its length
/// and hash, as the child reads them, are the ones sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_mib_of_stdin_reach_the_child_whole() {
    let payload: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let want = format!("LEN {} HASH {:016x}", payload.len(), fnv(&payload));
    let out = me("stdin_hash")
        .stdin_bytes(payload)
        .output()
        .await
        .unwrap();
    assert!(out.success(), "{:?}", out.outcome());
    assert!(out.stdout_str().contains(&want), "{}", out.stdout_str());
}

/// A timeout on a tree of 21 processes (the child, 4 children of it, 4
/// grandchildren each, all started by std, outside pkit) leaves none
/// running. The timeout is doubled until every level was up before it
/// fired (a loaded machine starts processes slowly), each round checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_on_a_tree_of_twenty_one_leaves_none() {
    let mut secs = 10;
    loop {
        let out = me("fan")
            .env("PKIT_A2_WIDTH", "4")
            .env("PKIT_A2_DEPTH", "2")
            .timeout(Duration::from_secs(secs))
            .output()
            .await
            .unwrap();
        assert!(out.timed_out(), "{:?}", out.outcome());
        let pids = named_pids(&out.stdout_str());
        assert!(pids.contains(&out.pid()), "{}", out.stdout_str());
        assert_gone(&pids, &format!("the tree after a {secs} s timeout"));
        if pids.len() == 21 {
            return;
        }
        assert!(secs < 300, "only {} of 21 started in {secs} s", pids.len());
        eprintln!(
            "{} of 21 up before a {secs} s timeout: again, longer",
            pids.len()
        );
        secs *= 2;
    }
}

/// Killing a child that has already exited is no error and changes
/// nothing: its own exit code stays its outcome, and its tree and group
/// can be killed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_child_that_already_exited_is_harmless() {
    let group = Group::new().unwrap();
    let mut p = group.start(&me("exit7")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !p.has_exited() {
        assert!(Instant::now() < deadline, "exit7 never exited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.kill().unwrap();
    p.kill_tree().unwrap();
    p.kill().unwrap();
    group.kill().unwrap();
    let out = p.wait().await.unwrap();
    assert_eq!(out.code(), Some(7), "{:?}", out.outcome());
    p.kill().unwrap();
    group.close().await.unwrap();
}

/// A directory, or a file that is no program, named as the program is
/// `NotExecutable` (what the error's documentation says of "not a regular
/// file, a bad executable format"), by path or by name, through `output`
/// and `Group::start` alike; nothing is started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_or_a_non_program_is_not_executable() {
    let dir = std::env::temp_dir().join(format!("pkit-att18-{}", std::process::id()));
    let sub = dir.join("adir.exe");
    std::fs::create_dir_all(&sub).unwrap();
    let text = dir.join("text.exe");
    std::fs::write(&text, "not a program\r\n").unwrap();
    let path_var = std::env::join_paths([&dir]).unwrap();
    for (cmd, what) in [
        (Command::new(&dir), "a directory by path"),
        (Command::new(&sub), "a directory named .exe by path"),
        (Command::new(&text), "a text file named .exe by path"),
        (
            Command::new("text").env("PATH", &path_var),
            "a text file by name",
        ),
    ] {
        let e = cmd.output().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotExecutable, "{what}: {e:?}");
        let group = Group::new().unwrap();
        let e = group.start(&cmd).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotExecutable, "{what}: {e:?}");
        assert!(group.pids().unwrap().is_empty(), "{what}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `.bat` and a `.cmd` file run through cmd.exe (as documented): their
/// output is captured and their `exit /b` code is the outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_files_run_with_their_exit_code() {
    let dir = std::env::temp_dir().join(format!("pkit-att18-bat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for ext in ["bat", "cmd"] {
        let file = dir.join(format!("code3.{ext}"));
        std::fs::write(&file, "@echo off\r\necho RAN %~1\r\nexit /b 3\r\n").unwrap();
        let out = Command::new(&file).arg("two words").output().await.unwrap();
        assert_eq!(out.code(), Some(3), "{ext}: {out:?}");
        assert!(out.stdout_str().contains("RAN two words"), "{ext}: {out:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Windows' variable names have no case: a name set in another case than
/// the inherited one replaces it (the child sees it once, with the new
/// value), and one removed in another case is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_names_in_another_case_are_the_same_variable() {
    std::env::set_var("PKIT_A2_CASED", "inherited");
    let vars = |out: &pkit::Output| -> Vec<String> {
        let text = out.stdout_str();
        assert!(text.lines().any(|l| l.ends_with("END")), "{text}");
        text.lines()
            .filter_map(|l| l.split_once("VAR ").map(|(_, v)| v))
            .map(str::to_string)
            .collect()
    };
    let env = |cmd: Command| cmd.env("PKIT_A2_NAME", "pkit_a2_cased");
    let out = env(me("env")).output().await.unwrap();
    assert_eq!(
        vars(&out),
        ["\"PKIT_A2_CASED\"=\"inherited\""],
        "{}",
        out.stdout_str()
    );
    let out = env(me("env").env("pkit_a2_Cased", "set"))
        .output()
        .await
        .unwrap();
    let got = vars(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].ends_with("=\"set\""), "{got:?}");
    let out = env(me("env").env_remove("Pkit_A2_cased"))
        .output()
        .await
        .unwrap();
    assert_eq!(vars(&out), Vec::<String>::new());
}
