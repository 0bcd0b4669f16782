//! The line callback of a blocking one-shot verb with no timeout and a
//! callback on one stream only, called on the calling thread (perfb): the
//! direct path reads the child's pipes there and hands their lines to the
//! callback itself, with no `pkit-reader` thread. With callbacks on both
//! streams the run keeps them on reader threads (one never holds back the
//! other). Every case runs twice, as a plain command (the
//! direct path where it applies: Linux, cgroup v2 or process group) and
//! with a `SystemRunner` of its own (always the engine, its callbacks on
//! reader threads), and the lines and results must agree. The mechanism
//! is the process-wide one: run this file under all three
//! (`PKIT_MECHANISM` unset, `pgroup`, `portable`); under the portable
//! backend both runs are the engine's and must still agree.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, Outcome, Output, SystemRunner};

/// A generous backstop for what should take moments.
const BACKSTOP: Duration = Duration::from_secs(60);

/// Whether a plain command's blocking verb takes the direct path here
/// (not under the portable backend, whose children have no pidfds).
fn direct_here() -> bool {
    !portable_run()
}

fn shell(script: &str) -> Command {
    Command::new("sh").args(["-c", script, "sh"])
}

/// `cmd` as the engine runs it: the same system runner, given explicitly.
fn engine(cmd: &Command) -> Command {
    cmd.clone().runner(Arc::new(SystemRunner::default()))
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

/// Waits (up to the backstop) until no `pkit-reader` thread is left (an
/// idle one exits after a second).
fn no_reader_threads(what: &str) {
    let until = Instant::now() + BACKSTOP;
    while reader_threads() > 0 {
        assert!(
            Instant::now() < until,
            "{what}: pkit-reader threads never exited"
        );
        std::thread::sleep(POLL);
    }
}

/// What the callbacks of one run saw.
#[derive(Default)]
struct Seen {
    stdout: Vec<String>,
    stderr: Vec<String>,
    /// The threads they ran on.
    threads: Vec<ThreadId>,
    /// The most `pkit-reader` threads a callback saw (looked at on a few
    /// of its calls).
    readers: usize,
    /// A callback ran while the other stream's was running.
    overlapped: bool,
}

/// Which streams get a noting callback.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Which {
    Stdout,
    Stderr,
    Both,
}

/// `cmd` with callbacks on the `which` streams noting into `seen`.
fn noted(cmd: Command, seen: &Arc<Mutex<Seen>>, which: Which) -> Command {
    let running = Arc::new(AtomicBool::new(false));
    let note = |err: bool| {
        let (seen, running) = (seen.clone(), running.clone());
        move |l: &str| {
            let overlapped = running.swap(true, Ordering::SeqCst);
            let mut s = seen.lock().unwrap();
            let n = s.stdout.len() + s.stderr.len();
            if n < 4 || n % 5000 == 0 {
                s.readers = s.readers.max(reader_threads());
            }
            s.overlapped |= overlapped;
            s.threads.push(std::thread::current().id());
            if err {
                s.stderr.push(l.to_owned());
            } else {
                s.stdout.push(l.to_owned());
            }
            drop(s);
            running.store(false, Ordering::SeqCst);
        }
    };
    match which {
        Which::Stdout => cmd.on_stdout_line(note(false)),
        Which::Stderr => cmd.on_stderr_line(note(true)),
        Which::Both => cmd.on_stdout_line(note(false)).on_stderr_line(note(true)),
    }
}

/// `cmd`'s blocking `output()` with noting callbacks on the `which`
/// streams; what its callbacks saw.
fn noted_output(cmd: Command, what: &str, which: Which) -> (Output, Seen) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let out = noted(cmd, &seen, which)
        .blocking()
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (out, seen)
}

