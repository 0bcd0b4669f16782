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
        // The program says it runs (creates `$1`), then waits until `$1`
        // is removed, so its output starts after every descriptor is taken
        // (and its start before: on a loaded machine a fixed pause could
        // end before the start, which then met no free descriptor); the
        // capture passes its hand-off size then. Removing a file, and
        // seeing whether it exists, take no descriptor.
        let gate = TempPath::new("capture-emfile-gate");
        let script = format!(
            r#": > "$1"; while [ -e "$1" ]; do sleep 0.05; done; head -c {SIZE} /dev/zero"#
        );
        let program = cmd(choice, "sh").args(["-c", &script, "sh", gate.as_str()]);
        let run = tokio::spawn(async move { program.output().await });
        let deadline = std::time::Instant::now() + DEADLINE * 3;
        while !gate.path().exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{choice}: the program did not start"
            );
            tokio::time::sleep(POLL).await;
        }
        let held = fill();
        assert!(!held.is_empty(), "{choice}: nothing was filled");
        let _ = std::fs::remove_file(gate.path());
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
        let pid_file = TempPath::new("capture-emfile-sleep");
        let mut p = group
            .start(&Command::new("sh").args([
                "-c",
                r#"sleep 0.2 & echo $! > "$1"; exit 0"#,
                "sh",
                pid_file.as_str(),
            ]))
            .unwrap_or_else(|e| panic!("{choice}: start: {e}"));
        // Until the background sleep has exited too (polled: seeing it
        // takes descriptors, so before they are all taken; a fixed pause
        // could end before it on a loaded machine, and the close would
        // then end a live member).
        let sleep = pid_in_file(&pid_file, "the background sleep").await;
        assert_gone(&[sleep], &format!("{choice}: the background sleep")).await;
        let held = fill();
        assert!(!held.is_empty(), "{choice}: nothing was filled");
        let status = p.wait().await;
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
