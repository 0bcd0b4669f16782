//! A start whose child is stopped before it executes its program (here by
//! a `pre_exec` hook that raises SIGSTOP; in the wild by a concurrent
//! `signal(Stop)` landing in that window). The start waits for the child's
//! `exec` (a vfork-style spawn) and so for a SIGCONT; nothing else of the
//! group may wait for that start in a way that keeps the SIGCONT, or the
//! end of the child, from happening:
//! - `signal(Cont)` reaches the child even while a `suspend` is waiting
//!   for the start (under cgroup v2 the signal pass, the suspend and the
//!   start once shared one lock, and the three waited for each other);
//! - `close` ends the child (and so the start) rather than waiting for it;
//! - `kill` ends it too, without waiting for the start.
//!
//! The stopped child joins a running group, or is the group's first process
//! (a process group's leader, reached through the pidfd its clone published
//! before it ran: no process group exists yet). Both Linux mechanisms (the
//! portable backend runs no `pre_exec` hook);
//! the same shape on the portable backend is raced in `races_dec04a.rs`.
#![cfg(target_os = "linux")]

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::*;
use pkit::{Command, ErrorKind, MechanismChoice, Signal};

/// One scenario at a time: each looks for its stopped child among this
/// process's children.
static SERIAL: Mutex<()> = Mutex::new(());

/// What comes after the start's child has stopped before its `exec`.
#[derive(Debug, Clone, Copy)]
enum Then {
    /// A `suspend` (which waits for the start), then `signal(Cont)`.
    SuspendThenCont,
    /// `close`.
    Close,
    /// `kill`.
    Kill,
    /// `signal(Cont)`.
    Cont,
    /// `pids`, `processes` and `stats` (which list the group), then `kill`.
    List,
    /// `adopt` of another child of this process, then `kill`.
    Adopt,
    /// `shutdown` (SIGTERM, which a stopped process keeps pending; the
    /// grace; the close's SIGKILL).
    Shutdown,
}

/// Runs `f` on a thread of its own; its result, or a failure naming `what`
/// as hung when it takes longer than `DEADLINE` (the thread is left
/// behind: the test fails instead of hanging).
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let rx = on_thread(f);
    rx.recv_timeout(DEADLINE * 2)
        .unwrap_or_else(|_| panic!("{what} hangs"))
}

fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// A child of this process, not in `known`, stopped (state `T`).
fn stopped_child(known: &[u32], what: &str) -> u32 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = own_children()
            .into_iter()
            .find(|(pid, s)| !known.contains(pid) && s.as_ref().is_some_and(|s| s.state == 'T'));
        if let Some((pid, _)) = found {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no child stopped before exec"
        );
        std::thread::sleep(POLL);
    }
}

/// The calling thread's id (`/proc/thread-self` is `<pid>/task/<tid>`).
fn own_tid() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    let tid = link.file_name().expect("a thread id").to_string_lossy();
    tid.parse().expect("a numeric thread id")
}

/// Polls until this process's thread `tid` is blocked in `futex(2)`
/// (`/proc/self/task/<tid>/syscall` names the call a blocked thread is
/// in) while `passed()` is still false: a `suspend` waiting for the
/// group's lifecycle lock, which the stopped start holds.
fn waits_in_a_futex(tid: u32, what: &str, passed: impl Fn() -> bool) {
    let file = format!("/proc/self/task/{tid}/syscall");
    let futex = libc::SYS_futex.to_string();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let blocked = text.split_whitespace().next() == Some(futex.as_str());
        assert!(!passed(), "{what}: the suspend did not wait for the start");
        if blocked {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the suspend never waited in a futex: {text:?}"
        );
        std::thread::sleep(POLL);
    }
}

