#![cfg(target_os = "linux")]
//! rv43: a hostile review of the seventh session's merges (library half:
//! nest2's process-group suspend that waits until every member thread has
//! stopped, burst's output owed at the exit, f5df99b's `PATH` from the
//! environment copy). Findings are `#[ignore = "rv43: ..."]` tests; the
//! rest are probes that held. Run in the three passes (unset,
//! `PKIT_MECHANISM=pgroup`, `PKIT_MECHANISM=portable`).
//!
//! Findings (each failed in every pass it runs in, every run):
//! - MEDIUM, fixed (owed2) [`stderr_burst_with_a_partial_last_line_and_a_quiet_holder`]
//!   (and [`blocking_events_with_a_partial_last_line_and_a_quiet_holder`],
//!   [`wait_for_line_finds_a_partial_last_line_with_a_quiet_holder`]): a
//!   last line without a newline that the process itself wrote before it
//!   exited (`sh -c '…; printf tail >&2; (exec sleep 30) & exit 6'`) was
//!   never told when a quiet descendant keeps the pipe open: `events`
//!   told every complete line, then the exit 250 ms later, and ended;
//!   `wait_for_line(|l| l.text == "tail")` gave up with
//!   `NotReady(exited(6))`. Without the holder (end of file at the exit)
//!   `tail` came, last, before the exit. The docs promise "every line
//!   the process wrote before it exited"; the bytes were in the pipe at
//!   the exit (burst's FIONREAD counts them), but a partial line was only
//!   queued at the end of file. Now a reader that has read what it owes
//!   at the exit tells its partial line as a line before it answers.
//! - LOW [`a_non_dumpable_vfork_parent_does_not_hold_the_suspend_for_a_user`]:
//!   a pkit owner that is not root can't read a non-dumpable member's
//!   `wchan` and `syscall` (ptrace rights), so a member blocked in its
//!   `vfork` (its child stopped before `exec`: what a suspend that lands
//!   in a `posix_spawn` leaves) is "not stopped" and each process-group
//!   suspend waits out the 5 s cap (`CAPS 1`), though nothing can run.
//!   Run as `nobody` through `setpriv`; the same member under root is
//!   told at once ([`a_vfork_parent_whose_child_never_execs_does_not_hold_the_suspend`]).
//!   Kept (pool4): no sound sign of the `vfork` wait is readable without
//!   ptrace rights (the thread's latest stopped child may be an earlier
//!   fork's while it is blocked inside another, whose child has no `/proc`
//!   entry yet; only `kcmp` or the maps tell a child sharing its memory);
//!   documented on `Group::suspend` and `blocked_outside_fork`.
//! - LOW, fixed (pool4) [`a_copy_that_exits_leaves_no_spare_cgroup`]
//!   (cgroup pass): a forked copy that filled its own pool of spare
//!   cgroups (its parent had made no group before the fork) and leaves
//!   with `_exit`, as a forked child does, left its pooled directories
//!   (empty `pkit-<copy pid>-<n>`) behind when it had no owner-death
//!   guard of its own (a copy of an owner that had started its guard): no
//!   `atexit` handler runs. They stayed until another pkit process's stale
//!   sweep (seen past 60 s here). Failed 11 of 16 runs as first written;
//!   now checked while each copy is a zombie (no sweep takes a live
//!   owner's directories) with a copy that surely fills its own pool: it
//!   failed every run before the fix. Not new with 8eb3b1e (a copy filled
//!   its own pool before too).
//!
//! Probes that held (every pass, several runs at load 30-80):
//! - nest2: a `vfork` parent whose child never `exec`s (`D` for as long
//!   as the child lives) doesn't hold the suspend (no cap logged), the
//!   child `T`, nothing stopped after the resume; fork storms (a shell's
//!   subshells, `/bin/true` in a loop) and a thread storm (threads made
//!   while the suspend waits) are stopped whole at each of 10 suspends
//!   (every thread `T`, ended, or `D` outside a fork) and none stays
//!   stopped after each resume; a suspend racing `close` or `kill`
//!   returns.
//! - copies2 (8eb3b1e): copies of a copy that fills its own pool of spare
//!   cgroups, forked while two of its threads make and close groups,
//!   make groups themselves: none hangs, none fails.
//! - burst: a newline-less flood after the exit (`cat /dev/zero` in the
//!   background) still lets the exit come; stderr-only output of 1.2 MB
//!   with a partial last line and the pipes closed at the exit comes
//!   whole, in order, before the exit, with a tee on that stream too
//!   (every byte teed); dropping the events while 1 MB is
//!   owed returns, `wait` ends, nothing left.
//! - f5df99b: a bare name found on a non-UTF-8 `PATH` entry and after
//!   empty entries (`.env("PATH", ..)`), with `env_remove("PATH")` and
//!   `env_clear()` (pkit's documented default path, std's glibc one), and
//!   on the `PATH` this process inherited (the search in the environment
//!   copy): as std finds it.
//!
//! Read, not tested (see the report): a member traced by a debugger that
//! swallows the SIGSTOP runs on, and the suspend returns `Ok` after its
//! 5 s cap; a 32-bit (ia32) member's `syscall` file gives ia32 numbers
//! (`fork` is 2, x86_64's `open`), so its thread blocked inside a fork
//! would be taken for one blocked outside (the bug nest2 fixed).

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use common::events::recorder;
use common::*;
use pkit::{Command, MechanismChoice, Outcome, ProcessEvent, StreamKind};

const SUITE: &str = "review_rv43";

/// Marks a run of this binary as one of its helper roles ([`roles`]).
const ROLE: &str = "PKIT_RV43_ROLE";

