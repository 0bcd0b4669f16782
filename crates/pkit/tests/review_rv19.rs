//! Review rv19: the spare2 merge (the async worker hands a one-shot run its
//! exit before it deregisters the pidfd and closes the drained pipes; the
//! watch keeps a share of the child; `run_in` reaps the child itself),
//! probed with real programs from a multi-thread runtime's `block_on` (the
//! only way a run takes that path). Tests that showed a fault and are not
//! fixed here are `#[ignore]`d, each with what it found.

mod common;

use std::time::Duration;

use common::fds::{assert_none_opened_since, Snapshot};
use common::*;
use pkit::{CancelToken, CapturePolicy, ErrorKind, MechanismChoice};

/// Runs `f` alone in this binary (it counts this process's descriptors
/// and zombies), then checks nothing is left.
/// `f` gets the runtime that checks descriptors ([`no_fds_since`]), made
/// before any snapshot so that it is none of what is counted.
///
/// The runtime is built before the lock is taken, so a test holding it
/// with `RLIMIT_NOFILE` lowered (see
/// [`captures_under_a_low_descriptor_limit_end_and_leave_nothing`]) can
/// make the build fail with `EMFILE`: it is tried again until that test
/// has put the limit back.
fn alone(name: &'static str, f: impl FnOnce(&tokio::runtime::Runtime)) {
    let deadline = std::time::Instant::now() + DEADLINE;
    let rt = loop {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => break rt,
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                assert!(std::time::Instant::now() < deadline, "{name}: {e}");
                std::thread::sleep(POLL);
            }
            Err(e) => panic!("{name}: {e}"),
        }
    };
    let guard = rt.block_on(begin_alone_in_binary());
    f(&rt);
    rt.block_on(end_exclusive(guard, name));
}

/// A multi-thread runtime with one worker: its `block_on` is the path
/// under review (`RunningProcess::wait_aside`).
fn multi() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// This process's children that are zombies right now.
fn zombies() -> Vec<u32> {
    own_children()
        .into_iter()
        .filter(|(_, s)| s.is_some_and(|s| s.state == 'Z'))
        .map(|(pid, _)| pid)
        .collect()
}

/// This process's descriptors, with no spare cgroup kept (a spare made
/// by another run would count as opened since).
fn snapshot() -> Snapshot {
    pkit::release_spare_cgroups();
    Snapshot::take()
}

/// Checks, on `check` (see [`alone`]), that no descriptor opened since
/// `before` is left (polled).
fn no_fds_since(check: &tokio::runtime::Runtime, before: &Snapshot, what: &str) {
    pkit::release_spare_cgroups();
    check.block_on(assert_none_opened_since(before, what));
}

/// The control: a capture that ends normally (and one that times out)
/// returns with its child reaped, every time (`run_in`'s reap). Timeouts
/// of the portable backend: see the ignored test below. (Before the merge
/// a timed-out run returned with a zombie now and then: cgroup, 1 in 10.)
#[test]
fn finished_and_timed_out_captures_return_with_no_zombie() {
    alone(
        "finished_and_timed_out_captures_return_with_no_zombie",
        |_| {
            let rt = multi();
            for choice in mechanisms() {
                for i in 0..40 {
                    let out = rt.block_on(sh(choice, "echo hi").output()).expect("output");
                    assert_eq!(out.stdout(), b"hi\n");
                    assert_eq!(zombies(), Vec::<u32>::new(), "{choice}: run {i}");
                }
                if choice == MechanismChoice::Portable {
                    continue;
                }
                for i in 0..10 {
                    let cmd = sh(choice, "sleep 30").timeout(Duration::from_millis(30));
                    let out = rt.block_on(cmd.output()).expect("output");
                    assert!(out.timed_out(), "{choice}: {out:?}");
                    assert_eq!(zombies(), Vec::<u32>::new(), "{choice}: timeout {i}");
                }
            }
        },
    );
}

