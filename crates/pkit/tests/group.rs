//! `Group` and `RunningProcess`: what a group says about itself, starting
//! and waiting, killing one process, closing, and membership.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, ErrorKind, Group, Mechanism, MechanismChoice, Outcome, Placement};

#[tokio::test]
async fn a_group_describes_its_mechanism() {
    let suite = begin("a_group_describes_its_mechanism").await;
    for choice in mechanisms() {
        let group = group(choice);
        let description = group.description();
        let debug = format!("{group:?}");
        match choice {
            MechanismChoice::Cgroup => {
                assert_eq!(group.mechanism(), Mechanism::CgroupV2);
                assert!(description.contains("cgroup"), "{description}");
                assert!(
                    matches!(
                        group.placement(),
                        Placement::Clone3IntoCgroup | Placement::JoinBeforeExec { .. }
                    ),
                    "{:?}",
                    group.placement()
                );
                let dir = cgroup_dir(&group).expect("a cgroup path");
                assert!(dir.is_dir(), "{}", dir.display());
                let name = dir.file_name().unwrap().to_string_lossy().into_owned();
                assert!(
                    name.starts_with(&common::name_prefix(std::process::id())),
                    "{name}"
                );
                assert!(debug.contains("CgroupV2"), "{debug}");
                drop(group);
                // Emptied (it never had a process): removed, or a spare.
                assert_dir_released(&dir).await;
            }
            _ => {
                assert_eq!(group.mechanism(), Mechanism::ProcessGroup);
                assert_eq!(group.placement(), Placement::ProcessGroup);
                assert!(description.contains("process group"), "{description}");
                assert!(cgroup_dir(&group).is_none());
                assert!(debug.contains("ProcessGroup"), "{debug}");
                // Once a process is started, the description names its pgid.
                let mut p = group.start(&Command::new("true")).expect("start");
                p.wait().await.expect("wait");
                assert!(
                    group
                        .description()
                        .contains(&format!("process group {}", p.pid())),
                    "{}",
                    group.description()
                );
            }
        }
    }
    suite.end().await;
}

/// A closed group says so, and names no cgroup directory or process
/// group number (either may belong to a newer group by then), for every
/// mechanism; a second group made after it describes itself as usual.
#[tokio::test]
async fn a_closed_group_says_it_is_closed() {
    let suite = begin("a_closed_group_says_it_is_closed").await;
    for choice in mechanisms() {
        let first = group(choice);
        let mut p = first.start(&Command::new("true")).expect("start");
        let pid = p.pid();
        assert!(p.wait().await.expect("wait").success());
        let open = first.description();
        let place = match cgroup_dir(&first) {
            Some(dir) => dir.display().to_string(),
            None => format!("process group {pid}"),
        };
        assert!(open.contains(&place), "{choice}: {open}");
        first.close().await.expect("close");
        let second = group(choice);
        for text in [first.description(), format!("{first:?}")] {
            assert!(text.contains("; closed"), "{choice}: {text}");
            assert!(!text.contains(&place), "{choice}: {text}");
            assert!(!text.contains("teardown by"), "{choice}: {text}");
        }
        assert!(!second.description().contains("closed"), "{choice}");
        second.close().await.expect("close");
    }
    suite.end().await;
}

