//! attack16: a hostile round on areas not attacked lately: the
//! owner-death guard with an owner SIGKILLed at bad moments (its group
//! suspended, a shutdown in its grace, starts in flight, a hundred groups,
//! its guard stopped), resource caps of odd values and stats of odd
//! groups, and the readiness probes. Every mechanism.
//!
//! What broke (fixed): `max_processes` above Linux's largest process count
//! (`u64::MAX` among them) reached the kernel and failed as a write error
//! ([`odd_process_caps_are_refused_by_name_or_enforced`]); a CPU list with a
//! `+` did too ([`odd_cpu_lists_build_and_run_or_are_refused_by_name`]).
//! Documented: a port probe passes on any listener, a stranger's included
//! ([`a_port_taken_by_a_stranger_passes_the_port_probe_as_documented`]).
//! Left (ignored, LOW): a process group's `resume` continues a member that
//! someone else had stopped before the suspend
//! ([`a_member_stopped_before_a_suspend_stays_stopped_after_the_resume`]).
//!
//! Owners are this test binary run again ([`a16_owner`], which does
//! nothing unless `PKIT_A16_MODE` is set). Every process an owner starts
//! carries `PKIT_A16_TAG=<tag>` in its environment, so the test finds
//! every one of them in `/proc` afterwards, a start caught in flight by the
//! owner's death included.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, ErrorKind, Group, MechanismChoice, NotReadyReason, Supervisor};

// ---------------------------------------------------------------------------
// The helper owner
// ---------------------------------------------------------------------------

/// A tree that ignores SIGINT and SIGTERM: two sleeps under a shell.
const TREE: &str = "trap '' INT TERM; sleep 300 & sleep 300 & wait";

/// Runs as an owner when `PKIT_A16_MODE` is set; otherwise a no-op.
#[test]
fn a16_owner() {
    let Ok(mode) = std::env::var("PKIT_A16_MODE") else {
        return;
    };
    let out = PathBuf::from(std::env::var_os("PKIT_A16_OUT").expect("PKIT_A16_OUT"));
    let tag: &'static str = Box::leak(
        std::env::var("PKIT_A16_WANT")
            .expect("PKIT_A16_WANT")
            .into_boxed_str(),
    );
    let choice = MechanismChoice::parse(&std::env::var("PKIT_A16_MECH").expect("mech"))
        .expect("a mechanism");
    // Opened once, before anything else: the "exhaust" mode reports after
    // its groups took every descriptor it may have.
    let report = std::sync::Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out)
            .expect("helper output"),
    ));
    let say = move |line: String| {
        let mut f = report.lock().unwrap();
        writeln!(f, "{line}").expect("write");
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _enter = rt.enter();
    let tree = move || {
        Command::new("sh")
            .args(["-c", TREE])
            .env("PKIT_A16_TAG", tag)
    };
    let sleep = move || Command::new("sleep").arg("300").env("PKIT_A16_TAG", tag);
    let group = move || Group::builder().mechanism(choice).build().expect("group");
    let members = |g: &Group, n: usize| {
        let deadline = Instant::now() + DEADLINE;
        while g.pids().map_or(0, |p| p.len()) < n {
            assert!(Instant::now() < deadline, "the tree never started");
            std::thread::sleep(POLL);
        }
    };
    let say_guard = |say: &dyn Fn(String)| {
        let guard = pkit::host_containment().guard;
        say(format!("guard {}", guard.pid.expect("a guard")));
    };
    let mut keep: Vec<(Group, pkit::RunningProcess)> = Vec::new();
    match mode.as_str() {
        "suspended" => {
            let g = group();
            let p = g.start(&tree()).expect("start");
            members(&g, 3);
            rt.block_on(g.suspend()).expect("suspend");
            assert!(g.is_suspended());
            keep.push((g, p));
        }
        "suspended-capped" => {
            // A capped group (cgroup v1 caps on hybrid hosts), suspended.
            let g = Group::builder()
                .mechanism(choice)
                .memory_max(256 << 20)
                .max_processes(64)
                .cpu_quota(1.0)
                .cpus("0")
                .build()
                .expect("a capped group");
            for limit in g.limits() {
                if let Some((_, dir)) = limit.enforced_by.split_once(" in ") {
                    say(format!("v1 {dir}"));
                }
            }
            let p = g.start(&tree()).expect("start");
            members(&g, 3);
            rt.block_on(g.suspend()).expect("suspend");
            keep.push((g, p));
        }
        "adopt-detach" => {
            // A process adopted into the group (cgroup only: a process
            // group takes no running program), and a detached one.
            let g = group();
            let p = g.start(&tree()).expect("start");
            members(&g, 3);
            if choice == MechanismChoice::Cgroup {
                #[allow(clippy::zombie_processes)]
                let stranger = std::process::Command::new("sleep")
                    .arg("300")
                    .env("PKIT_A16_TAG", tag)
                    .spawn()
                    .expect("std spawn");
                g.adopt(stranger.id()).expect("adopt");
                say(format!("adopted {}", stranger.id()));
            }
            let detached = Command::new("sleep")
                .arg("300")
                .env("PKIT_A16_DETACHED", tag)
                .spawn_detached()
                .expect("spawn_detached");
            say(format!("detached {}", detached.pid()));
            keep.push((g, p));
        }
        "two" => {
            for _ in 0..2 {
                let g = group();
                let p = g.start(&tree()).expect("start");
                members(&g, 3);
                keep.push((g, p));
            }
        }
        "many" => {
            let n = std::env::var("PKIT_A16_GROUPS").map_or(120, |n| n.parse().expect("a count"));
            for _ in 0..n {
                let g = group();
                let p = g.start(&sleep()).expect("start");
                keep.push((g, p));
            }
        }
        "closing" => {
            // A shutdown with a long grace is waiting on a tree that
            // ignores its SIGTERM when the owner dies.
            let g = std::sync::Arc::new(group());
            let p = g.start(&tree()).expect("start");
            members(&g, 3);
            let g2 = g.clone();
            rt.spawn(async move {
                let _ = g2.shutdown(Duration::from_secs(600)).await;
            });
            std::thread::sleep(Duration::from_millis(500));
            assert!(!p.try_wait().is_ok_and(|s| s.is_some()), "ended early");
            say_guard(&say);
            say("ready".into());
            std::thread::sleep(Duration::from_secs(300));
            drop(p);
            return;
        }
        "exhaust" => {
            // Groups until a start or a build fails (the owner runs under a
            // low descriptor limit): each says whether it is guarded.
            for _ in 0..400 {
                let Ok(g) = Group::builder().mechanism(choice).build() else {
                    break;
                };
                let Ok(p) = g.start(&sleep()) else {
                    break;
                };
                if !g.guarded() {
                    say(format!("unguarded {}", p.pid()));
                }
                keep.push((g, p));
            }
            say(format!("count {}", keep.len()));
        }
        "starting" => {
            // Starts go on, on a thread, while the owner is killed.
            let handle = rt.handle().clone();
            let say2 = say.clone();
            std::thread::spawn(move || {
                let _enter = handle.enter();
                let mut keep = Vec::new();
                for i in 0..3000 {
                    let g = group();
                    let p = g.start(&tree()).expect("start");
                    keep.push((g, p));
                    if i == 5 {
                        say_guard(&say2);
                        say2("ready".into());
                    }
                }
            });
            std::thread::sleep(Duration::from_secs(300));
            return;
        }
        _ => {
            let g = group();
            let p = g.start(&tree()).expect("start");
            members(&g, 3);
            keep.push((g, p));
        }
    }
    say_guard(&say);
    say("ready".into());
    std::thread::sleep(Duration::from_secs(300));
    drop(keep);
}

