//! Attack round dec05: a hostile root process interfering with the
//! cgroups pkit uses while it uses them (freezing them, killing them,
//! moving members out and strangers in, removing directories, enabling
//! controllers), and the one-shot runs' pool of spare cgroups after such
//! interference. Each case must end in a typed error or the right result:
//! never a hang, a panic, a stranger killed, or a cgroup directory left.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use pkit::{Command, Group, MechanismChoice};

/// No case may take longer than this (a hang fails, never blocks).
const LONG: Duration = Duration::from_secs(60);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LONG, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung past {LONG:?}"))
}

/// A cgroup group, or `None` (saying why) where none can be made.
fn cgroup_group(test: &str) -> Option<Group> {
    if !mechanisms().contains(&MechanismChoice::Cgroup) {
        skipped(test, "no cgroup here, or this run tests another mechanism");
        return None;
    }
    Some(group(MechanismChoice::Cgroup))
}

/// Writes `value` to the cgroup file `dir/file`, as another root process
/// would.
fn write_cg(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(file), value)
}

/// The cgroup directory (the leaf) that holds `pid`.
#[allow(dead_code)]
fn cgroup_of(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let parent = group_parent()?;
    // group_parent is a directory of the v2 mount; find the mount root.
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own_rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let root = strip_rel(&parent, own_rel)?;
    Some(root.join(rel.trim_start_matches('/')))
}

fn strip_rel(dir: &Path, rel: &str) -> Option<PathBuf> {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        return Some(dir.to_path_buf());
    }
    let s = dir.to_str()?;
    s.strip_suffix(rel)
        .map(|r| PathBuf::from(r.trim_end_matches('/')))
}

/// Starts the two-sleeps tree in `g`, returning the process and the pids.
async fn start_tree(g: &Group, tag: &str) -> (pkit::RunningProcess, Vec<u32>, TempPath) {
    let file = TempPath::new(tag);
    let cmd = Command::new("sh").args(["-c", TREE_TO_FILE, "sh", file.as_str()]);
    let p = g.start(&cmd).expect("start");
    let pids = file.wait_pids().await;
    (p, pids, file)
}

/// An outside `cgroup.freeze` of a live group's directory, then each way
/// of ending the group (a kill and a wait, a shutdown whose SIGTERM can't
/// act on frozen processes, a close, a drop, stats then a close): none
/// hangs or fails, every process is gone, and no directory is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_freeze_then_every_end() {
    let suite = begin("an_outside_freeze_then_every_end").await;
    for how in ["kill+wait", "shutdown", "close", "drop", "stats+close"] {
        let Some(g) = cgroup_group("an_outside_freeze_then_every_end") else {
            break;
        };
        let dir = cgroup_dir(&g).unwrap();
        let (mut p, pids, _f) = start_tree(&g, "freeze").await;
        write_cg(&dir, "cgroup.freeze", "1").unwrap();
        match how {
            "kill+wait" => {
                p.kill().expect("kill");
                let out = bounded(how, p.wait()).await.expect("wait");
                assert_eq!(out.outcome(), pkit::Outcome::Signalled(9), "{how}");
                bounded(how, g.close()).await.expect("close");
            }
            "shutdown" => {
                let r = bounded(how, g.shutdown(Duration::from_millis(300)))
                    .await
                    .expect("shutdown");
                assert_eq!(r.signalled(), 3, "{how}: {r:?}");
            }
            "close" => bounded(how, g.close()).await.expect("close"),
            "drop" => drop(g),
            _ => {
                g.stats().expect("stats of a frozen group");
                assert_eq!(g.pids().expect("pids").len(), 3, "{how}");
                bounded(how, g.close()).await.expect("close");
            }
        }
        drop(p);
        assert_gone(&pids, &format!("frozen from outside, then {how}")).await;
        // A group whose processes all ended in a shutdown's grace (it
        // thawed the cgroup) is empty at its close: its directory may be
        // kept as a spare.
        assert_dir_released(&dir).await;
    }
    suite.end().await;
}

