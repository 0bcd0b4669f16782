#![cfg(target_os = "linux")]
//! att15: a hostile user's round on promises away from recent merges: the
//! blocking facade (many threads with big input and output, a handle
//! dropped inside a runtime), readiness probes (a ready line or prompt
//! split across writes, a child that closes its output and lives on),
//! caps on this hybrid host (a fork loop under `--max-procs`, a memory
//! hog, refused caps), the CLI's answers to bad input, and adoption.
//!
//! What broke, fixed here: [`Group::adopt`](pkit::Group::adopt) of this
//! process's own pid (or of one of its threads' ids, which
//! `cgroup.procs` takes for the whole process) succeeded on every
//! mechanism, and the group's end then SIGKILLed its owner (MEDIUM,
//! [`a_group_refuses_to_adopt_its_owner`]); adopting the owner-death
//! guard (`pkit::guard_pids`) succeeded under cgroup v2, and the group's
//! end killed the guard: every group unguarded from then on (MEDIUM,
//! [`a_group_refuses_to_adopt_the_owner_death_guard`]). The rest were
//! probes that held, not kept as tests.
//!
//! Left (LOW): adopting an ancestor (the parent shell, a container's
//! init) still succeeds under cgroup v2 and the group's end kills it: the
//! caller asked for that process by pid, and "any process this one may
//! move" is the documented rule. A member of a group capped through
//! cgroup v1 (this hybrid host's memory cap) adopted by another group
//! stays in the first group's v1 directory, under its cap, and that
//! directory is never removed (its close met a member, nothing retries
//! it, the guard did not sweep it). `pkit run` exits 127 ("program not
//! found") for a program path that fails with `ELOOP`, `ENOTDIR` or
//! `ENAMETOOLONG`, where timeout(1) exits 126: the library maps those to
//! `NotFound` by design (`sys/resolve.rs`).
//!
//! fix51 (rv50's LOWs): a thread id is refused where `/proc` does not list
//! this process's threads ([`a_group_refuses_its_threads_unlisted_in_proc`]),
//! and an ended guard is no longer named by `guard_pids`, nor its pid
//! refused as the guard's ([`an_ended_guard_is_no_longer_named`]).

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, ErrorKind, MechanismChoice};

const ROLE: &str = "A15_ROLE";

/// Runs test `name` again as a helper process in each mechanism (the
/// failure it looks for kills the helper), under the command `wrap` (none
/// when empty), and asserts that each ended well and said `said`; `what`
/// names the helper in the failure.
fn in_helpers(name: &'static str, wrap: &[&str], said: &str, what: &str) {
    in_suite(name, || {
        for choice in mechanisms() {
            let (status, text) = run_self_as(
                name,
                (ROLE, &choice.to_string()),
                wrap,
                Duration::from_secs(180),
            );
            assert!(
                status.is_some_and(|s| s.success()) && text.contains(said),
                "{choice}: {what}: {status:?} {text}"
            );
        }
    });
}

/// The mechanism a helper's role names (`MechanismChoice`'s `Display`).
fn mechanism_of(role: &str) -> MechanismChoice {
    match role {
        "cgroup" => MechanismChoice::Cgroup,
        "pgroup" => MechanismChoice::ProcessGroup,
        _ => MechanismChoice::Portable,
    }
}

