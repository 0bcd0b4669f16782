//! rv45: a hostile review of the ninth session's merges (library half:
//! owed3's exit watch, perf21's pooled environment block, phdr's program
//! headers, enotdir's kept descriptors). Findings are `#[ignore = "rv45
//! SEVERITY: ..."]` tests that fail on the merged main (60cfffb); the rest
//! are probes that held. Run in the three passes (unset,
//! `PKIT_MECHANISM=pgroup`, `PKIT_MECHANISM=portable`); the forked-copy
//! cases use a process-group group whatever the pass.
//!
//! Findings (each failed in every pass, every run: 2 × 3 passes at load
//! 13-18, and the single case runs while fixing; the late reader's, before
//! its shell waited to be told to exit, passed 2 of 9 runs in the pgroup
//! pass, the exit seen before the caller blocked: now told, 9 of 9):
//! - MEDIUM, fixed (the pipe's identity noted when the maker made it)
//!   [`a_copys_own_descriptors_survive_its_first_group`] (the
//!   enotdir class, in `sys/linux/reaper.rs`, older than enotdir): a
//!   forked copy lets go of its maker's reaper wake pipe "where it still
//!   names the pipe", but the pipe's identity is read from the write end's
//!   number *in the copy* (`file_id(wake_tx)`), so the check holds for
//!   whatever the copy has there now. A copy that closed what it inherited
//!   (`close_range(3, ~0)` after `fork`, as a daemon does) and then made
//!   descriptors of its own has those on the pipe's two numbers closed by
//!   its first process-group group when both are anonymous-inode files
//!   (epoll, eventfd, timerfd, signalfd, pidfd before pidfs: one inode):
//!   here its eventfds; with its tokio runtime there instead (the natural
//!   case: a runtime built after the close), the runtime's epoll instance
//!   and waker eventfd are closed and the copy panics in tokio
//!   ("unexpected error when polling the I/O driver: Invalid argument").
//!   Reproduce: a helper makes a process-group group (no runtime yet),
//!   forks; the copy closes fds 3..4096, makes eventfds on 3..39, makes a
//!   group and runs `true`: eventfds on the maker's pipe numbers (4, 5)
//!   are closed.
//! - LOW, fixed (pkit's opens of `/proc` bear `O_NONBLOCK`, a mark the
//!   copy checks; a copy's own `/proc` opened with `O_NONBLOCK` is still
//!   taken for the inherited one)
//!   [`a_copys_own_proc_is_not_closed_by_its_first_group`] (enotdir's
//!   `procfs::let_go`): the same copy with `/proc` opened for itself (a
//!   library's cached `/proc`) on its maker's kept `/proc` number has it
//!   closed by its first process-group group: every open of `/proc` names
//!   the same file, so "closed only where it still names the inherited
//!   file" can't tell the copy's own.
//! - LOW, not fixed (documented: `events` now says the pump must have
//!   seen the exit; a fix needs the exit's mark taken off the runtime)
//!   [`a_late_reader_does_not_cut_a_descendants_line`] (owed3): the
//!   reader marks the exit where it *sees* it, with what the pipe holds
//!   then, not at the exit. A reader that sees it late (here the caller's
//!   current-thread runtime, blocked by the caller's own work; under load
//!   the same window is the runtime's scheduling delay) counts a
//!   descendant's half line written after the exit as the process's and
//!   cuts it: `sh -c 'echo first; (…; printf hel; …; printf "lo\n") &
//!   exit 0'` (the shell exits when told), the runtime blocked from
//!   after `first` until the shell exited and `hel` was written: `wait_for_line(starts_with("hel"))` is
//!   told `hel`, the stream then `lo`, against `events`' "A line a
//!   descendant writes after the exit is never cut by the pump, however
//!   often and whenever the stream or `wait_for_line` looks".
//!
//! Probes that held (every pass): perf21's pooled buffers carry no
//! previous run's entries (exact environments larger and smaller in turn,
//! none, the inherited one with a variable added, one of 300 KiB over the
//! pool's limit, then small again; 16 tasks × 4 runs at once on 4 worker
//! threads, sizes on both sides of the limit, each child's environment
//! exactly its own); phdr: this test binary run through
//! `/lib64/ld-linux-x86-64.so.2` is told to have been (a umask run on a
//! portable group is refused, "started by running its dynamic loader"),
//! and run directly the trampoline works (`umask` prints `0027`); owed3:
//! `wait_for_line` racing the exit of a process that leaves a partial
//! line on each stream while a quiet child holds both pipes gets both
//! lines at once (8 runs at once per mechanism).
//!
//! Read, not run: perf21's `SPARE` is only `try_lock`ed (a copy forked
//! while a thread held it allocates afresh); the builder keeps offsets
//! until `finish` (a reused buffer's growth moves no pointer); a refused
//! block (NUL byte) drops a builder, no `EnvBlock`: nothing half-filled.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, MechanismChoice};

