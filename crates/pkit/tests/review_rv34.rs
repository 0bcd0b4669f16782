//! rv34: a hostile review of perf25 (the child's stdin end kept open in
//! pkit until the first write of `stdin_bytes`) and msgesc
//! (`escape_controls`). One finding (U+2028/U+2029 shown raw, fixed by
//! sup2); everything else probed and held.

mod common;

use std::time::Duration;

use common::fds::{assert_none_opened_since, Snapshot};
use common::*;

/// The sizes around the pipe's page and capacity, and none.
const SIZES: [usize; 7] = [0, 1, 4095, 4096, 4097, 65536, 65537];

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Every size reaches a child that reads to end of file (`cat`) whole,
/// through the async verbs, a started process, and the blocking facade;
/// a child that exits without reading (`true`), a dropped start, and a
/// timed-out child that never reads (`sleep`) leave nothing open, and
/// this process (SIGPIPE at its default, as Rust leaves it ignored: set
/// here) gets no SIGPIPE.
#[tokio::test]
async fn stdin_bytes_of_every_size_reach_eof_and_leave_no_descriptor() {
    // Alone in its binary: the descriptors it counts and the SIGPIPE
    // disposition it sets are this process's.
    let alone = begin_alone_in_binary().await;
    // SIGPIPE at its default: a stray one would kill this test binary.
    // SAFETY: a plain disposition change, restored below.
    let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    for choice in mechanisms() {
        // Warm-up: process-wide state is not a leak. The blocking
        // facade's too: its runtime (`pkit-blocking`, built at its first
        // use that needs one, as an input bigger than the pipe does, and
        // kept) is shaped like another test's runtime. Built in the
        // window, it took the check's allowance for the runtime another
        // test thread may make meanwhile (see common::fds), and when one
        // was made, under load, the two failed the check (portable run).
        let _ = cmd(choice, "cat").stdin_bytes(bytes(10)).output().await;
        let c = cmd(choice, "cat").stdin_bytes(bytes(SIZES[SIZES.len() - 1]));
        std::thread::spawn(move || c.blocking().output())
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{choice}: blocking warm-up: {e}"));
        let before = Snapshot::take();
        for n in SIZES {
            let input = bytes(n);
            let out = cmd(choice, "cat")
                .stdin_bytes(input.clone())
                .output()
                .await
                .unwrap_or_else(|e| panic!("{choice} {n}: {e}"));
            assert_eq!(
                out.stdout().len(),
                n,
                "{choice} {n}: cat saw EOF early or late"
            );
            assert_eq!(out.stdout(), &input[..], "{choice} {n}");
            // A started process, waited.
            let mut p = cmd(choice, "cat")
                .stdin_bytes(input.clone())
                .start()
                .unwrap_or_else(|e| panic!("{choice} {n}: start: {e}"));
            let out = tokio::time::timeout(Duration::from_secs(20), p.wait())
                .await
                .unwrap_or_else(|_| panic!("{choice} {n}: started cat never saw EOF"))
                .unwrap();
            assert_eq!(out.stdout().len(), n, "{choice} {n}: started");
            // Exits without reading: no error, no SIGPIPE.
            let out = cmd(choice, "true")
                .stdin_bytes(input.clone())
                .output()
                .await
                .unwrap_or_else(|e| panic!("{choice} {n}: true: {e}"));
            assert!(out.success(), "{choice} {n}: {out:?}");
            // Dropped at once.
            drop(
                cmd(choice, "cat")
                    .stdin_bytes(input.clone())
                    .start()
                    .unwrap(),
            );
            // Never reads, timed out.
            let out = cmd(choice, "sleep")
                .arg("30")
                .stdin_bytes(input.clone())
                .timeout(Duration::from_millis(200))
                .output()
                .await
                .unwrap_or_else(|e| panic!("{choice} {n}: sleep: {e}"));
            assert!(out.timed_out(), "{choice} {n}");
            // The blocking facade, on a thread without a runtime.
            let c = cmd(choice, "cat").stdin_bytes(input.clone());
            let got = std::thread::spawn(move || c.blocking().output())
                .join()
                .unwrap()
                .unwrap_or_else(|e| panic!("{choice} {n}: blocking: {e}"));
            assert_eq!(got.stdout(), &input[..], "{choice} {n}: blocking");
        }
        assert_nothing_left(&format!("{choice}: stdin sizes")).await;
        assert_none_opened_since(&before, &format!("{choice}: stdin sizes")).await;
    }
    // SAFETY: as above.
    unsafe { libc::signal(libc::SIGPIPE, old) };
    end_exclusive(
        alone,
        "stdin_bytes_of_every_size_reach_eof_and_leave_no_descriptor",
    )
    .await;
}

