//! A hostile user against the core (fourth pass of 2026-12-03): programs
//! that leave the container pkit put them in. Every mechanism.

mod common;

use std::time::Duration;

use common::*;
use pkit::{MechanismChoice, Outcome};

/// The script that makes the program leave its container, then `exec
/// sleep 300` (so the program's pid stays the started one). Under a cgroup
/// (as root: only root can move a process across cgroups it does not own)
/// it writes its pid to the owner's own cgroup; under a process group it
/// moves to `anchor`'s process group (a group leader may join another
/// group of its session; perl does, skipped without it). `None` when
/// this user can't, or perl is missing (said on stderr).
fn leave(choice: MechanismChoice, anchor: &Anchor) -> Option<String> {
    match choice {
        MechanismChoice::Cgroup => {
            // SAFETY-free: geteuid through /proc.
            let root = std::fs::read_to_string("/proc/self/status")
                .ok()?
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
            if !root {
                return None;
            }
            let mount = group_parent()?;
            let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
            let own = own.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
            // The mount root's path plus the owner's; group_parent() is
            // where groups are made, a descendant of the mount: climb to
            // the mount by the owner's path's depth.
            let mut mnt = mount.clone();
            let owner_dir = loop {
                let candidate = mnt.join(own.trim_start_matches('/'));
                if candidate.join("cgroup.procs").exists() && mount.starts_with(&candidate) {
                    break candidate;
                }
                if !mnt.pop() {
                    return None;
                }
            };
            Some(format!(
                "echo $$ > {}/cgroup.procs || exit 9; exec sleep 300",
                owner_dir.display()
            ))
        }
        _ => {
            // The shell has no setpgid: perl does it, where installed.
            let perl = std::process::Command::new("perl")
                .args(["-e", ""])
                .status()
                .is_ok_and(|s| s.success());
            if !perl {
                skipped(
                    "a program leaving its process group",
                    "needs perl, not installed",
                );
                return None;
            }
            let pgid = anchor.pgid();
            Some(format!(
                "exec perl -e 'setpgrp(0, {pgid}) or exit 9; exec \"sleep\", \"300\"'"
            ))
        }
    }
}

/// A process group of this test's session for a program to move to: a
/// `sleep` leading a group of its own (the owner's own group may be out of
/// sight, numbered 0, when the suite runs in a pid namespace of its own, as
/// CI does). Killed and reaped when dropped.
/// Whether `pid` has left the container it was started in: its cgroup or
/// process group is no longer `first`'s.
fn left(pid: u32, choice: MechanismChoice) -> bool {
    match choice {
        MechanismChoice::Cgroup => std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map(|s| !s.contains("pkit-"))
            .unwrap_or(false),
        _ => stat(pid).is_some_and(|s| s.pgrp != pid),
    }
}

