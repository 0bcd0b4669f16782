//! A hostile user of what landed on 2026-12-04 (the guard not woken per
//! message; close/kill racing a first start; the portable backend's later
//! members through the trampoline; non-root owners).
//!
//! Helpers are this test binary run again (a test that does nothing unless
//! its variable is set), as in `attack_dec03e.rs`.

mod common;

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use common::*;
use pkit::Command;

/// Marks a run of this binary as [`inflight_owner`]; its value is the soft
/// `RLIMIT_NOFILE` it runs under (set by `prlimit`).
const INFLIGHT_OWNER: &str = "PKIT_D04D_INFLIGHT_OWNER";

/// Groups each owner keeps (before the guard rested between reads, its
/// bell rang at every 8th registration passing a pidfd, so the last 7
/// stayed unread, in flight).
const KEPT: usize = 31;

/// Groups an `idle` owner starts after a status query had its guard read
/// everything: fewer than ever rang the bell, so before the guard rested
/// between reads none was read while the owner was idle.
const IDLE_UNREAD: usize = 7;

/// Runs the `runs` owner makes, one after another.
const RUNS: usize = 100;

/// The effective uid, from `/proc/self/status`.
fn euid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A copy of this test binary that `nobody` can read and run (the build
/// directory may be private), in `dir`.
fn copy_for_nobody(dir: &TempPath) -> std::path::PathBuf {
    std::fs::create_dir(dir.path()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let exe = dir.path().join("attack_dec04d");
    // Copied by `cp`: a descriptor of ours open for writing it could be
    // inherited by a child forked meanwhile and make its exec ETXTBSY.
    let copied = std::process::Command::new("cp")
        .arg(std::env::current_exe().unwrap())
        .arg(&exe)
        .status()
        .unwrap();
    assert!(copied.success(), "copying the test binary");
    exe
}

/// Runs as an owner when [`INFLIGHT_OWNER`] is set (as `nobody`, with a
/// low soft `RLIMIT_NOFILE`): `keep` starts [`KEPT`] groups, each with a
/// `sleep`, says for each whether it is guarded, says `ready` and waits to
/// be killed; `idle` does the same with one group, then its guard's pid (a
/// status query), then [`IDLE_UNREAD`] groups more; `runs` runs `true`
/// [`RUNS`] times, each in a group of its own, says whether each was
/// guarded, says `ready` and exits; `once` does so once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflight_owner() {
    if std::env::var(INFLIGHT_OWNER).is_err() {
        return;
    }
    // Process groups (what a non-root owner falls back to), whose
    // registrations carry pidfds; the portable guard's carry none.
    let choice = match pkit::MechanismChoice::from_env().unwrap() {
        pkit::MechanismChoice::Portable => pkit::MechanismChoice::Portable,
        _ => pkit::MechanismChoice::ProcessGroup,
    };
    let mode = std::env::var(INFLIGHT_OWNER).unwrap();
    if mode == "runs" || mode == "once" {
        // One run after another, each group dropped after it: the
        // registrations' pidfds stay in flight until the guard reads them.
        let runs = if mode == "once" { 1 } else { RUNS };
        for _ in 0..runs {
            let g = pkit::Group::builder().mechanism(choice).build().unwrap();
            let mut p = g.start(&pkit::Command::new("true")).unwrap();
            println!(
                "D04D group {} guarded={} {}",
                p.pid(),
                g.guarded(),
                g.description()
            );
            p.wait().await.unwrap();
        }
        println!("D04D ready");
        return;
    }
    let mut keep = Vec::new();
    let idle = mode == "idle";
    let count = if idle { 1 + IDLE_UNREAD } else { KEPT };
    for i in 0..count {
        if idle && i == 1 {
            // The query rings the bell: the guard reads what is queued.
            let guard = pkit::host_containment().guard.pid.unwrap();
            println!("D04D guard {guard}");
        }
        let g = pkit::Group::builder().mechanism(choice).build().unwrap();
        let p = g
            .start(&pkit::Command::new("sleep").arg("300.0404"))
            .unwrap();
        println!(
            "D04D group {} guarded={} {}",
            p.pid(),
            g.guarded(),
            g.description()
        );
        keep.push((g, p));
    }
    println!("D04D ready");
    std::hint::black_box(&keep);
    std::future::pending::<()>().await;
}

/// Several non-root owners at once, each with a low soft `RLIMIT_NOFILE`
/// (160) and 31 process groups: every registration carries its leader's
/// pidfd, which counts against its sender's user's in-flight descriptors
/// until the guard reads it, and the kernel refuses a send past the
/// sender's `RLIMIT_NOFILE` (ETOOMANYREFS). Each owner alone stays far
/// below its limit: every group must be guarded, and every owner killed
/// must take its groups down.
///
/// (Failed before: the later owners' sends failed with ETOOMANYREFS, read
/// as "the owner-death guard is gone", and their groups ran unguarded and
/// survived their owner. Now an owner refused rings its guard, which reads
/// its share, and sends again; and since the guards read within their
/// quiet period unrung, idle owners leave nothing in flight:
/// `idle_owners_leave_no_descriptors_in_flight_for_a_new_owner`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_root_owners_with_unread_registrations_past_their_fd_limit() {
    if std::env::var(INFLIGHT_OWNER).is_ok() {
        return;
    }
    if euid() != Some(0) {
        skipped(
            "non-root owners' unread registrations",
            "needs root to run this binary as nobody",
        );
        return;
    }
    let suite = begin("non_root_owners_with_unread_registrations").await;
    let dir = TempPath::new("d04d-nobody");
    let exe = copy_for_nobody(&dir);
    let mut owners = Vec::new();
    let mut sleeps = Vec::new();
    let mut unguarded = Vec::new();
    for _ in 0..7 {
        nobody_owner(
            &exe,
            "keep",
            160,
            None,
            &mut owners,
            &mut sleeps,
            &mut unguarded,
        );
    }
    let _cleanup = KillOnDrop::new(sleeps.clone());
    for o in &mut owners {
        o.kill().unwrap();
        o.wait().unwrap();
    }
    assert!(
        unguarded.is_empty(),
        "groups left unguarded: {}",
        unguarded.join("\n")
    );
    assert_gone(&sleeps, "the groups of non-root owners killed").await;
    suite.end().await;
}

