//! Review rv17: the late merges (FIFO opens bounded by a run's timeout and
//! cancel token, `sys/open_wait.rs`; the pipeline fold's SIGPIPE rule),
//! probed with real programs. Tests that showed a fault and are not fixed
//! here are `#[ignore]`d, each with what it found.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pkit::{FileMode, Outcome};

/// Makes a FIFO at `path`.
fn mkfifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Polls `open_threads()` until it is `want` or 5 s passed; the count.
fn open_threads_settle(want: usize) -> usize {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let n = open_threads();
        if n == want || Instant::now() >= until {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A FIFO that the stdin path names while the start waits, replaced (an
/// atomic rename) by another FIFO before the timeout: the give-up opened
/// the *new* FIFO's other end, which can't release the thread blocked on
/// the old one, so a `pkit-fifo-open` thread was left blocked for good
/// (the old FIFO is unlinked: nobody can ever open it). Found by rv17
/// (open_wait.rs: the release re-opened by path); fixed: the thread and
/// the give-up both open the FIFO found at the start (`O_PATH`, through
/// `/proc/thread-self/fd`).
#[test]
fn a_fifo_replaced_while_its_open_waits_leaves_no_thread() {
    alone("a_fifo_replaced_while_its_open_waits", || {
        for choice in mechanisms() {
            let before = open_threads();
            let dir = TempPath::new("fifodir");
            std::fs::create_dir(dir.path()).unwrap();
            let path = dir.path().join("in");
            let keep = dir.path().join("keep");
            let other = dir.path().join("other");
            mkfifo(&path);
            // Another name for the first FIFO, so the test can release
            // whatever stays blocked on it.
            std::fs::hard_link(&path, &keep).unwrap();
            mkfifo(&other);
            let swap = {
                let (path, other) = (path.clone(), other.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(300));
                    std::fs::rename(&other, &path).unwrap();
                })
            };
            let got = cmd(choice, "cat")
                .stdin_file(&path)
                .timeout(Duration::from_secs(1))
                .blocking()
                .output();
            swap.join().unwrap();
            assert!(got.is_err(), "{choice}: {got:?}");
            let left = open_threads_settle(before);
            // Release it (the first FIFO, by its other name).
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc_o_nonblock())
                .open(&keep);
            let _ = open_threads_settle(before);
            let _ = std::fs::remove_dir_all(dir.path());
            assert_eq!(left, before, "{choice}: FIFO open threads left");
        }
    });
}

/// `f` alone in this binary (no other test's FIFO open threads to count;
/// the threads counted are this process's own, so the other binaries run
/// at once keep running), between [`begin_alone_in_binary`] and
/// [`end_exclusive`].
fn alone(name: &'static str, f: impl FnOnce()) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let guard = rt.block_on(begin_alone_in_binary());
    f();
    rt.block_on(end_exclusive(guard, name));
}