async fn wait_left(pid: u32, choice: MechanismChoice) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while !left(pid, choice) || comm(pid).as_deref() != Some("sleep") {
        assert!(!pid_gone(pid), "{choice}: the program ended before it left");
        assert!(
            std::time::Instant::now() < deadline,
            "{choice}: the program never left its container ({:?})",
            stat(pid)
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Starts `script` in `g` and waits until its program has left the
/// container; the guard kills it (by pid) if the test fails first.
async fn started_and_left(
    g: &pkit::Group,
    choice: MechanismChoice,
    script: &str,
) -> (pkit::RunningProcess, KillOnDrop) {
    let p = g.start(&sh(choice, script)).unwrap();
    let cleanup = KillOnDrop::new(vec![p.pid()]);
    wait_left(p.pid(), choice).await;
    (p, cleanup)
}

/// `p`'s output once it has ended, within `limit`; else a panic saying
/// `never` (under `choice`).
async fn ended(
    p: &mut pkit::RunningProcess,
    limit: Duration,
    choice: MechanismChoice,
    never: &str,
) -> pkit::Output {
    tokio::time::timeout(limit, p.wait())
        .await
        .unwrap_or_else(|_| panic!("{choice}: {never}"))
        .unwrap()
}

/// A program that leaves its container (a root program writing its pid to
/// another cgroup, one that joins another process group) is still the
/// program pkit started and holds a pidfd for: a timeout ends it, and the
/// run returns its outcome. Before: under a cgroup, the timeout's signal
/// and its SIGKILL went to the (empty) cgroup only and the run waited for
/// the program for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_leaves_its_container_still_ends_at_its_timeout() {
    let suite = begin("a_program_that_leaves_its_container_still_ends_at_its_timeout").await;
    // Each mechanism's case waits out its own 3 s timeout, its program
    // in its own anchor's process group or the owner's cgroup: both at
    // once.
    all_at_once(mechanisms(), |choice| async move {
        let anchor = Anchor::new();
        let Some(script) = leave(choice, &anchor) else {
            skipped("a program leaving its container", "needs root or perl");
            return;
        };
        let mut p = sh(choice, &script)
            .timeout(Duration::from_secs(3))
            .grace(Duration::from_millis(500))
            .start()
            .unwrap();
        let pid = p.pid();
        let _cleanup = KillOnDrop::new(vec![pid]);
        wait_left(pid, choice).await;
        let out = tokio::time::timeout(DEADLINE * 3, p.wait())
            .await
            .unwrap_or_else(|_| panic!("{choice}: the run never ended"))
            .unwrap();
        assert!(out.timed_out(), "{choice}: {:?}", out.outcome());
        assert_gone(&[pid], "the program that left its container").await;
    })
    .await;
    suite.end().await;
}

/// The same program started in a group: `kill_tree` ends it (its handle
/// reaches it through its pidfd wherever it went), and so do
/// `Group::signal`, `Group::kill` and the group's drop: the group still
/// signals the processes it started through their handles. Before, under
/// a cgroup, they reached only what was in the cgroup (and under a process
/// group only what was in the process group).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_leaves_its_container_is_still_killed_by_its_handle() {
    let suite = begin("a_program_that_leaves_its_container_is_still_killed_by_its_handle").await;
    for choice in mechanisms() {
        let anchor = Anchor::new();
        let Some(script) = leave(choice, &anchor) else {
            skipped("a program leaving its container", "needs root or perl");
            continue;
        };
        let g = group(choice);
        let (mut p, _cleanup) = started_and_left(&g, choice, &script).await;
        p.kill_tree().unwrap();
        let out = ended(
            &mut p,
            DEADLINE * 3,
            choice,
            "kill_tree never ended the program",
        )
        .await;
        assert_eq!(out.outcome(), Outcome::Signalled(9), "{choice}");
        drop(g);

        // Under a cgroup the program is here the group's second start
        // (the first has ended and its handle is gone): every start is
        // noted, not only the first. (Under a process group, a later
        // start that leaves it is not reached by Group::signal yet: only
        // the leader is signalled through its handle.)
        let g = group(choice);
        if choice == MechanismChoice::Cgroup {
            let mut first = g.start(&sh(choice, "exit 3")).unwrap();
            let out = ended(&mut first, DEADLINE, choice, "the first start never ended").await;
            assert_eq!(out.outcome(), Outcome::Exited(3), "{choice}");
        }
        let (mut p, _cleanup) = started_and_left(&g, choice, &script).await;
        g.signal(pkit::Signal::Term).unwrap();
        let out = ended(
            &mut p,
            DEADLINE * 3,
            choice,
            "Group::signal never reached the program",
        )
        .await;
        assert_eq!(out.outcome(), Outcome::Signalled(15), "{choice}");
        drop(g);

        // A group whose leader left it and ended is empty: a start there
        // leads a new process group (it failed with EPERM, joining a
        // process group no process had any more).
        let g = group(choice);
        let (mut p, _cleanup) = started_and_left(&g, choice, &script).await;
        g.kill().unwrap();
        let out = ended(
            &mut p,
            DEADLINE * 3,
            choice,
            "Group::kill never ended the program",
        )
        .await;
        assert_eq!(out.outcome(), Outcome::Signalled(9), "{choice}");
        let mut again = g
            .start(&sh(choice, "exit 7"))
            .unwrap_or_else(|e| panic!("{choice}: a start after the leader left and ended: {e}"));
        let out = ended(&mut again, DEADLINE, choice, "the new start never ended").await;
        assert_eq!(out.outcome(), Outcome::Exited(7), "{choice}");
        drop(g);

        let g = group(choice);
        let (p, _cleanup) = started_and_left(&g, choice, &script).await;
        drop(g);
        assert_gone(&[p.pid()], "a dropped group's program that left it").await;
        drop(p);
    }
    suite.end().await;
}

