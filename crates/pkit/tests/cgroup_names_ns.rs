//! pkits in two pid namespaces that share one cgroup hierarchy (two
//! containers without a cgroup namespace, two runs under `unshare -pf`,
//! which both start at pid 1, 2, ...) often have the same pid. Their
//! groups' cgroup names must still tell them apart: the stale sweep of one
//! must leave the other's live group alone, and must not take a dead
//! namespace's leftovers for its own because the pid matches.
//!
//! Three helpers (this binary run again as `cgname_helper`, a no-op unless
//! `PKIT_CGNAME_HELPER` is set), each pid 2 of a pid namespace of its own
//! (`unshare -pf --mount-proc sh -c ...`), all in this process's cgroup:
//! `hold` keeps a group with a `sleep` in it; `die` makes one too and is
//! then killed with its whole namespace (its guard included), leaving its
//! directory behind; `sweep` makes a group, which runs its stale sweep
//! (told to consider directories of any age).
//!
//! Cgroup only: skipped (saying so) in the process-group and portable passes.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pkit::{Command, Group, MechanismChoice};

const HELPER_VAR: &str = "PKIT_CGNAME_HELPER";

/// Runs as a helper when [`HELPER_VAR`] is set: makes a cgroup group with a
/// `sleep` in it (`hold`, `die`) or with `true` run in it (`sweep`), prints
/// `cgname <pid> <directory>`, then waits for its stdin to end (`hold`:
/// then closes the group; `die`: it is killed first).
#[test]
fn cgname_helper() {
    let Ok(mode) = std::env::var(HELPER_VAR) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if mode == "nested" {
            return nested_owner().await;
        }
        let group = Group::builder()
            .mechanism(MechanismChoice::Cgroup)
            .build()
            .expect("a cgroup group");
        let program = if mode == "sweep" { "true" } else { "sleep" };
        let mut child = group
            .start(&Command::new(program).arg("1000"))
            .expect("start");
        let pid = child.pid();
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("its cgroup");
        let line = cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("a v2 cgroup");
        // The group's own directory (a started process may be in a leaf
        // below it): the last component named as pkit names its groups.
        let dir = line
            .rsplit('/')
            .find(|c| c.starts_with("pkit-"))
            .expect("a pkit cgroup");
        let mut out = std::io::stdout().lock();
        writeln!(out, "cgname {} {dir}", std::process::id()).expect("stdout");
        out.flush().expect("stdout");
        drop(out);
        if mode == "sweep" {
            child.wait().await.expect("wait");
        } else {
            let mut rest = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest);
        }
        group.close().await.expect("close");
    });
}

/// A child that appends its pid to the file `$1`, then on SIGTERM appends
/// `TERM` and exits 0.
const TRAPS_TERM: &str = r#"trap 'echo TERM >> "$1"; exit 0' TERM; echo $$ >> "$1"; while :; do sleep 0.1 & wait $!; done"#;

/// The `nested` helper: a pkit inside a group of the test, in a pid
/// namespace of its own. It starts [`TRAPS_TERM`] (its file: the
/// `PKIT_CGNAME_FILE` variable) in a group of its own and waits; a SIGTERM
/// it notes in that file's `.owner` sibling, and waits on (to be killed).
async fn nested_owner() {
    let file = std::env::var("PKIT_CGNAME_FILE").expect("PKIT_CGNAME_FILE");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a TERM handler");
    let group = Group::builder()
        .mechanism(MechanismChoice::Cgroup)
        .build()
        .expect("a cgroup group");
    let _child = group
        .start(&Command::new("sh").args(["-c", TRAPS_TERM, "sh", &file]))
        .expect("start");
    term.recv().await;
    std::fs::write(format!("{file}.owner"), "TERM\n").expect("the owner's note");
    std::future::pending::<()>().await;
}

