//! A process whose bounds' task goes with the runtime it was started on
//! at a bad moment: after the wait on another runtime began, during the
//! grace with the wait coming after the grace, a wait dropped during the
//! grace and called again. Every mechanism. (rv15's reproductions: before,
//! the wait hung past the timeout, `killed_after_grace` was said of a
//! subtree that ended inside the grace, and a second wait returned at once
//! while the grace still ran.)
mod common;

use std::time::Duration;

use common::*;
use pkit::Command;

const LONG: Duration = Duration::from_secs(20);

fn written(p: &std::path::Path) -> bool {
    std::fs::read_to_string(p).is_ok_and(|s| s.ends_with('\n'))
}

/// The subtree ends inside the grace (the shell's trap takes 0.5 s of a
/// 1 s grace), the start's runtime goes during the grace, the wait on
/// another runtime comes after the grace's end: killed_after_grace must
/// be false.
///
/// Under heavy load the trap itself (a fork and exec of `sleep`) may
/// outlast the grace, and the shell may get the SIGTERM before it has set
/// its trap: the script writes its pid once the trap is set, and a line
/// `ended` when the trap is through. A round with no pid was not ready at
/// the timeout (tried again, with a longer timeout); a round with a pid but
/// no `ended` had its trap cut short by the SIGKILL, which
/// killed_after_grace must then say (tried again, with a longer grace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_after_the_grace_says_what_the_grace_did() {
    let suite = begin("a_wait_after_the_grace_says_what_the_grace_did").await;
    let mut wrong = 0;
    let rounds = 2;
    for choice in mechanisms() {
        let mut timeout = Duration::from_millis(200);
        let mut grace = Duration::from_secs(1);
        let mut done = 0;
        while done < rounds {
            assert!(
                grace <= Duration::from_secs(16) && timeout <= Duration::from_secs(16),
                "{choice}: never a round whose trap ended inside the grace"
            );
            let file = TempPath::new("after-grace");
            let script = "trap 'sleep 0.5; echo ended >> \"$1\"; exit 0' TERM; \
                          echo $$ > \"$1\"; while :; do sleep 0.05; done";
            let cmd = Command::new("sh")
                .args(["-c", script, "sh", file.as_str()])
                .stdout(pkit::Stdio::Null)
                .stderr(pkit::Stdio::Null)
                .timeout(timeout)
                .timeout_signal(pkit::Signal::Term)
                .grace(grace);
            let path = file.path().to_path_buf();
            let began = std::time::Instant::now();
            let (g, mut p) = on_short_runtime(move || {
                Box::pin(async move {
                    let g = group(choice);
                    let p = g.start(&cmd).expect("start");
                    let until = std::time::Instant::now() + DEADLINE;
                    while !written(&path) && std::time::Instant::now() < until {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(350)).await;
                    (g, p)
                })
            });
            // Past the grace's end (the timeout, then the grace, from the
            // start at the earliest), and a second more.
            let after_grace = began + timeout + grace + Duration::from_secs(1);
            tokio::time::sleep_until(after_grace.into()).await;
            let out = tokio::time::timeout(LONG, p.wait())
                .await
                .expect("hang")
                .expect("wait");
            let text = std::fs::read_to_string(file.path()).unwrap_or_default();
            let (ready, ended) = (
                text.starts_with(|c: char| c.is_ascii_digit()),
                text.contains("ended"),
            );
            eprintln!(
                "{choice}: timeout {timeout:?} grace {grace:?}: ready {ready} trap ended {ended}: \
                 timed_out {} killed_after_grace {}",
                out.timed_out(),
                out.killed_after_grace()
            );
            drop(p);
            g.close().await.expect("close");
            if !ready {
                timeout *= 2;
                continue;
            }
            assert!(out.timed_out(), "{choice}: {out:?}");
            if !ended {
                assert!(
                    out.killed_after_grace(),
                    "{choice}: the trap was cut short, yet no SIGKILL said: {out:?}"
                );
                grace *= 2;
                continue;
            }
            if out.killed_after_grace() {
                wrong += 1;
            }
            done += 1;
        }
    }
    suite.end().await;
    assert_eq!(wrong, 0, "killed_after_grace said wrongly {wrong} times");
}

