//! One started process and everything it spawns, inside its group: a job
//! nested in the group's (Windows 8 and later), so ending it ends its
//! descendants and nothing else. Where jobs can't nest, the tree is the
//! process alone (its descendants end with the group), said once in the
//! log.

use std::sync::Arc;

use super::child::ChildHandle;
use super::job::{Job, JobCaps};
use crate::sys::signal::nums::SIGKILL;

/// A started process's subtree.
#[derive(Debug)]
pub(crate) enum ProcTree {
    /// Its own nested job.
    Job(Job),
    /// The process alone.
    Process(Arc<ChildHandle>),
}

impl ProcTree {
    /// The tree of `child`, which is already in its group's job.
    pub(crate) fn new(child: &Arc<ChildHandle>) -> ProcTree {
        let nested = Job::create(false, JobCaps::default()).and_then(|job| {
            job.assign(child.handle())?;
            Ok(job)
        });
        match nested {
            Ok(job) => ProcTree::Job(job),
            Err(e) => {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| {
                    tracing::warn!(
                        target: "pkit",
                        error = %e,
                        "jobs can't nest here: a process's own tree is the process alone"
                    );
                });
                ProcTree::Process(child.clone())
            }
        }
    }

    /// Ends the subtree. Windows has no signal to ask first: whatever
    /// `first` says, it is terminated at once. Returns whether anything was
    /// left for a kill after a signal (never: nothing was signalled).
    pub(crate) async fn end(&self, _first: Option<(i32, Option<tokio::time::Instant>)>) -> bool {
        self.kill();
        false
    }

    /// Sends `sig` to the subtree: only SIGKILL exists here; anything else
    /// is refused.
    pub(crate) fn signal(&self, sig: i32) -> std::io::Result<()> {
        if sig != SIGKILL {
            return Err(super::unsupported(
                "Windows has no signals: only Signal::Kill (job termination) can be sent",
            ));
        }
        self.kill();
        Ok(())
    }

    /// Terminates every process of the subtree, now.
    pub(crate) fn kill(&self) {
        match self {
            ProcTree::Job(job) => {
                let _ = job.terminate();
            }
            ProcTree::Process(child) => {
                let _ = child.signal(SIGKILL);
            }
        }
    }
}