/// The live processes carrying `PKIT_A16_TAG=<tag>`.
fn tagged(tag: &str) -> Vec<u32> {
    let want = format!("PKIT_A16_TAG={tag}");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|&b| b == 0).any(|kv| kv == want.as_bytes()) && !pid_gone(pid) {
            out.push(pid);
        }
    }
    out
}

/// A running helper owner.
struct Owner {
    child: std::process::Child,
    tag: String,
    guard: u32,
    /// What the owner said.
    text: String,
    _out: TempPath,
}

impl Owner {
    fn start(mode: &str, choice: MechanismChoice) -> Owner {
        Owner::start_under(mode, choice, &[])
    }

    /// [`start`](Self::start), the owner run under `wrapper` (a program
    /// and its arguments that then run the rest, as `prlimit` does).
    fn start_under(mode: &str, choice: MechanismChoice, wrapper: &[&str]) -> Owner {
        static N: AtomicU64 = AtomicU64::new(0);
        let tag = format!(
            "{}-{}-{mode}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let out = TempPath::new("a16-owner");
        let exe = std::env::current_exe().expect("test binary");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = std::process::Command::new(first);
                c.args(rest).arg(&exe);
                c
            }
            None => std::process::Command::new(&exe),
        };
        let mut child = cmd
            .args(["a16_owner", "--exact", "--nocapture", "--test-threads=1"])
            .env("PKIT_A16_MODE", mode)
            .env("PKIT_A16_OUT", out.path())
            .env("PKIT_A16_WANT", &tag)
            .env("PKIT_A16_MECH", choice.as_str())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("helper owner");
        let deadline = Instant::now() + DEADLINE * 6;
        let text = loop {
            let text = std::fs::read_to_string(out.path()).unwrap_or_default();
            if text.lines().any(|l| l == "ready") {
                break text;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{choice} {mode}: the owner ended early ({status}): {text:?}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{choice} {mode}: the owner never got ready: {text:?}");
            }
            std::thread::sleep(POLL);
        };
        let guard = text
            .lines()
            .find_map(|l| l.strip_prefix("guard "))
            .and_then(|p| p.parse().ok())
            .expect("the guard's pid");
        Owner {
            child,
            tag,
            guard,
            text,
            _out: out,
        }
    }

    fn kill(&mut self) {
        kill_pid(self.child.id());
        let _ = self.child.wait();
    }

    /// Polls until no tagged process is left; `Err` lists those alive.
    async fn wait_tree_gone(&self, within: Duration) -> Result<(), Vec<u32>> {
        let deadline = Instant::now() + within;
        loop {
            let alive = tagged(&self.tag);
            if alive.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(alive);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The owner's cgroup directories that still exist.
    fn cgroups_left(&self) -> Vec<PathBuf> {
        group_parent().map_or_else(Vec::new, |p| cgroup_dirs_of(&p, self.child.id()))
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Whatever a failed assertion left: a stopped guard resumed, the
        // owner and every tagged process killed.
        if comm(self.guard).as_deref() == Some("pkit-guard") {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &self.guard.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for p in tagged(&self.tag) {
            kill_pid(p);
        }
    }
}

/// SIGKILLs the owner; everything it started must go, and its guard.
async fn owner_killed_leaves_nothing(mode: &str, at_least: usize) {
    for choice in mechanisms() {
        let mut owner = Owner::start(mode, choice);
        let before = tagged(&owner.tag);
        assert!(
            before.len() >= at_least,
            "{choice} {mode}: {} of {at_least} processes before the kill",
            before.len()
        );
        if mode == "starting" {
            // Somewhere among the starts that follow.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            tokio::time::sleep(Duration::from_millis(u64::from(nanos % 300))).await;
        }
        owner.kill();
        if let Err(alive) = owner.wait_tree_gone(DEADLINE * 3).await {
            let detail: Vec<String> = alive
                .iter()
                .map(|p| format!("{p} {:?} {:?}", comm(*p), stat(*p)))
                .collect();
            panic!("{choice} {mode}: left after the owner's death: {detail:?}");
        }
        let deadline = Instant::now() + DEADLINE;
        while !owner.cgroups_left().is_empty() {
            assert!(
                Instant::now() < deadline,
                "{choice} {mode}: cgroups left: {:?}",
                owner.cgroups_left()
            );
            tokio::time::sleep(POLL).await;
        }
        assert_gone(&[owner.guard], &format!("{choice} {mode}: the guard")).await;
    }
}

// ---------------------------------------------------------------------------
// The owner-death guard
// ---------------------------------------------------------------------------

/// A suspended group (frozen cgroup, or SIGSTOPped process group) of a
/// killed owner is killed, not left stopped.
#[tokio::test]
async fn a_killed_owners_suspended_group_is_killed_not_left_stopped() {
    let suite = begin("suspended").await;
    owner_killed_leaves_nothing("suspended", 3).await;
    suite.end().await;
}

/// The same with a group with every cap this host's cgroup v1 hierarchies
/// carry (memory, pids, cpu, cpuset): its v1 directories go too.
#[tokio::test]
async fn a_killed_owners_suspended_capped_group_leaves_no_cap_directory() {
    let suite = begin("suspended_capped").await;
    if cgroup_caps_here_for(&["memory_max", "max_processes", "cpu_quota", "cpus"]) {
        let mut owner = Owner::start("suspended-capped", MechanismChoice::Cgroup);
        let v1: Vec<PathBuf> = owner
            .text
            .lines()
            .filter_map(|l| l.strip_prefix("v1 "))
            .map(PathBuf::from)
            .collect();
        println!("cap directories: {v1:?}");
        assert_eq!(tagged(&owner.tag).len(), 3);
        owner.kill();
        if let Err(alive) = owner.wait_tree_gone(DEADLINE * 3).await {
            panic!("left after the owner's death: {alive:?}");
        }
        let deadline = Instant::now() + DEADLINE;
        while let Some(d) = v1
            .iter()
            .chain(&owner.cgroups_left())
            .find(|d| d.exists())
            .cloned()
        {
            assert!(Instant::now() < deadline, "{} left", d.display());
            tokio::time::sleep(POLL).await;
        }
        assert_gone(&[owner.guard], "the guard").await;
    }
    suite.end().await;
}

/// A process adopted into a killed owner's group goes with it; one it
/// started detached (`spawn_detached`) stays, as documented.
#[tokio::test]
async fn a_killed_owners_adopted_process_goes_and_its_detached_one_stays() {
    let suite = begin("adopt_detach").await;
    for choice in mechanisms() {
        let mut owner = Owner::start("adopt-detach", choice);
        let num = |key: &str| {
            owner
                .text
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|p| p.parse::<u32>().ok())
        };
        let detached = num("detached ").expect("a detached pid");
        let _reap = KillOnDrop::new(vec![detached]);
        let adopted = num("adopted ");
        assert_eq!(adopted.is_some(), choice == MechanismChoice::Cgroup);
        assert_eq!(tagged(&owner.tag).len(), 3 + adopted.iter().count());
        owner.kill();
        if let Err(alive) = owner.wait_tree_gone(DEADLINE * 3).await {
            panic!("{choice}: left after the owner's death: {alive:?} (adopted {adopted:?})");
        }
        assert_gone(&[owner.guard], "the guard").await;
        assert_alive(&[detached], &format!("{choice}: the detached process"));
        assert_eq!(comm(detached).as_deref(), Some("sleep"));
    }
    suite.end().await;
}

/// One guard, two groups: both go.
#[tokio::test]
async fn a_killed_owners_two_groups_both_go() {
    let suite = begin("two").await;
    owner_killed_leaves_nothing("two", 6).await;
    suite.end().await;
}

/// 120 groups of a killed owner all go, with every cgroup directory.
#[tokio::test]
async fn a_killed_owners_hundred_and_twenty_groups_all_go() {
    let suite = begin("many").await;
    owner_killed_leaves_nothing("many", 120).await;
    suite.end().await;
}

/// An owner killed while its shutdown waits out a long grace on a tree
/// that ignores SIGTERM: the guard kills the tree.
#[tokio::test]
async fn a_killed_owners_shutdown_in_its_grace_still_ends_the_tree() {
    let suite = begin("closing").await;
    owner_killed_leaves_nothing("closing", 3).await;
    suite.end().await;
}

/// An owner killed while starts are in flight on another thread: no
/// process of any start (the one caught mid-start included) is left.
#[tokio::test]
async fn a_killed_owner_with_starts_in_flight_leaves_nothing() {
    let suite = begin("starting").await;
    for _ in 0..5 {
        owner_killed_leaves_nothing("starting", 6).await;
    }
    suite.end().await;
}

/// A guard SIGSTOPped when its owner dies can do nothing while stopped;
/// once continued it ends the tree (and itself).
#[tokio::test]
async fn a_stopped_guard_ends_the_tree_once_continued() {
    let suite = begin("stopped_guard").await;
    for choice in mechanisms() {
        let mut owner = Owner::start("tree", choice);
        assert_eq!(comm(owner.guard).as_deref(), Some("pkit-guard"));
        let _ = std::process::Command::new("kill")
            .args(["-STOP", &owner.guard.to_string()])
            .status();
        let deadline = Instant::now() + DEADLINE;
        while stat(owner.guard).map(|s| s.state) != Some('T') {
            assert!(Instant::now() < deadline, "the guard never stopped");
            tokio::time::sleep(POLL).await;
        }
        let tree = tagged(&owner.tag);
        assert_eq!(tree.len(), 3, "{choice}");
        owner.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &owner.guard.to_string()])
            .status();
        if let Err(alive) = owner.wait_tree_gone(DEADLINE).await {
            panic!("{choice}: the continued guard left {alive:?}");
        }
        assert_gone(&[owner.guard], &format!("{choice}: the guard")).await;
    }
    suite.end().await;
}