/// Generous: the machine runs at load 15.
const LONG: Duration = Duration::from_secs(60);

/// The helper roles (nothing in a plain run):
/// - `vfork`: `vfork`s a child that never `exec`s and waits in `pause`
///   (its parent stays blocked in the `vfork` until the child ends);
/// - `threads`: four threads each start and join a thread, again and
///   again (threads made while a suspend waits).
#[test]
fn roles() {
    match std::env::var(ROLE).as_deref() {
        Ok("vfork") => {
            // SAFETY: the child only calls `pause` and `_exit` (both
            // async-signal-safe) on its own stack frame; the parent waits.
            #[allow(deprecated)]
            let pid = unsafe { libc::vfork() };
            if pid == 0 {
                loop {
                    // SAFETY: as above.
                    unsafe { libc::pause() };
                }
            }
            // SAFETY: ends the parent once the child has ended.
            unsafe { libc::_exit(0) };
        }
        Ok("vfork-nodump") => {
            // SAFETY: plain values; makes this process non-dumpable (as a
            // program that changed its ids, or ssh-agent, is).
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
            // SAFETY: as for `vfork`.
            #[allow(deprecated)]
            let pid = unsafe { libc::vfork() };
            if pid == 0 {
                loop {
                    // SAFETY: as for `vfork`.
                    unsafe { libc::pause() };
                }
            }
            // SAFETY: ends the parent once the child has ended.
            unsafe { libc::_exit(0) };
        }
        Ok("owner") => owner(),
        Ok("exits") => exits(),
        Ok("gen2:cgroup") => gen2(MechanismChoice::Cgroup),
        Ok("gen2:portable") => gen2(MechanismChoice::Portable),
        Ok(r) if r.starts_with("gen2:") => gen2(MechanismChoice::ProcessGroup),
        Ok("threads") => {
            let spinners: Vec<_> = (0..4)
                .map(|_| {
                    std::thread::spawn(|| loop {
                        let _ = std::thread::spawn(|| std::hint::black_box(0)).join();
                    })
                })
                .collect();
            for s in spinners {
                let _ = s.join();
            }
        }
        _ => {}
    }
}

/// This binary run as helper `role` (see [`roles`]).
fn role(role: &str) -> Command {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "roles", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
}

/// The mechanisms of this pass that make a process group (nest2's wait is
/// theirs; the cgroup freezer waited for `frozen 1` before).
fn pgroup_mechanisms() -> Vec<MechanismChoice> {
    mechanisms()
        .into_iter()
        .filter(|m| *m != MechanismChoice::Cgroup)
        .collect()
}

/// The live processes of process group `pgid`.
fn members_of(pgid: u32) -> Vec<u32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if stat(pid).is_some_and(|s| s.pgrp == pgid) {
            out.push(pid);
        }
    }
    out
}

/// `(pid, tid, state)` of every thread of every member of `pgid`.
fn threads_of(pgid: u32) -> Vec<(u32, u32, char)> {
    let mut out = vec![];
    for pid in members_of(pgid) {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in dir.flatten() {
            let Ok(tid) = t.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let text = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let state = text
                .rsplit_once(") ")
                .and_then(|(_, r)| r.chars().next())
                .unwrap_or('X');
            out.push((pid, tid, state));
        }
    }
    out
}

/// How many "has not stopped after" messages (nest2's cap) were logged.
fn caps_logged() -> usize {
    recorder()
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| {
            s.get("message")
                .is_some_and(|m| m.contains("has not stopped after"))
        })
        .count()
}

/// Polls `f` until true or [`LONG`] passes; whether it became true.
fn poll(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + LONG;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------
// nest2: the suspend's wait
// ---------------------------------------------------------------------------

/// Probe: a member blocked in `vfork` whose child never `exec`s (it waits
/// in `pause`): the parent is `D` at the vfork wait for as long as the
/// child lives. The suspend stops the child and counts the parent
/// (blocked outside a fork of its own) as stopped: it returns without
/// waiting out its 5 s cap (no cap logged), the child `T`; the resume
/// leaves nothing stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vfork_parent_whose_child_never_execs_does_not_hold_the_suspend() {
    recorder();
    // Alone in the binary: the cap's message is process-wide.
    let alone = begin_alone_in_binary().await;
    for choice in pgroup_mechanisms() {
        let g = group(choice);
        let mut p = g.start(&role("vfork")).unwrap();
        let leader = p.pid();
        let ready = tokio::task::spawn_blocking(move || {
            poll(|| {
                let t = threads_of(leader);
                t.len() >= 2
                    && t.iter().any(|&(pid, _, s)| pid == leader && s == 'D')
                    && t.iter().any(|&(pid, _, s)| pid != leader && s == 'S')
            })
        })
        .await
        .unwrap();
        assert!(
            ready,
            "{choice}: the vfork never settled: {:?}",
            threads_of(leader)
        );
        let before = caps_logged();
        g.suspend().await.unwrap();
        let after_suspend = threads_of(leader);
        let capped = caps_logged() - before;
        g.resume().await.unwrap();
        let resumed = tokio::task::spawn_blocking(move || {
            poll(|| threads_of(leader).iter().all(|&(_, _, s)| s != 'T'))
        })
        .await
        .unwrap();
        let left = threads_of(leader);
        g.kill().unwrap();
        let _ = tokio::time::timeout(LONG, p.wait()).await;
        g.close().await.unwrap();
        assert_eq!(
            capped, 0,
            "{choice}: the suspend waited out its cap: {after_suspend:?}"
        );
        assert!(
            after_suspend
                .iter()
                .all(|&(pid, _, s)| s == 'T' || (pid == leader && s == 'D')),
            "{choice}: the suspend returned with a member not stopped: {after_suspend:?}"
        );
        assert!(resumed, "{choice}: stopped after the resume: {left:?}");
    }
    end_exclusive(alone, SUITE).await;
}

