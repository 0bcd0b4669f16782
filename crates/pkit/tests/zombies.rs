//! Zombies a group keeps: under the process-group mechanism only the
//! group's first process (the leader, whose pid is the group id), and only
//! while the group lives (documented on `Mechanism::ProcessGroup` and in
//! `sys/unix/pgroup.rs`); under the cgroup mechanism none.

mod common;

use common::*;
use pkit::{Command, MechanismChoice};

/// Our children that are zombies, by pid.
fn own_zombies() -> Vec<u32> {
    own_children()
        .into_iter()
        .filter(|(_, s)| s.is_some_and(|s| s.state == 'Z'))
        .map(|(p, _)| p)
        .collect()
}

/// Issue 11, item 10 (last clause): the bound. Twenty processes started,
/// waited for and dropped in a live group leave at most the leader's
/// zombie (none under cgroup), and the group's end reaps that too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_group_keeps_at_most_its_leader_as_a_zombie() {
    let alone = begin_exclusive().await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut first = group.start(&Command::new("true")).expect("start");
        let leader = first.pid();
        first.wait().await.expect("wait");
        drop(first);
        for _ in 0..20 {
            let mut p = group.start(&Command::new("true")).expect("start");
            p.wait().await.expect("wait");
        }
        let live = group
            .start(&Command::new("sleep").arg("300"))
            .expect("start");
        let zombies = own_zombies();
        match choice {
            MechanismChoice::ProcessGroup => {
                assert_eq!(zombies, vec![leader], "{choice}: only the leader")
            }
            _ => assert!(zombies.is_empty(), "{choice}: {zombies:?}"),
        }
        let sleeper = live.pid();
        group.close().await.expect("close");
        drop(live);
        assert_gone(&[sleeper], &format!("{choice}: the live member")).await;
        assert!(
            !own_zombies().contains(&leader),
            "{choice}: the leader is reaped when the group ends"
        );
    }
    end_exclusive(alone, "zombies").await;
}