/// `joins`: the stopped child joins a group that has a running process;
/// else it is the group's first (a process group's leader, whose start
/// holds the group's leader mutex, with no process group yet to signal).
fn one(choice: MechanismChoice, then: Then, joins: bool) {
    let what = format!("{choice} {then:?} joins={joins}");
    let g = Arc::new(
        pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice))
            .unwrap_or_else(|e| panic!("{what}: building a group: {e}")),
    );
    // A first process: the stopped one joins a group that has one (a
    // process group's leader, then, is running).
    let mut first = joins.then(|| {
        g.start(&Command::new("sleep").arg("300"))
            .unwrap_or_else(|e| panic!("{what}: start: {e}"))
    });
    let known: Vec<u32> = first.iter().map(|p| p.pid()).collect();
    // SAFETY: raise is async-signal-safe; the hook allocates nothing.
    let hooked = unsafe {
        Command::new("sleep").arg("300").pre_exec(|| {
            libc::raise(libc::SIGSTOP);
            Ok(())
        })
    };
    let starting = {
        let g = g.clone();
        on_thread(move || g.start(&hooked))
    };
    let stopped = stopped_child(&known, &what);
    let mut suspending = None;
    match then {
        Then::SuspendThenCont => {
            let gs = g.clone();
            let (tid_tx, tid_rx) = mpsc::channel();
            suspending = Some(on_thread(move || {
                let _ = tid_tx.send(own_tid());
                gs.suspend()
            }));
            // Only once the suspend really waits for the start (its thread
            // is blocked in a futex, the group not yet suspended) is the
            // Cont sent: the order whose deadlock this test is about.
            let tid = tid_rx.recv().expect("the suspending thread's id");
            waits_in_a_futex(tid, &what, || g.is_suspended());
            let gc = g.clone();
            within(&format!("{what}: signal(Cont)"), move || {
                gc.signal(Signal::Cont)
            })
            .unwrap_or_else(|e| panic!("{what}: signal(Cont): {e}"));
        }
        Then::Close => {
            let gc = g.clone();
            within(&format!("{what}: close"), move || gc.close())
                .unwrap_or_else(|e| panic!("{what}: close: {e}"));
        }
        Then::Kill => {
            let gc = g.clone();
            within(&format!("{what}: kill"), move || gc.kill())
                .unwrap_or_else(|e| panic!("{what}: kill: {e}"));
        }
        Then::Cont => {
            let gc = g.clone();
            within(&format!("{what}: signal(Cont)"), move || {
                gc.signal(Signal::Cont)
            })
            .unwrap_or_else(|e| panic!("{what}: signal(Cont): {e}"));
        }
        Then::List => {
            let gc = g.clone();
            let (pids, processes, stats) = within(&format!("{what}: pids"), move || {
                (gc.pids(), gc.processes(), gc.stats())
            });
            // The stopped child is the group's: a member, listed.
            let pids = pids.unwrap_or_else(|e| panic!("{what}: pids: {e}"));
            assert!(pids.contains(&stopped), "{what}: pids {pids:?}");
            let processes = processes.unwrap_or_else(|e| panic!("{what}: processes: {e}"));
            assert!(
                processes.iter().any(|p| p.pid == stopped),
                "{what}: processes {processes:?}"
            );
            stats.unwrap_or_else(|e| panic!("{what}: stats: {e}"));
            kill_group(&g, &what);
        }
        Then::Adopt => {
            let mut other = ChildOnDrop(
                std::process::Command::new("sleep")
                    .arg("300")
                    .spawn()
                    .expect("sleep"),
            );
            let pid = other.id();
            let gc = g.clone();
            let adopted = within(&format!("{what}: adopt"), move || gc.adopt(pid));
            match choice {
                // A cgroup takes any process this one may move.
                MechanismChoice::Cgroup => adopted.unwrap_or_else(|e| panic!("{what}: adopt: {e}")),
                // A process group takes no process that has executed its
                // program, and none while its first process may never run.
                _ => match adopted {
                    Err(e) if e.kind() == ErrorKind::Unsupported => {}
                    other => panic!("{what}: adopt: {other:?}"),
                },
            }
            kill_group(&g, &what);
            let _ = other.kill();
            let _ = other.wait();
        }
        Then::Shutdown => {
            let gc = g.clone();
            let report = within(&format!("{what}: shutdown"), move || {
                gc.shutdown(std::time::Duration::from_millis(200))
            })
            .unwrap_or_else(|e| panic!("{what}: shutdown: {e}"));
            assert_eq!(report.signalled(), 1, "{what}: {report:?}");
        }
    }
    let started = starting
        .recv_timeout(DEADLINE * 2)
        .unwrap_or_else(|_| panic!("{what}: the stopped start hangs"));
    if let Some(s) = suspending {
        s.recv_timeout(DEADLINE * 2)
            .unwrap_or_else(|_| panic!("{what}: the suspend hangs"))
            .unwrap_or_else(|e| panic!("{what}: suspend: {e}"));
        g.resume().unwrap_or_else(|e| panic!("{what}: resume: {e}"));
    }
    let mut pids = known.clone();
    pids.push(stopped);
    let mut started = match started {
        Ok(p) => {
            assert_eq!(p.pid(), stopped, "{what}: the started process");
            Some(p)
        }
        // A start the close or kill ended before its exec: refused, or a
        // process that was killed.
        Err(e)
            if matches!(
                then,
                Then::Close | Then::Kill | Then::List | Then::Adopt | Then::Shutdown
            ) && e.kind() == ErrorKind::Spawn =>
        {
            None
        }
        Err(e) => panic!("{what}: the stopped start: {e:?}"),
    };
    if matches!(then, Then::SuspendThenCont | Then::Cont) {
        assert!(!pid_gone(stopped), "{what}: the continued child runs");
    }
    let g = Arc::try_unwrap(g).unwrap_or_else(|_| panic!("{what}: no thread keeps the group"));
    within(&format!("{what}: the last close"), move || g.close())
        .unwrap_or_else(|e| panic!("{what}: the last close: {e}"));
    if let Some(p) = started.as_mut() {
        pids.push(p.pid());
        let _ = p.wait();
    }
    if let Some(p) = first.as_mut() {
        let _ = p.wait();
    }
    let deadline = Instant::now() + DEADLINE;
    while pids.iter().any(|&p| !pid_gone(p)) {
        assert!(Instant::now() < deadline, "{what}: {pids:?} run on");
        std::thread::sleep(POLL);
    }
}

