//! The reaper: one background thread that finishes teardown
//! work a `Drop` must not wait for. It reaps exited children whose handles
//! were dropped (so no zombie is left behind) and removes cgroup directories
//! once the kernel reports them empty.
//!
//! It sleeps in `poll(2)` on the pidfds and `cgroup.events` files it was
//! handed plus a wake-up pipe: it costs nothing while idle and reacts to
//! kernel events, never to timers. It is started with the process's first
//! Linux group ([`ensure`]), before that group's first child: at a full
//! `pids.max` (threads count too) a thread asked for only when a handle is
//! dropped would be refused just when it is needed.
//!
//! It belongs to the process that started it: a child forked without
//! `exec` has no such thread, so its first piece of work starts one of its
//! own (review R5: work queued there used to wait for a thread that did not
//! exist). Where no thread can be started at all, nothing blocks: work is
//! finished when it can be, without waiting, on later calls (R8).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};

use crate::sys::creator::Creator;
use crate::sys::CopyLock;

enum Work {
    /// An unreaped child: reap it once it exits.
    Reap(OwnedFd),
    /// A killed cgroup: remove the directory once `populated 0`.
    RemoveCgroup {
        path: PathBuf,
        events: OwnedFd,
        /// v1 cgroups of the same members, removed after it.
        then: Vec<PathBuf>,
        /// Called once the directories are removed (never if `path` can't
        /// be): the group's owner-death guard registration is dropped
        /// there, so an owner killed meanwhile leaves them to its guard.
        after: Option<AfterRemoval>,
        /// Refused removals so far (`EBUSY` while the kernel still counts
        /// a dying task) and when to try again.
        retry: Option<(u32, Instant)>,
    },
}

/// How many times an emptied cgroup's removal is tried before the reaper
/// leaves it (to the owner-death guard, which still holds it).
const RMDIR_TRIES: u32 = 12;

/// The wait before retry `n` (1-based) of a refused removal: doubling from
/// 10 ms, at most 2 s (about 10 s over all the tries).
fn rmdir_backoff(n: u32) -> Duration {
    Duration::from_millis(10u64 << n.saturating_sub(1).min(10)).min(Duration::from_secs(2))
}

/// What to do once a cgroup handed to the reaper is removed (drop its
/// owner-death guard registration). Never called when the removal fails:
/// the guard then still holds the directory and removes it when the owner
/// dies.
pub(crate) type AfterRemoval = Box<dyn FnOnce() + Send>;

/// What the reaper thread shares with the threads that hand it work.
struct Shared {
    queue: Mutex<Vec<Work>>,
    wake_tx: OwnedFd,
}

/// The running reaper of one process.
struct Reaper {
    /// The process whose thread it is. A child forked without `exec`
    /// inherits this record but not the thread: it must start its own.
    owner: Creator,
    shared: Arc<Shared>,
    /// The wake pipe's read end, which the thread owns (a forked copy
    /// closes its copy: see [`reaper`]).
    rx: std::os::fd::RawFd,
    /// The wake pipe's identity (`sys::file_id`), noted when it was made:
    /// a forked copy closes its copies of the two ends only where they
    /// still name it. (Read in the copy instead, from the write end's
    /// number, it named whatever the copy had there now: an application's
    /// epoll instance and eventfd, which share one inode, were closed.)
    pipe: Option<(u64, u64)>,
}

/// This process's reaper, started on first use. `None` before that, or
/// while no thread could be started. A [`CopyLock`], held across a
/// thread's start: a `Mutex` was inherited held by a copy forked then,
/// whose first group waited on it for ever.
static REAPER: CopyLock<Option<Reaper>> = CopyLock::new(None);

/// Work that found no reaper thread (none could be started): retried,
/// without blocking, whenever more work comes, and handed to a thread as
/// soon as one can be started. With the process it is for: a child forked
/// without `exec` inherits a copy of its parent's list, whose work (the
/// parent's children and directories) is not its own to do.
/// A [`CopyLock`] too: held across [`reaper`].
static STRANDED: CopyLock<(Option<Creator>, Vec<Work>)> = CopyLock::new((None, Vec::new()));

/// How many `RemoveCgroup` items are queued and not yet finished: while
/// none is, [`recheck`] has nothing to wake the thread for. (A forked
/// child's inherited count may be too high, never too low: it then wakes
/// the thread for nothing.)
static WATCHED: AtomicUsize = AtomicUsize::new(0);