/// The `owner` role, run as another user than root (`nobody`): starts
/// the `vfork-nodump` role in a group of this pass's process-group
/// mechanism (pgroup, or portable), waits until its
/// parent is blocked in the `vfork` (`D`) and the child waits (`S`), then
/// suspends and resumes the group and prints `CAPS <n>` (the suspend's
/// 5 s caps logged meanwhile) and the threads' states after the suspend.
fn owner() {
    recorder();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let g = group(pgroup_mechanisms()[0]);
        let mut p = g.start(&role("vfork-nodump")).unwrap();
        let leader = p.pid();
        let ready = poll(|| {
            let t = threads_of(leader);
            t.iter().any(|&(pid, _, s)| pid == leader && s == 'D')
                && t.iter().any(|&(pid, _, s)| pid != leader && s == 'S')
        });
        let before = caps_logged();
        g.suspend().await.unwrap();
        let seen = threads_of(leader);
        g.resume().await.unwrap();
        println!(
            "READY {ready} CAPS {} STATES {seen:?}",
            caps_logged() - before
        );
        g.kill().unwrap();
        let _ = tokio::time::timeout(LONG, p.wait()).await;
        g.close().await.unwrap();
    });
}

/// LOW: as another user than root, pkit can't read a non-dumpable
/// member's `wchan` or `syscall` (ptrace rights): a non-dumpable member
/// blocked in its `vfork` (a child stopped before its `exec`, as a
/// suspend that lands in a `posix_spawn` leaves it) counts as "not
/// stopped", and every suspend waits out the 5 s cap, though the member
/// can't run (its vfork child is stopped). The same member under a root
/// owner is told at once (the probe above). Kept, documented (see the
/// header): no sound sign of the wait is readable without ptrace rights.
#[test]
#[ignore = "rv43: LOW, kept and documented on Group::suspend (pool4): a non-dumpable member blocked in vfork makes a non-root owner's process-group suspend wait out the 5 s cap; without ptrace rights (wchan, syscall, kcmp, maps) no sound sign tells that wait from a fork under way"]
fn a_non_dumpable_vfork_parent_does_not_hold_the_suspend_for_a_user() {
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    in_suite(SUITE, || {
        let (status, out) = run_self_as(
            "roles",
            (ROLE, "owner"),
            &[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ],
            LONG,
        );
        assert!(status.is_some_and(|s| s.success()), "{status:?}: {out}");
        assert!(out.contains("READY true CAPS 0 "), "{out}");
    });
}

/// Thread `tid` of `pid`'s system call (`/proc/.../syscall`'s first
/// word: a number, or `running`) and where it blocks (`wchan`).
fn kernel_place(pid: u32, tid: u32) -> (String, String) {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/{f}")).unwrap_or_default()
    };
    let call = read("syscall");
    (
        call.split_whitespace().next().unwrap_or("").to_string(),
        read("wchan").trim().to_string(),
    )
}

/// Whether blocked thread `tid` of `pid` is inside a fork's system call
/// (x86_64 `fork`, `vfork`, `clone`, `clone3`; elsewhere `clone`,
/// `clone3`) other than at a `vfork`'s wait for its child (`wchan`
/// `wait_for_vfork_done`, or `kernel_clone` where that is inlined, as
/// `container_suspend.rs` tells it): a thread
/// blocked anywhere else takes the stop before it runs its program again.
fn in_a_fork(pid: u32, tid: u32) -> bool {
    let (call, wchan) = kernel_place(pid, tid);
    let forks: &[&str] = if cfg!(target_arch = "x86_64") {
        &["56", "57", "58", "435"]
    } else {
        &["220", "435"]
    };
    // `kernel_clone` where the wait is inlined (this kernel's vfork
    // parents show it).
    forks.contains(&call.as_str())
        && !matches!(wchan.as_str(), "wait_for_vfork_done" | "kernel_clone")
}

/// Probe: members that fork (a shell's subshells, `/bin/true` again and
/// again) and make threads (four threads starting threads) without a
/// pause while the group is suspended and resumed 10 times: each suspend
/// returns with every thread of every member stopped (`T`), ended, or
/// blocked in the kernel outside a fork (`D` in `execve`, `exit`: it
/// stops before it runs its program again), and after each resume no
/// thread stays stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_and_thread_storms_are_stopped_whole_and_resumed_whole() {
    let suite = begin(SUITE).await;
    for choice in pgroup_mechanisms() {
        let g = group(choice);
        let mut storm = g
            .start(&Command::new("sh").args([
                "-c",
                "(while :; do /bin/true; done) & \
                 (while :; do (:) & (:) & wait; done) & \
                 wait",
            ]))
            .unwrap();
        let mut threads = g.start(&role("threads")).unwrap();
        // Both in the group's one process group.
        let pgid = stat(storm.pid()).unwrap().pgrp;
        let mut trouble = None;
        for cycle in 0..10 {
            g.suspend().await.unwrap();
            let seen = threads_of(pgid);
            let moving: Vec<_> = seen
                .iter()
                .filter(|&&(pid, tid, s)| match s {
                    'T' | 't' | 'Z' | 'X' => false,
                    'D' => in_a_fork(pid, tid),
                    _ => true,
                })
                .map(|&(pid, tid, s)| (pid, tid, s, kernel_place(pid, tid)))
                .collect();
            if !moving.is_empty() {
                trouble = Some(format!("suspend {cycle}: not stopped: {moving:?}"));
                g.resume().await.unwrap();
                break;
            }
            g.resume().await.unwrap();
            let ok = tokio::task::spawn_blocking(move || {
                poll(|| threads_of(pgid).iter().all(|&(_, _, s)| s != 'T'))
            })
            .await
            .unwrap();
            if !ok {
                trouble = Some(format!(
                    "resume {cycle}: left stopped: {:?}",
                    threads_of(pgid)
                ));
                break;
            }
        }
        g.kill().unwrap();
        let _ = tokio::time::timeout(LONG, storm.wait()).await;
        let _ = tokio::time::timeout(LONG, threads.wait()).await;
        g.close().await.unwrap();
        assert_eq!(trouble, None, "{choice}");
    }
    suite.end().await;
}

