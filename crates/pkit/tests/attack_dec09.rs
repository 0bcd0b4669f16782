//! Attack round dec09 (attack14): shell-free pipelines, the blocking
//! facade and the pty, as a hostile user drives them. Every mechanism.
//!
//! What broke (fixed): a pty stage of a chain was refused only after the
//! stages ahead of it had started; an unchecked last stage that failed
//! failed the chain; a chain timed out while only an unchecked stage ran
//! reported success; a `wait` abandoned while it collected the output
//! (a caller's own timeout) lost it, and the next `wait` reported success
//! with nothing captured; an interactive shell's background job on a pty
//! outlived a process group (MEDIUM); a NUL byte in a later stage's
//! argument was refused after the stages ahead of it started (LOW); a
//! slow line callback of one thread's blocking run stalled every other
//! thread's blocking runs, timeouts included (MEDIUM, fixed by blkcb).
//! The rest passed when written.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, ErrorKind, Outcome, Pipe};

/// No case may take longer than this (a hang fails, never blocks).
const LONG: Duration = Duration::from_secs(120);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LONG, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung past {LONG:?}"))
}

/// A stage `sh -c script` (no runner of its own: the chain's mechanism).
fn st(script: &str) -> Command {
    Command::new("sh").args(["-c", script, "sh"])
}

/// Bytes that are not all the same, so a reordering would show.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect()
}

/// A stage that can't be started (its program does not exist) in the
/// middle of a chain: a typed error, and the stage started before it, with
/// what it spawned, is gone by the time the error is returned.
#[tokio::test]
async fn a_missing_middle_stage_is_not_found_and_leaves_nothing_running() {
    let s = begin("a_missing_middle_stage_is_not_found_and_leaves_nothing_running").await;
    for choice in mechanisms() {
        let pids = TempPath::new("missing-mid");
        let chain = Pipe::new([
            st("sleep 300 & echo $! >> \"$1\"; echo $$ >> \"$1\"; echo done >> \"$1\"; wait")
                .arg(pids.as_str()),
            Command::new("/nonexistent/attack14-no-such-program"),
            Command::new("cat"),
        ])
        .mechanism(choice);
        let err = bounded("missing stage", chain.output())
            .await
            .expect_err("a missing stage is an error");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{choice}: {err}");
        // The head may not have written its pids yet when it was killed.
        if let Ok(text) = std::fs::read_to_string(pids.path()) {
            let ps: Vec<u32> = text.lines().filter_map(|l| l.parse().ok()).collect();
            assert_gone(&ps, &format!("{choice}: the head and its sleep")).await;
        }
    }
    s.end().await;
}

/// 100 stages of `cat`: every byte arrives, in order.
#[tokio::test]
async fn a_hundred_stage_chain_carries_every_byte() {
    let s = begin("a_hundred_stage_chain_carries_every_byte").await;
    for choice in mechanisms() {
        let data = pattern(1 << 20);
        let chain = Pipe::new((0..100).map(|_| Command::new("cat")))
            .stdin_bytes(data.clone())
            .mechanism(choice);
        let out = bounded("100 stages", chain.output()).await.expect("output");
        assert!(out.success(), "{choice}: {out:?}");
        assert_eq!(out.stages().len(), 100, "{choice}");
        assert!(
            out.stdout() == data,
            "{choice}: {} bytes came out",
            out.stdout().len()
        );
    }
    s.end().await;
}

/// 24 MiB through 10 stages, each also flooding its stderr: bytes intact,
/// no deadlock.
#[tokio::test]
async fn big_data_through_ten_stages_flooding_stderr_arrives_intact() {
    let s = begin("big_data_through_ten_stages_flooding_stderr_arrives_intact").await;
    for choice in mechanisms() {
        let data = pattern(24 << 20);
        let chain = Pipe::new(
            (0..10).map(|_| st("head -c 3000000 /dev/zero | tr '\\0' e >&2 & cat; wait")),
        )
        .stdin_bytes(data.clone())
        .mechanism(choice);
        let out = bounded("10 stages", chain.output()).await.expect("output");
        assert!(out.success(), "{choice}: {:?}", out.outcome());
        assert!(
            out.stdout() == data,
            "{choice}: {} bytes came out",
            out.stdout().len()
        );
        for st in out.stages() {
            assert!(
                !st.stderr().is_empty(),
                "{choice}: a stage's stderr is kept"
            );
        }
    }
    s.end().await;
}

