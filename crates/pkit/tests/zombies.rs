//! Zombies a group keeps: under the process-group mechanism only the
//! group's first process (the leader, whose pid is the group id), and only
//! while the group lives (documented on `Mechanism::ProcessGroup` and in
//! `sys/unix/pgroup.rs`); under the cgroup mechanism none.

mod common;

use common::*;
use pkit::{CancelToken, Command, MechanismChoice, ProcessEvent, Signal};

/// Our children that are zombies, by pid.
fn own_zombies() -> Vec<u32> {
    own_children()
        .into_iter()
        .filter(|(_, s)| s.is_some_and(|s| s.state == 'Z'))
        .map(|(p, _)| p)
        .collect()
}

/// Issue 11, item 10 (last clause): the bound. Twenty processes started,
/// waited for and dropped in a live group leave at most the leader's
/// zombie (none under cgroup), and the group's end reaps that too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_group_keeps_at_most_its_leader_as_a_zombie() {
    let alone = begin_alone_in_binary().await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut first = group.start(&Command::new("true")).expect("start");
        let leader = first.pid();
        first.wait().await.expect("wait");
        drop(first);
        for _ in 0..20 {
            let mut p = group.start(&Command::new("true")).expect("start");
            p.wait().await.expect("wait");
        }
        let live = group
            .start(&Command::new("sleep").arg("300"))
            .expect("start");
        let zombies = own_zombies();
        match choice {
            MechanismChoice::ProcessGroup | MechanismChoice::Portable => {
                assert_eq!(zombies, vec![leader], "{choice}: only the leader")
            }
            _ => assert!(zombies.is_empty(), "{choice}: {zombies:?}"),
        }
        let sleeper = live.pid();
        group.close().await.expect("close");
        drop(live);
        assert_gone(&[sleeper], &format!("{choice}: the live member")).await;
        assert!(
            !own_zombies().contains(&leader),
            "{choice}: the leader is reaped when the group ends"
        );
    }
    end_exclusive(alone, "zombies").await;
}

/// A process group whose first process has exited ends without leaving
/// it a zombie even while its `Process` handle lives on (close reaps the
/// exited leader, and asks the kernel, through its pidfd,
/// whether anything else is left instead of scanning `/proc`); the handle
/// still answers for it: its exit status, its CPU time and peak memory.
/// A member left behind by an exited leader is still ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_after_the_leader_exited_reaps_it_and_ends_what_it_left() {
    let alone = begin_alone_in_binary().await;
    for choice in mechanisms() {
        // Alone in its group.
        let group = group(choice);
        let mut p = group
            .start(&Command::new("sh").args(["-c", "exit 3"]))
            .expect("start");
        let pid = p.pid();
        assert_eq!(p.wait().await.expect("wait").code(), Some(3));
        group.close().await.expect("close");
        if choice == MechanismChoice::ProcessGroup {
            assert!(
                !own_zombies().contains(&pid),
                "{choice}: the exited leader is reaped by close"
            );
        }
        assert_eq!(
            p.wait().await.expect("wait again").code(),
            Some(3),
            "{choice}"
        );
        // The portable backend keeps no usage at exit (documented:
        // waitid with WNOWAIT reports none off Linux).
        if choice != MechanismChoice::Portable {
            assert!(p.cpu_time().is_some(), "{choice}: cpu time kept");
            assert!(
                p.peak_memory_bytes().is_some_and(|b| b > 0),
                "{choice}: peak memory kept"
            );
        }
        drop(p);

        // Leaving a member behind: close must still end it.
        let group = self::group(choice);
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "sleep 300 & echo $!"])
                    .stream_lines(),
            )
            .expect("start");
        let member: u32 = p
            .lines()
            .next_line()
            .await
            .expect("the member's pid")
            .text
            .trim()
            .parse()
            .expect("a pid");
        p.wait().await.expect("wait");
        assert_alive(&[member], &format!("{choice}: the member before close"));
        group.close().await.expect("close");
        assert_gone(&[member], &format!("{choice}: the member left behind")).await;
        drop(p);
    }
    end_exclusive(alone, "zombies_close").await;
}