/// Probe: a suspend racing the group's close, and one right after its
/// kill: each call returns (well within the cap and any deadline), and
/// nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspend_racing_close_or_kill_returns() {
    let suite = begin(SUITE).await;
    for choice in mechanisms() {
        for round in 0..5 {
            let g = std::sync::Arc::new(group(choice));
            let mut p = g
                .start(&Command::new("sh").args(["-c", "while :; do (:); done"]))
                .unwrap();
            let pid = p.pid();
            let g2 = g.clone();
            let suspend = tokio::spawn(async move { g2.suspend().await });
            if round % 2 == 0 {
                let _ = g.close().await;
            } else {
                g.kill().unwrap();
            }
            let r = tokio::time::timeout(LONG, suspend).await;
            assert!(
                r.is_ok(),
                "{choice} round {round}: the suspend never returned"
            );
            let _ = g.kill();
            let _ = tokio::time::timeout(LONG, p.wait()).await;
            let _ = g.close().await;
            assert_gone(&[pid], &format!("{choice} round {round}")).await;
        }
    }
    suite.end().await;
}

// ---------------------------------------------------------------------------
// copies2: the spare pool's lock in copies of copies
// ---------------------------------------------------------------------------

/// One group made under `choice`, `true` started in it and waited for,
/// the group measured and closed (a spare cgroup taken and offered under
/// cgroup v2); whether it all went.
fn group_work(choice: MechanismChoice) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Ok(g) = pkit::Group::builder().mechanism(choice).build() else {
            return false;
        };
        let Ok(mut p) = g.start(&Command::new("true")) else {
            return false;
        };
        let ok = p.wait().await.is_ok_and(|s| s.success());
        let _ = g.stats();
        ok && g.close().await.is_ok()
    })
}

/// Forks (plain `fork`) a copy that runs `f` and `_exit`s with its
/// answer (0 or 1), ended by an alarm after `alarm` s (a hang: 14); the
/// copy's pid and exit code (128 + a signal that ended it).
fn fork_running(alarm: u32, f: impl FnOnce() -> i32) -> (i32, i32) {
    // SAFETY: a forked copy of a threaded process, as pkit supports; it
    // leaves with `_exit`, bounded by an alarm.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: plain values; then ends the copy.
        unsafe {
            libc::alarm(alarm);
            libc::_exit(f());
        }
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    (pid, code)
}

/// The `gen2:<mechanism>` role: a copy (forked before this process used
/// pkit, so the copy fills its own pool) runs two threads that make and
/// close groups without a pause, and meanwhile forks six copies of
/// itself, 5 ms apart (the first while its threads fill its pool), each
/// making three groups, then makes one group itself, alone; prints `GEN2 <codes>` (0 each: none failed, none
/// hung) and `PIDS <pids>`, said by the first copy with one write, then
/// `GEN2 first copy <code>` and `PIDS <its pid>`.
fn gen2(choice: MechanismChoice) {
    let (first, code) = fork_running(240, move || {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let begun = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (stop, begun) = (stop.clone(), begun.clone());
                std::thread::spawn(move || {
                    begun.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        group_work(choice);
                    }
                })
            })
            .collect();
        while begun.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
        let (mut codes, mut pids) = (vec![], vec![]);
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(5));
            let (pid, code) =
                fork_running(60, move || i32::from(!(0..3).all(|_| group_work(choice))));
            codes.push(code);
            pids.push(pid);
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in threads {
            let _ = t.join();
        }
        // One more group, alone: its close pools its directory (the
        // copy's own pool), so a spare is surely left at the `_exit`.
        codes.push(i32::from(!group_work(choice)));
        let line = format!("GEN2 {codes:?}\nPIDS {pids:?} {}\n", std::process::id());
        // SAFETY: a valid buffer of that length.
        unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
        0
    });
    println!("GEN2 first copy {code}\nPIDS [{first}]");
}

/// Runs the `gen2` role (see [`gen2`]) for each mechanism of the pass,
/// twice: no copy hangs or fails.
fn copies_of_a_copy() {
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    in_suite(SUITE, || {
        for choice in mechanisms() {
            for round in 0..2 {
                let (status, out) = run_self_as(
                    "roles",
                    (ROLE, &format!("gen2:{choice}")),
                    &[],
                    Duration::from_secs(300),
                );
                assert!(
                    status.is_some_and(|s| s.success()),
                    "{choice} {round}: {out}"
                );
                assert!(
                    out.contains("GEN2 [0, 0, 0, 0, 0, 0, 0]") && out.contains("GEN2 first copy 0"),
                    "{choice} {round}: {out}"
                );
            }
        }
    });
}

/// Probe (copies2, 8eb3b1e): copies of a copy that fills its own pool
/// of spare cgroups, forked while two of its threads make and close
/// groups (cgroup groups in the default pass): none hangs at its first
/// group, none fails.
#[test]
fn copies_of_a_copy_that_fills_its_own_pool_never_hang() {
    copies_of_a_copy();
}

