#![cfg(target_os = "linux")]
//! rv38: a hostile review of the last session's merges (teefin, lows4,
//! forkgen, perf38, zomb). Findings are `#[ignore = "rv38: ..."]` tests
//! that fail on main; the rest are probes that held. Run in the three
//! passes (unset, `PKIT_MECHANISM=pgroup`, `PKIT_MECHANISM=portable`); the
//! helper runs of this binary play a `RV38_ROLE`.
//!
//! Status (the same session, after the review): the HIGH and the second
//! LOW fixed by dumpfix (no lock across an id start; the HIGH's own test
//! stays ignored, as it also hangs on std's thread-start lock a copy can
//! inherit held, and `tests/dumpable_copies.rs` pins the fix); the MEDIUM
//! and the older LOW fixed by supfix (both un-ignored); the first LOW is
//! by design (documented on `Command::uid`).
//!
//! Findings (as found; each failed on main then, in every pass unless said):
//! - HIGH (narrow trigger) [`a_copy_forked_during_an_id_start_can_start_with_ids`]:
//!   lows4's `dumpable::kept` holds a process-wide `Mutex` across every
//!   id-changing spawn (up to the child's exec) and PATH lookup with the
//!   child's ids. A copy forked (plain `fork`, supported since forkgen)
//!   while another thread is inside one inherits the lock held by a
//!   thread it does not have: the copy's first start with uid/gid/groups
//!   never returns. 2-8 of 12 copies hang here; controls (plain starts in
//!   the looping thread, or a plain start in the copy) hang none. Root.
//! - MEDIUM [`a_supervisor_stop_returns_while_a_runs_tee_is_stuck_after_its_exit`]:
//!   teefin's after-exit bounds are the run's timeout, inactivity timeout
//!   and the command's cancel tokens; a supervised run's end
//!   (`supervise/run.rs`, `proc.wait()` outside `until`) gets neither the
//!   supervisor's stop nor its `Supervisor::cancel_token`: with an async
//!   tee stuck after the program's exit, `stop()` / `wait()` never return
//!   (restart `Always` and `Never`). The command's own token (the
//!   control) ends it.
//! - LOW [`a_callers_own_not_dumpable_made_during_an_id_start_is_kept`]:
//!   `kept` reads the flag before the start and writes that value back
//!   when it differs after: a caller's own `prctl(PR_SET_DUMPABLE, 0)`
//!   made on another thread during an id-changing start (or PATH lookup
//!   with ids, the portable pass) is undone, the process left dumpable
//!   against its request (13-35 of 60 starts here). Root.
//! - LOW [`an_id_start_held_before_its_exec_does_not_hold_other_threads_id_starts`]:
//!   the same lock makes one id-changing start held before its exec (a
//!   slow `pre_exec` hook, here one that waits for a file; the fork-style
//!   spawn's child can't even mark the owner) hold every other thread's
//!   id-changing start; they were independent before lows4. Root;
//!   cgroup and pgroup (no hooks in the portable pass).
//! - LOW, older than this session [`a_copy_forked_after_a_portable_run_is_told_of_its_exits`]:
//!   the portable backend's SIGCHLD notifier (`sys/unix/sigchld.rs`, a
//!   `OnceLock`, a pipe and a reading thread) is inherited by a forked copy
//!   without its thread: every wait of a copy forked after the owner's
//!   first portable run falls back on the 250 ms re-check (8 runs: 1.8 s
//!   in the copy, 0.1 s in the parent). Never hangs. Every pass (the test
//!   forces the portable backend).
//!
//! Probes that held: a cancel racing the timeout or the inactivity
//! timeout after the exit (from 40 ms before to 50 ms after), blocking
//! and async, `output`, `wait` and a two-stage chain: the exit's outcome
//! and the tee cut, every time; the exit's own outcome kept when the
//! timeout cuts the tee after it (`Signalled`, a `NonZeroExit` of `run`,
//! under a retry policy too); a slow healthy tee cut after the exit
//! leaves the capture whole; inactivity after the exit with a background
//! job (gone with the tree at the exit); a started process's `wait`
//! dropped every 50 ms during the after-exit and called again ends at the
//! cancel (teefin); 8 threads x 6 blocking runs with callbacks at once
//! tell every line and leave no `pkit-reader` thread; a reused reader
//! thread carries no panicked callback, refused nested blocking call or
//! blocked callback over to the next reader; a copy forked while the pool
//! has idle readers, and a pid-1 owner's copy forked into a new pid
//! namespace, run their own blocking callbacks (perf38 x forkgen);
//! uid/gid/groups starts from 8 threads leave the owner dumpable; id
//! starts in a v1 `pids` cgroup with no task to spare, and as nobody at its
//! `RLIMIT_NPROC` (with its own ids and with root's), fail cleanly or run
//! (lows4); `first_line` with `max_line_bytes` on an exact-length line, CRLF,
//! multi-byte characters at the cut, a megabyte line, a stderr cut line,
//! an unterminated cut line, and a supervisor's `ready_when_line` with cut
//! lines on both streams (lows4's `FirstPieces`); a leaf killed and
//! removed by someone else under a cancel's 30 s grace ends the wait at
//! once (zomb); the blocking direct path whose leader exits before its
//! jobs leaves none (perf38's reap); a pkit inside a pkit run does all of
//! the above's kinds of work; copies forked while two threads make
//! plain runs of every kind (blocking direct, callbacks, async, a chain)
//! make their own, none hangs (the control of the HIGH finding); an owner that handles SIGTSTP and ignores
//! SIGTTIN starts programs with SIGTSTP default, SIGTTIN ignored, nothing
//! blocked or caught (perf38's prexec); an owner that ignores SIGCHLD
//! (children reaped by the kernel) gets exit codes from the blocking direct
//! path, the engine and async (perf38's reap); 70,000 supplementary groups
//! fail cleanly, 60,000 run, the owner dumpable (lows4); the VT stripper on
//! random string introducers (7- and 8-bit), whole and cut, leaves no
//! control and cuts as whole, and an OSC ended by an ESC keeps the lines
//! after it (teefin; a line feed inside an unterminated string is
//! swallowed, as a terminal's parser does and the docs say).

mod common;

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::copies::{self, copies_while_looping, Copies, Reaped};
use common::*;
use pkit::{Command, MechanismChoice, Outcome};

const SUITE: &str = "review_rv38";

/// How long a forked copy's runs may take before the copy counts as hung
/// (a hang is forever; a loaded machine can hold a fork, an exec and a
/// reap up for seconds), and the alarm that ends a copy stuck past it.
const COPY_LIMIT: Duration = Duration::from_secs(20);
const COPY_ALARM: u32 = 40;

/// How long a round of the cancel-after-the-exit probe tries to arm its
/// cancel (its program seen gone before the cancel is due) before the
/// round is skipped as the load's.
const ROUND_BUDGET: Duration = Duration::from_secs(60);

/// How long a supervisor's stop (or its wait after a cancel) may take
/// before it counts as stuck (it is stuck forever when it is).
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// The role this run of the binary plays (a helper run), if any.
fn role() -> Option<String> {
    std::env::var("RV38_ROLE").ok()
}

fn is_root() -> bool {
    // SAFETY: no arguments, no memory.
    unsafe { libc::geteuid() == 0 }
}

/// This process's dumpable flag (`PR_GET_DUMPABLE`).
fn dumpable() -> i32 {
    // SAFETY: reads a flag of this process.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }
}

fn set_dumpable(on: bool) {
    // SAFETY: sets a flag of this process.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on)) };
}

/// Writes `s` and a line feed to fd 1 with one write(2) (safe in a forked
/// child).
fn say(s: &str) {
    copies::say("rv38", s);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The `pkit-reader` threads of this process now.
fn readers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "pkit-reader")
        })
        .count()
}

/// Runs `cmd` (stdout piped) for at most `limit` (killed then): whether it
/// exited with success, and its stdout's `rv38: ` lines.
fn run_helper(cmd: std::process::Command, limit: Duration) -> (bool, Vec<String>) {
    let (status, text) = run_helper_cmd(cmd, limit);
    helper_said(status, &text, "rv38: ")
}

/// This binary again, running only test `test` in role `role`, under
/// `prefix` (e.g. `setpriv ...`).
fn helper_cmd(
    prefix: &[&str],
    test: &str,
    role: &str,
    envs: &[(&str, &str)],
) -> std::process::Command {
    let mut cmd = self_as(test, ("RV38_ROLE", role), prefix);
    cmd.envs(envs.iter().copied());
    cmd
}

// ---------------------------------------------------------------------------
// Tees
// ---------------------------------------------------------------------------

/// An async tee that never takes a byte (never ready, never wakes).
struct Stuck;

impl tokio::io::AsyncWrite for Stuck {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Pending
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Pending
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Pending
    }
}

/// An async tee that takes 100 bytes per 5 ms (healthy, slow), counting.
struct Slow {
    nap: Option<Pin<Box<tokio::time::Sleep>>>,
    took: Arc<AtomicUsize>,
}

impl tokio::io::AsyncWrite for Slow {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let nap = self
            .nap
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(5))));
        if nap.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.nap = None;
        let n = buf.len().min(100);
        self.took.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

use std::future::Future;

fn tee_cut(out: &pkit::Output) -> bool {
    out.stdout_tee_error()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
}

// ---------------------------------------------------------------------------
// teefin: after the exit
// ---------------------------------------------------------------------------

