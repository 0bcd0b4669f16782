//! rv35: hostile review of guard3 (the Linux owner-death guard ends only a
//! cgroup directory its owner confirmed making, `OP_MADE`; see
//! `sys/guard/claim.rs`).
//!
//! An owner (this binary run again as a helper) creates cgroup groups in a
//! loop, each with a marked `sleep` (`sleep 300.<tag>`; some groups with a
//! second process in a sub-cgroup, some capped (a v1 directory where v2
//! has no controller), some dropped so their directories go to the pool
//! and are reused), and is SIGKILLed at a random microsecond offset. Then
//! no marked process of its may survive and no directory of its may be
//! left. The same, with two such owners in two pid namespaces under one
//! parent cgroup (`unshare -pf --mount-proc`): both are pid 2, so their
//! names collide; the killed one's guard must end all of its own and
//! none of the other's.
//!
//! The pid-namespace race counts the live owner's processes by command
//! line, and polls before it counts one lost: its newest one may not have
//! its command line yet (see the test). It watches the owner's children as
//! it runs (`rv35_watch`, ns23): a round in which it has fewer processes
//! than it started says which went, how (its zombie's exit code: a
//! SIGKILL from a guard or `cgroup.kill` shows as signal 9), when against
//! the other owner's kill and its guard's exit, in which cgroup and
//! whether that directory is still the one it was (its inode); a
//! directory left at the end says whose it was (which helper announced
//! it, kept or dropped) and when it was made. Either also names any helper
//! of another run on the machine: the suite lock is per target directory, and another worktree's
//! or CI's run of this test (or of guard_namespaces) under the same parent
//! cgroup has owners of pid 2 too, whose `pkit-2-*` directories this one
//! would count as left over. The owners are found as their namespaces'
//! pid 2: found by command name, the killed owner's guard (`pkit-guard`,
//! or a copy of the helper while it starts) could be taken for it when
//! its pid came first (after the pid numbers wrapped), and the test then
//! killed the guard while the owner ran on.
//!
//! Run: `cargo test -p pkit --test review_rv35` (rounds:
//! `RV35_ROUNDS`, default 12; `RV35_NS_ROUNDS`, default 3). Cgroup only:
//! skipped (saying so) in the process-group and portable passes.

mod common;
mod rv35_watch;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Stdio};

use common::ChildOnDrop;
use std::time::{Duration, Instant};

use pkit::{Command, Group, MechanismChoice};

const HELPER_VAR: &str = "PKIT_RV35_HELPER";

/// The helper owner: prints `rv35go`, then creates groups (`PKIT_RV35_COUNT`
/// of them, or without end if 0), each running `sleep 300.<PKIT_RV35_TAG>`;
/// then prints `rv35done <live marked processes>` and waits to be killed.
#[test]
fn rv35_helper() {
    let Ok(tag) = std::env::var(HELPER_VAR) else {
        return;
    };
    let count: usize = std::env::var("PKIT_RV35_COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let say = |line: String| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").expect("stdout");
        out.flush().expect("stdout");
    };
    say("rv35go".to_string());
    let sleep = || Command::new("sleep").arg(format!("300.{tag}"));
    let mut kept = Vec::new();
    let mut live = 0usize;
    let mut i = 0usize;
    while count == 0 || i < count {
        i += 1;
        let mut b = Group::builder().mechanism(MechanismChoice::Cgroup);
        if i % 5 == 2 {
            b = b.memory_max(256 << 20);
        }
        let group = match b.build() {
            Ok(g) => g,
            Err(e) => {
                eprintln!("rv35 helper {tag}: group {i}: {e}");
                continue;
            }
        };
        let procs = if i % 3 == 1 { 2 } else { 1 };
        let mut started = 0;
        let mut pids = Vec::new();
        for _ in 0..procs {
            match rt.block_on(async { group.start(&sleep()) }) {
                Ok(p) => {
                    started += 1;
                    pids.push(p.pid().to_string());
                    std::mem::forget(p);
                }
                Err(e) => eprintln!("rv35 helper {tag}: start in group {i}: {e}"),
            }
        }
        if i % 4 == 3 {
            // Ended, its directory to the pool: a later group reuses it.
            let dir = common::cgroup_dir(&group).unwrap_or_default();
            rt.block_on(async { drop(group) });
            if std::env::var_os("PKIT_RV35_QUIET").is_none() {
                say(format!("rv35x {i} {}", dir.display()));
            }
        } else {
            live += started;
            let dir = common::cgroup_dir(&group).unwrap_or_default();
            if std::env::var_os("PKIT_RV35_QUIET").is_none() {
                say(format!("rv35g {i} {} {}", dir.display(), pids.join(" ")));
            }
            kept.push(group);
        }
    }
    say(format!("rv35done {live}"));
    let guard = pkit::host_containment().guard.pid.unwrap_or(0);
    say(format!("rv35guard {guard}"));
    std::thread::sleep(Duration::from_secs(120));
    drop(kept);
}