// ---------------------------------------------------------------------------
// Caps and stats
// ---------------------------------------------------------------------------

/// Every cap under the portable backend (and the process-group one) is
/// a typed error naming the cap, never an uncapped group.
#[tokio::test]
async fn caps_under_a_process_group_backend_are_typed_errors() {
    let suite = begin("caps_pgroup").await;
    for choice in [MechanismChoice::ProcessGroup, MechanismChoice::Portable] {
        let b = || Group::builder().mechanism(choice);
        for (name, builder) in [
            ("memory_max", b().memory_max(1)),
            ("memory_max", b().memory_max(u64::MAX)),
            ("max_processes", b().max_processes(1)),
            ("max_processes", b().max_processes(u64::MAX)),
            ("cpu_quota", b().cpu_quota(0.5)),
            ("memory_high", b().memory_high(1 << 30)),
            ("memory_swap_max", b().memory_swap_max(0)),
            ("cpus", b().cpus("0")),
        ] {
            let err = builder.build().expect_err(name);
            assert_eq!(
                err.kind(),
                ErrorKind::ResourceLimit,
                "{choice} {name}: {err}"
            );
            assert!(err.to_string().contains(name), "{choice}: {err}");
        }
    }
    suite.end().await;
}

/// Whether this run tests cgroup groups and every one of `caps` can be
/// enforced here.
fn cgroup_caps_here_for(caps: &[&str]) -> bool {
    let host = pkit::host_containment();
    mechanisms().contains(&MechanismChoice::Cgroup)
        && caps.iter().all(|cap| {
            host.caps
                .iter()
                .any(|c| c.cap == *cap && c.enforced_by.is_some())
        })
}

