#![cfg(target_os = "linux")]
//! rv37: a hostile review of the last session's merges (attack20, grace2,
//! blkcb, evq, susp2, claim2, audit's R9, lows3). Findings were
//! `#[ignore = "rv37: ..."]` tests that failed on main (fixed by forkgen:
//! identity by pid and fork generation; a panicking factory contained);
//! the rest are probes that held. Run in the three passes (unset, `PKIT_MECHANISM=pgroup`,
//! `PKIT_MECHANISM=portable`); the helper runs of this binary play a
//! `RV37_ROLE`.
//!
//! Findings (fixed; they failed on main):
//! - HIGH (narrow trigger) [`a_pid_one_owners_copy_in_a_new_pid_namespace_builds_its_own_blocking_runtime`]:
//!   pkit tells a forked copy from its maker by the pid alone
//!   (`sys::pid::current`, `Creator::is_here`). An owner that is pid 1 of
//!   its namespace (a container's init) whose copy is forked into a new
//!   pid namespace (`unshare(CLONE_NEWPID)`, `fork`) has a copy that is
//!   pid 1 too: it takes the parent's blocking runtime for its own. The
//!   copy's blocking run (with a line callback: through the runtime)
//!   never returns, and the parent then either dies of SIGSEGV (about
//!   half the runs here: the shared epoll instance runtime.rs warns of)
//!   or its own blocking runs never return. A control run whose copy uses
//!   no pkit passes; so does a plain fork (the probe below). Needs root
//!   and `unshare --pid`; every pass.
//! - LOW [`a_pid_one_owners_copy_in_a_new_pid_namespace_reads_its_own_cgroup`]:
//!   the same hole in R9's kept `/proc/self/cgroup` descriptor
//!   (`host::own_cgroup`, keyed by pid): that copy, moved to another
//!   cgroup, is told its parent's cgroup (its groups are made there).
//!   Default pass (cgroup v2).
//! - LOW [`a_panicking_decoder_factory_is_contained_as_a_panicking_decoder_is`]:
//!   grace2 contains a panicking `Decoder::decode`, but the
//!   `DecoderFactory` closure (the caller's code too) that panics in
//!   `make` panics the run: async `output()` on the caller's thread,
//!   blocking on `pkit-reader` and resumed in the caller. Nothing is left
//!   running (the suite's end check passes). Every pass.
//!
//! Probes that held: an owner moved back and forth between two cgroups
//! making groups from four threads and one-shot runs (the pool) after
//! each move (R9); a copy forked while a reader thread is inside a line
//! callback runs its own blocking runtime, and the parent goes on
//! (blkcb, fork); a blocking call inside a blocking run's line callback is
//! refused (a caught panic), never stuck, and the run tells every line
//! (blkcb, nesting); blocking runs with callbacks in a `pids` cgroup, and
//! as nobody at its `RLIMIT_NPROC`, with no task to spare for the reader
//! threads (blkcb's fallback: a clean spawn error or every line told
//! once); a stuck async tee of blocking
//! runs and starts (on reader threads) abandoned at the timeout, four at
//! once, no reader thread left (grace2 x blkcb); the VT stripper on
//! random CSI/ESC/CAN/SUB text keeps every line feed and leaves no ESC,
//! CAN or SUB (attack20).

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pkit::{Command, MechanismChoice};

const SUITE: &str = "review_rv37";

/// The role this run of the binary plays (a helper run), if any.
fn role() -> Option<String> {
    std::env::var("RV37_ROLE").ok()
}

