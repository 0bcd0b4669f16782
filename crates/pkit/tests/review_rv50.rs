#![cfg(target_os = "linux")]
//! rv50: a hostile review of the fourteenth session's library changes:
//! `Container::close`'s part without a wait (the rest boxed, continuing
//! from where it stopped) and `Group::adopt`'s refusal of this process
//! and its guard. Each test starts real processes and checks their real
//! ends, on every mechanism it can run on.
//!
//! What broke, fixed here: `Group::close` under cgroup v2 returned with a
//! started process that had been moved out of the group's cgroup still
//! running (its empty cgroup retired at once), where dropping the group
//! killed it (MEDIUM, older than the fast path;
//! [`a_started_process_moved_out_by_hand_is_ended_by_close_and_drop`]).
//! The rest held.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, MechanismChoice, Signal};

/// A tree that makes a close's life hard: a program that ignores TERM, a
/// child stopped by SIGSTOP, and a loop forking a short-lived child at
/// every turn. Its pids (the program's, the stopped child's, the loop's)
/// go to `$1`, then `done`.
const HARD_TREE: &str = r#"trap '' TERM; sleep 300 & s=$!; kill -STOP $s;
(trap '' TERM; while :; do sleep 0.05 & wait; done) & l=$!;
echo $$ >> "$1"; echo $s >> "$1"; echo $l >> "$1"; echo done >> "$1";
while :; do sleep 0.05; done"#;

/// Starts [`HARD_TREE`] in `g`; its pids once it is up.
async fn hard_tree(g: &pkit::Group, choice: MechanismChoice) -> (pkit::RunningProcess, Vec<u32>) {
    let file = TempPath::new("rv50-tree");
    let p = g
        .start(&Command::new("sh").args(["-c", HARD_TREE, "sh", file.as_str()]))
        .unwrap_or_else(|e| panic!("{choice}: start: {e}"));
    let pids = file.wait_pids().await;
    assert_eq!(pids.len(), 3, "{choice}: {pids:?}");
    (p, pids)
}

/// A close cancelled (its future dropped) after it began leaves the group
/// refusing starts, and a second close finishes the teardown: the tree
/// (a TERM-ignoring program, a stopped child, a forking loop) is gone,
/// and the second close returns Ok. So again with the group suspended
/// first (frozen, or stopped), and with the first close cancelled at
/// once (polled only once or twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_cancelled_midway_is_finished_by_the_next() {
    let suite = begin("a_close_cancelled_midway_is_finished_by_the_next").await;
    for choice in mechanisms() {
        for suspended in [false, true] {
            let what = format!("{choice}, suspended {suspended}");
            let g = group(choice);
            let (_p, pids) = hard_tree(&g, choice).await;
            let _guard = KillOnDrop::new(pids.clone());
            if suspended {
                g.suspend()
                    .await
                    .unwrap_or_else(|e| panic!("{what}: suspend: {e}"));
            }
            let first = tokio::time::timeout(Duration::from_micros(1), g.close()).await;
            if let Ok(r) = first {
                r.unwrap_or_else(|e| panic!("{what}: the first close: {e}"));
            }
            let refused = g.start(&Command::new("sleep").arg("300"));
            assert!(
                refused.is_err(),
                "{what}: a start after a close began was taken"
            );
            tokio::time::timeout(DEADLINE * 3, g.close())
                .await
                .unwrap_or_else(|_| panic!("{what}: the second close hung"))
                .unwrap_or_else(|e| panic!("{what}: the second close: {e}"));
            assert_gone(&pids, &what).await;
        }
    }
    suite.end().await;
}

