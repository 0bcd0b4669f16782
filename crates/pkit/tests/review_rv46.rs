//! rv46: a hostile review of the tenth session's merges (cgname's cgroup
//! names and stale sweep, zshut's awaited freeze, rv45's forked-copy
//! fixes, env21's unlocked environment read, the exit mark where the
//! unread count is unknown). Run in the three passes (unset,
//! `PKIT_MECHANISM=pgroup`, `PKIT_MECHANISM=portable`); the cgroup cases
//! say they are skipped outside the cgroup pass.
//!
//! Finding (older than the tenth session; the CLI half, tests/review_rv46.rs
//! of pkit-cli, has a MEDIUM of the same kind, fixed):
//! - LOW, not fixed (documented in docs/gotchas.md, "A pid namespace
//!   without a `/proc` of its own")
//!   [`a_process_group_under_anothers_proc_lists_its_members`]: under the
//!   `/proc` of another pid namespace (`unshare -pf` without
//!   `--mount-proc`) a process group's listing walks numbers that are not
//!   this namespace's: members whose numbers here `/proc` does not list
//!   are missed (`Group::pids` empty for a shell and its `sleep`; a
//!   shutdown counts them gone). Membership is still asked of the kernel
//!   here (`getpgid`), so nothing outside the group is taken for a member.
//!
//! Probes that held (every pass):
//! - [`the_sweep_judges_lookalike_names_as_their_owners_would_be`]
//!   (cgname): a helper owner moved into a private cgroup of this test
//!   sweeps (any age) directories made there by hand: a live process's
//!   pid and namespace with another start time (a reused pid) is swept,
//!   with its own start time kept; another namespace's name is swept
//!   unless locked or not empty (its member unharmed); an older pkit's
//!   name of a live pid is kept; names pkit never makes (two or four owner
//!   parts, an empty or signed part, a pid past `u32`, an empty count or
//!   name, a capital prefix) are kept, a named group's name with dots and
//!   dashes is read as one.
//! - [`a_suspend_during_a_shutdowns_freeze_wait_outlives_its_cancel`]
//!   (zshut): a shutdown waiting for its freeze (a member held in a v1
//!   freezer), then a suspend, then the shutdown dropped: the group stays
//!   suspended and frozen (the user's freeze is not undone by the
//!   cancelled shutdown's), and a resume thaws it.
//! - [`two_shutdowns_at_once_both_end_the_group`] (zshut): two shutdowns
//!   of one group at once, a member held so both wait for their freeze,
//!   and a member forking meanwhile: both return, every process is gone,
//!   the group's directory is not left frozen.
//!
//! Read, not run: `Source::unread` is `None` only where `FIONREAD` fails,
//! which it does not on a Linux pipe (the change is Windows'); a forked
//! copy's own `/proc` opened with `O_NONBLOCK` on its maker's number is
//! still let go of (rv45's documented residue); `nested_group` matches an
//! owner of this namespace by pid alone, not start time (a member can name
//! a sub-cgroup for itself either way: the documented escape from
//! catchable signals only).

mod common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, Group, MechanismChoice};

const HELPER_VAR: &str = "PKIT_RV46_HELPER";
const HELPER: &str = "rv46_helper";

/// The sweep helper (a no-op unless [`HELPER_VAR`] is set): moves itself
/// into the cgroup `PKIT_RV46_PARENT`, makes a cgroup group there (its
/// first: its stale sweep runs on that parent), runs `true`, closes the
/// group and prints `rv46 dir <its directory>`.
#[test]
fn rv46_helper() {
    match std::env::var(HELPER_VAR).as_deref() {
        Ok("sweep") => sweep_helper(),
        Ok("pids") => pids_helper(),
        _ => {}
    }
}

