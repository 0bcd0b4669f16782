//! The scenarios. Each contender does the same work the way its library
//! would be used for it; the times include spawning, waiting and (for the
//! containing libraries) creating and removing the container.

use std::io::{BufRead, Read, Write};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::stats::Scenario;
use crate::Sample;

const SMALL_INPUT: &[u8] = b"0123456789abcdef0123456789abcdef"; // 32 bytes
const LINES: usize = 8000;
const GIB_LINES: usize = 8 << 20; // 8 Mi lines of 128 bytes = 1 GiB
const BIG: usize = 64 << 20;

/// The 1 GiB scenarios (run with `--big`: a few seconds per round).
pub fn big() -> Vec<Scenario> {
    vec![
        streaming("streaming 1 GiB of 128-byte lines", GIB_LINES, false),
        pipeline(
            "3-stage pipeline moving 1 GiB (head | cat | wc -c)",
            1 << 30,
        ),
    ]
}

pub fn all() -> Vec<Scenario> {
    vec![
        spawn_wait("spawn-wait /bin/true", "/bin/true").with(
            "pkit (no spare cgroup: mkdir + rmdir in the run)",
            || async {
                // Empty the pool first (untimed), so this run creates its
                // cgroup; then time the run and the removal of that one.
                pkit::release_spare_cgroups();
                let t = Instant::now();
                pkit_true("/bin/true").await;
                pkit::release_spare_cgroups();
                let time = t.elapsed();
                // Leave a spare again (untimed), as the other pkit
                // contender of the round expects to find one.
                pkit_true("/bin/true").await;
                time.into()
            },
        ),
        spawn_wait("spawn-wait true (PATH lookup)", "true"),
        small_capture(),
        blocking_output(),
        fan_out(),
        streaming("streaming 8,000 lines of 128 bytes", LINES, true),
        big_capture(),
        pipeline(
            "3-stage pipeline moving 256 MiB (head | cat | wc -c)",
            256 << 20,
        ),
        tree_teardown(),
        crate::shutdown::scenario(),
    ]
    .into_iter()
    .chain(crate::callbacks::scenarios())
    .collect()
}

/// Spawn `program` with null stdio and wait for its exit.
pub fn spawn_wait(name: &'static str, program: &'static str) -> Scenario {
    Scenario::new(name)
        .with("std::process", move || async move {
            let t = Instant::now();
            let st = std::process::Command::new(program)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
            t.elapsed().into()
        })
        .with("tokio::process", move || async move {
            let t = Instant::now();
            let st = tokio::process::Command::new(program)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .unwrap();
            assert!(st.success());
            t.elapsed().into()
        })
        .with("pkit", move || async move {
            let t = Instant::now();
            pkit_true(program).await;
            t.elapsed().into()
        })
        .with("pkit blocking (std's like)", move || async move {
            blocking_true(program).into()
        })
        .with("processkit 3.3.4", move || async move {
            let t = Instant::now();
            // processkit's verbs refuse non-piped stdio: it captures here.
            let code = processkit::Command::new(program).exit_code().await.unwrap();
            assert_eq!(code, 0);
            t.elapsed().into()
        })
}