fn is_root() -> bool {
    // Raw: the C library's geteuid.
    // SAFETY: no arguments, no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Writes `s` and a line feed to fd 1 with one write(2) (safe in a forked
/// child, where std's stdout lock may be held by a thread that is gone).
fn say(s: &str) {
    copies::say("rv37", s);
}

/// Moves this whole process into the cgroup v2 directory `dir`.
fn move_self(dir: &Path) {
    std::fs::write(dir.join("cgroup.procs"), "0")
        .unwrap_or_else(|e| panic!("move into {}: {e}", dir.display()));
}

/// Two fresh cgroup v2 directories beside the owner's groups (under the
/// test's own cgroup), removed (with whatever empty groups are left in
/// them) when dropped.
struct TwoDirs {
    a: PathBuf,
    b: PathBuf,
}

impl TwoDirs {
    fn new(tag: &str) -> TwoDirs {
        let parent = group_parent().expect("a cgroup v2 parent");
        let base = common::unique_name(&format!("rv37-{tag}"));
        let a = parent.join(format!("{base}-a"));
        let b = parent.join(format!("{base}-b"));
        for d in [&a, &b] {
            std::fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        TwoDirs { a, b }
    }
}

fn remove_tree(dir: &Path) -> bool {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    std::fs::remove_dir(dir).is_ok() || !dir.exists()
}

impl Drop for TwoDirs {
    fn drop(&mut self) {
        for d in [&self.a, &self.b] {
            let end = Instant::now() + DEADLINE;
            while !remove_tree(d) && Instant::now() < end {
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Runs `cmd` (stdout piped, stderr dropped) for at most `limit`
/// (killed then): whether it exited with success, and its stdout's
/// `rv37: ` lines.
fn run_helper(cmd: std::process::Command, limit: Duration) -> (bool, Vec<String>) {
    let (status, text) = run_helper_cmd(cmd, limit);
    helper_said(status, &text, "rv37: ")
}

/// This binary again, running only test `test` in role `role`, with
/// `envs`, under `prefix` (e.g. `unshare --pid --fork --kill-child`).
fn helper_cmd(
    prefix: &[&str],
    test: &str,
    role: &str,
    envs: &[(&str, &str)],
) -> std::process::Command {
    let mut cmd = self_as(test, ("RV37_ROLE", role), prefix);
    cmd.envs(envs.iter().copied());
    cmd
}

fn unshare_pid_works() -> bool {
    is_root()
        && std::process::Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// In the helper: forks a child into a new pid namespace (so that the
/// child of a pid-1 owner is pid 1 too) and runs `child` there (with a
/// 15 s alarm); waits for it and says how it ended.
fn fork_into_new_pid_namespace(child: impl FnOnce() + Send) {
    // On a thread of its own: unshare(CLONE_NEWPID) sets the namespace of
    // that thread's later children only (the rest of the helper forks and
    // spawns as before).
    std::thread::scope(|s| {
        s.spawn(|| fork_here_into_new_pid_namespace(child));
    });
}

fn fork_here_into_new_pid_namespace(child: impl FnOnce()) {
    // Raw: unshare(2) and fork(3) are what is tested.
    // SAFETY: unshare(CLONE_NEWPID) changes only the namespace of later
    // children.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        say("unshare failed");
        return;
    }
    // SAFETY: a forked copy of a threaded process, as pkit supports (its
    // copy-aware state is what is tested); the child runs `child` then
    // `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: alarm and _exit take plain values.
        unsafe { libc::alarm(15) };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child));
        if r.is_err() {
            say("child panicked");
        }
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    say(&format!("child status {status:#x}"));
}

fn own_pid() -> u32 {
    // SAFETY: no arguments.
    (unsafe { libc::getpid() }) as u32
}

// ---------------------------------------------------------------------------
// R9 (cgroup_host): a kept /proc/self/cgroup descriptor, told apart by pid
// ---------------------------------------------------------------------------

/// `own_cgroup` keeps a descriptor of `/proc/self/cgroup` for "this
/// process", told apart from a forked copy's by the pid. An owner that is
/// pid 1 of its namespace (a container's init: `unshare --pid --fork`,
/// Docker's entry point) whose forked copy is made in a new pid namespace
/// (`unshare(CLONE_NEWPID)` then `fork`) has a copy that is pid 1 too: it
/// keeps reading its parent's `/proc/<pid>/cgroup`. Moved to a cgroup of
/// its own, it still makes its groups in the parent's: the R9 fix undone.
/// (Before 0416767 each call opened `/proc/self/cgroup` afresh.)
#[test]
fn a_pid_one_owners_copy_in_a_new_pid_namespace_reads_its_own_cgroup() {
    let name = "a_pid_one_owners_copy_in_a_new_pid_namespace_reads_its_own_cgroup";
    if role().as_deref() == Some("pidns-cgroup") {
        let a = PathBuf::from(std::env::var("RV37_A").unwrap());
        let b = PathBuf::from(std::env::var("RV37_B").unwrap());
        say(&format!("pid {}", own_pid()));
        move_self(&a);
        let g = pkit::Group::builder()
            .mechanism(MechanismChoice::Cgroup)
            .build()
            .expect("a group in A");
        say(&format!(
            "parent group {:?}",
            cgroup_dir(&g).and_then(|d| d.parent().map(Path::to_path_buf))
        ));
        drop(g);
        fork_into_new_pid_namespace(|| {
            say(&format!("child pid {}", own_pid()));
            move_self(&b);
            say(&format!(
                "child sees {:?}",
                pkit::host_containment().group_parent
            ));
        });
        // The parent moves back out, so that its directories can go.
        move_self(a.parent().unwrap());
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        if !cgroup_pass(name) {
            return;
        }
        if !unshare_pid_works() {
            skipped(name, "needs root and unshare --pid");
            return;
        }
        let dirs = TwoDirs::new("pidns");
        let cmd = helper_cmd(
            &["unshare", "--pid", "--fork", "--kill-child"],
            name,
            "pidns-cgroup",
            &[
                ("RV37_A", dirs.a.to_str().unwrap()),
                ("RV37_B", dirs.b.to_str().unwrap()),
            ],
        );
        let (ok, lines) = run_helper(cmd, Duration::from_secs(60));
        assert!(ok, "the helper failed: {lines:#?}");
        assert!(lines.iter().any(|l| l == "pid 1"), "{lines:#?}");
        assert!(lines.iter().any(|l| l == "child pid 1"), "{lines:#?}");
        let want = format!("child sees Some({:?})", dirs.b);
        assert!(
            lines.contains(&want),
            "the copy, moved to B, must make its groups in B: {lines:#?}"
        );
    });
}

/// The blocking facade's runtime is told apart from a forked copy's by
/// the pid too (`Creator::is_here`): a pid-1 owner's copy forked into a
/// new pid namespace takes its parent's runtime for its own (its thread
/// is not in the copy; its epoll instance is shared with the parent, which
/// runtime.rs says once killed a parent by SIGSEGV).
#[test]
fn a_pid_one_owners_copy_in_a_new_pid_namespace_builds_its_own_blocking_runtime() {
    let name = "a_pid_one_owners_copy_in_a_new_pid_namespace_builds_its_own_blocking_runtime";
    if role().as_deref() == Some("pidns-blocking") {
        say(&format!("pid {}", own_pid()));
        let r = Command::new("echo")
            .arg("one")
            .on_stdout_line(|_| {})
            .blocking()
            .output();
        say(&format!("parent first ok {}", r.is_ok()));
        fork_into_new_pid_namespace(|| {
            say(&format!("child pid {}", own_pid()));
            // Through the runtime (a line callback), not the direct wait;
            // on a thread, waited for 10 s (the copy is its namespace's
            // init: no alarm ends it).
            if std::env::var_os("RV37_CONTROL").is_some() {
                return;
            }
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let r = Command::new("echo")
                    .arg("two")
                    .timeout(Duration::from_secs(5))
                    .on_stdout_line(|_| {})
                    .blocking()
                    .output();
                let _ = tx.send(r);
            });
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(r) => {
                    say(&format!(
                        "child ok {}",
                        r.as_ref().is_ok_and(|o| o.stdout_str().trim() == "two")
                    ));
                    say(&format!("child: {r:?}"));
                }
                Err(_) => say("child: the blocking call never returned (10 s)"),
            }
        });
        // The parent's own calls afterwards, bounded the same way.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = Command::new("echo").arg("three").blocking().output();
            for _ in 0..5 {
                if r.is_err() {
                    break;
                }
                r = Command::new("echo")
                    .arg("three")
                    .timeout(Duration::from_secs(5))
                    .on_stdout_line(|_| {})
                    .blocking()
                    .output();
            }
            let _ = tx.send(r);
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(r) => say(&format!(
                "parent again ok {}",
                r.as_ref().is_ok_and(|o| o.stdout_str().trim() == "three")
            )),
            Err(_) => say("parent again: its blocking call never returned (10 s)"),
        }
        // SAFETY: ends the helper (its calls may hang for ever).
        unsafe { libc::_exit(0) };
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        if !unshare_pid_works() {
            skipped(name, "needs root and unshare --pid");
            return;
        }
        let cmd = helper_cmd(
            &["unshare", "--pid", "--fork", "--kill-child"],
            name,
            "pidns-blocking",
            &[],
        );
        let (ok, lines) = run_helper(cmd, Duration::from_secs(60));
        assert!(lines.iter().any(|l| l == "child pid 1"), "{lines:#?}");
        assert!(
            lines.iter().any(|l| l == "child ok true"),
            "the copy's blocking call: {lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l == "parent again ok true"),
            "the parent after its copy: {lines:#?}"
        );
        assert!(ok, "the helper failed: {lines:#?}");
    });
}