const SUITE: &str = "review_rv45";

/// Generous: the machine runs at load 15.
const LONG: Duration = Duration::from_secs(60);

/// A marker file's path for this test, this pass and `what`.
fn marker(test: &str, choice: MechanismChoice, what: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "pkit-rv45-{test}-{}-{choice}-{what}",
        std::process::id()
    ))
}

/// Removes the marker files on drop (a failed assertion too).
struct Markers(Vec<PathBuf>);

impl Drop for Markers {
    fn drop(&mut self) {
        for m in &self.0 {
            let _ = std::fs::remove_file(m);
        }
    }
}

/// A shell loop that waits for `path` to exist.
fn wait_for(path: &Path) -> String {
    format!("while [ ! -e '{}' ]; do sleep 0.02; done", path.display())
}

/// Polls `cond` until it holds (up to [`LONG`]), blocking the thread.
fn blocked_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + LONG;
    while !cond() {
        assert!(Instant::now() < end, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every line still to come on `p`'s line stream, each within [`LONG`].
async fn rest_of_lines(p: &mut pkit::RunningProcess) -> Vec<String> {
    let mut lines = p.lines();
    let mut rest = vec![];
    while let Ok(Some(l)) = tokio::time::timeout(LONG, lines.next_line()).await {
        rest.push(l.text);
    }
    rest
}

/// A current-thread runtime, as an application builds it.
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// owed3 promises (`RunningProcess::events`): "A line a descendant writes
/// after the exit is never cut by the pump, however often and whenever
/// the stream or `wait_for_line` looks." The reader marks the exit where
/// it *sees* it (its exit watch, or the first ask), with what the pipe
/// holds then: a reader that sees it late (its runtime busy: here the
/// caller's current-thread runtime, blocked by the caller's own work,
/// as a slow reader is) counts a descendant's half line written after the
/// exit as the process's, and cuts it.
#[test]
#[ignore = "rv45 LOW: a reader that sees the exit late cuts a descendant's half line written after it"]
fn a_late_reader_does_not_cut_a_descendants_line() {
    current_thread().block_on(async {
        let suite = begin(SUITE).await;
        for choice in mechanisms() {
            let [go0, go1, wrote, go2] =
                ["go0", "go1", "wrote", "go2"].map(|w| marker("late", choice, w));
            let _markers = Markers(vec![go0.clone(), go1.clone(), wrote.clone(), go2.clone()]);
            // The shell exits only once told (the runtime blocked by then).
            let script = format!(
                "echo first; ({w1}; printf hel; : > '{wrote}'; {w2}; printf 'lo\\n') & {w0}; exit 0",
                w0 = wait_for(&go0),
                w1 = wait_for(&go1),
                w2 = wait_for(&go2),
                wrote = wrote.display()
            );
            let g = group(choice);
            let mut p = g
                .start(&Command::new("sh").args(["-c", &script]).stream_lines())
                .unwrap();
            let pid = p.pid();
            let first = p.wait_for_line(|l| l.text == "first", LONG).await;
            assert_eq!(first.map(|l| l.text).ok().as_deref(), Some("first"));
            // The caller's work holds the runtime: the shell exits, then
            // its descendant writes half a line.
            std::fs::write(&go0, b"").unwrap();
            blocked_until("the shell exited", || {
                stat(pid).is_none_or(|s| s.state == 'Z' || s.state == 'X')
            });
            std::fs::write(&go1, b"").unwrap();
            blocked_until("the holder wrote hel", || wrote.exists());
            let cut = p
                .wait_for_line(|l| l.text.starts_with("hel"), Duration::from_secs(5))
                .await
                .map(|l| l.text)
                .ok();
            std::fs::write(&go2, b"").unwrap();
            let rest = rest_of_lines(&mut p).await;
            g.kill().unwrap();
            let _ = tokio::time::timeout(LONG, p.wait()).await;
            g.close().await.unwrap();
            assert_eq!(cut, None, "{choice}: hel told before its end");
            assert_eq!(rest, vec!["hello".to_string()], "{choice}");
        }
        suite.end().await;
    });
}

/// The environment `env` printed, one `NAME=value` a line, sorted.
fn env_lines(out: &pkit::Output) -> Vec<String> {
    let mut v: Vec<String> = out.stdout_str().lines().map(str::to_owned).collect();
    v.sort();
    v
}

/// perf21 pools the environment block's buffers: a block built on a
/// previous run's buffers must hold only its own entries. Runs one after
/// another (each dropping its block into the pool): an exact environment,
/// a smaller one, the inherited one with a variable added and then with
/// one the process set and removed since, one over the pool's 256 KiB,
/// then small again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_environment_never_carries_a_previous_runs_entries() {
    let suite = begin(SUITE).await;
    for choice in mechanisms() {
        let g = group(choice);
        let run = |cmd: Command| {
            let g = &g;
            async move {
                g.start(&cmd)
                    .expect("env ran")
                    .wait()
                    .await
                    .expect("env ran")
            }
        };
        let out = run(Command::new("env").env_clear().env("A", "1").env("B", "2")).await;
        assert_eq!(env_lines(&out), ["A=1", "B=2"], "{choice}");
        let out = run(Command::new("env").env_clear().env("C", "3")).await;
        assert_eq!(env_lines(&out), ["C=3"], "{choice}");
        let out = run(Command::new("env").env_clear()).await;
        assert_eq!(env_lines(&out), Vec::<String>::new(), "{choice}");
        let out = run(Command::new("env").env("RV45_ADDED", "x")).await;
        let lines = env_lines(&out);
        assert!(lines.contains(&"RV45_ADDED=x".to_string()), "{choice}");
        assert!(
            !lines.iter().any(|l| l.starts_with("C=") || l == "A=1"),
            "{choice}"
        );
        // Three of 100 KiB (one string may not pass 128 KiB).
        let big = "v".repeat(100 << 10);
        let cmd = Command::new("env").env_clear().env("D", "4");
        let cmd = (0..3).fold(cmd, |c, i| c.env(format!("BIG{i}"), &big));
        let out = run(cmd).await;
        let mut want: Vec<String> = (0..3).map(|i| format!("BIG{i}={big}")).collect();
        want.push("D=4".into());
        assert_eq!(env_lines(&out), want, "{choice}");
        let out = run(Command::new("env").env_clear().env("E", "5")).await;
        assert_eq!(env_lines(&out), ["E=5"], "{choice}");
        let out = run(Command::new("env")).await;
        let lines = env_lines(&out);
        assert!(
            !lines.iter().any(|l| l.starts_with("BIG") || l == "E=5"),
            "{choice}"
        );
        assert_eq!(
            lines.len(),
            std::env::vars_os().count(),
            "{choice}: the inherited environment, whole"
        );
        g.close().await.unwrap();
    }
    suite.end().await;
}

/// perf21's pool shared by runs started at once from many tasks (and so
/// threads): each child gets exactly its own environment, of sizes on
/// both sides of the pool's limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_at_once_each_get_their_own_environment() {
    let suite = begin(SUITE).await;
    for choice in mechanisms() {
        let g = std::sync::Arc::new(group(choice));
        let mut tasks = vec![];
        for i in 0..16usize {
            let g = g.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = vec![];
                for round in 0..4usize {
                    // Some over the pool's 256 KiB (three values).
                    let size = if (i + round) % 5 == 0 {
                        100 << 10
                    } else {
                        i * 100 + round
                    };
                    let value = "x".repeat(size);
                    let cmd = Command::new("env")
                        .env_clear()
                        .env("ROUND", round.to_string());
                    let cmd = (0..3).fold(cmd, |c, k| c.env(format!("T{i}_{k}"), &value));
                    let o = g
                        .start(&cmd)
                        .expect("env ran")
                        .wait()
                        .await
                        .expect("env ran");
                    let mut want = vec![format!("ROUND={round}")];
                    want.extend((0..3).map(|k| format!("T{i}_{k}={value}")));
                    out.push((env_lines(&o) == want, i, round));
                }
                out
            }));
        }
        for t in tasks {
            for (same, i, round) in t.await.unwrap() {
                assert!(
                    same,
                    "{choice}: task {i} round {round} saw another's entries"
                );
            }
        }
        g.close().await.unwrap();
    }
    suite.end().await;
}

