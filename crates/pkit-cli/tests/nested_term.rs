//! A graceful stop reaches a nested pkit's program once: through its pkit.
//!
//! `pkit run` under another pkit's timeout (or a library group's shutdown
//! or timeout) is sent the outer's SIGTERM and relays it to its program.
//! Under cgroup v2 the outer's tree-wide signal used to reach the inner
//! program directly as well (the inner group is a sub-cgroup of the
//! outer's), so the program got SIGTERM twice, and at three levels the
//! innermost pkit took the second one for a user's "end it all". Process
//! groups never did (the inner program has a process group of its own).
//! Each test here runs in every mechanism (the mechanisms, and the depths,
//! at once: each run mostly waits), counts the SIGTERMs the
//! innermost program's trap sees (exactly one), checks it ended through
//! its trap, and that nothing is left running; a nested owner that ignores
//! SIGTERM is still killed whole after the grace.
// Unix only: these run the Linux CLI (signals, /proc); Windows has
// tests/windows.rs.
#![cfg(unix)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_all_gone, at_once, pid_gone, temp_path, Started};
use pkit::{Command, Group, MechanismChoice, SystemRunner};

const PKIT: &str = env!("CARGO_BIN_EXE_pkit");

/// The innermost program: records its pid and `ready` (its trap is set by
/// then), counts each SIGTERM in the file `$1`, and once one came lingers
/// about two seconds (so a second one would be counted), then records
/// `exit` and exits 0: ended through its trap.
const COUNTS_TERMS: &str = r#"f="$1"; trap 'echo TERM >> "$f"; t=1' TERM; echo "pid $$" >> "$f"; echo ready >> "$f"; k=0; while :; do sleep 0.1 & wait $!; if [ -n "$t" ]; then k=$((k+1)); if [ $k -ge 20 ]; then echo exit >> "$f"; exit 0; fi; fi; done"#;

/// A program and its two background sleeps that all ignore SIGTERM; the
/// pids go to `$1`, then `ready`.
const IGNORES_TERM: &str = r#"trap '' TERM; sleep 300 & echo "pid $!" >> "$1"; sleep 300 & echo "pid $!" >> "$1"; echo "pid $$" >> "$1"; echo ready >> "$1"; wait; wait"#;

/// `PKIT_MECHANISM`'s values to run the CLI with: all three, or only the
/// one the environment names (CI's per-mechanism passes).
fn cli_mechanisms() -> Vec<&'static str> {
    common::mechanisms()
}

/// The library's choices, likewise, each with the `PKIT_MECHANISM` its
/// nested pkits are given: the same one. (Mixed, an outer process group
/// reaches an inner cgroup's programs itself: those stay in their pkit's
/// process group.)
fn lib_mechanisms() -> Vec<(MechanismChoice, &'static str)> {
    let all = [
        ("cgroup", MechanismChoice::Cgroup),
        ("pgroup", MechanismChoice::ProcessGroup),
        ("portable", MechanismChoice::Portable),
    ];
    let names = cli_mechanisms();
    all.into_iter()
        .filter(|(n, _)| names.contains(n))
        .map(|(n, c)| (c, n))
        .collect()
}

/// What a run of [`COUNTS_TERMS`] (or [`IGNORES_TERM`]) wrote to its file.
struct Record {
    pids: Vec<i32>,
    ready: bool,
    terms: usize,
    exited: bool,
}

fn record(file: &Path) -> Record {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    Record {
        pids: text
            .lines()
            .filter_map(|l| l.strip_prefix("pid ")?.trim().parse().ok())
            .collect(),
        ready: text.lines().any(|l| l == "ready"),
        terms: text.lines().filter(|l| *l == "TERM").count(),
        exited: text.lines().any(|l| l == "exit"),
    }
}

/// `n` levels of `pkit run` (the first one with `outer` options) around
/// `sh -c script sh file`.
fn nested_args(n: usize, outer: &[String], script: &str, file: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec!["run".into()];
    args.extend(outer.iter().cloned());
    args.push("--".into());
    for _ in 1..n {
        args.extend([PKIT.to_string(), "run".into(), "--".into()]);
    }
    args.extend([
        "sh".into(),
        "-c".into(),
        script.into(),
        "sh".into(),
        file.display().to_string(),
    ]);
    args
}

