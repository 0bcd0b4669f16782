//! The owner-death guard is not woken per message: once it has read its
//! socket it leaves it unwatched for a quiet period (20 ms) before it reads
//! again, unless the owner rings its bell (Linux: a query, a socket filling
//! up) or the owner's end of the socket closes. These tests check that it
//! is not woken per run, that it reads an idle owner's registrations
//! unrung, that registrations it has not read yet still take their groups
//! down with a killed owner, and that its table stays exact over many more
//! messages than ring the bell once.
//!
//! The owners that are killed are this test binary run again as a helper
//! (the test `quiet_owner`, which does nothing unless `PKIT_QUIET_OWNER`
//! is set), as in `guard.rs`; the Linux guard's with a quiet period of an
//! hour (`PKIT_GUARD_QUIET_MS`), so that what they register after their
//! last query stays unread until they die.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, Group, MechanismChoice};

/// Groups the `many` helper registers after the guard last read: fewer
/// than ring the bell (64 messages), so none does.
const UNREAD: usize = 7;

/// The guard's quiet period (`QUIET_MS`): the test binary's own guard
/// reads what it was sent at most this long after.
const QUIET: Duration = Duration::from_millis(20);

/// The helper owners' quiet period: an hour, longer than any test.
const QUIET_HELPER_MS: &str = "3600000";

/// The guard's `voluntary_ctxt_switches`: how often it went to sleep, so
/// (less one) how often it was woken.
fn wakes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches")
}

/// The pids of live processes whose command line contains `mark` (the
/// helper's trees carry it in their arguments).
fn marked(mark: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(mark) && !pid_gone(pid) {
            out.push(pid);
        }
    }
    out
}

/// Runs as the owner when `PKIT_QUIET_OWNER` is set (`many` or `at-once`);
/// otherwise a no-op. Both first have the guard read everything so far (a
/// status query rings the bell), then register groups it leaves unread:
/// `many` starts [`UNREAD`] trees, reports the guard's wake count before
/// and after, and waits to be killed; `at-once` starts one and kills
/// itself as soon as the start returns.
#[test]
fn quiet_owner() {
    let Ok(mode) = std::env::var("PKIT_QUIET_OWNER") else {
        return;
    };
    let out = PathBuf::from(std::env::var_os("PKIT_QUIET_OUT").expect("PKIT_QUIET_OUT"));
    let pids = std::env::var("PKIT_QUIET_PIDS").expect("PKIT_QUIET_PIDS");
    let mark = std::env::var("PKIT_QUIET_MARK").expect("PKIT_QUIET_MARK");
    let choice = MechanismChoice::parse(&std::env::var("PKIT_QUIET_MECH").expect("mech"))
        .expect("a mechanism");
    let say = |line: String| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out)
            .expect("helper output");
        writeln!(f, "{line}").expect("write");
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _enter = rt.enter();
    // Starts the guard (a cgroup group registers at once).
    let first = Group::builder().mechanism(choice).build().expect("group");
    let guard = pkit::host_containment().guard;
    let guard_pid = guard.pid.expect("guard pid");
    assert_eq!(
        guard.entries,
        Some(usize::from(choice == MechanismChoice::Cgroup))
    );
    say(format!("guard {guard_pid}"));
    if mode == "stale-reply" {
        leave_a_reply_unread(guard_pid);
    }
    // The tree: the mark in its script and in its sleep's argument.
    let script = format!(
        r#"trap '' INT; sleep 300.{mark} & echo $! >> "$1"; echo $$ >> "$1"; echo done >> "$1"; wait"#
    );
    let tree = Command::new("sh").args(["-c", &script, "sh", &pids]);
    let before = wakes(guard_pid);
    let count = if mode == "at-once" { 1 } else { UNREAD };
    let mut keep = Vec::new();
    for _ in 0..count {
        let g = Group::builder().mechanism(choice).build().expect("group");
        let p = g.start(&tree).expect("start");
        assert!(g.guarded(), "{}", g.description());
        say(format!("main {}", p.pid()));
        if let Some(dir) = cgroup_dir(&g) {
            say(format!("cgroup {}", dir.display()));
        }
        keep.push((g, p));
    }
    if mode == "at-once" {
        say("ready".into());
        kill_pid(std::process::id());
        unreachable!("the owner killed itself");
    }
    let deadline = Instant::now() + DEADLINE;
    while std::fs::read_to_string(&pids)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == "done")
        .count()
        < count
    {
        assert!(Instant::now() < deadline, "the trees never reported");
        std::thread::sleep(POLL);
    }
    say(format!("wakes {before} {}", wakes(guard_pid)));
    say("ready".into());
    std::hint::black_box((&first, &keep));
    std::thread::sleep(Duration::from_secs(300));
}

