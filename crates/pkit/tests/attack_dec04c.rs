//! A hostile user of pkit (third pass of 2026-12-04): a group's end racing
//! a start whose child stops itself before its `exec`.
#![cfg(target_os = "linux")]

mod common;

use std::sync::mpsc;
use std::sync::Arc;

use common::*;
use pkit::{Command, MechanismChoice};

/// `sleep 300` whose `pre_exec` hook stops the child before its `exec`.
fn stops_before_exec() -> Command {
    // SAFETY: raise is async-signal-safe; the hook allocates nothing.
    unsafe {
        Command::new("sleep").arg("300").pre_exec(|| {
            libc::raise(libc::SIGSTOP);
            Ok(())
        })
    }
}

fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// A fresh group's first start, its child stopping itself before its
/// `exec`, and `end` (a `close` or a `kill` then a `close`) called at once
/// from another thread, so that it may come before the child is born or
/// has joined its container: both return, and the child is gone.
fn race(choice: MechanismChoice, rounds: usize, end: &str) {
    for round in 0..rounds {
        let what = format!("{choice} {end} round {round}");
        let g = Arc::new(
            pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice))
                .unwrap_or_else(|e| panic!("{what}: building a group: {e}")),
        );
        let gs = g.clone();
        let starting = on_thread(move || gs.start(&stops_before_exec()).map(|p| p.pid()));
        let gc = g.clone();
        let kill = end == "kill";
        let ending = on_thread(move || {
            if kill {
                gc.kill()?;
            }
            gc.close()
        });
        let ended = ending.recv_timeout(DEADLINE * 2);
        let started = starting.recv_timeout(DEADLINE * 2);
        if ended.is_err() || started.is_err() {
            // Unstick the stopped child (its pid unknown: every stopped
            // child of ours), so the test fails instead of hanging.
            for (pid, s) in own_children() {
                if s.is_some_and(|s| s.state == 'T') {
                    kill_pid(pid);
                }
            }
            panic!("{what}: the end hangs ({ended:?}) or the start does ({started:?})");
        }
        ended
            .unwrap()
            .unwrap_or_else(|e| panic!("{what}: the end: {e}"));
        // Refused, killed before its exec (a spawn error), or started and
        // then killed: never left running.
        if let Ok(Ok(pid)) = started {
            let deadline = std::time::Instant::now() + DEADLINE;
            while !pid_gone(pid) {
                assert!(std::time::Instant::now() < deadline, "{what}: {pid} runs");
                std::thread::sleep(POLL);
            }
        }
    }
}

#[test]
fn a_close_racing_a_first_start_whose_child_stops_ends_both() {
    for choice in mechanisms() {
        if skip_on_portable(choice, "the portable backend runs no pre_exec hook") {
            continue;
        }
        race(choice, 1000, "close");
    }
}

#[test]
fn a_kill_racing_a_first_start_whose_child_stops_ends_both() {
    for choice in mechanisms() {
        if skip_on_portable(choice, "the portable backend runs no pre_exec hook") {
            continue;
        }
        race(choice, 1000, "kill");
    }
}