/// Whether cgroup groups with a process cap are tested here.
fn cgroup_caps_here() -> bool {
    cgroup_caps_here_for(&["max_processes"])
}

/// Odd process caps: above Linux's largest (`PID_MAX_LIMIT`, 2^22;
/// u64::MAX among them) they are refused by name under every mechanism,
/// not passed to the kernel to fail as a write error ("cannot write
/// 18446744073709551615 to .../pids.max: Numerical result out of range"
/// before); the largest itself is taken; 1 lets the first process run but
/// not fork.
#[tokio::test]
async fn odd_process_caps_are_refused_by_name_or_enforced() {
    let suite = begin("odd_pids").await;
    let mut choices = vec![MechanismChoice::ProcessGroup, MechanismChoice::Portable];
    if cgroup_caps_here() {
        choices.push(MechanismChoice::Cgroup);
    }
    for choice in choices {
        for n in [u64::MAX, i64::MAX as u64, (1 << 22) + 1] {
            let err = Group::builder()
                .mechanism(choice)
                .max_processes(n)
                .build()
                .expect_err("above the kernel's largest");
            let text = err.to_string();
            assert_eq!(err.kind(), ErrorKind::ResourceLimit, "{choice} {n}: {text}");
            assert!(text.contains("max_processes"), "{text}");
            assert!(text.contains("largest process cap"), "{choice} {n}: {text}");
        }
    }
    if cgroup_caps_here() {
        let capped = |n| {
            Group::builder()
                .mechanism(MechanismChoice::Cgroup)
                .max_processes(n)
                .build()
                .unwrap_or_else(|e| panic!("max_processes({n}): {e}"))
        };
        let out = capped(1 << 22)
            .output(&Command::new("true"))
            .await
            .expect("run");
        assert!(out.success(), "{out:?}");
        let out = capped(1)
            .output(&Command::new("sh").args(["-c", "(exit 0) && echo forked"]))
            .await
            .expect("run");
        assert!(!out.stdout_str().contains("forked"), "{out:?}");
        assert!(!out.success(), "{out:?}");
    }
    suite.end().await;
}

