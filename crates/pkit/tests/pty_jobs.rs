//! A pty shell's job-control jobs (attack14 MEDIUM): an interactive shell
//! on a terminal puts each job in a process group of its own, in its
//! session. A group whose leader was started on a pty takes in that whole
//! session under process groups (pgroup, portable): close, shutdown,
//! signals, suspend, listings and the per-process tree all reach the jobs,
//! as a cgroup always did. The jobs ignore SIGHUP, so the terminal's
//! hangup ends none of them: only the session's sweep does.
//!
//! The limits stay: a program that calls `setsid` itself escapes, and a
//! group not started on a pty never reaches past its process group (never
//! the owner's session). Every mechanism.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, Group, MechanismChoice, RunningProcess, Signal};

/// An interactive `sh -i` on a pty in a fresh group of `choice`, told
/// `line`, which writes its jobs' pids and then `done` to `file` (see
/// [`JOBS`]); the group, the shell and the jobs' pids.
async fn interactive(
    choice: MechanismChoice,
    file: &TempPath,
    traps: &str,
) -> (Group, RunningProcess, Vec<u32>) {
    let group = group(choice);
    let p = group
        .start(
            &Command::new("sh")
                .arg("-i")
                .env("PS1", "$ ")
                .env("ENV", "/dev/null")
                .pty(24, 80)
                .stream_lines()
                .decoder(pkit::DecoderFactory::utf8_strip_vt()),
        )
        .unwrap_or_else(|e| panic!("{choice}: start: {e}"));
    let pty = p.pty().expect("pty");
    let line = format!("trap '' {traps}; {}", JOBS.replace("{0}", file.as_str()));
    pty.write_line(&line).await.expect("type");
    let jobs = file.wait_pids().await;
    assert_eq!(jobs.len(), 2, "{choice}: {jobs:?}");
    // Job control: each job leads a process group of its own, in the
    // shell's session (else this tests nothing the process group misses).
    let shell = stat(p.pid()).expect("shell");
    for &j in &jobs {
        let st = stat(j).expect("job runs");
        assert_eq!(
            st.pgrp, j,
            "{choice}: job {j} leads no process group: {st:?}"
        );
        assert_eq!(st.session, shell.session, "{choice}: job {j}: {st:?}");
        assert_ne!(st.pgrp, shell.pgrp, "{choice}: job {j}: {st:?}");
    }
    (group, p, jobs)
}

/// A background job and a foreground one (which stays running: the line
/// never ends), each writing its pid.
const JOBS: &str = "sleep 300 & echo $! >> {0}; (echo $(sh -c 'echo $PPID') >> {0}; echo done >> {0}; exec sleep 301)";

/// Every job of the interactive shell is gone when `close` returns: no
/// wait after it.
#[tokio::test]
async fn close_ends_every_job_of_an_interactive_pty_shell() {
    let s = begin("close_ends_every_job_of_an_interactive_pty_shell").await;
    for choice in mechanisms() {
        let file = TempPath::new("pty-jobs-close");
        let (group, p, jobs) = interactive(choice, &file, "HUP").await;
        let _escaped = KillOnDrop::new(jobs.clone());
        tokio::time::timeout(Duration::from_secs(60), group.close())
            .await
            .expect("close hung")
            .expect("close");
        let alive: Vec<u32> = jobs.iter().copied().filter(|&j| !pid_gone(j)).collect();
        assert!(alive.is_empty(), "{choice}: jobs {alive:?} outlived close");
        drop(p);
    }
    s.end().await;
}

/// A shutdown's grace waits for every job (they ignore SIGTERM), and its
/// report counts them: the wait takes a job in a process group of its own
/// for a member (one dropped from the wait was counted as exited in grace,
/// and the close's wait spun on it).
#[tokio::test]
async fn a_shutdown_waits_for_and_counts_every_job_of_a_pty_shell() {
    let s = begin("a_shutdown_waits_for_and_counts_every_job_of_a_pty_shell").await;
    for choice in mechanisms() {
        let file = TempPath::new("pty-jobs-shutdown");
        let (group, p, jobs) = interactive(choice, &file, "HUP TERM").await;
        let _escaped = KillOnDrop::new(jobs.clone());
        let report = tokio::time::timeout(
            Duration::from_secs(60),
            group.shutdown(Duration::from_millis(500)),
        )
        .await
        .expect("shutdown hung")
        .expect("shutdown");
        // The shell and both jobs, none of which ends on SIGTERM.
        assert_eq!(report.signalled(), 3, "{choice}: {report:?}");
        assert_eq!(report.exited_in_grace(), 0, "{choice}: {report:?}");
        assert_eq!(report.killed(), 3, "{choice}: {report:?}");
        let alive: Vec<u32> = jobs.iter().copied().filter(|&j| !pid_gone(j)).collect();
        assert!(
            alive.is_empty(),
            "{choice}: jobs {alive:?} outlived shutdown"
        );
        drop(p);
    }
    s.end().await;
}

