//! Attack round dec06 (the library embedded in a program with process-wide
//! state of its own): each case changes something of the whole process,
//! so each runs in a fresh copy of this test binary (the `inner` test,
//! which does nothing unless `PKIT_DEC06B` names the case), in every
//! mechanism this run tests.

mod common;

use std::time::Duration;

use common::{assert_gone, mechanisms, sh, TempPath, DEADLINE, POLL};
use pkit::{Group, MechanismChoice};

/// Names the case a re-run of this binary runs.
const CASE: &str = "PKIT_DEC06B";

/// Runs `case` in a fresh copy of this binary; panics unless it says it
/// finished. It may take at most two minutes (a hang fails).
fn rerun(case: &str) {
    common::in_suite("rerun", || {
        let exe = std::env::current_exe().expect("test binary");
        let out = TempPath::new("dec06b-out");
        let file = std::fs::File::create(out.path()).expect("output file");
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "inner", "--nocapture", "--test-threads=1"])
            .env(CASE, case)
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .spawn()
            .expect("re-run the test binary");
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(POLL);
        };
        let text = std::fs::read_to_string(out.path()).unwrap_or_default();
        assert!(
            status.is_some_and(|s| s.success()) && text.contains("INNER-DONE"),
            "case {case}: {status:?} (None: still running after 120 s, killed)\n{text}"
        );
    });
}