/// A group whose first process (under process groups, its leader) left
/// and still runs, nobody else being in the group's process group: a start
/// there leads a new process group (it failed with EPERM, joining a
/// process group no process held), and the group still ends both, the one
/// that left through its handle: `Group::kill` (each outcome SIGKILL),
/// `Group::shutdown` (both gone when it returns, under process groups),
/// and the group's drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_leader_left_and_runs_on_starts_again_and_ends_both() {
    let suite = begin("a_group_whose_leader_left_and_runs_on_starts_again_and_ends_both").await;
    for choice in mechanisms() {
        let anchor = Anchor::new();
        let Some(script) = leave(choice, &anchor) else {
            skipped("a program leaving its container", "needs root or perl");
            continue;
        };
        let start_again = |g: &pkit::Group| {
            let p = g.start(&sh(choice, "exec sleep 300")).unwrap_or_else(|e| {
                panic!("{choice}: a start after the leader left (still running): {e}")
            });
            let cleanup = KillOnDrop::new(vec![p.pid()]);
            (p, cleanup)
        };

        let g = group(choice);
        let (mut first, _cleanup) = started_and_left(&g, choice, &script).await;
        let (mut again, _cleanup2) = start_again(&g);
        let pids = g.pids().unwrap();
        assert!(pids.contains(&again.pid()), "{choice}: {pids:?}");
        g.kill().unwrap();
        for (p, what) in [(&mut first, "the one that left"), (&mut again, "the new")] {
            let out = ended(p, DEADLINE * 3, choice, "Group::kill never ended it").await;
            assert_eq!(out.outcome(), Outcome::Signalled(9), "{choice}: {what}");
        }
        drop(g);

        let g = group(choice);
        let (first, _cleanup) = started_and_left(&g, choice, &script).await;
        let (again, _cleanup2) = start_again(&g);
        tokio::time::timeout(DEADLINE * 3, g.shutdown(Duration::from_secs(1)))
            .await
            .unwrap_or_else(|_| panic!("{choice}: the shutdown never returned"))
            .unwrap();
        let both = [first.pid(), again.pid()];
        if choice != MechanismChoice::Cgroup {
            // A process-group close waits for its former leader too.
            for pid in both {
                assert!(
                    pid_gone(pid),
                    "{choice}: {pid} after the shutdown: {:?}",
                    stat(pid)
                );
            }
        }
        assert_gone(&both, &format!("{choice}: after the shutdown")).await;
        drop((first, again));

        let g = group(choice);
        let (first, _cleanup) = started_and_left(&g, choice, &script).await;
        let (again, _cleanup2) = start_again(&g);
        drop(g);
        assert_gone(
            &[first.pid(), again.pid()],
            &format!("{choice}: after the drop"),
        )
        .await;
        drop((first, again));
    }
    suite.end().await;
}

/// Under process groups: the script of a leader that moves to `anchor`'s
/// process group, traps TERM to exit 0.3 s after it (exit status 5), and
/// sleeps meanwhile (perl: the shell has no `setpgid`). `None` (said on
/// stderr) without perl.
fn leave_and_trap_term(anchor: &Anchor) -> Option<String> {
    leave(MechanismChoice::ProcessGroup, anchor)?;
    let pgid = anchor.pgid();
    Some(format!(
        "exec perl -e '$SIG{{TERM}} = sub {{ select(undef, undef, undef, 0.3); exit 5 }}; \
         setpgrp(0, {pgid}) or exit 9; $0 = \"sleep\"; sleep 1 while 1'"
    ))
}

