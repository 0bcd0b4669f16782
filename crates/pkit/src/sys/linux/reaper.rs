//! The reaper: one lazily started background thread that finishes teardown
//! work a `Drop` must not wait for. It reaps exited children whose handles
//! were dropped (so no zombie is left behind) and removes cgroup directories
//! once the kernel reports them empty.
//!
//! It sleeps in `poll(2)` on the pidfds and `cgroup.events` files it was
//! handed plus a wake-up pipe: it costs nothing while idle and reacts to
//! kernel events, never to timers.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use rustix::event::{poll, PollFd, PollFlags};

enum Work {
    /// An unreaped child: reap it once it exits.
    Reap(OwnedFd),
    /// A killed cgroup: remove the directory once `populated 0`.
    RemoveCgroup {
        path: PathBuf,
        events: OwnedFd,
        /// v1 cgroups of the same members, removed after it.
        then: Vec<PathBuf>,
    },
}

struct Reaper {
    queue: Mutex<Vec<Work>>,
    wake_tx: OwnedFd,
}

fn reaper() -> Option<&'static Reaper> {
    static REAPER: OnceLock<Option<Reaper>> = OnceLock::new();
    REAPER
        .get_or_init(|| {
            let (rx, tx) = rustix::pipe::pipe_with(
                rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
            )
            .ok()?;
            std::thread::Builder::new()
                .name("pkit-reaper".into())
                .spawn(move || run(rx))
                .ok()?;
            Some(Reaper {
                queue: Mutex::new(Vec::new()),
                wake_tx: tx,
            })
        })
        .as_ref()
}

fn submit(work: Work) {
    match reaper() {
        Some(r) => {
            r.queue.lock().unwrap_or_else(|e| e.into_inner()).push(work);
            let _ = rustix::io::write(&r.wake_tx, &[1]);
        }
        None => {
            // No thread could be started: finish synchronously rather than
            // leave a zombie or a directory behind.
            let mut items = vec![work];
            while !items.is_empty() {
                let _ = wait_any(&items, None);
                items.retain_mut(|w| !try_finish(w));
            }
        }
    }
}

/// Reap `pidfd`'s process once it has exited.
pub(crate) fn reap_later(pidfd: OwnedFd) {
    submit(Work::Reap(pidfd));
}

/// Remove the (killed) cgroup at `path` once it is empty.
pub(crate) fn remove_cgroup_later(path: PathBuf, events: OwnedFd, then: Vec<PathBuf>) {
    submit(Work::RemoveCgroup { path, events, then });
}

fn run(wake_rx: OwnedFd) {
    let mut items: Vec<Work> = Vec::new();
    loop {
        {
            let r = reaper().expect("reaper exists while its thread runs");
            items.append(&mut r.queue.lock().unwrap_or_else(|e| e.into_inner()));
        }
        items.retain_mut(|w| !try_finish(w));
        let _ = wait_any(&items, Some(&wake_rx));
        let mut sink = [0u8; 64];
        while matches!(rustix::io::read(&wake_rx, &mut sink), Ok(n) if n > 0) {}
    }
}

/// Blocks until one item (or the wake pipe) has an event.
fn wait_any(items: &[Work], wake: Option<&OwnedFd>) -> rustix::io::Result<usize> {
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
    poll(&mut fds, None)
}

/// Finishes `work` if it can be finished now; returns whether it is done.
fn try_finish(work: &mut Work) -> bool {
    match work {
        Work::Reap(pidfd) => super::child::try_reap(pidfd.as_fd()),
        Work::RemoveCgroup { path, events, then } => {
            let done = match super::cgroup::read_events(events) {
                Ok(ev) if ev.populated => false,
                // Empty (or unreadable because it is already gone): remove
                // it, sub-cgroups first (a program in it may have made
                // some). Empty means no process is left below it either,
                // so nothing can make new ones: a failure now would repeat
                // forever, and no further event would come to retry on.
                _ => {
                    if let Err(e) = super::subtree::remove_tree(path) {
                        tracing::warn!(target: "pkit", dir = %path.display(), error = %e, "cannot remove an emptied cgroup");
                    }
                    true
                }
            };
            if done {
                super::cgroup::remove_dirs(then);
            }
            done
        }
    }
}
