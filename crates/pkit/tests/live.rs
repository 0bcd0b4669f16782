//! A live process's habits: try_wait, is_running, per-process signal and
//! shutdown of its subtree (the rest of the group runs on), kill-on-drop
//! for one handle, wait_any / wait_all; async and blocking.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, Outcome, Signal};

const T: Duration = Duration::from_secs(30);

/// `sh` that starts a `sleep` grandchild, prints its pid, and waits.
fn with_grandchild(extra: &str) -> Command {
    Command::new("sh")
        .args(["-c", &format!("{extra} sleep 300 & echo $!; wait")])
        .stream_lines()
}

async fn grandchild_of(p: &mut pkit::RunningProcess) -> u32 {
    let line = p
        .wait_for_line(|l| l.text.parse::<u32>().is_ok(), T)
        .await
        .expect("pid line");
    line.text.parse().expect("pid")
}

#[tokio::test]
async fn try_wait_and_is_running_follow_the_process() {
    let suite = begin("try_wait_and_is_running_follow_the_process").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "read x; exit 6"])
                    .stdin_piped(),
            )
            .expect("start");
        assert_eq!(p.try_wait().expect("try_wait"), None, "{choice}");
        assert!(p.is_running());
        drop(p.take_stdin());
        let deadline = std::time::Instant::now() + T;
        let outcome = loop {
            if let Some(o) = p.try_wait().expect("try_wait") {
                break o;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{choice}: never exited"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(outcome, Outcome::Exited(6), "{choice}");
        assert!(!p.is_running());
        assert_eq!(p.wait().await.expect("wait").code(), Some(6));
        assert_eq!(p.try_wait().expect("after wait"), Some(Outcome::Exited(6)));
    }
    suite.end().await;
}

/// `try_wait` is the process's own exit, before a wait and after it
/// alike: a process its command's timeout ended shows the signal that
/// ended it, while `wait`'s `Output` says `TimedOut` (it said `TimedOut`
/// after the wait, the signal before).
#[tokio::test]
async fn try_wait_shows_a_timeouts_signal_before_and_after_the_wait() {
    let suite = begin("try_wait_shows_a_timeouts_signal_before_and_after_the_wait").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(
                &Command::new("sleep")
                    .arg("300")
                    .timeout(Duration::from_millis(100))
                    .timeout_signal(Signal::Term),
            )
            .expect("start");
        let deadline = std::time::Instant::now() + T;
        let before = loop {
            if let Some(o) = p.try_wait().expect("try_wait") {
                break o;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{choice}: never ended"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(before, Outcome::Signalled(libc::SIGTERM), "{choice}");
        assert_eq!(p.wait().await.expect("wait").outcome(), Outcome::TimedOut);
        assert_eq!(
            p.try_wait().expect("after the wait"),
            Some(Outcome::Signalled(libc::SIGTERM)),
            "{choice}: after the wait"
        );
    }
    suite.end().await;
}

#[tokio::test]
async fn signal_and_shutdown_reach_the_subtree_only() {
    let suite = begin("signal_and_shutdown_reach_the_subtree_only").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut bystander = group.start(&with_grandchild("")).expect("start");
        let other = grandchild_of(&mut bystander).await;

        // A signal reaches the process and its grandchild.
        let mut p = group.start(&with_grandchild("")).expect("start");
        let gc = grandchild_of(&mut p).await;
        p.signal(Signal::Term).expect("signal");
        assert_gone(&[p.pid(), gc], "after signal(TERM)").await;
        assert_eq!(
            p.wait().await.expect("wait").outcome(),
            Outcome::Signalled(15)
        );

        // shutdown: TERM ignored by the shell and its sleep, so SIGKILL
        // after the grace.
        let mut p = group
            .start(&with_grandchild("trap '' TERM;"))
            .expect("start");
        let gc = grandchild_of(&mut p).await;
        let killed = p
            .shutdown(Duration::from_millis(300))
            .await
            .expect("shutdown");
        assert!(killed, "{choice}: TERM was ignored, SIGKILL needed");
        assert_gone(&[p.pid(), gc], "after shutdown").await;
        // TERM honoured: no SIGKILL needed.
        let mut p = group.start(&with_grandchild("")).expect("start");
        let gc = grandchild_of(&mut p).await;
        let killed = p.shutdown(T).await.expect("shutdown");
        assert!(!killed, "{choice}: exited on TERM");
        assert_gone(&[p.pid(), gc], "after a polite shutdown").await;

        // The bystander runs on.
        assert_alive(&[bystander.pid(), other], "the rest of the group");
        drop(group);
        assert_gone(&[bystander.pid(), other], "group dropped").await;
    }
    suite.end().await;
}

