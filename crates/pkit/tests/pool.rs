//! Spare cgroups of one-shot runs: reused, never shared by two live runs,
//! bounded, and removable on demand (its own test binary: it counts this
//! process's cgroup directories; each test runs alone in the binary,
//! `begin_alone_in_binary`: what it counts is this process's own, which
//! the other test binaries run at once do not change).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use pkit::{Command, Group, MechanismChoice, SystemRunner};

/// Where this process's groups' cgroups go, if it can make them (not as
/// an unprivileged user without a delegated cgroup: then every test here
/// skips, saying so).
fn writable_parent(test: &str) -> Option<std::path::PathBuf> {
    let hc = pkit::host_containment();
    match hc.group_parent {
        Some(p) if hc.cgroup_writable => Some(p),
        _ => {
            eprintln!("SKIPPED {test}: no writable cgroup v2 here");
            None
        }
    }
}

fn own_dirs() -> Vec<String> {
    let Some(parent) = pkit::host_containment().group_parent else {
        return Vec::new();
    };
    let prefix = common::name_prefix(std::process::id());
    std::fs::read_dir(parent)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Polls `cond` for up to 10 s; on failure, says what and which of this
/// process's cgroup directories are left.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}; left: {:?}",
            own_dirs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The cgroup a run's program reports from inside.
async fn cgroup_of_run(runner: &Arc<SystemRunner>, nap: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("grep '^0::' /proc/self/cgroup; sleep {nap}")])
        .runner(runner.clone())
        .output()
        .await
        .unwrap();
    out.stdout_str().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spares_are_reused_never_shared_and_bounded() {
    if writable_parent("spares_are_reused_never_shared_and_bounded").is_none() {
        return;
    }
    let one = common::begin_alone_in_binary().await;
    let runner = Arc::new(SystemRunner::with_mechanism(MechanismChoice::Cgroup));
    // Sequential runs reuse one directory.
    let a = cgroup_of_run(&runner, "0").await;
    let b = cgroup_of_run(&runner, "0").await;
    assert_eq!(a, b, "the emptied cgroup was reused");
    assert_eq!(own_dirs().len(), 1, "one spare kept");

    // Concurrent runs each get a cgroup of their own. Each run's program
    // holds on until all 20 have started, so all 20 are live at once: a
    // fixed nap let a run started late (a loaded machine spawning slowly)
    // reuse the directory of one that had ended already, as it should.
    let gate = common::TempPath::new("pool-gate");
    std::fs::create_dir(gate.path()).unwrap();
    let script =
        r#"grep '^0::' /proc/self/cgroup; : > "$1/$$"; until [ -e "$1/go" ]; do sleep 0.02; done"#;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let r = runner.clone();
        let run = Command::new("sh")
            .args(["-c", script, "sh", gate.as_str()])
            .runner(r);
        set.spawn(async move { run.output().await.unwrap() });
    }
    until("all 20 runs have started", || {
        std::fs::read_dir(gate.path()).map_or(0, |d| d.count()) == 20
    })
    .await;
    std::fs::write(gate.path().join("go"), "").unwrap();
    let mut seen = BTreeSet::new();
    while let Some(out) = set.join_next().await {
        let out = out.unwrap();
        assert!(out.success(), "{:?} {}", out.outcome(), out.stderr_str());
        let c = out.stdout_str().trim().to_string();
        assert!(seen.insert(c), "two live runs shared a cgroup");
    }
    assert_eq!(seen.len(), 20);
    assert!(
        own_dirs().len() <= 16,
        "at most 16 spares: {:?}",
        own_dirs()
    );

    // A run that was killed (its timeout) leaves no spare: its cgroup is
    // removed, and the next runs get other ones.
    pkit::release_spare_cgroups();
    // Timeouts grow until the shell printed its cgroup (on stderr) and
    // `ready` before its timeout fired: a loaded machine can take seconds
    // to start it (500 ms was not enough under PKIT_CLONE3=off at load 20).
    let (out, _) = common::output_timing_out_after_ready("a killed run", |limit| {
        Command::new("sh")
            .args([
                "-c",
                "grep '^0::' /proc/self/cgroup >&2; echo ready; exec sleep 300",
            ])
            .timeout(limit)
            .runner(runner.clone())
    })
    .await;
    assert_eq!(out.outcome(), pkit::Outcome::TimedOut);
    let killed = out.stderr_str().trim().to_string();
    assert!(killed.starts_with("0::/"), "{killed}");
    let killed_name = killed.rsplit('/').next().unwrap().to_string();
    until("the killed cgroup is removed", || {
        !own_dirs().contains(&killed_name)
    })
    .await;
    for _ in 0..3 {
        assert_ne!(cgroup_of_run(&runner, "0").await, killed);
    }

    pkit::release_spare_cgroups();
    until("every spare is removed", || own_dirs().is_empty()).await;
    common::end_exclusive(one, "spares_are_reused_never_shared_and_bounded").await;
}

