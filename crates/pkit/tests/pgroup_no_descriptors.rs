//! A process-group group used while this process has no descriptor free:
//! a signal reaches its leader once, `pids()` lists the running members,
//! and `close()` ends them and waits until they are gone. The leader's
//! "did it leave its group?" check used to need a descriptor (a pidfd or a
//! `/proc` read) and, without one, took the leader for gone and sent it
//! the signal directly as well as through the group: twice. A close that
//! could not list the group's members failed, or waited out its deadline.
//! And a member whose exit could not be asked (no pidfd, no `/proc` read)
//! was taken for exited: `pids()` listed none, and `close()` returned
//! without waiting for members that still ran.
//!
//! One test in its own binary: it changes this process's descriptor limit.
#![cfg(unix)]

mod common;

use common::descriptors::{fill, highest_fd, set_nofile};

use common::*;
use pkit::{MechanismChoice, Signal};

/// Appends `SIG` to `$1` for each signal numbered `$2` it receives, a
/// real-time one kept blocked and taken with sigtimedwait: each sending is
/// queued and counted (a shell's trap, or two SIGUSR1, would merge two
/// that arrive together); `ready` once it is blocked. Signal `$2 + 1`, a
/// marker, appends `MARK`: pending real-time signals are taken lowest
/// number first, so once the marker is written, every `$2` sent before it
/// has been counted.
const COUNTS_RT: &str = r#"
import signal, sys
f, s = sys.argv[1], int(sys.argv[2])
signal.pthread_sigmask(signal.SIG_BLOCK, [s, s + 1])
open(f, "a").write("ready\n")
while True:
    got = signal.sigtimedwait([s, s + 1], 0.1)
    if got:
        open(f, "a").write("SIG\n" if got.si_signo == s else "MARK\n")
"#;

/// Ignores signal `$1` (the leader's count is of the group's signal) and
/// holds 512 MiB, written, until killed.
const HOG: &str = r#"
import signal, sys, time
signal.signal(int(sys.argv[1]), signal.SIG_IGN)
b = bytearray(b"x") * (512 << 20)
time.sleep(300)
"#;

fn lines(file: &TempPath, what: &str) -> usize {
    std::fs::read_to_string(file.path())
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == what)
        .count()
}

/// Polls until `file` has a line `what`; fails saying `why` after
/// [`DEADLINE`].
async fn until_line(file: &TempPath, what: &str, why: &str) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while lines(file, what) == 0 {
        assert!(std::time::Instant::now() < deadline, "{why}");
        tokio::time::sleep(POLL).await;
    }
}

