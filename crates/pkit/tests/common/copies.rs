//! Forked copies (plain `fork`, no `exec`) of a threaded test process, as
//! pkit supports them: copies forked while other threads loop pkit calls,
//! each bounded by an alarm and left by `_exit`, reaped by the test.
//!
//! A copy of a threaded process has only the forking thread; a lock
//! another thread held at the fork stays held in the copy. So a copy does
//! its work under an alarm (a hang ends by SIGALRM, never as a hung test),
//! on a watched thread of its own if the test wants a code for a hang
//! ([`watched`]), and never returns into the test harness (`_exit`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Writes `tag: s` and a line feed to fd 1 with one write(2): safe in a
/// forked copy, where std's stdout lock may be held by a thread that is
/// gone; a helper run's lines for [`super::helper_said`].
pub fn say(tag: &str, s: &str) {
    let line = format!("{tag}: {s}\n");
    // SAFETY: a valid buffer of that length.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
}

/// The code [`watched`] gives for work that did not return within its
/// limit.
pub const HUNG: i32 = 2;

/// Threads that run a body in a loop until [`stop`](Self::stop)ped:
/// thread `t` calls `body(t)`, `body(t + 1)`, ... (so that threads doing
/// kinds of work by `i % k` start on different kinds).
pub struct Loopers {
    stop: Arc<AtomicBool>,
    begun: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl Loopers {
    /// Starts `threads` threads looping `body`; returns at once (see
    /// [`wait_begun`](Self::wait_begun)).
    pub fn start(threads: usize, body: impl Fn(usize) + Send + Sync + 'static) -> Loopers {
        let stop = Arc::new(AtomicBool::new(false));
        let begun = Arc::new(AtomicUsize::new(0));
        let body = Arc::new(body);
        let threads = (0..threads)
            .map(|t| {
                let (stop, begun, body) = (stop.clone(), begun.clone(), body.clone());
                std::thread::spawn(move || {
                    begun.fetch_add(1, Ordering::SeqCst);
                    let mut i = t;
                    while !stop.load(Ordering::SeqCst) {
                        body(i);
                        i += 1;
                    }
                })
            })
            .collect();
        Loopers {
            stop,
            begun,
            threads,
        }
    }

    /// Returns once every thread has begun (spinning: no sleep).
    pub fn wait_begun(&self) {
        while self.begun.load(Ordering::SeqCst) < self.threads.len() {
            std::thread::yield_now();
        }
    }

    /// Stops the threads (each ends after its current call) and joins
    /// them; a thread's panic is this call's.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

/// Forks a copy of this process that sets an alarm of `alarm` seconds,
/// runs `copy` and `_exit`s with its code; the copy's pid (in the
/// parent: the copy never returns).
pub fn fork_copy(alarm: u32, copy: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: a forked copy of a threaded process, as pkit supports; the
    // copy is bounded by the alarm, then leaves by `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: plain values.
        unsafe { libc::alarm(alarm) };
        let code = copy();
        // SAFETY: ends the copy.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Waits for our forked copy `pid`: its exit code, at most `killed`;
/// `killed` when a signal ended it (its alarm: a hang).
pub fn reap(pid: libc::pid_t, killed: i32) -> i32 {
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status).min(killed)
    } else {
        killed
    }
}

/// In a copy: runs `f` on a thread of its own and waits for it up to
/// `limit`: 0 when it returned true, 1 when false, [`HUNG`] when it did
/// not return by then.
pub fn watched(limit: Duration, f: impl FnOnce() -> bool + Send + 'static) -> i32 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(_) => HUNG,
    }
}

/// Forks a copy that runs `f` [`watched`] up to `limit`, under an alarm
/// of `alarm` seconds, and reaps it: its code (0, 1, [`HUNG`]; a copy
/// ended by a signal counts as hung).
pub fn in_copy(alarm: u32, limit: Duration, f: impl FnOnce() -> bool + Send + 'static) -> i32 {
    reap(fork_copy(alarm, || watched(limit, f)), HUNG)
}

/// When the copies of [`copies_while_looping`] are reaped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reaped {
    /// Each before the next fork: one copy at a time.
    EachFirst,
    /// All after the last fork: the copies run at once.
    AfterAll,
}

/// What [`copies_while_looping`] forks, and when.
#[derive(Clone, Copy, Debug)]
pub struct Copies {
    /// How many copies.
    pub n: usize,
    /// The sleep before each fork.
    pub gap: Duration,
    /// How many threads loop the body meanwhile.
    pub loopers: usize,
    /// Whether the first fork waits until every looping thread has begun.
    pub begun: bool,
    /// A sleep after the loopers' start (and their begun, if waited for),
    /// before the first gap.
    pub warm_up: Duration,
    /// Each copy's alarm (seconds): it ends a copy that hangs.
    pub alarm: u32,
    /// What a copy ended by a signal counts as; exit codes above it count
    /// as it too.
    pub killed: i32,
    /// When the copies are reaped.
    pub reaped: Reaped,
}

/// Forks copies as `spec` says while threads loop `body` (see
/// [`Loopers`]); each copy runs `copy` and `_exit`s with its code (see
/// [`fork_copy`]). The loopers are stopped once every copy is reaped.
/// The copies' codes, in fork order (see [`reap`]).
pub fn copies_while_looping(
    spec: Copies,
    body: impl Fn(usize) + Send + Sync + 'static,
    copy: impl Fn() -> i32,
) -> Vec<i32> {
    let loopers = Loopers::start(spec.loopers, body);
    if spec.begun {
        loopers.wait_begun();
    }
    if !spec.warm_up.is_zero() {
        std::thread::sleep(spec.warm_up);
    }
    let mut codes = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..spec.n {
        std::thread::sleep(spec.gap);
        let pid = fork_copy(spec.alarm, &copy);
        match spec.reaped {
            Reaped::EachFirst => codes.push(reap(pid, spec.killed)),
            Reaped::AfterAll => pids.push(pid),
        }
    }
    codes.extend(pids.into_iter().map(|pid| reap(pid, spec.killed)));
    loopers.stop();
    codes
}