/// Starts [`inflight_owner`] as `nobody` in `mode` with the soft
/// `RLIMIT_NOFILE` `nofile`, and reads what it says until `ready`: the
/// pids it started go to `pids`, the lines of groups not guarded to
/// `unguarded`; returns its guard's pid if it said it. `quiet`: its
/// guard's quiet period (`PKIT_GUARD_QUIET_MS`; `None`: the default). On
/// a failure every owner is killed (and the pids).
#[allow(clippy::too_many_arguments)]
fn nobody_owner(
    exe: &std::path::Path,
    mode: &str,
    nofile: u32,
    quiet: Option<&str>,
    owners: &mut Vec<std::process::Child>,
    pids: &mut Vec<u32>,
    unguarded: &mut Vec<String>,
) -> Option<u32> {
    let mut guard = None;
    let mut owner = std::process::Command::new("setpriv");
    if let Some(ms) = quiet {
        owner.env("PKIT_GUARD_QUIET_MS", ms);
    }
    let mut child = owner
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["prlimit", &format!("--nofile={nofile}:"), "--"])
        .arg(exe)
        .args([
            "--exact",
            "inflight_owner",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INFLIGHT_OWNER, mode)
        .current_dir("/")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    owners.push(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.split("D04D ").nth(1) {
                if tx.send(rest.to_string()).is_err() {
                    break;
                }
            }
        }
    });
    let deadline = Instant::now() + DEADLINE * 12;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(l) => l,
            Err(e) => {
                for o in owners.iter_mut() {
                    let _ = o.kill();
                    let _ = o.wait();
                }
                let _cleanup = KillOnDrop::new(pids.clone());
                panic!("an owner ({mode}) never said ready ({e}): {unguarded:?}");
            }
        };
        if line == "ready" {
            break guard;
        }
        if let Some(pid) = line.strip_prefix("guard ") {
            guard = Some(pid.parse().unwrap());
            continue;
        }
        let mut words = line.split(' ');
        let pid: u32 = words.nth(1).unwrap().parse().unwrap();
        pids.push(pid);
        if words.next() != Some("guarded=true") {
            unguarded.push(line.clone());
        }
    }
}