/// Probe (teefin): the program exits at once, its stdout tee is stuck, and
/// the run's cancel fires at about the instant its timeout, or its
/// inactivity timeout, passes (from 40 ms before to 50 ms after, in
/// steps): whichever cuts the tee, the run returns with the exit's outcome
/// and the tee's error; blocking and async, `output` and a started
/// process's `wait`, and a two-stage chain whose first stage (the teed
/// one) exited first. The cancel is armed only when every process of the
/// run was seen gone before it was due (each writes its pid); a try whose
/// shell was slower (under load) is void and tried again with the timeout
/// and the cancel later (the cancel as near the timeout), for up to a
/// minute a round; a round never armed is skipped, and at least half of
/// each mechanism's must arm. (CI's load once voided one round's 40 fixed
/// tries; and a cancel armed so, after the exit but before the run's task
/// was woken for it, won over the exit: fixed in `Bounds::wait`, pinned by
/// `tests/cancel_after_exit.rs`.)
#[test]
fn a_cancel_racing_the_timeout_after_the_exit_keeps_the_exits_outcome() {
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let bad = Mutex::new(Vec::new());
        at_once(mechanisms(), |choice| {
            let mut armed_rounds = 0;
            for round in 0..10u64 {
                // A try whose program had not exited when the cancel was due
                // (a slow shell under load) is void: no cancel, tried again,
                // with the timeout and the cancel's instant both twice as
                // late (up to 16 times; the cancel stays from 40 ms before
                // the timeout to 50 ms after), for up to a minute; a round
                // with no armed try in it is skipped (and told).
                let budget = Instant::now() + ROUND_BUDGET;
                let mut scale = 1;
                loop {
                    let bound = Duration::from_millis(250) * scale;
                    let at = bound - Duration::from_millis(40) + Duration::from_millis(round * 10);
                    let token = pkit::CancelToken::new();
                    let t = token.clone();
                    let pidfiles = [TempPath::new("rv38-head"), TempPath::new("rv38-tail")];
                    let watched: Vec<PathBuf> = pidfiles
                        .iter()
                        .take(if round % 5 == 4 { 2 } else { 1 })
                        .map(|f| f.path().to_path_buf())
                        .collect();
                    let way = round % 5;
                    // (Built before the canceller's clock starts: its
                    // threads' start is not the run's.)
                    let runtime = rt();
                    let canceller = std::thread::spawn(move || {
                        // The cancel is armed only once every process of the
                        // run has been seen gone by `at` (the timeout counts
                        // from later, the start): it then races the timeout
                        // after the exit, as the probe means.
                        let c0 = Instant::now();
                        let exited = || {
                            watched.iter().all(|f| {
                                std::fs::read_to_string(f)
                                    .ok()
                                    .and_then(|s| s.trim().parse::<u32>().ok())
                                    .is_some_and(pid_gone)
                            })
                        };
                        while c0.elapsed() < at && !exited() {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        if c0.elapsed() >= at {
                            return false;
                        }
                        std::thread::sleep(at.saturating_sub(c0.elapsed()));
                        t.cancel();
                        true
                    });
                    let idle = round % 2 == 1;
                    let mut cmd = sh(choice, "echo $$ > \"$1\"; echo hi")
                        .arg(pidfiles[0].as_str())
                        .stdout_tee(Stuck)
                        .cancel_token(&token);
                    cmd = if idle {
                        cmd.inactivity_timeout(bound)
                    } else {
                        cmd.timeout(bound)
                    };
                    let t0 = Instant::now();
                    let r = match way {
                        0..=3 => {
                            let r = match way {
                                0 => cmd.blocking().output(),
                                1 => cmd.blocking().start().and_then(|mut p| p.wait()),
                                2 => runtime.block_on(cmd.output()),
                                _ => runtime.block_on(async {
                                    let mut p = cmd.start()?;
                                    p.wait().await
                                }),
                            };
                            r.map(|out| {
                                (out.outcome(), out.stdout_str().to_string(), tee_cut(&out))
                            })
                        }
                        _ => {
                            let mut chain = pkit::Pipe::new([
                                Command::new("sh")
                                    .args(["-c", "echo $$ > \"$1\"; echo x >&2; echo hi", "sh"])
                                    .arg(pidfiles[0].as_str())
                                    .stderr_tee(Stuck),
                                Command::new("sh")
                                    .args(["-c", "echo $$ > \"$1\"; exec cat", "sh"])
                                    .arg(pidfiles[1].as_str()),
                            ])
                            .mechanism(choice)
                            .cancel_token(&token);
                            chain = if idle {
                                chain.inactivity_timeout(bound)
                            } else {
                                chain.timeout(bound)
                            };
                            runtime.block_on(chain.output()).map(|out| {
                                let head = &out.stages()[0];
                                let cut = head
                                    .stderr_tee_error()
                                    .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut);
                                let head_ok = head.outcome() == Outcome::Exited(0);
                                (out.outcome(), out.stdout_str().to_string(), cut && head_ok)
                            })
                        }
                    };
                    let armed = canceller.join().unwrap();
                    if !armed {
                        if Instant::now() < budget {
                            scale = (scale * 2).min(16);
                            continue;
                        }
                        eprintln!(
                            "{choice} round {round}: skipped, the program never exited before \
                             its cancel in {ROUND_BUDGET:?} of tries (a loaded machine)"
                        );
                        break;
                    }
                    armed_rounds += 1;
                    if scale > 1 {
                        eprintln!("{choice} round {round}: armed with a timeout of {bound:?}");
                    }
                    let ok = matches!(&r, Ok((outcome, stdout, cut)) if *outcome == Outcome::Exited(0)
                    && stdout == "hi\n" && *cut);
                    // (A hang is forever; the run waits for the later of its
                    // bounds, up to 4 s.)
                    if !ok || t0.elapsed() > Duration::from_secs(30) {
                        bad.lock().unwrap().push(format!(
                        "{choice} round {round} (way {way}, inactivity {idle}, timeout {bound:?}): \
                         {r:?} after {:?}",
                        t0.elapsed()
                    ));
                    }
                    break;
                }
            }
            // Skipped rounds are the load's; most must have been armed.
            if armed_rounds < 5 {
                bad.lock().unwrap().push(format!(
                    "{choice}: only {armed_rounds} of 10 rounds armed their cancel (each tried for \
                     {ROUND_BUDGET:?})"
                ));
            }
        });
        let bad = bad.into_inner().unwrap();
        assert!(bad.is_empty(), "{bad:#?}");
    });
}

/// Probe (teefin, "the outcome stays the exit's"): a stuck stdout tee cut
/// by the timeout after the program ended by itself: killed by its own
/// SIGTERM (`Signalled`, not `TimedOut`); exited 4 under `run` (a
/// `NonZeroExit` error whose output has the tee's error); and the same
/// under a retry policy of 3 attempts, each cut in turn (the tee, shared by
/// the attempts, is left by each abandoned write): `NonZeroExit` in the
/// end, within 30 s. (A timeout of 2 s: the shell must have ended by
/// itself before it, which a loaded machine can hold up for a second.)
#[test]
fn the_exits_own_outcome_stays_when_the_timeout_cuts_the_tee_after_it() {
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let bad = Mutex::new(Vec::new());
        let cases: Vec<(MechanismChoice, u8)> = mechanisms()
            .into_iter()
            .flat_map(|c| [(c, 0), (c, 1), (c, 2)])
            .collect();
        at_once(cases, |(choice, case)| {
            let t0 = Instant::now();
            let got = match case {
                0 => rt()
                    .block_on(
                        sh(choice, "echo hi; kill -TERM $$")
                            .stdout_tee(Stuck)
                            .timeout(Duration::from_secs(2))
                            .output(),
                    )
                    .map(|o| format!("{} cut {}", o.outcome(), tee_cut(&o)))
                    .unwrap_or_else(|e| format!("err {e}")),
                _ => {
                    let mut c = sh(choice, "echo hi; exit 4")
                        .stdout_tee(Stuck)
                        .timeout(Duration::from_secs(2));
                    if case == 2 {
                        c = c.retry(3, Duration::from_millis(1), |e| {
                            e.kind() == pkit::ErrorKind::NonZeroExit
                        });
                    }
                    match c.blocking().run() {
                        Ok(s) => format!("ok {s:?}"),
                        Err(e) => {
                            let kind = e.kind();
                            let out = e.into_output();
                            format!(
                                "{kind:?} {} cut {}",
                                out.as_ref()
                                    .map_or("none".into(), |o| o.outcome().to_string()),
                                out.as_ref().is_some_and(tee_cut)
                            )
                        }
                    }
                }
            };
            let want = match case {
                0 => "signalled(SIGTERM) cut true",
                _ => "NonZeroExit exited(4) cut true",
            };
            if got != want || t0.elapsed() > Duration::from_secs(30) {
                bad.lock().unwrap().push(format!(
                    "{choice} case {case}: {got} after {:?}",
                    t0.elapsed()
                ));
            }
        });
        let bad = bad.into_inner().unwrap();
        assert!(bad.is_empty(), "{bad:#?}");
    });
}

/// Probe (teefin, "though captured"): a healthy but slow async tee (100
/// bytes per 5 ms) of a program that wrote 60,000 bytes (they fit the pipe)
/// and exited: the timeout passes after the exit and cuts the tee; the
/// outcome is the exit's, and the capture holds every byte.
#[test]
fn a_slow_tee_cut_after_the_exit_leaves_the_capture_whole() {
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let bad = Mutex::new(Vec::new());
        at_once(mechanisms(), |choice| {
            for blocking in [false, true] {
                let took = Arc::new(AtomicUsize::new(0));
                // (The program must exit before the timeout, which a
                // loaded machine can hold up for a second; the tee needs
                // 3 s at least.)
                let cmd = sh(choice, "head -c 60000 /dev/zero")
                    .stdout_tee(Slow {
                        nap: None,
                        took: took.clone(),
                    })
                    .timeout(Duration::from_secs(2));
                let r = if blocking {
                    cmd.blocking().output()
                } else {
                    rt().block_on(cmd.output())
                };
                let took = took.load(Ordering::SeqCst);
                let ok = matches!(&r, Ok(out) if out.outcome() == Outcome::Exited(0)
                    && out.stdout().len() == 60_000 && tee_cut(out));
                if !ok || took >= 60_000 {
                    bad.lock().unwrap().push(format!(
                        "{choice} blocking={blocking}: tee took {took}: {:?}",
                        r.as_ref()
                            .map(|o| (o.outcome(), o.stdout().len(), o.stdout_tee_error()))
                    ));
                }
            }
        });
        let bad = bad.into_inner().unwrap();
        assert!(bad.is_empty(), "{bad:#?}");
    });
}

