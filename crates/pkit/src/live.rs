//! What tokio and std users reach for on a live process: `try_wait`,
//! `is_running`, per-process signals and shutdown, kill-on-drop for one
//! handle, and waiting for any or all of several processes.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::output::{Outcome, Output};
use crate::process::{outcome_of, RunningProcess};
use crate::sys::Signal;
use crate::timing::first_of;

impl RunningProcess {
    /// How it ended, if it has exited; `None` while it runs. Never blocks
    /// and does not collect the output (call [`wait`](Self::wait) for the
    /// [`Output`]). Like `std`'s `try_wait`, the outcome is the process's
    /// own exit, the same before and after a [`wait`](Self::wait): a
    /// process ended by its command's timeout shows the signal that ended
    /// it here (`Signalled(SIGTERM)`, say), and `TimedOut` in `wait`'s
    /// `Output`, which is where pkit's reading of the end (timed out,
    /// cancelled, killed after its grace) is.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when the process's state can't be read.
    pub fn try_wait(&self) -> Result<Option<Outcome>> {
        // The child keeps the status a wait read: after `wait` too this is
        // the exit itself, not the `Output`'s reading of it.
        self.child
            .try_status()
            .map(|s| s.map(outcome_of))
            .map_err(|e| Error::io(format!("{}: try_wait", self.program()), e))
    }

    /// Whether the process is still running: `false` once it has exited
    /// (a zombie not yet collected counts as exited). Its pid stays its own
    /// until it is collected by [`wait`](Self::wait) or the group, so the
    /// answer is about this process, never a reused pid.
    pub fn is_running(&self) -> bool {
        !self.has_exited()
    }

