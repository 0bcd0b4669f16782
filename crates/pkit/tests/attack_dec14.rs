#![cfg(target_os = "linux")]
//! attack20: a hostile round on areas attacked least: a cancel token
//! cancelled during a timeout's grace (verbs and started processes), the
//! terminal-escape stripper (`DecoderFactory::utf8_strip_vt`) on lines a
//! program writes through a pipe, line splitting at odd chunk boundaries
//! (CR, CRLF split across reads, NUL), a started child's stdin
//! (`ChildStdin`) to a child that never reads, and the verbs beyond the
//! four (`first_line`, `parse`, `ok_codes`). Every mechanism
//! (`mechanisms()`; the three runs of the binary: unset,
//! `PKIT_MECHANISM=pgroup`, `PKIT_MECHANISM=portable`).
//!
//! Areas, and why: earlier rounds attacked the core's ends, supervision,
//! pty sessions and caps hard; these had few or no hostile tests: the
//! bounds' interplay (a cancel during a timeout's grace), the VT stripper
//! on piped output, the line splitter's CR handling at read boundaries, a
//! started child's stdin handle, the verbs beyond the four, hostile
//! decoders and tees, and a root owner's PATH lookup for a child that
//! drops to nobody.
//!
//! What broke, fixed here: `ChildStdin::shutdown` sent no end of file (on
//! Unix it did nothing; documented to close the pipe): write, shutdown,
//! wait hung on any program reading to its end (HIGH,
//! [`shutdown_of_a_childs_stdin_sends_end_of_file`],
//! [`shutdown_of_a_pipelines_stdin_reaches_its_head`]); `first_line` left a
//! piped stdin open where every other verb closes it
//! ([`first_line_closes_a_piped_stdin_as_the_other_verbs_do`], MEDIUM); the
//! VT stripper ate the line feed after a stray ESC or a cut sequence,
//! joining two lines, and took everything after an OSC cancelled by CAN or
//! SUB for the string
//! ([`a_stray_escape_before_a_line_feed_keeps_the_lines_apart`],
//! [`can_and_sub_end_an_escape_string`], LOW).
//!
//! Fixed since (grace2): a cancel token cancelled during a timeout's grace
//! waited out the grace, in verbs, started processes and pipelines
//! (MEDIUM; the rule is now symmetric: a timeout's deadline ends a cancel's
//! grace too, [`a_timeout_during_a_cancels_grace_ends_it_and_leaves_it_cancelled`]);
//! a tee writer that never takes a byte held `output` for ever past its
//! timeout (MEDIUM); a decoder's panic was resumed in `wait` (LOW).
//!
//! Fixed since (lows4): `first_line` took the last piece of a cut line for
//! a line (LOW; a cut line is now offered as its first piece only,
//! [`first_line_does_not_take_a_piece_of_a_cut_line_for_a_line`]).
//!
//! Fixed since (lows4), too: a PATH lookup for a child that drops to
//! nobody judged candidates with root's rights (LOW; it is now judged with
//! the child's ids, [`a_path_lookup_for_nobody_skips_what_only_root_may_run`]).
//! The rest are probes that held.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pkit::{CancelToken, Command, DecoderFactory, Error, Outcome, Signal};
use tokio::io::AsyncWriteExt;

/// How long a promptly ended run may take in these tests (generous: a
/// loaded machine), far below the graces they set.
const PROMPT: Duration = Duration::from_secs(12);

/// A script that records its pid and its `sleep` child's in `$1`, ignores
/// SIGTERM (writing `term` to `$1.term` when it arrives), and waits.
const IGNORES_TERM: &str = r#"trap 'echo term > "$1.term"' TERM; sleep 300 & echo $$ > "$1"; echo $! >> "$1"; echo done >> "$1"; while :; do wait; done"#;

/// The timeout of a run of [`IGNORES_TERM`]: its shell must have set its
/// trap by then (a loaded machine can hold a shell's start-up up for a
/// second; killed by the SIGTERM before, it never writes its pids).
const SHELL_READY: Duration = Duration::from_secs(2);

