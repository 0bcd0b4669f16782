//! rv28: hostile review of the pty session sweep (merge 7d6fe3f): a
//! pty-led group under process groups takes in its leader's whole
//! session. Findings are `#[ignore = "rv28: ..."]`d tests that fail on the
//! merged code; the rest are probes that pass (real assertions).

mod common;

use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, MechanismChoice, Signal};

/// The live (non-zombie) processes of session `sid`, from `/proc`.
fn session_procs(sid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| stat(p).is_some_and(|st| st.session == sid) && !pid_gone(p))
        .collect()
}

/// Polls until session `sid` has no live process, or `within`; what is
/// left (with its stat) otherwise.
async fn session_emptied(sid: u32, within: Duration) -> Result<(), Vec<(u32, Option<Stat>)>> {
    let deadline = Instant::now() + within;
    loop {
        let left = session_procs(sid);
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(left.into_iter().map(|p| (p, stat(p))).collect());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// SIGKILLs every process left in session `sid` (cleanup after a failure).
fn kill_session(sid: u32) {
    for p in session_procs(sid) {
        kill_pid(p);
    }
}

/// A job-control `sh` on a pty: 50 `sleep` jobs ignoring HUP and TERM (a
/// few of them stopped by SIGTSTP), and one job forking a `sleep` every
/// 20 ms (200 at most); `done` in `file` once all are up.
fn crowd_script(file: &str) -> String {
    format!(
        "set -m; trap '' HUP TERM; i=0; while [ $i -lt 50 ]; do sleep 300 & echo $! >> {0}; i=$((i+1)); done; \
         kill -TSTP $(head -n 5 {0}); \
         (n=0; while [ $n -lt 200 ]; do sleep 300 & n=$((n+1)); sleep 0.02; done; wait) & \
         echo done >> {0}; wait",
        file
    )
}

/// Close of a pty session with 50 jobs (TERM ignored, some stopped) and a
/// job that forks all along: returns in time, and nothing of the session
/// is left, under every mechanism.
#[tokio::test]
async fn close_ends_a_crowded_pty_session_with_a_forking_job() {
    let s = begin("close_ends_a_crowded_pty_session_with_a_forking_job").await;
    for choice in mechanisms() {
        let file = TempPath::new("rv28-crowd-close");
        let (group, p) = start_pty_sh(choice, &crowd_script(file.as_str()));
        let sid = p.pid();
        let jobs = file.wait_pids().await;
        assert_eq!(jobs.len(), 50, "{choice}: {jobs:?}");
        let pids = group.pids().expect("pids");
        assert!(pids.len() > 50, "{choice}: {} listed", pids.len());
        let closed = tokio::time::timeout(Duration::from_secs(60), group.close()).await;
        let left = session_emptied(sid, DEADLINE).await;
        kill_session(sid);
        closed.expect("close hung").expect("close");
        assert_eq!(left, Ok(()), "{choice}: session {sid} outlived close");
        drop(p);
    }
    s.end().await;
}

/// The same session dropped (no wait): every process of it is gone soon
/// after, the forking job's late children included.
#[tokio::test]
async fn drop_ends_a_crowded_pty_session_with_a_forking_job() {
    let s = begin("drop_ends_a_crowded_pty_session_with_a_forking_job").await;
    for choice in mechanisms() {
        let file = TempPath::new("rv28-crowd-drop");
        let (group, p) = start_pty_sh(choice, &crowd_script(file.as_str()));
        let sid = p.pid();
        let jobs = file.wait_pids().await;
        assert_eq!(jobs.len(), 50, "{choice}: {jobs:?}");
        drop(p);
        drop(group);
        let left = session_emptied(sid, DEADLINE).await;
        kill_session(sid);
        assert_eq!(left, Ok(()), "{choice}: session {sid} outlived Drop");
    }
    s.end().await;
}

/// Suspend (the shell and its jobs stop), then close and then drop: no
/// hang on the stopped session, nothing left.
#[tokio::test]
async fn a_suspended_pty_session_closes_and_drops_clean() {
    let s = begin("a_suspended_pty_session_closes_and_drops_clean").await;
    for choice in mechanisms() {
        for close in [true, false] {
            let file = TempPath::new("rv28-suspend");
            let script = format!(
                "set -m; trap '' HUP; sleep 300 & echo $! >> {0}; sleep 301 & echo $! >> {0}; echo done >> {0}; wait",
                file.as_str()
            );
            let (group, p) = start_pty_sh(choice, &script);
            let sid = p.pid();
            let jobs = file.wait_pids().await;
            tokio::time::timeout(Duration::from_secs(60), group.suspend())
                .await
                .expect("suspend hung")
                .expect("suspend");
            if close {
                tokio::time::timeout(Duration::from_secs(60), group.close())
                    .await
                    .expect("close of a suspended session hung")
                    .expect("close");
            } else {
                drop(group);
            }
            drop(p);
            let left = session_emptied(sid, DEADLINE).await;
            kill_session(sid);
            assert_eq!(left, Ok(()), "{choice} close={close}: jobs {jobs:?}");
        }
    }
    s.end().await;
}

/// `signal(Hup)` reaches the jobs in process groups of their own (they
/// don't ignore it); the owner's own process, in the owner's session,
/// survives.
#[tokio::test]
async fn a_hangup_to_a_pty_group_reaches_its_jobs_and_not_the_owner() {
    let s = begin("a_hangup_to_a_pty_group_reaches_its_jobs_and_not_the_owner").await;
    for choice in mechanisms() {
        let mut own = ChildOnDrop(
            std::process::Command::new("sleep")
                .arg("310")
                .spawn()
                .expect("sleep"),
        );
        let file = TempPath::new("rv28-hup");
        let script = format!(
            "set -m; sleep 300 & echo $! >> {0}; sleep 301 & echo $! >> {0}; echo done >> {0}; wait",
            file.as_str()
        );
        let (group, p) = start_pty_sh(choice, &script);
        let jobs = file.wait_pids().await;
        let _k = KillOnDrop::new(jobs.clone());
        group.signal(Signal::Hup).expect("signal");
        let gone = wait_gone(&jobs, DEADLINE).await;
        // What a job that outlived the hangup was (state, command name,
        // signal masks), before the close below ends it.
        let seen: Vec<String> = gone
            .as_ref()
            .err()
            .into_iter()
            .flatten()
            .map(|&j| {
                let masks = std::fs::read_to_string(format!("/proc/{j}/status"))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.starts_with("Sig") || l.starts_with("ShdPnd"))
                    .collect::<Vec<_>>()
                    .join(" ");
                format!("{j} {:?} {:?} {masks}", stat(j), comm(j))
            })
            .collect();
        assert_alive(&[own.id()], &format!("{choice}: the owner's own sleep"));
        let _ = own.kill();
        let _ = own.wait();
        group.close().await.expect("close");
        drop(p);
        assert_eq!(gone, Ok(()), "{choice}: SIGHUP missed jobs: {seen:?}");
    }
    s.end().await;
}

/// `pids()` and `stats()` while the session's jobs exit all the time: no
/// error, no hang; then close leaves nothing. The listings go on while the
/// 400 jobs start and exit, until the shell has waited for them all (it
/// writes `exited`), at most 3 s: a fixed 3 s window, before, listed a
/// quiet session once the jobs were gone (under a second, idle).
#[tokio::test]
async fn listings_race_exiting_jobs_of_a_pty_session() {
    let s = begin("listings_race_exiting_jobs_of_a_pty_session").await;
    for choice in mechanisms() {
        let file = TempPath::new("rv28-race");
        let script = format!(
            "set -m; trap '' HUP; echo done >> {0}; n=0; while [ $n -lt 400 ]; do true & n=$((n+1)); done; wait; echo exited >> {0}; sleep 300",
            file.as_str()
        );
        let (group, p) = start_pty_sh(choice, &script);
        let sid = p.pid();
        file.wait_pids().await;
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut turns = 0;
        let mut looked = Instant::now();
        while Instant::now() < deadline {
            if looked.elapsed() >= POLL {
                looked = Instant::now();
                let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                if text.lines().any(|l| l == "exited") {
                    break;
                }
            }
            group
                .pids()
                .unwrap_or_else(|e| panic!("{choice}: pids: {e}"));
            group
                .stats()
                .unwrap_or_else(|e| panic!("{choice}: stats: {e}"));
            turns += 1;
        }
        assert!(turns > 0);
        tokio::time::timeout(Duration::from_secs(60), group.close())
            .await
            .expect("close hung")
            .expect("close");
        drop(p);
        let left = session_emptied(sid, DEADLINE).await;
        kill_session(sid);
        assert_eq!(left, Ok(()), "{choice}");
    }
    s.end().await;
}

/// The pty leader exits at once (left a zombie, its number pinned),
/// leaving a job that ignores SIGHUP: the group still lists it, and close
/// ends it; a second pty start in the group is refused (it would lead a
/// session of its own, outside the group), and so is a plain one (it
/// can't join a process group of another session); nothing leaks.
#[tokio::test]
async fn a_pty_leader_that_exits_leaves_its_jobs_in_reach_and_a_second_start_is_refused() {
    let s = begin("a_pty_leader_that_exits_leaves_its_jobs_in_reach_and_a_second_start_is_refused")
        .await;
    for choice in mechanisms() {
        let file = TempPath::new("rv28-leader-exits");
        let script = format!(
            "set -m; trap '' HUP; sleep 300 & echo $! >> {0}; echo done >> {0}; exit 0",
            file.as_str()
        );
        let (group, mut p) = start_pty_sh(choice, &script);
        let sid = p.pid();
        let jobs = file.wait_pids().await;
        let _k = KillOnDrop::new(jobs.clone());
        tokio::time::timeout(Duration::from_secs(60), p.wait())
            .await
            .expect("wait hung")
            .expect("wait");
        assert_alive(&jobs, &format!("{choice}: the job after its shell exited"));
        let pids = group.pids().expect("pids");
        assert!(
            pids.contains(&jobs[0]),
            "{choice}: {jobs:?} not in {pids:?}"
        );
        if choice != MechanismChoice::Cgroup {
            let again = group.start(&Command::new("sh").args(["-c", "sleep 306"]).pty(24, 80));
            assert!(again.is_err(), "{choice}: a second pty start was let in");
            let plain = group.start(&Command::new("sleep").arg("307"));
            assert!(
                plain.is_err(),
                "{choice}: a plain start joined another session"
            );
        }
        tokio::time::timeout(Duration::from_secs(60), group.close())
            .await
            .expect("close hung")
            .expect("close");
        drop(p);
        let left = session_emptied(sid, DEADLINE).await;
        kill_session(sid);
        assert_eq!(left, Ok(()), "{choice}");
    }
    s.end().await;
}

// ---------------------------------------------------------------------------
// A stranger's session with the leader's old number (owner ignores SIGCHLD)
// ---------------------------------------------------------------------------

/// HIGH, fixed: a daemon that took a kernel-reaped pty leader's number
/// (the classic double fork: fork, `setsid`, fork, the session leader
/// exits) leaves a session numbered like the group's old one with no
/// process holding the number, which was then swept as the group's: the
/// group's `pids` listed the daemon, `close` waited its whole deadline for
/// it (5 s) and, leading a process group of its own, `kill` and `close`
/// SIGKILLed it. A kernel-reaped leader's session is no longer swept.
/// Process-wide SIGCHLD disposition: run in a fresh copy of this binary
/// (`inner_stranger`).
#[test]
fn a_daemon_in_a_reused_session_number_is_not_swept() {
    // Alone: it steers pid allocation (`take_number`).
    in_suite_exclusive("a_daemon_in_a_reused_session_number_is_not_swept", || {
        if portable_run() {
            skipped(
                "the reused-session test",
                "the portable backend's SIGCHLD handler replaces SIG_IGN",
            );
            return;
        }
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "inner_stranger",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PKIT_RV28_STRANGER", "1")
            .output()
            .expect("re-run the test binary");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("INNER-DONE"),
            "{}\n{text}",
            out.status
        );
    });
}