/// The environment of a helper run of a test of this file: which of its
/// series of rounds it runs, and which part of them (`<series>:<part>`).
const SERIES: &str = "PKIT_RV19_SERIES";

/// Rounds per series: 150, in [`PARTS`] parts of one helper each.
const ROUNDS: usize = 150;

/// Each series' rounds run in this many helpers at once, each its share of
/// the rounds one after another (the rounds wait: a 40 ms cancel or
/// timeout and the run's end each). Every round is still run and checked,
/// each in a process of its own whose zombies are its own.
const PARTS: usize = 3;

/// This helper run's series and its part of the rounds (from [`SERIES`]).
fn series_part() -> Option<(String, std::ops::Range<usize>)> {
    let value = std::env::var(SERIES).ok()?;
    let (name, part) = value.rsplit_once(':').expect("<series>:<part>");
    let part: usize = part.parse().expect("a part number");
    let per = ROUNDS.div_ceil(PARTS);
    Some((name.to_string(), part * per..((part + 1) * per).min(ROUNDS)))
}

/// Runs `test`'s series `names` at once, each in [`PARTS`] helper runs of
/// `test` (this binary run again, the test alone, [`SERIES`] set to the
/// series and part): each a process of its own, whose children and
/// zombies, what a series counts, are its own. Each part runs its rounds
/// one after another. Fails with the output of each part that failed.
fn series_at_once(test: &str, names: &[&str]) {
    let helpers: Vec<_> = names
        .iter()
        .flat_map(|name| (0..PARTS).map(move |part| format!("{name}:{part}")))
        .map(|name| {
            let helper = helper_owner_command(test, SERIES, &name)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("the helper starts");
            (name, helper)
        })
        .collect();
    let mut failed = Vec::new();
    for (name, helper) in helpers {
        let out = helper.wait_with_output().expect("the helper's end");
        if !out.status.success() {
            eprintln!(
                "series {name}: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            failed.push(name);
        }
    }
    assert!(
        failed.is_empty(),
        "{test}: series failed (their output above): {failed:?}"
    );
}

/// A run ended by its cancel token returned `Err(Cancelled)` from the
/// early return in `run_in` (the `Ended::Cancelled` arm), which skipped
/// the merge's `proc.child.reap_if_exited()`: the worker's aside task
/// still held a share of the child (its `wait_keeping` future), so the
/// child was reaped only when that worker let go, after the run returned:
/// right after `block_on` returned, the child was sometimes still a zombie
/// of this process (both mechanisms; before the merge too, as timeouts
/// were). Found by rv19; fixed: that arm reaps too.
///
/// Each mechanism's 150 rounds run in [`PARTS`] helper processes of their
/// own, each its share one after another ([`series_at_once`]), all at once.
#[test]
fn a_cancelled_capture_from_block_on_returns_with_its_child_reaped() {
    const TEST: &str = "a_cancelled_capture_from_block_on_returns_with_its_child_reaped";
    alone(TEST, |_| {
        let choices: Vec<MechanismChoice> = mechanisms()
            .into_iter()
            .filter(|c| *c != MechanismChoice::Portable)
            .collect();
        let Some((name, rounds)) = series_part() else {
            let names: Vec<&str> = choices.iter().map(|c| c.as_str()).collect();
            series_at_once(TEST, &names);
            return;
        };
        let choice = *choices
            .iter()
            .find(|c| c.as_str() == name)
            .expect("a mechanism of this run");
        let rt = multi();
        let mut seen = Vec::new();
        for i in rounds {
            let token = CancelToken::new();
            let later = token.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(40));
                later.cancel();
            });
            let cmd = sh(choice, "sleep 30").cancel_token(&token);
            let err = rt.block_on(cmd.output()).expect_err("cancelled");
            let left = zombies();
            t.join().unwrap();
            assert_eq!(err.kind(), ErrorKind::Cancelled, "{choice}: {err}");
            if !left.is_empty() {
                seen.push((i, left));
            }
        }
        assert!(
            seen.is_empty(),
            "{choice}: cancelled runs that returned with a zombie child of ours: {seen:?}"
        );
    });
}

