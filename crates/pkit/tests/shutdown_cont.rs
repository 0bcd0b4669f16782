//! A graceful shutdown's SIGCONT, which follows its signal so a stopped
//! member can handle it, freezes nothing. Under cgroup v2 each signal pass
//! freezes the cgroup first; a member that can't be frozen (held in a
//! cgroup v1 freezer of the test's own: see `common::held`) keeps the
//! freeze from being confirmed for the 5 s the pass waits. Before, the
//! SIGCONT was such a pass too: after the SIGTERM pass's 5 s the tree was
//! frozen again for 5 s more, a stopped member still holding its SIGTERM
//! unhandled, before the grace even began.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::held::*;
use common::*;
use pkit::Command;

/// What the watcher saw after the held member had its SIGTERM (the
/// signal's pass over).
struct Seen {
    /// The group was being frozen again (`cgroup.freeze` 1) before the
    /// stopped member had handled its SIGTERM.
    refrozen: bool,
    /// The stopped member's trap ran (it wrote its file).
    handled: bool,
}

/// A member stopped by SIGSTOP that traps SIGTERM, and a member held in a
/// v1 freezer; `shutdown` with a grace. On this current-thread runtime
/// (`#[tokio::test]`'s) a watcher task runs while the shutdown awaits a
/// freeze: once the held member has its SIGTERM pending (the signal's pass
/// is over: the pass signals and thaws without yielding), it looks for the
/// stopped member's trap to have run, and keeps the held member held until
/// then. Before, the SIGCONT that lets the stopped member handle its
/// SIGTERM came from a second pass, whose freeze the watcher found
/// written (the tree frozen again for up to 5 s, the trap not yet run).
/// Now the trap runs with the group never frozen again, and, the held
/// member let go, every member exits within the grace. Every mechanism
/// (a process group's and the portable backend's signals freeze nothing).
#[tokio::test]
async fn a_shutdown_continues_a_stopped_member_without_freezing_the_group_again() {
    const NAME: &str = "a_shutdown_continues_a_stopped_member_without_freezing_the_group_again";
    let suite = begin(NAME).await;
    if !v1_freezer_usable() {
        skipped(NAME, "no cgroup v1 freezer directory can be made here");
        suite.end().await;
        return;
    }
    for (n, choice) in mechanisms().into_iter().enumerate() {
        let what = choice.to_string();
        let group = group(choice);
        let dir = cgroup_dir(&group);
        let file = TempPath::new("shutdown-cont");
        let stopper = "trap 'echo handled > \"$1\"; exit 0' TERM; kill -STOP $$; \
                       while :; do sleep 0.05; done";
        let stopped = group
            .start(&Command::new("sh").args(["-c", stopper, "sh", file.as_str()]))
            .unwrap_or_else(|e| panic!("{what}: start: {e}"));
        let sleeper = group
            .start(&Command::new("sleep").arg("300"))
            .unwrap_or_else(|e| panic!("{what}: start: {e}"));
        let until = Instant::now() + DEADLINE;
        while stat(stopped.pid()).map(|s| s.state) != Some('T') {
            assert!(Instant::now() < until, "{what}: the member never stopped");
            tokio::time::sleep(POLL).await;
        }
        let held = Arc::new(Held::new(sleeper.pid(), 300 + n).expect("a v1 freezer directory"));
        let watched = held.clone();
        let trap_file = file.path().to_path_buf();
        let watcher = tokio::spawn(async move {
            let mut seen = Seen {
                refrozen: false,
                handled: false,
            };
            let until = Instant::now() + 3 * DEADLINE;
            while Instant::now() < until {
                if watched.term_pending() {
                    seen.handled =
                        std::fs::read_to_string(&trap_file).is_ok_and(|t| t.trim() == "handled");
                    if seen.handled {
                        break;
                    }
                    if dir.as_deref().is_some_and(|d| freeze_written(d) == "1") {
                        seen.refrozen = true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            watched.thaw();
            seen
        });
        let report = group
            .shutdown(3 * DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{what}: shutdown: {e}"));
        let seen = watcher.await.expect("the watcher");
        assert!(
            !seen.refrozen,
            "{what}: the group was frozen again after its SIGTERM, the stopped member's \
             trap not yet run: the SIGCONT waited for a freeze of its own ({report:?})"
        );
        assert!(
            seen.handled,
            "{what}: the stopped member never handled its SIGTERM ({report:?})"
        );
        assert_eq!(report.signalled(), 2, "{what}: {report:?}");
        assert_eq!(report.killed(), 0, "{what}: {report:?}");
        let pids = [stopped.pid(), sleeper.pid()];
        drop((stopped, sleeper));
        assert_gone(&pids, &what).await;
        Arc::into_inner(held)
            .expect("the watcher's copy is gone")
            .remove()
            .await;
    }
    suite.end().await;
}