/// A FIFO renamed away (to another name in its directory, nothing put
/// in its place) while a start waits on it: a give-up by the timeout
/// releases the thread all the same (it opened the path again, which
/// named nothing: the thread stayed blocked); and a writer that comes to
/// the renamed FIFO before the timeout is the start's stdin (the start
/// holds the FIFO it found, not the path).
#[test]
fn a_fifo_renamed_away_while_its_open_waits() {
    alone("a_fifo_renamed_away_while_its_open_waits", || {
        for choice in mechanisms() {
            for writer_comes in [false, true] {
                let before = open_threads();
                let dir = TempPath::new("fifodir");
                std::fs::create_dir(dir.path()).unwrap();
                let path = dir.path().join("in");
                let moved = dir.path().join("moved");
                mkfifo(&path);
                let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
                let mover = {
                    let (path, moved) = (path.clone(), moved.clone());
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(300));
                        std::fs::rename(&path, &moved).unwrap();
                        if writer_comes {
                            use std::io::Write;
                            let mut f = std::fs::OpenOptions::new()
                                .write(true)
                                .open(&moved)
                                .unwrap();
                            f.write_all(b"through the old name\n").unwrap();
                        } else {
                            let _ = done_rx.recv_timeout(Duration::from_secs(60));
                        }
                    })
                };
                let timeout = if writer_comes {
                    Duration::from_secs(30)
                } else {
                    Duration::from_secs(1)
                };
                let got = cmd(choice, "cat")
                    .stdin_file(&path)
                    .timeout(timeout)
                    .blocking()
                    .output();
                let left = open_threads_settle(before);
                if left != before {
                    // Release it, so the test can end.
                    let _ = std::fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(libc_o_nonblock())
                        .open(&moved);
                }
                let _ = done_tx.send(());
                mover.join().unwrap();
                let _ = std::fs::remove_dir_all(dir.path());
                if writer_comes {
                    let out = got.unwrap_or_else(|e| panic!("{choice}: {e}"));
                    assert_eq!(out.stdout_str(), "through the old name\n", "{choice}");
                } else {
                    let e = got.expect_err("timed out");
                    assert_eq!(e.kind(), pkit::ErrorKind::Io, "{choice}: {e}");
                }
                assert_eq!(
                    left, before,
                    "{choice} writer {writer_comes}: FIFO open threads left"
                );
            }
        }
    });
}

/// A FIFO with a partner is read and written as before, with a bound
/// set: `cat` with its stdin from a FIFO whose writer comes after a
/// while, and `echo` with its stdout to a FIFO whose reader comes after a
/// while, each within a 30 s timeout; no open thread is left.
#[test]
fn a_fifo_with_a_partner_is_read_and_written() {
    alone("a_fifo_with_a_partner_is_read_and_written", || {
        for choice in mechanisms() {
            let before = open_threads();
            for stdin in [true, false] {
                let dir = TempPath::new("fifodir");
                std::fs::create_dir(dir.path()).unwrap();
                let path = dir.path().join("fifo");
                mkfifo(&path);
                let partner = {
                    let path = path.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        std::thread::sleep(Duration::from_millis(300));
                        let mut text = String::new();
                        if stdin {
                            let mut f =
                                std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                            f.write_all(b"to stdin\n").unwrap();
                        } else {
                            let mut f = std::fs::File::open(&path).unwrap();
                            f.read_to_string(&mut text).unwrap();
                        }
                        text
                    })
                };
                let c = if stdin {
                    cmd(choice, "cat").stdin_file(&path)
                } else {
                    cmd(choice, "echo")
                        .arg("from stdout")
                        .stdout_file(&path, FileMode::Truncate)
                };
                let got = c.timeout(Duration::from_secs(30)).blocking().output();
                let read = partner.join().unwrap();
                assert_eq!(fds_on(&path), 0, "{choice} stdin {stdin}: descriptors left");
                let _ = std::fs::remove_dir_all(dir.path());
                let out = got.unwrap_or_else(|e| panic!("{choice} stdin {stdin}: {e}"));
                assert_eq!(out.outcome(), Outcome::Exited(0), "{choice} stdin {stdin}");
                if stdin {
                    assert_eq!(out.stdout_str(), "to stdin\n", "{choice}");
                } else {
                    assert_eq!(read, "from stdout\n", "{choice}");
                }
            }
            assert_eq!(open_threads(), before, "{choice}: FIFO open threads left");
        }
    });
}