/// A run whose program leaves a sub-cgroup in its cgroup is never pooled
/// (the next run must start in a clean directory); one that removed its
/// sub-cgroup again is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spare_with_a_sub_cgroup_is_not_reused() {
    let Some(parent) = writable_parent("a_spare_with_a_sub_cgroup_is_not_reused") else {
        return;
    };
    let one = common::begin_alone_in_binary().await;
    let runner = Arc::new(SystemRunner::with_mechanism(MechanismChoice::Cgroup));
    pkit::release_spare_cgroups();
    let make_sub = |keep: bool| {
        let script = format!(
            "cg=$(grep '^0::' /proc/self/cgroup | cut -d: -f3); echo \"0::$cg\"; \
             d=\"$1/${{cg##*/}}/sub\"; mkdir \"$d\" || exit 9; {}",
            if keep { "true" } else { "rmdir \"$d\"" }
        );
        Command::new("sh")
            .args(["-c", &script, "sh", parent.to_str().unwrap()])
            .runner(runner.clone())
    };
    // Kept: that directory goes (with its sub-cgroup), and is not reused.
    let out = make_sub(true).output().await.unwrap();
    assert!(out.success(), "{:?} {}", out.outcome(), out.stderr_str());
    let with_sub = out.stdout_str().trim().to_string();
    let name = with_sub.rsplit('/').next().unwrap().to_string();
    until("the cgroup left with a sub-cgroup is removed", || {
        !own_dirs().contains(&name)
    })
    .await;
    assert_ne!(cgroup_of_run(&runner, "0").await, with_sub);

    // Removed again by the program: pooled, and the next run reuses it.
    pkit::release_spare_cgroups();
    let out = make_sub(false).output().await.unwrap();
    assert!(out.success(), "{:?} {}", out.outcome(), out.stderr_str());
    let cleaned = out.stdout_str().trim().to_string();
    assert_eq!(cgroup_of_run(&runner, "0").await, cleaned, "reused");

    pkit::release_spare_cgroups();
    until("every spare is removed", || own_dirs().is_empty()).await;
    common::end_exclusive(one, "a_spare_with_a_sub_cgroup_is_not_reused").await;
}