/// The head never reads its stdin; the chain is given more input than a
/// pipe holds. The head's own output and success are what count.
#[tokio::test]
async fn a_head_that_never_reads_its_input_still_succeeds() {
    let s = begin("a_head_that_never_reads_its_input_still_succeeds").await;
    for choice in mechanisms() {
        let chain = Pipe::new([st("sleep 0.2; echo hi"), Command::new("cat")])
            .stdin_bytes(pattern(10 << 20))
            .mechanism(choice);
        let out = bounded("unread input", chain.output()).await;
        let out = out.unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert!(out.success(), "{choice}: {out:?}");
        assert_eq!(out.stdout_str(), "hi\n", "{choice}");
    }
    s.end().await;
}

/// A middle stage that exits 0 at once without reading: its producer dies
/// of SIGPIPE (or is killed), the stage after it reads end of file; the
/// chain is over promptly, nothing of it left.
#[tokio::test]
async fn a_middle_stage_exiting_early_ends_the_chain() {
    let s = begin("a_middle_stage_exiting_early_ends_the_chain").await;
    for choice in mechanisms() {
        let chain =
            Pipe::new([Command::new("yes"), st("exit 0"), Command::new("cat")]).mechanism(choice);
        let out = bounded("early exit", chain.output()).await.expect("output");
        assert_eq!(
            out.stages()[0].outcome(),
            Outcome::Signalled(13),
            "{choice}"
        );
        assert!(
            !out.success(),
            "{choice}: an unchecked SIGPIPE fails the chain"
        );
        assert_eq!(out.stages()[2].outcome(), Outcome::Exited(0), "{choice}");
    }
    s.end().await;
}

/// A started chain whose handle is dropped while its stages stream a lot:
/// everything, grandchildren included, is gone.
#[tokio::test]
async fn dropping_a_flooding_started_chain_leaves_nothing() {
    let s = begin("dropping_a_flooding_started_chain_leaves_nothing").await;
    for choice in mechanisms() {
        let pids = TempPath::new("drop-flood");
        let chain = Pipe::new([
            st("yes & echo $! >> \"$1\"; echo done >> \"$1\"; wait").arg(pids.as_str()),
            st("cat & cat >&2; wait"),
            Command::new("cat"),
        ])
        .mechanism(choice)
        .stream_lines();
        let running = chain.start().expect("start");
        let mut all = pids.wait_pids().await;
        all.extend(running.pids());
        drop(running);
        assert_gone(&all, &format!("{choice}: dropped chain")).await;
    }
    s.end().await;
}

// ---------------------------------------------------------------------------
// The blocking facade
// ---------------------------------------------------------------------------

/// A blocking pipeline from 32 threads at once, each with its own data.
#[test]
fn thirty_two_threads_run_blocking_pipelines_at_once() {
    in_suite("thirty_two_threads_run_blocking_pipelines_at_once", || {
        for choice in mechanisms() {
            let threads: Vec<_> = (0..32)
                .map(|i| {
                    std::thread::spawn(move || {
                        let data = format!("{i}\n").repeat(10_000);
                        let out = Pipe::new([Command::new("cat"), st("cat; cat >&2 </dev/null")])
                            .stdin_bytes(data.clone())
                            .mechanism(choice)
                            .blocking()
                            .output()
                            .expect("output");
                        assert!(out.success(), "{choice}: {out:?}");
                        assert!(out.stdout() == data.as_bytes(), "{choice}: thread {i}");
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("thread");
            }
        }
    });
}

/// A blocking output of a child flooding both pipes at once (no deadlock),
/// from a thread while a current_thread runtime is busy on another.
#[test]
fn a_blocking_output_flooding_both_pipes_completes() {
    in_suite("a_blocking_output_flooding_both_pipes_completes", || {
        for choice in mechanisms() {
            let out = sh(
                choice,
                "head -c 8000000 /dev/zero >&2 & head -c 8000000 /dev/zero; wait",
            )
            .capture_limit(16 << 20, pkit::CapturePolicy::KeepHead)
            .blocking()
            .output()
            .expect("output");
            assert!(out.success(), "{choice}: {:?}", out.outcome());
            assert_eq!(out.stdout().len(), 8_000_000, "{choice}");
            assert_eq!(out.stderr().len(), 8_000_000, "{choice}");
        }
    });
}

/// A line callback that panics during a blocking run: the run does not
/// hang, and the facade still works afterwards.
#[test]
fn a_panicking_line_callback_does_not_wedge_the_blocking_facade() {
    in_suite(
        "a_panicking_line_callback_does_not_wedge_the_blocking_facade",
        || {
            for choice in mechanisms() {
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let r = std::panic::catch_unwind(|| {
                        sh(choice, "echo a; echo b; sleep 0.2; echo c")
                            .on_stdout_line(|l| {
                                if l == "b" {
                                    panic!("attack14: callback panics on purpose");
                                }
                            })
                            .blocking()
                            .output()
                            .map(|o| o.outcome())
                    });
                    let _ = tx.send(format!("{r:?}"));
                });
                let got = rx
                    .recv_timeout(LONG)
                    .unwrap_or_else(|_| panic!("{choice}: a panicking callback hung the run"));
                eprintln!("{choice}: panicking callback gave {got}");
                assert_eq!(
                    Command::new("echo")
                        .arg("after")
                        .blocking()
                        .run()
                        .expect("after"),
                    "after"
                );
            }
        },
    );
}

/// Dropping a blocking started process while its child writes flat out:
/// the drop returns and the child and its grandchild are gone.
#[test]
fn dropping_a_blocking_process_mid_flood_kills_it() {
    in_suite("dropping_a_blocking_process_mid_flood_kills_it", || {
        for choice in mechanisms() {
            let group = pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice))
                .expect("group");
            let pids = TempPath::new("bdrop");
            let p = group
                .start(
                    &Command::new("sh")
                        .args(["-c", "yes & echo $! > \"$1\"; yes >&2", "sh", pids.as_str()])
                        .stream_lines(),
                )
                .expect("start");
            let pid = p.pid();
            let deadline = std::time::Instant::now() + DEADLINE;
            let grand = loop {
                if let Some(g) = std::fs::read_to_string(pids.path())
                    .ok()
                    .and_then(|t| t.trim().parse::<u32>().ok())
                {
                    break g;
                }
                assert!(std::time::Instant::now() < deadline, "{choice}: no pid");
                std::thread::sleep(POLL);
            };
            drop(p);
            drop(group);
            let deadline = std::time::Instant::now() + DEADLINE;
            while !(pid_gone(pid) && pid_gone(grand)) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{choice}: left running"
                );
                std::thread::sleep(POLL);
            }
        }
    });
}

