//! A group's states and their edges: killed, signalled, suspended, closing;
//! what each leaves usable, and that none blocks or leaks. In both
//! mechanisms.

mod common;

use common::*;
use pkit::{Command, Signal};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_kill_leaves_the_group_usable_as_kill_does() {
    let suite = begin("signal_kill_leaves_the_group_usable_as_kill_does").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut first = group.start(&Command::new("sleep").arg("300")).unwrap();
        group.signal(Signal::Kill).unwrap();
        let out = first.wait().await.unwrap();
        assert_eq!(out.signal(), Some(9), "{choice}: {:?}", out.outcome());
        // A later start must live: on some kernels a cgroup once written
        // `cgroup.kill` SIGKILLs every child placed into it at birth.
        let mut next = group
            .start(&Command::new("sh").args(["-c", "echo alive"]))
            .unwrap();
        let out = next.wait().await.unwrap();
        assert!(out.success(), "{choice}: {:?}", out.outcome());
        assert_eq!(out.stdout_str(), "alive\n", "{choice}");
        drop((first, next));
        group.close().await.unwrap();
    }
    suite.end().await;
}