/// Waits until each of `pids` is reaped (no zombie either), up to
/// [`DEADLINE`]; the ones left, with their state.
async fn wait_reaped(pids: &[u32]) -> Result<(), Vec<(u32, Option<Stat>)>> {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let left: Vec<_> = pids
            .iter()
            .map(|&p| (p, stat(p)))
            .filter(|(_, s)| s.is_some())
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(left);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A started process cancelled with a signal and a grace, whose end its
/// `events()` reported, is reaped once its handles are dropped and its
/// group is closed: not kept a zombie for the rest of a grace that has
/// nothing left to end. Under cgroup v2 the watch ending its subtree waited
/// for its leaf's `populated 0` notification, which the kernel holds back
/// when it follows the start's within 10 ms, and loses when the close
/// removes the emptied leaf first: the watch then waited out the whole
/// grace (here an hour) holding the process's handle. Each process is
/// cancelled right after its start, the group closed right after the ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_process_whose_end_was_reported_is_reaped_at_the_close() {
    let alone = begin_alone_in_binary().await;
    for choice in mechanisms() {
        let group = group(choice);
        // The group's first process: the later ones get leaves of their own.
        let mut first = group.start(&Command::new("true")).expect("start");
        first.wait().await.expect("wait");
        let mut pids = vec![first.pid()];
        drop(first);
        for _ in 0..5 {
            let token = CancelToken::new();
            let cmd = Command::new("sleep")
                .arg("300")
                .cancel_token(&token)
                .cancel_signal(Signal::Int)
                .cancel_grace(std::time::Duration::from_secs(3600));
            let mut p = group.start(&cmd).expect("start");
            pids.push(p.pid());
            let mut events = p.events();
            assert!(matches!(
                events.next_event().await,
                Some(ProcessEvent::Started { .. })
            ));
            token.cancel();
            let mut last = None;
            while let Some(e) = tokio::time::timeout(DEADLINE, events.next_event())
                .await
                .expect("the events end")
            {
                last = Some(e);
            }
            assert!(
                matches!(last, Some(ProcessEvent::Exited { .. })),
                "{choice}: the last event is the exit: {last:?}"
            );
        }
        group.close().await.expect("close");
        if let Err(left) = wait_reaped(&pids).await {
            panic!("{choice}: not reaped within {DEADLINE:?} after the close: {left:?}");
        }
    }
    end_exclusive(alone, "zombies_cancelled").await;
}

/// The v1 pids hierarchy's mount point, if this host has one.
fn pids_v1_mount() -> Option<std::path::PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 3 && f[2] == "cgroup" && f[3].split(',').any(|o| o == "pids"))
            .then(|| std::path::PathBuf::from(f[1]))
    })
}

