//! The bounds a run still answers to once its process (or every stage of
//! its chain) has exited, while its output is being finished: what is
//! left of its timeout, its inactivity timeout and its cancel tokens. An
//! async tee that takes no more bytes would otherwise hold the run's end
//! for ever, past the timeout that bounds the whole run: when one of these
//! passes first, the tee's write is abandoned (see `Reader::finish_within`).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::cancel::CancelToken;
use crate::pump::LimitFlag;
use crate::timing::{first_of, sleep_until_or_never};

/// A run's bounds after the exit (none: [`AfterExit::default`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct AfterExit {
    /// The run's timeout's deadline.
    pub deadline: Option<Instant>,
    /// The inactivity timeout, counted from the first instant (the run's
    /// start) until output arrives (`activity`'s reads).
    pub inactivity: Option<(Instant, Duration)>,
    /// The run's output activity, for `inactivity`.
    pub activity: Option<Arc<LimitFlag>>,
    /// Any of these cancels the run.
    pub cancel: Vec<CancelToken>,
}

impl AfterExit {
    /// The bounds of a run whose start call was at `began`, with its
    /// `timeout` (what is left of it now), its `inactivity` timeout, the
    /// output `activity` that resets that, and its cancel tokens: a verb's
    /// run and a started chain's.
    pub(crate) fn of_run(
        timeout: Option<Duration>,
        inactivity: Option<Duration>,
        began: std::time::Instant,
        activity: Arc<LimitFlag>,
        cancel: Vec<CancelToken>,
    ) -> AfterExit {
        AfterExit {
            deadline: crate::timing::left_of(timeout, began)
                .and_then(crate::timing::deadline_after),
            inactivity: (inactivity.filter(|d| *d < crate::timing::NO_DEADLINE))
                .map(|d| (Instant::from_std(began), d)),
            activity: Some(activity),
            cancel,
        }
    }

    /// Completes when one of the bounds passes (never without one).
    pub(crate) async fn passed(&self) {
        // Without a bound (most runs) nothing is set up: the timer, the
        // tokens' waits and their select are a future of their own, made
        // only for a bounded run.
        if self.deadline.is_none() && self.inactivity.is_none() && self.cancel.is_empty() {
            return std::future::pending().await;
        }
        Box::pin(self.bounded()).await
    }

    /// [`passed`](Self::passed) with at least one bound.
    async fn bounded(&self) {
        let timer = sleep_until_or_never(self.deadline);
        let idle = async {
            match (&self.activity, self.inactivity) {
                (Some(a), Some((since, idle))) => a.idle_for(since, idle).await,
                _ => std::future::pending().await,
            }
        };
        let mut tokens: Vec<_> = self
            .cancel
            .iter()
            .map(|t| Some(Box::pin(t.cancelled())))
            .collect();
        tokio::select! {
            () = timer => {}
            () = idle => {}
            _ = first_of(&mut tokens) => {}
        }
    }
}