/// Many concurrent starts with stdin bytes: no child inherits another's
/// kept stdin end (each `cat` sees its own bytes and end of file, so none
/// holds a sibling's pipe open).
#[tokio::test]
async fn concurrent_starts_with_stdin_bytes_each_see_their_own_eof() {
    let suite = begin("concurrent_starts_with_stdin_bytes").await;
    for choice in mechanisms() {
        let runs = (0..24).map(|i| {
            let input = format!("{i}:").repeat(100 + i * 37).into_bytes();
            async move {
                // `cat` then a sleep: a leaked sibling end would hold EOF back.
                let out = sh(choice, "cat; sleep 0.2")
                    .stdin_bytes(input.clone())
                    .timeout(Duration::from_secs(20))
                    .output()
                    .await
                    .unwrap();
                assert!(!out.timed_out(), "{choice} {i}: no EOF");
                assert_eq!(out.stdout(), &input[..], "{choice} {i}");
            }
        });
        futures_join_all(runs).await;
    }
    suite.end().await;
}

/// Joins futures without a dependency.
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    fs: impl Iterator<Item = F>,
) {
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    for h in handles {
        h.await.unwrap();
    }
}

/// `escape_controls` on a 1 MB name full of controls is linear (one
/// pass), and an error's Display of such a name shows none raw.
#[tokio::test]
async fn a_huge_name_full_of_controls_is_escaped_in_one_pass() {
    let suite = begin("a_huge_name_full_of_controls").await;
    let name = "\u{1b}[2Jx\u{202e}".repeat(150_000);
    let shown = pkit::escape_controls(&name);
    assert!(!shown.contains('\u{1b}') && !shown.contains('\u{202e}'));
    assert_eq!(shown.matches(r"\u{1b}").count(), 150_000);
    let err = pkit::Command::new(format!("/nonexistent-rv34/{name}"))
        .output()
        .await
        .expect_err("no such program");
    for text in [err.to_string(), format!("{err:#}")] {
        assert!(
            !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "a control shown raw"
        );
    }
    suite.end().await;
}

/// Unicode's own line breaks, LINE SEPARATOR and PARAGRAPH SEPARATOR
/// (U+2028, U+2029: neither a control nor a bidirectional control), reach
/// a message raw: a log viewer or editor that honours them (and JSON read
/// as JavaScript before ES2019) starts a forged line there, which the rule
/// means to prevent (NEL, U+0085, is escaped as a C1 code).
#[tokio::test]
async fn unicode_line_separators_are_escaped_too() {
    let suite = begin("unicode_line_separators_are_escaped_too").await;
    for sep in ['\u{2028}', '\u{2029}'] {
        let name = format!("/nonexistent-rv34/a{sep}pkit: all good");
        assert!(
            !pkit::escape_controls(&name).contains(sep),
            "{:?} shown raw",
            sep
        );
        let err = pkit::Command::new(&name)
            .output()
            .await
            .expect_err("no such program");
        assert!(!err.to_string().contains(sep), "{:?} raw in Display", sep);
    }
    suite.end().await;
}
