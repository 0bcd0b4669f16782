//! rv49's hostile review of the thirteenth session's core changes: a
//! caller's signals to a started pipeline (`SignalsSent`), SIGCONT's pass
//! without a freeze under cgroup v2, and the unbounded runs' fast paths.
//! Each test starts real processes and checks their real ends, on every
//! mechanism it can run on.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pkit::{CancelToken, CapturePolicy, Command, Outcome, Pipe, Signal};

fn shc(script: &str) -> Command {
    Command::new("sh").args(["-c", script])
}

/// Waits until `file` exists.
async fn wait_for(file: &TempPath, what: &str) {
    let until = Instant::now() + DEADLINE;
    while !file.path().exists() {
        assert!(Instant::now() < until, "{what}: not ready");
        tokio::time::sleep(POLL).await;
    }
}

/// `signal(Signal::Kill)` is the chain's kill by another name: every stage
/// and what it spawned ends, the wait returns, and a signal sent after the
/// chain's end is no error and reaches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chains_signal_kill_ends_it_and_a_late_signal_is_nothing() {
    let suite = begin("a_chains_signal_kill_ends_it_and_a_late_signal_is_nothing").await;
    for choice in mechanisms() {
        let what = format!("{choice}");
        let (ready, child) = (TempPath::new("rv49-r"), TempPath::new("rv49-c"));
        let head = format!(
            "(trap '' TERM; exec sleep 300) & echo $! > {c}; : > {r}; while :; do sleep 0.05; done",
            c = child.as_str(),
            r = ready.as_str()
        );
        let mut p = Pipe::new([shc(&head), shc("cat")])
            .mechanism(choice)
            .start()
            .unwrap_or_else(|e| panic!("{what}: start: {e}"));
        let child = pid_in_file(&child, &what).await;
        let _guard = KillOnDrop::new(vec![child]);
        wait_for(&ready, &what).await;
        p.signal(Signal::Kill)
            .unwrap_or_else(|e| panic!("{what}: signal(Kill): {e}"));
        let out = p
            .wait()
            .await
            .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
        for s in out.stages() {
            assert_eq!(s.outcome(), Outcome::Signalled(libc::SIGKILL), "{what}");
        }
        assert_gone(&[child], &what).await;
        // Ended: no error, nothing to reach.
        p.signal(Signal::Term)
            .unwrap_or_else(|e| panic!("{what}: a late signal: {e}"));
        p.signal_async(Signal::Raw(40))
            .await
            .unwrap_or_else(|e| panic!("{what}: a late signal_async: {e}"));
    }
    suite.end().await;
}

/// A realtime signal (no name, `Signal::Raw`) the caller sends a chain: the
/// tail dies of it, and that cuts nothing; the head runs its trap for it to
/// its end. Another chain whose tail exits 128 + that number with no such
/// signal sent is a failure, and cuts the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realtime_signal_the_caller_sent_cuts_nothing() {
    let suite = begin("a_realtime_signal_the_caller_sent_cuts_nothing").await;
    const RT: i32 = 40;
    for choice in mechanisms() {
        let what = format!("{choice}");
        let (rh, rt) = (TempPath::new("rv49-rh"), TempPath::new("rv49-rt"));
        let mark = TempPath::new("rv49-mark");
        let head = format!(
            "trap 'sleep 0.5; echo done > {m}; exit 3' {RT}; : > {r}; while :; do sleep 0.05; done",
            m = mark.as_str(),
            r = rh.as_str()
        );
        let tail = format!(": > {r}; while :; do sleep 0.05; done", r = rt.as_str());
        let mut p = Pipe::new([shc(&head), shc(&tail)])
            .mechanism(choice)
            .start()
            .unwrap_or_else(|e| panic!("{what}: start: {e}"));
        wait_for(&rh, &what).await;
        wait_for(&rt, &what).await;
        p.signal_async(Signal::Raw(RT))
            .await
            .unwrap_or_else(|e| panic!("{what}: signal: {e}"));
        let out = p
            .wait()
            .await
            .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
        assert_eq!(
            out.stages()[0].outcome(),
            Outcome::Exited(3),
            "{what}: the head was cut"
        );
        assert_eq!(out.stages()[1].outcome(), Outcome::Signalled(RT), "{what}");
        assert!(
            mark.path().exists(),
            "{what}: the head's trap did not finish"
        );

        // No signal sent: the tail's own `exit 168` cuts the head.
        let what = format!("{choice}, unsent");
        let out = Pipe::new([
            shc("while :; do sleep 0.05; done"),
            shc(&format!("sleep 0.3; exit {}", 128 + RT)),
        ])
        .mechanism(choice)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what}: output: {e}"));
        assert_eq!(
            out.stages()[0].outcome(),
            Outcome::Signalled(libc::SIGKILL),
            "{what}"
        );
        assert_eq!(
            out.stages()[1].outcome(),
            Outcome::Exited(128 + RT),
            "{what}"
        );
    }
    suite.end().await;
}