/// A non-root owner whose user has many descriptors in flight already (five
/// idle owners' last 7 registrations each, unread by their guards: 35), with a low soft
/// `RLIMIT_NOFILE` (40): its own runs' registrations, left unread by its
/// quiet guard, push the user's count past its limit, and the kernel
/// refuses the next send (ETOOMANYREFS). The owner rings its guard, which
/// reads them, and sends again: every run is guarded. (Failed before: the
/// refusal was taken for a dead guard, and every later group of the owner
/// ran unguarded, "the owner-death guard is gone: Too many references".)
/// Every Linux guard here rests an hour between reads (`PKIT_GUARD_QUIET_MS`),
/// so that nothing is read unless rung, as before the guards read within
/// 20 ms by themselves: the ring on a refusal, a last resort now, is what
/// is tested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_root_owner_past_its_users_descriptors_in_flight_stays_guarded() {
    if std::env::var(INFLIGHT_OWNER).is_ok() {
        return;
    }
    if euid() != Some(0) {
        skipped(
            "a non-root owner past its user's descriptors in flight",
            "needs root to run this binary as nobody",
        );
        return;
    }
    let suite = begin("a_non_root_owner_past_its_users_descriptors_in_flight").await;
    let dir = TempPath::new("d04d-nobody-runs");
    let exe = copy_for_nobody(&dir);
    let mut owners = Vec::new();
    let mut sleeps = Vec::new();
    let mut unguarded = Vec::new();
    const IDLE: usize = 5;
    // (Not the portable guard's: it has no bell to be rung by, and passes
    // no descriptors.)
    let hour = (!portable_run()).then_some("3600000");
    for _ in 0..IDLE {
        nobody_owner(
            &exe,
            "idle",
            160,
            hour,
            &mut owners,
            &mut sleeps,
            &mut unguarded,
        );
    }
    let _cleanup = KillOnDrop::new(sleeps.clone());
    let mut runs = Vec::new();
    let mut runs_unguarded = Vec::new();
    nobody_owner(
        &exe,
        "runs",
        40,
        hour,
        &mut owners,
        &mut runs,
        &mut runs_unguarded,
    );
    let status = owners[IDLE].wait().unwrap();
    for idle in &mut owners[..IDLE] {
        idle.kill().unwrap();
        idle.wait().unwrap();
    }
    assert!(status.success(), "the runs' owner: {status}");
    assert!(unguarded.is_empty(), "the idle owner: {unguarded:?}");
    assert_eq!(runs.len(), RUNS);
    assert!(
        runs_unguarded.is_empty(),
        "runs left unguarded: {}",
        runs_unguarded.join("\n")
    );
    assert_gone(&sleeps, "the idle owner's groups, the owner killed").await;
    suite.end().await;
}