/// Two closes at once of a group whose tree is up (one takes the part
/// without a wait, the other waits its turn), and of one whose tree is
/// gone already: both return Ok, and nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_closes_at_once_both_end_well() {
    let suite = begin("two_closes_at_once_both_end_well").await;
    for choice in mechanisms() {
        let what = format!("{choice}");
        let g = Arc::new(group(choice));
        let (_p, pids) = hard_tree(&g, choice).await;
        let _guard = KillOnDrop::new(pids.clone());
        let other = {
            let g = g.clone();
            tokio::spawn(async move { g.close().await })
        };
        let mine = g.close().await;
        let theirs = tokio::time::timeout(DEADLINE * 3, other)
            .await
            .unwrap_or_else(|_| panic!("{what}: the other close hung"))
            .expect("the other close's task");
        mine.unwrap_or_else(|e| panic!("{what}: a close: {e}"));
        theirs.unwrap_or_else(|e| panic!("{what}: the other close: {e}"));
        assert_gone(&pids, &what).await;

        // The usual end: the tree gone before the closes.
        let g = Arc::new(group(choice));
        let mut p = g
            .start(&Command::new("true"))
            .unwrap_or_else(|e| panic!("{what}: start: {e}"));
        p.wait()
            .await
            .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
        let (a, b) = tokio::join!(g.close(), g.close());
        a.unwrap_or_else(|e| panic!("{what}: an empty group's close: {e}"));
        b.unwrap_or_else(|e| panic!("{what}: an empty group's other close: {e}"));
    }
    suite.end().await;
}