/// Waits until `path` exists (the trap's mark).
async fn wait_for_file(path: &str, what: &str) {
    let deadline = Instant::now() + DEADLINE * 3;
    while std::fs::metadata(path).is_err() {
        assert!(Instant::now() < deadline, "{what}: {path} never appeared");
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------
// A cancel token during a timeout's grace
// ---------------------------------------------------------------------------

/// A verb whose timeout fired (SIGTERM, a long grace) and whose tree
/// ignores SIGTERM: cancelling the token then ends the run at once (the
/// token's default is SIGKILL at once), not after the timeout's grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_a_verbs_timeout_grace_ends_the_run_at_once() {
    let suite = begin("a_cancel_during_a_verbs_timeout_grace_ends_the_run_at_once").await;
    // The mechanisms at once, each with its own group and files.
    all_at_once(mechanisms(), |choice| async move {
        let file = TempPath::new("a20-verb-grace");
        let term = format!("{}.term", file.as_str());
        let token = CancelToken::new();
        let cmd = sh(choice, IGNORES_TERM)
            .arg(file.as_str())
            .stdout(pkit::Stdio::Null)
            .timeout(SHELL_READY)
            .timeout_signal(Signal::Term)
            .grace(Duration::from_secs(120))
            .cancel_token(&token);
        let run = tokio::spawn(async move { cmd.output().await });
        let pids = file.wait_pids().await;
        wait_for_file(&term, &format!("{choice}: the timeout's SIGTERM")).await;
        let cancelled_at = Instant::now();
        token.cancel();
        let ended = tokio::time::timeout(PROMPT, run).await;
        let _ = std::fs::remove_file(&term);
        let Ok(ended) = ended else {
            // The run's task is dropped with the runtime: its tree dies
            // then; end it now so nothing is left.
            for &pid in &pids {
                kill_pid(pid);
            }
            panic!(
                "{choice}: the cancelled run still waits out its timeout's grace after {PROMPT:?}"
            );
        };
        let r = ended.expect("the run's task");
        assert!(
            matches!(&r, Err(e) if e.is_cancelled()) || matches!(&r, Ok(out) if out.timed_out()),
            "{choice}: {r:?}"
        );
        assert!(cancelled_at.elapsed() < PROMPT, "{choice}");
        assert_gone(&pids, &format!("{choice}: the cancelled tree")).await;
    })
    .await;
    suite.end().await;
}

/// The same for a started process: its watch's timeout fired, the subtree
/// ignores SIGTERM, the token is cancelled during the grace: `wait`
/// returns at once and the subtree is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_a_started_processs_timeout_grace_ends_it_at_once() {
    let suite = begin("a_cancel_during_a_started_processs_timeout_grace_ends_it_at_once").await;
    // The mechanisms at once, each with its own group and files.
    all_at_once(mechanisms(), |choice| async move {
        let file = TempPath::new("a20-start-grace");
        let term = format!("{}.term", file.as_str());
        let token = CancelToken::new();
        let cmd = Command::new("sh")
            .args(["-c", IGNORES_TERM, "sh", file.as_str()])
            .stdout(pkit::Stdio::Null)
            .timeout(SHELL_READY)
            .timeout_signal(Signal::Term)
            .grace(Duration::from_secs(120))
            .cancel_token(&token);
        let group = group(choice);
        let mut proc = group
            .start(&cmd)
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        let pids = file.wait_pids().await;
        wait_for_file(&term, &format!("{choice}: the timeout's SIGTERM")).await;
        token.cancel();
        let waited = tokio::time::timeout(PROMPT, proc.wait()).await;
        let _ = std::fs::remove_file(&term);
        let Ok(r) = waited else {
            drop(proc);
            drop(group);
            panic!("{choice}: the cancelled process still waits out its timeout's grace after {PROMPT:?}");
        };
        assert!(
            matches!(&r, Err(e) if e.is_cancelled()) || matches!(&r, Ok(out) if out.timed_out()),
            "{choice}: {r:?}"
        );
        assert_gone(&pids, &format!("{choice}: the cancelled subtree")).await;
        drop(proc);
        drop(group);
    })
    .await;
    suite.end().await;
}

/// The same for a pipeline (`Pipe::output`): its timeout fired, a stage
/// ignores SIGTERM, the token is cancelled during the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_a_pipelines_timeout_grace_ends_it_at_once() {
    let suite = begin("a_cancel_during_a_pipelines_timeout_grace_ends_it_at_once").await;
    // The mechanisms at once, each with its own group and files.
    all_at_once(mechanisms(), |choice| async move {
        let file = TempPath::new("a20-pipe-grace");
        let term = format!("{}.term", file.as_str());
        let token = CancelToken::new();
        let pipe = pkit::Pipe::new([
            Command::new("sh").args(["-c", IGNORES_TERM, "sh", file.as_str()]),
            Command::new("cat"),
        ])
        .mechanism(choice)
        .timeout(SHELL_READY)
        .timeout_signal(Signal::Term)
        .grace(Duration::from_secs(120))
        .cancel_token(&token);
        let run = tokio::spawn(async move { pipe.output().await });
        let pids = file.wait_pids().await;
        wait_for_file(&term, &format!("{choice}: the timeout's SIGTERM")).await;
        token.cancel();
        let ended = tokio::time::timeout(PROMPT, run).await;
        let _ = std::fs::remove_file(&term);
        let Ok(ended) = ended else {
            for &pid in &pids {
                kill_pid(pid);
            }
            panic!("{choice}: the cancelled pipeline still waits out its timeout's grace after {PROMPT:?}");
        };
        let r = ended.expect("the run's task");
        assert!(
            matches!(&r, Err(e) if e.is_cancelled()) || matches!(&r, Ok(out) if out.timed_out()),
            "{choice}: {r:?}"
        );
        assert_gone(&pids, &format!("{choice}: the cancelled pipeline")).await;
    })
    .await;
    suite.end().await;
}

