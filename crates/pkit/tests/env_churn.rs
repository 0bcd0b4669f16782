//! Another thread changing the environment while children start: every
//! start succeeds, as with `std::process::Command`. A child used to be
//! handed the C library's `environ` itself, which `set_var` may be
//! reallocating and freeing at that moment: starts failed with EFAULT,
//! or a child could begin with a half-written environment.
//!
//! And a variable changed between two runs reaches the second child,
//! whatever the change did to the C library's vector (an entry added, one
//! replaced in place, one removed): each child starts with the environment
//! as it is at its start, never a copy kept from an earlier one.
//!
//! Alone in its binary: these tests change this whole process's
//! environment (each its own variables).

#![cfg(unix)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_start_while_another_thread_changes_the_environment() {
    let suite = begin("children_start_while_another_thread_changes_the_environment").await;
    std::env::set_var("PKIT_STEADY", "steady");
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Many names, so the C library grows, moves and frees its
                // vector, not only its strings.
                for n in 0..64 {
                    std::env::set_var(format!("PKIT_CHURN_{n}"), i.to_string());
                }
                for n in 0..64 {
                    std::env::remove_var(format!("PKIT_CHURN_{n}"));
                }
                i += 1;
            }
        })
    };
    for choice in mechanisms() {
        for i in 0..150 {
            let out = sh(choice, "printf '%s' \"$PKIT_STEADY\"")
                .output()
                .await
                .unwrap_or_else(|e| panic!("{choice}: start {i}: {e}"));
            assert!(out.success(), "{choice}: run {i}: {:?}", out.outcome());
            assert_eq!(out.stdout_str(), "steady", "{choice}: run {i}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().expect("the churning thread");
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
    let suite = begin("a_variable_changed_between_two_runs_reaches_the_second_child").await;
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
    suite.end().await;
}