/// Leaves a reply of the guard's unread in this owner's socket: with the
/// guard stopped, a status query gives up waiting for its answer; the
/// guard, continued, answers into the socket, where the answer stays (a
/// later query would drop it first; none comes). The owner's end closing
/// with it unread is then reported to the guard as ECONNRESET, once, ahead
/// of the messages still queued for it.
fn leave_a_reply_unread(guard: u32) {
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &guard.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} {guard}");
    };
    let wchan = || std::fs::read_to_string(format!("/proc/{guard}/wchan")).unwrap_or_default();
    signal("-STOP");
    let deadline = Instant::now() + DEADLINE;
    // Switched out in its stop (a running task shows no wait channel), so
    // its count of sleeps includes the stop's.
    while wchan() != "do_signal_stop" {
        assert!(
            Instant::now() < deadline,
            "the guard never stopped: {:?}",
            wchan()
        );
        std::thread::sleep(POLL);
    }
    let stopped = wakes(guard);
    let entries = pkit::host_containment().guard.entries;
    assert_eq!(entries, None, "a stopped guard answered");
    signal("-CONT");
    // Continued, it answers, then sleeps again: one sleep more.
    let deadline = Instant::now() + DEADLINE;
    while wakes(guard) == stopped {
        assert!(
            Instant::now() < deadline,
            "the continued guard never went back to sleep"
        );
        std::thread::sleep(POLL);
    }
}

/// A helper owner, started and ready, and what it reported.
struct Quiet {
    child: std::process::Child,
    text: String,
    mark: String,
    pids: TempPath,
    _out: TempPath,
}

impl Quiet {
    /// `start`: how the owner starts its guard (`PKIT_GUARD_START`: `exec`,
    /// the default, or `fork`).
    fn start(mode: &str, choice: MechanismChoice, start: &str) -> Quiet {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Digits only: it is a fraction of sleep's argument.
        let mark = format!("{}{n:03}7", std::process::id());
        let out = TempPath::new("quiet-out");
        let pids = TempPath::new("quiet-pids");
        let mut helper = std::process::Command::new(std::env::current_exe().expect("test binary"));
        if choice != MechanismChoice::Portable {
            // (The portable guard has no bell: it must answer a query by
            // itself.)
            helper.env("PKIT_GUARD_QUIET_MS", QUIET_HELPER_MS);
        }
        let mut child = helper
            .args(["quiet_owner", "--exact", "--nocapture", "--test-threads=1"])
            .env("PKIT_QUIET_OWNER", mode)
            .env("PKIT_QUIET_OUT", out.path())
            .env("PKIT_QUIET_PIDS", pids.path())
            .env("PKIT_QUIET_MARK", &mark)
            .env("PKIT_QUIET_MECH", choice.as_str())
            .env("PKIT_GUARD_START", start)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("helper owner");
        let deadline = Instant::now() + DEADLINE * 3;
        let text = loop {
            let text = std::fs::read_to_string(out.path()).unwrap_or_default();
            if text.lines().any(|l| l == "ready") {
                break text;
            }
            if mode != "at-once" {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("the helper owner ended early ({status}): {text:?}");
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the helper owner never got ready: {text:?}");
            }
            std::thread::sleep(POLL);
        };
        Quiet {
            child,
            text,
            mark,
            pids,
            _out: out,
        }
    }

