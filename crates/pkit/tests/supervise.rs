//! `Supervisor`: restart policies, the predicate, the restart budget, the
//! storm guard, the stable-run reset, readiness checks, reaping between
//! runs, cancellation and graceful stop — all with real processes. Only
//! counts and the order of events are asserted, never how long anything
//! took.

mod common;

use std::time::Duration;

use common::*;
use pkit::{
    CancelToken, Command, MechanismChoice, Outcome, Restart, StopReason, Supervisor,
    SupervisorEvent,
};

/// Counts its runs in `$1`, prints the count, succeeds from run `$2` on.
const FLAKY: &str = r#"n=$(cat "$1" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1"; echo run-$n; [ $n -ge "$2" ]"#;

fn sh(script: &str) -> Command {
    Command::new("sh").args(["-c", script, "sh"])
}

fn sup(choice: MechanismChoice, cmd: Command) -> Supervisor {
    Supervisor::new(cmd)
        .mechanism(choice)
        .backoff(Duration::from_millis(5), 2.0)
        .max_backoff(Duration::from_millis(50))
}

fn runs(counter: &TempPath) -> u32 {
    std::fs::read_to_string(counter.path())
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(0)
}

/// Every event up to and including `Stopped`.
async fn all_events(handle: &mut pkit::SupervisorHandle) -> Vec<SupervisorEvent> {
    let mut events = Vec::new();
    loop {
        let ev = tokio::time::timeout(DEADLINE * 3, handle.next_event())
            .await
            .expect("events keep coming")
            .expect("the stream ends after Stopped");
        let last = matches!(ev, SupervisorEvent::Stopped(_));
        events.push(ev);
        if last {
            return events;
        }
    }
}

async fn next(handle: &mut pkit::SupervisorHandle) -> SupervisorEvent {
    tokio::time::timeout(DEADLINE, handle.next_event())
        .await
        .expect("an event")
        .expect("not ended")
}

#[tokio::test]
async fn on_crash_restarts_until_a_clean_run() {
    let suite = begin("on_crash_restarts_until_a_clean_run").await;
    for choice in mechanisms() {
        let counter = TempPath::new("oncrash");
        let out = sup(choice, sh(FLAKY).args([counter.as_str(), "3"]))
            .run()
            .await
            .unwrap();
        assert_eq!(out.stopped, StopReason::PolicySatisfied, "{choice}");
        assert_eq!(out.restarts, 2, "{choice}");
        assert_eq!(runs(&counter), 3, "{choice}");
        let last = out.final_output.unwrap();
        assert!(last.success());
        assert_eq!(last.stdout_str(), "run-3\n");
    }
    suite.end().await;
}

#[tokio::test]
async fn the_restart_budget_and_never() {
    let suite = begin("the_restart_budget_and_never").await;
    for choice in mechanisms() {
        let counter = TempPath::new("budget");
        let out = sup(choice, sh(FLAKY).args([counter.as_str(), "100"]))
            .max_restarts(3)
            .run()
            .await
            .unwrap();
        assert_eq!(out.stopped, StopReason::RestartsExhausted, "{choice}");
        assert_eq!(out.restarts, 3);
        assert_eq!(
            runs(&counter),
            4,
            "{choice}: the first run and three restarts"
        );
        assert_eq!(out.final_output.unwrap().outcome(), Outcome::Exited(1));

        let counter = TempPath::new("never");
        let out = sup(choice, sh(FLAKY).args([counter.as_str(), "100"]))
            .restart(Restart::Never)
            .run()
            .await
            .unwrap();
        assert_eq!(out.stopped, StopReason::PolicySatisfied, "{choice}");
        assert_eq!((out.restarts, runs(&counter)), (0, 1), "{choice}");

        // A program that can't be found is no crash to retry: the budget
        // is never used (see a_start_that_cannot_succeed_stops_at_once).
        let out = sup(choice, Command::new("/nonexistent/pkit-sup"))
            .max_restarts(2)
            .run()
            .await
            .unwrap();
        assert_eq!(out.stopped, StopReason::CannotStart);
        assert_eq!(out.restarts, 0);
        assert!(out.final_output.is_none());
        assert!(out.final_error.unwrap().is_not_found());
    }
    suite.end().await;
}

#[tokio::test]
async fn always_restarts_clean_runs_until_the_predicate() {
    let suite = begin("always_restarts_clean_runs_until_the_predicate").await;
    for choice in mechanisms() {
        let counter = TempPath::new("always");
        let out = sup(choice, sh(FLAKY).args([counter.as_str(), "0"]))
            .restart(Restart::Always)
            .stop_when(|o| o.stdout_str().contains("run-4"))
            .run()
            .await
            .unwrap();
        assert_eq!(out.stopped, StopReason::ByPredicate, "{choice}");
        assert_eq!((out.restarts, runs(&counter)), (3, 4), "{choice}");
    }
    suite.end().await;
}

#[tokio::test]
async fn a_crash_loop_engages_the_storm_pause() {
    let suite = begin("a_crash_loop_engages_the_storm_pause").await;
    for choice in mechanisms() {
        let counter = TempPath::new("storm");
        let mut handle = sup(choice, sh(FLAKY).args([counter.as_str(), "100"]))
            .max_restarts(7)
            .storm_limit(3, Duration::from_secs(600))
            .storm_pause(Duration::from_millis(30))
            .start();
        let events = all_events(&mut handle).await;
        let out = handle.wait().await.unwrap();
        assert_eq!(out.stopped, StopReason::RestartsExhausted);
        // Eight crashes: the third and the sixth make a storm (the count
        // starts afresh after each), the last ends the supervision.
        let pauses: Vec<&SupervisorEvent> = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    SupervisorEvent::StormPause(_) | SupervisorEvent::BackingOff(_)
                )
            })
            .collect();
        let storms: Vec<usize> = pauses
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, SupervisorEvent::StormPause(_)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(pauses.len(), 7, "{choice}: {events:?}");
        assert_eq!(storms, [2, 5], "{choice}: {events:?}");
        assert_eq!(
            events.last(),
            Some(&SupervisorEvent::Stopped(StopReason::RestartsExhausted))
        );
    }
    suite.end().await;
}

