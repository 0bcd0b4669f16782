//! Attack round dec07: odd and huge inputs, an owner that `exec`s, signals
//! at bad moments, with real processes, in every mechanism.
//!
//! What broke: a stdin or stdout file that is a FIFO nobody opens from
//! the other end held the run's start forever (the open waited on the
//! caller's thread, past the run's timeout and cancel token:
//! [`a_fifo_with_nobody_at_the_other_end_holds_no_run_past_its_bounds`]).
//! A supervisor's stop and cancel token did not reach a start waiting so
//! ([`a_supervisors_stop_reaches_a_start_waiting_on_a_fifo`]). A stop then
//! a cancel token during a supervisor's back-off pause ended
//! as either by chance
//! ([`a_stop_then_a_cancel_during_a_pause_is_cancelled_every_time`]).
//! The rest passed when written.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::*;
use pkit::{Command, ErrorKind, FileMode, Group, MechanismChoice};

/// No case may take longer than this (a hang fails, never blocks).
const LONG: Duration = Duration::from_secs(120);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LONG, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung past {LONG:?}"))
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &TempPath) {
    let made = std::process::Command::new("mkfifo")
        .arg(path.as_str())
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
}

/// Runs `f` on a thread of its own with a runtime of its own; gives its
/// result, or `None` when it has not returned after `within` (the thread
/// is then left to `unblock`, which must make it return, and joined).
fn on_thread_within<T: Send + 'static>(
    within: Duration,
    f: impl FnOnce() -> T + Send + 'static,
    unblock: impl FnOnce(),
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    let got = rx.recv_timeout(within).ok();
    if got.is_none() {
        unblock();
    }
    thread.join().expect("the thread ends");
    got
}

/// The FIFO's other end opened (and closed at once), so an `open` blocked
/// on the FIFO returns.
fn open_other_end(fifo: &std::path::Path, for_write: bool) {
    let _ = std::fs::OpenOptions::new()
        .read(!for_write)
        .write(for_write)
        .open(fifo);
}

/// How a run whose stdio FIFO nobody opens from the other end may end.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// `output()` on a current-thread runtime of the thread's own.
    Verb,
    /// `cmd.blocking().output()`.
    Blocking,
    /// `Group::start` (synchronous), then `wait`.
    Start,
    /// A pipeline's `output()`, the FIFO its head's stdin or its last
    /// stage's stdout, the bound the pipeline's.
    Pipe,
}

/// `cat` reading a FIFO nobody writes to, or `echo` writing to one nobody
/// reads, bounded by a 1 s timeout or by a cancel token cancelled after
/// 300 ms, through `via`; its result, or `None` when it was held past
/// 30 s (then the FIFO's other end is opened, to let it go).
fn run_on_fifo(
    choice: MechanismChoice,
    via: Via,
    for_stdin: bool,
    cancel: bool,
) -> Option<pkit::Result<pkit::Output>> {
    let fifo = TempPath::new("fifo");
    mkfifo(&fifo);
    let path = fifo.path().to_path_buf();
    let c = if for_stdin {
        cmd(choice, "cat").stdin_file(&path)
    } else {
        cmd(choice, "echo")
            .arg("hi")
            .stdout_file(&path, FileMode::Truncate)
    };
    let token = pkit::CancelToken::new();
    if cancel {
        let t = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            t.cancel();
        });
    }
    let pipe = match via {
        Via::Pipe if for_stdin => {
            pkit::Pipe::new([cmd(choice, "cat"), cmd(choice, "cat")]).stdin_file(&path)
        }
        _ => pkit::Pipe::new([
            cmd(choice, "echo").arg("hi"),
            cmd(choice, "cat").stdout_file(&path, FileMode::Truncate),
        ]),
    };
    let pipe = if cancel {
        pipe.cancel_token(&token)
    } else {
        pipe.timeout(Duration::from_secs(1))
    };
    let c = if let Via::Pipe = via {
        cmd(choice, "true")
    } else if cancel {
        c.cancel_token(&token)
    } else {
        c.timeout(Duration::from_secs(1))
    };
    let unblock_path = path.clone();
    on_thread_within(
        Duration::from_secs(30),
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            match via {
                Via::Verb => rt.block_on(c.output()),
                Via::Blocking => c.blocking().output(),
                Via::Pipe => rt.block_on(pipe.output()),
                Via::Start => rt.block_on(async {
                    let g = Group::builder().mechanism(choice).build().unwrap();
                    let r = match g.start(&c) {
                        Ok(mut p) => p.wait().await,
                        Err(e) => Err(e),
                    };
                    g.close().await.unwrap();
                    r
                }),
            }
        },
        || open_other_end(&unblock_path, for_stdin),
    )
}