/// Probe (blkcb, the control of the two findings above): a copy forked
/// (no pid namespace) while the parent's blocking run has its reader
/// thread inside a line callback builds its own runtime: its blocking run
/// with a callback works, and so do the parent's, before and after.
#[test]
fn a_copy_forked_while_a_reader_thread_is_in_a_callback_runs_its_own() {
    let name = "a_copy_forked_while_a_reader_thread_is_in_a_callback_runs_its_own";
    if role().as_deref() == Some("fork-reader") {
        let entered = Arc::new(std::sync::Barrier::new(2));
        let release = Arc::new(std::sync::Mutex::new(()));
        let hold = release.lock().unwrap();
        let (e, r) = (entered.clone(), release.clone());
        let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let cmd = Command::new("sh")
            .args(["-c", "echo one; echo two"])
            .timeout(Duration::from_secs(30))
            .on_stdout_line(move |_| {
                if first.swap(false, Ordering::SeqCst) {
                    e.wait();
                    drop(r.lock());
                }
            });
        let run = std::thread::spawn(move || cmd.blocking().output());
        entered.wait();
        // The reader thread is in the callback now: fork.
        // SAFETY: a forked copy of a threaded process, as pkit supports;
        // the child's work is bounded by a 10 s wait, then `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let r = Command::new("echo")
                    .arg("two")
                    .timeout(Duration::from_secs(5))
                    .on_stdout_line(|_| {})
                    .blocking()
                    .output();
                let _ = tx.send(r.is_ok_and(|o| o.stdout_str() == "two\n"));
            });
            let ok = rx.recv_timeout(Duration::from_secs(10)).unwrap_or(false);
            // SAFETY: ends the copy.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        say(&format!("copy status {status:#x}"));
        drop(hold);
        let out = run.join().unwrap();
        say(&format!(
            "parent ok {}",
            out.is_ok_and(|o| o.stdout_str() == "one\ntwo\n")
        ));
        let again = Command::new("echo")
            .arg("three")
            .on_stdout_line(|_| {})
            .blocking()
            .output();
        say(&format!("parent again ok {}", again.is_ok()));
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let cmd = helper_cmd(&[], name, "fork-reader", &[]);
        let (ok, lines) = run_helper(cmd, Duration::from_secs(60));
        assert!(ok, "{lines:#?}");
        for want in ["copy status 0x0", "parent ok true", "parent again ok true"] {
            assert!(lines.iter().any(|l| l == want), "{want}: {lines:#?}");
        }
    });
}

