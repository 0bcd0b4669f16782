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

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, ErrorKind, MechanismChoice};

const ROLE: &str = "A15_ROLE";

/// The mechanism a helper's role names (`MechanismChoice`'s `Display`).
/// Runs test `name` again as a helper process in each mechanism (the
/// failure it looks for kills the helper), and asserts that each ended
/// well and said `said`; `what` names the helper in the failure.
fn in_helpers(name: &'static str, said: &str, what: &str) {
    in_suite(name, || {
        for choice in mechanisms() {
            let (status, text) = run_self_as(
                name,
                (ROLE, &choice.to_string()),
                &[],
                Duration::from_secs(120),
            );
            assert!(
                status.is_some_and(|s| s.success()) && text.contains(said),
                "{choice}: {what}: {status:?} {text}"
            );
        }
    });
}

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
    in_helpers(name, "a15: survived", "the helper that adopted its own pid");
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
        "a15: guarded",
        "the helper whose group was asked to adopt its guard",
    );
}