/// Three cgroup groups made (each with `true` started in it and waited
/// for, measured and closed) in a forked copy; `0` if all went and the
/// last said `guarded() == guarded`, else `1` (one failed) or `2` (its
/// guard was not as expected).
fn copy_groups(guarded: bool) -> i32 {
    if !(0..2).all(|_| group_work(MechanismChoice::Cgroup)) {
        return 1;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Ok(g) = pkit::Group::builder()
            .mechanism(MechanismChoice::Cgroup)
            .build()
        else {
            return 1;
        };
        let as_expected = g.guarded() == guarded;
        let Ok(mut p) = g.start(&Command::new("true")) else {
            return 1;
        };
        let ok = p.wait().await.is_ok_and(|s| s.success());
        if !(ok && g.close().await.is_ok()) {
            1
        } else if !as_expected {
            2
        } else {
            0
        }
    })
}

/// Forks (plain `fork`) a copy that runs `f` and `_exit`s with its
/// answer, ended by an alarm after `alarm` s; once it has exited, leaves
/// it a zombie (its pid stays its own, so no stale sweep of any pkit
/// process takes its directories meanwhile: the sweep takes only a dead
/// owner's), polls (up to [`LONG`]: its own guard, if it has one, removes
/// what it registered once it is gone) until no `pkit-<copy pid>-*`
/// directory is left under `parent`, then reaps it. Its exit code (128 +
/// a signal that ended it) and the directories left, as one line.
fn fork_and_check(parent: &std::path::Path, alarm: u32, f: impl FnOnce() -> i32) -> String {
    // SAFETY: a forked copy of a threaded process, as pkit supports; it
    // leaves with `_exit`, bounded by an alarm.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: plain values; then ends the copy.
        unsafe {
            libc::alarm(alarm);
            libc::_exit(f());
        }
    }
    // SAFETY: a zeroed siginfo to fill; waits for our own child's exit and
    // leaves it unreaped (WNOWAIT).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let waited = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(waited, 0, "waitid");
    let prefix = common::name_prefix(pid as u32);
    let left = || -> Vec<String> {
        std::fs::read_dir(parent)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default()
    };
    poll(|| left().is_empty());
    let left = left();
    let mut status = 0;
    // SAFETY: reaps our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    format!("{code} {left:?}")
}

/// The `exits` role (cgroup groups): copies that make and close groups
/// and leave with `_exit`, each checked by [`fork_and_check`]:
/// - `A`: a copy forked before this process made any group: it starts
///   its own guard (its groups are guarded);
/// - `B`: a copy forked while this process has a group open (its guard
///   started), whose pool of spares was empty: the copy can't use that
///   guard (unguarded groups) and fills a pool of its own; and `C`, a copy
///   of `B` forked before `B` made any group.
///
/// Prints `EXITS C <code> <left>` (said by `B`, with one write), then
/// `EXITS A <code> <left> B <code> <left>`.
fn exits() {
    let Some(parent) = group_parent() else {
        println!("EXITS no cgroup");
        return;
    };
    let a = fork_and_check(&parent, 240, || copy_groups(true));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let g = pkit::Group::builder()
        .mechanism(MechanismChoice::Cgroup)
        .build()
        .unwrap();
    assert!(g.guarded(), "this process's group is unguarded");
    let b = fork_and_check(&parent, 240, || {
        let c = fork_and_check(&parent, 120, || copy_groups(false));
        let line = format!("EXITS C {c}\n");
        // SAFETY: a valid buffer of that length.
        unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
        copy_groups(false)
    });
    rt.block_on(g.close()).unwrap();
    println!("EXITS A {a} B {b}");
}

/// LOW (fixed): a forked copy that filled its own pool of spare cgroups
/// (its parent had made no group before the fork, so the pool was empty)
/// and left with `_exit`, as a forked child does, left its pooled spare
/// directories behind (empty, `pkit-<copy pid>-<n>`) when it had no
/// owner-death guard of its own (`guarded() == false`: a copy of an owner
/// that had started its guard): no `atexit` handler runs at `_exit`. They
/// stayed until some later pkit process's stale sweep. Now such a copy
/// pools nothing: its groups' directories are removed at their close. A
/// copy with a guard of its own pools, and its guard removes its spares
/// once it is gone. Checked while each copy is a zombie, so no stale
/// sweep (which takes a dead owner's directories only) can hide one.
/// Cgroup pass only.
#[test]
fn a_copy_that_exits_leaves_no_spare_cgroup() {
    if std::env::var_os(ROLE).is_some() || !mechanisms().contains(&MechanismChoice::Cgroup) {
        return;
    }
    in_suite(SUITE, || {
        for round in 0..2 {
            let (status, out) =
                run_self_as("roles", (ROLE, "exits"), &[], Duration::from_secs(300));
            assert!(status.is_some_and(|s| s.success()), "{round}: {out}");
            assert!(out.contains("EXITS C 0 []\n"), "{round}: {out}");
            assert!(out.contains("EXITS A 0 [] B 0 []\n"), "{round}: {out}");
        }
    });
}

// ---------------------------------------------------------------------------
// burst: the output owed at the exit
// ---------------------------------------------------------------------------