fn rounds(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

/// A small xorshift seeded from the clock (no dependency for this).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos() as u64;
        Rng(t | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Starts the helper (`wrap`: a command to run it under, e.g. `unshare`)
/// with marker `tag` and `count` groups; returns it (killed and reaped
/// when dropped, a failed check included) and its stdout once it printed
/// `rv35go`.
fn helper(wrap: &[&str], tag: &str, count: usize) -> (ChildOnDrop, BufReader<ChildStdout>) {
    let exe = std::env::current_exe().expect("test binary");
    let args = ["rv35_helper", "--exact", "--nocapture", "--test-threads=1"];
    let mut cmd = match wrap.split_first() {
        None => std::process::Command::new(&exe),
        Some((first, rest)) => {
            let mut c = std::process::Command::new(first);
            c.args(rest).arg(&exe);
            c
        }
    };
    let mut child = ChildOnDrop(
        cmd.args(args)
            .env(HELPER_VAR, tag)
            .env("PKIT_RV35_COUNT", count.to_string())
            .env_remove("PKIT_MECHANISM")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the helper"),
    );
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    wait_line(&mut out, "rv35go");
    (child, out)
}

/// Reads `out` until a line holding `word`; what follows it.
fn wait_line(out: &mut BufReader<ChildStdout>, word: &str) -> String {
    loop {
        let mut line = String::new();
        match out.read_line(&mut line) {
            Ok(n) if n > 0 => {
                if let Some(at) = line.find(word) {
                    return line[at + word.len()..].trim().to_string();
                }
            }
            other => panic!("the helper ended before `{word}`: {other:?}"),
        }
    }
}

/// The helper's `rv35g` lines until its `rv35done`: its live count, each
/// kept group (`<i> <dir> <pids>`) and its `rv35x` lines (each dropped
/// group, `rv35x <i> <dir>`).
fn groups_until_done(out: &mut BufReader<ChildStdout>) -> (usize, Vec<String>, Vec<String>) {
    let mut groups = Vec::new();
    let mut dropped = Vec::new();
    loop {
        let mut line = String::new();
        match out.read_line(&mut line) {
            Ok(n) if n > 0 => {
                if let Some(at) = line.find("rv35g ") {
                    groups.push(line[at + 6..].trim().to_string());
                } else if let Some(at) = line.find("rv35x ") {
                    dropped.push(line[at..].trim().to_string());
                } else if let Some(at) = line.find("rv35done ") {
                    let live = line[at + 9..].trim().parse().expect("count");
                    return (live, groups, dropped);
                }
            }
            other => panic!("the helper ended before `rv35done`: {other:?}"),
        }
    }
}

/// The `rv35g`/`rv35x` lines the helper wrote so far, without waiting for
/// more (its stdout made non-blocking; at most a few thousand, as a helper
/// that was not killed writes on): `rv35g|rv35x <i> <dir> ...`.
fn said_so_far(out: &mut BufReader<ChildStdout>) -> Vec<String> {
    use std::os::fd::AsFd;
    let _ = rustix::fs::fcntl_setfl(out.get_ref().as_fd(), rustix::fs::OFlags::NONBLOCK);
    let mut lines = Vec::new();
    for _ in 0..5000 {
        let mut line = String::new();
        match out.read_line(&mut line) {
            Ok(n) if n > 0 => {
                for word in ["rv35g ", "rv35x "] {
                    if let Some(at) = line.find(word) {
                        lines.push(line[at..].trim().to_string());
                    }
                }
            }
            _ => break,
        }
    }
    lines
}

/// When directory `d` was made (its ctime), against `at`.
fn made_vs(d: &Path, at: std::time::SystemTime) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(d) else {
        return "gone now".to_string();
    };
    let made = std::time::UNIX_EPOCH + Duration::new(m.ctime() as u64, m.ctime_nsec() as u32);
    match made.duration_since(at) {
        Ok(after) => format!("made {:.1} ms after the kill", after.as_secs_f64() * 1e3),
        Err(e) => format!(
            "made {:.1} ms before the kill",
            e.duration().as_secs_f64() * 1e3
        ),
    }
}

/// Every member of the cgroup `dir` and its sub-cgroups.
fn procs_in_tree(dir: &Path) -> Vec<u32> {
    let mut found: Vec<u32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                found.extend(procs_in_tree(&e.path()));
            }
        }
    }
    found
}