/// A timeout on a FIFO nobody opens, either way: the start fails as timed
/// out within the bound (and a generous margin), and when it returns no
/// `pkit-fifo-open` thread is left (the give-up waits for it).
#[test]
fn a_timeout_on_a_fifo_nobody_opens_leaves_no_thread() {
    alone("a_timeout_on_a_fifo_nobody_opens", || {
        for choice in mechanisms() {
            let before = open_threads();
            for stdin in [true, false] {
                let dir = TempPath::new("fifodir");
                std::fs::create_dir(dir.path()).unwrap();
                let path = dir.path().join("fifo");
                mkfifo(&path);
                let c = if stdin {
                    cmd(choice, "cat").stdin_file(&path)
                } else {
                    cmd(choice, "echo").stdout_file(&path, FileMode::Append)
                };
                let timeout = Duration::from_millis(500);
                let began = Instant::now();
                let got = c.timeout(timeout).blocking().output();
                let took = began.elapsed();
                let left = open_threads();
                let fds = fds_on(&path);
                let _ = std::fs::remove_dir_all(dir.path());
                let e = got.expect_err("timed out");
                assert_eq!(e.kind(), pkit::ErrorKind::Io, "{choice} stdin {stdin}: {e}");
                let timed_out = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
                assert!(timed_out, "{choice} stdin {stdin}: {e:?}");
                assert!(
                    took < timeout + Duration::from_secs(5),
                    "{choice} stdin {stdin}: took {took:?}"
                );
                assert_eq!(
                    left, before,
                    "{choice} stdin {stdin}: FIFO open threads left"
                );
                assert_eq!(
                    fds, 0,
                    "{choice} stdin {stdin}: descriptors left on the FIFO"
                );
            }
        }
    });
}

/// How many of this process's descriptors are open on `path` (the FIFO's
/// `O_PATH` descriptor included).
fn fds_on(path: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|to| to == path))
        .count()
}

/// O_NONBLOCK on Linux (the tests use no libc crate).
fn libc_o_nonblock() -> i32 {
    0o4000
}

use std::os::unix::fs::OpenOptionsExt;

/// A pipeline's timeout bounds its start's FIFO waits all together: each
/// stage's open counted its wait afresh from its own start (`Spec::open_wait`
/// uses `Instant::now() + timeout`), so a chain whose first stage's FIFO
/// got its writer just before the bound waited a whole timeout more for
/// the next stage's FIFO (5.6 s for a 3 s timeout). Found by rv17; fixed
/// in `Pipe::start_all` (the stages get what is left). One command with a
/// stdin FIFO and a stdout FIFO shares one deadline already (the control).
#[test]
fn a_starts_fifo_waits_share_one_timeout() {
    in_suite("a_starts_fifo_waits_share_one_timeout", || {
        let choice = mechanisms()[0];
        let timeout = Duration::from_secs(3);
        let held = std::sync::Mutex::new(Vec::new());
        // The pipeline and the control at once, each with its own FIFOs.
        at_once([true, false], |pipeline| {
            let dir = TempPath::new("fifodir");
            std::fs::create_dir(dir.path()).unwrap();
            let a = dir.path().join("a");
            let b = dir.path().join("b");
            mkfifo(&a);
            mkfifo(&b);
            // A writer for `a` just before the timeout, held open until the
            // run is over; nobody ever reads `b`.
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let writer = {
                let a = a.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(2600));
                    let f = std::fs::OpenOptions::new().write(true).open(&a).unwrap();
                    let _ = done_rx.recv_timeout(Duration::from_secs(60));
                    drop(f);
                })
            };
            let began = Instant::now();
            let got = if pipeline {
                pkit::Pipe::new([
                    cmd(choice, "cat").stdin_file(&a),
                    cmd(choice, "cat").stdout_file(&b, FileMode::Truncate),
                ])
                .timeout(timeout)
                .blocking()
                .output()
            } else {
                cmd(choice, "cat")
                    .stdin_file(&a)
                    .stdout_file(&b, FileMode::Truncate)
                    .timeout(timeout)
                    .blocking()
                    .output()
            };
            let took = began.elapsed();
            let _ = done_tx.send(());
            writer.join().unwrap();
            let _ = std::fs::remove_dir_all(dir.path());
            assert!(got.is_err(), "pipeline {pipeline}: {got:?}");
            // The bound plus a generous 1.5 s; the fault takes ~2.6 + 3 s.
            if took >= timeout + Duration::from_millis(1500) {
                held.lock()
                    .unwrap()
                    .push(format!("pipeline {pipeline}: held {took:?}: {got:?}"));
            }
        });
        let held = held.into_inner().unwrap();
        assert!(held.is_empty(), "a {timeout:?} timeout: {held:#?}");
    });
}