// ---------------------------------------------------------------------------
// Pipelines: refusals and edge bounds
// ---------------------------------------------------------------------------

/// A pty stage after the head is refused, and refused before anything
/// runs: the head's stderr file (created by its start) never appears, as
/// for every other stage the chain can't wire.
#[tokio::test]
async fn a_pty_stage_is_refused_before_any_stage_starts() {
    let s = begin("a_pty_stage_is_refused_before_any_stage_starts").await;
    for choice in mechanisms() {
        let file = TempPath::new("pty-stage-head");
        let chain = Pipe::new([
            Command::new("true").stderr_file(file.path(), pkit::FileMode::Truncate),
            Command::new("cat").pty(24, 80),
        ])
        .mechanism(choice);
        let err = bounded("pty stage", chain.output())
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{choice}: {err}");
        assert!(
            !file.path().exists(),
            "{choice}: the head was started before the chain was refused ({err})"
        );
    }
    s.end().await;
}

/// Bounds at the ends of their range: `Duration::MAX` is no bound (the
/// chain's, a stage's, the inactivity one), zero times out at once.
#[tokio::test]
async fn a_chain_takes_bounds_of_zero_and_duration_max() {
    let s = begin("a_chain_takes_bounds_of_zero_and_duration_max").await;
    for choice in mechanisms() {
        let chain = Pipe::new([
            Command::new("echo").arg("x").timeout(Duration::MAX),
            Command::new("cat").inactivity_timeout(Duration::MAX),
        ])
        .timeout(Duration::MAX)
        .inactivity_timeout(Duration::MAX)
        .grace(Duration::MAX)
        .mechanism(choice);
        let out = bounded("MAX", chain.output()).await.expect("output");
        assert!(out.success(), "{choice}: {out:?}");
        assert_eq!(out.stdout_str(), "x\n", "{choice}");

        let chain = Pipe::new([st("sleep 300"), Command::new("cat")])
            .timeout(Duration::ZERO)
            .mechanism(choice);
        let out = bounded("ZERO", chain.output()).await.expect("output");
        assert_eq!(out.outcome(), Outcome::TimedOut, "{choice}");
    }
    s.end().await;
}

/// A started chain: wait twice, then kill, signal and shutdown once it
/// is over (all no-ops), in every order.
#[tokio::test]
async fn a_finished_started_chain_takes_every_call() {
    let s = begin("a_finished_started_chain_takes_every_call").await;
    for choice in mechanisms() {
        let mut chain = Pipe::new([Command::new("echo").arg("a"), Command::new("cat")])
            .mechanism(choice)
            .start()
            .expect("start");
        let first = bounded("wait", chain.wait()).await.expect("wait");
        assert_eq!(first.stdout_str(), "a\n", "{choice}");
        let again = bounded("wait again", chain.wait()).await.expect("again");
        assert!(again.success(), "{choice}");
        chain.kill().expect("kill after the end");
        chain
            .signal(pkit::Signal::Term)
            .expect("signal after the end");
        assert!(!chain
            .shutdown(Duration::from_secs(1))
            .await
            .expect("shutdown"));
    }
    s.end().await;
}