/// Stats of a group whose members all exited: nothing active, and no
/// error; stats of a suspended group: its members counted, no hang.
#[tokio::test]
async fn stats_of_an_emptied_and_of_a_suspended_group() {
    let suite = begin("stats").await;
    for choice in mechanisms() {
        let g = group(choice);
        let mut p = g
            .start(&Command::new("sh").args(["-c", "sleep 0.2 & wait"]))
            .expect("start");
        assert!(p.wait().await.expect("wait").success());
        let s = g.stats().unwrap_or_else(|e| panic!("{choice}: stats: {e}"));
        assert_eq!(s.active_processes(), 0, "{choice}: {s:?}");
        let p2 = g
            .start(&Command::new("sh").args(["-c", TREE]))
            .expect("start");
        let deadline = Instant::now() + DEADLINE;
        while g.pids().expect("pids").len() < 3 {
            assert!(
                Instant::now() < deadline,
                "{choice}: the tree never started"
            );
            tokio::time::sleep(POLL).await;
        }
        g.suspend().await.expect("suspend");
        let s = tokio::time::timeout(DEADLINE, async { g.stats() })
            .await
            .expect("stats of a suspended group hung")
            .unwrap_or_else(|e| panic!("{choice}: stats: {e}"));
        assert_eq!(s.active_processes(), 3, "{choice}: {s:?}");
        let pids = g.pids().expect("pids");
        g.close().await.expect("close");
        drop(p2);
        assert_gone(&pids, &format!("{choice}: the suspended tree")).await;
    }
    suite.end().await;
}

// ---------------------------------------------------------------------------
// Readiness probes and supervision
// ---------------------------------------------------------------------------

/// A probe that never passes gives up at its deadline and leaves the
/// process running; a probe whose future is dropped leaves it running too,
/// and the line stream is free for the next probe.
#[tokio::test]
async fn a_probe_never_ready_or_dropped_leaves_the_process_alone() {
    let suite = begin("probe_never").await;
    for choice in mechanisms() {
        let g = group(choice);
        let mut p = g
            .start(
                &Command::new("sh")
                    .args(["-c", "echo one; sleep 1; echo two; sleep 300"])
                    .stream_lines(),
            )
            .expect("start");
        let err = p
            .wait_for(|| async { false }, Duration::from_millis(200))
            .await
            .expect_err("never ready");
        assert!(
            matches!(
                err,
                pkit::Error::NotReady {
                    reason: NotReadyReason::Deadline(_),
                    ..
                }
            ),
            "{choice}: {err:?}"
        );
        let dropped = tokio::time::timeout(
            Duration::from_millis(100),
            p.wait_for_line(|_| false, DEADLINE),
        )
        .await;
        assert!(dropped.is_err(), "{choice}: {dropped:?}");
        assert!(p.try_wait().expect("try_wait").is_none(), "{choice}");
        let line = p
            .wait_for_line(|l| l.text == "two", DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{choice}: a probe after a dropped one: {e}"));
        assert_eq!(line.text, "two");
        g.close().await.expect("close");
    }
    suite.end().await;
}

/// A program that exits before it is ready ends a port probe with
/// `Exited`, long before the probe's deadline.
#[tokio::test]
async fn a_program_exiting_before_ready_ends_the_port_probe() {
    let suite = begin("probe_exit").await;
    // A port nobody listens on, held so for the whole test: bound, never
    // listening (a port let go at once is any socket's to take, and a
    // probe of it then connects: attack_dec09b's CI failure).
    let (_held, addr) = unlistened_port();
    for choice in mechanisms() {
        let g = group(choice);
        let p = g
            .start(&Command::new("sh").args(["-c", "sleep 0.3; exit 3"]))
            .expect("start");
        let err = tokio::time::timeout(
            DEADLINE * 3,
            p.wait_for_port(addr, Duration::from_secs(600)),
        )
        .await
        .expect("the probe waited past the program's exit")
        .expect_err("not ready");
        assert!(
            matches!(
                err,
                pkit::Error::NotReady {
                    reason: NotReadyReason::Exited(_),
                    ..
                }
            ),
            "{choice}: {err:?}"
        );
        g.close().await.expect("close");
    }
    suite.end().await;
}

/// A port someone else already listens on passes `wait_for_port` at once,
/// whatever the program does (it exits 1 here, as a server that can't bind
/// would), and a supervisor's `ready_when_port` reports the run ready:
/// the probe can only say a connection succeeded, which its docs now say.
#[tokio::test]
async fn a_port_taken_by_a_stranger_passes_the_port_probe_as_documented() {
    let suite = begin("probe_taken").await;
    let stranger = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = stranger.local_addr().expect("addr");
    for choice in mechanisms() {
        let g = group(choice);
        let mut p = g
            .start(&Command::new("sh").args(["-c", "sleep 1; exit 1"]))
            .expect("start");
        let ready = p.wait_for_port(addr, DEADLINE).await;
        assert!(ready.is_ok(), "{choice}: {ready:?}");
        assert!(!p.wait().await.expect("wait").success());
        g.close().await.expect("close");
        // A supervisor's port check likewise: the run is ready, then
        // crashes.
        let out = Supervisor::new(Command::new("sh").args(["-c", "sleep 0.2; exit 1"]))
            .mechanism(choice)
            .ready_when_port(addr, DEADLINE)
            .max_restarts(0)
            .run()
            .await
            .expect("supervise");
        assert!(!out.final_unhealthy, "{choice}: {out:?}");
        assert!(out.final_crashed, "{choice}: {out:?}");
    }
    suite.end().await;
}

/// A supervised run whose readiness check is pending when the
/// supervision's future is dropped: its whole tree goes.
#[tokio::test]
async fn dropping_a_supervision_during_its_readiness_check_ends_the_tree() {
    let suite = begin("supervise_drop").await;
    for choice in mechanisms() {
        let tag = format!("{}-sup-{choice}", std::process::id());
        let sup = Supervisor::new(
            Command::new("sh")
                .args(["-c", TREE])
                .env("PKIT_A16_TAG", &tag),
        )
        .mechanism(choice)
        .ready_when(
            || Box::pin(async { false }) as pkit::BoxFuture<'static, bool>,
            Duration::from_secs(600),
        );
        // Boxed, so that the drop below drops the future itself (a
        // `tokio::pin!`ned one would live on to the end of the scope).
        let mut run = Box::pin(sup.run());
        let deadline = Instant::now() + DEADLINE;
        loop {
            tokio::select! {
                r = &mut run => panic!("{choice}: the supervision ended: {r:?}"),
                () = tokio::time::sleep(POLL) => {}
            }
            if tagged(&tag).len() == 3 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{choice}: the tree never started"
            );
        }
        let pids = tagged(&tag);
        drop(run);
        assert_gone(&pids, &format!("{choice}: a dropped supervision's tree")).await;
    }
    suite.end().await;
}

