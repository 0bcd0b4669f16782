//! pkit inside pkit: the library runs the real `pkit` binary, which makes
//! its own group (under the cgroup mechanism, a sub-cgroup of the outer
//! group's), and the outer run or group still ends the whole tree, keeps
//! its `Output`, and leaves no process and no directory behind.
// Unix only: these run the Linux CLI (signals, /proc, ttys); Windows has
// tests/windows.rs.
#![cfg(unix)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pkit::{Command, Group, MechanismChoice, SystemRunner};

/// The tests here check that no cgroup directory of this process is left,
/// and make some themselves: one at a time (run side by side, one test's
/// live group was another's "left behind").
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PKIT: &str = env!("CARGO_BIN_EXE_pkit");
const DEADLINE: Duration = Duration::from_secs(15);

fn mechanisms() -> Vec<MechanismChoice> {
    let mut out = vec![MechanismChoice::ProcessGroup];
    if Group::builder()
        .mechanism(MechanismChoice::Cgroup)
        .build()
        .is_ok()
    {
        out.insert(0, MechanismChoice::Cgroup);
    } else {
        eprintln!("no cgroup here: the cgroup half is skipped");
    }
    out
}

/// Gone: no /proc entry, or a zombie waiting for init to reap it.
fn pid_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
            matches!(after.split_whitespace().next(), Some("Z") | Some("X"))
        }
    }
}

async fn assert_gone(pids: &[u32], what: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| !pid_gone(p)).collect();
        if alive.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still alive: {alive:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Directories named `pkit-<owner>-*` directly under the cgroup parent, for
/// every owner pid in `owners`.
fn dirs_of(owners: &[u32]) -> Vec<PathBuf> {
    let Some(parent) = pkit::host_containment().group_parent else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&parent) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            owners
                .iter()
                .any(|o| name.starts_with(&common::name_prefix(*o)))
        })
        .map(|e| e.path())
        .collect()
}