/// Many idle non-root owners (8), each with registrations its guard was
/// not rung for ([`IDLE_UNREAD`]): their guards read them on their own
/// within their quiet period, so their user's count of descriptors in
/// flight falls back to nothing, and a new owner of that user with a low
/// soft `RLIMIT_NOFILE` (40) starts a process group that is guarded at
/// once. (Failed before: the guards read only when rung, every 8 pidfds;
/// the idle owners' 56 pidfds stayed in flight for good, over the new
/// owner's limit, and its registration was refused (ETOOMANYREFS) for the
/// 2 s its retries last, then given up: the group ran unguarded. With
/// about 128 idle owners the common limit of 1024 was filled so.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_owners_leave_no_descriptors_in_flight_for_a_new_owner() {
    if std::env::var(INFLIGHT_OWNER).is_ok() {
        return;
    }
    if euid() != Some(0) {
        skipped(
            "idle non-root owners' descriptors in flight",
            "needs root to run this binary as nobody",
        );
        return;
    }
    if portable_run() {
        skipped(
            "idle non-root owners' descriptors in flight",
            "the portable guard is passed no descriptors",
        );
        return;
    }
    let suite = begin("idle_owners_leave_no_descriptors_in_flight").await;
    let dir = TempPath::new("d04d-nobody-idle");
    let exe = copy_for_nobody(&dir);
    let mut owners = Vec::new();
    let mut sleeps = Vec::new();
    let mut unguarded = Vec::new();
    let mut guards = Vec::new();
    const IDLE: usize = 8;
    for _ in 0..IDLE {
        let guard = nobody_owner(
            &exe,
            "idle",
            160,
            None,
            &mut owners,
            &mut sleeps,
            &mut unguarded,
        );
        guards.push(guard.expect("an idle owner's guard"));
    }
    let _cleanup = KillOnDrop::new(sleeps.clone());
    // Every leader's pidfd reaches its guard (none rung since its query).
    let deadline = Instant::now() + DEADLINE;
    let unread = loop {
        let held: std::collections::BTreeSet<u32> =
            guards.iter().flat_map(|&g| pidfds_held(g)).collect();
        let unread: Vec<u32> = sleeps
            .iter()
            .copied()
            .filter(|p| !held.contains(p))
            .collect();
        if unread.is_empty() || Instant::now() > deadline {
            break unread;
        }
        tokio::time::sleep(POLL).await;
    };
    let mut once = Vec::new();
    let mut once_unguarded = Vec::new();
    nobody_owner(
        &exe,
        "once",
        40,
        None,
        &mut owners,
        &mut once,
        &mut once_unguarded,
    );
    let status = owners[IDLE].wait().unwrap();
    for idle in &mut owners[..IDLE] {
        idle.kill().unwrap();
        idle.wait().unwrap();
    }
    assert!(status.success(), "the new owner: {status}");
    assert!(unguarded.is_empty(), "the idle owners: {unguarded:?}");
    assert_eq!(once.len(), 1);
    assert!(
        once_unguarded.is_empty(),
        "the new owner's group, with the idle owners' registrations of {unread:?} unread: {}",
        once_unguarded.join("\n")
    );
    assert!(
        unread.is_empty(),
        "registrations the idle owners' guards never read: {unread:?}"
    );
    assert_gone(&sleeps, "the idle owners' groups, the owners killed").await;
    suite.end().await;
}

/// Marks a run of this binary as [`copy_holding_owner`]; its value is the
/// mode (`fork` or `pre-exec`).
const COPY_OWNER: &str = "PKIT_D04D_COPY_OWNER";

/// Runs as an owner when [`COPY_OWNER`] is set: starts a tree in a group,
/// says its pids, then leaves a copy of itself about that holds all its
/// descriptors: `fork`, a fork without exec that sleeps (says its pid);
/// `pre-exec`, a second start whose `pre_exec` hook stops its child
/// before its `exec`. Says `ready` and waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_holding_owner() {
    let Ok(mode) = std::env::var(COPY_OWNER) else {
        return;
    };
    let choice = pkit::MechanismChoice::from_env().unwrap();
    // `fork-both`: a tree under the other guard too (the portable one
    // beside the Linux one), its group made second.
    let other = match choice {
        pkit::MechanismChoice::Portable => pkit::MechanismChoice::ProcessGroup,
        _ => pkit::MechanismChoice::Portable,
    };
    let choices = if mode == "fork-both" {
        vec![choice, other]
    } else {
        vec![choice]
    };
    let mut keep = Vec::new();
    for choice in choices {
        let group = pkit::Group::builder().mechanism(choice).build().unwrap();
        let mut p = group
            .start(
                &pkit::Command::new("sh")
                    .args(["-c", TREE_TO_STDOUT])
                    .stream_lines(),
            )
            .unwrap();
        let mut lines = p.lines();
        let mut pids = vec![p.pid()];
        while let Some(l) = lines.next_line().await {
            if l.text == "ready" {
                break;
            }
            pids.push(l.text.parse().unwrap());
        }
        assert!(group.guarded(), "{choice}: {}", group.description());
        for pid in &pids {
            println!("D04D tree {pid}");
        }
        keep.push((group, p));
    }
    std::hint::black_box(&keep);
    if mode.starts_with("fork") {
        // Raw: the case under test is the application's own fork without
        // exec; rustix has no fork.
        // SAFETY: the child makes only async-signal-safe calls (alarm,
        // pause, _exit) and never returns into the test harness.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
        if child == 0 {
            // SAFETY: as above.
            unsafe {
                libc::alarm(120);
                loop {
                    libc::pause();
                }
            }
        }
        println!("D04D copy {child}");
    } else {
        let second = pkit::Group::builder().mechanism(choice).build().unwrap();
        std::thread::spawn(move || {
            // SAFETY: raise is async-signal-safe; the hook allocates nothing.
            let cmd = unsafe {
                pkit::Command::new("sleep").arg("300").pre_exec(|| {
                    libc::raise(libc::SIGSTOP);
                    Ok(())
                })
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _enter = rt.enter();
            let _p = second.start(&cmd);
            std::thread::sleep(Duration::from_secs(300));
        });
    }
    println!("D04D ready");
    std::future::pending::<()>().await;
}

