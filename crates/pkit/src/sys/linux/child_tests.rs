//! The reap when the exit is seen (`PidfdChild::reap_when_seen`).

use std::sync::Arc;

use super::PidfdChild;
use crate::sys::{ChildHandle, ExitStatus};

/// A child of this process, `sh -c 'exit 3'`, held by its pidfd.
fn exits_with_3() -> PidfdChild {
    let child = std::process::Command::new("sh")
        .args(["-c", "exit 3"])
        .spawn()
        .expect("spawn sh");
    let raw = rustix::process::Pid::from_raw(child.id() as i32).expect("a pid");
    let fd =
        rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()).expect("pidfd_open");
    // std does not wait on drop: the pidfd's holder reaps it.
    drop(child);
    PidfdChild::new(raw.as_raw_nonzero().get(), fd)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

#[test]
fn a_wait_that_sees_the_exit_reaps_it_when_asked_keeping_status_and_usage() {
    let child = exits_with_3();
    child.reap_when_seen();
    let status = runtime().block_on(child.wait()).expect("the wait");
    assert_eq!(status, ExitStatus::Exited(3));
    assert!(child.reaped(), "the wait left its child unreaped");
    // Exact, whatever its number names now: its pidfd has no child to wait for.
    assert!(child.reaped_by_kernel(), "the child is still a zombie");
    assert_eq!(child.try_status().expect("a status"), Some(status));
    assert!(child.rusage().is_some(), "the reap lost the resource usage");
    assert!(child.reap_if_exited());
}

#[test]
fn a_wait_not_asked_to_reap_leaves_the_zombie() {
    let child = exits_with_3();
    let status = runtime().block_on(child.wait()).expect("the wait");
    assert_eq!(status, ExitStatus::Exited(3));
    assert!(!child.reaped());
    assert!(
        !child.reaped_by_kernel(),
        "a process group leader's number must stay its own"
    );
    assert!(child.reap_if_exited());
    assert!(child.reaped_by_kernel());
}

#[test]
fn a_kept_wait_hands_the_exit_on_first_and_reaps_when_its_watch_is_dropped() {
    let handle = Arc::new(ChildHandle::Pidfd(exits_with_3()));
    handle.reap_when_seen();
    let ChildHandle::Pidfd(child) = &*handle else {
        unreachable!()
    };
    let rt = runtime();
    let (status, kept) = rt.block_on(ChildHandle::wait_keeping(handle.clone()));
    assert_eq!(status.expect("the wait"), ExitStatus::Exited(3));
    let kept = kept.expect("the registration kept");
    assert!(!child.reaped(), "reaped before the exit was handed on");
    {
        let _inside = rt.enter();
        drop(kept);
    }
    assert!(child.reaped(), "the kept watch's drop did not reap");
    assert!(child.reaped_by_kernel(), "the child is still a zombie");
    assert!(child.rusage().is_some(), "the reap lost the resource usage");
}