/// A cgroup frozen by hand (`cgroup.freeze` written 1 behind pkit's back)
/// is still ended by a shutdown: its SIGTERM pass thaws what it froze
/// (the hand's freeze among it), the grace's kill kills frozen members, and
/// the call returns. A SIGCONT to it, which freezes nothing, returns too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cgroup_frozen_by_hand_still_shuts_down() {
    const NAME: &str = "a_cgroup_frozen_by_hand_still_shuts_down";
    let suite = begin(NAME).await;
    if !cgroup_usable() {
        skipped(NAME, "no cgroup v2 here");
        suite.end().await;
        return;
    }
    let group = group(pkit::MechanismChoice::Cgroup);
    let dir = cgroup_dir(&group).expect("a cgroup");
    let pid_file = TempPath::new("rv49-frozen");
    let script = format!(
        "trap '' TERM; sleep 300 & echo $! > {f}; wait",
        f = pid_file.as_str()
    );
    let mut p = group.start(&shc(&script)).expect("start");
    let sleeper = pid_in_file(&pid_file, NAME).await;
    let _guard = KillOnDrop::new(vec![sleeper]);
    std::fs::write(dir.join("cgroup.freeze"), "1").expect("freezing by hand");
    let until = Instant::now() + DEADLINE;
    while !std::fs::read_to_string(dir.join("cgroup.events"))
        .unwrap_or_default()
        .contains("frozen 1")
    {
        assert!(Instant::now() < until, "never frozen");
        tokio::time::sleep(POLL).await;
    }
    group
        .signal(Signal::Cont)
        .expect("SIGCONT to a frozen cgroup");
    group
        .signal_async(Signal::Cont)
        .await
        .expect("signal_async(Cont)");
    let ended = tokio::time::timeout(DEADLINE, group.shutdown(Duration::from_millis(500)))
        .await
        .expect("the shutdown of a hand-frozen cgroup hung");
    ended.expect("shutdown");
    assert_gone(&[sleeper], NAME).await;
    let out = p.wait().await.expect("the program's wait");
    assert_eq!(out.outcome(), Outcome::Signalled(libc::SIGKILL), "{NAME}");
    drop(p);
    suite.end().await;
}

/// A member stopped by SIGSTOP, continued by the group's SIGCONT (no
/// freeze), forks at once a child that ignores SIGTERM: the shutdown that
/// follows still ends that child (its grace's kill), on every mechanism.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_forks_as_it_is_continued_is_still_ended() {
    let suite = begin("a_member_that_forks_as_it_is_continued_is_still_ended").await;
    for choice in mechanisms() {
        let what = format!("{choice}");
        let group = group(choice);
        let (stopping, child) = (TempPath::new("rv49-s"), TempPath::new("rv49-k"));
        let script = format!(
            "trap '' TERM; : > {s}; kill -STOP $$; (trap '' TERM; exec sleep 300) & echo $! > {c}; wait",
            s = stopping.as_str(),
            c = child.as_str()
        );
        let p = group.start(&shc(&script)).expect("start");
        wait_for(&stopping, &what).await;
        let until = Instant::now() + DEADLINE;
        while stat(p.pid()).is_none_or(|s| s.state != 'T') {
            assert!(Instant::now() < until, "{what}: never stopped");
            tokio::time::sleep(POLL).await;
        }
        group
            .signal_async(Signal::Cont)
            .await
            .unwrap_or_else(|e| panic!("{what}: SIGCONT: {e}"));
        let child = pid_in_file(&child, &what).await;
        let _guard = KillOnDrop::new(vec![child, p.pid()]);
        let report = group
            .shutdown(Duration::from_millis(300))
            .await
            .unwrap_or_else(|e| panic!("{what}: shutdown: {e}"));
        assert!(
            report.killed() > 0,
            "{what}: the TERM-proof tree ended in its grace? {report:?}"
        );
        assert_gone(&[child, p.pid()], &what).await;
    }
    suite.end().await;
}