#[test]
fn inner() {
    let Ok(case) = std::env::var(CASE) else {
        return;
    };
    match case.as_str() {
        "subreaper" => subreaper(false),
        "reaping-subreaper" => subreaper(true),
        "closed-before-runtime" => closed_stdio(Closed::BeforeRuntime),
        "closed-before-pkit" => closed_stdio(Closed::BeforePkit),
        "closed-after-runs" => closed_stdio(Closed::AfterFirstRuns),
        "signals" => signals(),
        "interrupted" => interrupted(),
        other => panic!("unknown case {other}"),
    }
    // On the kept stderr where fds 0-2 were closed.
    match REPORT.load(std::sync::atomic::Ordering::Relaxed) {
        -1 => eprintln!("INNER-DONE"),
        _ => report("INNER-DONE\n"),
    }
    // Not back to the harness: its summary would go to a descriptor 1 that
    // may be pkit's own now (the closed-stdio cases).
    std::process::exit(0);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// `waitpid(pid, 0)`: the raw status, or the error.
fn waitpid(pid: u32) -> std::io::Result<i32> {
    let mut status = 0;
    // SAFETY: waitpid(2) writes one int.
    let rc = unsafe { libc::waitpid(pid as i32, &mut status, 0) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(status)
}

/// Polls until `pid`'s parent is this process.
async fn adopted(pid: u32, what: &str) {
    let me = std::process::id();
    let deadline = std::time::Instant::now() + DEADLINE;
    while common::stat(pid).map(|s| s.ppid) != Some(me) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {pid} never re-parented to this subreaper: {:?}",
            common::stat(pid)
        );
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------
// A subreaper owner
// ---------------------------------------------------------------------------

#[test]
fn a_subreaper_owner_ends_its_groups_and_keeps_its_own_children() {
    rerun("subreaper");
}

#[test]
fn a_subreaper_owner_that_reaps_every_child() {
    rerun("reaping-subreaper");
}

/// This process is made a child subreaper: the grandchildren its groups'
/// programs leave behind are re-parented to it. A group's end (close, a
/// verb's end, a timeout) still kills them and returns; pkit does not reap
/// them (they are the application's, as its `std::process` children are),
/// and a `std::process::Child` started before and after still waits.
/// `reaping`: a thread of the application's reaps every child of the
/// process as it ends (`waitpid(-1)`, as an init or a supervisor does),
/// pkit's own included: outcomes still come back, right, and nothing
/// hangs.
fn subreaper(reaping: bool) {
    // SAFETY: prctl(2) with plain numbers, in this fresh process.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER");
    if reaping {
        std::thread::spawn(|| loop {
            let mut status = 0;
            // SAFETY: waitpid(2) writes one int.
            if unsafe { libc::waitpid(-1, &mut status, 0) } < 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
    }
    let mut before = std::process::Command::new("sh")
        .args(["-c", "sleep 1; exit 7"])
        .spawn()
        .expect("std child");
    runtime().block_on(async {
        for choice in mechanisms() {
            subreaper_start(choice, reaping).await;
            subreaper_verbs(choice, reaping).await;
        }
    });
    if reaping {
        // Taken by the reaping thread already, most likely (ECHILD then).
        let _ = before.wait();
        return;
    }
    assert_eq!(before.wait().expect("std wait").code(), Some(7));
    let after = std::process::Command::new("sh")
        .args(["-c", "exit 9"])
        .status()
        .expect("std status");
    assert_eq!(after.code(), Some(9));
    // No child is left but the owner-death guard, which a subreaper
    // inherits when its launcher exits (`sys/guard/start.rs`).
    let left: Vec<_> = common::own_children()
        .into_iter()
        .filter(|(p, _)| common::comm(*p).as_deref() != Some("pkit-guard"))
        .collect();
    assert!(left.is_empty(), "left: {left:?}");
}

/// `result`, a run's or a wait's (at most [`DEADLINE`]): its output, or
/// `None` where the application reaped the child first and the backend
/// has no other source of its exit status (the portable one: its error
/// says so, documented on `sys/unix/child.rs`'s `reaped_elsewhere`).
async fn settle(
    choice: MechanismChoice,
    reaping: bool,
    run: impl std::future::Future<Output = pkit::Result<pkit::Output>>,
    what: &str,
) -> Option<pkit::Output> {
    let result = tokio::time::timeout(DEADLINE, run)
        .await
        .unwrap_or_else(|_| panic!("{choice}: {what} hangs"));
    match result {
        Ok(out) => Some(out),
        Err(e)
            if reaping
                && choice == MechanismChoice::Portable
                && e.to_string()
                    .contains("reaped before pkit could read its exit status") =>
        {
            None
        }
        Err(e) => panic!("{choice}: {what}: {e}"),
    }
}

/// A started program leaves a `sleep` behind and exits: the `sleep` is
/// re-parented to us; the group's close kills it and returns.
async fn subreaper_start(choice: MechanismChoice, reaping: bool) {
    let g = common::group(choice);
    let file = TempPath::new("subreaper");
    let mut p = g
        .start(&pkit::Command::new("sh").args([
            "-c",
            "sleep 300 & echo $! > \"$1\"; echo done >> \"$1\"",
            "sh",
            file.as_str(),
        ]))
        .unwrap_or_else(|e| panic!("{choice}: start: {e}"));
    let pids = file.wait_pids().await;
    if let Some(out) = settle(choice, reaping, p.wait(), "wait").await {
        assert_eq!(out.code(), Some(0), "{choice}");
    }
    adopted(pids[0], &format!("{choice}: start")).await;
    drop(p);
    tokio::time::timeout(DEADLINE * 3, g.close())
        .await
        .unwrap_or_else(|_| panic!("{choice}: close hangs with an adopted grandchild"))
        .unwrap_or_else(|e| panic!("{choice}: close: {e}"));
    assert_gone(&pids, &format!("{choice}: closed")).await;
    if !reaping {
        let status = waitpid(pids[0]).unwrap_or_else(|e| panic!("{choice}: our waitpid: {e}"));
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
            "{choice}: {status:#x}"
        );
    }
}

/// The verbs, with a grandchild that outlives the main process; exit
/// codes, with an application that may reap pkit's children before pkit.
async fn subreaper_verbs(choice: MechanismChoice, reaping: bool) {
    for code in 0..20 {
        let cmd = sh(choice, "exit $1").arg(code.to_string());
        if let Some(out) = settle(choice, reaping, cmd.output(), "output").await {
            assert_eq!(out.code(), Some(code), "{choice}: {out:?}");
        }
        let g = common::group(choice);
        let mut p = g.start(&cmd).expect("start");
        if let Some(out) = settle(choice, reaping, p.wait(), "wait").await {
            assert_eq!(out.code(), Some(code), "{choice}: {out:?}");
        }
        drop(p);
        g.close().await.expect("close");
    }
    let file = TempPath::new("subreaper-output");
    let cmd = sh(choice, "sleep 300 & echo $! > \"$1\"; echo done >> \"$1\"").arg(file.as_str());
    if let Some(out) = settle(choice, reaping, cmd.output(), "output").await {
        assert_eq!(out.code(), Some(0), "{choice}: {out:?}");
    }
    let pid = file.wait_pids().await[0];
    assert_gone(&[pid], &format!("{choice}: output's grandchild")).await;
    if !reaping {
        let status = waitpid(pid).unwrap_or_else(|e| panic!("{choice}: our waitpid: {e}"));
        assert!(libc::WIFSIGNALED(status), "{choice}: {status:#x}");
    }

    let file = TempPath::new("subreaper-timeout");
    let cmd = sh(
        choice,
        "sleep 300 & echo $! > \"$1\"; echo done >> \"$1\"; exec sleep 300",
    )
    .arg(file.as_str())
    .timeout(Duration::from_millis(300));
    if let Some(out) = settle(choice, reaping, cmd.output(), "timeout").await {
        assert!(out.timed_out(), "{choice}: {out:?}");
    }
    let pids = file.wait_pids().await;
    assert_gone(&pids, &format!("{choice}: timed out")).await;
    // Killed with the main process, it may have been re-parented to us and
    // left a zombie for us to reap, or not (the kill came first).
    if !reaping {
        let _ = waitpid(pids[0]);
    }
}

// ---------------------------------------------------------------------------
// An owner whose fds 0, 1 and 2 are closed
// ---------------------------------------------------------------------------

#[test]
fn an_owner_without_stdio_gives_each_child_exactly_its_own() {
    rerun("closed-before-runtime");
    rerun("closed-before-pkit");
    rerun("closed-after-runs");
}

/// The original stderr, kept above the stdio numbers for this case's
/// messages once fds 0-2 are closed (-1 before).
static REPORT: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Writes `text` to the kept stderr.
fn report(text: &str) {
    let fd = REPORT.load(std::sync::atomic::Ordering::Relaxed);
    // SAFETY: write(2) of our own bytes to a descriptor we keep open.
    unsafe { libc::write(fd, text.as_ptr().cast(), text.len()) };
}

/// When a daemon's fds 0, 1 and 2 are closed.
#[derive(Clone, Copy, PartialEq)]
enum Closed {
    /// Before the runtime is made: its epoll set, eventfd and signal
    /// socket land on 0-2.
    BeforeRuntime,
    /// After, before pkit's first use: pkit's lasting descriptors (the
    /// guard's socket, `/proc`, `/dev/null`, a spare cgroup's directory)
    /// land there.
    BeforePkit,
    /// After a first run of each mechanism: each spawn's own pipes,
    /// pidfds and cgroup files land there.
    AfterFirstRuns,
}

/// A daemon's start: fds 0, 1 and 2 closed (`when`). Each child gets
/// exactly its stdio: what it was given on the streams it was given,
/// nothing on those inherited from a closed descriptor, nothing else.
fn closed_stdio(when: Closed) {
    // SAFETY: fcntl(2) duplicating our own stderr.
    let kept = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 100) };
    assert!(kept >= 100, "dup stderr");
    REPORT.store(kept, std::sync::atomic::Ordering::Relaxed);
    std::panic::set_hook(Box::new(|info| report(&format!("{info}\n"))));
    let close_stdio = || {
        for fd in 0..3 {
            // SAFETY: close(2) of the standard descriptors, which nothing in
            // this process holds as an owned descriptor.
            unsafe { libc::close(fd) };
        }
    };
    if when == Closed::BeforeRuntime {
        close_stdio();
    }
    let rt = runtime();
    if when == Closed::AfterFirstRuns {
        rt.block_on(async {
            for choice in mechanisms() {
                let out = sh(choice, "echo warm").output().await.expect("warm-up");
                assert_eq!(out.stdout_str(), "warm\n");
            }
        });
    }
    if when != Closed::BeforeRuntime {
        close_stdio();
    }
    rt.block_on(async {
        for choice in mechanisms() {
            stdio_cases(choice).await;
        }
    });
    // What holds 0-2 now, for a reader of a failure.
    for fd in 0..3 {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}"));
        report(&format!("fd {fd}: {link:?}\n"));
    }
    drop(rt);
    // The blocking facade (its direct one-shot path on Linux).
    for choice in mechanisms() {
        let out = sh(choice, "cat; echo err >&2")
            .stdin_str("in\n")
            .blocking()
            .output()
            .unwrap_or_else(|e| panic!("{choice}: blocking output: {e}"));
        assert_eq!(
            (out.stdout_str().as_ref(), out.stderr_str().as_ref()),
            ("in\n", "err\n"),
            "{choice}: blocking"
        );
    }
}

