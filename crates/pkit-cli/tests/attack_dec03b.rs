//! A hostile user of the `pkit` CLI (second pass of 2026-12-03).

mod common;

use common::*;

/// A positive timeout too short for a double (`1e-400` reads as 0.0, and
/// `1e-322ms` becomes 0.0 once scaled to seconds) is the shortest timeout,
/// as timeout(1) takes it, never 0 ("no timeout"): the program is timed
/// out, not left to run.
#[test]
fn a_positive_timeout_below_a_doubles_range_still_times_out() {
    for timeout in [
        "1e-400",
        "0.001e-999",
        "1e-322ms",
        "1e-400s",
        "1e-400m1e-400s",
    ] {
        let out = run(&["run", "--timeout", timeout, "--", "sleep", "30"]);
        assert_eq!(out.status.code(), Some(124), "{timeout}: {out:?}");
    }
    // A zero written with an exponent is still zero: no timeout.
    for timeout in ["0e-400", "0.0e5", "0ms"] {
        let out = run(&["run", "--timeout", timeout, "--", "true"]);
        assert_eq!(out.status.code(), Some(0), "{timeout}: {out:?}");
    }
}
