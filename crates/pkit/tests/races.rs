//! Races, each repeated: a kill concurrent with the process's own exit, and
//! a group dropped while another task waits on its process. In both
//! mechanisms; each round must end in one of the outcomes the race allows
//! and leave nothing behind.

mod common;

use std::sync::Arc;

use common::*;
use pkit::{Command, ErrorKind, MechanismChoice};

const ROUNDS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_concurrent_with_exit() {
    let suite = begin("kill_concurrent_with_exit").await;
    for choice in mechanisms() {
        for i in 0..ROUNDS {
            let g = Arc::new(group(choice));
            let mut p = g.start(&Command::new("true")).unwrap();
            // Kill the process and the group from another task while the
            // process exits on its own.
            let g2 = g.clone();
            let killer = tokio::spawn(async move {
                tokio::task::yield_now().await;
                g2.kill()
            });
            let r = p.kill();
            let out = p.wait().await.unwrap();
            killer
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{choice} #{i}: group kill: {e}"));
            r.unwrap_or_else(|e| panic!("{choice} #{i}: process kill: {e}"));
            assert!(
                out.success() || out.signal() == Some(9),
                "{choice} #{i}: {:?}",
                out.outcome()
            );
            drop(p);
            g.close().await.unwrap();
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_dropped_while_a_task_waits() {
    let suite = begin("group_dropped_while_a_task_waits").await;
    for choice in mechanisms() {
        for i in 0..ROUNDS / 2 {
            let g = group(choice);
            let mut p = g
                .start(&Command::new("sh").args(["-c", "sleep 300 & sleep 300; wait"]))
                .unwrap();
            let waiter = tokio::spawn(async move { p.wait().await.map(|o| o.signal()) });
            tokio::task::yield_now().await;
            drop(g);
            let sig = tokio::time::timeout(DEADLINE, waiter)
                .await
                .unwrap_or_else(|_| panic!("{choice} #{i}: wait hung after the drop"))
                .unwrap()
                .unwrap();
            assert_eq!(sig, Some(9), "{choice} #{i}");
        }
    }
    suite.end().await;
}

/// A tiny pseudo-random number (xorshift over the clock): where in the
/// race each round strikes.
fn random_below(n: u64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    x % n.max(1)
}

/// A script that forks `sleep 300` in a loop (up to 200), writing each
/// pid to `$1` before the next fork.
const FORK_LOOP: &str =
    r#"i=0; while [ $i -lt 200 ]; do sleep 300 & echo $! >> "$1"; i=$((i+1)); done; wait"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_a_child_forks_in_a_loop() {
    let suite = begin("shutdown_while_a_child_forks_in_a_loop").await;
    for choice in mechanisms() {
        for i in 0..10 {
            let g = group(choice);
            let file = TempPath::new("fork-loop");
            let mut p = g
                .start(&Command::new("sh").args(["-c", FORK_LOOP, "sh", file.as_str()]))
                .unwrap();
            let main = p.pid();
            // Let it fork for a while (0-60 ms), then shut down mid-loop.
            tokio::time::sleep(std::time::Duration::from_millis(random_below(60))).await;
            let report = g
                .shutdown(std::time::Duration::from_millis(random_below(100)))
                .await
                .unwrap_or_else(|e| panic!("{choice} #{i}: shutdown: {e}"));
            let _ = report;
            let out = p.wait().await.unwrap();
            assert!(!out.success(), "{choice} #{i}: the loop finished first");
            // Every child the loop forked (all written down before the
            // next fork; one forked but not yet written is caught by the
            // nothing-left check below, being a child of the main).
            let forked = pid_lines(&std::fs::read_to_string(file.path()).unwrap_or_default());
            let mut all = forked.clone();
            all.push(main);
            assert_gone(&all, &format!("{choice} #{i}: {} forked", forked.len())).await;
            drop(p);
            drop(g);
            assert_nothing_left(&format!("{choice} #{i}")).await;
        }
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_of_an_exiting_pid() {
    let suite = begin("adopt_of_an_exiting_pid").await;
    for choice in mechanisms() {
        let (mut adopted, mut refused) = (0, 0);
        for i in 0..50 {
            let g = group(choice);
            // The process group needs a process of its own to adopt into.
            let mut anchor = g.start(&Command::new("sleep").arg("300")).unwrap();
            // A child of ours (not pkit's) that exits at once or soon.
            let delay = format!("0.00{}", random_below(5));
            let mut child = std::process::Command::new("sleep")
                .arg(if i % 2 == 0 { "0" } else { &delay })
                .spawn()
                .unwrap();
            let pid = child.id();
            match g.adopt(pid) {
                Ok(()) => adopted += 1,
                Err(e) => {
                    refused += 1;
                    assert!(
                        matches!(e.kind(), ErrorKind::Io | ErrorKind::Unsupported),
                        "{choice} #{i}: {e}"
                    );
                }
            }
            // Its status is ours to collect, adopted or not, and it is the
            // one process that exited (nobody else got its pid: unreaped,
            // its zombie kept the number).
            let status = child.wait().unwrap();
            assert!(status.success(), "{choice} #{i}: {status}");
            assert!(
                g.pids().unwrap().iter().all(|&p| p != pid),
                "{choice} #{i}: the exited pid is still listed"
            );
            g.kill().unwrap();
            let _ = anchor.wait().await.unwrap();
            drop(anchor);
            g.close().await.unwrap();
        }
        eprintln!("{choice}: adopted {adopted}, refused {refused}");
        if choice == MechanismChoice::Cgroup {
            // The race has both outcomes in 50 rounds (a sleep of 0 exits
            // within microseconds; 1-4 ms sleeps are adopted alive).
            assert!(adopted > 0, "{choice}: never adopted");
        }
    }
    suite.end().await;
}

const NS_LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";

/// Starts a stranger (a `sleep 300` leading a process group of its own,
/// as a process group's id is its leader's pid) that gets `pid`, through
/// `ns_last_pid`; `None` when `pid` is in use, or other forks on the
/// machine kept taking it first.
fn stranger_with_pid(pid: u32) -> Option<std::process::Child> {
    use std::os::unix::process::CommandExt;
    for _ in 0..30 {
        std::fs::write(NS_LAST_PID, (pid - 1).to_string()).ok()?;
        let mut child = std::process::Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap();
        if child.id() == pid {
            return Some(child);
        }
        let _ = child.kill();
        let _ = child.wait();
        if !pid_gone(pid) || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            // Taken (a zombie of ours holds it, or someone else has it).
            return None;
        }
    }
    None
}

fn ns_last_pid_writable() -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open(NS_LAST_PID)
        .is_ok()
}

/// Asserts `stranger` (holding `pid`) was not signalled, then ends it.
async fn assert_stranger_untouched(mut stranger: std::process::Child, pid: u32, what: &str) {
    // Time for a stray signal to land.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // (With SIGCHLD ignored there is no status to collect: `try_wait`
    // fails, and a killed stranger vanishes from /proc at once.)
    assert!(
        !matches!(stranger.try_wait(), Ok(Some(_))) && !pid_gone(pid),
        "{what}: a stranger that took the exited process's pid {pid} was signalled"
    );
    stranger.kill().unwrap();
    let _ = stranger.wait();
}

/// Rounds of: processes of a group exit; a stranger (a process-group
/// leader of its own) is made to take one's pid; every way of signalling
/// the exited process and the group is used; the stranger must live.
///
/// With SIGCHLD at its default, a waited process's handle keeps it an
/// unreaped zombie, so its pid can't be reused while the handle lives
/// (asserted); once the handle is dropped the pid goes to the stranger,
/// and the group's signals must miss it. With SIGCHLD ignored the kernel
/// reaps at exit: the pid is reused while the handle lives, and only the
/// pidfd keeps `kill` from reaching the stranger.
async fn pid_reuse_rounds(sigchld_ignored: bool) {
    for choice in mechanisms() {
        let mut reused = 0;
        for i in 0..8 {
            let what = format!("{choice} #{i} (SIGCHLD ignored: {sigchld_ignored})");
            let g = group(choice);
            // Under process groups the first process leads the group (its
            // pid is the group's id).
            let mut first = g.start(&Command::new("true")).unwrap();
            let mut keep = g.start(&Command::new("sleep").arg("300")).unwrap();
            let mut other = g.start(&Command::new("true")).unwrap();
            first.wait().await.unwrap();
            other.wait().await.unwrap();
            let (first_pid, other_pid) = (first.pid(), other.pid());
            if !sigchld_ignored {
                for pid in [first_pid, other_pid] {
                    assert!(
                        stranger_with_pid(pid).is_none()
                            && stat(pid).is_some_and(|s| s.state == 'Z'),
                        "{what}: pid {pid} of a waited process whose handle lives is not held"
                    );
                }
                // Dropped: reaped, the number free. (A process group's
                // leader is kept by the group while it lives.)
                drop(other);
                if let Some(stranger) = stranger_with_pid(other_pid) {
                    reused += 1;
                    g.signal(pkit::Signal::Term).unwrap();
                    g.kill().unwrap();
                    let _ = keep.wait().await.unwrap();
                    assert_stranger_untouched(stranger, other_pid, &what).await;
                }
                drop(first);
            } else {
                for (p, pid) in [(&first, first_pid), (&other, other_pid)] {
                    let Some(stranger) = stranger_with_pid(pid) else {
                        continue;
                    };
                    reused += 1;
                    p.kill().unwrap_or_else(|e| panic!("{what}: kill: {e}"));
                    let _ = p.kill_tree();
                    g.signal(pkit::Signal::Term).unwrap();
                    g.kill().unwrap();
                    let _ = keep.wait().await.unwrap();
                    assert_stranger_untouched(stranger, pid, &what).await;
                }
                drop((first, other));
            }
            g.kill().unwrap();
            let _ = keep.wait().await;
            drop(keep);
            g.close().await.unwrap();
        }
        eprintln!(
            "{choice}: {reused} pids reused by a stranger (SIGCHLD ignored: {sigchld_ignored})"
        );
        assert!(
            reused > 0,
            "{choice}: no pid was ever reused, so nothing was shown"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pid_reused_after_exit_is_never_signalled() {
    // Needs ns_last_pid (root in this pid namespace).
    if !ns_last_pid_writable() {
        skipped(
            "a_pid_reused_after_exit_is_never_signalled",
            &format!("{NS_LAST_PID} is not writable (needs root in this pid namespace)"),
        );
        return;
    }
    // Alone: it steers pid allocation, and another test's fork could take
    // the pid meant for the stranger.
    let alone = begin_exclusive().await;
    pid_reuse_rounds(false).await;
    if portable_run() {
        // The portable backend's SIGCHLD handler replaces SIG_IGN (as
        // tokio's does; documented), so the kernel never reaps for it.
        skipped(
            "a_pid_reused_after_exit_is_never_signalled",
            "SIGCHLD ignored: the portable backend's own SIGCHLD handler replaces SIG_IGN",
        );
        end_exclusive(alone, "a_pid_reused_after_exit_is_never_signalled").await;
        return;
    }
    // SIGCHLD ignored is process-wide: in a fresh copy of this binary.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pid_reuse_with_sigchld_ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PKIT_RACE_SIGCHLD_IGNORED", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("REUSE-DONE"),
        "{}\n{text}",
        out.status
    );
    for line in text.lines().filter(|l| l.contains("pids reused")) {
        eprintln!("{line}");
    }
    end_exclusive(alone, "a_pid_reused_after_exit_is_never_signalled").await;
}

/// Run by the test above in a fresh process (a no-op otherwise).
#[test]
fn pid_reuse_with_sigchld_ignored() {
    if std::env::var_os("PKIT_RACE_SIGCHLD_IGNORED").is_none() {
        return;
    }
    // SAFETY: test-only, in a fresh process before any runtime thread
    // exists: SIGCHLD set to SIG_IGN, so the kernel reaps children at exit.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_IGN;
        assert_eq!(libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut()), 0);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(pid_reuse_rounds(true));
    println!("REUSE-DONE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_racing_close() {
    let suite = begin("start_racing_close").await;
    for choice in mechanisms() {
        let (mut started, mut refused) = (0, 0);
        for i in 0..ROUNDS {
            let g = Arc::new(group(choice));
            let g2 = g.clone();
            let starter = tokio::spawn(async move {
                tokio::task::yield_now().await;
                g2.start(&Command::new("sleep").arg("300"))
            });
            if i % 2 == 0 {
                tokio::task::yield_now().await;
            }
            g.close()
                .await
                .unwrap_or_else(|e| panic!("{choice} #{i}: close: {e}"));
            match starter.await.unwrap() {
                Ok(mut p) => {
                    // Started before the group was marked closed: ended
                    // with it (or by a close that comes after it).
                    started += 1;
                    let pid = p.pid();
                    let out = tokio::time::timeout(DEADLINE, p.wait())
                        .await
                        .unwrap_or_else(|_| panic!("{choice} #{i}: a started sleep outlived close"))
                        .unwrap();
                    assert_eq!(out.signal(), Some(9), "{choice} #{i}");
                    assert_gone(&[pid], &format!("{choice} #{i}")).await;
                }
                Err(e) => {
                    refused += 1;
                    assert_eq!(e.kind(), ErrorKind::Spawn, "{choice} #{i}: {e}");
                }
            }
            drop(g);
        }
        eprintln!("{choice}: started {started}, refused {refused}");
    }
    suite.end().await;
}

// ---------------------------------------------------------------------------
// The owner SIGKILLed at random points of group creation and teardown
// ---------------------------------------------------------------------------

/// Runs as the owner when `PKIT_RACE_OWNER` is set (a mechanism), else a
/// no-op: creates groups, starts a tree in each and ends it (close, drop,
/// shutdown, kill), over and over, until it is SIGKILLed. Writes `looping`
/// to `PKIT_RACE_OUT` once the first group is done. With `PKIT_RACE_CAPPED`
/// each group has a memory cap (cgroup v1 directories on a hybrid host),
/// and only every fourth has processes.
#[test]
fn race_owner_helper() {
    let Ok(mech) = std::env::var("PKIT_RACE_OWNER") else {
        return;
    };
    let choice = MechanismChoice::parse(&mech).expect("a mechanism");
    let out = std::env::var_os("PKIT_RACE_OUT").expect("PKIT_RACE_OUT");
    let capped = std::env::var_os("PKIT_RACE_CAPPED").is_some();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        for n in 0u64.. {
            let mut b = pkit::Group::builder().mechanism(choice);
            if capped {
                b = b.memory_max(256 << 20);
            }
            let g = b.build().unwrap();
            // Capped: mostly groups made and dropped, to strike creation.
            if capped && n % 4 != 0 {
                drop(g);
                continue;
            }
            let mut p = g
                .start(&Command::new("sh").args(["-c", "sleep 300 & sleep 300 & wait"]))
                .unwrap();
            let _q = g.start(&Command::new("sleep").arg("300")).unwrap();
            tokio::task::yield_now().await;
            match n % 4 {
                0 => g.close().await.unwrap(),
                1 => drop(g),
                2 => {
                    let _ = g.shutdown(std::time::Duration::from_millis(5)).await;
                }
                _ => {
                    g.kill().unwrap();
                    let _ = p.wait().await;
                }
            }
            if n == 0 {
                std::fs::write(&out, "looping").unwrap();
            }
        }
    });
}

/// Processes (not zombies) whose environment holds `tag`: the owner's
/// children and grandchildren inherit it, and so does its guard.
fn tagged_alive(tag: &str) -> Vec<u32> {
    let needle = tag.as_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle))
                && !pid_gone(pid)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_sigkilled_at_random_points_leaves_nothing() {
    let suite = begin("owner_sigkilled_at_random_points_leaves_nothing").await;
    // Three rounds at a time (each its own owner, tag and directories; the
    // owners loop on the CPU until killed): the same rounds as one by one.
    let rounds = mechanisms()
        .into_iter()
        .flat_map(|choice| (0..12).map(move |i| (choice, i)));
    at_most_at_once(ROUNDS_AT_ONCE, rounds, |(choice, i)| async move {
        owner_race_round(choice, i, &[]).await
    })
    .await;
    suite.end().await;
}

/// The same with capped groups, whose cgroup v1 directories (a hybrid
/// host's memory controller) are made by the cap, after the v2 one: the
/// owner-death guard must know of them before they exist, or an owner
/// killed between their `mkdir` and its registration leaves them behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capped_owner_sigkilled_at_random_points_leaves_no_v1_directory() {
    let suite = begin("capped_owner_sigkilled_at_random_points_leaves_no_v1_directory").await;
    let what = "capped groups of an owner SIGKILLed at random points";
    if portable_run() || !mechanisms().contains(&MechanismChoice::Cgroup) {
        skipped(what, "caps need a cgroup: none in a portable-backend run (PKIT_MECHANISM=portable), or none can be made here");
        suite.end().await;
        return;
    }
    // Where the memory cap's v1 directories go: the owner is our child, in
    // our v1 cgroups, so its caps land beside ours.
    let v1_parents: Vec<std::path::PathBuf> = match pkit::Group::builder()
        .mechanism(MechanismChoice::Cgroup)
        .memory_max(256 << 20)
        .build()
    {
        Err(e) => {
            skipped(what, &format!("memory_max can't be enforced here: {e}"));
            Vec::new()
        }
        Ok(g) => {
            let dirs = g
                .limits()
                .iter()
                // "cgroup v1 <files> in <dir>" (v2 names no directory).
                .filter_map(|l| l.enforced_by.split(" in ").nth(1))
                .filter_map(|d| std::path::Path::new(d).parent().map(|p| p.to_path_buf()))
                .collect();
            g.close().await.unwrap();
            dirs
        }
    };
    if v1_parents.is_empty() {
        skipped(
            what,
            "memory_max is not enforced by cgroup v1 here (no v1 directories)",
        );
    } else {
        eprintln!("capped groups' v1 directories go in {v1_parents:?}");
        let v1_parents = Arc::new(v1_parents);
        at_most_at_once(ROUNDS_AT_ONCE, 0..48, |i| {
            let v1_parents = v1_parents.clone();
            async move { owner_race_round(MechanismChoice::Cgroup, i, &v1_parents).await }
        })
        .await;
    }
    suite.end().await;
}