/// `--probe-runs`: `runs` spawn-waits of `/bin/true` by one contender,
/// after one warm-up run, for `strace -f -c`.
///
/// Names joined with `+` (`tokio+pkit`) run in turn within each run, in
/// this one process, as the bench's rounds do; each one's median time is
/// printed, for telling a contender's own cost from what its neighbours
/// in a round leave behind.
pub async fn probe(with: &str, runs: usize) {
    if with.contains('+') {
        let names: Vec<&str> = with.split('+').collect();
        let mut times = vec![Vec::with_capacity(runs + 1); names.len()];
        // CPU time of the calling thread and of the whole process (every
        // thread, children not counted) in each contender's runs, the first
        // (warm-up) run left out: what load moves far less than the wall time.
        let mut cpu = vec![(0u64, 0u64); names.len()];
        // `--count-allocs`: allocations and bytes, the process's and this
        // thread's, per contender.
        let mut counts = vec![[0u64; 4]; names.len()];
        // This thread's minor page faults and context switches (voluntary,
        // involuntary) in each contender's runs (`getrusage(RUSAGE_THREAD)`).
        let mut usage = vec![[0u64; 3]; names.len()];
        for run in 0..=runs {
            for ((((name, times), cpu), allocs), usage) in names
                .iter()
                .zip(&mut times)
                .zip(&mut cpu)
                .zip(&mut counts)
                .zip(&mut usage)
            {
                let counted = crate::count::now();
                let used = thread_usage();
                let (thread, process) = (cpu_ns(THREAD), cpu_ns(PROCESS));
                let t = Instant::now();
                Box::pin(probe(name, 0)).await;
                times.push(t.elapsed());
                if run > 0 {
                    cpu.0 += cpu_ns(THREAD).saturating_sub(thread);
                    cpu.1 += cpu_ns(PROCESS).saturating_sub(process);
                    for (sum, (a, b)) in usage.iter_mut().zip(thread_usage().iter().zip(used)) {
                        *sum += a.saturating_sub(b);
                    }
                    let after = crate::count::now();
                    for (sum, (a, b)) in allocs.iter_mut().zip(after.iter().zip(counted)) {
                        *sum += a - b;
                    }
                }
            }
        }
        if runs > 0 {
            for ((((name, mut times), cpu), allocs), usage) in
                names.iter().zip(times).zip(cpu).zip(counts).zip(usage)
            {
                times.sort();
                let r = runs as f64;
                eprintln!(
                    "  {name}: median {:.1} µs, CPU per run: this thread {:.1} µs, the process {:.1} µs; \
                     this thread per run: {:.2} minor faults, {:.2} voluntary and {:.2} involuntary context switches",
                    times[times.len() / 2].as_nanos() as f64 / 1e3,
                    cpu.0 as f64 / r / 1e3,
                    cpu.1 as f64 / r / 1e3,
                    usage[0] as f64 / r,
                    usage[1] as f64 / r,
                    usage[2] as f64 / r,
                );
                if crate::count::on() {
                    eprintln!(
                        "    allocations per run: the process {:.1} ({:.0} bytes), this thread {:.1} ({:.0} bytes)",
                        allocs[0] as f64 / r,
                        allocs[1] as f64 / r,
                        allocs[2] as f64 / r,
                        allocs[3] as f64 / r,
                    );
                }
            }
        }
        return;
    }
    if with == "blocking-true" {
        // The spawn-wait of `/bin/true` through the blocking facade, on one
        // plain thread.
        std::thread::spawn(move || {
            for _ in 0..=runs {
                blocking_spawn_wait("/bin/true");
            }
        })
        .join()
        .unwrap();
        return;
    }
    if let Some(lines) = match with {
        "blocking-cb" => Some(crate::callbacks::SHORT),
        "blocking-cb-8000" => Some(crate::callbacks::LONG),
        _ => None,
    } {
        // A blocking run of `seq 1 100` (or 8,000 lines) with a line
        // callback, all runs on one plain thread.
        std::thread::spawn(move || {
            for _ in 0..=runs {
                crate::callbacks::blocking_callback(lines);
            }
        })
        .join()
        .unwrap();
        return;
    }
    if with == "blocking" {
        // `echo hello` through the blocking facade, all runs on one plain
        // thread (the facade refuses a runtime's thread).
        std::thread::spawn(move || {
            for _ in 0..=runs {
                let out = pkit::Command::new("echo")
                    .arg("hello")
                    .blocking()
                    .output()
                    .unwrap();
                assert_eq!(out.stdout(), b"hello\n");
            }
        })
        .join()
        .unwrap();
        return;
    }
    for _ in 0..=runs {
        match with {
            "std" => {
                let st = std::process::Command::new("/bin/true")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                assert!(st.success());
            }
            "tokio" => {
                let st = tokio::process::Command::new("/bin/true")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await
                    .unwrap();
                assert!(st.success());
            }
            "pkit" => pkit_true("/bin/true").await,
            // The same through a runner naming the mechanism, so that one
            // process can interleave the two (`pkit-cg+pkit-pg`).
            "pkit-cg" => pkit_true_in("/bin/true", pkit::MechanismChoice::Cgroup).await,
            "pkit-pg" => pkit_true_in("/bin/true", pkit::MechanismChoice::ProcessGroup).await,
            // The bench's idle pause before each round (`stats::ROUND_PAUSE`),
            // for a `+` list that starts its runs as a round does.
            "pause" => tokio::time::sleep(crate::stats::ROUND_PAUSE).await,
            "processkit" => {
                let code = processkit::Command::new("/bin/true").exit_code().await.unwrap();
                assert_eq!(code, 0);
            }
            // The spawn-wait row's "no spare cgroup" contender: the pool
            // emptied, a run, the pool emptied again, and a spare left.
            "pkit-nospare" => {
                pkit::release_spare_cgroups();
                pkit_true("/bin/true").await;
                pkit::release_spare_cgroups();
                pkit_true("/bin/true").await;
            }
            // The spawn-options row's two pkit contenders (with `--rss-gib`
            // for its big parent): the eleven options, and them and setsid.
            "pkit-options" | "pkit-options-setsid" => {
                let mut cmd = crate::options::with_options(pkit::Command::new("/bin/true"));
                if with == "pkit-options-setsid" && crate::options::setsid_ok() {
                    cmd = cmd.setsid();
                }
                assert_eq!(cmd.exit_code().await.unwrap(), 0);
            }
            // The spawn-wait with no environment to copy (`env_clear`): what
            // the inherited environment's copy under std's lock costs a run.
            "pkit-envclear" => {
                let code = pkit::Command::new("/bin/true")
                    .env_clear()
                    .stdout(pkit::Stdio::Null)
                    .stderr(pkit::Stdio::Null)
                    .exit_code()
                    .await
                    .unwrap();
                assert_eq!(code, 0);
            }
            // The spawn-wait of a command with two variables set: the
            // inherited environment merged with a command's changes.
            "pkit-env2" => {
                let code = pkit::Command::new("/bin/true")
                    .env("PKIT_BENCH_A", "1")
                    .env("PKIT_BENCH_B", "2")
                    .stdout(pkit::Stdio::Null)
                    .stderr(pkit::Stdio::Null)
                    .exit_code()
                    .await
                    .unwrap();
                assert_eq!(code, 0);
            }
            "std-env2" => {
                let st = std::process::Command::new("/bin/true")
                    .env("PKIT_BENCH_A", "1")
                    .env("PKIT_BENCH_B", "2")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                assert!(st.success());
            }
            // The same row's "setsid alone": null stdio and `setsid`, no
            // other option.
            "pkit-setsid" => {
                let mut cmd = pkit::Command::new("/bin/true")
                    .stdout(pkit::Stdio::Null)
                    .stderr(pkit::Stdio::Null);
                if crate::options::setsid_ok() {
                    cmd = cmd.setsid();
                }
                assert_eq!(cmd.exit_code().await.unwrap(), 0);
            }
            // `echo hello` captured (the blocking scenario's, async).
            "std-output" => {
                let out = std::process::Command::new("echo")
                    .arg("hello")
                    .output()
                    .unwrap();
                assert_eq!(out.stdout, b"hello\n");
            }
            "pkit-output" => {
                let out = pkit::Command::new("echo")
                    .arg("hello")
                    .output()
                    .await
                    .unwrap();
                assert_eq!(out.stdout(), b"hello\n");
            }
            // The blocking line callback scenario's std and async rows
            // (`seq 1 100`; `-8000`: 8,000 lines of 128 bytes).
            "std-cb" => {
                let _ = crate::callbacks::std_lines(crate::callbacks::SHORT);
            }
            "std-cb-8000" => {
                let _ = crate::callbacks::std_lines(crate::callbacks::LONG);
            }
            "pkit-cb" => {
                let _ = crate::callbacks::async_callback(crate::callbacks::SHORT).await;
            }
            // `cat` with 32 bytes in (the small capture scenario's).
            "std-cat" => {
                let _ = std_cat();
            }
            "tokio-cat" => {
                let _ = tokio_cat().await;
            }
            "pkit-cat" => {
                let _ = pkit_cat().await;
            }
            "pkit-cat-cg" => {
                let _ = pkit_cat_in(pkit::MechanismChoice::Cgroup).await;
            }
            "pkit-cat-pg" => {
                let _ = pkit_cat_in(pkit::MechanismChoice::ProcessGroup).await;
            }
            // Sixteen of them at once (the fan-out scenario's).
            "tokio-fanout" => {
                let _ = join_all(16, tokio_cat).await;
            }
            "pkit-fanout" => {
                let _ = join_all(16, pkit_cat).await;
            }
            // 64 MiB captured (the 64 MiB capture scenario's).
            "big-std" => {
                let out = std::process::Command::new("head")
                    .args(BIG_ARGS)
                    .output()
                    .unwrap();
                assert_eq!(out.stdout.len(), BIG);
            }
            "big-output" => {
                let out = pkit::Command::new("head")
                    .args(BIG_ARGS)
                    .output()
                    .await
                    .unwrap();
                assert_eq!(out.stdout().len(), BIG);
            }
            "big-run" => {
                let text = pkit::Command::new("head")
                    .args(BIG_ARGS)
                    .run()
                    .await
                    .unwrap();
                assert_eq!(text.len(), BIG);
            }
            // One 8,000-line stream per run (the streaming scenario's).
            "std-lines" => {
                let _ = std_read_loop(LINES).await;
            }
            "tokio-lines" => {
                let _ = tokio_lines(LINES).await;
            }
            "pkit-lines" => {
                let _ = pkit_lines(LINES, None).await;
            }
            // The same stream with stderr at `/dev/null`: `tokio-lines`
            // pipes stdout only, so this prices pkit's second pipe.
            "pkit-lines-nostderr" => {
                let _ = pkit_lines_with(LINES, None, pkit::Stdio::Null).await;
            }
            "pkit-pgroup-lines" => {
                let _ = pkit_lines(LINES, Some(pkit::MechanismChoice::ProcessGroup)).await;
            }
            // The same spawn in a `Group`, its stdout taken raw and split
            // by tokio's `lines()` in this task: what the stream would
            // cost with no reading task between the pipe and its consumer.
            "pkit-raw-lines" => {
                let _ = pkit_raw_lines(LINES).await;
            }
            // The stream's group without the stream: `Group::new`, one
            // `/bin/true` started, waited for, and the group closed.
            "pkit-group" => pkit_group_true(None).await,
            "pkit-pgroup-group" => pkit_group_true(Some(pkit::MechanismChoice::ProcessGroup)).await,
            // One graceful shutdown of 51 processes per run.
            "shutdown" => {
                let _ = crate::shutdown::pkit_shutdown(pkit::MechanismChoice::Cgroup).await;
            }
            "pgroup-shutdown" => {
                let _ = crate::shutdown::pkit_shutdown(pkit::MechanismChoice::ProcessGroup).await;
            }
            other => panic!(
                "--probe-with {other}: std, tokio, pkit, pkit-cg, pkit-pg, pause, processkit, pkit-nospare, pkit-options, pkit-options-setsid, pkit-setsid, pkit-envclear, pkit-env2, std-env2, std-output, pkit-output, blocking, blocking-true, std-cb, std-cb-8000, pkit-cb, blocking-cb, blocking-cb-8000, \
                 std-cat, tokio-cat, pkit-cat, pkit-cat-cg, pkit-cat-pg, tokio-fanout, pkit-fanout, big-std, big-output, big-run, std-lines, tokio-lines, pkit-lines, \
                 pkit-lines-nostderr, pkit-pgroup-lines, pkit-raw-lines, pkit-group, pkit-pgroup-group, shutdown or pgroup-shutdown"
            ),
        }
    }
}