// ---------------------------------------------------------------------------
// The pty
// ---------------------------------------------------------------------------

/// A pty child that closes its terminal at once and runs on: the verb
/// waits for its exit, reports its code, and does not hang.
#[tokio::test]
async fn a_pty_child_closing_its_terminal_early_is_waited_for() {
    let s = begin("a_pty_child_closing_its_terminal_early_is_waited_for").await;
    for choice in mechanisms() {
        let out = bounded(
            "closed terminal",
            cmd(choice, "sh")
                .args([
                    "-c",
                    "echo before; exec </dev/null >/dev/null 2>&1; sleep 0.5; exit 3",
                ])
                .pty(24, 80)
                .output(),
        )
        .await
        .expect("output");
        assert_eq!(out.code(), Some(3), "{choice}: {out:?}");
        assert!(out.stdout_str().contains("before"), "{choice}: {out:?}");
    }
    s.end().await;
}

/// A pty child in raw mode writing binary bytes: they arrive as written
/// (no CR added, no byte lost), through a verb.
#[tokio::test]
async fn a_raw_mode_pty_child_writes_binary_intact() {
    let s = begin("a_raw_mode_pty_child_writes_binary_intact").await;
    for choice in mechanisms() {
        let file = TempPath::new("pty-raw");
        let data = pattern(3 << 20);
        std::fs::write(file.path(), &data).expect("write");
        let out = bounded(
            "raw pty",
            cmd(choice, "sh")
                .args(["-c", "stty raw -echo; cat \"$1\"", "sh", file.as_str()])
                .pty(24, 80)
                .capture_limit(8 << 20, pkit::CapturePolicy::KeepHead)
                .output(),
        )
        .await
        .expect("output");
        assert!(out.success(), "{choice}: {:?}", out.outcome());
        assert_eq!(out.stdout().len(), data.len(), "{choice}");
        assert!(out.stdout() == data, "{choice}: bytes changed");
    }
    s.end().await;
}

/// Writing to a pty whose child has exited (and while it exits): an
/// error or success, never a hang or a panic; the handle then waits.
#[tokio::test]
async fn writing_to_a_pty_whose_child_exits_fails_cleanly() {
    let s = begin("writing_to_a_pty_whose_child_exits_fails_cleanly").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "read x; exit 4"])
                    .pty(24, 80),
            )
            .expect("start");
        let pty = p.pty().expect("pty");
        for i in 0..2000 {
            let r = bounded("write", pty.write_line(&format!("line {i}"))).await;
            if r.is_err() {
                break;
            }
        }
        let out = bounded("wait", p.wait()).await.expect("wait");
        assert_eq!(out.code(), Some(4), "{choice}: {out:?}");
        let late = bounded("late write", pty.write_line("late")).await;
        eprintln!("{choice}: a write after the end gave {late:?}");
    }
    s.end().await;
}

/// A started pty child flooding its terminal that nobody reads: kill and
/// drop return, the child and its grandchild are gone.
#[tokio::test]
async fn an_unread_flooding_pty_child_is_killed_and_dropped() {
    let s = begin("an_unread_flooding_pty_child_is_killed_and_dropped").await;
    for choice in mechanisms() {
        let pids = TempPath::new("pty-flood");
        let (group, p) = start_pty_sh(
            choice,
            &format!(
                "yes & echo $! >> {0}; echo $$ >> {0}; echo done >> {0}; yes",
                pids.as_str()
            ),
        );
        let all = pids.wait_pids().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(p);
        drop(group);
        assert_gone(&all, &format!("{choice}: flooding pty")).await;
    }
    s.end().await;
}

