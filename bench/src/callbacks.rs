//! Lines handed to a closure from blocking code: pkit's blocking facade
//! with [`on_stdout_line`](pkit::Command::on_stdout_line) against
//! `std::process` reading the same lines with `BufRead::lines` on the
//! caller's thread. A blocking one-shot verb with no timeout calls such a
//! callback on the calling thread, between its reads of the pipe, as std's
//! loop does (before perfb, on a `pkit-reader` thread of the stream's own,
//! which a run with a timeout still uses). The async API (for reference)
//! runs the callback on the runtime's worker that reads the pipe.
//!
//! Two sizes: `seq 1 100` (a short run, where a per-run cost shows) and
//! the streaming scenario's 8,000 lines of 128 bytes.

use std::io::BufRead;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::scenarios::on_plain_thread;
use crate::stats::Scenario;

/// A program and its arguments, and how many lines it writes.
#[derive(Clone, Copy)]
pub struct Lines {
    program: &'static str,
    args: &'static [&'static str],
    count: usize,
}

/// `seq 1 100`: 100 short lines.
pub const SHORT: Lines = Lines {
    program: "seq",
    args: &["1", "100"],
    count: 100,
};

/// 8,000 lines of 128 bytes (as the streaming scenario's).
pub const LONG: Lines = Lines {
    program: "sh",
    args: &["-c", LONG_SCRIPT],
    count: 8000,
};
const LONG_SCRIPT: &str = "yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx | head -n 8000";

pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario("blocking line callback: seq 1 100", SHORT),
        scenario("blocking line callback: 8,000 lines of 128 bytes", LONG),
    ]
}

fn scenario(name: &'static str, lines: Lines) -> Scenario {
    Scenario::new(name)
        .with(
            "std::process (BufRead::lines, caller's thread)",
            move || async move { std_lines(lines).into() },
        )
        .with("pkit blocking (on_stdout_line)", move || async move {
            on_plain_thread(move || blocking_callback(lines)).into()
        })
        .with(
            "pkit async (on_stdout_line, for reference)",
            move || async move { async_callback(lines).await.into() },
        )
}

/// std: the lines read on the calling thread and handed to a closure.
pub fn std_lines(lines: Lines) -> Duration {
    let t = Instant::now();
    let mut n = 0;
    let mut each = |_: &str| n += 1;
    let mut child = std::process::Command::new(lines.program)
        .args(lines.args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    for line in out.lines() {
        each(&line.unwrap());
    }
    assert!(child.wait().unwrap().success());
    let time = t.elapsed();
    assert_eq!(n, lines.count);
    time
}

fn command(lines: Lines, count: &Arc<AtomicUsize>) -> pkit::Command {
    let n = count.clone();
    pkit::Command::new(lines.program)
        .args(lines.args)
        .stderr(pkit::Stdio::Null)
        .on_stdout_line(move |_| {
            n.fetch_add(1, Ordering::Relaxed);
        })
}

/// pkit's blocking facade, on the calling thread (which must have no
/// runtime current).
pub fn blocking_callback(lines: Lines) -> Duration {
    let count = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let code = command(lines, &count).blocking().exit_code().unwrap();
    let time = t.elapsed();
    assert_eq!(code, 0);
    assert_eq!(count.load(Ordering::Relaxed), lines.count);
    time
}

/// The same through the async API.
pub async fn async_callback(lines: Lines) -> Duration {
    let count = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let code = command(lines, &count).exit_code().await.unwrap();
    let time = t.elapsed();
    assert_eq!(code, 0);
    assert_eq!(count.load(Ordering::Relaxed), lines.count);
    time
}