/// A helper in a pid namespace of its own, killed (with its namespace:
/// `--kill-child`) and reaped when dropped.
struct Helper {
    child: common::ChildOnDrop,
    /// Its pid in its namespace.
    pid: u32,
    /// Its group's directory.
    dir: PathBuf,
}

fn helper(mode: &str, parent: &Path) -> Helper {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = common::ChildOnDrop(
        std::process::Command::new("unshare")
            .args(["-pf", "--kill-child", "--mount-proc"])
            .args(["sh", "-c", "\"$@\"; exit $?", "sh"])
            .arg(exe)
            .args([
                "cgname_helper",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_VAR, mode)
            .env("PKIT_SWEEP_MIN_AGE_SECS", "0")
            .env_remove("PKIT_MECHANISM")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the helper in a new pid namespace"),
    );
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let fields: Vec<String> = loop {
        match lines.next() {
            Some(Ok(line)) => {
                // After the harness's `test cgname_helper ... `.
                if let Some(at) = line.find("cgname ") {
                    break line[at + 7..].split(' ').map(str::to_string).collect();
                }
            }
            other => panic!("the {mode} helper ended before its line: {other:?}"),
        }
    };
    // Its stdout drained on (the harness's last lines), so it never blocks.
    std::thread::spawn(move || lines.for_each(drop));
    Helper {
        child,
        pid: fields[0].parse().expect("a pid"),
        dir: parent.join(&fields[1]),
    }
}

/// The owner part of a group directory's name: between `pkit-` and the
/// next `-`.
fn owner_part(dir: &Path) -> String {
    let name = dir.file_name().expect("a name").to_string_lossy();
    let rest = name.strip_prefix("pkit-").expect("a pkit name");
    rest.split('-').next().expect("an owner").to_string()
}

/// The pids (in this namespace) of the processes in the cgroup `dir` and
/// below it.
fn members(dir: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
            out.extend(procs.lines().filter_map(|l| l.parse::<u32>().ok()));
        }
        if let Ok(entries) = std::fs::read_dir(&d) {
            dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    out
}

fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkits_with_one_pid_in_two_pid_namespaces_tell_their_groups_apart() {
    if !common::mechanisms().contains(&MechanismChoice::Cgroup) {
        eprintln!("SKIPPED: cgroup groups only (not this pass, or no cgroup v2 here)");
        return;
    }
    let Some(parent) = common::group_parent() else {
        eprintln!("SKIPPED: no cgroup v2 here");
        return;
    };
    let alone = common::begin_exclusive().await;
    let probe = std::process::Command::new("unshare")
        .args(["-pf", "--kill-child", "--mount-proc", "true"])
        .stdin(Stdio::null())
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        other => {
            eprintln!("SKIPPED: unshare -pf --kill-child --mount-proc refused: {other:?}");
            common::end_exclusive(alone, "cgname (skipped)").await;
            return;
        }
    }
    let parent_for = parent.clone();
    tokio::task::spawn_blocking(move || {
        // A live group in one namespace.
        let mut hold = helper("hold", &parent_for);
        let held = members(&hold.dir);
        assert!(!held.is_empty(), "the held sleep in {}", hold.dir.display());
        // A group in another, whose owner and guard are killed with their
        // namespace: its directory is left, empty and unlocked.
        let die = helper("die", &parent_for);
        assert_eq!(die.pid, hold.pid, "the collision needs one pid in both");
        let left = die.dir.clone();
        drop(die);
        wait_for(
            || members(&left).is_empty(),
            "the dead namespace's group emptied",
        );
        assert!(left.is_dir(), "{} left behind", left.display());
        // A third namespace's pkit, with that same pid, sweeps.
        let sweep = helper("sweep", &parent_for);
        assert_eq!(sweep.pid, hold.pid, "the collision needs one pid in all");
        assert_ne!(
            owner_part(&sweep.dir),
            owner_part(&hold.dir),
            "two owners of two pid namespaces named alike ({} and {})",
            sweep.dir.display(),
            hold.dir.display()
        );
        let status = {
            let mut sweep = sweep;
            sweep.child.0.stdin.take();
            sweep.child.0.wait().expect("the sweep helper")
        };
        assert!(status.success(), "the sweep helper: {status}");
        // The live group is whole; the dead one's directory was swept.
        assert!(hold.dir.is_dir(), "{} was removed", hold.dir.display());
        for p in &held {
            assert!(!common::pid_gone(*p), "the held sleep {p} was killed");
        }
        assert!(
            !left.is_dir(),
            "a dead pid namespace's directory {} was not swept by a pkit with its pid",
            left.display()
        );
        // The held group ends as its owner closes it.
        drop(hold.child.0.stdin.take());
        let status = hold.child.0.wait().expect("the hold helper");
        assert!(status.success(), "the hold helper: {status}");
        wait_for(|| !hold.dir.is_dir(), "the held group's directory removed");
    })
    .await
    .expect("the test's thread");
    common::end_exclusive(
        alone,
        "pkits_with_one_pid_in_two_pid_namespaces_tell_their_groups_apart",
    )
    .await;
}