/// A checked first stage that dies of SIGPIPE for a reason of its own
/// (not its stdout: here it signals itself, as a program writing to a
/// closed socket would die) while its reader is still running: the fold
/// blames the first stage that failed, as `pipe.rs` documents. Since the
/// rvfix fold change a SIGPIPE followed by *any* later failure is excused,
/// so the consequence downstream (the reader exits 1 on its empty input)
/// takes the blame and the root cause's SIGPIPE is hidden. The chain still
/// fails (no false success). Found by rv17 (pipe_fold.rs `fold`).
#[test]
#[ignore = "rv17 finding, kept as documented (Pipe docs): a stage that raised SIGPIPE itself upstream of a failed stage is not told apart from one cut by it"]
fn a_stage_that_dies_of_its_own_sigpipe_before_its_reader_ends_is_blamed() {
    in_suite("a_stage_that_dies_of_its_own_sigpipe", || {
        for choice in mechanisms() {
            let out = pkit::Pipe::new([
                sh(choice, "kill -PIPE $$"),
                sh(choice, "read x || { sleep 0.2; exit 1; }"),
            ])
            .blocking()
            .output()
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
            let stages: Vec<Outcome> = out.stages().iter().map(|s| s.outcome()).collect();
            assert_eq!(
                stages,
                [Outcome::Signalled(13), Outcome::Exited(1)],
                "{choice}"
            );
            assert_eq!(
                out.outcome(),
                Outcome::Signalled(13),
                "{choice}: {stages:?}"
            );
        }
    });
}

/// SIGPIPE cascading up a three-stage chain from a failed last stage
/// (`yes | cat | sh -c 'exit 3'`) is the last stage's 3 every round: the
/// middle stage's SIGPIPE (its reader failed) is excused too.
#[test]
fn a_sigpipe_cascade_blames_the_stage_that_failed() {
    in_suite("a_sigpipe_cascade_blames_the_stage_that_failed", || {
        for choice in mechanisms() {
            for round in 0..10 {
                let out = pkit::Pipe::new([
                    cmd(choice, "yes"),
                    cmd(choice, "cat"),
                    sh(choice, "head -c 1 >/dev/null; exit 3"),
                ])
                .blocking()
                .output()
                .unwrap_or_else(|e| panic!("{choice}: {e}"));
                let stages: Vec<Outcome> = out.stages().iter().map(|s| s.outcome()).collect();
                assert_eq!(
                    out.outcome(),
                    Outcome::Exited(3),
                    "{choice} round {round}: {stages:?}"
                );
            }
        }
    });
}

/// Where the non-root half of
/// [`a_fifo_its_user_may_open_one_way_only_leaves_no_thread`] finds its
/// FIFOs (set by the root half, which runs this binary again as `nobody`).
const AS_NOBODY: &str = "PKIT_RV17_AS_NOBODY";