/// How many owner race rounds run at a time: their owners each keep a
/// core busy, so more would only queue on the CPU (2 cores in CI).
const ROUNDS_AT_ONCE: usize = 3;

/// One round: an owner (capped groups when `v1_parents` is not empty)
/// SIGKILLed at a random point; then nothing of its tree may be running and
/// no `pkit-<owner pid>-*` directory may be left in the v2 parent or in
/// `v1_parents`.
async fn owner_race_round(choice: MechanismChoice, i: u64, v1_parents: &[std::path::PathBuf]) {
    let out = TempPath::new("race-owner");
    let tag = format!(
        "PKIT_RACE_TAG={}-{i}-{}",
        std::process::id(),
        random_below(1 << 40)
    );
    let (name, value) = tag.split_once('=').unwrap();
    let mut owner = ChildOnDrop(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "race_owner_helper",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PKIT_RACE_OWNER", choice.as_str())
            .env("PKIT_RACE_OUT", out.path())
            .env(name, value)
            .envs((!v1_parents.is_empty()).then_some(("PKIT_RACE_CAPPED", "1")))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let owner_pid = owner.id();
    // Some rounds strike during the owner's first group (and its
    // guard's start); the rest once it is looping.
    if i % 3 != 0 {
        let deadline = std::time::Instant::now() + DEADLINE * 3;
        while !out.path().exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{choice} #{i}: the owner never looped"
            );
            if let Ok(Some(s)) = owner.try_wait() {
                panic!("{choice} #{i}: the owner ended: {s}");
            }
            tokio::time::sleep(POLL).await;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(random_below(200))).await;
    kill_pid(owner_pid);
    owner.wait().unwrap();
    let what = format!("{choice} #{i}: owner {owner_pid} SIGKILLed");
    // Its processes, grandchildren and guard: all gone.
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let alive = tagged_alive(&tag);
        if alive.is_empty() {
            break;
        }
        if std::time::Instant::now() >= deadline {
            let names: Vec<String> = alive
                .iter()
                .map(|p| format!("{p} {:?}", comm(*p)))
                .collect();
            for p in &alive {
                kill_pid(*p);
            }
            panic!("{what}: left running: {names:?}");
        }
        tokio::time::sleep(POLL).await;
    }
    // Its cgroup directories: all removed.
    for parent in group_parent().iter().chain(v1_parents) {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let left = cgroup_dirs_of(parent, owner_pid);
            if left.is_empty() {
                break;
            }
            if std::time::Instant::now() >= deadline {
                let empty = left.iter().all(|d| cgroup_procs(d).is_empty());
                if empty {
                    for d in &left {
                        let _ = std::fs::remove_dir(d);
                    }
                }
                panic!("{what}: cgroups left: {left:?} (empty: {empty})");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// `cgroup.freeze` of the cgroup directory `dir` (`None` once it is gone).
fn freeze_of(dir: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(dir.join("cgroup.freeze"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Suspended cgroup groups, each thawed by an end's resume (a started
/// process's `shutdown`, which thaws its suspended group, for a group
/// whose process has exited; `Group::shutdown` for one whose process
/// still runs) while another task closes or drops it, and meanwhile later
/// groups (from the spare pool when one is there) emptied and suspended.
/// The thaw takes only the `freezing` lock, not close's; a thaw landing
/// after the close handed the directory to the pool would thaw, or later
/// freeze, another group's cgroup. Every round: the later groups are still
/// frozen (no old group's thaw reached them), a later run is not frozen,
/// and every directory left (spares, and those awaiting removal) ends up
/// thawed or gone: no frozen directory went to the pool. Cgroup v2 only.
///
/// A regression guard, not a fix: no failure was seen, even with the thaw
/// made to sleep 30 ms before writing `cgroup.freeze 0` by path (past the
/// tenure and the torn-down check). A directory goes to the pool only
/// unfrozen (`retire_if_empty`), that is after the suspend's thaw, which
/// marks the group not suspended under the same `freezing` lock: no later
/// thaw of the closed group writes anything. And every `cgroup.freeze`
/// write goes through the directory's tenure (`sys/linux/tenure.rs`),
/// which the hand-over to the pool waits for and which turns every later
/// write away. Most later groups here reuse an old group's directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thaw_racing_close_reaches_no_pooled_or_later_group() {
    if !cgroup_usable() {
        skipped(
            "a_thaw_racing_close_reaches_no_pooled_or_later_group",
            "no usable cgroup v2",
        );
        return;
    }
    let alone = begin_exclusive().await;
    let choice = MechanismChoice::Cgroup;
    let parent = group_parent().expect("a cgroup parent");
    let grace = std::time::Duration::from_secs(5);
    for round in 0..25 {
        let mut set = tokio::task::JoinSet::new();
        for k in 0..4 {
            let g = Arc::new(group(choice));
            let emptied = k % 2 == 0;
            let program = match emptied {
                true => Command::new("true"),
                false => Command::new("sleep").arg("300"),
            };
            let mut p = g.start(&program).unwrap();
            if emptied {
                p.wait().await.unwrap();
            }
            g.suspend()
                .await
                .unwrap_or_else(|e| panic!("round {round}: suspend: {e}"));
            let g2 = g.clone();
            set.spawn(async move {
                if emptied {
                    let _ = p.shutdown(grace).await;
                } else {
                    let _ = g2.shutdown(grace).await;
                }
            });
            set.spawn(async move {
                tokio::task::yield_now().await;
                match round % 2 {
                    0 => g.close().await.unwrap(),
                    _ => drop(g),
                }
            });
        }
        let mut later = Vec::new();
        for _ in 0..2 {
            let h = group(choice);
            let mut q = h.start(&Command::new("true")).unwrap();
            q.wait().await.unwrap();
            h.suspend().await.unwrap();
            later.push(h);
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        for h in &later {
            let dir = cgroup_dir(h).expect("a cgroup group's directory");
            assert_eq!(
                freeze_of(&dir).as_deref(),
                Some("1"),
                "round {round}: a later suspended group was thawed ({})",
                dir.display()
            );
            h.resume().await.unwrap();
            h.close().await.unwrap();
        }
        let out = cmd(choice, "echo")
            .arg("ok")
            .timeout(std::time::Duration::from_secs(30))
            .output()
            .await
            .unwrap_or_else(|e| panic!("round {round}: a later run: {e}"));
        assert_eq!(out.stdout_str(), "ok\n", "round {round}: {}", out.outcome());
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let frozen: Vec<_> = cgroup_dirs_of(&parent, std::process::id())
                .into_iter()
                .filter(|d| freeze_of(d).as_deref() == Some("1"))
                .collect();
            if frozen.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: frozen directories left: {frozen:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
    assert_nothing_left("a thaw racing close").await;
    end_exclusive(
        alone,
        "a_thaw_racing_close_reaches_no_pooled_or_later_group",
    )
    .await;
}