/// `pid`'s descriptors, by number, once it sleeps in `sleep` (its `exec`
/// done, and its start-up: with fd 0 closed, its C library's first
/// `open`s land there for a moment).
async fn fds_of(pid: u32, what: &str) -> Vec<(u32, String)> {
    let deadline = std::time::Instant::now() + DEADLINE;
    let asleep = || {
        common::comm(pid).as_deref() == Some("sleep")
            && std::fs::read_to_string(format!("/proc/{pid}/wchan"))
                .is_ok_and(|w| w.contains("nanosleep"))
    };
    while !asleep() {
        assert!(std::time::Instant::now() < deadline, "{what}: no exec");
        tokio::time::sleep(POLL).await;
    }
    let mut fds: Vec<(u32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
        .map(|e| {
            let n = e.file_name().to_string_lossy().parse().expect("fd number");
            let t = std::fs::read_link(e.path()).unwrap_or_default();
            (n, t.to_string_lossy().into_owned())
        })
        .collect();
    fds.sort();
    fds
}

/// A `sleep 300` started in `g` with `cmd`'s stdio has exactly: 0 a target
/// starting with `stdin` (`pipe:` for any pipe), 1 and 2 two different
/// pipes (or `/dev/null` for `null_out`), nothing else; `None` for
/// `stdin`: no descriptor at all (everything inherited from closed ones).
async fn assert_fds(
    g: &Group,
    cmd: pkit::Command,
    stdin: Option<&str>,
    null_out: bool,
    what: &str,
) {
    let p = g
        .start(&cmd.arg("300"))
        .unwrap_or_else(|e| panic!("{what}: start: {e}"));
    let fds = fds_of(p.pid(), what).await;
    p.kill_tree().expect("kill");
    drop(p);
    let Some(stdin) = stdin else {
        assert!(fds.is_empty(), "{what}: inherited closed stdio: {fds:?}");
        return;
    };
    let targets: Vec<&str> = fds.iter().map(|(_, t)| t.as_str()).collect();
    let numbers: Vec<u32> = fds.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [0, 1, 2], "{what}: {fds:?}");
    assert!(targets[0].starts_with(stdin), "{what}: stdin: {fds:?}");
    if null_out {
        assert_eq!(targets[1..], ["/dev/null"; 2], "{what}: {fds:?}");
    } else {
        assert!(
            targets[1].starts_with("pipe:")
                && targets[2].starts_with("pipe:")
                && targets[1] != targets[2]
                && targets[1] != targets[0],
            "{what}: {fds:?}"
        );
    }
}

