//! A process-group group whose leader left its process group and runs on
//! (nobody else in the group), started again while few or no descriptors
//! are free: each start either fails or leads a new process group (never
//! joins the old number), a failed one leaves the group usable, and the
//! close ends the leader that left and every new member.
//!
//! One test in its own binary: it changes this process's descriptor limit.
#![cfg(unix)]

mod common;

use common::descriptors::{fill, highest_fd, set_nofile};

use common::*;
use pkit::MechanismChoice;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_left_then_starts_at_the_descriptor_limit() {
    let perl = std::process::Command::new("perl")
        .args(["-e", ""])
        .status()
        .is_ok_and(|s| s.success());
    if !perl {
        skipped(
            "a leader leaving its process group",
            "needs perl, not installed",
        );
        return;
    }
    let suite = begin("pgroup-left-leader-fds").await;
    for choice in mechanisms() {
        if choice == MechanismChoice::Cgroup {
            continue;
        }
        // A process group of the test's own for the leader to move to.
        let anchor = Anchor::new();
        let to = anchor.pgid();
        let g = group(choice);
        let first = g
            .start(&sh(
                choice,
                &format!("exec perl -e 'setpgrp(0, {to}) or exit 9; exec \"sleep\", \"300\"'"),
            ))
            .unwrap();
        let _cleanup = KillOnDrop::new(vec![first.pid()]);
        let deadline = std::time::Instant::now() + DEADLINE;
        while stat(first.pid()).map(|s| s.pgrp) != Some(to)
            || comm(first.pid()).as_deref() != Some("sleep")
        {
            assert!(!pid_gone(first.pid()), "{choice}: the leader ended");
            assert!(
                std::time::Instant::now() < deadline,
                "{choice}: the leader never left"
            );
            tokio::time::sleep(POLL).await;
        }

        // Starts with 0, 1, 2, ... descriptors free until one succeeds.
        let mut started = Vec::new();
        let mut failures = 0;
        for spare in 0..64 {
            let old = set_nofile(highest_fd() + 16);
            let mut held = fill();
            held.truncate(held.len().saturating_sub(spare));
            let tried = g.start(&sh(choice, "exec sleep 300"));
            drop(held);
            set_nofile(old);
            match tried {
                Ok(p) => {
                    started.push(p);
                    break;
                }
                Err(_) => failures += 1,
            }
        }
        assert!(
            !started.is_empty(),
            "{choice}: no start succeeded with up to 63 descriptors free"
        );
        assert!(
            failures > 0,
            "{choice}: a start with no descriptor free succeeded"
        );
        eprintln!("{choice}: {failures} starts failed before one succeeded");
        // And with every descriptor to be had.
        started.push(g.start(&sh(choice, "exec sleep 300")).unwrap());
        let pids: Vec<u32> = started.iter().map(|p| p.pid()).collect();
        let _cleanup2 = KillOnDrop::new(pids.clone());
        let new = pids[0];
        for &pid in &pids {
            let pgrp = stat(pid).map(|s| s.pgrp);
            assert_eq!(
                pgrp,
                Some(new),
                "{choice}: {pid} is not in the new process group"
            );
        }
        assert_eq!(
            stat(first.pid()).map(|s| s.pgrp),
            Some(to),
            "{choice}: the leader that left"
        );

        tokio::time::timeout(DEADLINE * 3, g.close())
            .await
            .unwrap_or_else(|_| panic!("{choice}: the close never returned"))
            .unwrap();
        for pid in std::iter::once(first.pid()).chain(pids.iter().copied()) {
            assert!(
                pid_gone(pid),
                "{choice}: {pid} after the close: {:?}",
                stat(pid)
            );
        }
        drop((first, started));
        drop(anchor);
    }
    suite.end().await;
}
