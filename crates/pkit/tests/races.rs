//! Races, each repeated: a kill concurrent with the process's own exit, and
//! a group dropped while another task waits on its process. In both
//! mechanisms; each round must end in one of the outcomes the race allows
//! and leave nothing behind.

mod common;

use std::sync::Arc;

use common::*;
use pkit::Command;

const ROUNDS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_concurrent_with_exit() {
    let suite = begin("kill_concurrent_with_exit").await;
    for choice in mechanisms() {
        for i in 0..ROUNDS {
            let g = Arc::new(group(choice));
            let mut p = g.start(&Command::new("true")).unwrap();
            // Kill the process and the group from another task while the
            // process exits on its own.
            let g2 = g.clone();
            let killer = tokio::spawn(async move {
                tokio::task::yield_now().await;
                g2.kill()
            });
            let r = p.kill();
            let out = p.wait().await.unwrap();
            killer
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{choice} #{i}: group kill: {e}"));
            r.unwrap_or_else(|e| panic!("{choice} #{i}: process kill: {e}"));
            assert!(
                out.success() || out.signal() == Some(9),
                "{choice} #{i}: {:?}",
                out.outcome()
            );
            drop(p);
            g.close().await.unwrap();
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_dropped_while_a_task_waits() {
    let suite = begin("group_dropped_while_a_task_waits").await;
    for choice in mechanisms() {
        for i in 0..ROUNDS / 2 {
            let g = group(choice);
            let mut p = g
                .start(&Command::new("sh").args(["-c", "sleep 300 & sleep 300; wait"]))
                .unwrap();
            let waiter = tokio::spawn(async move { p.wait().await.map(|o| o.signal()) });
            tokio::task::yield_now().await;
            drop(g);
            let sig = tokio::time::timeout(DEADLINE, waiter)
                .await
                .unwrap_or_else(|_| panic!("{choice} #{i}: wait hung after the drop"))
                .unwrap()
                .unwrap();
            assert_eq!(sig, Some(9), "{choice} #{i}");
        }
    }
    suite.end().await;
}