/// A process of a stranger's moved into a live group's cgroup by root is a
/// member like any other (the group is its container): the close ends it
/// with the rest, and does not wait for it to be reaped (it is not our
/// child).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_moved_into_a_live_group_ends_with_it() {
    let suite = begin("a_stranger_moved_into_a_live_group_ends_with_it").await;
    if let Some(g) = cgroup_group("a_stranger_moved_into_a_live_group_ends_with_it") {
        let dir = cgroup_dir(&g).unwrap();
        let (p, pids, _f) = start_tree(&g, "in").await;
        let stranger = stranger();
        write_cg(
            &cgroup_of(pids[2]).unwrap(),
            "cgroup.procs",
            &stranger.to_string(),
        )
        .unwrap();
        assert!(
            g.pids().unwrap().contains(&stranger),
            "the stranger is a member"
        );
        bounded("close", g.close()).await.expect("close");
        drop(p);
        assert_gone(&pids, "the group's own").await;
        assert_gone(&[stranger], "the stranger moved in").await;
        assert_dir_gone(&dir).await;
    }
    suite.end().await;
}

/// A `sleep 300` that is no child of ours (its parent exited at once).
fn stranger() -> u32 {
    let out = std::process::Command::new("sh")
        .args(["-c", "sleep 300 >/dev/null 2>&1 & echo $!"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A group's directory removed from outside while empty (an
/// administrator's `rmdir`): a start is a typed error, stats work, and the
/// close succeeds, as the close of a group whose directory can't be
/// removed does. Before the fix the close failed with `Io` (`ENOENT`,
/// "closing the group") though nothing was left to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_directory_was_removed_from_outside_closes() {
    let suite = begin("a_group_whose_directory_was_removed_from_outside_closes").await;
    if let Some(g) = cgroup_group("a_group_whose_directory_was_removed_from_outside_closes") {
        let dir = cgroup_dir(&g).unwrap();
        let mut p = g.start(&Command::new("true")).expect("start");
        bounded("wait", p.wait()).await.expect("wait");
        drop(p);
        // Its leaves first (deepest first), then the directory itself.
        let mut subs: Vec<PathBuf> = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    subs.push(e.path());
                    stack.push(e.path());
                }
            }
        }
        for s in subs.iter().rev() {
            std::fs::remove_dir(s).unwrap();
        }
        std::fs::remove_dir(&dir).unwrap();
        let err = g
            .start(&Command::new("true"))
            .expect_err("no directory to start in");
        assert_eq!(err.kind(), pkit::ErrorKind::Spawn, "{err}");
        g.stats().expect("stats");
        bounded("close", g.close())
            .await
            .expect("the close of a removed group");
        bounded("close again", g.close())
            .await
            .expect("a second close");
    }
    suite.end().await;
}

/// Runs one one-shot run that prints its cgroup on a thread of its own,
/// with its own runtime: a run that blocks its thread (a spawn waiting for
/// a child that can never `exec`) fails the test instead of hanging it.
/// `unstick` is called before failing, to let that thread go.
fn run_printing_cgroup(
    runner: &std::sync::Arc<pkit::SystemRunner>,
    unstick: impl FnOnce(),
) -> pkit::Output {
    let runner = runner.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let out = rt.block_on(
            Command::new("sh")
                .args(["-c", "grep '^0::' /proc/self/cgroup"])
                .runner(runner)
                .output(),
        );
        let _ = tx.send(out);
    });
    match rx.recv_timeout(LONG) {
        Ok(out) => out.expect("the run"),
        Err(_) => {
            unstick();
            let _ = rx.recv_timeout(LONG);
            panic!("the run hung past {LONG:?}");
        }
    }
}

/// The spare cgroup the last one-shot run left (the only one: spares are
/// released first).
async fn fresh_spare(runner: &std::sync::Arc<pkit::SystemRunner>) -> (PathBuf, String) {
    pkit::release_spare_cgroups();
    let out = run_printing_cgroup(runner, || {});
    let ran_in = out.stdout_str().trim().to_string();
    let parent = group_parent().unwrap();
    let spares = cgroup_dirs_of(&parent, std::process::id());
    assert_eq!(spares.len(), 1, "one spare after one run: {spares:?}");
    (spares[0].clone(), ran_in)
}

