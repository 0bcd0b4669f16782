//! `run()`'s text: stdout validated as UTF-8 while it is captured, then
//! turned into the `String` without validating it again. Multi-byte
//! characters that straddle reads, big captures (past the hand-off to a
//! reading thread) with invalid bytes at the start, in the middle and at
//! the end: the text is exact when the bytes are valid, and equals
//! `String::from_utf8_lossy` of them when they are not. Through the async
//! verb (the default runner: the mechanism is `PKIT_MECHANISM`'s), the
//! blocking one, a group's `run` in each mechanism, and pipelines of two
//! and three stages (whose last stage's capture is validated the same way).

mod common;

use common::*;
use pkit::{Command, Pipe};

/// What `run()` must give for `bytes`: the lossy text without its
/// trailing line endings.
fn expected(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.trim_end_matches(['\n', '\r']).to_owned()
}

/// About 3 MiB of 1-, 2-, 3- and 4-byte characters (no read size divides
/// the 10-byte pattern: reads end inside characters), then `tail`.
fn big_text(tail: &[u8]) -> Vec<u8> {
    let mut bytes = "aé€😀\n".repeat(300_000).into_bytes();
    bytes.extend_from_slice(tail);
    bytes
}

/// Valid text, and invalid bytes at the start, in the middle, at the end,
/// and a character cut short at the very end.
fn big_cases() -> Vec<(&'static str, Vec<u8>)> {
    let valid = big_text(b"last line");
    let mut at_start = valid.clone();
    at_start[0] = 0xff;
    let mut in_middle = valid.clone();
    let middle = in_middle.len() / 2;
    in_middle[middle] = 0x80;
    let at_end = big_text(b"last \xfe");
    let cut_short = big_text(b"last \xf0\x9f\x98");
    vec![
        ("valid", valid),
        ("invalid at the start", at_start),
        ("invalid in the middle", in_middle),
        ("invalid at the end", at_end),
        ("a character cut short at the end", cut_short),
    ]
}

