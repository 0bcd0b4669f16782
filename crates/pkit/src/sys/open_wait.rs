//! Opening a child's stdio file without being held by a FIFO: `open(2)` of
//! a FIFO waits until its other end is open (a reader for a writer, a
//! writer for a reader), as a shell's `< fifo` does. That wait is kept,
//! but a run bounded by a timeout or a cancel token gives it up when the
//! bound passes, so a FIFO nobody opens never holds the caller's thread
//! (and a current-thread runtime with it) past the run's bounds.

use std::io;
use std::time::Instant;

/// How long opening a child's stdio file may wait for a FIFO's other end
/// (read on Unix only).
#[derive(Default)]
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) struct OpenWait<'a> {
    /// Give up when this passes.
    pub deadline: Option<Instant>,
    /// Give up once this says so (polled while waiting).
    pub given_up: Option<Box<dyn Fn() -> bool + 'a>>,
}

#[cfg_attr(not(unix), allow(dead_code))]
impl OpenWait<'_> {
    /// Whether nothing bounds the wait (then a FIFO is opened as a shell
    /// opens it, waiting as long as it takes).
    fn unbounded(&self) -> bool {
        self.deadline.is_none() && self.given_up.is_none()
    }
}

/// Why an open waiting for a FIFO's other end was given up: the source of
/// the `io::Error` `open` returns then (its kind: `TimedOut` or
/// `Interrupted`). Unix only: elsewhere no open waits so.
#[derive(Debug)]
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) struct GaveUp {
    /// The wait's `given_up` said so (else its deadline passed).
    pub cancelled: bool,
}

impl std::fmt::Display for GaveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cancelled {
            f.write_str("cancelled while the FIFO waited for its other end to be opened")
        } else {
            f.write_str(
                "the run's timeout passed while the FIFO waited for its other end to be opened",
            )
        }
    }
}

impl std::error::Error for GaveUp {}

impl GaveUp {
    /// The `GaveUp` an error of [`open`] carries, if it is one.
    pub(crate) fn of(e: &io::Error) -> Option<&GaveUp> {
        e.get_ref()?.downcast_ref::<GaveUp>()
    }
}

/// How often a waiting open looks at its bounds.
#[cfg(unix)]
const POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// `open(path, flags, mode)`; for a FIFO under a bounded `wait`, the open
/// runs on a thread of its own while this one watches the bounds. Given
/// up, the FIFO's other end is opened here for an instant (non-blocking,
/// so it never waits), which lets the thread's open return; what it opened
/// is closed. (A reader or writer of that FIFO elsewhere may see that
/// instant's open: an end of file, a write that fails.)
#[cfg(unix)]
pub(crate) fn open(
    path: &std::path::Path,
    flags: rustix::fs::OFlags,
    mode: rustix::fs::Mode,
    wait: &OpenWait<'_>,
) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{FileType, OFlags};
    let fifo = || {
        rustix::fs::stat(path).is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Fifo)
    };
    if wait.unbounded() || !fifo() {
        return Ok(rustix::fs::open(path, flags, mode)?);
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("pkit-fifo-open".into())
        .spawn(move || {
            // A result nobody takes (given up) is dropped: closed.
            let _ = tx.send(rustix::fs::open(&owned, flags, mode));
        })?;
    loop {
        let slice = wait.deadline.map_or(POLL, |d| {
            d.saturating_duration_since(Instant::now()).min(POLL)
        });
        match rx.recv_timeout(slice) {
            Ok(opened) => return Ok(opened?),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other("the FIFO's open ended without a result"))
            }
        }
        let cancelled = wait.given_up.as_ref().is_some_and(|f| f());
        if !cancelled && wait.deadline.is_none_or(|d| Instant::now() < d) {
            continue;
        }
        let other = if flags.contains(OFlags::WRONLY) {
            OFlags::RDONLY
        } else {
            OFlags::WRONLY
        };
        // The thread may not be in its open yet (a writer's non-blocking
        // open fails while no reader is there): tried again until the
        // thread's open returned, for up to a second; past that (the path
        // no longer names that FIFO) the thread is left to it.
        let tried_until = Instant::now() + std::time::Duration::from_secs(1);
        loop {
            let unblock = rustix::fs::open(path, other | OFlags::NONBLOCK | OFlags::CLOEXEC, mode);
            let returned = !matches!(
                rx.recv_timeout(POLL),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            );
            drop(unblock);
            if returned || Instant::now() >= tried_until {
                break;
            }
        }
        let kind = if cancelled {
            io::ErrorKind::Interrupted
        } else {
            io::ErrorKind::TimedOut
        };
        return Err(io::Error::new(kind, GaveUp { cancelled }));
    }
}
