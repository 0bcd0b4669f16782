//! Attack round dec04h: huge and odd inputs no earlier test tried, each
//! with real processes, in every mechanism: a program path that is a FIFO
//! or an empty file, a working directory deleted between building the
//! command and starting it, a 64 MiB line with no newline through the line
//! stream, pipelines of 1 and of 64 stages, and a 1 GiB feed to children
//! that read none of it. All passed when written: they hold the typed
//! errors and the bounds the docs give. (The nested-pkit and
//! signalled-owner cases are in `attack_dec04h_nested.rs`.)

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use pkit::{Command, ErrorKind, MechanismChoice, Pipe};

/// No case may take longer than this (a hang fails, never blocks).
const LONG: Duration = Duration::from_secs(120);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LONG, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung past {LONG:?}"))
}

/// The kind of the error `r` must be.
fn kind(choice: MechanismChoice, what: &str, r: pkit::Result<pkit::Output>) -> ErrorKind {
    match r {
        Ok(out) => panic!("{choice}: {what}: an error expected, not {}", out.outcome()),
        Err(e) => e.kind(),
    }
}

/// A FIFO with the execute bit as the program (an `open` of it for a
/// check would block until a writer comes: it must not), an empty
/// executable file, and a working directory removed after the command was
/// built: typed errors (`NotExecutable`, `CurrentDir`), from the verbs and
/// from a group's start, and nothing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_program_paths_and_a_deleted_cwd() {
    let suite = begin("odd_program_paths_and_a_deleted_cwd").await;
    let fifo = TempPath::new("fifo");
    let made = std::process::Command::new("mkfifo")
        .args(["-m", "755", fifo.as_str()])
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    let empty = TempPath::new("empty");
    std::fs::write(empty.path(), "").unwrap();
    std::fs::set_permissions(empty.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for choice in mechanisms() {
        for (what, program) in [("a FIFO", fifo.as_str()), ("an empty file", empty.as_str())] {
            let r = bounded(what, cmd(choice, program).output()).await;
            assert_eq!(
                kind(choice, what, r),
                ErrorKind::NotExecutable,
                "{choice}: {what}"
            );
            let g = group(choice);
            let e = g.start(&Command::new(program)).map(|_| ()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotExecutable, "{choice}: {what}: {e}");
        }
        let dir = common::temp_path(&format!("h-cwd-{choice}"));
        std::fs::create_dir_all(&dir).unwrap();
        let c = cmd(choice, "pwd").current_dir(&dir);
        let started = Command::new("pwd").current_dir(&dir);
        std::fs::remove_dir(&dir).unwrap();
        let r = bounded("deleted cwd", c.output()).await;
        assert_eq!(
            kind(choice, "deleted cwd", r),
            ErrorKind::CurrentDir,
            "{choice}"
        );
        let g = group(choice);
        let e = g.start(&started).map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CurrentDir, "{choice}: {e}");
    }
    suite.end().await;
}

/// 64 MiB without a newline through the line stream: it arrives whole, in
/// pieces of at most `max_line_bytes` (1 MiB by default), each but the
/// last marked partial, so memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_line_without_newline_streams_in_pieces() {
    let suite = begin("a_64_mib_line_without_newline_streams_in_pieces").await;
    for choice in mechanisms() {
        let g = group(choice);
        let script = r"head -c 67108864 /dev/zero | tr '\0' a";
        let mut p = g
            .start(&Command::new("sh").args(["-c", script]).stream_lines())
            .unwrap();
        let mut lines = p.lines();
        let (mut total, mut pieces, mut last_partial) = (0usize, 0usize, true);
        while let Some(l) = bounded("the pieces", lines.next_line()).await {
            assert!(
                l.text.len() <= 1 << 20,
                "{choice}: a piece of {}",
                l.text.len()
            );
            assert!(l.text.bytes().all(|b| b == b'a'), "{choice}");
            assert!(last_partial, "{choice}: a piece after the last");
            last_partial = l.partial;
            total += l.text.len();
            pieces += 1;
        }
        drop(lines);
        let out = bounded("wait", p.wait()).await.unwrap();
        assert!(out.success(), "{choice}: {}", out.outcome());
        assert_eq!(total, 64 << 20, "{choice}: bytes lost");
        assert!(!last_partial, "{choice}: the last piece is marked partial");
        assert!(pieces >= 64, "{choice}: {pieces} pieces");
    }
    suite.end().await;
}