/// Streams `lines` lines through one contender, once (`--probe-rss-lines`).
pub async fn probe_rss(with: &str, lines: usize) {
    match with {
        "std" => drop(std_read_loop(lines).await),
        "tokio" => drop(tokio_lines(lines).await),
        "pkit" => drop(pkit_lines(lines, None).await),
        "pkit-pgroup" => drop(pkit_lines(lines, Some(pkit::MechanismChoice::ProcessGroup)).await),
        other => panic!("--probe-with {other}: std, tokio, pkit or pkit-pgroup"),
    }
}

/// This process's peak resident memory so far (`VmHWM`), in KiB.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `CLOCK_THREAD_CPUTIME_ID` and `CLOCK_PROCESS_CPUTIME_ID`, for [`cpu_ns`].
const THREAD: libc::clockid_t = libc::CLOCK_THREAD_CPUTIME_ID;
const PROCESS: libc::clockid_t = libc::CLOCK_PROCESS_CPUTIME_ID;

/// The CPU time of this whole process so far (every thread, ended ones
/// included; children not counted), in ns.
pub fn process_cpu_ns() -> u64 {
    cpu_ns(PROCESS)
}

/// This thread's minor page faults, voluntary and involuntary context
/// switches so far (`getrusage(RUSAGE_THREAD)`).
fn thread_usage() -> [u64; 3] {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable rusage; RUSAGE_THREAD always exists
    // on Linux.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    [u.ru_minflt as u64, u.ru_nvcsw as u64, u.ru_nivcsw as u64]
}

