//! A signal the caller sends a started pipeline (`RunningPipe::signal`,
//! `signal_async`) reaches every stage, and a stage that ends of it cuts
//! no other short: the stage feeding it runs its own trap to its end.
//! A stage that fails on its own after a signal that ended nothing, or
//! dies of a signal the caller did not send, still cuts as before; so
//! does one that dies of the signal of a `signal_async` dropped before it
//! was sent. Every mechanism; what a stage spawned is gone after the wait.

mod common;

use std::time::Instant;

use common::held::{v1_freezer_usable, Held};
use common::*;
use pkit::{Command, MechanismChoice, Outcome, Pipe, RunningPipe, Signal};

fn shc(script: &str) -> Command {
    Command::new("sh").args(["-c", script])
}

/// Waits until every file of `files` exists.
async fn wait_for(files: &[&TempPath], what: &str) {
    let until = Instant::now() + DEADLINE;
    while !files.iter().all(|f| f.path().exists()) {
        assert!(Instant::now() < until, "{what}: not ready");
        tokio::time::sleep(POLL).await;
    }
}

/// Which call sends the signal.
#[derive(Clone, Copy, Debug)]
enum Send {
    Sync,
    Async,
}

async fn send(p: &RunningPipe, how: Send, signal: Signal, what: &str) {
    match how {
        Send::Sync => p.signal(signal),
        Send::Async => p.signal_async(signal).await,
    }
    .unwrap_or_else(|e| panic!("{what}: signal: {e}"));
}

/// A two-stage chain, both stages trapping `signal`: the head's trap
/// sleeps, writes a marker and exits 3; the tail's trap ends the tail at
/// once with `tail_trap` (dying of the signal, or exiting 128 + its
/// number). The head also left a child that ignores the signal. After the
/// caller's signal and the wait: the head ran its trap to its end (its
/// marker, Exited(3), not the SIGKILL of a cut), the tail's end is as it
/// made it, the fold blames the head (a stage cut short is never blamed),
/// and the head's child is gone.
async fn the_head_runs_its_trap(
    choice: MechanismChoice,
    how: Send,
    (signal, name): (Signal, &str),
    tail_trap: &str,
    tail_end: Outcome,
) {
    let what = format!("{choice}, {how:?}, {signal}, tail {tail_end:?}");
    let (ready_h, ready_t) = (TempPath::new("pcut-rh"), TempPath::new("pcut-rt"));
    let (mark, child) = (TempPath::new("pcut-mark"), TempPath::new("pcut-child"));
    let head = format!(
        "trap 'sleep 0.5; echo done > {mark}; exit 3' {name}; \
         (trap '' {name}; exec sleep 300) & echo $! > {child}; \
         : > {ready}; while :; do sleep 0.05; done",
        mark = mark.as_str(),
        child = child.as_str(),
        ready = ready_h.as_str(),
    );
    let tail = format!(
        "trap '{tail_trap}' {name}; : > {ready}; while :; do sleep 0.05; done",
        ready = ready_t.as_str(),
    );
    let mut p = Pipe::new([shc(&head), shc(&tail)])
        .mechanism(choice)
        .start()
        .unwrap_or_else(|e| panic!("{what}: start: {e}"));
    let child = pid_in_file(&child, &what).await;
    let _guard = KillOnDrop::new(vec![child]);
    wait_for(&[&ready_h, &ready_t], &what).await;
    send(&p, how, signal, &what).await;
    let out = tokio::time::timeout(3 * DEADLINE, p.wait())
        .await
        .unwrap_or_else(|_| panic!("{what}: the chain did not end"))
        .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
    let marked = std::fs::read_to_string(mark.path()).unwrap_or_default();
    assert_eq!(
        (out.stages()[0].outcome(), marked.trim()),
        (Outcome::Exited(3), "done"),
        "{what}: the head was cut short before its trap had run"
    );
    assert_eq!(out.stages()[1].outcome(), tail_end, "{what}");
    assert_eq!(out.outcome(), Outcome::Exited(3), "{what}: the fold");
    assert_gone(&[child], &format!("{what}: the head's child")).await;
    assert!(!p.is_running(), "{what}");
}

const DIES: &str = "trap - TERM; kill -TERM $$";

/// `signal(Term)`: a tail that dies of the SIGTERM (re-raised from its
/// trap), or exits 143 from it, does not cut the head, whose trap runs on
/// to its exit 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_ending_of_the_callers_term_cuts_nothing() {
    let suite = begin("a_stage_ending_of_the_callers_term_cuts_nothing").await;
    for choice in mechanisms() {
        let term = (Signal::Term, "TERM");
        the_head_runs_its_trap(choice, Send::Sync, term, DIES, Outcome::Signalled(15)).await;
        the_head_runs_its_trap(choice, Send::Sync, term, "exit 143", Outcome::Exited(143)).await;
    }
    suite.end().await;
}

/// The same through `signal_async`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_ending_of_the_callers_term_cuts_nothing_async() {
    let suite = begin("a_stage_ending_of_the_callers_term_cuts_nothing_async").await;
    for choice in mechanisms() {
        let term = (Signal::Term, "TERM");
        the_head_runs_its_trap(choice, Send::Async, term, DIES, Outcome::Signalled(15)).await;
        the_head_runs_its_trap(choice, Send::Async, term, "exit 143", Outcome::Exited(143)).await;
    }
    suite.end().await;
}

