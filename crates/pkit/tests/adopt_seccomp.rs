#![cfg(target_os = "linux")]
//! fix53 (rv51): `Group::adopt` asks the kernel whether an id is one of
//! this process's threads with `tgkill(getpid(), tid, 0)`. A sandbox
//! whose seccomp filter (or LSM) refuses `tgkill` with `EPERM` made every
//! id "not ours": the id of one of this process's threads was adopted,
//! and under cgroup v2 the group's end killed its owner. Now only `ESRCH`
//! and `EINVAL` mean "not ours"; on any other answer `/proc/self/task`
//! answers where it is this process's, and where it is not the adoption
//! is refused. The filter is process state, so each case runs in a fresh
//! copy of this test binary, once per mechanism.

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, ErrorKind, MechanismChoice};

const ROLE: &str = "FIX53_ROLE";

/// Makes `tgkill` fail with `EPERM` in every thread of this (fresh)
/// process, and checks that it does.
fn refuse_tgkill_with_eperm() {
    // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }
    #[repr(C)]
    struct Insn(u16, u8, u8, u32);
    #[repr(C)]
    struct Prog(u16, *const Insn);
    const LOAD_NR: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS, offset 0: the syscall number
    const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
    const SET_MODE_FILTER: libc::c_long = 1; // SECCOMP_SET_MODE_FILTER
    const TSYNC: libc::c_long = 1; // SECCOMP_FILTER_FLAG_TSYNC
    let prog = [
        Insn(LOAD_NR, 0, 0, 0),
        Insn(JEQ, 0, 1, libc::SYS_tgkill as u32),
        Insn(RET, 0, 0, 0x0005_0000 | libc::EPERM as u32), // SECCOMP_RET_ERRNO
        Insn(RET, 0, 0, 0x7fff_0000),                      // SECCOMP_RET_ALLOW
    ];
    let fprog = Prog(prog.len() as u16, prog.as_ptr());
    // SAFETY: a valid filter program that outlives the call; it affects
    // only this (fresh) test process, all of whose threads it covers
    // (TSYNC), and the processes it starts.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let rc = libc::syscall(
            libc::SYS_seccomp,
            SET_MODE_FILTER,
            TSYNC,
            &fprog as *const Prog,
        );
        assert_eq!(rc, 0, "seccomp: {}", std::io::Error::last_os_error());
    }
    // SAFETY: ids by value; signal 0 only checks.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::syscall(libc::SYS_gettid),
            0,
        )
    };
    let errno = std::io::Error::last_os_error().raw_os_error();
    assert!(
        rc == -1 && errno == Some(libc::EPERM),
        "tgkill not refused: {rc} {errno:?}"
    );
}

/// The helper: with `tgkill` refused, a group of mechanism `role` with a
/// running member is asked to adopt the id of a thread of this process,
/// and this process's pid: both refused (`InvalidInput`). Where `/proc`
/// lists this process's threads (`listed`), a process that is not this
/// one is still taken or refused as before (not `InvalidInput`); where
/// it does not, it is refused too (whether it is ours cannot be told).
/// The group is dropped, its member must end, and this process must live
/// on to say so.
fn helper(role: &str, listed: bool) {
    let choice = match role {
        "cgroup" => MechanismChoice::Cgroup,
        "pgroup" => MechanismChoice::ProcessGroup,
        _ => MechanismChoice::Portable,
    };
    refuse_tgkill_with_eperm();
    let (tx, rx) = std::sync::mpsc::channel();
    let (_hold, wait) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // SAFETY: gettid takes nothing and cannot fail.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        tx.send(u32::try_from(tid).expect("a thread id"))
            .expect("send");
        let _ = wait.recv();
    });
    let tid = rx.recv().expect("the thread's id");
    assert_ne!(tid, std::process::id());
    let g = pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice)).expect("group");
    let p = g.start(&Command::new("sleep").arg("300")).expect("start");
    for pid in [tid, std::process::id()] {
        let err = g.adopt(pid).expect_err("adopting this process");
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidInput,
            "{choice}: {pid}: {err}"
        );
        copies::say("f53", &format!("{pid}: {err}"));
    }
    let mut other = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("another process");
    let adopted = g.adopt(other.id());
    copies::say("f53", &format!("other {}: {adopted:?}", other.id()));
    match (&adopted, listed) {
        (Err(e), true) => assert_ne!(e.kind(), ErrorKind::InvalidInput, "{choice}: {e}"),
        (Err(e), false) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{choice}: {e}"),
        (Ok(()), true) => {}
        (Ok(()), false) => panic!("{choice}: adopted where it could not be told"),
    }
    let member = p.pid();
    drop(p);
    drop(g);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !pid_gone(member) {
        assert!(
            std::time::Instant::now() < deadline,
            "{choice}: the member {member} outlived its dropped group"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = other.kill();
    other.wait().expect("reap the other process");
    drop(_hold);
    thread.join().expect("thread");
    copies::say("f53", "survived");
}

/// Runs test `name` again as a helper under `wrap` in each mechanism:
/// each must end well, having said it survived.
fn in_helpers(name: &'static str, wrap: &[&str]) {
    in_suite(name, || {
        for choice in mechanisms() {
            let (status, text) = run_self_as(
                name,
                (ROLE, &choice.to_string()),
                wrap,
                Duration::from_secs(180),
            );
            assert!(
                status.is_some_and(|s| s.success()) && text.contains("f53: survived"),
                "{choice}: the helper whose tgkill was refused: {status:?} {text}"
            );
        }
    });
}

/// A seccomp filter that refuses `tgkill` with `EPERM`: adopting one of
/// this process's threads is refused (`/proc/self/task` answers), and the
/// group's end leaves its owner alive. Before fix53 the thread was adopted
/// (cgroup v2: the whole process moved, and the group's end killed it).
#[test]
fn a_group_refuses_its_threads_where_tgkill_is_refused() {
    let name = "a_group_refuses_its_threads_where_tgkill_is_refused";
    if let Ok(role) = std::env::var(ROLE) {
        helper(&role, true);
        return;
    }
    in_helpers(name, &[]);
}

/// As above, with `/proc/self/task` hidden too (an empty tmpfs over the
/// helper's `/proc/<pid>/task`, in a mount namespace of its own): neither
/// the kernel nor `/proc` can tell, so every adoption is refused.
#[test]
fn a_group_refuses_adoption_where_neither_tgkill_nor_proc_answers() {
    let name = "a_group_refuses_adoption_where_neither_tgkill_nor_proc_answers";
    if let Ok(role) = std::env::var(ROLE) {
        helper(&role, false);
        return;
    }
    // `exec` keeps the shell's pid: the helper's /proc/self/task is hidden.
    let script =
        r#"mount --make-rprivate / && mount -t tmpfs none /proc/$$/task && exec "$0" "$@""#;
    let wrap = ["unshare", "-m", "sh", "-c", script];
    let probe = std::process::Command::new(wrap[0])
        .args(&wrap[1..])
        .arg("true")
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skipped(
            name,
            "needs root and `unshare -m` with a tmpfs over /proc/<pid>/task",
        );
        return;
    }
    in_helpers(name, &wrap);
}