/// The same under the portable backend: its child is held by its pid
/// alone, and the worker's wait holds a share of the child until it sees
/// the exit: a cancelled run (7 to 20 in 150) or a timed-out one (about 4
/// in 150) returned with its child a zombie, reaped a moment later by that
/// worker's drop. The run's end now reaps it (`PortableChild::reap_if_exited`,
/// its status kept, its number never used again).
///
/// The cancelled and the timed-out series (150 rounds each) run at once,
/// each in [`PARTS`] helper processes of their own, each its share of the
/// rounds one after another ([`series_at_once`]).
#[test]
fn a_cancelled_portable_capture_from_block_on_returns_with_its_child_reaped() {
    const TEST: &str = "a_cancelled_portable_capture_from_block_on_returns_with_its_child_reaped";
    alone(TEST, |_| {
        let Some((series, rounds)) = series_part() else {
            series_at_once(TEST, &["cancelled", "timed out"]);
            return;
        };
        let rt = multi();
        if series == "cancelled" {
            let mut seen = Vec::new();
            for i in rounds {
                let token = CancelToken::new();
                let later = token.clone();
                let t = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(40));
                    later.cancel();
                });
                let cmd = sh(MechanismChoice::Portable, "sleep 30").cancel_token(&token);
                let err = rt.block_on(cmd.output()).expect_err("cancelled");
                let left = zombies();
                t.join().unwrap();
                assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
                if !left.is_empty() {
                    seen.push((i, left));
                }
            }
            assert!(
                seen.is_empty(),
                "portable: cancelled runs that returned with a zombie child of ours: {seen:?}"
            );
            return;
        }
        // Timed out: the same share, the same window?
        assert_eq!(series, "timed out");
        let mut timed = Vec::new();
        for i in rounds {
            let cmd = sh(MechanismChoice::Portable, "sleep 30").timeout(Duration::from_millis(40));
            let out = rt.block_on(cmd.output()).expect("output");
            let left = zombies();
            assert!(out.timed_out(), "{out:?}");
            if !left.is_empty() {
                timed.push((i, left));
            }
        }
        assert!(
            timed.is_empty(),
            "portable: timed-out runs that returned with a zombie child of ours: {timed:?}"
        );
    });
}

/// A run whose `block_on` future is dropped (the caller's own timeout
/// around it): the drop kills the tree, but the aside task keeps a share
/// of the child, so the child is reaped by that worker later, not by the
/// drop. Reported as what it is; the child must at least be reaped soon.
#[test]
fn a_dropped_capture_from_block_on_leaves_no_zombie_for_long() {
    alone(
        "a_dropped_capture_from_block_on_leaves_no_zombie_for_long",
        |check| {
            let rt = multi();
            for choice in mechanisms() {
                rt.block_on(sh(choice, "echo warm").output()).unwrap();
            }
            let before = snapshot();
            // Children from before (the owner-death guard): not the runs'.
            let kept: Vec<u32> = own_children().into_iter().map(|(pid, _)| pid).collect();
            let runs_children = || -> Vec<u32> {
                own_children()
                    .into_iter()
                    .map(|(pid, _)| pid)
                    .filter(|pid| !kept.contains(pid))
                    .collect()
            };
            let mut right_after = 0;
            for choice in mechanisms() {
                for _ in 0..20 {
                    let cmd = sh(choice, "sleep 30");
                    let run = async {
                        tokio::time::timeout(Duration::from_millis(40), cmd.output()).await
                    };
                    assert!(rt.block_on(run).is_err(), "{choice}: not cut short");
                    right_after += usize::from(!zombies().is_empty());
                    // Until the child is gone altogether: right after the
                    // drop it may still be dying (not yet a zombie), so "no
                    // zombie" alone would pass too early.
                    let until = std::time::Instant::now() + Duration::from_secs(10);
                    while !runs_children().is_empty() && std::time::Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    assert_eq!(
                        runs_children(),
                        Vec::<u32>::new(),
                        "{choice}: a child stays"
                    );
                    assert_eq!(zombies(), Vec::<u32>::new(), "{choice}: a zombie stays");
                }
            }
            eprintln!("rv19: dropped runs with a zombie right after the drop: {right_after}");
            drop(rt);
            no_fds_since(check, &before, "dropped captures");
        },
    );
}

