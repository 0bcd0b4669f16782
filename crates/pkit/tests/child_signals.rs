//! The signal settings a child starts with, in every mechanism. Its own
//! binary: it compares the child's ignored signals with this process's,
//! which other tests change (`tests/portable.rs` ignores SIGUSR2).
#![cfg(target_os = "linux")]

mod common;

use common::*;

/// The signal dispositions and mask a child starts with are this
/// process's ignored signals (SIGPIPE apart, which Rust ignores and every
/// child gets back at its default) and nothing of the C library's own: in
/// every mechanism, glibc's two internal signals (32 and 33, which its
/// threads use) are neither ignored nor blocked, even where this process
/// started with them ignored (as a process `std::process::Command` starts
/// does). Before: the portable backend's `posix_spawn` left them ignored
/// (`SigIgn: 0000000180000000`), and the other mechanisms kept them
/// ignored when this process had them so; an ignore survives `exec`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_starts_without_the_c_librarys_signal_settings() {
    let suite = begin("child_signal_settings").await;
    fn mask(text: &str, key: &str) -> u64 {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"));
        u64::from_str_radix(line.trim(), 16).unwrap()
    }
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let internal: u64 = (1 << 31) | (1 << 32);
    let want_ignored = mask(&own, "SigIgn:") & !(1 << (libc::SIGPIPE - 1)) & !internal;
    for choice in mechanisms() {
        let out = cmd(choice, "cat")
            .arg("/proc/self/status")
            .output()
            .await
            .unwrap();
        let text = out.stdout_str();
        let ignored = mask(&text, "SigIgn:");
        assert_eq!(
            ignored & !internal,
            want_ignored,
            "{choice}: ignored signals of the child"
        );
        assert_eq!(
            ignored & internal,
            0,
            "{choice}: glibc's signals ignored in the child"
        );
        assert_eq!(
            mask(&text, "SigBlk:") & internal,
            0,
            "{choice}: the C library's signals blocked in the child"
        );
    }
    suite.end().await;
}
