//! Running a scenario's contenders interleaved, and summarising.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use crate::Sample;

/// `--vs PREFIX`: one more paired-ratio column, against the contender
/// whose name starts with PREFIX (in the scenarios that have one).
pub static VS: OnceLock<String> = OnceLock::new();

type Run = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Sample>>>>;

/// A scenario: named contenders, the first one the baseline.
pub struct Scenario {
    pub name: &'static str,
    contenders: Vec<(&'static str, Run)>,
}

impl Scenario {
    pub fn new(name: &'static str) -> Scenario {
        Scenario {
            name,
            contenders: Vec::new(),
        }
    }

    /// Adds a contender; the first added is the baseline of the ratios.
    pub fn with<F, Fut>(mut self, name: &'static str, run: F) -> Scenario
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = Sample> + 'static,
    {
        self.contenders
            .push((name, Box::new(move || Box::pin(run()))));
        self
    }

    /// Runs every contender once per round, in the order [`round_order`]
    /// gives, after one untimed warm-up round; returns a Markdown table.
    pub async fn run(&self, rounds: usize) -> String {
        let n = self.contenders.len();
        for (_, run) in &self.contenders {
            run().await;
        }
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); n];
        let mut survivors = vec![0usize; n];
        for round in 0..rounds {
            // An idle pause between rounds: the first contender of a round
            // follows no contender (see `round_order`).
            tokio::time::sleep(ROUND_PAUSE).await;
            for i in round_order(n, round) {
                let sample = (self.contenders[i].1)().await;
                times[i].push(sample.time);
                survivors[i] += sample.survivors;
            }
        }
        // A second paired ratio, against tokio::process, where it runs too
        // (the async baseline the capture targets are set against).
        let show_survivors = survivors.iter().any(|&s| s > 0) || self.name.contains("teardown");
        let tokio_idx = self
            .contenders
            .iter()
            .position(|(name, _)| name.starts_with("tokio::process"));
        let vs = VS.get().and_then(|prefix| {
            let i = self
                .contenders
                .iter()
                .position(|(name, _)| name.starts_with(prefix.as_str()))?;
            Some((prefix.as_str(), i))
        });
        let mut out = format!(
            "### {} ({rounds} rounds)\n\n| contender | median | min | max | median ratio vs {} |{}{}{}\n|---|---:|---:|---:|---:|{}{}{}\n",
            self.name,
            self.contenders[0].0,
            if tokio_idx.is_some() { " vs tokio |" } else { "" },
            vs.map_or(String::new(), |(prefix, _)| format!(" vs {prefix} |")),
            if show_survivors {
                " survivors per run |"
            } else {
                ""
            },
            if tokio_idx.is_some() { "---:|" } else { "" },
            if vs.is_some() { "---:|" } else { "" },
            if show_survivors {
                "---:|"
            } else {
                ""
            },
        );
        let paired = |a: &[Duration], b: &[Duration]| {
            let r: Vec<f64> = a
                .iter()
                .zip(b)
                .map(|(t, b)| t.as_secs_f64() / b.as_secs_f64().max(1e-9))
                .collect();
            median_f(r)
        };
        // The columns in the header's order: vs the first row, vs tokio,
        // vs `--vs`, survivors.
        for i in 0..n {
            let vs_tokio = tokio_idx.map_or(String::new(), |t| {
                format!(" {:.2}x |", paired(&times[i], &times[t]))
            });
            let vs_column = vs.map_or(String::new(), |(_, v)| {
                format!(" {:.2}x |", paired(&times[i], &times[v]))
            });
            let extra = if show_survivors {
                format!(" {:.1} |", survivors[i] as f64 / rounds as f64)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:.2}x |{}{}{}\n",
                self.contenders[i].0,
                fmt(median(times[i].clone())),
                fmt(*times[i].iter().min().unwrap()),
                fmt(*times[i].iter().max().unwrap()),
                paired(&times[i], &times[0]),
                vs_tokio,
                vs_column,
                extra
            ));
        }
        out
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// The untimed pause before each round, long enough for what the last
/// round left behind (a runtime's worker going back to sleep, the kernel's
/// deferred work) to be over.
pub const ROUND_PAUSE: Duration = Duration::from_millis(5);

/// The order in which `n` contenders run in round `round`: the rows of a
/// Williams design, taken in turn.
///
/// What one contender leaves behind (a runtime's worker still awake,
/// the kernel's deferred work after a cgroup is removed, a cache it
/// filled) is paid by the one that runs right after it. A plain rotation
/// (round r runs r, r+1, ...) keeps every contender's predecessor the same
/// in almost every round, so that cost always falls on the same
/// contender. In these rows each contender runs right after each other
/// one equally often (once per `n` rounds for an even `n`, twice per `2n`
/// for an odd `n`, whose rows come in mirrored pairs), and first in a
/// round equally often. Rounds run back to back would make the last of one
/// round the predecessor of the next one's first, pairs the design does
/// not balance: so each round starts after an idle pause
/// ([`ROUND_PAUSE`]), and its first contender follows no contender.
pub fn round_order(n: usize, round: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    // The first row: 0, n-1, 1, n-2, 2, ...: its steps (-1, 2, -3, 4, ...
    // modulo n) are all different, which is what balances the rows.
    let (mut low, mut high) = (0, n);
    let first = (0..n).map(|j| {
        if j % 2 == 0 {
            low += 1;
            low - 1
        } else {
            high -= 1;
            high
        }
    });
    let period = if n % 2 == 0 { n } else { 2 * n };
    let row = round % period;
    let mut order: Vec<usize> = first.map(|c| (c + row) % n).collect();
    if row >= n {
        order.reverse();
    }
    order
}

#[cfg(test)]
mod tests {
    use super::round_order;
    use std::collections::HashMap;

    #[test]
    fn every_contender_follows_every_other_equally_often() {
        for n in 1..=8 {
            let period = if n % 2 == 0 { n } else { 2 * n };
            let mut after: HashMap<(usize, usize), usize> = HashMap::new();
            let mut first = vec![0; n];
            for round in 0..period {
                let order = round_order(n, round);
                let mut sorted = order.clone();
                sorted.sort();
                assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "n={n} round={round}");
                first[order[0]] += 1;
                for pair in order.windows(2) {
                    *after.entry((pair[0], pair[1])).or_default() += 1;
                }
            }
            assert_eq!(after.len(), n * (n - 1), "n={n}: a pair never adjacent");
            let each = period / n;
            assert!(after.values().all(|&c| c == each), "n={n}: {after:?}");
            assert!(first.iter().all(|&c| c == period / n), "n={n}: {first:?}");
        }
    }
}
