//! Every public operation of a group and of a started process, racing each
//! way a group ends (2026-12-04): `close`, `shutdown`, `kill`, the drop of
//! the last `Arc<Group>`, and a started process's `kill_tree`, on a tree
//! that runs, on one that has exited, and on a suspended one; with the
//! async [`pkit::Group`] and the blocking one. Every mechanism.
//!
//! What a race with an ending must give: success (the operation reached
//! what was there, or nothing), or the one typed error the docs name for
//! it (a start on a closed group is `Error::Spawn`; a process group can't
//! adopt a running program: `Error::Unsupported`). Never `Io` (a directory
//! removed under the call: ENOENT, ENODEV), never a hang, never a panic,
//! never a process left running.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use common::*;
use pkit::{ErrorKind, MechanismChoice, Signal};
use tokio::runtime::Handle;

/// Rounds of each (variant, state, ending) per mechanism (two variants:
/// each mechanism's run stays under a minute on the portable backend).
const ROUNDS: usize = 2;
/// Worker threads running the operations during a round.
const WORKERS: usize = 3;

/// The group under test: async, or the blocking wrapper.
enum G {
    Async(pkit::Group),
    Blocking(pkit::blocking::Group),
}

impl G {
    fn new(choice: MechanismChoice, blocking: bool) -> G {
        if blocking {
            // Not on a runtime's thread: the blocking group refuses one.
            let g = std::thread::spawn(move || {
                pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice))
            })
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{choice}: building a blocking group: {e}"));
            G::Blocking(g)
        } else {
            G::Async(group(choice))
        }
    }

    fn a(&self) -> &pkit::Group {
        match self {
            G::Async(g) => g,
            G::Blocking(g) => g.as_async(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Exited,
    Suspended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Close,
    Shutdown,
    Kill,
    Drop,
    KillTree,
}

/// What the workers of a round leave behind, to check and clean up.
#[derive(Default)]
struct Left {
    /// Processes started by the workers (async handles).
    started: Vec<pkit::RunningProcess>,
    /// Processes started by the workers through the blocking group.
    started_blocking: Vec<pkit::blocking::RunningProcess>,
    /// Children of ours the workers offered for adoption, and whether
    /// the group took them.
    adopted: Vec<(std::process::Child, bool)>,
    /// Every result that broke the rules, said.
    broken: Vec<String>,
}

/// What each worker (and the ending, last) is doing now: said when a
/// round hangs.
static DOING: Mutex<[&str; WORKERS + 1]> = Mutex::new([""; WORKERS + 1]);

fn doing(who: usize, what: &'static str) {
    DOING.lock().unwrap()[who] = what;
}

/// One operation, once, on `g` (and the started process `p`).
fn operate(op: usize, g: &G, p: &pkit::RunningProcess, rt: &Handle, left: &Mutex<Left>) {
    let broke = |what: &str, e: &pkit::Error| {
        left.lock().unwrap().broken.push(format!("{what}: {e:?}"));
    };
    let check = |what: &str, r: pkit::Result<()>| {
        if let Err(e) = r {
            broke(what, &e);
        }
    };
    let blocking = matches!(g, G::Blocking(_));
    match op {
        0 => {
            for s in [
                Signal::Winch,
                Signal::Cont,
                Signal::Usr2,
                Signal::Stop,
                Signal::Cont,
            ] {
                let r = match g {
                    G::Async(g) => g.signal(s),
                    G::Blocking(g) => g.signal(s),
                };
                check(&format!("signal {s}"), r);
            }
        }
        1 => check(
            "kill",
            match g {
                G::Async(g) => g.kill(),
                G::Blocking(g) => g.kill(),
            },
        ),
        2 => {
            let r = match g {
                G::Async(g) => rt.block_on(g.suspend()),
                G::Blocking(g) => g.suspend(),
            };
            check("suspend", r);
            let r = match g {
                G::Async(g) => rt.block_on(g.resume()),
                G::Blocking(g) => g.resume(),
            };
            check("resume", r);
        }
        3 => {
            let r = match g {
                G::Async(g) => g.pids(),
                G::Blocking(g) => g.pids(),
            };
            check("pids", r.map(drop));
            let r = match g {
                G::Async(g) => g.processes(),
                G::Blocking(g) => g.processes(),
            };
            check("processes", r.map(drop));
            let r = match g {
                G::Async(g) => g.stats(),
                G::Blocking(g) => g.stats(),
            };
            check("stats", r.map(drop));
        }
        4 => {
            let every = Duration::from_millis(1);
            let items: Vec<pkit::Result<pkit::Stats>> = match g {
                G::Async(g) => rt.block_on(async {
                    let mut s = g.sample_stats(every);
                    let mut v = Vec::new();
                    while v.len() < 2 {
                        match s.next().await {
                            Some(x) => v.push(x),
                            None => break,
                        }
                    }
                    v
                }),
                G::Blocking(g) => g.sample_stats(every).take(2).collect(),
            };
            for r in items {
                check("sample_stats", r.map(drop));
            }
        }
        5 => {
            let cmd = pkit::Command::new("sh").args(["-c", "sleep 300 & exec sleep 300"]);
            let what = if blocking { "blocking start" } else { "start" };
            let r = match g {
                G::Async(g) => {
                    let _in = rt.enter();
                    g.start(&cmd).map(|p| left.lock().unwrap().started.push(p))
                }
                G::Blocking(g) => g
                    .start(&cmd)
                    .map(|p| left.lock().unwrap().started_blocking.push(p)),
            };
            // A start the ending came before is refused, as documented.
            if let Err(e) = r {
                if e.kind() != ErrorKind::Spawn {
                    broke(what, &e);
                }
            }
        }
        6 => {
            let child = std::process::Command::new("sleep")
                .arg("300")
                .spawn()
                .unwrap();
            let r = match g {
                G::Async(g) => g.adopt(child.id()),
                G::Blocking(g) => g.adopt(child.id()),
            };
            let taken = match r {
                Ok(()) => true,
                // A process group takes no running program (documented).
                Err(e)
                    if e.kind() == ErrorKind::Unsupported
                        && g.a().mechanism() == pkit::Mechanism::ProcessGroup =>
                {
                    false
                }
                // Refused once the group is closed (documented).
                Err(e)
                    if e.kind() == ErrorKind::Io && e.to_string().contains("has been closed") =>
                {
                    false
                }
                Err(e) => {
                    broke("adopt", &e);
                    false
                }
            };
            left.lock().unwrap().adopted.push((child, taken));
        }
        _ => {
            let _ = p.pid();
            check("process signal", p.signal(Signal::Winch));
            check("process signal", p.signal(Signal::Cont));
        }
    }
}

/// How many operations [`operate`] knows.
const OPS: usize = 8;
const OP_NAMES: [&str; OPS] = [
    "signals",
    "kill",
    "suspend/resume",
    "listings",
    "sample_stats",
    "start",
    "adopt",
    "process",
];

/// A worker: every operation in turn (from `first`), until the ending is
/// done and one more pass has run after it, or the group is gone. Starts
/// and adoptions are rationed (each makes a process).
fn work(
    first: usize,
    g: Weak<G>,
    p: Arc<pkit::RunningProcess>,
    done: Arc<AtomicBool>,
    rt: Handle,
    left: Arc<Mutex<Left>>,
) {
    let mut passes_after = 0;
    let (mut starts, mut adopts) = (0, 0);
    for pass in 0..200 {
        let ended = done.load(Ordering::Acquire);
        for i in 0..OPS {
            let op = (first + i) % OPS;
            if (op == 5 && starts >= 2) || (op == 6 && adopts >= 1) {
                continue;
            }
            starts += usize::from(op == 5);
            adopts += usize::from(op == 6);
            let Some(g) = g.upgrade() else {
                doing(first % WORKERS, "gone");
                return;
            };
            doing(first % WORKERS, OP_NAMES[op]);
            operate(op, &g, &p, &rt, &left);
            doing(first % WORKERS, "between");
        }
        if ended {
            passes_after += 1;
            if passes_after >= 1 {
                doing(first % WORKERS, "done");
                return;
            }
        }
        let _ = pass;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_racing_every_ending() {
    let suite = begin("operations_racing_every_ending").await;
    let mut broken = Vec::new();
    for choice in mechanisms() {
        for blocking in [false, true] {
            for state in [State::Running, State::Exited, State::Suspended] {
                for ending in [
                    Ending::Close,
                    Ending::Shutdown,
                    Ending::Kill,
                    Ending::Drop,
                    Ending::KillTree,
                ] {
                    for round in 0..ROUNDS {
                        let what = format!(
                            "{choice} {} {state:?} {ending:?} round {round}",
                            if blocking { "blocking" } else { "async" }
                        );
                        broken.extend(
                            one_round(choice, blocking, state, ending, round)
                                .await
                                .into_iter()
                                .map(|b| format!("{what}: {b}")),
                        );
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} broken results:\n{}",
        broken.len(),
        broken.join("\n")
    );
    suite.end().await;
}

/// One round: the tree, the workers, the ending; then every check.
async fn one_round(
    choice: MechanismChoice,
    blocking: bool,
    state: State,
    ending: Ending,
    round: usize,
) -> Vec<String> {
    let g = Arc::new(G::new(choice, blocking));
    let script = match state {
        State::Exited => "exit 0",
        _ => TREE_TO_STDOUT,
    };
    let mut tree = vec![];
    let p = g
        .a()
        .start(&sh(choice, script).stream_lines())
        .unwrap_or_else(|e| panic!("{choice}: start: {e}"));
    // A second process, waited for by a task from now on: its wait races
    // the ending.
    let q = g
        .a()
        .start(&sh(
            choice,
            if state == State::Exited {
                "exit 0"
            } else {
                "sleep 300 & exec sleep 300"
            },
        ))
        .unwrap();
    tree.push(q.pid());
    let mut q = q;
    let waiter = tokio::spawn(async move { q.wait().await });
    let mut p = p;
    tree.push(p.pid());
    if state == State::Exited {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !p.has_exited() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{choice}: exit 0 runs on"
            );
            tokio::time::sleep(POLL).await;
        }
    } else {
        let mut lines = p.lines();
        while let Some(l) = lines.next_line().await {
            if l.text == "ready" {
                break;
            }
            tree.push(l.text.parse().unwrap());
        }
    }
    if state == State::Suspended {
        g.a().suspend().await.unwrap();
    }
    let p = Arc::new(p);
    let done = Arc::new(AtomicBool::new(false));
    let left = Arc::new(Mutex::new(Left::default()));
    let rt = Handle::current();
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let (g, p, done, rt, left) = (
                Arc::downgrade(&g),
                p.clone(),
                done.clone(),
                rt.clone(),
                left.clone(),
            );
            std::thread::spawn(move || work(i + WORKERS * round, g, p, done, rt, left))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(round as u64 * 3)).await;
    // The ending, on a thread of its own (the blocking group's methods
    // refuse a runtime's thread).
    let ender = {
        let (p, done, left, rt) = (p.clone(), done.clone(), left.clone(), rt.clone());
        std::thread::spawn(move || {
            doing(WORKERS, "ending");
            if ending == Ending::Drop {
                drop(g);
                done.store(true, Ordering::Release);
                return None;
            }
            let r = match (ending, &*g) {
                (Ending::Close, G::Async(a)) => rt.block_on(a.close()),
                (Ending::Close, G::Blocking(b)) => b.close(),
                (Ending::Shutdown, G::Async(a)) => rt
                    .block_on(a.shutdown(Duration::from_millis(200)))
                    .map(drop),
                (Ending::Shutdown, G::Blocking(b)) => {
                    b.shutdown(Duration::from_millis(200)).map(drop)
                }
                (Ending::Kill, G::Async(a)) => a.kill(),
                (Ending::Kill, G::Blocking(b)) => b.kill(),
                (Ending::Drop, _) => unreachable!(),
                (Ending::KillTree, _) => p.kill_tree(),
            };
            if let Err(e) = r {
                left.lock()
                    .unwrap()
                    .broken
                    .push(format!("the ending: {e:?}"));
            }
            done.store(true, Ordering::Release);
            doing(WORKERS, "ended");
            // The group (unless dropped) goes back for the clean-up.
            Some(g)
        })
    };
    // Joined on a plain thread, not the runtime's blocking pool: a hang
    // fails the test (the runtime's drop would wait for a blocking task
    // for ever).
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let g = ender.join().expect("the ending panicked");
        for w in workers {
            w.join().expect("an operation panicked");
        }
        let _ = tx.send(g);
    });
    let joined = tokio::time::timeout(DEADLINE * 3, rx)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{choice} {}: {state:?} {ending:?}: an operation or the ending hangs: {:?}",
                if blocking { "blocking" } else { "async" },
                DOING.lock().unwrap()
            )
        })
        .expect("the ending or an operation panicked");
    // Everything ends with a close (after a kill, a kill_tree).
    if let Some(g) = joined {
        let g = Arc::try_unwrap(g).unwrap_or_else(|_| panic!("no worker keeps the group"));
        match g {
            G::Async(a) => {
                tokio::time::timeout(DEADLINE * 2, a.close())
                    .await
                    .unwrap_or_else(|_| panic!("{choice}: the last close hangs"))
                    .unwrap_or_else(|e| panic!("{choice}: the last close: {e:?}"));
            }
            G::Blocking(b) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                std::thread::spawn(move || {
                    let _ = tx.send(b.close());
                });
                tokio::time::timeout(DEADLINE * 2, rx)
                    .await
                    .unwrap_or_else(|_| panic!("{choice}: the last blocking close hangs"))
                    .expect("the last blocking close panicked")
                    .unwrap_or_else(|e| panic!("{choice}: the last close: {e:?}"));
            }
        }
    }
    let mut left = std::mem::take(&mut *left.lock().unwrap());
    let out = tokio::time::timeout(DEADLINE, waiter)
        .await
        .unwrap_or_else(|_| panic!("{choice}: {state:?} {ending:?}: a wait hangs"))
        .unwrap();
    if let Err(e) = out {
        left.broken.push(format!("wait: {e:?}"));
    }
    let mut p = Arc::try_unwrap(p).unwrap_or_else(|_| panic!("no worker keeps the process"));
    let out = tokio::time::timeout(DEADLINE, p.wait())
        .await
        .unwrap_or_else(|_| panic!("{choice}: {state:?} {ending:?}: a wait hangs"));
    if let Err(e) = out {
        left.broken.push(format!("wait: {e:?}"));
    }
    for mut s in std::mem::take(&mut left.started) {
        tree.push(s.pid());
        let out = tokio::time::timeout(DEADLINE, s.wait())
            .await
            .unwrap_or_else(|_| panic!("{choice}: a started process's wait hangs"));
        if let Err(e) = out {
            left.broken.push(format!("a started process's wait: {e:?}"));
        }
    }
    let started_blocking = std::mem::take(&mut left.started_blocking);
    tree.extend(started_blocking.iter().map(|s| s.pid()));
    // Not on a runtime's thread (a blocking wait refuses one), nor in its
    // blocking pool (see the join above).
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(
            started_blocking
                .into_iter()
                .map(|mut s| s.wait().err().map(|e| format!("a blocking wait: {e:?}")))
                .collect::<Vec<_>>(),
        );
    });
    let waited = tokio::time::timeout(DEADLINE, rx)
        .await
        .unwrap_or_else(|_| panic!("{choice}: a blocking started process's wait hangs"))
        .expect("a blocking wait panicked");
    left.broken.extend(waited.into_iter().flatten());
    let taken: Vec<u32> = left
        .adopted
        .iter()
        .filter(|(_, t)| *t)
        .map(|(c, _)| c.id())
        .collect();
    if let Err(alive) = wait_gone(&taken, DEADLINE).await {
        let at: Vec<String> = alive
            .iter()
            .map(|p| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap_or_default())
            .collect();
        panic!("{choice} blocking={blocking} {state:?} {ending:?}: adopted processes run on: {alive:?} in {at:?}");
    }
    assert_gone(
        &tree,
        &format!("{choice} blocking={blocking} {state:?} {ending:?}: a round's processes"),
    )
    .await;
    for (mut c, _) in std::mem::take(&mut left.adopted) {
        let _ = c.kill();
        c.wait().unwrap();
    }
    left.broken
}
