//! The first `Group::new()` of a process, from parents of different sizes.
//!
//! The first group of a process starts its owner-death guard, so each
//! sample needs a fresh process: the harness runs itself again
//! (`--first-group-child MIB`), and that child touches MIB MiB, times one
//! `Group::new()` and prints the nanoseconds. Only that call is timed (not
//! the child's start or the touching of its memory).

use std::time::{Duration, Instant};

use crate::stats::Scenario;

/// The hidden child mode: hold `mib` MiB (touched), time the first
/// `Group::new()`, print it in nanoseconds.
pub fn child(mib: u64) {
    let ballast = crate::touch_memory(mib << 20);
    let t = Instant::now();
    let group = pkit::Group::new().expect("Group::new");
    let time = t.elapsed();
    assert!(group.guarded(), "{}", group.description());
    drop(group);
    std::hint::black_box(&ballast);
    println!("{}", time.as_nanos());
}

/// Runs the child for `mib` MiB with the guard started by `start` (the
/// value of `PKIT_GUARD_START`).
fn sample(mib: u64, start: &'static str) -> Duration {
    let out = std::process::Command::new(std::env::current_exe().expect("harness"))
        .args(["--first-group-child", &mib.to_string()])
        .env("PKIT_GUARD_START", start)
        .output()
        .expect("the child");
    assert!(
        out.status.success(),
        "the first-group child failed: {out:?}"
    );
    let nanos: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("nanoseconds");
    Duration::from_nanos(nanos)
}

/// The scenario: a small parent (the harness, a few MiB) first, then one
/// contender per size, with the guard run from the executable (the
/// default) and, for comparison, forked (`PKIT_GUARD_START=fork`).
pub fn scenario(sizes_mib: &[u64]) -> Scenario {
    let mut s = Scenario::new("first Group::new() of a process (starts the owner-death guard)")
        .with("pkit, small parent", || async { sample(0, "exec").into() });
    for &mib in sizes_mib {
        let exec: &'static str = Box::leak(format!("pkit, parent holding {}", size(mib)).into());
        let fork: &'static str =
            Box::leak(format!("pkit, parent holding {}, guard forked", size(mib)).into());
        s = s
            .with(exec, move || async move { sample(mib, "exec").into() })
            .with(fork, move || async move { sample(mib, "fork").into() });
    }
    s
}

fn size(mib: u64) -> String {
    if mib >= 1024 && mib % 1024 == 0 {
        format!("{} GiB", mib / 1024)
    } else {
        format!("{mib} MiB")
    }
}