/// A spare removed by someone else (an administrator's `rmdir`, a cleanup
/// script) is noticed when it would be reused: the next run gets a fresh
/// directory instead of failing to spawn into a cgroup that no longer
/// exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spare_removed_by_someone_else_is_replaced() {
    let Some(parent) = writable_parent("a_spare_removed_by_someone_else_is_replaced") else {
        return;
    };
    let one = common::begin_alone_in_binary().await;
    let runner = Arc::new(SystemRunner::with_mechanism(MechanismChoice::Cgroup));
    pkit::release_spare_cgroups();
    for round in 0..3 {
        let spare = cgroup_of_run(&runner, "0").await;
        let name = spare.rsplit('/').next().unwrap().to_string();
        assert!(
            own_dirs().contains(&name),
            "round {round}: {spare} was kept as a spare: {:?}",
            own_dirs()
        );
        std::fs::remove_dir(parent.join(&name)).expect("rmdir the spare");
        let out = Command::new("sh")
            .args(["-c", "grep '^0::' /proc/self/cgroup"])
            .runner(runner.clone())
            .output()
            .await
            .unwrap_or_else(|e| panic!("round {round}: the run after the rmdir: {e}"));
        assert!(out.success(), "{:?} {}", out.outcome(), out.stderr_str());
        assert_ne!(out.stdout_str().trim(), spare, "a fresh directory");
    }
    pkit::release_spare_cgroups();
    until("every spare is removed", || own_dirs().is_empty()).await;
    common::end_exclusive(one, "a_spare_removed_by_someone_else_is_replaced").await;
}

/// A run that lowers its own cgroup's `cgroup.max.depth` or
/// `cgroup.max.descendants` (and exits 0, its cgroup empty) leaves a
/// directory that is never handed out again, and that is removed, not
/// left behind: its limits are read when a spare is taken (two `pread`s
/// that also tell a removed directory, where a `stat` per take did that
/// before), and a lowered one is removed there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spare_whose_limits_a_run_lowered_is_removed_not_reused() {
    if writable_parent("a_spare_whose_limits_a_run_lowered_is_removed_not_reused").is_none() {
        return;
    }
    let one = common::begin_alone_in_binary().await;
    let runner = Arc::new(SystemRunner::with_mechanism(MechanismChoice::Cgroup));
    pkit::release_spare_cgroups();
    let root = pkit::host_containment().group_parent.unwrap();
    for knob in ["cgroup.max.depth", "cgroup.max.descendants"] {
        // Twice first: the directory is a spare with its limits' files
        // open when the run that lowers a limit takes it.
        let reused = cgroup_of_run(&runner, "0").await;
        assert_eq!(cgroup_of_run(&runner, "0").await, reused, "{knob}: reused");
        let script = format!(
            "cg=$(grep '^0::' /proc/self/cgroup | cut -d: -f3); echo \"0::$cg\"; \
             echo 0 > \"$1/${{cg##*/}}/{knob}\""
        );
        let out = Command::new("sh")
            .args(["-c", &script, "sh", root.to_str().unwrap()])
            .runner(runner.clone())
            .output()
            .await
            .unwrap();
        assert!(
            out.success(),
            "{knob}: {:?} {}",
            out.outcome(),
            out.stderr_str()
        );
        let lowered = out.stdout_str().trim().to_string();
        assert_eq!(lowered, reused, "{knob}: the lowering run had the spare");
        let name = lowered.rsplit('/').next().unwrap().to_string();
        // The next runs never get it, and it goes.
        for _ in 0..3 {
            assert_ne!(
                cgroup_of_run(&runner, "0").await,
                lowered,
                "{knob}: not reused"
            );
        }
        until("the directory with a lowered limit is removed", || {
            !own_dirs().contains(&name)
        })
        .await;
        // A run whose later starts need sub-cgroups works in what it gets.
        let g = Group::builder()
            .mechanism(MechanismChoice::Cgroup)
            .build()
            .unwrap();
        let first = g.start(&Command::new("sleep").arg("300")).unwrap();
        let second = g.start(&Command::new("true"));
        assert!(second.is_ok(), "{knob}: a second start: {:?}", second.err());
        drop(first);
        drop(second);
        g.close().await.unwrap();
    }
    pkit::release_spare_cgroups();
    until("every spare is removed", || own_dirs().is_empty()).await;
    common::end_exclusive(
        one,
        "a_spare_whose_limits_a_run_lowered_is_removed_not_reused",
    )
    .await;
}

