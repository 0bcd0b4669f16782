//! pkit-bench: pkit against `std::process`, `tokio::process` and
//! `processkit` 3.3.4, side by side in one process.
//!
//! Every scenario runs all contenders once per round, in an order that
//! changes from round to round so that each runs first, and right after
//! each other one, equally often (a Williams design, `stats::round_order`:
//! none always meets a warm or a cold cache, or what its predecessor left
//! behind), with an idle pause of 5 ms between rounds (so a round's last
//! contender is no predecessor of the next round's first), for many
//! rounds. Per contender it reports the median, min and
//! max time, and the median of the per-round ratios against the baseline
//! (`std::process`, or a plain read loop for streaming). Ratios of the same
//! round are paired: a load spike hits all contenders of that round alike.
//!
//! ```text
//! cargo run --release -p pkit-bench -- [--rounds N] [--only NAME] [--rss-gib 2,8] [--big N]
//!     [--first-group-mib 256,8192] [--vs PREFIX] [--unlocked-env]
//! ```

mod callbacks;
mod count;
mod first_group;
mod options;
mod scenarios;
mod shutdown;
mod stats;

use std::time::Duration;

use clap::Parser;

#[global_allocator]
static ALLOC: count::Counting = count::Counting;

#[derive(Parser)]
#[command(about = "Benchmarks pkit side by side with std::process, tokio::process and processkit")]
struct Args {
    /// Rounds per scenario (at least 1).
    #[arg(long, default_value_t = 30, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    rounds: usize,
    /// Run only the scenarios whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Also run spawn-wait from a parent holding this many GiB of touched
    /// memory (comma-separated, e.g. 2,8). With `--probe-runs`, the probe's
    /// runs are made from a parent holding the first size given.
    #[arg(long, value_delimiter = ',')]
    rss_gib: Vec<u64>,
    /// Also run the 1 GiB scenarios, with this many rounds (at least 1).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    big: Option<usize>,
    /// Also time the first `Group::new()` of a fresh process holding this
    /// many MiB (comma-separated, e.g. 256,8192), against a small one.
    #[arg(long, value_delimiter = ',')]
    first_group_mib: Vec<u64>,
    /// Run one contender's spawn-wait of `/bin/true` this many times (after
    /// one warm-up run) and exit, for counting system calls per run with
    /// `strace -f -c` (see `--probe-with`); prints the wall time and this
    /// process's own CPU time per run to stderr, and how often per run each
    /// thread was scheduled in (this process's threads by name, and the
    /// owner-death guard's): the wake-ups a run causes, thread by thread.
    #[arg(long)]
    probe_runs: Option<usize>,
    /// With `--probe-runs`: also count heap allocations (and
    /// reallocations) and their bytes per run, the whole process's and the
    /// calling thread's.
    #[arg(long)]
    count_allocs: bool,
    /// Opt in to pkit's unlocked read of the environment
    /// (`pkit::read_environment_unlocked`) before anything runs: pkit's
    /// rows then measure that path (this program never changes its
    /// environment).
    #[arg(long)]
    unlocked_env: bool,
    /// The contender `--probe-runs` or `--probe-rss-lines` runs: std,
    /// tokio or pkit (also pkit-pgroup for `--probe-rss-lines`; for
    /// `--probe-runs`, more: std-cat, tokio-cat and pkit-cat are the small capture,
    /// tokio-fanout and pkit-fanout the 16-way fan-out; see the error
    /// message of an unknown name for the whole list). For `--probe-runs`,
    /// names joined with `+` (e.g. `std+tokio+pkit+processkit`) take turns
    /// within each run in this one process, and each one's median is printed,
    /// with the calling thread's CPU time, minor page faults and voluntary
    /// and involuntary context switches per run (`getrusage(RUSAGE_THREAD)`).
    #[arg(long, default_value = "pkit")]
    probe_with: String,
    /// Stream this many 128-byte lines (discarded) through one contender
    /// (see `--probe-with`), then print this process's peak resident
    /// memory before and after, and exit: one process per contender, as
    /// the peak of a process only grows.
    #[arg(long)]
    probe_rss_lines: Option<usize>,
    /// Add one more paired-ratio column, against the contender whose name
    /// starts with this (e.g. `--vs pkit` for `run()` against `output()`
    /// in the 64 MiB capture), in the scenarios that have one.
    #[arg(long)]
    vs: Option<String>,
    /// Internal: be the child of the first-group scenario.
    #[arg(long, hide = true)]
    first_group_child: Option<u64>,
}

