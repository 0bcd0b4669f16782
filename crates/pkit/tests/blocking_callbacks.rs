//! The caller's code in a blocking run's output (a line callback, a tee's
//! writer, a decoder) runs on a thread of its stream's own, not on the
//! blocking facade's shared runtime thread (blkcb, attack14's MEDIUM): one
//! that blocks holds back its own stream alone, never another thread's
//! blocking runs or their timeouts; for the verbs, a started process and a
//! pty alike. What that must not change: a callback's lines, all of them
//! in order; a panicking callback or tee is disabled and the run goes on;
//! in the async API the code runs on the caller's runtime, as before.

mod common;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, Decoder, DecoderFactory, MechanismChoice, Outcome, Utf8Decoder};

/// How long another thread's 300 ms timeout may take to come back while
/// the caller's code is blocked (a generous backstop: it comes back in
/// about 300 ms unless it waits for that code).
const BACKSTOP: Duration = Duration::from_secs(60);

/// Where code of the caller's blocks (as a write to a stalled socket or a
/// lock held elsewhere would) until the test opens it.
#[derive(Default)]
struct Gate {
    /// (entered, open)
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl Gate {
    fn block(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 = true;
        self.changed.notify_all();
        while !s.1 {
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn open(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.changed.notify_all();
    }

    fn wait_entered(&self, what: &str) {
        let until = Instant::now() + BACKSTOP;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !s.0 {
            let left = until.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{what}: the caller's code was never called"
            );
            s = self
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Opens the gate when dropped: a failing assertion never leaves a
/// thread blocked in it.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// A blocking writer that blocks in the gate.
struct GatedWriter(Arc<Gate>);

impl io::Write for GatedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.block();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An async writer whose `poll_write` blocks in the gate (bad async code,
/// but the caller's).
struct GatedAsyncWriter(Arc<Gate>);

impl tokio::io::AsyncWrite for GatedAsyncWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.block();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// UTF-8, after blocking in the gate.
struct GatedDecoder(Arc<Gate>, Utf8Decoder);

impl Decoder for GatedDecoder {
    fn decode(&mut self, input: &[u8], last: bool, out: &mut String) {
        if !input.is_empty() {
            self.0.block();
        }
        self.1.decode(input, last, out);
    }
}

/// The kinds of the caller's code a stream's reading calls.
const KINDS: [&str; 5] = [
    "stdout callback",
    "stderr callback",
    "blocking tee",
    "async tee",
    "decoder",
];

/// `cmd` with code of `kind` that blocks in `gate`.
fn gated(kind: &str, cmd: Command, gate: &Arc<Gate>) -> Command {
    let g = gate.clone();
    match kind {
        "stdout callback" => cmd.on_stdout_line(move |_| g.block()),
        "stderr callback" => cmd.on_stderr_line(move |_| g.block()),
        "blocking tee" => cmd.stdout_tee_blocking(GatedWriter(g)),
        "async tee" => cmd.stdout_tee(GatedAsyncWriter(g)),
        // A decoder decodes for the lines: a line consumer is wanted.
        "decoder" => cmd
            .on_stdout_line(|_| {})
            .decoder(DecoderFactory::new(move || {
                GatedDecoder(g.clone(), Utf8Decoder::default())
            })),
        other => panic!("no kind {other}"),
    }
}

/// While `gate` holds the caller's code of another run blocked, a blocking
/// run on another thread (with a callback of its own, so that it is read
/// the same way) times out on time: it comes back before the gate opens.
fn another_threads_timeout_fires(choice: MechanismChoice, gate: &Gate, what: &str) {
    let (came, back) = mpsc::channel();
    let timed = std::thread::spawn(move || {
        let out = sh(choice, "sleep 300")
            .timeout(Duration::from_millis(300))
            .on_stderr_line(|_| {})
            .blocking()
            .output();
        let _ = came.send(());
        out
    });
    let in_time = back.recv_timeout(BACKSTOP).is_ok();
    gate.open();
    let out = timed
        .join()
        .expect("the timed thread")
        .expect("the timed run");
    assert!(
        in_time,
        "{choice} {what}: another thread's 300 ms timeout waited for the blocked code"
    );
    assert_eq!(out.outcome(), Outcome::TimedOut, "{choice} {what}");
}

/// A line callback, a tee (blocking or async) or a decoder that blocks in
/// one thread's blocking `output` stalls no other thread's blocking run;
/// its own run completes, whole, once it returns.
#[test]
fn slow_code_in_a_blocking_run_does_not_stall_another_threads_timeout() {
    in_suite(
        "slow_code_in_a_blocking_run_does_not_stall_another_threads_timeout",
        || {
            for choice in mechanisms() {
                for kind in KINDS {
                    let gate = Arc::new(Gate::default());
                    let _open = OpenOnDrop(gate.clone());
                    let cmd = gated(kind, sh(choice, "echo a; echo b >&2"), &gate);
                    let slow = std::thread::spawn(move || cmd.blocking().output());
                    gate.wait_entered(kind);
                    another_threads_timeout_fires(choice, &gate, kind);
                    let out = slow.join().expect("the slow thread").expect("the slow run");
                    assert!(out.success(), "{choice} {kind}: {:?}", out.outcome());
                    assert_eq!(
                        (&*out.stdout_str(), &*out.stderr_str()),
                        ("a\n", "b\n"),
                        "{choice} {kind}"
                    );
                }
            }
        },
    );
}

/// The same for a started process (the handle-returning blocking API), a
/// pty session's and a decoder of a line stream included: while its
/// callback blocks, another thread's
/// blocking run times out on time and the handle answers; once the
/// callback returns, `wait` has every line. A handle (kill on drop)
/// dropped while its callback blocks takes its tree down at once, not when
/// the callback returns.
#[test]
fn a_slow_callback_of_a_started_process_does_not_stall_another_threads_timeout() {
    in_suite(
        "a_slow_callback_of_a_started_process_does_not_stall_another_threads_timeout",
        || {
            for choice in mechanisms() {
                // A pty child must be its group's first process: a group each.
                let new_group =
                    || pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice));
                for pty in [false, true] {
                    let group = new_group().expect("group");
                    let what = if pty { "pty" } else { "pipes" };
                    let gate = Arc::new(Gate::default());
                    let _open = OpenOnDrop(gate.clone());
                    let seen = Arc::new(Mutex::new(Vec::new()));
                    let (g, s) = (gate.clone(), seen.clone());
                    let mut cmd = Command::new("sh")
                        .args(["-c", "echo one; echo two"])
                        .on_stdout_line(move |l| {
                            g.block();
                            s.lock().unwrap().push(l.to_owned());
                        });
                    if pty {
                        cmd = cmd.pty(24, 80);
                    }
                    let mut p = group.start(&cmd).expect("start");
                    gate.wait_entered(what);
                    assert!(p.try_wait().is_ok(), "{choice} {what}: the handle answers");
                    another_threads_timeout_fires(choice, &gate, what);
                    let out = p.wait().expect("wait");
                    assert!(out.success(), "{choice} {what}: {:?}", out.outcome());
                    let lines = seen.lock().unwrap().clone();
                    assert_eq!(lines, ["one", "two"], "{choice} {what}");
                }
                // A decoder of a started process's line stream (no callback).
                let group = new_group().expect("group");
                let gate = Arc::new(Gate::default());
                let _open = OpenOnDrop(gate.clone());
                let g = gate.clone();
                let cmd = Command::new("sh")
                    .args(["-c", "echo one; echo two"])
                    .stream_lines()
                    .decoder(DecoderFactory::new(move || {
                        GatedDecoder(g.clone(), Utf8Decoder::default())
                    }));
                let mut p = group.start(&cmd).expect("start");
                gate.wait_entered("decoder");
                another_threads_timeout_fires(choice, &gate, "decoder of a line stream");
                let lines: Vec<String> = p.lines().map(|l| l.text).collect();
                assert_eq!(lines, ["one", "two"], "{choice}: decoder");
                assert!(p.wait().expect("wait").success(), "{choice}: decoder");
                // Dropped while the callback blocks.
                let group = new_group().expect("group");
                let gate = Arc::new(Gate::default());
                let _open = OpenOnDrop(gate.clone());
                let g = gate.clone();
                let cmd = Command::new("sh")
                    .args(["-c", "echo one; exec sleep 300"])
                    .on_stdout_line(move |_| g.block());
                let mut p = group.start(&cmd).expect("start");
                p.set_kill_on_drop(true);
                let pid = p.pid();
                gate.wait_entered("dropped");
                drop(p);
                let until = Instant::now() + BACKSTOP;
                while !pid_gone(pid) {
                    assert!(
                        Instant::now() < until,
                        "{choice}: the dropped handle's child lives"
                    );
                    std::thread::sleep(POLL);
                }
                gate.open();
                group.shutdown(Duration::from_secs(1)).expect("shutdown");
            }
        },
    );
}

/// A callback that panics is disabled and the run goes on, as before
/// (blkcb kept it): its stream is read to its end and captured whole, the
/// other stream's callback keeps its lines; a tee's writer that panics is
/// disabled and reported as the stream's tee error. The verbs and a
/// started process alike.
#[test]
fn a_panicking_callback_or_tee_is_disabled_and_the_run_goes_on() {
    in_suite(
        "a_panicking_callback_or_tee_is_disabled_and_the_run_goes_on",
        || {
            for choice in mechanisms() {
                let group = pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice))
                    .expect("group");
                for started in [false, true] {
                    let calls = Arc::new(AtomicUsize::new(0));
                    let errs = Arc::new(Mutex::new(Vec::new()));
                    let (c, e) = (calls.clone(), errs.clone());
                    let cmd = sh(choice, "printf 'a\\nb\\nc\\n'; echo x >&2; echo y >&2")
                        .on_stdout_line(move |l| {
                            c.fetch_add(1, Ordering::SeqCst);
                            assert_ne!(l, "b", "blkcb: a callback's panic");
                        })
                        .on_stderr_line(move |l| e.lock().unwrap().push(l.to_owned()))
                        .stderr_tee_blocking(Panicking);
                    let out = if started {
                        group.start(&cmd).expect("start").wait().expect("wait")
                    } else {
                        cmd.blocking().output().expect("output")
                    };
                    assert!(out.success(), "{choice} {started}: {:?}", out.outcome());
                    assert_eq!(out.stdout_str(), "a\nb\nc\n", "{choice} {started}");
                    assert_eq!(out.stderr_str(), "x\ny\n", "{choice} {started}");
                    assert_eq!(calls.load(Ordering::SeqCst), 2, "{choice} {started}: a, b");
                    assert_eq!(*errs.lock().unwrap(), ["x", "y"], "{choice} {started}");
                    let tee = out.stderr_tee_error().expect("the tee's error");
                    assert!(
                        tee.to_string().contains("panicked"),
                        "{choice} {started}: {tee}"
                    );
                }
            }
        },
    );
}

/// A writer that panics.
struct Panicking;

impl io::Write for Panicking {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        panic!("blkcb: a tee's panic")
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// 100,000 lines on each stream reach their callbacks whole and in order
/// (each stream's own), from a blocking `output` and from a started
/// process whose line stream is read too.
#[test]
fn a_hundred_thousand_lines_reach_the_callback_in_order() {
    in_suite(
        "a_hundred_thousand_lines_reach_the_callback_in_order",
        || {
            const N: usize = 100_000;
            let expected: Vec<String> = (1..=N).map(|i| i.to_string()).collect();
            for choice in mechanisms() {
                let group = pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice))
                    .expect("group");
                for started in [false, true] {
                    let out_lines = Arc::new(Mutex::new(Vec::with_capacity(N)));
                    let err_lines = Arc::new(Mutex::new(Vec::with_capacity(N)));
                    let (o, e) = (out_lines.clone(), err_lines.clone());
                    let cmd = sh(choice, "seq 1 100000 & seq 1 100000 >&2; wait")
                        .on_stdout_line(move |l| o.lock().unwrap().push(l.to_owned()))
                        .on_stderr_line(move |l| e.lock().unwrap().push(l.to_owned()));
                    let out = if started {
                        let mut p = group.start(&cmd.stream_lines()).expect("start");
                        let streamed = p.lines().count();
                        assert_eq!(streamed, 2 * N, "{choice}: the line stream");
                        p.wait().expect("wait")
                    } else {
                        cmd.blocking().output().expect("output")
                    };
                    assert!(out.success(), "{choice} {started}: {:?}", out.outcome());
                    for (name, got) in [("stdout", &out_lines), ("stderr", &err_lines)] {
                        let got = got.lock().unwrap();
                        assert_eq!(got.len(), N, "{choice} {started} {name}");
                        if let Some(i) = (0..N).find(|&i| got[i] != expected[i]) {
                            panic!(
                                "{choice} {started} {name}: line {i} is {:?}, not {:?}",
                                got[i], expected[i]
                            );
                        }
                    }
                }
            }
        },
    );
}

/// Where the caller's code runs: under the blocking API on a `pkit-reader`
/// thread (never the shared `pkit-blocking` one, never the caller's); in
/// the async API, as before, on the caller's runtime (here a
/// current-thread one: the test's own thread).
#[test]
fn blocking_code_runs_on_a_reader_thread_of_its_own() {
    in_suite("blocking_code_runs_on_a_reader_thread_of_its_own", || {
        for choice in mechanisms() {
            for kind in ["stdout callback", "blocking tee", "decoder"] {
                let names = Arc::new(Mutex::new(Vec::new()));
                let cmd = named(kind, sh(choice, "echo a"), &names);
                let out = cmd.blocking().output().expect("output");
                assert_eq!(out.stdout_str(), "a\n", "{choice} {kind}");
                let names = names.lock().unwrap();
                assert!(!names.is_empty(), "{choice} {kind}: never called");
                assert!(
                    names.iter().all(|n| n.as_deref() == Some("pkit-reader")),
                    "{choice} {kind}: ran on {names:?}"
                );
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let here = std::thread::current().name().map(str::to_owned);
        for choice in mechanisms() {
            for kind in ["stdout callback", "blocking tee", "decoder"] {
                let names = Arc::new(Mutex::new(Vec::new()));
                let cmd = named(kind, sh(choice, "echo a"), &names);
                let out = rt.block_on(cmd.output()).expect("async output");
                assert_eq!(out.stdout_str(), "a\n", "{choice} {kind}");
                let names = names.lock().unwrap();
                assert!(!names.is_empty(), "{choice} {kind}: never called (async)");
                assert!(
                    names.iter().all(|n| *n == here),
                    "{choice} {kind}: async, ran on {names:?}, not on {here:?}"
                );
            }
        }
    });
}

/// The name of the thread the caller's code runs on, pushed to `names`.
fn named(kind: &str, cmd: Command, names: &Arc<Mutex<Vec<Option<String>>>>) -> Command {
    let n = names.clone();
    let note = move || {
        let name = std::thread::current().name().map(str::to_owned);
        n.lock().unwrap().push(name);
    };
    match kind {
        "stdout callback" => cmd.on_stdout_line(move |_| note()),
        "blocking tee" => cmd.stdout_tee_blocking(Noting(Box::new(note))),
        "decoder" => {
            let note = Arc::new(note);
            cmd.on_stdout_line(|_| {})
                .decoder(DecoderFactory::new(move || {
                    NotingDecoder(note.clone(), Utf8Decoder::default())
                }))
        }
        other => panic!("no kind {other}"),
    }
}

struct Noting(Box<dyn Fn() + Send>);

impl io::Write for Noting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (self.0)();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct NotingDecoder(Arc<dyn Fn() + Send + Sync>, Utf8Decoder);

impl Decoder for NotingDecoder {
    fn decode(&mut self, input: &[u8], last: bool, out: &mut String) {
        (self.0)();
        self.1.decode(input, last, out);
    }
}

/// `pkit-reader` threads of this process now.
fn reader_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim_end() == "pkit-reader")
                })
                .count()
        })
        .unwrap_or(0)
}

