//! Resource caps (enforced by cgroup v2 or v1 controllers), refusals, and
//! stats and profiles. Caps need a cgroup; the process-group mechanism must
//! refuse them.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pkit::{Command, ErrorKind, Group, MechanismChoice, Outcome};

const MIB: u64 = 1 << 20;

fn capped() -> pkit::GroupBuilder {
    Group::builder().mechanism(MechanismChoice::Cgroup)
}

/// Whether a cgroup can be made here. Where none can (an unprivileged
/// user without delegation) the caps themselves can't be tested, and the
/// tests that need them return early; the binary says so once on stderr
/// (`SKIPPED ... the cgroup half`). Their typed refusal there is tested by
/// `caps_are_refused_where_they_cannot_be_enforced`.
fn cgroups_here() -> bool {
    common::cgroup_usable()
}

fn py(code: &str) -> Command {
    Command::new("python3").args(["-c", code])
}

/// The directories named in the group's limit report (v1 cgroups).
fn limit_dirs(g: &Group) -> Vec<PathBuf> {
    g.limits()
        .iter()
        .filter_map(|l| l.enforced_by.split(" in ").nth(1).map(PathBuf::from))
        .collect()
}

async fn gone(dirs: &[PathBuf]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while dirs.iter().any(|d| d.exists()) {
        assert!(Instant::now() < deadline, "left behind: {dirs:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_cap_oom_kills_and_says_so() {
    let suite = common::begin("memory_cap_oom_kills_and_says_so").await;
    if !cgroups_here() {
        return;
    }
    let g = capped().memory_max(100 * MIB).build().unwrap();
    let info = g.limits();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].cap, "memory_max");
    println!("memory cap enforced by: {}", info[0].enforced_by);
    let dirs = limit_dirs(&g);
    let out = g
        .output(&py("b = bytearray(300 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('survived')"))
        .await
        .unwrap();
    assert_eq!(
        out.outcome(),
        Outcome::Signalled(9),
        "{out:?} {}",
        out.stderr_str()
    );
    assert!(out.oom_killed());
    assert!(!out.stdout_str().contains("survived"));
    gone(&dirs).await;

    // Under the cap, nothing is killed.
    let out = capped()
        .memory_max(100 * MIB)
        .build()
        .unwrap()
        .output(&py("b = bytearray(20 << 20)\nprint('ok')"))
        .await
        .unwrap();
    assert!(out.success());
    assert!(!out.oom_killed());
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_loop_never_exceeds_max_processes() {
    let suite = common::begin("a_fork_loop_never_exceeds_max_processes").await;
    if !cgroups_here() {
        return;
    }
    let g = capped().max_processes(20).build().unwrap();
    let dirs = limit_dirs(&g);
    let mut p = g
        .start(&Command::new("sh").args([
            "-c",
            "for i in $(seq 60); do sleep 3 & done; wait; echo finished",
        ]))
        .unwrap();
    let mut peak = 0;
    // dash gives up at the first refused fork; the sleeps it did start live
    // on for 3 s, so keep looking for a while whatever the shell does: at
    // least 1 s, and until the loop has visibly forked (on a loaded machine
    // the shell may not have forked ten in its first second; polled, 30 s
    // at most).
    let began = Instant::now();
    loop {
        peak = peak.max(g.processes().unwrap().len());
        let watched = began.elapsed();
        if watched >= Duration::from_secs(1) && (peak >= 10 || watched >= Duration::from_secs(30)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(peak <= 20, "saw {peak} live members");
    assert!(peak >= 10, "the loop did fork (saw {peak})");
    let out = tokio::time::timeout(Duration::from_secs(30), p.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.stderr().is_empty(), "some forks were refused");
    g.close().await.unwrap();
    drop(p);
    gone(&dirs).await;
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_quota_holds_a_busy_loop_to_about_half_a_core() {
    let suite = common::begin("cpu_quota_holds_a_busy_loop_to_about_half_a_core").await;
    if !cgroups_here() {
        return;
    }
    let g = capped().cpu_quota(0.5).build().unwrap();
    let dirs = limit_dirs(&g);
    let p = g
        .start(&Command::new("sh").args(["-c", "while :; do :; done"]))
        .unwrap();
    let began = Instant::now();
    let before = g.stats().unwrap().cpu_time().expect("cpu time is readable");
    // At least 3 s, and until the loop has had 0.3 s of CPU: on a loaded
    // machine it may get far less than its quota, which says nothing
    // about the quota (only the upper bound does). Polled, generous.
    let deadline = began + Duration::from_secs(120);
    let used = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let used = g.stats().unwrap().cpu_time().unwrap() - before;
        let long_enough = began.elapsed() >= Duration::from_secs(3);
        if long_enough && (used >= Duration::from_millis(300) || Instant::now() >= deadline) {
            break used;
        }
    };
    let wall = began.elapsed();
    let share = used.as_secs_f64() / wall.as_secs_f64();
    println!("busy loop used {used:?} in {wall:?} = {share:.2} cores");
    assert!(share < 0.8, "the quota holds ({share:.2} cores)");
    assert!(!used.is_zero(), "it did run ({used:?} in {wall:?})");
    g.close().await.unwrap();
    drop(p);
    gone(&dirs).await;
    suite.end().await;
}

#[tokio::test]
async fn caps_are_refused_where_they_cannot_be_enforced() {
    let suite = common::begin("caps_are_refused_where_they_cannot_be_enforced").await;
    let pg = || Group::builder().mechanism(MechanismChoice::ProcessGroup);
    for (name, builder) in [
        ("memory_max", pg().memory_max(100 * MIB)),
        ("max_processes", pg().max_processes(5)),
        ("cpu_quota", pg().cpu_quota(1.0)),
        ("memory_high", pg().memory_high(100 * MIB)),
        ("memory_swap_max", pg().memory_swap_max(0)),
        ("cpus", pg().cpus("0")),
    ] {
        let err = builder.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceLimit);
        assert!(err.to_string().contains(name), "{err}");
        assert!(err.to_string().contains("process group"), "{err}");
    }
    for builder in [
        capped().memory_max(0),
        capped().max_processes(0),
        capped().cpu_quota(0.0),
        capped().cpu_quota(-1.0),
        capped().cpu_quota(f64::NAN),
        capped().cpu_quota(f64::INFINITY),
        capped().cpu_quota(0.001),
        // Above the kernel's largest quota: refused by pkit, in a short
        // message (not a kernel write error, nor 300 digits).
        capped().cpu_quota(1e300),
        capped().cpu_quota(2e8),
        capped().cpu_quota(1e-300),
    ] {
        let err = builder.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceLimit, "{err}");
        assert!(err.to_string().len() < 200, "{err}");
        assert!(!err.to_string().contains("cannot write"), "{err}");
    }
    suite.end().await;
}

/// Touches 200 MB, then burns 1 s of CPU.
const HUNGRY: &str = "import time\nb = bytearray(200 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass\nprint('done')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_profiles_are_plausible() {
    let suite = common::begin("stats_and_profiles_are_plausible").await;
    for m in common::mechanisms() {
        let g = Group::builder().mechanism(m).build().unwrap();
        let p = g.start(&py(HUNGRY)).unwrap();
        let mut sampler = g.sample_stats(Duration::from_millis(100));
        let (mut peak_cpu, mut peak_mem, mut snapshots) = (Duration::ZERO, 0u64, 0);
        let profile = async {
            let prof = p.profile(Duration::from_millis(50)).await.unwrap();
            prof
        };
        tokio::pin!(profile);
        // The sampler may see the group empty before the profile is done:
        // keep that snapshot for the check below.
        let mut empty = None;
        let prof = loop {
            tokio::select! {
                prof = &mut profile => break prof,
                Some(s) = sampler.next() => {
                    let s = s.expect("a snapshot");
                    snapshots += 1;
                    peak_cpu = peak_cpu.max(s.cpu_time().unwrap_or_default());
                    peak_mem = peak_mem.max(s.peak_memory_bytes().unwrap_or_default());
                    if s.active_processes() == 0 {
                        empty = Some(s);
                    }
                }
            }
        };
        assert!(snapshots > 3, "{m}: sampled {snapshots} times");
        assert!(prof.duration() >= Duration::from_millis(900), "{prof:?}");
        assert!(
            prof.cpu_time().unwrap() >= Duration::from_millis(900),
            "{prof:?}"
        );
        assert!(prof.peak_memory_bytes().unwrap() >= 190 * MIB, "{prof:?}");
        assert!(peak_mem >= 150 * MIB, "{m}: group peak {peak_mem}");
        assert!(
            peak_cpu >= Duration::from_millis(300),
            "{m}: group cpu {peak_cpu:?}"
        );
        // After the exit the sampler ends with an empty group.
        let last = match empty {
            Some(s) => s,
            None => loop {
                match sampler.next().await.map(|s| s.expect("a snapshot")) {
                    Some(s) if s.active_processes() == 0 => break s,
                    Some(_) => {}
                    None => panic!("ended without an empty snapshot"),
                }
            },
        };
        assert_eq!(last.active_processes(), 0);
        if m == MechanismChoice::Cgroup {
            // cpu.stat keeps counting exited processes.
            assert!(
                last.cpu_time().unwrap() >= Duration::from_millis(900),
                "{last:?}"
            );
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_carries_cpu_time_and_peak_memory() {
    let suite = common::begin("output_carries_cpu_time_and_peak_memory").await;
    for m in common::mechanisms() {
        if common::skip_on_portable(
            m,
            "no CPU time or peak memory at exit (waitid with WNOWAIT reports no usage off Linux)",
        ) {
            continue;
        }
        let out = Group::builder()
            .mechanism(m)
            .build()
            .unwrap()
            .output(&py(HUNGRY))
            .await
            .unwrap();
        assert!(out.success());
        assert!(
            out.cpu_time().unwrap() >= Duration::from_millis(900),
            "{out:?}"
        );
        assert!(out.peak_memory_bytes().unwrap() >= 190 * MIB, "{out:?}");
    }
    suite.end().await;
}

/// What this host says it can do for `cap`.
fn support(cap: &str) -> pkit::CapSupport {
    pkit::host_containment()
        .caps
        .into_iter()
        .find(|c| c.cap == cap)
        .unwrap_or_else(|| panic!("host_containment() lists {cap}"))
}

/// The group's cgroup v2 directory, from its description.
fn v2_dir(g: &Group) -> PathBuf {
    let d = g.description();
    let rest = d.strip_prefix("cgroup v2 at ").expect("a cgroup group");
    PathBuf::from(rest.split("; ").next().expect("a path"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpus_pins_the_tree_to_the_listed_cpus() {
    let suite = common::begin("cpus_pins_the_tree_to_the_listed_cpus").await;
    if !cgroups_here() {
        return;
    }
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let last = online.trim().rsplit(['-', ',']).next().unwrap().to_string();
    for list in ["0", last.as_str()] {
        let g = match capped().cpus(list).build() {
            Ok(g) => g,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::ResourceLimit, "{e}");
                assert!(e.to_string().contains("cpus"), "{e}");
                assert!(support("cpus").enforced_by.is_none(), "{e}");
                suite.end().await;
                return;
            }
        };
        let info = g.limits();
        assert_eq!(info.len(), 1, "{info:?}");
        assert_eq!((info[0].cap, info[0].value.as_str()), ("cpus", list));
        println!("cpus enforced by: {}", info[0].enforced_by);
        let dirs = limit_dirs(&g);
        // A grandchild too: the cpuset holds the whole tree.
        let out = g
            .output(
                &Command::new("sh")
                    .args(["-c", "sh -c 'grep Cpus_allowed_list /proc/self/status'"]),
            )
            .await
            .unwrap();
        assert!(out.success(), "{out:?}");
        let allowed = out
            .stdout_str()
            .split(':')
            .nth(1)
            .unwrap_or("")
            .trim()
            .to_string();
        assert_eq!(allowed, list, "{}", out.stdout_str());
        gone(&dirs).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn a_bad_cpu_list_is_refused_by_name() {
    let suite = common::begin("a_bad_cpu_list_is_refused_by_name").await;
    for list in ["", "x", "1-0", "0,,1", "4095"] {
        let err = capped().cpus(list).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceLimit, "{list:?}: {err}");
        assert!(err.to_string().contains("cpus"), "{list:?}: {err}");
    }
    // Past any kernel's CPUs, or past this host's: named by pkit, before
    // the kernel's bare "Numerical result out of range".
    for (list, says) in [
        ("0-99999999", "CPU 99999999 is out of range"),
        ("0,8192", "CPU 8192 is out of range"),
        ("8191", "CPU 8191 is not on this host"),
    ] {
        let err = capped().cpus(list).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceLimit, "{list:?}: {err}");
        let text = err.to_string();
        assert!(text.contains(says), "{list:?}: {text}");
        assert!(!text.contains("os error"), "{list:?}: {text}");
    }
    suite.end().await;
}

/// A memory cap above what the kernel takes as given (`i64::MAX` bytes;
/// it clamps a larger one) is refused by name, whatever the mechanism.
#[tokio::test]
async fn a_memory_cap_past_the_kernels_largest_is_refused() {
    let suite = common::begin("a_memory_cap_past_the_kernels_largest_is_refused").await;
    let over = i64::MAX as u64 + 1;
    for (cap, builder) in [
        ("memory_max", capped().memory_max(over)),
        ("memory_max", capped().memory_max(u64::MAX)),
        ("memory_high", capped().memory_high(over)),
        ("memory_swap_max", capped().memory_swap_max(over)),
        (
            "memory_max",
            Group::builder()
                .mechanism(MechanismChoice::ProcessGroup)
                .memory_max(over),
        ),
    ] {
        let err = builder.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceLimit, "{cap}: {err}");
        let text = err.to_string();
        assert!(text.contains(cap), "{text}");
        assert!(
            text.contains("above the kernel's largest memory cap"),
            "{text}"
        );
    }
    if cgroups_here() {
        // The largest itself is taken (and means no practical cap).
        let g = capped().memory_max(i64::MAX as u64).build().unwrap();
        let dirs = limit_dirs(&g);
        let out = g.output(&Command::new("true")).await.unwrap();
        assert!(out.success(), "{out:?}");
        gone(&dirs).await;
    }
    suite.end().await;
}

/// memory.high throttles without killing; cgroup v1 has no equivalent, so
/// a v1 host refuses it by name (and says so in `host_containment`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_high_throttles_or_is_refused_by_name() {
    let suite = common::begin("memory_high_throttles_or_is_refused_by_name").await;
    if !cgroups_here() {
        return;
    }
    let g = match capped().memory_high(32 * MIB).build() {
        Ok(g) => g,
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::ResourceLimit, "{e}");
            assert!(e.to_string().contains("memory_high"), "{e}");
            assert!(e.to_string().contains("v1"), "{e}");
            assert!(support("memory_high").enforced_by.is_none());
            suite.end().await;
            return;
        }
    };
    assert_eq!(g.limits()[0].cap, "memory_high");
    let mut p = g
        .start(&py(
            "b = bytearray(96 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('survived')",
        ))
        .unwrap();
    let out = p.wait().await.unwrap();
    assert!(out.success(), "{out:?}");
    assert!(out.stdout_str().contains("survived"));
    let events = std::fs::read_to_string(v2_dir(&g).join("memory.events")).unwrap();
    let high: u64 = events
        .lines()
        .find_map(|l| l.strip_prefix("high "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(high > 0, "memory.high was never crossed: {events}");
    drop((p, g));
    suite.end().await;
}

/// memory.swap.max is v2 only: on v1, memory and swap are capped together.
#[tokio::test]
async fn memory_swap_max_is_set_or_refused_by_name() {
    let suite = common::begin("memory_swap_max_is_set_or_refused_by_name").await;
    if !cgroups_here() {
        return;
    }
    match capped()
        .memory_max(64 * MIB)
        .memory_swap_max(16 * MIB)
        .build()
    {
        Ok(g) => {
            let swap = g
                .limits()
                .into_iter()
                .find(|l| l.cap == "memory_swap_max")
                .expect("listed");
            assert_eq!(swap.value, (16 * MIB).to_string());
            let file = std::fs::read_to_string(v2_dir(&g).join("memory.swap.max")).unwrap();
            assert_eq!(file.trim(), (16 * MIB).to_string());
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::ResourceLimit, "{e}");
            assert!(e.to_string().contains("memory_swap_max"), "{e}");
            assert!(support("memory_swap_max").enforced_by.is_none());
        }
    }
    suite.end().await;
}

/// A memory cap too small for anything: under a page it is refused at
/// build; a few pages make every start fail, with an error that names the
/// cap instead of only "Cannot allocate memory" or "Argument list too long".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_memory_cap_is_named_in_the_error() {
    let suite = common::begin("a_tiny_memory_cap_is_named_in_the_error").await;
    if !cgroups_here() {
        return;
    }
    let err = capped().memory_max(1000).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ResourceLimit, "{err}");
    assert!(err.to_string().contains("memory_max"), "{err}");
    assert!(err.to_string().contains("1000 bytes"), "{err}");
    for bytes in [4096, 10_000] {
        let g = capped().memory_max(bytes).build().unwrap();
        let dirs = limit_dirs(&g);
        let err = g.output(&Command::new("true")).await.unwrap_err();
        let text = err.to_string();
        println!("memory_max {bytes}: {text}");
        assert!(
            text.contains(&format!("memory_max = {bytes}")) && text.contains("too small"),
            "{text}"
        );
        gone(&dirs).await;
    }
    suite.end().await;
}