/// A pipeline of one stage is a plain run; one of 64 stages carries every
/// byte, and one whose last stage (`head -n1`) ends at once ends whole,
/// every stage gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_of_one_and_of_sixty_four_stages() {
    let suite = begin("pipelines_of_one_and_of_sixty_four_stages").await;
    for choice in mechanisms() {
        let out = bounded(
            "1",
            Pipe::new([cmd(choice, "echo").arg("one")])
                .mechanism(choice)
                .output(),
        )
        .await
        .unwrap();
        assert_eq!(out.stdout_str(), "one\n", "{choice}");
        let mut stages = vec![cmd(choice, "seq").args(["1", "100000"])];
        stages.extend((0..63).map(|_| cmd(choice, "cat")));
        let out = bounded("64", Pipe::new(stages).mechanism(choice).output())
            .await
            .unwrap();
        assert!(out.success(), "{choice}: {}", out.outcome());
        let expected: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
        assert!(
            out.stdout_str() == expected,
            "{choice}: 64 stages changed the bytes"
        );
        let mut stages = vec![cmd(choice, "yes")];
        stages.extend((0..62).map(|_| cmd(choice, "cat")));
        stages.push(cmd(choice, "head").arg("-n1"));
        let mut p = Pipe::new(stages)
            .mechanism(choice)
            .stream_lines()
            .start()
            .unwrap();
        let pids = p.pids();
        assert_eq!(pids.len(), 64, "{choice}");
        let line = bounded("head", p.wait_for_line(|_| true, LONG))
            .await
            .unwrap();
        assert_eq!(line.text, "y", "{choice}");
        let out = bounded("wait", p.wait()).await.unwrap();
        assert_eq!(out.stages().len(), 64, "{choice}");
        assert!(
            out.stages()[63].success(),
            "{choice}: {}",
            out.stages()[63].outcome()
        );
        assert_gone(&pids, "64 stages after head ended").await;
    }
    suite.end().await;
}

/// A 1 GiB `stdin_reader` feed to a child that reads none of it (it exits
/// at once, or closes its stdin and runs on), and to a pipeline whose first
/// stage closes its stdin at once: the run ends with the child's own
/// outcome (a feed cut short by a child that did not want it is no
/// error), no hang, nothing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gib_feed_to_children_that_read_none() {
    let suite = begin("a_gib_feed_to_children_that_read_none").await;
    let gib = || tokio::io::AsyncReadExt::take(tokio::io::repeat(b'a'), 1 << 30);
    for choice in mechanisms() {
        let out = bounded("true", cmd(choice, "true").stdin_reader(gib()).output())
            .await
            .unwrap();
        assert!(out.success(), "{choice}: {}", out.outcome());
        let out = bounded(
            "closer",
            sh(choice, "exec 0<&-; sleep 1; echo ran")
                .stdin_reader(gib())
                .output(),
        )
        .await
        .unwrap();
        assert_eq!(
            (out.success(), &*out.stdout_str()),
            (true, "ran\n"),
            "{choice}"
        );
        let out = bounded(
            "pipe",
            Pipe::new([sh(choice, "exec 0<&-; echo x"), cmd(choice, "cat")])
                .mechanism(choice)
                .stdin_reader(gib())
                .output(),
        )
        .await
        .unwrap();
        assert_eq!(
            (out.success(), &*out.stdout_str()),
            (true, "x\n"),
            "{choice}"
        );
    }
    suite.end().await;
}
