//! `RunningPipe::kill_async` and `RunningPipe::signal_async`: a started
//! pipeline's sync `kill` and `signal` for an async caller. The kill ends
//! every stage (pids really gone, the wait reports it), the signal reaches
//! a stage's trap, both do nothing once the chain has ended; and under
//! cgroup v2 the group's freeze is awaited, so a current-thread runtime
//! runs its other tasks while a stage's child that can't be frozen (held
//! in a cgroup v1 freezer: see `common::held`) keeps the freeze from being
//! confirmed. Every mechanism.

mod common;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use common::held::*;
use common::*;
use pkit::{Command, MechanismChoice, Outcome, Pipe, Signal};

fn shc(script: &str) -> Command {
    Command::new("sh").args(["-c", script])
}

/// A two-stage chain of `sleep`s killed by `kill_async`: both pids gone,
/// every stage's result and the fold say SIGKILL; after the end both
/// calls do nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_async_ends_a_two_stage_chain_of_sleeps() {
    let suite = begin("kill_async_ends_a_two_stage_chain_of_sleeps").await;
    for choice in mechanisms() {
        let what = choice.to_string();
        let mut p = Pipe::new([
            Command::new("sleep").arg("300"),
            Command::new("sleep").arg("300"),
        ])
        .mechanism(choice)
        .start()
        .unwrap_or_else(|e| panic!("{what}: start: {e}"));
        let pids = p.pids();
        assert_eq!(pids.len(), 2, "{what}");
        assert_alive(&pids, &what);
        p.kill_async()
            .await
            .unwrap_or_else(|e| panic!("{what}: kill_async: {e}"));
        assert_gone(&pids, &what).await;
        let out = p
            .wait()
            .await
            .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
        assert_eq!(out.outcome(), Outcome::Signalled(9), "{what}");
        for s in out.stages() {
            assert_eq!(s.outcome(), Outcome::Signalled(9), "{what}");
        }
        // Once ended, both do nothing.
        p.kill_async()
            .await
            .unwrap_or_else(|e| panic!("{what}: kill_async after the end: {e}"));
        p.signal_async(Signal::Term)
            .await
            .unwrap_or_else(|e| panic!("{what}: signal_async after the end: {e}"));
    }
    suite.end().await;
}

/// `signal_async(Term)` reaches the last stage's trap, which writes a
/// marker and exits 0; the head (no trap) dies of it. (A head's trap run
/// to its end while the stage after it dies of the signal is
/// `pipe_caller_signal.rs`'s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_async_term_reaches_a_stages_trap() {
    let suite = begin("signal_async_term_reaches_a_stages_trap").await;
    for choice in mechanisms() {
        let what = choice.to_string();
        let ready = TempPath::new("apipe-ready");
        let mark = TempPath::new("apipe-mark");
        let tail = format!(
            "trap 'echo term > {mark}; exit 0' TERM; : > {ready}; \
             while :; do sleep 0.05; done",
            mark = mark.as_str(),
            ready = ready.as_str()
        );
        let mut p = Pipe::new([Command::new("sleep").arg("300"), shc(&tail)])
            .mechanism(choice)
            .start()
            .unwrap_or_else(|e| panic!("{what}: start: {e}"));
        let until = Instant::now() + DEADLINE;
        while !ready.path().exists() {
            assert!(Instant::now() < until, "{what}: the trap was never set");
            tokio::time::sleep(POLL).await;
        }
        p.signal_async(Signal::Term)
            .await
            .unwrap_or_else(|e| panic!("{what}: signal_async: {e}"));
        let until = Instant::now() + DEADLINE;
        while std::fs::read_to_string(mark.path())
            .unwrap_or_default()
            .trim()
            != "term"
        {
            assert!(Instant::now() < until, "{what}: the trap never ran");
            tokio::time::sleep(POLL).await;
        }
        let out = p
            .wait()
            .await
            .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
        assert_eq!(out.stages()[0].outcome(), Outcome::Signalled(15), "{what}");
        assert_eq!(out.stages()[1].outcome(), Outcome::Exited(0), "{what}");
        assert_eq!(out.outcome(), Outcome::Signalled(15), "{what}");
    }
    suite.end().await;
}

/// The cgroup directory of the group a stage `pid` runs in (one of this
/// process's `pkit-<pid>-*` directories, the stage in a cgroup below it).
fn group_dir_of(pid: u32) -> Option<PathBuf> {
    let parent = group_parent()?;
    cgroup_dirs_of(&parent, std::process::id())
        .into_iter()
        .find(|d| cgroup_procs(d).contains(&pid))
}

/// How many times the other task must have run, each time finding the
/// pass waiting (the group being frozen, the held process unsignalled),
/// before it lets the held process go.
const TICKS: usize = 3;