/// 1000 captures from `block_on` (and 20 big ones) leave no descriptor
/// behind (the kept registration and pipes are dropped by the worker after
/// the hand-over).
#[test]
fn a_thousand_captures_from_block_on_leave_no_descriptor() {
    alone(
        "a_thousand_captures_from_block_on_leave_no_descriptor",
        |check| {
            let rt = multi();
            let choices = mechanisms();
            // Warm up: the reaper thread, the runtime's own descriptors.
            for choice in &choices {
                rt.block_on(sh(*choice, "echo warm").output()).unwrap();
            }
            let before = snapshot();
            for i in 0..1000 {
                let choice = choices[i % choices.len()];
                let out = rt
                    .block_on(sh(choice, "echo out; echo err >&2").output())
                    .expect("output");
                assert_eq!(out.stdout(), b"out\n", "{choice}: run {i}");
                assert_eq!(out.stderr(), b"err\n", "{choice}: run {i}");
            }
            // Big outputs: a stream handed to a reading thread (`run_keeping`
            // hands back no pipe then).
            for i in 0..20 {
                let choice = choices[i % choices.len()];
                let script = "head -c 3000000 /dev/zero; head -c 1000000 /dev/zero >&2";
                let out = rt.block_on(sh(choice, script).output()).expect("output");
                assert_eq!(out.stdout().len(), 3_000_000, "{choice}: big run {i}");
                assert_eq!(out.stderr().len(), 1_000_000, "{choice}: big run {i}");
            }
            no_fds_since(check, &before, "1000 captures");
            assert_eq!(zombies(), Vec::<u32>::new());
            drop(rt);
        },
    );
}

/// A runtime dropped (or shut down in the background) right after the run
/// came back, while its worker may still be dropping the kept watch and
/// pipes; and one dropped while the aside task is still waiting (a run
/// cut short by a timeout, the task not yet woken by the exit): no
/// descriptor and no zombie is left once the reaper is done.
#[test]
fn runtimes_dropped_right_after_the_hand_over_leave_nothing() {
    alone(
        "runtimes_dropped_right_after_the_hand_over_leave_nothing",
        |check| {
            let choices = mechanisms();
            for choice in &choices {
                let rt = multi();
                rt.block_on(sh(*choice, "echo warm").output()).unwrap();
                drop(rt);
            }
            let before = snapshot();
            for i in 0..120 {
                let choice = choices[i % choices.len()];
                let rt = multi();
                match i % 3 {
                    0 => {
                        let out = rt.block_on(sh(choice, "echo hi").output()).unwrap();
                        assert_eq!(out.stdout(), b"hi\n");
                        drop(rt);
                    }
                    1 => {
                        let out = rt.block_on(sh(choice, "echo hi").output()).unwrap();
                        assert_eq!(out.stdout(), b"hi\n");
                        rt.shutdown_background();
                    }
                    _ => {
                        let cmd = sh(choice, "exec 2>&-; echo x; sleep 30")
                            .timeout(Duration::from_millis(20));
                        let out = rt.block_on(cmd.output()).unwrap();
                        assert!(out.timed_out(), "{choice}: {out:?}");
                        rt.shutdown_timeout(Duration::ZERO);
                    }
                }
            }
            no_fds_since(check, &before, "runtimes dropped after the hand-over");
            let until = std::time::Instant::now() + Duration::from_secs(10);
            while !zombies().is_empty() && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(zombies(), Vec::<u32>::new());
        },
    );
}

