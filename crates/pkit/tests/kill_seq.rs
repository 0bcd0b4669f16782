//! The kernel's cgroup kill sequence (seen on Linux 6.18): a child placed
//! with `clone3(CLONE_INTO_CGROUP)` is SIGKILLed at birth when the parent's
//! cgroup and the target cgroup have different kill sequences (one of them
//! was written `cgroup.kill` at some time). An owner living in a cgroup that
//! was killed before it joined must still run its programs: pkit notices
//! the kill at birth and places them by its second rung.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, Group, MechanismChoice};

/// Set in the helper owner's environment: the cgroup directory it moves
/// itself into before it uses pkit.
const HELPER: &str = "PKIT_TEST_KILL_SEQ_HELPER";

/// What the helper owner does, in a cgroup that was killed before it
/// joined: one-shot runs and a group's starts, each checked (exit 0, the
/// output intact); the placement after them is said with a `KSEQ` tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helper_owner_in_killed_cgroup() {
    let Ok(dir) = std::env::var(HELPER) else {
        return;
    };
    std::fs::write(Path::new(&dir).join("cgroup.procs"), "0").expect("joining the killed cgroup");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let rel = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    assert!(dir.ends_with(rel), "moved into {dir}: {own}");
    let runner = std::sync::Arc::new(pkit::SystemRunner::with_mechanism(MechanismChoice::Cgroup));
    for i in 0..3 {
        let out = Command::new("sh")
            .args(["-c", &format!("echo run-{i}")])
            .runner(runner.clone())
            .output()
            .await
            .expect("a one-shot run");
        assert!(out.success(), "run {i}: {:?}", out.outcome());
        assert_eq!(out.stdout_str(), format!("run-{i}\n"), "run {i}");
        println!("KSEQ run {i} ok");
    }
    let g = Group::builder()
        .mechanism(MechanismChoice::Cgroup)
        .build()
        .expect("a group");
    for i in 0..3 {
        let mut p = g
            .start(&Command::new("sh").args(["-c", &format!("echo start-{i}")]))
            .expect("a start");
        let out = p.wait().await.expect("its output");
        assert!(out.success(), "start {i}: {:?}", out.outcome());
        assert_eq!(out.stdout_str(), format!("start-{i}\n"), "start {i}");
        println!("KSEQ start {i} ok");
    }
    println!("KSEQ placement {:?}", g.placement());
    g.close().await.expect("close");
    pkit::release_spare_cgroups();
}

/// Makes `dir` (a new cgroup) a killed one: a `sleep` moved in, then
/// `cgroup.kill`, until the sleep is gone.
fn kill_once(dir: &Path) {
    let mut sleep = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .unwrap();
    let moved = std::fs::write(dir.join("cgroup.procs"), sleep.id().to_string());
    if let Err(e) = moved {
        let _ = sleep.kill();
        let _ = sleep.wait();
        panic!("moving a sleep into {}: {e}", dir.display());
    }
    std::fs::write(dir.join("cgroup.kill"), "1").unwrap();
    let status = sleep.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "the killed sleep");
}

/// Removes the cgroup `dir` once its processes are gone.
async fn remove_cgroup(dir: &Path) {
    let deadline = Instant::now() + DEADLINE;
    while std::fs::remove_dir(dir).is_err() && dir.exists() {
        assert!(Instant::now() < deadline, "{} stays", dir.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Case (b): the owner lives in a cgroup that was killed before it joined,
/// and every cgroup pkit makes has another kill sequence. Its one-shot
/// runs and a group's starts all succeed with their output (before: every
/// one was Signalled(9)), and the group reports the second rung, with the
/// kernel's kill as the reason (later starts don't pay twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_in_a_killed_cgroup_runs_its_programs() {
    if std::env::var(HELPER).is_ok() {
        return;
    }
    let suite = begin("an_owner_in_a_killed_cgroup_runs_its_programs").await;
    let parent = group_parent().filter(|_| mechanisms().contains(&MechanismChoice::Cgroup));
    let Some(parent) = parent else {
        skipped(
            "an_owner_in_a_killed_cgroup_runs_its_programs",
            "no cgroup here, or this run tests another mechanism",
        );
        suite.end().await;
        return;
    };
    let dir: PathBuf = parent.join(common::unique_name("kseq-test"));
    std::fs::create_dir(&dir).unwrap();
    kill_once(&dir);
    let helper = helper_owner_command(
        "helper_owner_in_killed_cgroup",
        HELPER,
        dir.to_str().unwrap(),
    )
    .env("PKIT_MECHANISM", "cgroup")
    .env_remove("PKIT_CLONE3")
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let pid = helper.id();
    let waited = tokio::time::timeout(
        DEADLINE * 6,
        tokio::task::spawn_blocking(move || helper.wait_with_output()),
    )
    .await;
    let out = match waited {
        Ok(out) => out.unwrap().unwrap(),
        Err(_) => {
            kill_pid(pid);
            panic!("the helper owner hung");
        }
    };
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    remove_cgroup(&dir).await;
    assert!(out.status.success(), "the helper owner: {said}");
    for what in ["run 0", "run 2", "start 0", "start 2"] {
        assert!(said.contains(&format!("KSEQ {what} ok")), "{what}: {said}");
    }
    let placement = said
        .lines()
        .find_map(|l| l.split("KSEQ placement ").nth(1))
        .expect("the placement");
    assert!(
        placement.starts_with("JoinBeforeExec") && placement.contains("killed a child"),
        "{placement}"
    );
    suite.end().await;
}

/// A close racing a start: close writes `cgroup.kill`, after which the
/// kernel kills every child placed in that directory at birth. Such a
/// child is the close's kill, reported as the start's failure or the
/// child's SIGKILL: never placed again by the second rung, and never a
/// reason to give clone3 up for the process. (Before: a start that read
/// the group's kill count between two of close's kills took the death for
/// the kernel's own, ran the program after the close had begun, and
/// switched the whole process to the second rung; rv13 saw it at
/// iterations 109 to 305 of this loop.) Each group has a first process,
/// so the racing start goes to a leaf of the group's directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_close_racing_a_start_never_restarts_it() {
    let suite = begin("a_close_racing_a_start_never_restarts_it").await;
    if !mechanisms().contains(&MechanismChoice::Cgroup) || !cgroup_usable() {
        skipped(
            "a_close_racing_a_start_never_restarts_it",
            "no cgroup here, or this run tests another mechanism",
        );
        suite.end().await;
        return;
    }
    let spin = |us: u64| {
        let end = Instant::now() + Duration::from_micros(us);
        while Instant::now() < end {
            std::hint::spin_loop();
        }
    };
    for i in 0..400u64 {
        let g = std::sync::Arc::new(
            Group::builder()
                .mechanism(MechanismChoice::Cgroup)
                .build()
                .expect("group"),
        );
        assert_eq!(
            g.placement(),
            pkit::Placement::Clone3IntoCgroup,
            "iteration {i}"
        );
        let first = g.start(&Command::new("sleep").arg("100")).expect("first");
        let racing = g.clone();
        let start = tokio::task::spawn_blocking(move || racing.start(&Command::new("true")));
        spin((i * 37) % 1500);
        g.close().await.expect("close");
        if let Ok(mut p) = start.await.expect("the start's task") {
            let _ = p.wait().await;
        }
        drop(first);
        assert_eq!(
            g.placement(),
            pkit::Placement::Clone3IntoCgroup,
            "a close racing a start (iteration {i}) gave clone3 up"
        );
    }
    suite.end().await;
}