/// A restart storm of a program that fails at once: bounded by
/// `max_restarts`, every run's tree gone, nothing left.
#[tokio::test]
async fn a_restart_storm_ends_at_its_bound_and_leaves_nothing() {
    let suite = begin("storm").await;
    for choice in mechanisms() {
        let tag = format!("{}-storm-{choice}", std::process::id());
        let out = Supervisor::new(
            Command::new("sh")
                .args(["-c", "sleep 300 & exit 1"])
                .env("PKIT_A16_TAG", &tag),
        )
        .mechanism(choice)
        .max_restarts(40)
        .backoff(Duration::from_millis(1), 1.0)
        .storm_limit(1000, Duration::from_secs(1))
        .run()
        .await
        .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert_eq!(out.restarts, 40, "{choice}: {out:?}");
        let deadline = Instant::now() + DEADLINE;
        while !tagged(&tag).is_empty() {
            assert!(
                Instant::now() < deadline,
                "{choice}: left {:?}",
                tagged(&tag)
            );
            tokio::time::sleep(POLL).await;
        }
    }
    suite.end().await;
}

// ---------------------------------------------------------------------------
// Second pass
// ---------------------------------------------------------------------------

/// A member's unreaped child (a zombie: its parent `exec`ed `sleep` and
/// never waits) is no live process: `active_processes`, `pids` and
/// `processes` leave it out under every mechanism alike.
#[tokio::test]
async fn a_members_zombie_child_is_not_counted_live() {
    let suite = begin("zombie_member").await;
    for choice in mechanisms() {
        let g = group(choice);
        let p = g
            .start(&Command::new("sh").args(["-c", "sleep 0.1 & exec sleep 300"]))
            .expect("start");
        // Wait until the background sleep has exited (a zombie of ours).
        let deadline = Instant::now() + DEADLINE;
        let zombie = loop {
            let children: Vec<u32> =
                std::fs::read_to_string(format!("/proc/{}/task/{}/children", p.pid(), p.pid()))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect();
            if let Some(&z) = children
                .iter()
                .find(|&&c| stat(c).is_some_and(|s| s.state == 'Z'))
            {
                break z;
            }
            assert!(Instant::now() < deadline, "{choice}: no zombie child");
            tokio::time::sleep(POLL).await;
        };
        let s = g.stats().expect("stats");
        let pids = g.pids().expect("pids");
        let procs = g.processes().expect("processes");
        assert!(
            !pids.contains(&zombie),
            "{choice}: pids {pids:?} has the zombie {zombie}"
        );
        assert_eq!(s.active_processes(), 1, "{choice}: {s:?} (zombie {zombie})");
        assert_eq!(procs.len(), 1, "{choice}: {procs:?}");
        g.close().await.expect("close");
        drop(p);
    }
    suite.end().await;
}