/// At a full `pids.max` no thread can be started: children whose handles
/// are dropped while they run must still be reaped once they exit (they
/// were left zombies for good when the reaper thread was started only by
/// the first dropped handle, which was refused then). Run in a fresh
/// process placed in a v1 pids cgroup of its own (needs root and the v1
/// pids controller; skipped otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_dropped_at_a_full_pids_max_are_reaped() {
    let Some(mount) = pids_v1_mount() else {
        skipped("pids.max test", "no cgroup v1 pids hierarchy here");
        return;
    };
    let dir = mount.join(common::unique_name("zombies"));
    if std::fs::create_dir(&dir).is_err() {
        skipped("pids.max test", "cannot make a v1 pids cgroup (not root?)");
        return;
    }
    let alone = begin_alone_in_binary().await;
    std::fs::write(dir.join("pids.max"), "48").expect("pids.max");
    let exe = std::env::current_exe().unwrap();
    let d = dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .args([
                "-c",
                "echo $$ > \"$1/cgroup.procs\" && exec \"$0\" --exact full_pids_max_case \
                 --include-ignored --nocapture --test-threads 1",
            ])
            .arg(&exe)
            .arg(&d)
            .env("PKIT_ZOMBIE_CHILD", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Empty by now (the child waited for its own processes); removed.
    let deadline = std::time::Instant::now() + DEADLINE;
    while std::fs::remove_dir(&dir).is_err() && std::time::Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    assert!(out.status.success(), "the pids.max case failed:\n{text}");
    assert!(text.contains("1 passed"), "the case did not run:\n{text}");
    end_exclusive(alone, "zombies_pids_max").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by children_dropped_at_a_full_pids_max_are_reaped, in a pids cgroup"]
async fn full_pids_max_case() {
    if std::env::var_os("PKIT_ZOMBIE_CHILD").is_none() {
        return;
    }
    for choice in mechanisms() {
        let g = group(choice);
        // Held to the end: a process group's leader is kept (as a zombie
        // once it exits) while its group lives, by design.
        let leader = g.start(&Command::new("sleep").arg("300")).expect("leader");
        let mut dropped = Vec::new();
        let mut refused = None;
        for _ in 0..200 {
            match g.start(&Command::new("sleep").arg("1")) {
                Ok(p) => dropped.push(p),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let e = refused.unwrap_or_else(|| panic!("{choice}: pids.max never reached"));
        let pids: Vec<u32> = dropped.iter().map(|p| p.pid()).collect();
        eprintln!("{choice}: refused after {} starts: {e}", pids.len() + 1);
        // Still running: handed over to be reaped at exit.
        drop(dropped);
        // No further call into pkit: the exits alone must get them reaped.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            // Reaped: no longer a child of ours (zombie or not).
            let me = std::process::id();
            let left: Vec<u32> = pids
                .iter()
                .copied()
                .filter(|p| stat(*p).is_some_and(|s| s.ppid == me))
                .collect();
            if left.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{choice}: dropped children left unreaped at a full pids.max: {left:?} \
                 (states {:?})",
                left.iter()
                    .map(|p| stat(*p).map(|s| s.state))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(POLL).await;
        }
        drop(leader);
        drop(g);
        // Usable again.
        let out = sh(choice, "echo ok").output().await.unwrap();
        assert_eq!(out.stdout_str(), "ok\n", "{choice}");
    }
    assert_nothing_left("full pids.max").await;
}

/// Ignores SIGTERM, starts a thread that sleeps, then ends its main thread
/// alone (`pthread_exit`): the process runs on in the other thread.
const MAIN_THREAD_ENDS: &str = "
import ctypes, signal, threading, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
threading.Thread(target=time.sleep, args=(300,)).start()
ctypes.CDLL(None).pthread_exit(None)
";

/// The threads of `pid` that still run (not exited: `/proc/<pid>/task`).
fn running_threads(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|tid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"));
            let state = stat.ok().and_then(|s| {
                let rest = s.rsplit_once(')')?.1.to_owned();
                rest.split_whitespace().next().map(str::to_owned)
            });
            !matches!(state.as_deref(), None | Some("Z") | Some("X"))
        })
        .collect()
}

