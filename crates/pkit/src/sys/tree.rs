//! One started process and everything it spawns, inside its group: what a
//! started process's `timeout`, `grace` and cancel token end.
//!
//! - cgroup v2: the process is born in a leaf sub-cgroup of its own
//!   ([`Leaf`]); its whole subtree is exactly that leaf and what is below
//!   it, whatever its processes do (`setsid` included).
//! - process group: the group's processes share one process group, so a
//!   process's subtree is found by following parent links among the
//!   members (a `/proc` scan) and signalled through pidfds. A descendant
//!   that is re-parented (its parent exited first) or that left the process
//!   group is not found: the group's own teardown still ends the first, not
//!   the second.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use super::linux::leaf::Leaf;
use super::linux::{child, procfs, signal::pidfd_signal};
use super::ChildHandle;

/// A started process's subtree (see the module docs).
#[derive(Debug)]
pub(crate) enum ProcTree {
    /// Its own sub-cgroup.
    Leaf(Leaf),
    /// Its descendants in the group's process group `pgid`.
    Pgroup { root: Arc<ChildHandle>, pgid: i32 },
}

impl ProcTree {
    /// Pidfds of the subtree's live processes, each checked to name a
    /// member (never a reused pid).
    fn pidfds(&self) -> Vec<OwnedFd> {
        match self {
            ProcTree::Leaf(leaf) => super::linux::subtree::member_pidfds(leaf.path())
                .map(|v| v.into_iter().map(|(_, fd)| fd).collect())
                .unwrap_or_default(),
            ProcTree::Pgroup { root, pgid } => {
                let mut fds = Vec::new();
                // The root is our unreaped child: its pidfd is exact.
                if let Ok(fd) = rustix::io::fcntl_dupfd_cloexec(root.pidfd(), 3) {
                    fds.push(fd);
                }
                let found = procfs::pgroup_descendants(*pgid, root.pid()).unwrap_or_default();
                for pid in found.into_iter().filter(|&p| p != root.pid()) {
                    let Some(p) = rustix::process::Pid::from_raw(pid) else {
                        continue;
                    };
                    let Ok(fd) =
                        rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
                    else {
                        continue;
                    };
                    // Listed before the pidfd was opened: still a member,
                    // not a reused number?
                    if matches!(procfs::stat(pid), Ok((_, g)) if g == *pgid) {
                        fds.push(fd);
                    }
                }
                fds
            }
        }
    }

    /// Ends the subtree: with `first = Some((sig, deadline))`, sends `sig`
    /// and waits until every process of it has exited or `deadline`
    /// (`None`: no deadline) passes; then SIGKILLs whatever is left.
    /// Returns whether anything was left for SIGKILL after a signal.
    pub(crate) async fn end(&self, first: Option<(i32, Option<tokio::time::Instant>)>) -> bool {
        let Some((sig, deadline)) = first else {
            self.kill();
            return false;
        };
        let until = |d: Option<tokio::time::Instant>| async move {
            match d {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let left = match self {
            ProcTree::Leaf(leaf) => {
                let _ = leaf.signal(sig);
                tokio::select! {
                    r = leaf.wait_empty() => r.is_err() && !leaf.is_empty(),
                    () = until(deadline) => !leaf.is_empty(),
                }
            }
            ProcTree::Pgroup { .. } => {
                // Found before the signal: once a parent exits, its
                // children are re-parented and no longer found by links.
                let fds = self.pidfds();
                for fd in &fds {
                    let _ = pidfd_signal(fd.as_fd(), sig);
                }
                let all = async {
                    for fd in &fds {
                        let _ = child::pidfd_exited(fd).await;
                    }
                };
                let left = tokio::select! {
                    () = all => false,
                    () = until(deadline) => fds.iter().any(|fd| !child::pidfd_exited_now(fd)),
                };
                for fd in &fds {
                    let _ = pidfd_signal(fd.as_fd(), libc::SIGKILL);
                }
                left
            }
        };
        self.kill();
        left
    }

    /// Sends `sig` to every process of the subtree, now (a process that
    /// exits meanwhile is not an error).
    pub(crate) fn signal(&self, sig: i32) -> std::io::Result<()> {
        match self {
            ProcTree::Leaf(leaf) => {
                let _ = leaf.signal(sig);
            }
            ProcTree::Pgroup { .. } => {
                for fd in self.pidfds() {
                    let _ = pidfd_signal(fd.as_fd(), sig);
                }
            }
        }
        Ok(())
    }

    /// SIGKILLs every process of the subtree, now.
    pub(crate) fn kill(&self) {
        match self {
            ProcTree::Leaf(leaf) => {
                let _ = leaf.kill();
            }
            ProcTree::Pgroup { .. } => {
                for fd in self.pidfds() {
                    let _ = pidfd_signal(fd.as_fd(), libc::SIGKILL);
                }
            }
        }
    }
}
