//! `Command::spawn_detached`, the deliberate escape: the process outlives
//! its group and the run, is not this process's child, leads its own
//! session, and is in no cgroup of pkit's; failures before the program runs
//! are still typed errors. (The test ends the daemon itself, by pid.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use pkit::{ChildStep, Command, Error, FileMode, Resource};

#[tokio::test]
async fn a_detached_process_escapes_and_failures_are_typed() {
    let suite = begin("a_detached_process_escapes_and_failures_are_typed").await;
    let dir = TempPath::new("detached");
    std::fs::create_dir(dir.path()).unwrap();
    let out = dir.path().join("out");
    let d = Command::new("sh")
        .args(["-c", "echo started $$; exec sleep 300"])
        .stdout_file(&out, FileMode::Truncate)
        .spawn_detached()
        .expect("detached");
    let pid = d.pid();
    let _cleanup = KillOnDrop::new(vec![pid]);
    let deadline = Instant::now() + DEADLINE;
    while std::fs::read_to_string(&out).unwrap_or_default() != format!("started {pid}\n") {
        assert!(Instant::now() < deadline, "the daemon never wrote its pid");
        tokio::time::sleep(POLL).await;
    }
    let st = stat(pid).expect("running");
    assert_ne!(st.ppid, std::process::id(), "not our child");
    assert_eq!(st.session, pid, "leads its own session");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(!cgroup.contains("pkit-"), "in no pkit cgroup: {cgroup}");
    // A verb's teardown and the release of spare cgroups leave it alone.
    let _ = Command::new("true").output().await.unwrap();
    pkit::release_spare_cgroups();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_alive(&[pid], "detached");
    kill_pid(pid);
    assert_gone(&[pid], "the daemon, killed by the test").await;

    // Failures are reported as for any start.
    let err = Command::new("pkit-no-such-program")
        .spawn_detached()
        .expect_err("missing");
    assert!(err.is_not_found(), "{err}");
    let err = Command::new("true")
        .rlimit(Resource::Nofile, 1 << 40, 1 << 40)
        .spawn_detached()
        .expect_err("nr_open");
    assert!(
        matches!(
            &err,
            Error::ChildSetup {
                step: ChildStep::Rlimit,
                ..
            }
        ),
        "{err:?}"
    );
    let err = Command::new("true")
        .current_dir(dir.path().join("missing"))
        .spawn_detached()
        .expect_err("no such directory");
    assert_eq!(err.kind(), pkit::ErrorKind::CurrentDir, "{err}");
    std::fs::remove_dir_all(dir.path()).unwrap();
    suite.end().await;
}

#[tokio::test]
async fn a_detached_pty_session_is_refused_before_it_starts() {
    let suite = begin("a_detached_pty_session_is_refused_before_it_starts").await;
    let dir = TempPath::new("detached-pty");
    std::fs::create_dir(dir.path()).unwrap();
    let marker = dir.path().join("ran");
    for raw in [false, true] {
        let cmd = Command::new("sh")
            .arg("-c")
            .arg(format!("touch '{}'", marker.display()));
        let cmd = if raw {
            cmd.pty_raw(24, 80)
        } else {
            cmd.pty(24, 80)
        };
        let err = cmd
            .spawn_detached()
            .expect_err("nothing would hold the terminal");
        assert_eq!(
            err.kind(),
            pkit::ErrorKind::InvalidInput,
            "raw {raw}: {err}"
        );
    }
    // Give a wrongly started program time to show itself.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!marker.exists(), "the program ran");
    std::fs::remove_dir_all(dir.path()).unwrap();
    suite.end().await;
}
