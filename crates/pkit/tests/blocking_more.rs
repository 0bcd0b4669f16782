//! The blocking twins added after the first facade: the rest of Group's
//! methods (sample_stats as an Iterator, name, description, guarded,
//! limits, is_suspended), RunningProcess's wait_for/profile/cpu_time,
//! output_unordered as an Iterator, CliClient and Supervisor — from a
//! plain thread, in both mechanisms, and refused inside a runtime.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pkit::{
    blocking, CliClient, Command, Group, Outcome, StopReason, Supervisor, SupervisorEvent,
    SystemRunner,
};

/// Runs a test body on a plain thread (no runtime entered), bracketed by
/// the suite's begin/end on a throwaway runtime.
fn plain(name: &'static str, body: impl FnOnce()) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin(name));
    body();
    rt.block_on(suite.end());
}

fn wait_gone_blocking(pids: &[u32], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while pids.iter().any(|&p| !pid_gone(p)) {
        assert!(Instant::now() < deadline, "{what}: {pids:?} still alive");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn blocking_group(choice: pkit::MechanismChoice) -> blocking::Group {
    blocking::Group::with(Group::builder().mechanism(choice).name("io-test")).expect("group")
}

#[test]
fn a_blocking_group_has_every_method_of_the_async_one() {
    plain("a_blocking_group_has_every_method_of_the_async_one", || {
        for choice in mechanisms() {
            let group = blocking_group(choice);
            assert_eq!(group.name(), Some("io-test"), "{choice}");
            assert_eq!(group.description(), group.as_async().description());
            assert_eq!(group.guarded(), group.as_async().guarded());
            assert!(group.limits().is_empty(), "no caps asked");
            let p = group
                .start(&Command::new("sh").args(["-c", "sleep 0.3; echo $$"]))
                .expect("start");
            group.suspend().expect("suspend");
            assert!(group.is_suspended(), "{choice}");
            group.resume().expect("resume");
            assert!(!group.is_suspended(), "{choice}");
            // Snapshots until the group is empty: the last shows none.
            let samples: Vec<pkit::Stats> = group
                .sample_stats(Duration::from_millis(20))
                .collect::<pkit::Result<_>>()
                .expect("stats");
            assert!(!samples.is_empty(), "{choice}");
            assert!(
                samples.first().expect("one").active_processes() >= 1,
                "{choice}: the sh was running"
            );
            assert_eq!(samples.last().expect("one").active_processes(), 0);
            wait_gone_blocking(&[p.pid()], "sampled to its end");
        }
    });
}

#[test]
fn a_blocking_process_waits_for_a_check_and_profiles() {
    plain("a_blocking_process_waits_for_a_check_and_profiles", || {
        for choice in mechanisms() {
            let group = blocking_group(choice);
            let marker = TempPath::new("wait-for");
            let mut p = group
                .start(&Command::new("sh").args([
                    "-c",
                    "sleep 0.2; : > \"$1\"; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
                    "sh",
                    &marker.path().display().to_string(),
                ]))
                .expect("start");
            p.wait_for(|| marker.path().exists(), Duration::from_secs(10))
                .expect("the file appears");
            let profile = p.profile(Duration::from_millis(10)).expect("profile");
            assert!(profile.samples() >= 1, "{choice}");
            assert!(p.has_exited());
            if choice == pkit::MechanismChoice::Portable {
                // Its exit is read with waitid(WNOWAIT), which reports no
                // usage off Linux: the model's count-only column.
                eprintln!("skipped on the portable backend: no CPU time or peak memory at exit");
            } else {
                assert!(p.cpu_time().is_some(), "{choice}: from the kernel at exit");
                assert!(p.peak_memory_bytes().is_some_and(|b| b > 0), "{choice}");
            }
            assert_eq!(p.wait().expect("wait").outcome(), Outcome::Exited(0));
            // A check that never passes: NotReady once the process exits.
            let p = group
                .start(&Command::new("sh").args(["-c", "exit 2"]))
                .expect("start");
            let err = p
                .wait_for(|| false, Duration::from_secs(10))
                .expect_err("never ready");
            assert!(err.is_not_ready(), "{err}");
        }
    });
}

#[test]
fn output_unordered_iterates_in_completion_order_and_drop_cancels() {
    plain(
        "output_unordered_iterates_in_completion_order_and_drop_cancels",
        || {
            for choice in mechanisms() {
                let cmds = vec![sh(choice, "sleep 0.5; echo slow"), sh(choice, "echo fast")];
                let mut done = blocking::output_unordered(cmds, 2);
                assert_eq!(done.len(), 2);
                let (first, out) = done.next().expect("one");
                assert_eq!(first, 1, "{choice}: the fast one first");
                assert_eq!(out.expect("ok").stdout_str(), "fast\n");
                let (second, _) = done.next().expect("two");
                assert_eq!(second, 0);
                assert!(done.next().is_none());

                // Dropping the iterator ends what still runs.
                let pids = TempPath::new("unordered-pids");
                let path = pids.path().display().to_string();
                let cmds = vec![
                    sh(
                        choice,
                        "echo $$ >> \"$1\"; sleep 300 & echo $! >> \"$1\"; wait",
                    )
                    .arg(&path),
                    sh(choice, "exit 0"),
                ];
                let mut done = blocking::output_unordered(cmds, 2);
                let (i, _) = done.next().expect("the quick one");
                assert_eq!(i, 1, "{choice}");
                let deadline = Instant::now() + Duration::from_secs(10);
                let started = loop {
                    let text = std::fs::read_to_string(pids.path()).unwrap_or_default();
                    let got = pid_lines(&text);
                    if got.len() == 2 {
                        break got;
                    }
                    assert!(Instant::now() < deadline, "{choice}: pids written");
                    std::thread::sleep(Duration::from_millis(20));
                };
                let _guard = KillOnDrop::new(started.clone());
                drop(done);
                wait_gone_blocking(&started, "the batch dropped");
            }
        },
    );
}

#[test]
fn a_client_blocks() {
    plain("a_client_blocks", || {
        for choice in mechanisms() {
            let client = CliClient::new("sh")
                .arg("-c")
                .append_env("PKIT_IO_TEST", "v")
                .with_runner(Arc::new(SystemRunner::with_mechanism(choice)));
            let calls = client.blocking();
            assert_eq!(calls.run(["echo $PKIT_IO_TEST"]).expect("run"), "v");
            let out = calls.output(["echo e >&2; exit 3"]).expect("output");
            assert_eq!(
                (out.code(), out.mechanism()),
                (Some(3), expected_mechanism(choice))
            );
            assert_eq!(calls.exit_code(["exit 5"]).expect("code"), 5);
            assert!(!calls.probe(["exit 1"]).expect("probe"));
            let err = calls.run(["echo oops >&2; exit 1"]).expect_err("fails");
            assert!(err.to_string().ends_with("oops"), "{err}");
        }
    });
}

#[test]
fn a_supervisor_blocks() {
    plain("a_supervisor_blocks", || {
        for choice in mechanisms() {
            let counter = TempPath::new("restarts");
            // Fails twice, then succeeds: two restarts under OnCrash.
            let script = r#"echo x >> "$1"; [ "$(wc -l < "$1")" -ge 3 ]"#;
            let outcome = Supervisor::new(Command::new("sh").args([
                "-c",
                script,
                "sh",
                &counter.path().display().to_string(),
            ]))
            .backoff(Duration::from_millis(10), 1.0)
            .mechanism(choice)
            .blocking()
            .run()
            .expect("supervise");
            assert_eq!(outcome.stopped, StopReason::PolicySatisfied, "{choice}");
            assert_eq!(outcome.restarts, 2);

            // Started in the background: events block, stop ends the tree.
            let mut handle = Supervisor::new(Command::new("sh").args([
                "-c",
                "sleep 300 & echo $! > \"$1\"; wait",
                "sh",
                &counter.path().display().to_string(),
            ]))
            .mechanism(choice)
            .blocking()
            .start();
            let Some(SupervisorEvent::Started { pid, run: 1 }) = handle.next_event() else {
                panic!("{choice}: the first event is the start");
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            let grandchild = loop {
                let text = std::fs::read_to_string(counter.path()).unwrap_or_default();
                if let Some(&p) = pid_lines(&text).first() {
                    break p;
                }
                assert!(Instant::now() < deadline, "{choice}: grandchild pid");
                std::thread::sleep(Duration::from_millis(20));
            };
            let _guard = KillOnDrop::new(vec![grandchild]);
            assert_alive(&[pid, grandchild], "supervised");
            let outcome = handle.stop().expect("stop");
            assert_eq!(outcome.stopped, StopReason::StopRequested, "{choice}");
            wait_gone_blocking(&[pid, grandchild], "stopped");

            // A dropped handle ends the supervision and its tree.
            let mut handle = Supervisor::new(Command::new("sleep").arg("300"))
                .mechanism(choice)
                .blocking()
                .start();
            let Some(SupervisorEvent::Started { pid, .. }) = handle.next_event() else {
                panic!("{choice}: started");
            };
            drop(handle);
            wait_gone_blocking(&[pid], "handle dropped");
        }
    });
}

/// The blocking handle counts the events it dropped unread, as the async
/// one does: past `EVENT_BUFFER` waiting events the oldest go first, and
/// the end is still there.
#[test]
fn a_blocking_supervisor_handle_counts_dropped_events() {
    plain("a_blocking_supervisor_handle_counts_dropped_events", || {
        for choice in mechanisms() {
            let runs = 400u32;
            let mut handle = Supervisor::new(Command::new("true"))
                .mechanism(choice)
                .restart(pkit::Restart::Always)
                .backoff(Duration::ZERO, 1.0)
                .max_backoff(Duration::ZERO)
                .max_restarts(runs - 1)
                .blocking()
                .start();
            // Two events a run at least: the bound is passed before the
            // end.
            let deadline = Instant::now() + DEADLINE * 6;
            while handle.events_dropped() == 0 {
                assert!(Instant::now() < deadline, "{choice}: no event dropped");
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut events = Vec::new();
            while let Some(event) = handle.next_event() {
                events.push(event);
            }
            assert!(
                !matches!(events[0], SupervisorEvent::Started { run: 1, .. }),
                "{choice}: the oldest event was kept"
            );
            assert_eq!(
                events.last(),
                Some(&SupervisorEvent::Stopped(StopReason::RestartsExhausted)),
                "{choice}"
            );
            let dropped = handle.events_dropped();
            assert!(dropped > 0, "{choice}");
            assert!(
                events.len() as u64 + dropped >= 2 * u64::from(runs),
                "{choice}: {} read, {dropped} dropped",
                events.len()
            );
            let outcome = handle.wait().expect("supervision");
            assert_eq!(outcome.restarts, runs - 1, "{choice}");
        }
    });
}

#[test]
fn the_new_twins_refuse_inside_a_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin("the_new_twins_refuse_inside_a_runtime"));
    let refused = |f: &dyn Fn()| {
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .expect_err("must panic inside a runtime");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("inside a Tokio runtime"), "{msg}");
    };
    rt.block_on(async {
        refused(&|| {
            let _ = Supervisor::new(Command::new("true")).blocking().run();
        });
        refused(&|| {
            let _ = CliClient::new("true").blocking().run(["x"]);
        });
        refused(&|| {
            let _ = blocking::output_unordered([Command::new("true")], 1);
        });
    });
    rt.block_on(suite.end());
}