/// A child's stdin from a FIFO nobody writes to, and its stdout to a FIFO
/// nobody reads: `open(2)` of a FIFO waits until the other end is opened,
/// and pkit opened it on the caller's thread before the spawn, where no
/// bound of the run applied: a 1 s timeout or a cancel token held nothing,
/// the verb, the blocking verb, `Group::start` and a pipeline's `output`
/// never returned (a current-thread runtime was stuck with them). Now the
/// wait gives up at the run's timeout (`Error::Io`, timed out) or when its
/// cancel token fires (`Error::Cancelled`), nothing started, and no thread
/// is left behind, even for a timeout that passes before the open began.
/// Before the fix: held past 30 s in the first case tried.
#[test]
fn a_fifo_with_nobody_at_the_other_end_holds_no_run_past_its_bounds() {
    in_suite("a_fifo_with_nobody_at_the_other_end", || {
        // Every case at once, each on a thread of its own with its own FIFO
        // (they mostly wait: a 1 s timeout or a 0.3 s cancel each).
        let mut cases = Vec::new();
        for choice in mechanisms() {
            for via in [Via::Verb, Via::Blocking, Via::Start, Via::Pipe] {
                for for_stdin in [true, false] {
                    for cancel in [false, true] {
                        cases.push((choice, via, for_stdin, cancel));
                    }
                }
            }
        }
        at_once(cases, |(choice, via, for_stdin, cancel)| {
            let what = format!(
                "{choice}: {via:?}: {} FIFO, {}",
                if for_stdin { "stdin" } else { "stdout" },
                if cancel { "cancel token" } else { "timeout" }
            );
            let got = run_on_fifo(choice, via, for_stdin, cancel)
                .unwrap_or_else(|| panic!("{what}: held past 30 s"));
            let e = match got {
                Ok(out) => panic!("{what}: ran: {}", out.outcome()),
                Err(e) => e,
            };
            if cancel {
                assert_eq!(e.kind(), ErrorKind::Cancelled, "{what}: {e}");
            } else {
                assert_timed_out(&what, &e);
            }
        });
        for choice in mechanisms() {
            // Bounds that pass before the open's thread is even in its
            // open: the thread is still let go.
            for limit in [Duration::ZERO, Duration::from_millis(1)] {
                for for_stdin in [true, false] {
                    let fifo = TempPath::new("fifo");
                    mkfifo(&fifo);
                    let c = if for_stdin {
                        cmd(choice, "cat").stdin_file(fifo.path())
                    } else {
                        cmd(choice, "true").stdout_file(fifo.path(), FileMode::Append)
                    };
                    let e = c.timeout(limit).blocking().output().unwrap_err();
                    assert_timed_out(&format!("{choice}: {limit:?}"), &e);
                }
            }
        }
        // No open's thread is left waiting on a FIFO.
        let deadline = std::time::Instant::now() + DEADLINE;
        while open_threads() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} FIFO open threads left",
                open_threads()
            );
            std::thread::sleep(POLL);
        }
    });
}

/// Panics unless `e` is an `Error::Io` whose source timed out.
fn assert_timed_out(what: &str, e: &pkit::Error) {
    assert_eq!(e.kind(), ErrorKind::Io, "{what}: {e}");
    let source = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(|s| s.kind());
    assert_eq!(source, Some(std::io::ErrorKind::TimedOut), "{what}: {e}");
}

/// A run's timeout is one budget from the start call: the time its start
/// waited for a FIFO's other end counts against it. A 5 s timeout, a
/// writer that opens the stdin FIFO after 3 s (60%), and a program that
/// then sleeps 3.5 s: the run times out (at ~5 s), through the verb, the
/// blocking verb, `Group::start` and a pipeline. Before: the timeout was
/// counted again from the spawn, and the run succeeded after ~6.5 s.
#[test]
fn a_fifo_wait_counts_against_the_runs_timeout() {
    in_suite("a_fifo_wait_counts_against_the_runs_timeout", || {
        // The four ways of every mechanism at once: each takes the whole
        // timeout.
        let runs: Vec<_> = mechanisms()
            .into_iter()
            .flat_map(|choice| {
                [Via::Verb, Via::Blocking, Via::Start, Via::Pipe].map(|via| (choice, via))
            })
            .map(|(choice, via)| {
                std::thread::spawn(move || (choice, via, fifo_then_sleep(choice, via)))
            })
            .collect();
        for run in runs {
            let (choice, via, (timed_out, took)) = run.join().unwrap();
            let what = format!("{choice}: {via:?}");
            assert!(timed_out, "{what}: not timed out (after {took:?})");
            assert!(took < Duration::from_secs(60), "{what}: took {took:?}");
        }
    });
}