/// Under process groups, a former leader (it left the group and ran on
/// when a start led a new process group) is a member: `Group::pids` and
/// `processes` list it, and `shutdown` gives it its TERM and its grace,
/// waiting for it through its handle: one that exits 0.3 s after the TERM
/// counts as exited in the grace, not killed. Also when the group's
/// current process group is empty (its leader, the second start, has
/// exited). Before, the former leader was left out of the listing and of
/// the report, got no grace (the close SIGKILLed it at once), and no TERM
/// at all with the current process group empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_leader_is_a_member_and_gets_its_grace() {
    let suite = begin("a_former_leader_is_a_member_and_gets_its_grace").await;
    for choice in mechanisms() {
        if choice == MechanismChoice::Cgroup {
            continue;
        }
        let anchor = Anchor::new();
        let Some(script) = leave_and_trap_term(&anchor) else {
            continue;
        };
        for current_empty in [false, true] {
            let what = format!("{choice}, current process group empty: {current_empty}");
            let g = group(choice);
            let (mut first, _cleanup) = started_and_left(&g, choice, &script).await;
            let (mut again, _cleanup2) = {
                let body = if current_empty {
                    "exit 4"
                } else {
                    "exec sleep 300"
                };
                let p = g
                    .start(&sh(choice, body))
                    .unwrap_or_else(|e| panic!("{what}: a start after the leader left: {e}"));
                let cleanup = KillOnDrop::new(vec![p.pid()]);
                (p, cleanup)
            };
            if current_empty {
                let out = ended(&mut again, DEADLINE, choice, "the new start never ended").await;
                assert_eq!(out.outcome(), Outcome::Exited(4), "{what}");
            }
            let pids = g.pids().unwrap();
            assert!(pids.contains(&first.pid()), "{what}: {pids:?}");
            assert_eq!(
                pids.contains(&again.pid()),
                !current_empty,
                "{what}: {pids:?}"
            );
            let listed = g.processes().unwrap();
            assert!(
                listed.iter().any(|p| p.pid == first.pid()),
                "{what}: {listed:?}"
            );
            assert_eq!(g.stats().unwrap().active_processes(), pids.len(), "{what}");
            let report = tokio::time::timeout(DEADLINE * 3, g.shutdown(Duration::from_secs(5)))
                .await
                .unwrap_or_else(|_| panic!("{what}: the shutdown never returned"))
                .unwrap();
            let members = if current_empty { 1 } else { 2 };
            // The new start (a sleep) ends at the TERM; the former leader
            // 0.3 s after it.
            assert_eq!(report.signalled(), members, "{what}: {report:?}");
            assert_eq!(report.exited_in_grace(), members, "{what}: {report:?}");
            assert_eq!(report.killed(), 0, "{what}: {report:?}");
            assert!(pid_gone(first.pid()), "{what}: {:?}", stat(first.pid()));
            let out = ended(
                &mut first,
                DEADLINE,
                choice,
                "the former leader never ended",
            )
            .await;
            assert_eq!(
                out.outcome(),
                Outcome::Exited(5),
                "{what}: its TERM trap ran"
            );
            drop((first, again, g));
        }
    }
    suite.end().await;
}

