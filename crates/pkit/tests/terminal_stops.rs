//! A terminal's stop signals to the owner's process group while plain
//! starts are under way: an owner that catches SIGTSTP, SIGTTIN and
//! SIGTTOU (a REPL, say) goes on after a `^Z`, and so must its starts.
//! CI runs it again with `PKIT_CLONE3=off`, where the cgroup mechanism's
//! plain starts take the second rung (a vfork-style `clone` without
//! `clone3`, the child joining its cgroup before exec): the owner checks
//! that placement there.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pkit::{Group, MechanismChoice};

/// Set in the owner's re-run: the mechanism it starts with.
const OWNER: &str = "PKIT_TEST_TSTP_OWNER";

/// Groups each owner makes, each with two starts.
const GROUPS: usize = 150;

/// Every child started here is in the owner's process group from its clone
/// until it joins its own (under process groups) or until it execs (a
/// plain start under cgroup v2, which never leaves it), with every signal
/// blocked while pkit sets it up. A stop signal to that group meanwhile
/// was pending at the unmask before `execve`, with its default action
/// (the owner's handler is not the child's): the child stopped before its
/// exec, and the owner's thread, waiting for that exec, with it, for ever.
/// Each owner starts [`GROUPS`] groups' first process (a new process
/// group's leader, under process groups) and a later one (a member of
/// it) while this test floods its group with SIGTSTP, SIGTTIN and
/// SIGTTOU: every start completes and every child exits with its own code.
#[tokio::test]
async fn stops_to_the_owners_group_never_stall_a_plain_start() {
    const NAME: &str = "stops_to_the_owners_group_never_stall_a_plain_start";
    if let Ok(choice) = std::env::var(OWNER) {
        let choice = MechanismChoice::parse(&choice).expect("a mechanism");
        owner(choice).await;
        return;
    }
    let suite = begin(NAME).await;
    for choice in mechanisms() {
        for round in 0..3 {
            let mut owner = std::process::Command::new(std::env::current_exe().expect("own path"));
            owner
                .args(["--exact", NAME, "--nocapture"])
                .env(OWNER, choice.as_str())
                .stdin(std::process::Stdio::null());
            let ready = |line: &str| line.starts_with("owner: ready");
            let what = format!("{choice}, owner {round}: the owner's starts");
            // Quiet 10 ms between bursts: a plain start's program under cgroup v2
            // runs in the owner's group, stopped by every burst; the owner
            // resumes it (`finish`), and it needs a pause to run on.
            let quiet = Duration::from_millis(10);
            let (status, rest) = owner_under_stops(&what, owner, ready, 12 * DEADLINE, quiet);
            assert!(status.success(), "{what}: {status:?}: {rest}");
            assert!(rest.contains("owner: done"), "{what}: {rest}");
        }
    }
    suite.end().await;
}

/// The owner: catches the stop signals, starts its guard before the storm
/// (the guard's own start under stops is `tests/guard.rs`'s), says it is
/// ready, then makes [`GROUPS`] groups of two starts each.
async fn owner(choice: MechanismChoice) {
    use tokio::signal::unix::{signal, SignalKind};
    let _handlers: Vec<_> = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU]
        .into_iter()
        .map(|s| signal(SignalKind::from_raw(s)).expect("a handler"))
        .collect();
    let out = sh(choice, "true")
        .output()
        .await
        .expect("the guard's start");
    assert!(out.success(), "{choice}: {out:?}");
    println!("owner: ready");
    // Under the portable backend, each start goes through the trampoline
    // (where the C library's `posix_spawn` child runs code of its own
    // before the exec, glibc's and FreeBSD's), which holds the stop
    // signals blocked through that exec and discards them.
    let starts: &[(usize, i32)] = &[(0, 3), (1, 4)];
    for i in 0..GROUPS {
        let g = Group::builder().mechanism(choice).build().expect("group");
        if choice == MechanismChoice::Cgroup && std::env::var("PKIT_CLONE3").as_deref() == Ok("off")
        {
            // CI's PKIT_CLONE3=off run: the second rung's vfork-style
            // clone, without clone3, is the one under the stops here.
            assert!(
                matches!(g.placement(), pkit::Placement::JoinBeforeExec { .. }),
                "{:?}",
                g.placement()
            );
        }
        for &(n, code) in starts {
            let cmd = pkit::Command::new("sh").args(["-c", &format!("exit {code}")]);
            let mut p = g
                .start(&cmd)
                .unwrap_or_else(|e| panic!("{choice}: group {i}, start {n}: {e}"));
            let end = finish(&mut p).await;
            assert_eq!(end.code(), Some(code), "{choice}: group {i}, start {n}");
        }
        g.close().await.expect("close");
        println!("owner: group {i}");
    }
    println!("owner: done");
}