/// The CPU time of `clock` so far, in ns.
fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; a CPU-time clock of this
    // thread or process always exists.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// [`pkit_true`] through a `SystemRunner` of `mechanism`.
async fn pkit_true_in(program: &str, mechanism: pkit::MechanismChoice) {
    let code = pkit::Command::new(program)
        .stdout(pkit::Stdio::Null)
        .stderr(pkit::Stdio::Null)
        .runner(std::sync::Arc::new(pkit::SystemRunner::with_mechanism(
            mechanism,
        )))
        .exit_code()
        .await
        .unwrap();
    assert_eq!(code, 0);
}

/// [`pkit_cat`] through a `SystemRunner` of `mechanism`.
async fn pkit_cat_in(mechanism: pkit::MechanismChoice) {
    let out = pkit::Command::new("cat")
        .stdin_bytes(SMALL_INPUT)
        .runner(std::sync::Arc::new(pkit::SystemRunner::with_mechanism(
            mechanism,
        )))
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout(), SMALL_INPUT);
}

async fn pkit_true(program: &str) {
    let code = pkit::Command::new(program)
        .stdout(pkit::Stdio::Null)
        .stderr(pkit::Stdio::Null)
        .exit_code()
        .await
        .unwrap();
    assert_eq!(code, 0);
}