/// Waits until `pid`'s main thread has ended while another runs on.
async fn main_thread_ended_alone(choice: MechanismChoice, pid: u32) {
    let deadline = std::time::Instant::now() + DEADLINE;
    let ended_alone =
        || stat(pid).is_some_and(|s| s.state == 'Z') && !running_threads(pid).is_empty();
    while !ended_alone() {
        assert!(
            std::time::Instant::now() < deadline,
            "{choice}: the main thread of {pid} never ended alone: {:?}, threads {:?}",
            stat(pid),
            running_threads(pid)
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls until no thread of `pid` runs.
async fn assert_no_thread_runs(choice: MechanismChoice, pid: u32, after: &str) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while !running_threads(pid).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{choice}: threads of {pid} still run {after}: {:?}",
            running_threads(pid)
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A process whose main thread has ended while another thread runs on
/// shows `Z` in `/proc/<pid>/stat` (`Zl` in `ps`), yet it is no zombie: it
/// runs. A graceful shutdown counts it, gives it the grace, kills it after
/// (it ignores SIGTERM), and does not return while a thread of it runs.
/// Before, every mechanism took that `Z` for an exit (the report said
/// nobody was signalled or killed; under process groups the grace was
/// skipped), and under cgroup v2 the closing `cgroup.kill` never reached
/// it, so the shutdown waited for its thread to end by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_whose_main_thread_ended_is_no_zombie_to_shutdown() {
    let suite = begin("a_process_whose_main_thread_ended_is_no_zombie_to_shutdown").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(&Command::new("python3").args(["-c", MAIN_THREAD_ENDS]))
            .expect("start python3");
        let pid = p.pid();
        main_thread_ended_alone(choice, pid).await;
        let grace = std::time::Duration::from_millis(300);
        let report = group.shutdown(grace).await.expect("shutdown");
        assert_eq!(report.signalled(), 1, "{choice}: {report:?}");
        assert_eq!(report.exited_in_grace(), 0, "{choice}: {report:?}");
        assert_eq!(report.killed(), 1, "{choice}: {report:?}");
        assert!(report.elapsed() >= grace, "{choice}: {report:?}");
        assert_no_thread_runs(choice, pid, "after the shutdown").await;
        let out = p.wait().await.expect("wait");
        assert_eq!(out.signal(), Some(9), "{choice}: {out:?}");
    }
    suite.end().await;
}

/// Dropping a group ends such a process too. Under cgroup v2 `cgroup.kill`
/// alone never reaches it (the kernel sends its SIGKILL to the ended main
/// thread): before, it outlived the dropped group, and the reaper thread
/// waited on its cgroup for as long as it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_group_ends_a_process_whose_main_thread_ended() {
    let suite = begin("dropping_a_group_ends_a_process_whose_main_thread_ended").await;
    for choice in mechanisms() {
        let group = group(choice);
        let p = group
            .start(&Command::new("python3").args(["-c", MAIN_THREAD_ENDS]))
            .expect("start python3");
        let pid = p.pid();
        main_thread_ended_alone(choice, pid).await;
        let dir = cgroup_dir(&group);
        drop(p);
        drop(group);
        assert_no_thread_runs(choice, pid, "after the group was dropped").await;
        if let Some(dir) = dir {
            assert_dir_gone(&dir).await;
        }
    }
    suite.end().await;
}

/// The started process exits on SIGTERM at once (`sleep`, exec'd) and
/// leaves a child that ignores it (set before that child prints its pid,
/// the only line of output; its own output goes to /dev/null, so the
/// pipes close with the process itself).
const EXITS_LEAVING_ONE_IGNORING_TERM: &str = r#"(trap '' TERM; exec sh -c 'echo $$; exec sleep 300 >/dev/null 2>&1') &
exec sleep 300"#;

/// How a [`a_process_ended_during_a_grace_is_reaped_before_the_grace_ends`] case
/// starts its process and ends it.
#[derive(Debug, Clone, Copy)]
enum GraceCase {
    /// A group's first process (under cgroup v2 its group's directory),
    /// cancelled.
    FirstCancelled,
    /// A group's later process (under cgroup v2 a leaf of its own),
    /// cancelled.
    LaterCancelled,
    /// A group's later process, ended by its timeout.
    LaterTimedOut,
    /// [`Command::start`]: the first process of a private group, cancelled.
    PrivateCancelled,
}

/// Whether `choice` reaps a started process that exits during the grace
/// of an end before that grace is over. Under process groups (the native
/// ones and the portable backend) it is kept, by design: the grace's
/// SIGKILL finds the process's descendants by their parent's number
/// (`/proc` or the process table, within the group), and a group's first
/// process's number is the group's own (it leads it); its zombie keeps
/// that number from naming another process until the end.
fn reaps_during_the_grace(choice: MechanismChoice) -> bool {
    choice == MechanismChoice::Cgroup
}

/// A started process whose end (its cancel token's signal, or its
/// timeout's) it does not outlive, while a descendant ignores the signal,
/// is reaped as soon as it exits under cgroup v2, not kept a zombie for
/// the rest of the grace, which goes on for the descendant: that one is
/// still killed at the grace's end. Its exit status stays the real one
/// (SIGTERM), `events()` tells the exit once, and `wait` reports the
/// cancellation (or the timeout) as ever. Before, the watch ending the
/// subtree held a share of the process's handle until the SIGKILL after
/// the grace, and only the last share's drop reaped it. Under process
/// groups the zombie is kept on purpose (see [`reaps_during_the_grace`]):
/// the rest is checked there with a short grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_ended_during_a_grace_is_reaped_before_the_grace_ends() {
    let suite = begin("a_process_ended_during_a_grace_is_reaped_before_the_grace_ends").await;
    let cases = [
        GraceCase::FirstCancelled,
        GraceCase::LaterCancelled,
        GraceCase::LaterTimedOut,
        GraceCase::PrivateCancelled,
    ];
    if !mechanisms().into_iter().all(reaps_during_the_grace) {
        skipped(
            "the reap within the grace under process groups",
            "kept by design: the grace's SIGKILL finds descendants by their parent's \
             number, and a group's first process's number is the group's",
        );
    }
    // Every mechanism's cases at once (each its own group, token and
    // tree): they mostly wait out their graces and timeouts.
    let all = mechanisms()
        .into_iter()
        .flat_map(|choice| cases.map(move |case| (choice, case)));
    all_at_once(all, |(choice, case)| grace_case(choice, case)).await;
    suite.end().await;
}

