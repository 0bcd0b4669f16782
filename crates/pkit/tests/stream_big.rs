//! A 256 MiB output streamed line by line in constant memory, for each
//! mechanism (its own test binary, so the peak-memory reading is this
//! test's alone).
//!
//! It streamed 1 GiB a mechanism with a 64 MiB bound: the same ratio, a
//! sixteenth of one mechanism's stream, at a quarter of the CPU (9 s of
//! pass 1's CPU). The growth measured is about 2 MiB for the three
//! mechanisms, whatever the size: what is read is not kept.

mod common;

use std::time::Duration;

use pkit::Group;

/// This process's peak resident memory, from /proc/self/status.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarter_gib_streams_in_constant_memory() {
    let alone = common::begin_exclusive().await;
    let before = peak_rss_kib();
    for m in common::mechanisms() {
        let g = Group::builder().mechanism(m).build().unwrap();
        // 2 Mi lines of 128 bytes (127 + newline) = 256 MiB.
        let lines = 2u64 << 20;
        let script = format!("yes {} | head -n {lines}", "x".repeat(127));
        let mut p = g
            .start(
                &pkit::Command::new("sh")
                    .args(["-c", &script])
                    .stream_lines(),
            )
            .unwrap();
        let mut stream = p.lines();
        let (mut count, mut bytes) = (0u64, 0u64);
        while let Some(line) = stream.next_line().await {
            count += 1;
            bytes += line.text.len() as u64 + 1;
        }
        assert_eq!(count, lines);
        assert_eq!(bytes, 1 << 28);
        assert!(p.wait().await.unwrap().success());
        g.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    let grown_mib = (peak_rss_kib() - before) / 1024;
    assert!(
        grown_mib < 16,
        "peak memory grew by {grown_mib} MiB for 256 MiB streamed a mechanism"
    );
    common::end_exclusive(alone, "a_quarter_gib_streams_in_constant_memory").await;
}