/// Runs [`copy_holding_owner`] in `mode`, SIGKILLs it once it is ready
/// (for `pre-exec`, once its stopped child is seen), and checks that the
/// tree is gone: the owner is dead, whatever copy of its descriptors a
/// fork of it still holds.
async fn owner_killed_with_a_copy_about(mode: &str) {
    let mut child = helper_owner("copy_holding_owner", COPY_OWNER, mode);
    let rx = tagged_lines(&mut child, "D04D ");
    let mut tree = Vec::new();
    let mut copies = Vec::new();
    loop {
        let line = rx.recv_timeout(DEADLINE * 6);
        let Ok(line) = line else {
            let _ = child.kill();
            let _ = child.wait();
            let _cleanup = KillOnDrop::new(tree.clone());
            panic!("the owner never said ready");
        };
        match line.split_once(' ') {
            Some(("tree", pid)) => tree.push(pid.parse::<u32>().unwrap()),
            Some(("copy", pid)) => copies.push(pid.parse::<u32>().unwrap()),
            _ if line == "ready" => break,
            _ => {}
        }
    }
    let _cleanup = KillOnDrop::new(tree.clone());
    if mode == "pre-exec" {
        // The second start's child, stopped before its exec (a fork of
        // the owner that is no `sleep` yet).
        let deadline = Instant::now() + DEADLINE * 3;
        loop {
            let stopped: Vec<u32> = children_of(child.id())
                .into_iter()
                .filter(|(pid, state, _)| *state == 'T' && !tree.contains(pid))
                .map(|(pid, _, _)| pid)
                .collect();
            if !stopped.is_empty() {
                copies = stopped;
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the pre_exec child never stopped");
            }
            std::thread::sleep(POLL);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = wait_gone(&tree, DEADLINE * 3).await;
    for &pid in &copies {
        kill_pid(pid);
    }
    assert_eq!(
        gone,
        Ok(()),
        "{mode}: a killed owner's tree outlived it while a copy of the owner ({copies:?}) lives"
    );
}

/// An owner that forked (without exec) a child that lives on, SIGKILLed:
/// its group's tree must go with it, not with the fork.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_killed_while_its_fork_lives_takes_its_groups() {
    if std::env::var(COPY_OWNER).is_ok() {
        return;
    }
    let suite = begin("an_owner_killed_while_its_fork_lives").await;
    owner_killed_with_a_copy_about("fork").await;
    suite.end().await;
}

/// As [`an_owner_killed_while_its_fork_lives_takes_its_groups`], with
/// groups under both of the owner's guards (the portable backend's beside
/// the Linux one's): each guard's socket end is dropped in the fork, not
/// only the last one started. (Failed before: the first guard's tree
/// outlived its owner.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_killed_while_its_fork_lives_takes_both_guards_groups() {
    if std::env::var(COPY_OWNER).is_ok() {
        return;
    }
    let suite = begin("an_owner_killed_while_its_fork_lives_both").await;
    owner_killed_with_a_copy_about("fork-both").await;
    suite.end().await;
}