/// Under process groups, a leader that left its process group and then
/// called `setsid` (leading a session of its own, its process group
/// numbered as the group's old one) is no pty session: the next start
/// leads a new process group (it was refused as Unsupported, "led by a pty
/// session"), a third joins that one, and the close, or the drop, ends
/// them all, the one in its own session through its handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_left_and_called_setsid_is_no_pty_session() {
    let suite = begin("a_leader_that_left_and_called_setsid_is_no_pty_session").await;
    for choice in mechanisms() {
        if choice == MechanismChoice::Cgroup {
            continue;
        }
        let anchor = Anchor::new();
        if leave(choice, &anchor).is_none() {
            continue;
        }
        let pgid = anchor.pgid();
        let script = format!(
            "exec perl -MPOSIX -e 'setpgrp(0, {pgid}) or exit 9; POSIX::setsid() > 0 or exit 8; \
             exec \"sleep\", \"300\"'"
        );
        for close in [true, false] {
            let what = format!("{choice}, closed: {close}");
            let g = group(choice);
            let first = g.start(&sh(choice, &script)).unwrap();
            let _cleanup = KillOnDrop::new(vec![first.pid()]);
            let deadline = std::time::Instant::now() + DEADLINE;
            // In a session of its own, as `sleep`.
            while !(stat(first.pid()).is_some_and(|s| s.session == first.pid())
                && comm(first.pid()).as_deref() == Some("sleep"))
            {
                assert!(!pid_gone(first.pid()), "{what}: the leader ended");
                assert!(
                    std::time::Instant::now() < deadline,
                    "{what}: {:?}",
                    stat(first.pid())
                );
                tokio::time::sleep(POLL).await;
            }
            let starts: Vec<_> = (0..2)
                .map(|_| {
                    g.start(&sh(choice, "exec sleep 300")).unwrap_or_else(|e| {
                        panic!("{what}: a start after the leader left and called setsid: {e}")
                    })
                })
                .collect();
            let _cleanup2 = KillOnDrop::new(starts.iter().map(|p| p.pid()).collect());
            let new_group = stat(starts[0].pid()).expect("the new start runs").pgrp;
            assert_eq!(
                new_group,
                starts[0].pid(),
                "{what}: leads a new process group"
            );
            assert_eq!(
                stat(starts[1].pid()).map(|s| s.pgrp),
                Some(new_group),
                "{what}: the third joins it"
            );
            assert_eq!(
                stat(first.pid()).map(|s| s.pgrp),
                Some(first.pid()),
                "{what}"
            );
            let pids = g.pids().unwrap();
            assert!(pids.contains(&first.pid()), "{what}: {pids:?}");
            let mut all = vec![first.pid()];
            all.extend(starts.iter().map(|p| p.pid()));
            if close {
                tokio::time::timeout(DEADLINE * 3, g.close())
                    .await
                    .unwrap_or_else(|_| panic!("{what}: the close never returned"))
                    .unwrap();
                for &pid in &all {
                    assert!(
                        pid_gone(pid),
                        "{what}: {pid} after the close: {:?}",
                        stat(pid)
                    );
                }
            }
            drop(g);
            assert_gone(&all, &what).await;
            drop((first, starts));
        }
    }
    suite.end().await;
}

/// A cgroup's close and drop write `cgroup.kill`, which reaches only the
/// processes in the cgroup; a started program that moved itself out (as
/// root) is ended by the SIGKILL each started process also gets through
/// its pidfd. With another process still in the cgroup the directory is
/// not empty, so this is the kill path, not the emptied-group one. (The
/// pidfd SIGKILL after a successful `cgroup.kill` looks redundant; it is
/// not: without it, the close returned with the program running.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_left_its_cgroup_is_ended_by_a_close_that_kills_the_rest() {
    let suite =
        begin("a_program_that_left_its_cgroup_is_ended_by_a_close_that_kills_the_rest").await;
    for choice in mechanisms() {
        if choice != MechanismChoice::Cgroup {
            continue;
        }
        let anchor = Anchor::new();
        let Some(script) = leave(choice, &anchor) else {
            skipped("a program leaving its cgroup", "needs root");
            continue;
        };
        for close in [true, false] {
            let what = format!("{choice}, closed: {close}");
            let g = group(choice);
            let inside = g.start(&sh(choice, "exec sleep 300")).unwrap();
            let (p, _cleanup) = started_and_left(&g, choice, &script).await;
            assert_alive(&[inside.pid()], &what);
            if close {
                tokio::time::timeout(DEADLINE * 3, g.close())
                    .await
                    .unwrap_or_else(|_| panic!("{what}: the close never returned"))
                    .unwrap();
            } else {
                drop(g);
            }
            assert_gone(&[p.pid(), inside.pid()], &what).await;
            drop((p, inside));
        }
    }
    suite.end().await;
}
