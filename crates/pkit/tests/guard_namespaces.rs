//! The owner-death guard ends only cgroup directories its owner made.
//!
//! A name, `pkit-<pid>-<seq>`, is unique per pid namespace only, and a
//! cgroup is registered with the guard before its `mkdir`. An owner killed
//! between the two, whose name another owner (another pid namespace under
//! the same parent cgroup) holds, left its guard that live directory to
//! kill and remove. Here the other owner is this test: once the helper
//! owner (this binary run again, held by a fault point) has registered a
//! name, the test makes that directory, holds its shared `flock` as a live
//! owner does, and puts a `sleep` in it; then it SIGKILLs the helper.
//!
//! And an owner whose fresh directory a dead owner's guard removed between
//! its `mkdir` and its `flock` (that guard may remove an unconfirmed empty
//! directory of the name it registered) makes its group under another
//! name; if another owner made a directory of that name meanwhile, it is
//! neither used nor removed.
//!
//! The common paths are pinned too: an owner killed between its `mkdir`
//! and telling its guard leaves no directory, and a group's directory is
//! ended even while a child the owner forked without `exec` holds a copy
//! of the owner's locked descriptor.
//!
//! Run: `cargo test -p pkit --features fault-injection --test guard_namespaces`.
//! Cgroup only: skipped (saying so) in the process-group and portable passes.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{kill_pid, pid_gone};
use pkit::fault::{hold, reached, release, Point};
use pkit::{Command, Group, MechanismChoice};

const HELPER_VAR: &str = "PKIT_GUARD_NS_HELPER";

/// Runs as the helper owner when [`HELPER_VAR`] is set: `registered` holds
/// its first group's creation after the guard registration (before the
/// `mkdir`), `made` after the `mkdir` (before the guard hears of it), and
/// `forked` starts a `sleep` in a group and forks a copy of itself that
/// sleeps on. Then it prints `ready <guard pid> <what>` and waits to be
/// killed; `<what>`: the registered directory, or `<sleep> <copy>` pids.
#[test]
fn guard_ns_helper() {
    let Ok(mode) = std::env::var(HELPER_VAR) else {
        return;
    };
    let build = || {
        Group::builder()
            .mechanism(MechanismChoice::Cgroup)
            .build()
            .expect("a cgroup group")
    };
    let what = match mode.as_str() {
        "registered" | "made" => {
            let point = match mode.as_str() {
                "registered" => Point::GuardRegistered,
                _ => Point::CgroupMade,
            };
            hold(point);
            std::thread::spawn(move || drop(build()));
            wait_for(|| reached(point), "the hold");
            let guard = pkit::host_containment().guard;
            let dir = guard
                .groups
                .iter()
                .find_map(|g| g.strip_prefix("cgroup "))
                .expect("the registered cgroup")
                .to_string();
            format!("{} {dir}", guard.pid.expect("a guard"))
        }
        "forked" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let group = build();
            let sleep = rt
                .block_on(async { group.start(&Command::new("sleep").arg("300")) })
                .expect("start");
            let sleep = sleep.pid();
            // Raw: the case under test is the application's own fork
            // without exec; rustix has no fork.
            // SAFETY: fork(2); the child only sleeps (async-signal-safe)
            // until it is killed.
            let copy = unsafe { libc::fork() };
            assert!(copy >= 0, "fork: {}", std::io::Error::last_os_error());
            if copy == 0 {
                // SAFETY: close(2) of our stdout: the test reads the
                // helper's to its end should the helper fail.
                unsafe { libc::close(1) };
                loop {
                    // SAFETY: pause(2), async-signal-safe.
                    unsafe { libc::pause() };
                }
            }
            let guard = pkit::host_containment().guard.pid.expect("a guard");
            std::mem::forget(group);
            format!("{guard} {sleep} {copy}")
        }
        other => panic!("unknown helper mode {other}"),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {what}").expect("stdout");
    out.flush().expect("stdout");
    std::thread::sleep(Duration::from_secs(120));
}

fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the helper in `mode`; returns it (killed and reaped when
/// dropped, a failed check included) and its `ready` line's fields.
fn helper(mode: &str) -> (common::ChildOnDrop, Vec<String>) {
    let mut child = common::ChildOnDrop(
        common::helper_owner_command("guard_ns_helper", HELPER_VAR, mode)
            .env_remove("PKIT_MECHANISM")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the helper"),
    );
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = loop {
        match lines.next() {
            Some(Ok(line)) => {
                // After the harness's `test guard_ns_helper ... `.
                if let Some(at) = line.find("ready ") {
                    break line[at + 6..].split(' ').map(str::to_string).collect();
                }
            }
            _ => {
                let status = child.wait();
                panic!("the helper ({mode}) ended before it was ready: {status:?}");
            }
        }
    };
    (child, ready)
}

/// SIGKILLs the helper, reaps it, and waits until its guard has exited.
fn kill_helper(mut child: common::ChildOnDrop, guard: u32) {
    child.kill().expect("kill the helper");
    child.wait().expect("reap the helper");
    wait_for(|| pid_gone(guard), "the guard's exit");
}

/// Joins `pid` to the cgroup `dir`.
fn join(dir: &Path, pid: u32) {
    std::fs::write(dir.join("cgroup.procs"), pid.to_string()).expect("join the cgroup");
}

#[test]
fn a_killed_owners_registered_name_another_owner_made_is_left_alone() {
    let name = "a_killed_owners_registered_name_another_owner_made_is_left_alone";
    common::in_suite("guard_namespaces", || {
        if !common::cgroup_pass(name) {
            return;
        }
        let (helper, ready) = helper("registered");
        let guard: u32 = ready[0].parse().expect("the guard's pid");
        let dir = PathBuf::from(&ready[1]);
        // The other owner's directory of that name, locked as a live owner
        // locks it, with a process in it.
        std::fs::create_dir(&dir).expect("the other owner's directory");
        let lock = std::fs::File::open(&dir).expect("open the directory");
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockShared)
            .expect("its shared lock");
        let mut sleep = common::ChildOnDrop(
            std::process::Command::new("sleep")
                .arg("300")
                .spawn()
                .expect("sleep"),
        );
        join(&dir, sleep.id());
        kill_helper(helper, guard);
        let alive = !pid_gone(sleep.id());
        let kept = dir.is_dir();
        let _ = sleep.kill();
        let _ = sleep.wait();
        drop(lock);
        wait_for(
            || std::fs::remove_dir(&dir).is_ok() || !dir.exists(),
            "rmdir",
        );
        assert!(alive, "the guard killed the other owner's process");
        assert!(kept, "the guard removed the other owner's directory");
    });
}

#[test]
fn an_owner_killed_before_telling_its_guard_leaves_no_directory() {
    let name = "an_owner_killed_before_telling_its_guard_leaves_no_directory";
    common::in_suite("guard_namespaces", || {
        if !common::cgroup_pass(name) {
            return;
        }
        let (helper, ready) = helper("made");
        let guard: u32 = ready[0].parse().expect("the guard's pid");
        let dir = PathBuf::from(&ready[1]);
        assert!(dir.is_dir(), "the helper made {}", dir.display());
        kill_helper(helper, guard);
        let left = dir.exists();
        let _ = std::fs::remove_dir(&dir);
        assert!(!left, "{} left behind", dir.display());
    });
}

