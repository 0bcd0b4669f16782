//! 2,000 spawns per mechanism from 8 concurrent tasks leak no fd, zombie or cgroup
//! directory (its own test binary, so the fd count is this test's alone).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pkit::{Command, SystemRunner};

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Our children that are zombies (an unreaped exit).
fn zombie_children() -> Vec<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let f: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            f.first() == Some(&"Z") && f.get(1) == Some(&me.as_str())
        })
        .collect()
}

fn our_cgroups() -> usize {
    // Emptied directories kept for reuse are not leaks; drop them first.
    pkit::release_spare_cgroups();
    let Some(parent) = pkit::host_containment().group_parent else {
        return 0;
    };
    let prefix = common::name_prefix(std::process::id());
    std::fs::read_dir(parent)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_spawns_leak_nothing() {
    // Alone in its binary: the fds, zombies and cgroup directories it
    // counts are this process's own.
    let alone = common::begin_alone_in_binary().await;
    // Warm up lazily opened process-wide fds (/dev/null, the reaper).
    for m in common::mechanisms() {
        Command::new("true")
            .runner(Arc::new(SystemRunner::with_mechanism(m)))
            .output()
            .await
            .unwrap();
    }
    let before = fd_count();
    for m in common::mechanisms() {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            tasks.spawn(async move {
                let cmd = Command::new("true").runner(Arc::new(SystemRunner::with_mechanism(m)));
                for _ in 0..250 {
                    assert!(cmd.output().await.unwrap().success());
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (fds, zombies, dirs) = (fd_count(), zombie_children(), our_cgroups());
        if fds <= before && zombies.is_empty() && dirs == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fds {before} -> {fds}, zombies {zombies:?}, cgroup dirs {dirs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    common::end_exclusive(alone, "two_thousand_spawns_leak_nothing").await;
}