/// The helper's half of [`a_group_refuses_to_adopt_its_owner`]: a group of
/// mechanism `role` with a running member is asked to adopt this process
/// (its pid, then one of its threads' ids), then dropped; this process
/// must still be alive to say so.
fn adopt_owner_helper(role: &str) {
    let choice = mechanism_of(role);
    let g = pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice)).expect("group");
    let p = g.start(&Command::new("sleep").arg("300")).expect("start");
    let own = std::process::id();
    let thread = std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|&tid| tid != own)
        .expect("a thread besides the main one (pkit-blocking)");
    for pid in [own, thread] {
        let err = g.adopt(pid).expect_err("adopting this process");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{pid}: {err}");
        copies::say("a15", &format!("{pid}: {err}"));
    }
    let member = p.pid();
    drop(p);
    drop(g);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !pid_gone(member) {
        assert!(
            std::time::Instant::now() < deadline,
            "{choice}: the member {member} outlived its dropped group"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    copies::say("a15", "survived");
}

/// `Group::adopt(std::process::id())` must not put the group's owner in
/// the group: its end (drop, kill, close) would SIGKILL the owner itself.
/// Run in a helper process (this binary, the test alone), once per
/// mechanism: the helper must exit with success, not be killed by its
/// group.
#[test]
fn a_group_refuses_to_adopt_its_owner() {
    let name = "a_group_refuses_to_adopt_its_owner";
    if let Ok(role) = std::env::var(ROLE) {
        adopt_owner_helper(&role);
        return;
    }
    in_helpers(
        name,
        &[],
        "a15: survived",
        "the helper that adopted its own pid",
    );
}

/// The helper's half of [`a_group_refuses_to_adopt_the_owner_death_guard`]:
/// with a guarded group `a` running, a second group is asked to adopt the
/// guard, then dropped; the guard must still run and cover `a` and a
/// group made after.
fn adopt_guard_helper(role: &str) {
    let choice = mechanism_of(role);
    let make = || pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice));
    let a = make().expect("group a");
    let _pa = a.start(&Command::new("sleep").arg("300")).expect("start");
    assert!(
        a.as_async().guarded(),
        "{choice}: a is guarded to begin with"
    );
    let guards = pkit::guard_pids();
    assert!(!guards.is_empty(), "{choice}: a guard runs");
    let b = make().expect("group b");
    let pb = b.start(&Command::new("sleep").arg("300")).expect("start");
    for &guard in &guards {
        let err = b.adopt(guard).expect_err("adopting the guard");
        // A process group can't take it anyway (not this process's child).
        assert!(
            matches!(err.kind(), ErrorKind::InvalidInput | ErrorKind::Unsupported),
            "{choice}: {guard}: {err}"
        );
    }
    drop(pb);
    drop(b);
    let c = make().expect("group c");
    let _pc = c.start(&Command::new("sleep").arg("300")).expect("start");
    let status = pkit::host_containment().guard;
    assert!(
        status.running && a.as_async().guarded() && c.as_async().guarded(),
        "{choice}: the guard after another group's end: {status:?}"
    );
    for &guard in &guards {
        assert!(!pid_gone(guard), "{choice}: guard {guard}");
    }
    copies::say("a15", "guarded");
}

/// A group that adopted this process's owner-death guard
/// ([`pkit::guard_pids`]: public, and a subreaper's "adopt my strays"
/// finds the guard among its orphans) killed it when it ended: every
/// group, those running and those made after, was unguarded for the rest
/// of the process's life (no guard is started again). Adopting it is
/// refused. In a helper process (a guard is the process's own), once per
/// mechanism.
#[test]
fn a_group_refuses_to_adopt_the_owner_death_guard() {
    let name = "a_group_refuses_to_adopt_the_owner_death_guard";
    if let Ok(role) = std::env::var(ROLE) {
        adopt_guard_helper(&role);
        return;
    }
    in_helpers(
        name,
        &[],
        "a15: guarded",
        "the helper whose group was asked to adopt its guard",
    );
}

/// The helper's half of [`a_group_refuses_its_threads_unlisted_in_proc`]:
/// run with an empty tmpfs over its `/proc/self/task` (`/proc` lists none
/// of its threads, as another pid namespace's `/proc` would not), a group
/// of mechanism `role` is asked to adopt the id of one of this process's
/// threads, then dropped; this process must still be alive to say so.
fn adopt_thread_without_proc_helper(role: &str) {
    let choice = mechanism_of(role);
    let (tx, rx) = std::sync::mpsc::channel();
    let (_hold, wait) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // "<pid>/task/<tid>": the link's text, read without the task
        // directory hidden below it.
        let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
        let tid = link
            .file_name()
            .and_then(|n| n.to_str()?.parse::<u32>().ok());
        tx.send(tid.expect("a thread id")).expect("send");
        let _ = wait.recv();
    });
    let tid = rx.recv().expect("the thread's id");
    assert_ne!(tid, std::process::id());
    assert!(
        !std::path::Path::new(&format!("/proc/self/task/{tid}")).exists(),
        "/proc/self/task still lists thread {tid}"
    );
    let g = pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice)).expect("group");
    let err = g.adopt(tid).expect_err("adopting a thread of this process");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{tid}: {err}");
    copies::say("a15", &format!("{tid}: {err}"));
    drop(g);
    drop(_hold);
    thread.join().expect("thread");
    copies::say("a15", "survived, its threads unlisted");
}