/// A closed group whose directory the spare pool handed to a newer group
/// no longer names it: its description (and `Debug`) says it is closed,
/// while the newer group's names the directory it now owns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_group_does_not_name_the_directory_a_newer_group_owns() {
    if writable_parent("a_closed_group_does_not_name_the_directory").is_none() {
        return;
    }
    let one = common::begin_alone_in_binary().await;
    pkit::release_spare_cgroups();
    let a = cgroup_group();
    let dir = dir_of(&a);
    let shown = dir.display().to_string();
    drop(run_in(&a, "true").await);
    a.close().await.expect("close");
    let b = cgroup_group();
    assert_eq!(dir_of(&b), dir, "the spare was reused");
    assert!(b.description().contains(&shown), "{}", b.description());
    for text in [a.description(), format!("{a:?}")] {
        assert!(text.contains("closed"), "{text}");
        assert!(!text.contains(&shown), "names b's directory: {text}");
    }
    assert_eq!(common::cgroup_dir(&a), None);
    // Still closed, still not b's, after b runs and closes too.
    drop(run_in(&b, "true").await);
    b.close().await.expect("close");
    for g in [&a, &b] {
        assert!(g.description().ends_with("; closed"), "{}", g.description());
        assert!(!g.description().contains(&shown), "{}", g.description());
    }
    pkit::release_spare_cgroups();
    until("every spare is removed", || own_dirs().is_empty()).await;
    common::end_exclusive(
        one,
        "a_closed_group_does_not_name_the_directory_a_newer_group_owns",
    )
    .await;
}

/// The cgroup directory of a cgroup group.
fn dir_of(group: &Group) -> std::path::PathBuf {
    common::cgroup_dir(group).expect("a cgroup group")
}

fn cgroup_group() -> Group {
    Group::builder()
        .mechanism(MechanismChoice::Cgroup)
        .build()
        .expect("a cgroup group")
}

/// Starts `sh -c script` in `group` and waits for it to succeed.
async fn run_in(group: &Group, script: &str) -> pkit::RunningProcess {
    let mut p = group
        .start(&Command::new("sh").args(["-c", script]))
        .expect("start");
    let out = p.wait().await.expect("wait");
    assert!(out.success(), "{:?} {}", out.outcome(), out.stderr_str());
    p
}

/// A `Group` whose processes all exited leaves its directory, closed or
/// dropped, to the next group; one whose processes were killed, a capped
/// one and a named one are removed instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_group_leaves_its_directory_to_the_next_group() {
    if writable_parent("an_emptied_group_leaves_its_directory_to_the_next_group").is_none() {
        return;
    }
    let one = common::begin_alone_in_binary().await;
    pkit::release_spare_cgroups();
    let a = cgroup_group();
    let dir = dir_of(&a);
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    drop(run_in(&a, "true").await);
    a.close().await.expect("close");
    assert!(dir.exists(), "closed empty: kept as a spare");
    assert_eq!(own_dirs(), vec![name.clone()]);

    // Reused: the next group's process lives in it.
    let b = cgroup_group();
    assert_eq!(dir_of(&b), dir, "the spare was reused");
    let mut p = b
        .start(&Command::new("sh").args(["-c", "grep '^0::' /proc/self/cgroup"]))
        .expect("start");
    let out = p.wait().await.expect("wait");
    assert!(
        out.stdout_str().trim().ends_with(&format!("/{name}")),
        "{}",
        out.stdout_str()
    );
    drop(p);
    // Dropped empty: kept too.
    drop(b);
    assert_eq!(own_dirs(), vec![name.clone()], "dropped empty: kept");

    // Killed (Group::kill, or close while something runs): removed.
    for how in ["kill", "close"] {
        let g = cgroup_group();
        let gdir = dir_of(&g);
        let mut p = g.start(&Command::new("sleep").arg("300")).expect("start");
        if how == "kill" {
            g.kill().expect("kill");
            assert_eq!(p.wait().await.expect("wait").signal(), Some(9));
        }
        g.close().await.expect("close");
        if how == "close" {
            assert_eq!(p.wait().await.expect("wait").signal(), Some(9));
        }
        until("a killed group's directory is removed", || !gdir.exists()).await;
        assert!(
            own_dirs().is_empty(),
            "{how}: nothing kept: {:?}",
            own_dirs()
        );
        assert_ne!(dir_of(&cgroup_group()), gdir, "{how}: not reused");
        pkit::release_spare_cgroups();
    }

    // Named, or capped (where a cap can be had): removed, never reused.
    for capped in [false, true] {
        let builder = Group::builder().mechanism(MechanismChoice::Cgroup);
        let g = match capped {
            false => builder.name("pooled-not").build().expect("a named group"),
            true => match builder.max_processes(64).build() {
                Ok(g) => g,
                Err(e) => {
                    eprintln!("no capped group here ({e}): only the named one is checked");
                    continue;
                }
            },
        };
        let gdir = dir_of(&g);
        drop(run_in(&g, "true").await);
        g.close().await.expect("close");
        until("a named or capped group's directory is removed", || {
            !gdir.exists()
        })
        .await;
        assert!(own_dirs().is_empty(), "nothing kept: {:?}", own_dirs());
    }
    pkit::release_spare_cgroups();
    until("every spare is removed", || own_dirs().is_empty()).await;
    common::end_exclusive(
        one,
        "an_emptied_group_leaves_its_directory_to_the_next_group",
    )
    .await;
}