/// Reads every event of `p` (sleeping `pause` after each line once the
/// process `pid` has exited), for at most [`LONG`]: the lines as
/// `(stream, text)`, the exit, and whether the stream ended in time.
async fn all_events(
    p: &mut pkit::RunningProcess,
    pause: Duration,
) -> (Vec<(StreamKind, String)>, Option<Outcome>, bool) {
    let pid = p.pid();
    let mut events = p.events();
    let read = async move {
        let (mut lines, mut exit, mut first) = (vec![], None, true);
        while let Some(e) = events.next_event().await {
            match e {
                ProcessEvent::Line(l) => {
                    if first {
                        first = false;
                        while !pid_gone(pid) {
                            tokio::time::sleep(POLL).await;
                        }
                        // For the stream to see the exit meanwhile.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    lines.push((l.stream, l.text));
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
                ProcessEvent::Exited { outcome, .. } => exit = Some(outcome),
                _ => {}
            }
        }
        (lines, exit)
    };
    match tokio::time::timeout(LONG, read).await {
        Ok((lines, exit)) => (lines, exit, true),
        Err(_) => (vec![], None, false),
    }
}

/// Probe: after the process's own line and its exit, a descendant floods
/// the pipe with bytes that hold no newline (`cat /dev/zero`): the owed
/// output is a run of newline-less chunks, and the flood never pauses.
/// The own line comes, then the exit, and the stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newline_less_flood_after_the_exit_still_lets_the_exit_come() {
    let suite = begin(SUITE).await;
    all_at_once(mechanisms(), |choice| async move {
        let g = group(choice);
        let cmd = Command::new("sh")
            .args(["-c", "echo own; (exec cat /dev/zero) & sleep 0.3; exit 4"])
            .stream_lines()
            .buffer_lines(64);
        let mut p = g.start(&cmd).unwrap();
        let (lines, exit, in_time) = all_events(&mut p, Duration::from_millis(1)).await;
        g.kill().unwrap();
        let _ = tokio::time::timeout(LONG, p.wait()).await;
        g.close().await.unwrap();
        assert!(in_time, "{choice}: the stream never ended");
        assert_eq!(exit, Some(Outcome::Exited(4)), "{choice}");
        assert_eq!(lines.first().map(|l| l.1.as_str()), Some("own"), "{choice}");
    })
    .await;
    suite.end().await;
}

/// The script of [`stderr_burst`]: [`BURST`] lines of 100 bytes (more
/// than a pipe's first 64 KiB) and a last line without a newline, all on
/// stderr; with `holder`, a descendant that keeps the pipes open (so no
/// end of file comes) and says nothing.
fn stderr_burst(holder: bool) -> Command {
    let hold = if holder { "(exec sleep 30) & " } else { "" };
    let script = format!(
        "awk 'BEGIN {{ for (i = 1; i <= {BURST}; i++) printf \"%099d\\n\", i }}' >&2; \
         printf tail >&2; {hold}exit 6"
    );
    Command::new("sh")
        .args(["-c", &script])
        .stream_lines()
        .buffer_lines(4000)
}

/// The lines of a [`stderr_burst`]: 1.2 MB, so that the pipe (grown to
/// 1 MiB once 256 KiB were read) and the 4,000-line queue hold it all
/// while nobody reads (as events_owed's burst).
const BURST: usize = 12_000;

/// Checks a [`stderr_burst`]'s events: [`BURST`] numbered stderr lines in
/// order, then `tail`, no stdout, then the exit.
fn check_stderr_burst(
    what: &str,
    (lines, exit, in_time): (Vec<(StreamKind, String)>, Option<Outcome>, bool),
) {
    assert!(in_time, "{what}: the stream never ended");
    assert_eq!(exit, Some(Outcome::Exited(6)), "{what}");
    assert!(
        lines.iter().all(|l| l.0 == StreamKind::Stderr),
        "{what}: a stdout line"
    );
    let texts: Vec<&str> = lines.iter().map(|l| l.1.as_str()).collect();
    let numbered = texts.iter().take_while(|t| **t != "tail").count();
    assert_eq!(numbered, BURST, "{what}: lines before `tail`");
    assert!(
        texts[..numbered]
            .iter()
            .enumerate()
            .all(|(i, t)| t.parse::<usize>().ok() == Some(i + 1)),
        "{what}: out of order"
    );
    assert_eq!(
        texts.get(numbered),
        Some(&"tail"),
        "{what}: the last, partial line"
    );
    assert_eq!(texts.len(), numbered + 1, "{what}: lines after `tail`");
}

/// Probe: stderr only, 1.2 MB and a partial last line, the pipes closed
/// at the exit: a slow consumer (1 ms a line, after the exit) gets every
/// line, in order, `tail` last, then the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_only_burst_with_a_partial_last_line_comes_whole() {
    let suite = begin(SUITE).await;
    all_at_once(mechanisms(), |choice| async move {
        let g = group(choice);
        let mut p = g.start(&stderr_burst(false)).unwrap();
        let got = all_events(&mut p, Duration::ZERO).await;
        let _ = tokio::time::timeout(LONG, p.wait()).await;
        g.close().await.unwrap();
        check_stderr_burst(&format!("{choice}"), got);
    })
    .await;
    suite.end().await;
}

/// A tee's writer that counts the bytes it takes.
#[derive(Clone, Default)]
struct Counted(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::SeqCst);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Probe: a tee on the same stream (`stderr_tee`, counting its bytes) beside the
/// events of a [`stderr_burst`] read after the exit: the events get
/// every line, `tail` last, before the exit, and the tee every byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tee_on_the_owed_stream_gets_every_byte_and_the_events_every_line() {
    let suite = begin(SUITE).await;
    all_at_once(mechanisms(), |choice| async move {
        let counted = Counted::default();
        let g = group(choice);
        let mut p = g
            .start(&stderr_burst(false).stderr_tee(counted.clone()))
            .unwrap();
        let got = all_events(&mut p, Duration::ZERO).await;
        let _ = tokio::time::timeout(LONG, p.wait()).await;
        g.close().await.unwrap();
        let teed = counted.0.load(std::sync::atomic::Ordering::SeqCst);
        check_stderr_burst(&format!("{choice} with a tee"), got);
        assert_eq!(teed, BURST as u64 * 100 + 4, "{choice}: the tee's bytes");
    })
    .await;
    suite.end().await;
}

