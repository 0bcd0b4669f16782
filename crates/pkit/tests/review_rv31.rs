//! rv31: hostile review of h/nul (`Spec::check_passable`, the pipeline's
//! check of every stage before any start, the bounded cassette read) at
//! main 76d14b5. Every test here is a probe that passes (real assertions),
//! ignored at first only because a CI run was under way when they were
//! added; they run with the suite.

#![cfg(unix)]

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use common::*;
use pkit::{Command, Error, Pipe};

/// A string holding a NUL byte in the middle.
fn with_nul() -> &'static OsStr {
    OsStr::from_bytes(b"a\0b")
}

/// A pipeline whose second stage carries `bad` is refused before its head
/// (which would create `marker`) is started, in every mechanism: for a
/// NUL in an environment value, an environment name, an argument, arg0
/// and the working directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_later_stage_starts_nothing() {
    let suite = begin("a_nul_in_a_later_stage_starts_nothing").await;
    type Bad = fn(Command) -> Command;
    let cases: [(&str, Bad); 5] = [
        ("env value", |c| c.env("RV31", with_nul())),
        ("env name", |c| c.env(with_nul(), "x")),
        ("argument", |c| c.arg(with_nul())),
        ("arg0", |c| c.arg0(with_nul())),
        ("cwd", |c| c.current_dir(std::path::Path::new(with_nul()))),
    ];
    for m in mechanisms() {
        for (what, bad) in cases {
            let marker = TempPath::new("rv31-nul-marker");
            let head = Command::new("sh").args(["-c", "echo x > \"$1\"", "sh", marker.as_str()]);
            let got = Pipe::new([head, bad(Command::new("cat"))])
                .mechanism(m)
                .output()
                .await;
            match &got {
                Err(Error::InvalidInput(why)) => {
                    assert!(why.contains("stage 2"), "{m} {what}: {why}")
                }
                Err(Error::CurrentDir { .. }) if what == "cwd" => {}
                other => panic!("{m} {what}: not refused: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(!marker.path().exists(), "{m} {what}: the head ran");
        }
    }
    suite.end().await;
}

/// A program path that is a directory, and an empty arg0: the first is a
/// typed start error (no hang, nothing left), the second is passed as is
/// (Linux allows an empty argv[0]), in every mechanism.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_program_and_an_empty_arg0() {
    let suite = begin("a_directory_program_and_an_empty_arg0").await;
    for m in mechanisms() {
        let dir = std::env::temp_dir();
        let got = tokio::time::timeout(
            Duration::from_secs(20),
            cmd(m, dir.to_str().unwrap()).output(),
        )
        .await
        .expect("a directory as the program hung");
        assert!(got.is_err(), "{m}: a directory ran: {got:?}");
        let out = cmd(m, "cat")
            .arg0("")
            .arg("/proc/self/cmdline")
            .output()
            .await
            .unwrap();
        assert!(out.success(), "{m}: {out:?}");
        assert_eq!(
            out.stdout(),
            b"\0/proc/self/cmdline\0",
            "{m}: arg0 not passed as empty"
        );
    }
    suite.end().await;
}

#[cfg(feature = "testing")]
mod cassette {
    use super::*;
    use pkit::testing::RecordReplay;