/// A closed group: stats, pids, suspend and resume give an answer or a
/// typed error, never a panic or a hang; a double suspend needs one resume.
#[tokio::test]
async fn a_closed_or_doubly_suspended_group_answers() {
    let suite = begin("closed_group").await;
    for choice in mechanisms() {
        let g = group(choice);
        let mut p = g
            .start(&Command::new("sh").args(["-c", "while :; do sleep 0.05; done"]))
            .expect("start");
        g.suspend().await.expect("suspend");
        g.suspend().await.expect("suspend again");
        g.resume().await.expect("resume");
        assert!(!g.is_suspended(), "{choice}");
        // Running again: it goes on forking sleeps.
        let before = g.stats().expect("stats");
        assert!(before.active_processes() >= 1, "{choice}: {before:?}");
        g.close().await.expect("close");
        let out = p.wait().await.expect("wait");
        assert!(!out.success(), "{choice}: the closed group's loop: {out:?}");
        let after = tokio::time::timeout(DEADLINE, async {
            (
                g.stats().map(|s| s.active_processes()),
                g.pids().map(|p| p.len()),
            )
        })
        .await
        .expect("hung");
        match after {
            (Ok(n), Ok(m)) => assert_eq!((n, m), (0, 0), "{choice}"),
            (s, l) => {
                for e in [s.err(), l.err()].into_iter().flatten() {
                    assert!(
                        matches!(e.kind(), ErrorKind::Io | ErrorKind::Unsupported),
                        "{choice}: {e}"
                    );
                }
            }
        }
        let sus = tokio::time::timeout(DEADLINE, g.suspend())
            .await
            .expect("hung");
        if let Err(e) = &sus {
            assert!(
                matches!(e.kind(), ErrorKind::Io | ErrorKind::Unsupported),
                "{choice}: {e}"
            );
        }
        let res = tokio::time::timeout(DEADLINE, g.resume())
            .await
            .expect("hung");
        assert!(res.is_ok(), "{choice}: resuming a closed group: {res:?}");
    }
    suite.end().await;
}

/// Probes with the longest timeout there is: no overflow panic, and the
/// exit or the line still ends them.
#[tokio::test]
async fn probes_with_duration_max_do_not_overflow() {
    let suite = begin("probe_max").await;
    // Held unlistened for the whole test (see `unlistened_port`).
    let (_held, addr) = unlistened_port();
    for choice in mechanisms() {
        let g = group(choice);
        let mut p = g
            .start(
                &Command::new("sh")
                    .args(["-c", "echo ready; sleep 0.3; exit 0"])
                    .stream_lines(),
            )
            .expect("start");
        let line = tokio::time::timeout(
            DEADLINE,
            p.wait_for_line(|l| l.text == "ready", Duration::MAX),
        )
        .await
        .expect("hung")
        .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert_eq!(line.text, "ready");
        let err = tokio::time::timeout(DEADLINE, p.wait_for_port(addr, Duration::MAX))
            .await
            .expect("hung")
            .expect_err("exits first");
        assert!(
            matches!(
                err,
                pkit::Error::NotReady {
                    reason: NotReadyReason::Exited(_),
                    ..
                }
            ),
            "{choice}: {err:?}"
        );
        g.close().await.expect("close");
    }
    let out = tokio::time::timeout(
        DEADLINE,
        Supervisor::new(Command::new("true"))
            .ready_when_port(addr, Duration::MAX)
            .max_restarts(0)
            .run(),
    )
    .await
    .expect("hung")
    .expect("supervise");
    assert!(out.final_unhealthy, "{out:?}");
    suite.end().await;
}

/// The CPU quota's bounds themselves are taken where cgroups cap CPU, and
/// a run under each works.
#[tokio::test]
async fn cpu_quota_bounds_themselves_are_taken() {
    let suite = begin("cpu_bounds").await;
    let cpu = pkit::host_containment()
        .caps
        .iter()
        .any(|c| c.cap == "cpu_quota" && c.enforced_by.is_some());
    if mechanisms().contains(&MechanismChoice::Cgroup) && cpu {
        for cores in [0.01, 175_921_860.0] {
            let g = Group::builder()
                .mechanism(MechanismChoice::Cgroup)
                .cpu_quota(cores)
                .build()
                .unwrap_or_else(|e| panic!("cpu_quota({cores}): {e}"));
            let out = g.output(&Command::new("true")).await.expect("run");
            assert!(out.success(), "{cores}: {out:?}");
        }
    }
    suite.end().await;
}

/// An owner out of descriptors (soft and hard limit 128): its groups are
/// guarded or say they are not; every guarded one goes with the owner.
#[tokio::test]
async fn an_owner_out_of_descriptors_loses_no_guarded_group() {
    let suite = begin("exhaust").await;
    for choice in mechanisms() {
        let mut owner = Owner::start_under("exhaust", choice, &["prlimit", "--nofile=128:128"]);
        let count: usize = owner
            .text
            .lines()
            .find_map(|l| l.strip_prefix("count "))
            .and_then(|n| n.parse().ok())
            .expect("a count");
        let unguarded: Vec<u32> = owner
            .text
            .lines()
            .filter_map(|l| l.strip_prefix("unguarded "))
            .filter_map(|n| n.parse().ok())
            .collect();
        println!("{choice}: {count} groups, {} unguarded", unguarded.len());
        assert!(count > 10, "{choice}: only {count} groups");
        owner.kill();
        let alive = owner
            .wait_tree_gone(DEADLINE * 3)
            .await
            .err()
            .unwrap_or_default();
        let guarded_alive: Vec<u32> = alive
            .iter()
            .copied()
            .filter(|p| !unguarded.contains(p))
            .collect();
        assert!(
            guarded_alive.is_empty(),
            "{choice}: {} guarded groups' processes outlived the owner ({} groups, {} unguarded): {guarded_alive:?}",
            guarded_alive.len(),
            count,
            unguarded.len()
        );
    }
    suite.end().await;
}