/// Cancelled runs, timed-out runs and runs that hit a failing capture
/// limit (their tree killed: `Ended::OutputLimit`) leave no descriptor.
#[test]
fn cut_short_captures_from_block_on_leave_no_descriptor() {
    alone(
        "cut_short_captures_from_block_on_leave_no_descriptor",
        |check| {
            let rt = multi();
            let choices = mechanisms();
            for choice in &choices {
                rt.block_on(sh(*choice, "echo warm").output()).unwrap();
            }
            let before = snapshot();
            for i in 0..90 {
                let choice = choices[i % choices.len()];
                match i % 3 {
                    0 => {
                        let token = CancelToken::new();
                        let later = token.clone();
                        let t = std::thread::spawn(move || {
                            std::thread::sleep(Duration::from_millis(20));
                            later.cancel();
                        });
                        let cmd = sh(choice, "echo x; sleep 30").cancel_token(&token);
                        let err = rt.block_on(cmd.output()).expect_err("cancelled");
                        assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
                        t.join().unwrap();
                    }
                    1 => {
                        let cmd = sh(choice, "echo x; sleep 30").timeout(Duration::from_millis(20));
                        assert!(rt.block_on(cmd.output()).unwrap().timed_out());
                    }
                    _ => {
                        let cmd =
                            sh(choice, "yes; sleep 30").capture_limit(4096, CapturePolicy::Fail);
                        // An error or a killed run; either way it ends.
                        drop(rt.block_on(cmd.output()));
                    }
                }
            }
            no_fds_since(check, &before, "cut-short captures");
            let until = std::time::Instant::now() + Duration::from_secs(10);
            while !zombies().is_empty() && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(zombies(), Vec::<u32>::new());
            drop(rt);
        },
    );
}

/// Under a low `RLIMIT_NOFILE` (0 to 13 descriptors free), each
/// capture from `block_on` fails or succeeds, and none hangs; once the
/// limit is back, nothing is left open and no child is a zombie.
#[test]
fn captures_under_a_low_descriptor_limit_end_and_leave_nothing() {
    alone(
        "captures_under_a_low_descriptor_limit_end_and_leave_nothing",
        |check| {
            use common::descriptors::{fill, highest_fd, set_nofile};
            let rt = multi();
            let choices = mechanisms();
            for choice in &choices {
                rt.block_on(sh(*choice, "echo warm").output()).unwrap();
            }
            let before = snapshot();
            let (mut ok, mut failed) = (0, 0);
            for spare in 0..14 {
                for choice in &choices {
                    // Exactly `spare` descriptors free: the holes below
                    // the highest one filled, then `spare` let go.
                    let old = set_nofile(highest_fd() + 1);
                    let mut held = fill();
                    held.truncate(held.len().saturating_sub(spare as usize));
                    for _ in 0..4 {
                        let cmd = sh(*choice, "echo hi; echo there >&2");
                        let run = async {
                            tokio::time::timeout(Duration::from_secs(60), cmd.output()).await
                        };
                        match rt.block_on(run).expect("a capture hangs") {
                            Ok(out) => {
                                assert_eq!(out.stdout(), b"hi\n", "{choice}: spare {spare}");
                                ok += 1;
                            }
                            Err(_) => failed += 1,
                        }
                    }
                    drop(held);
                    set_nofile(old);
                }
            }
            eprintln!("rv19: under a low limit: {ok} ran, {failed} failed");
            no_fds_since(check, &before, "captures under a low limit");
            let until = std::time::Instant::now() + Duration::from_secs(10);
            while !zombies().is_empty() && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(zombies(), Vec::<u32>::new());
            drop(rt);
        },
    );
}

