//! Unit tests of the guards' session sweep (`session.rs`) with real
//! processes: a session of its own whose job leads a process group of its
//! own, as a job-control shell's job in a pty does.

use super::wire::probe_exact_pgroup;
use std::io::BufRead;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

/// Perl leading a session of its own (`setsid`): it forks a job that
/// leads a process group of its own and execs `sleep`, prints the job's
/// pid, then `$then` (`exec "sleep", "300"`: runs on; `exit 0`: exits).
/// The leader, its pidfd (opened while it is unreaped) and the job's pid,
/// once the job leads its process group.
fn session_with_a_job(then: &str) -> (std::process::Child, OwnedFd, u32) {
    // setsid in perl, not in a `pre_exec` hook: a fork would run the
    // guard's fork handler, which in a test that started and dropped a
    // guard replaces that guard's old descriptor number (`copies.rs`),
    // maybe this pipe's by now.
    let script = format!(
        r#"POSIX::setsid() > 0 or exit 8; my $c = fork(); defined $c or exit 7; if ($c == 0) {{ setpgrp(0, 0); exec "sleep", "300" }} print "$c\n"; close STDOUT; {then}"#
    );
    let mut leader = std::process::Command::new("perl")
        .args(["-MPOSIX", "-e", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("perl");
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(leader.id() as i32).expect("pid"),
        rustix::process::PidfdFlags::empty(),
    )
    .expect("pidfd");
    let mut line = String::new();
    std::io::BufReader::new(leader.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the job's pid");
    let job: u32 = line.trim().parse().expect("a pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pgrp_and_session(job).map(|(g, _)| g) != Some(job) {
        assert!(Instant::now() < deadline, "the job never led its group");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        pgrp_and_session(job).map(|(_, s)| s),
        Some(leader.id()),
        "the job is in the leader's session"
    );
    (leader, pidfd, job)
}

/// `/proc/<pid>/stat`'s process group and session.
fn pgrp_and_session(pid: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = text[text.rfind(')')? + 1..].split_whitespace().skip(2);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// Whether `pid` lives on once the guard (pid `guard`) has exited (it is
/// not our child: waited for by number). A SIGKILL the guard sent before
/// it exited may not have been acted on yet (a loaded machine: the process
/// shows `S` with the kill pending): such a process is waited for until it
/// is dead (a zombie counts), so it is never taken for one the guard
/// spared. Without a kill pending, and the guard gone, nothing will kill it.
fn alive_after_guard(guard: i32, pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let g = rustix::process::Pid::from_raw(guard).expect("a guard pid");
    while rustix::process::test_kill_process(g).is_ok() {
        assert!(Instant::now() < deadline, "the guard did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    loop {
        let running = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|t| {
            !matches!(
                t[t.rfind(')').unwrap_or(0) + 1..]
                    .trim_start()
                    .chars()
                    .next(),
                Some('Z' | 'X')
            )
        });
        if !running || !kill_pending(pid) {
            return running;
        }
        assert!(
            Instant::now() < deadline,
            "a pending SIGKILL was not acted on"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a SIGKILL is pending for `pid` (its thread's or its
/// process's set, `/proc/<pid>/status`).
fn kill_pending(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().any(|l| {
        let mask = l
            .strip_prefix("SigPnd:")
            .or_else(|| l.strip_prefix("ShdPnd:"));
        mask.and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & (1 << (libc::SIGKILL - 1)) != 0)
    })
}

/// SIGKILLs what a test left (the job is not our child).
fn cleanup(leader: &mut std::process::Child, job: u32) {
    if let Some(job) = rustix::process::Pid::from_raw(job as i32) {
        let _ = rustix::process::kill_process(job, rustix::process::Signal::KILL);
    }
    let _ = leader.kill();
    let _ = leader.wait();
}

/// The Linux guard sweeps a registered pty leader's session
/// (`FLAG_SESSION`): the job in its own process group dies, while its
/// leader is unreaped (pinned); and the same group registered without
/// the flag (not a pty) is not swept.
#[test]
fn the_linux_guard_sweeps_a_session_only_when_told() {
    for session in [false, true] {
        let (mut leader, pidfd, job) = session_with_a_job(r#"exec "sleep", "300""#);
        let g = super::start::start_with(probe_exact_pgroup()).expect("guard");
        let guard = g.pid;
        let pid = leader.id() as i32;
        let _t = g
            .register_pgroup(pidfd.as_fd(), pid, session)
            .expect("register");
        drop(g);
        let job_alive = alive_after_guard(guard, job);
        let status = leader.wait().expect("reap the leader");
        cleanup(&mut leader, job);
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "the leader was killed"
        );
        assert_eq!(
            job_alive, !session,
            "session flag {session}: job alive {job_alive}"
        );
    }
}

/// The Linux guard sweeps a pty leader's session whose leader was reaped
/// before the owner died (the number then held by nobody): what is left
/// in that session is ours.
#[test]
fn the_linux_guard_sweeps_a_session_whose_leader_was_reaped() {
    let (mut leader, pidfd, job) = session_with_a_job("exit 0");
    let pid = leader.id() as i32;
    leader.wait().expect("reap the leader");
    let g = super::start::start_with(probe_exact_pgroup()).expect("guard");
    let guard = g.pid;
    let _t = g
        .register_pgroup(pidfd.as_fd(), pid, true)
        .expect("register");
    drop(g);
    let job_alive = alive_after_guard(guard, job);
    cleanup(&mut leader, job);
    assert!(!job_alive, "the job of a reaped leader's session survived");
}

/// The portable guard: a registered pty session (session = the number)
/// whose number names a process of another start time (a stranger that
/// took the number and called `setsid`) is spared whole, its leader and
/// its job; one registered with no start time (0, unknown) has its
/// process group killed by number as before (the session check alone),
/// but its session is not swept (that needs the leader's start time); and
/// one registered as pkit does (the start time read) is swept.
#[test]
fn the_portable_guard_sweeps_only_a_session_it_knows_is_ours() {
    // (start time, leader killed, job killed)
    for (start, leader_dies, job_dies) in [
        (Some(1), false, false),
        (Some(0), true, false),
        (None, true, true),
    ] {
        let (mut leader, _pidfd, job) = session_with_a_job(r#"exec "sleep", "300""#);
        let pid = leader.id() as i32;
        let g = super::portable::start().expect("the portable guard");
        let guard = g.pid;
        let _t = match start {
            Some(start) => g.register_pgroup_started(pid, pid, start),
            None => g.register_pgroup_number(pid, Some(pid)),
        }
        .expect("register");
        drop(g);
        let job_alive = alive_after_guard(guard, job);
        let leader_alive = alive_after_guard(guard, leader.id());
        cleanup(&mut leader, job);
        assert_eq!(
            (!leader_alive, !job_alive),
            (leader_dies, job_dies),
            "start {start:?}: (leader killed, job killed)"
        );
    }
}

/// Each session's sweep gets its own share of the teardown's bound, at
/// most `SWEEP_CAP_MS`, never past the bound: a slow first session (one
/// that uses its whole share) leaves every later one a share of its own,
/// and all of them together stay within the bound (rv30 LOW: the first
/// could take the whole bound, leaving the rest one pass).
#[test]
fn each_session_sweep_has_its_own_share_of_the_teardown_bound() {
    use super::session::{sweep_deadline, SWEEP_CAP_MS};
    use super::wire::TEARDOWN_BOUND_MS;
    for sessions in [1usize, 2, 3, 5, 8, 100, 4096] {
        let deadline = TEARDOWN_BOUND_MS;
        let mut now = 0;
        for left in (1..=sessions).rev() {
            let own = sweep_deadline(now, deadline, left);
            assert!(own <= deadline, "{sessions}: past the bound");
            assert!(own - now <= SWEEP_CAP_MS, "{sessions}: over the cap");
            // The fair share of what is left, or the cap.
            let fair = (deadline - now) / left as i64;
            assert_eq!(own - now, fair.min(SWEEP_CAP_MS), "{sessions}, {left} left");
            // Each slow session uses up its share.
            now = own;
        }
        assert!(now <= deadline);
    }
    // Past the bound: no time, never a deadline behind `now`.
    assert_eq!(sweep_deadline(20_000, 10_000, 3), 20_000);
    // Two sessions with the whole bound: the first may not take it all.
    assert!(sweep_deadline(0, 10_000, 2) < 10_000);
    assert!(sweep_deadline(0, 10_000, 1) <= SWEEP_CAP_MS);
}

/// At the descriptor limit (`EMFILE`), a session member whose
/// `/proc/<pid>/stat` can't be opened is listed, not taken for gone (the
/// sweep then kills it by number): the listing runs in a forked child with
/// exactly one descriptor free, which the listing's `/proc` takes, and
/// must list this process, alive in the child's session.
#[test]
fn a_member_whose_stat_cant_be_opened_is_listed() {
    let mut buf = vec![0u8; super::wire::BUF_LEN];
    let parent = std::process::id() as i32;
    // Raw: the listing under test runs in a forked child that exhausts its
    // own descriptors (rustix has no fork).
    // SAFETY: fork(2); the child makes async-signal-safe calls only, on
    // memory allocated before the fork, and leaves with _exit.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
    if child == 0 {
        // SAFETY: the forked child (see above).
        unsafe {
            let mut lim = std::mem::MaybeUninit::<libc::rlimit>::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, lim.as_mut_ptr()) != 0 {
                libc::_exit(4);
            }
            let mut lim = lim.assume_init();
            lim.rlim_cur = lim.rlim_cur.min(64);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                libc::_exit(4);
            }
            let mut last = -1;
            for _ in 0..64 {
                let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
                if fd < 0 {
                    break;
                }
                last = fd;
            }
            if last < 0 || libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) >= 0 {
                libc::_exit(3);
            }
            // One free: the listing's /proc.
            libc::close(last);
            let mut seen = false;
            let listed = super::session::members(libc::getsid(0), &mut buf, &mut |pid| {
                seen |= pid == parent;
            });
            libc::_exit(match (listed == super::session::Listed::Whole, seen) {
                (false, _) => 2,
                (true, false) => 1,
                (true, true) => 0,
            });
        }
    }
    let mut status = 0;
    // Raw: the wait for the test's own raw fork.
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert!(libc::WIFEXITED(status), "the child: {status:#x}");
    let code = libc::WEXITSTATUS(status);
    assert_ne!(
        code, 1,
        "a live member with no descriptor free was taken for gone"
    );
    assert_eq!(code, 0, "the child could not run the listing (exit {code})");
}