    /// Sends `signal` to this process and everything it spawned: its own
    /// subtree within the group, as [`kill_tree`](Self::kill_tree) finds it
    /// (under process groups, descendants reached through living parents).
    /// The rest of the group is left alone. Use [`Group::signal`](crate::Group::signal)
    /// for the whole group. On Windows [`Signal::Kill`] terminates the
    /// subtree, [`Signal::Term`] and [`Signal::Int`] are a `CTRL_BREAK_EVENT`
    /// to the process's console process group (console programs only),
    /// [`Signal::Stop`] suspends every process of the subtree (the threads
    /// each has then: one created later, such as a console's Ctrl-Break
    /// handler, runs) and [`Signal::Cont`] resumes them (a second stop
    /// reaches only the processes started in the subtree since, as
    /// SIGSTOP would), and any other signal, or a break that can't be delivered,
    /// is [`Error::Unsupported`].
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`](crate::Error::Unsupported) for a signal this platform can't send
    /// (above); [`Error::Io`](crate::Error::Io) when the OS refuses it.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let sent = match crate::watch::tree(&self.watch) {
            Some(tree) => tree.signal(signal.as_raw()),
            None => self.child.signal(signal.as_raw()),
        };
        sent.map_err(|e| {
            if e.kind() == std::io::ErrorKind::Unsupported {
                // Windows: no such signal, or no console for the break.
                return Error::Unsupported {
                    operation: "signal",
                    mechanism: self.mechanism(),
                    reason: e.to_string(),
                };
            }
            Error::io(format!("{}: signal", self.program()), e)
        })
    }

    /// Ends this process's subtree politely: SIGTERM, up to `grace` for it
    /// to exit, then SIGKILL to whatever is left. Returns whether anything
    /// was left to kill after the grace. The rest of the group runs on; the
    /// process still has to be collected with [`wait`](Self::wait) for its
    /// [`Output`]. On Windows, which has no SIGTERM, the process's console
    /// group gets a `CTRL_BREAK_EVENT` instead; where none can be delivered
    /// (see [`Group::shutdown`](crate::Group::shutdown)) the subtree is
    /// terminated at once and this returns `false` (nothing was asked to
    /// stop first). A `grace` too long for the clock (`Duration::MAX`)
    /// waits without bound. On Unix the SIGTERM is followed by SIGCONT (as
    /// timeout(1) sends), so a stopped program can handle it. A
    /// [suspended](crate::Group::suspend) group is resumed right after the
    /// SIGTERM or the break, and is no longer suspended (not when no break
    /// could be sent: the termination resumes nothing).
    ///
    /// What the subtree is depends on the mechanism (as for
    /// [`kill_tree`](Self::kill_tree)). Under cgroup v2 it is the
    /// process's own cgroup, so a shutdown after the program has exited
    /// still ends the processes it left running. Under a process group
    /// (and the portable backend) it is found through parent links among
    /// the group's members: a process whose parent exited first is no
    /// longer found, so once the program itself has exited this reaches
    /// none of what it left behind (a `sh -c 'sleep 300 & exit 0'` leaves
    /// the `sleep` running). Those are still the group's:
    /// [`Group::shutdown`](crate::Group::shutdown), `kill`, `close` or
    /// dropping the group ends them.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when signalling the subtree or waiting for it fails,
    /// and under a process group when the subtree could not be listed (no
    /// descriptor free to read a member's parent): the process itself has
    /// been ended, its descendants may run on.
    pub async fn shutdown(&self, grace: Duration) -> Result<bool> {
        // A grace too long for the clock (`Duration::MAX`) is no bound.
        let deadline = crate::timing::deadline_after(grace);
        let group = crate::watch::group(&self.watch);
        match crate::watch::tree(&self.watch) {
            Some(tree) => tree
                .end(Some((Signal::Term.as_raw(), deadline)), &|| {
                    crate::watch::thaw(&group)
                })
                .await
                .map_err(|e| Error::io(format!("{}: shutdown", self.program()), e)),
            None => {
                let exited = match self.child.signal(Signal::Term.as_raw()) {
                    // No break could be sent (Windows): straight to the
                    // kill, which is then no kill after a grace.
                    Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                        self.kill()?;
                        return Ok(false);
                    }
                    _ => match deadline {
                        Some(d) => tokio::time::timeout_at(d, self.child.wait()).await.is_ok(),
                        None => {
                            let _ = self.child.wait().await;
                            true
                        }
                    },
                };
                if !exited {
                    self.kill()?;
                }
                Ok(!exited)
            }
        }
    }

    /// Makes dropping this handle kill the process and its subtree (as
    /// [`kill_tree`](Self::kill_tree)), as tokio's `kill_on_drop(true)`
    /// does; off by default (a started process belongs to its group and
    /// outlives its handle).
    pub fn set_kill_on_drop(&mut self, on: bool) {
        self.kill_on_drop = on;
    }
}

/// Waits until one of `procs` exits and returns its index and its
/// [`Output`] (as [`RunningProcess::wait`] gives it). The others are left
/// running. An empty slice is an [`Error::InvalidInput`].
///
/// # Errors
///
/// [`Error::InvalidInput`](crate::Error::InvalidInput) for an empty slice. The process that
/// exited has its own result inside, with the errors of [`RunningProcess::wait`].
pub async fn wait_any(procs: &mut [RunningProcess]) -> Result<(usize, Result<Output>)> {
    if procs.is_empty() {
        return Err(Error::InvalidInput(
            "wait_any: no process to wait for".into(),
        ));
    }
    // A bound whose watch went with the runtime a process was started on
    // is watched again here (as `wait` does): its exit may be the first.
    for p in procs.iter_mut() {
        crate::watch::rearm(&mut p.watch);
    }
    // Each watch's task is started again should its runtime shut down
    // while this waits (see `watch::lost`).
    let first = {
        let (mut exits, mut lost): (Vec<_>, Vec<_>) = (procs.iter_mut())
            .map(|p| {
                let RunningProcess { child, watch, .. } = p;
                let lost = Box::pin(crate::watch::lost(watch));
                (Some(Box::pin(child.wait())), Some(lost))
            })
            .unzip();
        tokio::select! {
            (i, _) = first_of(&mut exits) => i,
            _ = first_of(&mut lost) => unreachable!("never completes"),
        }
    };
    let out = procs[first].wait().await;
    Ok((first, out))
}

/// Waits for every one of `procs` and returns their results in order.
pub async fn wait_all(procs: &mut [RunningProcess]) -> Vec<Result<Output>> {
    let mut results = Vec::with_capacity(procs.len());
    for p in procs.iter_mut() {
        results.push(p.wait().await);
    }
    results
}

/// The index of the first of `procs` to exit.
pub(crate) async fn first_exit<'a>(procs: impl Iterator<Item = &'a RunningProcess>) -> usize {
    type Exit<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
    let mut exits: Vec<Exit<'a>> = procs
        .map(|p| {
            let fut: Exit<'a> = Box::pin(async move {
                let _ = p.wait_status().await;
            });
            fut
        })
        .collect();
    std::future::poll_fn(|cx| {
        for (i, f) in exits.iter_mut().enumerate() {
            if f.as_mut().poll(cx).is_ready() {
                return Poll::Ready(i);
            }
        }
        Poll::Pending
    })
    .await
}