/// Odd CPU lists: each builds a group that runs, or is refused by name
/// with no kernel error text (`os error`, `cannot write`). Before, `+0`
/// passed pkit's check (`u32::from_str` takes a `+`) and failed as the
/// kernel's "cannot write +0 to .../cpuset.cpus: Invalid argument".
#[tokio::test]
async fn odd_cpu_lists_build_and_run_or_are_refused_by_name() {
    let suite = begin("odd_cpus").await;
    let cpus = pkit::host_containment()
        .caps
        .iter()
        .any(|c| c.cap == "cpus" && c.enforced_by.is_some());
    if mechanisms().contains(&MechanismChoice::Cgroup) && cpus {
        for list in [
            " 0", "0\n", "0,0", "00", "+0", "0x1", "0-0", "0-1:1/2", "0-1:1", "0 ,1", "-0", "1,0",
            "0-", ",0",
        ] {
            match Group::builder()
                .mechanism(MechanismChoice::Cgroup)
                .cpus(list)
                .build()
            {
                Ok(g) => {
                    let out = g
                        .output(&Command::new("true"))
                        .await
                        .unwrap_or_else(|e| panic!("{list:?}: built, then: {e}"));
                    println!("{list:?}: taken");
                    assert!(out.success(), "{list:?}: {out:?}");
                }
                Err(e) => {
                    let text = e.to_string();
                    println!("{list:?}: {text}");
                    assert_eq!(e.kind(), ErrorKind::ResourceLimit, "{list:?}: {text}");
                    assert!(text.contains("cpus"), "{list:?}: {text}");
                    assert!(
                        !text.contains("os error") && !text.contains("cannot write"),
                        "{list:?}: {text}"
                    );
                }
            }
        }
    }
    suite.end().await;
}

/// A readiness check that panics: the panic reaches the caller (`wait`
/// resumes it) and the run's tree is gone; a handle dropped while its
/// check is pending ends the tree too.
#[tokio::test]
async fn a_panicking_or_abandoned_readiness_check_leaves_no_tree() {
    let suite = begin("check_panics").await;
    for choice in mechanisms() {
        for panics in [true, false] {
            let tag = format!("{}-check-{choice}-{panics}", std::process::id());
            let handle = Supervisor::new(
                Command::new("sh")
                    .args(["-c", TREE])
                    .env("PKIT_A16_TAG", &tag),
            )
            .mechanism(choice)
            .ready_when(
                move || async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if panics {
                        panic!("a16: the check panics");
                    }
                    false
                },
                Duration::from_secs(600),
            )
            .start();
            let deadline = Instant::now() + DEADLINE;
            while tagged(&tag).len() < 3 {
                assert!(
                    Instant::now() < deadline,
                    "{choice}: the tree never started"
                );
                tokio::time::sleep(POLL).await;
            }
            let pids = tagged(&tag);
            if panics {
                let joined = tokio::time::timeout(DEADLINE, tokio::spawn(handle.wait()))
                    .await
                    .expect("wait hung");
                assert!(
                    joined.as_ref().is_err_and(|e| e.is_panic()),
                    "{choice}: {joined:?}"
                );
            } else {
                drop(handle);
            }
            assert_gone(&pids, &format!("{choice}, panics {panics}: the tree")).await;
        }
    }
    suite.end().await;
}

/// A member stopped by someone else (SIGSTOP) before a suspend stays
/// stopped after the resume, as on Windows ("one suspended by other means
/// as well stays suspended") and under cgroup v2 (a thaw sends no
/// SIGCONT), while the other members run again. Under a process group the
/// resume's SIGCONT continued it too (attack16 LOW).
#[tokio::test]
async fn a_member_stopped_before_a_suspend_stays_stopped_after_the_resume() {
    let suite = begin("stopped_member").await;
    for choice in mechanisms() {
        let g = group(choice);
        let p = g.start(&Command::new("sleep").arg("300")).expect("start");
        let q = g.start(&Command::new("sleep").arg("300")).expect("start");
        let state = |pid: u32| stat(pid).map(|s| s.state);
        let _ = std::process::Command::new("kill")
            .args(["-STOP", &p.pid().to_string()])
            .status();
        let deadline = Instant::now() + DEADLINE;
        while state(p.pid()) != Some('T') {
            assert!(Instant::now() < deadline, "{choice}: never stopped");
            tokio::time::sleep(POLL).await;
        }
        g.suspend().await.expect("suspend");
        // A frozen cgroup's tasks are not in state T.
        let deadline = Instant::now() + DEADLINE;
        while choice != MechanismChoice::Cgroup && state(q.pid()) != Some('T') {
            assert!(Instant::now() < deadline, "{choice}: never suspended");
            tokio::time::sleep(POLL).await;
        }
        g.resume().await.expect("resume");
        let deadline = Instant::now() + DEADLINE;
        while state(q.pid()) == Some('T') {
            assert!(
                Instant::now() < deadline,
                "{choice}: the other member was not resumed"
            );
            tokio::time::sleep(POLL).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stopped = state(p.pid());
        g.close().await.expect("close");
        assert_eq!(stopped, Some('T'), "{choice}: the member was continued");
    }
    suite.end().await;
}

/// A port nobody listens on, and the socket that keeps it so: bound,
/// never listening (connections are refused), without SO_REUSEADDR, so no
/// port-0 bind elsewhere (another test binary's listener) and no
/// connection's source port can be it while it is held.
fn unlistened_port() -> (tokio::net::TcpSocket, SocketAddr) {
    let holder = tokio::net::TcpSocket::new_v4().expect("a socket");
    holder
        .bind("127.0.0.1:0".parse().expect("an address"))
        .expect("bind");
    let addr = holder.local_addr().expect("its address");
    (holder, addr)
}