/// The two runs agree, their callbacks' lines are `stdout` and `stderr`
/// (none where `which` set no callback), and the direct run's callback ran
/// on this thread, with no `pkit-reader` thread in the process; with both
/// callbacks, on reader threads, as the engine's always are.
fn agree(
    runs: &[(Output, Seen); 2],
    stdout: &[String],
    stderr: &[String],
    what: &str,
    which: Which,
) {
    let what = &format!("{what} ({which:?})");
    let none: &[String] = &[];
    let stdout = if which == Which::Stderr { none } else { stdout };
    let stderr = if which == Which::Stdout { none } else { stderr };
    let [(a, sa), (b, sb)] = runs;
    assert_eq!(a.outcome(), b.outcome(), "{what}: outcome");
    assert_eq!(a.stdout(), b.stdout(), "{what}: stdout");
    assert_eq!(a.stderr(), b.stderr(), "{what}: stderr");
    for (name, s) in [("direct", sa), ("engine", sb)] {
        for (stream, got, want) in [("stdout", &s.stdout, stdout), ("stderr", &s.stderr, stderr)] {
            assert_eq!(got.len(), want.len(), "{what} {name} {stream}: line count");
            if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
                panic!(
                    "{what} {name} {stream}: line {i} is {:?}, not {:?}",
                    got[i], want[i]
                );
            }
        }
    }
    let here = std::thread::current().id();
    if direct_here() && which != Which::Both {
        assert!(
            sa.threads.iter().all(|t| *t == here),
            "{what}: a direct run's callback ran off the calling thread"
        );
        assert_eq!(
            sa.readers, 0,
            "{what}: a pkit-reader thread during the direct run"
        );
        assert!(
            !sa.overlapped,
            "{what}: the direct run's callbacks overlapped"
        );
    }
    assert!(
        !sb.threads.contains(&here),
        "{what}: the engine's callback ran on the calling thread"
    );
    if which == Which::Both {
        assert!(
            !sa.threads.contains(&here),
            "{what}: with both callbacks, one ran on the calling thread"
        );
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// Runs `body` on this plain thread alone in the binary (no other test's
/// reader threads come and go), after every idle `pkit-reader` thread
/// exited; checks that nothing is left.
fn alone(name: &'static str, body: impl FnOnce()) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let guard = rt.block_on(begin_alone_in_binary());
    body();
    rt.block_on(end_exclusive(guard, name));
}

/// 100 and 100,000 lines (on both streams at once), a line longer than
/// `max_line_bytes` (cut at a character boundary), a last line with no
/// newline, CRLF endings, invalid UTF-8 and a NUL, each with a callback on
/// stdout, then on stderr: the direct path's callback gets the lines the
/// engine's gets, in order, from the calling thread, and no `pkit-reader`
/// thread appears. With callbacks on both streams (the 100,000 lines): the
/// same lines, from reader threads.
#[test]
fn the_direct_paths_callbacks_get_the_engines_lines_on_the_calling_thread() {
    alone(
        "the_direct_paths_callbacks_get_the_engines_lines_on_the_calling_thread",
        || {
            let numbers = |n: u32| (1..=n).map(|i| i.to_string()).collect::<Vec<_>>();
            let cases: Vec<(&str, Command, Vec<String>, Vec<String>)> = vec![
                ("seq 1 100", shell("seq 1 100"), numbers(100), vec![]),
                (
                    "100,000 lines on each stream",
                    shell("seq 1 100000 & seq 1 100000 >&2; wait"),
                    numbers(100_000),
                    numbers(100_000),
                ),
                (
                    "a line longer than max_line_bytes",
                    // 10 ASCII bytes then 'é' (2 bytes) x 10: cut at 15
                    // bytes, never inside a character.
                    shell("printf 'abcdefghij'; i=0; while [ $i -lt 10 ]; do printf '\\303\\251'; i=$((i+1)); done; printf '\\nshort\\n'")
                        .max_line_bytes(15),
                    vec![
                        "abcdefghijéé".to_owned(),
                        "ééééééé".to_owned(),
                        "é".to_owned(),
                        "short".to_owned(),
                    ],
                    vec![],
                ),
                (
                    "no trailing newline",
                    shell("printf 'a\\nb'; printf 'x\\ny' >&2"),
                    lines("a\nb"),
                    lines("x\ny"),
                ),
                (
                    "CRLF",
                    shell("printf 'a\\r\\nb\\r\\n\\r\\nc\\rd\\n'"),
                    vec!["a".into(), "b".into(), String::new(), "c\rd".into()],
                    vec![],
                ),
                (
                    "binary bytes",
                    shell("printf 'ok\\377\\376\\n\\000z\\n'"),
                    vec!["ok\u{fffd}\u{fffd}".into(), "\0z".into()],
                    vec![],
                ),
            ];
            no_reader_threads("before");
            // Each case's direct runs with one callback first, all of them
            // before any run that starts a reader thread (the engine's, and
            // a direct run with both callbacks): a `pkit-reader` thread seen
            // during one of them was started by a direct run, with no idle
            // one left by an engine's run to wait out (an idle reader
            // thread exits after a second: waited for after each engine's
            // run, that was most of this test's time).
            let runs: Vec<_> = cases
                .iter()
                .flat_map(|(what, cmd, _, _)| {
                    let mut which = vec![Which::Stdout, Which::Stderr];
                    if what.starts_with("100,000") {
                        which.push(Which::Both);
                    }
                    which.into_iter().map(move |which| (*what, cmd, which))
                })
                .collect();
            let mut direct: Vec<_> = runs
                .iter()
                .map(|&(what, cmd, which)| {
                    (which != Which::Both).then(|| noted_output(cmd.clone(), what, which))
                })
                .collect();
            for (&(what, cmd, which), direct) in runs.iter().zip(&mut direct) {
                let direct = direct
                    .take()
                    .unwrap_or_else(|| noted_output(cmd.clone(), what, which));
                let engine = noted_output(engine(cmd), what, which);
                let (_, _, out, err) = cases.iter().find(|c| c.0 == what).unwrap();
                agree(&[direct, engine], out, err, what, which);
            }
            // The engine's reader threads go idle, then exit.
            no_reader_threads("after the runs");
            // `run()`'s text capture beside a callback.
            let seen = Arc::new(Mutex::new(Seen::default()));
            let text = noted(shell("echo one; echo two"), &seen, Which::Stdout)
                .blocking()
                .run()
                .expect("run");
            assert_eq!(text, "one\ntwo");
            assert_eq!(seen.lock().unwrap().stdout, ["one", "two"]);
        },
    );
}

/// A callback that panics is disabled and the run goes on, as on the
/// engine's reader thread (`blocking_callbacks.rs` pins it there): its
/// stream is read to its end and captured whole, the other stream
/// captured whole too, the outcome is the exit's.
#[test]
fn a_panicking_callback_is_disabled_and_the_run_goes_on() {
    plain_suite(
        "a_panicking_callback_is_disabled_and_the_run_goes_on",
        || {
            let script = "printf 'a\\nb\\nc\\n'; echo x >&2; echo y >&2; exit 4";
            for cmd in [shell(script), engine(&shell(script))] {
                let calls = Arc::new(AtomicUsize::new(0));
                let c = calls.clone();
                let out = cmd
                    .on_stdout_line(move |l| {
                        c.fetch_add(1, Ordering::SeqCst);
                        assert_ne!(l, "b", "perfb: a callback's panic");
                    })
                    .blocking()
                    .output()
                    .expect("output");
                assert_eq!(out.outcome(), Outcome::Exited(4));
                assert_eq!(out.stdout_str(), "a\nb\nc\n");
                assert_eq!(out.stderr_str(), "x\ny\n");
                assert_eq!(calls.load(Ordering::SeqCst), 2, "a, b");
            }
        },
    );
}

/// A blocking call of pkit's inside a callback is refused with the
/// documented panic (caught here), on the direct path as on a reader
/// thread: the callback runs inside the facade's runtime context there
/// too. The run tells every line, and the thread's next blocking call
/// works.
#[test]
fn a_blocking_run_inside_a_callback_is_refused_on_both_paths() {
    plain_suite(
        "a_blocking_run_inside_a_callback_is_refused_on_both_paths",
        || {
            for cmd in [shell("seq 1 5"), engine(&shell("seq 1 5"))] {
                let (hits, refused) =
                    (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
                let (h, r) = (hits.clone(), refused.clone());
                let out = cmd
                    .on_stdout_line(move |_| {
                        h.fetch_add(1, Ordering::SeqCst);
                        let nested =
                            std::panic::catch_unwind(|| Command::new("true").blocking().output());
                        let msg = nested
                            .as_ref()
                            .err()
                            .and_then(|p| p.downcast_ref::<String>().cloned());
                        if msg.is_some_and(|m| m.contains("inside a Tokio runtime context")) {
                            r.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                    .blocking()
                    .output()
                    .expect("output");
                assert!(out.success(), "{out:?}");
                assert_eq!(out.stdout_str(), "1\n2\n3\n4\n5\n");
                assert_eq!(hits.load(Ordering::SeqCst), 5);
                assert_eq!(
                    refused.load(Ordering::SeqCst),
                    5,
                    "every nested call refused"
                );
                let again = Command::new("echo").arg("after").blocking().output();
                assert_eq!(again.expect("after").stdout_str(), "after\n");
            }
        },
    );
}

/// A run with a timeout keeps its callbacks off the calling thread, so the
/// timeout still ends the tree on time while a callback blocks: the child
/// is gone while the callback is still held, and the run then reports
/// `TimedOut` with the line told.
#[test]
fn a_timeout_fires_while_a_callback_blocks() {
    plain_suite("a_timeout_fires_while_a_callback_blocks", || {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let (pid_tx, pid_rx) = mpsc::channel();
        let g = gate.clone();
        let cmd = shell("echo $$; exec sleep 300")
            .timeout(Duration::from_millis(300))
            .on_stdout_line(move |l| {
                let _ = pid_tx.send(l.to_owned());
                let (open, changed) = &*g;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = changed.wait(open).unwrap();
                }
            });
        let run = std::thread::spawn(move || cmd.blocking().output());
        let opener = OpenOnDrop(gate.clone());
        let pid: u32 = pid_rx
            .recv_timeout(BACKSTOP)
            .expect("the callback was never called")
            .parse()
            .expect("pid");
        let until = Instant::now() + BACKSTOP;
        while !pid_gone(pid) {
            assert!(
                Instant::now() < until,
                "the timeout did not end the child while the callback blocked"
            );
            std::thread::sleep(POLL);
        }
        drop(opener);
        let out = run.join().expect("the run's thread").expect("output");
        assert_eq!(out.outcome(), Outcome::TimedOut);
    });
}

/// Callbacks on both streams keep running apart: a stdout callback that
/// waits for the stderr callback's line gets it (the run keeps them on
/// reader threads; read by the calling thread alone, the stderr line
/// would wait behind the blocked stdout callback).
#[test]
fn a_callback_waiting_for_the_other_streams_gets_its_line() {
    plain_suite(
        "a_callback_waiting_for_the_other_streams_gets_its_line",
        || {
            let gate = Arc::new((Mutex::new(false), Condvar::new()));
            let (g_out, g_err) = (gate.clone(), gate.clone());
            let waited = Arc::new(AtomicBool::new(false));
            let w = waited.clone();
            let out = shell("echo a; sleep 0.2; echo ready >&2")
                .on_stdout_line(move |_| {
                    let (open, changed) = &*g_out;
                    let open = open.lock().unwrap();
                    let (open, _) = changed
                        .wait_timeout_while(open, Duration::from_secs(20), |o| !*o)
                        .unwrap();
                    w.store(*open, Ordering::SeqCst);
                })
                .on_stderr_line(move |l| {
                    if l == "ready" {
                        let (open, changed) = &*g_err;
                        *open.lock().unwrap() = true;
                        changed.notify_all();
                    }
                })
                .blocking()
                .output()
                .expect("output");
            assert!(out.success(), "{out:?}");
            assert!(
                waited.load(Ordering::SeqCst),
                "the stdout callback never saw the stderr callback's line"
            );
        },
    );
}

/// Opens a gate (see `a_timeout_fires_while_a_callback_blocks`) when
/// dropped: a failing assertion never leaves a callback blocked.
struct OpenOnDrop(Arc<(Mutex<bool>, Condvar)>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        changed.notify_all();
    }
}

/// Runs a test body on a plain thread (no runtime entered), bracketed by
/// the suite's begin/end (nothing left behind) on a throwaway runtime.
fn plain_suite(name: &'static str, body: impl FnOnce()) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin(name));
    body();
    rt.block_on(suite.end());
}
