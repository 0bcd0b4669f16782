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
            MechanismChoice::ProcessGroup | MechanismChoice::Portable => {
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

/// A process group whose first process has exited ends without leaving
/// it a zombie even while its `Process` handle lives on (close reaps the
/// exited leader, and asks the kernel, through its pidfd,
/// whether anything else is left instead of scanning `/proc`); the handle
/// still answers for it: its exit status, its CPU time and peak memory.
/// A member left behind by an exited leader is still ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_after_the_leader_exited_reaps_it_and_ends_what_it_left() {
    let alone = begin_exclusive().await;
    for choice in mechanisms() {
        // Alone in its group.
        let group = group(choice);
        let mut p = group
            .start(&Command::new("sh").args(["-c", "exit 3"]))
            .expect("start");
        let pid = p.pid();
        assert_eq!(p.wait().await.expect("wait").code(), Some(3));
        group.close().await.expect("close");
        if choice == MechanismChoice::ProcessGroup {
            assert!(
                !own_zombies().contains(&pid),
                "{choice}: the exited leader is reaped by close"
            );
        }
        assert_eq!(
            p.wait().await.expect("wait again").code(),
            Some(3),
            "{choice}"
        );
        // The portable backend keeps no usage at exit (documented:
        // waitid with WNOWAIT reports none off Linux).
        if choice != MechanismChoice::Portable {
            assert!(p.cpu_time().is_some(), "{choice}: cpu time kept");
            assert!(
                p.peak_memory_bytes().is_some_and(|b| b > 0),
                "{choice}: peak memory kept"
            );
        }
        drop(p);

        // Leaving a member behind: close must still end it.
        let group = self::group(choice);
        let mut p = group
            .start(
                &Command::new("sh")
                    .args(["-c", "sleep 300 & echo $!"])
                    .stream_lines(),
            )
            .expect("start");
        let member: u32 = p
            .lines()
            .next_line()
            .await
            .expect("the member's pid")
            .text
            .trim()
            .parse()
            .expect("a pid");
        p.wait().await.expect("wait");
        assert_alive(&[member], &format!("{choice}: the member before close"));
        group.close().await.expect("close");
        assert_gone(&[member], &format!("{choice}: the member left behind")).await;
        drop(p);
    }
    end_exclusive(alone, "zombies_close").await;
}