/// As a user who may open a FIFO only the way the child needs it (a
/// stdout FIFO of mode 0200, a stdin FIFO of mode 0400, both the user's
/// own), a start given up by its timeout can't open the other end to
/// release its open's thread (EACCES): the `pkit-fifo-open` thread stayed
/// blocked until some reader (writer) came, which then got an end that
/// was closed at once. Root skips the permission check, so the test runs
/// this binary again as `nobody` (`setpriv`), process groups only. Found
/// by rv17 (open_wait.rs: the release opened the FIFO by path, the other
/// way); fixed: the thread is signalled (`unix/open_interrupt.rs`).
#[test]
fn a_fifo_its_user_may_open_one_way_only_leaves_no_thread() {
    if let Ok(dir) = std::env::var(AS_NOBODY) {
        // The non-root half: report the threads left, one line per case.
        let dir = std::path::PathBuf::from(dir);
        for (name, stdin) in [("out", false), ("in", true)] {
            let path = dir.join(name);
            let c = cmd(pkit::MechanismChoice::ProcessGroup, "cat");
            let c = if stdin {
                c.stdin_file(&path)
            } else {
                c.stdout_file(&path, FileMode::Truncate)
            };
            let got = c.timeout(Duration::from_millis(300)).blocking().output();
            assert!(got.is_err(), "{name}: {got:?}");
            println!("RV17 {name} LEFT={}", open_threads_settle(0));
        }
        return;
    }
    in_suite("a_fifo_its_user_may_open_one_way_only", || {
        if !rustix_is_root() {
            skipped("a_fifo_its_user_may_open_one_way_only", "not root");
            return;
        }
        let dir = TempPath::new("fifodir");
        std::fs::create_dir(dir.path()).unwrap();
        let chown = |p: &std::path::Path, mode: u32| {
            use std::os::unix::fs::PermissionsExt;
            let ok = std::process::Command::new("chown")
                .args(["65534:65534"])
                .arg(p)
                .status()
                .unwrap();
            assert!(ok.success());
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        chown(dir.path(), 0o755);
        for (name, mode) in [("out", 0o200), ("in", 0o400)] {
            let p = dir.path().join(name);
            mkfifo(&p);
            chown(&p, mode);
        }
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_fifo_its_user_may_open_one_way_only_leaves_no_thread",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(AS_NOBODY, dir.path())
            .env("PKIT_MECHANISM", "pgroup")
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(dir.path());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for name in ["out", "in"] {
            assert!(
                text.contains(&format!("RV17 {name} LEFT=0")),
                "{name}: a thread left: {text}"
            );
        }
    });
}

/// Whether this process runs as root.
fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
}

/// A pipeline whose first stage was spawned (its FIFO had a writer) and
/// whose second waits on a FIFO nobody reads, cancelled mid-open: the
/// start is `Cancelled`, and nothing is left (the first stage's `cat`, the
/// open's thread).
#[test]
fn a_pipeline_cancelled_while_a_later_stage_waits_on_a_fifo_leaves_nothing() {
    in_suite("a_pipeline_cancelled_while_a_later_stage_waits", || {
        for choice in mechanisms() {
            let before = open_threads();
            let dir = TempPath::new("fifodir");
            std::fs::create_dir(dir.path()).unwrap();
            let a = dir.path().join("a");
            let b = dir.path().join("b");
            mkfifo(&a);
            mkfifo(&b);
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let writer = {
                let a = a.clone();
                std::thread::spawn(move || {
                    let f = std::fs::OpenOptions::new().write(true).open(&a).unwrap();
                    let _ = done_rx.recv_timeout(Duration::from_secs(60));
                    drop(f);
                })
            };
            let token = pkit::CancelToken::new();
            let t = token.clone();
            let canceller = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                t.cancel();
            });
            let got = pkit::Pipe::new([
                cmd(choice, "cat").stdin_file(&a),
                cmd(choice, "cat").stdout_file(&b, FileMode::Truncate),
            ])
            .cancel_token(&token)
            .blocking()
            .output();
            canceller.join().unwrap();
            let _ = done_tx.send(());
            writer.join().unwrap();
            let _ = std::fs::remove_dir_all(dir.path());
            let e = got.expect_err("cancelled");
            assert_eq!(e.kind(), pkit::ErrorKind::Cancelled, "{choice}: {e}");
            assert_eq!(
                open_threads_settle(before),
                before,
                "{choice}: threads left"
            );
            let until = Instant::now() + Duration::from_secs(10);
            while !own_children().is_empty() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(own_children().is_empty(), "{choice}: {:?}", own_children());
        }
    });
}