#[test]
fn inner_stranger() {
    if std::env::var_os("PKIT_RV28_STRANGER").is_none() {
        return;
    }
    // SAFETY: test-only, in a fresh process, before any runtime thread.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_IGN;
        assert_eq!(libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut()), 0);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(stranger());
    println!("INNER-DONE");
}

async fn stranger() {
    let mut failed = Vec::new();
    for own_pgroup in [false, true] {
        if let Some(why) = stranger_case(own_pgroup).await {
            failed.push(why);
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

/// `own_pgroup`: the daemon leads a process group of its own in the
/// stranger's session (a job of a job-control shell that exited), else it
/// stays in the process group of the session's (gone) leader.
async fn stranger_case(own_pgroup: bool) -> Option<String> {
    let group = group(MechanismChoice::ProcessGroup);
    let mut leader = group
        .start(&Command::new("sh").args(["-c", "exit 0"]).pty(24, 80))
        .expect("start");
    let number = leader.pid();
    leader.wait().await.expect("wait");
    // Reaped by the kernel (SIGCHLD ignored), no job left: the number is
    // free. A daemon's middle process takes it, leads a session, forks
    // the daemon and exits.
    let Some(daemon) = take_number(number, own_pgroup) else {
        eprintln!("skipped: ns_last_pid is not writable here");
        return None;
    };
    let _daemon = KillOnDrop::new(vec![daemon]);
    // Its session is the group's old number; no process holds that pid.
    let deadline = Instant::now() + DEADLINE;
    while stat(number).is_some() && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    // The job-like daemon has left the leader's process group.
    while own_pgroup && stat(daemon).is_some_and(|s| s.pgrp != daemon) && Instant::now() < deadline
    {
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(stat(daemon).map(|s| s.session), Some(number));
    let listed = group.pids().expect("pids");
    group.kill().expect("kill");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_kill = !pid_gone(daemon);
    drop(leader);
    let t = Instant::now();
    group.close().await.expect("close");
    let took = t.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_close = !pid_gone(daemon);
    let found = (listed.contains(&daemon), after_kill, after_close);
    // Left (LOW, as before the sweep): in the leader's old process group
    // the daemon is listed, because a process group is listed by its
    // number, exact only while a process of ours holds it (gotchas.md,
    // "SIGCHLD ignored"); it is not signalled (the leader's pidfd is).
    let want = (!own_pgroup, true, true);
    (found != want || took > Duration::from_secs(2)).then(|| {
        format!(
            "own pgroup {own_pgroup}: a stranger's daemon {daemon} in a session numbered {number} \
             (the group's old one): (listed by pids(), alive after kill(), alive after close()) \
             = {found:?}; close took {took:?}"
        )
    })
}

/// Gives pid `number` (free: its holder was reaped) to a daemon's middle
/// process (ns_last_pid, a perl double fork): it leads a session, which is
/// numbered `number`, forks the daemon (a `sleep 120`, leading a process
/// group of its own if `own_pgroup`) and exits. The daemon's pid; `None`
/// where ns_last_pid is not writable.
pub(crate) fn take_number(number: u32, own_pgroup: bool) -> Option<u32> {
    let daemonize = r#"use POSIX; exit 3 unless $$ == $ARGV[0]; POSIX::setsid() or exit 9; my $p = fork; if (!$p) { setpgrp(0, 0) if $ARGV[1]; open STDOUT, ">", "/dev/null"; exec "sleep", "120" } $| = 1; print "$p\n"; exit 0"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "could not get pid {number} again"
        );
        if std::fs::write("/proc/sys/kernel/ns_last_pid", (number - 1).to_string()).is_err() {
            return None;
        }
        let mut child = std::process::Command::new("perl")
            .args([
                "-e",
                daemonize,
                &number.to_string(),
                if own_pgroup { "1" } else { "" },
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("perl");
        let got = child.id();
        let mut line = String::new();
        use std::io::BufRead;
        let _ = std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
        // ECHILD once it has exited (the kernel reaped it).
        let _ = child.wait();
        if got == number {
            break Some(line.trim().parse().expect("the daemon's pid"));
        }
    }
}

/// rv29: the guard's twin of the HIGH above (fixed by
/// `place_guard::guard_session`): an owner that ignores SIGCHLD
/// (`inner_guard_stranger`, a fresh copy of this binary) starts a pty group
/// under process groups whose leader exits, kernel-reaped; a stranger's
/// daemon then takes the leader's number as its session, and the owner is
/// SIGKILLed. Linux's guard, told to sweep the leader's session, swept the
/// daemon's: it must survive the guard (watched 1 s after the guard exits:
/// a gone guard sends nothing more, and a SIGKILL it sent before its exit
/// ends its target in milliseconds; 5 s before, all of it waiting).
#[test]
fn the_guard_spares_a_daemon_in_a_reused_session_number() {
    // Alone: its owner steers pid allocation (`take_number`).
    in_suite_exclusive(
        "the_guard_spares_a_daemon_in_a_reused_session_number",
        || {
            if portable_run() {
                skipped(
                    "the guard's reused-session test",
                    "the portable backend's SIGCHLD handler replaces SIG_IGN",
                );
                return;
            }
            let exe = std::env::current_exe().expect("test binary");
            let file = TempPath::new("rv29-guard-stranger");
            let mut owner = ChildOnDrop(
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "inner_guard_stranger",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env("PKIT_RV29_GUARD_STRANGER", file.as_str())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("owner"),
            );
            let deadline = Instant::now() + Duration::from_secs(60);
            let text = loop {
                let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                if text.lines().any(|l| l == "done" || l == "skip") {
                    break text;
                }
                if Instant::now() >= deadline {
                    let _ = owner.kill();
                    let _ = owner.wait();
                    panic!("the owner never got ready: {text:?}");
                }
                std::thread::sleep(POLL);
            };
            if text.lines().any(|l| l == "skip") {
                let _ = owner.kill();
                let _ = owner.wait();
                skipped(
                    "the guard's reused-session test",
                    "ns_last_pid is not writable here",
                );
                return;
            }
            let nums: Vec<u32> = text.lines().filter_map(|l| l.parse().ok()).collect();
            let [number, daemon, guard] = nums[..] else {
                panic!("owner wrote {text:?}");
            };
            let _daemon = KillOnDrop::new(vec![daemon]);
            assert_eq!(
                stat(daemon).map(|s| (s.session, s.pgrp)),
                Some((number, daemon)),
                "the daemon is not in the leader's old session number"
            );
            assert!(stat(number).is_none(), "pid {number} is held");
            assert!(!pid_gone(guard), "no guard {guard}");
            let _ = owner.kill();
            let _ = owner.wait();
            let deadline = Instant::now() + Duration::from_secs(20);
            while !pid_gone(guard) {
                assert!(
                    Instant::now() < deadline,
                    "the guard {guard} outlived its owner"
                );
                std::thread::sleep(POLL);
            }
            let guard_gone = Instant::now();
            let watch = guard_gone + Duration::from_secs(1);
            let mut killed = None;
            while Instant::now() < watch {
                if pid_gone(daemon) {
                    killed = Some(guard_gone.elapsed());
                    break;
                }
                std::thread::sleep(POLL);
            }
            let survived = !pid_gone(daemon);
            kill_pid(daemon);
            assert!(
                survived,
                "the guard swept a stranger's daemon {daemon} in a session numbered {number} \
                 (the kernel-reaped leader's): gone {killed:?} after the guard's exit"
            );
        },
    );
}

#[test]
fn inner_guard_stranger() {
    let Ok(file) = std::env::var("PKIT_RV29_GUARD_STRANGER") else {
        return;
    };
    // SAFETY: test-only, in a fresh process, before any runtime thread.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_IGN;
        assert_eq!(libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut()), 0);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let group = group(MechanismChoice::ProcessGroup);
        let mut leader = group
            .start(&Command::new("sh").args(["-c", "exit 0"]).pty(24, 80))
            .expect("start");
        let number = leader.pid();
        leader.wait().await.expect("wait");
        let deadline = Instant::now() + DEADLINE;
        while stat(number).is_some() && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        let Some(daemon) = take_number(number, true) else {
            std::fs::write(&file, "skip\n").expect("write");
            return;
        };
        while stat(daemon).is_some_and(|s| s.pgrp != daemon) && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        let guard = pkit::host_containment().guard.pid.expect("the guard's pid");
        std::fs::write(&file, format!("{number}\n{daemon}\n{guard}\ndone\n")).expect("write");
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(leader);
        drop(group);
    });
}

// ---------------------------------------------------------------------------
// No session scan for a group not started on a pty
// ---------------------------------------------------------------------------

/// A group not started on a pty never scans for a session: a fresh copy of
/// this binary (`inner_nonpty`: start, pids, stats, signal, suspend,
/// resume, a timed-out process's tree, kill, close, Drop) run under
/// `strace -f -e trace=getsid` makes a handful of `getsid` calls, where
/// one session scan makes one per process on the host.
#[test]
fn non_pty_groups_make_no_session_scan() {
    in_suite("non_pty_groups_make_no_session_scan", || {
        let strace = std::process::Command::new("strace").arg("-V").output();
        if !strace.is_ok_and(|o| o.status.success()) {
            skipped("the getsid count", "no strace here");
            return;
        }
        // The case and its control (one pty group's signal makes a session
        // scan) at once: two processes, each traced on its own.
        let (non_pty, pty) = std::thread::scope(|s| {
            let non_pty = s.spawn(|| getsid_calls("non-pty"));
            let pty = s.spawn(|| getsid_calls("pty"));
            (
                non_pty.join().expect("the non-pty run"),
                pty.join().expect("the pty run"),
            )
        });
        let Some((non_pty, pty)) = non_pty.zip(pty) else {
            skipped("the getsid count", "ptrace is not permitted here");
            return;
        };
        assert!(
            pty > 8,
            "the control saw no session scan: {pty} getsid calls"
        );
        assert!(
            non_pty < 8,
            "{non_pty} getsid calls for non-pty groups (a pty group's signal: {pty})"
        );
    });
}

/// How many `getsid` calls `inner_nonpty` makes in `case`, run under
/// strace; `None` where ptrace is refused.
fn getsid_calls(case: &str) -> Option<usize> {
    let exe = std::env::current_exe().expect("test binary");
    let log = TempPath::new("rv28-strace");
    let out = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=getsid", "-o", log.as_str()])
        .arg(&exe)
        .args(["--exact", "inner_nonpty", "--nocapture", "--test-threads=1"])
        .env("PKIT_RV28_NONPTY", case)
        .output()
        .expect("strace the test binary");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if text.contains("PTRACE_TRACEME") || text.contains("Operation not permitted") {
        return None;
    }
    assert!(
        out.status.success() && text.contains("INNER-DONE"),
        "{case}: {}\n{text}",
        out.status
    );
    Some(
        std::fs::read_to_string(log.path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("getsid("))
            .count(),
    )
}

#[test]
fn inner_nonpty() {
    let Ok(case) = std::env::var("PKIT_RV28_NONPTY") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for choice in mechanisms() {
            if case == "pty" {
                if choice == MechanismChoice::Cgroup {
                    continue;
                }
                let (group, p) = start_pty_sh(choice, "sleep 300");
                group.signal(Signal::Hup).expect("signal");
                group.close().await.expect("close");
                drop(p);
                continue;
            }
            let group = group(choice);
            let p = group
                .start(&Command::new("sh").args(["-c", "sleep 300 & sleep 301; wait"]))
                .expect("start");
            let mut t = group
                .start(
                    &Command::new("sh")
                        .args(["-c", "sleep 302 & sleep 303"])
                        .timeout(Duration::from_millis(300)),
                )
                .expect("start");
            group.pids().expect("pids");
            group.stats().expect("stats");
            group.suspend().await.expect("suspend");
            group.resume().await.expect("resume");
            group.signal(Signal::Hup).expect("signal");
            t.wait().await.expect("wait");
            group.kill().expect("kill");
            group.close().await.expect("close");
            drop(p);
            let dropped = crate::group(choice);
            let q = dropped
                .start(&Command::new("sh").args(["-c", "sleep 304 & sleep 305"]))
                .expect("start");
            drop(q);
            drop(dropped);
        }
    });
    println!("INNER-DONE");
}