async fn stdio_cases(choice: MechanismChoice) {
    // Captured stdout and stderr, bytes on stdin.
    let out = sh(choice, "cat; echo out; echo err >&2")
        .stdin_str("in\n")
        .output()
        .await
        .unwrap_or_else(|e| panic!("{choice}: output: {e}"));
    assert_eq!(
        (out.stdout_str().as_ref(), out.stderr_str().as_ref()),
        ("in\nout\n", "err\n"),
        "{choice}"
    );
    // The child's descriptors: its stdin (`/dev/null` by default, a pipe
    // for bytes or piped), its two pipes or `/dev/null`, nothing else.
    // Inherited from closed descriptors: none there (what this process
    // holds at 0-2 now, if anything, is pkit's or the runtime's own).
    let g = common::group(choice);
    let sleep = || pkit::Command::new("sleep");
    assert_fds(
        &g,
        sleep(),
        Some("/dev/null"),
        false,
        &format!("{choice}: default"),
    )
    .await;
    assert_fds(
        &g,
        sleep().stdin_piped(),
        Some("pipe:"),
        false,
        &format!("{choice}: piped"),
    )
    .await;
    assert_fds(
        &g,
        sleep().stdin_str("x"),
        Some("pipe:"),
        false,
        &format!("{choice}: bytes"),
    )
    .await;
    let nulls = sleep().stdout(pkit::Stdio::Null).stderr(pkit::Stdio::Null);
    assert_fds(
        &g,
        nulls,
        Some("/dev/null"),
        true,
        &format!("{choice}: null"),
    )
    .await;
    let raw = sleep().stdout(pkit::Stdio::Raw).stderr(pkit::Stdio::Raw);
    assert_fds(&g, raw, Some("/dev/null"), false, &format!("{choice}: raw")).await;
    let inherit = sleep()
        .stdin_inherit()
        .stdout(pkit::Stdio::Inherit)
        .stderr(pkit::Stdio::Inherit);
    assert_fds(&g, inherit, None, false, &format!("{choice}: inherit")).await;
    // A started process: stdin piped, stdout raw, stderr captured.
    let mut p = g
        .start(
            &pkit::Command::new("sh")
                .args(["-c", "cat; echo err >&2"])
                .stdin_piped()
                .stdout(pkit::Stdio::Raw),
        )
        .unwrap_or_else(|e| panic!("{choice}: start: {e}"));
    let mut stdout = p.take_stdout().expect("raw stdout");
    let mut stdin = p.take_stdin().expect("stdin");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stdin.write_all(b"typed\n").await.expect("write");
    drop(stdin);
    let mut got = String::new();
    stdout.read_to_string(&mut got).await.expect("read");
    let out = p.wait().await.expect("wait");
    assert_eq!(
        (got.as_str(), out.stderr_str().as_ref(), out.code()),
        ("typed\n", "err\n", Some(0)),
        "{choice}: started"
    );
    // A pty: its three stdio are the terminal.
    let out = sh(choice, "tty; readlink /proc/$$/fd/1 /proc/$$/fd/2")
        .pty(24, 80)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{choice}: pty: {e}"));
    let text = String::from_utf8_lossy(out.stdout()).replace('\r', "");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.len() == 3 && lines[0].starts_with("/dev/pts/") && lines[1..] == [lines[0]; 2],
        "{choice}: pty: {text:?}"
    );
    // A pipeline.
    let out = pkit::Pipe::new([
        sh(choice, "echo one; echo e1 >&2"),
        sh(choice, "tr a-z A-Z; echo e2 >&2"),
    ])
    .output()
    .await
    .unwrap_or_else(|e| panic!("{choice}: pipe: {e}"));
    assert_eq!(out.stdout_str(), "ONE\n", "{choice}: pipe {out:?}");
    g.close().await.expect("close");
}