/// Live (non-zombie) processes whose command line is `sleep 300.<tag>`.
fn marked(tag: &str) -> Vec<u32> {
    let want = format!("sleep\0300.{tag}\0");
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline == want.as_bytes() && !common::pid_gone(pid) {
            found.push(pid);
        }
    }
    found
}

/// Each process whose parent is `ppid` (host `/proc`).
fn children_of(ppid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if common::stat(pid).is_some_and(|s| s.ppid == ppid) {
            found.push(pid);
        }
    }
    found
}

fn poll(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(pid: u32) {
    // SAFETY: kill(2) of a pid this test started (or its ns init).
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

/// Kills `pids` and removes `dirs` (depth-first), what a failed round left.
fn clean(pids: &[u32], dirs: &[PathBuf]) {
    for &p in pids {
        kill(p);
    }
    for d in dirs {
        let _ = poll(Duration::from_secs(5), || remove_tree(d));
    }
}

fn remove_tree(d: &Path) -> bool {
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    std::fs::remove_dir(d).is_ok() || !d.exists()
}

/// Every `pkit-<owner>-*` directory under `/sys/fs/cgroup` (v2 groups
/// and their v1 cap directories), a few levels down.
fn leftover_dirs(owner: u32) -> Vec<PathBuf> {
    fn walk(dir: &Path, prefix: &str, depth: u32, found: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with(prefix) {
                found.push(e.path());
            } else if depth > 0 {
                walk(&e.path(), prefix, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(
        Path::new("/sys/fs/cgroup"),
        &common::name_prefix(owner),
        4,
        &mut found,
    );
    found
}

/// Reaps whatever zombie children this process was handed (it is then a
/// subreaper); a no-op otherwise.
fn reap_orphans() {
    for (pid, _) in common::own_children() {
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
        }
    }
}

/// An owner SIGKILLed at a random point of its groups' creation (at any
/// step: registration, `mkdir`, lock, `OP_MADE`, start, sub-cgroup, cap,
/// pool reuse) leaves none of its processes running and none of its
/// directories behind.
#[test]
fn an_owner_killed_anywhere_in_creation_leaves_nothing() {
    let name = "an_owner_killed_anywhere_in_creation_leaves_nothing";
    common::in_suite("review_rv35", || {
        if !common::cgroup_pass(name) {
            return;
        }
        let mut rng = Rng::new();
        let mut failures = Vec::new();
        let n = rounds("RV35_ROUNDS", 12);
        for round in 0..n {
            let tag = format!("{}{round:04}", std::process::id());
            let (mut child, _out) = helper(&[], &tag, 0);
            let owner = child.id();
            // Mostly within the first creations (the guard's start, the
            // first registration), sometimes deep in the loop.
            let us = if round % 4 == 0 {
                rng.below(300_000)
            } else {
                rng.below(40_000)
            };
            std::thread::sleep(Duration::from_micros(us));
            child.kill().expect("kill the helper");
            child.wait().expect("reap the helper");
            let ok = poll(Duration::from_secs(15), || {
                marked(&tag).is_empty() && leftover_dirs(owner).is_empty()
            });
            if !ok {
                let alive = marked(&tag);
                let dirs = leftover_dirs(owner);
                failures.push(format!(
                    "round {round} (killed at {us} µs): alive {alive:?}, dirs {dirs:?}"
                ));
                clean(&alive, &dirs);
            }
            reap_orphans();
        }
        reap_orphans();
        assert!(failures.is_empty(), "{n} rounds: {failures:#?}");
    });
}

/// Two owners in two pid namespaces under one parent cgroup, both pid 2
/// (their names `pkit-2-<n>` collide): one creates a fixed number of
/// groups and keeps them, the other churns and is SIGKILLed at a random
/// point. The killed one's guard ends all of its processes and none of the
/// other's; once the other is killed too, no `pkit-2-*` directory is left.
#[test]
fn owners_in_two_pid_namespaces_racing_for_names() {
    let name = "owners_in_two_pid_namespaces_racing_for_names";
    common::in_suite("review_rv35", || {
        if !common::cgroup_pass(name) {
            return;
        }
        let probe = std::process::Command::new("unshare")
            .args(["-pf", "--mount-proc", "true"])
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            common::skipped(name, "no `unshare -pf --mount-proc` here");
            return;
        }
        let mut rng = Rng::new();
        let mut failures = Vec::new();
        let n = rounds("RV35_NS_ROUNDS", 3);
        // `sh` is the namespace's pid 1 (it execs a sleep), the helper pid 2.
        let wrap = [
            "unshare",
            "-pf",
            "--mount-proc",
            "sh",
            "-c",
            "\"$0\" \"$@\" & exec sleep 600",
        ];
        for round in 0..n {
            let (tag_a, tag_b) = (
                format!("{}{round:03}1", std::process::id()),
                format!("{}{round:03}2", std::process::id()),
            );
            let (mut b, mut b_out) = helper(&wrap, &tag_b, 24);
            let (mut a, mut a_out) = helper(&wrap, &tag_a, 0);
            // unshare -> ns init (sleep) -> helper.
            let init_of = |c: &ChildOnDrop| children_of(c.id()).first().copied().expect("ns init");
            let (init_a, init_b) = (init_of(&a), init_of(&b));
            // The helper is its namespace's pid 2 (ns23: found by its
            // command name, its guard, `pkit-guard`, or the guard's
            // launcher, a copy of the helper, was taken for it when its pid
            // came first: the test then killed the guard and the owner ran
            // on).
            let helper_in = |init: u32| {
                children_of(init)
                    .into_iter()
                    .find(|&p| rv35_watch::ns_pid(p) == Some(2))
            };
            let owner_a = helper_in(init_a).expect("helper a");
            let owner_b = helper_in(init_b).expect("helper b");
            // Which of b's processes ends, how and when (ns23).
            let watch = rv35_watch::Watch::start(owner_b, init_a, owner_a);
            let us = rng.below(400_000);
            std::thread::sleep(Duration::from_micros(us));
            let killed_at = watch.ms(Instant::now());
            let killed_wall = std::time::SystemTime::now();
            kill(owner_a);
            let (live_b, groups_b, dropped_b) = groups_until_done(&mut b_out);
            let a_gone = poll(Duration::from_secs(15), || marked(&tag_a).is_empty());
            let a_said = said_so_far(&mut a_out);
            // A lost process stays lost: polled, as a look can miss the
            // live owner's newest process (ns23: "23 of 24", 3 of ~145
            // rounds on a loaded machine, 6 of 250 with two CPU hogs, each
            // time its last group's `sleep`, started 20-400 ms before,
            // alive, its command line complete a moment later, none of its
            // processes ended): the helper says `rv35done` once its last
            // start returned, when the kernel has let the child's `vfork`
            // go but may not yet have set up its new command line, which
            // reads empty until then (`/proc/<pid>/cmdline`). A real loss
            // is a zombie child of the helper (it reaps none), which the
            // watch's report names.
            let first = marked(&tag_b);
            let first_look = first.len();
            // What the look missed, looked at at once (ns23).
            let missed = if first_look < live_b {
                rv35_watch::unmarked(owner_b, &first)
            } else {
                Vec::new()
            };
            let _ = poll(Duration::from_secs(10), || marked(&tag_b).len() >= live_b);
            let b_alive = marked(&tag_b).len();
            let log = watch.finish();
            if first_look < live_b || b_alive < live_b {
                eprintln!(
                    "rv35: round {round} (killed at {us} µs): first look {first_look} of {live_b}, then {b_alive}"
                );
                for (ns, what) in &missed {
                    let group = groups_b
                        .iter()
                        .find(|g| g.split(' ').skip(2).any(|p| p.parse().ok() == *ns));
                    eprintln!("rv35: round {round}: the first look missed {what}, of group {group:?} (b's last group: {:?})", groups_b.last());
                }
                // Each kept group: `<i> <dir> <pids in b's namespace>`.
                let kept: Vec<u32> = groups_b
                    .iter()
                    .flat_map(|g| g.split(' ').skip(2).filter_map(|p| p.parse().ok()))
                    .collect();
                for line in rv35_watch::report(&log, &kept, killed_at, None) {
                    eprintln!("rv35: round {round}: {line}");
                }
            }
            if round % 50 == 49 {
                eprintln!("rv35: {} of {n} rounds", round + 1);
            }
            if !a_gone {
                failures.push(format!(
                    "round {round} (killed at {us} µs): the killed owner's {:?} survive",
                    marked(&tag_a)
                ));
            }
            if b_alive < live_b {
                // (The helper's pids are its namespace's: count by cgroup.)
                let about: Vec<String> = groups_b
                    .iter()
                    .filter_map(|g| {
                        let want = g.split(' ').skip(2).count();
                        let dir = PathBuf::from(g.split(' ').nth(1).unwrap_or(""));
                        let procs = procs_in_tree(&dir);
                        (procs.len() < want).then(|| {
                            format!("group {g}: now {procs:?}, dir exists {}", dir.exists())
                        })
                    })
                    .collect();
                let all: Vec<String> = leftover_dirs(2)
                    .iter()
                    .map(|d| format!("{} {:?}", d.display(), procs_in_tree(d)))
                    .collect();
                eprintln!("rv35: round {round}: pkit-2-* now: {all:#?}");
                failures.push(format!(
                    "round {round} (killed at {us} µs): the live owner has {b_alive} of its {live_b} processes; lost: {about:?}"
                ));
            }
            // The other owner killed too: nothing of either is left.
            kill(owner_b);
            let clear = poll(Duration::from_secs(15), || {
                marked(&tag_b).is_empty() && leftover_dirs(2).is_empty()
            });
            if !clear {
                let dirs = leftover_dirs(2);
                let alive = marked(&tag_b);
                // Whose each directory was (ns23).
                let whose: Vec<String> = dirs
                    .iter()
                    .map(|d| {
                        let of = |lines: &[String], who: &str| {
                            lines.iter().find_map(|l| {
                                let mut f = l.split(' ');
                                let (kind, _, dir) = (f.next()?, f.next()?, f.next()?);
                                (Path::new(dir) == d).then(|| format!("{who} {kind}"))
                            })
                        };
                        let owner = of(&a_said, "a")
                            .or_else(|| {
                                let mut b_lines: Vec<String> =
                                    groups_b.iter().map(|g| format!("rv35g {g}")).collect();
                                b_lines.extend(dropped_b.iter().cloned());
                                of(&b_lines, "b")
                            })
                            .unwrap_or_else(|| "announced by neither".to_string());
                        format!("{} ({owner}, {})", d.display(), made_vs(d, killed_wall))
                    })
                    .collect();
                failures.push(format!(
                    "round {round}: after both were killed: alive {alive:?}, dirs {whose:?}; other runs' helpers now: {:?}",
                    rv35_watch::foreign_helpers()
                ));
                clean(&alive, &dirs);
            }
            for (init, child) in [(init_a, &mut a), (init_b, &mut b)] {
                kill(init);
                let _ = child.wait();
            }
            reap_orphans();
        }
        reap_orphans();
        assert!(failures.is_empty(), "{n} rounds: {failures:#?}");
    });
}

/// The helper's one kept group (count 1: two processes, the second in a
/// sub-cgroup), once made: the helper, its guard's pid and its directory.
fn one_group(tag: &str) -> (ChildOnDrop, u32, PathBuf) {
    let (child, mut out) = helper(&[], tag, 1);
    let live: usize = wait_line(&mut out, "rv35done").parse().expect("count");
    assert_eq!(live, 2, "the helper's group runs its two sleeps");
    let guard: u32 = wait_line(&mut out, "rv35guard").parse().expect("pid");
    assert!(guard > 0, "the helper has a guard");
    let dirs = common::cgroup_dirs_of(&common::group_parent().expect("a group parent"), child.id());
    assert_eq!(dirs.len(), 1, "the helper's one directory: {dirs:?}");
    let dir = dirs.into_iter().next().expect("checked");
    (child, guard, dir)
}

fn ino(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).expect("stat").ino()
}

/// Someone else removes an owner's (emptied) group directory and makes
/// another of the same name, holding it as a live owner does, with a
/// process in it: cgroupfs gives the new one another inode, and the
/// owner's guard leaves it (and its process) alone when the owner dies.
#[test]
fn a_name_remade_by_someone_else_is_left_alone() {
    let name = "a_name_remade_by_someone_else_is_left_alone";
    common::in_suite("review_rv35", || {
        if !common::cgroup_pass(name) {
            return;
        }
        let tag = format!("{}9001", std::process::id());
        let (mut child, guard, dir) = one_group(&tag);
        let first = ino(&dir);
        // Emptied (its processes moved to our own cgroup), then removed
        // and made again under the same name.
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("cgroup");
        let own = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("a v2 cgroup")
            .to_string();
        let root = dir
            .ancestors()
            .find(|a| {
                a.join("cgroup.controllers").exists()
                    && !a.join("..").join("cgroup.controllers").exists()
            })
            .map(Path::to_path_buf)
            .expect("the cgroup2 mount");
        let home = root.join(own.trim_start_matches('/'));
        // Moved again at each try: a process exec'd a moment ago may not
        // show its marked command line yet (see the module's doc), and
        // one left in the directory keeps it from being removed.
        let mut moved: Vec<u32> = Vec::new();
        let removed = poll(Duration::from_secs(10), || {
            for p in marked(&tag) {
                let _ = std::fs::write(home.join("cgroup.procs"), p.to_string());
                if !moved.contains(&p) {
                    moved.push(p);
                }
            }
            remove_tree(&dir)
        });
        assert!(removed, "the owner's directory emptied and removed");
        std::fs::create_dir(&dir).expect("made again");
        let second = ino(&dir);
        let lock = std::fs::File::open(&dir).expect("open");
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockShared)
            .expect("its shared lock");
        let mut other = std::process::Command::new("sleep")
            .arg("300")
            .spawn()
            .expect("sleep");
        std::fs::write(dir.join("cgroup.procs"), other.id().to_string()).expect("join");
        child.kill().expect("kill the helper");
        child.wait().expect("reap");
        let torn_down = poll(Duration::from_secs(15), || common::pid_gone(guard));
        let alive = !common::pid_gone(other.id());
        let kept = dir.is_dir();
        let _ = other.kill();
        let _ = other.wait();
        for &p in &moved {
            kill(p);
        }
        drop(lock);
        let _ = poll(Duration::from_secs(10), || remove_tree(&dir));
        reap_orphans();
        assert!(torn_down, "the helper's guard did not exit");
        assert_ne!(
            first, second,
            "cgroupfs reused an inode number for the name"
        );
        assert!(
            alive,
            "the guard killed another's process in a remade directory"
        );
        assert!(kept, "the guard removed another's remade directory");
    });
}

/// Renaming a group directory, which would hide it from the guard's
/// path lookup, is refused by cgroup v2 (`EPERM`, renames are v1 only): no
/// one can move an owner's group out from under its guard's path.
#[test]
fn cgroup_v2_refuses_to_rename_a_group_directory() {
    let name = "cgroup_v2_refuses_to_rename_a_group_directory";
    common::in_suite("review_rv35", || {
        if !common::cgroup_pass(name) {
            return;
        }
        let parent = common::group_parent().expect("a group parent");
        let dir = parent.join(common::unique_name("rv35-rename"));
        std::fs::create_dir(&dir).expect("mkdir");
        let to = dir.with_file_name(common::unique_name("rv35-renamed"));
        let renamed = std::fs::rename(&dir, &to);
        let _ = std::fs::remove_dir(&dir);
        let _ = std::fs::remove_dir(&to);
        let err = renamed.expect_err("cgroup v2 renamed a directory");
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    });
}
