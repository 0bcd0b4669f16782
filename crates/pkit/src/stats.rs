//! Sampling a group's resource use over time, and profiling one run.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::group::Group;
use crate::process::RunningProcess;
use crate::sys::Stats;

/// The shortest interval between samples: [`RunningProcess::profile`]
/// refuses a shorter one, and [`Group::sample_stats`] samples no more
/// often. Each sample reads the kernel's accounting files, so a zero
/// interval would spin a core doing nothing else.
pub const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(1);

/// Snapshots of a group's [`Stats`] at a fixed interval, until the group is
/// empty (the last snapshot shows 0 active processes), a snapshot can't be
/// read (that error is the last item), or the stream is dropped. See
/// [`Group::sample_stats`]. Implements [`futures_core::Stream`].
pub struct SampleStats<'a> {
    group: &'a Group,
    interval: tokio::time::Interval,
    done: bool,
}

impl<'a> SampleStats<'a> {
    pub(crate) fn new(group: &'a Group, every: Duration) -> SampleStats<'a> {
        let mut interval = tokio::time::interval(every.max(MIN_SAMPLE_INTERVAL));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        SampleStats {
            group,
            interval,
            done: false,
        }
    }

    /// The next snapshot, or `None` once the group is empty or a snapshot
    /// failed.
    ///
    /// # Errors
    ///
    /// Those of [`Group::stats`], as an item: the group's accounting could
    /// not be read (after it, the stream ends).
    pub async fn next(&mut self) -> Option<Result<Stats>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_sample(cx)).await
    }

    fn poll_sample(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Stats>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.interval.poll_tick(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(Some(snapshot(self.group, &mut self.done)))
    }
}

/// A sampler's snapshot of `group` (this one's, and the blocking one's):
/// `done` once the group is empty (that snapshot is the last) or its stats
/// can't be read (that error is the last item: a failed read is not an
/// empty group).
pub(crate) fn snapshot(group: &Group, done: &mut bool) -> Result<Stats> {
    let stats = group.stats();
    *done = !stats.as_ref().is_ok_and(|s| s.active_processes() > 0);
    stats
}

impl Group {
    /// Snapshots every `every` until the group is empty or the stream is
    /// dropped. A snapshot that can't be read (see [`stats`](Self::stats))
    /// is an `Err` item, and the stream's last. An interval below [`MIN_SAMPLE_INTERVAL`] (zero, say)
    /// samples every [`MIN_SAMPLE_INTERVAL`]: this returns no `Result` to
    /// refuse it with, and sampling as fast as possible is what such an
    /// interval asks for.
    pub fn sample_stats(&self, every: Duration) -> SampleStats<'_> {
        SampleStats::new(self, every)
    }
}

impl futures_core::Stream for SampleStats<'_> {
    type Item = Result<Stats>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Stats>>> {
        self.poll_sample(cx)
    }
}

impl fmt::Debug for SampleStats<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SampleStats")
            .field("done", &self.done)
            .finish()
    }
}

/// One run's resource profile; see [`RunningProcess::profile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    duration: Duration,
    peak_memory: Option<u64>,
    cpu_time: Option<Duration>,
    samples: usize,
}

impl Profile {
    /// Wall-clock time from the start of profiling to the process's exit.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The highest resident memory seen (and reported by the kernel at
    /// exit), where readable.
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        self.peak_memory
    }

    /// The CPU time used, where readable.
    pub fn cpu_time(&self) -> Option<Duration> {
        self.cpu_time
    }

    /// How many samples were taken.
    pub fn samples(&self) -> usize {
        self.samples
    }
}

impl RunningProcess {
    /// Samples this process every `interval` until it exits, and returns
    /// its profile. It leaves the process alone, and its output for
    /// [`wait`](Self::wait).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`](crate::Error::InvalidInput), before any
    /// sample, when `interval` is below [`MIN_SAMPLE_INTERVAL`] (zero
    /// would sample in a busy loop); [`Error::Io`](crate::Error::Io) when
    /// the process's exit can't be read.
    pub async fn profile(&self, interval: Duration) -> Result<Profile> {
        if interval < MIN_SAMPLE_INTERVAL {
            return Err(crate::error::Error::InvalidInput(format!(
                "{}: a profile's sampling interval must be at least {:?}, not {interval:?}",
                self.program(),
                MIN_SAMPLE_INTERVAL
            )));
        }
        let began = Instant::now();
        let (mut peak, mut cpu, mut samples) = (None::<u64>, None::<Duration>, 0);
        loop {
            if let Some(m) = self.peak_memory_bytes() {
                peak = Some(peak.map_or(m, |p| p.max(m)));
            }
            if let Some(c) = self.cpu_time() {
                cpu = Some(cpu.map_or(c, |p| p.max(c)));
            }
            samples += 1;
            if self.has_exited() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                status = self.wait_status() => { status?; }
            }
        }
        Ok(Profile {
            duration: began.elapsed(),
            peak_memory: peak,
            cpu_time: cpu,
            samples,
        })
    }
}
