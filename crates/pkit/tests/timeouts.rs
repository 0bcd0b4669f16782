//! How a timeout ends a run: the timeout signal, the grace, whether SIGKILL
//! was needed after it, and timeouts and graces of any length.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Pipe, Signal};

/// Traps SIGINT (prints `got-int` and exits 0), reports its pid, then
/// `ready`, then loops.
const INT_HANDLER: &str =
    r#"trap "echo got-int; exit 0" INT; echo $$; echo ready; while :; do sleep 0.1; done"#;

#[tokio::test]
async fn timeout_signal_is_what_the_tree_gets() {
    let suite = begin("timeout_signal_is_what_the_tree_gets").await;
    for choice in mechanisms() {
        let what = format!("{choice}: timeout_signal(INT) with a grace");
        let (out, pids) = output_timing_out_after_ready(&what, |limit| {
            sh(choice, INT_HANDLER)
                .timeout(limit)
                .timeout_signal(Signal::Int)
                .grace(Duration::from_secs(10))
        })
        .await;
        assert!(out.timed_out(), "{what}: {out:?}");
        assert!(
            out.stdout_str().contains("got-int"),
            "{what}: {:?}",
            out.stdout_str()
        );
        assert!(!out.killed_after_grace(), "{what}: {out:?}");
        assert_gone(&pids, &what).await;

        // Without a grace, a timeout signal still gets the default grace to
        // act on.
        let what = format!("{choice}: timeout_signal(INT) without a grace");
        let (out, pids) = output_timing_out_after_ready(&what, |limit| {
            sh(choice, INT_HANDLER)
                .timeout(limit)
                .timeout_signal(Signal::Int)
        })
        .await;
        assert!(
            out.stdout_str().contains("got-int"),
            "{what}: {:?}",
            out.stdout_str()
        );
        assert!(!out.killed_after_grace(), "{what}: {out:?}");
        assert_gone(&pids, &what).await;
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_grace_says_sigkill_was_needed() {
    let suite = begin("killed_after_grace_says_sigkill_was_needed").await;
    let ignores = r#"trap "" INT TERM; sleep 300 & echo $!; echo $$; echo ready; while :; do sleep 0.1; done"#;
    for choice in mechanisms() {
        let what = format!("{choice}: INT ignored, grace runs out");
        let grace = Duration::from_millis(300);
        let (out, pids) = output_timing_out_after_ready(&what, |limit| {
            sh(choice, ignores)
                .timeout(limit)
                .timeout_signal(Signal::Int)
                .grace(grace)
        })
        .await;
        assert!(out.timed_out(), "{what}: {out:?}");
        assert!(out.killed_after_grace(), "{what}: {out:?}");
        assert!(out.duration() >= grace, "{what}: {out:?}");
        assert_gone(&pids, &what).await;

        // The default: no grace, no signal: SIGKILL at once, so no TERM
        // handler runs and SIGKILL was not "needed after a grace".
        let what = format!("{choice}: the default timeout");
        let (out, pids) = output_timing_out_after_ready(&what, |limit| {
            sh(
                choice,
                r#"trap "echo got-term; exit 0" TERM; echo $$; echo ready; while :; do sleep 0.1; done"#,
            )
            .timeout(limit)
        })
        .await;
        assert!(!out.stdout_str().contains("got-term"), "{what}: {out:?}");
        assert!(!out.killed_after_grace(), "{what}: {out:?}");
        assert_gone(&pids, &what).await;

        // A run that does not time out never says so.
        let out = sh(choice, "exit 0")
            .timeout(Duration::from_secs(60))
            .timeout_signal(Signal::Int)
            .grace(grace)
            .output()
            .await
            .expect("output");
        assert!(out.success() && !out.killed_after_grace(), "{out:?}");
    }
    suite.end().await;
}

#[tokio::test]
async fn a_pipe_honours_its_timeout_signal() {
    let suite = begin("a_pipe_honours_its_timeout_signal").await;
    for choice in mechanisms() {
        // Growing timeouts until the head got going before it fired (a
        // loaded machine may be slow to start it).
        let mut limit = Duration::from_millis(500);
        let out = loop {
            let out = Pipe::new([sh(choice, INT_HANDLER), sh(choice, r#"trap "" INT; cat"#)])
                .mechanism(choice)
                .timeout(limit)
                .timeout_signal(Signal::Int)
                .grace(Duration::from_secs(10))
                .output()
                .await
                .expect("output");
            assert!(out.timed_out(), "{choice}: {out:?}");
            if out.stdout_str().contains("ready") || limit > Duration::from_secs(16) {
                break out;
            }
            limit *= 2;
        };
        // The head exits on INT; cat ignores it but ends at end of input:
        // if nothing is left for SIGKILL the signal reached the head.
        assert_eq!(out.stages().len(), 2, "{choice}");
        assert!(
            out.stdout_str().contains("got-int"),
            "{choice}: {:?}",
            out.stdout_str()
        );
        assert!(!out.killed_after_grace(), "{choice}: {out:?}");
    }
    suite.end().await;
}

/// A duration too long for the clock is no deadline: never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_duration_is_accepted() {
    let suite = begin("any_duration_is_accepted").await;
    let max = Duration::MAX;
    for choice in mechanisms() {
        // As a timeout: the run is simply unbounded.
        let out = cmd(choice, "echo")
            .arg("hi")
            .timeout(max)
            .grace(max)
            .timeout_signal(Signal::Int)
            .output()
            .await
            .expect("output");
        assert!(out.success() && !out.timed_out(), "{choice}: {out:?}");
        assert_eq!(out.stdout_str(), "hi\n");
        let out = Pipe::new([cmd(choice, "echo").arg("hi"), cmd(choice, "cat")])
            .mechanism(choice)
            .timeout(max)
            .grace(max)
            .output()
            .await
            .expect("pipe output");
        assert!(out.success(), "{choice}: {out:?}");

        // As a grace: the tree gets as long as it takes (here it exits on
        // the signal at once).
        let what = format!("{choice}: grace(Duration::MAX)");
        let (out, pids) = output_timing_out_after_ready(&what, |limit| {
            sh(
                choice,
                r#"trap "echo got-term; exit 0" TERM; echo $$; echo ready; while :; do sleep 0.1; done"#,
            )
            .timeout(limit)
            .grace(max)
        })
        .await;
        assert!(out.stdout_str().contains("got-term"), "{what}: {out:?}");
        assert!(!out.killed_after_grace(), "{what}: {out:?}");
        assert_gone(&pids, &what).await;

        // As a shutdown grace.
        let ending = group(choice);
        let p = ending
            .start(&pkit::Command::new("sleep").arg("300"))
            .expect("start");
        let report = ending.shutdown(max).await.expect("shutdown");
        assert_eq!(
            (report.signalled(), report.killed()),
            (1, 0),
            "{choice}: {report:?}"
        );
        assert_gone(&[p.pid()], &format!("{choice}: shutdown(MAX)")).await;
        drop(p);

        // As a probe's timeout, and a sampling interval.
        let group = group(choice);
        let mut p = group
            .start(&sh(choice, "echo ready; exec sleep 300").stream_lines())
            .expect("start");
        let line = p
            .wait_for_line(|l| l.text == "ready", max)
            .await
            .expect("ready");
        assert_eq!(line.text, "ready");
        p.wait_for(|| async { true }, max).await.expect("wait_for");
        let mut samples = group.sample_stats(max);
        let first = samples.next().await.expect("a first sample");
        assert!(first.is_ok(), "{choice}: {first:?}");
        drop(samples);
        let q = group.start(&sh(choice, "exit 0")).expect("start");
        let profile = q.profile(max).await.expect("profile");
        assert!(profile.samples() >= 1);
        drop((p, q));
        group.close().await.expect("close");
    }
    suite.end().await;
}

/// A child that exits well before its deadline reports its exit, never a
/// timeout, run after run: through the blocking one-shot path (waited for
/// on the calling thread) and the async one. At the deadline both look
/// once, without waiting, whether the child has exited before calling it
/// a timeout; the exact instant can't be forced from here (the decision
/// itself is tested in `blocking/direct.rs`), so this asks for the
/// ordinary case many times.
#[test]
fn a_child_that_exits_before_its_deadline_is_never_timed_out() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let suite = rt.block_on(begin(
        "a_child_that_exits_before_its_deadline_is_never_timed_out",
    ));
    let cmd = || {
        pkit::Command::new("sh")
            .args(["-c", "exit 3"])
            .timeout(Duration::from_secs(30))
    };
    for i in 0..100 {
        let out = cmd().blocking().output().unwrap();
        assert_eq!(out.outcome(), pkit::Outcome::Exited(3), "blocking run {i}");
    }
    rt.block_on(async {
        for i in 0..100 {
            let out = cmd().output().await.unwrap();
            assert_eq!(out.outcome(), pkit::Outcome::Exited(3), "async run {i}");
        }
    });
    rt.block_on(suite.end());
}

/// The inactivity timeout of
/// [`an_exit_seen_with_its_bound_is_not_a_timeout`].
const IDLE: Duration = Duration::from_millis(50);

/// Holds this thread (and a current-thread runtime with it: nothing of
/// the run is looked at meanwhile) until every pid has exited and twice
/// [`IDLE`] has passed since `since`.
fn hold_until_exited(pids: &[u32], since: std::time::Instant) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while !pids.iter().all(|&p| pid_gone(p)) {
        let now = std::time::Instant::now();
        assert!(now < deadline, "{pids:?} still running after {DEADLINE:?}");
        std::thread::sleep(POLL);
    }
    std::thread::sleep((since + 2 * IDLE).saturating_duration_since(std::time::Instant::now()));
}

/// A run whose children have all exited when its bound fires reports their
/// exits, not a timeout: a pipeline and a one-shot run, their bounds armed,
/// then the runtime's only thread held until the children have exited and
/// the inactivity timeout has passed, so that the exits and the bound are
/// seen in the same wake-up. Before, a pipeline said `inactivity_timed_out`
/// about every other run.
#[test]
fn an_exit_seen_with_its_bound_is_not_a_timeout() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let suite = begin("an_exit_seen_with_its_bound_is_not_a_timeout").await;
        for choice in mechanisms() {
            for i in 0..20 {
                let what = format!("{choice}: pipeline, run {i}");
                let since = std::time::Instant::now();
                let mut running = Pipe::new([sh(choice, "exit 0"), sh(choice, "exit 3")])
                    .mechanism(choice)
                    .inactivity_timeout(IDLE)
                    .start()
                    .expect("start");
                // The driver arms the bounds.
                tokio::task::yield_now().await;
                hold_until_exited(&running.pids(), since);
                let out = running.wait().await.expect("wait");
                assert_eq!(out.outcome(), pkit::Outcome::Exited(3), "{what}: {out:?}");
                assert!(!out.inactivity_timed_out(), "{what}: {out:?}");

                let what = format!("{choice}: one-shot run, run {i}");
                let file = TempPath::new("exit-seen-with-bound");
                let go = TempPath::new("exit-seen-with-bound-go");
                let since = std::time::Instant::now();
                // The child waits for `go` before it exits: on a loaded
                // machine it could otherwise end before the first poll
                // returns, and the run would end at that poll (seen in CI,
                // 1 run in 40).
                let cmd = sh(
                    choice,
                    r#"echo $$ > "$1"; while [ ! -e "$2" ]; do sleep 0.01; done; exit 3"#,
                )
                .arg(file.as_str())
                .arg(go.as_str())
                .inactivity_timeout(IDLE);
                let mut run = std::pin::pin!(cmd.output());
                // One poll: the child starts and the bounds are armed.
                let polled = tokio::time::timeout(Duration::ZERO, &mut run).await;
                assert!(polled.is_err(), "{what}: ended at its first poll");
                std::fs::write(go.path(), b"").unwrap();
                let pid = loop {
                    let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                    if let Ok(pid) = text.trim().parse() {
                        break pid;
                    }
                    assert!(since.elapsed() < DEADLINE, "{what}: no pid written");
                    std::thread::sleep(POLL);
                };
                hold_until_exited(&[pid], since);
                let out = run.await.expect("output");
                assert_eq!(out.outcome(), pkit::Outcome::Exited(3), "{what}: {out:?}");
                assert!(!out.inactivity_timed_out(), "{what}: {out:?}");
            }
        }
        suite.end().await;
    });
}
