//! Pauses at the points where the order of two events decides what a run
//! does, for the tests only: in a debug build (what `cargo test` runs),
//! `PKIT_TEST_PAUSE=<point>:<ms>[,<point>:<ms>…]` in pkit's environment
//! holds the thread that reaches `<point>` for `<ms>` milliseconds, so that
//! a test can put the other event inside the window every time instead of
//! once in a thousand runs. A release build has no pauses and reads no
//! such variable.
//!
//! The points: `stdin-error` (pty.rs: `--pty`'s stdin relay, after a read
//! of the terminal failed, before it tells a read refused in the
//! background from the end of the terminal) and `continued` (forward.rs:
//! pkit has continued after its stop, and the program's tree with it,
//! before it takes the terminal again if it can and the run loop reads the
//! SIGCONT that woke it) and `handed` (forward.rs: the same, the
//! terminal taken again) and `stopping`
//! (forward.rs: pkit has stopped the tree on a stop signal and is about to
//! stop itself) and `self-stop` (forward.rs: pkit has looked for a SIGCONT
//! that would call its stop off, found none, and is about to stop itself)
//! and `reraise` (sys/unix.rs: pkit, made not dumpable, is about to end
//! by its program's signal) and `kill` (relay.rs: the whole tree's
//! SIGKILL, a third request's or the grace's, asked for and about to go
//! out).

/// Pauses here if the tests asked for it (debug builds only).
pub fn at(point: &str) {
    #[cfg(debug_assertions)]
    {
        let Some(v) = std::env::var_os("PKIT_TEST_PAUSE") else {
            return;
        };
        let ms = v
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|item| item.split_once(':'))
            .find(|(p, _)| *p == point)
            .and_then(|(_, ms)| ms.parse::<u64>().ok());
        if let Some(ms) = ms {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}
