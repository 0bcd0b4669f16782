//! rv25's hostile review of the perf21 merge (faa8248..0872e21): the line
//! queue's sender waits on a `Notified` only on its slow path and counts
//! itself in `producers_waiting`, the consumer wakes senders only when one
//! is counted and the queue is at most half full, and the reader keeps one
//! stop registration per stream. A lost wake-up shows here as a deadline
//! missed (a failure, never a hang). Every mechanism.
mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use pkit::{Command, MechanismChoice, Overflow, StreamKind};

/// A generous bound for any one stream to be read to its end.
const DEADLINE: Duration = Duration::from_secs(30);

/// A small xorshift: random but repeatable pauses, no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A script writing `1..=n` to stdout and to stderr at once (two writers,
/// so both readers push into the merged queue concurrently).
fn both(choice: MechanismChoice, n: usize) -> Command {
    sh(choice, "seq 1 \"$1\" & seq 1 \"$1\" >&2; wait")
        .arg(n.to_string())
        .stream_lines()
}

/// Reads `p`'s merged stream to its end, one line at a time, pausing at
/// random (a yield most times, a short sleep now and then); checks each
/// stream's lines are `1, 2, ...` in order with none missing (when `all`),
/// or increasing (when lines may be dropped). Returns the lines per stream.
async fn drain_slowly(
    p: &mut pkit::RunningProcess,
    seed: u64,
    all: bool,
    what: &str,
) -> HashMap<StreamKind, u64> {
    let mut lines = p.lines();
    let mut rng = Rng(seed | 1);
    let mut last: HashMap<StreamKind, u64> = HashMap::new();
    let mut count: HashMap<StreamKind, u64> = HashMap::new();
    let read = async {
        while let Some(line) = lines.next_line().await {
            let n: u64 = line.text.parse().unwrap_or_else(|_| panic!("{what}: {line:?}"));
            let prev = last.entry(line.stream).or_insert(0);
            if all {
                assert_eq!(n, *prev + 1, "{what}: {:?} out of order", line.stream);
            } else {
                assert!(n > *prev, "{what}: {:?} out of order", line.stream);
            }
            *prev = n;
            *count.entry(line.stream).or_insert(0) += 1;
            match rng.next() % 64 {
                0 => tokio::time::sleep(Duration::from_millis(1)).await,
                1..=24 => tokio::task::yield_now().await,
                _ => {}
            }
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .unwrap_or_else(|_| panic!("{what}: the stream hung (a lost wake-up?): {count:?}"));
    count
}

/// Both streams flood queues of 1, 2, 3, 5 and 7 lines (odd ones, and
/// ones whose half rounds down to 0) read one line at a time at random
/// pace: every line arrives, in order, none dropped, and the run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_streams_flood_tiny_queues_read_one_line_at_a_time() {
    let suite = begin("rv25 tiny queues").await;
    const N: usize = 5_000;
    for choice in mechanisms() {
        for cap in [1usize, 2, 3, 5, 7] {
            let what = format!("{choice}: buffer_lines({cap})");
            let g = group(choice);
            let mut p = g.start(&both(choice, N).buffer_lines(cap)).expect("start");
            let count = drain_slowly(&mut p, cap as u64 * 7919, true, &what).await;
            assert_eq!(count.get(&StreamKind::Stdout), Some(&(N as u64)), "{what}");
            assert_eq!(count.get(&StreamKind::Stderr), Some(&(N as u64)), "{what}");
            let out = tokio::time::timeout(DEADLINE, p.wait())
                .await
                .unwrap_or_else(|_| panic!("{what}: wait hung"))
                .expect("wait");
            assert_eq!(out.code(), Some(0), "{what}: {out:?}");
            assert_eq!(p.dropped_lines(), 0, "{what}");
        }
    }
    suite.end().await;
}

/// 32 streams at once, each flooding both outputs into a 3-line queue
/// read at random pace on a 2-worker runtime: all of them end, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_streams_at_once_lose_no_wake_up() {
    let suite = begin("rv25 32 streams").await;
    const N: usize = 1_500;
    for choice in mechanisms() {
        let g = std::sync::Arc::new(group(choice));
        all_at_once(0..32u64, |i| {
            let g = g.clone();
            async move {
                let what = format!("{choice}: stream {i}");
                let cap = [1usize, 2, 3][i as usize % 3];
                let mut p = g.start(&both(choice, N).buffer_lines(cap)).expect("start");
                let count = drain_slowly(&mut p, i * 104_729 + 1, true, &what).await;
                assert_eq!(count.get(&StreamKind::Stdout), Some(&(N as u64)), "{what}");
                assert_eq!(count.get(&StreamKind::Stderr), Some(&(N as u64)), "{what}");
                let out = tokio::time::timeout(DEADLINE, p.wait())
                    .await
                    .unwrap_or_else(|_| panic!("{what}: wait hung"))
                    .expect("wait");
                assert_eq!(out.code(), Some(0), "{what}: {out:?}");
            }
        })
        .await;
    }
    suite.end().await;
}

