//! Another thread reading the environment while children start: every
//! start succeeds and each child gets the environment whole. (pkit copies
//! the environment from the C library's `environ`, as `getenv` reads it,
//! without std's private lock: a `set_var` or `remove_var` on another
//! thread while a child starts is excluded by `set_var`'s own contract,
//! as for any C library reading the environment. Readers may run at
//! once.)
//!
//! And a variable changed between two runs reaches the second child,
//! whatever the change did to the C library's vector (an entry added, one
//! replaced in place, one removed): each child starts with the environment
//! as it is at its start, never a copy kept from an earlier one.
//!
//! The test that changes the environment runs alone in its binary (no
//! other start may read the environment meanwhile: `set_var`'s contract).

#![cfg(unix)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_start_while_another_thread_reads_the_environment() {
    let suite = begin("children_start_while_another_thread_reads_the_environment").await;
    let path = std::env::var("PATH").expect("PATH is set");
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let all = std::env::vars_os().count();
                assert!(all > 0 && std::env::var_os("PATH").is_some());
                reads += 1;
            }
            reads
        })
    };
    for choice in mechanisms() {
        for i in 0..150 {
            let out = sh(choice, "printf '%s' \"$PATH\"")
                .output()
                .await
                .unwrap_or_else(|e| panic!("{choice}: start {i}: {e}"));
            assert!(out.success(), "{choice}: run {i}: {:?}", out.outcome());
            assert_eq!(out.stdout_str(), path, "{choice}: run {i}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("the reading thread");
    assert!(reads > 0);
    suite.end().await;
}

/// What `PKIT_BETWEEN` is in a child started now, three ways: a plain
/// command (the process-wide mechanism), one with a runner of its own
/// (`choice`), and the blocking facade's.
async fn seen_now(choice: pkit::MechanismChoice) -> [String; 3] {
    const SCRIPT: &str = "printf '%s' \"${PKIT_BETWEEN-unset}\"";
    let plain = pkit::Command::new("sh")
        .args(["-c", SCRIPT])
        .output()
        .await
        .expect("a plain run");
    let own = sh(choice, SCRIPT)
        .output()
        .await
        .expect("a run with a runner");
    let blocking = std::thread::spawn(|| {
        pkit::Command::new("sh")
            .args(["-c", SCRIPT])
            .blocking()
            .output()
            .expect("a blocking run")
    })
    .join()
    .expect("the blocking run's thread");
    [plain, own, blocking].map(|out| {
        assert!(out.success(), "{choice}: {:?}", out.outcome());
        out.stdout_str().into_owned()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_changed_between_two_runs_reaches_the_second_child() {
    // Alone: a change while another test's child starts is excluded.
    let alone = begin_alone_in_binary().await;
    for choice in mechanisms() {
        std::env::remove_var("PKIT_BETWEEN");
        let steps: [(&str, Option<&str>); 5] = [
            // Not set yet.
            ("unset", None),
            // Added: the vector grows by one entry.
            ("added", Some("one")),
            // Replaced by a value of the same length: glibc writes the
            // new string's pointer into the same slot of the same vector,
            // which keeps its address and its length.
            ("replaced in place", Some("two")),
            ("replaced, longer", Some("a longer value")),
            // Removed: the later entries move down one slot.
            ("removed", None),
        ];
        for (what, value) in steps {
            if what != "unset" {
                match value {
                    Some(v) => std::env::set_var("PKIT_BETWEEN", v),
                    None => std::env::remove_var("PKIT_BETWEEN"),
                }
            }
            let want = value.unwrap_or("unset");
            for seen in seen_now(choice).await {
                assert_eq!(seen, want, "{choice}: after the variable was {what}");
            }
        }
    }
    std::env::remove_var("PKIT_BETWEEN");
    end_exclusive(
        alone,
        "a_variable_changed_between_two_runs_reaches_the_second_child",
    )
    .await;
}