/// A second wait gives the first wait's answer exactly (outcome, the
/// grace and inactivity flags), without the bytes, for a process and for
/// a pipeline: an exit code, a timeout whose grace ran out, an inactivity
/// timeout.
#[test]
fn a_second_wait_keeps_the_first_answer() {
    in_suite("a_second_wait_keeps_the_first_answer", || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut cases: Vec<(pkit::MechanismChoice, &str, pkit::Command)> = Vec::new();
        for choice in mechanisms() {
            // Bounds long enough for a loaded machine's `sh` to print
            // first (300 ms sometimes ended it before its `echo`).
            cases.extend([
                (choice, "exit 3", sh(choice, "echo out; exit 3")),
                (
                    choice,
                    "grace",
                    sh(choice, "trap '' TERM; echo out; sleep 30")
                        .timeout(Duration::from_secs(2))
                        .grace(Duration::from_millis(200)),
                ),
                (
                    choice,
                    "idle",
                    sh(choice, "echo out; sleep 30").inactivity_timeout(Duration::from_secs(2)),
                ),
            ]);
        }
        // Every case at once (each waits out its bound), each with its own
        // process and pipeline, one after the other.
        rt.block_on(all_at_once(cases, |(choice, what, c)| async move {
            let key = |o: &pkit::Output| {
                (
                    o.outcome(),
                    o.killed_after_grace(),
                    o.inactivity_timed_out(),
                )
            };
            // A try whose shell was slower to print than its bound (a
            // loaded machine) is made again with the bound doubled (2 s, up
            // to 16 s).
            let mut bound = Duration::from_secs(2);
            let (first, second) = loop {
                let c = match what {
                    "grace" => c.clone().timeout(bound),
                    "idle" => c.clone().inactivity_timeout(bound),
                    _ => c.clone(),
                };
                let mut p = c.start().unwrap();
                let first = p.wait().await.unwrap();
                let second = p.wait().await.unwrap();
                if first.stdout_str() == "out\n" || bound >= Duration::from_secs(16) {
                    break (first, second);
                }
                bound *= 2;
            };
            assert_eq!(key(&first), key(&second), "{choice} {what}: process");
            assert_eq!(first.stdout_str(), "out\n", "{choice} {what}");
            assert_eq!(second.stdout_str(), "", "{choice} {what}");
            let mut p = pkit::Pipe::new([cmd(choice, "true"), c.clone()])
                .start()
                .unwrap();
            let first = p.wait().await.unwrap();
            let second = p.wait().await.unwrap();
            assert_eq!(key(&first), key(&second), "{choice} {what}: pipeline");
            let stages = |o: &pkit::Output| o.stages().iter().map(key).collect::<Vec<_>>();
            assert_eq!(stages(&first), stages(&second), "{choice} {what}");
        }));
    });
}

/// A process its cancel token ended is `Cancelled` at every wait, not a
/// success (nor a second reap's error) the second time; a pipeline too.
#[test]
fn a_second_wait_after_a_cancel_is_cancelled_again() {
    in_suite("a_second_wait_after_a_cancel", || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for choice in mechanisms() {
            rt.block_on(async {
                let token = pkit::CancelToken::new();
                let c = sh(choice, "echo out; sleep 30").cancel_token(&token);
                let mut p = c.start().unwrap();
                let t = token.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    t.cancel();
                });
                for n in 0..2 {
                    let e = p.wait().await.expect_err("cancelled");
                    assert_eq!(e.kind(), pkit::ErrorKind::Cancelled, "{choice} #{n}: {e}");
                }
                let token = pkit::CancelToken::new();
                let mut p = pkit::Pipe::new([cmd(choice, "true"), sh(choice, "sleep 30")])
                    .cancel_token(&token)
                    .start()
                    .unwrap();
                let t = token.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    t.cancel();
                });
                for n in 0..2 {
                    let e = p.wait().await.expect_err("cancelled");
                    assert_eq!(e.kind(), pkit::ErrorKind::Cancelled, "{choice} #{n}: {e}");
                }
            });
        }
    });
}