/// A nested pkit run in a pid namespace of its own (inside a group of
/// ours) names its groups with its pid there, which no process of the
/// cgroup above has here: its group is still recognised (by its namespace
/// and its pid there, `NSpid`), so a graceful stop leaves the TERM to the
/// nested owner and spares its programs, as for a nested pkit of our pid
/// namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_pkit_in_a_pid_namespace_of_its_own_is_recognised() {
    let suite = common::begin("a_nested_pkit_in_a_pid_namespace_of_its_own_is_recognised").await;
    if !common::mechanisms().contains(&MechanismChoice::Cgroup) {
        eprintln!("SKIPPED: cgroup groups only (not this pass, or no cgroup v2 here)");
        suite.end().await;
        return;
    }
    let probe = std::process::Command::new("unshare")
        .args(["-pf", "--mount-proc", "true"])
        .stdin(Stdio::null())
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: unshare -pf --mount-proc refused: {probe:?}");
        suite.end().await;
        return;
    }
    let file = common::TempPath::new("cgname-nested");
    let group = Group::builder()
        .mechanism(MechanismChoice::Cgroup)
        .build()
        .expect("a cgroup group");
    let exe = std::env::current_exe().expect("test binary");
    let exe = exe.to_str().expect("a UTF-8 path");
    let proc = group
        .start(
            &Command::new("unshare")
                .args([
                    "-pf",
                    "--mount-proc",
                    "sh",
                    "-c",
                    "\"$@\"; exit $?",
                    "sh",
                    exe,
                ])
                .args([
                    "cgname_helper",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(HELPER_VAR, "nested")
                .env("PKIT_CGNAME_FILE", file.as_str())
                .env_remove("PKIT_MECHANISM"),
        )
        .expect("the nested pkit");
    // Its program runs (in the nested group) once its pid is written.
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    while !text(file.path()).lines().any(|l| l.parse::<u32>().is_ok()) {
        assert!(
            Instant::now() < deadline,
            "the nested program never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Everything of ours gets TERM but the nested group; the nested owner
    // (pid 1's child in its namespace) catches it and holds on until the
    // grace ends (the namespace's init, a shell, ignores it).
    let report = group
        .shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
    let owner = file.path().with_file_name(format!(
        "{}.owner",
        file.path().file_name().expect("a name").to_string_lossy()
    ));
    let owner_term = text(&owner);
    let _ = std::fs::remove_file(&owner);
    assert_eq!(owner_term, "TERM\n", "the nested owner got the TERM");
    let terms = text(file.path()).lines().filter(|l| *l == "TERM").count();
    assert_eq!(
        terms, 0,
        "the nested pkit's program got the TERM directly: {report:?}"
    );
    drop(proc);
    suite.end().await;
}