/// As `group_signal_async.rs`'s test for `Group`: on this current-thread
/// runtime a ticker task counts its turns that find the chain's group
/// being frozen while the held process (a `sleep` of the head stage) has
/// no `sig` pending, and lets it go after `TICKS` of them. The sync call
/// would hold the thread until its 5 s deadline, the ticker never running
/// meanwhile. (Swapping `kill_async().await` for `kill()` here makes this
/// fail.) A process group's `killpg` and the portable mechanism do not
/// wait: the held process has its signal pending at once.
#[tokio::test]
async fn kill_async_and_signal_async_yield_the_thread_while_a_stage_cannot_be_frozen() {
    const NAME: &str =
        "kill_async_and_signal_async_yield_the_thread_while_a_stage_cannot_be_frozen";
    let suite = begin(NAME).await;
    if !v1_freezer_usable() {
        skipped(NAME, "no cgroup v1 freezer directory can be made here");
        suite.end().await;
        return;
    }
    let mut n = 300;
    for choice in mechanisms() {
        for (sig, signal) in [(libc::SIGTERM, Signal::Term), (libc::SIGKILL, Signal::Kill)] {
            let what = format!("{choice}, {signal}");
            let file = TempPath::new("apipe-held");
            let head = format!("sleep 300 & echo $! > {}; wait", file.as_str());
            let mut p = Pipe::new([shc(&head), Command::new("cat")])
                .mechanism(choice)
                .start()
                .unwrap_or_else(|e| panic!("{what}: start: {e}"));
            let sleeper = pid_in_file(&file, &what).await;
            let mut pids = p.pids();
            pids.push(sleeper);
            let dir = match choice {
                MechanismChoice::Cgroup => {
                    Some(group_dir_of(pids[0]).expect("the chain's cgroup directory"))
                }
                _ => None,
            };
            n += 1;
            let held = Arc::new(Held::new(sleeper, n).expect("a v1 freezer directory"));
            let (ticker, waiting_turns) = tick_while_frozen(held.clone(), dir.clone(), sig, TICKS);
            let sent = match signal {
                Signal::Kill => p.kill_async().await,
                other => p.signal_async(other).await,
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
                    held.pending(sig) || pid_gone(sleeper),
                    "{what}: the held process was not signalled"
                );
            }
            if let Some(d) = &dir {
                assert_eq!(freeze_written(d), "0", "{what}: the group stays frozen");
            }
            held.thaw();
            assert_gone(&pids, &what).await;
            let out = p
                .wait()
                .await
                .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
            assert_eq!(out.stages()[0].outcome(), Outcome::Signalled(sig), "{what}");
            ticker.await.expect("the ticker");
            Arc::try_unwrap(held)
                .unwrap_or_else(|_| panic!("{what}: the ticker kept the hold"))
                .remove()
                .await;
        }
    }
    suite.end().await;
}

/// A `kill_async` dropped while it waits for the freeze (a stage's child
/// held unfreezable) sent nothing, and leaves the chain's rules as they
/// were: a stage that fails afterwards still cuts the stage feeding it
/// short (were the caller's stop left set, that stage would run on and
/// the wait would not end). Cgroup v2 alone: elsewhere the kill never
/// waits, so it can't be dropped while waiting.
#[tokio::test]
async fn a_dropped_kill_async_sends_nothing_and_the_chain_still_cuts() {
    const NAME: &str = "a_dropped_kill_async_sends_nothing_and_the_chain_still_cuts";
    let suite = begin(NAME).await;
    if !v1_freezer_usable() || !mechanisms().contains(&MechanismChoice::Cgroup) {
        skipped(NAME, "needs cgroup v2 and a cgroup v1 freezer directory");
        suite.end().await;
        return;
    }
    let file = TempPath::new("apipe-held");
    let go = TempPath::new("apipe-go");
    let head = format!("sleep 300 & echo $! > {}; exec sleep 300", file.as_str());
    let tail = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; exit 3",
        go.as_str()
    );
    let mut p = Pipe::new([shc(&head), shc(&tail)])
        .mechanism(MechanismChoice::Cgroup)
        .start()
        .expect("start");
    let sleeper = pid_in_file(&file, "the head's child").await;
    let held = Held::new(sleeper, 400).expect("a v1 freezer directory");
    let dropped = tokio::time::timeout(POLL * 5, p.kill_async()).await;
    assert!(dropped.is_err(), "the kill did not wait for the freeze");
    held.thaw();
    assert!(!held.pending(libc::SIGKILL), "the dropped kill was sent");
    assert_alive(&p.pids(), "the chain after the dropped kill");
    std::fs::write(go.path(), "").expect("go");
    let out = tokio::time::timeout(3 * DEADLINE, p.wait())
        .await
        .expect("the failed tail did not cut the head short")
        .expect("wait");
    assert_eq!(out.outcome(), Outcome::Exited(3));
    assert_eq!(out.stages()[0].outcome(), Outcome::Signalled(9));
    assert_gone(&[sleeper], "the head's child").await;
    held.remove().await;
    // The handle keeps its stages' results until dropped: before the
    // suite's check for what is left.
    drop(p);
    suite.end().await;
}