/// The `pids` helper, pid 1 of a pid namespace of its own under this
/// test's `/proc`: its next pids made `PKIT_RV46_FIRST` on (`ns_last_pid`),
/// a process group with a shell and a `sleep` in it; prints `rv46 said
/// <the shell's pid> <the sleep's>` and `rv46 pids <what Group::pids
/// lists>`, sorted, once they agree or 5 s have passed.
fn pids_helper() {
    let first: u32 = std::env::var("PKIT_RV46_FIRST")
        .expect("PKIT_RV46_FIRST")
        .parse()
        .expect("a number");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let group = Group::builder()
            .mechanism(MechanismChoice::ProcessGroup)
            .build()
            .expect("a process group");
        std::fs::write("/proc/sys/kernel/ns_last_pid", (first - 1).to_string())
            .expect("ns_last_pid");
        let file = std::env::var("PKIT_RV46_FILE").expect("PKIT_RV46_FILE");
        let mut p = group
            .start(&Command::new("sh").args([
                "-c",
                r#"sleep 300 & echo $$ $! > "$1.tmp"; mv "$1.tmp" "$1"; wait"#,
                "sh",
                &file,
            ]))
            .expect("start");
        let until = Instant::now() + DEADLINE;
        let line = loop {
            if let Ok(line) = std::fs::read_to_string(&file) {
                break line;
            }
            assert!(Instant::now() < until, "the shell never said its pids");
            tokio::time::sleep(POLL).await;
        };
        let mut said: Vec<u32> = line
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        said.sort_unstable();
        let until = Instant::now() + Duration::from_secs(5);
        let mut listed = loop {
            let mut listed = group.pids().expect("pids");
            listed.sort_unstable();
            if listed == said || Instant::now() > until {
                break listed;
            }
            tokio::time::sleep(POLL).await;
        };
        listed.sort_unstable();
        println!("rv46 said {said:?}");
        println!("rv46 pids {listed:?}");
        group.kill().expect("kill");
        let _ = p.wait().await;
        group.close().await.expect("close");
    });
}

/// The `sweep` helper (see [`rv46_helper`]).
fn sweep_helper() {
    let parent = PathBuf::from(std::env::var("PKIT_RV46_PARENT").expect("PKIT_RV46_PARENT"));
    std::fs::write(parent.join("cgroup.procs"), std::process::id().to_string())
        .expect("moved into the private cgroup");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let group = Group::builder()
            .mechanism(MechanismChoice::Cgroup)
            .build()
            .expect("a cgroup group");
        let dir = cgroup_dir(&group).expect("a cgroup directory");
        let mut p = group.start(&Command::new("true")).expect("start");
        p.wait().await.expect("wait");
        group.close().await.expect("close");
        println!("rv46 dir {}", dir.display());
    });
}

/// The start time (clock ticks after boot) of process `pid`.
fn start_of(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("its stat");
    let rest = &stat[stat.rfind(')').expect("a comm") + 1..];
    rest.split_ascii_whitespace()
        .nth(19)
        .expect("field 22")
        .parse()
        .expect("a number")
}

/// A private cgroup under this process's group parent, removed (with
/// what is left in it, the processes moved out first) when dropped.
struct Private(PathBuf);

impl Drop for Private {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                for pid in cgroup_own_procs(&e.path()) {
                    kill_pid(pid);
                }
                let until = Instant::now() + DEADLINE;
                while std::fs::remove_dir(e.path()).is_err() && Instant::now() < until {
                    std::thread::sleep(POLL);
                }
            }
        }
        let until = Instant::now() + DEADLINE;
        while std::fs::remove_dir(&self.0).is_err() && Instant::now() < until {
            std::thread::sleep(POLL);
        }
    }
}

/// Holds `flock(LOCK_SH)` on directory `dir` while alive, as an owner does.
fn lock_shared(dir: &Path) -> std::fs::File {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(dir).expect("open the directory");
    // SAFETY: flock(2) on a descriptor this function owns.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    assert_eq!(r, 0, "flock: {}", std::io::Error::last_os_error());
    f
}

