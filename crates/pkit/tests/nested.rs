//! Groups whose cgroup gains sub-cgroups, as when a program in the group
//! uses pkit itself, runs a container or runs systemd: the group is still
//! listed, signalled, killed and removed whole, a run's `Output` survives
//! its teardown, and no directory is left or reused with sub-cgroups in it.
//!
//! Sub-cgroups exist only under the cgroup mechanism: a process group has
//! nothing comparable, so these tests run the cgroup half only (and say so
//! when cgroups are unusable here).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use pkit::{Command, MechanismChoice, Signal};

const CG: MechanismChoice = MechanismChoice::Cgroup;

/// The shell text that sets `$d` to the script's own cgroup directory.
fn own_cgroup_var() -> String {
    let mount = pkit::host_containment()
        .cgroup_mount
        .expect("cgroup v2 is mounted");
    format!(
        r#"d="{}$(sed -n 's/^0:://p' /proc/self/cgroup)""#,
        mount.display()
    )
}

/// A script that makes the sub-cgroup `$d/inner` (what a nested pkit does),
/// moves itself into it, prints its pid and `ready`, and becomes a sleep.
fn moves_itself_into_a_subcgroup() -> String {
    format!(
        r#"{}; mkdir "$d/inner" && echo $$ > "$d/inner/cgroup.procs" && echo $$ && echo ready && exec sleep 300"#,
        own_cgroup_var()
    )
}

