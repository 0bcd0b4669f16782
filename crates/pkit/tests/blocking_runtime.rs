//! The blocking API's internal runtime can't be built while the process
//! has no file descriptor to spare: the blocking calls made then return an
//! error saying so, and the first call after the shortage builds it and
//! works. Before, the first blocking call panicked
//! ("cannot build its internal Tokio runtime") and took the caller's
//! thread down with it.
//!
//! The runtime is built once per process, so the case runs in a child:
//! this test binary run again, for the one ignored test below, with a
//! marker in its environment.
#![cfg(unix)]

mod common;

use common::descriptors::{fill, highest_fd, set_nofile};
use std::time::Duration;

use common::*;
use pkit::{blocking, Command, ErrorKind};

/// Marks the re-run child.
const CHILD: &str = "PKIT_TEST_BLOCKING_RUNTIME_CHILD";

#[test]
fn a_blocking_call_without_free_descriptors_fails_and_the_next_one_works() {
    in_suite(
        "a_blocking_call_without_free_descriptors_fails_and_the_next_one_works",
        || run_child("starved_child", CHILD, "STARVED CHILD DONE"),
    );
}

/// Marks the re-run child of the few-descriptors test.
const FEW: &str = "PKIT_TEST_BLOCKING_RUNTIME_FEW";

/// With Tokio's `signal` feature on (as in this test binary, through the
/// dev-dependencies), building a runtime with three or four descriptors
/// free panicked inside Tokio (its first socket pair is made with an
/// `expect`). As descriptors come back one at a time, each blocking call
/// fails with the runtime's error until one builds it; none panics.
#[test]
fn a_blocking_call_with_a_few_free_descriptors_never_panics() {
    in_suite(
        "a_blocking_call_with_a_few_free_descriptors_never_panics",
        || run_child("few_child", FEW, "FEW CHILD DONE"),
    );
}

// No suite lock: it runs alone, in a process of its own, and the suite's
// runtime, built first, would take descriptors (and Tokio's signal pipe)
// the shortage is about.
#[test]
#[ignore = "the child of a_blocking_call_with_a_few_free_descriptors_never_panics"]
fn few_child() {
    if std::env::var_os(FEW).is_none() {
        return;
    }
    let old = set_nofile(highest_fd() + 16);
    let mut held = fill();
    let mut freed = 0;
    loop {
        // The group's own needs (its directory, a pidfd) fail later, once
        // the runtime is built: any other error ends the search too.
        match blocking::Group::new() {
            Err(e)
                if e.to_string()
                    .contains("cannot build its internal Tokio runtime") =>
            {
                assert_eq!(e.kind(), ErrorKind::Io, "{e}");
                held.pop()
                    .expect("a runtime built with every descriptor free");
                freed += 1;
            }
            Err(e) => {
                println!("runtime built with {freed} free; then: {e}");
                break;
            }
            Ok(group) => {
                println!("runtime and group made with {freed} free");
                drop(held);
                group.close().unwrap();
                break;
            }
        }
    }
    set_nofile(old);
    println!("FEW CHILD DONE");
}

/// Checks that `got` is the runtime's error, naming `what`.
fn assert_refused<T: std::fmt::Debug>(got: pkit::Result<T>, what: &str) {
    let e = got.expect_err(what);
    assert_eq!(e.kind(), ErrorKind::Io, "{what}: {e}");
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "pkit::blocking::{what}: cannot build its internal Tokio runtime"
        )) && text.contains("os error 24"),
        "{what}: {text}"
    );
}

// No suite lock: it runs alone, in a process of its own, and the suite's
// runtime, built first, would take descriptors (and Tokio's signal pipe)
// the shortage is about.
#[test]
#[ignore = "the child of a_blocking_call_without_free_descriptors_fails_and_the_next_one_works"]
fn starved_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let choices = mechanisms(); // (probes cgroups: before the shortage)
                                // Calls that need the runtime (the one-shot path does not, see
                                // blocking_direct.rs): an engine run (its inactivity bound is driven),
                                // a start, a group, a batch, a supervision.
    let engine = || {
        Command::new("echo")
            .arg("ok")
            .inactivity_timeout(Duration::from_secs(60))
    };
    let old = set_nofile(highest_fd() + 8);
    let held = fill();
    assert_refused(engine().blocking().output(), "output");
    assert_refused(engine().blocking().run(), "run");
    assert_refused(Command::new("true").blocking().start(), "start");
    assert_refused(blocking::Group::new(), "Group::new");
    let all = blocking::output_all([engine(), engine()], 2);
    assert_eq!(all.len(), 2);
    for got in all {
        assert_refused(got, "output_all");
    }
    let batch: Vec<_> = blocking::output_unordered([engine(), engine()], 2).collect();
    assert_eq!(batch.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1]);
    for (_, got) in batch {
        assert_refused(got, "output_unordered");
    }
    let mut sup = pkit::Supervisor::new(engine()).blocking().start();
    assert!(sup.next_event().is_none());
    assert_refused(sup.wait(), "Supervisor::start");
    // Descriptors again: the next calls build the runtime and work.
    drop(held);
    set_nofile(old);
    for choice in choices {
        let out = engine()
            .blocking()
            .output()
            .unwrap_or_else(|e| panic!("{choice}: after the shortage: {e}"));
        assert_eq!(out.stdout_str().trim(), "ok", "{choice}");
        let group = blocking::Group::with(pkit::Group::builder().mechanism(choice)).unwrap();
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "echo a; echo b"])
                    .stream_lines(),
            )
            .unwrap();
        let lines: Vec<String> = p.lines().map(|l| l.text).collect();
        assert_eq!(lines, ["a", "b"], "{choice}");
        assert!(p.wait().unwrap().success(), "{choice}");
        group.close().unwrap();
    }
    assert!(own_children().is_empty(), "{:?}", own_children());
    println!("STARVED CHILD DONE");
}

/// Runs this binary's ignored test `child` (marked by the environment
/// variable `marker`) in a process of its own, where it may starve itself
/// of descriptors; it must succeed, say `done`, and not panic.
fn run_child(child: &str, marker: &str, done: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            child,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(marker, "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains(done),
        "the child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