/// `Group::adopt` refuses the id of one of this process's threads where
/// `/proc` is not this process's (absent, or another pid namespace's, in
/// a container): the check asks the kernel (`tgkill` with signal 0), not
/// `/proc/self/task` (fix51; before, such an id was taken, and under
/// cgroup v2 the group's end killed its owner). The helper runs in a
/// mount namespace with an empty tmpfs over its `/proc/<pid>/task` (the
/// rest of `/proc`, which the mechanisms read, left), once per mechanism.
#[test]
fn a_group_refuses_its_threads_unlisted_in_proc() {
    let name = "a_group_refuses_its_threads_unlisted_in_proc";
    if let Ok(role) = std::env::var(ROLE) {
        adopt_thread_without_proc_helper(&role);
        return;
    }
    // `exec` keeps the shell's pid: the helper's /proc/self/task is hidden.
    let script =
        r#"mount --make-rprivate / && mount -t tmpfs none /proc/$$/task && exec "$0" "$@""#;
    let wrap = ["unshare", "-m", "sh", "-c", script];
    let probe = std::process::Command::new(wrap[0])
        .args(&wrap[1..])
        .arg("true")
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        common::skipped(
            name,
            "needs root and `unshare -m` with a tmpfs over /proc/<pid>/task",
        );
        return;
    }
    in_helpers(
        name,
        &wrap,
        "a15: survived, its threads unlisted",
        "the helper that adopted a thread /proc did not list",
    );
}

/// The helper's half of [`an_ended_guard_is_no_longer_named`]: with a
/// guarded group running, its guard is SIGKILLed; `guard_pids` must then
/// leave it out, and a group asked to adopt the ended guard's pid must not
/// refuse it as the guard (it fails as for any pid with no process, or
/// adopts whatever process has the pid by then).
fn ended_guard_helper(role: &str) {
    let choice = mechanism_of(role);
    let make = || pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice));
    let a = make().expect("group a");
    let _pa = a.start(&Command::new("sleep").arg("300")).expect("start");
    assert!(a.as_async().guarded(), "{choice}: a is guarded");
    let guards = pkit::guard_pids();
    assert!(!guards.is_empty(), "{choice}: a guard runs");
    for &guard in &guards {
        kill_pid(guard);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while guards.iter().any(|&g| !pid_gone(g)) || !pkit::guard_pids().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{choice}: ended guards {guards:?} still named: {:?}",
            pkit::guard_pids()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let b = make().expect("group b");
    let _pb = b.start(&Command::new("sleep").arg("300")).expect("start");
    for &guard in &guards {
        // The pid is not given on here on purpose: steering the host's
        // pid allocation (`ns_last_pid`) would hand recently freed pids to
        // new processes while other tests poll those pids to be gone.
        if let Err(e) = b.adopt(guard) {
            assert_ne!(e.kind(), ErrorKind::InvalidInput, "{choice}: {guard}: {e}");
        }
    }
    copies::say("a15", "ended guard not named");
}

/// `guard_pids` named a guard that had ended (it keeps its pid for the
/// life of the process, none is started again), so `Group::adopt` refused
/// an unrelated process later given that pid as "this process's
/// owner-death guard" (fix51). Only running guards are named now. In a
/// helper process (its guard is killed), once per mechanism.
#[test]
fn an_ended_guard_is_no_longer_named() {
    let name = "an_ended_guard_is_no_longer_named";
    if let Ok(role) = std::env::var(ROLE) {
        ended_guard_helper(&role);
        return;
    }
    in_helpers(
        name,
        &[],
        "a15: ended guard not named",
        "the helper whose guard was killed",
    );
}