/// `sleep 3.5` with its stdin from a FIFO whose writer comes after 3 s,
/// under a 5 s timeout, through `via`: whether it timed out, and how long
/// it took.
fn fifo_then_sleep(choice: MechanismChoice, via: Via) -> (bool, Duration) {
    let fifo = TempPath::new("fifo");
    mkfifo(&fifo);
    let path = fifo.path().to_path_buf();
    let limit = Duration::from_secs(5);
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            // Held past the run (the program never reads it).
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            std::thread::sleep(Duration::from_secs(4));
            drop(f);
        })
    };
    let c = cmd(choice, "sleep")
        .arg("3.5")
        .stdin_file(&path)
        .timeout(limit);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let began = std::time::Instant::now();
    let got = match via {
        Via::Verb => rt.block_on(c.output()),
        Via::Blocking => c.blocking().output(),
        Via::Pipe => rt.block_on(
            pkit::Pipe::new([cmd(choice, "sleep").arg("3.5"), cmd(choice, "cat")])
                .stdin_file(&path)
                .timeout(limit)
                .output(),
        ),
        Via::Start => rt.block_on(async {
            let g = Group::builder().mechanism(choice).build().unwrap();
            let r = match g.start(&c) {
                Ok(mut p) => p.wait().await,
                Err(e) => Err(e),
            };
            g.close().await.unwrap();
            r
        }),
    };
    let took = began.elapsed();
    writer.join().unwrap();
    let timed_out = match got {
        Ok(out) => out.timed_out(),
        Err(e) => e.kind() == ErrorKind::Timeout,
    };
    (timed_out, took)
}

/// The wait for a FIFO's other end is still the shell's: a writer that
/// comes after the start (well within the timeout) is read from, and a
/// reader that comes later gets the child's output.
#[test]
fn a_fifo_whose_other_end_comes_later_is_waited_for() {
    in_suite("a_fifo_whose_other_end_comes_later", || {
        for choice in mechanisms() {
            for for_stdin in [true, false] {
                let fifo = TempPath::new("fifo");
                mkfifo(&fifo);
                let path = fifo.path().to_path_buf();
                let c = if for_stdin {
                    cmd(choice, "cat").stdin_file(&path)
                } else {
                    cmd(choice, "echo")
                        .arg("later")
                        .stdout_file(&path, FileMode::Truncate)
                }
                .timeout(Duration::from_secs(60));
                let other = std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    std::thread::sleep(Duration::from_millis(500));
                    if for_stdin {
                        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                        f.write_all(b"later\n").unwrap();
                        String::new()
                    } else {
                        let mut text = String::new();
                        std::fs::File::open(&path)
                            .unwrap()
                            .read_to_string(&mut text)
                            .unwrap();
                        text
                    }
                });
                let out = c
                    .blocking()
                    .output()
                    .unwrap_or_else(|e| panic!("{choice}: {e}"));
                let read = other.join().unwrap();
                assert!(out.success(), "{choice}: {out:?}");
                let got = if for_stdin {
                    out.stdout_str().to_string()
                } else {
                    read
                };
                assert_eq!(got, "later\n", "{choice}: stdin {for_stdin}");
            }
        }
    });
}