#[test]
fn a_forked_copy_holding_the_lock_does_not_keep_the_group_alive() {
    let name = "a_forked_copy_holding_the_lock_does_not_keep_the_group_alive";
    common::in_suite("guard_namespaces", || {
        if !common::cgroup_pass(name) {
            return;
        }
        let (helper, ready) = helper("forked");
        let pid = |i: usize| -> u32 { ready[i].parse().expect("a pid") };
        let (guard, sleep, copy) = (pid(0), pid(1), pid(2));
        kill_helper(helper, guard);
        let ended = pid_gone(sleep);
        kill_pid(copy);
        if !ended {
            kill_pid(sleep);
        }
        // Orphans: reaped by init (or by this process, a subreaper's
        // children being its own; `in_suite`'s end checks for those).
        for p in [sleep, copy] {
            wait_for(|| pid_gone(p), "the helper's leftovers");
        }
        reap_orphans();
        assert!(ended, "the group's sleep outlived its killed owner");
    });
}

/// Reaps whatever zombie children this process was handed (it is then a
/// subreaper); a no-op otherwise.
fn reap_orphans() {
    for (pid, _) in common::own_children() {
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
        }
    }
}

/// A named group (no spare from the pool: a fresh `mkdir`) whose directory
/// the test removes while its creation waits between the `mkdir` and the
/// `flock` (and, if `other`, makes another owner's of the same name in its
/// place). The group is made anyway, under another name, and contains what
/// it starts; the other owner's directory is left alone.
fn removed_before_the_lock(name: &'static str, other: bool) {
    common::in_suite("guard_namespaces", || {
        if !common::cgroup_pass(name) {
            return;
        }
        let label = if other { "claim2-other" } else { "claim2-gone" };
        hold(Point::CgroupUnlocked);
        let build = std::thread::spawn(move || {
            Group::builder()
                .mechanism(MechanismChoice::Cgroup)
                .name(label)
                .build()
        });
        wait_for(|| reached(Point::CgroupUnlocked), "the hold");
        let registered = || -> Vec<PathBuf> {
            pkit::host_containment()
                .guard
                .groups
                .iter()
                .filter_map(|g| g.strip_prefix("cgroup "))
                .filter(|g| g.ends_with(&format!("-{label}")))
                .map(PathBuf::from)
                .collect()
        };
        let fresh = registered();
        assert_eq!(fresh.len(), 1, "one registered directory: {fresh:?}");
        let dir = fresh[0].clone();
        std::fs::remove_dir(&dir).expect("remove the fresh directory");
        if other {
            std::fs::create_dir(&dir).expect("the other owner's directory");
        }
        release(Point::CgroupUnlocked);
        let group = build.join().expect("the builder thread");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let outcome = group.map_err(|e| e.to_string()).and_then(|group| {
            let started = rt
                .block_on(async { group.start(&Command::new("sleep").arg("300")) })
                .map(|sleep| sleep.pid())
                .map_err(|e| e.to_string());
            let found = started.as_ref().ok().map(|&pid| {
                let procs =
                    |d: &Path| std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                let holds = |d: &Path| procs(d).lines().any(|l| l == pid.to_string());
                let ours: Vec<PathBuf> = registered().into_iter().filter(|d| *d != dir).collect();
                (
                    ours.len() == 1 && holds(&ours[0]),
                    holds(&dir),
                    format!("{ours:?}"),
                )
            });
            let _ = group.kill();
            rt.block_on(group.shutdown(Duration::from_secs(10)))
                .expect("shutdown");
            drop(group);
            started.map(|_| found.expect("a start"))
        });
        let kept = dir.is_dir();
        if other {
            let _ = std::fs::remove_dir(&dir);
        }
        let (contained, in_other, ours) = outcome.expect("the group and its start");
        assert!(
            contained,
            "the start is not in the group's directory {ours}"
        );
        assert!(!in_other, "the start went into {}", dir.display());
        assert_eq!(kept, other, "{} kept: {kept}", dir.display());
    });
}

#[test]
fn a_fresh_directory_removed_before_its_lock_is_not_used() {
    removed_before_the_lock(
        "a_fresh_directory_removed_before_its_lock_is_not_used",
        false,
    );
}

#[test]
fn another_owners_directory_made_in_its_place_is_left_alone() {
    removed_before_the_lock(
        "another_owners_directory_made_in_its_place_is_left_alone",
        true,
    );
}
