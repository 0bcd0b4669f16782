//! Graceful shutdown of a tree: `Group::shutdown` (SIGTERM to every
//! process, a grace for them to exit, then the container removed), in each
//! of pkit's mechanisms. The tree is a shell with 50 sleeping children, all
//! of which exit on SIGTERM: the time is the shutdown call's, and a process
//! left alive after it counts as a survivor.

use std::time::{Duration, Instant};

use crate::scenarios::{settle, TREE};
use crate::stats::Scenario;
use crate::Sample;

pub async fn pkit_shutdown(mechanism: pkit::MechanismChoice) -> Sample {
    let group = pkit::Group::builder().mechanism(mechanism).build().unwrap();
    let mut p = group
        .start(&pkit::Command::new("sh").args(["-c", TREE]).stream_lines())
        .unwrap();
    let mut lines = p.lines();
    let mut pids = Vec::new();
    while let Some(l) = lines.next_line().await {
        if l.text == "ready" {
            break;
        }
        pids.push(l.text.trim().parse().unwrap());
    }
    pids.push(p.pid());
    let t = Instant::now();
    let report = group.shutdown(Duration::from_secs(5)).await.unwrap();
    let time = t.elapsed();
    assert_eq!(report.killed(), 0, "{report:?}");
    // Survivors only (the time is the shutdown call's).
    let survivors = settle(&pids, Instant::now()).await.survivors;
    drop(p);
    Sample { time, survivors }
}

pub fn scenario() -> Scenario {
    Scenario::new("graceful shutdown: a shell with 50 sleeping children (SIGTERM, 5 s grace)")
        .with("pkit, cgroup", || async {
            pkit_shutdown(pkit::MechanismChoice::Cgroup).await
        })
        .with("pkit, process group", || async {
            pkit_shutdown(pkit::MechanismChoice::ProcessGroup).await
        })
}