/// Once a closed group's directory is reused, nothing of the closed group
/// reaches into it: not its methods, not its first process's handle
/// (whose subtree was that directory), not that handle's kill-on-drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_group_reaches_nothing_in_its_reused_directory() {
    if writable_parent("a_closed_group_reaches_nothing_in_its_reused_directory").is_none() {
        return;
    }
    let one = common::begin_alone_in_binary().await;
    pkit::release_spare_cgroups();
    let a = cgroup_group();
    let dir = dir_of(&a);
    let mut first = run_in(&a, "true").await;
    first.set_kill_on_drop(true);
    a.close().await.expect("close");

    let b = cgroup_group();
    assert_eq!(dir_of(&b), dir, "the spare was reused");
    let mut victim = b.start(&Command::new("sleep").arg("300")).expect("start");
    let pid = victim.pid();
    assert_eq!(b.pids().expect("pids"), vec![pid]);

    // Every way the closed group could act on its old directory.
    first.kill_tree().expect("kill_tree");
    a.kill().expect("kill of a closed group");
    let _ = a.signal(pkit::Signal::Kill);
    let _ = a.signal(pkit::Signal::Stop);
    // A closed group's suspend and resume do nothing and succeed; the
    // victim's `frozen 0` below shows they froze nothing of b's.
    a.suspend().await.expect("a closed group's suspend");
    a.resume().await.expect("a closed group's resume");
    let mut stray = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("a process outside pkit");
    let adopted = a.adopt(stray.id());
    let moved = b.pids().expect("pids").contains(&stray.id());
    let _ = stray.kill();
    let _ = stray.wait();
    assert!(
        adopted.is_err() && !moved,
        "nor adopts into it: {adopted:?}"
    );
    assert!(a.pids().expect("pids").is_empty(), "nor lists b's");
    assert_eq!(a.stats().expect("stats").active_processes(), 0);
    drop(first);
    drop(a);

    // The victim is untouched: not frozen, not stopped, not killed (a
    // SIGKILL sent above would be pending already and would win over the
    // SIGTERM sent now).
    let events = std::fs::read_to_string(dir.join("cgroup.events")).expect("events");
    assert!(events.contains("frozen 0"), "{events}");
    assert_eq!(b.pids().expect("pids"), vec![pid]);
    victim.signal(pkit::Signal::Term).expect("SIGTERM");
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), victim.wait())
        .await
        .expect("the victim ended (not stopped or frozen)")
        .expect("wait");
    assert_eq!(out.signal(), Some(libc::SIGTERM), "{out:?}");
    b.close().await.expect("close");
    drop(victim);
    pkit::release_spare_cgroups();
    until("every spare is removed", || own_dirs().is_empty()).await;
    common::end_exclusive(
        one,
        "a_closed_group_reaches_nothing_in_its_reused_directory",
    )
    .await;
}

