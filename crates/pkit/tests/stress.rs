//! Stress: many runs from 16 concurrent tasks mixing the verbs, `start` with
//! streaming, pipelines, timeouts, cancellations, drops, groups with limits
//! and groups killed or closed with trees in them, in both mechanisms.
//! Afterwards nothing of ours may be left:
//!
//! - no process started by the stress alive anywhere on the host (each
//!   carries a marker in its environment; zombies waiting for the host's
//!   init are excepted, they are no longer running);
//! - no child of ours at all, zombies included;
//! - no `pkit-<our pid>-*` cgroup directory, v2 or v1;
//! - no growth in open fds (`/proc/self/fd`) or threads (`/proc/self/task`)
//!   over a warmed-up baseline (tokio's idle blocking threads exit after
//!   10 s: polled for up to 30 s);
//! - resident memory back within [`RSS_TOLERANCE_KIB`] of the warmed-up
//!   baseline (allocator arenas keep some memory; a per-run leak of a few
//!   KiB over 10,000 runs would exceed it).
//!
//! The bounded slice runs in the normal suite, time-boxed by
//! `PKIT_STRESS_SECS` (default 30 s in all, split between the mechanisms;
//! CI sets 20 for its first pass, 10 s for each mechanism, and 15 for its
//! process-group and portable passes, which test one mechanism each: the
//! process-group mechanism gets 25 s a run in all). The full 10,000 runs:
//! `cargo test --release -p pkit --test stress -- --ignored stress`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pkit::{CancelToken, Command, MechanismChoice};

/// The environment variable every stress process carries (value: our pid).
const MARK: &str = "PKIT_STRESS_OWNER";
/// Concurrent tasks.
const TASKS: usize = 16;
/// How far resident memory may stay above the warmed-up baseline.
const RSS_TOLERANCE_KIB: u64 = 48 * 1024;
/// How many more threads than the baseline may remain.
const THREAD_TOLERANCE: usize = 2;

fn marked(cmd: Command) -> Command {
    cmd.env(MARK, std::process::id().to_string())
}

fn m_sh(choice: MechanismChoice, script: &str) -> Command {
    marked(sh(choice, script))
}

fn m_plain(program: &str) -> Command {
    marked(Command::new(program))
}