/// A `Group` of `mechanism` (`None`: the default) with one `/bin/true`
/// started in it, waited for, and the group closed: the streaming
/// scenario's group without its stream.
async fn pkit_group_true(mechanism: Option<pkit::MechanismChoice>) {
    let group = match mechanism {
        Some(m) => pkit::Group::builder().mechanism(m).build().unwrap(),
        None => pkit::Group::new().unwrap(),
    };
    let cmd = pkit::Command::new("/bin/true")
        .stdout(pkit::Stdio::Null)
        .stderr(pkit::Stdio::Null);
    let mut p = group.start(&cmd).unwrap();
    assert!(p.wait().await.unwrap().success());
    group.close().await.unwrap();
}

fn small_capture() -> Scenario {
    Scenario::new("small capture: cat with 32 bytes in")
        .with("std::process", || async { std_cat().into() })
        .with("tokio::process", || async { tokio_cat().await.into() })
        .with("pkit", || async { pkit_cat().await.into() })
        .with("pkit blocking (std's like)", || async {
            blocking_cat().into()
        })
        .with("processkit 3.3.4", || async {
            processkit_cat().await.into()
        })
}

/// `output()` from blocking code: std's against pkit's blocking facade
/// (`cmd.blocking().output()`). The blocking facade refuses to run where a
/// runtime is current, so its rounds run on one long-lived plain thread
/// (the hand-over of each round is outside the timed part), the way a
/// program calls it from `main`; std runs where it is. The one-shot verbs
/// drive their run with a runtime of the calling thread's own, built by
/// the thread's first call (a warm-up round) and kept.
fn blocking_output() -> Scenario {
    Scenario::new("blocking output(): echo hello")
        .with("std::process", || async {
            let t = Instant::now();
            let out = std::process::Command::new("echo")
                .arg("hello")
                .output()
                .unwrap();
            assert_eq!(out.stdout, b"hello\n");
            t.elapsed().into()
        })
        .with("pkit blocking", || async { blocking_round().into() })
        .with("pkit async (for reference)", || async {
            let t = Instant::now();
            let out = pkit::Command::new("echo")
                .arg("hello")
                .output()
                .await
                .unwrap();
            assert_eq!(out.stdout(), b"hello\n");
            t.elapsed().into()
        })
}

fn std_cat() -> Duration {
    let t = Instant::now();
    let mut child = std::process::Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(SMALL_INPUT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, SMALL_INPUT);
    t.elapsed()
}

async fn tokio_cat() -> Duration {
    let t = Instant::now();
    let mut child = tokio::process::Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(SMALL_INPUT).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.stdout, SMALL_INPUT);
    t.elapsed()
}

async fn pkit_cat() -> Duration {
    let t = Instant::now();
    let out = pkit::Command::new("cat")
        .stdin_bytes(SMALL_INPUT)
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout(), SMALL_INPUT);
    t.elapsed()
}

async fn processkit_cat() -> Duration {
    let t = Instant::now();
    let out = processkit::Command::new("cat")
        .stdin(processkit::Stdin::from_bytes(SMALL_INPUT))
        .output_bytes()
        .await
        .unwrap();
    assert_eq!(out.stdout().as_slice(), SMALL_INPUT);
    t.elapsed()
}

fn fan_out() -> Scenario {
    const N: usize = 16;
    Scenario::new("16-way fan-out of small captures")
        .with("std::process (16 threads)", || async {
            let t = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..N {
                    s.spawn(|| {
                        let mut child = std::process::Command::new("cat")
                            .stdin(Stdio::piped())
                            .stdout(Stdio::piped())
                            .spawn()
                            .unwrap();
                        child.stdin.take().unwrap().write_all(SMALL_INPUT).unwrap();
                        assert_eq!(child.wait_with_output().unwrap().stdout, SMALL_INPUT);
                    });
                }
            });
            t.elapsed().into()
        })
        .with("tokio::process", || async {
            join_all(N, tokio_cat).await.into()
        })
        .with("pkit", || async { join_all(N, pkit_cat).await.into() })
        .with("processkit 3.3.4", || async {
            join_all(N, processkit_cat).await.into()
        })
}

/// Runs `n` copies of `f` concurrently on the runtime.
async fn join_all<F, Fut>(n: usize, f: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Duration> + Send + 'static,
{
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        set.spawn(f());
    }
    while set.join_next().await.is_some() {}
    t.elapsed()
}