    /// `RecordReplay::replay(path)` on a thread, bounded: its result, or a
    /// panic when it hangs.
    fn replay_bounded(path: std::path::PathBuf) -> pkit::Result<RecordReplay> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(RecordReplay::replay(&path));
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("replay hung")
    }

    /// The error of [`replay_bounded`], or a panic naming `what` when the
    /// cassette was replayed.
    fn refused(path: std::path::PathBuf, what: &str) -> Error {
        match replay_bounded(path) {
            Err(e) => e,
            Ok(_) => panic!("{what}: replayed"),
        }
    }

    fn mkfifo(path: &std::path::Path) {
        let st = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// A symbolic link to a FIFO nobody writes to, a FIFO with a writer
    /// waiting in its open, a directory, `/dev/zero`, a size-0 `/proc`
    /// file, and a sparse file one byte over the limit: each refused
    /// promptly (the sparse file without a read), never hanging.
    #[test]
    fn replay_refuses_what_is_not_a_bounded_file() {
        in_suite("replay_refuses_what_is_not_a_bounded_file", || {
            let dir = TempPath::new("rv31-cassette");
            std::fs::create_dir_all(dir.path()).unwrap();
            let fifo = dir.path().join("fifo");
            mkfifo(&fifo);
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&fifo, &link).unwrap();
            let err = refused(link.clone(), "a FIFO replayed");
            assert!(err.to_string().contains("not a regular file"), "{err}");

            // A writer blocked in its open of the FIFO: still refused.
            let mut writer = ChildOnDrop(
                std::process::Command::new("sh")
                    .args(["-c", "echo '{}' > \"$1\"", "sh"])
                    .arg(&fifo)
                    .spawn()
                    .unwrap(),
            );
            std::thread::sleep(Duration::from_millis(200));
            let err = refused(link, "a FIFO replayed");
            assert!(err.to_string().contains("not a regular file"), "{err}");
            let _ = writer.kill();
            let _ = writer.wait();

            for p in ["/dev/zero", "/proc/self/status"] {
                let err = refused(p.into(), p);
                let kind = match &err {
                    Error::Io { source, .. } => source.kind(),
                    other => panic!("{p}: {other:?}"),
                };
                assert!(
                    matches!(
                        kind,
                        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
                    ),
                    "{p}: {err}"
                );
            }
            let err = refused(dir.path().to_path_buf(), "a dir");
            assert!(
                err.to_string().contains(&dir.path().display().to_string()),
                "{err}"
            );

            let big = dir.path().join("big");
            let f = std::fs::File::create(&big).unwrap();
            f.set_len(RecordReplay::MAX_BYTES + 1).unwrap();
            match replay_bounded(big.clone()) {
                Err(Error::Io { source, .. }) => {
                    assert_eq!(source.kind(), std::io::ErrorKind::FileTooLarge)
                }
                other => panic!("over the limit: {other:?}"),
            }
            std::fs::remove_dir_all(dir.path()).unwrap();
        });
    }
}

/// rv31 (h/lows): one file kept as every number from 3 to 60 at once, and
/// a second file swapped in as the lowest targets: the targets cover
/// every descriptor pkit itself holds while it starts (its pidfds, guard
/// socket, pipes, runtime), so each copy made off the targets
/// (`dup_off_targets`, the trampoline's lowest free non-target) must step
/// over all of them. Each target in the child names the file it was
/// given, in every mechanism.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_fds_onto_every_low_number_at_once() {
    use std::os::fd::AsRawFd;
    let suite = begin("keep_fds_onto_every_low_number_at_once").await;
    let a = TempPath::new("rv31-keep-a");
    let b = TempPath::new("rv31-keep-b");
    std::fs::write(a.path(), "A").unwrap();
    std::fs::write(b.path(), "B").unwrap();
    let fa = std::fs::File::open(a.path()).unwrap();
    let fb = std::fs::File::open(b.path()).unwrap();
    for m in mechanisms() {
        // 3..=5 get B, 6..=60 get A.
        let pairs = (3..=60).map(|n| {
            if n <= 5 {
                (fb.as_raw_fd(), n)
            } else {
                (fa.as_raw_fd(), n)
            }
        });
        let out = sh(
            m,
            "n=3; while [ $n -le 60 ]; do printf '%s ' $n; cat /proc/self/fd/$n; echo; n=$((n+1)); done",
        )
        .keep_fds(pairs)
        .output()
        .await
        .unwrap();
        assert!(out.success(), "{m}: {out:?}");
        let text = String::from_utf8_lossy(out.stdout()).into_owned();
        let want: String = (3..=60)
            .map(|n| format!("{n} {}\n", if n <= 5 { "B" } else { "A" }))
            .collect();
        assert_eq!(text, want, "{m}");
    }
    drop((fa, fb));
    suite.end().await;
}