/// Starts on other threads race a close: every start that succeeded is
/// ended by it (the close's part without a wait must see a start that was
/// still placing its child), the later ones are refused, and the close
/// returns. Several rounds, on each mechanism.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_racing_starts_leaves_none_running() {
    let suite = begin("a_close_racing_starts_leaves_none_running").await;
    for choice in mechanisms() {
        for round in 0..6 {
            let what = format!("{choice}, round {round}");
            let g = Arc::new(group(choice));
            let started = Arc::new(std::sync::Mutex::new(Vec::new()));
            let starters: Vec<_> = (0..2)
                .map(|_| {
                    let (g, started) = (g.clone(), started.clone());
                    std::thread::spawn(move || {
                        let cmd = Command::new("sleep").arg("300");
                        // A refused start ends the loop; the others are
                        // recorded (pid and handle: the handle's drop is
                        // no kill of a group member).
                        while let Ok(p) = g.start(&cmd) {
                            started.lock().unwrap().push(p);
                        }
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(20 * round)).await;
            tokio::time::timeout(DEADLINE * 3, g.close())
                .await
                .unwrap_or_else(|_| panic!("{what}: the close hung"))
                .unwrap_or_else(|e| panic!("{what}: close: {e}"));
            for s in starters {
                s.join().expect("a starter");
            }
            let pids: Vec<u32> = started.lock().unwrap().iter().map(|p| p.pid()).collect();
            assert_gone(&pids, &what).await;
        }
    }
    suite.end().await;
}

/// Adopting a zombie (a child of this process that exited and was not
/// reaped) neither hangs nor takes its status from its parent: the
/// adopt's answer is whatever the mechanism says, the group's close
/// returns, and the parent still reaps the child's own exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_a_zombie_leaves_its_status_to_its_parent() {
    let suite = begin("adopting_a_zombie_leaves_its_status_to_its_parent").await;
    for choice in mechanisms() {
        let what = format!("{choice}");
        let g = group(choice);
        let _p = g
            .start(&Command::new("sleep").arg("300"))
            .unwrap_or_else(|e| panic!("{what}: start: {e}"));
        let mut child = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .expect("a child");
        let pid = child.id();
        let until = Instant::now() + DEADLINE;
        while stat(pid).map(|s| s.state) != Some('Z') {
            assert!(Instant::now() < until, "{what}: never a zombie");
            tokio::time::sleep(POLL).await;
        }
        let adopted = g.adopt(pid);
        eprintln!("{what}: adopting a zombie: {adopted:?}");
        tokio::time::timeout(DEADLINE * 3, g.close())
            .await
            .unwrap_or_else(|_| panic!("{what}: the close hung"))
            .unwrap_or_else(|e| panic!("{what}: close: {e}"));
        let status = child.wait().expect("reaping the zombie");
        assert_eq!(status.code(), Some(7), "{what}: {status:?}");
    }
    suite.end().await;
}

const ROLE: &str = "RV50_ROLE";

/// The helper of [`adopting_a_child_by_a_thread_id_takes_the_whole_child`]:
/// a thread of its own writes its id to the file named by the role, and
/// the process waits to be killed.
fn threaded_helper(file: &str) {
    let file = file.to_owned();
    let _keep = std::thread::spawn(move || {
        let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
        let tid = link
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap()
            .to_owned();
        std::fs::write(format!("{file}.tmp"), format!("{tid}\n")).unwrap();
        std::fs::rename(format!("{file}.tmp"), &file).unwrap();
        std::thread::sleep(Duration::from_secs(300));
    });
    std::thread::sleep(Duration::from_secs(300));
}

/// A thread id of a child process (not this one's) names that whole
/// process: under cgroup v2 `cgroup.procs` moves it all, and the group's
/// close ends it; a process group refuses it (not a child that has not
/// executed), and it runs on. Never refused as "this process".
#[test]
fn adopting_a_child_by_a_thread_id_takes_the_whole_child() {
    let name = "adopting_a_child_by_a_thread_id_takes_the_whole_child";
    if let Ok(file) = std::env::var(ROLE) {
        threaded_helper(&file);
        return;
    }
    in_suite(name, || {
        for choice in mechanisms() {
            let what = format!("{choice}");
            let file = TempPath::new("rv50-tid");
            let child = self_as(name, (ROLE, file.as_str()), &[])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("the helper starts");
            let mut held = ChildOnDrop(child);
            let pid = held.0.id();
            let until = Instant::now() + DEADLINE * 3;
            let tid: u32 = loop {
                if let Ok(t) = std::fs::read_to_string(file.path()) {
                    break t.trim().parse().expect("a thread id");
                }
                assert!(Instant::now() < until, "{what}: the helper never said");
                std::thread::sleep(POLL);
            };
            assert_ne!(tid, pid, "{what}: a thread besides the main one");
            let g = pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice))
                .unwrap_or_else(|e| panic!("{what}: group: {e}"));
            let _p = g
                .start(&Command::new("sleep").arg("300"))
                .unwrap_or_else(|e| panic!("{what}: start: {e}"));
            let adopted = g.adopt(tid);
            if let Err(e) = &adopted {
                assert_ne!(e.kind(), pkit::ErrorKind::InvalidInput, "{what}: {e}");
            }
            if choice == MechanismChoice::Cgroup {
                adopted
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{what}: adopt by thread id: {e}"));
            }
            g.close().unwrap_or_else(|e| panic!("{what}: close: {e}"));
            let until = Instant::now() + DEADLINE;
            let ended = loop {
                if let Some(st) = held.0.try_wait().expect("try_wait") {
                    break Some(st);
                }
                if Instant::now() > until {
                    break None;
                }
                std::thread::sleep(POLL);
            };
            match adopted {
                Ok(()) => {
                    let st = ended.unwrap_or_else(|| panic!("{what}: adopted, yet not ended"));
                    use std::os::unix::process::ExitStatusExt;
                    assert_eq!(st.signal(), Some(libc::SIGKILL), "{what}: {st:?}");
                }
                Err(e) => assert!(ended.is_none(), "{what}: refused ({e}), yet ended"),
            }
        }
    });
}