#[tokio::test]
async fn group_new_uses_the_environment_default() {
    let suite = begin("group_new_uses_the_environment_default").await;
    // PKIT_MECHANISM is read, never set, here: the suite runs with it
    // unset, with PKIT_MECHANISM=pgroup and with PKIT_MECHANISM=portable.
    let choice = MechanismChoice::from_env().expect("a valid PKIT_MECHANISM");
    let group = Group::new().expect("Group::new");
    let expected = match choice {
        MechanismChoice::ProcessGroup | MechanismChoice::Portable => Mechanism::ProcessGroup,
        _ if cgroup_usable() => Mechanism::CgroupV2,
        MechanismChoice::Auto => Mechanism::ProcessGroup,
        other => panic!("cgroup forced ({other}) but unusable"),
    };
    assert_eq!(group.mechanism(), expected, "{}", group.description());
    assert_eq!(
        group.description().contains("portable backend"),
        choice == MechanismChoice::Portable,
        "{}",
        group.description()
    );
    let mut p = group.start(&Command::new("echo").arg("hi")).expect("start");
    let out = p.wait().await.expect("wait");
    assert_eq!(out.mechanism(), expected);
    assert_eq!(p.mechanism(), expected);
    drop(group);
    // The handle holds the exited child unreaped (its pid stays reserved)
    // until it is dropped.
    drop(p);
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_then_wait_returns_the_output() {
    let suite = begin("start_then_wait_returns_the_output").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "cat; echo err >&2; exit 5"])
                    .stdin_str("in\n"),
            )
            .expect("start");
        assert!(p.pid() > 0);
        assert_eq!(p.program(), "sh");
        assert_eq!(p.mechanism(), expected_mechanism(choice));
        assert!(format!("{p:?}").contains("RunningProcess"));
        let out = p.wait().await.expect("wait");
        assert_eq!(out.code(), Some(5), "{choice}: {out:?}");
        assert_eq!(out.stdout_str(), "in\n");
        assert_eq!(out.stderr_str(), "err\n");
        assert_eq!(out.pid(), p.pid());
        assert_eq!(out.program(), "sh");
        assert_eq!(out.mechanism(), expected_mechanism(choice));
        assert!(p.has_exited());
        // Waiting again returns the same outcome; the bytes were handed
        // over once.
        let again = p.wait().await.expect("wait again");
        assert_eq!((again.outcome(), again.pid()), (out.outcome(), out.pid()));
        assert!(again.stdout().is_empty() && again.stderr().is_empty());
        assert_eq!(again.stdout_total_bytes(), out.stdout_total_bytes());
        // kill() after exit does nothing.
        p.kill().expect("kill after exit");
        group.close().await.expect("close");
    }
    suite.end().await;
}

#[tokio::test]
async fn a_started_process_never_blocks_on_a_full_pipe() {
    let suite = begin("a_started_process_never_blocks_on_a_full_pipe").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut p = group
            .start(&Command::new("sh").args([
                "-c",
                "head -c 4194304 /dev/zero; head -c 4194304 /dev/zero >&2",
            ]))
            .expect("start");
        // Nobody reads for a while: the background readers must.
        let deadline = std::time::Instant::now() + DEADLINE;
        while !p.has_exited() {
            assert!(std::time::Instant::now() < deadline, "{choice}: stuck");
            tokio::time::sleep(POLL).await;
        }
        let out = p.wait().await.expect("wait");
        assert!(out.success(), "{choice}: {out:?}");
        // A started process keeps the last DEFAULT_START_CAPTURE_BYTES of
        // each stream, and counts every byte.
        assert_eq!(out.stdout().len(), pkit::DEFAULT_START_CAPTURE_BYTES);
        assert_eq!(out.stderr().len(), pkit::DEFAULT_START_CAPTURE_BYTES);
        assert_eq!(out.stdout_total_bytes(), 4 << 20);
        assert_eq!(out.stderr_total_bytes(), 4 << 20);
        assert!(out.stdout_truncated() && out.stderr_truncated());

        // usize::MAX as the capture limit keeps everything.
        let mut p = group
            .start(
                &Command::new("sh")
                    .args([
                        "-c",
                        "head -c 4194304 /dev/zero; head -c 4194304 /dev/zero >&2",
                    ])
                    .capture_limit(usize::MAX, pkit::CapturePolicy::KeepHead),
            )
            .expect("start");
        while !p.has_exited() {
            assert!(
                std::time::Instant::now() < deadline + DEADLINE,
                "{choice}: stuck"
            );
            tokio::time::sleep(POLL).await;
        }
        let out = p.wait().await.expect("wait");
        assert_eq!(out.stdout().len(), 4 << 20);
        assert_eq!(out.stderr().len(), 4 << 20);
    }
    suite.end().await;
}

#[tokio::test]
async fn killing_one_process_spares_its_descendants_until_the_group_ends() {
    let suite = begin("killing_one_process_spares_its_descendants_until_the_group_ends").await;
    for choice in mechanisms() {
        let file = TempPath::new("proc-kill");
        let group = group(choice);
        let mut p = group
            .start(&Command::new("sh").args(["-c", TREE_TO_FILE, "sh", file.as_str()]))
            .expect("start");
        let pids = file.wait_pids().await;
        assert!(!p.has_exited());
        p.kill().expect("kill");
        let out = p.wait().await.expect("wait");
        assert_eq!(out.outcome(), Outcome::Signalled(9), "{choice}: {out:?}");
        assert_eq!(out.outcome().to_string(), "signalled(SIGKILL)");
        assert!(p.has_exited());
        assert_gone(&[p.pid()], "the killed sh").await;
        // The grandchildren belong to the group, not to the handle.
        assert_alive(
            &pids[..2],
            &format!("{choice}: grandchildren of a killed sh"),
        );
        let members = set(&group.pids().expect("pids"));
        assert!(
            members.contains(&pids[0]) && members.contains(&pids[1]),
            "{choice}: {members:?} vs {pids:?}"
        );
        let dir = cgroup_dir(&group);
        drop(group);
        assert_gone(&pids, &format!("{choice}: after the group")).await;
        if let Some(dir) = dir {
            assert_dir_gone(&dir).await;
        }
    }
    suite.end().await;
}

