//! Where users deploy pkit: the cases `.ci/deploy` sets up (as root) and
//! then runs this binary in, each named by `PKIT_DEPLOY_CASE`:
//!
//! - `no-cgroup`: an unprivileged user with no writable cgroup;
//! - `delegated`: an unprivileged user in a cgroup v2 subtree delegated to
//!   it (chowned, as systemd's `Delegate=yes` gives), `PKIT_DEPLOY_DIR`;
//! - `container`: a new cgroup and mount namespace with cgroup2 mounted
//!   inside, the owner at its root (a container with a private cgroup
//!   namespace);
//! - `userns-container`: the same as an unprivileged user mapped to root
//!   in a user namespace of its own (a rootless container);
//! - `low-pids`: the owner in a v1 pids cgroup with a low `pids.max`;
//! - `low-nofile`: a low `ulimit -n`.
//!
//! Without `PKIT_DEPLOY_CASE` the test does nothing (a plain `cargo test`
//! passes it). See docs/deploy.md.

mod common;

use common::*;
use pkit::{Command, ErrorKind, Group, Mechanism, MechanismChoice};

/// The effective uid, from `/proc/self/status`.
fn euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("an effective uid")
}

/// Starts a tree (a shell with two background sleeps) in `g`, drops the
/// group, and asserts the whole tree is gone (and, for a cgroup, its
/// directory).
async fn contained(g: Group, what: &str) {
    let file = TempPath::new("deploy-tree");
    let mut p = g
        .start(&Command::new("sh").args(["-c", TREE_TO_FILE, "sh", file.as_str()]))
        .unwrap_or_else(|e| panic!("{what}: start: {e}"));
    let pids = file.wait_pids().await;
    assert_alive(&pids, what);
    let dir = cgroup_dir(&g);
    if let Some(dir) = &dir {
        let listed = cgroup_procs(dir);
        for pid in &pids {
            assert!(
                listed.contains(pid),
                "{what}: {pid} is not in {}",
                dir.display()
            );
        }
    }
    drop(g);
    assert_gone(&pids, &format!("{what}: after the drop")).await;
    let _ = p.wait().await;
    if let Some(dir) = dir {
        assert_dir_gone(&dir).await;
    }
}