/// cgname: the stale sweep's judgement of names made by hand. Every case
/// is empty (but one) and unlocked (but one), so only the name decides;
/// the helper's sweep is told to consider any age. Cgroup only.
#[tokio::test]
async fn the_sweep_judges_lookalike_names_as_their_owners_would_be() {
    const NAME: &str = "the_sweep_judges_lookalike_names_as_their_owners_would_be";
    let suite = begin(NAME).await;
    if !cgroup_pass(NAME) {
        skipped(NAME, "cgroup v2 only");
        suite.end().await;
        return;
    }
    // Under another namespace's `/proc` no owner of this one can be judged
    // by its pid: the lock alone speaks (see docs/gotchas.md).
    let own_proc = std::fs::read_link("/proc/self")
        .is_ok_and(|p| p.to_str() == Some(&std::process::id().to_string()));
    if !own_proc {
        skipped(NAME, "this /proc is another pid namespace's");
        suite.end().await;
        return;
    }
    let parent = group_parent().expect("a group parent");
    let private = Private(parent.join(format!("rv46-sweep-{}.{}", std::process::id(), pid_ns())));
    std::fs::create_dir(&private.0).expect("a private cgroup");
    let dir = &private.0;
    // A live process of this namespace, with its start time.
    let sleeper = ChildOnDrop(
        std::process::Command::new("sleep")
            .arg("300")
            .spawn()
            .expect("sleep"),
    );
    let (p, ns) = (sleeper.0.id(), pid_ns());
    let start = start_of(p);
    let other = ns + 1;
    let swept = [
        format!("pkit-{p}.{ns}.{}-1", start + 1),
        format!("pkit-{p}.{other}.{start}-2"),
        format!("pkit-{p}.{other}.{start}-3-my.name-x-"),
        format!("pkit-{p}.{other}.{start}-4-a"),
    ];
    let kept = [
        format!("pkit-{p}.{ns}.{start}-10"),
        format!("pkit-{p}-11"),
        format!("pkit-{p}-12-named"),
        format!("pkit-{p}.{other}-13"),
        format!("pkit-{p}.{other}.{start}.1-14"),
        format!("pkit-{p}.{other}.{start}-"),
        format!("pkit-{p}.{other}.{start}-x"),
        format!("pkit-{p}.{other}.{start}-15-"),
        format!("pkit-.{other}.{start}-16"),
        format!("pkit-{p}..{start}-17"),
        format!("pkit-+{p}.{other}.{start}-18"),
        format!("pkit-99999999999.{other}.{start}-19"),
        format!("PKIT-{p}.{other}.{start}-20"),
        format!("pkit-{p}.{other}.{start}--21"),
    ];
    let (locked, busy) = (
        format!("pkit-{p}.{other}.{start}-30"),
        format!("pkit-{p}.{other}.{start}-31"),
    );
    for name in swept.iter().chain(&kept).chain([&locked, &busy]) {
        std::fs::create_dir(dir.join(name)).unwrap_or_else(|e| panic!("mkdir {name}: {e}"));
    }
    let _lock = lock_shared(&dir.join(&locked));
    let member = ChildOnDrop(
        std::process::Command::new("sleep")
            .arg("300")
            .spawn()
            .expect("sleep"),
    );
    std::fs::write(
        dir.join(&busy).join("cgroup.procs"),
        member.0.id().to_string(),
    )
    .expect("a member moved in");
    let mut cmd = self_as(HELPER, (HELPER_VAR, "sweep"), &[]);
    cmd.env("PKIT_SWEEP_MIN_AGE_SECS", "0")
        .env("PKIT_RV46_PARENT", dir);
    let (status, out) = run_helper_cmd(cmd, Duration::from_secs(60));
    let (ok, said) = helper_said(status, &out, "rv46 dir ");
    assert!(ok, "the helper failed: {said:?}");
    let made = PathBuf::from(&said[0]);
    assert_eq!(
        made.parent(),
        Some(dir.as_path()),
        "swept elsewhere: {said:?}"
    );
    let left: Vec<String> = std::fs::read_dir(dir)
        .expect("the private cgroup")
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let wrongly_kept: Vec<_> = swept.iter().filter(|n| left.contains(n)).collect();
    let wrongly_swept: Vec<_> = kept
        .iter()
        .chain([&locked, &busy])
        .filter(|n| !left.contains(n))
        .collect();
    assert!(
        wrongly_kept.is_empty() && wrongly_swept.is_empty(),
        "kept, should be swept: {wrongly_kept:?}; swept, should be kept: {wrongly_swept:?}"
    );
    assert_alive(&[member.0.id(), p], "after the sweep");
    drop(member);
    drop(sleeper);
    drop(private);
    suite.end().await;
}