/// The sub-directories of a cgroup directory.
fn subdirs(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_run_with_a_subcgroup_keeps_its_output_and_leaves_nothing() {
    let suite = begin("a_timed_out_run_with_a_subcgroup_keeps_its_output_and_leaves_nothing").await;
    if cgroup_usable() {
        let script = moves_itself_into_a_subcgroup();
        // A verb's teardown used to fail with EBUSY here (rmdir of a cgroup
        // with a sub-cgroup) and return that error instead of the Output.
        let (out, pids) = output_timing_out_after_ready("timed-out nested run", |limit| {
            sh(CG, &script).timeout(limit)
        })
        .await;
        assert!(out.timed_out(), "{:?}", out.outcome());
        assert!(
            out.stdout_str().ends_with("ready\n"),
            "{:?}",
            out.stdout_str()
        );
        assert_eq!(pids, vec![out.pid()]);
        assert_gone(&pids, "the process in the sub-cgroup").await;
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_leaves_a_populated_subcgroup_is_ended_whole() {
    let suite = begin("a_run_that_leaves_a_populated_subcgroup_is_ended_whole").await;
    if cgroup_usable() {
        // The main process exits at once; a sleep lives on in a sub-cgroup.
        let script = format!(
            r#"{}; mkdir "$d/inner" || exit 9; sleep 300 & echo $! > "$d/inner/cgroup.procs" && echo $!"#,
            own_cgroup_var()
        );
        let out = sh(CG, &script).output().await.expect("the run's Output");
        assert!(out.success(), "{:?} {:?}", out.outcome(), out.stderr_str());
        let pids = pid_lines(&out.stdout_str());
        assert_eq!(pids.len(), 1, "{:?}", out.stdout_str());
        assert_gone(&pids, "the sleep in the sub-cgroup").await;
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cgroup_with_subcgroups_is_never_pooled() {
    let suite = begin("a_cgroup_with_subcgroups_is_never_pooled").await;
    if cgroup_usable() {
        // Run 1 exits cleanly but leaves an empty sub-cgroup behind.
        let script = format!(r#"{}; mkdir "$d/inner" && echo "$d""#, own_cgroup_var());
        let out = sh(CG, &script).output().await.unwrap();
        assert!(out.success(), "{:?} {:?}", out.outcome(), out.stderr_str());
        let first = PathBuf::from(out.stdout_str().trim());
        // Its directory was removed (sub-cgroup first), not kept for reuse.
        assert!(!first.exists(), "{} was kept", first.display());
        // And a later run starts in a directory without sub-cgroups.
        let out = sh(CG, &format!(r#"{}; echo "$d""#, own_cgroup_var()))
            .output()
            .await
            .unwrap();
        let second = PathBuf::from(out.stdout_str().trim());
        assert!(second.is_dir() || !second.exists());
        assert!(subdirs(&second).is_empty(), "{}", second.display());
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_verbs_cover_processes_in_subcgroups() {
    let suite = begin("group_verbs_cover_processes_in_subcgroups").await;
    if cgroup_usable() {
        let group = group(CG);
        let dir = cgroup_dir(&group).unwrap();
        let file = TempPath::new("nested-verbs");
        // sh moves two sleeps into a sub-cgroup two levels down, and stays
        // where it was started.
        let script = format!(
            r#"{}; mkdir -p "$d/a/b" || exit 9; sleep 300 & echo $! > "$d/a/b/cgroup.procs"; echo $! >> "$1"; sleep 300 & echo $! > "$d/a/cgroup.procs"; echo $! >> "$1"; echo done >> "$1"; wait"#,
            own_cgroup_var()
        );
        let proc = group
            .start(&Command::new("sh").args(["-c", &script, "sh", file.as_str()]))
            .unwrap();
        let sleeps = file.wait_pids().await;
        assert_eq!(sleeps.len(), 2);
        let mut all = sleeps.clone();
        all.push(proc.pid());

        // Listing and stats see the whole subtree.
        let listed = set(&group.pids().unwrap());
        assert!(listed.is_superset(&set(&all)), "{listed:?} vs {all:?}");
        let named: Vec<u32> = group.processes().unwrap().iter().map(|p| p.pid).collect();
        assert!(set(&named).is_superset(&set(&all)), "{named:?}");
        assert!(group.stats().unwrap().active_processes() >= 3);

        // Suspend freezes the sub-cgroups too (the freeze is recursive) and
        // a signal to a suspended group leaves it frozen.
        group.suspend().await.unwrap();
        // sh made a/b under its own cgroup: the group's, or (a started
        // process's) its own sub-cgroup of it.
        let deep = [dir.join("a/b")]
            .into_iter()
            .chain(subdirs(&dir).into_iter().map(|d| d.join("a/b")))
            .find(|d| d.is_dir())
            .expect("a/b exists")
            .join("cgroup.events");
        let frozen = || std::fs::read_to_string(&deep).unwrap().contains("frozen 1");
        let deadline = std::time::Instant::now() + DEADLINE;
        while !frozen() {
            assert!(std::time::Instant::now() < deadline, "a/b never froze");
            tokio::time::sleep(POLL).await;
        }
        group.resume().await.unwrap();

        // A signal reaches the processes in the sub-cgroups.
        group.signal(Signal::Term).unwrap();
        assert_gone(&all, "SIGTERM to a group with sub-cgroups").await;
        drop(proc);

        // And kill does, on a fresh tree in the same (still usable) group.
        let file = TempPath::new("nested-kill");
        let proc = group
            .start(&Command::new("sh").args(["-c", &script, "sh", file.as_str()]))
            .unwrap();
        let sleeps = file.wait_pids().await;
        group.kill().unwrap();
        assert_gone(&sleeps, "Group::kill of a group with sub-cgroups").await;
        // kill sends and returns: the main `sh` may still be on its way
        // out (not yet a zombie) when the sleeps are gone.
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let left = group.pids().unwrap();
            if left.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still members after kill: {left:?}"
            );
            tokio::time::sleep(POLL).await;
        }
        drop(proc);
        group
            .close()
            .await
            .expect("close removes the sub-cgroups first");
        assert!(!dir.exists(), "{}", dir.display());
    }
    suite.end().await;
}

/// A child that appends its pid to the file `$1`, then on SIGTERM appends
/// `TERM` and exits 0.
const TRAPS_TERM: &str = r#"trap 'echo TERM >> "$1"; exit 0' TERM; echo $$ >> "$1"; while :; do sleep 0.1 & wait $!; done"#;

/// Polls `file` until it holds a pid line.
async fn first_pid(file: &TempPath) -> u32 {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(file.path()).unwrap_or_default();
        if let Some(p) = text.lines().find_map(|l| l.trim().parse().ok()) {
            return p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pid in {}",
            file.as_str()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Catchable signals leave out the groups of a nested pkit (its owner gets
/// them and relays them), recognised by name *and* by their owner living
/// in the cgroup above. A sub-cgroup a program makes itself is signalled
/// like the rest: a plain name, or a pkit-like name whose "owner" is not
/// above it. One named after a process that does live above (a program
/// mimicking a nested pkit) is left the graceful signal, but not the
/// SIGKILL after the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_reaches_subcgroups_that_are_not_a_nested_pkits() {
    let suite = begin("a_graceful_stop_reaches_subcgroups_that_are_not_a_nested_pkits").await;
    if cgroup_usable() {
        let group = group(CG);
        let (plain, pkit_like, mimic) = (
            TempPath::new("sub-plain"),
            TempPath::new("sub-pkit-like"),
            TempPath::new("sub-mimic"),
        );
        // `$1` the child's script, then the three children's files. The
        // shell stays in the group's directory, above all three.
        let script = format!(
            r#"{}; c="$1"
sh -c "$c" sh "$2" & a=$!; mkdir "$d/inner" && echo $a > "$d/inner/cgroup.procs" || exit 9
sh -c "$c" sh "$3" & b=$!; mkdir "$d/pkit-$b-1" && echo $b > "$d/pkit-$b-1/cgroup.procs" || exit 9
sh -c "$c" sh "$4" & m=$!; mkdir "$d/pkit-$$-1" && echo $m > "$d/pkit-$$-1/cgroup.procs" || exit 9
wait"#,
            own_cgroup_var()
        );
        let proc = group
            .start(&Command::new("sh").args([
                "-c",
                &script,
                "sh",
                TRAPS_TERM,
                plain.as_str(),
                pkit_like.as_str(),
                mimic.as_str(),
            ]))
            .unwrap();
        let mut pids = vec![proc.pid()];
        for f in [&plain, &pkit_like, &mimic] {
            pids.push(first_pid(f).await);
        }
        // Each child is in its sub-cgroup by now? Wait until the shell's
        // own directory lists only the shell.
        let dir = cgroup_dir(&group).unwrap();
        let deadline = std::time::Instant::now() + DEADLINE;
        while cgroup_own_procs(&dir) != vec![proc.pid()] {
            assert!(
                std::time::Instant::now() < deadline,
                "the children never left {}: {:?}",
                dir.display(),
                cgroup_own_procs(&dir)
            );
            tokio::time::sleep(POLL).await;
        }
        // The grace the two trapping children have to write `TERM` (a
        // loaded machine can take seconds to run a trap; the trap is one
        // `echo`): the mimic, spared the TERM, holds the shutdown for all
        // of it. 5 s (it was 10).
        let report = group.shutdown(Duration::from_secs(5)).await.unwrap();
        let terms = |f: &TempPath| {
            std::fs::read_to_string(f.path())
                .unwrap_or_default()
                .lines()
                .filter(|l| *l == "TERM")
                .count()
        };
        assert_eq!(terms(&plain), 1, "the child in a plain sub-cgroup");
        assert_eq!(terms(&pkit_like), 1, "the child in pkit-<its own pid>-1");
        assert_eq!(terms(&mimic), 0, "the child in pkit-<its parent's pid>-1");
        assert!(report.killed() >= 1, "the mimic was not killed: {report:?}");
        drop(proc);
        assert_gone(&pids, "every process, the mimic's child included").await;
    }
    suite.end().await;
}
