//! One started process and everything it spawns, inside its group: a job
//! nested in the group's (Windows 8 and later), so ending it ends its
//! descendants and nothing else. Where jobs can't nest, the tree is the
//! process alone (its descendants end with the group), said once in the
//! log.

use std::os::windows::io::OwnedHandle;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::child::ChildHandle;
use super::ctrl;
use super::job::{Job, JobCaps};
use super::suspend::{self, Step};
use crate::sys::signal::nums::{SIGCONT, SIGKILL, SIGSTOP};

/// How often a nested job's process count is read during a grace.
const POLL: Duration = Duration::from_millis(10);

/// A started process's subtree.
#[derive(Debug)]
pub(crate) struct ProcTree {
    reach: Reach,
    /// What `Signal::Stop` holds suspended (empty: nothing, until a
    /// stop): the processes suspended, which `Signal::Cont` resumes (and
    /// no other). A stop sent again suspends only the processes of the
    /// subtree started since; a continue of a running tree does nothing,
    /// as with SIGSTOP and SIGCONT.
    stopped: Mutex<Vec<OwnedHandle>>,
}

/// What a [`ProcTree`] holds.
#[derive(Debug)]
enum Reach {
    /// Its own nested job, and the process that leads its console group.
    Job(Job, Arc<ChildHandle>),
    /// The process alone.
    Process(Arc<ChildHandle>),
}

impl ProcTree {
    /// Whether the root may be reaped as soon as it exits while an end of
    /// the tree goes on (see the Unix backends'): never needed here.
    pub(crate) fn reaps_root_early(&self) -> bool {
        false
    }

    /// The tree of `child`, which is already in its group's job.
    pub(crate) fn new(child: &Arc<ChildHandle>) -> ProcTree {
        let nested = Job::create(false, JobCaps::default()).and_then(|job| {
            job.assign(child.handle())?;
            Ok(job)
        });
        let reach = match nested {
            Ok(job) => Reach::Job(job, child.clone()),
            Err(e) => {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| {
                    tracing::warn!(
                        target: "pkit",
                        error = %e,
                        "jobs can't nest here: a process's own tree is the process alone"
                    );
                });
                Reach::Process(child.clone())
            }
        };
        ProcTree {
            reach,
            stopped: Mutex::new(Vec::new()),
        }
    }

    /// A break to the console group of the tree's root, if it still runs.
    fn send_break(&self) -> std::io::Result<()> {
        let (Reach::Job(_, root) | Reach::Process(root)) = &self.reach;
        match root.try_status()? {
            Some(_) => Err(super::unsupported(
                "the process has exited: no console group is left to send CTRL_BREAK to",
            )),
            None => ctrl::send_break([root.pid() as u32]).map(drop),
        }
    }

    /// Whether every process of the subtree has exited.
    fn empty(&self) -> bool {
        match &self.reach {
            Reach::Job(job, _) => job.accounting().map_or(true, |a| a.active == 0),
            Reach::Process(root) => !matches!(root.try_status(), Ok(None)),
        }
    }

    /// Ends the subtree: with `first = Some((sig, deadline))` and `sig` a
    /// SIGTERM or SIGINT, a CTRL_BREAK goes to the process's console group
    /// and the subtree gets until `deadline` (`None`: no deadline) to exit;
    /// then whatever is left is terminated. Returns whether anything was
    /// left for termination after a break. Where no break can be sent (see
    /// `ctrl.rs`), or for any other signal, it is terminated at once and
    /// `false` is returned (nothing was asked to stop first).
    /// `then` runs right after a break went out, before the wait (the
    /// group resumed, if the caller suspended it, as the Unix tree's `end`
    /// runs it after its signal and SIGCONT); never when none did.
    pub(crate) async fn end(
        &self,
        first: Option<(i32, Option<tokio::time::Instant>)>,
        then: &(dyn Fn() + Send + Sync),
    ) -> std::io::Result<bool> {
        let sent = match first {
            Some((sig, deadline)) if ctrl::is_break(sig) => {
                self.send_break().ok().map(|()| deadline)
            }
            _ => None,
        };
        let Some(deadline) = sent else {
            self.kill()?;
            return Ok(false);
        };
        then();
        self.wait_then_kill(deadline).await
    }

    /// [`end`](Self::end) of a subtree that had its break already (its end
    /// was under way in a task dropped with its runtime): the rest of the
    /// wait until `deadline`, then termination; nothing is sent twice.
    pub(crate) async fn end_after(
        &self,
        sig: i32,
        deadline: Option<tokio::time::Instant>,
    ) -> std::io::Result<bool> {
        if !ctrl::is_break(sig) {
            self.kill()?;
            return Ok(false);
        }
        self.wait_then_kill(deadline).await
    }

    /// Waits until the subtree is empty or `deadline` passes (`None`: no
    /// deadline), then terminates what is left; whether anything was.
    async fn wait_then_kill(
        &self,
        deadline: Option<tokio::time::Instant>,
    ) -> std::io::Result<bool> {
        let emptied = async {
            while !self.empty() {
                tokio::time::sleep(POLL).await;
            }
        };
        let late = match deadline {
            Some(d) => tokio::time::timeout_at(d, emptied).await.is_err(),
            None => {
                emptied.await;
                false
            }
        };
        self.kill()?;
        Ok(late)
    }

    /// Sends `sig` to the subtree: SIGKILL terminates it; SIGTERM and
    /// SIGINT are a CTRL_BREAK to the process's console group (which its
    /// console descendants share unless they made their own); SIGSTOP
    /// suspends every process of it and SIGCONT resumes them
    /// (`suspend.rs`); anything else is refused.
    pub(crate) fn signal(&self, sig: i32) -> std::io::Result<()> {
        if ctrl::is_break(sig) {
            return self.send_break();
        }
        if sig == SIGSTOP || sig == SIGCONT {
            return self.stop(sig == SIGSTOP);
        }
        if sig != SIGKILL {
            return Err(super::unsupported(
                "Windows has no such signal: only Signal::Kill (job termination), \
                 Signal::Term or Signal::Int (CTRL_BREAK to a console program), and \
                 Signal::Stop or Signal::Cont (suspending the tree) can be sent",
            ));
        }
        self.kill()
    }

    /// Suspends the subtree (`stop`: each process not held suspended by
    /// an earlier stop) or resumes what the stops hold.
    fn stop(&self, stop: bool) -> std::io::Result<()> {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if !stop {
            return suspend::resume(std::mem::take(&mut *stopped));
        }
        match &self.reach {
            Reach::Job(job, _) => suspend::more(job, &mut stopped),
            Reach::Process(_) if !stopped.is_empty() => Ok(()),
            Reach::Process(root) => {
                // The child's handle keeps its id its own.
                let handle = suspend::open(root.pid() as u32)?;
                suspend::process(&handle, Step::Suspend)?;
                stopped.push(handle);
                Ok(())
            }
        }
    }

    /// Terminates every process of the subtree, now (never an error: what
    /// is already gone is not one).
    pub(crate) fn kill(&self) -> std::io::Result<()> {
        match &self.reach {
            Reach::Job(job, _) => {
                let _ = job.terminate();
            }
            Reach::Process(child) => {
                let _ = child.signal(SIGKILL);
            }
        }
        Ok(())
    }
}