/// The mirror of the three above (grace2: the rule made symmetric): a
/// timeout whose deadline passes during a cancel's grace ends that grace
/// at once (SIGKILL), and the run stays `Cancelled` (the cancel came
/// first). A cancel's grace that ends before the deadline is kept whole.
/// (attack20's probe held the other way: the timeout waited for the
/// cancel's grace; a run with a timeout then had no bound during it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_during_a_cancels_grace_ends_it_and_leaves_it_cancelled() {
    let suite = begin("a_timeout_during_a_cancels_grace_ends_it_and_leaves_it_cancelled").await;
    // The trap's work takes 8 s: past the timeout (4 s after start), whose
    // deadline cuts it; then 1 s, within a 60 s timeout. Every mechanism's
    // two cases at once, each with its own file, token and run.
    let cases = mechanisms()
        .into_iter()
        .flat_map(|c| [(c, 4, 8, true), (c, 60, 1, false)]);
    all_at_once(cases, |(choice, timeout, work, cut)| async move {
        {
            let file = TempPath::new("a20-cancel-grace");
            let token = CancelToken::new();
            let script = format!(
                r#"trap 'kill $!; sleep {work}; echo bye >> "$1"; exit 0' INT; sleep 300 & echo $$ > "$1"; echo done >> "$1"; wait"#
            );
            let cmd = sh(choice, &script)
                .arg(file.as_str())
                .stdout(pkit::Stdio::Null)
                .timeout(Duration::from_secs(timeout))
                .cancel_token(&token)
                .cancel_signal(Signal::Int)
                .cancel_grace(Duration::from_secs(30));
            let run = tokio::spawn(async move { cmd.output().await });
            let pids = file.wait_pids().await;
            token.cancel();
            let r = tokio::time::timeout(DEADLINE * 3, run)
                .await
                .unwrap_or_else(|_| panic!("{choice}: the cancelled run never ended"))
                .expect("the run's task");
            assert!(matches!(&r, Err(e) if e.is_cancelled()), "{choice}: {r:?}");
            let text = std::fs::read_to_string(file.path()).unwrap_or_default();
            assert_eq!(
                !text.contains("bye"),
                cut,
                "{choice}: timeout {timeout} s, the trap's work {work} s: {text:?}"
            );
            assert_gone(&pids, &format!("{choice}: the cancelled tree")).await;
        }
    })
    .await;
    suite.end().await;
}

// ---------------------------------------------------------------------------
// The terminal-escape stripper on piped lines
// ---------------------------------------------------------------------------

/// The lines `script` writes to stdout, decoded by `decoder`.
async fn lines_of(
    choice: pkit::MechanismChoice,
    script: &str,
    decoder: Option<DecoderFactory>,
) -> Vec<String> {
    let mut cmd = Command::new("sh")
        .args(["-c", script])
        .stream_lines()
        .timeout(Duration::from_secs(30));
    if let Some(d) = decoder {
        cmd = cmd.decoder(d);
    }
    let group = group(choice);
    let mut proc = group
        .start(&cmd)
        .unwrap_or_else(|e| panic!("{choice}: {e}"));
    let mut lines = proc.lines();
    let mut got = Vec::new();
    while let Some(l) = lines.next_line().await {
        got.push(l.text);
    }
    drop(lines);
    let out = proc
        .wait()
        .await
        .unwrap_or_else(|e| panic!("{choice}: {e}"));
    assert_eq!(out.outcome(), Outcome::Exited(0), "{choice}: {out:?}");
    got
}

/// A stray ESC, or an escape sequence the program cut short, right before
/// a line feed: a terminal still moves to the next line (a C0 control
/// inside an escape or control sequence is executed, ECMA-48 / the DEC
/// parser), so the next line must come as a line of its own; the
/// stripper ate the `\n` and joined the two lines, and a `wait_for_line`
/// for the second never matched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_escape_before_a_line_feed_keeps_the_lines_apart() {
    let suite = begin("a_stray_escape_before_a_line_feed_keeps_the_lines_apart").await;
    for choice in mechanisms() {
        for (script, what) in [
            (r"printf 'a\033\nready\n'", "a lone ESC"),
            (r"printf 'a\033[\nready\n'", "ESC ["),
            (
                r"printf 'a\033[1;3\nready\n'",
                "a CSI cut in its parameters",
            ),
            (r"printf 'a\033(\nready\n'", "ESC ( with no final byte"),
        ] {
            let got = lines_of(choice, script, Some(DecoderFactory::utf8_strip_vt())).await;
            assert_eq!(got, ["a", "ready"], "{choice}: {what}");
        }
    }
    suite.end().await;
}

/// CAN (0x18) and SUB (0x1a) cancel any escape sequence, a string (OSC,
/// DCS) included (ECMA-48 / the DEC parser's "anywhere" transitions): what
/// follows is text again. The stripper went on taking everything after an
/// OSC cancelled so for its title, the lines after it included, until a
/// BEL or an ST came (here: never).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn can_and_sub_end_an_escape_string() {
    let suite = begin("can_and_sub_end_an_escape_string").await;
    for choice in mechanisms() {
        for (script, what) in [
            (r"printf '\033]0;title\030after\nready\n'", "OSC then CAN"),
            (r"printf '\033Pq#0\032after\nready\n'", "DCS then SUB"),
        ] {
            let got = lines_of(choice, script, Some(DecoderFactory::utf8_strip_vt())).await;
            assert_eq!(got, ["after", "ready"], "{choice}: {what}");
        }
    }
    suite.end().await;
}