    fn values(&self, key: &str) -> Vec<String> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .map(str::to_string)
            .collect()
    }

    fn guard(&self) -> u32 {
        self.values("guard")[0].parse().expect("guard pid")
    }

    /// The trees' processes it knows of: each start's first process, and
    /// what the trees wrote down (none, if killed before they could).
    fn tree(&self) -> Vec<u32> {
        let written = std::fs::read_to_string(self.pids.path()).unwrap_or_default();
        self.values("main")
            .into_iter()
            .chain(written.lines().map(str::to_string))
            .filter_map(|l| l.parse().ok())
            .collect()
    }

    /// Every process of its [`UNREAD`] trees, running.
    fn assert_trees_alive(&self, what: &str) {
        let tree = self.tree();
        assert_eq!(tree.len(), UNREAD * 3, "{what}: {tree:?}");
        assert_alive(&tree, &format!("{what}: before the owner dies"));
    }

    /// SIGKILLs the owner, then [`assert_cleaned_up`](Self::assert_cleaned_up).
    async fn kill_and_assert_cleaned_up(&mut self, what: &str) {
        kill_pid(self.child.id());
        let _ = self.child.wait();
        self.assert_cleaned_up(&format!("{what}: owner SIGKILLed"))
            .await;
    }

    /// After the owner died: every process of its trees gone (the marked
    /// ones too), its cgroups removed, its guard exited.
    async fn assert_cleaned_up(&self, what: &str) {
        assert_gone(&self.tree(), what).await;
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = marked(&self.mark);
            if left.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "{what}: survivors {left:?}");
            tokio::time::sleep(POLL).await;
        }
        for dir in self.values("cgroup") {
            let dir = PathBuf::from(dir);
            while dir.exists() {
                assert!(
                    Instant::now() < deadline + DEADLINE,
                    "{what}: {} remains",
                    dir.display()
                );
                tokio::time::sleep(POLL).await;
            }
        }
        assert_gone(&[self.guard()], &format!("{what}: the guard")).await;
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for p in marked(&self.mark) {
            kill_pid(p);
        }
    }
}

/// Groups registered since the guard last read its socket are in no table
/// yet when the owner is SIGKILLed: the guard reads them at the owner's
/// end of file, then kills every one.
#[tokio::test]
async fn unread_registrations_of_a_killed_owner_are_killed() {
    let suite = begin("unread_registrations").await;
    for (choice, start) in mechanisms()
        .into_iter()
        .flat_map(|c| [(c, "exec"), (c, "fork")])
    {
        let mut owner = Quiet::start("many", choice, start);
        let choice = format!("{choice}, {start}");
        owner.assert_trees_alive(&choice);
        let wakes: Vec<u64> = owner.values("wakes")[0]
            .split(' ')
            .map(|w| w.parse().expect("a count"))
            .collect();
        if !portable_run() {
            // Asleep through all of them (one wake may be the query's
            // reply, sent just before it went back to sleep).
            assert!(
                wakes[1] <= wakes[0] + 1,
                "{choice}: the guard woke {} times for {UNREAD} registrations",
                wakes[1] - wakes[0]
            );
        }
        owner.kill_and_assert_cleaned_up(&choice).await;
    }
    suite.end().await;
}

/// An owner killed with an answer of its guard's unread in its socket (a
/// status query that gave up waiting, the guard being stopped then): the
/// guard is told of the owner's end closing by an ECONNRESET ahead of the
/// registrations still queued, and kills every one of them all the same.
#[tokio::test]
async fn registrations_queued_behind_an_unread_answer_are_killed() {
    let suite = begin("behind_an_unread_answer").await;
    for choice in mechanisms() {
        let mut owner = Quiet::start("stale-reply", choice, "exec");
        let choice = choice.to_string();
        owner.assert_trees_alive(&choice);
        owner.kill_and_assert_cleaned_up(&choice).await;
    }
    suite.end().await;
}

/// An owner killed as soon as its group's first process is started: the
/// registration (sent by the process itself before it ran its program, on
/// the Linux process-group mechanism) is unread, and still honoured.
#[tokio::test]
async fn a_group_started_just_before_its_owner_is_killed_dies_with_it() {
    let suite = begin("started_just_before").await;
    for choice in mechanisms() {
        let mut owner = Quiet::start("at-once", choice, "exec");
        let status = owner.child.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{choice}: {status}"
        );
        owner
            .assert_cleaned_up(&format!("{choice}: owner killed at once"))
            .await;
    }
    suite.end().await;
}