/// An interactive shell on a pty (job control on, as any interactive
/// shell has it on a terminal) runs a background job and a foreground
/// one; each job gets a process group of its own. Ending the group (a
/// drop: the teardown that can't wait) ends both, whatever the mechanism.
/// Both jobs ignore SIGHUP, so the terminal's hangup ends neither: only
/// the sweep of the pty's session reaches them under process groups.
///
/// MEDIUM (attack14), fixed: under process groups (pgroup, portable) the
/// background job outlived the group (its own process group, same
/// session), as did a foreground job that ignored the hangup.
#[tokio::test]
async fn jobs_of_an_interactive_shell_on_a_pty_die_with_the_group() {
    let s = begin("jobs_of_an_interactive_shell_on_a_pty_die_with_the_group").await;
    for choice in mechanisms() {
        let pids = TempPath::new("pty-jobs");
        let group = group(choice);
        let p = group
            .start(
                &Command::new("sh")
                    .arg("-i")
                    .env("PS1", "$ ")
                    .env("ENV", "/dev/null")
                    .pty(24, 80)
                    .stream_lines()
                    .decoder(pkit::DecoderFactory::utf8_strip_vt()),
            )
            .expect("start");
        let pty = p.pty().expect("pty");
        let line = format!(
            "trap '' HUP; sleep 300 & echo $! >> {0}; (echo $(sh -c 'echo $PPID') >> {0}; echo done >> {0}; exec sleep 301)",
            pids.as_str()
        );
        pty.write_line(&line).await.expect("type");
        let jobs = pids.wait_pids().await;
        assert_eq!(jobs.len(), 2, "{choice}: {jobs:?}");
        let leader = stat(p.pid()).expect("shell");
        for &j in &jobs {
            let st = stat(j).expect("job runs");
            eprintln!(
                "{choice}: shell pgrp {} job {j} pgrp {}",
                leader.pgrp, st.pgrp
            );
        }
        drop(p);
        drop(group);
        if let Err(alive) = wait_gone(&jobs, DEADLINE).await {
            alive.iter().for_each(|&j| kill_pid(j));
            panic!("{choice}: the interactive shell's jobs {alive:?} outlived the group");
        }
    }
    s.end().await;
}

// ---------------------------------------------------------------------------
// Started chains, async and blocking
// ---------------------------------------------------------------------------

/// A blocking chain's line iterator, read on another thread, ends when the
/// chain's handle is dropped on this one; nothing is left running.
#[test]
fn a_blocking_chains_lines_end_when_the_handle_is_dropped_elsewhere() {
    in_suite(
        "a_blocking_chains_lines_end_when_the_handle_is_dropped_elsewhere",
        || {
            for choice in mechanisms() {
                let mut p = Pipe::new([
                    st("while :; do echo tick; sleep 0.05; done"),
                    Command::new("cat"),
                ])
                .mechanism(choice)
                .stream_lines()
                .blocking()
                .start()
                .expect("start");
                let pids = p.pids();
                let lines = p.lines();
                // The handle is dropped once a line has come through (a
                // fixed pause was too short for a loaded machine to start
                // the chain: no line was read).
                let (first, seen) = std::sync::mpsc::channel();
                let reader = std::thread::spawn(move || {
                    lines
                        .take(1_000_000)
                        .inspect(|_| {
                            let _ = first.send(());
                        })
                        .count()
                });
                seen.recv_timeout(LONG)
                    .unwrap_or_else(|_| panic!("{choice}: no line came through"));
                drop(p);
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let _ = tx.send(reader.join());
                });
                let n = rx
                    .recv_timeout(LONG)
                    .unwrap_or_else(|_| panic!("{choice}: the lines never ended"))
                    .expect("reader");
                assert!(n > 0, "{choice}");
                let deadline = std::time::Instant::now() + DEADLINE;
                while !pids.iter().all(|&p| pid_gone(p)) {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{choice}: {pids:?} left"
                    );
                    std::thread::sleep(POLL);
                }
            }
        },
    );
}

/// A blocking chain's head exits without reading: writing its stdin fails
/// with an error (broken pipe), never kills this process by SIGPIPE nor
/// hangs, and the chain's result is the head's.
#[test]
fn writing_to_a_blocking_chain_whose_head_is_gone_fails_cleanly() {
    in_suite(
        "writing_to_a_blocking_chain_whose_head_is_gone_fails_cleanly",
        || {
            use std::io::Write;
            for choice in mechanisms() {
                let mut p = Pipe::new([st("exit 0"), Command::new("cat")])
                    .mechanism(choice)
                    .stdin_piped()
                    .blocking()
                    .start()
                    .expect("start");
                let mut stdin = p.take_stdin().expect("piped");
                let chunk = vec![b'x'; 1 << 16];
                let mut failed = None;
                for _ in 0..1000 {
                    if let Err(e) = stdin.write_all(&chunk) {
                        failed = Some(e);
                        break;
                    }
                }
                let e = failed.unwrap_or_else(|| panic!("{choice}: 64 MB went into a gone head"));
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{choice}: {e}");
                drop(stdin);
                let out = p.wait().expect("wait");
                assert!(out.success(), "{choice}: {out:?}");
            }
        },
    );
}