/// Waits for `p`, which ran its program: one in the owner's process group
/// (a plain start under cgroup v2) is stopped by the storm as the whole
/// job is, and resumed here (as a shell's `fg` would) until it ends.
async fn finish(p: &mut pkit::RunningProcess) -> pkit::Output {
    use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};
    let pid = Pid::from_raw(p.pid() as i32).expect("a pid");
    // Our own child, not reaped before its wait returns: the pidfd is its.
    let pidfd = pidfd_open(pid, PidfdFlags::empty()).expect("pidfd_open");
    let deadline = Instant::now() + DEADLINE;
    let wait = p.wait();
    tokio::pin!(wait);
    loop {
        tokio::select! {
            end = &mut wait => return end.expect("wait"),
            _ = tokio::time::sleep(Duration::from_millis(5)) => {
                assert!(Instant::now() < deadline, "pid {pid:?} never ended");
                let _ = pidfd_send_signal(&pidfd, Signal::CONT);
            }
        }
    }
}

/// A `pre_exec` hook runs with the terminal's stop signals at their
/// default action, as under `std::process::Command::pre_exec`: the no-op
/// handler that keeps a stop from catching a start before its exec is put
/// back to the default around the hooks (and again after them). With the
/// handler in place, a hook that touched the terminal from a background
/// process group got SIGTTOU, had its call restarted, and looped for ever,
/// sending SIGTTOU to the whole process group each time. The hook here
/// fails the start unless it sees all three at their default.
#[tokio::test]
async fn pre_exec_hooks_see_the_stop_signals_at_their_default() {
    let suite = begin("pre_exec_hooks_see_the_stop_signals_at_their_default").await;
    for choice in mechanisms() {
        if skip_on_portable(choice, "the portable backend runs no pre_exec hook") {
            continue;
        }
        let g = Group::builder().mechanism(choice).build().expect("group");
        // SAFETY: sigaction is async-signal-safe; the hook allocates
        // nothing on its success path.
        let cmd = unsafe {
            pkit::Command::new("sh")
                .args(["-c", "exit 7"])
                .pre_exec(|| {
                    for sig in [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
                        let mut old: libc::sigaction = std::mem::zeroed();
                        if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                            || old.sa_sigaction != libc::SIG_DFL
                        {
                            return Err(std::io::Error::from_raw_os_error(libc::ENOTSUP));
                        }
                    }
                    Ok(())
                })
        };
        let mut p = g
            .start(&cmd)
            .unwrap_or_else(|e| panic!("{choice}: a hook saw a stop signal caught: {e}"));
        let out = finish(&mut p).await;
        assert_eq!(out.code(), Some(7), "{choice}: {out:?}");
        drop(p);
        g.close().await.expect("close");
    }
    suite.end().await;
}

/// Set in the re-run that ignores the stop signals: the mechanism it
/// starts with.
const IGNORING: &str = "PKIT_TEST_STOPS_IGNORED";

/// An owner that ignores the terminal's stop signals starts programs that
/// ignore them too, as `std::process::Command` does (an ignore survives
/// `execve`): the child's catch of them until its exec puts an ignore back.
/// (perf38: the catch sets its handler and reads the old disposition in
/// one call; without the put-back, the program starts with all three at
/// their default.) Run in a re-run of this binary, as an ignore is
/// inherited by every child of the process that sets it.
#[tokio::test]
async fn an_owner_that_ignores_the_stop_signals_starts_programs_that_ignore_them() {
    const NAME: &str = "an_owner_that_ignores_the_stop_signals_starts_programs_that_ignore_them";
    if let Ok(choice) = std::env::var(IGNORING) {
        let choice = MechanismChoice::parse(&choice).expect("a mechanism");
        for sig in [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
            // SAFETY: test-only, in a process of its own that runs this
            // test alone; SIG_IGN needs no handler.
            unsafe { libc::signal(sig, libc::SIG_IGN) };
        }
        let status = cmd(choice, "cat")
            .arg("/proc/self/status")
            .run()
            .await
            .expect("cat");
        let ignored = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .expect("SigIgn");
        // SIGTSTP, SIGTTIN, SIGTTOU: 20, 21, 22.
        println!("stops ignored: {}", (ignored >> 19) & 0b111);
        return;
    }
    let suite = begin(NAME).await;
    for choice in mechanisms() {
        let out = std::process::Command::new(std::env::current_exe().expect("own path"))
            .args(["--exact", NAME, "--nocapture"])
            .env(IGNORING, choice.as_str())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("the re-run");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{choice}: {:?}: {text}", out.status);
        assert!(
            text.contains("stops ignored: 7"),
            "{choice}: the program's ignored stop signals: {text}"
        );
    }
    suite.end().await;
}