/// Probe (R9): an owner moved back and forth between two cgroups, making
/// groups from four threads at once after each move and a one-shot run
/// (the pool of spare directories): every group and every run's process
/// lands under the cgroup the owner is in now.
#[test]
fn an_owner_moved_back_and_forth_makes_every_group_where_it_is() {
    let name = "an_owner_moved_back_and_forth_makes_every_group_where_it_is";
    if role().as_deref() == Some("moves") {
        let a = PathBuf::from(std::env::var("RV37_A").unwrap());
        let b = PathBuf::from(std::env::var("RV37_B").unwrap());
        let mount = a.parent().unwrap().to_path_buf();
        let mut bad = Vec::new();
        for round in 0..8 {
            let here = if round % 2 == 0 { &a } else { &b };
            move_self(here);
            let made: Vec<Option<PathBuf>> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            let g = pkit::Group::builder()
                                .mechanism(MechanismChoice::Cgroup)
                                .build()
                                .expect("group");
                            cgroup_dir(&g).and_then(|d| d.parent().map(Path::to_path_buf))
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for m in made {
                if m.as_deref() != Some(here.as_path()) {
                    bad.push(format!(
                        "round {round}: group under {m:?}, owner in {here:?}"
                    ));
                }
            }
            for _ in 0..2 {
                let out = cmd(MechanismChoice::Cgroup, "cat")
                    .arg("/proc/self/cgroup")
                    .blocking()
                    .output()
                    .expect("cat");
                let rel = here.strip_prefix(&mount).unwrap();
                let want = format!("0::/{}/", rel.display());
                if !out.stdout_str().lines().any(|l| l.starts_with(&want)) {
                    bad.push(format!(
                        "round {round}: a run's process in {:?}, owner in {here:?}",
                        out.stdout_str()
                    ));
                }
            }
        }
        pkit::release_spare_cgroups();
        move_self(&mount);
        say(&format!("bad {bad:?}"));
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        if !cgroup_pass(name) {
            return;
        }
        if !is_root() {
            skipped(name, "needs root to move processes between cgroups");
            return;
        }
        let dirs = TwoDirs::new("moves");
        let cmd = helper_cmd(
            &[],
            name,
            "moves",
            &[
                ("RV37_A", dirs.a.to_str().unwrap()),
                ("RV37_B", dirs.b.to_str().unwrap()),
            ],
        );
        let (ok, lines) = run_helper(cmd, Duration::from_secs(60));
        assert!(ok, "the helper failed: {lines:#?}");
        assert!(lines.iter().any(|l| l == "bad []"), "{lines:#?}");
    });
}

