//! What a reader's owner tells it ([`Control`]), and the thread a
//! capture-only stream that grew big continues on (see
//! [`Reader`](super::Reader)).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use super::capture::{CaptureBuf, CapturePolicy, Captured};
use super::limit::LimitFlag;
use crate::sys::OwnedFd;

/// A big stream's read size (on the reactor, and on its thread).
pub(super) const BIG_READ_CHUNK: usize = 1024 * 1024;

/// What a reader's owner tells it.
#[derive(Default)]
pub(super) struct Control {
    /// Wakes a reader waiting for data, to stop.
    pub(super) stop: Notify,
    /// Set with `stop` and checked before every read, so a stream that
    /// never runs dry (a descendant writing without pause) can't keep a
    /// reader from stopping (review R3).
    pub(super) stopping: AtomicBool,
    /// Set when the process's handle is dropped: the reader goes on
    /// draining the pipe until end of file, but keeps nothing.
    pub(super) detached: AtomicBool,
    /// Set when the reader (on the runtime or on its thread) met its
    /// stream's end of file.
    pub(super) ended: AtomicBool,
    /// Ends an async tee's write (or flush) under way, or a later one that
    /// doesn't complete at once: the run ended by a bound (see
    /// `Reader::abandon_tee`). Set, then `tee_cut` notified (waiters only:
    /// a stored permit would cut a healthy tee's next write, rv36).
    pub(super) tee_cutting: AtomicBool,
    /// Wakes a tee write waiting when `tee_cutting` is set.
    pub(super) tee_cut: Notify,
}

impl Control {
    pub(super) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub(super) fn detached(&self) -> bool {
        self.detached.load(Ordering::Acquire)
    }
}

/// A thread ready to continue a capture-only stream (see [`Reader`]),
/// with the pipe that relays `stop` to it. Made before the stream is taken
/// off the runtime, so that when no thread or descriptor can be had (the
/// process is out of them) the stream simply goes on being read where it
/// is, and no byte of it is lost.
pub(super) struct Handoff {
    stop_w: OwnedFd,
    job: std::sync::mpsc::SyncSender<Job>,
    done: tokio::sync::oneshot::Receiver<Captured>,
}

/// What the capture thread is handed once it exists.
struct Job {
    fd: OwnedFd,
    capture: CaptureBuf,
    limit: Arc<LimitFlag>,
    control: Arc<Control>,
}

impl Handoff {
    /// The stop pipe and a waiting thread, or `None` when either can't be
    /// had now.
    pub(super) fn prepare() -> Option<Handoff> {
        let (stop_r, stop_w) = crate::sys::stop_pipe().ok()?;
        let (job, jobs) = std::sync::mpsc::sync_channel::<Job>(1);
        let (report, done) = tokio::sync::oneshot::channel();
        crate::sys::spawn_thread("pkit-capture", move || {
            // No job: the hand-off was abandoned; nothing to do.
            let Ok(job) = jobs.recv() else { return };
            let captured = capture_blocking(job.fd, stop_r, job.capture, &job.limit, &job.control);
            let _ = report.send(captured);
        })
        .ok()?;
        Some(Handoff { stop_w, job, done })
    }

    /// Continues the stream on the thread, relaying `stop` to it.
    pub(super) async fn run(
        self,
        fd: OwnedFd,
        capture: CaptureBuf,
        limit: Arc<LimitFlag>,
        control: Arc<Control>,
    ) -> Captured {
        let Handoff {
            stop_w,
            job: to_thread,
            mut done,
        } = self;
        let job = Job {
            fd,
            capture,
            limit,
            control: control.clone(),
        };
        if let Err(std::sync::mpsc::SendError(job)) = to_thread.send(job) {
            // The thread is gone (it can't be: it waits for this); keep
            // what was captured.
            return job.capture.finish();
        }
        let captured = tokio::select! {
            done = &mut done => done,
            // `stopping` is set already, for a thread that never waits (the
            // pipe never runs dry); the closed pipe wakes one in `poll`.
            () = control.stop.notified() => {
                drop(stop_w);
                done.await
            }
        };
        captured.unwrap_or_default()
    }
}

/// The blocking capture loop (see [`Reader`]); reads big chunks from a
/// pipe already grown. It checks `control.stopping` before every read,
/// so a pipe that never runs dry can't keep it reading past its stop;
/// `stop` (a pipe closed on stop) wakes it from `poll`.
fn capture_blocking(
    fd: OwnedFd,
    stop: OwnedFd,
    mut capture: CaptureBuf,
    limit: &LimitFlag,
    control: &Control,
) -> Captured {
    use crate::sys::AsFd;
    use crate::sys::ReadStep;
    let mut scratch = Vec::new();
    let mut discarding = false;
    loop {
        if !discarding && control.detached() {
            // Nobody will collect the capture: keep draining, keep nothing.
            capture = CaptureBuf::new(Some(0), CapturePolicy::KeepHead);
            discarding = true;
        }
        let direct = capture.direct().is_some();
        let pipe = stop.as_fd();
        let step = match capture.direct() {
            _ if control.stopping() => Ok(ReadStep::Stopped),
            Some(buf) => buf.read_or_stop(fd.as_fd(), pipe, BIG_READ_CHUNK),
            None => {
                scratch.clear();
                crate::sys::read_or_stop(fd.as_fd(), pipe, &mut scratch, BIG_READ_CHUNK)
            }
        };
        match step {
            Ok(ReadStep::Data(n)) => {
                if n > 0 {
                    limit.touch();
                }
                if direct {
                    capture.note_direct(n);
                } else if !capture.push(&scratch) && !limit.is_hit() {
                    limit.set();
                }
            }
            Ok(ReadStep::Stopped) => {
                let mut rest = Vec::new();
                crate::sys::drain_pipe(fd.as_fd(), &mut rest);
                if !capture.push(&rest) && !limit.is_hit() {
                    limit.set();
                }
                break;
            }
            Ok(ReadStep::Eof) => {
                control
                    .ended
                    .store(true, std::sync::atomic::Ordering::Release);
                break;
            }
            Err(_) => break,
        }
    }
    capture.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review R3: a stream that never runs dry (here `/dev/zero`; in life a
    /// descendant writing without pause) must not keep the blocking
    /// capture reading past its stop.
    #[test]
    fn the_blocking_capture_stops_on_a_stream_that_never_runs_dry() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let stopped = rt.block_on(async {
            let zero: crate::sys::OwnedFd =
                std::fs::File::open("/dev/zero").expect("/dev/zero").into();
            let control = Arc::new(Control::default());
            let capture = CaptureBuf::new(Some(1 << 20), CapturePolicy::KeepHead);
            let reading = tokio::spawn({
                let control = control.clone();
                async move {
                    let limit = Arc::new(LimitFlag::default());
                    let handoff = Handoff::prepare().expect("a thread and a pipe");
                    handoff.run(zero, capture, limit, control).await
                }
            });
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            control.stopping.store(true, Ordering::Release);
            control.stop.notify_one();
            tokio::time::timeout(std::time::Duration::from_secs(10), reading).await
        });
        // Don't wait for a thread that would read for ever.
        rt.shutdown_timeout(std::time::Duration::from_secs(1));
        let captured = stopped
            .expect("the capture thread did not stop")
            .expect("join");
        assert_eq!(captured.bytes.len(), 1 << 20);
        assert!(captured.seen > 1 << 20, "it read until stopped");
    }
}