/// phdr: run through its dynamic loader (`ld.so TEST-BINARY`), this
/// binary is told to have been (the main program's `PT_INTERP`, from the
/// kernel's `AT_PHDR` as the loader rewrote it, and `AT_BASE` 0): a run
/// needing the portable guard's trampoline (a umask) is refused, saying
/// so; run directly, the same run works (the trampoline is found in the
/// main executable, `AT_PHDR` giving its segments).
#[test]
fn run_through_ld_so_the_trampoline_is_refused_and_directly_it_works() {
    if std::env::var_os(LDSO_ROLE).is_some() {
        let rt = current_thread();
        let said = rt.block_on(async {
            let g = group(MechanismChoice::Portable);
            let cmd = Command::new("sh").args(["-c", "umask"]).umask(0o027);
            let out = match g.start(&cmd) {
                Ok(mut p) => p.wait().await,
                Err(e) => Err(e),
            };
            let said = match out {
                Ok(o) => format!("OUT {}", o.stdout_str().trim()),
                Err(e) => format!("ERR {e}"),
            };
            g.close().await.unwrap();
            said
        });
        println!("\nRV45SAID {said}");
        return;
    }
    in_suite(SUITE, || {
        let me = std::env::current_exe().unwrap();
        let loader = Path::new("/lib64/ld-linux-x86-64.so.2");
        let mut said = vec![];
        for through in [false, true] {
            if through && !loader.exists() {
                continue;
            }
            let mut cmd = if through {
                let mut c = std::process::Command::new(loader);
                c.arg(&me);
                c
            } else {
                std::process::Command::new(&me)
            };
            let out = cmd
                .args([
                    "--exact",
                    "run_through_ld_so_the_trampoline_is_refused_and_directly_it_works",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(LDSO_ROLE, "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix("RV45SAID "))
                .map(str::to_owned);
            said.push((through, line, out.status));
        }
        for (through, line, status) in said {
            assert!(status.success(), "through ld.so {through}: {status:?}");
            let line = line.expect("the helper said");
            if through {
                assert!(line.contains("dynamic loader"), "through ld.so: {line}");
            } else {
                assert_eq!(line, "OUT 0027", "directly");
            }
        }
    });
}

/// Marks the helper runs: the forked-copy cases' ([`copy_case`]: its
/// value the case) and the ld.so probe's.
const COPY_ROLE: &str = "PKIT_RV45_COPY";
const LDSO_ROLE: &str = "PKIT_RV45_LDSO";

/// The numbers of this process's descriptors that name `/proc` itself.
fn proc_dirs() -> Vec<i32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let target = std::fs::read_link(e.path()).ok();
        if target.as_deref() == Some(Path::new("/proc")) {
            out.push(e.file_name().to_string_lossy().parse().unwrap());
        }
    }
    out
}

/// A process-group group made, a run in it, and the group closed, on a
/// fresh current-thread runtime (no signal driver: tokio's process-wide
/// signal pipe, made with the first, would be among what a copy closed).
fn a_pgroup_run() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let g = group(MechanismChoice::ProcessGroup);
        let mut p = g.start(&Command::new("true")).expect("true started");
        p.wait().await.expect("true ran");
        g.close().await.expect("closed");
    });
}

