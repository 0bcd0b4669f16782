#![cfg(target_os = "linux")]
//! `pkit run` relays a signal to its tree without holding its runtime's
//! thread while the cgroup's freeze can't be confirmed: a member held in
//! a cgroup v1 freezer of the test's own keeps cgroup v2's freeze from
//! completing (for up to the 5 s the signal pass waits for it). Meanwhile
//! `--pty`'s relay goes on: a line typed on pkit's stdin reaches the
//! program's terminal, whose echo comes back on pkit's stdout, before the
//! signal reached the held member. Before, the relay's `Group::signal`
//! waited for the freeze in a blocking `poll` on the runtime's only
//! thread, and the typed line came back only once every member, the held
//! one included, had the signal.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// What one run saw.
enum Seen {
    /// No v1 freezer directory here.
    NoHold,
    /// Whether the held member had SIGHUP pending when the typed line came
    /// back.
    Probe { signalled_first: bool },
}

/// One `pkit run --pty` whose program's tree has a member held; SIGHUP
/// to pkit (its first request to end, relayed to the whole tree), then,
/// the tree's cgroup being frozen, a line typed on pkit's stdin.
fn one_run(n: usize) -> Seen {
    let mut child = pkit()
        .args(["run", "-q", "--pty", "--mechanism", "cgroup", "--"])
        .args(["sh", "-c", "sleep 300 & sleep 300 & wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(Started::new)
        .expect("pkit starts");
    let pkit_pid = child.id();
    let seen = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let until = Instant::now() + DEADLINE;
    let sleeps = loop {
        let sleeps: Vec<u32> = descendants(pkit_pid)
            .into_iter()
            .map(|(p, _)| p)
            .filter(|&p| comm(p) == "sleep")
            .collect();
        if sleeps.len() == 2 {
            break sleeps;
        }
        assert!(Instant::now() < until, "the sleeps never started");
        std::thread::sleep(POLL);
    };
    let Some(held) = Held::new(sleeps[0] as i32) else {
        return Seen::NoHold;
    };
    let dir = v2_dir(sleeps[1] as i32).expect("the run's cgroup v2 directory");
    kill(pkit_pid, libc::SIGHUP);
    wait_freeze_asked(&dir, "the relay");
    let probe = format!("probe-{n}-{}", std::process::id());
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{probe}\n").as_bytes())
        .expect("typing");
    let until = Instant::now() + DEADLINE;
    let signalled_first = loop {
        // Read first: a pending signal seen after the echo came is one
        // sent after it at the earliest.
        let echoed = String::from_utf8_lossy(&seen.lock().unwrap()).contains(&probe);
        if echoed {
            break held.pending(libc::SIGHUP);
        }
        assert!(Instant::now() < until, "the typed line never came back");
        std::thread::sleep(Duration::from_millis(2));
    };
    held.thaw();
    drop(stdin);
    let until = Instant::now() + DEADLINE;
    while child.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < until, "pkit never ended");
        std::thread::sleep(POLL);
    }
    reader.join().expect("the reader");
    let pids: Vec<i32> = sleeps.iter().map(|&p| p as i32).collect();
    assert_all_gone(&pids);
    drop(held);
    Seen::Probe { signalled_first }
}

/// Cgroup only: a process group's `killpg` never waits. Up to three runs:
/// one whose typed line comes back before the held member is signalled
/// passes (a machine so loaded that the echo takes the pass's whole 5 s
/// is given another run); with the relay's signal waiting on the thread,
/// none ever does.
#[test]
fn a_relay_waiting_for_a_freeze_leaves_the_pty_relay_running() {
    if !mechanisms().contains(&"cgroup") {
        return;
    }
    if !run(&["run", "-q", "--mechanism", "cgroup", "--", "true"])
        .status
        .success()
    {
        eprintln!("SKIPPED in tests/signal_held.rs: no cgroup v2 here");
        return;
    }
    for n in 0..3 {
        match one_run(n) {
            Seen::NoHold => {
                eprintln!("SKIPPED in tests/signal_held.rs: no cgroup v1 freezer directory");
                return;
            }
            Seen::Probe {
                signalled_first: false,
            } => return,
            Seen::Probe {
                signalled_first: true,
            } => eprintln!("run {n}: the typed line came back after the signal"),
        }
    }
    panic!(
        "in three runs the typed line came back only once the held member had the \
         signal: pkit's relay of SIGHUP held its runtime's thread while it waited for \
         the freeze"
    );
}

/// What one run of [`relays_run`] saw when pkit said it acted on the
/// second request.
enum Acted {
    NoHold,
    /// Whether the held member had its SIGHUP (the first request's relay
    /// was over) when pkit said so; whether the program had its SIGUSR1
    /// then, the held member not yet its SIGHUP.
    Seen {
        relayed_first: bool,
        usr1_first: bool,
    },
}

