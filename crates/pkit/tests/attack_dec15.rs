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
//! [`a_group_refuses_to_adopt_its_owner`]). The rest were probes that
//! held, not kept as tests.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, ErrorKind, MechanismChoice};

const ROLE: &str = "A15_ROLE";

/// The helper's half of [`a_group_refuses_to_adopt_its_owner`]: a group of
/// mechanism `role` with a running member is asked to adopt this process
/// (its pid, then one of its threads' ids), then dropped; this process
/// must still be alive to say so.
fn adopt_owner_helper(role: &str) {
    let choice = match role {
        "cgroup" => MechanismChoice::Cgroup,
        "pgroup" => MechanismChoice::ProcessGroup,
        _ => MechanismChoice::Portable,
    };
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
    assert!(pid_gone(member) || !pid_gone(own), "the member");
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
    in_suite(name, || {
        for choice in mechanisms() {
            let (status, text) = run_self_as(
                name,
                (ROLE, &choice.to_string()),
                &[],
                Duration::from_secs(120),
            );
            assert!(
                status.is_some_and(|s| s.success()) && text.contains("a15: survived"),
                "{choice}: the helper that adopted its own pid: {status:?} {text}"
            );
        }
    });
}