// ---------------------------------------------------------------------------
// Owner death
// ---------------------------------------------------------------------------

/// MEDIUM, fixed (the guards sweep the session, pty2): the owner SIGKILLed
/// while a pty group's shell has a job in a process group of its own
/// (ignoring SIGHUP, as `nohup` makes it): the owner-death guard ended the
/// group, and under process groups killed only its process group
/// (`killpg`), not the session: the job outlived its owner.
#[test]
fn owner_death_ends_a_pty_sessions_jobs() {
    in_suite("owner_death_ends_a_pty_sessions_jobs", || {
        let exe = std::env::current_exe().expect("test binary");
        let failed = std::sync::Mutex::new(Vec::new());
        // The mechanisms at once: each its own owner, pty session and jobs.
        at_once(mechanisms(), |choice| {
            let file = TempPath::new("rv28-owner");
            let mut owner = ChildOnDrop(
                std::process::Command::new(&exe)
                    .args(["--exact", "inner_owner", "--nocapture", "--test-threads=1"])
                    .env("PKIT_RV28_OWNER", file.as_str())
                    .env("PKIT_RV28_CHOICE", choice.to_string())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("owner"),
            );
            let deadline = Instant::now() + Duration::from_secs(30);
            let jobs: Vec<u32> = loop {
                let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                if text.lines().any(|l| l == "done") {
                    break text.lines().filter_map(|l| l.parse().ok()).collect();
                }
                assert!(Instant::now() < deadline, "{choice}: owner never ready");
                std::thread::sleep(POLL);
            };
            let _k = KillOnDrop::new(jobs.clone());
            let _ = owner.kill();
            let _ = owner.wait();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            if let Err(alive) = rt.block_on(wait_gone(&jobs, Duration::from_secs(20))) {
                let st: Vec<_> = alive.iter().map(|&p| stat(p)).collect();
                failed.lock().unwrap().push(format!(
                    "{choice}: jobs {alive:?} outlived their owner: {st:?}"
                ));
            }
        });
        let failed = failed.into_inner().unwrap();
        assert!(failed.is_empty(), "{failed:#?}");
    });
}