/// Many one-shot runs wake the guard a few times, not once or twice each:
/// their registrations and removals wait in its socket until the end of
/// its quiet period (or the bell).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_is_not_woken_per_run() {
    let alone = begin_alone_in_binary().await;
    const RUNS: u64 = 200;
    for choice in mechanisms() {
        let runner = Arc::new(pkit::SystemRunner::with_mechanism(choice));
        let cmd = Command::new("true").runner(runner);
        assert!(cmd.output().await.expect("warm-up").success());
        let guard = pkit::host_containment().guard.pid.expect("guard pid");
        let before = wakes(guard);
        let started = Instant::now();
        for _ in 0..RUNS {
            assert!(cmd.output().await.expect("run").success());
        }
        // And groups made, used and closed one by one.
        for _ in 0..RUNS / 4 {
            let g = group(choice);
            let mut p = g.start(&Command::new("true")).expect("start");
            p.wait().await.expect("wait");
            g.close().await.expect("close");
        }
        let woken = wakes(guard) - before;
        let took = started.elapsed();
        // At most two wakes per quiet period (its end, and the first
        // message after a read that found none), a ring every 64 messages
        // (about two per process-group run), and a few more. Read per
        // message, the guard woke about twice per run (486 times for these
        // 250 runs): more than this allows while a run takes less than a
        // quiet period.
        let periods = (took.as_millis() / QUIET.as_millis()) as u64 + 1;
        let allowed = 2 * periods + (RUNS + RUNS / 4) * 2 / 64 + 4;
        assert!(
            woken <= allowed,
            "{choice}: the guard woke {woken} times for {} runs in {took:?} (allowed {allowed})",
            RUNS + RUNS / 4
        );
        pkit::release_spare_cgroups();
        let host = pkit::host_containment();
        assert_eq!(host.guard.entries, Some(0), "{choice}: {:?}", host.guard);
    }
    end_exclusive(alone, "the_guard_is_not_woken_per_run").await;
}

/// An idle owner's registrations are read by its guard within its quiet
/// period, with no ring: their pidfds do not stay in flight, where they
/// count against the user's `RLIMIT_NOFILE` (ETOOMANYREFS once past it).
/// (Failed before: the guard read only when rung, every 8 pidfds, so these
/// 7 stayed unread for as long as the owner was idle.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_owners_registrations_are_read_unrung() {
    let alone = begin_alone_in_binary().await;
    let choice = MechanismChoice::ProcessGroup;
    if portable_run() {
        skipped(
            "an idle owner's registrations read unrung",
            "the portable guard is passed no descriptors",
        );
        end_exclusive(alone, "an_idle_owners_registrations_are_read_unrung").await;
        return;
    }
    // The guard runs, and has read everything (a status query rings).
    let first = group(choice);
    let mut p = first.start(&Command::new("true")).expect("start");
    p.wait().await.expect("wait");
    let guard = pkit::host_containment().guard.pid.expect("guard pid");
    let mut live = Vec::new();
    for _ in 0..UNREAD {
        let g = group(choice);
        let p = g.start(&Command::new("sleep").arg("300")).expect("start");
        assert!(g.guarded(), "{}", g.description());
        live.push((g, p));
    }
    let leaders: Vec<u32> = live.iter().map(|(_, p)| p.pid()).collect();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let held = pidfds_held(guard);
        let unread: Vec<u32> = leaders
            .iter()
            .copied()
            .filter(|p| !held.contains(p))
            .collect();
        if unread.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the guard never read the registrations of {unread:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    for (g, mut p) in live {
        g.close().await.expect("close");
        let _ = p.wait().await;
    }
    first.close().await.expect("close");
    end_exclusive(alone, "an_idle_owners_registrations_are_read_unrung").await;
}

/// The guard's table, counted by the guard itself, is exact after far more
/// messages than one ring's worth: live groups, spares, removals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guards_count_is_exact_after_many_starts_and_closes() {
    let alone = begin_alone_in_binary().await;
    for choice in mechanisms() {
        pkit::release_spare_cgroups();
        let mut live = Vec::new();
        for _ in 0..40 {
            let g = group(choice);
            let p = g.start(&Command::new("sleep").arg("300")).expect("start");
            live.push((g, p));
        }
        for (g, mut p) in live.drain(..20) {
            g.close().await.expect("close");
            let _ = p.wait().await;
        }
        let runner = Arc::new(pkit::SystemRunner::with_mechanism(choice));
        for _ in 0..100 {
            let out = Command::new("true").runner(runner.clone()).output().await;
            assert!(out.expect("run").success());
        }
        let host = pkit::host_containment();
        assert_eq!(
            host.guard.entries,
            Some(20 + host.guard.spares),
            "{choice}: 20 live groups and the spares: {:?}",
            host.guard
        );
        assert_eq!(host.guard.groups.len(), 20, "{choice}: {:?}", host.guard);
        for (g, mut p) in live.drain(..) {
            g.close().await.expect("close");
            let _ = p.wait().await;
        }
        pkit::release_spare_cgroups();
        let host = pkit::host_containment();
        assert_eq!(host.guard.entries, Some(0), "{choice}: {:?}", host.guard);
        assert_eq!(host.guard.lost, Some(0), "{choice}: {:?}", host.guard);
    }
    end_exclusive(alone, "the_guards_count_is_exact").await;
}