/// Runs `levels` of `pkit run` around [`COUNTS_TERMS`] under the outer's
/// `--timeout` in mechanism `mech`, growing the timeout until the program
/// was ready (its trap set) before it fired; returns the record and the
/// outer's stderr.
fn timed_out_nested_run(mech: &str, levels: usize) -> (Record, String) {
    let mut secs = 1;
    loop {
        let file = temp_path("nested-term");
        let outer = [format!("--timeout={secs}"), "-k".into(), "60".into()];
        let out = common::pkit()
            .args(nested_args(levels, &outer, COUNTS_TERMS, &file))
            .env("PKIT_MECHANISM", mech)
            .output()
            .expect("pkit runs");
        let rec = record(&file);
        let _ = std::fs::remove_file(&file);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let what = format!("{mech}, {levels} levels, --timeout={secs}");
        assert_eq!(out.status.code(), Some(124), "{what}: {stderr}");
        assert_all_gone(&rec.pids);
        if rec.ready {
            return (rec, stderr);
        }
        assert!(secs < 32, "{what}: the program was never ready: {stderr}");
        secs *= 2;
    }
}

/// Runs the futures at once, as tasks of the test's runtime (each mostly
/// waits: a timeout, a grace, the program's linger), and once all have
/// ended fails with the first panic, if any (each panic's message is
/// printed as it happens).
async fn all_at_once<F>(cases: impl IntoIterator<Item = F>)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for case in cases {
        set.spawn(case);
    }
    let mut failed = None;
    while let Some(done) = set.join_next().await {
        if let Err(e) = done {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("a case did not finish: {e}"),
        }
    }
}

/// Every mechanism with each of `levels`.
fn with_levels<T: Copy>(mechs: Vec<T>, levels: [usize; 2]) -> Vec<(T, usize)> {
    mechs
        .into_iter()
        .flat_map(|m| levels.map(|l| (m, l)))
        .collect()
}

#[test]
fn a_timeout_reaches_the_program_of_a_nested_pkit_run_once() {
    at_once(with_levels(cli_mechanisms(), [2, 3]), |(mech, levels)| {
        let (rec, stderr) = timed_out_nested_run(mech, levels);
        let what = format!("{mech}, {levels} levels of pkit run");
        assert_eq!(rec.terms, 1, "{what}: SIGTERMs seen; {stderr}");
        assert!(rec.exited, "{what}: did not end through its trap; {stderr}");
        assert!(
            !stderr.contains("second SIGTERM"),
            "{what}: a pkit saw two: {stderr}"
        );
    });
}

/// The pid of `pid`'s parent.
fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    after.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Polls `file` until it says `ready`.
fn wait_ready(file: &Path, what: &str) -> Record {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rec = record(file);
        if rec.ready {
            return rec;
        }
        assert!(Instant::now() < deadline, "{what}: never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_kill_after_the_grace_ends_a_nested_pkit_that_ignores_term() {
    at_once(cli_mechanisms(), |mech| {
        let what = format!("{mech}: inner pkit and program ignore SIGTERM");
        let file = temp_path("nested-ignores");
        // The inner pkit starts with SIGTERM ignored (and keeps it so), as
        // does its program and what that starts.
        let inner = format!(
            "trap '' TERM; exec {PKIT} run -- sh -c \"$1\" sh \"$2\"",
            PKIT = PKIT
        );
        let outer = common::pkit()
            .args([
                "run",
                "--timeout=2",
                "-k",
                "1",
                "--",
                "sh",
                "-c",
                &inner,
                "sh",
                IGNORES_TERM,
                &file.display().to_string(),
            ])
            .env("PKIT_MECHANISM", mech)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map(Started::new)
            .unwrap();
        let rec = wait_ready(&file, &what);
        assert_eq!(rec.pids.len(), 3, "{what}");
        let mut pids = rec.pids.clone();
        // The inner pkit: the program's parent.
        let inner_pkit = parent_of(*pids.last().unwrap());
        assert_ne!(inner_pkit, outer.id() as i32, "{what}: two pkits");
        pids.push(inner_pkit);
        let out = outer.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(137), "{what}: {stderr}");
        assert_all_gone(&pids);
        let _ = std::fs::remove_file(&file);
    });
}