/// A group that gets a one-shot run's spare directory reports only its own
/// CPU time, not the run's (`cpu.stat` counts since the `mkdir`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_in_a_reused_directory_reports_only_its_own_cpu_time() {
    if writable_parent("a_group_in_a_reused_directory_reports_only_its_own_cpu_time").is_none() {
        return;
    }
    let one = common::begin_alone_in_binary().await;
    let runner = Arc::new(SystemRunner::with_mechanism(MechanismChoice::Cgroup));
    pkit::release_spare_cgroups();
    let burn = "grep '^0::' /proc/self/cgroup; i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done";
    let out = Command::new("sh")
        .args(["-c", burn])
        .runner(runner.clone())
        .output()
        .await
        .unwrap();
    assert!(out.success(), "{:?} {}", out.outcome(), out.stderr_str());
    let spare = out
        .stdout_str()
        .trim()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        own_dirs(),
        vec![spare.clone()],
        "the run's directory is kept"
    );

    let group = pkit::Group::builder()
        .mechanism(MechanismChoice::Cgroup)
        .build()
        .expect("a cgroup group");
    assert!(
        group.description().contains(&format!("/{spare};")),
        "the spare was reused: {}",
        group.description()
    );
    let stats = group.stats().expect("stats");
    if stats.cpu_source() != "cgroup v2 cpu.stat" {
        eprintln!("SKIPPED: CPU time comes from {} here", stats.cpu_source());
    } else {
        let cpu = stats.cpu_time().expect("cpu time");
        assert!(cpu.is_zero(), "{cpu:?}: the earlier run's CPU time counted");
        let mut p = group.start(&Command::new("true")).expect("start");
        assert!(p.wait().await.expect("wait").success());
        let own = group.stats().expect("stats").cpu_time().expect("cpu time");
        assert!(!own.is_zero(), "its own process's CPU time is counted");
    }
    group.close().await.expect("close");
    pkit::release_spare_cgroups();
    until("every spare is removed", || own_dirs().is_empty()).await;
    common::end_exclusive(
        one,
        "a_group_in_a_reused_directory_reports_only_its_own_cpu_time",
    )
    .await;
}

/// How many of this process's descriptors name `file` (a path).
fn fds_naming(file: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == file))
        .count()
}

/// A pooled directory keeps its `cgroup.max.descendants` and
/// `cgroup.max.depth` open (each retire's check is a `pread` of them, not
/// an open, read and close), one descriptor each however often it is
/// reused, and lets go of them when the spare is released. Before: the
/// check opened and closed both files on every retire (none kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_directory_keeps_its_limits_files_open_once() {
    if writable_parent("a_pooled_directory_keeps_its_limits_files_open_once").is_none() {
        return;
    }
    let one = common::begin_alone_in_binary().await;
    pkit::release_spare_cgroups();
    let mut first = Some(cgroup_group());
    let dir = dir_of(first.as_ref().unwrap());
    let files = [
        dir.join("cgroup.max.descendants"),
        dir.join("cgroup.max.depth"),
    ];
    for round in 0..3 {
        let g = first.take().unwrap_or_else(cgroup_group);
        assert_eq!(dir_of(&g), dir, "round {round}: the spare was reused");
        drop(run_in(&g, "true").await);
        g.close().await.expect("close");
        drop(g);
        assert!(dir.exists(), "round {round}: kept as a spare");
        for f in &files {
            assert_eq!(fds_naming(f), 1, "round {round}: {}", f.display());
        }
    }
    pkit::release_spare_cgroups();
    until("the released spare's limits files are closed", || {
        files.iter().all(|f| fds_naming(f) == 0)
    })
    .await;
    common::end_exclusive(one, "a_pooled_directory_keeps_its_limits_files_open_once").await;
}