fn line_script(lines: usize) -> String {
    format!("yes {} | head -n {lines}", "x".repeat(127))
}

/// `lines` lines of 128 bytes; `all` adds the contenders that only the
/// small run needs (std's `BufRead::lines`, processkit).
fn streaming(name: &'static str, lines: usize, all: bool) -> Scenario {
    let mut sc = Scenario::new(name).with(
        "std::process (64 KiB read loop, no lines)",
        move || async move { std_read_loop(lines).await.into() },
    );
    if all {
        sc = sc.with("std::process (BufRead::lines)", move || async move {
            let t = Instant::now();
            let mut child = std::process::Command::new("sh")
                .args(["-c", &line_script(lines)])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let out = std::io::BufReader::new(child.stdout.take().unwrap());
            assert_eq!(out.lines().count(), lines);
            child.wait().unwrap();
            t.elapsed().into()
        });
    }
    sc = sc
        .with("tokio::process (lines)", move || async move {
            tokio_lines(lines).await.into()
        })
        .with("pkit (stream_lines)", move || async move {
            pkit_lines(lines, None).await.into()
        })
        .with(
            "pkit (stream_lines, process-group mechanism)",
            move || async move {
                pkit_lines(lines, Some(pkit::MechanismChoice::ProcessGroup))
                    .await
                    .into()
            },
        );
    if all {
        sc = sc.with("processkit 3.3.4 (stdout_lines)", move || async move {
            processkit_lines(lines).await.into()
        });
    }
    sc
}

async fn std_read_loop(lines: usize) -> Duration {
    let t = Instant::now();
    let mut child = std::process::Command::new("sh")
        .args(["-c", &line_script(lines)])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let mut n = 0;
    loop {
        let k = out.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        n += k;
    }
    child.wait().unwrap();
    assert_eq!(n, lines * 128);
    t.elapsed()
}

async fn tokio_lines(lines: usize) -> Duration {
    let t = Instant::now();
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", &line_script(lines)])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut n = 0;
    while reader.next_line().await.unwrap().is_some() {
        n += 1;
    }
    child.wait().await.unwrap();
    assert_eq!(n, lines);
    t.elapsed()
}

async fn pkit_lines(lines: usize, mechanism: Option<pkit::MechanismChoice>) -> Duration {
    pkit_lines_with(lines, mechanism, pkit::Stdio::Piped).await
}

/// [`pkit_lines`] with stderr set to `stderr` (`Piped`: both outputs are
/// read into the stream).
async fn pkit_lines_with(
    lines: usize,
    mechanism: Option<pkit::MechanismChoice>,
    stderr: pkit::Stdio,
) -> Duration {
    let t = Instant::now();
    let group = match mechanism {
        Some(m) => pkit::Group::builder().mechanism(m).build().unwrap(),
        None => pkit::Group::new().unwrap(),
    };
    let cmd = pkit::Command::new("sh")
        .args(["-c", &line_script(lines)])
        .stderr(stderr)
        .stream_lines();
    let mut p = group.start(&cmd).unwrap();
    let mut stream = p.lines();
    let mut n = 0;
    while stream.next_line().await.is_some() {
        n += 1;
    }
    p.wait().await.unwrap();
    group.close().await.unwrap();
    assert_eq!(n, lines);
    t.elapsed()
}

/// `lines` lines through a pkit `Group` with stdout as `Stdio::Raw`, read
/// with tokio's `lines()` by the caller (`--probe-with pkit-raw-lines`).
async fn pkit_raw_lines(lines: usize) -> Duration {
    let t = Instant::now();
    let group = pkit::Group::new().unwrap();
    let cmd = pkit::Command::new("sh")
        .args(["-c", &line_script(lines)])
        .stdout(pkit::Stdio::Raw);
    let mut p = group.start(&cmd).unwrap();
    let mut reader = tokio::io::BufReader::new(p.take_stdout().unwrap()).lines();
    let mut n = 0;
    while reader.next_line().await.unwrap().is_some() {
        n += 1;
    }
    p.wait().await.unwrap();
    group.close().await.unwrap();
    assert_eq!(n, lines);
    t.elapsed()
}

async fn processkit_lines(lines: usize) -> Duration {
    let t = Instant::now();
    let mut p = processkit::Command::new("sh")
        .args(["-c", &line_script(lines)])
        .start()
        .await
        .unwrap();
    let mut stream = p.stdout_lines().unwrap();
    let mut n = 0;
    while std::future::poll_fn(|cx| {
        futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
    })
    .await
    .is_some()
    {
        n += 1;
    }
    drop(stream);
    let _ = p.finish().await.unwrap();
    assert_eq!(n, lines);
    t.elapsed()
}