/// 16 MiB written live into a started chain of five stages while its lines
/// are read: every line arrives, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_chain_streams_16_mib_written_live() {
    use tokio::io::AsyncWriteExt;
    let s = begin("a_started_chain_streams_16_mib_written_live").await;
    for choice in mechanisms() {
        let mut p = Pipe::new((0..5).map(|_| Command::new("cat")))
            .mechanism(choice)
            .stdin_piped()
            .stream_lines()
            .start()
            .expect("start");
        let mut lines = p.lines();
        let mut stdin = p.take_stdin().expect("piped");
        let n = 400_000u32;
        let writer = tokio::spawn(async move {
            let mut buf = Vec::new();
            for i in 0..n {
                buf.extend_from_slice(format!("{i:040}\n").as_bytes());
                if buf.len() > 1 << 16 {
                    stdin.write_all(&buf).await.expect("write");
                    buf.clear();
                }
            }
            stdin.write_all(&buf).await.expect("write");
        });
        let mut next = 0u32;
        while let Some(l) = bounded("line", lines.next_line()).await {
            assert_eq!(l.text, format!("{next:040}"), "{choice}");
            next += 1;
        }
        writer.await.expect("writer");
        assert_eq!(
            next,
            n,
            "{choice}: lines lost ({} dropped)",
            p.dropped_lines()
        );
        assert!(
            bounded("wait", p.wait()).await.expect("wait").success(),
            "{choice}"
        );
    }
    s.end().await;
}

/// A middle stage stopped (SIGSTOP) when the chain's timeout comes, with a
/// TERM handler and a grace longer than the test: the stage is resumed to
/// run its handler, so the chain ends well before the grace.
#[tokio::test]
async fn a_stopped_middle_stage_at_the_chains_timeout_runs_its_handler() {
    let s = begin("a_stopped_middle_stage_at_the_chains_timeout_runs_its_handler").await;
    for choice in mechanisms() {
        let chain = Pipe::new([
            st("sleep 300"),
            st("trap 'exit 7' TERM; kill -STOP $$; cat"),
            Command::new("cat"),
        ])
        .timeout(Duration::from_millis(500))
        .grace(Duration::from_secs(600))
        .mechanism(choice);
        let out = bounded("stopped stage", chain.output())
            .await
            .expect("output");
        assert_eq!(out.outcome(), Outcome::TimedOut, "{choice}");
        assert!(!out.killed_after_grace(), "{choice}: the grace ran out");
    }
    s.end().await;
}

/// A slow line callback of one thread's blocking run (it sleeps, as one
/// that writes to a slow socket or takes a lock would) must not hold up
/// another thread's blocking run: that run's timeout fires on time, long
/// before the callback returns.
///
/// MEDIUM, fixed (blkcb): the blocking facade ran every thread's output
/// readers, line callbacks included, on its one internal runtime thread,
/// so a callback that blocks stalled every blocking run of the process
/// (their timeouts, output, waits) until it returned. A reader that runs
/// the caller's code now runs on a thread of its own (`pump/apart.rs`).
#[test]
fn a_slow_callback_on_one_thread_does_not_stall_another_threads_timeout() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    in_suite(
        "a_slow_callback_on_one_thread_does_not_stall_another_threads_timeout",
        || {
            for choice in mechanisms() {
                let entered = Arc::new(AtomicBool::new(false));
                let returned = Arc::new(AtomicBool::new(false));
                // The callback blocks for 20 s, or until this test has
                // looked (after the other thread's timed run returned):
                // a stall still waits out the 20 s (nobody lets it go
                // before), a pass no longer does.
                let (release, released) = std::sync::mpsc::channel::<()>();
                let released = std::sync::Mutex::new(released);
                let slow = {
                    let (entered, returned) = (entered.clone(), returned.clone());
                    std::thread::spawn(move || {
                        sh(choice, "echo a")
                            .on_stdout_line(move |_| {
                                entered.store(true, Ordering::SeqCst);
                                let released = released.lock().unwrap_or_else(|e| e.into_inner());
                                let _ = released.recv_timeout(Duration::from_secs(20));
                                returned.store(true, Ordering::SeqCst);
                            })
                            .blocking()
                            .output()
                            .expect("slow run")
                    })
                };
                let deadline = std::time::Instant::now() + DEADLINE;
                while !entered.load(Ordering::SeqCst) {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{choice}: no callback"
                    );
                    std::thread::sleep(POLL);
                }
                let out = sh(choice, "sleep 300")
                    .timeout(Duration::from_millis(300))
                    .on_stderr_line(|_| {})
                    .blocking()
                    .output()
                    .expect("timed run");
                let stalled = returned.load(Ordering::SeqCst);
                let _ = release.send(());
                assert_eq!(out.outcome(), Outcome::TimedOut, "{choice}");
                slow.join().expect("slow thread");
                assert!(
                    !stalled,
                    "{choice}: the other thread's 300 ms timeout waited for the 20 s callback"
                );
            }
        },
    );
}