/// Probe (teefin, inactivity after the exit): the shell exits at once,
/// leaving a background job that would write stderr every 100 ms for 1.5 s
/// (it goes with the tree at the exit), while the stdout tee is stuck.
/// With an inactivity timeout of 400 ms and no timeout, the run returns
/// (the exit's outcome, the tee cut) within 10 s.
#[test]
fn inactivity_after_the_exit_cuts_a_stuck_tee_while_a_job_writes_the_other_stream() {
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let bad = Mutex::new(Vec::new());
        at_once(mechanisms(), |choice| {
            let cmd = sh(
                choice,
                "(i=0; while [ $i -lt 15 ]; do echo x >&2; sleep 0.1; i=$((i+1)); done) & echo hi",
            )
            .stdout_tee(Stuck)
            .inactivity_timeout(Duration::from_millis(400));
            let t0 = Instant::now();
            let r = rt().block_on(cmd.output());
            let took = t0.elapsed();
            let ok = matches!(&r, Ok(out) if out.outcome() == Outcome::Exited(0) && tee_cut(out));
            if !ok || took > Duration::from_secs(10) {
                bad.lock()
                    .unwrap()
                    .push(format!("{choice}: {r:?} after {took:?}"));
            } else {
                eprintln!(
                    "rv38: {choice}: inactivity after exit: {took:?}, {:?}",
                    r.map(|o| o.stderr().len())
                );
            }
        });
        let bad = bad.into_inner().unwrap();
        assert!(bad.is_empty(), "{bad:#?}");
    });
}

// ---------------------------------------------------------------------------
// perf38: the reader-thread pool
// ---------------------------------------------------------------------------

/// Probe (perf38): 8 threads each make 6 blocking runs with callbacks on
/// both streams at once (the pool's hand-over under contention): every
/// line is told once, and the reader threads all end within the keep-alive
/// and a margin afterwards.
#[test]
fn many_blocking_runs_with_callbacks_at_once_tell_every_line_and_leave_no_reader() {
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        for choice in mechanisms() {
            let (o, e) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            std::thread::scope(|s| {
                for _ in 0..8 {
                    let (o, e) = (o.clone(), e.clone());
                    s.spawn(move || {
                        for _ in 0..6 {
                            let (oc, ec) = (o.clone(), e.clone());
                            let out = sh(choice, "seq 1 50; seq 1 30 >&2")
                                .timeout(Duration::from_secs(30))
                                .on_stdout_line(move |_| {
                                    oc.fetch_add(1, Ordering::SeqCst);
                                })
                                .on_stderr_line(move |_| {
                                    ec.fetch_add(1, Ordering::SeqCst);
                                })
                                .blocking()
                                .output()
                                .unwrap_or_else(|err| panic!("{choice}: {err}"));
                            assert!(out.success(), "{choice}: {out:?}");
                        }
                    });
                }
            });
            assert_eq!(o.load(Ordering::SeqCst), 8 * 6 * 50, "{choice}");
            assert_eq!(e.load(Ordering::SeqCst), 8 * 6 * 30, "{choice}");
        }
        let end = Instant::now() + DEADLINE;
        while readers() > 0 && Instant::now() < end {
            std::thread::sleep(POLL);
        }
        assert_eq!(readers(), 0, "pkit-reader threads left");
    });
}

/// Probe (perf38): a reused reader thread carries nothing over from the
/// reader before it. Runs one after another (so that each takes the
/// thread the previous left waiting): a callback that panics (disabled,
/// the run goes on), a callback that starts a blocking run (refused, never
/// stuck), then plain runs that must tell every line; and a run whose
/// callback blocks (until released) does not hold back 6 other runs made
/// meanwhile.
#[test]
fn a_reused_reader_thread_carries_no_panic_nesting_or_block_over() {
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        for choice in mechanisms() {
            for round in 0..3 {
                // Panics at its second line.
                let n = Arc::new(AtomicUsize::new(0));
                let nc = n.clone();
                let out = sh(choice, "seq 1 5")
                    .timeout(Duration::from_secs(20))
                    .on_stdout_line(move |_| {
                        if nc.fetch_add(1, Ordering::SeqCst) == 1 {
                            panic!("rv38: the callback panics");
                        }
                    })
                    .blocking()
                    .output()
                    .unwrap_or_else(|e| panic!("{choice}: {e}"));
                assert!(
                    out.success() && out.stdout_str() == "1\n2\n3\n4\n5\n",
                    "{choice}: {out:?}"
                );
                assert_eq!(
                    n.load(Ordering::SeqCst),
                    2,
                    "{choice}: disabled after its panic"
                );
                // Nests a blocking run (refused).
                let refused = Arc::new(AtomicUsize::new(0));
                let rc = refused.clone();
                let out = sh(choice, "seq 1 3")
                    .timeout(Duration::from_secs(20))
                    .on_stdout_line(move |_| {
                        let r =
                            std::panic::catch_unwind(|| Command::new("true").blocking().output());
                        if !matches!(r, Ok(Ok(_))) {
                            rc.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                    .blocking()
                    .output()
                    .unwrap_or_else(|e| panic!("{choice}: {e}"));
                assert!(out.success(), "{choice}: {out:?}");
                assert_eq!(refused.load(Ordering::SeqCst), 3, "{choice} round {round}");
                // Plain.
                let m = Arc::new(AtomicUsize::new(0));
                let mc = m.clone();
                let out = sh(choice, "seq 1 100")
                    .timeout(Duration::from_secs(20))
                    .on_stdout_line(move |_| {
                        mc.fetch_add(1, Ordering::SeqCst);
                    })
                    .blocking()
                    .output()
                    .unwrap_or_else(|e| panic!("{choice}: {e}"));
                assert!(out.success(), "{choice}: {out:?}");
                assert_eq!(m.load(Ordering::SeqCst), 100, "{choice} round {round}");
            }
            // A callback that blocks until released; 6 runs meanwhile.
            let entered = Arc::new(Barrier::new(2));
            let release = Arc::new(Mutex::new(()));
            let hold = release.lock().unwrap();
            let (en, re) = (entered.clone(), release.clone());
            let first = Arc::new(AtomicBool::new(true));
            let stuck = std::thread::spawn(move || {
                sh(choice, "echo a; echo b")
                    .timeout(Duration::from_secs(30))
                    .on_stdout_line(move |_| {
                        if first.swap(false, Ordering::SeqCst) {
                            en.wait();
                            drop(re.lock());
                        }
                    })
                    .blocking()
                    .output()
            });
            entered.wait();
            for _ in 0..6 {
                let m = Arc::new(AtomicUsize::new(0));
                let mc = m.clone();
                let t0 = Instant::now();
                let out = sh(choice, "seq 1 10")
                    .timeout(Duration::from_secs(20))
                    .on_stdout_line(move |_| {
                        mc.fetch_add(1, Ordering::SeqCst);
                    })
                    .blocking()
                    .output()
                    .unwrap_or_else(|e| panic!("{choice}: {e}"));
                assert!(out.success() && m.load(Ordering::SeqCst) == 10, "{choice}");
                assert!(
                    t0.elapsed() < Duration::from_secs(15),
                    "{choice}: held back"
                );
            }
            drop(hold);
            let out = stuck.join().unwrap().expect("the blocked run");
            assert_eq!(out.stdout_str(), "a\nb\n", "{choice}");
        }
    });
}

/// Probe (perf38 x forkgen): a copy forked (plain `fork`) right after the
/// parent's blocking callback runs left reader threads waiting in the
/// pool: the copy's blocking run with callbacks and its async run work
/// (its readers get threads of their own), and so do the parent's after.
#[test]
fn a_copy_forked_while_the_pool_has_idle_readers_runs_its_own() {
    let name = "a_copy_forked_while_the_pool_has_idle_readers_runs_its_own";
    if role().as_deref() == Some("fork-pool") {
        let cb = |what: &str| {
            let n = Arc::new(AtomicUsize::new(0));
            let nc = n.clone();
            let r = Command::new("sh")
                .args(["-c", "seq 1 20; seq 1 20 >&2"])
                .timeout(Duration::from_secs(5))
                .on_stdout_line(move |_| {
                    nc.fetch_add(1, Ordering::SeqCst);
                })
                .on_stderr_line(|_| {})
                .blocking()
                .output();
            format!(
                "{what} {}",
                r.is_ok_and(|o| o.success()) && n.load(Ordering::SeqCst) == 20
            )
        };
        // Several at once: several idle readers.
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| say(&cb("warm")));
            }
        });
        say(&format!("idle readers {}", readers()));
        // SAFETY: a forked copy of a threaded process, as pkit supports;
        // bounded by alarm, then `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            // SAFETY: plain values.
            unsafe { libc::alarm(15) };
            let a = cb("copy blocking");
            let b = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(
                    Command::new("echo")
                        .arg("x")
                        .timeout(Duration::from_secs(5))
                        .on_stdout_line(|_| {})
                        .output(),
                )
                .is_ok_and(|o| o.stdout_str() == "x\n");
            let c = cb("copy again");
            say(&a);
            say(&c);
            say(&format!("copy async {b}"));
            // SAFETY: ends the copy.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        say(&format!("copy status {status:#x}"));
        say(&cb("parent again"));
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let (ok, lines) = run_helper(
            helper_cmd(&[], name, "fork-pool", &[]),
            Duration::from_secs(60),
        );
        assert!(ok, "{lines:#?}");
        for want in [
            "copy blocking true",
            "copy again true",
            "copy async true",
            "copy status 0x0",
            "parent again true",
        ] {
            assert!(lines.iter().any(|l| l == want), "{want}: {lines:#?}");
        }
    });
}