/// 100,000 arguments reach the program intact; one argument of 1 MiB
/// (past the kernel's 128 KiB for one argument) is a typed start error
/// (`Spawn`, E2BIG), from the verbs and from a group's start, with nothing
/// left behind. Passed when written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_arguments_and_one_of_a_mebibyte() {
    let suite = begin("a_hundred_thousand_arguments_and_one_of_a_mebibyte").await;
    let args: Vec<String> = (0..100_000).map(|i| format!("a{i}")).collect();
    let huge = "x".repeat(1 << 20);
    let e2big = |e: &pkit::Error| {
        std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .and_then(std::io::Error::raw_os_error)
            == Some(libc::E2BIG)
    };
    for choice in mechanisms() {
        let out = bounded(
            "100k args",
            sh(choice, r#"echo $# "$1" "${100000}""#)
                .args(&args)
                .output(),
        )
        .await
        .unwrap_or_else(|e| panic!("{choice}: 100k args: {e}"));
        assert_eq!(out.stdout_str(), "100000 a0 a99999\n", "{choice}");
        let e = bounded("1 MiB arg", cmd(choice, "true").arg(&huge).output())
            .await
            .map(|o| o.outcome())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Spawn, "{choice}: {e}");
        assert!(e2big(&e), "{choice}: {e:?}");
        let g = group(choice);
        let e = g
            .start(&Command::new("true").arg(&huge))
            .map(|p| p.pid())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Spawn, "{choice}: {e}");
        assert!(e2big(&e), "{choice}: {e:?}");
        g.close().await.unwrap();
    }
    suite.end().await;
}

/// A program whose path has a newline in it (and a tab, and a byte that
/// is not UTF-8) runs, with an argument that has a newline; a missing one
/// of that shape is `NotFound`. Passed when written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_path_with_a_newline() {
    use std::os::unix::ffi::OsStrExt;
    let suite = begin("a_program_path_with_a_newline").await;
    let dir = TempPath::new("nl-dir");
    std::fs::create_dir(dir.path()).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"odd\nna:1:me=x\t\xff");
    let prog = dir.path().join(name);
    // Written by another process, then renamed (the odd name isn't UTF-8):
    // a file this process wrote could be held open for writing by a child
    // another test's thread forked meanwhile, and its exec fail with
    // ETXTBSY (failed CI's process-group pass once).
    let plain = dir.path().join("plain");
    write_file_externally(&plain, "#!/bin/sh\necho ran \"$@\"\n", 0o755);
    std::fs::rename(&plain, &prog).unwrap();
    for choice in mechanisms() {
        let out = bounded(
            "nl program",
            Command::new(&prog)
                .runner(std::sync::Arc::new(pkit::SystemRunner::with_mechanism(
                    choice,
                )))
                .arg("x\ny")
                .output(),
        )
        .await
        .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert_eq!(out.stdout_str(), "ran x\ny\n", "{choice}");
        let missing = dir.path().join(std::ffi::OsStr::from_bytes(b"gone\nprog"));
        let e = bounded(
            "missing",
            Command::new(&missing)
                .runner(std::sync::Arc::new(pkit::SystemRunner::with_mechanism(
                    choice,
                )))
                .output(),
        )
        .await
        .map(|_| ())
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{choice}: {e}");
    }
    suite.end().await;
}

/// Marks a run of this binary as [`exec_owner`]; its value is the
/// mechanism the owner's group is of.
const EXEC_OWNER: &str = "PKIT_DEC07_EXEC_OWNER";

/// Runs as an owner when [`EXEC_OWNER`] is set: a group of the mechanism
/// it names, with a tree running; says the tree's pids and the group's
/// cgroup directory, then replaces itself with `sleep 300` (`exec`, the
/// group still open: nothing of pkit's runs after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_owner() {
    let Some(choice) = std::env::var_os(EXEC_OWNER) else {
        return;
    };
    use std::os::unix::process::CommandExt;
    let choice = MechanismChoice::parse(choice.to_str().expect("UTF-8")).expect("a mechanism");
    let g = group(choice);
    let mut p = g
        .start(
            &Command::new("sh")
                .args(["-c", TREE_TO_STDOUT])
                .stream_lines(),
        )
        .unwrap();
    let mut lines = p.lines();
    println!("DEC07 tree {}", p.pid());
    while let Some(l) = lines.next_line().await {
        if l.text == "ready" {
            break;
        }
        println!("DEC07 tree {}", l.text);
    }
    if let Some(dir) = cgroup_dir(&g) {
        println!("DEC07 dir {}", dir.display());
    }
    assert!(g.guarded(), "{choice}: {}", g.description());
    let _keep = (g, p, lines);
    println!("DEC07 ready");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    let e = std::process::Command::new("sleep").arg("300").exec();
    panic!("exec: {e}");
}