/// Probe: CR, CRLF split across reads (the program sleeps between the
/// `\r` and the `\n`), a lone CR inside a line, CR CR LF, and NUL bytes
/// come through the line splitter as the docs say (one `\r` before the
/// `\n` removed, nothing else), with and without a decoder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crlf_split_across_reads_and_odd_bytes_split_as_documented() {
    let suite = begin("crlf_split_across_reads_and_odd_bytes_split_as_documented").await;
    let script = r"printf 'a\r'; sleep 0.3; printf '\nb\r\r'; sleep 0.3; printf '\nc\rd\n'; printf 'n\000u\000l\r\n'; sleep 0.3; printf '\r'; sleep 0.3; printf '\n'; printf 'e\033[31m\r'; sleep 0.3; printf '\033[0m\n'; printf 'last\r'";
    // A `\r` that ends the output (no `\n` after it) goes as a line
    // ending too.
    let want = ["a", "b\r", "c\rd", "n\0u\0l", "", "e", "last"];
    // The mechanisms at once, each with its own group and files.
    all_at_once(mechanisms(), |choice| async move {
        let plain = lines_of(choice, script, None).await;
        let plain_want: Vec<String> = want
            .iter()
            .map(|l| {
                if *l == "e" {
                    "e\x1b[31m\r\x1b[0m".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert_eq!(plain, plain_want, "{choice}: no decoder");
        let utf8 = lines_of(choice, script, Some(DecoderFactory::utf8())).await;
        assert_eq!(utf8, plain_want, "{choice}: utf8");
        let stripped = lines_of(choice, script, Some(DecoderFactory::utf8_strip_vt())).await;
        let stripped_want: Vec<String> = want
            .iter()
            .map(|l| {
                if *l == "n\0u\0l" {
                    "nul".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert_eq!(stripped, stripped_want, "{choice}: utf8_strip_vt");
    })
    .await;
    suite.end().await;
}

/// Probe: a multi-byte character and an escape sequence each cut across
/// two reads (the program sleeps in the middle of both) come out whole
/// through `utf8_strip_vt`; the capture of `output` keeps the bytes as
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_character_and_a_sequence_cut_across_reads_are_stripped_whole() {
    let suite = begin("a_character_and_a_sequence_cut_across_reads_are_stripped_whole").await;
    let script = r"printf '\342\234'; sleep 0.3; printf '\223 \033[38;5'; sleep 0.3; printf ';196mred\033]0;ti'; sleep 0.3; printf 'tle\033'; sleep 0.3; printf '\\ok\n'";
    // The mechanisms at once, each with its own group and files.
    all_at_once(mechanisms(), |choice| async move {
        let got = lines_of(choice, script, Some(DecoderFactory::utf8_strip_vt())).await;
        assert_eq!(got, ["\u{2713} redok"], "{choice}");
        let out = sh(choice, script)
            .timeout(Duration::from_secs(30))
            .output()
            .await
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert_eq!(
            out.stdout(),
            "\u{2713} \x1b[38;5;196mred\x1b]0;title\x1b\\ok\n".as_bytes(),
            "{choice}"
        );
    })
    .await;
    suite.end().await;
}

// ---------------------------------------------------------------------------
// A started child's stdin
// ---------------------------------------------------------------------------

/// Probe: a caller writing a big input to a child that never reads is
/// blocked (the pipe is full), and is released with an error once the
/// child's timeout ends it (no hang, no SIGPIPE to this process), in
/// every mechanism; a second write fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_blocked_on_a_child_that_never_reads_fails_when_it_times_out() {
    let suite = begin("a_write_blocked_on_a_child_that_never_reads_fails_when_it_times_out").await;
    // The mechanisms at once, each with its own group and files.
    all_at_once(mechanisms(), |choice| async move {
        let cmd = Command::new("sleep")
            .arg("300")
            .stdin_piped()
            .timeout(Duration::from_secs(1));
        let group = group(choice);
        let mut proc = group
            .start(&cmd)
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        let pid = proc.pid();
        let mut stdin = proc.take_stdin().expect("a piped stdin");
        let big = vec![b'x'; 8 << 20];
        let wrote = tokio::time::timeout(DEADLINE * 2, stdin.write_all(&big))
            .await
            .unwrap_or_else(|_| panic!("{choice}: the write still blocks after the timeout"));
        let e = wrote.expect_err("a write of 8 MiB to a child that never read it succeeded");
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{choice}: {e}");
        let again = stdin.write_all(b"more").await;
        assert!(
            again.is_err(),
            "{choice}: a write after the child's end succeeded"
        );
        let out = proc
            .wait()
            .await
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert_eq!(out.outcome(), Outcome::TimedOut, "{choice}");
        assert_gone(&[pid], &format!("{choice}: the sleeper")).await;
        drop(stdin);
        drop(proc);
        drop(group);
    })
    .await;
    suite.end().await;
}

/// `ChildStdin::shutdown` sends end of file, as `RunningProcess::stdin`,
/// `Command::stdin_piped` and `ChildStdin` itself say ("drop it, or
/// `shutdown`"). It did nothing (the pipe's write end stayed open until
/// the handle was dropped): `write_all`, `shutdown`, then `wait` with the
/// handle still held hung for ever on `wc`, `sort`, `cat`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_of_a_childs_stdin_sends_end_of_file() {
    let suite = begin("shutdown_of_a_childs_stdin_sends_end_of_file").await;
    for choice in mechanisms() {
        let cmd = Command::new("wc")
            .arg("-c")
            .stdin_piped()
            .timeout(Duration::from_secs(60));
        let group = group(choice);
        let mut proc = group
            .start(&cmd)
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        let stdin = proc.stdin().expect("a piped stdin");
        stdin.write_all(b"hello").await.expect("a write");
        stdin.shutdown().await.expect("the shutdown");
        // A write after the shutdown is an error, not a write.
        let e = stdin
            .write_all(b"more")
            .await
            .expect_err("a write after shutdown");
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{choice}: {e}");
        let out = tokio::time::timeout(PROMPT, proc.wait())
            .await
            .unwrap_or_else(|_| panic!("{choice}: `wc` never saw the end of file after shutdown"))
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert_eq!(out.outcome(), Outcome::Exited(0), "{choice}: {out:?}");
        assert_eq!(out.stdout_str().trim(), "5", "{choice}");
        drop(proc);
        drop(group);
    }
    suite.end().await;
}

/// Probe (with the fix above): a started pipeline's stdin handle is the
/// same `ChildStdin`: its `shutdown` reaches the head as end of file, and
/// the last stage's answer comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_of_a_pipelines_stdin_reaches_its_head() {
    let suite = begin("shutdown_of_a_pipelines_stdin_reaches_its_head").await;
    for choice in mechanisms() {
        let pipe = pkit::Pipe::new([Command::new("cat"), Command::new("wc").arg("-c")])
            .mechanism(choice)
            .stdin_piped()
            .timeout(Duration::from_secs(60));
        let mut running = pipe.start().unwrap_or_else(|e| panic!("{choice}: {e}"));
        let stdin = running.stdin().expect("a piped stdin");
        stdin.write_all(b"hello!").await.expect("a write");
        stdin.shutdown().await.expect("the shutdown");
        let out = tokio::time::timeout(PROMPT, running.wait())
            .await
            .unwrap_or_else(|_| panic!("{choice}: the head never saw the end of file"))
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert_eq!(out.outcome(), Outcome::Exited(0), "{choice}: {out:?}");
        assert_eq!(out.stdout_str().trim(), "6", "{choice}");
        drop(running);
    }
    suite.end().await;
}

/// Probe: a write future dropped mid-write (the caller's own timeout, with
/// the pipe full) leaves the handle usable: once the child reads, later
/// writes and the end of file (the handle dropped) arrive, and the child
/// sees a prefix of the first write followed by the later ones (what a
/// dropped `write_all` wrote is all that was written; nothing twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_dropped_mid_write_leaves_the_stdin_usable() {
    let suite = begin("a_write_dropped_mid_write_leaves_the_stdin_usable").await;
    for choice in mechanisms() {
        let go = TempPath::new("a20-go");
        // Reads only once the go file exists: the first write fills the
        // pipe and is dropped.
        let script = r#"while [ ! -e "$1" ]; do sleep 0.05; done; tr -d x | wc -c"#;
        let cmd = Command::new("sh")
            .args(["-c", script, "sh", go.as_str()])
            .stdin_piped()
            .timeout(Duration::from_secs(60));
        let group = group(choice);
        let mut proc = group
            .start(&cmd)
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        let mut stdin = proc.take_stdin().expect("a piped stdin");
        let big = vec![b'x'; 4 << 20];
        let dropped = tokio::time::timeout(Duration::from_millis(300), stdin.write_all(&big)).await;
        assert!(dropped.is_err(), "{choice}: 4 MiB fit in the pipe unread");
        std::fs::write(go.path(), b"").expect("the go file");
        stdin.write_all(b"tail!").await.expect("a later write");
        drop(stdin);
        let out = tokio::time::timeout(DEADLINE * 3, proc.wait())
            .await
            .unwrap_or_else(|_| panic!("{choice}: the reader never saw the end of file"))
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert_eq!(out.outcome(), Outcome::Exited(0), "{choice}: {out:?}");
        // Every byte but the x's of the dropped write: "tail!", once.
        assert_eq!(out.stdout_str().trim(), "5", "{choice}");
        drop(proc);
        drop(group);
    }
    suite.end().await;
}

// ---------------------------------------------------------------------------
// first_line, parse, ok_codes
// ---------------------------------------------------------------------------

/// `first_line` on a command whose stdin is piped: a verb has no handle to
/// write it, so (as `output` and `run` do) its stdin must be closed at once
/// and a program that reads it to its end goes on. It was left open: `cat`
/// waited for input for ever (here: until the test's deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_line_closes_a_piped_stdin_as_the_other_verbs_do() {
    let suite = begin("first_line_closes_a_piped_stdin_as_the_other_verbs_do").await;
    for choice in mechanisms() {
        let cmd = sh(choice, "cat; echo after-eof; sleep 300")
            .stdin_piped()
            .timeout(Duration::from_secs(60));
        // `run` closes it at once (the rule `first_line` must share).
        let quick = sh(choice, "cat; echo after-eof")
            .stdin_piped()
            .timeout(Duration::from_secs(60));
        assert_eq!(
            quick
                .run()
                .await
                .unwrap_or_else(|e| panic!("{choice}: {e}")),
            "after-eof",
            "{choice}"
        );
        let found = tokio::time::timeout(PROMPT, cmd.first_line(|l| l == "after-eof")).await;
        let found = found.unwrap_or_else(|_| {
            panic!("{choice}: first_line still waits on a program reading its piped stdin")
        });
        assert_eq!(
            found.unwrap_or_else(|e| panic!("{choice}: {e}")).as_deref(),
            Some("after-eof"),
            "{choice}"
        );
    }
    suite.end().await;
}