/// rv29 probe: the owner SIGKILLed while its pty group's shell has 50
/// jobs ignoring HUP and TERM (5 of them stopped) and one job forking a
/// `sleep` every 20 ms: the guard's session sweep, pass after pass, leaves
/// no process of the session (each mechanism's guard).
#[test]
fn owner_death_ends_a_crowded_forking_pty_session() {
    in_suite("owner_death_ends_a_crowded_forking_pty_session", || {
        let exe = std::env::current_exe().expect("test binary");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut failed = Vec::new();
        for choice in mechanisms() {
            let file = TempPath::new("rv29-crowd");
            let mut owner = ChildOnDrop(
                std::process::Command::new(&exe)
                    .args(["--exact", "inner_owner", "--nocapture", "--test-threads=1"])
                    .env("PKIT_RV28_OWNER", file.as_str())
                    .env("PKIT_RV28_CHOICE", choice.to_string())
                    .env("PKIT_RV29_CROWD", "1")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("owner"),
            );
            let deadline = Instant::now() + Duration::from_secs(60);
            let jobs: Vec<u32> = loop {
                let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                if text.lines().any(|l| l == "done") {
                    break text.lines().filter_map(|l| l.parse().ok()).collect();
                }
                if Instant::now() >= deadline {
                    let _ = owner.kill();
                    let _ = owner.wait();
                    panic!("{choice}: owner never ready");
                }
                std::thread::sleep(POLL);
            };
            let sid = stat(jobs[0]).expect("a job").session;
            assert_ne!(sid, std::process::id(), "{choice}: not a pty session");
            // The forker is at work.
            std::thread::sleep(Duration::from_millis(500));
            let _ = owner.kill();
            let _ = owner.wait();
            let left = rt.block_on(session_emptied(sid, Duration::from_secs(20)));
            kill_session(sid);
            if let Err(left) = left {
                failed.push(format!(
                    "{choice}: {} processes of session {sid} outlived their owner: {:?}",
                    left.len(),
                    &left[..left.len().min(5)]
                ));
            }
        }
        assert!(failed.is_empty(), "{failed:#?}");
    });
}