#[tokio::test]
async fn a_stable_run_resets_the_backoff() {
    let suite = begin("a_stable_run_resets_the_backoff").await;
    for choice in mechanisms() {
        for reset in [false, true] {
            let mut s = Supervisor::new(sh("sleep 0.2; exit 1"))
                .mechanism(choice)
                .backoff(Duration::from_millis(10), 2.0)
                .jitter(0.0)
                .max_restarts(3);
            if reset {
                s = s.reset_after(Duration::from_millis(100));
            }
            let mut handle = s.start();
            let events = all_events(&mut handle).await;
            handle.wait().await.unwrap();
            let pauses: Vec<Duration> = events
                .iter()
                .filter_map(|e| match e {
                    SupervisorEvent::BackingOff(d) => Some(*d),
                    _ => None,
                })
                .collect();
            let ms = |n| Duration::from_millis(n);
            let want = if reset {
                vec![ms(10), ms(10), ms(10)]
            } else {
                vec![ms(10), ms(20), ms(40)]
            };
            assert_eq!(pauses, want, "{choice}: reset {reset}");
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_run_is_reaped_whole_before_the_next_starts() {
    let suite = begin("each_run_is_reaped_whole_before_the_next_starts").await;
    for choice in mechanisms() {
        let dir = TempPath::new("reap");
        std::fs::create_dir(dir.path()).unwrap();
        // Run n starts a grandchild, records it, and reports whether run
        // n-1's grandchild is still alive (gone or a zombie counts as gone).
        let script = r#"
            n=$(cat "$1/n" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1/n"
            if [ -f "$1/gc.$((n-1))" ]; then
                prev=$(cat "$1/gc.$((n-1))")
                st=$(cut -d' ' -f3 /proc/$prev/stat 2>/dev/null)
                if [ -n "$st" ] && [ "$st" != Z ]; then echo "$prev" >> "$1/alive"; fi
                echo checked >> "$1/checked"
            fi
            sleep 300 & echo $! > "$1/gc.$n"
            exit 1"#;
        let out = sup(choice, sh(script).arg(dir.as_str()))
            .max_restarts(3)
            .run()
            .await
            .unwrap();
        assert_eq!(out.restarts, 3);
        let checked = std::fs::read_to_string(dir.path().join("checked")).unwrap();
        assert_eq!(checked.lines().count(), 3, "{choice}");
        assert!(
            !dir.path().join("alive").exists(),
            "{choice}: a grandchild outlived its run: {:?}",
            std::fs::read_to_string(dir.path().join("alive"))
        );
        for n in 1..=4 {
            let pid: u32 = std::fs::read_to_string(dir.path().join(format!("gc.{n}")))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            assert!(pid_gone(pid), "{choice}: grandchild {pid} of run {n}");
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_ends_a_run_or_a_pause() {
    let suite = begin("cancellation_ends_a_run_or_a_pause").await;
    for choice in mechanisms() {
        // During a run: the tree dies at once.
        let token = CancelToken::new();
        let mut handle = sup(choice, sh("sleep 300 & sleep 300; wait"))
            .cancel_token(&token)
            .start();
        let SupervisorEvent::Started { pid, run: 1 } = next(&mut handle).await else {
            panic!("{choice}: first event")
        };
        token.cancel();
        let events = all_events(&mut handle).await;
        let out = handle.wait().await.unwrap();
        assert_eq!(out.stopped, StopReason::Cancelled, "{choice}: {events:?}");
        assert_eq!(out.restarts, 0);
        assert!(pid_gone(pid));

        // During a pause: no further run.
        let counter = TempPath::new("cancel-pause");
        let token = CancelToken::new();
        let mut handle = Supervisor::new(sh(FLAKY).args([counter.as_str(), "100"]))
            .mechanism(choice)
            .backoff(Duration::from_secs(300), 2.0)
            .cancel_token(&token)
            .start();
        loop {
            if let SupervisorEvent::BackingOff(_) = next(&mut handle).await {
                break;
            }
        }
        token.cancel();
        let out = tokio::time::timeout(DEADLINE, handle.wait())
            .await
            .expect("the pause ends")
            .unwrap();
        assert_eq!(out.stopped, StopReason::Cancelled);
        assert_eq!((out.restarts, runs(&counter)), (0, 1), "{choice}");

        // Dropping the handle kills the current run's tree.
        let mut handle = sup(choice, sh("sleep 300")).start();
        let SupervisorEvent::Started { pid, .. } = next(&mut handle).await else {
            panic!("{choice}: first event")
        };
        drop(handle);
        let deadline = std::time::Instant::now() + DEADLINE;
        while !pid_gone(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "{choice}: {pid} survived"
            );
            tokio::time::sleep(POLL).await;
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_gives_the_run_its_grace() {
    let suite = begin("a_graceful_stop_gives_the_run_its_grace").await;
    for choice in mechanisms() {
        let flag = TempPath::new("trap");
        let cmd =
            sh(r#"trap 'echo got-term; exit 0' TERM; touch "$1"; while :; do sleep 0.05; done"#)
                .arg(flag.as_str())
                .grace(Duration::from_secs(30));
        let mut handle = sup(choice, cmd).restart(Restart::Always).start();
        let SupervisorEvent::Started { .. } = next(&mut handle).await else {
            panic!("{choice}: first event")
        };
        let deadline = std::time::Instant::now() + DEADLINE;
        while !flag.path().exists() {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(POLL).await;
        }
        let out = handle.stop().await.unwrap();
        assert_eq!(out.stopped, StopReason::StopRequested, "{choice}");
        let last = out.final_output.expect("the stopped run's output");
        assert_eq!(last.outcome(), Outcome::Exited(0), "{choice}: {last:?}");
        assert_eq!(last.stdout_str(), "got-term\n");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_checks_pass_or_count_as_crashes() {
    let suite = begin("readiness_checks_pass_or_count_as_crashes").await;
    for choice in mechanisms() {
        // A line that comes.
        let mut handle = sup(choice, sh("echo starting; echo listening; exec sleep 300"))
            .ready_when_line(|l| l == "listening", DEADLINE)
            .start();
        let SupervisorEvent::Started { pid, .. } = next(&mut handle).await else {
            panic!("{choice}: start")
        };
        assert_eq!(next(&mut handle).await, SupervisorEvent::Ready { pid });
        let out = handle.stop().await.unwrap();
        assert_eq!(out.stopped, StopReason::StopRequested);

        // A line that never comes: killed, a crash, restarted.
        let mut handle = sup(choice, sh("echo starting; exec sleep 300"))
            .ready_when_line(|l| l == "listening", Duration::from_millis(200))
            .max_restarts(1)
            .start();
        let events = all_events(&mut handle).await;
        let out = handle.wait().await.unwrap();
        assert_eq!(
            out.stopped,
            StopReason::RestartsExhausted,
            "{choice}: {events:?}"
        );
        let unhealthy = events
            .iter()
            .filter(|e| matches!(e, SupervisorEvent::Unhealthy { .. }))
            .count();
        assert_eq!(unhealthy, 2, "{choice}: {events:?}");
        assert!(events
            .iter()
            .any(|e| matches!(e, SupervisorEvent::Exited { crashed: true, .. })));

        // A closure check, and a clean exit after passing it.
        let out = sup(choice, sh("sleep 0.1"))
            .ready_when(|| async { true }, DEADLINE)
            .run()
            .await
            .unwrap();
        assert_eq!(out.stopped, StopReason::PolicySatisfied, "{choice}");
        let out = sup(choice, sh("sleep 300"))
            .ready_when(|| async { false }, Duration::from_millis(100))
            .restart(Restart::Never)
            .run()
            .await
            .unwrap();
        assert_eq!(out.final_output.unwrap().outcome(), Outcome::Signalled(9));
    }
    suite.end().await;
}

/// A readiness line is a line the program wrote: the last piece of a line
/// cut by `max_line_bytes` (`<16 x>listening` at 16 bytes) is not taken
/// for `listening` (it was: the run was reported ready), and the line after
/// the cut one is offered as itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readiness_line_is_never_a_piece_of_a_cut_line() {
    let suite = begin("a_readiness_line_is_never_a_piece_of_a_cut_line").await;
    for choice in mechanisms() {
        for (script, ready) in [
            (
                "printf 'xxxxxxxxxxxxxxxxlistening\\n'; exec sleep 300",
                false,
            ),
            (
                "printf 'xxxxxxxxxxxxxxxxlistening\\n'; echo listening; exec sleep 300",
                true,
            ),
        ] {
            let mut handle = sup(choice, sh(script).max_line_bytes(16))
                .ready_when_line(|l| l == "listening", Duration::from_secs(1))
                .restart(Restart::Never)
                .start();
            let SupervisorEvent::Started { pid, .. } = next(&mut handle).await else {
                panic!("{choice}: start")
            };
            let ev = next(&mut handle).await;
            if ready {
                assert_eq!(ev, SupervisorEvent::Ready { pid }, "{choice}: {script}");
            } else {
                assert!(
                    matches!(ev, SupervisorEvent::Unhealthy { .. }),
                    "{choice}: {script}: {ev:?}"
                );
            }
            handle.stop().await.unwrap();
        }
    }
    suite.end().await;
}

/// A real server: after `$2` seconds it listens on 127.0.0.1:`$1` (perl is
/// part of every Debian system), prints `up`, and runs until killed.
const LISTENER: &str = r#"sleep "$2"; exec perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ARGV[0], Listen => 5, ReuseAddr => 1) or die "listen: $!"; $| = 1; print "up\n"; sleep 300' "$1""#;

/// A port nothing listens on now (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_port_check_sees_a_real_listener() {
    let suite = begin("the_port_check_sees_a_real_listener").await;
    for choice in mechanisms() {
        let port = free_port();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // Listening only after a while: the check waits for it.
        let mut handle = sup(choice, sh(LISTENER).args([&port.to_string(), "0.3"]))
            .ready_when_port(addr, DEADLINE)
            .start();
        let SupervisorEvent::Started { pid, .. } = next(&mut handle).await else {
            panic!("{choice}: the first event is the start")
        };
        assert_eq!(
            next(&mut handle).await,
            SupervisorEvent::Ready { pid },
            "{choice}"
        );
        // Ready means a connection succeeds now, to this very process.
        assert!(std::net::TcpStream::connect(addr).is_ok(), "{choice}");
        let out = handle.stop().await.unwrap();
        assert_eq!(out.stopped, StopReason::StopRequested, "{choice}");
        assert_gone(&[pid], "the stopped listener").await;

        // A server that never listens there: unhealthy, killed, a crash.
        let other = free_port();
        let out = sup(choice, sh(LISTENER).args([&other.to_string(), "0"]))
            .ready_when_port(addr, Duration::from_millis(300))
            .restart(Restart::Never)
            .run()
            .await
            .unwrap();
        assert_eq!(
            out.final_output.unwrap().outcome(),
            Outcome::Signalled(9),
            "{choice}"
        );
    }
    suite.end().await;
}

#[tokio::test]
async fn a_start_that_cannot_succeed_stops_at_once() {
    let suite = begin("a_start_that_cannot_succeed_stops_at_once").await;
    let not_exec = TempPath::new("not-executable");
    std::fs::write(not_exec.path(), "#!/bin/sh\nexit 0\n").unwrap();
    for choice in mechanisms() {
        for (cmd, kind) in [
            (
                Command::new("pkit-test-no-such-program"),
                pkit::ErrorKind::NotFound,
            ),
            (
                Command::new(not_exec.path()),
                pkit::ErrorKind::NotExecutable,
            ),
            (
                Command::new("true").current_dir("/nonexistent/pkit-test"),
                pkit::ErrorKind::CurrentDir,
            ),
        ] {
            let mut handle = sup(choice, cmd).start();
            let events = all_events(&mut handle).await;
            let out = handle.wait().await.unwrap();
            assert_eq!(out.stopped, StopReason::CannotStart, "{choice}: {events:?}");
            assert_eq!(out.restarts, 0);
            let error = out.final_error.unwrap();
            assert_eq!(error.kind(), kind, "{choice}");
            // The event says why, as the error does.
            assert_eq!(
                events,
                [
                    SupervisorEvent::SpawnFailed {
                        kind,
                        message: error.to_string()
                    },
                    SupervisorEvent::Stopped(StopReason::CannotStart)
                ],
                "{choice}"
            );
        }
    }
    suite.end().await;
}

// ---------------------------------------------------------------------------
// Hostile use (issue 13 audit): stops during pauses, escaping grandchildren,
// timeouts as crashes, huge output, a port that never opens, a dropped run.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_during_a_backoff_or_a_storm_pause_ends_it_at_once() {
    let suite = begin("a_graceful_stop_during_a_backoff_or_a_storm_pause_ends_it_at_once").await;
    for choice in mechanisms() {
        for storm in [false, true] {
            let counter = TempPath::new("stop-pause");
            let mut s = Supervisor::new(sh(FLAKY).args([counter.as_str(), "100"]))
                .mechanism(choice)
                .backoff(Duration::from_secs(300), 2.0);
            if storm {
                // The first crash is a storm: a 300 s pause.
                s = s
                    .storm_limit(1, Duration::from_secs(600))
                    .storm_pause(Duration::from_secs(300));
            }
            let mut handle = s.start();
            loop {
                match next(&mut handle).await {
                    SupervisorEvent::StormPause(_) if storm => break,
                    SupervisorEvent::BackingOff(_) if !storm => break,
                    SupervisorEvent::StormPause(_) | SupervisorEvent::BackingOff(_) => {
                        panic!("{choice}: the wrong kind of pause (storm {storm})")
                    }
                    _ => {}
                }
            }
            let out = tokio::time::timeout(DEADLINE, handle.stop())
                .await
                .expect("the stop ends the pause")
                .unwrap();
            assert_eq!(out.stopped, StopReason::StopRequested, "{choice}: {storm}");
            assert_eq!((out.restarts, runs(&counter)), (0, 1), "{choice}: {storm}");
            // The last run's result is still reported.
            assert_eq!(
                out.final_output.map(|o| o.outcome()),
                Some(Outcome::Exited(1)),
                "{choice}"
            );
        }
    }
    suite.end().await;
}

/// Run n reports whether run n-1's daemon is still alive, then starts a
/// daemon of its own — double fork (re-parented away from the run),
/// standard streams closed, and `setsid` when `$2` is 1, as a real daemon
/// does — and exits 1.
const DAEMONIZING: &str = r#"
    n=$(cat "$1/n" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1/n"
    if [ -f "$1/d.$((n-1))" ]; then
        prev=$(cat "$1/d.$((n-1))")
        st=$(cut -d' ' -f3 /proc/$prev/stat 2>/dev/null)
        if [ -n "$st" ] && [ "$st" != Z ]; then echo "$prev" >> "$1/alive"; fi
        echo checked >> "$1/checked"
    fi
    perl -MPOSIX -e '
        exit 0 if fork; POSIX::setsid() if $ARGV[1]; exit 0 if fork;
        open STDIN, "<", "/dev/null"; open STDOUT, ">", "/dev/null"; open STDERR, ">", "/dev/null";
        open my $f, ">", "$ARGV[0].tmp" or die; print $f "$$\n"; close $f;
        rename "$ARGV[0].tmp", $ARGV[0]; exec "sleep", "300"' "$1/d.$n" "$2"
    while [ ! -f "$1/d.$n" ]; do sleep 0.01; done
    exit 1"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonized_grandchild_is_gone_before_the_next_run() {
    let suite = begin("a_daemonized_grandchild_is_gone_before_the_next_run").await;
    for choice in mechanisms() {
        // A process group can't hold a descendant that calls setsid (the
        // documented escape, README "Mechanisms"): there
        // the daemon double-forks without it, which the group does catch.
        let setsid = if choice == MechanismChoice::Cgroup {
            "1"
        } else {
            "0"
        };
        let dir = TempPath::new("daemon");
        std::fs::create_dir(dir.path()).unwrap();
        let out = sup(choice, sh(DAEMONIZING).args([dir.as_str(), setsid]))
            .max_restarts(2)
            .run()
            .await
            .unwrap();
        assert_eq!(out.stopped, StopReason::RestartsExhausted, "{choice}");
        let daemons: Vec<u32> = (1..=3)
            .map(|n| {
                std::fs::read_to_string(dir.path().join(format!("d.{n}")))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap()
            })
            .collect();
        let _guard = KillOnDrop::new(daemons.clone());
        let checked = std::fs::read_to_string(dir.path().join("checked")).unwrap_or_default();
        assert_eq!(checked.lines().count(), 2, "{choice}");
        assert!(
            !dir.path().join("alive").exists(),
            "{choice}: a daemon outlived its run into the next: {:?}",
            std::fs::read_to_string(dir.path().join("alive"))
        );
        for pid in &daemons {
            assert!(pid_gone(*pid), "{choice}: daemon {pid} survived");
        }
    }
    suite.end().await;
}

#[tokio::test]
async fn a_run_that_times_out_is_a_crash() {
    let suite = begin("a_run_that_times_out_is_a_crash").await;
    for choice in mechanisms() {
        // Each run's shell must write its line before the timeout: a try
        // where one had not (its start-up slow on a loaded machine) is
        // made again with the timeout doubled.
        let mut timeout = Duration::from_millis(100);
        let (events, out) = loop {
            let counter = TempPath::new("timeout-crash");
            let cmd = sh(r#"echo x >> "$1"; exec sleep 300"#)
                .arg(counter.as_str())
                .timeout(timeout)
                .grace(Duration::from_millis(100));
            let mut handle = sup(choice, cmd).max_restarts(1).start();
            let events = all_events(&mut handle).await;
            let out = handle.wait().await.unwrap();
            assert_eq!(
                out.stopped,
                StopReason::RestartsExhausted,
                "{choice}: {events:?}"
            );
            let lines = std::fs::read_to_string(counter.path()).unwrap_or_default();
            if lines.lines().count() == 2 || timeout >= Duration::from_secs(3) {
                assert_eq!(lines.lines().count(), 2, "{choice}: two runs");
                break (events, out);
            }
            timeout *= 2;
        };
        let crashes = events
            .iter()
            .filter(|e| matches!(e, SupervisorEvent::Exited { crashed: true, .. }))
            .count();
        assert_eq!(crashes, 2, "{choice}: {events:?}");
        let last = out.final_output.expect("the timed-out run's output");
        assert!(last.timed_out(), "{choice}: {last:?}");
    }
    suite.end().await;
}

#[tokio::test]
async fn huge_output_keeps_only_the_tail_in_final_output() {
    let suite = begin("huge_output_keeps_only_the_tail_in_final_output").await;
    for choice in mechanisms() {
        // 64 MiB of numbered lines on stdout and stderr each, then a crash.
        let script = r#"perl -e 'for (1..1_000_000) { printf STDOUT "o%058d\n", $_; printf STDERR "e%058d\n", $_ }'; exit 5"#;
        let out = sup(choice, sh(script))
            .restart(Restart::Never)
            .run()
            .await
            .unwrap();
        let last = out.final_output.expect("an output");
        assert_eq!(last.outcome(), Outcome::Exited(5), "{choice}");
        let (stdout, stderr) = (last.stdout(), last.stderr());
        assert!(
            stdout.len() <= 1 << 20 && stderr.len() <= 1 << 20,
            "{choice}: {} and {} bytes kept",
            stdout.len(),
            stderr.len()
        );
        let want_out = format!("o{:058}\n", 1_000_000);
        let want_err = format!("e{:058}\n", 1_000_000);
        assert!(stdout.ends_with(want_out.as_bytes()), "{choice}: the tail");
        assert!(stderr.ends_with(want_err.as_bytes()), "{choice}: the tail");
        assert!(stdout.len() > 1 << 19, "{choice}: a real tail is kept");
    }
    suite.end().await;
}

#[tokio::test]
async fn a_port_that_never_opens_is_a_crash_every_run() {
    let suite = begin("a_port_that_never_opens_is_a_crash_every_run").await;
    // Each mechanism at once (each its own port, counter and supervisor):
    // each waits out three health timeouts.
    all_at_once(mechanisms(), |choice| async move {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let counter = TempPath::new("port-never");
        let cmd = sh(r#"echo $$ >> "$1"; sleep 300 & wait"#).arg(counter.as_str());
        // Long enough for a loaded machine's shell to write its pid before
        // the health timeout kills it (200 ms lost one now and then).
        let mut handle = sup(choice, cmd)
            .ready_when_port(addr, Duration::from_secs(1))
            .max_restarts(2)
            .start();
        let events = all_events(&mut handle).await;
        let out = handle.wait().await.unwrap();
        assert_eq!(
            out.stopped,
            StopReason::RestartsExhausted,
            "{choice}: {events:?}"
        );
        let unhealthy = events
            .iter()
            .filter(|e| matches!(e, SupervisorEvent::Unhealthy { .. }))
            .count();
        let crashed = events
            .iter()
            .filter(|e| matches!(e, SupervisorEvent::Exited { crashed: true, .. }))
            .count();
        assert_eq!((unhealthy, crashed), (3, 3), "{choice}: {events:?}");
        let pids: Vec<u32> = std::fs::read_to_string(counter.path())
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(pids.len(), 3, "{choice}");
        assert_gone(&pids, "the unhealthy runs").await;
    })
    .await;
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_run_future_kills_the_current_tree() {
    let suite = begin("dropping_the_run_future_kills_the_current_tree").await;
    for choice in mechanisms() {
        let file = TempPath::new("drop-run");
        let cmd = sh(TREE_TO_FILE).arg(file.as_str());
        let run = tokio::spawn(sup(choice, cmd).run());
        let deadline = std::time::Instant::now() + DEADLINE;
        let pids = loop {
            let text = std::fs::read_to_string(file.path()).unwrap_or_default();
            if text.contains("done") {
                break pid_lines(&text);
            }
            assert!(std::time::Instant::now() < deadline, "{choice}: the tree");
            tokio::time::sleep(POLL).await;
        };
        assert_eq!(pids.len(), 3, "{choice}");
        run.abort();
        assert!(run.await.unwrap_err().is_cancelled());
        assert_gone(&pids, "the dropped supervision's tree").await;
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_a_graceful_stop_cuts_the_grace_short() {
    let suite = begin("a_cancel_during_a_graceful_stop_cuts_the_grace_short").await;
    for choice in mechanisms() {
        let file = TempPath::new("stubborn");
        // Ignores SIGTERM, with a grandchild that ignores it too.
        let cmd = sh(r#"trap '' TERM; (trap '' TERM; sleep 300) & echo $! >> "$1"; echo $$ >> "$1"; echo done >> "$1"; while :; do sleep 0.05; done"#)
            .arg(file.as_str())
            .grace(Duration::from_secs(600));
        let token = CancelToken::new();
        let handle = sup(choice, cmd).cancel_token(&token).start();
        let deadline = std::time::Instant::now() + DEADLINE;
        let pids = loop {
            let text = std::fs::read_to_string(file.path()).unwrap_or_default();
            if text.contains("done") {
                break pid_lines(&text);
            }
            assert!(std::time::Instant::now() < deadline, "{choice}: the tree");
            tokio::time::sleep(POLL).await;
        };
        let stop = tokio::spawn(handle.stop());
        // The stop's SIGTERM is ignored: the grace (600 s) is running.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!stop.is_finished(), "{choice}: the grace is running");
        token.cancel();
        let out = tokio::time::timeout(DEADLINE, stop)
            .await
            .expect("the cancel ends the grace")
            .unwrap()
            .unwrap();
        assert_eq!(out.stopped, StopReason::Cancelled, "{choice}");
        assert_eq!(
            out.final_output.map(|o| o.outcome()),
            Some(Outcome::Signalled(9)),
            "{choice}"
        );
        assert_gone(&pids, "the stubborn tree").await;
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_cap_is_30_seconds_and_on_crash_the_default_policy() {
    let suite = begin("the_default_cap_is_30_seconds_and_on_crash_the_default_policy").await;
    assert_eq!(pkit::DEFAULT_MAX_BACKOFF, Duration::from_secs(30));
    assert_eq!(Restart::default(), Restart::OnCrash);
    for choice in mechanisms() {
        // 1 ms, then 1 s, then 1000 s: capped at the default 30 s. The
        // pause is reported before it is waited, then stopped.
        let mut handle = Supervisor::new(sh("exit 1"))
            .mechanism(choice)
            .backoff(Duration::from_millis(1), 1000.0)
            .jitter(0.0)
            .start();
        let mut pauses = Vec::new();
        while pauses.len() < 3 {
            if let SupervisorEvent::BackingOff(d) = next(&mut handle).await {
                pauses.push(d);
            }
        }
        let ms = Duration::from_millis;
        assert_eq!(pauses, [ms(1), ms(1000), ms(30_000)], "{choice}");
        let out = tokio::time::timeout(DEADLINE, handle.stop())
            .await
            .expect("the stop ends the pause")
            .unwrap();
        assert_eq!(out.stopped, StopReason::StopRequested);
        assert_eq!(out.restarts, 2, "{choice}");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_server_that_keeps_logging_is_not_stalled() {
    let suite = begin("a_ready_server_that_keeps_logging_is_not_stalled").await;
    for choice in mechanisms() {
        // Ready, then 32 MiB of lines nobody reads, then a clean exit: the
        // line stream must drop them, not block the program's writes.
        let script = r#"echo ready; perl -e 'for (1..500_000) { printf "l%062d\n", $_ }'; exit 0"#;
        let mut handle = sup(choice, sh(script))
            .ready_when_line(|l| l == "ready", DEADLINE)
            .start();
        let events = tokio::time::timeout(DEADLINE * 6, all_events(&mut handle))
            .await
            .expect("the run ends");
        let out = handle.wait().await.unwrap();
        assert_eq!(
            out.stopped,
            StopReason::PolicySatisfied,
            "{choice}: {events:?}"
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, SupervisorEvent::Ready { .. })),
            "{choice}: {events:?}"
        );
        assert_eq!(
            out.final_output.unwrap().outcome(),
            Outcome::Exited(0),
            "{choice}"
        );
    }
    suite.end().await;
}

/// A handle nobody reads events from holds at most `EVENT_BUFFER` of them:
/// the oldest go first, are counted, and the end is still there. Before,
/// the queue was unbounded, so a long crash loop under a handle whose
/// events were never read grew the owner's memory without end.
#[tokio::test]
async fn unread_events_are_bounded_oldest_dropped_first() {
    let suite = begin("supervise_event_bound").await;
    for choice in mechanisms() {
        let runs = 400u32;
        // Each run appends a line: the wait below is bounded by a lack of
        // progress, not by how fast 400 runs go on a loaded machine.
        let file = TempPath::new("event-bound-runs");
        let mut handle =
            Supervisor::new(Command::new("sh").args(["-c", "echo >> \"$1\"", "sh", file.as_str()]))
                .mechanism(choice)
                .restart(Restart::Always)
                .backoff(Duration::ZERO, 1.0)
                .max_backoff(Duration::ZERO)
                .max_restarts(runs - 1)
                .start();
        // Two events a run at least: the bound is passed before the end.
        let (mut seen, mut progress) = (0, std::time::Instant::now());
        while handle.events_dropped() == 0 {
            let done = std::fs::read_to_string(file.path())
                .unwrap_or_default()
                .lines()
                .count();
            if done > seen {
                (seen, progress) = (done, std::time::Instant::now());
            }
            assert!(
                progress.elapsed() < DEADLINE,
                "{choice}: no event dropped, and no new run for {DEADLINE:?} after {seen} of {runs}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let events = all_events(&mut handle).await;
        assert!(
            !matches!(events[0], SupervisorEvent::Started { run: 1, .. }),
            "{choice}: the oldest event was kept"
        );
        let started: Vec<u32> = events
            .iter()
            .filter_map(|e| match e {
                SupervisorEvent::Started { run, .. } => Some(*run),
                _ => None,
            })
            .collect();
        assert_eq!(started.last(), Some(&runs), "{choice}");
        assert!(
            started.windows(2).all(|w| w[1] == w[0] + 1),
            "{choice}: {started:?}"
        );
        assert_eq!(
            events.last(),
            Some(&SupervisorEvent::Stopped(StopReason::RestartsExhausted)),
            "{choice}"
        );
        assert!(handle.next_event().await.is_none());
        assert!(events.len() as u64 + handle.events_dropped() >= 2 * u64::from(runs));
        assert!(handle.events_dropped() > 0);
        handle.wait().await.expect("supervision");
    }
    suite.end().await;
}

#[tokio::test]
async fn a_pause_too_long_to_jitter_is_capped_not_a_panic() {
    let suite = begin("a_pause_too_long_to_jitter_is_capped_not_a_panic").await;
    for choice in mechanisms() {
        // After a crash (the backoff) and after a clean run under Always
        // (the initial pause): both are jittered, and a pause near
        // Duration::MAX times a factor above 1 overflows a Duration. The
        // factor is random (above 1 half the time): try a few times.
        let cases = [("exit 3", Restart::OnCrash); 6]
            .into_iter()
            .chain([("exit 0", Restart::Always); 2]);
        for (script, restart) in cases {
            let mut handle = Supervisor::new(sh(script))
                .mechanism(choice)
                .backoff(Duration::MAX, 2.0)
                .max_backoff(Duration::MAX)
                .jitter(0.5)
                .restart(restart)
                .start();
            loop {
                if let SupervisorEvent::BackingOff(d) = next(&mut handle).await {
                    assert!(d > Duration::from_secs(1 << 40), "{choice}: {d:?}");
                    break;
                }
            }
            let out = tokio::time::timeout(DEADLINE, handle.stop())
                .await
                .expect("the stop ends the pause")
                .expect("no panic, no error");
            assert_eq!(out.stopped, StopReason::StopRequested, "{choice}: {script}");
        }
    }
    suite.end().await;
}

/// A supervision that gives up on a run that exited 0 before it was ready
/// does not look like a success: the outcome says the last run was
/// unhealthy and a crash, though its exit code is 0. A clean run, and a
/// run a stop ended, are not crashes.
#[tokio::test]
async fn giving_up_on_an_unhealthy_clean_exit_is_a_crash() {
    let suite = begin("giving_up_on_an_unhealthy_clean_exit_is_a_crash").await;
    for choice in mechanisms() {
        let out = sup(choice, sh("exit 0"))
            .ready_when_line(|l| l == "ready", DEADLINE)
            .max_restarts(1)
            .run()
            .await
            .unwrap();
        assert_eq!(out.stopped, StopReason::RestartsExhausted, "{choice}");
        assert_eq!(out.restarts, 1, "{choice}");
        assert!(out.final_output.as_ref().unwrap().success(), "{choice}");
        assert!(out.final_unhealthy, "{choice}: {out:?}");
        assert!(out.final_crashed, "{choice}: {out:?}");

        let out = sup(choice, sh("echo ready"))
            .ready_when_line(|l| l == "ready", DEADLINE)
            .run()
            .await
            .unwrap();
        assert_eq!(out.stopped, StopReason::PolicySatisfied, "{choice}");
        assert!(
            !out.final_unhealthy && !out.final_crashed,
            "{choice}: {out:?}"
        );

        let out = sup(choice, sh("exit 3"))
            .restart(Restart::Never)
            .run()
            .await
            .unwrap();
        assert!(
            !out.final_unhealthy && out.final_crashed,
            "{choice}: {out:?}"
        );

        let mut handle = sup(choice, sh("exec sleep 300")).start();
        assert!(matches!(
            next(&mut handle).await,
            SupervisorEvent::Started { .. }
        ));
        let out = handle.stop().await.unwrap();
        assert_eq!(out.stopped, StopReason::StopRequested, "{choice}");
        assert!(
            !out.final_crashed,
            "{choice}: a stop is not a crash: {out:?}"
        );
    }
    suite.end().await;
}

/// `request_stop` keeps the handle: the stopped run's exit comes as an
/// event, not a crash though SIGTERM ended it, then `Stopped`; a run that
/// kills itself with the same signal is a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_is_no_crash_and_its_exit_is_an_event() {
    let suite = begin("a_stopped_run_is_no_crash_and_its_exit_is_an_event").await;
    for choice in mechanisms() {
        let mut handle = sup(choice, sh("exec sleep 300")).start();
        let SupervisorEvent::Started { pid, .. } = next(&mut handle).await else {
            panic!("{choice}: first event")
        };
        handle.request_stop();
        handle.request_stop();
        let events = all_events(&mut handle).await;
        assert_eq!(
            events,
            [
                SupervisorEvent::Exited {
                    pid,
                    outcome: Outcome::Signalled(libc::SIGTERM),
                    crashed: false,
                },
                SupervisorEvent::Stopped(StopReason::StopRequested),
            ],
            "{choice}"
        );
        let out = handle.wait().await.unwrap();
        assert_eq!(out.stopped, StopReason::StopRequested, "{choice}");
        assert!(!out.final_crashed, "{choice}: {out:?}");
        assert_gone(&[pid], "the stopped run").await;

        let mut handle = sup(choice, sh("kill -TERM $$"))
            .restart(Restart::Never)
            .start();
        let events = all_events(&mut handle).await;
        assert!(
            events.iter().any(|e| matches!(
                e,
                SupervisorEvent::Exited {
                    outcome: Outcome::Signalled(libc::SIGTERM),
                    crashed: true,
                    ..
                }
            )),
            "{choice}: {events:?}"
        );
        assert!(handle.wait().await.unwrap().final_crashed, "{choice}");
    }
    suite.end().await;
}

/// Outside a Tokio runtime, `start` does not panic and runs nothing: the
/// events end at once and `wait` says why, as a typed error.
#[test]
fn start_outside_a_runtime_is_a_typed_error_not_a_panic() {
    let marker = TempPath::new("sup-no-runtime");
    let handle = std::panic::catch_unwind(|| {
        Supervisor::new(Command::new("touch").arg(marker.as_str())).start()
    })
    .unwrap_or_else(|_| panic!("start panicked outside a runtime"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (event, result) = rt.block_on(async move {
        let mut handle = handle;
        let event = handle.next_event().await;
        (event, handle.wait().await)
    });
    assert_eq!(event, None);
    let err = result.expect_err("refused");
    assert_eq!(err.kind(), pkit::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("Tokio runtime"), "{err}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!marker.path().exists(), "the program ran");
    // `stop` says the same.
    let handle = Supervisor::new(Command::new("true")).start();
    let err = rt.block_on(handle.stop()).expect_err("refused");
    assert_eq!(err.kind(), pkit::ErrorKind::InvalidInput, "{err}");
}

#[tokio::test]
async fn an_exit_code_the_command_accepts_is_a_clean_run() {
    let suite = begin("an_exit_code_the_command_accepts_is_a_clean_run").await;
    // Run 1 exits 1 (a crash), later runs exit 3, which the command
    // accepts: the supervision ends after one restart, on a clean run.
    let script = r#"n=$(cat "$1" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1"; [ $n -ge 2 ] && exit 3; exit 1"#;
    for choice in mechanisms() {
        let counter = TempPath::new("okcodes");
        let mut handle = sup(choice, sh(script).arg(counter.as_str()).ok_codes([0, 3]))
            .max_restarts(4)
            .start();
        let crashed: Vec<bool> = all_events(&mut handle)
            .await
            .into_iter()
            .filter_map(|e| match e {
                SupervisorEvent::Exited { crashed, .. } => Some(crashed),
                _ => None,
            })
            .collect();
        let out = handle.wait().await.unwrap();
        assert_eq!(out.stopped, StopReason::PolicySatisfied, "{choice}");
        assert_eq!((out.restarts, runs(&counter)), (1, 2), "{choice}");
        assert_eq!(crashed, [true, false], "{choice}");
        assert!(!out.final_crashed, "{choice}");
        assert_eq!(out.final_output.unwrap().outcome(), Outcome::Exited(3));

        // Exit 0 is no longer accepted when the codes leave it out.
        let out = sup(choice, Command::new("true").ok_codes([3]))
            .max_restarts(1)
            .run()
            .await
            .unwrap();
        assert_eq!(out.stopped, StopReason::RestartsExhausted, "{choice}");
        assert!(out.final_crashed, "{choice}");
    }
    suite.end().await;
}

/// A command's retry policy would be ignored by a supervisor (which
/// restarts by its own policy): refused before anything runs, from `run`
/// and from a started handle alike.
#[tokio::test]
async fn a_retry_policy_is_refused_not_ignored() {
    for choice in mechanisms() {
        let counter = TempPath::new("sup-retry");
        let retried =
            sh(FLAKY)
                .arg(counter.as_str())
                .arg("1")
                .retry(3, Duration::from_millis(1), |_| true);
        let e = sup(choice, retried.clone()).run().await.unwrap_err();
        assert_eq!(e.kind(), pkit::ErrorKind::InvalidInput, "{choice}: {e}");
        let e = sup(choice, retried).start().wait().await.unwrap_err();
        assert_eq!(e.kind(), pkit::ErrorKind::InvalidInput, "{choice}: {e}");
        assert_eq!(runs(&counter), 0, "{choice}: nothing ran");
    }
}

/// Polls `file` until it has a line `line`.
async fn wait_for_line(file: &TempPath, line: &str, what: &str) {
    let deadline = std::time::Instant::now() + DEADLINE * 3;
    loop {
        let text = std::fs::read_to_string(file.path()).unwrap_or_default();
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: no line {line:?} in {text:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// How many lines `line` the file has.
fn lines_of(file: &TempPath, line: &str) -> usize {
    std::fs::read_to_string(file.path())
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == line)
        .count()
}

/// Traps USR1 (a line `usr1` in `$1`), starts a `sleep 300` helper, and
/// writes the helper's pid, its own, then `done` to `$1`; then runs on.
const TRAPS_USR1: &str = r#"trap 'echo usr1 >> "$1"' USR1; sleep 300 & echo $! >> "$1"; echo $$ >> "$1"; echo done >> "$1"; while :; do sleep 0.05; done"#;

/// `SupervisorHandle::signal_program` signals the current run's program,
/// not its helpers (USR1 would end a `sleep`), and only while it runs:
/// before the first start, once the program has exited and been reaped
/// (its `Exited` event not read yet), during the backoff pause and after
/// the end nothing is sent and the answer is `None`. A program the signal
/// ends crashed.
#[tokio::test]
async fn signal_program_reaches_the_current_runs_program_only_while_it_runs() {
    let suite = begin("signal_program_reaches_the_current_runs_program_only_while_it_runs").await;
    for choice in mechanisms() {
        let file = TempPath::new("sigprog");
        let mut handle = sup(choice, sh(TRAPS_USR1).arg(file.as_str()))
            .restart(Restart::Always)
            .backoff(Duration::from_secs(300), 1.0)
            .max_backoff(Duration::from_secs(300))
            .start();
        // This (current-thread) test has not let the supervising task run
        // yet: nothing started.
        assert_eq!(
            handle.signal_program(pkit::Signal::Usr1).unwrap(),
            None,
            "{choice}: before the first start"
        );
        let SupervisorEvent::Started { pid, run: 1 } = next(&mut handle).await else {
            panic!("{choice}: the first event is the start")
        };
        let pids = file.wait_pids().await;
        let helper = pids[0];
        assert_eq!(pids[1], pid, "{choice}: the program is the run's");
        assert_eq!(
            handle.signal_program(pkit::Signal::Usr1).unwrap(),
            Some(pid),
            "{choice}: a run going on"
        );
        wait_for_line(&file, "usr1", &format!("{choice}: the program's trap")).await;
        assert_alive(&[pid, helper], &format!("{choice}: the program only"));
        // SIGTERM ends the program (no trap): a crash, then the pause.
        assert_eq!(
            handle.signal_program(pkit::Signal::Term).unwrap(),
            Some(pid),
            "{choice}"
        );
        // Reaped by the supervisor (its zombie gone), its exit not read.
        let deadline = std::time::Instant::now() + DEADLINE * 3;
        while stat(pid).is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "{choice}: {pid} never reaped"
            );
            tokio::time::sleep(POLL).await;
        }
        assert_eq!(
            handle.signal_program(pkit::Signal::Usr1).unwrap(),
            None,
            "{choice}: a reaped program, its exit unread"
        );
        assert_eq!(
            next(&mut handle).await,
            SupervisorEvent::Exited {
                pid,
                outcome: Outcome::Signalled(libc::SIGTERM),
                crashed: true,
            },
            "{choice}"
        );
        assert!(
            matches!(next(&mut handle).await, SupervisorEvent::BackingOff(_)),
            "{choice}"
        );
        assert_eq!(
            handle.signal_program(pkit::Signal::Usr1).unwrap(),
            None,
            "{choice}: between runs"
        );
        handle.request_stop();
        let events = all_events(&mut handle).await;
        assert_eq!(
            events,
            [SupervisorEvent::Stopped(StopReason::StopRequested)],
            "{choice}"
        );
        assert_eq!(
            handle.signal_program(pkit::Signal::Usr1).unwrap(),
            None,
            "{choice}: after the end"
        );
        let out = handle.wait().await.unwrap();
        assert_eq!(out.restarts, 0, "{choice}");
        assert_eq!(lines_of(&file, "usr1"), 1, "{choice}: one USR1 got through");
        assert_gone(&[pid, helper], &format!("{choice}: the run's tree")).await;
    }
    suite.end().await;
}

/// In a stop's grace held by a helper that ignores the stop's SIGTERM, a
/// program that has exited on it is no program to signal, though its run
/// has not ended (no `Exited` yet): `None`, and nothing is sent.
#[tokio::test]
async fn signal_program_skips_a_program_that_exited_in_its_stops_grace() {
    let suite = begin("signal_program_skips_a_program_that_exited_in_its_stops_grace").await;
    for choice in mechanisms() {
        let file = TempPath::new("sigprog-exited");
        // The helper writes its pid once it ignores SIGTERM; the program
        // waits for that, then writes its own.
        let script = r#"sh -c 'trap "" TERM; echo $$ >> "$1"; exec sleep 300' sh "$1" & until [ -s "$1" ]; do sleep 0.01; done; echo $$ >> "$1"; echo done >> "$1"; while :; do sleep 0.05; done"#;
        let token = CancelToken::new();
        // A grace no loaded machine outlasts; the token ends it.
        let cmd = sh(script)
            .arg(file.as_str())
            .grace(Duration::from_secs(300));
        let mut handle = sup(choice, cmd).cancel_token(&token).start();
        let SupervisorEvent::Started { pid, .. } = next(&mut handle).await else {
            panic!("{choice}: the first event is the start")
        };
        let pids = file.wait_pids().await;
        assert_eq!(pids[1], pid, "{choice}");
        handle.request_stop();
        let deadline = std::time::Instant::now() + DEADLINE * 3;
        while stat(pid).is_some_and(|s| s.state != 'Z') {
            assert!(
                std::time::Instant::now() < deadline,
                "{choice}: the program never exited on the stop's SIGTERM"
            );
            tokio::time::sleep(POLL).await;
        }
        assert_eq!(
            handle.signal_program(pkit::Signal::Usr1).unwrap(),
            None,
            "{choice}: its program exited, its run in the grace"
        );
        assert_alive(&pids[..1], &format!("{choice}: the helper, in the grace"));
        token.cancel();
        let events = all_events(&mut handle).await;
        assert_eq!(
            events,
            [
                SupervisorEvent::Exited {
                    pid,
                    outcome: Outcome::Signalled(libc::SIGTERM),
                    crashed: false,
                },
                SupervisorEvent::Stopped(StopReason::Cancelled),
            ],
            "{choice}"
        );
        handle.wait().await.unwrap();
        assert_gone(&pids[..1], &format!("{choice}: the helper")).await;
    }
    suite.end().await;
}

/// A run in the grace of a stop is still the current run: a signal sent
/// then reaches its program (which here exits on it, cleanly, ending the
/// stop before its grace does).
#[tokio::test]
async fn signal_program_reaches_a_run_in_its_stops_grace() {
    let suite = begin("signal_program_reaches_a_run_in_its_stops_grace").await;
    for choice in mechanisms() {
        let file = TempPath::new("sigprog-grace");
        let script = r#"trap 'echo term >> "$1"' TERM; trap 'echo usr1 >> "$1"; exit 0' USR1; echo $$ >> "$1"; echo done >> "$1"; while :; do sleep 0.05; done"#;
        // A grace no loaded machine outlasts.
        let cmd = sh(script)
            .arg(file.as_str())
            .grace(Duration::from_secs(300));
        let mut handle = sup(choice, cmd).start();
        let SupervisorEvent::Started { pid, .. } = next(&mut handle).await else {
            panic!("{choice}: the first event is the start")
        };
        assert_eq!(file.wait_pids().await, [pid], "{choice}");
        handle.request_stop();
        wait_for_line(&file, "term", &format!("{choice}: the stop's SIGTERM")).await;
        assert_eq!(
            handle.signal_program(pkit::Signal::Usr1).unwrap(),
            Some(pid),
            "{choice}: in the grace"
        );
        let events = all_events(&mut handle).await;
        assert_eq!(
            events,
            [
                SupervisorEvent::Exited {
                    pid,
                    outcome: Outcome::Exited(0),
                    crashed: false,
                },
                SupervisorEvent::Stopped(StopReason::StopRequested),
            ],
            "{choice}"
        );
        let out = handle.wait().await.unwrap();
        assert_eq!(out.stopped, StopReason::StopRequested, "{choice}");
        assert_eq!(lines_of(&file, "usr1"), 1, "{choice}");
    }
    suite.end().await;
}

/// The blocking handle's `signal_program` is the async one's.
#[test]
fn signal_program_blocking() {
    in_suite("signal_program_blocking", || {
        for choice in mechanisms() {
            let file = TempPath::new("sigprog-blocking");
            let mut handle = sup(choice, sh(TRAPS_USR1).arg(file.as_str()))
                .blocking()
                .start();
            let Some(SupervisorEvent::Started { pid, .. }) = handle.next_event() else {
                panic!("{choice}: the first event is the start")
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let pids = rt.block_on(file.wait_pids());
            assert_eq!(pids[1], pid, "{choice}");
            assert_eq!(
                handle.signal_program(pkit::Signal::Usr1).unwrap(),
                Some(pid),
                "{choice}"
            );
            rt.block_on(wait_for_line(&file, "usr1", &format!("{choice}: blocking")));
            handle.request_stop();
            while handle.next_event().is_some() {}
            assert_eq!(
                handle.signal_program(pkit::Signal::Usr1).unwrap(),
                None,
                "{choice}: after the end"
            );
            let out = handle.wait().unwrap();
            assert_eq!(out.stopped, StopReason::StopRequested, "{choice}");
            rt.block_on(assert_gone(&pids, &format!("{choice}: blocking")));
        }
    });
}