// ---------------------------------------------------------------------------
// blkcb: the caller's code on `pkit-reader` threads
// ---------------------------------------------------------------------------

/// Probe (blkcb, nesting): a blocking run's line callback (on its reader
/// thread, inside the facade's runtime context) that itself calls the
/// blocking API gets the documented refusal (a panic, caught here), never a
/// deadlock; the outer run ends with every line, and the next blocking
/// call of that thread works. Sixteen such runs from four threads at once.
#[test]
fn a_blocking_call_inside_a_blocking_runs_callback_is_refused_not_stuck() {
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        for choice in mechanisms() {
            let refused = AtomicUsize::new(0);
            let seen = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..4 {
                            let hits = Arc::new(AtomicUsize::new(0));
                            let nested = Arc::new(AtomicUsize::new(0));
                            let (h, n) = (hits.clone(), nested.clone());
                            let out = sh(choice, "seq 1 5")
                                .timeout(Duration::from_secs(30))
                                .on_stdout_line(move |_| {
                                    h.fetch_add(1, Ordering::SeqCst);
                                    let r = std::panic::catch_unwind(|| {
                                        Command::new("true").blocking().output()
                                    });
                                    if r.is_err() {
                                        n.fetch_add(1, Ordering::SeqCst);
                                    }
                                })
                                .blocking()
                                .output()
                                .unwrap_or_else(|e| panic!("{choice}: {e}"));
                            assert!(out.success(), "{choice}: {out:?}");
                            assert_eq!(out.stdout_str(), "1\n2\n3\n4\n5\n", "{choice}");
                            seen.fetch_add(hits.load(Ordering::SeqCst), Ordering::SeqCst);
                            refused.fetch_add(nested.load(Ordering::SeqCst), Ordering::SeqCst);
                        }
                    });
                }
            });
            assert_eq!(seen.load(Ordering::SeqCst), 4 * 4 * 5, "{choice}");
            assert_eq!(refused.load(Ordering::SeqCst), 4 * 4 * 5, "{choice}");
        }
    });
}