/// A profile's interval below the minimum (zero would sample in a busy
/// loop) is refused before any sample, leaving the process alone; the
/// minimum itself works.
#[tokio::test]
async fn a_zero_profile_interval_is_refused() {
    let suite = common::begin("a_zero_profile_interval_is_refused").await;
    for m in common::mechanisms() {
        let g = Group::builder().mechanism(m).build().unwrap();
        let p = g
            .start(&pkit::Command::new("sh").args(["-c", "sleep 0.2"]))
            .unwrap();
        for interval in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(999),
        ] {
            let err = p.profile(interval).await.unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::InvalidInput,
                "{m}: {interval:?}: {err}"
            );
        }
        assert!(!p.has_exited(), "{m}: the process is left alone");
        let prof = p.profile(pkit::MIN_SAMPLE_INTERVAL).await.unwrap();
        assert!(prof.samples() >= 1, "{m}: {prof:?}");
        g.close().await.unwrap();
    }
    suite.end().await;
}

/// Holds 96 MiB, every page touched, until its stdin closes; says `held`.
const HOLDS_96_MIB: &str = "import sys\nb = bytearray(96 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('held', flush=True)\nsys.stdin.read()";

/// The group's current memory while a member holds 96 MiB: at least that
/// much, and not absurd (under 4 GiB). Uncapped (the members' resident
/// memory from /proc) in every mechanism, and with a memory cap (the
/// cgroup's own count: v2 `memory.current`, or the v1 controller's
/// `memory.usage_in_bytes` as on our machines).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_memory_counts_what_a_member_holds() {
    let suite = common::begin("current_memory_counts_what_a_member_holds").await;
    let mut builders: Vec<(String, pkit::GroupBuilder)> = common::mechanisms()
        .into_iter()
        .map(|m| (m.to_string(), Group::builder().mechanism(m)))
        .collect();
    if cgroups_here() {
        builders.push(("capped".into(), capped().memory_max(1 << 30)));
    }
    for (what, builder) in builders {
        let g = builder.build().unwrap();
        let mut p = g
            .start(&py(HOLDS_96_MIB).stdin_piped().stream_lines())
            .unwrap();
        let line = p
            .wait_for_line(|l| l.text == "held", common::DEADLINE * 3)
            .await
            .unwrap();
        assert_eq!(line.text, "held");
        let stats = g.stats().unwrap();
        let current = stats.current_memory_bytes().expect("a current figure");
        println!("{what}: {current} bytes from {}", stats.memory_source());
        assert!(current >= 90 * MIB, "{what}: {current} bytes");
        assert!(current < 4 << 30, "{what}: {current} bytes");
        drop(p.take_stdin());
        assert!(p.wait().await.unwrap().success(), "{what}");
        // Gone: nothing is held any more.
        let after = g.stats().unwrap().current_memory_bytes().unwrap_or(0);
        assert!(after < current, "{what}: {after} after the exit");
        g.close().await.unwrap();
    }
    suite.end().await;
}

