//! Reading the parent's ends of a child's output pipes: draining what is
//! buffered, a blocking reader thread's waits, and the blocking facade's
//! polls (the pipes themselves are made in `fdio.rs`).

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use super::{PipeReceiver, ReadStep};

/// Whether a busy capture-only stream may move to a blocking thread
/// ([`receiver_into_fd`], [`read_or_stop`]).
pub(crate) const BLOCKING_HANDOFF: bool = true;

/// The receiver's descriptor, non-blocking, for a blocking reader thread.
pub(crate) fn receiver_into_fd(rx: PipeReceiver) -> io::Result<OwnedFd> {
    rx.into_nonblocking_fd()
}

/// [`drain_pipe`] on a registered receiver (it never waits here).
pub(crate) async fn drain_receiver(rx: &mut PipeReceiver, buf: &mut Vec<u8>) -> bool {
    drain_pipe(rx.as_fd(), buf)
}

/// [`grow_pipe`] on a registered receiver.
pub(crate) fn grow_receiver(rx: &PipeReceiver) {
    grow_pipe(rx.as_fd());
}

/// Reads what is already buffered in the (non-blocking) pipe `fd` into
/// `buf`, without waiting: at most the pipe's capacity, so a writer that
/// keeps refilling it (an escaped descendant) cannot keep us here. Returns
/// whether end of file was seen.
///
/// This reads the fd directly rather than through the async reactor, whose
/// cached readiness may not yet know about data that is there.
pub(crate) fn drain_pipe(fd: std::os::fd::BorrowedFd<'_>, buf: &mut Vec<u8>) -> bool {
    #[cfg(target_os = "linux")]
    let budget = rustix::pipe::fcntl_getpipe_size(fd).unwrap_or(1 << 20);
    // BSD pipes grow up to 64 KiB (more only for large single writes).
    #[cfg(not(target_os = "linux"))]
    let budget = 1 << 16;
    let mut chunk = [0u8; 16 * 1024];
    let mut taken = 0;
    while taken < budget {
        let want = chunk.len().min(budget - taken);
        match rustix::io::read(fd, &mut chunk[..want]) {
            Ok(0) => return true,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                taken += n;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false, // EAGAIN: nothing more buffered
        }
    }
    false
}

/// How many bytes wait unread in the pipe `fd` is an end of: what a line
/// stream's reader still owes at the exit (the pump's `owed.rs`); with
/// `testing`, how a scripted process keeps its two streams' order.
pub(crate) fn pipe_unread(fd: impl AsFd) -> io::Result<u64> {
    rustix::io::ioctl_fionread(fd).map_err(io::Error::from)
}

/// Grows a pipe to hold up to 1 MiB (the default maximum for unprivileged
/// processes), so a fast writer and its reader trade fewer, larger chunks.
/// Failure is harmless: the pipe keeps its size.
pub(crate) fn grow_pipe(fd: std::os::fd::BorrowedFd<'_>) {
    #[cfg(target_os = "linux")]
    let _ = rustix::pipe::fcntl_setpipe_size(fd, 1 << 20);
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

/// Blocks this thread until `data` has bytes (appends up to `max` of them
/// to `buf`), reaches end of file, or `stop` becomes readable or is closed.
/// For a blocking reader thread; `data` must be non-blocking.
pub(crate) fn read_or_stop(
    data: std::os::fd::BorrowedFd<'_>,
    stop: std::os::fd::BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<ReadStep> {
    use rustix::event::{poll, PollFd, PollFlags};
    loop {
        // Read first: data is often already there.
        buf.reserve(max);
        match rustix::io::read(data, rustix::buffer::spare_capacity(buf)) {
            Ok(0) => return Ok(ReadStep::Eof),
            Ok(n) => return Ok(ReadStep::Data(n)),
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut fds = [
            PollFd::new(&data, PollFlags::IN),
            PollFd::new(&stop, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        if !fds[1].revents().is_empty() {
            return Ok(ReadStep::Stopped);
        }
    }
}

/// Blocks this thread until one of `fds` (`None` entries are skipped) is
/// readable or hung up, or `timeout` passes (`None`: no limit); whether
/// each one is. An interrupted wait returns with none, as does a call
/// with no descriptor. For the blocking
/// facade's one-shot runs, which wait for a child's pipes and its exit on
/// the calling thread.
#[cfg(target_os = "linux")]
pub(crate) fn poll_readable(
    fds: [Option<std::os::fd::BorrowedFd<'_>>; 3],
    timeout: Option<std::time::Duration>,
) -> io::Result<[bool; 3]> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    // The present ones first, each remembering its slot.
    let mut slots = [0usize; 3];
    let mut n = 0;
    for (i, fd) in fds.iter().enumerate() {
        if fd.is_some() {
            slots[n] = i;
            n += 1;
        }
    }
    let mut ready = [false; 3];
    let Some(first) = fds[slots[0]].filter(|_| n > 0) else {
        return Ok(ready);
    };
    let mut polled: [PollFd<'_>; 3] = std::array::from_fn(|k| {
        let fd = if k < n { fds[slots[k]] } else { None };
        PollFd::from_borrowed_fd(fd.unwrap_or(first), PollFlags::IN)
    });
    let ts = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as _,
        tv_nsec: t.subsec_nanos() as _,
    });
    match poll(&mut polled[..n], ts.as_ref()) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok(ready),
        Err(e) => return Err(e.into()),
    }
    for (k, p) in polled[..n].iter().enumerate() {
        ready[slots[k]] = !p.revents().is_empty();
    }
    Ok(ready)
}

/// One `read` of what `fd` has into `buf`'s spare capacity, after making
/// room for `chunk` bytes; the count read (0 at end of file). For a pipe
/// [`poll_readable`] said is ready, so it does not block.
#[cfg(target_os = "linux")]
pub(crate) fn read_ready(
    fd: std::os::fd::BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    chunk: usize,
) -> io::Result<usize> {
    buf.reserve(chunk);
    loop {
        match rustix::io::read(fd, rustix::buffer::spare_capacity(&mut *buf)) {
            Err(rustix::io::Errno::INTR) => {}
            other => return other.map_err(io::Error::from),
        }
    }
}