/// The documented side effect: a program that closes stdout and stderr
/// early and keeps running keeps both read ends open until it exits. What
/// else could wait on them: the capture (taken at the end of file), the
/// exit (handed over), an inactivity timeout (the program is silent), a
/// descendant that still writes to a duplicate of stdout. All as before.
#[test]
fn a_program_that_closes_its_outputs_early_is_captured_as_before() {
    alone(
        "a_program_that_closes_its_outputs_early_is_captured_as_before",
        |_| {
            let rt = multi();
            for choice in mechanisms() {
                let out = rt
                    .block_on(sh(choice, "echo a; echo b >&2; exec >&- 2>&-; sleep 0.5").output())
                    .unwrap();
                assert_eq!((out.stdout(), out.stderr()), (&b"a\n"[..], &b"b\n"[..]));
                assert!(out.success(), "{choice}: {out:?}");
                // Silent after closing: the inactivity bound still fires.
                let cmd = sh(choice, "echo a; exec >&- 2>&-; sleep 30")
                    .inactivity_timeout(Duration::from_millis(300));
                let out = rt.block_on(cmd.output()).unwrap();
                assert!(out.timed_out(), "{choice}: {out:?}");
                assert_eq!(out.stdout(), b"a\n");
                // The parent closes its outputs; a child keeps writing to
                // its own copy for a while, then both exit.
                let script = "(sleep 0.3; echo late) & exec >&- 2>&-; wait";
                let out = rt.block_on(sh(choice, script).output()).unwrap();
                assert_eq!(out.stdout(), b"late\n", "{choice}: {out:?}");
                assert_eq!(zombies(), Vec::<u32>::new(), "{choice}");
            }
        },
    );
}

/// Another thread of the application reaps every child it can
/// (`waitpid(-1, WNOHANG)` in a loop) while captures run from `block_on`:
/// the worker's `WNOWAIT` wait and `run_in`'s reap then meet `ECHILD`. A
/// pidfd-held child's status still comes back (from the pidfd, Linux
/// 6.15), and no run hangs or panics; the portable backend says the
/// status is lost (its documented error).
#[test]
fn captures_beside_a_waitpid_any_thread_end_with_their_status() {
    alone(
        "captures_beside_a_waitpid_any_thread_end_with_their_status",
        |_| {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let reaper = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut took = 0u32;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let mut status = 0;
                        // SAFETY: waitpid with a valid status pointer.
                        if unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {
                            took += 1;
                        }
                        std::thread::sleep(Duration::from_micros(100));
                    }
                    took
                })
            };
            let rt = multi();
            let mut lost = 0;
            for choice in mechanisms() {
                for i in 0..100 {
                    let cmd = sh(choice, "echo hi; exit 3");
                    let run =
                        async { tokio::time::timeout(Duration::from_secs(60), cmd.output()).await };
                    match rt.block_on(run).expect("a capture hangs") {
                        Ok(out) => {
                            assert_eq!(out.code(), Some(3), "{choice}: run {i}: {out:?}");
                            assert_eq!(out.stdout(), b"hi\n", "{choice}: run {i}");
                        }
                        Err(e) if choice == MechanismChoice::Portable => {
                            assert!(e.to_string().contains("reaped"), "{e}");
                            lost += 1;
                        }
                        Err(e) => panic!("{choice}: run {i}: {e}"),
                    }
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let took = reaper.join().unwrap();
            eprintln!("rv19: the other thread reaped {took}; portable runs that lost it: {lost}");
            drop(rt);
        },
    );
}

/// Our descriptors whose target is `target` (`pipe:[N]`).
fn ours_to(target: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_str() == Some(target)))
        .count()
}