/// One contender's result for one round.
pub struct Sample {
    pub time: Duration,
    /// Processes left alive (tree teardown only).
    pub survivors: usize,
}

impl From<Duration> for Sample {
    fn from(time: Duration) -> Sample {
        Sample { time, survivors: 0 }
    }
}

fn main() {
    let args = Args::parse();
    if args.unlocked_env {
        // SAFETY: this program never changes its environment (no
        // `set_var`, `remove_var`, `setenv`, ...), and no other thread
        // runs yet.
        unsafe { pkit::read_environment_unlocked() };
    }
    if let Some(mib) = args.first_group_child {
        first_group::child(mib);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(lines) = args.probe_rss_lines {
        let before = scenarios::peak_rss_kib();
        rt.block_on(scenarios::probe_rss(&args.probe_with, lines));
        let after = scenarios::peak_rss_kib();
        println!(
            "{}: peak RSS {:.1} MiB ({:.1} MiB before streaming)",
            args.probe_with,
            after as f64 / 1024.0,
            before as f64 / 1024.0
        );
        return;
    }
    if let Some(runs) = args.probe_runs {
        // `--rss-gib` with a probe: the runs are made from a parent holding
        // that much touched memory (the first size given).
        let ballast = args.rss_gib.first().map(|gib| touch_memory(gib << 30));
        // One warm-up run, then `runs` timed ones: the wall time and this
        // process's own CPU time (all its threads, children not counted)
        // per run, to stderr. The CPU time is the parent-side work, which
        // a loaded machine changes far less than the wall time.
        rt.block_on(scenarios::probe(&args.probe_with, 0));
        if args.count_allocs {
            count::start();
        }
        if runs > 0 {
            let counted = count::now();
            let (cpu, wall) = (own_cpu_ns(), std::time::Instant::now());
            let slices = own_slices();
            let threads = thread_slices();
            rt.block_on(scenarios::probe(&args.probe_with, runs - 1));
            let (cpu, wall) = (own_cpu_ns().saturating_sub(cpu), wall.elapsed());
            let after = own_slices();
            let threads_after = thread_slices();
            let per_run = |a: u64, b: u64| a.saturating_sub(b) as f64 / runs as f64;
            eprintln!(
                "{}: {runs} runs, wall {:.1} µs/run, this process's CPU {:.1} µs/run, \
                 times scheduled in per run: main thread {:.2}, other threads {:.2}",
                args.probe_with,
                wall.as_nanos() as f64 / runs as f64 / 1e3,
                cpu as f64 / runs as f64 / 1e3,
                per_run(after.0, slices.0),
                per_run(after.1, slices.1),
            );
            eprintln!(
                "  scheduled in per run, by thread: {}",
                per_thread(&threads, &threads_after, runs)
            );
            if args.count_allocs {
                let after = count::now();
                eprintln!(
                    "  allocations per run: the process {:.1} ({:.0} bytes), the main thread {:.1} ({:.0} bytes)",
                    per_run(after[0], counted[0]),
                    per_run(after[1], counted[1]),
                    per_run(after[2], counted[2]),
                    per_run(after[3], counted[3]),
                );
            }
        }
        drop(ballast);
        return;
    }
    if let Some(vs) = &args.vs {
        let _ = stats::VS.set(vs.clone());
    }
    println!("{}", machine());
    println!(
        "pkit mechanism here: {} ({})\n",
        pkit::host_containment()
            .mechanism
            .map_or("none", |m| m.as_str()),
        pkit::host_containment().reason
    );
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));
    for scenario in scenarios::all() {
        if wanted(scenario.name) {
            let table = rt.block_on(scenario.run(args.rounds));
            println!("{table}");
        }
    }
    if let Some(rounds) = args.big {
        for scenario in scenarios::big() {
            if wanted(scenario.name) {
                let table = rt.block_on(scenario.run(rounds));
                println!("{table}");
            }
        }
    }
    if !args.first_group_mib.is_empty() {
        let scenario = first_group::scenario(&args.first_group_mib);
        if wanted(scenario.name) {
            let table = rt.block_on(scenario.run(args.rounds));
            println!("{table}");
        }
    }
    for gib in &args.rss_gib {
        let name = format!("spawn-wait /bin/true, parent holding {gib} GiB");
        if !wanted(&name) {
            continue;
        }
        let ballast = touch_memory(*gib << 30);
        let scenario = scenarios::spawn_wait(Box::leak(name.into_boxed_str()), "/bin/true");
        let table = rt.block_on(scenario.run(args.rounds));
        println!("{table}");
        drop(ballast);
    }
    for gib in &args.rss_gib {
        let name = format!("spawn options: /bin/true, parent holding {gib} GiB");
        if !wanted(&name) {
            continue;
        }
        let ballast = touch_memory(*gib << 30);
        let scenario = options::scenario(Box::leak(name.into_boxed_str()));
        let table = rt.block_on(scenario.run(args.rounds));
        println!("{table}");
        drop(ballast);
    }
}

