//! `Group::signal_async` and `Group::kill_async`: the sync `signal` and
//! `kill` for an async caller. Under cgroup v2 both freeze the cgroup
//! around the pass; the async ones await the kernel's confirmation, so a
//! current-thread runtime runs its other tasks while a member that can't
//! be frozen (held in a cgroup v1 freezer of the test's own: see
//! `common::held`) keeps that confirmation from coming (up to 5 s). The
//! rest is the sync calls' semantics, on every mechanism: the signal
//! reaches a grandchild's trap, the kill ends a grandchild and leaves the
//! group usable, a closed group is signalled without error.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use common::held::*;
use common::*;
use pkit::{Command, MechanismChoice, Outcome, Signal};

/// How many times the other task must have run, each time finding the
/// pass waiting (the group being frozen, the held member unsignalled),
/// before it lets the held member go.
const TICKS: usize = 3;

/// On this current-thread runtime (`#[tokio::test]`'s) a ticker task,
/// spawned before the call, counts its turns that find the group being
/// frozen (`cgroup.freeze` 1) while the held member has no `sig` pending:
/// turns it had while the call waited for its freeze. After `TICKS` of
/// them it lets the held member go, and the freeze (and the pass) can
/// complete. With the sync call the ticker first runs once the call has
/// returned, every member signalled and the cgroup thawed: it never finds
/// such a turn, and the held member is let go only by the pass's 5 s
/// deadline. (Swapping `signal_async(..).await` for `signal(..)` here
/// makes this fail.) Every mechanism: a process group's `killpg` and the
/// portable one do not wait, and the held member has its signal pending
/// at once.
#[tokio::test]
async fn signal_async_and_kill_async_yield_the_thread_while_a_member_cannot_be_frozen() {
    const NAME: &str =
        "signal_async_and_kill_async_yield_the_thread_while_a_member_cannot_be_frozen";
    let suite = begin(NAME).await;
    if !v1_freezer_usable() {
        skipped(NAME, "no cgroup v1 freezer directory can be made here");
        suite.end().await;
        return;
    }
    let mut n = 200;
    for choice in mechanisms() {
        for (sig, signal) in [(libc::SIGTERM, Signal::Term), (libc::SIGKILL, Signal::Kill)] {
            let what = format!("{choice}, {signal}");
            let group = group(choice);
            let dir = cgroup_dir(&group);
            n += 1;
            let (p, pids, held) = start_holding(&group, 2, n).await;
            let held = Arc::new(held);
            let (ticker, waiting_turns) = tick_while_frozen(held.clone(), dir.clone(), sig, TICKS);
            let sent = match signal {
                Signal::Kill => group.kill_async().await,
                other => group.signal_async(other).await,
            };
            sent.unwrap_or_else(|e| panic!("{what}: {e}"));
            let turns = waiting_turns.load(Ordering::SeqCst);
            if choice == MechanismChoice::Cgroup {
                assert!(
                    turns >= TICKS,
                    "{what}: the other task ran {turns} times while the call waited for \
                     its freeze: the call held the thread"
                );
            } else {
                assert!(
                    held.pending(sig) || pids.iter().all(|&q| pid_gone(q)),
                    "{what}: the held member was not signalled"
                );
            }
            if let Some(d) = &dir {
                assert_eq!(freeze_written(d), "0", "{what}: the group stays frozen");
            }
            assert!(!group.is_suspended(), "{what}");
            held.thaw();
            // Every member ends of its signal (the held one once let go).
            assert_gone(&pids, &what).await;
            let mut p = p;
            let out = p
                .wait()
                .await
                .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
            assert_eq!(out.outcome(), Outcome::Signalled(sig), "{what}");
            if signal == Signal::Kill {
                // SIGKILL leaves the group usable, as `kill` does.
                let out = group
                    .start(&Command::new("sh").args(["-c", "exit 7"]))
                    .unwrap_or_else(|e| panic!("{what}: a start after the kill: {e}"))
                    .wait()
                    .await
                    .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
                assert_eq!(out.outcome(), Outcome::Exited(7), "{what}");
            }
            ticker.await.expect("the ticker");
            group
                .close()
                .await
                .unwrap_or_else(|e| panic!("{what}: close: {e}"));
            Arc::try_unwrap(held)
                .unwrap_or_else(|_| panic!("{what}: the ticker kept the hold"))
                .remove()
                .await;
        }
    }
    suite.end().await;
}