/// The wait on another runtime begins while the start's runtime is still
/// alive (its watch task not finished); the start's runtime shuts down
/// 100 ms later, before the 400 ms timeout. The wait must still see the
/// timeout end the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_starts_runtime_goes_after_the_wait_began() {
    let suite = begin("the_starts_runtime_goes_after_the_wait_began").await;
    let mut hung = Vec::new();
    for choice in mechanisms() {
        for any in [false, true] {
            let (tx, rx) = std::sync::mpsc::channel();
            let th = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let g = group(choice);
                    let cmd = Command::new("sleep")
                        .arg("300")
                        .stdout(pkit::Stdio::Null)
                        .stderr(pkit::Stdio::Null)
                        .timeout(Duration::from_millis(400));
                    let p = g.start(&cmd).expect("start");
                    tx.send((g, p)).unwrap();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                });
                drop(rt);
            });
            let (g, p) = rx.recv().unwrap();
            let mut procs = vec![p];
            let pid = procs[0].pid();
            let r = if any {
                tokio::time::timeout(Duration::from_secs(8), async {
                    pkit::wait_any(&mut procs)
                        .await
                        .map(|(_, o)| o)
                        .and_then(|o| o)
                })
                .await
            } else {
                tokio::time::timeout(Duration::from_secs(8), procs[0].wait()).await
            };
            th.join().unwrap();
            match r {
                Ok(out) => eprintln!("{choice} any={any}: {:?}", out.map(|o| o.timed_out())),
                Err(_) => {
                    eprintln!("{choice} any={any}: wait hung 8 s past a 400 ms timeout");
                    hung.push(format!("{choice} any={any}"));
                }
            }
            let _ = procs[0].kill_tree();
            drop(procs);
            g.close().await.expect("close");
            assert_gone(&[pid], &choice.to_string()).await;
        }
    }
    suite.end().await;
    assert!(hung.is_empty(), "hung: {hung:?}");
}

/// A wait dropped while the grace is under way (the root exited at the
/// SIGTERM, a descendant ignores it), then called again: it returns at the
/// grace's end, saying SIGKILL was needed (before: at once, and saying it
/// was not).
///
/// The descendant writes its pid once it ignores SIGTERM. A round without
/// it was not ready when the timeout fired (under heavy load the shell may
/// not have started its descendant within 300 ms: the whole tree then ends
/// at the SIGTERM) and is tried again with a longer timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_wait_after_a_dropped_one_waits_for_the_grace() {
    let suite = begin("a_second_wait_after_a_dropped_one_waits_for_the_grace").await;
    let mut bad = Vec::new();
    let grace = Duration::from_secs(3);
    for choice in mechanisms() {
        let mut timeout = Duration::from_millis(300);
        loop {
            assert!(
                timeout <= Duration::from_secs(16),
                "{choice}: the descendant never ignored SIGTERM before the timeout"
            );
            let file = TempPath::new("second-wait");
            let script = "trap 'exit 0' TERM; \
                          (trap '' TERM; exec sh -c 'echo $$ > \"$1\"; exec sleep 300' sh \"$1\") & wait";
            let cmd = Command::new("sh")
                .args(["-c", script, "sh", file.as_str()])
                .stdout(pkit::Stdio::Null)
                .stderr(pkit::Stdio::Null)
                .timeout(timeout)
                .timeout_signal(pkit::Signal::Term)
                .grace(grace);
            let g = group(choice);
            let began = std::time::Instant::now();
            let mut p = g.start(&cmd).expect("start");
            // Well inside the grace.
            let first = tokio::time::timeout(timeout + Duration::from_millis(900), p.wait()).await;
            let out = p.wait().await.expect("wait");
            // The SIGKILL comes at the grace's end: the timeout, then the
            // grace, after the start at the earliest.
            let since_start = began.elapsed();
            let sleeper = std::fs::read_to_string(file.path())
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            eprintln!(
                "{choice}: timeout {timeout:?}: descendant {sleeper:?}: first wait ended {}; \
                 second wait returned {since_start:?} after the start: timed_out {} \
                 killed_after_grace {}",
                first.is_ok(),
                out.timed_out(),
                out.killed_after_grace()
            );
            drop(p);
            let Some(sleeper) = sleeper else {
                g.close().await.expect("close");
                timeout *= 2;
                continue;
            };
            if first.is_ok()
                || since_start < timeout + grace
                || !out.killed_after_grace()
                || !out.timed_out()
            {
                bad.push(choice.to_string());
            }
            assert_gone(&[sleeper], "the descendant that ignored SIGTERM").await;
            g.close().await.expect("close");
            break;
        }
    }
    suite.end().await;
    assert!(bad.is_empty(), "{bad:?}");
}

