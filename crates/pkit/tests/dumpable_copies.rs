#![cfg(target_os = "linux")]
//! The owner's dumpable flag across starts with other ids (uid, gid,
//! groups) and forked copies (dumpfix): a copy forked while another
//! thread's start has marked the owner not dumpable (its child takes its
//! ids in the owner's memory) gets the flag back at once, and its own
//! starts with other ids run and leave it dumpable. Root only; the helper
//! run of this binary plays `DUMPFIX_ROLE`.

mod common;

use std::time::Duration;

use common::copies::{copies_while_looping, Copies, Reaped};
use common::*;
use pkit::{Command, MechanismChoice};

const SUITE: &str = "dumpable_copies";

fn dumpable() -> i32 {
    // SAFETY: reads a flag of this process.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }
}

fn is_root() -> bool {
    // SAFETY: no arguments, no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Writes `s` and a line feed to fd 1 with one write(2).
fn say(s: &str) {
    copies::say("dumpfix", s);
}

/// The helper: one thread makes starts with other ids in a loop (found on
/// `PATH`, the lookup thread, and by path) while this one forks 40 copies,
/// one every 10 ms. Each copy reads its flag at once, makes one start with
/// other ids, and reads it again; it exits with 0 when both read 1 and the
/// start ran, 1 when the first read 0, 2 when the second did, 3 when the
/// start failed; a copy that hangs is killed by its alarm (5).
fn helper() {
    let spec = Copies {
        n: 40,
        gap: Duration::from_millis(10),
        loopers: 1,
        begun: false,
        warm_up: Duration::from_millis(100),
        alarm: 5,
        killed: 5,
        reaped: Reaped::EachFirst,
    };
    let body = |i: usize| {
        let program = if i % 2 == 0 { "true" } else { "/bin/true" };
        let _ = Command::new(program)
            .uid(65534)
            .gid(65534)
            .blocking()
            .output();
    };
    // The copy starts no thread of its own (a program by path: no lookup
    // thread), and takes no spare cgroup: std's thread bookkeeping and the
    // pool of spare cgroups may have been copied in use by the looping
    // thread (other findings). SIGALRM ends a copy that hangs (code 5).
    let copy = || {
        let first = dumpable();
        let choice = if portable_run() {
            MechanismChoice::Portable
        } else {
            MechanismChoice::ProcessGroup
        };
        let r = cmd(choice, "/bin/true").uid(65534).blocking().output();
        match r {
            Ok(o) if !o.success() => 3,
            Ok(_) if first != 1 => 1,
            Ok(_) if dumpable() != 1 => 2,
            Ok(_) => 0,
            Err(_) => 3,
        }
    };
    let mut codes = [0u32; 6];
    for code in copies_while_looping(spec, body, copy) {
        codes[code as usize] += 1;
    }
    say(&format!("copies {codes:?} owner {}", dumpable()));
}

#[test]
fn a_copy_forked_during_id_starts_is_dumpable_and_makes_its_own() {
    let name = "a_copy_forked_during_id_starts_is_dumpable_and_makes_its_own";
    if std::env::var_os("DUMPFIX_ROLE").is_some() {
        helper();
        return;
    }
    in_suite(SUITE, || {
        if !is_root() {
            skipped(name, "needs root");
            return;
        }
        let (status, text) = run_self_as(
            name,
            ("DUMPFIX_ROLE", "copies"),
            &[],
            Duration::from_secs(200),
        );
        assert!(status.is_some_and(|s| s.success()), "{status:?}: {text}");
        // Every copy that ran its start: dumpable at once and after it; the
        // owner dumpable at the end. A rare copy hangs for other reasons
        // than the flag (seen: the portable backend's SIGCHLD notifier
        // copied in use by the looping thread), reported apart; more than a
        // few is this test's own failure (the old lock hung 3 to 19 of 40).
        let line = text
            .lines()
            .find_map(|l| l.split("dumpfix: copies ").nth(1))
            .unwrap_or_else(|| panic!("{text}"));
        let (codes, owner) = line.split_once(" owner ").expect("the line");
        let codes: Vec<u32> = codes
            .trim_matches(['[', ']'])
            .split(", ")
            .map(|c| c.parse().expect("a count"))
            .collect();
        assert_eq!(owner, "1", "{text}");
        assert_eq!(codes[1..5], [0, 0, 0, 0], "{text}");
        assert!(codes[0] >= 38 && codes[5] <= 2, "{text}");
    });
}