/// Probe (perf38 x forkgen): an owner that is pid 1 of its namespace
/// (`unshare --pid --fork`) leaves reader threads idle in the pool, then
/// forks a copy into a new pid namespace (pid 1 too): the copy's
/// blocking runs with callbacks get threads of their own and tell every
/// line; the parent's runs after it too. Root and `unshare --pid`.
#[test]
fn a_pid_one_owners_copy_in_a_new_pid_namespace_does_not_take_the_pools_idle_readers() {
    let name = "a_pid_one_owners_copy_in_a_new_pid_namespace_does_not_take_the_pools_idle_readers";
    let cb = |what: &str| {
        let n = Arc::new(AtomicUsize::new(0));
        let nc = n.clone();
        let r = Command::new("sh")
            .args(["-c", "seq 1 20; seq 1 20 >&2"])
            .timeout(Duration::from_secs(5))
            .on_stdout_line(move |_| {
                nc.fetch_add(1, Ordering::SeqCst);
            })
            .on_stderr_line(|_| {})
            .blocking()
            .output();
        format!(
            "{what} {}",
            r.is_ok_and(|o| o.success()) && n.load(Ordering::SeqCst) == 20
        )
    };
    if role().as_deref() == Some("pidns-pool") {
        // SAFETY: no arguments.
        say(&format!("pid {}", unsafe { libc::getpid() }));
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| say(&cb("warm")));
            }
        });
        say(&format!("idle readers {}", readers()));
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: changes the namespace of this thread's later
                // children only.
                if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
                    say("unshare failed");
                    return;
                }
                // SAFETY: a forked copy of a threaded process, as pkit
                // supports; bounded by a 10 s wait, then `_exit`.
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0, "fork");
                if pid == 0 {
                    let (tx, rx) = std::sync::mpsc::channel();
                    std::thread::spawn(move || {
                        let a = cb("copy");
                        let b = cb("copy again");
                        let _ = tx.send((a, b));
                    });
                    match rx.recv_timeout(Duration::from_secs(10)) {
                        Ok((a, b)) => {
                            // SAFETY: no arguments.
                            say(&format!("copy pid {}", unsafe { libc::getpid() }));
                            say(&a);
                            say(&b);
                        }
                        Err(_) => say("copy: its blocking run never returned (10 s)"),
                    }
                    // SAFETY: ends the copy.
                    unsafe { libc::_exit(0) };
                }
                let mut status = 0;
                // SAFETY: waits for our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                say(&format!("copy status {status:#x}"));
            });
        });
        say(&cb("parent again"));
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let works = is_root()
            && std::process::Command::new("unshare")
                .args(["--pid", "--fork", "--kill-child", "true"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if !works {
            skipped(name, "needs root and unshare --pid");
            return;
        }
        let (ok, lines) = run_helper(
            helper_cmd(
                &["unshare", "--pid", "--fork", "--kill-child"],
                name,
                "pidns-pool",
                &[],
            ),
            Duration::from_secs(60),
        );
        assert!(ok, "{lines:#?}");
        for want in [
            "pid 1",
            "copy pid 1",
            "copy true",
            "copy again true",
            "copy status 0x0",
            "parent again true",
        ] {
            assert!(lines.iter().any(|l| l == want), "{want}: {lines:#?}");
        }
    });
}

// ---------------------------------------------------------------------------
// lows4: dumpable, the ids thread
// ---------------------------------------------------------------------------

/// The id-changing starts of one round: async and blocking, `output` and
/// `start`, a program found on `PATH` (the ids thread) and by path.
fn id_starts(choice: MechanismChoice, i: usize) -> Result<(), String> {
    let c = match i % 4 {
        0 => cmd(choice, "true").uid(65534),
        1 => cmd(choice, "/bin/true").uid(65534).gid(65534),
        2 => cmd(choice, "true").gid(65534).groups([65534]),
        _ => cmd(choice, "true").uid(65534).gid(65534).groups([]),
    };
    let r = match i % 3 {
        0 => c.blocking().output(),
        1 => c.blocking().start().and_then(|mut p| p.wait()),
        _ => rt().block_on(c.output()),
    };
    match r {
        Ok(o) if o.success() => Ok(()),
        other => Err(format!("{choice} {i}: {other:?}")),
    }
}

/// Probe (lows4): starts with uid/gid/groups from 8 threads at once, every
/// kind (PATH lookups on the ids thread, spawns that share the owner's
/// memory until exec): the owner is dumpable afterwards. Root only.
#[test]
fn id_starts_from_many_threads_leave_the_owner_dumpable() {
    let name = "id_starts_from_many_threads_leave_the_owner_dumpable";
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        if !is_root() {
            skipped(name, "needs root");
            return;
        }
        assert_eq!(dumpable(), 1, "dumpable before");
        let bad = Mutex::new(Vec::new());
        for choice in mechanisms() {
            std::thread::scope(|s| {
                for t in 0..8 {
                    let bad = &bad;
                    s.spawn(move || {
                        for i in 0..6 {
                            if let Err(e) = id_starts(choice, t + i) {
                                bad.lock().unwrap().push(e);
                            }
                        }
                    });
                }
            });
            let d = dumpable();
            if d != 1 {
                bad.lock()
                    .unwrap()
                    .push(format!("{choice}: dumpable {d} after"));
                set_dumpable(true);
            }
        }
        let bad = bad.into_inner().unwrap();
        assert!(bad.is_empty(), "{bad:#?}");
    });
}

/// `dumpable::kept` reads the flag before an id-changing start and puts
/// that value back after it when the flag differs: a caller's own
/// `prctl(PR_SET_DUMPABLE, 0)` made on another thread during the start (a
/// process shedding dumpability before it holds a secret) is undone, and
/// the process is left dumpable (its memory readable by ptrace/`/proc/<pid>/mem`
/// to its user, core dumps written) against its request.
#[test]
#[ignore = "rv38: LOW: by design: the dumpable flag is one bit the kernel's mark (a child or lookup thread taking other ids in the owner's memory) and the caller share; a PR_SET_DUMPABLE(0) made during an id-changing start can't be told from the mark and is undone with it (documented: make it before such starts or again after)"]
fn a_callers_own_not_dumpable_made_during_an_id_start_is_kept() {
    let name = "a_callers_own_not_dumpable_made_during_an_id_start_is_kept";
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        if !is_root() {
            skipped(name, "needs root");
            return;
        }
        let mut bad = Vec::new();
        for choice in mechanisms() {
            let mut undone = 0;
            for round in 0..60u64 {
                set_dumpable(true);
                let go = Arc::new(Barrier::new(2));
                let g = go.clone();
                let starter = std::thread::spawn(move || {
                    g.wait();
                    id_starts(choice, 0)
                });
                go.wait();
                // Somewhere in the start (its clone to its exec).
                let spin = Instant::now() + Duration::from_micros(round * 25);
                while Instant::now() < spin {}
                set_dumpable(false);
                let r = starter.join().unwrap();
                assert!(r.is_ok(), "{r:?}");
                if dumpable() != 0 {
                    undone += 1;
                }
            }
            set_dumpable(true);
            if undone > 0 {
                bad.push(format!(
                    "{choice}: the caller's PR_SET_DUMPABLE(0) undone in {undone} of 60 starts"
                ));
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
    });
}

/// `dumpable::kept` holds one process-wide lock across the whole of every
/// id-changing spawn, up to the child's `exec` (`CLONE_VFORK`), the
/// fork-style spawn of a command with a `pre_exec` hook included (whose
/// child has memory of its own, and can't mark the owner at all). A
/// child held before its `exec` (here a hook that waits for a file; in
/// life a slow hook, a child stopped before exec, an exec on a hung
/// network file system) now holds every other thread's start with
/// uid/gid/groups, and each PATH lookup with those ids: before lows4 they
/// were independent. The second start here must end while the first is
/// still held.
#[test]
fn an_id_start_held_before_its_exec_does_not_hold_other_threads_id_starts() {
    let name = "an_id_start_held_before_its_exec_does_not_hold_other_threads_id_starts";
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        if !is_root() {
            skipped(name, "needs root");
            return;
        }
        let mut bad = Vec::new();
        for choice in mechanisms() {
            if choice == MechanismChoice::Portable {
                // No pre_exec hooks there.
                continue;
            }
            let flag = common::temp_path(&format!("rv38-release-{choice}"));
            let _ = std::fs::remove_file(&flag);
            let cflag = std::ffi::CString::new(flag.to_str().unwrap()).unwrap();
            // SAFETY: the hook only calls access(2) and usleep(3)
            // (async-signal-safe) on a string made before the fork.
            let held = unsafe {
                cmd(choice, "true").uid(65534).pre_exec(move || {
                    for _ in 0..2000 {
                        if libc::access(cflag.as_ptr(), libc::F_OK) == 0 {
                            break;
                        }
                        libc::usleep(10_000);
                    }
                    Ok(())
                })
            };
            let first = std::thread::spawn(move || held.blocking().output());
            // The first start is in its hook once the thread is in the spawn
            // for a while; the second starts meanwhile.
            std::thread::sleep(Duration::from_millis(300));
            let (tx, rx) = std::sync::mpsc::channel();
            let second = std::thread::spawn(move || {
                let r = cmd(choice, "true").uid(65534).blocking().output();
                let _ = tx.send(r.is_ok_and(|o| o.success()));
            });
            let got = rx.recv_timeout(Duration::from_secs(8));
            std::fs::write(&flag, "go").unwrap();
            let one = first.join().unwrap();
            second.join().unwrap();
            let _ = std::fs::remove_file(&flag);
            match got {
                Ok(true) => {}
                Ok(false) => bad.push(format!("{choice}: the second start failed")),
                Err(_) => bad.push(format!(
                    "{choice}: the second id start waited (8 s) for the first's exec ({:?})",
                    one.map(|o| o.success())
                )),
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
    });
}

/// lows4's `dumpable::kept` holds a process-wide `Mutex` across every
/// id-changing spawn and PATH lookup with ids. A copy forked (plain
/// `fork`, which pkit supports: forkgen) while another thread is inside
/// one inherits the lock held, by a thread the copy does not have: the
/// copy's own first start with uid/gid/groups never returns. Here one
/// thread makes id starts in a loop while the helper forks 12 copies, one
/// every 20 ms; each copy makes one id start (bounded by 3 s): about 4
/// in 10 hang. Controls (plain starts in the loop, or a plain start in the
/// copy) hang none. Root only.
#[test]
#[ignore = "rv38: HIGH fixed by dumpfix (no lock across an id start; pinned by tests/dumpable_copies.rs); this form still hangs ~1 run in 10 on other locks a copy can inherit held (std's thread-start lock when the parent starts or ends a thread at the fork: a copy of a threaded process may call only async-signal-safe functions); run by hand"]
fn a_copy_forked_during_an_id_start_can_start_with_ids() {
    let name = "a_copy_forked_during_an_id_start_can_start_with_ids";
    if role().as_deref() == Some("fork-ids") {
        let spec = Copies {
            n: 12,
            gap: Duration::from_millis(20),
            loopers: 1,
            begun: false,
            warm_up: Duration::from_millis(100),
            alarm: COPY_ALARM,
            killed: copies::HUNG,
            reaped: Reaped::EachFirst,
        };
        let body = |_| {
            let c = Command::new("true");
            let c = if std::env::var_os("RV38_LOOP_PLAIN").is_some() {
                c
            } else {
                c.uid(65534).gid(65534)
            };
            let _ = c.blocking().output();
        };
        let copy = || {
            copies::watched(COPY_LIMIT, || {
                let c = Command::new("/bin/true");
                let c = if std::env::var_os("RV38_COPY_PLAIN").is_some() {
                    c
                } else {
                    c.uid(65534)
                };
                c.blocking().output().is_ok_and(|o| o.success())
            })
        };
        let (mut hung, mut fine) = (0, 0);
        for code in copies_while_looping(spec, body, copy) {
            match code {
                0 => fine += 1,
                copies::HUNG => hung += 1,
                _ => say(&format!("copy code {code}")),
            }
        }
        say(&format!("copies hung {hung} fine {fine}"));
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        if !is_root() {
            skipped(name, "needs root");
            return;
        }
        let (ok, lines) = run_helper(
            helper_cmd(&[], name, "fork-ids", &[]),
            COPY_LIMIT * 12 + Duration::from_secs(60),
        );
        assert!(ok, "{lines:#?}");
        assert!(
            lines.iter().any(|l| l == "copies hung 0 fine 12"),
            "{lines:#?}"
        );
    });
}