/// One case of [`a_process_ended_during_a_grace_is_reaped_before_the_grace_ends`].
async fn grace_case(choice: MechanismChoice, case: GraceCase) {
    use std::time::{Duration, Instant};
    let what = format!("{choice}: {case:?}");
    let reaps = reaps_during_the_grace(choice);
    // Long where the reap is checked: it must come well before the end.
    let grace = match reaps {
        true => Duration::from_secs(8),
        false => Duration::from_millis(1500),
    };
    let token = CancelToken::new();
    let base = Command::new("sh")
        .args(["-c", EXITS_LEAVING_ONE_IGNORING_TERM])
        .stream_lines();
    let cmd = match case {
        GraceCase::LaterTimedOut => base
            .timeout(Duration::from_secs(3))
            .timeout_signal(Signal::Term)
            .grace(grace),
        _ => base
            .cancel_token(&token)
            .cancel_signal(Signal::Term)
            .cancel_grace(grace),
    };
    let group = self::group(choice);
    let began = Instant::now();
    let mut p = match case {
        GraceCase::PrivateCancelled => cmd
            .runner(std::sync::Arc::new(pkit::SystemRunner::with_mechanism(
                choice,
            )))
            .start()
            .expect("start"),
        GraceCase::FirstCancelled => group.start(&cmd).expect("start"),
        GraceCase::LaterCancelled | GraceCase::LaterTimedOut => {
            let mut first = group.start(&Command::new("true")).expect("start");
            first.wait().await.expect("wait");
            drop(first);
            group.start(&cmd).expect("start")
        }
    };
    let pid = p.pid();
    let mut events = p.events();
    let mut seen = Vec::new();
    let descendant: u32 = loop {
        let e = next_within(&mut events)
            .await
            .expect("the descendant's pid");
        if let ProcessEvent::Line(l) = &e {
            break l.text.trim().parse().expect("a pid");
        }
        seen.push(e);
    };
    let _kill = KillOnDrop::new(vec![descendant]);
    // When the end began (at the latest).
    let ended = match case {
        GraceCase::LaterTimedOut => began + Duration::from_secs(3),
        _ => {
            token.cancel();
            Instant::now()
        }
    };
    // The exit is told, and it is the real one.
    while let Some(e) = next_within(&mut events).await {
        seen.push(e);
    }
    let exits: Vec<_> = seen
        .iter()
        .filter(|e| matches!(e, ProcessEvent::Exited { .. }))
        .collect();
    let told = match case {
        GraceCase::LaterTimedOut => pkit::Outcome::TimedOut,
        _ => pkit::Outcome::Signalled(libc::SIGTERM),
    };
    assert!(
        matches!(exits[..], [ProcessEvent::Exited { outcome, .. }] if *outcome == told),
        "{what}: one exit, {told}: {seen:?}"
    );
    assert_eq!(
        p.try_wait().expect("try_wait"),
        Some(pkit::Outcome::Signalled(libc::SIGTERM)),
        "{what}"
    );
    if reaps {
        // Reaped well before the grace ends (half of it after the end
        // began; the grace is long so that a loaded machine can't fail it),
        // while the grace still goes on for the descendant.
        let within = grace / 2;
        while stat(pid).is_some() {
            assert!(
                ended.elapsed() < within,
                "{what}: {pid} not reaped within {within:?} of its end's signal \
                 (grace {grace:?}): {:?}",
                stat(pid)
            );
            tokio::time::sleep(POLL).await;
        }
        assert!(
            ended.elapsed() < grace,
            "{what}: the reap came after the grace"
        );
        assert_alive(&[descendant], &format!("{what}: in the grace"));
        assert_eq!(
            p.try_wait().expect("try_wait"),
            Some(pkit::Outcome::Signalled(libc::SIGTERM)),
            "{what}: once reaped"
        );
        assert!(p.cpu_time().is_some(), "{what}: cpu time kept");
        assert!(
            p.peak_memory_bytes().is_some_and(|b| b > 0),
            "{what}: peak memory kept"
        );
    }
    // The wait reports the end, after the grace, the descendant killed.
    for round in 0..2 {
        match (case, p.wait().await) {
            (GraceCase::LaterTimedOut, Ok(out)) => {
                assert_eq!(out.outcome(), pkit::Outcome::TimedOut, "{what}");
                assert!(out.killed_after_grace(), "{what}: {out:?}");
            }
            (_, Err(e)) if e.is_cancelled() => {}
            (_, other) => panic!("{what}: wait {round}: {other:?}"),
        }
        assert!(ended.elapsed() >= grace, "{what}: the grace was cut short");
        assert_gone(&[descendant], &format!("{what}: after the grace")).await;
    }
    // After a wait too, the process's own exit (the signal that ended
    // it), as before the wait: `TimedOut` is the `Output`'s reading.
    assert_eq!(
        p.try_wait().expect("try_wait"),
        Some(pkit::Outcome::Signalled(libc::SIGTERM)),
        "{what}: after the wait"
    );
    drop(p);
    group.close().await.expect("close");
    if let Err(left) = wait_reaped(&[pid]).await {
        panic!("{what}: not reaped after the close: {left:?}");
    }
}