/// Resident memory of `pid` in KiB (0 once it is gone).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_group_without_free_descriptors_is_signalled_once_listed_and_closed() {
    if std::process::Command::new("python3")
        .arg("-c")
        .arg("")
        .status()
        .map_or(true, |s| !s.success())
    {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let suite = begin("pgroup-no-fds").await;
    for choice in mechanisms() {
        if choice == MechanismChoice::Cgroup {
            continue;
        }
        let rt = libc::SIGRTMIN() + 2;
        let file = TempPath::new("usr1");
        let g = group(choice);
        let p = g
            .start(&cmd(choice, "python3").args(["-c", COUNTS_RT, file.as_str(), &rt.to_string()]))
            .unwrap();
        let leader = p.pid();
        // A member besides the leader, slow to end once killed (its
        // memory, touched, takes the kernel a while to free): a close that
        // does not wait returns while it is still there.
        let hog = g
            .start(&cmd(choice, "python3").args(["-c", HOG, &rt.to_string()]))
            .unwrap();
        let member = hog.pid();
        // Writing the memory takes a while on a loaded machine.
        let deadline = std::time::Instant::now() + DEADLINE * 3;
        while lines(&file, "ready") == 0 || rss_kib(member) < 500 << 10 {
            assert!(
                std::time::Instant::now() < deadline,
                "{choice}: never ready"
            );
            tokio::time::sleep(POLL).await;
        }

        let old = set_nofile(highest_fd() + 16);
        let held = fill();
        let signalled = g.signal(Signal::Raw(rt));
        let listed = g.pids();
        drop(held);
        set_nofile(old);
        signalled.unwrap_or_else(|e| panic!("{choice}: signal with no descriptor free: {e}"));
        let mut listed =
            listed.unwrap_or_else(|e| panic!("{choice}: pids with no descriptor free: {e}"));
        listed.sort_unstable();
        let mut running = vec![leader, member];
        running.sort_unstable();
        assert_eq!(
            listed, running,
            "{choice}: the members pids() listed with no descriptor free"
        );
        let why = format!("{choice}: the leader never got the signal");
        until_line(&file, "SIG", &why).await;
        // A second delivery, were there one, was queued before the marker
        // is sent, and is counted before the marker is.
        let marked = std::process::Command::new("kill")
            .args([format!("-{}", rt + 1), leader.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(marked, "{choice}: the marker signal to {leader}");
        let why = format!("{choice}: the leader never took the marker");
        until_line(&file, "MARK", &why).await;
        assert_eq!(
            lines(&file, "SIG"),
            1,
            "{choice}: real-time signals the leader saw"
        );

        // A started process's own subtree, no descriptor free: its root is
        // reached through its handle (under pgroup a copy of its pidfd was
        // needed, and without one nothing was signalled). Its descendants
        // can't be listed then (a member's parent is read from /proc): a
        // signal says so, after the root has had it.
        let mut killed = g.start(&cmd(choice, "sleep").arg("300")).unwrap();
        let mut termed = g.start(&cmd(choice, "sleep").arg("300")).unwrap();
        let old = set_nofile(highest_fd() + 16);
        let held = fill();
        let kill_tree = killed.kill_tree();
        let term = termed.signal(Signal::Term);
        drop(held);
        set_nofile(old);
        for r in [kill_tree, term] {
            if let Err(e) = r {
                assert!(matches!(e, pkit::Error::Io { .. }), "{choice}: {e:?}");
            }
        }
        for (p, sig) in [(&mut killed, 9), (&mut termed, 15)] {
            let out = tokio::time::timeout(DEADLINE, p.wait())
                .await
                .unwrap_or_else(|_| panic!("{choice}: signal {sig} with no descriptor free never reached the started process"))
                .unwrap();
            assert_eq!(out.outcome(), pkit::Outcome::Signalled(sig), "{choice}");
        }

        // A started process with a descendant, no descriptor free: the
        // descendant can't be listed, so kill_tree and shutdown end the
        // root and say so (Io); they said Ok while the descendant ran on.
        for how in ["kill_tree", "shutdown"] {
            let kid = TempPath::new("kid");
            let script = format!("sleep 300 & echo $! > {}; wait", kid.as_str());
            let mut root = g.start(&cmd(choice, "sh").args(["-c", &script])).unwrap();
            let grandchild = pid_in_file(&kid, &format!("{choice}: the descendant")).await;
            let old = set_nofile(highest_fd() + 16);
            let held = fill();
            let ended = match how {
                "kill_tree" => root.kill_tree(),
                _ => root
                    .shutdown(std::time::Duration::from_secs(1))
                    .await
                    .map(drop),
            };
            drop(held);
            set_nofile(old);
            match ended {
                Err(e) => assert!(
                    matches!(e, pkit::Error::Io { .. }),
                    "{choice}: {how}: {e:?}"
                ),
                Ok(()) => {
                    let deadline = std::time::Instant::now() + DEADLINE;
                    while !pid_gone(grandchild) {
                        assert!(
                            std::time::Instant::now() < deadline,
                            "{choice}: {how} said Ok with no descriptor free, the descendant {grandchild} runs on: {:?}",
                            stat(grandchild)
                        );
                        tokio::time::sleep(POLL).await;
                    }
                }
            }
            let _ = tokio::time::timeout(DEADLINE, root.wait()).await;
        }

        let old = set_nofile(highest_fd() + 16);
        let held = fill();
        let closed = g.close().await;
        drop(held);
        set_nofile(old);
        closed.unwrap_or_else(|e| panic!("{choice}: close with no descriptor free: {e}"));
        // Gone when the close returns (a zombie counts as gone), not later.
        for pid in [leader, member] {
            assert!(
                pid_gone(pid),
                "{choice}: {pid} still there when the close returned: {:?}",
                stat(pid)
            );
        }
        drop((p, hog));
    }
    suite.end().await;
}