/// The number of tasks (threads) of processes of user `uid` now.
fn tasks_of(uid: u32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut n = 0;
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if p.metadata().is_ok_and(|m| m.uid() == uid)
            && p.file_name().to_string_lossy().parse::<u32>().is_ok()
        {
            n += std::fs::read_dir(p.path().join("task")).map_or(0, |t| t.count() as u64);
        }
    }
    n
}

/// Probe (lows4, thread exhaustion): a root owner in a v1 `pids` cgroup
/// whose limit leaves no, one or two tasks to spare makes id-changing starts
/// of a program found on `PATH` (the lookup's scratch thread may be
/// refused) with line callbacks: each fails cleanly or runs; no panic, no
/// hang, and the owner stays dumpable.
#[test]
fn id_starts_with_no_thread_to_spare_fail_cleanly_and_leave_the_owner_dumpable() {
    let name = "id_starts_with_no_thread_to_spare_fail_cleanly_and_leave_the_owner_dumpable";
    let pids_root = Path::new("/sys/fs/cgroup/pids");
    if role().as_deref() == Some("pids") {
        let dir = PathBuf::from(std::env::var("RV38_PIDS").unwrap());
        std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string()).unwrap();
        let one = || {
            let n = Arc::new(AtomicUsize::new(0));
            let nc = n.clone();
            let r = Command::new("seq")
                .arg("3")
                .uid(65534)
                .gid(65534)
                .groups([])
                .timeout(Duration::from_secs(10))
                .on_stdout_line(move |_| {
                    nc.fetch_add(1, Ordering::SeqCst);
                })
                .blocking()
                .output();
            match r {
                Ok(o) if o.success() && n.load(Ordering::SeqCst) == 3 => "ok".to_owned(),
                Ok(o) => format!("odd {o:?}"),
                Err(e) => format!("err {e}"),
            }
        };
        say(&format!("warm {}", one()));
        for extra in 0..3 {
            let current: u64 = std::fs::read_to_string(dir.join("pids.current"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            std::fs::write(dir.join("pids.max"), (current + extra).to_string()).unwrap();
            let r = one();
            std::fs::write(dir.join("pids.max"), "max").unwrap();
            say(&format!("extra {extra}: {r} dumpable {}", dumpable()));
        }
        std::fs::write(
            pids_root.join("cgroup.procs"),
            std::process::id().to_string(),
        )
        .unwrap();
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        if !is_root() || !pids_root.join("cgroup.procs").exists() {
            skipped(name, "needs root and a v1 pids hierarchy");
            return;
        }
        let dir = pids_root.join(common::unique_name("rv38"));
        std::fs::create_dir(&dir).expect("a pids cgroup");
        let (ok, lines) = run_helper(
            helper_cmd(&[], name, "pids", &[("RV38_PIDS", dir.to_str().unwrap())]),
            Duration::from_secs(60),
        );
        let end = Instant::now() + DEADLINE;
        while std::fs::remove_dir(&dir).is_err() && Instant::now() < end {
            std::thread::sleep(POLL);
        }
        assert!(ok, "{lines:#?}");
        assert!(lines.iter().any(|l| l == "warm ok"), "{lines:#?}");
        for extra in 0..3 {
            let l = lines
                .iter()
                .find(|l| l.starts_with(&format!("extra {extra}: ")))
                .unwrap_or_else(|| panic!("{lines:#?}"));
            assert!(l.ends_with("dumpable 1"), "{lines:#?}");
            assert!(l.contains(": ok ") || l.contains(": err "), "{lines:#?}");
        }
    });
}

/// Probe (lows4, non-root): an owner that is nobody (`setpriv`) starting
/// programs found on `PATH` with its own ids (the ids thread takes them:
/// no change) and with root's (refused: the lookup falls back, the child's
/// setup fails cleanly), at its `RLIMIT_NPROC` too: no panic, no hang.
#[test]
fn a_non_root_owner_starting_with_ids_fails_cleanly_or_runs() {
    let name = "a_non_root_owner_starting_with_ids_fails_cleanly_or_runs";
    if role().as_deref() == Some("nobody") {
        let run = |uid: u32| match Command::new("true")
            .uid(uid)
            .timeout(Duration::from_secs(10))
            .blocking()
            .output()
        {
            Ok(o) if o.success() => "ok".to_owned(),
            Ok(o) => format!("odd {o:?}"),
            Err(e) => format!("err {e}"),
        };
        say(&format!("own {}", run(65534)));
        say(&format!("root {}", run(0)));
        let mut hard = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid rlimit to fill.
        unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut hard) };
        for extra in 0..3 {
            let lim = libc::rlimit {
                rlim_cur: tasks_of(65534) + extra,
                rlim_max: hard.rlim_max,
            };
            // SAFETY: a valid rlimit.
            unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &lim) };
            let r = run(65534);
            // SAFETY: as above.
            unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &hard) };
            say(&format!("extra {extra}: {r}"));
        }
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let end = Instant::now() + DEADLINE;
        while is_root() && tasks_of(65534) != 0 && Instant::now() < end {
            std::thread::sleep(POLL);
        }
        if !is_root() || tasks_of(65534) != 0 {
            skipped(
                name,
                "needs root (to become nobody) and no process of nobody's",
            );
            return;
        }
        let mut cmd = helper_cmd(
            &[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ],
            name,
            "nobody",
            &[],
        );
        cmd.current_dir("/");
        let (ok, lines) = run_helper(cmd, Duration::from_secs(60));
        assert!(ok, "{lines:#?}");
        assert!(lines.iter().any(|l| l == "own ok"), "{lines:#?}");
        assert!(
            lines.iter().any(|l| l.starts_with("root err ")),
            "{lines:#?}"
        );
        for extra in 0..3 {
            let l = lines
                .iter()
                .find(|l| l.starts_with(&format!("extra {extra}: ")))
                .unwrap_or_else(|| panic!("{lines:#?}"));
            assert!(l.ends_with(": ok") || l.contains(": err "), "{lines:#?}");
        }
    });
}

// ---------------------------------------------------------------------------
// lows4: first pieces
// ---------------------------------------------------------------------------

/// Probe (lows4's `FirstPieces`): `first_line` with `max_line_bytes` on odd
/// input: a line of exactly the limit (not cut: the next line is a line),
/// multi-byte characters at the cut, a megabyte line before the match, a
/// cut line on stderr between stdout lines, async and blocking.
#[test]
fn first_line_with_max_line_bytes_on_odd_input() {
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let cases: &[(&str, &str, Option<&str>)] = &[
            // (script, predicate's wanted prefix, expected line)
            ("printf '12345678\\nready\\n'", "ready", Some("ready")),
            ("printf '123456789\\nready\\n'", "ready", Some("ready")),
            ("printf '1234567\\r\\nready\\n'", "ready", Some("ready")),
            ("printf 'readyreadyready\\n'", "ready", Some("readyrea")),
            (
                "printf 'xxxxxxxxready\\nready!\\n'",
                "ready",
                Some("ready!"),
            ),
            (
                "printf '\\303\\251\\303\\251\\303\\251\\303\\251\\303\\251ready\\nready2\\n'",
                "ready",
                Some("ready2"),
            ),
            (
                "head -c 1048576 /dev/zero | tr '\\0' r; echo; echo ready",
                "ready",
                Some("ready"),
            ),
            (
                "printf 'xxxxxxxxxxready\\n' >&2; echo ready1",
                "ready",
                Some("ready1"),
            ),
            (
                "printf 'abcdefghijklmnop\\nready\\n'",
                "ready",
                Some("ready"),
            ),
            ("printf 'abcdefghijklmnop'", "", Some("abcdefgh")),
            ("printf 'abcdefghready'", "ready", None),
        ];
        let mut bad = Vec::new();
        for choice in mechanisms() {
            for (script, want, expect) in cases {
                for blocking in [false, true] {
                    let cmd = sh(choice, script)
                        .max_line_bytes(8)
                        .timeout(Duration::from_secs(20));
                    let pred = |l: &str| l.starts_with(want);
                    let got = if blocking {
                        cmd.blocking().first_line(pred)
                    } else {
                        rt().block_on(cmd.first_line(pred))
                    };
                    match got {
                        Ok(l) if l.as_deref() == *expect => {}
                        other => {
                            bad.push(format!("{choice} blocking={blocking} {script}: {other:?}"))
                        }
                    }
                }
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
    });
}

// ---------------------------------------------------------------------------
// zomb, perf38: waits
// ---------------------------------------------------------------------------