/// Runs operation number `i` (the mix is chosen by `i`), checking its
/// result. Returns which kind it was, for the summary.
async fn one(choice: MechanismChoice, i: usize) -> usize {
    let kind = i % 12;
    match kind {
        0 => {
            let out = m_sh(choice, "echo \"$1\"; echo e >&2")
                .arg(i.to_string())
                .output()
                .await
                .expect("output");
            assert!(out.success(), "{choice} #{i}: {:?}", out.outcome());
            assert_eq!(out.stdout_str(), format!("{i}\n"), "{choice} #{i}");
            assert_eq!(out.stderr_str(), "e\n", "{choice} #{i}");
        }
        1 => {
            let got = m_sh(choice, "cat")
                .stdin_str(format!("in-{i}"))
                .run()
                .await
                .expect("run");
            assert_eq!(got, format!("in-{i}"), "{choice} #{i}");
        }
        2 => {
            let code = m_sh(choice, "exit 3").exit_code().await.expect("exit_code");
            assert_eq!(code, 3, "{choice} #{i}");
        }
        3 => {
            let yes = m_sh(choice, "true").probe().await.expect("probe");
            let no = m_sh(choice, "false").probe().await.expect("probe");
            assert!(yes && !no, "{choice} #{i}");
        }
        4 => {
            // start + streaming, in a group of its own.
            let g = group(choice);
            let mut p = g
                .start(&m_sh(choice, "seq 1 40; echo done >&2").stream_lines())
                .expect("start");
            let mut lines = p.lines();
            let mut n = 0;
            while let Some(_l) = lines.next_line().await {
                n += 1;
            }
            assert_eq!(n, 41, "{choice} #{i}: lines streamed");
            assert!(p.wait().await.expect("wait").success(), "{choice} #{i}");
            drop(p);
            g.close().await.expect("close");
        }
        5 => {
            let out = m_sh(choice, "seq 1 100")
                .pipe(m_plain("wc").arg("-l"))
                .mechanism(choice)
                .output()
                .await
                .expect("pipe output");
            assert!(out.success(), "{choice} #{i}: {:?}", out.outcome());
            assert_eq!(out.stdout_str().trim(), "100", "{choice} #{i}");
        }
        6 => {
            // A timeout with a tree that ignores nothing.
            let out = m_sh(choice, "sleep 300 & sleep 300; wait")
                .timeout(Duration::from_millis(30))
                .output()
                .await
                .expect("output");
            assert!(out.timed_out(), "{choice} #{i}: {:?}", out.outcome());
        }
        7 => {
            // Cancellation from another task.
            let token = CancelToken::new();
            let t = token.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                t.cancel();
            });
            let r = m_sh(choice, "sleep 300 & sleep 300; wait")
                .cancel_token(&token)
                .output()
                .await;
            match r {
                Err(e) => assert!(e.is_cancelled(), "{choice} #{i}: {e}"),
                Ok(out) => panic!(
                    "{choice} #{i}: a cancelled run returned {:?}",
                    out.outcome()
                ),
            }
        }
        8 => {
            // A verb's future dropped mid-run.
            let _ = tokio::time::timeout(
                Duration::from_millis(10),
                m_sh(choice, "sleep 300 & sleep 300; wait").output(),
            )
            .await;
        }
        9 => {
            // A group with a tree, killed, then closed.
            let g = group(choice);
            let mut p = g
                .start(&m_sh(choice, "sleep 300 & sleep 300 & wait"))
                .expect("start");
            g.kill().expect("kill");
            let out = p.wait().await.expect("wait");
            assert_eq!(out.signal(), Some(9), "{choice} #{i}: {:?}", out.outcome());
            drop(p);
            g.close().await.expect("close");
        }
        10 => {
            // Started processes dropped without a wait, then the group.
            let g = group(choice);
            let a = g.start(&m_sh(choice, "sleep 300 & wait")).expect("start");
            let b = g.start(&m_plain("sleep").arg("300")).expect("start");
            drop((a, b));
            drop(g);
        }
        _ => {
            // A group with limits (cgroup v1 controllers on hybrid hosts).
            let mut builder = pkit::Group::builder().mechanism(choice);
            if choice == MechanismChoice::Cgroup {
                builder = builder.memory_max(256 << 20).max_processes(64);
            }
            let g = builder.build().expect("group with limits");
            let out = g
                .output(&m_sh(choice, "echo limited"))
                .await
                .expect("output");
            assert_eq!(out.stdout_str(), "limited\n", "{choice} #{i}");
        }
    }
    kind
}

/// Runs operations from [`TASKS`] tasks until `count` have been started or
/// `until` has passed. Returns how many ran.
async fn storm(choice: MechanismChoice, count: usize, until: Option<Instant>) -> usize {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            loop {
                if until.is_some_and(|u| Instant::now() >= u) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                one(choice, i).await;
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("a stress task panicked");
    }
    total
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Live (not zombie) processes anywhere on the host carrying our marker.
fn marked_alive() -> Vec<(u32, Option<String>)> {
    let needle = format!("{MARK}={}", std::process::id());
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let found = env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes());
        if found && stat(pid).is_some_and(|s| s.state != 'Z') {
            out.push((pid, comm(pid)));
        }
    }
    out
}