/// LOW, not fixed (documented in docs/gotchas.md): a process group's
/// members are listed by walking `/proc`, each number there asked for its
/// group (`getpgid`, in this namespace). Under the `/proc` of another pid
/// namespace (`unshare -pf` without `--mount-proc`) a member whose number
/// here is not a number there is missed: the helper's shell and `sleep`,
/// made with numbers `/proc` does not list, are not listed (`Group::pids`
/// empty; a shutdown counts them gone; the `killpg` still ends them).
#[test]
#[ignore = "rv46 LOW: under the /proc of another pid namespace a process group's listing misses its members (documented in docs/gotchas.md; a fix needs a /proc of the namespace)"]
fn a_process_group_under_anothers_proc_lists_its_members() {
    in_suite(
        "a_process_group_under_anothers_proc_lists_its_members",
        || {
            const NAME: &str = "a_process_group_under_anothers_proc_lists_its_members";
            let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(32768);
            // Numbers this `/proc` does not list, for the helper's members.
            let free = |n: u32| (n..n + 32).all(|q| !Path::new(&format!("/proc/{q}")).exists());
            let Some(first) = (1000..max - 64).rev().step_by(37).find(|&n| free(n)) else {
                skipped(NAME, "no free run of pids");
                return;
            };
            let file = TempPath::new("rv46-pids");
            let mut cmd = self_as(HELPER, (HELPER_VAR, "pids"), &["unshare", "-pf"]);
            cmd.env("PKIT_RV46_FIRST", first.to_string())
                .env("PKIT_RV46_FILE", file.path());
            let (status, out) = run_helper_cmd(cmd, Duration::from_secs(60));
            let (ok, said) = helper_said(status, &out, "rv46 said ");
            if !ok {
                skipped(
                    NAME,
                    &format!("the helper could not run (unshare -pf?): {said:?}"),
                );
                return;
            }
            let (_, listed) = helper_said(status, &out, "rv46 pids ");
            let members: Vec<u32> = said[0]
                .trim_matches(|c| c == '[' || c == ']')
                .split(", ")
                .filter_map(|n| n.parse().ok())
                .collect();
            if members
                .iter()
                .any(|q| Path::new(&format!("/proc/{q}")).exists())
            {
                skipped(NAME, "a member's number was taken here meanwhile");
                return;
            }
            assert_eq!(
                listed[0], said[0],
                "Group::pids under another namespace's /proc (the members: {members:?})"
            );
        },
    );
}

/// The cgroup v1 freezer hierarchy, where one is mounted.
const V1_FREEZER: &str = "/sys/fs/cgroup/freezer";

/// A process held in a cgroup v1 freezer directory of this test's own
/// (state `D`): cgroup v2 can't confirm a freeze of its group meanwhile
/// (as tests/shutdown_yields.rs). Let go (thawed, the directory removed
/// once empty) when dropped.
struct Held(PathBuf);

