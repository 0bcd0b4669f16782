//! A pipeline's result from its stages' results: what each stage's end
//! means to the chain, and the pipefail fold (which stage is blamed).

use std::sync::Arc;
use std::time::Duration;

use crate::output::{Outcome, Output};
use crate::sys::Signal;

/// What a stage's end means to the chain.
#[derive(Clone)]
pub(crate) struct StageRule {
    /// Whether its failure fails the chain (not `unchecked_in_pipe`).
    pub checked: bool,
    /// The exit codes that count as its success (its `ok_codes`; 0
    /// without).
    pub ok: Option<Arc<[i32]>>,
}

impl StageRule {
    /// Whether ending with `outcome` fails the chain: a checked stage that
    /// did not exit with one of its accepted codes, or any stage the
    /// chain's timeout ended (an unchecked one too: the chain timed out).
    pub(crate) fn fails(&self, outcome: Outcome) -> bool {
        (self.checked || outcome == Outcome::TimedOut) && !self.accepts(outcome)
    }

    /// Whether `outcome` is a success for this stage: an exit with one of
    /// its accepted codes (checked or not).
    fn accepts(&self, outcome: Outcome) -> bool {
        let ok = self.ok.as_deref().unwrap_or(&[0]);
        matches!(outcome, Outcome::Exited(c) if ok.contains(&c))
    }
}

/// The pipefail fold, and the stage whose outcome it took. A stage fails
/// by its rule (an exit code its `ok_codes` accept is a success); a stage
/// the chain's end cut short (`cut`: killed because another stage failed)
/// is never blamed, nor is one that died of SIGPIPE before a stage that
/// failed: its reader went with that failure, and the SIGPIPE came before
/// the cut could (`yes | sh -c 'exit 3'` is the `sh`'s 3). When no stage
/// failed, the outcome is the last stage's that succeeded: an unchecked
/// last stage that failed fails nothing (the last stage when none
/// succeeded). The last stage's stdout moves into the fold (its stage
/// record keeps none), so a big output is held once.
pub(crate) fn fold(
    mut stages: Vec<Output>,
    rules: &[StageRule],
    cut: &[bool],
    duration: Duration,
) -> (Output, usize) {
    let last = stages.len() - 1;
    let failed: Vec<bool> = (stages.iter().zip(rules).zip(cut))
        .map(|((o, rule), &cut)| rule.fails(o.outcome) && !cut)
        .collect();
    let broken_pipe = Outcome::Signalled(Signal::Pipe.as_raw());
    let blame = (0..stages.len())
        .find(|&i| {
            failed[i] && !(stages[i].outcome == broken_pipe && failed[i + 1..].contains(&true))
        })
        .or_else(|| {
            (0..=last)
                .rev()
                .find(|&i| rules[i].accepts(stages[i].outcome))
        })
        .unwrap_or(last);
    let stdout = std::mem::take(&mut stages[last].stdout);
    // Any stage's secrets (each stage knows the chain's), once each.
    let mut redact: Vec<Vec<u8>> = stages.iter().flat_map(|s| s.redact.clone()).collect();
    redact.sort_unstable();
    redact.dedup();
    let b = &stages[blame];
    let l = &stages[last];
    let out = Output {
        program: b.program.clone(),
        outcome: b.outcome,
        stdout,
        stderr: b.stderr.clone(),
        duration,
        mechanism: b.mechanism,
        pid: b.pid,
        stdout_seen: l.stdout_seen,
        stderr_seen: b.stderr_seen,
        cpu_time: stages.iter().map(|s| s.cpu_time).sum(),
        peak_memory: stages.iter().map(|s| s.peak_memory).max().flatten(),
        oom_killed: stages.iter().any(|s| s.oom_killed),
        killed_after_grace: false,
        inactivity_timed_out: false,
        secret_output: stages.iter().any(|s| s.secret_output),
        redact,
        stdout_tee_error: l.stdout_tee_error.clone(),
        stderr_tee_error: b.stderr_tee_error.clone(),
        stages,
    };
    (out, blame)
}