/// MEDIUM: the same with a quiet descendant holding the pipes open
/// (`(exec sleep 30) &`): the partial last line `tail`, written by the
/// process itself before it exited and in the pipe at the exit, is never
/// told: the stream tells the 12,000 lines, then the exit 250 ms later,
/// and ends (without the holder it is told, at the end of file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_burst_with_a_partial_last_line_and_a_quiet_holder() {
    let suite = begin(SUITE).await;
    all_at_once(mechanisms(), |choice| async move {
        let g = group(choice);
        let mut p = g.start(&stderr_burst(true)).unwrap();
        let got = all_events(&mut p, Duration::ZERO).await;
        g.kill().unwrap();
        let _ = tokio::time::timeout(LONG, p.wait()).await;
        g.close().await.unwrap();
        check_stderr_burst(&format!("{choice}"), got);
    })
    .await;
    suite.end().await;
}

/// MEDIUM (the same finding): the blocking facade's events, same holder
/// case, on a plain thread.
#[test]
fn blocking_events_with_a_partial_last_line_and_a_quiet_holder() {
    in_suite(SUITE, || {
        for choice in mechanisms() {
            let g = pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice)).unwrap();
            let mut p = g.start(&stderr_burst(true)).unwrap();
            let pid = p.pid();
            let (mut lines, mut exit, mut first) = (vec![], None, true);
            let end = Instant::now() + LONG;
            for e in p.events() {
                match e {
                    ProcessEvent::Line(l) => {
                        if first {
                            first = false;
                            while !pid_gone(pid) && Instant::now() < end {
                                std::thread::sleep(POLL);
                            }
                            std::thread::sleep(Duration::from_millis(300));
                        }
                        lines.push((l.stream, l.text));
                    }
                    ProcessEvent::Exited { outcome, .. } => exit = Some(outcome),
                    _ => {}
                }
                if Instant::now() > end {
                    break;
                }
            }
            g.kill().unwrap();
            let _ = p.wait();
            g.close().unwrap();
            check_stderr_burst(&format!("blocking {choice}"), (lines, exit, true));
        }
    });
}

/// MEDIUM (the same finding): `wait_for_line` looking for the partial
/// last line `tail` of a [`stderr_burst`] with a quiet holder gives up
/// with `NotReady` (the exit) though the process wrote `tail` before it
/// exited; without the holder it finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_line_finds_a_partial_last_line_with_a_quiet_holder() {
    let suite = begin(SUITE).await;
    all_at_once(mechanisms(), |choice| async move {
        let mut found = vec![];
        for holder in [false, true] {
            let g = group(choice);
            let mut p = g.start(&stderr_burst(holder)).unwrap();
            let got = p.wait_for_line(|l| l.text == "tail", LONG).await;
            g.kill().unwrap();
            let _ = tokio::time::timeout(LONG, p.wait()).await;
            g.close().await.unwrap();
            found.push((holder, got.map(|l| l.text).map_err(|e| e.to_string())));
        }
        assert_eq!(
            found,
            vec![
                (false, Ok("tail".to_string())),
                (true, Ok("tail".to_string()))
            ],
            "{choice}"
        );
    })
    .await;
    suite.end().await;
}

/// owed2 (the fix's other half): the partial last line told at the exit
/// is a line of its own; what the holder writes after it, on the same line
/// (`printf ' more\n'` once the test has seen `tail`), comes as a line of
/// its own, and the line stream then ends (the holder gone): `tail` is
/// told once, not again with what followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_holder_writes_after_the_told_partial_line_is_a_new_line() {
    let suite = begin(SUITE).await;
    all_at_once(mechanisms(), |choice| async move {
        let go = common::temp_path(&format!("rv43-more-{choice}"));
        let _ = std::fs::remove_file(&go);
        let script = format!(
            "printf tail; (while [ ! -e '{go}' ]; do sleep 0.02; done; printf ' more\\n') & exit 6",
            go = go.display()
        );
        let g = group(choice);
        let mut p = g
            .start(&Command::new("sh").args(["-c", &script]).stream_lines())
            .unwrap();
        let found = p.wait_for_line(|l| l.text == "tail", LONG).await;
        std::fs::write(&go, b"").unwrap();
        let mut lines = p.lines();
        let mut after = vec![];
        while let Ok(Some(l)) = tokio::time::timeout(LONG, lines.next_line()).await {
            after.push(l.text);
        }
        let _ = tokio::time::timeout(LONG, p.wait()).await;
        g.close().await.unwrap();
        let _ = std::fs::remove_file(&go);
        assert_eq!(
            found.map(|l| l.text).ok(),
            Some("tail".to_string()),
            "{choice}"
        );
        assert_eq!(after, vec![" more".to_string()], "{choice}: after `tail`");
    })
    .await;
    suite.end().await;
}