/// An owner that `exec`s another program while its groups are open (the
/// program pkit was in is gone; nobody can end those groups any more):
/// the owner-death guard ends every tree and removes every cgroup
/// directory, as when the owner dies. One owner per mechanism, all at
/// once, each with its own group. Passed when written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_execs_with_groups_open_leaves_nothing() {
    if std::env::var_os(EXEC_OWNER).is_some() {
        return;
    }
    let suite = begin("an_owner_that_execs_with_groups_open").await;
    all_at_once(mechanisms(), owner_that_execs).await;
    suite.end().await;
}

/// [`an_owner_that_execs_with_groups_open_leaves_nothing`]'s case: an
/// owner of a `choice` group that `exec`s.
async fn owner_that_execs(choice: MechanismChoice) {
    let mut child = helper_owner("exec_owner", EXEC_OWNER, choice.as_str());
    let rx = tagged_lines(&mut child, "DEC07 ");
    // Its lines until `ready`, read off the async threads.
    let (mut child, heard) = tokio::task::spawn_blocking(move || {
        let mut tree = Vec::new();
        let mut dirs = Vec::new();
        loop {
            let Ok(line) = rx.recv_timeout(DEADLINE * 6) else {
                return (child, Err(tree));
            };
            match line.split_once(' ') {
                Some(("tree", pid)) => tree.push(pid.parse::<u32>().unwrap()),
                Some(("dir", d)) => dirs.push(std::path::PathBuf::from(d)),
                _ if line == "ready" => return (child, Ok((tree, dirs))),
                _ => {}
            }
        }
    })
    .await
    .expect("the reading thread");
    let (tree, dirs) = match heard {
        Ok(heard) => heard,
        Err(tree) => {
            let _ = child.kill();
            let _ = child.wait();
            let _cleanup = KillOnDrop::new(tree);
            panic!("{choice}: the owner never said ready");
        }
    };
    let _cleanup = KillOnDrop::new(tree.clone());
    // The owner is `sleep` now.
    let deadline = std::time::Instant::now() + DEADLINE;
    while comm(child.id()).as_deref() != Some("sleep") {
        assert!(
            std::time::Instant::now() < deadline,
            "{choice}: the owner never exec'd"
        );
        tokio::time::sleep(POLL).await;
    }
    let gone = wait_gone(&tree, DEADLINE * 3).await;
    let deadline = std::time::Instant::now() + DEADLINE * 3;
    let left = loop {
        let left: Vec<_> = dirs.iter().filter(|d| d.exists()).cloned().collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(POLL).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        gone,
        Ok(()),
        "{choice}: the trees outlived the owner's exec"
    );
    assert!(
        left.is_empty(),
        "{choice}: cgroup directories left: {left:?}"
    );
}

/// A pipeline whose middle stage dies of SIGKILL before its `exec` (a
/// `pre_exec` hook raises it: the stage is killed while the pipeline is
/// being started), between a writer that never stops (`yes`) and a
/// reader: the pipeline ends (no stage waits on a pipe end pkit kept),
/// the middle stage's death is reported, nothing is left. Passed when
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_middle_stage_killed_before_its_exec() {
    let suite = begin("a_middle_stage_killed_before_its_exec").await;
    for choice in mechanisms() {
        if skip_on_portable(choice, "pre_exec hooks") {
            continue;
        }
        // SAFETY: raise is async-signal-safe; the hook allocates nothing.
        let middle = unsafe {
            cmd(choice, "cat").pre_exec(|| {
                libc::raise(libc::SIGKILL);
                Ok(())
            })
        };
        let pipe = pkit::Pipe::new([cmd(choice, "yes"), middle, cmd(choice, "cat")])
            .timeout(Duration::from_secs(60));
        let out = bounded("middle killed", pipe.output())
            .await
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        let stages: Vec<_> = out.stages().iter().map(|s| s.outcome()).collect();
        assert_eq!(stages.len(), 3, "{choice}");
        assert_eq!(
            stages[1],
            pkit::Outcome::Signalled(9),
            "{choice}: {stages:?}"
        );
        assert!(!out.success(), "{choice}: {stages:?}");
    }
    suite.end().await;
}