// ---------------------------------------------------------------------------
// An owner that blocks every signal and ignores some
// ---------------------------------------------------------------------------

#[test]
fn an_owner_blocking_and_ignoring_signals() {
    rerun("signals");
}

extern "C" fn noop(_: libc::c_int) {}

/// The `SigBlk` and `SigIgn` lines of a child's `/proc/self/status` (its
/// handlers are its own: `exec` reset them all).
const SIGNAL_LINES: &str = "exec grep -E '^Sig(Blk|Ign)' /proc/self/status";

/// Every signal blocked in every thread (blocked in the main thread before
/// any other is made, as a program that takes signals through `signalfd`
/// or `sigwait` does), SIGINT, SIGQUIT, SIGHUP, SIGTERM, SIGPIPE and
/// SIGUSR1 ignored, SIGUSR2 caught. Each child starts with no signal
/// blocked and what `std::process::Command` gives: the ignores kept (the
/// `nohup` convention) but SIGPIPE's, no handler. Exits, signal deaths,
/// timeouts and kills still come back.
fn signals() {
    // SAFETY: sigaction(2) and pthread_sigmask(3) on zeroed and filled
    // sets, in this fresh process before any other thread of it.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_IGN;
        for sig in [
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGHUP,
            libc::SIGTERM,
            libc::SIGPIPE,
            libc::SIGUSR1,
        ] {
            assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0);
        }
        sa.sa_sigaction = noop as *const () as usize;
        assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut()),
            0
        );
    }
    // What std gives for the ignores (since Rust 1.66 std leaves the
    // mask as it is, where pkit empties it, as `sys/linux/spawn.rs` says).
    let std_out = std::process::Command::new("grep")
        .args(["-E", "^SigIgn", "/proc/self/status"])
        .output()
        .expect("std");
    let std_ign = String::from_utf8_lossy(&std_out.stdout).into_owned();
    let std_ign =
        u64::from_str_radix(std_ign.trim().trim_start_matches("SigIgn:\t"), 16).expect("SigIgn");
    // HUP, INT, QUIT, USR1 and TERM (1, 2, 3, 10, 15), not PIPE (13).
    assert_eq!(std_ign & 0x7fff_ffff, 0x4207, "std");
    let expected = "SigBlk:\t0000000000000000\nSigIgn:\t0000000000004207\n";
    runtime().block_on(async {
        for choice in mechanisms() {
            let out = sh(choice, SIGNAL_LINES)
                .output()
                .await
                .unwrap_or_else(|e| panic!("{choice}: {e}"));
            assert_eq!(out.stdout_str(), expected, "{choice}: output");
            let g = common::group(choice);
            let mut p = g.start(&sh(choice, SIGNAL_LINES)).expect("start");
            let out = tokio::time::timeout(DEADLINE, p.wait())
                .await
                .unwrap_or_else(|_| panic!("{choice}: wait hangs"))
                .expect("wait");
            assert_eq!(out.stdout_str(), expected, "{choice}: start");
            let out = sh(choice, SIGNAL_LINES)
                .pty(24, 80)
                .output()
                .await
                .expect("pty");
            assert_eq!(
                String::from_utf8_lossy(out.stdout()).replace('\r', ""),
                expected,
                "{choice}: pty"
            );
            // Outcomes.
            let out = tokio::time::timeout(DEADLINE, sh(choice, "exit 3").output())
                .await
                .unwrap_or_else(|_| panic!("{choice}: exit hangs"))
                .expect("exit");
            assert_eq!(out.code(), Some(3), "{choice}");
            let out = tokio::time::timeout(DEADLINE, sh(choice, "kill -9 $$").output())
                .await
                .unwrap_or_else(|_| panic!("{choice}: kill hangs"))
                .expect("kill");
            assert_eq!(out.signal(), Some(9), "{choice}");
            let out = tokio::time::timeout(
                DEADLINE,
                sh(choice, "exec sleep 300")
                    .timeout(Duration::from_millis(200))
                    .output(),
            )
            .await
            .unwrap_or_else(|_| panic!("{choice}: timeout hangs"))
            .expect("timeout");
            assert!(out.timed_out(), "{choice}: {out:?}");
            let mut p = g
                .start(&pkit::Command::new("sleep").arg("300"))
                .expect("start");
            let pid = p.pid();
            g.kill().expect("kill");
            let out = tokio::time::timeout(DEADLINE, p.wait())
                .await
                .unwrap_or_else(|_| panic!("{choice}: killed wait hangs"))
                .expect("wait");
            assert_eq!(out.signal(), Some(9), "{choice}");
            assert_gone(&[pid], &format!("{choice}: killed")).await;
            g.close().await.expect("close");
        }
    });
    for choice in mechanisms() {
        let out = sh(choice, SIGNAL_LINES)
            .blocking()
            .output()
            .expect("blocking");
        assert_eq!(out.stdout_str(), expected, "{choice}: blocking");
    }
}