/// The groups a one-command verb test runs in: each mechanism, and a
/// capped cgroup group where one can be made.
fn one_command_groups() -> Vec<(String, pkit::GroupBuilder)> {
    let mut builders: Vec<(String, pkit::GroupBuilder)> = common::mechanisms()
        .into_iter()
        .map(|m| (m.to_string(), Group::builder().mechanism(m)))
        .collect();
    if cgroups_here() {
        builders.push(("capped".into(), capped().memory_max(256 * MIB)));
    }
    builders
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_runs_one_command_with_run_and_exit_code() {
    let suite = common::begin("a_group_runs_one_command_with_run_and_exit_code").await;
    let sh = |script: &str| Command::new("sh").args(["-c", script]);
    for (what, b) in one_command_groups() {
        let g = || b.clone().build().unwrap();
        assert_eq!(
            g().run(&sh("echo hi; echo there")).await.unwrap(),
            "hi\nthere"
        );
        let e = g().run(&sh("echo no; exit 3")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NonZeroExit, "{what}: {e}");
        assert_eq!(e.output().unwrap().stdout_str(), "no\n");
        let none = Command::new("grep")
            .args(["-c", "x"])
            .stdin_str("a\n")
            .ok_codes([0, 1]);
        assert_eq!(g().run(&none).await.unwrap(), "0", "{what}");
        assert_eq!(g().exit_code(&sh("exit 3")).await.unwrap(), 3, "{what}");
        let e = g()
            .exit_code(&sh("exit 3").ok_codes([0]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NonZeroExit, "{what}: {e}");
        let e = g().exit_code(&sh("kill -9 $$")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Signalled, "{what}: {e}");

        // A retry can't be honoured: refused before anything runs.
        let marker = common::TempPath::new("group-retry");
        let retried = sh(&format!("echo ran >> {}; exit 1", marker.as_str())).retry(
            3,
            Duration::from_millis(1),
            |_| true,
        );
        let e = g().run(&retried).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
        let e = g().exit_code(&retried).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
        assert!(!marker.path().exists(), "{what}: nothing ran");

        // Nor can a runner play the group's main process: refused, not
        // bypassed (the real program never runs, the runner is not asked).
        let marker = common::TempPath::new("group-runner");
        let played =
            sh(&format!("echo ran >> {}", marker.as_str())).runner(std::sync::Arc::new(Scripted));
        let e = g().output(&played).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
        let e = g().run(&played).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
        let e = g().exit_code(&played).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
        assert!(!marker.path().exists(), "{what}: nothing ran");
        // The real runner is no test double: its command runs.
        let real = sh("echo real").runner(std::sync::Arc::new(pkit::SystemRunner::default()));
        assert_eq!(g().run(&real).await.unwrap(), "real", "{what}");
    }
    suite.end().await;
}

/// A runner that plays every run itself (a test double): never asked by a
/// group's one-command verbs, which refuse it.
struct Scripted;

impl pkit::Runner for Scripted {
    fn output<'a>(&'a self, _: &'a Command) -> pkit::BoxFuture<'a, pkit::Result<pkit::Output>> {
        Box::pin(async { panic!("a group's verb asked the command's runner") })
    }
}

#[test]
fn a_blocking_group_runs_one_command_with_run_and_exit_code() {
    common::in_suite(
        "a_blocking_group_runs_one_command_with_run_and_exit_code",
        || {
            for (what, b) in one_command_groups() {
                let g = || pkit::blocking::Group::with(b.clone()).unwrap();
                let out = g().run(&Command::new("echo").arg("hi")).unwrap();
                assert_eq!(out, "hi", "{what}");
                let code = g().exit_code(&Command::new("sh").args(["-c", "exit 4"]));
                assert_eq!(code.unwrap(), 4, "{what}");
            }
        },
    );
}