#[tokio::test]
async fn kill_on_drop_ends_one_handles_subtree() {
    let suite = begin("kill_on_drop_ends_one_handles_subtree").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut kept = group.start(&with_grandchild("")).expect("start");
        let kept_gc = grandchild_of(&mut kept).await;
        let mut p = group.start(&with_grandchild("")).expect("start");
        let gc = grandchild_of(&mut p).await;
        p.set_kill_on_drop(true);
        let pid = p.pid();
        drop(p);
        assert_gone(&[pid, gc], "handle dropped with kill_on_drop").await;
        // Without it, a dropped handle's process lives on with its group.
        let kept_pid = kept.pid();
        drop(kept);
        assert_alive(&[kept_pid, kept_gc], "dropped without kill_on_drop");
        drop(group);
        assert_gone(&[kept_pid, kept_gc], "group dropped").await;
    }
    suite.end().await;
}

#[tokio::test]
async fn wait_any_and_wait_all() {
    let suite = begin("wait_any_and_wait_all").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut procs: Vec<_> = ["sleep 300", "read x; exit 3", "sleep 300"]
            .iter()
            .map(|s| {
                group
                    .start(&Command::new("sh").args(["-c", s]).stdin_piped())
                    .expect("start")
            })
            .collect();
        drop(procs[1].take_stdin());
        let (i, out) = pkit::wait_any(&mut procs).await.expect("wait_any");
        assert_eq!(i, 1, "{choice}");
        assert_eq!(out.expect("output").code(), Some(3));
        assert!(procs[0].is_running() && procs[2].is_running());
        procs[0].kill().expect("kill");
        procs[2].kill().expect("kill");
        let all = pkit::wait_all(&mut procs).await;
        let outcomes: Vec<Outcome> = all.into_iter().map(|r| r.expect("ok").outcome()).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Signalled(9),
                Outcome::Exited(3),
                Outcome::Signalled(9)
            ],
            "{choice}"
        );
        assert!(pkit::wait_any(&mut []).await.is_err());
    }
    suite.end().await;
}

#[test]
fn the_same_habits_blocking() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let suite = rt.block_on(begin("the_same_habits_blocking"));
    for choice in mechanisms() {
        let group =
            pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice)).expect("group");
        let mut procs: Vec<_> = ["sleep 300", "exit 2"]
            .iter()
            .map(|s| {
                group
                    .start(&Command::new("sh").args(["-c", s]))
                    .expect("start")
            })
            .collect();
        let (i, out) = pkit::blocking::wait_any(&mut procs).expect("wait_any");
        assert_eq!((i, out.expect("ok").code()), (1, Some(2)), "{choice}");
        assert_eq!(
            procs[1].try_wait().expect("try_wait"),
            Some(Outcome::Exited(2))
        );
        assert!(procs[0].is_running());
        assert!(!procs[0].shutdown(T).expect("shutdown"));
        let outs = pkit::blocking::wait_all(&mut procs);
        assert_eq!(
            outs[0].as_ref().expect("ok").outcome(),
            Outcome::Signalled(15)
        );
        let p = group
            .start(&Command::new("sh").args(["-c", "sleep 300"]))
            .expect("start");
        p.signal(Signal::Kill).expect("signal");
        let mut p = p;
        assert_eq!(p.wait().expect("wait").outcome(), Outcome::Signalled(9));
        let mut p = group
            .start(&Command::new("sleep").arg("300"))
            .expect("start");
        p.set_kill_on_drop(true);
        let pid = p.pid();
        drop(p);
        rt.block_on(assert_gone(&[pid], "blocking kill_on_drop"));
    }
    rt.block_on(suite.end());
}

#[tokio::test]
async fn split_lines_keeps_each_streams_order() {
    let suite = begin("split_lines_keeps_each_streams_order").await;
    let script = "i=0; while [ $i -lt 300 ]; do echo o$i; echo e$i >&2; i=$((i+1)); done";
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(&Command::new("sh").args(["-c", script]).stream_lines())
            .expect("start");
        let (mut out, mut err) = p.split_lines();
        let read_out = async {
            let mut v = Vec::new();
            while let Some(l) = out.next_line().await {
                v.push(l.text);
            }
            v
        };
        let read_err = async {
            let mut v = Vec::new();
            while let Some(l) = err.next_line().await {
                v.push(l.text);
            }
            v
        };
        let (o, e) = tokio::join!(read_out, read_err);
        let want = |c: char| (0..300).map(|i| format!("{c}{i}")).collect::<Vec<_>>();
        assert_eq!(o, want('o'), "{choice}");
        assert_eq!(e, want('e'), "{choice}");
        assert_eq!(p.wait().await.expect("wait").code(), Some(0));

        // A dropped side is discarded: reading only stdout never stalls,
        // even past the streams' buffer.
        let big = "i=0; while [ $i -lt 3000 ]; do echo o$i; echo e$i >&2; i=$((i+1)); done";
        let mut p = group
            .start(&Command::new("sh").args(["-c", big]).stream_lines())
            .expect("start");
        let (mut out, err) = p.split_lines();
        drop(err);
        let mut n = 0;
        while let Some(l) = tokio::time::timeout(T, out.next_line())
            .await
            .expect("not stalled")
        {
            assert_eq!(l.text, format!("o{n}"));
            n += 1;
        }
        assert_eq!(n, 3000, "{choice}");
        assert_eq!(p.wait().await.expect("wait").code(), Some(0));
    }
    suite.end().await;
}

