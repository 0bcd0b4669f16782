//! The portable guard and a reused group number, with real processes: a
//! registered number that names a stranger when the owner dies (a process
//! of another start time) is spared, our own leader is killed; and, in a
//! pid namespace of our own, a number truly handed to a stranger after our
//! leader was reaped.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::owner::Guard;
use super::portable::start;
use super::portable_process::spares;
use super::start_time::birth;
use super::tests::{sleeper, wait_gone};
use super::wire::{Slot, OP_PGROUP};

/// This process's session, as the owner registers it.
fn own_session() -> i32 {
    // Raw: rustix's getsid panics on a 0 answer (see clippy.toml).
    // SAFETY: getsid(2) of this process has no preconditions.
    unsafe { libc::getsid(0) }
}

/// Closes the owner's end of guard `g` (to the guard, the owner died) and
/// waits until the guard is gone: it has acted.
fn owner_dies(g: Guard) {
    let pid = g.pid;
    drop(g);
    assert!(wait_gone(pid as u32), "the guard did not exit");
}

/// Whether `child` was SIGKILLed (waiting up to 10 s); kills it if not.
fn killed(child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.signal() == Some(libc::SIGKILL);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `child` still runs; ends it either way.
fn alive_then_end(child: &mut Child) -> bool {
    let alive = child.try_wait().expect("try_wait").is_none();
    let _ = child.kill();
    let _ = child.wait();
    alive
}

/// The owner dies with two numbers registered: our leader's, with its
/// start time as the owner reads it, and a stranger's (another start time
/// than the one registered, as when our leader was reaped and its number
/// handed on). The guard kills our leader's group and spares the stranger.
#[test]
fn the_owners_death_kills_the_leader_and_spares_a_stranger_of_another_start_time() {
    let mut leader = sleeper();
    let mut stranger = sleeper();
    let (l, s) = (leader.id() as i32, stranger.id() as i32);
    let real = birth(s).expect("the stranger's start time").time;
    assert_eq!(
        birth(l).map(|b| b.parent as u32),
        Some(std::process::id()),
        "the leader is read as our child (so its start time is sent)"
    );
    let g = start().expect("the portable guard");
    let _ours = g.register_pgroup_number(l, None).expect("register");
    let _theirs = g
        .register_pgroup_started(s, own_session(), real + 1)
        .expect("register");
    owner_dies(g);
    let leader_killed = killed(&mut leader);
    let stranger_alive = alive_then_end(&mut stranger);
    assert!(leader_killed, "the guard did not kill our leader's group");
    assert!(stranger_alive, "the guard killed a stranger's group");
}

/// The guard's decision, on real processes: our leader (same start time,
/// same session) and its zombie are killed; another start time or another
/// session spared; no start time known: not compared; a number that names
/// no process: killed by number (a leaderless group's members, or nobody).
#[test]
fn the_guards_decision_on_real_processes() {
    let mut leader = sleeper();
    let pid = leader.id() as i32;
    let real = birth(pid).expect("a start time").time;
    let session = own_session() as u32;
    let slot = |flags, start| Slot {
        op: OP_PGROUP,
        flags,
        id: 1,
        pgid: pid,
        pidfd: -1,
        start,
        path: [0; super::wire::PATH_LEN],
    };
    assert!(!spares(&slot(session, real)), "our leader is killed");
    assert!(
        spares(&slot(session, real + 1)),
        "a later stranger is spared"
    );
    assert!(spares(&slot(session, real - 1)), "an older one too");
    assert!(!spares(&slot(session, 0)), "no start time: not compared");
    assert!(spares(&slot(session + 1, real)), "another session: spared");
    // Our own unreaped child.
    let child = rustix::process::Pid::from_raw(pid).expect("a child pid");
    let _ = rustix::process::kill_process(child, rustix::process::Signal::KILL);
    assert!(wait_gone(pid as u32), "the leader did not exit");
    assert!(!spares(&slot(session, real)), "our leader's zombie is ours");
    let _ = leader.wait();
    // Reaped: (for now) the number names no process.
    assert!(!spares(&slot(session, real + 1)), "no process: by number");
}

const IN_NAMESPACE: &str = "PKIT_TEST_REUSE_IN_PID_NAMESPACE";

/// A number truly reused: in a pid namespace of our own (`unshare`, where
/// `/proc/sys/kernel/ns_last_pid` makes the next process get the number
/// we choose), our leader is registered, killed and reaped (as init would
/// reap it after the owner's death), and a stranger of our session gets
/// its number. The guard that knows the leader's start time spares the
/// stranger; a guard registered without one (the session check alone, as
/// before start times) kills it, which shows the number was reused.
/// Skipped, saying why, where no pid namespace can be made.
///
/// It takes no suite lock (the unit tests have none) and needs none: it
/// writes `ns_last_pid` only inside the namespace `unshare` made (the
/// probe's `sh` and the inner run alike), and a write there steers that
/// namespace's numbers alone, not those the integration tests run at once
/// (`.ci/par-test`) steer in theirs under `begin_exclusive`. Where no
/// namespace can be made it skips, never falling back to this one's.
#[test]
fn a_number_reused_in_a_pid_namespace_is_spared() {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return reuse_in_this_namespace();
    }
    let usable = |flags: &str| {
        Command::new("unshare")
            .args([flags, "--mount-proc", "sh", "-c"])
            .arg("echo 1 > /proc/sys/kernel/ns_last_pid")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let Some(flags) = ["-Urpf", "-pf"].into_iter().find(|f| usable(f)) else {
        eprintln!(
            "skipped: unshare can't make a pid namespace whose ns_last_pid we may write here"
        );
        return;
    };
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, m)| m);
    let name = format!("{module}::a_number_reused_in_a_pid_namespace_is_spared");
    let out = Command::new("unshare")
        .args([flags, "--mount-proc"])
        .arg(std::env::current_exe().expect("this test's executable"))
        .args(["--exact", &name, "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1")
        .stdin(Stdio::null())
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "in the pid namespace: {}\n{stdout}\n{stderr}",
        out.status
    );
}

/// The test's body, as the init of a fresh pid namespace.
fn reuse_in_this_namespace() {
    let mut leader = sleeper();
    let pid = leader.id() as i32;
    let registered = birth(pid).expect("the leader's start time").time;
    let with_start = start().expect("the portable guard");
    let without = start().expect("a second portable guard");
    let _a = with_start
        .register_pgroup_number(pid, None)
        .expect("register");
    let _b = without
        .register_pgroup_started(pid, own_session(), 0)
        .expect("register");
    // Our group empties and its leader is reaped.
    let _ = leader.kill();
    let _ = leader.wait();
    // Start times count 1/100 s: the stranger starts in a later tick.
    std::thread::sleep(Duration::from_millis(50));
    let mut stranger = None;
    for _ in 0..5 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1))
            .expect("ns_last_pid");
        let mut s = sleeper();
        if s.id() as i32 == pid {
            stranger = Some(s);
            break;
        }
        let _ = s.kill();
        let _ = s.wait();
    }
    let mut stranger = stranger.expect("a stranger given the leader's number");
    let now = birth(pid).expect("the stranger's start time").time;
    assert_ne!(now, registered, "the stranger started in the leader's tick");
    owner_dies(with_start);
    assert!(
        stranger.try_wait().expect("try_wait").is_none(),
        "the guard that knows the leader's start time killed the stranger"
    );
    owner_dies(without);
    assert!(
        killed(&mut stranger),
        "the number was not reused: the session check alone spared it"
    );
}