/// A SIGUSR1 the tail does not handle ends it (its trap's `trap -` puts
/// the default back and re-raises it): the caller's doing too, no cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_dying_of_the_callers_usr1_cuts_nothing() {
    let suite = begin("a_stage_dying_of_the_callers_usr1_cuts_nothing").await;
    for choice in mechanisms() {
        let usr1 = (Signal::Usr1, "USR1");
        let dies = "trap - USR1; kill -USR1 $$";
        let end = Outcome::Signalled(libc::SIGUSR1);
        the_head_runs_its_trap(choice, Send::Sync, usr1, dies, end).await;
        the_head_runs_its_trap(choice, Send::Async, usr1, dies, end).await;
    }
    suite.end().await;
}

/// After a SIGUSR1 both stages handle (it ended nothing), a tail that
/// fails on its own (`exit 1`), or dies of a SIGTERM the caller did not
/// send (its own `kill`), still cuts the head short: the head shows the
/// cut's SIGKILL, the fold blames the tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_failing_on_its_own_after_a_handled_signal_still_cuts() {
    let suite = begin("a_stage_failing_on_its_own_after_a_handled_signal_still_cuts").await;
    for choice in mechanisms() {
        for how in [Send::Sync, Send::Async] {
            for (fail, end) in [
                ("exit 1", Outcome::Exited(1)),
                ("kill -TERM $$", Outcome::Signalled(15)),
            ] {
                let what = format!("{choice}, {how:?}, tail {end:?}");
                let (ready_h, ready_t) = (TempPath::new("pcut-rh"), TempPath::new("pcut-rt"));
                let (heard_h, heard_t) = (TempPath::new("pcut-hh"), TempPath::new("pcut-ht"));
                let go = TempPath::new("pcut-go");
                let head = format!(
                    "trap ': > {heard}' USR1; : > {ready}; while :; do sleep 0.05; done",
                    heard = heard_h.as_str(),
                    ready = ready_h.as_str(),
                );
                let tail = format!(
                    "trap ': > {heard}' USR1; : > {ready}; \
                     while [ ! -e {go} ]; do sleep 0.05; done; {fail}",
                    heard = heard_t.as_str(),
                    ready = ready_t.as_str(),
                    go = go.as_str(),
                );
                let mut p = Pipe::new([shc(&head), shc(&tail)])
                    .mechanism(choice)
                    .start()
                    .unwrap_or_else(|e| panic!("{what}: start: {e}"));
                let pids = p.pids();
                wait_for(&[&ready_h, &ready_t], &what).await;
                send(&p, how, Signal::Usr1, &what).await;
                wait_for(&[&heard_h, &heard_t], &format!("{what}: the USR1 traps")).await;
                assert_alive(&pids, &what);
                std::fs::write(go.path(), "").expect("go");
                let out = tokio::time::timeout(3 * DEADLINE, p.wait())
                    .await
                    .unwrap_or_else(|_| panic!("{what}: the failed tail did not cut the head"))
                    .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
                assert_eq!(out.stages()[0].outcome(), Outcome::Signalled(9), "{what}");
                assert_eq!(out.stages()[1].outcome(), end, "{what}");
                assert_eq!(out.outcome(), end, "{what}: the fold blames the tail");
                assert_gone(&pids, &what).await;
            }
        }
    }
    suite.end().await;
}

/// A `signal_async(Term)` dropped while it waits for the freeze (the
/// head's child held unfreezable) sent nothing and is not taken for sent:
/// a tail that then dies of a SIGTERM of its own still cuts the head
/// short (were the record kept, the head's `sleep 300` would run on and
/// the wait would not end). Cgroup v2 alone: elsewhere the signal never
/// waits, so it can't be dropped while waiting.
#[tokio::test]
async fn a_dropped_signal_async_is_not_taken_for_sent() {
    const NAME: &str = "a_dropped_signal_async_is_not_taken_for_sent";
    let suite = begin(NAME).await;
    if !v1_freezer_usable() || !mechanisms().contains(&MechanismChoice::Cgroup) {
        skipped(NAME, "needs cgroup v2 and a cgroup v1 freezer directory");
        suite.end().await;
        return;
    }
    let file = TempPath::new("pcut-held");
    let go = TempPath::new("pcut-go");
    let head = format!("sleep 300 & echo $! > {}; exec sleep 300", file.as_str());
    let tail = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; kill -TERM $$",
        go.as_str()
    );
    let mut p = Pipe::new([shc(&head), shc(&tail)])
        .mechanism(MechanismChoice::Cgroup)
        .start()
        .expect("start");
    let sleeper = pid_in_file(&file, "the head's child").await;
    let held = Held::new(sleeper, 500).expect("a v1 freezer directory");
    let dropped = tokio::time::timeout(POLL * 5, p.signal_async(Signal::Term)).await;
    assert!(dropped.is_err(), "the signal did not wait for the freeze");
    held.thaw();
    assert!(!held.pending(libc::SIGTERM), "the dropped signal was sent");
    assert_alive(&p.pids(), "the chain after the dropped signal");
    std::fs::write(go.path(), "").expect("go");
    let out = tokio::time::timeout(3 * DEADLINE, p.wait())
        .await
        .expect("the tail's own SIGTERM did not cut the head short")
        .expect("wait");
    assert_eq!(out.stages()[1].outcome(), Outcome::Signalled(15));
    assert_eq!(out.stages()[0].outcome(), Outcome::Signalled(9));
    assert_eq!(out.outcome(), Outcome::Signalled(15));
    assert_gone(&[sleeper], "the head's child").await;
    held.remove().await;
    // The handle keeps its stages' results until dropped: before the
    // suite's check for what is left.
    drop(p);
    suite.end().await;
}