/// The signal really arrives: a grandchild's trap (a shell started in the
/// background by the group's program) writes a marker on SIGUSR1, sent
/// with `signal_async` once the trap is set. Every mechanism.
#[tokio::test]
async fn signal_async_reaches_a_grandchilds_trap() {
    let suite = begin("signal_async_reaches_a_grandchilds_trap").await;
    for choice in mechanisms() {
        let what = choice.to_string();
        let ready = TempPath::new("asig-ready");
        let mark = TempPath::new("asig-mark");
        let inner = format!(
            "trap 'echo usr1 > {mark}; exit 0' USR1; : > {ready}; \
             while :; do sleep 0.05; done",
            mark = mark.as_str(),
            ready = ready.as_str()
        );
        let script = format!("sh -c \"{inner}\" & wait");
        let group = group(choice);
        let mut p = group
            .start(&Command::new("sh").args(["-c", &script]))
            .unwrap_or_else(|e| panic!("{what}: start: {e}"));
        let until = Instant::now() + DEADLINE;
        while !ready.path().exists() {
            assert!(Instant::now() < until, "{what}: the trap was never set");
            tokio::time::sleep(POLL).await;
        }
        group
            .signal_async(Signal::Usr1)
            .await
            .unwrap_or_else(|e| panic!("{what}: signal_async: {e}"));
        let until = Instant::now() + DEADLINE;
        while std::fs::read_to_string(mark.path())
            .unwrap_or_default()
            .trim()
            != "usr1"
        {
            assert!(Instant::now() < until, "{what}: the trap never ran");
            tokio::time::sleep(POLL).await;
        }
        // The program (no trap of its own) had it too.
        let out = p
            .wait()
            .await
            .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
        assert_eq!(out.outcome(), Outcome::Signalled(libc::SIGUSR1), "{what}");
        group
            .close()
            .await
            .unwrap_or_else(|e| panic!("{what}: close: {e}"));
    }
    suite.end().await;
}

/// `kill_async` ends a grandchild (its pid really gone), and the group
/// takes new starts afterwards. Every mechanism.
#[tokio::test]
async fn kill_async_ends_a_grandchild_and_the_group_stays_usable() {
    let suite = begin("kill_async_ends_a_grandchild_and_the_group_stays_usable").await;
    for choice in mechanisms() {
        let what = choice.to_string();
        let file = TempPath::new("asig-pid");
        let script = format!("sleep 300 & echo $! > {}; wait", file.as_str());
        let group = group(choice);
        let mut p = group
            .start(&Command::new("sh").args(["-c", &script]))
            .unwrap_or_else(|e| panic!("{what}: start: {e}"));
        let grandchild = pid_in_file(&file, &what).await;
        assert_alive(&[p.pid(), grandchild], &what);
        group
            .kill_async()
            .await
            .unwrap_or_else(|e| panic!("{what}: kill_async: {e}"));
        assert_gone(&[p.pid(), grandchild], &what).await;
        let out = p
            .wait()
            .await
            .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
        assert_eq!(out.outcome(), Outcome::Signalled(9), "{what}");
        let out = group
            .start(&Command::new("sh").args(["-c", "exit 5"]))
            .unwrap_or_else(|e| panic!("{what}: a start after the kill: {e}"))
            .wait()
            .await
            .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
        assert_eq!(out.outcome(), Outcome::Exited(5), "{what}");
        group
            .close()
            .await
            .unwrap_or_else(|e| panic!("{what}: close: {e}"));
    }
    suite.end().await;
}

/// A closed group has nothing left to signal: both succeed, as the sync
/// ones do. Every mechanism.
#[tokio::test]
async fn signal_async_and_kill_async_on_a_closed_group_succeed() {
    let suite = begin("signal_async_and_kill_async_on_a_closed_group_succeed").await;
    for choice in mechanisms() {
        let what = choice.to_string();
        let group = group(choice);
        let p = group
            .start(&Command::new("sleep").arg("300"))
            .unwrap_or_else(|e| panic!("{what}: start: {e}"));
        let pid = p.pid();
        group
            .close()
            .await
            .unwrap_or_else(|e| panic!("{what}: close: {e}"));
        assert_gone(&[pid], &what).await;
        group
            .signal_async(Signal::Term)
            .await
            .unwrap_or_else(|e| panic!("{what}: signal_async after close: {e}"));
        group
            .kill_async()
            .await
            .unwrap_or_else(|e| panic!("{what}: kill_async after close: {e}"));
        drop(p);
    }
    suite.end().await;
}
