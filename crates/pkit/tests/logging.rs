//! Lifecycle events (tracing target `pkit`): a hand-written subscriber
//! records every event of runs whose arguments, environment, working
//! directory and output all carry a marker, finds the expected events at
//! the expected levels, and finds the marker in none of them.

mod common;

use std::time::Duration;

use common::events::{recorder, Seen};
use common::*;
use pkit::{CancelToken, Command, Restart, Supervisor};
use tracing::Level;

const MARK: &str = "zqMARKq7";

/// The events named `name`, with `message` containing `what`.
fn find(name: &str, what: &str) -> Vec<Seen> {
    recorder()
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.get("name") == Some(name))
        .filter(|s| s.get("message").is_some_and(|m| m.contains(what)))
        .cloned()
        .collect()
}

/// How many events carry `what` in their message, at `level`.
fn count(what: &str, level: Level) -> usize {
    recorder()
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.level == level)
        .filter(|s| s.get("message").is_some_and(|m| m.contains(what)))
        .count()
}

/// Polls until the process named `name` has started.
async fn wait_started(name: &str) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while find(name, "process started").is_empty() {
        assert!(std::time::Instant::now() < deadline, "{name} never started");
        tokio::time::sleep(POLL).await;
    }
}

/// A command whose argument, environment value, working directory and
/// output all carry the marker.
fn marked(choice: pkit::MechanismChoice, dir: &TempPath, script: &str, name: &str) -> Command {
    sh(choice, script)
        .arg(format!("arg-{MARK}"))
        .env("PKIT_LOG_TEST", format!("env-{MARK}"))
        .current_dir(dir.path())
        .log_name(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_emitted_and_never_carry_secrets() {
    recorder();
    let suite = begin("events_are_emitted_and_never_carry_secrets").await;
    let dir = TempPath::new(&format!("cwd-{MARK}"));
    std::fs::create_dir(dir.path()).unwrap();
    let echo = r#"echo "out-$1 $PKIT_LOG_TEST $(pwd)"; echo "err-$1" >&2"#;
    for choice in mechanisms() {
        let tag = |what: &str| format!("{what}-{choice}");

        // An ordinary run: spawned and exited, at Debug.
        let out = marked(choice, &dir, echo, &tag("plain"))
            .output()
            .await
            .unwrap();
        assert!(out.stdout_str().contains(MARK), "the output does carry it");
        let started = find(&tag("plain"), "process started");
        let finished = find(&tag("plain"), "process finished");
        assert_eq!((started.len(), finished.len()), (1, 1), "{choice}");
        assert_eq!(started[0].level, Level::DEBUG);
        assert_eq!(started[0].get("program"), Some("sh"));
        assert!(started[0].get("pid").is_some() && started[0].get("mechanism").is_some());
        assert_eq!(finished[0].get("outcome"), Some("exited(0)"));
        assert!(finished[0].get("duration_ms").is_some());
        // The group made for the run carries the command's name too.
        let created = find(&tag("plain"), "group created");
        assert_eq!(created.len(), 1, "{choice}");
        assert!(created[0].get("mechanism").is_some());
        assert_eq!(find(&tag("plain"), "group closed").len(), 1, "{choice}");

        // So does a started command's own group (PKIT_MECHANISM's), dropped
        // with its handle; and a group built with a name carries that name.
        let proc = marked(choice, &dir, &format!("{echo}; sleep 300"), &tag("own"))
            .start()
            .unwrap();
        drop(proc);
        assert_eq!(find(&tag("own"), "group created").len(), 1, "{choice}");
        assert_eq!(find(&tag("own"), "group dropped").len(), 1, "{choice}");
        let named = pkit::Group::builder()
            .mechanism(choice)
            .name(&tag("named"))
            .build()
            .unwrap();
        named.shutdown(Duration::from_millis(100)).await.unwrap();
        assert_eq!(find(&tag("named"), "group created").len(), 1, "{choice}");
        assert_eq!(find(&tag("named"), "group shut down").len(), 1, "{choice}");

        // A timeout, at Warn; a tree that ignores SIGTERM is killed after
        // its grace, at Warn.
        // The shell must set its trap before the timeout: a try whose shell
        // was slower to start (a loaded machine: no `trap-set` printed) is
        // made again, under another name, with the timeout doubled (200
        // ms, up to 6.4 s).
        let mut t = Duration::from_millis(200);
        let (name, out) = loop {
            let name = tag(&format!("timeout-{}", t.as_millis()));
            let out = marked(
                choice,
                &dir,
                &format!("{echo}; trap '' TERM; echo trap-set; sleep 300"),
                &name,
            )
            .timeout(t)
            .grace(Duration::from_millis(100))
            .output()
            .await
            .unwrap();
            if out.stdout_str().contains("trap-set") {
                break (name, out);
            }
            assert!(t < Duration::from_secs(6), "{choice}: never set: {out:?}");
            t *= 2;
        };
        assert!(out.timed_out());
        let timeouts = find(&name, "timed out");
        assert_eq!(timeouts.len(), 1, "{choice}");
        assert_eq!(timeouts[0].level, Level::WARN);
        let late = find(&name, "killed after the grace");
        let (run, of_group): (Vec<_>, Vec<_>) = late
            .iter()
            .partition(|s| s.get("message") == Some("killed after the grace"));
        assert_eq!(run.len(), 1, "{choice}");
        assert_eq!(run[0].level, Level::WARN);
        // Both name the program, the pid and the mechanism.
        let mechanism = common::expected_mechanism(choice).as_str();
        for e in [&timeouts[0], run[0]] {
            assert_eq!(e.get("program"), Some("sh"), "{choice}: {e:?}");
            assert!(
                e.get("pid").is_some_and(|p| p.parse::<u32>().is_ok()),
                "{e:?}"
            );
            assert_eq!(e.get("mechanism"), Some(mechanism), "{choice}: {e:?}");
        }
        // The run's group says so too, with the command's name.
        assert_eq!(of_group.len(), 1, "{choice}: {of_group:?}");
        assert_eq!(of_group[0].level, Level::WARN);

        // A cancellation.
        let token = CancelToken::new();
        let cmd = marked(choice, &dir, &format!("{echo}; sleep 300"), &tag("cancel"))
            .cancel_token(&token);
        let run = tokio::spawn(async move { cmd.output().await });
        let deadline = std::time::Instant::now() + DEADLINE;
        while find(&tag("cancel"), "process started").is_empty() {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(POLL).await;
        }
        token.cancel();
        assert!(run.await.unwrap().unwrap_err().is_cancelled());
        let cancelled = find(&tag("cancel"), "cancelled");
        assert_eq!(cancelled.len(), 1, "{choice}");
        assert_eq!(cancelled[0].get("program"), Some("sh"), "{choice}");
        assert!(cancelled[0].get("pid").is_some(), "{choice}");
        assert_eq!(cancelled[0].get("mechanism"), Some(mechanism), "{choice}");

        // A retry.
        let err = marked(choice, &dir, &format!("{echo}; exit 3"), &tag("retry"))
            .retry(2, Duration::from_millis(1), |_| true)
            .run()
            .await
            .unwrap_err();
        assert!(err.is_non_zero_exit());
        let retrying = find(&tag("retry"), "retrying");
        assert_eq!(retrying.len(), 1, "{choice}");
        assert_eq!(retrying[0].get("program"), Some("sh"), "{choice}");

        // A supervisor: restarts, a storm at Warn, the end.
        let out = Supervisor::new(marked(
            choice,
            &dir,
            &format!("{echo}; exit 3"),
            &tag("sup"),
        ))
        .mechanism(choice)
        .restart(Restart::Always)
        .backoff(Duration::from_millis(1), 1.0)
        .storm_limit(2, Duration::from_secs(600))
        .storm_pause(Duration::from_millis(1))
        .max_restarts(2)
        .run()
        .await
        .unwrap();
        assert_eq!(out.restarts, 2);
        assert_eq!(find(&tag("sup"), "supervisor restart").len(), 2, "{choice}");
        let storms = find(&tag("sup"), "crash storm");
        assert_eq!(storms.len(), 1, "{choice}");
        assert_eq!(storms[0].level, Level::WARN);
        assert_eq!(find(&tag("sup"), "supervisor stopped").len(), 1);
        assert_eq!(find(&tag("sup"), "process started").len(), 3, "{choice}");
        assert_eq!(find(&tag("sup"), "group created").len(), 3, "{choice}");

        // A failed readiness check and a command that cannot start: Warn.
        let out = Supervisor::new(marked(
            choice,
            &dir,
            &format!("{echo}; sleep 300"),
            &tag("unready"),
        ))
        .mechanism(choice)
        .ready_when(|| async { false }, Duration::from_millis(100))
        .restart(Restart::Never)
        .run()
        .await
        .unwrap();
        assert!(!out.final_output.unwrap().success());
        let unready = find(&tag("unready"), "readiness check");
        assert_eq!(unready.len(), 1, "{choice}");
        assert_eq!(unready[0].level, Level::WARN);
        let out = Supervisor::new(
            Command::new("/nonexistent/pkit-log-test")
                .arg(MARK)
                .log_name(tag("missing")),
        )
        .mechanism(choice)
        .run()
        .await
        .unwrap();
        assert_eq!(out.stopped, pkit::StopReason::CannotStart);
        let missing = find(&tag("missing"), "cannot start");
        assert_eq!(missing.len(), 1, "{choice}");
        assert_eq!(missing[0].level, Level::WARN);
        assert_eq!(missing[0].get("failure"), Some("NotFound"));

        // A CliClient's name.
        let client = pkit::CliClient::new("sh")
            .args(["-c", echo])
            .append_env("PKIT_LOG_TEST", format!("env-{MARK}"))
            .current_dir(dir.path())
            .with_runner(std::sync::Arc::new(pkit::SystemRunner::with_mechanism(
                choice,
            )))
            .log_name(tag("client"));
        client.run([format!("arg-{MARK}")]).await.unwrap();
        assert_eq!(
            find(&tag("client"), "process finished").len(),
            1,
            "{choice}"
        );

        // The name is carried by a group's processes and a batch's commands.
        let g = group(choice);
        let mut proc = g.start(&marked(choice, &dir, echo, &tag("group"))).unwrap();
        assert!(proc.wait().await.unwrap().success());
        g.close().await.unwrap();
        assert_eq!(find(&tag("group"), "process started").len(), 1, "{choice}");
        assert_eq!(find(&tag("group"), "process finished").len(), 1, "{choice}");
        let batch = (0..3).map(|i| marked(choice, &dir, echo, &tag(&format!("batch{i}"))));
        for result in pkit::output_all(batch, 2).await {
            assert!(result.unwrap().success());
        }
        for i in 0..3 {
            let name = tag(&format!("batch{i}"));
            assert_eq!(find(&name, "process started").len(), 1, "{choice}: {name}");
            assert_eq!(find(&name, "process finished").len(), 1, "{choice}: {name}");
        }

        // Teardown: a graceful shutdown at Debug, one that still needed
        // SIGKILL at Warn, a dropped open group at Debug.
        let before = (
            count("group shut down", Level::DEBUG),
            count("killed after the grace", Level::WARN),
            count("group dropped", Level::DEBUG),
        );
        let polite = group(choice);
        let mut p = polite
            .start(&marked(
                choice,
                &dir,
                &format!("{echo}; sleep 300"),
                &tag("polite"),
            ))
            .unwrap();
        wait_started(&tag("polite")).await;
        let report = polite.shutdown(DEADLINE).await.unwrap();
        assert_eq!(report.killed(), 0, "{choice}");
        let _ = p.wait().await;
        let stubborn = group(choice);
        let mut p = stubborn
            .start(&marked(
                choice,
                &dir,
                &format!("trap '' TERM; touch \"$PWD/stubborn\"; {echo}; sleep 300"),
                &tag("stubborn"),
            ))
            .unwrap();
        let flag = dir.path().join("stubborn");
        let deadline = std::time::Instant::now() + DEADLINE;
        while !flag.exists() {
            assert!(std::time::Instant::now() < deadline, "{choice}: the trap");
            tokio::time::sleep(POLL).await;
        }
        std::fs::remove_file(&flag).unwrap();
        let report = stubborn.shutdown(Duration::from_millis(100)).await.unwrap();
        assert!(report.killed() > 0, "{choice}");
        let _ = p.wait().await;
        let dropped = group(choice);
        let _p = dropped
            .start(&marked(
                choice,
                &dir,
                &format!("{echo}; sleep 300"),
                &tag("dropped"),
            ))
            .unwrap();
        drop(dropped);
        let after = (
            count("group shut down", Level::DEBUG),
            count("killed after the grace", Level::WARN),
            count("group dropped", Level::DEBUG),
        );
        assert!(after.0 > before.0, "{choice}: a graceful shutdown event");
        assert!(after.1 > before.1, "{choice}: a killed-after-grace event");
        assert!(after.2 > before.2, "{choice}: a dropped-group event");

        // Jitter: the retry pauses vary within the fraction.
        let before = find(&tag("jitter"), "retrying").len();
        let _ = marked(choice, &dir, &format!("{echo}; exit 3"), &tag("jitter"))
            .retry(5, Duration::from_millis(40), |_| true)
            .retry_jitter(0.5)
            .run()
            .await
            .unwrap_err();
        let pauses: Vec<f64> = find(&tag("jitter"), "retrying")[before..]
            .iter()
            .map(|s| s.get("pause_ms").unwrap().parse().unwrap())
            .collect();
        assert_eq!(pauses.len(), 4, "{choice}");
        assert!(
            pauses.iter().all(|p| (20.0..=60.0).contains(p)),
            "{choice}: {pauses:?}"
        );
        assert!(
            pauses.windows(2).any(|w| w[0] != w[1]),
            "{choice}: no jitter: {pauses:?}"
        );
    }
    suite.end().await;

    // Nothing pkit logged carries the marker, and everything it logged has
    // its target.
    let seen = recorder().seen.lock().unwrap().clone();
    assert!(seen.len() > 20, "{} events", seen.len());
    for s in &seen {
        assert_eq!(s.target, "pkit", "{s:?}");
        for (k, v) in &s.fields {
            assert!(
                !v.contains(MARK) && !k.contains(MARK),
                "a secret in an event: {s:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_events_name_the_program_pid_and_mechanism() {
    let suite = begin("bound_events_name_the_program_pid_and_mechanism").await;
    recorder();
    for choice in mechanisms() {
        let mechanism = common::expected_mechanism(choice).as_str();
        let check = |name: &str, pid: u32| {
            let e = find(name, "timed out");
            assert_eq!(e.len(), 1, "{choice}: {e:?}");
            assert_eq!(e[0].get("program"), Some("sleep"), "{choice}: {e:?}");
            assert_eq!(e[0].get("pid"), Some(pid.to_string().as_str()), "{choice}");
            assert_eq!(e[0].get("mechanism"), Some(mechanism), "{choice}: {e:?}");
        };
        // A started process's timeout (its watch).
        let name = format!("bound-started-{choice}");
        let g = group(choice);
        let mut p = g
            .start(
                &cmd(choice, "sleep")
                    .arg("300")
                    .timeout(Duration::from_millis(200))
                    .log_name(&name),
            )
            .unwrap();
        assert!(p.wait().await.unwrap().timed_out(), "{choice}");
        check(&name, p.pid());
        drop(p);
        g.close().await.unwrap();

        // A pipeline's (its head's program and pid).
        let name = format!("bound-pipe-{choice}");
        let mut chain = pkit::Pipe::new([
            cmd(choice, "sleep").arg("300").log_name(&name),
            cmd(choice, "cat"),
        ])
        .timeout(Duration::from_millis(200))
        .mechanism(choice)
        .start()
        .unwrap();
        let head = chain.pids()[0];
        assert!(chain.wait().await.unwrap().timed_out(), "{choice}");
        check(&name, head);

        // A pipeline whose head outlives the grace: killed, and logged so.
        // The shell must have set its trap when the timeout comes: a try
        // where it had not (no `ready` file: a loaded machine slow to
        // start it, the TERM ended it) is made again under a name of its
        // own with the timeout doubled (2 s first, up to 16 s).
        let ready = TempPath::new("pipe-grace-ready");
        let stubborn = format!("trap '' TERM; : > {}; sleep 300", ready.as_str());
        let mut limit = Duration::from_secs(2);
        let (name, head, out) = loop {
            let name = format!("bound-pipe-grace-{choice}-{}", limit.as_secs());
            let mut chain = pkit::Pipe::new([
                cmd(choice, "sh").args(["-c", &stubborn]).log_name(&name),
                cmd(choice, "cat"),
            ])
            .timeout(limit)
            .grace(Duration::from_millis(100))
            .mechanism(choice)
            .start()
            .unwrap();
            let head = chain.pids()[0];
            let out = chain.wait().await.unwrap();
            if ready.path().exists() || limit >= Duration::from_secs(16) {
                break (name, head, out);
            }
            limit *= 2;
        };
        assert!(
            out.timed_out() && out.killed_after_grace(),
            "{choice}: {out:?}"
        );
        assert!(ready.path().exists(), "{choice}: the trap was set in time");
        let mut e = find(&name, "killed after the grace");
        e.retain(|s| s.get("message") == Some("killed after the grace"));
        assert_eq!(e.len(), 1, "{choice}: {e:?}");
        assert_eq!(e[0].get("program"), Some("sh"), "{choice}: {e:?}");
        assert_eq!(e[0].get("pid"), Some(head.to_string().as_str()), "{choice}");
        assert_eq!(e[0].get("mechanism"), Some(mechanism), "{choice}: {e:?}");
    }
    suite.end().await;
}