/// Starts `sleep`s in a group until a start is refused; returns how many
/// ran. The refusal must be typed and name no argument.
async fn starts_until_refused(choice: MechanismChoice, limit: usize, what: &str) -> usize {
    let g = group(choice);
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..limit {
        // `sleep 300 SECRET-ARG` exits at once (a bad interval); the Linux
        // backends still run out, as each start holds a pidfd until the
        // handle is dropped. The portable one holds none, so there the
        // sleep must live (its output pipe is then what is held), with the
        // argument to keep out of the error as the shell's `$0`.
        let cmd = match choice {
            MechanismChoice::Portable => {
                Command::new("sh").args(["-c", "exec sleep 300", "SECRET-ARG"])
            }
            _ => Command::new("sleep").args(["300", "SECRET-ARG"]),
        };
        match g.start(&cmd.stream_lines()) {
            Ok(p) => held.push(p),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.unwrap_or_else(|| panic!("{what}: {limit} starts all succeeded"));
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Spawn | ErrorKind::ResourceLimit | ErrorKind::Io
        ),
        "{what}: {e}"
    );
    assert!(!e.to_string().contains("SECRET-ARG"), "{what}: {e}");
    eprintln!("{what}: refused after {} starts: {e}", held.len());
    let n = held.len();
    drop(held);
    drop(g);
    assert_nothing_left(what).await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_case() {
    let Ok(case) = std::env::var("PKIT_DEPLOY_CASE") else {
        return;
    };
    // Alone: `starts_until_refused` checks that nothing of this process
    // is left, mid-test.
    let alone = begin_exclusive().await;
    let hc = pkit::host_containment();
    eprintln!(
        "{case}: uid {}, mechanism {:?} ({}), owner cgroup {:?}, group parent {:?}",
        euid(),
        hc.mechanism,
        hc.reason,
        hc.owner_cgroup,
        hc.group_parent
    );
    match case.as_str() {
        "no-cgroup" => {
            assert_ne!(euid(), 0, "run as an unprivileged user");
            // Reported, never silent: the host report, the group, the
            // output; and a forced cgroup is a typed error with the reason.
            assert!(!hc.cgroup_writable, "{hc:?}");
            assert_eq!(hc.mechanism, Some(Mechanism::ProcessGroup), "{hc:?}");
            assert!(hc.reason.contains("cgroup"), "the reason: {}", hc.reason);
            let g = Group::new().unwrap();
            assert_eq!(g.mechanism(), Mechanism::ProcessGroup);
            assert!(
                g.description().contains("fallback") || g.description().contains("cgroup"),
                "the group says why: {}",
                g.description()
            );
            let out = Command::new("echo").arg("ok").output().await.unwrap();
            assert_eq!(out.mechanism(), Mechanism::ProcessGroup);
            assert_eq!(out.stdout_str(), "ok\n");
            let e = Group::builder()
                .mechanism(MechanismChoice::Cgroup)
                .build()
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::MechanismUnavailable, "{e}");
            eprintln!("forced cgroup: {e}");
            contained(g, "no-cgroup: process group").await;
            let g = group(MechanismChoice::Portable);
            contained(g, "no-cgroup: portable backend").await;
        }
        "delegated" => {
            assert_ne!(euid(), 0, "run as an unprivileged user");
            let dir = std::env::var("PKIT_DEPLOY_DIR").expect("PKIT_DEPLOY_DIR");
            // The delegated subtree is found and used: the cgroup
            // mechanism, not the fallback.
            assert!(hc.cgroup_writable, "{hc:?}");
            assert_eq!(hc.mechanism, Some(Mechanism::CgroupV2), "{hc:?}");
            let parent = hc.group_parent.clone().expect("a group parent");
            assert!(
                parent.ends_with(dir.trim_start_matches("/sys/fs/cgroup/unified/")),
                "groups go under the delegated {dir}, not {}",
                parent.display()
            );
            let g = Group::new().unwrap();
            assert_eq!(g.mechanism(), Mechanism::CgroupV2, "{}", g.description());
            contained(g, "delegated: cgroup").await;
            let out = Command::new("echo").arg("ok").output().await.unwrap();
            assert_eq!(out.mechanism(), Mechanism::CgroupV2);
            // Caps need a controller the delegated subtree doesn't have
            // (none on this host's v2): refused, with the reason.
            match Group::builder().memory_max(64 << 20).build() {
                Ok(g) => eprintln!("delegated: memory cap: {:?}", g.limits()),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::ResourceLimit, "{e}");
                    eprintln!("delegated: memory cap refused: {e}");
                }
            }
        }
        "container" | "userns-container" => {
            // The owner sees itself at the root of its cgroup namespace.
            assert_eq!(
                hc.owner_cgroup.as_deref(),
                Some(std::path::Path::new("/")),
                "{hc:?}"
            );
            assert_eq!(hc.mechanism, Some(Mechanism::CgroupV2), "{hc:?}");
            let g = Group::new().unwrap();
            assert_eq!(g.mechanism(), Mechanism::CgroupV2, "{}", g.description());
            contained(g, "container: cgroup").await;
            let g = group(MechanismChoice::ProcessGroup);
            contained(g, "container: process group").await;
            let g = group(MechanismChoice::Portable);
            contained(g, "container: portable backend").await;
        }
        "low-pids" => {
            for choice in mechanisms() {
                let what = format!("{choice}: low pids.max");
                starts_until_refused(choice, 500, &what).await;
                // Usable again once the processes are gone.
                let out = sh(choice, "echo ok").output().await.unwrap();
                assert_eq!(out.stdout_str(), "ok\n", "{what}");
            }
        }
        "low-nofile" => {
            for choice in mechanisms() {
                let what = format!("{choice}: low ulimit -n");
                starts_until_refused(choice, 500, &what).await;
                let out = sh(choice, "echo ok").output().await.unwrap();
                assert_eq!(out.stdout_str(), "ok\n", "{what}");
            }
        }
        other => panic!("unknown PKIT_DEPLOY_CASE {other}"),
    }
    end_exclusive(alone, &case).await;
    println!("DEPLOY-CASE-OK {case}");
}