#[test]
fn split_lines_blocking_from_two_threads() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let suite = rt.block_on(begin("split_lines_blocking_from_two_threads"));
    for choice in mechanisms() {
        let group =
            pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice)).expect("group");
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "for i in 1 2 3; do echo o$i; echo e$i >&2; done"])
                    .stream_lines(),
            )
            .expect("start");
        let (out, err) = p.split_lines();
        let e = std::thread::spawn(move || err.map(|l| l.text).collect::<Vec<_>>());
        let o: Vec<String> = out.map(|l| l.text).collect();
        assert_eq!(o, ["o1", "o2", "o3"], "{choice}");
        assert_eq!(e.join().expect("thread"), ["e1", "e2", "e3"], "{choice}");
        assert_eq!(p.wait().expect("wait").code(), Some(0));
    }
    rt.block_on(suite.end());
}

#[tokio::test]
async fn a_shutdown_grace_too_long_for_the_clock_waits_without_bound() {
    let suite = begin("a_shutdown_grace_too_long_for_the_clock_waits_without_bound").await;
    for choice in mechanisms() {
        let group = group(choice);
        // As Group::shutdown: Duration::MAX is "no bound", not a panic
        // adding it to the clock. TERM honoured: no SIGKILL needed.
        let mut p = group.start(&with_grandchild("")).expect("start");
        let gc = grandchild_of(&mut p).await;
        let killed = tokio::time::timeout(T, p.shutdown(Duration::MAX))
            .await
            .expect("TERM ends it")
            .expect("shutdown");
        assert!(!killed, "{choice}: exited on TERM");
        assert_gone(&[p.pid(), gc], "after shutdown(Duration::MAX)").await;
        // The same through a pipeline's handle.
        let mut chain = pkit::Pipe::new([Command::new("sleep").arg("300"), Command::new("cat")])
            .mechanism(choice)
            .start()
            .expect("start");
        let pids = chain.pids();
        let killed = tokio::time::timeout(T, chain.shutdown(Duration::MAX))
            .await
            .expect("TERM ends it")
            .expect("shutdown");
        assert!(!killed, "{choice}: the chain exited on TERM");
        assert_gone(&pids, "after the chain's shutdown(Duration::MAX)").await;
        let _ = chain.wait().await;
    }
    suite.end().await;
}

/// A shutdown after the program exited on its own, leaving a `sleep`
/// running: under cgroup v2 it still ends the `sleep` (the process's own
/// cgroup holds it); under a process group, where the subtree is found
/// through living parents, it does not (as `RunningProcess::shutdown`'s
/// docs say), and the group's shutdown does.
#[tokio::test]
async fn a_shutdown_after_the_exit_reaches_what_it_left_under_cgroup_only() {
    let suite = begin("a_shutdown_after_the_exit_reaches_what_it_left_under_cgroup_only").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "sleep 300 >/dev/null 2>&1 & echo $!; exit 0"])
                    .stream_lines(),
            )
            .expect("start");
        let left = grandchild_of(&mut p).await;
        let out = tokio::time::timeout(T, p.wait())
            .await
            .expect("the program exits")
            .expect("wait");
        assert_eq!(out.outcome(), Outcome::Exited(0), "{choice}");
        assert_alive(&[left], &format!("{choice}: what the program left"));
        // A long grace: a loaded machine may take a while to end the
        // `sleep` on its TERM (the shutdown returns once it has).
        let killed = p
            .shutdown(Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{choice}: shutdown: {e}"));
        assert!(!killed, "{choice}: nothing outlived a TERM");
        match choice {
            pkit::MechanismChoice::Cgroup => {
                assert_gone(&[left], &format!("{choice}: after the process's shutdown")).await;
            }
            _ => {
                // The documented limit: its parent exited, so it is not
                // found as the process's; it is still the group's.
                assert_alive(
                    &[left],
                    &format!("{choice}: after the process's shutdown (see its docs)"),
                );
                let report = group.shutdown(T).await.expect("the group's shutdown");
                assert!(report.signalled() >= 1, "{choice}: {report:?}");
                assert_gone(&[left], &format!("{choice}: after the group's shutdown")).await;
            }
        }
        drop(group);
    }
    suite.end().await;
}
