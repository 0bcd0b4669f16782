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
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_after_the_grace_says_what_the_grace_did() {
    let suite = begin("a_wait_after_the_grace_says_what_the_grace_did").await;
    let mut wrong = 0;
    let rounds = 2;
    for choice in mechanisms() {
        for _ in 0..rounds {
            let file = TempPath::new("after-grace");
            let script =
                "trap 'sleep 0.5; exit 0' TERM; echo $$ > \"$1\"; while :; do sleep 0.05; done";
            let cmd = graced_sh(
                script,
                &file,
                Duration::from_millis(200),
                Duration::from_secs(1),
            );
            let path = file.path().to_path_buf();
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
            tokio::time::sleep(Duration::from_millis(2000)).await;
            let out = tokio::time::timeout(LONG, p.wait())
                .await
                .expect("hang")
                .expect("wait");
            eprintln!(
                "{choice}: timed_out {} killed_after_grace {}",
                out.timed_out(),
                out.killed_after_grace()
            );
            if out.killed_after_grace() {
                wrong += 1;
            }
            drop(p);
            g.close().await.expect("close");
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
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_wait_after_a_dropped_one_waits_for_the_grace() {
    let suite = begin("a_second_wait_after_a_dropped_one_waits_for_the_grace").await;
    let mut bad = Vec::new();
    for choice in mechanisms() {
        let file = TempPath::new("second-wait");
        // The descendant is born ignoring SIGTERM: a trap set inside it
        // after the fork could come after the timeout's SIGTERM under load.
        let script = "trap '' TERM; sleep 300 & echo $! > \"$1\"; trap 'exit 0' TERM; wait";
        let cmd = graced_sh(
            script,
            &file,
            Duration::from_millis(300),
            Duration::from_secs(3),
        );
        let g = group(choice);
        let mut p = g.start(&cmd).expect("start");
        let first = tokio::time::timeout(Duration::from_millis(1200), p.wait()).await;
        assert!(
            first.is_err(),
            "{choice}: the first wait should still be in the grace"
        );
        let t = std::time::Instant::now();
        let out = p.wait().await.expect("wait");
        let sleeper: i32 = std::fs::read_to_string(file.path())
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The SIGKILL after the grace (3.3 s after the start; the first
        // wait gave up at 1.2 s) ended it: the second wait waited for it.
        let waited = t.elapsed();
        eprintln!(
            "{choice}: second wait after {waited:?}: timed_out {} killed_after_grace {}",
            out.timed_out(),
            out.killed_after_grace()
        );
        if waited < Duration::from_millis(1500) || !out.killed_after_grace() || !out.timed_out() {
            bad.push(choice.to_string());
        }
        assert_gone(&[sleeper as u32], "the descendant that ignored SIGTERM").await;
        drop(p);
        g.close().await.expect("close");
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
        let file = TempPath::new("resumed-orphan");
        // The descendant is born ignoring SIGTERM (no moment when it could
        // still die of it); the root traps it after the fork.
        let script = "trap '' TERM; sleep 300 & echo $! > \"$1\"; trap 'exit 0' TERM; wait";
        let cmd = graced_sh(
            script,
            &file,
            Duration::from_millis(1000),
            Duration::from_secs(3),
        );
        let path = file.path().to_path_buf();
        let (g, mut p, sleeper, began) = on_short_runtime(move || {
            Box::pin(async move {
                let began = std::time::Instant::now();
                let g = group(choice);
                let p = g.start(&cmd).expect("start");
                let until = std::time::Instant::now() + DEADLINE;
                while !written(&path) && std::time::Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let sleeper: u32 = std::fs::read_to_string(&path)
                    .expect("the descendant's pid")
                    .trim()
                    .parse()
                    .expect("a pid");
                // The root exits at the timeout's SIGTERM (1 s); the grace
                // runs on (3 s) when this runtime goes.
                while !p.has_exited() && std::time::Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert!(p.has_exited(), "{choice}: the root should exit at SIGTERM");
                (g, p, sleeper, began)
            })
        });
        let _reap = KillOnDrop(vec![sleeper]);
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
        // The SIGKILL comes at the grace's end (4 s after the start).
        if !gone || !out.timed_out() || !out.killed_after_grace() || after < Duration::from_secs(4)
        {
            bad.push(choice.to_string());
        }
        drop(p);
        g.close().await.expect("close");
    }
    suite.end().await;
    assert!(bad.is_empty(), "the descendant outlived the grace: {bad:?}");
}
