//! A moment without free file descriptors (EMFILE) fails the starts made
//! in it with an error saying so, and nothing after it: once descriptors
//! are free again, starts work, in every mechanism. Before, the first
//! start of the process under the cgroup or process-group mechanism asked
//! once whether the kernel has pidfds, by opening one, and kept the
//! answer: an EMFILE at that moment made every later start of the process
//! fail with "this kernel has no pidfds (Linux 5.3 or later is
//! required)".
//!
//! One test in its own binary: it changes this process's descriptor
//! limit, and the answer it checks is asked once per process.

mod common;

use common::descriptors::{fill, highest_fd, set_nofile};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_without_free_descriptors_fails_only_itself() {
    let suite = begin("emfile").await;
    for choice in mechanisms() {
        let cmd = cmd(choice, "true");
        // From this process's first use of pkit on, starts with 0, 1, 2...
        // descriptors free: each step of a start that needs one (stdio,
        // the guard, the pidfd) meets the shortage in one of them.
        let mut starved = Vec::new();
        for free in 0..12 {
            let old = set_nofile(highest_fd() + 16);
            let mut held = fill();
            held.truncate(held.len().saturating_sub(free));
            let got = pkit::Group::builder()
                .mechanism(choice)
                .build()
                .map_err(|e| e.to_string())
                .and_then(|g| g.start(&cmd).map(|p| p.pid()).map_err(|e| e.to_string()));
            drop(held);
            set_nofile(old);
            starved.push(got);
        }
        assert!(
            starved[0].is_err(),
            "{choice}: a start with no descriptor free: {starved:?}"
        );
        // Descriptors are free again: starts work, and groups are guarded
        // again (a failed guard start is tried again a moment later).
        let deadline = std::time::Instant::now() + DEADLINE;
        let g = loop {
            let g = group(choice);
            if g.guarded() || std::time::Instant::now() > deadline {
                break g;
            }
            g.close().await.unwrap();
            tokio::time::sleep(POLL * 5).await;
        };
        let mut p = g
            .start(&cmd)
            .unwrap_or_else(|e| panic!("{choice}: a start after the shortage: {e}"));
        assert!(p.wait().await.unwrap().success(), "{choice}");
        assert!(
            g.guarded(),
            "{choice}: a group made after the shortage is guarded: {}",
            g.description()
        );
        let out = cmd
            .output()
            .await
            .unwrap_or_else(|e| panic!("{choice}: a run after the shortage: {e}"));
        assert!(out.success(), "{choice}");
        g.close().await.unwrap();
    }
    suite.end().await;
}