/// `pkit run` (a cgroup, a member held) gets SIGHUP, its first request
/// to end, which it relays to the whole tree: the relay waits for the
/// cgroup's freeze, which the held member keeps from being confirmed.
/// Meanwhile the test sends SIGUSR1 (which goes to the program alone)
/// and SIGTERM, the second request, which pkit acts on at once: it says
/// it ends the whole tree. The test keeps the member held until then.
fn relays_run(n: usize) -> Acted {
    let script = "trap : HUP USR1; sleep 300 & sleep 300 & wait; wait; wait; wait";
    let mut child = pkit()
        .args(["run", "--mechanism", "cgroup", "-k", "60", "--"])
        .args(["sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Started::new)
        .expect("pkit starts");
    let pkit_pid = child.id();
    let said = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = {
        let said = said.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                said.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let until = Instant::now() + DEADLINE;
    let (program, sleeps) = loop {
        let tree = descendants(pkit_pid);
        let sleeps: Vec<u32> = tree
            .iter()
            .map(|&(p, _)| p)
            .filter(|&p| comm(p) == "sleep")
            .collect();
        let program = tree.iter().map(|&(p, _)| p).find(|&p| comm(p) == "sh");
        if let (Some(program), 2) = (program, sleeps.len()) {
            break (program as i32, sleeps);
        }
        assert!(Instant::now() < until, "the sleeps never started");
        std::thread::sleep(POLL);
    };
    let Some(held) = Held::new(sleeps[0] as i32) else {
        return Acted::NoHold;
    };
    let dir = v2_dir(sleeps[1] as i32).expect("the run's cgroup v2 directory");
    kill(pkit_pid, libc::SIGHUP);
    wait_freeze_asked(&dir, "the relay");
    kill(pkit_pid, libc::SIGUSR1);
    kill(pkit_pid, libc::SIGTERM);
    let until = Instant::now() + DEADLINE;
    let seen = loop {
        // Read first: a pending signal seen after pkit spoke was sent
        // after that at the earliest.
        let spoke = String::from_utf8_lossy(&said.lock().unwrap())
            .contains("pkit: second SIGTERM: ending the whole tree");
        if spoke {
            let relayed_first = held.pending(libc::SIGHUP);
            let usr1 = in_mask(program, "SigPnd:", libc::SIGUSR1)
                || in_mask(program, "ShdPnd:", libc::SIGUSR1);
            break Acted::Seen {
                relayed_first,
                usr1_first: usr1 && !relayed_first,
            };
        }
        assert!(
            Instant::now() < until,
            "pkit never acted on its second request: {}",
            String::from_utf8_lossy(&said.lock().unwrap())
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    held.thaw();
    let until = Instant::now() + 3 * DEADLINE;
    while child.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < until, "pkit never ended (run {n})");
        std::thread::sleep(POLL);
    }
    reader.join().expect("the reader");
    let mut pids: Vec<i32> = sleeps.iter().map(|&p| p as i32).collect();
    pids.push(program);
    assert_all_gone(&pids);
    drop(held);
    seen
}

/// While a relay to the tree waits for the cgroup's freeze, `pkit run`'s
/// loop goes on: a second request to end is acted on before the first
/// request's SIGHUP has reached the held member; and the SIGUSR1 sent
/// between the two, to the program alone, waits behind that relay (the
/// program, frozen with the tree, would show it pending). Before, the
/// loop awaited each relay: pkit read the SIGUSR1 and the SIGTERM only
/// once the SIGHUP had gone out, at the pass's 5 s deadline. Up to three
/// runs (a machine so loaded that pkit takes the pass's whole 5 s to read
/// the next signal is given another); cgroup only: a process group's
/// `killpg` never waits.
#[test]
fn a_relay_waiting_for_a_freeze_leaves_the_run_loop_acting_on_signals() {
    if !mechanisms().contains(&"cgroup") {
        return;
    }
    if !run(&["run", "-q", "--mechanism", "cgroup", "--", "true"])
        .status
        .success()
    {
        eprintln!("SKIPPED in tests/signal_held.rs: no cgroup v2 here");
        return;
    }
    for n in 0..3 {
        match relays_run(n) {
            Acted::NoHold => {
                eprintln!("SKIPPED in tests/signal_held.rs: no cgroup v1 freezer directory");
                return;
            }
            Acted::Seen {
                usr1_first: true, ..
            } => panic!(
                "run {n}: the program had SIGUSR1 before the held member had the SIGHUP \
                 pkit got first: the relays overtook each other"
            ),
            Acted::Seen {
                relayed_first: false,
                ..
            } => return,
            Acted::Seen { .. } => {
                eprintln!("run {n}: pkit acted on the second request after the relay")
            }
        }
    }
    panic!(
        "in three runs pkit acted on its second request only once the held member had \
         the first request's SIGHUP: the run loop waited for the relay's freeze"
    );
}