/// A blocking run with line callbacks on both streams, 2,000 lines each
/// (builtins only: the shell forks nothing): "ok <success> <stdout lines>
/// <stdout callbacks> <stderr callbacks>", or "err <error>".
fn callbacks_run() -> String {
    let (o, e) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (oc, ec) = (o.clone(), e.clone());
    let r = Command::new("sh")
        .args([
            "-c",
            "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo $i; echo $i >&2; done",
        ])
        .timeout(Duration::from_secs(20))
        .on_stdout_line(move |_| {
            oc.fetch_add(1, Ordering::SeqCst);
        })
        .on_stderr_line(move |_| {
            ec.fetch_add(1, Ordering::SeqCst);
        })
        .blocking()
        .output();
    match r {
        Ok(out) => format!(
            "ok {} {} {} {}",
            out.success(),
            out.stdout_str().lines().count(),
            o.load(Ordering::SeqCst),
            e.load(Ordering::SeqCst)
        ),
        Err(err) => format!("err {err}"),
    }
}

/// Checks a helper's "warm" and "extra 0..4" lines (see [`callbacks_run`]):
/// each run either failed cleanly or told every line once.
fn check_exhaustion_lines(ok: bool, lines: &[String]) {
    assert!(ok, "the helper failed or hung: {lines:#?}");
    assert!(
        lines.iter().any(|l| l == "warm ok true 2000 2000 2000"),
        "{lines:#?}"
    );
    for extra in 0..4 {
        let l = lines
            .iter()
            .find(|l| l.starts_with(&format!("extra {extra}: ")))
            .unwrap_or_else(|| panic!("{lines:#?}"));
        assert!(
            l.ends_with("ok true 2000 2000 2000") || l.contains(": err "),
            "{lines:#?}"
        );
    }
}

/// Probe (blkcb, thread exhaustion): an owner in a v1 `pids` cgroup whose
/// limit leaves room for the child and no, one or two more tasks: a
/// blocking run with line callbacks on both streams either fails to
/// start cleanly or, its reader threads refused, reads on the shared
/// thread with every line told once; no panic, no hang.
#[test]
fn blocking_callbacks_with_no_thread_to_spare_fall_back_and_tell_every_line() {
    let name = "blocking_callbacks_with_no_thread_to_spare_fall_back_and_tell_every_line";
    let pids_root = Path::new("/sys/fs/cgroup/pids");
    if role().as_deref() == Some("pids") {
        let dir = PathBuf::from(std::env::var("RV37_PIDS").unwrap());
        std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string()).unwrap();
        say(&format!("warm {}", callbacks_run()));
        for extra in 0..4 {
            let current: u64 = std::fs::read_to_string(dir.join("pids.current"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            std::fs::write(dir.join("pids.max"), (current + extra).to_string()).unwrap();
            say(&format!("extra {extra}: {}", callbacks_run()));
            std::fs::write(dir.join("pids.max"), "max").unwrap();
        }
        std::fs::write(
            pids_root.join("cgroup.procs"),
            std::process::id().to_string(),
        )
        .unwrap();
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        if !is_root() || !pids_root.join("cgroup.procs").exists() {
            skipped(
                name,
                "needs root and a v1 pids hierarchy at /sys/fs/cgroup/pids",
            );
            return;
        }
        let dir = pids_root.join(common::unique_name("rv37"));
        std::fs::create_dir(&dir).expect("a pids cgroup");
        let cmd = helper_cmd(&[], name, "pids", &[("RV37_PIDS", dir.to_str().unwrap())]);
        let (ok, lines) = run_helper(cmd, Duration::from_secs(90));
        let end = Instant::now() + DEADLINE;
        while std::fs::remove_dir(&dir).is_err() && Instant::now() < end {
            std::thread::sleep(POLL);
        }
        check_exhaustion_lines(ok, &lines);
    });
}

