#![cfg(target_os = "linux")]
//! The review's R1 and R7, fixed in code long ago and pinned by reading
//! only (docs/spec-coverage.md), now pinned by real processes: a signal or
//! kill pass over a cgroup freezes it first, signals each member, thaws.
//!
//! R1: a freeze that never reports `frozen 1` (after 5 s: a member that
//! can't be frozen) left the group frozen for good and the pass unmade.
//! R7: the pass stopped at the first member whose signal failed; the
//! members after it were never signalled.
//!
//! Both failures are injected (the hidden `fault-injection` feature:
//! `Point::Freeze` fails the wait for `frozen 1` after the real write of
//! `cgroup.freeze`; `Point::SignalMember` fails one member's signal), and
//! faults are process-wide: every test runs alone. Cgroup only (the
//! process-group mechanism signals the group with one `killpg` and freezes
//! nothing): forced where cgroups are usable, whatever the pass, and
//! skipped (saying so) where they are not.
//!
//! Run: `cargo test -p pkit --features fault-injection --test audit_r1_r7`.

mod common;

use std::time::Instant;

use common::*;
use pkit::fault::{clear, inject, Point};
use pkit::{Command, MechanismChoice, Outcome, Signal};

/// A member that writes `term` to `$1.term` when SIGTERM comes, then exits
/// 0; it records its pid in `$1` first (its `sleep`s are members too).
const TERM_MARKS: &str = r#"trap 'echo term > "$1.term"; exit 0' TERM; echo $$ > "$1"; echo done >> "$1"; while :; do sleep 1; done"#;

/// A member started in `g` running [`TERM_MARKS`] with `file`.
fn marker(file: &TempPath) -> Command {
    Command::new("sh").args(["-c", TERM_MARKS, "sh", file.as_str()])
}

/// Whether `file`'s SIGTERM mark is there.
fn marked(file: &TempPath) -> bool {
    std::fs::metadata(format!("{}.term", file.as_str())).is_ok()
}

/// Polls until at least `n` of `files` are marked, or the deadline;
/// returns how many were.
async fn wait_marked(files: &[TempPath], n: usize) -> usize {
    let deadline = Instant::now() + DEADLINE * 2;
    loop {
        let count = files.iter().filter(|f| marked(f)).count();
        if count >= n || Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Removes each file's mark.
fn unmark(files: &[TempPath]) {
    for f in files {
        let _ = std::fs::remove_file(format!("{}.term", f.as_str()));
    }
}

/// R1: a signal pass (SIGTERM) and a kill pass (SIGKILL) whose freeze
/// fails as a timed-out one does (`cgroup.freeze` written, `frozen 1`
/// never confirmed): the pass is still made (the trap runs; the member is
/// killed), the call is no error, and the group is thawed after
/// (`cgroup.freeze` reads 0; a process started now runs). Before the fix
/// the failed freeze returned at once: the pass was not made and the
/// group was left frozen, its members stopped for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_that_times_out_still_makes_the_pass_and_thaws() {
    const NAME: &str = "a_freeze_that_times_out_still_makes_the_pass_and_thaws";
    let alone = begin_exclusive().await;
    if !cgroup_usable() {
        skipped(NAME, "cgroups are not usable here");
        end_exclusive(alone, NAME).await;
        return;
    }
    for (how, signal) in [("signal", Signal::Term), ("kill", Signal::Kill)] {
        let g = group(MechanismChoice::Cgroup);
        let dir = cgroup_dir(&g).expect("a cgroup group's directory");
        let file = TempPath::new("r1-member");
        let mut p = g
            .start(&marker(&file))
            .unwrap_or_else(|e| panic!("{how}: {e}"));
        let pids = file.wait_pids().await;
        inject(Point::Freeze, libc::ETIMEDOUT, 1);
        let sent = g.signal(signal);
        clear();
        let freeze = std::fs::read_to_string(dir.join("cgroup.freeze")).unwrap_or_default();
        assert_eq!(
            freeze.trim(),
            "0",
            "{how}: the group was left frozen after its failed freeze ({sent:?})"
        );
        sent.unwrap_or_else(|e| panic!("{how}: the failed freeze failed the pass: {e}"));
        let out = tokio::time::timeout(DEADLINE * 2, p.wait())
            .await
            .unwrap_or_else(|_| panic!("{how}: the member never saw the pass"))
            .unwrap_or_else(|e| panic!("{how}: {e}"));
        match signal {
            Signal::Term => {
                assert_eq!(out.outcome(), Outcome::Exited(0), "{how}: {out:?}");
                assert!(marked(&file), "{how}: the trap never ran");
            }
            _ => assert_eq!(
                out.outcome(),
                Outcome::Signalled(libc::SIGKILL),
                "{how}: {out:?}"
            ),
        }
        // Not frozen: a process started now runs to its end.
        let mut next = g.start(&Command::new("true")).unwrap();
        let out = tokio::time::timeout(DEADLINE, next.wait())
            .await
            .unwrap_or_else(|_| panic!("{how}: a process started after the pass never ran"))
            .unwrap();
        assert!(out.success(), "{how}: {:?}", out.outcome());
        drop((p, next));
        g.close().await.unwrap_or_else(|e| panic!("{how}: {e}"));
        assert_gone(&pids, &format!("{how}: the member")).await;
        unmark(std::slice::from_ref(&file));
    }
    end_exclusive(alone, NAME).await;
}

/// R7: a signal pass over three members (and their `sleep`s) whose first
/// signal fails (`EPERM`): the pass goes on to every other member (at
/// least two of the three traps run; the failed one may be a `sleep`),
/// and returns the failure after. Before the fix it stopped there: no
/// other member got the signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_pass_goes_on_past_a_member_it_could_not_signal() {
    const NAME: &str = "a_signal_pass_goes_on_past_a_member_it_could_not_signal";
    let alone = begin_exclusive().await;
    if !cgroup_usable() {
        skipped(NAME, "cgroups are not usable here");
        end_exclusive(alone, NAME).await;
        return;
    }
    let g = group(MechanismChoice::Cgroup);
    let files: Vec<TempPath> = (0..3).map(|_| TempPath::new("r7-member")).collect();
    let mut procs = Vec::new();
    let mut pids = Vec::new();
    for f in &files {
        procs.push(g.start(&marker(f)).unwrap());
        pids.extend(f.wait_pids().await);
    }
    inject(Point::SignalMember, libc::EPERM, 1);
    let sent = g.signal(Signal::Term);
    clear();
    let count = wait_marked(&files, 2).await;
    assert!(
        count >= 2,
        "only {count} of 3 members got the signal past the one that failed ({sent:?})"
    );
    assert!(
        sent.is_err(),
        "the failed member's error was not reported: {sent:?}"
    );
    // The pass is whole again once nothing is injected: every member ends.
    g.signal(Signal::Term).unwrap();
    for mut p in procs {
        let out = tokio::time::timeout(DEADLINE * 2, p.wait())
            .await
            .expect("a member outlived a second SIGTERM")
            .unwrap();
        assert_eq!(out.outcome(), Outcome::Exited(0), "{out:?}");
    }
    assert_eq!(wait_marked(&files, 3).await, 3);
    g.close().await.unwrap();
    assert_gone(&pids, "the members").await;
    unmark(&files);
    end_exclusive(alone, NAME).await;
}