/// A last stage marked `unchecked_in_pipe` that fails does not fail the
/// chain ("a stage marked unchecked_in_pipe never fails the chain"): the
/// verbs succeed, and its stdout is still the chain's.
#[tokio::test]
async fn an_unchecked_last_stage_never_fails_the_chain() {
    let s = begin("an_unchecked_last_stage_never_fails_the_chain").await;
    for choice in mechanisms() {
        let chain = Pipe::new([
            Command::new("echo").arg("x"),
            st("cat; exit 3").unchecked_in_pipe(),
        ])
        .mechanism(choice);
        let out = bounded("output", chain.output()).await.expect("output");
        assert_eq!(out.stages()[1].outcome(), Outcome::Exited(3), "{choice}");
        assert!(
            out.success(),
            "{choice}: {:?} from {}",
            out.outcome(),
            out.program()
        );
        assert_eq!(out.stdout_str(), "x\n", "{choice}");
        let text = bounded("run", chain.run()).await;
        assert_eq!(text.as_deref().ok(), Some("x"), "{choice}: {text:?}");
        assert_eq!(
            bounded("exit_code", chain.exit_code()).await.ok(),
            Some(0),
            "{choice}"
        );
    }
    s.end().await;
}

/// A later stage with an argument no OS can take (a NUL byte) is refused
/// as invalid input, like a pty stage, before any stage runs: the head's
/// side effects (here: the stderr file its start creates) never happen.
/// So is a NUL byte in its program, `arg0`, a variable's name or value,
/// and its working directory, through the verbs and `start`. A missing program is
/// still found missing only at its stage's start, as the docs say ("the
/// stages already started are ended").
#[tokio::test]
async fn a_stage_with_a_nul_argument_is_refused_before_any_stage_starts() {
    let s = begin("a_stage_with_a_nul_argument_is_refused_before_any_stage_starts").await;
    let cases = [
        (
            "argument",
            Command::new("cat").arg("a\0b"),
            ErrorKind::InvalidInput,
        ),
        ("program", Command::new("c\0at"), ErrorKind::InvalidInput),
        (
            "arg0",
            Command::new("cat").arg0("c\0at"),
            ErrorKind::InvalidInput,
        ),
        (
            "env name",
            Command::new("cat").env("A\0B", "1"),
            ErrorKind::InvalidInput,
        ),
        (
            "env value",
            Command::new("cat").env("AB", "1\0x"),
            ErrorKind::InvalidInput,
        ),
        (
            "cwd",
            Command::new("cat").current_dir("/\0tmp"),
            ErrorKind::InvalidInput,
        ),
    ];
    for choice in mechanisms() {
        for (what, bad, kind) in &cases {
            for started in [false, true] {
                let file = TempPath::new("nul-stage-head");
                let chain = Pipe::new([
                    Command::new("true").stderr_file(file.path(), pkit::FileMode::Truncate),
                    Command::new("cat"),
                    bad.clone(),
                ])
                .mechanism(choice);
                let err = match started {
                    false => bounded("nul stage", chain.output())
                        .await
                        .expect_err("refused"),
                    true => chain.start().map(drop).expect_err("refused"),
                };
                assert!(
                    !file.path().exists(),
                    "{choice}: {what} (start: {started}): the head was started before the chain was refused ({err})"
                );
                assert_eq!(err.kind(), *kind, "{choice}: {what}: {err}");
                if *kind == ErrorKind::InvalidInput {
                    assert!(
                        err.to_string().contains("pipeline stage 3 (")
                            && err.to_string().contains("NUL byte"),
                        "{choice}: {what}: {err}"
                    );
                }
            }
        }
    }
    s.end().await;
}

/// A chain that times out is timed out, whichever stage was still running:
/// an unchecked stage that outlived the timeout too (`producer | head`
/// where the producer hangs without writing, or an unchecked last stage).
#[tokio::test]
async fn a_timed_out_chain_is_timed_out_whatever_stage_was_unchecked() {
    let s = begin("a_timed_out_chain_is_timed_out_whatever_stage_was_unchecked").await;
    // The mechanisms at once, each with its own group and chain.
    all_at_once(mechanisms(), |choice| async move {
        let cases = [
            (
                "unchecked head",
                Command::new("sleep").arg("300").unchecked_in_pipe(),
                Command::new("true"),
            ),
            (
                "unchecked last",
                Command::new("echo").arg("x"),
                Command::new("sleep").arg("300").unchecked_in_pipe(),
            ),
        ];
        for (what, a, b) in cases {
            let chain = Pipe::new([a, b])
                .timeout(Duration::from_millis(500))
                .mechanism(choice);
            let out = bounded(what, chain.output()).await.expect("output");
            assert_eq!(
                out.outcome(),
                Outcome::TimedOut,
                "{choice}: {what}: from {}",
                out.program()
            );
            let err = bounded(what, chain.run()).await.expect_err("run");
            assert_eq!(err.kind(), ErrorKind::Timeout, "{choice}: {what}: {err}");
        }
    })
    .await;
    s.end().await;
}

