//! rv51: a hostile review of the fifteenth session's changes. A started
//! process moved out of its group's cgroup is ended by a close (att17's
//! `finish_retired`), but a close could return while it was still dying:
//! a second close racing the first, after the first had marked the
//! teardown finished
//! ([`a_second_close_waits_for_a_moved_out_process`]), and a close of a
//! cgroup with a member left inside, whose wait was for the cgroup alone
//! ([`a_close_with_members_inside_waits_for_a_moved_out_process`]). The
//! process here dies slowly: SIGKILLed, it frees a large heap before its
//! exit is seen.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, MechanismChoice};

/// Touches a large heap, then writes `ok` to `$ARGV[0]` and sleeps: once
/// SIGKILLed it takes a while (hundreds of ms) to free that heap, between
/// the kill and its exit.
const SLOW_TO_DIE: &str =
    r#"$x = "a" x (768 << 20); open(F, ">", $ARGV[0]) or die; print F "ok\n"; close F; sleep 300"#;

/// Whether `pid` has begun to exit (`PF_EXITING` in its stat's flags).
fn exiting(pid: u32) -> bool {
    let Ok(text) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = text.iter().rposition(|&b| b == b')') else {
        return false;
    };
    let rest = String::from_utf8_lossy(&text[close + 1..]).into_owned();
    let flags: u64 = rest
        .split_ascii_whitespace()
        .nth(6)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    flags & 0x4 != 0
}

/// Starts [`SLOW_TO_DIE`] in `g` and waits until its heap is touched;
/// its pid.
async fn slow_to_die(g: &pkit::Group) -> (pkit::RunningProcess, u32) {
    let file = TempPath::new("rv51-slow");
    let p = g
        .start(&Command::new("perl").args(["-e", SLOW_TO_DIE, file.as_str()]))
        .expect("start perl");
    let pid = p.pid();
    let deadline = Instant::now() + DEADLINE * 3;
    while std::fs::read_to_string(file.path()).unwrap_or_default() != "ok\n" {
        assert!(Instant::now() < deadline, "perl never touched its heap");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (p, pid)
}

/// Moves `pid` to the parent of `dir` (a cgroup); false if refused.
fn move_out(dir: &Path, pid: u32) -> bool {
    let parent: PathBuf = dir.parent().expect("a parent directory").to_path_buf();
    std::fs::write(parent.join("cgroup.procs"), pid.to_string()).is_ok()
}

/// Polls until `pid` has begun to exit (or is gone); false at the deadline.
async fn until_exiting(pid: u32) -> bool {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if exiting(pid) || pid_gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

/// A started process moved out of its group's (then empty) cgroup: one
/// close kills it and waits; a second close, begun once the first has
/// killed it, returned at once while it was still dying (the first had
/// marked the teardown finished before its wait). Now the second returns
/// only once the process is gone, as the first does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_close_waits_for_a_moved_out_process() {
    let suite = begin("a_second_close_waits_for_a_moved_out_process").await;
    if !mechanisms().contains(&MechanismChoice::Cgroup) {
        suite.end().await;
        return;
    }
    let mut seen = false;
    for round in 0..3 {
        let what = format!("round {round}");
        let g = Arc::new(group(MechanismChoice::Cgroup));
        let (p, pid) = slow_to_die(&g).await;
        let _guard = KillOnDrop::new(vec![pid]);
        let dir = cgroup_dir(&g).expect("the group's cgroup directory");
        if !move_out(&dir, pid) {
            skipped(
                "a_second_close_waits_for_a_moved_out_process",
                "can't move a process",
            );
            break;
        }
        let first = tokio::spawn({
            let g = g.clone();
            async move { g.close().await }
        });
        assert!(
            until_exiting(pid).await,
            "{what}: the first close never killed it"
        );
        // The first close marks its teardown just after the kill.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let dying = !pid_gone(pid);
        tokio::time::timeout(DEADLINE * 3, g.close())
            .await
            .unwrap_or_else(|_| panic!("{what}: the second close hung"))
            .unwrap_or_else(|e| panic!("{what}: the second close: {e}"));
        let gone_then = pid_gone(pid);
        first
            .await
            .expect("the first close's task")
            .unwrap_or_else(|e| panic!("{what}: the first close: {e}"));
        assert!(
            pid_gone(pid),
            "{what}: the first close returned with it running"
        );
        drop(p);
        if dying {
            assert!(
                gone_then,
                "{what}: the second close returned with the moved-out process still dying"
            );
            seen = true;
            break;
        }
    }
    if !seen {
        skipped(
            "a_second_close_waits_for_a_moved_out_process",
            "the process was gone before the second close began",
        );
    }
    suite.end().await;
}

/// A started process moved out of its group's cgroup while another
/// member stays inside: the close kills both, and returned once the
/// cgroup was empty, the moved-out process still dying. Now it returns
/// once that one is gone too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_with_members_inside_waits_for_a_moved_out_process() {
    let suite = begin("a_close_with_members_inside_waits_for_a_moved_out_process").await;
    if !mechanisms().contains(&MechanismChoice::Cgroup) {
        suite.end().await;
        return;
    }
    let g = group(MechanismChoice::Cgroup);
    let (p, pid) = slow_to_die(&g).await;
    let inside = g
        .start(&Command::new("sleep").arg("300"))
        .expect("start sleep");
    let _guard = KillOnDrop::new(vec![pid, inside.pid()]);
    let dir = cgroup_dir(&g).expect("the group's cgroup directory");
    if !move_out(&dir, pid) {
        skipped(
            "a_close_with_members_inside_waits_for_a_moved_out_process",
            "can't move a process",
        );
        suite.end().await;
        return;
    }
    tokio::time::timeout(DEADLINE * 3, g.close())
        .await
        .expect("the close hung")
        .expect("the close");
    assert!(
        pid_gone(pid),
        "the close returned with the moved-out process running ({:?})",
        stat(pid)
    );
    assert!(
        pid_gone(inside.pid()),
        "the close returned with the member inside running"
    );
    drop((p, inside));
    suite.end().await;
}