impl Held {
    /// `None` where no v1 freezer directory can be made.
    fn new(pid: u32, tag: &str) -> Option<Held> {
        let dir = PathBuf::from(V1_FREEZER).join(format!("rv46-{}-{tag}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let held = Held(dir);
        std::fs::write(held.0.join("cgroup.procs"), pid.to_string()).expect("v1: move");
        std::fs::write(held.0.join("freezer.state"), "FROZEN").expect("v1: freeze");
        let until = Instant::now() + DEADLINE;
        while std::fs::read_to_string(held.0.join("freezer.state"))
            .is_ok_and(|s| s.trim() != "FROZEN")
        {
            assert!(Instant::now() < until, "v1 freezer: never FROZEN");
            std::thread::sleep(Duration::from_millis(5));
        }
        Some(held)
    }

    fn thaw(&self) {
        let _ = std::fs::write(self.0.join("freezer.state"), "THAWED");
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.thaw();
        for pid in cgroup_own_procs(&self.0) {
            kill_pid(pid);
        }
        let until = Instant::now() + DEADLINE;
        while std::fs::remove_dir(&self.0).is_err() && Instant::now() < until {
            std::thread::sleep(POLL);
        }
    }
}

fn v1_freezer_usable() -> bool {
    let probe = PathBuf::from(V1_FREEZER).join(format!("rv46-{}-probe", std::process::id()));
    let usable = std::fs::create_dir(&probe).is_ok();
    let _ = std::fs::remove_dir(&probe);
    usable
}

/// A cgroup group running `script`, once `want` processes are in it: the
/// group, the started process and every pid.
async fn group_of(script: &str, want: usize) -> (Group, pkit::RunningProcess, Vec<u32>) {
    let group = group(MechanismChoice::Cgroup);
    let p = group
        .start(&Command::new("sh").args(["-c", script]))
        .expect("start");
    let until = Instant::now() + DEADLINE;
    loop {
        let pids = group.pids().expect("pids");
        if pids.len() >= want {
            return (group, p, pids);
        }
        assert!(Instant::now() < until, "the members never started");
        tokio::time::sleep(POLL).await;
    }
}

fn freeze_file(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("cgroup.freeze"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Polls `fut` once and drops it: whether it was still waiting.
async fn poll_once_then_drop<F: Future>(fut: F) -> bool {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx).is_pending())).await
}

/// zshut: a suspend made while a shutdown waits for its freeze, then the
/// shutdown dropped: the cancelled shutdown's thaw must not undo the
/// user's freeze. Cgroup only.
#[tokio::test]
async fn a_suspend_during_a_shutdowns_freeze_wait_outlives_its_cancel() {
    const NAME: &str = "a_suspend_during_a_shutdowns_freeze_wait_outlives_its_cancel";
    let suite = begin(NAME).await;
    if !cgroup_pass(NAME) || !v1_freezer_usable() {
        skipped(NAME, "needs cgroup v2 and a cgroup v1 freezer directory");
        suite.end().await;
        return;
    }
    let (group, p, pids) = group_of("sleep 300 & sleep 300 & wait", 3).await;
    let dir = cgroup_dir(&group).expect("a cgroup directory");
    let sleeper = *pids.iter().find(|&&q| q != p.pid()).expect("a sleep");
    let held = Held::new(sleeper, "suspend").expect("a v1 freezer directory");
    let mut shutdown = Box::pin(group.shutdown(Duration::ZERO));
    let waiting =
        std::future::poll_fn(|cx| std::task::Poll::Ready(shutdown.as_mut().poll(cx).is_pending()))
            .await;
    assert!(waiting, "the shutdown did not wait for its freeze");
    // The suspend's first poll marks the group suspended and freezes it;
    // it then waits for the kernel's confirmation, as the shutdown does.
    let suspending = poll_once_then_drop(group.suspend()).await;
    assert!(suspending, "the suspend did not wait for its freeze");
    assert!(group.is_suspended(), "not suspended");
    drop(shutdown);
    assert_eq!(
        freeze_file(&dir),
        "1",
        "the cancelled shutdown thawed a suspended group"
    );
    assert!(group.is_suspended(), "no longer suspended after the cancel");
    held.thaw();
    group.suspend().await.expect("suspend (confirmed)");
    group.resume().await.expect("resume");
    assert_eq!(freeze_file(&dir), "0", "resumed, still frozen");
    assert_alive(&pids, "after the cancelled shutdown");
    let report = group.shutdown(Duration::ZERO).await.expect("shutdown");
    assert_eq!(report.signalled(), 3, "{report:?}");
    drop(p);
    assert_gone(&pids, "shut down").await;
    drop(held);
    suite.end().await;
}

/// zshut: two shutdowns of one group at once, both waiting for their
/// freeze (a member held), a member forking meanwhile. Cgroup only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shutdowns_at_once_both_end_the_group() {
    const NAME: &str = "two_shutdowns_at_once_both_end_the_group";
    let suite = begin(NAME).await;
    if !cgroup_pass(NAME) || !v1_freezer_usable() {
        skipped(NAME, "needs cgroup v2 and a cgroup v1 freezer directory");
        suite.end().await;
        return;
    }
    let forker = "while :; do sleep 0.05; done & sleep 300 & wait";
    let (group, p, pids) = group_of(forker, 3).await;
    let dir = cgroup_dir(&group).expect("a cgroup directory");
    let held_pid = *pids
        .iter()
        .find(|&&q| q != p.pid() && comm(q).as_deref() == Some("sleep") && stat(q).is_some())
        .or_else(|| pids.iter().find(|&&q| q != p.pid()))
        .expect("a member");
    let held = Held::new(held_pid, "two").expect("a v1 freezer directory");
    let group = std::sync::Arc::new(group);
    let (a, b) = (group.clone(), group.clone());
    let one = tokio::spawn(async move { a.shutdown(Duration::from_millis(200)).await });
    let two = tokio::spawn(async move { b.shutdown(Duration::from_millis(200)).await });
    // Both are waiting for a freeze the kernel can't confirm; let go.
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.thaw();
    let within = Duration::from_secs(60);
    let r1 = tokio::time::timeout(within, one)
        .await
        .expect("shutdown 1 ended");
    let r2 = tokio::time::timeout(within, two)
        .await
        .expect("shutdown 2 ended");
    let (r1, r2) = (r1.expect("task 1"), r2.expect("task 2"));
    assert!(r1.is_ok() && r2.is_ok(), "a shutdown failed: {r1:?} {r2:?}");
    drop(p);
    let mut all = pids.clone();
    all.extend(cgroup_procs(&dir));
    assert_gone(&all, "after two shutdowns").await;
    if dir.exists() {
        assert_ne!(
            freeze_file(&dir),
            "1",
            "the group's directory was left frozen"
        );
    }
    drop(held);
    suite.end().await;
}
