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
            let n: u64 = line
                .text
                .parse()
                .unwrap_or_else(|_| panic!("{what}: {line:?}"));
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
    let runs = 1000;
    for choice in mechanisms() {
        let g = std::sync::Arc::new(group(choice));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // One deadline for all: a lost wake-up fails the test at once,
        // not after a deadline per case (the other cases are aborted).
        let all = at_most_at_once(8, 0..runs, |i| {
            let g = g.clone();
            let done = done.clone();
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
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        tokio::time::timeout(DEADLINE, all)
            .await
            .unwrap_or_else(|_| panic!("{choice}: short streams hung (a lost wake-up?)"));
        assert_eq!(
            done.load(std::sync::atomic::Ordering::Relaxed),
            runs,
            "{choice}"
        );
        eprintln!("{choice}: {runs} short streams ended");
    }
    suite.end().await;
}

/// `wait_for_line` (the queue held for now, a probe popping it) on a
/// 2-line queue that both outputs flood, for a line deep in stderr: it is
/// found; the stream taken after it goes on from there to the end with
/// nothing dropped.
///
/// The script stays until the probe has returned (it waits for a file the
/// test makes then): were it to end first, the probe would have only its
/// 2 s after the exit for the up to 64 KiB per stream still in the pipes
/// (some 22,000 lines through a 2-line queue), which a starved reader
/// missed at load 39 ("the process ended first", portable). What the
/// probe does after an exit is not this test's subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_on_a_flooded_tiny_queue_finds_a_deep_line() {
    let suite = begin("rv25 probe").await;
    const N: usize = 20_000;
    for choice in mechanisms() {
        let what = format!("{choice}: probe");
        let g = group(choice);
        let found = TempPath::new("rv25-probe-found");
        let cmd = sh(
            choice,
            "seq 1 \"$1\" & seq 1 \"$1\" >&2; wait; \
             while [ ! -e \"$2\" ]; do sleep 0.02; done",
        )
        .args([N.to_string().as_str(), found.as_str()])
        .stream_lines()
        .buffer_lines(2);
        let mut p = g.start(&cmd).expect("start");
        let line = p
            .wait_for_line(
                |l| l.stream == StreamKind::Stderr && l.text == "15000",
                DEADLINE,
            )
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(line.text, "15000", "{what}");
        std::fs::write(found.path(), "").expect("the probe's file");
        // Taken at once: the queue is held again before a second's patience
        // runs out, so nothing is dropped.
        let count = drain_slowly(&mut p, 5, false, &what).await;
        let out = tokio::time::timeout(DEADLINE, p.wait())
            .await
            .unwrap_or_else(|_| panic!("{what}: wait hung"))
            .expect("wait");
        assert_eq!(out.code(), Some(0), "{what}: {out:?}");
        assert!(
            count.get(&StreamKind::Stderr).copied().unwrap_or(0) > 0,
            "{what}"
        );
    }
    suite.end().await;
}

/// The stream not taken while both outputs flood a 3-line queue: taken
/// after 0.3 s (within the patience) or 1.5 s (past it), then read slowly:
/// the lines seen and the lines dropped are all the lines written. And
/// `wait` with the stream never taken lets the full queue go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unheld_full_queue_taken_late_or_never_ends() {
    let suite = begin("rv25 unheld").await;
    const N: usize = 5_000;
    for choice in mechanisms() {
        for late in [300u64, 1_500] {
            let what = format!("{choice}: taken after {late} ms");
            let g = group(choice);
            let mut p = g.start(&both(choice, N).buffer_lines(3)).expect("start");
            tokio::time::sleep(Duration::from_millis(late)).await;
            let count = drain_slowly(&mut p, late, false, &what).await;
            let out = tokio::time::timeout(DEADLINE, p.wait())
                .await
                .unwrap_or_else(|_| panic!("{what}: wait hung"))
                .expect("wait");
            assert_eq!(out.code(), Some(0), "{what}: {out:?}");
            let seen: u64 = count.values().sum();
            assert_eq!(seen + p.dropped_lines(), 2 * N as u64, "{what}: {count:?}");
        }
        let what = format!("{choice}: never taken");
        let g = group(choice);
        let mut p = g
            .start(&both(choice, 200_000).buffer_lines(1))
            .expect("start");
        let out = tokio::time::timeout(DEADLINE, p.wait())
            .await
            .unwrap_or_else(|_| panic!("{what}: wait hung"))
            .expect("wait");
        assert_eq!(out.code(), Some(0), "{what}: {out:?}");
        assert!(p.dropped_lines() > 0, "{what}");
    }
    suite.end().await;
}