// ---------------------------------------------------------------------------
// An owner whose system calls are interrupted all the time
// ---------------------------------------------------------------------------

#[test]
fn an_owner_whose_calls_are_interrupted_all_the_time() {
    rerun("interrupted");
}

/// SIGALRM caught by a handler installed without `SA_RESTART` (as a
/// program that uses `alarm` for its own time-outs may), and an interval
/// timer firing it every 200 µs from before pkit's first use: any system
/// call pkit makes that blocks (a read or write of a pipe or socket, a
/// `waitid`, a `poll`, the guard's start) fails with EINTR when the signal
/// lands in it. Everything still works, in every mechanism, async and
/// blocking.
fn interrupted() {
    // SAFETY: sigaction(2) with a handler that does nothing, and
    // setitimer(2), in this fresh process.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = noop as *const () as usize;
        sa.sa_flags = 0; // no SA_RESTART
        assert_eq!(libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut()), 0);
        let every = libc::timeval {
            tv_sec: 0,
            tv_usec: 200,
        };
        let timer = libc::itimerval {
            it_interval: every,
            it_value: every,
        };
        assert_eq!(
            libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()),
            0
        );
    }
    // The blocking facade first: the guard and the internal runtime are
    // made under the storm.
    for choice in mechanisms() {
        for i in 0..20 {
            let out = sh(
                choice,
                "cat; head -c 300000 /dev/zero; echo err >&2; exit 5",
            )
            .stdin_bytes(vec![b'x'; 200_000])
            .blocking()
            .output()
            .unwrap_or_else(|e| panic!("{choice} #{i}: blocking output: {e}"));
            assert_eq!(
                (out.code(), out.stdout().len(), out.stderr_str().as_ref()),
                (Some(5), 500_000, "err\n"),
                "{choice} #{i}: blocking"
            );
        }
    }
    runtime().block_on(async {
        for choice in mechanisms() {
            for i in 0..20 {
                let out = sh(choice, "cat; echo err >&2; exit 3")
                    .stdin_bytes(vec![b'y'; 200_000])
                    .output()
                    .await
                    .unwrap_or_else(|e| panic!("{choice} #{i}: output: {e}"));
                assert_eq!(
                    (out.code(), out.stdout().len(), out.stderr_str().as_ref()),
                    (Some(3), 200_000, "err\n"),
                    "{choice} #{i}"
                );
            }
            let g = common::group(choice);
            let file = TempPath::new("interrupted");
            let mut tree = g
                .start(&sh(
                    choice,
                    "sleep 300 & echo $! > \"$1\"; sleep 300 & echo $! >> \"$1\"; echo done >> \"$1\"; wait",
                ).arg(file.as_str()))
                .expect("start");
            let pids = file.wait_pids().await;
            let mut p = g.start(&sh(choice, "exit 6")).expect("start");
            assert_eq!(p.wait().await.expect("wait").code(), Some(6), "{choice}");
            let out = sh(choice, "exec sleep 300")
                .timeout(Duration::from_millis(200))
                .output()
                .await
                .expect("timeout");
            assert!(out.timed_out(), "{choice}: {out:?}");
            let out = sh(choice, "printf 'a\\nb\\n'")
                .pty(24, 80)
                .output()
                .await
                .unwrap_or_else(|e| panic!("{choice}: pty: {e}"));
            assert_eq!(String::from_utf8_lossy(out.stdout()), "a\r\nb\r\n", "{choice}");
            let out = pkit::Pipe::new([sh(choice, "seq 1 1000"), sh(choice, "wc -l")])
                .output()
                .await
                .unwrap_or_else(|e| panic!("{choice}: pipe: {e}"));
            assert_eq!(out.stdout_str().trim(), "1000", "{choice}");
            g.close().await.unwrap_or_else(|e| panic!("{choice}: close: {e}"));
            assert_gone(&pids, &format!("{choice}: closed")).await;
            let out = tree.wait().await.expect("wait");
            assert!(!out.success(), "{choice}: {out:?}");
        }
    });
}