/// The number of tasks (threads) of processes of user `uid` now.
fn tasks_of(uid: u32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut n = 0;
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if p.metadata().is_ok_and(|m| m.uid() == uid)
            && p.file_name().to_string_lossy().parse::<u32>().is_ok()
        {
            n += std::fs::read_dir(p.path().join("task")).map_or(0, |t| t.count() as u64);
        }
    }
    n
}

/// Probe (blkcb, thread exhaustion, non-root): the owner runs as nobody
/// (`setpriv --reuid=65534`) and lowers its `RLIMIT_NPROC` to the tasks
/// its user has now plus 0 to 3: each blocking run with callbacks fails
/// cleanly or tells every line once (reader threads refused: the shared
/// thread reads); no panic, no hang.
#[test]
fn a_non_root_owner_at_its_nproc_limit_runs_blocking_callbacks_or_fails_cleanly() {
    let name = "a_non_root_owner_at_its_nproc_limit_runs_blocking_callbacks_or_fails_cleanly";
    if role().as_deref() == Some("nproc") {
        // SAFETY: plain values.
        let uid = unsafe { libc::getuid() };
        say(&format!("warm {}", callbacks_run()));
        let mut hard = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid rlimit to fill.
        unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut hard) };
        for extra in 0..4 {
            let lim = libc::rlimit {
                rlim_cur: tasks_of(uid) + extra,
                rlim_max: hard.rlim_max,
            };
            // SAFETY: a valid rlimit.
            unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &lim) };
            say(&format!("extra {extra}: {}", callbacks_run()));
            // SAFETY: as above.
            unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &hard) };
        }
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        // A nobody's owner-death guard of an earlier run may still be
        // ending.
        let end = Instant::now() + DEADLINE;
        while is_root() && tasks_of(65534) != 0 && Instant::now() < end {
            std::thread::sleep(POLL);
        }
        if !is_root() || tasks_of(65534) != 0 {
            skipped(
                name,
                "needs root (to become nobody) and no process of nobody's",
            );
            return;
        }
        let mut cmd = helper_cmd(
            &[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ],
            name,
            "nproc",
            &[],
        );
        cmd.current_dir("/");
        let (ok, lines) = run_helper(cmd, Duration::from_secs(90));
        check_exhaustion_lines(ok, &lines);
    });
}

/// An async tee that never takes a byte (never ready, never wakes).
struct Stuck;

impl tokio::io::AsyncWrite for Stuck {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Pending
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Pending
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Pending
    }
}

/// Probe (grace2 x blkcb): under the blocking API the stuck tee's reader
/// runs on a `pkit-reader` thread of its own (a tee is the caller's
/// code); a timed-out run still abandons the write and returns, from four
/// threads at once, with a line callback on the other stream; a started
/// process's `wait` too. No `pkit-reader` thread is left afterwards.
#[test]
fn a_stuck_async_tee_of_a_blocking_run_on_a_reader_thread_is_abandoned_at_the_timeout() {
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        for choice in mechanisms() {
            std::thread::scope(|s| {
                for i in 0..4 {
                    s.spawn(move || {
                        let cmd = sh(
                            choice,
                            "head -c 300000 /dev/zero; echo x >&2; exec sleep 60",
                        )
                        .stdout_tee(Stuck)
                        .on_stderr_line(|_| {})
                        .timeout(Duration::from_millis(300));
                        let t0 = Instant::now();
                        let out = if i % 2 == 0 {
                            cmd.blocking().output()
                        } else {
                            let mut p = cmd.blocking().start().expect("start");
                            p.wait()
                        }
                        .unwrap_or_else(|e| panic!("{choice} {i}: {e}"));
                        assert_eq!(out.outcome(), pkit::Outcome::TimedOut, "{choice} {i}");
                        assert!(
                            out.stdout_tee_error()
                                .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut),
                            "{choice} {i}: {out:?}"
                        );
                        assert!(t0.elapsed() < Duration::from_secs(30), "{choice} {i}");
                    });
                }
            });
        }
        let end = Instant::now() + DEADLINE;
        let readers = || {
            std::fs::read_dir("/proc/self/task")
                .into_iter()
                .flatten()
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "pkit-reader")
                })
                .count()
        };
        while readers() > 0 && Instant::now() < end {
            std::thread::sleep(POLL);
        }
        assert_eq!(readers(), 0, "pkit-reader threads left");
    });
}