/// `first_line` hands its predicate the text of each line, without the
/// `partial` mark a line stream has: the last piece of a line cut by
/// `max_line_bytes` passes for a line of its own. A program writing
/// `<16 x>ready` on one line made `first_line(|l| l == "ready")` answer
/// `ready`, a line it never wrote. Fixed (lows4): a cut line is offered as
/// its first piece only (documented); the pieces after it are skipped, and
/// the line after the cut one is offered as itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_line_does_not_take_a_piece_of_a_cut_line_for_a_line() {
    let suite = begin("first_line_does_not_take_a_piece_of_a_cut_line_for_a_line").await;
    for choice in mechanisms() {
        let cmd = sh(choice, "printf 'xxxxxxxxxxxxxxxxready\\n'; echo end")
            .max_line_bytes(16)
            .timeout(Duration::from_secs(30));
        let found = cmd
            .first_line(|l| l == "ready")
            .await
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert_eq!(found, None, "{choice}: no line `ready` was written");
        // Three pieces: only the first is offered, and it is what a match
        // returns; the line after the cut one is a line again.
        let cmd = sh(
            choice,
            "printf 'aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbcc\\n'; echo cc; echo bbbbbbbbbbbbbbbb",
        )
        .max_line_bytes(16)
        .timeout(Duration::from_secs(30));
        let mut seen = Vec::new();
        let found = cmd
            .first_line(|l| {
                seen.push(l.to_owned());
                l.starts_with('b')
            })
            .await
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert_eq!(found.as_deref(), Some("bbbbbbbbbbbbbbbb"), "{choice}");
        assert_eq!(
            seen,
            ["aaaaaaaaaaaaaaaa", "cc", "bbbbbbbbbbbbbbbb"],
            "{choice}: the lines offered"
        );
        let found = cmd
            .first_line(|l| l.starts_with('a'))
            .await
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert_eq!(found.as_deref(), Some("aaaaaaaaaaaaaaaa"), "{choice}");
    }
    suite.end().await;
}