/// `pkit-<our pid>-*` directories in the v1 hierarchies (to three levels).
fn own_v1_dirs() -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, prefix: &str, depth: usize, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with(prefix) {
                out.push(e.path());
            } else if depth > 0 {
                walk(&e.path(), prefix, depth - 1, out);
            }
        }
    }
    let prefix = common::name_prefix(std::process::id());
    let mut out = Vec::new();
    for controller in ["memory", "pids", "cpu", "cpuset", "cpu,cpuacct"] {
        let root = std::path::Path::new("/sys/fs/cgroup").join(controller);
        if root.is_dir() && !root.join("cgroup.controllers").exists() {
            walk(&root, &prefix, 3, &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Polls `cond` until it holds or `within` passes; returns its last value.
async fn settle<T>(within: Duration, mut probe: impl FnMut() -> T, ok: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + within;
    loop {
        let v = probe();
        if ok(&v) || Instant::now() >= deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Baseline {
    fds: common::fds::Snapshot,
    threads: usize,
    rss_kib: u64,
}

async fn baseline(choice: MechanismChoice) -> Baseline {
    // Warm up: lazily made process-wide state (the reaper thread, the clone3
    // probe, tokio's drivers and blocking threads, allocator arenas for 16
    // concurrent tasks) is not a leak.
    storm(choice, 8 * 12, None).await;
    assert_nothing_left(&format!("{choice}: stress warm-up")).await;
    Baseline {
        fds: common::fds::Snapshot::take(),
        threads: threads(),
        rss_kib: rss_kib(),
    }
}

async fn check_after(choice: MechanismChoice, ran: usize, base: &Baseline) {
    let what = format!("{choice}: after {ran} stress runs");
    assert_nothing_left(&what).await;
    let alive = settle(DEADLINE, marked_alive, |v| v.is_empty()).await;
    assert!(
        alive.is_empty(),
        "{what}: marked processes alive: {alive:?}"
    );
    let v1 = settle(DEADLINE, own_v1_dirs, |v| v.is_empty()).await;
    assert!(v1.is_empty(), "{what}: v1 cgroup directories left: {v1:?}");
    // Another test's runtime made meanwhile is not ours (common::fds).
    common::fds::assert_none_opened_since(&base.fds, &what).await;
    let fds = common::fds::Snapshot::take().len();
    let th = settle(Duration::from_secs(30), threads, |&n| {
        n <= base.threads + THREAD_TOLERANCE
    })
    .await;
    assert!(
        th <= base.threads + THREAD_TOLERANCE,
        "{what}: {th} threads, {} at the baseline",
        base.threads
    );
    let rss = rss_kib();
    assert!(
        rss <= base.rss_kib + RSS_TOLERANCE_KIB,
        "{what}: VmRSS {rss} KiB, {} KiB at the baseline (tolerance {RSS_TOLERANCE_KIB} KiB)",
        base.rss_kib
    );
    eprintln!(
        "{what}: fds {fds} (baseline {}), threads {th} (baseline {}), VmRSS {rss} KiB (baseline {} KiB)",
        base.fds.len(), base.threads, base.rss_kib
    );
}

fn slice_secs() -> u64 {
    std::env::var("PKIT_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_slice_leaves_nothing() {
    // Alone in this binary (its fds, threads and memory are measured), not
    // among all the binaries run at once: what it checks is its own
    // (processes carrying its pid, its children, its cgroups, its fds,
    // threads and memory), which another test process does not change; as
    // an exclusive test it held every other binary's tests for its slice.
    let alone = begin_alone_in_binary().await;
    let choices = mechanisms();
    let per = Duration::from_secs(slice_secs()) / choices.len() as u32;
    for choice in choices {
        let base = baseline(choice).await;
        let ran = storm(choice, usize::MAX, Some(Instant::now() + per)).await;
        assert!(ran >= TASKS, "{choice}: only {ran} runs in {per:?}");
        check_after(choice, ran, &base).await;
    }
    end_exclusive(alone, "stress_slice_leaves_nothing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10,000 runs per mechanism: cargo test --release -p pkit --test stress -- --ignored stress"]
async fn stress_ten_thousand_runs_leave_nothing() {
    let alone = begin_alone_in_binary().await;
    for choice in mechanisms() {
        let base = baseline(choice).await;
        let started = Instant::now();
        let ran = storm(choice, 10_000, None).await;
        assert_eq!(ran, 10_000, "{choice}");
        eprintln!("{choice}: 10,000 runs in {:?}", started.elapsed());
        check_after(choice, ran, &base).await;
    }
    end_exclusive(alone, "stress_ten_thousand_runs_leave_nothing").await;
}