/// The next event, within [`DEADLINE`].
async fn next_within(events: &mut pkit::Events) -> Option<ProcessEvent> {
    tokio::time::timeout(DEADLINE, events.next_event())
        .await
        .unwrap_or_else(|_| panic!("an event within {DEADLINE:?}"))
}

/// Writes its pid to `$1`, then leaves a child that ignores SIGTERM (set
/// before that child writes its pid, then `done`), and exits on SIGTERM at
/// once (`sleep`, exec'd).
const VERB_EXITS_LEAVING_ONE_IGNORING_TERM: &str = r#"echo $$ >> "$1"
(trap '' TERM; exec sh -c 'echo $$ >> "$1"; echo done >> "$1"; exec sleep 300 >/dev/null 2>&1' sh "$1") &
exec sleep 300"#;

/// How a [`a_verb_ended_during_a_grace_is_reaped_before_the_grace_ends`]
/// case runs its command and ends it.
#[derive(Debug, Clone, Copy)]
enum VerbCase {
    /// `output`, cancelled.
    Cancelled,
    /// `output`, ended by its timeout.
    TimedOut,
    /// `blocking().output()` (of a command given a runner: the engine's
    /// run), ended by its timeout.
    BlockingTimedOut,
    /// `blocking().output()` of a plain command, ended by its timeout:
    /// with pidfds, waited for on the calling thread
    /// (`blocking/direct.rs`), in the process's default mechanism (so run
    /// only for the mechanism that is the default in this pass).
    BlockingDirectTimedOut,
    /// A pipeline's `output` (the first stage's process checked), cancelled.
    PipeCancelled,
}

/// Whether a command given no runner runs under `choice` in this pass.
fn is_default(choice: MechanismChoice) -> bool {
    match MechanismChoice::from_env() {
        Ok(MechanismChoice::Auto) => choice == MechanismChoice::Cgroup,
        env => env == Ok(choice),
    }
}

