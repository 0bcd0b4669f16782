//! A sandbox whose clone3 says EINVAL (the probe, which also gets EINVAL,
//! takes that as "clone3 exists"): every spawn falls to the second rung
//! instead of failing (review R9). The seccomp filter is process state, so
//! the case runs in a fresh copy of this test binary (`inner`).

mod common;

use std::sync::Arc;

use pkit::{Command, Group, MechanismChoice, Placement, SystemRunner};

#[test]
fn clone3_refused_with_einval_falls_to_the_second_rung() {
    if !common::cgroup_usable() {
        return;
    }
    let mut out = None;
    common::in_suite(
        "clone3_refused_with_einval_falls_to_the_second_rung",
        || {
            let run = std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args(["--exact", "inner", "--nocapture", "--test-threads=1"])
                .env("PKIT_CLONE3_EINVAL_TEST", "1")
                .env_remove("PKIT_CLONE3")
                .output()
                .expect("re-run the test binary");
            out = Some(run);
        },
    );
    let out = out.expect("the re-run");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("INNER-DONE"),
        "{}\n{text}",
        out.status
    );
}

/// Makes clone3 fail with EINVAL for this thread (and threads it creates).
fn deny_clone3_with_einval() {
    // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }
    #[repr(C)]
    struct Insn(u16, u8, u8, u32);
    #[repr(C)]
    struct Prog(u16, *const Insn);
    const LOAD_NR: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS, offset 0: the syscall number
    const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
    let prog = [
        Insn(LOAD_NR, 0, 0, 0),
        Insn(JEQ, 0, 1, libc::SYS_clone3 as u32),
        Insn(RET, 0, 0, 0x0005_0000 | libc::EINVAL as u32), // SECCOMP_RET_ERRNO
        Insn(RET, 0, 0, 0x7fff_0000),                       // SECCOMP_RET_ALLOW
    ];
    let fprog = Prog(prog.len() as u16, prog.as_ptr());
    // SAFETY: a valid filter program that outlives the call; it affects
    // only this (fresh) test process.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let rc = libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const Prog as libc::c_ulong,
            0,
            0,
        );
        assert_eq!(rc, 0, "seccomp: {}", std::io::Error::last_os_error());
    }
}

#[test]
fn inner() {
    if std::env::var_os("PKIT_CLONE3_EINVAL_TEST").is_none() {
        return;
    }
    // One thread: glibc creates threads with clone3 and falls back to clone
    // only on ENOSYS, so the filter goes on after every thread pkit needs
    // is running (a first run starts them).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let runner = Arc::new(SystemRunner::with_mechanism(MechanismChoice::Cgroup));
        let run = |c: Command| c.runner(runner.clone());
        let o = run(Command::new("true")).output().await.expect("warm-up");
        assert!(o.success());
        let g = Group::builder()
            .mechanism(MechanismChoice::Cgroup)
            .build()
            .unwrap();
        assert_eq!(g.placement(), Placement::Clone3IntoCgroup);
        drop(g);

        deny_clone3_with_einval();
        let text = run(Command::new("echo").arg("ok"))
            .run()
            .await
            .expect("the second rung runs it");
        assert_eq!(text, "ok");
        let g = Group::builder()
            .mechanism(MechanismChoice::Cgroup)
            .build()
            .unwrap();
        match g.placement() {
            Placement::JoinBeforeExec { reason } => {
                assert!(reason.contains("EINVAL"), "{reason}")
            }
            other => panic!("placement {other:?}"),
        }
        let mut p = g
            .start(&Command::new("sh").args(["-c", "cat /proc/self/cgroup"]))
            .expect("start");
        let o = p.wait().await.expect("wait");
        let dir = common::cgroup_dir(&g).expect("cgroup");
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            o.stdout_str()
                .lines()
                // The group's first started process lives in its directory.
                .any(|l| l.starts_with("0::") && l.ends_with(&format!("/{name}"))),
            "placed in its cgroup: {}",
            o.stdout_str()
        );
        drop(p);
        g.close().await.expect("close");
    });
    println!("INNER-DONE");
}