#[tokio::test]
async fn every_process_of_a_group_shares_its_container() {
    let suite = begin("every_process_of_a_group_shares_its_container").await;
    for choice in mechanisms() {
        let group = group(choice);
        let files = [TempPath::new("share-a"), TempPath::new("share-b")];
        let procs: Vec<_> = files
            .iter()
            .map(|f| {
                group
                    .start(&Command::new("sh").args(["-c", TREE_TO_FILE, "sh", f.as_str()]))
                    .expect("start")
            })
            .collect();
        let mut pids = Vec::new();
        for f in &files {
            pids.extend(f.wait_pids().await);
        }
        assert_eq!(pids.len(), 6);
        assert_eq!(set(&group.pids().expect("pids")), set(&pids), "{choice}");
        let dir = cgroup_dir(&group);
        match &dir {
            Some(dir) => assert_eq!(set(&cgroup_procs(dir)), set(&pids), "{choice}"),
            None => {
                // The first process leads the group; the second joins it.
                let leader = procs[0].pid();
                for &p in &pids {
                    assert_eq!(stat(p).unwrap().pgrp, leader, "{choice}: pgrp of {p}");
                }
            }
        }
        drop(group);
        assert_gone(&pids, &format!("{choice}: after the group")).await;
        drop(procs);
        if let Some(dir) = dir {
            assert_dir_gone(&dir).await;
        }
    }
    suite.end().await;
}

