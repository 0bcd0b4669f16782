//! Another thread changing the environment while children start: every
//! start succeeds, as with `std::process::Command`. A child used to be
//! handed the C library's `environ` itself, which `set_var` may be
//! reallocating and freeing at that moment: starts failed with EFAULT,
//! or a child could begin with a half-written environment.
//!
//! Alone in its binary: the churn changes this whole process's
//! environment.

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
