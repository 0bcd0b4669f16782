//! `pkit::read_environment_unlocked`: once a program opts in, a child
//! still gets exactly the environment `std::env::vars_os` reads (odd
//! entries included), a command's changes still apply, and pkit copies it
//! from `environ` without a string per variable, which the default read
//! under std's lock makes, for a command that changes variables too
//! (observed by counting allocations).
//!
//! Its own binary: the switch is process-wide and one-way. The test runs
//! this binary again through a raw `execve` (a process of its own, with
//! odd entries and many variables in its environment), where the helper
//! measures the default read, opts in, and checks. Nothing here changes
//! the environment.

#![cfg(unix)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use common::*;

/// The system allocator, counting allocations (and reallocations).
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on to `System` unchanged; counting only adds
// to an atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Variables added to the helper's environment: the default read makes
/// two strings for each (`vars_os`), the unlocked read none.
const PADDING: usize = 1000;

#[test]
fn opted_in_a_child_gets_environ_as_vars_os_reads_it_without_a_copy_per_variable() {
    in_suite(
        "opted_in_a_child_gets_environ_as_vars_os_reads_it_without_a_copy_per_variable",
        || {
            let padding = (0..PADDING).map(|i| format!("PKIT_PAD_{i}=value {i}").into_bytes());
            let envp = raw_env::odd_environment(padding, b"PKIT_TEST_UNLOCKED_HELPER=1");
            let text = raw_env::run_self_with_env(
                "unlocked_environment_helper",
                envp,
                "unlocked-helper-ran",
            );
            // The counts, for `--nocapture`.
            for line in text.lines().filter(|l| l.contains("allocations")) {
                println!("{line}");
            }
        },
    );
}

/// The allocations of the whole process during each of three blocking
/// runs of `true` (after one to warm up), as is and with variables
/// changed (`changed`).
fn allocations_per_run(choice: pkit::MechanismChoice, changed: bool) -> Vec<u64> {
    let run = || {
        let mut c = cmd(choice, "true");
        if changed {
            c = c
                .env("PKIT_DUP", "over")
                .env("PKIT_NEW", "new")
                .env_remove("PKIT_PAD_7");
        }
        let out = c.blocking().output().expect("true");
        assert!(out.success(), "{choice}: {out:?}");
    };
    run();
    (0..3)
        .map(|_| {
            let before = ALLOCS.load(Relaxed);
            run();
            ALLOCS.load(Relaxed) - before
        })
        .collect()
}

/// The helper of the test above: does nothing unless
/// `PKIT_TEST_UNLOCKED_HELPER` is set.
#[test]
fn unlocked_environment_helper() {
    if std::env::var_os("PKIT_TEST_UNLOCKED_HELPER").is_none() {
        return;
    }
    let inherited = raw_env::inherited_entries();
    let has = |e: &[u8]| inherited.iter().any(|i| i == e);
    assert!(has(b"=PKIT_LEAD=x=y") && has(b"==") && has(b"PKIT_EQ_EMPTY="));
    assert!(!has(b"PKIT_MALFORMED_NO_EQUALS") && !has(b"") && !has(b"="));
    assert!(inherited.len() > PADDING);

    // By default: under std's lock, two strings per variable.
    for (choice, changed) in mechanisms()
        .into_iter()
        .flat_map(|c| [(c, false), (c, true)])
    {
        let counts = allocations_per_run(choice, changed);
        println!("{choice}, changed {changed}: default read, allocations per run {counts:?}");
        for n in counts {
            assert!(n >= 2 * PADDING as u64, "{choice}: {n} allocations");
        }
    }

    // SAFETY: nothing in this process changes its environment.
    unsafe { pkit::read_environment_unlocked() };

    for choice in mechanisms() {
        // No string per variable, with or without changes: far fewer
        // allocations than variables (the least of three runs: another
        // thread's work may add some).
        for changed in [false, true] {
            let counts = allocations_per_run(choice, changed);
            println!("{choice}, changed {changed}: unlocked read, allocations per run {counts:?}");
            let least = counts.iter().min().copied().unwrap_or(u64::MAX);
            assert!(
                least < PADDING as u64 / 2,
                "{choice}, {changed}: {counts:?}"
            );
        }

        let env0 = |c: pkit::Command| -> Vec<String> {
            let out = c.arg("-0").blocking().output().expect("env");
            assert!(out.success(), "{choice}: {out:?}");
            let mut got: Vec<String> = out
                .stdout()
                .split(|&b| b == 0)
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .collect();
            assert_eq!(got.pop().as_deref(), Some(""), "not NUL-terminated");
            got
        };
        let show = |e: &mut dyn Iterator<Item = &Vec<u8>>| -> Vec<String> {
            e.map(|e| String::from_utf8_lossy(e).into_owned()).collect()
        };
        // Exactly what vars_os reads, in order, odd entries included.
        let got = env0(cmd(choice, "env"));
        assert_eq!(got, show(&mut inherited.iter()), "{choice}: inherited");

        // An override replaces every copy of a name, in its place; a new
        // variable comes after.
        let got = env0(
            cmd(choice, "env")
                .env("PKIT_DUP", "over")
                .env("PKIT_NEW", "new"),
        );
        let over = b"PKIT_DUP=over".to_vec();
        let new = b"PKIT_NEW=new".to_vec();
        let want = inherited
            .iter()
            .map(|e| match e.starts_with(b"PKIT_DUP=") {
                true => &over,
                false => e,
            })
            .chain([&new]);
        assert_eq!(got, show(&mut want.into_iter()), "{choice}: override");

        // A removal removes every copy.
        let got = env0(
            cmd(choice, "env")
                .env_remove("PKIT_DUP")
                .env_remove("PKIT_PAD_7"),
        );
        let want = inherited
            .iter()
            .filter(|e| !e.starts_with(b"PKIT_DUP=") && !e.starts_with(b"PKIT_PAD_7="));
        assert_eq!(got, show(&mut want.into_iter()), "{choice}: removal");

        // A cleared environment inherits nothing.
        let got = env0(cmd(choice, "env").env_clear().env("ONLY", "this"));
        assert_eq!(got, ["ONLY=this"], "{choice}: cleared");

        // All at once, an allow-list, a cleared one.
        raw_env::check_changes(choice, &inherited);
    }
    println!("unlocked-helper-ran");
}