/// Probe (zomb): a cancelled run whose program ignores SIGTERM (a 30 s
/// grace) has its leaf emptied by `cgroup.kill` and removed by someone
/// else while pkit waits for it to empty: the run returns well before the
/// grace ends. Cgroup pass.
#[test]
fn a_leaf_killed_and_removed_under_a_waiting_cancel_ends_the_wait() {
    let name = "a_leaf_killed_and_removed_under_a_waiting_cancel_ends_the_wait";
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        if !cgroup_pass(name) {
            return;
        }
        let token = pkit::CancelToken::new();
        let cmd = sh(
            MechanismChoice::Cgroup,
            "trap '' TERM; echo up; while :; do sleep 1; done",
        )
        .cancel_token(&token)
        .cancel_grace(Duration::from_secs(30))
        .stream_lines();
        let rt = rt();
        let mut p = rt.block_on(async { cmd.start() }).expect("start");
        let mut lines = p.lines();
        let first = rt.block_on(async { lines.next_line().await });
        assert!(first.is_some(), "up");
        // The run's directory: the one of ours its process is in (not "the
        // one new since before the start": a one-shot run may reuse a
        // directory another test of this binary running beside it emptied
        // meanwhile, which existed before).
        let in_it =
            std::fs::read_to_string(format!("/proc/{}/cgroup", p.pid())).unwrap_or_default();
        let dirs: Vec<PathBuf> = own_cgroup_dirs()
            .into_iter()
            .filter(|d| {
                let name = d.file_name().map(|n| n.to_string_lossy().into_owned());
                in_it
                    .lines()
                    .any(|l| l.split('/').any(|c| Some(c) == name.as_deref()))
            })
            .collect();
        assert!(!dirs.is_empty(), "the run's cgroup: {in_it}");
        let t0 = Instant::now();
        let remover = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            // The leaves first (deepest first), killed then removed.
            let mut all = Vec::new();
            fn walk(d: &Path, all: &mut Vec<PathBuf>) {
                all.push(d.to_path_buf());
                for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        walk(&e.path(), all);
                    }
                }
            }
            for d in &dirs {
                walk(d, &mut all);
            }
            all.reverse();
            for d in &all {
                let _ = std::fs::write(d.join("cgroup.kill"), "1");
            }
            let end = Instant::now() + DEADLINE;
            for d in &all {
                while std::fs::remove_dir(d).is_err() && d.exists() && Instant::now() < end {
                    std::thread::sleep(POLL);
                }
            }
            all.iter().filter(|d| d.exists()).count()
        });
        token.cancel();
        let r = rt.block_on(p.wait());
        let took = t0.elapsed();
        let left = remover.join().unwrap();
        eprintln!("rv38: removed-under-wait: {r:?} after {took:?}, {left} dirs left");
        assert!(
            took < Duration::from_secs(15),
            "waited out the grace: {took:?} {r:?}"
        );
    });
}

/// Probe (perf38: the blocking direct path reaps at the look that sees
/// the exit, cgroup v2): a shell that exits leaving a job that writes
/// later and a job that sleeps: the run returns, and no process of it is
/// left (the suite's end checks); with a timeout, the sleeping job is
/// gone when the call returns.
#[test]
fn a_blocking_direct_run_whose_leader_exits_before_its_jobs_leaves_nothing() {
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let bad = Mutex::new(Vec::new());
        at_once(mechanisms(), |choice| {
            for i in 0..4 {
                let t0 = Instant::now();
                let r = sh(
                    choice,
                    "(sleep 0.2; echo late) & sleep 30 >/dev/null 2>&1 & echo $!; echo early",
                )
                .timeout(Duration::from_secs(2))
                .blocking()
                .output();
                let took = t0.elapsed();
                match &r {
                    Ok(out) => {
                        let pid: u32 = out
                            .stdout_str()
                            .lines()
                            .next()
                            .and_then(|l| l.parse().ok())
                            .unwrap_or(0);
                        let end = Instant::now() + DEADLINE;
                        while pid != 0 && !pid_gone(pid) && Instant::now() < end {
                            std::thread::sleep(POLL);
                        }
                        if pid == 0 || !pid_gone(pid) || took > Duration::from_secs(15) {
                            bad.lock().unwrap().push(format!(
                                "{choice} {i}: {out:?} {took:?} job {pid} gone {}",
                                pid_gone(pid)
                            ));
                        } else {
                            eprintln!(
                                "rv38: {choice} {i}: {:?} {:?} {took:?}",
                                out.outcome(),
                                out.stdout_str()
                            );
                        }
                    }
                    Err(e) => bad.lock().unwrap().push(format!("{choice} {i}: {e}")),
                }
            }
        });
        let bad = bad.into_inner().unwrap();
        assert!(bad.is_empty(), "{bad:#?}");
    });
}

// ---------------------------------------------------------------------------
// teefin x the supervisor, a dropped wait
// ---------------------------------------------------------------------------

/// teefin bounds a stuck async tee after the program's exit by the run's
/// timeout, inactivity timeout and cancel tokens, but a supervised run's
/// end (`supervise/run.rs`: `proc.wait()` after the exit, outside
/// `until`) answers to the command's own tokens only: the supervisor's
/// [`stop`](pkit::SupervisorHandle::stop) and its
/// [`Supervisor::cancel_token`](pkit::Supervisor::cancel_token) never
/// reach the stuck write, and `stop()`/`wait()` never return (the tree is
/// long gone; only the tee holds). Control: the command's own cancel token
/// does end it. Every pass; restart `Always` and `Never` alike.
///
/// Fixed (supfix): the supervisor's stop and cancel tokens bound the
/// run's finish after the exit too. The outcome is the exit's, the tee
/// cut; the blocking facade's supervisor (the same loop) likewise.
#[test]
fn a_supervisor_stop_returns_while_a_runs_tee_is_stuck_after_its_exit() {
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let bad = Mutex::new(Vec::new());
        let cases: Vec<(MechanismChoice, &str, pkit::Restart)> = mechanisms()
            .into_iter()
            .flat_map(|c| {
                [
                    (c, "stop", pkit::Restart::Always),
                    (c, "stop", pkit::Restart::Never),
                    (c, "supervisor's token", pkit::Restart::Always),
                    (c, "command's token (control)", pkit::Restart::Always),
                ]
            })
            .collect();
        at_once(cases, |(choice, how, restart)| {
            let rt = rt();
            rt.block_on(async {
                let token = pkit::CancelToken::new();
                let mut cmd = Command::new("sh").args(["-c", "echo hi"]).stdout_tee(Stuck);
                if how.starts_with("command") {
                    cmd = cmd.cancel_token(&token);
                }
                let mut sup = pkit::Supervisor::new(cmd)
                    .mechanism(choice)
                    .restart(restart)
                    .backoff(Duration::from_millis(5), 1.0);
                if how.starts_with("supervisor") {
                    sup = sup.cancel_token(&token);
                }
                let mut handle = sup.start();
                let first = tokio::time::timeout(DEADLINE, handle.next_event()).await;
                match first {
                    // Once the program has exited, its run waits on the tee
                    // (polled: under load the shell can take seconds).
                    Ok(Some(pkit::SupervisorEvent::Started { pid, .. })) => {
                        let end = Instant::now() + DEADLINE * 3;
                        while !pid_gone(pid) && Instant::now() < end {
                            tokio::time::sleep(POLL).await;
                        }
                    }
                    _ => bad
                        .lock()
                        .unwrap()
                        .push(format!("{choice} {how}: first event {first:?}")),
                }
                let ended = if how == "stop" {
                    tokio::time::timeout(STOP_LIMIT, handle.stop()).await
                } else {
                    token.cancel();
                    tokio::time::timeout(STOP_LIMIT, handle.wait()).await
                };
                match ended {
                    Err(_) => bad.lock().unwrap().push(format!(
                        "{choice} {how} ({restart:?}): still waits after {STOP_LIMIT:?}"
                    )),
                    Ok(r) => {
                        let out = r.as_ref().ok().and_then(|o| o.final_output.as_ref());
                        if !out.is_some_and(|o| o.outcome() == Outcome::Exited(0) && tee_cut(o)) {
                            bad.lock()
                                .unwrap()
                                .push(format!("{choice} {how} ({restart:?}): {r:?}"));
                        }
                    }
                }
            });
        });
        let bad = bad.into_inner().unwrap();
        assert!(bad.is_empty(), "{bad:#?}");
    });
}

/// The blocking facade's supervisor runs the same loop (on pkit's
/// internal runtime): its `stop()` returns too while a run's async tee is
/// stuck after the exit, with the exit's outcome (supfix).
#[test]
fn a_blocking_supervisor_stop_returns_while_a_runs_tee_is_stuck_after_its_exit() {
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let bad = Mutex::new(Vec::new());
        let cases: Vec<(MechanismChoice, pkit::Restart)> = mechanisms()
            .into_iter()
            .flat_map(|c| [(c, pkit::Restart::Always), (c, pkit::Restart::Never)])
            .collect();
        at_once(cases, |(choice, restart)| {
            let cmd = Command::new("sh").args(["-c", "echo hi"]).stdout_tee(Stuck);
            let mut handle = pkit::Supervisor::new(cmd)
                .mechanism(choice)
                .restart(restart)
                .backoff(Duration::from_millis(5), 1.0)
                .blocking()
                .start();
            let first = handle.next_event();
            match first {
                // Once the program has exited, its run waits on the tee
                // (polled: under load the shell can take seconds).
                Some(pkit::SupervisorEvent::Started { pid, .. }) => {
                    let end = Instant::now() + DEADLINE * 3;
                    while !pid_gone(pid) && Instant::now() < end {
                        std::thread::sleep(POLL);
                    }
                }
                _ => bad
                    .lock()
                    .unwrap()
                    .push(format!("{choice} {restart:?}: first event {first:?}")),
            }
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(handle.stop());
            });
            match rx.recv_timeout(STOP_LIMIT) {
                Err(_) => bad.lock().unwrap().push(format!(
                    "{choice} blocking ({restart:?}): still waits after {STOP_LIMIT:?}"
                )),
                Ok(r) => {
                    let out = r.as_ref().ok().and_then(|o| o.final_output.as_ref());
                    if !out.is_some_and(|o| o.outcome() == Outcome::Exited(0) && tee_cut(o)) {
                        bad.lock()
                            .unwrap()
                            .push(format!("{choice} blocking ({restart:?}): {r:?}"));
                    }
                }
            }
        });
        let bad = bad.into_inner().unwrap();
        assert!(bad.is_empty(), "{bad:#?}");
    });
}