/// `DropNewest` on 1- and 3-line queues read slowly while both outputs
/// flood: the run ends, and the lines seen plus the lines dropped are all
/// the lines written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_newest_on_tiny_queues_accounts_for_every_line() {
    let suite = begin("rv25 drop newest").await;
    const N: usize = 5_000;
    for choice in mechanisms() {
        for cap in [1usize, 3] {
            let what = format!("{choice}: DropNewest, buffer_lines({cap})");
            let g = group(choice);
            let cmd = both(choice, N)
                .buffer_lines(cap)
                .overflow(Overflow::DropNewest);
            let mut p = g.start(&cmd).expect("start");
            let count = drain_slowly(&mut p, 31 + cap as u64, false, &what).await;
            let out = tokio::time::timeout(DEADLINE, p.wait())
                .await
                .unwrap_or_else(|_| panic!("{what}: wait hung"))
                .expect("wait");
            assert_eq!(out.code(), Some(0), "{what}: {out:?}");
            let seen: u64 = count.values().sum();
            assert_eq!(seen + p.dropped_lines(), 2 * N as u64, "{what}: {count:?}");
        }
    }
    suite.end().await;
}

/// The stream dropped mid-flood while a reader waits for room in a full
/// 1-line queue (and while both do): the child is drained to its end and
/// `wait` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_mid_flood_frees_the_waiting_readers() {
    let suite = begin("rv25 drop mid flood").await;
    for choice in mechanisms() {
        for after in [0usize, 1, 100] {
            let what = format!("{choice}: dropped after {after} lines");
            let g = group(choice);
            let mut p = g
                .start(&both(choice, 200_000).buffer_lines(1))
                .expect("start");
            let mut lines = p.lines();
            for _ in 0..after {
                lines.next_line().await.expect("a line");
            }
            // Both readers are blocked on the full queue by now.
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(lines);
            let out = tokio::time::timeout(DEADLINE, p.wait())
                .await
                .unwrap_or_else(|_| panic!("{what}: wait hung"))
                .expect("wait");
            assert_eq!(out.code(), Some(0), "{what}: {out:?}");
        }
    }
    suite.end().await;
}

/// `wait` while a consumer holds a full 2-line queue and reads slowly,
/// with the writers escaped (the shell exits, `seq`s run on and hold the
/// pipes): `wait` ends the readers (the stop reaches a reader blocked on
/// the queue and one blocked on the pipe), and the stream ends after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_stops_readers_blocked_on_a_held_full_queue() {
    let suite = begin("rv25 wait while held").await;
    for choice in mechanisms() {
        let what = format!("{choice}: wait while held");
        let g = group(choice);
        let cmd = sh(
            choice,
            "seq 1 100000000 & seq 1 100000000 >&2 & sleep 0.2; exit 0",
        )
        .stream_lines()
        .buffer_lines(2);
        let mut p = g.start(&cmd).expect("start");
        let mut lines = p.lines();
        let consumer = tokio::spawn(async move {
            let mut n = 0u64;
            while lines.next_line().await.is_some() {
                n += 1;
                if n % 256 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            n
        });
        let out = tokio::time::timeout(DEADLINE, p.wait())
            .await
            .unwrap_or_else(|_| panic!("{what}: wait hung"))
            .expect("wait");
        assert_eq!(out.code(), Some(0), "{what}: {out:?}");
        let n = tokio::time::timeout(DEADLINE, consumer)
            .await
            .unwrap_or_else(|_| panic!("{what}: the stream never ended after wait"))
            .expect("consumer");
        assert!(n > 0, "{what}");
        drop(p);
        drop(g);
    }
    suite.end().await;
}

/// 1000 short-lived streams (a line on each output into a 1-line queue),
/// eight at a time: each gives both lines and ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_short_streams_each_end() {
    let suite = begin("rv25 thousand short").await;
    let runs = if mechanisms().len() > 1 { 500 } else { 1000 };
    for choice in mechanisms() {
        let g = std::sync::Arc::new(group(choice));
        at_most_at_once(8, 0..runs, |i| {
            let g = g.clone();
            async move {
                let what = format!("{choice}: short stream {i}");
                let cmd = sh(choice, "echo a; echo b >&2; echo c")
                    .stream_lines()
                    .buffer_lines(1);
                let mut p = g.start(&cmd).expect("start");
                let mut lines = p.lines();
                let mut got = Vec::new();
                let read = async {
                    while let Some(l) = lines.next_line().await {
                        got.push(l.text);
                    }
                };
                tokio::time::timeout(DEADLINE, read)
                    .await
                    .unwrap_or_else(|_| panic!("{what}: hung with {got:?}"));
                got.sort();
                assert_eq!(got, ["a", "b", "c"], "{what}");
                let out = tokio::time::timeout(DEADLINE, p.wait())
                    .await
                    .unwrap_or_else(|_| panic!("{what}: wait hung"))
                    .expect("wait");
                assert_eq!(out.code(), Some(0), "{what}: {out:?}");
            }
        })
        .await;
    }
    suite.end().await;
}