/// Polls until `test` holds for every one of `pids`, or [`DEADLINE`].
async fn until_all(pids: &[u32], test: impl Fn(u32) -> bool) -> bool {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        if pids.iter().all(|&p| test(p)) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The group's listings include the jobs; suspend stops them and resume
/// continues them; a signal reaches them.
#[tokio::test]
async fn listings_suspend_and_signals_reach_a_pty_shells_jobs() {
    let s = begin("listings_suspend_and_signals_reach_a_pty_shells_jobs").await;
    for choice in mechanisms() {
        let file = TempPath::new("pty-jobs-signals");
        let (group, p, jobs) = interactive(choice, &file, "HUP").await;
        let _escaped = KillOnDrop::new(jobs.clone());
        let pids = group.pids().expect("pids");
        for j in &jobs {
            assert!(pids.contains(j), "{choice}: job {j} not in {pids:?}");
        }
        let active = group.stats().expect("stats").active_processes();
        assert!(active >= 3, "{choice}: {active} active, jobs {jobs:?}");

        group.suspend().await.expect("suspend");
        // A frozen cgroup's tasks don't show 'T': the cgroup's own tests
        // cover its freeze; here the process groups' SIGSTOP.
        if choice != MechanismChoice::Cgroup {
            let stopped = |j| stat(j).is_some_and(|st| st.state == 'T');
            assert!(
                until_all(&jobs, stopped).await,
                "{choice}: suspend left jobs running: {:?}",
                jobs.iter().map(|&j| stat(j)).collect::<Vec<_>>()
            );
        }
        group.resume().await.expect("resume");
        let running = |j| stat(j).is_some_and(|st| st.state != 'T');
        assert!(
            until_all(&jobs, running).await,
            "{choice}: resume left jobs stopped: {:?}",
            jobs.iter().map(|&j| stat(j)).collect::<Vec<_>>()
        );

        group.signal(Signal::Term).expect("signal");
        assert!(
            until_all(&jobs, pid_gone).await,
            "{choice}: SIGTERM missed jobs: {:?}",
            jobs.iter().map(|&j| stat(j)).collect::<Vec<_>>()
        );
        group.close().await.expect("close");
        drop(p);
    }
    s.end().await;
}

/// A process started on a pty with a timeout, in a group that stays open:
/// its tree (the per-process one, not the group's) is its whole session,
/// so the timeout ends the jobs its shell made with job control on.
#[tokio::test]
async fn a_timed_out_pty_shell_ends_its_jobs_while_the_group_stays_open() {
    let s = begin("a_timed_out_pty_shell_ends_its_jobs_while_the_group_stays_open").await;
    for choice in mechanisms() {
        let group = group(choice);
        // Growing timeouts until the jobs were up before the timeout
        // fired (a loaded machine may take longer).
        let mut limit = Duration::from_secs(2);
        let (shell, jobs) = loop {
            let file = TempPath::new("pty-jobs-tree");
            let script = format!(
                "set -m; trap '' HUP; sleep 300 & echo $! >> {0}; sleep 301 & echo $! >> {0}; echo done >> {0}; wait",
                file.as_str()
            );
            let mut p = group
                .start(
                    &Command::new("sh")
                        .args(["-c", &script])
                        .pty(24, 80)
                        .timeout(limit),
                )
                .unwrap_or_else(|e| panic!("{choice}: start: {e}"));
            let out = tokio::time::timeout(Duration::from_secs(60), p.wait())
                .await
                .expect("wait hung")
                .expect("wait");
            assert!(out.timed_out(), "{choice}: {out:?}");
            let text = std::fs::read_to_string(file.path()).unwrap_or_default();
            let pids: Vec<u32> = text.lines().filter_map(|l| l.parse().ok()).collect();
            if text.lines().any(|l| l == "done") {
                break (p.pid(), pids);
            }
            let _escaped = KillOnDrop::new(pids.clone());
            assert_gone(&pids, &format!("{choice}: jobs timed out early")).await;
            assert!(
                limit < Duration::from_secs(16),
                "{choice}: never ready: {text:?}"
            );
            limit *= 2;
        };
        let _escaped = KillOnDrop::new(jobs.clone());
        assert_eq!(jobs.len(), 2, "{choice}: {jobs:?}");
        if let Err(alive) = wait_gone(&jobs, DEADLINE).await {
            let st: Vec<_> = alive.iter().map(|&j| stat(j)).collect();
            panic!("{choice}: jobs {alive:?} of shell {shell} outlived its timeout: {st:?}");
        }
        group.close().await.expect("close");
    }
    s.end().await;
}

/// Never past the process group for a group not started on a pty (its
/// session is the owner's): a member that leaves the process group escapes
/// it (a cgroup holds it), and a process the test started itself, in the
/// test's own session, survives that group's teardown and a pty group's.
#[tokio::test]
async fn no_sweep_reaches_the_owners_session() {
    let s = begin("no_sweep_reaches_the_owners_session").await;
    for choice in mechanisms() {
        let mut own = ChildOnDrop(
            std::process::Command::new("sleep")
                .arg("302")
                .spawn()
                .expect("sleep"),
        );
        let own_pid = own.id();
        let file = TempPath::new("pty-jobs-away");
        let away = group(choice);
        let p = away
            .start(&Command::new("sh").args([
                "-c",
                "perl -e 'setpgrp(0, 0) or exit 9; exec \"sleep\", \"303\"' & echo $! >> \"$1\"; echo done >> \"$1\"; exec sleep 304",
                "sh",
                file.as_str(),
            ]))
            .unwrap_or_else(|e| panic!("{choice}: start: {e}"));
        let left = file.wait_pids().await;
        let _escaped = KillOnDrop::new(left.clone());
        // perl may not have called setpgrp yet.
        assert!(
            until_all(&left, |l| stat(l).is_some_and(|st| st.pgrp == l)).await,
            "{choice}: {left:?} never left its process group"
        );
        let pty_file = TempPath::new("pty-jobs-neighbour");
        let (pty_group, shell, jobs) = interactive(choice, &pty_file, "HUP").await;
        let _jobs = KillOnDrop::new(jobs.clone());
        pty_group.close().await.expect("close pty group");
        drop(shell);
        away.close().await.expect("close");
        drop(p);
        assert_alive(&[own_pid], &format!("{choice}: the test's own process"));
        match choice {
            MechanismChoice::Cgroup => {
                assert_gone(&left, &format!("{choice}: a member left its process group")).await
            }
            _ => assert_alive(&left, &format!("{choice}: a non-pty group's escapee")),
        }
        let _ = own.kill();
        let _ = own.wait();
        assert_gone(&jobs, &format!("{choice}: the pty group's jobs")).await;
    }
    s.end().await;
}

/// A member of the pty session that calls `setsid` leaves it: under
/// process groups it escapes the group's teardown (documented; only a
/// cgroup holds it).
#[tokio::test]
async fn a_pty_session_member_that_calls_setsid_escapes_process_groups() {
    let s = begin("a_pty_session_member_that_calls_setsid_escapes_process_groups").await;
    for choice in mechanisms() {
        let file = TempPath::new("pty-jobs-setsid");
        let script = format!(
            "trap '' HUP; perl -MPOSIX -e 'fork and exit 0; POSIX::setsid() or exit 9; open(my $f, \">>\", $ARGV[0]) or exit 8; print $f \"$$\\n\"; close $f; exec \"sleep\", \"305\"' {0}; sleep 300 & echo $! >> {0}.job; wait",
            file.as_str()
        );
        let (group, p) = start_pty_sh(choice, &script);
        let gone_away = pid_in_file(&file, "the setsid sleep").await;
        let _escaped = KillOnDrop::new(vec![gone_away]);
        let job_file = format!("{}.job", file.as_str());
        let deadline = std::time::Instant::now() + DEADLINE;
        let job: u32 = loop {
            if let Some(j) = std::fs::read_to_string(&job_file)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                break j;
            }
            assert!(std::time::Instant::now() < deadline, "{choice}: no job pid");
            tokio::time::sleep(POLL).await;
        };
        let _ = std::fs::remove_file(&job_file);
        let _job = KillOnDrop::new(vec![job]);
        assert!(
            until_all(&[gone_away], |g| stat(g).is_some_and(|st| st.session == g)).await,
            "{choice}: {gone_away} made no session"
        );
        group.close().await.expect("close");
        drop(p);
        assert_gone(&[job], &format!("{choice}: the session's job")).await;
        match choice {
            MechanismChoice::Cgroup => {
                assert_gone(&[gone_away], &format!("{choice}: setsid inside")).await
            }
            _ => assert_alive(&[gone_away], &format!("{choice}: setsid inside escapes")),
        }
    }
    s.end().await;
}