/// `head`'s arguments for 64 MiB of output.
const BIG_ARGS: [&str; 3] = ["-c", "67108864", "/dev/zero"];

fn big_capture() -> Scenario {
    let args = BIG_ARGS;
    Scenario::new("64 MiB capture")
        .with("std::process", move || async move {
            let t = Instant::now();
            let out = std::process::Command::new("head")
                .args(args)
                .output()
                .unwrap();
            assert_eq!(out.stdout.len(), BIG);
            t.elapsed().into()
        })
        .with("tokio::process", move || async move {
            let t = Instant::now();
            let out = tokio::process::Command::new("head")
                .args(args)
                .output()
                .await
                .unwrap();
            assert_eq!(out.stdout.len(), BIG);
            t.elapsed().into()
        })
        .with("pkit", move || async move {
            let t = Instant::now();
            let out = pkit::Command::new("head")
                .args(args)
                .output()
                .await
                .unwrap();
            assert_eq!(out.stdout().len(), BIG);
            t.elapsed().into()
        })
        .with("pkit run() (stdout as String)", move || async move {
            let t = Instant::now();
            let text = pkit::Command::new("head").args(args).run().await.unwrap();
            assert_eq!(text.len(), BIG);
            t.elapsed().into()
        })
        .with("processkit 3.3.4", move || async move {
            let t = Instant::now();
            let out = processkit::Command::new("head")
                .args(args)
                .output_bytes()
                .await
                .unwrap();
            assert_eq!(out.stdout().len(), BIG);
            t.elapsed().into()
        })
}

/// `bytes` through `head | cat | wc -c`.
fn pipeline(name: &'static str, bytes: u64) -> Scenario {
    Scenario::new(name)
        .with("std::process (wired by hand)", move || async move {
            let t = Instant::now();
            let count = bytes.to_string();
            let mut a = std::process::Command::new("head")
                .args(["-c", &count, "/dev/zero"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut b = std::process::Command::new("cat")
                .stdin(a.stdout.take().unwrap())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let c = std::process::Command::new("wc")
                .arg("-c")
                .stdin(b.stdout.take().unwrap())
                .output()
                .unwrap();
            a.wait().unwrap();
            b.wait().unwrap();
            let n: u64 = String::from_utf8_lossy(&c.stdout).trim().parse().unwrap();
            assert_eq!(n, bytes);
            t.elapsed().into()
        })
        .with("pkit (Pipe)", move || async move {
            let t = Instant::now();
            let count = bytes.to_string();
            let out = pkit::Pipe::new([
                pkit::Command::new("head").args(["-c", &count, "/dev/zero"]),
                pkit::Command::new("cat"),
                pkit::Command::new("wc").arg("-c"),
            ])
            .run()
            .await
            .unwrap();
            assert_eq!(out.parse::<u64>().unwrap(), bytes);
            t.elapsed().into()
        })
}

pub const TREE: &str = "for i in $(seq 50); do sleep 300 & echo $!; done; echo ready; wait";

/// Whether `pid` is gone (no entry, or a zombie: init here reaps orphans
/// only every few seconds).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => matches!(
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next()),
            Some("Z") | Some("X")
        ),
    }
}