/// Polls until every pid is gone (no /proc entry, or a zombie).
async fn wait_all_gone(pids: &[i32], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pids.iter().all(|&p| pid_gone(p)) {
        assert!(Instant::now() < deadline, "{what}: still alive: {pids:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `file` until it says `ready`, without blocking the runtime.
async fn ready(file: &Path, what: &str) -> Record {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rec = record(file);
        if rec.ready {
            return rec;
        }
        assert!(Instant::now() < deadline, "{what}: never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `pkit run -- sh -c script sh file` (or two levels of it), in mechanism
/// `mech`.
fn pkit_run(mech: &str, levels: usize, script: &str, file: &Path) -> Command {
    Command::new(PKIT)
        .args(nested_args(levels, &[], script, file))
        .env("PKIT_MECHANISM", mech)
}

#[tokio::test]
async fn a_group_shutdown_reaches_the_program_of_a_nested_pkit_run_once() {
    let cases = with_levels(lib_mechanisms(), [1, 2]);
    all_at_once(
        cases
            .into_iter()
            .map(|((choice, mech), levels)| async move {
                let what = format!("{choice}: Group::shutdown of {levels} pkit run");
                let file = temp_path("nested-shutdown");
                let group = Group::builder().mechanism(choice).build().unwrap();
                // A second started process too: under cgroup v2 it lives in a
                // leaf of its own, the first in the group's directory.
                let mut procs = Vec::new();
                let second = temp_path("nested-shutdown");
                for f in [&file, &second] {
                    procs.push(
                        group
                            .start(&pkit_run(mech, levels, COUNTS_TERMS, f))
                            .unwrap(),
                    );
                }
                let mut pids = ready(&file, &what).await.pids;
                pids.extend(ready(&second, &what).await.pids);
                let report = group.shutdown(Duration::from_secs(60)).await.unwrap();
                for f in [&file, &second] {
                    let rec = record(f);
                    assert_eq!(rec.terms, 1, "{what}: SIGTERMs seen");
                    assert!(rec.exited, "{what}: did not end through its trap");
                    let _ = std::fs::remove_file(f);
                }
                assert_eq!(report.killed(), 0, "{what}");
                drop(procs);
                wait_all_gone(&pids, &what).await;
            }),
    )
    .await;
}

/// Judges a timed-out run of [`COUNTS_TERMS`] under nested `pkit run`s
/// (its record in `file`, removed): everything is gone, and if the
/// program was ready before the timeout (true is returned) it saw one
/// SIGTERM and ended through its trap within the grace. False: the
/// timeout came first, try a longer one.
async fn timed_out_once(out: &pkit::Output, file: &Path, what: &str) -> bool {
    let rec = record(file);
    let _ = std::fs::remove_file(file);
    assert!(out.timed_out(), "{what}: {:?}", out.outcome());
    wait_all_gone(&rec.pids, what).await;
    if rec.ready {
        assert_eq!(rec.terms, 1, "{what}: SIGTERMs seen");
        assert!(rec.exited, "{what}: did not end through its trap");
        assert!(!out.killed_after_grace(), "{what}");
    }
    rec.ready
}

#[tokio::test]
async fn a_timed_out_run_reaches_the_program_of_a_nested_pkit_run_once() {
    let cases = with_levels(lib_mechanisms(), [1, 2]);
    all_at_once(
        cases
            .into_iter()
            .map(|((choice, mech), levels)| async move {
                let runner = Arc::new(SystemRunner::with_mechanism(choice));
                let what = format!("{choice}: a timed-out run of {levels} pkit run");
                let mut limit = Duration::from_secs(1);
                loop {
                    let file = temp_path("nested-timeout");
                    let out = pkit_run(mech, levels, COUNTS_TERMS, &file)
                        .timeout(limit)
                        .grace(Duration::from_secs(60))
                        .runner(runner.clone())
                        .output()
                        .await
                        .unwrap();
                    if timed_out_once(&out, &file, &what).await {
                        break;
                    }
                    assert!(limit < Duration::from_secs(30), "{what}: never ready");
                    limit *= 2;
                }
            }),
    )
    .await;
}

#[tokio::test]
async fn a_started_process_timeout_reaches_the_program_of_a_nested_pkit_run_once() {
    all_at_once(
        lib_mechanisms()
            .into_iter()
            .map(|(choice, mech)| async move {
                let what = format!("{choice}: a started pkit run's own timeout");
                let group = Group::builder().mechanism(choice).build().unwrap();
                // The first process holds the group's directory; the ones timed
                // out come later (each in a leaf of its own under cgroup v2).
                let first = group.start(&Command::new("sleep").arg("300")).unwrap();
                let mut limit = Duration::from_secs(1);
                loop {
                    let file = temp_path("nested-started");
                    let mut proc = group
                        .start(
                            &pkit_run(mech, 1, COUNTS_TERMS, &file)
                                .timeout(limit)
                                .grace(Duration::from_secs(60)),
                        )
                        .unwrap();
                    let out = proc.wait().await.unwrap();
                    if timed_out_once(&out, &file, &what).await {
                        break;
                    }
                    assert!(limit < Duration::from_secs(30), "{what}: never ready");
                    limit *= 2;
                }
                drop(first);
                group.close().await.unwrap();
            }),
    )
    .await;
}

#[tokio::test]
async fn a_group_shutdown_kills_a_nested_pkit_that_ignores_term() {
    all_at_once(
        lib_mechanisms()
            .into_iter()
            .map(|(choice, mech)| async move {
                let what = format!("{choice}: nested pkit and its program ignore SIGTERM");
                let file = temp_path("nested-lib-ignores");
                let inner = format!("trap '' TERM; exec {PKIT} run -- sh -c \"$1\" sh \"$2\"");
                let group = Group::builder().mechanism(choice).build().unwrap();
                let proc = group
                    .start(
                        &Command::new("sh")
                            .args([
                                "-c",
                                &inner,
                                "sh",
                                IGNORES_TERM,
                                &file.display().to_string(),
                            ])
                            .env("PKIT_MECHANISM", mech),
                    )
                    .unwrap();
                let rec = ready(&file, &what).await;
                let mut pids = rec.pids.clone();
                pids.push(parent_of(*pids.last().unwrap()));
                assert_eq!(pids.last().copied(), Some(proc.pid() as i32), "{what}");
                let report = group.shutdown(Duration::from_secs(1)).await.unwrap();
                assert!(report.killed() > 0, "{what}: nothing needed SIGKILL");
                drop(proc);
                wait_all_gone(&pids, &what).await;
                let _ = std::fs::remove_file(&file);
            }),
    )
    .await;
}

/// The innermost program for [`a_signal_pkit_run_does_not_relay_reaches_the_nested_program_once`]:
/// records its pid and `ready`, counts each SIGURG in `$1` (a signal
/// `pkit run` neither catches nor dies of: its default is to ignore it),
/// and ends through its TERM trap.
const COUNTS_URGS: &str = r#"f="$1"; trap 'echo URG >> "$f"' URG; trap 'echo exit >> "$f"; exit 0' TERM; echo "pid $$" >> "$f"; echo ready >> "$f"; while :; do sleep 0.1 & wait $!; done"#;

/// A signal `pkit run` does not relay (SIGURG here) is not held back from
/// a nested pkit's cgroup: the nested program gets it directly, once (it
/// used to be held back for the nested pkit to relay, which it never did).
/// Cgroup only: under a process group the nested program leads a process
/// group of its own, which the outer's `killpg` does not reach.
#[tokio::test]
async fn a_signal_pkit_run_does_not_relay_reaches_the_nested_program_once() {
    let Some((choice, mech)) = lib_mechanisms()
        .into_iter()
        .find(|(c, _)| *c == MechanismChoice::Cgroup)
    else {
        eprintln!("skipped: the cgroup mechanism is not among this run's mechanisms");
        return;
    };
    all_at_once([1, 2].map(move |levels| async move {
        let what = format!("{choice}: SIGURG through {levels} pkit run");
        let file = temp_path("nested-urg");
        let group = Group::builder().mechanism(choice).build().unwrap();
        let proc = group
            .start(&pkit_run(mech, levels, COUNTS_URGS, &file))
            .unwrap();
        let pids = ready(&file, &what).await.pids;
        let urgs = || {
            std::fs::read_to_string(&file)
                .unwrap_or_default()
                .lines()
                .filter(|l| *l == "URG")
                .count()
        };
        group
            .signal(pkit::Signal::Raw(libc::SIGURG))
            .expect("signal");
        let deadline = Instant::now() + Duration::from_secs(30);
        while urgs() == 0 {
            assert!(
                Instant::now() < deadline,
                "{what}: the program never got it"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Room for a second delivery to show up, were there one.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(urgs(), 1, "{what}: SIGURGs seen");
        assert!(
            pids.iter().all(|&p| !pid_gone(p)),
            "{what}: the program did not survive it"
        );
        let report = group.shutdown(Duration::from_secs(60)).await.unwrap();
        assert!(record(&file).exited, "{what}: did not end through its trap");
        assert_eq!(report.killed(), 0, "{what}");
        drop(proc);
        wait_all_gone(&pids, &what).await;
        let _ = std::fs::remove_file(&file);
    }))
    .await;
}