/// A started process (both streams piped: one reading task for the pair,
/// never claimed) that closes its stdout early and keeps stderr open:
/// stdout's read end is closed at its end of file, not held (and
/// registered) until stderr ends too, here at the exit seconds later. Only
/// a pair claimed by a verb's wait (`aside`) hands its read ends back open
/// (rv19; fixed by perf22: an unclaimed half closes its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_process_stdout_read_end_closes_at_its_own_end_of_file() {
    let suite = begin("a_started_process_stdout_read_end_closes_at_its_own_end_of_file").await;
    for choice in mechanisms() {
        let group = group(choice);
        // Long after its close it still runs (the group's drop ends it):
        // on a loaded machine the shell can take seconds to get there.
        let cmd = pkit::Command::new("sh").args(["-c", "sleep 0.5; exec >&-; sleep 300", "sh"]);
        let proc = group.start(&cmd).expect("start");
        let link = std::fs::read_link(format!("/proc/{}/fd/1", proc.pid())).expect("its fd 1");
        let target = link.to_str().unwrap().to_owned();
        assert!(target.starts_with("pipe:"), "{choice}: stdout is {target}");
        assert_eq!(ours_to(&target), 1, "{choice}: our read end of {target}");
        // Closed after its close (at 0.5 s), while it still runs (polled
        // generously: a loaded machine can hold up the shell and the
        // reader for seconds).
        let until = std::time::Instant::now() + DEADLINE * 3;
        while ours_to(&target) > 0 && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = ours_to(&target);
        assert!(!proc.has_exited(), "{choice}: exited already");
        drop(proc);
        drop(group);
        assert_eq!(left, 0, "{choice}: stdout's read end {target} still open");
    }
    suite.end().await;
}

/// The (merged) line stream of a started process that closes both its
/// outputs early and keeps running ends at their end of file, not at the
/// exit (the pair's task keeps the read ends open, but sends the end
/// first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_stream_ends_at_the_outputs_end_of_file_not_at_the_exit() {
    let suite = begin("a_line_stream_ends_at_the_outputs_end_of_file_not_at_the_exit").await;
    for choice in mechanisms() {
        let group = group(choice);
        let cmd = pkit::Command::new("sh")
            .args(["-c", "echo one; exec >&- 2>&-; sleep 30", "sh"])
            .stream_lines();
        let mut proc = group.start(&cmd).expect("start");
        let mut lines = proc.lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        assert!(first.expect("first line").is_some(), "{choice}");
        let end = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        assert!(
            end.expect("the stream's end, long before the exit")
                .is_none(),
            "{choice}"
        );
        assert!(!proc.has_exited(), "{choice}");
        drop(lines);
        drop(proc);
        drop(group);
    }
    suite.end().await;
}

/// With SIGCHLD ignored (the kernel reaps every child at its exit),
/// captures from `block_on` still come back with their exit code: the
/// worker's `WNOWAIT` wait and `run_in`'s reap both meet `ECHILD` and read
/// the pidfd (Linux 6.15). Not the portable backend (documented: it needs
/// SIGCHLD).
#[test]
fn captures_from_block_on_with_sigchld_ignored_keep_their_code() {
    alone(
        "captures_from_block_on_with_sigchld_ignored_keep_their_code",
        |_| {
            let choices: Vec<_> = mechanisms()
                .into_iter()
                .filter(|c| *c != MechanismChoice::Portable)
                .collect();
            if choices.is_empty() {
                return;
            }
            let rt = multi();
            // SAFETY: setting a signal's disposition to SIG_IGN, restored below.
            let old = unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
            let mut failures = Vec::new();
            for choice in &choices {
                for i in 0..50 {
                    match rt.block_on(sh(*choice, "echo hi; exit 4").output()) {
                        Ok(out) if out.code() == Some(4) && out.stdout() == b"hi\n" => {}
                        other => failures.push(format!("{choice}: run {i}: {other:?}")),
                    }
                }
            }
            // SAFETY: restoring the disposition read above.
            unsafe { libc::signal(libc::SIGCHLD, old) };
            drop(rt);
            assert!(failures.is_empty(), "{failures:#?}");
        },
    );
}