/// A spare cgroup frozen from outside while pooled is not handed out.
/// Before the fix the next one-shot run's child was born into it frozen,
/// before its `exec`, and the spawn (a vfork, waiting for that `exec`)
/// blocked its thread for good; the frozen child, holding a copy of the
/// owner's descriptors, kept even the owner-death guard from acting when
/// the owner was killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spare_frozen_from_outside_is_not_reused() {
    let guard = begin_exclusive().await;
    if cgroup_group("a_spare_frozen_from_outside_is_not_reused").is_some() {
        let runner =
            std::sync::Arc::new(pkit::SystemRunner::with_mechanism(MechanismChoice::Cgroup));
        let (spare, ran_in) = fresh_spare(&runner).await;
        write_cg(&spare, "cgroup.freeze", "1").unwrap();
        let thaw = spare.clone();
        let out = run_printing_cgroup(&runner, move || {
            let _ = write_cg(&thaw, "cgroup.freeze", "0");
        });
        assert!(out.success(), "{:?}", out.outcome());
        assert_ne!(
            out.stdout_str().trim(),
            ran_in,
            "the frozen spare was reused"
        );
        assert_dir_gone(&spare).await;
        pkit::release_spare_cgroups();
    }
    end_exclusive(guard, "a_spare_frozen_from_outside_is_not_reused").await;
}

/// A spare cgroup into which root moved a process of a stranger's while it
/// was pooled is not handed out. Before the fix the next one-shot run
/// shared it with the stranger, and its close killed the stranger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spare_given_a_stranger_is_not_reused() {
    let guard = begin_exclusive().await;
    if cgroup_group("a_spare_given_a_stranger_is_not_reused").is_some() {
        let runner =
            std::sync::Arc::new(pkit::SystemRunner::with_mechanism(MechanismChoice::Cgroup));
        let (spare, ran_in) = fresh_spare(&runner).await;
        let s = stranger();
        write_cg(&spare, "cgroup.procs", &s.to_string()).unwrap();
        let out = run_printing_cgroup(&runner, || {});
        assert!(out.success(), "{:?}", out.outcome());
        assert_ne!(
            out.stdout_str().trim(),
            ran_in,
            "the populated spare was reused"
        );
        assert_alive(&[s], "the stranger in the spare");
        kill_pid(s);
        assert_gone(&[s], "the stranger").await;
        // Its directory is ours (the name says so): removable once empty.
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::fs::remove_dir(&spare).is_err() && std::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        pkit::release_spare_cgroups();
    }
    end_exclusive(guard, "a_spare_given_a_stranger_is_not_reused").await;
}

/// A group's directory written `cgroup.kill` from outside while its
/// processes run, then ended normally (the processes' exits come first),
/// is pooled as a spare (no file of the cgroup shows an outside kill), and
/// on Linux 6.18 a child placed into it with `CLONE_INTO_CGROUP` is
/// SIGKILLed at birth. The next one-shot run still succeeds (before:
/// Signalled(9)): pkit sees its child die before it ran, places it again
/// by joining the cgroup before exec, and does not pool that spare again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_killed_from_outside_leaves_no_poisoned_spare() {
    let guard = begin_exclusive().await;
    if let Some(g) = cgroup_group("a_group_killed_from_outside_leaves_no_poisoned_spare") {
        pkit::release_spare_cgroups();
        let dir = cgroup_dir(&g).unwrap();
        let (mut p, pids, _f) = start_tree(&g, "ckill").await;
        write_cg(&dir, "cgroup.kill", "1").unwrap();
        let out = bounded("wait", p.wait()).await.expect("wait");
        assert_eq!(out.outcome(), pkit::Outcome::Signalled(9));
        assert_gone(&pids, "an outside cgroup.kill").await;
        bounded("close", g.close()).await.expect("close");
        drop(p);
        let runner =
            std::sync::Arc::new(pkit::SystemRunner::with_mechanism(MechanismChoice::Cgroup));
        let next = run_printing_cgroup(&runner, || {});
        let after = run_printing_cgroup(&runner, || {});
        pkit::release_spare_cgroups();
        assert!(next.success(), "the next run: {:?}", next.outcome());
        let name = dir.file_name().unwrap().to_str().unwrap();
        let ran_in = next.stdout_str().trim().to_string();
        assert!(
            ran_in.ends_with(&format!("/{name}")),
            "{ran_in}: not the spare {name}"
        );
        assert!(after.success(), "the run after: {:?}", after.outcome());
        let ran_in = after.stdout_str().trim().to_string();
        assert!(
            !ran_in.ends_with(&format!("/{name}")),
            "{ran_in}: the spare, pooled again"
        );
    }
    end_exclusive(
        guard,
        "a_group_killed_from_outside_leaves_no_poisoned_spare",
    )
    .await;
}

