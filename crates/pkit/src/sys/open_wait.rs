//! Opening a child's stdio file without being held by a FIFO: `open(2)` of
//! a FIFO waits until its other end is open (a reader for a writer, a
//! writer for a reader), as a shell's `< fifo` does. That wait is kept,
//! but a run bounded by a timeout or a cancel token gives it up when the
//! bound passes, so a FIFO nobody opens never holds the caller's thread
//! (and a current-thread runtime with it) past the run's bounds, nor
//! leaves the thread that waits in its `open` behind (see [`open`] for
//! how it is released, and the one case where it can't be).

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

/// How long a give-up tries to release the open's thread by opening the
/// FIFO's other end before it signals the thread instead.
#[cfg(unix)]
const OTHER_END_FOR: std::time::Duration = std::time::Duration::from_millis(250);

/// How long a give-up tries to release the open's thread at all; past
/// that the thread is left to its open.
#[cfg(unix)]
const RELEASE_FOR: std::time::Duration = std::time::Duration::from_secs(2);

/// What a bounded open found at its path, looked up once, and the name
/// the open then reaches that very file by.
#[cfg(unix)]
struct Found {
    /// Whether it is a FIFO (opened on a thread of its own, within the
    /// open's bounds; anything else is opened at once).
    fifo: bool,
    /// On Linux, the file itself (an `O_PATH` descriptor, which opening
    /// never waits for): kept open while the open, the FIFO's thread or a
    /// give-up may still open it through `name`, and closed after.
    held: Option<std::os::fd::OwnedFd>,
    /// `/proc/thread-self/fd/<held>`, which reaches that very file
    /// whatever the path names by then (the threads share one descriptor
    /// table); without a usable `/proc`, or off Linux, the path itself.
    name: std::path::PathBuf,
}

#[cfg(unix)]
impl Found {
    /// A FIFO found at `path` by opening it (see [`open_unless_fifo`]).
    fn fifo_at(path: &std::path::Path) -> Found {
        Found {
            fifo: true,
            held: None,
            name: path.to_path_buf(),
        }
    }

    /// Whether `name` is the path, not the file looked at (no usable
    /// `/proc`, or not Linux): what it names may have changed since.
    fn by_path(&self) -> bool {
        self.held.is_none()
    }