// ---------------------------------------------------------------------------
// attack20: the VT stripper
// ---------------------------------------------------------------------------

/// Probe (attack20's stripper fix): random text of CSI/ESC pieces, CAN,
/// SUB, BEL and line feeds, with no string introducer (OSC, DCS, SOS, PM,
/// APC: rv36's open LOW is about those): every line feed is kept, and no
/// ESC, CAN or SUB is left in what comes out, whole or fed in random cuts.
#[test]
fn the_vt_stripper_keeps_every_line_and_leaves_no_control_in_random_csi() {
    if role().is_some() {
        return;
    }
    const ALPHABET: &[char] = &[
        'a', 'Z', ' ', '\n', '\x1b', '[', '0', '9', ';', '?', 'm', 'H', '\x07', '\x18', '\x1a',
        '(', 'B', '\\', '\r', 'é',
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut bad = Vec::new();
    for round in 0..3000 {
        let len = (next() % 40) as usize;
        let text: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        let out = pkit::strip_vt(&text);
        let want = text.matches('\n').count();
        if out.matches('\n').count() != want || out.contains(['\x1b', '\x18', '\x1a']) {
            bad.push(format!("round {round}: {text:?} -> {out:?}"));
        }
    }
    bad.truncate(10);
    assert!(bad.is_empty(), "{bad:#?}");
}

// ---------------------------------------------------------------------------
// grace2: a panicking decoder contained
// ---------------------------------------------------------------------------

/// grace2 contains a `Decoder` whose `decode` panics (its stream's lines
/// end; the run goes on). The factory that makes it is the caller's code
/// too, and is called on the reader (`Sinks::new`): a factory that panics
/// there ends the reader.
#[test]
fn a_panicking_decoder_factory_is_contained_as_a_panicking_decoder_is() {
    if role().is_some() {
        return;
    }
    let mut bad = Vec::new();
    in_suite(SUITE, || {
        for choice in mechanisms() {
            for blocking in [false, true] {
                let lines = Arc::new(AtomicUsize::new(0));
                let l = lines.clone();
                let cmd = sh(choice, "echo one; echo two >&2; echo three")
                    .timeout(Duration::from_secs(20))
                    .decoder(pkit::DecoderFactory::new(|| -> pkit::Utf8Decoder {
                        panic!("rv37: the factory panics")
                    }))
                    .on_stderr_line(move |_| {
                        l.fetch_add(1, Ordering::SeqCst);
                    });
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if blocking {
                        cmd.blocking().output()
                    } else {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .unwrap()
                            .block_on(cmd.output())
                    }
                }));
                match out {
                    Ok(Ok(out))
                        if out.success()
                            && out.stdout_str() == "one\nthree\n"
                            && out.stderr_str() == "two\n" => {}
                    Ok(r) => bad.push(format!("{choice} blocking={blocking}: {r:?}")),
                    Err(_) => bad.push(format!("{choice} blocking={blocking}: the run panicked")),
                }
            }
        }
    });
    // After the suite's end: it checked that no process or cgroup of the
    // panicked runs was left.
    assert!(bad.is_empty(), "{bad:#?}");
}