/// Probe: `first_line` whose program closes its stdout and lives on ends
/// by the command's timeout (the error, never a hang), and the tree is
/// gone; a program that exits without the line gives `Ok(None)` under
/// `ok_codes` that accept its code, the error otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_line_without_a_match_ends_by_the_timeout_or_the_exit() {
    let suite = begin("first_line_without_a_match_ends_by_the_timeout_or_the_exit").await;
    // The mechanisms at once, each with its own group and files.
    all_at_once(mechanisms(), |choice| async move {
        let file = TempPath::new("a20-first-closed");
        let cmd = sh(
            choice,
            r#"echo nope; exec >&- 2>&-; echo $$ > "$1"; echo done >> "$1"; exec sleep 300"#,
        )
        .arg(file.as_str())
        .timeout(Duration::from_secs(1));
        let r = tokio::time::timeout(DEADLINE * 3, cmd.first_line(|l| l == "yes"))
            .await
            .unwrap_or_else(|_| panic!("{choice}: first_line outlived the timeout"));
        assert!(matches!(r, Err(Error::Timeout(_))), "{choice}: {r:?}");
        let pids = file.wait_pids().await;
        assert_gone(&pids, &format!("{choice}: the closer")).await;

        let three = sh(choice, "echo nope; exit 3").timeout(Duration::from_secs(30));
        let r = three
            .clone()
            .ok_codes([0, 3])
            .first_line(|l| l == "yes")
            .await;
        assert!(matches!(r, Ok(None)), "{choice}: {r:?}");
        let r = three.first_line(|l| l == "yes").await;
        assert!(
            matches!(&r, Err(Error::NonZeroExit(out)) if out.code() == Some(3)),
            "{choice}: {r:?}"
        );
    })
    .await;
    suite.end().await;
}

/// Probe: odd `ok_codes`: an empty list accepts nothing (exit 0 is an
/// error: `NonZeroExit` with code 0), a code beyond 255 or below 0 never
/// matches the 8 bits a process exits with (259 does not accept 3), a
/// signal is never a code; `parse` reads a CRLF answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_ok_codes_and_a_crlf_answer_behave_as_documented() {
    let suite = begin("odd_ok_codes_and_a_crlf_answer_behave_as_documented").await;
    for choice in mechanisms() {
        let zero = sh(choice, "exit 0").ok_codes([]);
        let r = zero.run().await;
        assert!(
            matches!(&r, Err(Error::NonZeroExit(out)) if out.code() == Some(0)),
            "{choice}: {r:?}"
        );
        let r = zero.exit_code().await;
        assert!(matches!(&r, Err(Error::NonZeroExit(_))), "{choice}: {r:?}");
        let three = sh(choice, "exit 3").ok_codes([259, -253, 3 - 256]);
        let r = three.exit_code().await;
        assert!(
            matches!(&r, Err(Error::NonZeroExit(out)) if out.code() == Some(3)),
            "{choice}: {r:?}"
        );
        let killed = sh(choice, "kill -TERM $$").ok_codes([0, 15, 143, -15]);
        let r = killed.run().await;
        assert!(matches!(&r, Err(Error::Signalled(_))), "{choice}: {r:?}");
        let n: u64 = sh(choice, r"printf ' 42\r\n'")
            .parse()
            .await
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert_eq!(n, 42, "{choice}");
    }
    suite.end().await;
}

// ---------------------------------------------------------------------------
// Hostile decoders and tees
// ---------------------------------------------------------------------------

