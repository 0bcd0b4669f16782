//! Resource caps (enforced by cgroup v2 or v1 controllers), refusals, and
//! stats and profiles. Caps need a cgroup; the process-group mechanism must
//! refuse them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pkit::{Command, ErrorKind, Group, MechanismChoice, Outcome};

const MIB: u64 = 1 << 20;

fn capped() -> pkit::GroupBuilder {
    Group::builder().mechanism(MechanismChoice::Cgroup)
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_loop_never_exceeds_max_processes() {
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
    // on for 3 s, so keep looking for a while whatever the shell does.
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        peak = peak.max(g.processes().unwrap().len());
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
    gone(&dirs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_quota_holds_a_busy_loop_to_about_half_a_core() {
    let g = capped().cpu_quota(0.5).build().unwrap();
    let dirs = limit_dirs(&g);
    let _p = g
        .start(&Command::new("sh").args(["-c", "while :; do :; done"]))
        .unwrap();
    let began = Instant::now();
    let before = g.stats().unwrap().cpu_time().expect("cpu time is readable");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = g.stats().unwrap().cpu_time().unwrap() - before;
    let wall = began.elapsed();
    let share = used.as_secs_f64() / wall.as_secs_f64();
    println!("busy loop used {used:?} in {wall:?} = {share:.2} cores");
    assert!(share < 0.8, "the quota holds ({share:.2} cores)");
    assert!(share > 0.1, "it did run ({share:.2} cores)");
    g.close().await.unwrap();
    gone(&dirs).await;
}

#[tokio::test]
async fn caps_are_refused_where_they_cannot_be_enforced() {
    let pg = || Group::builder().mechanism(MechanismChoice::ProcessGroup);
    for (name, builder) in [
        ("memory_max", pg().memory_max(100 * MIB)),
        ("max_processes", pg().max_processes(5)),
        ("cpu_quota", pg().cpu_quota(1.0)),
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
    ] {
        assert_eq!(
            builder.build().unwrap_err().kind(),
            ErrorKind::ResourceLimit
        );
    }
}

/// Touches 200 MB, then burns 1 s of CPU.
const HUNGRY: &str = "import time\nb = bytearray(200 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass\nprint('done')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_profiles_are_plausible() {
    for m in [MechanismChoice::Cgroup, MechanismChoice::ProcessGroup] {
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
                match sampler.next().await {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_carries_cpu_time_and_peak_memory() {
    for m in [MechanismChoice::Cgroup, MechanismChoice::ProcessGroup] {
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
}
