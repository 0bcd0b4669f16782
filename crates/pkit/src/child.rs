//! [`Child`]: what a [`RunningProcess`](crate::RunningProcess) waits on and
//! signals — a real child process, or (feature `testing`) a scripted one
//! whose output goes through the same pump.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::output::Outcome;
use crate::sys::{ChildHandle, ExitStatus};

/// CPU time and peak memory of an exited child.
#[derive(Clone, Copy)]
pub(crate) struct Usage {
    pub cpu: Duration,
    pub max_rss_bytes: u64,
}

/// What [`Child::wait_keeping`] hands back with the status: on Linux the
/// pidfd's registration with the reactor (if the wait made one), whose
/// drop deregisters it, for the waiter to drop after handing the status on;
/// nothing elsewhere.
#[cfg(target_os = "linux")]
pub(crate) type Kept = Option<crate::sys::KeptWatch>;
/// See the Linux definition.
#[cfg(not(target_os = "linux"))]
pub(crate) type Kept = ();

/// The process behind a [`RunningProcess`](crate::RunningProcess).
#[derive(Clone)]
pub(crate) enum Child {
    /// A real child process.
    Os(Arc<ChildHandle>),
    /// A process a [`Reply`](crate::testing::Reply) plays.
    #[cfg(feature = "testing")]
    Scripted(Arc<crate::scripted_child::ScriptedChild>),
}

impl From<Arc<ChildHandle>> for Child {
    fn from(handle: Arc<ChildHandle>) -> Child {
        Child::Os(handle)
    }
}

impl Child {
    /// Waits for the exit.
    pub(crate) async fn wait(&self) -> io::Result<ExitStatus> {
        match self {
            Child::Os(c) => c.wait().await,
            #[cfg(feature = "testing")]
            Child::Scripted(c) => Ok(c.wait().await),
        }
    }

    /// Completes at the exit, for a line stream's readers: where the
    /// process's own output ends (see `pump/owing.rs`).
    pub(crate) fn exit_watch(&self) -> crate::pump::ExitWatch {
        let child = self.clone();
        Box::pin(async move {
            let _ = child.wait().await;
        })
    }

    /// Waits for the exit, and hands back with the status what must be
    /// dropped once it is passed on (see [`Kept`]).
    pub(crate) async fn wait_keeping(self) -> (io::Result<ExitStatus>, Kept) {
        match self {
            #[cfg(target_os = "linux")]
            Child::Os(c) => ChildHandle::wait_keeping(c).await,
            #[cfg(not(target_os = "linux"))]
            Child::Os(c) => (c.wait().await, ()),
            #[cfg(feature = "testing")]
            Child::Scripted(c) => (Ok(c.wait().await), Kept::default()),
        }
    }

    /// The exit status, if it has exited.
    pub(crate) fn try_status(&self) -> io::Result<Option<ExitStatus>> {
        match self {
            Child::Os(c) => c.try_status(),
            #[cfg(feature = "testing")]
            Child::Scripted(c) => Ok(c.try_status()),
        }
    }

    /// Sends `sig` (nothing happens once it has exited).
    pub(crate) fn signal(&self, sig: i32) -> io::Result<()> {
        match self {
            Child::Os(c) => c.signal(sig),
            #[cfg(feature = "testing")]
            Child::Scripted(c) => {
                c.signal(sig);
                Ok(())
            }
        }
    }

    /// Whether the OS child was reaped early (at its process group's
    /// close): its pid may name another process, so `/proc` is not asked.
    pub(crate) fn reaped(&self) -> bool {
        match self {
            Child::Os(c) => c.reaped(),
            #[cfg(feature = "testing")]
            Child::Scripted(_) => false,
        }
    }

    /// Reaps an exited OS child now (see
    /// `ChildHandle::reap_if_exited`), rather than when the last share of
    /// its handle is dropped: a wait's kept registration (see
    /// [`wait_keeping`](Self::wait_keeping)) holds a share that a worker may
    /// drop after the waiter is done.
    pub(crate) fn reap_if_exited(&self) {
        #[cfg(unix)]
        match self {
            Child::Os(c) => {
                c.reap_if_exited();
            }
            #[cfg(feature = "testing")]
            Child::Scripted(_) => {}
        }
    }

    /// Has a wait that sees the OS child's exit reap it at once (a
    /// pidfd-held child under Linux; see `PidfdChild::reap_when_seen`):
    /// only for a run that reaps it before it returns anyway, in a cgroup.
    pub(crate) fn reap_when_seen(&self) {
        #[cfg(target_os = "linux")]
        match self {
            Child::Os(c) => c.reap_when_seen(),
            #[cfg(feature = "testing")]
            Child::Scripted(_) => {}
        }
    }