/// A line callback of a blocking run that itself calls the blocking API
/// (it runs on the facade's own runtime thread): refused with the clear
/// panic, never a deadlock; the outer run completes.
#[test]
fn a_blocking_call_inside_a_blocking_runs_callback_is_refused_not_deadlocked() {
    use std::sync::{Arc, Mutex};
    in_suite(
        "a_blocking_call_inside_a_blocking_runs_callback_is_refused_not_deadlocked",
        || {
            for choice in mechanisms() {
                let seen = Arc::new(Mutex::new(Vec::new()));
                let (tx, rx) = std::sync::mpsc::channel();
                let seen2 = seen.clone();
                std::thread::spawn(move || {
                    let out = sh(choice, "echo a; echo b")
                        .on_stdout_line(move |_| {
                            let r = std::panic::catch_unwind(|| {
                                Command::new("echo").arg("inner").blocking().run()
                            });
                            let what = match r {
                                Ok(r) => format!("ran: {r:?}"),
                                Err(p) => p
                                    .downcast_ref::<String>()
                                    .cloned()
                                    .unwrap_or_else(|| "a panic".into()),
                            };
                            seen2.lock().unwrap().push(what);
                        })
                        .blocking()
                        .output();
                    let _ = tx.send(out.map(|o| o.stdout_str().into_owned()));
                });
                let out = rx
                    .recv_timeout(LONG)
                    .unwrap_or_else(|_| panic!("{choice}: the nested blocking call deadlocked"));
                assert_eq!(out.expect("outer run"), "a\nb\n", "{choice}");
                let seen = seen.lock().unwrap();
                assert_eq!(seen.len(), 2, "{choice}: {seen:?}");
                assert!(
                    seen.iter().all(|s| s.contains("inside a Tokio runtime")),
                    "{choice}: {seen:?}"
                );
            }
        },
    );
}

/// A `wait` abandoned (its future dropped: a caller's own timeout) while
/// the output is being collected, then called again: the second wait must
/// not pass off a lost output as an empty one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_abandoned_while_collecting_output_never_loses_it_silently() {
    use tokio::io::AsyncReadExt;
    let s = begin("a_wait_abandoned_while_collecting_output_never_loses_it_silently").await;
    // The mechanisms at once, each with its own group and chain.
    all_at_once(mechanisms(), |choice| async move {
        // The tee's reader is read only later: its writes block at 1 KiB.
        let (tee, mut tee_rx) = tokio::io::duplex(1024);
        let group = group(choice);
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "head -c 60000 /dev/zero | tr '\\0' x"])
                    .stdout_tee(tee),
            )
            .expect("start");
        let first = tokio::time::timeout(Duration::from_millis(1500), p.wait()).await;
        let drain = tokio::spawn(async move {
            let mut all = Vec::new();
            let _ = tee_rx.read_to_end(&mut all).await;
            all.len()
        });
        let out = match first {
            Ok(out) => out.expect("first wait"),
            Err(_) => bounded("second wait", p.wait()).await.expect("second wait"),
        };
        assert!(out.success(), "{choice}: {out:?}");
        assert_eq!(
            out.stdout().len(),
            60000,
            "{choice}: stdout after an abandoned wait"
        );
        drop(p);
        drop(group);
        let _ = bounded("drain", drain).await;

        // The same for a started chain: every stage's result is kept.
        let (tee, mut tee_rx) = tokio::io::duplex(1024);
        let mut p = Pipe::new([
            st("echo err0 >&2; head -c 60000 /dev/zero | tr '\\0' x"),
            Command::new("cat").stdout_tee(tee),
        ])
        .mechanism(choice)
        .start()
        .expect("start");
        let first = tokio::time::timeout(Duration::from_millis(1500), p.wait()).await;
        let drain = tokio::spawn(async move {
            let mut all = Vec::new();
            let _ = tee_rx.read_to_end(&mut all).await;
            all.len()
        });
        let out = match first {
            Ok(out) => out.expect("first wait"),
            Err(_) => bounded("second wait", p.wait()).await.expect("second wait"),
        };
        assert!(out.success(), "{choice}: {out:?}");
        assert_eq!(
            out.stdout().len(),
            60000,
            "{choice}: chain stdout after an abandoned wait"
        );
        assert_eq!(
            out.stages()[0].stderr_str(),
            "err0\n",
            "{choice}: the head's stderr"
        );
        drop(p);
        let _ = bounded("drain", drain).await;
    })
    .await;
    s.end().await;
}