/// Probe: a consumer that drops the stream in the owed phase (the exit
/// seen, most of 1.2 MB still owed, a descendant holding the pipes): the drop
/// returns at once, `wait` still ends, and nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_events_while_output_is_owed() {
    let suite = begin(SUITE).await;
    all_at_once(mechanisms(), |choice| async move {
        let g = group(choice);
        let mut p = g.start(&stderr_burst(true)).unwrap();
        let pid = p.pid();
        let mut events = p.events();
        let mut lines = 0;
        // Past Started and a few lines, the process gone by then.
        while let Ok(Some(e)) = tokio::time::timeout(LONG, events.next_event()).await {
            if matches!(e, ProcessEvent::Line(_)) {
                lines += 1;
                if lines == 1 {
                    while !pid_gone(pid) {
                        tokio::time::sleep(POLL).await;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                if lines == 100 {
                    break;
                }
            }
        }
        drop(events);
        let waited = tokio::time::timeout(LONG, p.wait()).await;
        g.kill().unwrap();
        g.close().await.unwrap();
        assert_eq!(lines, 100, "{choice}");
        assert!(waited.is_ok(), "{choice}: wait never ended after the drop");
    })
    .await;
    suite.end().await;
}

// ---------------------------------------------------------------------------
// f5df99b: PATH from the child's environment copy
// ---------------------------------------------------------------------------

/// A directory (under the build's temporary directory) named `name`,
/// holding an executable script `rv43-prog` that prints `ran-<tag>`.
fn prog_dir(name: &[u8], tag: &str) -> std::path::PathBuf {
    let mut dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).into_os_string();
    dir.push("/");
    dir.push(OsStr::from_bytes(name));
    let dir = std::path::PathBuf::from(dir);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("rv43-prog");
    std::fs::write(&prog, format!("#!/bin/sh\necho ran-{tag}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// What pkit's and std's commands print (or the error), given `PATH`.
fn both_with_path(path: &OsStr) -> (Result<String, String>, Result<String, String>) {
    let ours = Command::new("rv43-prog")
        .env("PATH", path)
        .blocking()
        .output()
        .map(|o| String::from_utf8_lossy(o.stdout()).trim().to_string())
        .map_err(|e| e.to_string());
    let std = std::process::Command::new("rv43-prog")
        .env("PATH", path)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .map_err(|e| e.to_string());
    (ours, std)
}

/// Probe: a `PATH` whose entry is not UTF-8 (`.env("PATH", ..)`), and one
/// with empty entries before it (`::dir`, the empty ones this process's
/// directory, where no `rv43-prog` is): pkit finds the program as std
/// does.
#[test]
fn a_non_utf8_path_entry_and_empty_entries_find_the_program_as_std_does() {
    in_suite(SUITE, || {
        let dir = prog_dir(b"rv43-path-\xff\xfe", "odd");
        let (ours, std) = both_with_path(dir.as_os_str());
        assert_eq!(ours, Ok("ran-odd".into()), "pkit");
        assert_eq!(std, Ok("ran-odd".into()), "std");
        let mut empties = std::ffi::OsString::from("::");
        empties.push(dir.as_os_str());
        let (ours, std) = both_with_path(&empties);
        assert_eq!(ours, Ok("ran-odd".into()), "pkit, empty entries first");
        assert_eq!(std, Ok("ran-odd".into()), "std, empty entries first");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// Probe: `env_remove("PATH")` and `env_clear()` with a bare name: pkit
/// searches its documented default (`/usr/local/bin:/usr/bin:/bin`), so
/// `sh` runs, as std's (glibc's default path) does.
#[test]
fn no_path_in_the_childs_environment_searches_the_default() {
    in_suite(SUITE, || {
        for (what, cmd, std) in [
            ("env_remove", Command::new("sh").env_remove("PATH"), {
                let mut c = std::process::Command::new("sh");
                c.env_remove("PATH");
                c
            }),
            ("env_clear", Command::new("sh").env_clear(), {
                let mut c = std::process::Command::new("sh");
                c.env_clear();
                c
            }),
        ] {
            let ours = cmd
                .args(["-c", "echo ok"])
                .blocking()
                .output()
                .map(|o| String::from_utf8_lossy(o.stdout()).trim().to_string())
                .map_err(|e| e.to_string());
            let mut std = std;
            let theirs = std
                .args(["-c", "echo ok"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .map_err(|e| e.to_string());
            assert_eq!(ours, Ok("ok".into()), "pkit {what}");
            assert_eq!(theirs, Ok("ok".into()), "std {what}");
        }
    });
}

/// The helper half of [`the_inherited_path_is_searched`]: run with its
/// `PATH` set (by the parent) to a directory of its own first; starts
/// `rv43-prog` inheriting the environment (f5df99b's path: the search in
/// the environment copy) and prints what it said.
#[test]
fn inherited_path_helper() {
    let Ok(path) = std::env::var("PATH") else {
        return;
    };
    if !path.contains("rv43-inherited") {
        return;
    }
    let out = Command::new("rv43-prog").blocking().output();
    match out {
        Ok(o) => println!("HELPER {}", String::from_utf8_lossy(o.stdout()).trim()),
        Err(e) => println!("HELPER error {e}"),
    }
}

/// Probe: a process whose own `PATH` (inherited, not set on the command)
/// names a directory first: a bare name is found there, as the copy of
/// the environment the child gets says.
#[test]
fn the_inherited_path_is_searched() {
    if std::env::var("PATH").is_ok_and(|p| p.contains("rv43-inherited")) {
        return;
    }
    in_suite(SUITE, || {
        let dir = prog_dir(b"rv43-inherited", "inherited");
        let path = format!("{}:/usr/bin:/bin", dir.display());
        let (status, out) = run_self_as("inherited_path_helper", ("PATH", &path), &[], LONG);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(status.is_some_and(|s| s.success()), "{status:?}: {out}");
        assert!(out.contains("HELPER ran-inherited"), "{out}");
    });
}
