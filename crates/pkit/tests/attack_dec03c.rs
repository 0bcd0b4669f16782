//! A hostile user against the upper layers (third pass of 2026-12-03):
//! pipelines, readiness probes, supervision. Every mechanism.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Error, NotReadyReason, Outcome};

/// A readiness check that never answers (a connection nobody accepts nor
/// refuses, a health endpoint that hangs) against a process that exits:
/// the probe gives up as soon as the process has exited, saying so, not
/// at its deadline with "deadline". Before: the exit was looked at only
/// between checks, so a hanging check hid it until the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_readiness_check_does_not_hide_the_exit() {
    let suite = begin("a_hanging_readiness_check_does_not_hide_the_exit").await;
    for choice in mechanisms() {
        let mut p = sh(choice, "sleep 0.2; exit 3").start().unwrap();
        let pid = p.pid();
        // Longer than anything the test waits for otherwise: reaching it
        // is the failure.
        let patience = DEADLINE * 6;
        let err = p
            .wait_for(std::future::pending::<bool>, patience)
            .await
            .expect_err("the process exits, the check never passes");
        match err {
            Error::NotReady {
                reason: NotReadyReason::Exited(outcome),
                ..
            } => assert_eq!(outcome, Outcome::Exited(3), "{choice}"),
            other => panic!("{choice}: expected NotReady(Exited(3)), got {other:?}"),
        }
        // A check that is slow, not hung, and passes just after the exit
        // still counts (a server ready just before it went away).
        let mut p2 = sh(choice, "exit 0").start().unwrap();
        p2.wait_for(
            || async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                true
            },
            patience,
        )
        .await
        .expect("a check that passes is a pass, even across the exit");
        let out = p.wait().await.unwrap();
        assert_eq!(out.outcome(), Outcome::Exited(3), "{choice}");
        assert!(p2.wait().await.unwrap().success(), "{choice}");
        assert_gone(&[pid], "the probed process").await;
    }
    suite.end().await;
}