/// This process's reaper thread, started (or, in a forked child, started
/// anew) if needed; `None` when no thread can be started.
fn reaper() -> Option<Arc<Shared>> {
    let mut current = REAPER.lock();
    match &*current {
        Some(r) if r.owner.is_here() => return Some(r.shared.clone()),
        Some(inherited) => {
            // A forked child's copy of its parent's reaper, whose thread
            // does not exist here. What the parent had queued is the
            // parent's (its children, its directories, which its own
            // thread serves): drop our copies of those fds. Not waiting
            // for the queue's lock: held at the fork, it is held here for
            // ever (the fds are then kept).
            if let Ok(mut queue) = inherited.shared.queue.try_lock() {
                queue.clear();
            }
            // And our copies of the parent's wake pipe (one kept per
            // forked generation, before): the read end is the absent
            // thread's; the write end's owner, this record's `Shared`, is
            // never dropped here (the absent thread holds it too, and this
            // record is forgotten), so closing it is its only close.
            if let Some(id) = inherited.pipe {
                use std::os::fd::AsRawFd;
                crate::sys::close_inherited(inherited.rx, id);
                crate::sys::close_inherited(inherited.shared.wake_tx.as_raw_fd(), id);
            }
            std::mem::forget(current.take());
        }
        None => {}
    }
    let (rx, tx) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )
    .ok()?;
    let shared = Arc::new(Shared {
        queue: Mutex::new(Vec::new()),
        wake_tx: tx,
    });
    let theirs = shared.clone();
    let rx_fd = std::os::fd::AsRawFd::as_raw_fd(&rx);
    let pipe = crate::sys::file_id(rx.as_fd());
    crate::sys::spawn_thread("pkit-reaper", move || run(&theirs, rx)).ok()?;
    *current = Some(Reaper {
        owner: Creator::here(),
        shared: shared.clone(),
        rx: rx_fd,
        pipe,
    });
    Some(shared)
}

fn submit(work: Work) {
    let mut mine = STRANDED.lock();
    if !mine.0.is_some_and(Creator::is_here) {
        // Empty, or a forked child's copy of its parent's list: drop our
        // copies of the parent's descriptors, and do none of its work.
        mine.1.clear();
        mine.0 = Some(Creator::here());
    }
    let stranded = &mut mine.1;
    stranded.push(work);
    match reaper() {
        Some(r) => {
            r.queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .append(stranded);
            let _ = rustix::io::write(&r.wake_tx, &[1]);
        }
        None => {
            // No thread could be started (review R8): finish what can be
            // finished now and keep the rest for the next call. Waiting
            // here instead would block the caller, a `Drop` perhaps on an
            // async worker, for as long as a dropped child keeps running.
            stranded.retain_mut(|w| !try_finish(w));
            if !stranded.is_empty() {
                tracing::warn!(target: "pkit", pending = stranded.len(), "no reaper thread: teardown work waits for the next one");
            }
        }
    }
}

/// Wakes this process's reaper thread, if it runs, to look at its work
/// again. Called after cgroup directories were removed by someone else: a
/// group's teardown removes the leaves of processes dropped before it, and
/// a removed cgroup raises no further event on the `cgroup.events` the
/// thread polls, so without this it would hold that fd until some other
/// work woke it.
pub(crate) fn recheck() {
    // Nothing watched: no thread to wake (the common case, a group closed
    // after its processes were waited for).
    if WATCHED.load(Ordering::SeqCst) == 0 {
        return;
    }
    let current = REAPER.lock();
    if let Some(r) = &*current {
        if r.owner.is_here() {
            let _ = rustix::io::write(&r.shared.wake_tx, &[1]);
        }
    }
}

/// Starts this process's reaper thread now, if it is not running yet.
/// Called when a Linux group is created, before its first child: a thread
/// started only when the first handle is dropped may be refused then (a
/// full `pids.max` counts threads too), and its work would wait for the
/// next call into pkit (R8), leaving dropped children zombies meanwhile.
pub(crate) fn ensure() {
    if reaper().is_none() {
        tracing::debug!(target: "pkit", "no reaper thread could be started yet");
    }
}