/// The bounds an unbounded run's fast path must not lose: a token
/// cancelled before the start, a timeout of zero, an inactivity timeout
/// alone, a `Fail` capture limit alone. Each ends the run as before, and
/// leaves nothing running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_single_bound_is_still_honoured() {
    let suite = begin("each_single_bound_is_still_honoured").await;
    for choice in mechanisms() {
        let what = format!("{choice}");
        let forever = "while :; do sleep 0.05; done";

        let token = CancelToken::new();
        token.cancel();
        let r = sh(choice, forever).cancel_token(&token).output().await;
        assert!(
            matches!(r, Err(pkit::Error::Cancelled { .. })),
            "{what}: a token cancelled before the start: {r:?}"
        );

        let out = sh(choice, forever)
            .timeout(Duration::ZERO)
            .output()
            .await
            .unwrap_or_else(|e| panic!("{what}: timeout 0: {e}"));
        assert_eq!(out.outcome(), Outcome::TimedOut, "{what}: timeout 0");

        let out = Pipe::new([sh(choice, forever)])
            .mechanism(choice)
            .inactivity_timeout(Duration::from_millis(300))
            .output()
            .await
            .unwrap_or_else(|e| panic!("{what}: inactivity: {e}"));
        assert_eq!(out.outcome(), Outcome::TimedOut, "{what}: inactivity alone");

        let out = sh(choice, "while :; do echo xxxxxxxxxxxxxxxx; done")
            .capture_limit(1024, CapturePolicy::Fail)
            .output()
            .await;
        match out {
            Ok(o) => assert_ne!(o.outcome(), Outcome::Exited(0), "{what}: limit"),
            Err(pkit::Error::OutputLimit { .. }) => {}
            Err(e) => panic!("{what}: Fail limit alone: {e}"),
        }
    }
    suite.end().await;
}

/// An unbounded run's future dropped mid-run (no timer, no token: the fast
/// path) leaves nothing running: the program and its grandchild end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbounded_run_dropped_mid_run_leaves_nothing() {
    let suite = begin("an_unbounded_run_dropped_mid_run_leaves_nothing").await;
    for choice in mechanisms() {
        let what = format!("{choice}");
        let child = TempPath::new("rv49-d");
        let script = format!(
            "(trap '' TERM; exec sleep 300) & echo $! > {c}; wait",
            c = child.as_str()
        );
        let cmd = sh(choice, &script);
        // Boxed: dropping a `tokio::pin!`ed future's reference would drop
        // nothing.
        let mut run = Box::pin(cmd.output());
        let pid = tokio::select! {
            r = &mut run => panic!("{what}: ended: {r:?}"),
            pid = pid_in_file(&child, &what) => pid,
        };
        let _guard = KillOnDrop::new(vec![pid]);
        drop(run);
        assert_gone(&[pid], &what).await;
        let child2 = TempPath::new("rv49-d2");
        let script2 = format!(
            "(trap '' TERM; exec sleep 300) & echo $! > {c}; wait",
            c = child2.as_str()
        );
        let out2 = Pipe::new([sh(choice, &script2), Command::new("cat")]).mechanism(choice);
        let mut run = Box::pin(out2.output());
        let pid = tokio::select! {
            r = &mut run => panic!("{what}: chain ended: {r:?}"),
            pid = pid_in_file(&child2, &what) => pid,
        };
        let _guard = KillOnDrop::new(vec![pid]);
        drop(run);
        assert_gone(&[pid], &format!("{what}, chain")).await;
    }
    suite.end().await;
}