#[tokio::test]
async fn a_closed_group_starts_nothing() {
    let suite = begin("a_closed_group_starts_nothing").await;
    for choice in mechanisms() {
        let file = TempPath::new("close");
        let group = group(choice);
        let mut p = group
            .start(&Command::new("sh").args(["-c", TREE_TO_FILE, "sh", file.as_str()]))
            .expect("start");
        let pids = file.wait_pids().await;
        let dir = cgroup_dir(&group);
        group.close().await.expect("close");
        if let Some(dir) = &dir {
            assert!(!dir.exists(), "{choice}: close removes {}", dir.display());
        }
        assert_gone(&pids, &format!("{choice}: after close")).await;
        assert_eq!(p.wait().await.expect("wait").signal(), Some(9));

        let err = group
            .start(&Command::new("echo").arg("SECRET-ARG"))
            .expect_err("closed");
        assert_eq!(err.kind(), ErrorKind::Spawn, "{choice}: {err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("echo:") && msg.contains("closed"), "{msg}");
        assert!(!msg.contains("SECRET") && !format!("{err:?}").contains("SECRET"));

        // Closing, killing and listing a closed group are harmless.
        group.close().await.expect("close again");
        group.kill().expect("kill after close");
        assert_eq!(group.pids().expect("pids"), Vec::<u32>::new());
        assert_eq!(group.mechanism(), expected_mechanism(choice));
    }
    suite.end().await;
}

#[tokio::test]
async fn an_idle_group_shuts_down_with_nothing_to_signal() {
    let suite = begin("an_idle_group_shuts_down_with_nothing_to_signal").await;
    for choice in mechanisms() {
        let group = group(choice);
        let dir = cgroup_dir(&group);
        let report = group
            .shutdown(Duration::from_secs(5))
            .await
            .expect("shutdown");
        assert_eq!(
            (
                report.signalled(),
                report.exited_in_grace(),
                report.killed()
            ),
            (0, 0, 0),
            "{choice}: {report:?}"
        );
        if let Some(dir) = dir {
            assert_dir_released(&dir).await;
        }
        assert!(group.start(&Command::new("true")).is_err());
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_process_handle_leaves_it_to_the_group() {
    let suite = begin("dropping_a_process_handle_leaves_it_to_the_group").await;
    for choice in mechanisms() {
        let group = group(choice);
        // One that exits by itself after its handle is gone (and must be
        // reaped: the suite checks no zombie child is left), one that runs
        // until the group ends.
        let quick = group.start(&Command::new("true")).expect("start");
        let long = group
            .start(&Command::new("sleep").arg("300"))
            .expect("start");
        let (quick_pid, long_pid) = (quick.pid(), long.pid());
        drop(quick);
        drop(long);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_alive(
            &[long_pid],
            &format!("{choice}: a process whose handle is dropped"),
        );
        assert_gone(&[quick_pid], "true").await;
        drop(group);
        assert_gone(&[long_pid], &format!("{choice}: after the group")).await;
    }
    suite.end().await;
}

/// `GroupBuilder::name`: under cgroup v2 the member's `/proc/<pid>/cgroup`
/// shows the name in the group's directory, and the directory goes with the
/// group (a named cgroup is never pooled for reuse); under process groups
/// the name is only kept.
#[tokio::test]
async fn a_named_group_is_named_where_the_os_shows_it() {
    let suite = begin("a_named_group_is_named_where_the_os_shows_it").await;
    for choice in mechanisms() {
        let group = Group::builder()
            .mechanism(choice)
            .name("web_1.x-y")
            .build()
            .expect("a named group");
        assert_eq!(group.name(), Some("web_1.x-y"));
        let mut p = group
            .start(&Command::new("sleep").arg("300"))
            .expect("start");
        let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", p.pid())).expect("cgroup");
        let v2 = cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or("");
        let mine = common::name_prefix(std::process::id());
        let named = v2
            .split('/')
            .any(|c| c.starts_with(&mine) && c.ends_with("-web_1.x-y"));
        let dir = cgroup_dir(&group);
        match choice {
            MechanismChoice::Cgroup => {
                assert!(named, "{choice}: {cgroup:?}");
                let dir = dir.as_ref().expect("a cgroup dir");
                let last = dir.file_name().unwrap().to_string_lossy().into_owned();
                assert!(last.ends_with("-web_1.x-y"), "{}", dir.display());
            }
            _ => assert!(!cgroup.contains("web_1.x-y"), "{choice}: {cgroup:?}"),
        }
        group.close().await.expect("close");
        p.wait().await.expect("wait");
        if let Some(dir) = dir {
            // Not kept as a spare: a later unnamed group must not carry it.
            assert_dir_gone(&dir).await;
        }
    }
    suite.end().await;
}

#[tokio::test]
async fn a_bad_group_name_is_refused_without_echoing_it() {
    let suite = begin("a_bad_group_name_is_refused_without_echoing_it").await;
    let long = "n".repeat(65);
    for choice in mechanisms() {
        for bad in [
            "",
            ".",
            ".hid",
            "a/b",
            "a b",
            "caf\u{e9}",
            "nl\nx",
            long.as_str(),
        ] {
            let err = Group::builder()
                .mechanism(choice)
                .name(bad)
                .build()
                .expect_err("refused");
            assert_eq!(
                err.kind(),
                ErrorKind::InvalidInput,
                "{choice} {bad:?}: {err}"
            );
            if !bad.is_empty() && bad != "." {
                assert!(!err.to_string().contains(bad), "{err}");
            }
        }
        let ok = Group::builder()
            .mechanism(choice)
            .name(&"n".repeat(64))
            .build()
            .expect("64 characters are fine");
        ok.close().await.expect("close");
    }
    suite.end().await;
}

/// Drops CAP_KILL from this thread's effective set (threads it starts
/// afterwards inherit that; other threads keep theirs).
fn drop_cap_kill_here() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut h = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: a v3 header and two data structs, as capget and capset take.
    unsafe {
        assert_eq!(libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()), 0);
        d[0].effective &= !(1 << 5); // CAP_KILL
        assert_eq!(libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()), 0);
    }
}