/// The CPU time all threads of this process have run so far, in
/// nanoseconds (`CLOCK_PROCESS_CPUTIME_ID`, the scheduler's exact count;
/// threads that have ended are counted too, such as a reader thread of a
/// run's own, which `/proc/self/task/*/schedstat`, read here before, left
/// out).
fn own_cpu_ns() -> u64 {
    scenarios::process_cpu_ns()
}

/// How many times this process's main thread and its other threads were
/// scheduled in so far (`schedstat`'s third field), for counting wake-ups.
fn own_slices() -> (u64, u64) {
    let main = std::process::id().to_string();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    let mut counts = (0, 0);
    for t in tasks.flatten() {
        let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) else {
            continue;
        };
        let n: u64 = s
            .split_whitespace()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if t.file_name().to_str() == Some(main.as_str()) {
            counts.0 += n;
        } else {
            counts.1 += n;
        }
    }
    counts
}

/// How many times each thread was scheduled in so far, by thread id:
/// this process's threads (their name as `comm` has it) and the
/// owner-death guard's, when one runs (`guard`), for telling which
/// thread a run wakes. A thread that ended is not counted.
fn thread_slices() -> Vec<(String, String, u64)> {
    let mut found = Vec::new();
    let mut read = |dir: &std::path::Path, label: &dyn Fn(&str) -> String| {
        let Ok(tasks) = std::fs::read_dir(dir) else {
            return;
        };
        for t in tasks.flatten() {
            let tid = t.file_name().to_string_lossy().into_owned();
            let n = std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
                .unwrap_or(0);
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            found.push((tid, label(comm.trim()), n));
        }
    };
    let main = std::process::id().to_string();
    read(std::path::Path::new("/proc/self/task"), &|comm| {
        comm.to_owned()
    });
    if let Some(guard) = pkit::host_containment().guard.pid {
        read(
            std::path::Path::new(&format!("/proc/{guard}/task")),
            &|_| "guard".to_owned(),
        );
    }
    for (tid, name, _) in &mut found {
        if *tid == main {
            *name = "main".into();
        }
    }
    found
}

/// The threads scheduled in during the runs, with how often per run
/// (a thread started meanwhile counts from zero).
fn per_thread(
    before: &[(String, String, u64)],
    after: &[(String, String, u64)],
    runs: usize,
) -> String {
    let mut parts = Vec::new();
    for (tid, name, n) in after {
        let was = before
            .iter()
            .find(|(t, ..)| t == tid)
            .map_or(0, |(.., n)| *n);
        let per_run = n.saturating_sub(was) as f64 / runs as f64;
        if per_run >= 0.005 {
            parts.push(format!("{name} ({tid}) {per_run:.2}"));
        }
    }
    parts.join(", ")
}

/// Allocates and touches `bytes` so they are resident.
pub fn touch_memory(bytes: u64) -> Vec<u8> {
    let mut v = vec![0u8; bytes as usize];
    for i in (0..v.len()).step_by(4096) {
        v[i] = 1;
    }
    std::hint::black_box(&v);
    v
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|k| k.parse::<u64>().ok())
        .map_or(0, |k| k / 1024 / 1024);
    format!(
        "machine: {cpus} CPUs ({model}), {mem} GiB, Linux {}",
        kernel.trim()
    )
}