/// `Signal::Kill` through `signal_async` beside a close that waits (a
/// suspended tree): both return, and the tree is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_beside_a_waiting_close_ends_well() {
    let suite = begin("a_kill_beside_a_waiting_close_ends_well").await;
    for choice in mechanisms() {
        let what = format!("{choice}");
        let g = Arc::new(group(choice));
        let (_p, pids) = hard_tree(&g, choice).await;
        let _guard = KillOnDrop::new(pids.clone());
        g.suspend()
            .await
            .unwrap_or_else(|e| panic!("{what}: suspend: {e}"));
        let closing = {
            let g = g.clone();
            tokio::spawn(async move { g.close().await })
        };
        let killed = g.signal_async(Signal::Kill).await;
        let closed = tokio::time::timeout(DEADLINE * 3, closing)
            .await
            .unwrap_or_else(|_| panic!("{what}: the close hung"))
            .expect("the close's task");
        closed.unwrap_or_else(|e| panic!("{what}: close: {e}"));
        eprintln!("{what}: the kill beside: {killed:?}");
        assert_gone(&pids, &what).await;
    }
    suite.end().await;
}

/// The helper of [`adopting_pid_zero_or_a_negative_one_is_refused`]: each
/// of 0 (`cgroup.procs` and `setpgid(2)` read it as the caller), and pids
/// that turn negative as an `i32` (-1 is every process `kill(2)` may
/// reach; `i32::MIN`) is refused, and the group's close leaves this
/// process alive to say so.
fn odd_pids_helper(role: &str) {
    let choice = match role {
        "cgroup" => MechanismChoice::Cgroup,
        "pgroup" => MechanismChoice::ProcessGroup,
        _ => MechanismChoice::Portable,
    };
    let g = pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice)).expect("group");
    let _p = g.start(&Command::new("sleep").arg("300")).expect("start");
    for pid in [0, u32::MAX, 1 << 31, u32::MAX - 1] {
        let r = g.adopt(pid);
        assert!(r.is_err(), "{choice}: adopt({pid}) was taken");
        println!("rv50: {pid}: {}", r.unwrap_err());
    }
    g.close().expect("close");
    println!("rv50: survived");
}

#[test]
fn adopting_pid_zero_or_a_negative_one_is_refused() {
    let name = "adopting_pid_zero_or_a_negative_one_is_refused";
    if let Ok(role) = std::env::var(ROLE) {
        odd_pids_helper(&role);
        return;
    }
    in_suite(name, || {
        for choice in mechanisms() {
            let (status, text) = run_self_as(
                name,
                (ROLE, &choice.to_string()),
                &[],
                Duration::from_secs(120),
            );
            assert!(
                status.is_some_and(|s| s.success()) && text.contains("rv50: survived"),
                "{choice}: {status:?} {text}"
            );
        }
    });
}

/// A started process moved out of its group's cgroup by hand (into the
/// group's parent directory, as root may): the group's close and its drop
/// end it alike (both know it as a started child, through its pidfd).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_process_moved_out_by_hand_is_ended_by_close_and_drop() {
    let suite = begin("a_started_process_moved_out_by_hand_is_ended_by_close_and_drop").await;
    if !mechanisms().contains(&MechanismChoice::Cgroup) {
        suite.end().await;
        return;
    }
    for by_close in [true, false] {
        let what = format!("by close {by_close}");
        let g = group(MechanismChoice::Cgroup);
        let p = g
            .start(&Command::new("sleep").arg("300"))
            .unwrap_or_else(|e| panic!("{what}: start: {e}"));
        let pid = p.pid();
        let _guard = KillOnDrop::new(vec![pid]);
        let dir = cgroup_dir(&g).expect("the group's cgroup directory");
        let parent = dir.parent().expect("a parent directory").to_path_buf();
        if std::fs::write(parent.join("cgroup.procs"), pid.to_string()).is_err() {
            skipped(
                "a_started_process_moved_out_by_hand",
                "can't move a process",
            );
            break;
        }
        if by_close {
            g.close()
                .await
                .unwrap_or_else(|e| panic!("{what}: close: {e}"));
            // A close waits for its started processes to be gone.
            assert!(pid_gone(pid), "{what}: close returned with it running");
        } else {
            drop(g);
        }
        assert_gone(&[pid], &what).await;
        drop(p);
    }
    suite.end().await;
}