/// `run()` of a script that writes a 4-byte character in two writes with
/// a pause between them, after `before` and followed by `after` spaces
/// (before: 40,000 bytes are validated on the reactor; 300,000, on the
/// reading thread). The pause only makes the two halves likely to arrive
/// in two reads; nothing waits on it.
fn split_write(before: usize, after: usize, second_half: &str) -> String {
    format!(
        "printf '%{before}s' ''; printf '\\360\\237'; sleep 0.3; \
         printf '{second_half}'; printf '%{after}s' ''; printf 'end'"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_character_written_in_two_halves_arrives_whole() {
    let suite = begin("a_character_written_in_two_halves_arrives_whole").await;
    for (before, after) in [(0, 0), (40_000, 10), (300_000, 300_000)] {
        // Completed: 😀 (F0 9F 98 80).
        let script = split_write(before, after, "\\230\\200");
        let want = format!("{}😀{}end", " ".repeat(before), " ".repeat(after));
        let got = Command::new("sh")
            .args(["-c", &script])
            .run()
            .await
            .expect("sh");
        assert!(got == want, "{before}+{after}: {} bytes", got.len());
        // Never completed: the two bytes are one U+FFFD, the rest kept.
        let script = split_write(before, after, "x");
        let bytes = [
            " ".repeat(before).as_bytes(),
            b"\xf0\x9fx",
            " ".repeat(after).as_bytes(),
            b"end",
        ]
        .concat();
        let got = Command::new("sh")
            .args(["-c", &script])
            .run()
            .await
            .expect("sh");
        assert!(got == expected(&bytes), "{before}+{after}, cut short");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_text_with_and_without_invalid_bytes() {
    let suite = begin("big_text_with_and_without_invalid_bytes").await;
    for (case, bytes) in big_cases() {
        let file = TempPath::new("run-text");
        std::fs::write(file.path(), &bytes).expect("write the text");
        let want = expected(&bytes);
        if case == "valid" {
            assert_eq!(want.as_bytes(), &bytes[..bytes.len()], "valid stays exact");
        }
        // The default runner (the mechanism is PKIT_MECHANISM's).
        let got = Command::new("cat")
            .arg(file.path())
            .run()
            .await
            .expect("cat");
        assert!(got == want, "{case}: run() gave {} bytes", got.len());
        // A group's run, in each mechanism.
        for choice in mechanisms() {
            let got = group(choice)
                .run(&Command::new("cat").arg(file.path()))
                .await
                .expect("cat");
            assert!(got == want, "{case}, {choice}: Group::run");
        }
        // The blocking facade, from a plain thread.
        let path = file.path().to_owned();
        let got = std::thread::spawn(move || Command::new("cat").arg(path).blocking().run())
            .join()
            .expect("the thread")
            .expect("cat");
        assert!(got == want, "{case}: blocking run()");
    }
    suite.end().await;
}

/// The same bytes through `output()` stay exact, and a `SystemRunner` given
/// to the command (`Command::runner`) gives the same text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_and_a_runners_run_agree() {
    let suite = begin("output_and_a_runners_run_agree").await;
    for (case, bytes) in big_cases() {
        let file = TempPath::new("run-text-output");
        std::fs::write(file.path(), &bytes).expect("write the text");
        for choice in mechanisms() {
            let out = cmd(choice, "cat")
                .arg(file.path())
                .output()
                .await
                .expect("cat");
            assert!(out.stdout() == &bytes[..], "{case}, {choice}: output()");
            let got = cmd(choice, "cat")
                .arg(file.path())
                .run()
                .await
                .expect("cat");
            assert!(got == expected(&bytes), "{case}, {choice}: run()");
        }
    }
    suite.end().await;
}

/// A pipeline's `run()` gives the same text as a command's: the last
/// stage's bytes pass through `cat`s (two and three stages), in each
/// mechanism, with stages given a runner of their own, and blocking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelines_run_gives_the_same_text() {
    let suite = begin("a_pipelines_run_gives_the_same_text").await;
    for (case, bytes) in big_cases() {
        let file = TempPath::new("run-text-pipe");
        std::fs::write(file.path(), &bytes).expect("write the text");
        let want = expected(&bytes);
        let read = || Command::new("cat").arg(file.path());
        for choice in mechanisms() {
            let two = read().pipe(Command::new("cat")).mechanism(choice);
            let got = two.run().await.expect("cat | cat");
            assert!(
                got == want,
                "{case}, {choice}: two stages gave {} bytes",
                got.len()
            );
            let three = Pipe::new([read(), Command::new("cat"), Command::new("cat")]);
            let got = three
                .mechanism(choice)
                .run()
                .await
                .expect("cat | cat | cat");
            assert!(got == want, "{case}, {choice}: three stages");
            // Stages with a runner of their own (Runner::start).
            let own = cmd(choice, "cat").arg(file.path()).pipe(cmd(choice, "cat"));
            let got = own
                .mechanism(choice)
                .run()
                .await
                .expect("runners' cat | cat");
            assert!(got == want, "{case}, {choice}: stages' own runners");
            // output() keeps the bytes exact.
            let out = read().pipe(Command::new("cat")).mechanism(choice);
            let out = out.output().await.expect("cat | cat");
            assert!(out.stdout() == &bytes[..], "{case}, {choice}: output()");
        }
        let pipe = read().pipe(Command::new("cat"));
        let got = std::thread::spawn(move || pipe.blocking().run())
            .join()
            .expect("the thread")
            .expect("cat | cat");
        assert!(got == want, "{case}: blocking run()");
    }
    suite.end().await;
}

/// A 4-byte character written in two halves by the first stage reaches
/// the last one whole (or, never completed, is one U+FFFD), through one
/// and two `cat`s, at the start, on the reactor's reads and on the
/// reading thread's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelines_character_written_in_two_halves_arrives_whole() {
    let suite = begin("a_pipelines_character_written_in_two_halves_arrives_whole").await;
    for choice in mechanisms() {
        for (before, after) in [(0, 0), (40_000, 10), (300_000, 300_000)] {
            let pad = |n: usize| " ".repeat(n);
            let whole = format!("{}😀{}end", pad(before), pad(after));
            let cut = [
                pad(before).as_bytes(),
                b"\xf0\x9fx",
                pad(after).as_bytes(),
                b"end",
            ]
            .concat();
            for (half, want) in [("\\230\\200", whole), ("x", expected(&cut))] {
                let script = split_write(before, after, half);
                let writer = || Command::new("sh").args(["-c", &script]);
                let two = writer().pipe(Command::new("cat")).mechanism(choice);
                let got = two.run().await.expect("sh | cat");
                assert!(
                    got == want,
                    "{choice}, {before}+{after} ({half}): two stages"
                );
                let three = Pipe::new([writer(), Command::new("cat"), Command::new("cat")]);
                let got = three.mechanism(choice).run().await.expect("sh | cat | cat");
                assert!(
                    got == want,
                    "{choice}, {before}+{after} ({half}): three stages"
                );
            }
        }
    }
    suite.end().await;
}