/// Probe (teefin, cancel safety): a started process's `wait`, dropped
/// again and again (every 50 ms) while its stuck tee holds the end after
/// the exit, and called again: a cancel then ends it with the exit's
/// outcome and the tee's error.
#[test]
fn a_wait_dropped_during_the_after_exit_and_called_again_ends_at_the_cancel() {
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let bad = Mutex::new(Vec::new());
        at_once(mechanisms(), |choice| {
            let rt = rt();
            let token = pkit::CancelToken::new();
            let cmd = sh(choice, "echo hi").stdout_tee(Stuck).cancel_token(&token);
            let r = rt.block_on(async {
                let mut p = cmd.start()?;
                for i in 0..200 {
                    if i == 6 {
                        token.cancel();
                    }
                    if let Ok(r) = tokio::time::timeout(Duration::from_millis(50), p.wait()).await {
                        return r.map(|o| (i, o));
                    }
                }
                Err(pkit::Error::Cancelled {
                    program: "never ended".into(),
                })
            });
            let ok = matches!(&r, Ok((i, out)) if *i >= 6 && out.outcome() == Outcome::Exited(0)
                && out.stdout_str() == "hi\n" && tee_cut(out));
            if !ok {
                bad.lock().unwrap().push(format!("{choice}: {r:?}"));
            }
        });
        let bad = bad.into_inner().unwrap();
        assert!(bad.is_empty(), "{bad:#?}");
    });
}

/// Probe (lows4's `FirstPieces` in a supervisor): a stderr line cut at 8
/// bytes whose later piece would match, a stdout line of multi-byte
/// characters cut, then the real line: `ready_when_line` is offered no
/// later piece of either, and the run becomes ready at the real line.
#[test]
fn a_supervisors_readiness_sees_first_pieces_only_on_both_streams() {
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let bad = Mutex::new(Vec::new());
        at_once(mechanisms(), |choice| {
            let rt = rt();
            rt.block_on(async {
                let offered = Arc::new(Mutex::new(Vec::<String>::new()));
                let o = offered.clone();
                let cmd = Command::new("sh")
                    .args([
                        "-c",
                        "printf 'xxxxxxxxready-bad\\n' >&2; printf '\\303\\251\\303\\251\\303\\251\\303\\251\\303\\251ready-b\\n'; sleep 0.2; echo ready!; exec sleep 30",
                    ])
                    .max_line_bytes(8);
                let mut handle = pkit::Supervisor::new(cmd)
                    .mechanism(choice)
                    .restart(pkit::Restart::Never)
                    .ready_when_line(
                        move |l| {
                            o.lock().unwrap().push(l.to_owned());
                            l.starts_with("ready")
                        },
                        Duration::from_secs(10),
                    )
                    .start();
                let mut events = Vec::new();
                while let Ok(Some(ev)) = tokio::time::timeout(DEADLINE, handle.next_event()).await {
                    let done = !matches!(ev, pkit::SupervisorEvent::Started { .. });
                    events.push(format!("{ev:?}"));
                    if done {
                        break;
                    }
                }
                let _ = tokio::time::timeout(DEADLINE, handle.stop()).await;
                let offered = offered.lock().unwrap().clone();
                let ready = events.iter().any(|e| e.starts_with("Ready"));
                if !ready || offered.iter().any(|l| l.starts_with("ready") && l != "ready!") {
                    bad.lock().unwrap().push(format!("{choice}: {events:?} offered {offered:?}"));
                }
            });
        });
        let bad = bad.into_inner().unwrap();
        assert!(bad.is_empty(), "{bad:#?}");
    });
}

// ---------------------------------------------------------------------------
// nesting, signals
// ---------------------------------------------------------------------------

/// Probe (nesting): a second pkit inside the first: this binary, run by
/// pkit as a blocking run with line callbacks (reader threads of the
/// pool), makes blocking runs with callbacks, an id-changing start of a
/// program on `PATH` (root), a `first_line` with `max_line_bytes`, and a
/// run whose stuck tee is cut after its exit by the timeout; the outer run
/// tells its lines and leaves nothing.
#[test]
fn a_pkit_inside_a_pkit_run_does_this_sessions_work() {
    let name = "a_pkit_inside_a_pkit_run_does_this_sessions_work";
    if role().as_deref() == Some("nested") {
        let n = Arc::new(AtomicUsize::new(0));
        let nc = n.clone();
        let r = Command::new("sh")
            .args(["-c", "seq 1 30; seq 1 30 >&2"])
            .timeout(Duration::from_secs(10))
            .on_stdout_line(move |_| {
                nc.fetch_add(1, Ordering::SeqCst);
            })
            .on_stderr_line(|_| {})
            .blocking()
            .output();
        say(&format!(
            "callbacks {}",
            r.is_ok_and(|o| o.success()) && n.load(Ordering::SeqCst) == 30
        ));
        if is_root() {
            let r = Command::new("true")
                .uid(65534)
                .gid(65534)
                .blocking()
                .output();
            say(&format!(
                "ids {} dumpable {}",
                r.is_ok_and(|o| o.success()),
                dumpable()
            ));
        } else {
            say("ids true dumpable 1");
        }
        let r = Command::new("sh")
            .args(["-c", "printf 'xxxxxxxxready\\nready!\\n'"])
            .max_line_bytes(8)
            .blocking()
            .first_line(|l| l.starts_with("ready"));
        say(&format!("first_line {r:?}"));
        let r = Command::new("echo")
            .arg("hi")
            .stdout_tee(Stuck)
            .timeout(Duration::from_millis(300))
            .blocking()
            .output();
        say(&format!(
            "tee {}",
            r.is_ok_and(|o| o.outcome() == Outcome::Exited(0) && tee_cut(&o))
        ));
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let bad = Mutex::new(Vec::new());
        at_once(mechanisms(), |choice| {
            let exe = std::env::current_exe().unwrap();
            let lines = Arc::new(Mutex::new(Vec::<String>::new()));
            let l = lines.clone();
            let r = cmd(choice, exe.to_str().unwrap())
                .args([
                    "--exact",
                    name,
                    "--nocapture",
                    "--include-ignored",
                    "--test-threads=1",
                ])
                .env("RV38_ROLE", "nested")
                .timeout(Duration::from_secs(60))
                .on_stdout_line(move |s| {
                    if let Some(i) = s.find("rv38: ") {
                        l.lock().unwrap().push(s[i + 6..].to_owned());
                    }
                })
                .blocking()
                .output();
            let lines = lines.lock().unwrap().clone();
            let ok = r.as_ref().is_ok_and(|o| o.success())
                && [
                    "callbacks true",
                    "ids true dumpable 1",
                    "first_line Ok(Some(\"ready!\"))",
                    "tee true",
                ]
                .iter()
                .all(|w| lines.iter().any(|l| l == w));
            if !ok {
                bad.lock().unwrap().push(format!(
                    "{choice}: {lines:#?} {:?}",
                    r.map(|o| (
                        o.outcome(),
                        o.stderr_str().chars().take(2000).collect::<String>()
                    ))
                ));
            }
        });
        let bad = bad.into_inner().unwrap();
        assert!(bad.is_empty(), "{bad:#?}");
    });
}

extern "C" fn on_tstp(_: libc::c_int) {}

/// Probe (perf38's one sigaction per stop signal in the child): an owner
/// that handles SIGTSTP, ignores SIGTTIN and leaves SIGTTOU at its default
/// starts programs (every mechanism of the pass) that see SIGTSTP at its
/// default (a handler does not survive exec), SIGTTIN ignored (an ignore
/// does), SIGTTOU at its default, and no signal blocked.
#[test]
fn a_childs_stop_signals_follow_the_owners_dispositions() {
    let name = "a_childs_stop_signals_follow_the_owners_dispositions";
    if role().as_deref() == Some("sigs") {
        // SAFETY: installs a handler that does nothing, and an ignore, in
        // this helper process only.
        unsafe {
            libc::signal(libc::SIGTSTP, on_tstp as *const () as usize);
            libc::signal(libc::SIGTTIN, libc::SIG_IGN);
        }
        for choice in mechanisms() {
            let r = cmd(choice, "cat")
                .arg("/proc/self/status")
                .blocking()
                .output();
            let text = r.map(|o| o.stdout_str().to_string()).unwrap_or_default();
            let field = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                    .unwrap_or(u64::MAX)
            };
            let bit = |s: i32| 1u64 << (s - 1);
            let (ign, blk, cgt) = (field("SigIgn:"), field("SigBlk:"), field("SigCgt:"));
            say(&format!(
                "{choice}: tstp ignored {} ttin ignored {} ttou ignored {} blocked {blk:#x} caught {cgt:#x}",
                ign & bit(libc::SIGTSTP) != 0,
                ign & bit(libc::SIGTTIN) != 0,
                ign & bit(libc::SIGTTOU) != 0,
            ));
        }
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let (ok, lines) = run_helper(helper_cmd(&[], name, "sigs", &[]), Duration::from_secs(60));
        assert!(ok, "{lines:#?}");
        for choice in mechanisms() {
            let want = format!(
                "{choice}: tstp ignored false ttin ignored true ttou ignored false blocked 0x0 caught 0x0"
            );
            assert!(lines.contains(&want), "{want}: {lines:#?}");
        }
    });
}

// ---------------------------------------------------------------------------
// teefin: the VT stripper's strings
// ---------------------------------------------------------------------------