/// The reader threads a blocking run's callbacks ran on are kept a short
/// while for the next ones (perf38: a thread's start and end cost each such
/// run a dozen system calls and more): runs one after another reuse a few
/// threads instead of starting one each. A reader thread is never handed a
/// second reader while its first one's callback runs: while one run's
/// callback blocks, runs of another thread get threads of their own and
/// complete. Idle threads exit after a while.
#[test]
fn reader_threads_are_reused_and_never_shared() {
    const RUNS: usize = 12;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let alone = rt.block_on(begin_exclusive());
    let ids = |choice: MechanismChoice| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let out = sh(choice, "echo a")
            .on_stdout_line(move |_| s.lock().unwrap().push(std::thread::current().id()))
            .blocking()
            .output()
            .expect("output");
        assert_eq!(out.stdout_str(), "a\n", "{choice}");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{choice}");
        seen[0]
    };
    for choice in mechanisms() {
        let mut used: Vec<_> = (0..RUNS).map(|_| ids(choice)).collect();
        used.sort_unstable_by_key(|id| format!("{id:?}"));
        used.dedup();
        assert!(
            used.len() <= RUNS / 2,
            "{choice}: {RUNS} runs one after another used {} reader threads",
            used.len()
        );

        // Once idle a while, the threads exit (none is left: no other test
        // runs meanwhile)...
        let until = Instant::now() + BACKSTOP;
        while reader_threads() > 0 {
            assert!(
                Instant::now() < until,
                "{choice}: {} idle reader threads never exited",
                reader_threads()
            );
            std::thread::sleep(POLL);
        }
        // ...then one run's callback blocks on the reader thread it was
        // given (a new one)...
        let gate = Arc::new(Gate::default());
        let _open = OpenOnDrop(gate.clone());
        let (g, blocked_on) = (gate.clone(), Arc::new(Mutex::new(None)));
        let b = blocked_on.clone();
        let slow = std::thread::spawn(move || {
            sh(choice, "echo a")
                .on_stdout_line(move |_| {
                    *b.lock().unwrap() = Some(std::thread::current().id());
                    g.block();
                })
                .blocking()
                .output()
        });
        gate.wait_entered("the slow run");
        let busy = blocked_on
            .lock()
            .unwrap()
            .expect("the slow callback's thread");
        // ...and the runs of another thread, meanwhile, get other threads
        // (the first a new one: no thread was idle).
        let (done, came) = mpsc::channel();
        let others = std::thread::spawn(move || {
            let used: Vec<_> = (0..4).map(|_| ids(choice)).collect();
            let _ = done.send(());
            used
        });
        let in_time = came.recv_timeout(BACKSTOP).is_ok();
        gate.open();
        let used = others.join().expect("the other runs");
        assert!(
            in_time,
            "{choice}: runs waited for another run's blocked callback"
        );
        assert!(
            !used.contains(&busy),
            "{choice}: a reader was handed to the thread of a callback still running"
        );
        let out = slow.join().expect("the slow thread").expect("the slow run");
        assert_eq!(out.stdout_str(), "a\n", "{choice}");
    }
    rt.block_on(end_exclusive(
        alone,
        "reader_threads_are_reused_and_never_shared",
    ));
}