/// Ends with status 0 on SIGTERM, 0.3 s later, writing `term` to
/// `$ARGV[0]` first; writes `$ARGV[1]` once up, then sleeps.
const ENDS_ON_TERM: &str = r#"$SIG{TERM} = sub { select(undef, undef, undef, 0.3); open(F, ">", $ARGV[0]) or die; print F "term\n"; close F; exit 0 }; open(F, ">", $ARGV[1]) or die; close F; sleep 1 while 1"#;

/// A started process moved out of its group's cgroup, alone or beside a
/// member left inside: a shutdown gives it its SIGTERM and its grace, as
/// the members have. It was SIGKILLed by the close without either when
/// the cgroup was empty (no member, no signal), and right after the
/// members' grace otherwise (the grace waited for the cgroup alone); the
/// report counted it nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_gives_a_moved_out_process_its_grace() {
    let suite = begin("a_shutdown_gives_a_moved_out_process_its_grace").await;
    if !mechanisms().contains(&MechanismChoice::Cgroup) {
        suite.end().await;
        return;
    }
    for with_member in [false, true] {
        let what = format!("with a member inside {with_member}");
        let g = group(MechanismChoice::Cgroup);
        let said = TempPath::new("rv51-term");
        let up = TempPath::new("rv51-up");
        let p = g
            .start(&Command::new("perl").args(["-e", ENDS_ON_TERM, said.as_str(), up.as_str()]))
            .expect("start perl");
        let pid = p.pid();
        let inside = with_member.then(|| {
            g.start(&Command::new("sleep").arg("300"))
                .expect("start sleep")
        });
        let mut pids = vec![pid];
        pids.extend(inside.as_ref().map(|s| s.pid()));
        let _guard = KillOnDrop::new(pids.clone());
        let deadline = Instant::now() + DEADLINE * 3;
        while !up.path().exists() {
            assert!(Instant::now() < deadline, "{what}: perl never came up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let dir = cgroup_dir(&g).expect("the group's cgroup directory");
        if !move_out(&dir, pid) {
            skipped(
                "a_shutdown_gives_a_moved_out_process_its_grace",
                "can't move a process",
            );
            break;
        }
        let report = tokio::time::timeout(DEADLINE * 3, g.shutdown(DEADLINE))
            .await
            .unwrap_or_else(|_| panic!("{what}: the shutdown hung"))
            .unwrap_or_else(|e| panic!("{what}: shutdown: {e}"));
        assert_gone(&pids, &what).await;
        let text = std::fs::read_to_string(said.path()).unwrap_or_default();
        assert_eq!(
            text, "term\n",
            "{what}: it had no SIGTERM, or no time to end on it"
        );
        let n = pids.len();
        assert_eq!(
            (report.signalled(), report.killed()),
            (n, 0),
            "{what}: {report:?}"
        );
        drop((p, inside));
    }
    suite.end().await;
}