/// Probe (teefin's stripper fix): random text of string introducers (OSC,
/// DCS, SOS, PM, APC, 7- and 8-bit), ST, BEL, ESC, CSI pieces, CAN, SUB,
/// tabs and line endings: no ESC, CAN, SUB or C1 control is left,
/// stripping in random cuts (a `VtStripper` fed piece by piece) gives what
/// stripping the whole text gives, and text with no string introducer
/// keeps every line feed. (A line feed inside a string is swallowed, as a
/// terminal's parser ignores it there, and documented so: an OSC left
/// unterminated swallows the lines after it up to the next BEL, ST, ESC,
/// CAN or SUB; an ESC, the usual next thing, ends it: checked below.)
#[test]
fn the_vt_stripper_leaves_no_control_and_strips_cut_text_as_whole_in_random_strings() {
    if role().is_some() {
        return;
    }
    const ALPHABET: &[char] = &[
        'a', 'Z', ' ', '\n', '\t', '\r', '\x1b', ']', 'P', 'X', '^', '_', '\\', '\x07', '[', '0',
        ';', 'm', '\x18', '\x1a', '\u{9b}', '\u{9d}', '\u{90}', '\u{9c}', '\u{98}', 'é',
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id());
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut bad = Vec::new();
    for round in 0..4000 {
        let len = (next() % 48) as usize;
        let text: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        let whole = pkit::strip_vt(&text);
        let chars: Vec<char> = text.chars().collect();
        let mut vt = pkit::VtStripper::new();
        let mut cut = String::new();
        let mut i = 0;
        while i < chars.len() {
            let n = 1 + (next() % 5) as usize;
            let piece: String = chars[i..(i + n).min(chars.len())].iter().collect();
            vt.strip_into(&piece, &mut cut);
            i += n;
        }
        let left = whole
            .chars()
            .any(|c| matches!(c, '\x1b' | '\x18' | '\x1a' | '\u{80}'..='\u{9f}'));
        let strings = text.contains(['\u{90}', '\u{9d}', '\u{98}'])
            || ["\x1b]", "\x1bP", "\x1bX", "\x1b^", "\x1b_"]
                .iter()
                .any(|i| text.contains(i));
        let lines_lost = whole.matches('\n').count() != text.matches('\n').count();
        if (lines_lost && !strings) || left || cut != whole {
            bad.push(format!(
                "round {round}: {text:?} -> {whole:?} (cut: {cut:?})"
            ));
        }
    }
    for (input, want) in [
        ("\x1b]0;title\x1b[0mready\n", "ready\n"),
        ("\u{9d}0;title\x1b[1mready\nnext\n", "ready\nnext\n"),
        ("\x1bPq#0\x1b\\ready\n", "ready\n"),
    ] {
        if pkit::strip_vt(input) != want {
            bad.push(format!("{input:?} -> {:?}", pkit::strip_vt(input)));
        }
    }
    bad.truncate(10);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Probe (lows4, odd ids): a root owner starting a program found on `PATH`
/// with more supplementary groups than the kernel takes (70,000: the
/// lookup's thread is refused them, the child's setup too) gets a clean
/// error; with 60,000 (under `NGROUPS_MAX`) the run goes; the owner stays
/// dumpable either way.
#[test]
fn too_many_groups_fail_cleanly_and_leave_the_owner_dumpable() {
    let name = "too_many_groups_fail_cleanly_and_leave_the_owner_dumpable";
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        if !is_root() {
            skipped(name, "needs root");
            return;
        }
        for choice in mechanisms() {
            let r = cmd(choice, "true")
                .uid(65534)
                .groups(0..70_000u32)
                .blocking()
                .output();
            assert!(r.is_err(), "{choice}: {r:?}");
            let r = cmd(choice, "id")
                .arg("-G")
                .uid(65534)
                .groups(1000..61_000u32)
                .blocking()
                .output()
                .unwrap_or_else(|e| panic!("{choice}: {e}"));
            assert!(r.success(), "{choice}: {r:?}");
            // The primary group and the 60,000.
            assert_eq!(
                r.stdout_str().split_whitespace().count(),
                60_001,
                "{choice}"
            );
            assert_eq!(dumpable(), 1, "{choice}");
        }
    });
}

/// Probe (perf38's reap at the look that sees the exit): an owner whose
/// SIGCHLD is ignored (the kernel reaps its children itself) gets each
/// run's exit code, or a clean error, from the blocking direct path, a
/// blocking run through the engine and an async run; no hang.
#[test]
fn an_owner_that_ignores_sigchld_gets_exit_codes_or_clean_errors() {
    let name = "an_owner_that_ignores_sigchld_gets_exit_codes_or_clean_errors";
    if role().as_deref() == Some("sigchld-ign") {
        // SAFETY: in this helper process only.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        for choice in mechanisms() {
            let show = |r: pkit::Result<pkit::Output>| match r {
                Ok(o) => format!("{}", o.outcome()),
                Err(e) => format!("err {e}"),
            };
            let direct = show(cmd(choice, "sh").args(["-c", "exit 3"]).blocking().output());
            let engine = show(
                cmd(choice, "sh")
                    .args(["-c", "echo x; exit 3"])
                    .on_stdout_line(|_| {})
                    .blocking()
                    .output(),
            );
            let asynch = show(rt().block_on(cmd(choice, "sh").args(["-c", "exit 3"]).output()));
            say(&format!("{choice}: {direct} | {engine} | {asynch}"));
        }
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let (ok, lines) = run_helper(
            helper_cmd(&[], name, "sigchld-ign", &[]),
            Duration::from_secs(60),
        );
        eprintln!("rv38: {lines:#?}");
        assert!(ok, "{lines:#?}");
        for choice in mechanisms() {
            let l = lines
                .iter()
                .find(|l| l.starts_with(&format!("{choice}: ")))
                .unwrap_or_else(|| panic!("{choice}: {lines:#?}"));
            for part in l[choice.to_string().len() + 2..].split(" | ") {
                assert!(
                    part == "exited(3)" || part.starts_with("err "),
                    "{lines:#?}"
                );
            }
        }
    });
}

/// One plain run of kind `i % 4`: blocking direct, blocking with a line
/// callback (a pooled reader thread), async, a blocking chain; whether it
/// went.
fn plain_run(i: usize) -> bool {
    match i % 4 {
        0 => Command::new("true")
            .blocking()
            .output()
            .is_ok_and(|o| o.success()),
        1 => Command::new("seq")
            .arg("3")
            .on_stdout_line(|_| {})
            .blocking()
            .output()
            .is_ok_and(|o| o.success()),
        2 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(Command::new("true").output())
            .is_ok_and(|o| o.success()),
        _ => pkit::Pipe::new([Command::new("seq").arg("3"), Command::new("cat")])
            .blocking()
            .output()
            .is_ok_and(|o| o.success()),
    }
}

/// Probe (forkgen x perf38, the control of the HIGH finding above): copies
/// forked (6, one every 20 ms) while two threads make plain runs of every
/// kind in a loop (blocking direct, with callbacks, async, a chain) make
/// runs of every kind themselves: none hangs.
#[test]
fn copies_forked_during_plain_runs_of_every_kind_make_their_own() {
    let name = "copies_forked_during_plain_runs_of_every_kind_make_their_own";
    if role().as_deref() == Some("fork-plain") {
        let spec = Copies {
            n: 6,
            gap: Duration::from_millis(20),
            loopers: 2,
            begun: false,
            warm_up: Duration::from_millis(100),
            alarm: COPY_ALARM,
            killed: copies::HUNG,
            reaped: Reaped::EachFirst,
        };
        let body = |i| {
            plain_run(i);
        };
        let copy = || copies::watched(COPY_LIMIT, || (0..4).all(plain_run));
        let (mut hung, mut fine, mut failed) = (0, 0, 0);
        for code in copies_while_looping(spec, body, copy) {
            match code {
                0 => fine += 1,
                copies::HUNG => hung += 1,
                _ => failed += 1,
            }
        }
        say(&format!("copies hung {hung} failed {failed} fine {fine}"));
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let (ok, lines) = run_helper(
            helper_cmd(&[], name, "fork-plain", &[]),
            COPY_LIMIT * 6 + Duration::from_secs(60),
        );
        assert!(ok, "{lines:#?}");
        assert!(
            lines.iter().any(|l| l == "copies hung 0 failed 0 fine 6"),
            "{lines:#?}"
        );
    });
}

/// The portable backend's exit notices (`sys/unix/sigchld.rs`): a SIGCHLD
/// handler writes to a pipe that a thread of the owner reads, waking the
/// waiters; every wait also re-checks each 250 ms. A copy forked (plain
/// `fork`) after the owner's first portable run inherited the installed
/// notifier and the pipe, but not the reading thread: its handler's bytes
/// went to the parent's reader, and every wait of the copy fell back on
/// the 250 ms re-check (8 runs: 1.8 s in the copy, 0.1 s in the parent).
/// It never hung.
///
/// Fixed (supfix): the copy makes its own notifier (a pipe and a
/// `pkit-sigchld` thread). Checked without the clock: after a first run,
/// the copy has one `pkit-sigchld` thread of its own, and its 8 runs wake
/// that thread (its voluntary context switches, each a read of the pipe
/// that slept, go up). The times are printed, not asserted.
#[test]
fn a_copy_forked_after_a_portable_run_is_told_of_its_exits() {
    let name = "a_copy_forked_after_a_portable_run_is_told_of_its_exits";
    let runs = |n: usize| {
        let t0 = Instant::now();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ok = (0..n).all(|_| {
            rt.block_on(cmd(MechanismChoice::Portable, "true").output())
                .is_ok_and(|o| o.success())
        });
        (ok, t0.elapsed())
    };
    // This process's `pkit-sigchld` threads: how many, and how often they
    // slept and were woken (their voluntary context switches, summed).
    let notifiers = || {
        let mut count = 0u64;
        let mut woken = 0u64;
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != "pkit-sigchld" {
                continue;
            }
            count += 1;
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            woken += status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        (count, woken)
    };
    // A thread started with a name takes that name itself once it first
    // runs (std sets it from inside the new thread): under load the
    // notifier can exist for a while under its parent's name. Wait for
    // the name, generously, before counting.
    let named_notifiers = || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = notifiers();
            if seen.0 > 0 || Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    if role().as_deref() == Some("fork-portable") {
        let (ok, took) = runs(8);
        let (threads, _) = named_notifiers();
        say(&format!(
            "parent {ok} threads {threads} ms {}",
            took.as_millis()
        ));
        // SAFETY: a forked copy of a threaded process, as pkit supports;
        // bounded by alarm, then `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            // SAFETY: plain values.
            unsafe { libc::alarm(40) };
            let (first, _) = runs(1);
            let (threads, before) = named_notifiers();
            let (ok, took) = runs(8);
            let (_, after) = notifiers();
            say(&format!(
                "copy {} threads {threads} woken {} ms {}",
                first && ok,
                after.saturating_sub(before),
                took.as_millis()
            ));
            // SAFETY: ends the copy.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let (ok, lines) = run_helper(
            helper_cmd(&[], name, "fork-portable", &[]),
            Duration::from_secs(60),
        );
        assert!(ok, "{lines:#?}");
        let field = |who: &str, key: &str| -> u64 {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(&format!("{who} true ")))
                .and_then(|rest| {
                    let words: Vec<&str> = rest.split(' ').collect();
                    let at = words.iter().position(|w| *w == key)?;
                    words.get(at + 1)?.parse().ok()
                })
                .unwrap_or_else(|| panic!("{who} {key}: {lines:#?}"))
        };
        eprintln!("rv38: {lines:?}");
        assert_eq!(field("parent", "threads"), 1, "{lines:#?}");
        assert_eq!(
            field("copy", "threads"),
            1,
            "the copy's own notifier: {lines:#?}"
        );
        assert!(
            field("copy", "woken") >= 4,
            "the copy's 8 exits wake its notifier: {lines:#?}"
        );
    });
}