/// A decoder that panics (a caller's own `Decoder`, on its first input):
/// the run neither hangs nor takes this process down; the line stream
/// ends, `wait` returns within the command's timeout, and the tree is
/// gone. Held but for the last: `wait` resumes the decoder's panic in the
/// caller (where a line callback's panic, a tee's and a stdin reader's
/// are contained: the callback or tee disabled, the reader an error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decoder_that_panics_ends_neither_in_a_hang_nor_a_crash() {
    struct Panics;
    impl pkit::Decoder for Panics {
        fn decode(&mut self, input: &[u8], _last: bool, _out: &mut String) {
            if !input.is_empty() {
                panic!("attack20: a hostile decoder");
            }
        }
    }
    let suite = begin("a_decoder_that_panics_ends_neither_in_a_hang_nor_a_crash").await;
    // The mechanisms at once, each with its own group and files.
    all_at_once(mechanisms(), |choice| async move {
        let file = TempPath::new("a20-decoder");
        let cmd = Command::new("sh")
            .args([
                "-c",
                r#"sleep 300 & echo $! > "$1"; echo done >> "$1"; for i in 1 2 3; do echo line $i; done; yes | head -c 1000000; wait"#,
                "sh",
                file.as_str(),
            ])
            .stream_lines()
            .decoder(DecoderFactory::new(|| Panics))
            .timeout(Duration::from_secs(2));
        let group = group(choice);
        let mut proc = group
            .start(&cmd)
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        let pids = file.wait_pids().await;
        let mut lines = proc.lines();
        let drained = tokio::time::timeout(DEADLINE * 2, async {
            while lines.next_line().await.is_some() {}
        })
        .await;
        assert!(drained.is_ok(), "{choice}: the line stream never ended");
        drop(lines);
        // On a task of its own: a panic resumed by `wait` shows as one.
        let waited = tokio::spawn(async move {
            let r = proc.wait().await;
            (r, proc)
        });
        let waited = tokio::time::timeout(DEADLINE * 2, waited)
            .await
            .unwrap_or_else(|_| panic!("{choice}: wait hangs after the decoder's panic"));
        match waited {
            Ok((r, proc)) => {
                if let Ok(out) = &r {
                    assert!(!out.success(), "{choice}: {out:?}");
                }
                drop(proc);
            }
            Err(e) => panic!("{choice}: wait panicked with the decoder ({e})"),
        }
        drop(group);
        assert_gone(&pids, &format!("{choice}: the tree")).await;
    })
    .await;
    suite.end().await;
}

/// A tee whose writer never takes a byte (a socket whose peer stopped
/// reading: here a duplex pipe nobody reads) holds the stream's reading;
/// the program then blocks on its full pipe, and the command's timeout
/// must still end the run: `output` returns `TimedOut`, the tree is gone.
/// It never returned: the run waits for the stream's reader, which waits
/// on the tee's write for ever (the tree itself was killed at the timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tee_that_never_takes_a_byte_holds_no_run_past_its_timeout() {
    let suite = begin("a_tee_that_never_takes_a_byte_holds_no_run_past_its_timeout").await;
    // The mechanisms at once, each with its own group and files.
    all_at_once(mechanisms(), |choice| async move {
        let file = TempPath::new("a20-tee");
        let (stuck, peer) = tokio::io::duplex(64);
        let cmd = sh(
            choice,
            r#"echo $$ > "$1"; echo done >> "$1"; yes | head -c 10000000"#,
        )
        .arg(file.as_str())
        .stdout_tee(stuck)
        .timeout(Duration::from_secs(2));
        let run = tokio::spawn(async move { cmd.output().await });
        let pids = file.wait_pids().await;
        let ended = tokio::time::timeout(DEADLINE * 2, run).await;
        let Ok(ended) = ended else {
            let alive: Vec<u32> = pids.iter().copied().filter(|&p| !pid_gone(p)).collect();
            drop(peer);
            for &pid in &alive {
                kill_pid(pid);
            }
            panic!("{choice}: a stuck tee held the run past its timeout (the program's tree left alive: {alive:?})");
        };
        let r = ended.expect("the run's task");
        match &r {
            Ok(out) => assert_eq!(out.outcome(), Outcome::TimedOut, "{choice}: {out:?}"),
            Err(e) => panic!("{choice}: {e}"),
        }
        drop(peer);
        assert_gone(&pids, &format!("{choice}: the teed tree")).await;
    })
    .await;
    suite.end().await;
}

// ---------------------------------------------------------------------------
// A root owner dropping to nobody
// ---------------------------------------------------------------------------