    /// Runs `work` (the end of the run's tree), and when `reap` reaps the
    /// OS child as soon as it exits meanwhile (see
    /// `ChildHandle::reaped_during`): for a one-shot run's child under
    /// cgroup v2, asked to be reaped once seen (see
    /// [`reap_when_seen`](Self::reap_when_seen)), which nothing would
    /// see during the grace.
    pub(crate) async fn reaped_during<T>(
        &self,
        reap: bool,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        match self {
            Child::Os(c) if reap => c.reaped_during(work).await,
            _ => work.await,
        }
    }

    /// [`reaped_during`](Self::reaped_during) for several children (a
    /// pipeline's stages under cgroup v2): each OS child is reaped as it
    /// exits while `work` runs.
    pub(crate) async fn all_reaped_during<T>(
        children: &[Child],
        reap: bool,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let os = children.iter().filter_map(|c| match c {
            Child::Os(c) if reap => Some(Box::pin(c.reap_at_exit())),
            _ => None,
        });
        let mut waits: Vec<_> = os.collect();
        // Each never completes (see `reap_at_exit`): polled together.
        let all = std::future::poll_fn(|cx| {
            for w in &mut waits {
                let _ = std::future::Future::poll(w.as_mut(), cx);
            }
            std::task::Poll::<()>::Pending
        });
        tokio::select! {
            out = work => out,
            () = all => unreachable!("never completes"),
        }
    }

    /// CPU time and peak memory once exited (never for a scripted one).
    pub(crate) fn rusage(&self) -> Option<Usage> {
        match self {
            Child::Os(c) => c.rusage().map(|u| Usage {
                cpu: u.cpu,
                max_rss_bytes: u.max_rss_bytes,
            }),
            #[cfg(feature = "testing")]
            Child::Scripted(_) => None,
        }
    }

    /// The outcome [`RunningProcess::events`](crate::RunningProcess::events)
    /// reports for an exit seen as `exited`, as it does for a real process:
    /// a scripted process its command's timeout ended (or whose reply is
    /// a timeout) shows `TimedOut`; one its cancel token ended shows the
    /// signal that ended it. A real process's timeout is its watch's
    /// business: `exited` as is.
    pub(crate) fn event_outcome(&self, exited: Outcome) -> Outcome {
        match self {
            Child::Os(_) => exited,
            #[cfg(feature = "testing")]
            Child::Scripted(c) => match c.reported("", exited) {
                Ok((outcome, _)) => outcome,
                Err(_) => exited,
            },
        }
    }

    /// The outcome to report for an exit seen as `exited`: a scripted
    /// process ended by its command's timeout reports `TimedOut` (and
    /// whether it was the inactivity timeout), one ended by its cancel
    /// token is `Error::Cancelled`. A real process's bounds are its
    /// watch's business: `exited` as is.
    pub(crate) fn reported(&self, program: &str, exited: Outcome) -> Result<(Outcome, bool)> {
        match self {
            Child::Os(_) => {
                let _ = program;
                Ok((exited, false))
            }
            #[cfg(feature = "testing")]
            Child::Scripted(c) => c.reported(program, exited),
        }
    }
}

/// The scripted processes started in a group (feature `testing`; nothing
/// otherwise). No OS container holds them, so the group's own operations
/// — kill, signal, shutdown, close, drop — reach them through this list.
#[derive(Default)]
pub(crate) struct ScriptedMembers {
    #[cfg(feature = "testing")]
    list: std::sync::Mutex<Vec<std::sync::Weak<crate::scripted_child::ScriptedChild>>>,
}

impl ScriptedMembers {
    /// Adds a scripted process.
    #[cfg(feature = "testing")]
    pub(crate) fn add(&self, child: &Arc<crate::scripted_child::ScriptedChild>) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|c| c.upgrade().is_some_and(|c| c.try_status().is_none()));
        list.push(Arc::downgrade(child));
    }

    /// The ones still running.
    #[cfg(feature = "testing")]
    fn live(&self) -> Vec<Arc<crate::scripted_child::ScriptedChild>> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .filter_map(std::sync::Weak::upgrade)
            .filter(|c| c.try_status().is_none())
            .collect()
    }

    /// How many are still running.
    pub(crate) fn count(&self) -> usize {
        #[cfg(feature = "testing")]
        return self.live().len();
        #[cfg(not(feature = "testing"))]
        0
    }

    /// Sends `sig` to every one still running.
    pub(crate) fn signal(&self, sig: i32) {
        #[cfg(feature = "testing")]
        for c in self.live() {
            c.signal(sig);
        }
        #[cfg(not(feature = "testing"))]
        let _ = sig;
    }

    /// Waits until every one has exited or `deadline` passes; returns how
    /// many still run.
    pub(crate) async fn wait_until(&self, deadline: std::time::Instant) -> usize {
        #[cfg(feature = "testing")]
        {
            let live = self.live();
            let all = async {
                for c in &live {
                    c.wait().await;
                }
            };
            let _ = tokio::time::timeout_at(deadline.into(), all).await;
            self.count()
        }
        #[cfg(not(feature = "testing"))]
        {
            let _ = deadline;
            0
        }
    }
}
