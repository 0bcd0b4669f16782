//! A hostile user against the newest code (second pass of 2026-12-03):
//! the environment an application changes between runs, odd inputs.

mod common;

use std::sync::Arc;

use common::*;
use pkit::{Command, Group, MechanismChoice, Signal};

/// The name of the variable this binary changes between runs (no other
/// test of this binary reads it).
const VAR: &str = "PKIT_ATTACK_DEC03B_VAR";

/// An application that changes its own environment between runs (as
/// `std::env::set_var` does) gives its next child the environment it has
/// then, as `std::process::Command` does, whether or not the command
/// sets variables of its own, through the async and the blocking paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_sees_the_environment_as_it_is_at_its_start() {
    let suite = begin("a_child_sees_the_environment_as_it_is_at_its_start").await;
    for choice in mechanisms() {
        for value in ["one", "two", ""] {
            match value {
                "" => std::env::remove_var(VAR),
                v => std::env::set_var(VAR, v),
            }
            let script = format!("printf '%s' \"${{{VAR}-unset}}\"");
            let want = if value.is_empty() { "unset" } else { value };
            let plain = sh(choice, &script);
            let with_own = sh(choice, &script).env("PKIT_ATTACK_OTHER", "x");
            let cleared = sh(choice, &script).env_remove("PKIT_ATTACK_OTHER");
            for (how, cmd) in [("plain", plain), ("env", with_own), ("env_remove", cleared)] {
                let out = cmd.clone().output().await.expect("output");
                assert_eq!(out.stdout_str(), want, "{choice} {how} async");
                // A thread of its own: the blocking API refuses a runtime's.
                let blocking = std::thread::spawn(move || cmd.blocking().output())
                    .join()
                    .expect("join")
                    .expect("blocking output");
                assert_eq!(blocking.stdout_str(), want, "{choice} {how} blocking");
            }
            let std = std::process::Command::new("sh")
                .args(["-c", &script])
                .output()
                .expect("std");
            assert_eq!(String::from_utf8_lossy(&std.stdout), want, "std agrees");
        }
    }
    std::env::remove_var(VAR);
    suite.end().await;
}

/// Closed groups hammered from two threads (kill, SIGSTOP, SIGKILL,
/// SIGTERM, pids, stats; their first processes' kill_tree, signal and
/// kill-on-drop) while two tasks keep closing emptied groups into the
/// pool of spares and new groups take those directories: no process of a
/// later group is frozen, stopped or killed by an earlier group's handle.
/// Each victim ends by the SIGTERM sent here, and only by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closed_groups_hammered_from_threads_never_reach_the_next_groups() {
    let alone = begin_exclusive().await;
    if !cgroup_usable() || portable_run() {
        end_exclusive(alone, "closed_groups_hammered").await;
        return;
    }
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;
    type Closed = Arc<Mutex<Vec<(Arc<Group>, pkit::RunningProcess)>>>;
    let new_group = || {
        Group::builder()
            .mechanism(MechanismChoice::Cgroup)
            .build()
            .expect("a cgroup group")
    };
    pkit::release_spare_cgroups();
    let closed: Closed = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (closed, stop) = (closed.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let g = Arc::new(new_group());
                let mut p = g.start(&Command::new("true")).expect("start");
                p.wait().await.expect("wait");
                p.set_kill_on_drop(true);
                g.close().await.expect("close");
                let mut c = closed.lock().unwrap_or_else(|e| e.into_inner());
                c.push((g, p));
                if c.len() > 64 {
                    c.drain(..32);
                }
            }
        }));
    }
    for t in 0..2 {
        let (closed, stop) = (closed.clone(), stop.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let picked = {
                    let mut c = closed.lock().unwrap_or_else(|e| e.into_inner());
                    match c.len() {
                        0 => None,
                        len if n % 5 == 0 => {
                            let (g, p) = c.remove((n * 7 + t) % len);
                            Some((g, Some(p)))
                        }
                        len => Some((c[(n * 7 + t) % len].0.clone(), None)),
                    }
                };
                let Some((g, p)) = picked else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                let _ = g.kill();
                for sig in [Signal::Stop, Signal::Kill, Signal::Term] {
                    let _ = g.signal(sig);
                }
                let _ = g.pids();
                let _ = g.stats();
                if let Some(p) = p {
                    let _ = p.kill_tree();
                    let _ = p.signal(Signal::Kill);
                    drop(p); // kill-on-drop
                }
            }
        }));
    }
    let mut wrong = Vec::new();
    for i in 0..150 {
        let v = new_group();
        let mut victim = v.start(&Command::new("sleep").arg("300")).expect("start");
        tokio::time::sleep(Duration::from_millis(i % 3 * 3)).await;
        let dir = cgroup_dir(&v).expect("a cgroup group");
        let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
        if events.contains("frozen 1") {
            wrong.push(format!("victim {i}: frozen"));
        }
        victim.signal(Signal::Term).expect("SIGTERM");
        let _ = victim.signal(Signal::Cont);
        match tokio::time::timeout(Duration::from_secs(30), victim.wait()).await {
            Ok(Ok(out)) if out.signal() == Some(libc::SIGTERM) => {}
            other => wrong.push(format!("victim {i}: {other:?}")),
        }
        v.close().await.expect("close");
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("task");
    }
    closed.lock().unwrap_or_else(|e| e.into_inner()).clear();
    assert!(wrong.is_empty(), "{wrong:?}");
    pkit::release_spare_cgroups();
    end_exclusive(alone, "closed_groups_hammered").await;
}

/// Input at odd sizes (around a page, a pipe's 64 KiB, past a MiB) to a
/// child that first writes more than a pipe holds to stdout and stderr
/// (so pkit must read while it writes), then echoes its input; and to a
/// child that reads 10 bytes and exits, leaving the rest unread. Every
/// byte comes back in order, the partial reader's run is a success, in
/// the async and the blocking paths. (Held.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_at_odd_sizes_to_children_that_write_first_or_stop_reading() {
    let suite = begin("input_at_odd_sizes_to_children_that_write_first_or_stop_reading").await;
    const OUT: usize = 200_003;
    const ERR: usize = 150_001;
    let write_first = format!("head -c {OUT} /dev/zero; head -c {ERR} /dev/zero >&2; cat");
    let sizes = [
        1usize,
        4095,
        4097,
        65535,
        65537,
        (1 << 20) | 7,
        3 * (1 << 20) + 1,
    ];
    for choice in mechanisms() {
        for n in sizes {
            let input: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            for script in [write_first.as_str(), "head -c 10 >/dev/null; echo done"] {
                let cmd = sh(choice, script).stdin_bytes(input.clone());
                let threaded = cmd.clone();
                let blocking = std::thread::spawn(move || threaded.blocking().output());
                let outs = [
                    ("async", cmd.output().await),
                    ("blocking", blocking.join().expect("join")),
                ];
                for (how, out) in outs {
                    let what = format!("{choice} {n} {how} {script}");
                    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert!(out.success(), "{what}: {:?}", out.outcome());
                    if script == write_first {
                        assert_eq!(out.stdout().len(), OUT + n, "{what}");
                        assert!(out.stdout()[OUT..] == input[..], "{what}: bytes differ");
                        assert_eq!(out.stderr().len(), ERR, "{what}");
                    } else {
                        assert_eq!(out.stdout_str(), "done\n", "{what}");
                    }
                }
            }
        }
    }
    suite.end().await;
}