/// A graceful shutdown whose SIGTERM a member refuses (`EPERM`: the owner,
/// root without CAP_KILL here, and a member of another user) still gives
/// the others their grace — the program's trap, which takes a second, runs
/// to its end — and the kill follows, the refusing member included. Before,
/// `shutdown` returned the refusal as an error at once: no grace, no kill
/// (the tree lived on until the group was dropped). cgroup v2 only: it
/// signals each member (a process group's killpg succeeds when any member
/// got the signal).
#[test]
fn a_shutdown_whose_signal_a_member_refuses_keeps_the_grace_and_kills() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !mechanisms().contains(&MechanismChoice::Cgroup) {
        skipped("a shutdown refused by a member", "needs root and cgroup v2");
        return;
    }
    // Its processes inside the suite: the other tests' checks that nothing
    // of ours is left would see them (CI failed so: a_named_group_... saw
    // this test's sleep and sh). On a thread of its own: it alone loses
    // CAP_KILL.
    in_suite(
        "a_shutdown_whose_signal_a_member_refuses_keeps_the_grace_and_kills",
        || {
            std::thread::spawn(|| {
                drop_cap_kill_here();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let mark = TempPath::new("trap-ran");
                    let g = group(MechanismChoice::Cgroup);
                    let other = g
                        .start(&Command::new("sleep").arg("300").uid(65534).gid(65534))
                        .unwrap();
                    let script = format!(
                "trap 'sleep 1; echo done > {}' TERM; echo ready; while :; do sleep 0.1; done",
                mark.as_str()
            );
                    let mut sh = g
                        .start(&Command::new("sh").args(["-c", &script]).stream_lines())
                        .unwrap();
                    sh.wait_for_line(|l| l.text == "ready", Duration::from_secs(30))
                        .await
                        .unwrap();
                    // Waited out whole (the other user's `sleep` refuses
                    // the TERM, and the shell's loop goes on after its
                    // trap): 5 s, five times the trap's second (it was 10
                    // s; the CLI's case in signals.rs has 5 s too).
                    let report = g
                        .shutdown(Duration::from_secs(5))
                        .await
                        .expect("a refused signal is no error");
                    let trap = std::fs::read_to_string(mark.path()).unwrap_or_default();
                    assert_eq!(trap, "done\n", "the trap had its grace: {report:?}");
                    assert!(report.killed() >= 2, "the two at least: {report:?}");
                    let deadline = std::time::Instant::now() + Duration::from_secs(30);
                    while !(pid_gone(other.pid()) && pid_gone(sh.pid())) {
                        assert!(std::time::Instant::now() < deadline, "left alive");
                        std::thread::sleep(Duration::from_millis(20));
                    }
                });
            })
            .join()
            .unwrap();
        },
    );
}

/// A dropped group kills its processes all at once: a chain of `cat`s the
/// group started, joined by FIFOs, each shows the SIGKILL. Before, the drop
/// sent the started processes their SIGKILL one by one, in start order,
/// before the cgroup's kill: a `cat` whose upstream had died read end of
/// file and exited 0 first (the class of CI's started_pipe failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_group_kills_a_chain_of_its_processes_at_once() {
    let suite = begin("a_dropped_group_kills_a_chain_of_its_processes_at_once").await;
    const CATS: usize = 7;
    for choice in mechanisms() {
        for round in 0..10 {
            let dir = TempPath::new("fifo-chain");
            std::fs::create_dir(dir.path()).expect("a directory");
            let fifos: Vec<String> = (0..=CATS)
                .map(|i| format!("{}/f{i}", dir.as_str()))
                .collect();
            let made = std::process::Command::new("mkfifo").args(&fifos).status();
            assert!(made.expect("mkfifo").success());
            let group = group(choice);
            let mut scripts = vec![format!("exec sleep 300 > {}", fifos[0])];
            scripts
                .extend((1..=CATS).map(|i| format!("exec cat < {} > {}", fifos[i - 1], fifos[i])));
            scripts.push(format!("exec cat < {}", fifos[CATS]));
            let mut procs: Vec<_> = scripts
                .iter()
                .map(|s| {
                    group
                        .start(&Command::new("sh").args(["-c", s]))
                        .expect("start")
                })
                .collect();
            let pids: Vec<u32> = procs.iter().map(|p| p.pid()).collect();
            // Every FIFO opened at both ends: each has exec'd its program.
            let deadline = std::time::Instant::now() + DEADLINE;
            for &pid in &pids {
                loop {
                    let comm =
                        std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                    if comm == "cat\n" || comm == "sleep\n" {
                        break;
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{choice}: {pid} is {comm:?}"
                    );
                    tokio::time::sleep(POLL).await;
                }
            }
            drop(group);
            let mut outcomes = Vec::new();
            for p in &mut procs {
                let out = tokio::time::timeout(DEADLINE, p.wait())
                    .await
                    .expect("ends");
                outcomes.push(out.expect("wait").outcome());
            }
            assert_eq!(
                outcomes,
                [Outcome::Signalled(9); CATS + 2],
                "{choice}, round {round}"
            );
            assert_gone(&pids, "the dropped group's chain").await;
        }
    }
    suite.end().await;
}
