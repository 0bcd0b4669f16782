//! A big capture that meets a moment without free file descriptors keeps
//! every byte. A capture-only stream that passes 256 KiB moves from the
//! async runtime to a thread of its own, which needs a pipe (to be told to
//! stop) and a thread; when neither can be had, the stream must go on being
//! read where it was. Before, the capture ended there: the rest of the
//! output was lost, and the program writing it met a closed pipe.
//!
//! And closing a group whose processes have all exited needs no free
//! descriptor.
//!
//! One test in its own binary: it changes this process's descriptor limit
//! and fills every descriptor under it.

#![cfg(unix)]

mod common;

use common::descriptors::{fill, set_nofile};
use std::time::Duration;

use common::*;
use pkit::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_capture_keeps_every_byte_when_no_descriptor_is_free() {
    const SIZE: usize = 4 * 1024 * 1024;
    let suite = begin("capture-emfile").await;
    for choice in mechanisms() {
        let old = set_nofile(1024);
        // The program waits, so its output starts after every descriptor
        // is taken; the capture passes its hand-off size then.
        let script = format!("sleep 1; head -c {SIZE} /dev/zero");
        let program = cmd(choice, "sh").args(["-c", &script]);
        let run = tokio::spawn(async move { program.output().await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held = fill();
        assert!(!held.is_empty(), "{choice}: nothing was filled");
        let result = tokio::time::timeout(Duration::from_secs(90), run).await;
        drop(held);
        set_nofile(old);
        let out = result
            .unwrap_or_else(|_| panic!("{choice}: the run did not end"))
            .expect("the run's task")
            .unwrap_or_else(|e| panic!("{choice}: the run: {e}"));
        assert!(
            out.success(),
            "{choice}: the program failed (a closed pipe?): {:?}, stderr {:?}",
            out.outcome(),
            String::from_utf8_lossy(out.stderr())
        );
        assert_eq!(
            out.stdout().len(),
            SIZE,
            "{choice}: bytes of the capture lost"
        );
        assert!(out.stdout().iter().all(|&b| b == 0), "{choice}");
    }
    // Closing a group whose processes have all exited needs no descriptor
    // either: the process-group mechanisms used to scan /proc for members
    // (a directory to open), so a run ending while none was free failed
    // with EMFILE from its close, its output lost.
    for choice in mechanisms() {
        let group = group(choice);
        let old = set_nofile(1024);
        let mut p = group
            .start(&Command::new("sh").args(["-c", "sleep 0.2 & exit 0"]))
            .unwrap_or_else(|e| panic!("{choice}: start: {e}"));
        let held = fill();
        assert!(!held.is_empty(), "{choice}: nothing was filled");
        let status = p.wait().await;
        // Until the background sleep has exited too.
        tokio::time::sleep(Duration::from_millis(600)).await;
        // The wait may have given descriptors back: take them too.
        let more = fill();
        let closed = group.close().await;
        drop(more);
        drop(held);
        set_nofile(old);
        status.unwrap_or_else(|e| panic!("{choice}: wait: {e}"));
        closed.unwrap_or_else(|e| panic!("{choice}: closing an emptied group: {e}"));
    }
    suite.end().await;
}