/// `split_lines` over a 1-line merged queue while both outputs flood, the
/// two streams read concurrently at random pace: each gets all its lines
/// in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_lines_over_a_one_line_queue_deliver_everything() {
    let suite = begin("rv25 split").await;
    const N: u64 = 5_000;
    for choice in mechanisms() {
        let what = format!("{choice}: split_lines");
        let g = group(choice);
        let mut p = g
            .start(&both(choice, N as usize).buffer_lines(1))
            .expect("start");
        let (out, err) = p.split_lines();
        let read = |mut s: pkit::StreamLines, seed: u64| async move {
            let mut rng = Rng(seed);
            let mut n = 0u64;
            while let Some(l) = s.next_line().await {
                n += 1;
                assert_eq!(l.text, n.to_string());
                if rng.next() % 4 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            n
        };
        let both_read = async { tokio::join!(read(out, 3), read(err, 5)) };
        let (o, e) = tokio::time::timeout(DEADLINE, both_read)
            .await
            .unwrap_or_else(|_| panic!("{what}: hung"));
        assert_eq!((o, e), (N, N), "{what}");
        let res = tokio::time::timeout(DEADLINE, p.wait())
            .await
            .unwrap_or_else(|_| panic!("{what}: wait hung"))
            .expect("wait");
        assert_eq!(res.code(), Some(0), "{what}: {res:?}");
    }
    suite.end().await;
}

/// The runtime that runs the readers shut down while both wait for room
/// in a full, held 2-line queue (their `send`s dropped while counted):
/// the stream, read on another runtime, gives what was queued and ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_dropped_while_waiting_for_room_end_the_stream() {
    let suite = begin("rv25 runtime gone").await;
    for choice in mechanisms() {
        let what = format!("{choice}: runtime gone");
        let g = std::sync::Arc::new(group(choice));
        let g2 = g.clone();
        let (mut p, mut lines) = tokio::task::spawn_blocking(move || {
            on_short_runtime(move || {
                Box::pin(async move {
                    let mut p = g2
                        .start(&both(choice, 1_000_000).buffer_lines(2))
                        .expect("start");
                    let mut lines = p.lines();
                    for _ in 0..5 {
                        lines.next_line().await.expect("a line");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    (p, lines)
                })
            })
        })
        .await
        .expect("short runtime");
        let rest = async {
            let mut n = 0u64;
            while lines.next_line().await.is_some() {
                n += 1;
            }
            n
        };
        tokio::time::timeout(DEADLINE, rest)
            .await
            .unwrap_or_else(|_| panic!("{what}: the stream never ended"));
        p.kill().expect("kill");
        let _ = tokio::time::timeout(DEADLINE, p.wait()).await;
        drop(p);
        drop(g);
    }
    suite.end().await;
}

/// The blocking API's line iterator over a 1-line queue both outputs
/// flood: every line, each stream in order (a watchdog fails a hang).
#[test]
fn blocking_lines_over_a_one_line_queue_deliver_everything() {
    in_suite("rv25 blocking", || {
        const N: u64 = 5_000;
        for choice in mechanisms() {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut p = both(choice, N as usize)
                    .buffer_lines(1)
                    .blocking()
                    .start()
                    .expect("start");
                let mut last: HashMap<StreamKind, u64> = HashMap::new();
                for l in p.lines() {
                    let n: u64 = l.text.parse().expect("a number");
                    let prev = last.entry(l.stream).or_insert(0);
                    assert_eq!(n, *prev + 1, "{choice}: in order");
                    *prev = n;
                }
                let out = p.wait().expect("wait");
                let _ = tx.send((last, out.code()));
            });
            let (last, code) = rx
                .recv_timeout(DEADLINE)
                .unwrap_or_else(|e| panic!("{choice}: blocking lines hung or failed: {e}"));
            assert_eq!(last.get(&StreamKind::Stdout), Some(&N), "{choice}");
            assert_eq!(last.get(&StreamKind::Stderr), Some(&N), "{choice}");
            assert_eq!(code, Some(0), "{choice}");
        }
    });
}

/// A capture-only run whose outputs pass the handoff size (a blocking
/// thread takes each capture over, the pinned stop registration let go
/// first) and are then held open by an escaped descendant, silent or
/// writing without end, the shell exiting at once: the stop still reaches
/// each capture, whether it comes before, during or after the takeover.
/// 20 rounds per mechanism to cross the race window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_near_the_capture_takeover_still_ends_the_read() {
    let suite = begin("rv25 handoff stop").await;
    for choice in mechanisms() {
        for round in 0..20 {
            let holder = if round % 2 == 0 { "sleep 300" } else { "yes" };
            let what = format!("{choice}: round {round}, held by {holder}");
            let script = format!(
                "head -c $((600000 + {round} * 4096)) /dev/zero; \
                 head -c 600000 /dev/zero >&2; {holder} & {holder} >&2 & exit 0"
            );
            let out = tokio::time::timeout(DEADLINE, sh(choice, &script).output())
                .await
                .unwrap_or_else(|_| panic!("{what}: output hung"))
                .expect("output");
            assert_eq!(out.code(), Some(0), "{what}");
            assert!(
                out.stdout().len() >= 600_000,
                "{what}: {}",
                out.stdout().len()
            );
            assert!(
                out.stderr().len() >= 600_000,
                "{what}: {}",
                out.stderr().len()
            );
        }
    }
    suite.end().await;
}
