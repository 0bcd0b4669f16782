//! Helpers shared by the CLI's test files: run the real `pkit` binary,
//! read its report, and check that processes are really gone.
//!
//! In parts, each re-exported here (a test file's `use common::*;` sees
//! them all): [`invoke`] starts pkit and reads its report, [`pty`] drives it
//! on a terminal, [`proc`] watches and kills processes, [`names`] makes
//! unique names and paths and polls files, [`held`] holds a member of a
//! run's tree where cgroup v2's freeze can't reach it.

#![allow(dead_code)]

pub mod held;
pub mod invoke;
pub mod names;
pub mod proc;
pub mod pty;

// Each test file uses some of the parts: a part it uses nothing of is
// an unused import there.
#[allow(unused_imports)]
pub use held::*;
#[allow(unused_imports)]
pub use invoke::*;
#[allow(unused_imports)]
pub use names::*;
#[allow(unused_imports)]
pub use proc::*;
#[allow(unused_imports)]
pub use pty::*;

/// Every mechanism `--mechanism` takes on Linux.
pub const MECHANISMS: [&str; 3] = ["cgroup", "pgroup", "portable"];

/// The mechanisms a per-mechanism loop forces with `--mechanism`: all
/// three, or only the one `PKIT_MECHANISM` names (CI's process-group and
/// portable passes). Those passes exist for the runs that take the
/// environment's choice; a run with `--mechanism` forces the flag's, so
/// the other two would repeat what the first pass ran (as the library's
/// `tests/common` `mechanisms()` does for its own loops).
pub fn mechanisms() -> Vec<&'static str> {
    match std::env::var("PKIT_MECHANISM").ok().as_deref() {
        Some(env) => match MECHANISMS.iter().find(|&&m| m == env) {
            Some(&m) => vec![m],
            None => MECHANISMS.to_vec(),
        },
        None => MECHANISMS.to_vec(),
    }
}

/// Runs `case` for each of `cases` at once, each on a thread of its own
/// (for cases that mostly wait: a timeout, a grace, a program's linger),
/// and fails if any failed (each panic's message is printed as it
/// happens; the scope then panics).
pub fn at_once<T: Send>(cases: impl IntoIterator<Item = T>, case: impl Fn(T) + Sync) {
    std::thread::scope(|s| {
        for c in cases {
            let case = &case;
            s.spawn(move || case(c));
        }
    });
}

/// The mechanisms of [`mechanisms`] that put the program in a process
/// group of its own (pgroup, portable): those the terminal's rule is for.
pub fn process_group_mechanisms() -> Vec<&'static str> {
    mechanisms()
        .into_iter()
        .filter(|m| *m != "cgroup")
        .collect()
}