/// The helper of the test below, run as a process of its own: a stranger
/// moved into its spare, one more run, then a normal exit. It prints the
/// stranger's pid and the spare's directory.
#[test]
fn stranger_in_spare_owner() {
    if std::env::var("PKIT_DEC05_STRANGER_OWNER").is_err() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runner = std::sync::Arc::new(pkit::SystemRunner::with_mechanism(MechanismChoice::Cgroup));
    let (spare, _) = rt.block_on(fresh_spare(&runner));
    let s = stranger();
    println!("\nDEC05 stranger={s}");
    println!("DEC05 spare={}", spare.display());
    write_cg(&spare, "cgroup.procs", &s.to_string()).unwrap();
    let out = run_printing_cgroup(&runner, || {});
    assert!(out.success(), "{:?}", out.outcome());
}

/// A spare into which a stranger's process was moved is forgotten when
/// taken, its guard registration dropped with it: the stranger outlives
/// the owner's normal exit. Before: the spare kept its registration, and
/// the owner-death guard tore the cgroup down when the owner ended,
/// killing the stranger (rv12's probe: gone within 5 s of the exit).
#[test]
fn a_stranger_in_a_forgotten_spare_outlives_the_owner() {
    if !mechanisms().contains(&MechanismChoice::Cgroup) {
        skipped(
            "a_stranger_in_a_forgotten_spare_outlives_the_owner",
            "no cgroup here, or this run tests another mechanism",
        );
        return;
    }
    in_suite("a_stranger_in_a_forgotten_spare_outlives_the_owner", || {
        let out = helper_owner_command("stranger_in_spare_owner", "PKIT_DEC05_STRANGER_OWNER", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |key: &str| {
            text.lines()
                .find_map(|l| Some(&l[l.find(key)? + key.len()..]))
                .map(str::to_string)
                .unwrap_or_else(|| panic!("no {key:?} from the owner: {text}"))
        };
        let s: u32 = field("DEC05 stranger=").parse().unwrap();
        let spare = PathBuf::from(field("DEC05 spare="));
        assert!(out.status.success(), "the owner: {text}");
        // The owner has exited; its guard acts within milliseconds of
        // that. The stranger must still live well after.
        std::thread::sleep(Duration::from_secs(2));
        let alive = !pid_gone(s);
        kill_pid(s);
        let deadline = std::time::Instant::now() + DEADLINE;
        while !pid_gone(s) && std::time::Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        // The forgotten directory: removed here once the stranger is gone.
        while spare.exists()
            && std::fs::remove_dir(&spare).is_err()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(POLL);
        }
        assert!(alive, "the stranger {s} was killed after the owner's exit");
        assert!(!spare.exists(), "{} left", spare.display());
    });
}

/// Root moves every process of a group out of its cgroup and removes the
/// emptied directory: the close still ends the program the group started
/// (pkit's own child, reached through its pidfd) and says `Ok`; the
/// processes moved out are no longer the group's. Before: the close said
/// `Ok` at once and ended nothing, the program included (rv12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_emptied_and_removed_from_outside_still_ends_its_program() {
    let suite = begin("a_group_emptied_and_removed_from_outside_still_ends_its_program").await;
    if let Some(g) = cgroup_group("a_group_emptied_and_removed_from_outside_still_ends_its_program")
    {
        let dir = cgroup_dir(&g).unwrap();
        let (mut p, pids, _f) = start_tree(&g, "movedout").await;
        let parent = group_parent().unwrap();
        for pid in &pids {
            write_cg(&parent, "cgroup.procs", &pid.to_string()).unwrap();
        }
        // Its sub-cgroups (a leaf) first, then the directory.
        let mut subs = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    subs.push(e.path());
                    stack.push(e.path());
                }
            }
        }
        for s in subs.iter().rev() {
            std::fs::remove_dir(s).unwrap();
        }
        std::fs::remove_dir(&dir).unwrap();
        let closed = bounded("close", g.close()).await;
        let program = p.pid();
        let out = bounded("wait", p.wait()).await.expect("wait");
        let others: Vec<u32> = pids.iter().copied().filter(|&q| q != program).collect();
        for q in &others {
            kill_pid(*q);
        }
        assert_gone(&others, "the moved-out sleeps, ended by the test").await;
        closed.expect("close");
        assert_eq!(out.outcome(), pkit::Outcome::Signalled(9), "the program");
        assert_gone(&[program], "the group's own program").await;
    }
    suite.end().await;
}