/// [`a_process_ended_during_a_grace_is_reaped_before_the_grace_ends`] for
/// the one-shot verbs, ended by their cancel token's or their timeout's
/// SIGTERM and a grace: under cgroup v2 the run's process, which exits on
/// the signal, is reaped before the grace ends; the descendant that
/// ignores it is killed at the grace's end. Before, nothing saw the exit
/// during the grace, and the process was reaped at the run's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verb_ended_during_a_grace_is_reaped_before_the_grace_ends() {
    let suite = begin("a_verb_ended_during_a_grace_is_reaped_before_the_grace_ends").await;
    // Every mechanism's cases at once (each its own file, token and tree):
    // they mostly wait out their graces and timeouts.
    let mut all = Vec::new();
    for choice in mechanisms() {
        let mut cases = vec![
            VerbCase::Cancelled,
            VerbCase::TimedOut,
            VerbCase::BlockingTimedOut,
            VerbCase::PipeCancelled,
        ];
        if is_default(choice) {
            cases.push(VerbCase::BlockingDirectTimedOut);
        }
        all.extend(cases.into_iter().map(|case| (choice, case)));
    }
    all_at_once(all, |(choice, case)| verb_case(choice, case)).await;
    suite.end().await;
}

/// One case of [`a_verb_ended_during_a_grace_is_reaped_before_the_grace_ends`].
async fn verb_case(choice: MechanismChoice, case: VerbCase) {
    use std::time::{Duration, Instant};
    let what = format!("{choice}: {case:?}");
    let reaps = reaps_during_the_grace(choice);
    let grace = match reaps {
        true => Duration::from_secs(8),
        false => Duration::from_millis(1500),
    };
    let file = TempPath::new("zomb-verb");
    let token = CancelToken::new();
    let limit = Duration::from_secs(3);
    let base = match case {
        VerbCase::BlockingDirectTimedOut => {
            Command::new("sh").args(["-c", VERB_EXITS_LEAVING_ONE_IGNORING_TERM, "sh"])
        }
        _ => sh(choice, VERB_EXITS_LEAVING_ONE_IGNORING_TERM),
    }
    .arg(file.as_str());
    let cmd = match case {
        VerbCase::Cancelled | VerbCase::PipeCancelled => base
            .cancel_token(&token)
            .cancel_signal(Signal::Term)
            .cancel_grace(grace),
        _ => base
            .timeout(limit)
            .timeout_signal(Signal::Term)
            .grace(grace),
    };
    let began = Instant::now();
    let (done, run) = tokio::sync::oneshot::channel();
    match case {
        // On a thread without a runtime, as a blocking caller's.
        VerbCase::BlockingTimedOut | VerbCase::BlockingDirectTimedOut => {
            drop(std::thread::spawn(move || {
                let _ = done.send(cmd.blocking().output());
            }))
        }
        VerbCase::PipeCancelled => {
            let pipe = pkit::Pipe::new([cmd, self::cmd(choice, "cat")]);
            drop(tokio::spawn(async move {
                let _ = done.send(pipe.output().await);
            }))
        }
        _ => drop(tokio::spawn(async move {
            let _ = done.send(cmd.output().await);
        })),
    }
    let pids = file.wait_pids().await;
    let [pid, descendant] = pids[..] else {
        panic!("{what}: two pids: {pids:?}");
    };
    let _kill = KillOnDrop::new(vec![descendant]);
    // When the end began (at the latest).
    let ended = match case {
        VerbCase::Cancelled | VerbCase::PipeCancelled => {
            token.cancel();
            Instant::now()
        }
        _ => began + limit,
    };
    if reaps {
        let within = grace / 2;
        while stat(pid).is_some() {
            assert!(
                ended.elapsed() < within,
                "{what}: {pid} not reaped within {within:?} of its end's signal \
                 (grace {grace:?}): {:?}",
                stat(pid)
            );
            tokio::time::sleep(POLL).await;
        }
        assert_alive(&[descendant], &format!("{what}: in the grace"));
    }
    match (case, run.await.expect("the run ends")) {
        (VerbCase::Cancelled | VerbCase::PipeCancelled, Err(e)) if e.is_cancelled() => {}
        (_, Ok(out)) => {
            assert_eq!(out.outcome(), pkit::Outcome::TimedOut, "{what}");
            assert!(out.killed_after_grace(), "{what}: {out:?}");
        }
        (_, other) => panic!("{what}: {other:?}"),
    }
    assert!(ended.elapsed() >= grace, "{what}: the grace was cut short");
    assert_gone(&[descendant], &format!("{what}: after the grace")).await;
    if let Err(left) = wait_reaped(&[pid]).await {
        panic!("{what}: not reaped after the run: {left:?}");
    }
}