/// Whether descriptor `fd` names `what` (its `/proc` link).
fn names(fd: i32, what: &str) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|t| t == Path::new(what))
}

/// The helper's part (`COPY_ROLE` set to `case`): makes a process-group
/// group with no runtime yet (pkit keeps `/proc`, starts its reaper), then
/// forks a copy that closes every descriptor it inherited (as a daemon
/// does after `fork`: `close_range(3, ~0)`), opens its own (eventfds on
/// 3 to 39; for `proc`, `/proc` on the maker's kept `/proc` number), then
/// makes a process-group group and runs `true` in it. Says the copy's exit
/// code: bit 1 the run failed (panicked), bit 2 an eventfd of its own was
/// closed, bit 4 its own `/proc` was; 64 the setup failed.
fn copy_helper(case: &str) {
    let maker = group(MechanismChoice::ProcessGroup);
    let kept = proc_dirs();
    assert_eq!(kept.len(), 1, "the maker keeps one /proc: {kept:?}");
    let n = kept[0];
    assert!(n < 39, "the kept /proc on {n}");
    // SAFETY: fork(2) from the helper's one test thread; the child runs
    // its part and leaves with `_exit`, never returning into the harness.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork");
    if child == 0 {
        // SAFETY: a bound on the child's life.
        unsafe { libc::alarm(60) };
        for fd in 3..4096 {
            // SAFETY: the copy lets go of every inherited descriptor, as a
            // daemon does; nothing in it uses them after.
            unsafe { libc::close(fd) };
        }
        let mut code = 0;
        let mut events = vec![];
        for fd in 3..40 {
            let made = if case == "proc" && fd == n {
                std::fs::File::open("/proc")
                    .map(std::os::fd::IntoRawFd::into_raw_fd)
                    .unwrap_or(-1)
            } else {
                // SAFETY: makes an eventfd (its number the lowest free).
                unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) }
            };
            if made != fd {
                code |= 64;
            } else if fd != n || case != "proc" {
                events.push(fd);
            }
        }
        if code == 0 {
            if std::panic::catch_unwind(a_pgroup_run).is_err() {
                code |= 1;
            }
            if !events.iter().all(|&fd| names(fd, "anon_inode:[eventfd]")) {
                code |= 2;
            }
            if case == "proc" && !names(n, "/proc") {
                code |= 4;
            }
        }
        std::mem::forget(maker);
        // SAFETY: ends the forked child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `child` is ours; `status` a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    println!("\nRV45COPY {code:?}");
}