/// Waits up to 2 s for `pids` to be gone; returns the time taken and how
/// many survived, then kills the survivors (they are ours) by pid.
pub async fn settle(pids: &[u32], since: Instant) -> Sample {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut done_at = None;
    while Instant::now() < deadline {
        if pids.iter().all(|&p| gone(p)) {
            done_at = Some(since.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let survivors: Vec<u32> = pids.iter().copied().filter(|&p| !gone(p)).collect();
    for &p in &survivors {
        let _ = std::process::Command::new("kill")
            .args(["-9", &p.to_string()])
            .status();
    }
    Sample {
        time: done_at.unwrap_or_else(|| since.elapsed()),
        survivors: survivors.len(),
    }
}

fn read_tree_pids(lines: impl Iterator<Item = String>) -> Vec<u32> {
    lines
        .take_while(|l| l != "ready")
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// [`read_tree_pids`] from a tokio pipe.
async fn read_tree_pids_async(out: tokio::process::ChildStdout) -> Vec<u32> {
    let mut lines = tokio::io::BufReader::new(out).lines();
    let mut pids = Vec::new();
    while let Some(l) = lines.next_line().await.unwrap() {
        if l == "ready" {
            break;
        }
        pids.push(l.trim().parse().unwrap());
    }
    pids
}

fn tree_teardown() -> Scenario {
    Scenario::new("tree teardown: a shell with 50 sleeping children (kill to all gone)")
        .with("std::process (Child::kill)", || async {
            let mut child = std::process::Command::new("sh")
                .args(["-c", TREE])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let out = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut pids = read_tree_pids(out.lines().map(Result::unwrap));
            pids.push(child.id());
            let t = Instant::now();
            child.kill().unwrap();
            child.wait().unwrap();
            settle(&pids, t).await
        })
        .with("tokio::process (Child::kill)", || async {
            let mut child = tokio::process::Command::new("sh")
                .args(["-c", TREE])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut pids = read_tree_pids_async(child.stdout.take().unwrap()).await;
            pids.push(child.id().unwrap());
            let t = Instant::now();
            child.kill().await.unwrap();
            settle(&pids, t).await
        })
        .with("pkit (drop the Group)", || async {
            let group = pkit::Group::new().unwrap();
            let mut p = group
                .start(&pkit::Command::new("sh").args(["-c", TREE]).stream_lines())
                .unwrap();
            let mut lines = p.lines();
            let mut pids = Vec::new();
            while let Some(l) = lines.next_line().await {
                if l.text == "ready" {
                    break;
                }
                pids.push(l.text.trim().parse().unwrap());
            }
            pids.push(p.pid());
            let t = Instant::now();
            drop(group);
            let sample = settle(&pids, t).await;
            drop(p);
            sample
        })
        .with("processkit 3.3.4 (drop the group)", || async {
            let group = processkit::ProcessGroup::new().unwrap();
            let mut cmd = tokio::process::Command::new("sh");
            cmd.args(["-c", TREE]).stdout(Stdio::piped());
            let mut child = group.spawn(cmd).unwrap();
            let mut pids = read_tree_pids_async(child.stdout.take().unwrap()).await;
            pids.push(child.id().unwrap());
            let t = Instant::now();
            drop(group);
            let sample = settle(&pids, t).await;
            let _ = child.wait().await;
            sample
        })
}

/// One timed blocking `output()` of `echo hello` on the bench's
/// long-lived blocking thread (see [`blocking_output`]).
fn blocking_round() -> Duration {
    on_plain_thread(|| {
        let t = Instant::now();
        let out = pkit::Command::new("echo")
            .arg("hello")
            .blocking()
            .output()
            .unwrap();
        assert_eq!(out.stdout(), b"hello\n");
        t.elapsed()
    })
}

/// One timed blocking spawn-wait of `program` (null stdio), on the
/// bench's long-lived blocking thread: the spawn-wait scenarios' row that
/// does what `std::process` does, on the calling thread.
fn blocking_true(program: &'static str) -> Duration {
    on_plain_thread(move || {
        let t = Instant::now();
        blocking_spawn_wait(program);
        t.elapsed()
    })
}

/// One spawn-wait of `program` (null stdio) through the blocking facade,
/// on the calling thread (which must have no runtime current).
fn blocking_spawn_wait(program: &str) {
    let code = pkit::Command::new(program)
        .stdout(pkit::Stdio::Null)
        .stderr(pkit::Stdio::Null)
        .blocking()
        .exit_code()
        .unwrap();
    assert_eq!(code, 0);
}

/// One timed blocking small capture (`cat` with 32 bytes in), on the
/// bench's long-lived blocking thread.
fn blocking_cat() -> Duration {
    on_plain_thread(|| {
        let t = Instant::now();
        let out = pkit::Command::new("cat")
            .stdin_bytes(SMALL_INPUT)
            .blocking()
            .output()
            .unwrap();
        assert_eq!(out.stdout(), SMALL_INPUT);
        t.elapsed()
    })
}

/// Runs `job` on one long-lived plain thread (the blocking facade refuses
/// to run where a runtime is current) and returns what it timed; the
/// hand-over to and from that thread is outside the timed part.
pub(crate) fn on_plain_thread(job: impl FnOnce() -> Duration + Send + 'static) -> Duration {
    use std::sync::mpsc::{channel, Receiver, Sender};
    use std::sync::Mutex;
    type Job = Box<dyn FnOnce() -> Duration + Send>;
    type Worker = Mutex<(Sender<Job>, Receiver<Duration>)>;
    static WORKER: OnceLock<Worker> = OnceLock::new();
    let worker = WORKER.get_or_init(|| {
        let (job_tx, job_rx) = channel::<Job>();
        let (done_tx, done_rx) = channel();
        std::thread::spawn(move || {
            while let Ok(job) = job_rx.recv() {
                if done_tx.send(job()).is_err() {
                    break;
                }
            }
        });
        Mutex::new((job_tx, done_rx))
    });
    let worker = worker.lock().unwrap();
    worker.0.send(Box::new(job)).unwrap();
    worker.1.recv().unwrap()
}