    /// The file at `path`, or why it can't be looked at (the errno the
    /// open of the path would report too).
    fn at(path: &std::path::Path) -> Result<Found, rustix::io::Errno> {
        use rustix::fs::FileType;
        let fifo = |st: &rustix::fs::Stat| FileType::from_raw_mode(st.st_mode) == FileType::Fifo;
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::OFlags;
            use std::os::fd::AsRawFd;
            let held = rustix::fs::open(
                path,
                OFlags::PATH | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?;
            let st = rustix::fs::fstat(&held)?;
            let name =
                std::path::PathBuf::from(format!("/proc/thread-self/fd/{}", held.as_raw_fd()));
            // The same file through /proc (mounted, and ours), or the path.
            let same = super::fault::check(super::fault::Point::FifoProcFd).is_ok()
                && rustix::fs::stat(&name)
                    .is_ok_and(|via| (via.st_dev, via.st_ino) == (st.st_dev, st.st_ino));
            Ok(if same {
                Found {
                    fifo: fifo(&st),
                    held: Some(held),
                    name,
                }
            } else {
                Found {
                    fifo: fifo(&st),
                    held: None,
                    name: path.to_path_buf(),
                }
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let st = rustix::fs::stat(path)?;
            Ok(Found {
                fifo: fifo(&st),
                held: None,
                name: path.to_path_buf(),
            })
        }
    }
}

/// A bounded open's look at its path: what it found, or the file it
/// created (a path that named nothing yet).
#[cfg(unix)]
enum Looked {
    Found(Found),
    Opened(std::os::fd::OwnedFd),
}

/// Looks `path` up once for a bounded open (see [`Found`]). A path that
/// names nothing yet, to be created (`O_CREAT`), is created here with
/// `O_EXCL` too: a new regular file, never a FIFO made meanwhile at that
/// name (which is then looked up again). A name that exists yet can't be
/// looked up (a dangling symbolic link, whose target the open creates) is
/// opened by its path after a few looks, as an unbounded open is, except
/// that a FIFO found there by then is left to the bounded open
/// ([`open_unless_fifo`]).
#[cfg(unix)]
fn look(
    path: &std::path::Path,
    flags: rustix::fs::OFlags,
    mode: rustix::fs::Mode,
) -> io::Result<Looked> {
    use rustix::fs::OFlags;
    for _ in 0..3 {
        let found = Found::at(path);
        super::fault::pause(super::fault::Point::StdioLookedUp);
        match found {
            Ok(found) => return Ok(Looked::Found(found)),
            Err(rustix::io::Errno::NOENT) if flags.contains(OFlags::CREATE) => {
                match open_now(path, flags | OFlags::EXCL, mode) {
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    opened => return opened.map(Looked::Opened),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(match open_unless_fifo(path, flags, mode)? {
        Some(fd) => Looked::Opened(fd),
        None => Looked::Found(Found::fifo_at(path)),
    })
}

/// Opens `name` (a path, which may name another file than the one looked
/// at by now) without waiting for a FIFO's other end: non-blocking, then
/// made blocking again (unless `flags` ask for non-blocking). `None` when
/// it is a FIFO (put there since the look): that open is closed at once
/// (a writer waiting in its own open of it may have been let through by
/// that instant) and the FIFO is left to the bounded open, as one found
/// by the look is.
#[cfg(unix)]
fn open_unless_fifo(
    name: &std::path::Path,
    flags: rustix::fs::OFlags,
    mode: rustix::fs::Mode,
) -> io::Result<Option<std::os::fd::OwnedFd>> {
    use rustix::fs::{FileType, OFlags};
    let fd = match open_now(name, flags | OFlags::NONBLOCK, mode) {
        // A FIFO's write end with no reader (or a device or socket that
        // is not there, which the bounded open finds out again).
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(None),
        opened => opened?,
    };
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Fifo {
        return Ok(None);
    }
    if !flags.contains(OFlags::NONBLOCK) {
        let now = rustix::fs::fcntl_getfl(&fd)?;
        rustix::fs::fcntl_setfl(&fd, now - OFlags::NONBLOCK)?;
    }
    Ok(Some(fd))
}

/// `open(2)`, retried when a caught signal interrupts it (as
/// `std::fs::File::open` does): pkit's own SIGURG handler has no
/// SA_RESTART (`unix/open_interrupt.rs`), and a caught signal is no reason
/// to stop an unbounded FIFO's wait.
#[cfg(unix)]
fn open_now(
    name: &std::path::Path,
    flags: rustix::fs::OFlags,
    mode: rustix::fs::Mode,
) -> io::Result<std::os::fd::OwnedFd> {
    loop {
        match rustix::fs::open(name, flags, mode) {
            Err(rustix::io::Errno::INTR) => {}
            opened => return Ok(opened?),
        }
    }
}

/// `open(path, flags, mode)`; for a FIFO under a bounded `wait`, the open
/// runs on a thread of its own while this one watches the bounds.
///
/// On Linux the path is looked up once (`O_PATH`, which never waits), and
/// what is found there is opened through `/proc/thread-self/fd`: a FIFO
/// by the thread, anything else at once, so a path renamed or replaced
/// meanwhile changes nothing (a regular file replaced by a FIFO never
/// makes the open wait unbounded). A path that names nothing yet is
/// created with `O_EXCL` (see [`look`]). Without `/proc` (or off Linux)
/// the file found is opened by its path, non-blocking (a FIFO put there
/// meanwhile is then opened as a FIFO found by the look is, on the thread,
/// within the bounds: [`open_unless_fifo`]), and a give-up opens the path
/// too, which may name another file by then (see below).
///
/// Given up, the FIFO's other end is opened here for an instant
/// (non-blocking, so it never waits), which lets the thread's open
/// return; what it opened is closed. (A reader or writer of that FIFO
/// elsewhere may see that instant's open: an end of file, a write that
/// fails.) When that can't be opened (a FIFO its user may open one way
/// only) or does not release the thread soon, the thread is signalled
/// (`unix/open_interrupt.rs`), which ends its open with `EINTR`; the
/// thread keeps the signal mask it inherited from the caller, so one that
/// blocks SIGURG is not signalled. A thread neither releases (an
/// application's own SIGURG handler, or SIGURG blocked in the calling
/// thread) is left to its open, with a warning; when the other end can't
/// be opened either, the give-up returns at once rather than trying on.
/// (Another start of this process waiting on the same FIFO is released by
/// the other end's instant too.)
#[cfg(unix)]
pub(crate) fn open(
    path: &std::path::Path,
    flags: rustix::fs::OFlags,
    mode: rustix::fs::Mode,
    wait: &OpenWait<'_>,
) -> io::Result<std::os::fd::OwnedFd> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    if wait.unbounded() {
        return open_now(path, flags, mode);
    }
    let fifo = match look(path, flags, mode)? {
        Looked::Found(found) if found.fifo => found,
        // By its path: a FIFO put there since the look is opened as one.
        Looked::Found(other) if other.by_path() => {
            match open_unless_fifo(&other.name, flags, mode)? {
                Some(fd) => return Ok(fd),
                None => Found::fifo_at(path),
            }
        }
        // Never waits for another end: opened at once, the very file
        // looked at (a FIFO put in its place meanwhile is not reached).
        Looked::Found(other) => return open_now(&other.name, flags, mode),
        Looked::Opened(fd) => return Ok(fd),
    };
    let fifo = Arc::new(fifo);
    // The thread inherits this thread's mask: SIGURG blocked here (an
    // application that takes it from a `signalfd`, say) stays blocked
    // there, and then it is not signalled.
    let signal = !super::unix::open_interrupt::blocked_here();
    let given_up = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let thread = {
        let (fifo, given_up) = (Arc::clone(&fifo), Arc::clone(&given_up));
        std::thread::Builder::new()
            .name("pkit-fifo-open".into())
            .spawn(move || {
                // A signal to the process that this thread took is no
                // reason to stop waiting; the give-up's is.
                let opened = loop {
                    match rustix::fs::open(&fifo.name, flags, mode) {
                        Err(rustix::io::Errno::INTR) if !given_up.load(Ordering::SeqCst) => {}
                        opened => break opened,
                    }
                };
                drop(fifo);
                // A result nobody takes (given up) is dropped: closed.
                let _ = tx.send(opened);
            })?
    };
    loop {
        let slice = wait.deadline.map_or(POLL, |d| {
            d.saturating_duration_since(Instant::now()).min(POLL)
        });
        match rx.recv_timeout(slice) {
            Ok(opened) => {
                let _ = thread.join();
                return Ok(opened?);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other("the FIFO's open ended without a result"))
            }
        }
        let cancelled = wait.given_up.as_ref().is_some_and(|f| f());
        if !cancelled && wait.deadline.is_none_or(|d| Instant::now() < d) {
            continue;
        }
        given_up.store(true, Ordering::SeqCst);
        if release(&fifo.name, flags, mode, signal, &rx, &thread) {
            let _ = thread.join();
        } else {
            tracing::warn!(target: "pkit", path = &*path.to_string_lossy(), sigurg_blocked = !signal, "a FIFO's open could not be given up: its thread is left waiting for the other end");
        }
        let kind = if cancelled {
            io::ErrorKind::Interrupted
        } else {
            io::ErrorKind::TimedOut
        };
        return Err(io::Error::new(kind, GaveUp { cancelled }));
    }
}

/// Makes the open's thread return: opens `name`'s other end for an
/// instant, over and over (the thread may not be in its open yet: a
/// writer's non-blocking open fails while no reader is there), and
/// signals the thread too (when `signal`: it does not block the signal)
/// once that end can't be opened (then no longer tried) or has not
/// released it within [`OTHER_END_FOR`]. Whether the thread's open
/// returned within [`RELEASE_FOR`]; `false` at once when neither way can
/// be used (the end can't be opened, and the signal not sent).
#[cfg(unix)]
fn release<T>(
    name: &std::path::Path,
    flags: rustix::fs::OFlags,
    mode: rustix::fs::Mode,
    signal: bool,
    rx: &std::sync::mpsc::Receiver<T>,
    thread: &std::thread::JoinHandle<()>,
) -> bool {
    use rustix::fs::OFlags;
    use std::sync::mpsc::RecvTimeoutError;
    let other = if flags.contains(OFlags::WRONLY) {
        OFlags::RDONLY
    } else {
        OFlags::WRONLY
    };
    let began = Instant::now();
    let mut other_end = true;
    loop {
        let mut unblock = None;
        if other_end {
            match rustix::fs::open(name, other | OFlags::NONBLOCK | OFlags::CLOEXEC, mode) {
                Ok(fd) => unblock = Some(fd),
                // No reader yet: the thread is not in its open yet.
                Err(rustix::io::Errno::NXIO) => {}
                // Not that way (EACCES), or not at all.
                Err(_) => other_end = false,
            }
        }
        let mut signalled = false;
        if !other_end || began.elapsed() >= OTHER_END_FOR {
            signalled = signal && super::unix::open_interrupt::interrupt(thread);
        }
        let returned = !matches!(rx.recv_timeout(POLL), Err(RecvTimeoutError::Timeout));
        drop(unblock);
        if returned {
            return true;
        }
        // Nothing left to try: no other end, no signal (blocked, or an
        // application's own handler).
        if (!other_end && !signalled) || began.elapsed() >= RELEASE_FOR {
            return false;
        }
    }
}