/// Runs test `name` of this binary as the helper of `case`
/// ([`copy_helper`]) and hands back the copy's exit code.
fn copy_case(name: &str, case: &str) -> String {
    let me = std::env::current_exe().unwrap();
    let out = std::process::Command::new(me)
        .args([
            "--exact",
            name,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(COPY_ROLE, case)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "helper: {text}");
    let code = text.lines().find_map(|l| l.strip_prefix("RV45COPY "));
    code.expect("the helper said").to_owned()
}

/// The reaper's wake pipe in a forked copy (`sys/linux/reaper.rs`): the
/// copy closes its copies of its maker's two ends "if they still name the
/// pipe", but takes the pipe's identity from the write end's number *in
/// the copy* (`file_id(wake_tx)`), not as the maker recorded it. So the
/// check passes for whatever the copy has on those numbers now: a copy
/// that closed what it inherited and made descriptors of its own (its
/// runtime's epoll instance and eventfd, or any anonymous-inode file:
/// they all share one inode) has them closed by its first group. Here
/// eventfds of its own on the numbers; with its runtime there instead,
/// the copy's tokio panics ("unexpected error when polling the I/O
/// driver: Invalid argument", its epoll instance closed).
#[test]
fn a_copys_own_descriptors_survive_its_first_group() {
    if std::env::var(COPY_ROLE).as_deref() == Ok("anon") {
        return copy_helper("anon");
    }
    in_suite(SUITE, || {
        let code = copy_case("a_copys_own_descriptors_survive_its_first_group", "anon");
        assert_eq!(
            code, "Some(0)",
            "the copy (1: its run failed; 2: its eventfds closed)"
        );
    });
}

/// enotdir lets a forked copy close its maker's kept `/proc` "only where
/// it still names the inherited file": every open of `/proc` names the
/// same file, so the check can't tell the copy's own. A copy that closed
/// what it inherited and then opened `/proc` for itself (a library's
/// cached `/proc`), which took that number (the lowest free), has it
/// closed behind its back by its first process-group group: later reads
/// through it fail with `EBADF`, or reach whatever took the number next.
#[test]
fn a_copys_own_proc_is_not_closed_by_its_first_group() {
    if std::env::var(COPY_ROLE).as_deref() == Ok("proc") {
        return copy_helper("proc");
    }
    in_suite(SUITE, || {
        let code = copy_case("a_copys_own_proc_is_not_closed_by_its_first_group", "proc");
        // The eventfds (bit 2) are the finding above's.
        assert_eq!(
            code.replace("Some(2)", "Some(0)"),
            "Some(0)",
            "the copy (4: its /proc closed)"
        );
    });
}

/// owed3, racing the exit: a process that writes a partial last line on
/// each stream and exits at once, while its background child holds both
/// pipes open (quiet): `wait_for_line` for each partial line, called
/// right after the start (before or after the exit: the race), gets it,
/// without waiting for the holder; 8 runs at once per mechanism.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_last_line_is_had_by_a_wait_racing_the_exit() {
    let suite = begin(SUITE).await;
    for choice in mechanisms() {
        let g = std::sync::Arc::new(group(choice));
        let mut runs = vec![];
        for i in 0..8 {
            let g = g.clone();
            runs.push(tokio::spawn(async move {
                let script = format!("sleep 300 & printf 'out{i}'; printf 'err{i}' >&2");
                let cmd = Command::new("sh").args(["-c", &script]).stream_lines();
                let mut p = g.start(&cmd).expect("started");
                let want = [format!("out{i}"), format!("err{i}")];
                // Each looks for either (a line not matched is passed by).
                let mut got = vec![];
                for _ in &want {
                    let l = p.wait_for_line(|l| want.contains(&l.text), LONG).await;
                    got.push(l.map(|l| l.text).ok());
                }
                got.sort();
                let mut want = want.map(Some).to_vec();
                want.sort();
                (want, got)
            }));
        }
        for r in runs {
            let (want, got) = r.await.unwrap();
            assert_eq!(got, want, "{choice}");
        }
        g.kill().unwrap();
        std::sync::Arc::into_inner(g)
            .unwrap()
            .close()
            .await
            .unwrap();
    }
    suite.end().await;
}
