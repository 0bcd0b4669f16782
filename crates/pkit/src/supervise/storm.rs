//! The crash-storm guard's memory: the times of the latest crashes.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The times of the latest crashes, for the storm guard
/// ([`Supervisor::storm_pause`](super::Supervisor::storm_pause)): a storm
/// is `limit` crashes within `window`, so at most the latest `limit` are
/// kept (the test needs no older one), and none older than `window`.
pub(super) struct Crashes {
    times: VecDeque<Instant>,
    limit: usize,
    window: Duration,
}

impl Crashes {
    /// No crash yet; a storm is `limit` (at least 1) crashes within
    /// `window`.
    pub(super) fn new(limit: usize, window: Duration) -> Crashes {
        Crashes {
            times: VecDeque::new(),
            limit: limit.max(1),
            window,
        }
    }

    /// Notes a crash at `at` (no earlier than the last one noted) and
    /// says whether it makes a storm.
    pub(super) fn storm_after(&mut self, at: Instant) -> bool {
        if self.times.len() == self.limit {
            self.times.pop_front();
        }
        self.times.push_back(at);
        while self
            .times
            .front()
            .is_some_and(|&t| at.duration_since(t) > self.window)
        {
            self.times.pop_front();
        }
        self.times.len() == self.limit
    }

    /// How many crashes are counted.
    pub(super) fn len(&self) -> usize {
        self.times.len()
    }

    /// Forgets every crash (after a storm, or a run long enough to reset
    /// the counts).
    pub(super) fn clear(&mut self) {
        self.times.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_is_limit_crashes_within_the_window_and_the_memory_is_bounded() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut c = Crashes::new(3, s(10));
        assert!(!c.storm_after(t0));
        assert!(!c.storm_after(t0 + s(1)));
        assert!(c.storm_after(t0 + s(2)));
        // Spread out: never three within 10 s.
        c.clear();
        for i in 0..20 {
            assert!(!c.storm_after(t0 + s(6 * i)), "crash {i}");
            assert!(c.len() <= 2);
        }
        // No window to speak of: a storm at every third crash once the
        // counts are forgotten after each, and never more than 3 kept
        // when they are not (the guard off): 16 B per crash before.
        let mut c = Crashes::new(3, Duration::MAX);
        for i in 0..1000 {
            c.storm_after(t0 + s(i));
            assert!(c.len() <= 3, "crash {i}: {} kept", c.len());
        }
        let mut c = Crashes::new(0, s(1));
        assert!(c.storm_after(t0), "a limit of 0 is 1");
    }
}