/// An owner SIGKILLed while a start's child is stopped in its `pre_exec`
/// hook (before its exec: a fork of the owner): the other group's tree
/// must go with the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_killed_while_a_pre_exec_child_is_stopped_takes_its_groups() {
    if std::env::var(COPY_OWNER).is_ok() {
        return;
    }
    if portable_run() {
        skipped(
            "an owner killed during a stopped pre_exec",
            "the portable backend runs no pre_exec hook",
        );
        return;
    }
    let suite = begin("an_owner_killed_while_a_pre_exec_child_is_stopped").await;
    owner_killed_with_a_copy_about("pre-exec").await;
    suite.end().await;
}

/// `/proc/<pid>/<file>` split at NULs (`cmdline`, `environ`) of a started
/// process. Polled: a start returns once the exec has closed the
/// descriptors marked close-on-exec, a moment before the new image's
/// arguments and environment are set up (empty until then).
fn proc_list(pid: u32, file: &str) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + DEADLINE;
    let raw = loop {
        let raw = std::fs::read(format!("/proc/{pid}/{file}")).unwrap();
        if !raw.is_empty() || Instant::now() > deadline {
            break raw;
        }
        std::thread::sleep(POLL);
    };
    let mut out: Vec<Vec<u8>> = raw.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    if out.last().is_some_and(Vec::is_empty) {
        out.pop();
    }
    out
}

/// A group's first and later members (the portable backend starts both
/// through its trampoline) get exactly their argument vector and
/// environment: empty and odd arguments, bytes that are no UTF-8, an empty
/// value, a value with `=` and a newline, loader variables of the child's
/// own (which the trampoline carries behind a prefix), and a variable
/// named like the trampoline's own; none of the trampoline's entries leak.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argv_and_env_pass_a_start_intact() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let suite = begin("argv_and_env_pass_a_start_intact").await;
    for choice in mechanisms() {
        let group = group(choice);
        let args: Vec<&[u8]> = vec![
            b"-c",
            b"sleep 300; :",
            b"d04d",
            b"",
            b"a b",
            b"-",
            b"--",
            b"\xff\xfe",
            b"x\ny=z",
        ];
        let env: Vec<(&[u8], &[u8])> = vec![
            (b"EMPTY", b""),
            (b"EQ", b"a=b=c\nd"),
            (b"LD_LIBRARY_PATH", b"/nonexistent-d04d"),
            (b"GLIBC_TUNABLES", b"glibc.malloc.check=0"),
            (b"RAW", b"\xff"),
            (b"PKIT_TRAMPOLINE_EXECX", b"1"),
            (b"PATH", b"/usr/bin:/bin"),
        ];
        let mut cmd = Command::new("sh").env_clear();
        for a in &args {
            cmd = cmd.arg(OsStr::from_bytes(a));
        }
        for (k, v) in &env {
            cmd = cmd.env(OsStr::from_bytes(k), OsStr::from_bytes(v));
        }
        let mut started = Vec::new();
        for _ in 0..3 {
            started.push(group.start(&cmd).unwrap());
        }
        let _cleanup = KillOnDrop::new(started.iter().map(|p| p.pid()).collect());
        let mut want_env: Vec<Vec<u8>> = env.iter().map(|(k, v)| [*k, b"=", *v].concat()).collect();
        want_env.sort();
        for (i, p) in started.iter().enumerate() {
            let argv = proc_list(p.pid(), "cmdline");
            assert_eq!(argv.len(), args.len() + 1, "{choice} member {i}: {argv:?}");
            assert_eq!(
                &argv[1..],
                &args.iter().map(|a| a.to_vec()).collect::<Vec<_>>()[..]
            );
            let mut got = proc_list(p.pid(), "environ");
            got.sort();
            assert_eq!(
                got.iter()
                    .map(|e| String::from_utf8_lossy(e).into_owned())
                    .collect::<Vec<_>>(),
                want_env
                    .iter()
                    .map(|e| String::from_utf8_lossy(e).into_owned())
                    .collect::<Vec<_>>(),
                "{choice} member {i}: its environment"
            );
            assert_eq!(
                got, want_env,
                "{choice} member {i}: its environment's bytes"
            );
        }
        group.kill().unwrap();
        for mut p in started {
            let _ = p.wait().await;
        }
    }
    suite.end().await;
}

/// Marks a run of this binary as [`stopped_guard_owner`].
const STOPPED_GUARD_OWNER: &str = "PKIT_D04D_STOPPED_GUARD_OWNER";