/// Removes `dir` and every cgroup below it, deepest first, and tells the
/// reaper thread when sub-cgroups it may be watching went away. Already gone is
/// success; a directory that still has processes (`EBUSY`) fails, after the
/// empty ones below it were removed.
pub(crate) fn remove_tree(dir: &Path) -> io::Result<()> {
    let mut removed_any = false;
    for sub in super::subtree::descendants(dir) {
        // A failure here shows up as EBUSY on `dir` itself.
        removed_any |= rustix::fs::rmdir(&sub).is_ok();
    }
    if removed_any {
        // The reaper may be waiting on one of them (a leaf whose process
        // was dropped first): it must let go of its `cgroup.events`.
        recheck();
    }
    crate::sys::fault::io_check(crate::sys::fault::Point::Rmdir)?;
    match rustix::fs::rmdir(dir) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reap `pidfd`'s process once it has exited.
pub(crate) fn reap_later(pidfd: OwnedFd) {
    submit(Work::Reap(pidfd));
}

/// Remove the (killed) cgroup at `path` once it is empty, then `then`;
/// then call `after`, if `path` was removed.
pub(crate) fn remove_cgroup_later(
    path: PathBuf,
    events: OwnedFd,
    then: Vec<PathBuf>,
    after: Option<AfterRemoval>,
) {
    WATCHED.fetch_add(1, Ordering::SeqCst);
    submit(Work::RemoveCgroup {
        path,
        events,
        then,
        after,
        retry: None,
    });
}

/// A dropped child is the reaper's: reaped now if it has exited, else
/// handed to the thread. (Here rather than in `child.rs` so the reaper sits
/// above the child it serves, and not the other way round.)
impl Drop for super::child::PidfdChild {
    fn drop(&mut self) {
        let reaped = self.is_reaped();
        let Some(fd) = self.take_pidfd() else { return };
        if reaped {
            return; // only the pidfd to close
        }
        if !super::child::try_reap(fd.as_fd()) {
            reap_later(fd);
        }
    }
}

fn run(shared: &Shared, wake_rx: OwnedFd) {
    let mut items: Vec<Work> = Vec::new();
    loop {
        items.append(&mut shared.queue.lock().unwrap_or_else(|e| e.into_inner()));
        items.retain_mut(|w| !try_finish(w));
        let _ = wait_any(&items, Some(&wake_rx), next_retry(&items));
        let mut sink = [0u8; 64];
        while matches!(rustix::io::read(&wake_rx, &mut sink), Ok(n) if n > 0) {}
    }
}

/// The earliest time one of `items` wants to be tried again, if any does.
fn next_retry(items: &[Work]) -> Option<Instant> {
    items
        .iter()
        .filter_map(|w| match w {
            Work::RemoveCgroup {
                retry: Some((_, at)),
                ..
            } => Some(*at),
            _ => None,
        })
        .min()
}

/// Blocks until one item (or the wake pipe) has an event, or `until`.
fn wait_any(
    items: &[Work],
    wake: Option<&OwnedFd>,
    until: Option<Instant>,
) -> rustix::io::Result<usize> {
    let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(items.len() + 1);
    if let Some(w) = wake {
        fds.push(PollFd::new(w, PollFlags::IN));
    }
    for item in items {
        fds.push(match item {
            Work::Reap(fd) => PollFd::new(fd, PollFlags::IN),
            Work::RemoveCgroup { events, .. } => PollFd::new(events, PollFlags::PRI),
        });
    }
    let timeout = until.map(|at| {
        let left = at.saturating_duration_since(Instant::now());
        rustix::event::Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        }
    });
    poll(&mut fds, timeout.as_ref())
}

/// Finishes `work` if it can be finished now; returns whether it is done.
fn try_finish(work: &mut Work) -> bool {
    match work {
        Work::Reap(pidfd) => super::child::try_reap(pidfd.as_fd()),
        Work::RemoveCgroup {
            path,
            events,
            then,
            after,
            retry,
        } => {
            if matches!(retry, Some((_, at)) if Instant::now() < *at) {
                return false;
            }
            let removed = match super::events::read_events(events) {
                Ok(ev) if ev.populated => return false,
                // Empty (or unreadable because it is already gone): remove
                // it, sub-cgroups first (a program in it may have made
                // some). Empty means no process is left below it either,
                // so nothing can make new ones; but the kernel may refuse
                // for a moment (`EBUSY` while it still counts a dying
                // task), and no further event comes to retry on: retried
                // on a timer, a bounded number of times.
                _ => match remove_tree(path) {
                    Ok(()) => true,
                    Err(e) => {
                        let tries = retry.map_or(1, |(n, _)| n + 1);
                        if tries < RMDIR_TRIES {
                            *retry = Some((tries, Instant::now() + rmdir_backoff(tries)));
                            return false;
                        }
                        tracing::warn!(target: "pkit", dir = %path.display(), error = %e, tries, "cannot remove an emptied cgroup; its owner-death guard keeps it");
                        false
                    }
                },
            };
            super::events::remove_dirs(then);
            // Not removed: `after` is dropped uncalled, the registration kept.
            if let (true, Some(after)) = (removed, after.take()) {
                after();
            }
            WATCHED.fetch_sub(1, Ordering::SeqCst);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    /// Whether `pid` has no `/proc` entry at all (reaped, not a zombie).
    fn reaped(pid: u32) -> bool {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    /// Hands a child of this process to the reaper and waits for it to be
    /// reaped; returns whether it was, within 10 s.
    fn child_is_reaped() -> bool {
        let child = std::process::Command::new("sleep")
            .arg("0.1")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let raw = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
        let fd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())
            .expect("pidfd_open");
        super::reap_later(fd);
        drop(child); // std does not wait on drop: the reaper must
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reaped(pid) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    #[test]
    fn work_queued_in_a_forked_child_is_served() {
        // The parent's reaper thread exists before the fork.
        assert!(child_is_reaped(), "the parent's reaper works");
        // Raw: a fork without exec is the case under test; rustix has no fork.
        // SAFETY: fork(2); the child only runs `child_is_reaped` (which
        // starts a process and a thread, as a program that forks without
        // exec and then uses pkit would) and leaves with `_exit`, never
        // returning into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let code = if child_is_reaped() { 0 } else { 1 };
            // Raw: _exit in the forked child (rustix has no exit).
            // SAFETY: ends the forked child without running the parent's
            // exit handlers or unwinding into the harness.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // Raw: a test's wait for its own forked child, beside the raw fork.
        // SAFETY: waits for the child forked above; `status` is a valid
        // out-pointer.
        let got = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(got, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the forked child's reaper did not reap (status {status:#x})"
        );
    }
}