#[test]
fn inner_owner() {
    let Ok(file) = std::env::var("PKIT_RV28_OWNER") else {
        return;
    };
    let choice = MechanismChoice::parse(&std::env::var("PKIT_RV28_CHOICE").expect("choice"))
        .expect("a mechanism");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let script = if std::env::var_os("PKIT_RV29_CROWD").is_some() {
            crowd_script(&file)
        } else {
            format!(
                "set -m; trap '' HUP; sleep 300 & echo $! >> {0}; sleep 301 & echo $! >> {0}; echo done >> {0}; wait",
                file
            )
        };
        let (_group, _p) = start_pty_sh(choice, &script);
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

/// A second pkit inside a pty session (this binary's `inner_owner`, whose
/// own pty group's shell has two HUP-ignoring jobs): the outer group's
/// close ends its whole session, the inner pkit with it; the inner pty
/// session's jobs are then left to the inner pkit's guard, which (as
/// above, MEDIUM, fixed) killed only their shell's process group under
/// process groups.
#[tokio::test]
async fn a_nested_pkits_pty_jobs_end_with_the_outer_pty_group() {
    let s = begin("a_nested_pkits_pty_jobs_end_with_the_outer_pty_group").await;
    let exe = std::env::current_exe().expect("test binary");
    let mut failed = Vec::new();
    for choice in mechanisms() {
        let file = TempPath::new("rv28-nested");
        let group = group(choice);
        let p = group
            .start(
                &Command::new(&exe)
                    .args(["--exact", "inner_owner", "--nocapture", "--test-threads=1"])
                    .env("PKIT_RV28_OWNER", file.as_str())
                    .env("PKIT_RV28_CHOICE", choice.to_string())
                    .pty(24, 80),
            )
            .unwrap_or_else(|e| panic!("{choice}: start: {e}"));
        let sid = p.pid();
        let jobs = file.wait_pids().await;
        let _k = KillOnDrop::new(jobs.clone());
        tokio::time::timeout(Duration::from_secs(60), group.close())
            .await
            .expect("close hung")
            .expect("close");
        drop(p);
        let outer = session_emptied(sid, DEADLINE).await;
        kill_session(sid);
        assert_eq!(outer, Ok(()), "{choice}: the outer session outlived close");
        if let Err(alive) = wait_gone(&jobs, Duration::from_secs(20)).await {
            let st: Vec<_> = alive.iter().map(|&p| stat(p)).collect();
            failed.push(format!("{choice}: inner jobs {alive:?} outlived: {st:?}"));
        }
    }
    s.end().await;
    assert!(failed.is_empty(), "{failed:#?}");
}

// ---------------------------------------------------------------------------
// rv29: a session member the guard may not kill
// ---------------------------------------------------------------------------

/// rv29 MEDIUM, fixed (a member the guard may not signal is not waited
/// for): an owner running as `nobody` (`inner_eperm_owner`)
/// has a pty group whose shell's job became root (a setuid copy of
/// `setpriv`, as `sudo` does), so the guard's SIGKILL gets `EPERM`; a
/// second, plain group is registered after it. The guard's sweep sees the
/// root job live pass after pass and looped to its teardown bound (10 s)
/// before it reached the later group: that group's process outlived its
/// owner by ~10 s (and the guard listed `/proc` every 16 ms meanwhile).
#[test]
fn an_unkillable_session_member_does_not_hold_the_guards_other_groups() {
    in_suite(
        "an_unkillable_session_member_does_not_hold_the_guards_other_groups",
        || {
            let setpriv = TempPath::new("rv29-setpriv");
            let cp = std::process::Command::new("sh")
                .args([
                    "-c",
                    &format!(
                        "cp \"$(command -v setpriv)\" {0} && chmod 4755 {0}",
                        setpriv.as_str()
                    ),
                ])
                .status();
            if !cp.is_ok_and(|s| s.success())
                || std::os::unix::fs::MetadataExt::uid(
                    &std::fs::metadata("/proc/self").expect("/proc"),
                ) != 0
            {
                skipped("the EPERM sweep test", "needs root and setpriv");
                return;
            }
            let exe = std::env::current_exe().expect("test binary");
            let mut failed = Vec::new();
            for choice in mechanisms() {
                if choice == MechanismChoice::Cgroup {
                    continue;
                }
                let file = TempPath::new("rv29-eperm");
                std::fs::write(file.path(), "").expect("file");
                let _ = std::process::Command::new("chmod")
                    .args(["666", file.as_str()])
                    .status();
                let owner = std::process::Command::new("setpriv")
                    .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                    .arg(&exe)
                    .args([
                        "--exact",
                        "inner_eperm_owner",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env("PKIT_RV29_EPERM", file.as_str())
                    .env("PKIT_RV29_SETPRIV", setpriv.as_str())
                    .env("PKIT_RV29_CHOICE", choice.to_string())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("owner");
                // Killed and reaped however this round ends (a failed
                // assertion below must not leave the owner to the next test).
                let mut owner = ChildOnDrop(owner);
                let owner = &mut owner.0;
                let deadline = Instant::now() + Duration::from_secs(30);
                let pids: Vec<u32> = loop {
                    let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                    if text.lines().any(|l| l == "done") {
                        break text.lines().filter_map(|l| l.parse().ok()).collect();
                    }
                    if Instant::now() >= deadline {
                        let _ = owner.kill();
                        let _ = owner.wait();
                        panic!("{choice}: the owner never got ready: {text:?}");
                    }
                    std::thread::sleep(POLL);
                };
                let _k = KillOnDrop::new(pids.clone());
                let [root_job, later] = pids[..] else {
                    panic!("{choice}: owner wrote {pids:?}");
                };
                // `$!` is written right after the shell's fork: on a loaded
                // machine the job may not have run the setuid `setpriv` yet.
                let is_roots = || {
                    std::fs::read_to_string(format!("/proc/{root_job}/status"))
                        .unwrap_or_default()
                        .lines()
                        .find(|l| l.starts_with("Uid:"))
                        .map(|l| l.split_whitespace().nth(1) == Some("0"))
                };
                let deadline = Instant::now() + Duration::from_secs(30);
                while is_roots() != Some(true) && Instant::now() < deadline {
                    std::thread::sleep(POLL);
                }
                assert_eq!(is_roots(), Some(true), "{choice}: the job is not root's");
                let _ = owner.kill();
                let _ = owner.wait();
                let t = Instant::now();
                let deadline = t + Duration::from_secs(20);
                while !pid_gone(later) && Instant::now() < deadline {
                    std::thread::sleep(POLL);
                }
                let took = t.elapsed();
                kill_pid(root_job);
                kill_pid(later);
                if took > Duration::from_secs(5) {
                    failed.push(format!(
                        "{choice}: a later group's process outlived its owner by {took:?} \
                         (a pty session member of root's, unkillable by the guard, in an earlier group)"
                    ));
                }
            }
            assert!(failed.is_empty(), "{failed:#?}");
        },
    );
}

#[test]
fn inner_eperm_owner() {
    let Ok(file) = std::env::var("PKIT_RV29_EPERM") else {
        return;
    };
    let setpriv = std::env::var("PKIT_RV29_SETPRIV").expect("setpriv");
    let choice = MechanismChoice::parse(&std::env::var("PKIT_RV29_CHOICE").expect("choice"))
        .expect("a mechanism");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let script = format!(
            "set -m; {setpriv} --reuid=0 --regid=0 --clear-groups sleep 300 & echo $! >> {file}; wait"
        );
        let (_a, _p) = start_pty_sh(choice, &script);
        let deadline = Instant::now() + DEADLINE;
        while std::fs::read_to_string(&file).unwrap_or_default().lines().count() < 1 {
            assert!(Instant::now() < deadline, "no root job");
            tokio::time::sleep(POLL).await;
        }
        let b = group(choice);
        let q = b
            .start(&Command::new("sleep").arg("301"))
            .expect("start");
        let later = q.pid();
        let mut f = std::fs::OpenOptions::new().append(true).open(&file).expect("file");
        use std::io::Write;
        writeln!(f, "{later}\ndone").expect("write");
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(q);
        drop(b);
    });
}