/// `kill` of group `g`, on a thread of its own (see [`within`]).
fn kill_group(g: &Arc<pkit::blocking::Group>, what: &str) {
    let gc = g.clone();
    within(&format!("{what}: kill"), move || gc.kill())
        .unwrap_or_else(|e| panic!("{what}: kill: {e}"));
}

fn each(name: &'static str, then: Then, joins: bool) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin(name));
    for choice in mechanisms() {
        if skip_on_portable(choice, "pre_exec hooks") {
            continue;
        }
        one(choice, then, joins);
    }
    rt.block_on(suite.end());
}

#[test]
fn a_cont_reaches_a_child_stopped_before_exec_past_a_waiting_suspend() {
    each(
        "a_cont_reaches_a_child_stopped_before_exec_past_a_waiting_suspend",
        Then::SuspendThenCont,
        true,
    );
}

#[test]
fn a_close_ends_a_child_stopped_before_exec() {
    each(
        "a_close_ends_a_child_stopped_before_exec",
        Then::Close,
        true,
    );
}

#[test]
fn a_kill_ends_a_child_stopped_before_exec() {
    each("a_kill_ends_a_child_stopped_before_exec", Then::Kill, true);
}

// The stopped child is the group's first process: under process groups its
// start holds the leader's mutex, and no process group exists yet to
// signal; the group reaches it through the pidfd its clone published.

#[test]
fn a_cont_reaches_a_first_process_stopped_before_exec() {
    each(
        "a_cont_reaches_a_first_process_stopped_before_exec",
        Then::Cont,
        false,
    );
}

#[test]
fn a_close_ends_a_first_process_stopped_before_exec() {
    each(
        "a_close_ends_a_first_process_stopped_before_exec",
        Then::Close,
        false,
    );
}

#[test]
fn a_kill_ends_a_first_process_stopped_before_exec() {
    each(
        "a_kill_ends_a_first_process_stopped_before_exec",
        Then::Kill,
        false,
    );
}

/// The group's listing (`pids`, `processes`, `stats`) returns while its
/// first process is stopped before its `exec`, and lists that process: it
/// is the group's. Under process groups the listing waited for the leader's
/// mutex, which the stopped start holds, until the child was continued or
/// killed (before the fix: "pids hangs").
#[test]
fn the_listing_of_a_group_whose_first_process_is_stopped_before_exec_returns() {
    each(
        "the_listing_of_a_group_whose_first_process_is_stopped_before_exec_returns",
        Then::List,
        false,
    );
}

/// `adopt` returns while the group's first process is stopped before its
/// `exec`: a cgroup takes the process; a process group refuses it
/// (`Unsupported`) rather than wait for a start that may never end, or
/// put it into the process group that start's child is to lead, where it
/// would outlive a start that then fails. Before the fix it waited for the
/// leader's mutex ("adopt hangs").
#[test]
fn adopt_into_a_group_whose_first_process_is_stopped_before_exec_returns() {
    each(
        "adopt_into_a_group_whose_first_process_is_stopped_before_exec_returns",
        Then::Adopt,
        false,
    );
}

/// `shutdown` ends a group whose first process is stopped before its
/// `exec`: it signals that process (a member), waits its grace and kills
/// it. Under process groups it listed the members first, which waited for
/// the leader's mutex the stopped start holds (before the fix: "shutdown
/// hangs").
#[test]
fn a_shutdown_ends_a_first_process_stopped_before_exec() {
    each(
        "a_shutdown_ends_a_first_process_stopped_before_exec",
        Then::Shutdown,
        false,
    );
}

/// A group's first start that fails (its program does not exist) while
/// another thread keeps signalling the group: the pidfd the clone
/// published is closed when the failed child is reaped, and no signal may
/// use it after that (it would be a closed descriptor, or by then another
/// process's pidfd). Before the start took its birth back right after its
/// clone, the signals failed with EBADF now and then (a review found
/// hundreds in 3000 starts).
#[test]
fn signals_never_use_the_pidfd_of_a_failed_first_start() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin("signals_never_use_the_pidfd_of_a_failed_first_start"));
    for choice in mechanisms() {
        if skip_on_portable(choice, "clone3's published pidfd") {
            continue;
        }
        let mut errors = Vec::new();
        for _ in 0..1000 {
            let g = Arc::new(
                pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice))
                    .unwrap_or_else(|e| panic!("{choice}: building a group: {e}")),
            );
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let signaller = {
                let (g, stop) = (g.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut errors = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        if let Err(e) = g.signal(Signal::Cont) {
                            errors.push(e.to_string());
                        }
                    }
                    errors
                })
            };
            let started = g.start(&Command::new("/nonexistent/pkit-test-program"));
            assert!(
                started.is_err(),
                "{choice}: a program that doesn't exist started"
            );
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            errors.extend(signaller.join().expect("the signalling thread"));
        }
        assert!(
            errors.is_empty(),
            "{choice}: {} signals failed, e.g. {:?}",
            errors.len(),
            errors.first()
        );
    }
    rt.block_on(suite.end());
}