/// The start's runtime goes during the grace, after the root exited at
/// the timeout's SIGTERM and left a descendant that ignores it (re-parented
/// now: no parent link leads to it from the root). The grace resumed on
/// the wait's runtime must still end that descendant with SIGKILL at the
/// grace's end, and say so. (Before, under a process group: the resumed
/// grace listed the subtree afresh, found the root alone, and the
/// descendant ran on until the group closed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_grace_ends_the_descendants_the_root_left() {
    let suite = begin("a_resumed_grace_ends_the_descendants_the_root_left").await;
    let mut bad = Vec::new();
    for choice in mechanisms() {
        // A round whose root had not set its exit trap when the timeout's
        // SIGTERM came (under heavy load the shell can take longer than
        // the timeout to get there: it then ignores the SIGTERM and the
        // whole tree ends at the grace's SIGKILL, with no root exiting at
        // the SIGTERM to test) is tried again with a longer timeout. The
        // script writes the descendant's pid once that trap is set: seen
        // before the timeout ran out, it was set in time.
        let mut timeout = Duration::from_millis(1000);
        let grace = Duration::from_secs(3);
        let (g, mut p, sleeper, began) = loop {
            assert!(
                timeout <= Duration::from_secs(16),
                "{choice}: the root never set its trap before the timeout"
            );
            let file = TempPath::new("resumed-orphan");
            // The descendant is born ignoring SIGTERM (no moment when it
            // could still die of it); the root traps it after the fork.
            let script =
                "trap '' TERM; sleep 300 & s=$!; trap 'exit 0' TERM; echo $s > \"$1\"; wait";
            let cmd = graced_sh(script, &file, timeout, grace);
            let path = file.path().to_path_buf();
            let round = on_short_runtime(move || {
                Box::pin(async move {
                    let began = std::time::Instant::now();
                    let g = group(choice);
                    let mut p = g.start(&cmd).expect("start");
                    let until = std::time::Instant::now() + DEADLINE * 3;
                    while !written(&path) && std::time::Instant::now() < until {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    let in_time = began.elapsed() < timeout;
                    let sleeper: Option<u32> = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    let Some(sleeper) = sleeper.filter(|_| in_time) else {
                        eprintln!("{choice}: timeout {timeout:?}: not ready in time");
                        let _ = p.kill_tree();
                        let _ = tokio::time::timeout(LONG, p.wait()).await;
                        if let Some(s) = sleeper {
                            kill_pid(s);
                        }
                        drop(p);
                        g.close().await.expect("close");
                        return None;
                    };
                    // The root exits at the timeout's SIGTERM; the grace
                    // runs on (3 s) when this runtime goes.
                    let until = std::time::Instant::now() + DEADLINE;
                    while !p.has_exited() && std::time::Instant::now() < until {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    assert!(p.has_exited(), "{choice}: the root should exit at SIGTERM");
                    Some((g, p, sleeper, began))
                })
            });
            match round {
                Some(round) => break round,
                None => timeout *= 2,
            }
        };
        let _reap = KillOnDrop::new(vec![sleeper]);
        assert_alive(
            &[sleeper],
            "the descendant that ignores SIGTERM, in the grace",
        );
        let out = tokio::time::timeout(LONG, p.wait())
            .await
            .expect("hang")
            .expect("wait");
        let after = began.elapsed();
        let gone = wait_gone(&[sleeper], DEADLINE).await.is_ok();
        eprintln!(
            "{choice}: wait after {after:?}: timed_out {} killed_after_grace {}, descendant gone {gone}",
            out.timed_out(),
            out.killed_after_grace()
        );
        // The SIGKILL comes at the grace's end (the timeout and the grace
        // after the start).
        if !gone || !out.timed_out() || !out.killed_after_grace() || after < timeout + grace {
            bad.push(choice.to_string());
        }
        drop(p);
        g.close().await.expect("close");
    }
    suite.end().await;
    assert!(bad.is_empty(), "the descendant outlived the grace: {bad:?}");
}
