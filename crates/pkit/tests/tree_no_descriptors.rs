//! A started process's own subtree ended while this process has no
//! descriptor free, in every mechanism: `kill_tree`, `signal(Kill)`,
//! `shutdown` and the timeout's watch, for a group's first started process
//! (under cgroup v2 the group's own directory) and a later one (its own
//! leaf). Under cgroup v2 the subtree was listed through files opened then
//! and through pidfds: with none to be had, each said Ok (the watch: ended
//! within its grace) and ended the root alone while its descendant ran on.
//! Now the listing takes the reserve descriptor and reaches the members by
//! number: the whole subtree ends, and says Ok. Under process groups the
//! descendant can't be listed (a member's parent is read from /proc): the
//! root ends and the call says so (Io); the watch logs it.
//!
//! One test in its own binary: it changes this process's descriptor limit.
#![cfg(unix)]

mod common;

use common::descriptors::{fill, highest_fd, set_nofile};

use common::*;
use pkit::{MechanismChoice, Signal};
use std::time::Duration;

const HOWS: [&str; 4] = ["kill_tree", "signal(Kill)", "shutdown", "timeout"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subtree_ended_without_free_descriptors_ends_or_says_so() {
    let suite = begin("tree-no-fds").await;
    for choice in mechanisms() {
        for later in [false, true] {
            for how in HOWS {
                // A process group's watch can't list the descendant either,
                // and has no caller to tell: it logs that and records the
                // ending as late; the group's close ends the descendant.
                if how == "timeout" && choice != MechanismChoice::Cgroup {
                    continue;
                }
                let case = format!(
                    "{choice}, {} start, {how}",
                    if later { "later" } else { "first" }
                );
                let g = group(choice);
                let earlier = match later {
                    true => Some(g.start(&cmd(choice, "sleep").arg("300")).unwrap()),
                    false => None,
                };
                let kid = TempPath::new("kid");
                let script = format!("sleep 300 & echo $! > {}; wait", kid.as_str());
                let mut command = cmd(choice, "sh").args(["-c", &script]);
                if how == "timeout" {
                    command = command.timeout(Duration::from_secs(1));
                }
                let mut root = g.start(&command).unwrap();
                let grandchild = pid_in_file(&kid, &format!("{case}: the descendant")).await;

                let old = set_nofile(highest_fd() + 16);
                let held = fill();
                let ended = match how {
                    "kill_tree" => root.kill_tree(),
                    "signal(Kill)" => root.signal(Signal::Kill),
                    "shutdown" => root.shutdown(Duration::from_secs(1)).await.map(drop),
                    // The watch fires (1 s after the start) while no
                    // descriptor is free, and ends the tree then, unless
                    // the machine is too slow to get there within 3 s.
                    _ => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        Ok(())
                    }
                };
                drop(held);
                set_nofile(old);

                match ended {
                    Err(e) => {
                        assert!(
                            choice != MechanismChoice::Cgroup,
                            "{case}: the subtree not reached with no descriptor free: {e:?}"
                        );
                        assert!(matches!(e, pkit::Error::Io { .. }), "{case}: {e:?}");
                    }
                    Ok(()) => {
                        let deadline = std::time::Instant::now() + DEADLINE;
                        while !pid_gone(grandchild) {
                            assert!(
                                std::time::Instant::now() < deadline,
                                "{case}: said Ok with no descriptor free, the descendant {grandchild} runs on: {:?}",
                                stat(grandchild)
                            );
                            tokio::time::sleep(POLL).await;
                        }
                    }
                }
                let out = tokio::time::timeout(DEADLINE, root.wait())
                    .await
                    .unwrap_or_else(|_| panic!("{case}: the root never ended"))
                    .unwrap();
                assert!(
                    match how {
                        "timeout" => out.outcome() == pkit::Outcome::TimedOut,
                        _ => matches!(out.outcome(), pkit::Outcome::Signalled(_)),
                    },
                    "{case}: {:?}",
                    out.outcome()
                );
                g.close()
                    .await
                    .unwrap_or_else(|e| panic!("{case}: close: {e}"));
                assert!(
                    pid_gone(grandchild),
                    "{case}: {grandchild} outlived the close"
                );
                drop(earlier);
            }
        }
    }
    suite.end().await;
}