/// Groups [`stopped_guard_owner`] makes after its guard was stopped: more
/// than its socket holds.
const PAST_FULL: usize = 200;

/// Runs as an owner when [`STOPPED_GUARD_OWNER`] is set: starts its guard
/// (a first group), says the guard's pid, waits for a line on stdin (the
/// guard is stopped by then), then makes [`PAST_FULL`] groups with a
/// `sleep` each, saying each one's pid and whether it is guarded, says
/// `ready` and waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_guard_owner() {
    if std::env::var(STOPPED_GUARD_OWNER).is_err() {
        return;
    }
    let choice = pkit::MechanismChoice::from_env().unwrap();
    let first = pkit::Group::builder().mechanism(choice).build().unwrap();
    let p = first.start(&Command::new("sleep").arg("300")).unwrap();
    println!("D04D group {} guarded={}", p.pid(), first.guarded());
    let guard = pkit::host_containment().guard.pid.expect("a guard");
    println!("D04D guard {guard}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let mut keep = vec![(first, p)];
    for _ in 0..PAST_FULL {
        let g = pkit::Group::builder().mechanism(choice).build().unwrap();
        let p = g.start(&Command::new("sleep").arg("300")).unwrap();
        println!("D04D group {} guarded={}", p.pid(), g.guarded());
        keep.push((g, p));
    }
    println!("D04D ready");
    std::hint::black_box(&keep);
    std::future::pending::<()>().await;
}

/// A guard SIGSTOPped while its owner registers more groups than its
/// socket holds: the owner does not hang (it gives the guard up within its
/// bound, and the groups after are unguarded, saying so); continued, the
/// guard still ends every group it was sent once the owner is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_guard_past_a_full_socket() {
    if std::env::var(STOPPED_GUARD_OWNER).is_ok() {
        return;
    }
    let suite = begin("a_stopped_guard_past_a_full_socket").await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stopped_guard_owner",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(STOPPED_GUARD_OWNER, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.split("D04D ").nth(1) {
                if tx.send(rest.to_string()).is_err() {
                    break;
                }
            }
        }
    });
    let mut guarded = Vec::new();
    let mut unguarded = Vec::new();
    let mut guard = None;
    let fail =
        |child: &mut std::process::Child, guard: Option<u32>, all: Vec<u32>, why: String| -> ! {
            // A stopped guard would stay stopped for ever.
            if let Some(guard) = guard {
                let _ = std::process::Command::new("kill")
                    .args(["-CONT", &guard.to_string()])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
            let _cleanup = KillOnDrop::new(all);
            panic!("{why}");
        };
    loop {
        let Ok(line) = rx.recv_timeout(DEADLINE * 12) else {
            let all = [&guarded[..], &unguarded[..]].concat();
            fail(
                &mut child,
                guard,
                all,
                "the owner hung, or never said ready".into(),
            );
        };
        match line.split_once(' ') {
            Some(("guard", pid)) => {
                let pid: u32 = pid.parse().unwrap();
                guard = Some(pid);
                let stopped = std::process::Command::new("kill")
                    .args(["-STOP", &pid.to_string()])
                    .status()
                    .unwrap();
                assert!(stopped.success());
                stdin.write_all(b"go\n").unwrap();
            }
            Some(("group", rest)) => {
                let (pid, flag) = rest.split_once(' ').unwrap();
                let pid: u32 = pid.parse().unwrap();
                if flag == "guarded=true" {
                    guarded.push(pid);
                } else {
                    unguarded.push(pid);
                }
            }
            _ if line == "ready" => break,
            _ => {}
        }
    }
    let guard = guard.unwrap();
    let _cleanup = KillOnDrop::new([&guarded[..], &unguarded[..]].concat());
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &guard.to_string()])
        .status();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !unguarded.is_empty(),
        "a stopped guard was never given up ({} groups guarded)",
        guarded.len()
    );
    assert_gone(&guarded, "the guarded groups of a killed owner").await;
    for &pid in &unguarded {
        kill_pid(pid);
    }
    wait_gone(&[guard], DEADLINE)
        .await
        .expect("the guard exits");
    suite.end().await;
}