/// Two directories on the command's `PATH` hold a program of one name: the
/// first only root may execute (0700), the second anyone. Run as nobody
/// (`uid(65534)`), `execvp` would skip the first (`EACCES`) and run the
/// second; pkit looks the program up in the owner, with root's rights, so
/// it picked the first and the child's exec failed as nobody. Fixed
/// (lows4): the lookup is made on a thread holding the child's ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_lookup_for_nobody_skips_what_only_root_may_run() {
    use std::os::unix::fs::PermissionsExt;
    let suite = begin("a_path_lookup_for_nobody_skips_what_only_root_may_run").await;
    if !rustix::process::geteuid().is_root() {
        skipped(
            "a_path_lookup_for_nobody_skips_what_only_root_may_run",
            "not root",
        );
        suite.end().await;
        return;
    }
    let first = TempPath::new("a20-path-root");
    let second = TempPath::new("a20-path-all");
    for (dir, word, mode) in [(&first, "root", 0o700), (&second, "anyone", 0o755)] {
        std::fs::create_dir(dir.path()).expect("a PATH directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let tool = dir.path().join("a20tool");
        std::fs::write(&tool, format!("#!/bin/sh\necho {word}\n")).unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let path = format!("{}:{}:/usr/bin:/bin", first.as_str(), second.as_str());
    // SAFETY: PR_GET_DUMPABLE reads a flag of this process.
    let dumpable = || unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
    for choice in mechanisms() {
        // SAFETY: PR_SET_DUMPABLE sets a flag of this test process (as it
        // was at its start).
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
        // As root, the first is found and run.
        let out = cmd(choice, "a20tool")
            .env("PATH", &path)
            .output()
            .await
            .unwrap_or_else(|e| panic!("{choice}: as root: {e}"));
        assert_eq!(out.stdout_str(), "root\n", "{choice}");
        // As nobody, the first can't be run: the second is what execvp runs.
        let r = cmd(choice, "a20tool")
            .env("PATH", &path)
            .uid(65534)
            .gid(65534)
            .output()
            .await;
        match r {
            Ok(out) => assert_eq!(out.stdout_str(), "anyone\n", "{choice}: {out:?}"),
            Err(e) => panic!("{choice}: as nobody: {e}"),
        }
        // A group's right counts: the first made the group's (root:nogroup
        // 0750) runs for a child of that group, as its gid or one of its
        // groups, and not for one without it.
        let tool = first.path().join("a20tool");
        std::os::unix::fs::chown(&tool, Some(0), Some(65534)).unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o750)).unwrap();
        for (how, nobody) in [
            ("gid", cmd(choice, "a20tool").uid(65534).gid(65534)),
            (
                "groups",
                cmd(choice, "a20tool").uid(65534).gid(1).groups([65534]),
            ),
        ] {
            let out = nobody
                .env("PATH", &path)
                .output()
                .await
                .unwrap_or_else(|e| panic!("{choice}: the group's, by {how}: {e}"));
            assert_eq!(out.stdout_str(), "root\n", "{choice}: by {how}");
        }
        let out = cmd(choice, "a20tool")
            .uid(65534)
            .gid(1)
            .env("PATH", &path)
            .output()
            .await
            .unwrap_or_else(|e| panic!("{choice}: outside the group: {e}"));
        assert_eq!(out.stdout_str(), "anyone\n", "{choice}: outside the group");
        std::os::unix::fs::chown(&tool, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o700)).unwrap();
        // Only the first on the path: nobody may run nothing, so the start
        // fails as `execvp` would (`EACCES`), naming the file, and
        // `resolve_program` says the same; root's finds it.
        let only = format!("{}:/usr/bin:/bin", first.as_str());
        let nobody = cmd(choice, "a20tool")
            .env("PATH", &only)
            .uid(65534)
            .gid(65534);
        let r = nobody.output().await;
        assert!(
            matches!(&r, Err(Error::NotExecutable { path, .. }) if *path == tool),
            "{choice}: {r:?}"
        );
        let r = nobody.resolve_program();
        assert!(
            matches!(&r, Err(Error::NotExecutable { path, .. }) if *path == tool),
            "{choice}: {r:?}"
        );
        let root = cmd(choice, "a20tool").env("PATH", &only).resolve_program();
        assert_eq!(root.ok().as_ref(), Some(&tool), "{choice}");
        // A child taking other ids in this process's memory (until its
        // exec), and the lookup's thread, make the kernel mark the whole
        // process not dumpable: the mark is undone after each.
        assert_eq!(
            dumpable(),
            1,
            "{choice}: the starts with other ids (their lookups, their children) left this process not dumpable"
        );
        let nobody = cmd(choice, "a20tool")
            .env("PATH", &path)
            .uid(65534)
            .gid(65534);
        assert_eq!(
            nobody.resolve_program().ok(),
            Some(second.path().join("a20tool")),
            "{choice}"
        );
        assert_eq!(
            dumpable(),
            1,
            "{choice}: the lookup left this process not dumpable"
        );
    }
    for dir in [&first, &second] {
        let _ = std::fs::remove_file(dir.path().join("a20tool"));
        let _ = std::fs::remove_dir(dir.path());
    }
    suite.end().await;
}

/// Probe: a started child's stdin handle used after the runtime it was
/// started on shut down (its pipe was registered with that runtime's
/// reactor): a write, and a write to a full pipe, end in an error or a
/// write, never a hang; the shutdown (or the drop) still gives the child
/// its end of file, and `wait` on this runtime reports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_stdin_used_after_its_runtime_is_gone_neither_hangs_nor_loses_the_eof() {
    let suite =
        begin("a_childs_stdin_used_after_its_runtime_is_gone_neither_hangs_nor_loses_the_eof")
            .await;
    for choice in mechanisms() {
        let (group, mut proc) = on_short_runtime(move || {
            Box::pin(async move {
                let group = group(choice);
                let cmd = Command::new("wc")
                    .arg("-c")
                    .stdin_piped()
                    .timeout(Duration::from_secs(60));
                let proc = group
                    .start(&cmd)
                    .unwrap_or_else(|e| panic!("{choice}: {e}"));
                (group, proc)
            })
        });
        let stdin = proc.stdin().expect("a piped stdin");
        let small = tokio::time::timeout(PROMPT, stdin.write_all(b"abc"))
            .await
            .unwrap_or_else(|_| panic!("{choice}: a small write hangs"));
        let big = tokio::time::timeout(PROMPT, stdin.write_all(&vec![b'y'; 1 << 20]))
            .await
            .unwrap_or_else(|_| panic!("{choice}: a write to a full pipe hangs"));
        let shut = tokio::time::timeout(PROMPT, stdin.shutdown())
            .await
            .unwrap_or_else(|_| panic!("{choice}: the shutdown hangs"));
        let r = tokio::time::timeout(PROMPT, proc.wait())
            .await
            .unwrap_or_else(|_| {
                panic!("{choice}: wc never saw its end of file ({small:?}, {big:?}, {shut:?})")
            });
        // Its output was read by the gone runtime's tasks: an error then
        // (documented), or the count.
        if let Ok(out) = &r {
            assert_eq!(out.outcome(), Outcome::Exited(0), "{choice}: {out:?}");
        }
        drop(proc);
        drop(group);
    }
    suite.end().await;
}