async fn assert_no_dirs(owners: &[u32], what: &str) {
    pkit::release_spare_cgroups();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = dirs_of(owners);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: left {left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pid lines before `ready`, or `None` without `ready`.
fn pids_before_ready(stdout: &str) -> Option<Vec<u32>> {
    if !stdout.lines().any(|l| l == "ready") {
        return None;
    }
    Some(
        stdout
            .lines()
            .take_while(|l| *l != "ready")
            .filter_map(|l| l.trim().parse().ok())
            .collect(),
    )
}

/// Runs `args` (a `pkit` command line whose innermost program prints pids,
/// then `ready`, then sleeps) under an outer timeout, growing the timeout
/// until `ready` came first; checks the Output and that nothing is left.
async fn nested_run_times_out_cleanly(choice: MechanismChoice, args: &[&str]) {
    let runner = Arc::new(SystemRunner::with_mechanism(choice));
    let mut limit = Duration::from_secs(1);
    loop {
        let out = Command::new(PKIT)
            .args(args)
            .timeout(limit)
            .runner(runner.clone())
            .output()
            .await
            .unwrap_or_else(|e| panic!("{choice}: the outer run's Output was lost: {e}"));
        assert!(
            out.timed_out(),
            "{choice}: {:?} {:?}",
            out.outcome(),
            out.stderr_str()
        );
        let what = format!("{choice}: pkit {args:?} under a {limit:?} timeout");
        let pids = pids_before_ready(&out.stdout_str());
        let mut all = pids.clone().unwrap_or_default();
        all.push(out.pid());
        assert_gone(&all, &what).await;
        assert_no_dirs(&[std::process::id(), out.pid()], &what).await;
        if pids.is_some() {
            return;
        }
        assert!(limit < Duration::from_secs(30), "{what}: never ready");
        limit *= 2;
    }
}

#[tokio::test]
async fn a_timed_out_run_of_pkit_run_keeps_its_output_and_leaves_nothing() {
    let _one = SERIAL.lock().await;
    for choice in mechanisms() {
        nested_run_times_out_cleanly(
            choice,
            &[
                "run",
                "--",
                "sh",
                "-c",
                "echo $$; echo ready; exec sleep 300",
            ],
        )
        .await;
    }
}

#[tokio::test]
async fn pkit_run_inside_pkit_run_inside_a_timed_out_run_leaves_nothing() {
    let _one = SERIAL.lock().await;
    let tree = "sleep 300 & echo $!; sleep 300 & echo $!; echo ready; wait";
    for choice in mechanisms() {
        nested_run_times_out_cleanly(choice, &["run", "--", PKIT, "run", "--", "sh", "-c", tree])
            .await;
    }
}

#[tokio::test]
async fn group_kill_ends_a_nested_pkit_and_its_child() {
    let _one = SERIAL.lock().await;
    for choice in mechanisms() {
        let group = Group::builder().mechanism(choice).build().unwrap();
        let file = common::temp_path(&format!("nested-{choice}"));
        let _ = std::fs::remove_file(&file);
        let script = r#"echo $$ > "$1.tmp" && mv "$1.tmp" "$1" && exec sleep 300"#;
        let proc = group
            .start(&Command::new(PKIT).args([
                "run",
                "--",
                "sh",
                "-c",
                script,
                "sh",
                file.to_str().unwrap(),
            ]))
            .unwrap();
        let deadline = Instant::now() + DEADLINE;
        let inner: u32 = loop {
            if let Some(p) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                break p;
            }
            assert!(
                Instant::now() < deadline,
                "{choice}: the inner sleep never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(!pid_gone(inner));
        group.kill().unwrap();
        assert_gone(&[inner, proc.pid()], &format!("{choice}: Group::kill")).await;
        let outer = proc.pid();
        drop(proc);
        group.close().await.unwrap();
        assert_no_dirs(&[outer], &format!("{choice}: the nested pkit's group")).await;
        let _ = std::fs::remove_file(&file);
    }
}

/// `pkit run -- pkit run -- sh -c '...two background sleeps...'`, the outer
/// pkit sent SIGTERM (it ends its tree and exits) or SIGKILL (its
/// owner-death guard ends the tree): either way every process of the tree,
/// the inner pkit included, is gone, in each mechanism (`PKIT_MECHANISM`,
/// which the inner pkit inherits).
// `outer` is waited for on a blocking thread it is moved to (clippy 1.85's
// zombie_processes does not follow the move).
#[allow(clippy::zombie_processes)]
#[tokio::test]
async fn the_outer_pkit_signalled_ends_the_inner_pkit_and_its_tree() {
    let _one = SERIAL.lock().await;
    use std::io::BufRead;
    let tree = "echo $$; sleep 300 & echo $!; sleep 300 & echo $!; echo ready; wait";
    let mut names = vec!["pgroup", "portable"];
    if mechanisms().contains(&MechanismChoice::Cgroup) {
        names.insert(0, "cgroup");
    }
    for mech in names {
        for sig in ["TERM", "KILL"] {
            let what = format!("{mech}: the outer pkit sent SIG{sig}");
            let mut outer = std::process::Command::new(PKIT)
                .args(["run", "--", PKIT, "run", "--", "sh", "-c", tree])
                .env("PKIT_MECHANISM", mech)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .map(common::Started::new)
                .unwrap();
            let stdout = outer.stdout.take().unwrap();
            let lines = tokio::task::spawn_blocking(move || {
                let mut pids = Vec::new();
                for line in std::io::BufReader::new(stdout).lines() {
                    let line = line.unwrap();
                    if line == "ready" {
                        return pids;
                    }
                    pids.push(line.trim().parse::<u32>().unwrap());
                }
                panic!("no ready line");
            });
            let mut pids = tokio::time::timeout(DEADLINE, lines)
                .await
                .unwrap_or_else(|_| panic!("{what}: never ready"))
                .unwrap();
            // The inner pkit: the shell's parent.
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", pids[0])).unwrap();
            let after = &stat[stat.rfind(')').unwrap() + 1..];
            let inner: u32 = after.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert_ne!(inner, outer.id(), "{what}: two pkits");
            pids.push(inner);
            let sent = std::process::Command::new("kill")
                .args(["-s", sig, &outer.id().to_string()])
                .status()
                .unwrap();
            assert!(sent.success(), "{what}: kill -s {sig}");
            let status = tokio::task::spawn_blocking(move || outer.wait().unwrap())
                .await
                .unwrap();
            assert!(!status.success(), "{what}: {status:?}");
            assert_gone(&pids, &what).await;
        }
    }
}