/// A graceful stop asked, then the supervisor's cancel token cancelled
/// right after, during a back-off pause: the outcome is `Cancelled`, as
/// the token's docs say (and as when both are seen before a run), every
/// time. Before, the supervising task's select took whichever it polled
/// first: of 40 rounds, 27 `Cancelled` and 13 `StopRequested`. On one
/// thread, so that both are pending when the supervising task next looks:
/// on a second worker it could see the stop alone, and end as asked.
#[tokio::test]
async fn a_stop_then_a_cancel_during_a_pause_is_cancelled_every_time() {
    let suite = begin("a_stop_then_a_cancel_during_a_pause").await;
    for choice in mechanisms() {
        for _ in 0..20 {
            let token = pkit::CancelToken::new();
            let mut h = pkit::Supervisor::new(sh(choice, "exit 3"))
                .mechanism(choice)
                .backoff(Duration::from_secs(300), 1.0)
                .cancel_token(&token)
                .start();
            loop {
                match bounded("events", h.next_event()).await {
                    Some(pkit::SupervisorEvent::BackingOff(_)) => break,
                    Some(_) => {}
                    None => panic!("{choice}: ended before its pause"),
                }
            }
            h.request_stop();
            token.cancel();
            let out = bounded("wait", h.wait()).await.unwrap();
            assert_eq!(out.stopped, pkit::StopReason::Cancelled, "{choice}");
            assert_eq!(out.restarts, 0, "{choice}");
        }
    }
    suite.end().await;
}

/// A supervised command whose stdin is a FIFO nobody writes to, with no
/// bound of its own: the supervisor's start waits for a writer (as a
/// shell's would), and the supervisor's `stop()` or cancel token gives
/// that wait up (`StopRequested`, `Cancelled`). Before: they did not reach
/// the start, which waited on the supervising task's thread (dropping the
/// handle cannot abort a task blocked in a system call): `stop()` held
/// past 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisors_stop_reaches_a_start_waiting_on_a_fifo() {
    let suite = begin("a_supervisors_stop_reaches_a_start_waiting_on_a_fifo").await;
    for choice in mechanisms() {
        for cancel in [false, true] {
            let fifo = TempPath::new("fifo");
            mkfifo(&fifo);
            let token = pkit::CancelToken::new();
            let h = pkit::Supervisor::new(cmd(choice, "cat").stdin_file(fifo.path()))
                .mechanism(choice)
                .cancel_token(&token)
                .start();
            tokio::time::sleep(Duration::from_millis(300)).await;
            if cancel {
                token.cancel();
            }
            let stopped = tokio::time::timeout(Duration::from_secs(10), h.stop()).await;
            if stopped.is_err() {
                // Let the blocked start go, so nothing is left behind.
                open_other_end(fifo.path(), true);
            }
            let out = stopped
                .unwrap_or_else(|_| panic!("{choice}: stop() held past 10 s by the FIFO's open"))
                .unwrap();
            let want = if cancel {
                pkit::StopReason::Cancelled
            } else {
                pkit::StopReason::StopRequested
            };
            assert_eq!(out.stopped, want, "{choice}");
            assert_eq!(out.restarts, 0, "{choice}");
        }
    }
    suite.end().await;
}

/// Dropping a supervisor's handle while its start waits for a FIFO's other
/// end lets that wait go: aborting the supervising task cannot interrupt
/// an open(2) it is blocked in, so the handle's drop gives the wait up
/// itself, and no `pkit-fifo-open` thread (nor the runtime thread
/// watching it) is left held. Before: the thread stayed until the test
/// opened the FIFO's other end (first case, past 10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_supervisor_handle_lets_a_fifo_wait_go() {
    // Alone in this binary: the FIFO test above has open threads of its
    // own (the threads counted are this process's).
    let guard = begin_alone_in_binary().await;
    for choice in mechanisms() {
        let fifo = TempPath::new("fifo");
        mkfifo(&fifo);
        let h = pkit::Supervisor::new(cmd(choice, "cat").stdin_file(fifo.path()))
            .mechanism(choice)
            .start();
        // The start is waiting in the FIFO's open.
        let deadline = std::time::Instant::now() + DEADLINE;
        while open_threads() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{choice}: the start never waited on the FIFO"
            );
            tokio::time::sleep(POLL).await;
        }
        drop(h);
        let deadline = std::time::Instant::now() + DEADLINE;
        let mut left = open_threads();
        while left > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            left = open_threads();
        }
        if left > 0 {
            // Let the blocked start go, so nothing is left behind.
            open_other_end(fifo.path(), true);
        }
        assert_eq!(
            left, 0,
            "{choice}: FIFO open threads left 10 s after the drop"
        );
    }
    end_exclusive(guard, "dropping_a_supervisor_handle_lets_a_fifo_wait_go").await;
}
