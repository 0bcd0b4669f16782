#![cfg(target_os = "linux")]
//! rv50: a hostile review of the fourteenth session's CLI changes: `pkit
//! run`'s kill beside its relay queue and the merge of a burst of one
//! signal, and `pkit supervise`'s re-raise of its last run's signal. Run
//! in the three passes (unset, `PKIT_MECHANISM=pgroup`,
//! `PKIT_MECHANISM=portable`).
//!
//! What broke, fixed here: the grace's end, reached while a third
//! request's kill waited beside the queue for the cgroup's freeze,
//! relabelled that kill `after_grace` in the report (LOW, a regression of
//! the kill beside the queue;
//! [`a_grace_ending_during_a_requested_kill_keeps_it_requested`]); a
//! re-raised SIGSEGV/SIGABRT left pkit dumpable, which a piped
//! `core_pattern` records as pkit's crash (LOW;
//! [`a_reraise_makes_pkit_not_dumpable`]). The rest held. Later (fix52):
//! a program that exited on its own before the third request's kill went
//! out was reported `"sigkill": "requested"` (LOW;
//! [`a_program_that_exits_before_the_requested_kill_is_not_reported_killed`]).

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// Waits for `child` to end, at most `DEADLINE`.
fn ended(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let until = Instant::now() + DEADLINE;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        assert!(Instant::now() < until, "{what}: pkit never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `child`'s stderr on a thread; `text()` is what came so far.
struct Said {
    text: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Said {
    fn new(child: &mut std::process::Child) -> Said {
        let text = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut stderr = child.stderr.take().expect("stderr");
        let reader = {
            let text = text.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stderr.read(&mut buf) {
                    text.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        };
        Said {
            text,
            reader: Some(reader),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
    }

    /// Waits until `needle` was said `times` times.
    fn wait(&self, needle: &str, times: usize, what: &str) {
        let until = Instant::now() + DEADLINE;
        while self.text().matches(needle).count() < times {
            assert!(
                Instant::now() < until,
                "{what}: pkit never said {needle:?}: {}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// All of it, once pkit ended.
    fn all(mut self) -> String {
        if let Some(r) = self.reader.take() {
            r.join().expect("the reader");
        }
        self.text()
    }
}

/// The JSON report pkit wrote to `file`.
fn json_report(file: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let _ = std::fs::remove_file(file);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// `pkit run` whose program ignores TERM and was stopped (SIGSTOP from
/// outside) gets three SIGTERMs, each once the one before was acted on:
/// the third's kill, now sent beside the relay queue, still ends the
/// whole tree, and pkit ends by the program's SIGKILL, its report saying
/// the kill was requested.
#[test]
fn three_requests_end_a_stopped_program_that_ignores_term() {
    at_once(mechanisms(), |m| {
        let pids = Reap::new(&format!("rv50-stopped-{m}"));
        let json = temp_path(&format!("rv50-stopped-{m}.json"));
        let script = format!(
            "trap '' TERM; (trap '' TERM; exec sleep 300) & echo $! >> {p}; echo $$ >> {p}; \
             while :; do sleep 0.05; done",
            p = pids.path()
        );
        let mut child = pkit()
            .args(["run", "-v", "-k", "60", "--mechanism", m, "--json-file"])
            .arg(&json)
            .args(["--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map(Started::new)
            .expect("pkit starts");
        let said = Said::new(&mut child);
        let tree = read_pids(&pids.0, 2);
        kill(tree[1] as u32, libc::SIGSTOP);
        wait_state(tree[1], 'T');
        let pkit_pid = child.id();
        kill(pkit_pid, libc::SIGTERM);
        said.wait("pkit: sending SIGTERM to the program", 1, m);
        kill(pkit_pid, libc::SIGTERM);
        said.wait("pkit: second SIGTERM: ending the whole tree", 1, m);
        kill(pkit_pid, libc::SIGTERM);
        let st = ended(&mut child, m);
        let err = said.all();
        assert_eq!(st.signal(), Some(libc::SIGKILL), "{m}: {st:?} {err}");
        assert!(
            err.contains("pkit: SIGTERM: killing the whole tree now"),
            "{m}: {err}"
        );
        let report = json_report(&json);
        assert_eq!(report["sigkill"], "requested", "{m}: {report}");
        assert_eq!(report["signal"], libc::SIGKILL, "{m}: {report}");
        assert_all_gone(&tree);
    });
}

/// A program that exits 7 on its first SIGTERM gets three in a row from
/// `pkit run`'s parent: the third's kill (beside the queue) may come
/// before or after the program's own exit. Whichever won, pkit's status
/// is the program's truth: exit 7 with a report of an exit 7, or pkit
/// killed by the SIGKILL its report says killed the program. Several
/// rounds, each mechanism.
#[test]
fn the_status_is_the_programs_when_a_kill_races_its_exit() {
    at_once(mechanisms(), |m| {
        for round in 0..6 {
            let what = format!("{m}, round {round}");
            let pids = Reap::new(&format!("rv50-race-{m}-{round}"));
            let json = temp_path(&format!("rv50-race-{m}-{round}.json"));
            let script = format!(
                "trap 'exit 7' TERM; echo $$ >> {p}; while :; do sleep 0.01; done",
                p = pids.path()
            );
            let mut child = pkit()
                .args(["run", "-q", "--mechanism", m, "--json-file"])
                .arg(&json)
                .args(["--", "sh", "-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map(Started::new)
                .expect("pkit starts");
            let tree = read_pids(&pids.0, 1);
            let pkit_pid = child.id();
            // Apart enough to be read one by one (the kernel merges a
            // pending signal), close enough to race the program's exit.
            for _ in 0..3 {
                kill(pkit_pid, libc::SIGTERM);
                std::thread::sleep(Duration::from_millis(2 * round));
            }
            let st = ended(&mut child, &what);
            let report = json_report(&json);
            match (st.code(), st.signal()) {
                (Some(7), _) => {
                    assert_eq!(report["outcome"], "exited", "{what}: {report}");
                    assert_eq!(report["exit_code"], 7, "{what}: {report}");
                }
                (_, Some(libc::SIGKILL)) => {
                    assert_eq!(report["signal"], libc::SIGKILL, "{what}: {report}");
                }
                // pkit's own SIGTERM, merged with the others: one request
                // (the program then exited 7), or two, whose grace is
                // long; never another status.
                _ => panic!("{what}: pkit ended {st:?}; report {report}"),
            }
            assert_eq!(report["exit_status"], shell_status(st), "{what}: {report}");
            assert_all_gone(&tree);
        }
    });
}

/// fix52: a third request's SIGKILL is asked for, and the program exits
/// on its own before it goes out (pkit held just ahead of the kill by the
/// `kill` test pause; the program, told from outside, exits 7 meanwhile).
/// pkit's status is the program's 7, and so is the report's: `exited`,
/// exit code 7, and no SIGKILL (`sigkill` null; it said `requested`,
/// although nothing was killed by it).
#[test]
fn a_program_that_exits_before_the_requested_kill_is_not_reported_killed() {
    at_once(mechanisms(), |m| {
        let pids = Reap::new(&format!("fix52-exit-first-{m}"));
        let json = temp_path(&format!("fix52-exit-first-{m}.json"));
        // Each TERM it gets is written down (once it runs again: a
        // cgroup's freeze around the whole tree's TERM is over then).
        let terms = temp_path(&format!("fix52-exit-first-{m}.terms"));
        let script = format!(
            "trap 'echo t >> {t}' TERM; trap 'exit 7' USR1; echo $$ >> {p}; \
             while :; do sleep 0.01; done",
            t = terms.display(),
            p = pids.path()
        );
        let terms_seen = |n: usize| {
            let until = Instant::now() + DEADLINE;
            loop {
                let text = std::fs::read_to_string(&terms).unwrap_or_default();
                if text.lines().count() >= n {
                    return;
                }
                assert!(
                    Instant::now() < until,
                    "{m}: {n} TERMs never reached the program"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let mut child = pkit()
            .env("PKIT_TEST_PAUSE", "kill:20000")
            .args(["run", "-v", "-k", "60", "--mechanism", m, "--json-file"])
            .arg(&json)
            .args(["--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map(Started::new)
            .expect("pkit starts");
        let said = Said::new(&mut child);
        let tree = read_pids(&pids.0, 1);
        let pkit_pid = child.id();
        kill(pkit_pid, libc::SIGTERM);
        said.wait("pkit: sending SIGTERM to the program", 1, m);
        terms_seen(1);
        kill(pkit_pid, libc::SIGTERM);
        said.wait("pkit: second SIGTERM: ending the whole tree", 1, m);
        // The whole tree's TERM went out, and no freeze holds the program.
        terms_seen(2);
        kill(pkit_pid, libc::SIGTERM);
        said.wait("pkit: SIGTERM: killing the whole tree now", 1, m);
        // pkit is in the pause (20 s), the kill not sent: the program
        // ends now, on its own.
        kill(tree[0] as u32, libc::SIGUSR1);
        let until = Instant::now() + Duration::from_secs(15);
        while !pid_gone(tree[0]) {
            assert!(Instant::now() < until, "{m}: the program never exited");
            std::thread::sleep(Duration::from_millis(10));
        }
        let st = ended(&mut child, m);
        let err = said.all();
        assert_eq!(st.code(), Some(7), "{m}: {st:?} {err}");
        let report = json_report(&json);
        assert_eq!(report["outcome"], "exited", "{m}: {report}");
        assert_eq!(report["exit_code"], 7, "{m}: {report}");
        assert_eq!(report["exit_status"], 7, "{m}: {report}");
        assert_eq!(report["sigkill"], serde_json::Value::Null, "{m}: {report}");
        assert_eq!(report["killed_after_grace"], false, "{m}: {report}");
        assert_all_gone(&tree);
        let _ = std::fs::remove_file(&terms);
    });
}

/// `pkit run` (a cgroup, a member held where its freeze can't reach) is
/// relaying SIGWINCH to the whole tree, its freeze unconfirmed; meanwhile
/// USR1, WINCH, USR1, WINCH come, each read at once and queued: no two
/// alike follow each other, so none is merged, and each goes out in its
/// turn (three WINCH relays, two USR1, in the order pkit got them). The
/// merge of a burst of one signal must not swallow a different one.
#[test]
fn different_signals_waiting_behind_a_relay_are_not_merged() {
    if !mechanisms().contains(&"cgroup") {
        return;
    }
    if !run(&["run", "-q", "--mechanism", "cgroup", "--", "true"])
        .status
        .success()
    {
        eprintln!("SKIPPED in tests/review_rv50.rs: no cgroup v2 here");
        return;
    }
    let script = "trap : WINCH USR1 TERM; sleep 300 & sleep 300 & \
                  while :; do wait; done";
    let mut child = pkit()
        .args(["run", "-v", "--mechanism", "cgroup", "-k", "1", "--"])
        .args(["sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Started::new)
        .expect("pkit starts");
    let said = Said::new(&mut child);
    let pkit_pid = child.id();
    let until = Instant::now() + DEADLINE;
    let sleeps = loop {
        let sleeps: Vec<u32> = descendants(pkit_pid)
            .iter()
            .map(|&(p, _)| p)
            .filter(|&p| comm(p) == "sleep")
            .collect();
        if sleeps.len() == 2 {
            break sleeps;
        }
        assert!(Instant::now() < until, "the sleeps never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let Some(held) = Held::new(sleeps[0] as i32) else {
        eprintln!("SKIPPED in tests/review_rv50.rs: no cgroup v1 freezer directory");
        return;
    };
    let dir = v2_dir(sleeps[1] as i32).expect("the run's cgroup v2 directory");
    kill(pkit_pid, libc::SIGWINCH);
    wait_freeze_asked(&dir, "the relay");
    let sent = [libc::SIGUSR1, libc::SIGWINCH, libc::SIGUSR1, libc::SIGWINCH];
    for s in sent {
        kill(pkit_pid, s);
        // Apart, so that pkit reads each (the kernel merges two alike
        // still pending).
        std::thread::sleep(Duration::from_millis(150));
    }
    held.thaw();
    let relays = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("pkit: sending "))
            .filter(|l| l.starts_with("SIGWINCH") || l.starts_with("SIGUSR1"))
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .collect()
    };
    let until = Instant::now() + DEADLINE;
    while relays(&said.text()).len() < 5 {
        assert!(
            Instant::now() < until,
            "the relays never all went out: {}",
            said.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(pkit_pid, libc::SIGTERM);
    said.wait("pkit: sending SIGTERM to the program", 1, "the end");
    kill(pkit_pid, libc::SIGTERM);
    let _ = ended(&mut child, "the end");
    let err = said.all();
    assert_eq!(
        relays(&err),
        ["SIGWINCH", "SIGUSR1", "SIGWINCH", "SIGUSR1", "SIGWINCH"],
        "{err}"
    );
    let sleeps: Vec<i32> = sleeps.iter().map(|&p| p as i32).collect();
    assert_all_gone(&sleeps);
    drop(held);
}

/// `sh -c 'ulimit -c <core>; cd <dir>; exec "$0" "$@"' <pkit> <args>`:
/// pkit run in `dir` with RLIMIT_CORE at `core`.
fn pkit_in(dir: &std::path::Path, core: &str, args: &[&str]) -> std::process::Command {
    let wrapper = format!(
        "ulimit -c {core} || exit 99; cd '{}' || exit 98; exec \"$0\" \"$@\"",
        dir.display()
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &wrapper, env!("CARGO_BIN_EXE_pkit")])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// The files in `dir` named like a core dump (`core`, `core.<pid>`).
fn cores_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n == "core" || n.starts_with("core."))
                .collect()
        })
        .unwrap_or_default()
}

/// `pkit supervise` (and `pkit run`) whose program dies of SIGSEGV or
/// SIGABRT ends by the same signal, and leaves no core of its own in its
/// working directory, even with RLIMIT_CORE unlimited (the program's own
/// dump is off: `ulimit -c 0` in it).
#[test]
fn a_reraised_core_signal_leaves_no_core_of_pkits() {
    at_once(mechanisms(), |m| {
        let dir = temp_path(&format!("rv50-core-{m}"));
        std::fs::create_dir_all(&dir).expect("a directory");
        for sig in [libc::SIGSEGV, libc::SIGABRT, libc::SIGQUIT] {
            let script = format!("ulimit -c 0; kill -{sig} $$");
            for verb in [
                &["supervise", "--restart", "never", "-q", "--mechanism", m][..],
                &["run", "-q", "--mechanism", m][..],
            ] {
                let what = format!("{m} {} {sig}", verb[0]);
                let args = [verb, &["--", "sh", "-c", &script][..]].concat();
                let out = pkit_in(&dir, "unlimited", &args)
                    .stderr(Stdio::piped())
                    .output()
                    .expect("pkit runs");
                if out.status.code() == Some(99) {
                    eprintln!("SKIPPED in tests/review_rv50.rs: RLIMIT_CORE can't be raised");
                    return;
                }
                assert_eq!(out.status.signal(), Some(sig), "{what}: {out:?}");
                assert!(!out.status.core_dumped(), "{what}: pkit dumped core");
                assert_eq!(cores_in(&dir), Vec::<String>::new(), "{what}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// `pkit supervise` started with SIGUSR1 ignored (as `nohup` does SIGHUP)
/// or blocked by its parent, whose program resets it and dies of it: pkit
/// ends by SIGUSR1 all the same, as `pkit run` and timeout(1) do (the
/// default disposition and an unblocked mask for the re-raise), never
/// lingers nor exits 0.
#[test]
fn a_reraise_overrides_an_inherited_ignore_or_block() {
    use std::os::unix::process::CommandExt;
    at_once(mechanisms(), |m| {
        let prog = [
            "--",
            "env",
            "--default-signal=USR1",
            "sh",
            "-c",
            "kill -USR1 $$",
        ];
        for verb in [
            &["supervise", "--restart", "never", "-q", "--mechanism", m][..],
            &["run", "-q", "--mechanism", m][..],
        ] {
            for how in ["ignored", "blocked"] {
                let what = format!("{m} {} {how}", verb[0]);
                let mut cmd = if how == "ignored" {
                    pkit_ignoring(libc::SIGUSR1)
                } else {
                    let mut c = pkit();
                    // SAFETY: sigemptyset, sigaddset and sigprocmask are
                    // async-signal-safe and touch only this stack's set.
                    unsafe {
                        c.pre_exec(|| {
                            let mut set = std::mem::zeroed::<libc::sigset_t>();
                            libc::sigemptyset(&mut set);
                            libc::sigaddset(&mut set, libc::SIGUSR1);
                            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                            Ok(())
                        });
                    }
                    c
                };
                let out = cmd
                    .args(verb)
                    .args(prog)
                    .stdin(Stdio::null())
                    .output()
                    .expect("pkit runs");
                assert_eq!(out.status.signal(), Some(libc::SIGUSR1), "{what}: {out:?}");
            }
        }
    });
}

/// Whether `pid`'s `/proc` files are owned by root now: the kernel's mark
/// of a process that is not dumpable (`prctl(PR_SET_DUMPABLE, 0)`), for a
/// process whose uid is not root's.
fn owned_by_root(pid: u32) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(format!("/proc/{pid}/environ")).ok()?;
    Some(meta.uid() == 0)
}

/// `pkit supervise` and `pkit run` that end by their program's signal
/// make themselves not dumpable first, as timeout(1) does: RLIMIT_CORE 0
/// alone is not honoured by the kernel when `core_pattern` pipes dumps to
/// a program (systemd-coredump, apport), which then recorded a crash of
/// pkit's for its program's SIGSEGV or SIGABRT. Seen as uid 65534 (a
/// non-dumpable process's `/proc` files are root's) while pkit is held
/// just before its re-raise (`PKIT_TEST_PAUSE=reraise`, debug builds).
#[test]
fn a_reraise_makes_pkit_not_dumpable() {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 || !std::path::Path::new("/usr/bin/setpriv").exists() {
        eprintln!("SKIPPED in tests/review_rv50.rs: needs root and setpriv");
        return;
    }
    at_once(process_group_mechanisms(), |m| {
        for verb in [
            &["supervise", "--restart", "never", "-q", "--mechanism", m][..],
            &["run", "-q", "--mechanism", m][..],
        ] {
            let what = format!("{m} {}", verb[0]);
            let mut child = std::process::Command::new("setpriv")
                .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_pkit"))
                .args(verb)
                .args(["--", "sh", "-c", "sleep 0.2; kill -USR1 $$"])
                .env("PKIT_TEST_PAUSE", "reraise:3000")
                .current_dir("/")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map(Started::new)
                .expect("pkit starts");
            let pid = child.id();
            // pkit's own files first (uid 65534), then root's for the
            // held re-raise's 3 s: a stretch of 1 s at least. (setpriv,
            // before its exec of pkit, is root's, or not dumpable once its
            // uid changed: only what follows pkit's own counts.)
            let (mut seen_user, mut root_since, mut longest) = (false, None, Duration::ZERO);
            let until = Instant::now() + DEADLINE;
            let st = loop {
                let live = state(pid as i32).is_some_and(|s| s != 'Z' && s != 'X');
                match owned_by_root(pid) {
                    Some(true) if seen_user && live => {
                        let since = *root_since.get_or_insert_with(Instant::now);
                        longest = longest.max(since.elapsed());
                    }
                    Some(false) if live => {
                        seen_user = true;
                        root_since = None;
                    }
                    _ => {}
                }
                if let Some(st) = child.try_wait().expect("try_wait") {
                    break st;
                }
                assert!(Instant::now() < until, "{what}: pkit never ended");
                std::thread::sleep(Duration::from_millis(5));
            };
            assert_eq!(st.signal(), Some(libc::SIGUSR1), "{what}: {st:?}");
            assert!(seen_user, "{what}: pkit was never seen as uid 65534's");
            assert!(
                longest >= Duration::from_secs(1),
                "{what}: pkit was dumpable up to its re-raise (root's for {longest:?})"
            );
        }
    });
}

/// One run of [`a_grace_ending_during_a_requested_kill_keeps_it_requested`]:
/// `None` where no member can be held; else whether the order came out as
/// meant (the third request read before the grace ran out), and the
/// report's `sigkill`.
fn grace_during_kill_run() -> Option<(bool, serde_json::Value)> {
    let json = temp_path("rv50-grace-kill.json");
    let script = "trap : TERM; (trap '' TERM; exec sleep 300) & (trap '' TERM; exec sleep 300) & while :; do wait; done";
    let mut child = pkit()
        .args([
            "run",
            "-v",
            "--mechanism",
            "cgroup",
            "-k",
            "3",
            "--json-file",
        ])
        .arg(&json)
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Started::new)
        .expect("pkit starts");
    let said = Said::new(&mut child);
    let pkit_pid = child.id();
    let until = Instant::now() + DEADLINE;
    let sleeps = loop {
        let sleeps: Vec<u32> = descendants(pkit_pid)
            .iter()
            .map(|&(p, _)| p)
            .filter(|&p| comm(p) == "sleep")
            .collect();
        if sleeps.len() == 2 {
            break sleeps;
        }
        assert!(Instant::now() < until, "the sleeps never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    kill(pkit_pid, libc::SIGTERM);
    said.wait(
        "pkit: sending SIGTERM to the program",
        1,
        "the first request",
    );
    kill(pkit_pid, libc::SIGTERM);
    said.wait("pkit: sending SIGTERM to the whole tree", 1, "the second");
    // The second's ending went out (nothing held yet), its grace of 3 s
    // armed; now a member is held, and the third request's kill waits
    // for the freeze (5 s) past the grace's end.
    std::thread::sleep(Duration::from_millis(200));
    let held = Held::new(sleeps[0] as i32)?;
    let dir = v2_dir(sleeps[1] as i32).expect("the run's cgroup v2 directory");
    kill(pkit_pid, libc::SIGTERM);
    said.wait("pkit: SIGTERM: killing the whole tree now", 1, "the third");
    wait_freeze_asked(&dir, "the third request's kill");
    said.wait("pkit: still running after the grace", 1, "the grace's end");
    held.thaw();
    let _ = ended(&mut child, "the run");
    let text = said.all();
    let third = text.find("pkit: SIGTERM: killing the whole tree now");
    let grace = text.find("pkit: still running after the grace");
    let report = json_report(&json);
    let mut sleeps: Vec<i32> = sleeps.iter().map(|&p| p as i32).collect();
    sleeps.sort_unstable();
    assert_all_gone(&sleeps);
    drop(held);
    Some((third < grace, report["sigkill"].clone()))
}

/// `pkit run -k 3` gets a third request while its grace runs; the
/// third's kill (beside the relay queue) waits for the cgroup's freeze,
/// which a held member keeps from being confirmed, past the grace's end.
/// The grace's end adds nothing, and takes nothing away: the run was
/// killed at the third request's asking (`"sigkill": "requested"`), not
/// after the grace, which the report said when the kill's wait let the
/// grace's branch run (before, the kill was awaited inside the loop).
#[test]
fn a_grace_ending_during_a_requested_kill_keeps_it_requested() {
    if !mechanisms().contains(&"cgroup") {
        return;
    }
    if !run(&["run", "-q", "--mechanism", "cgroup", "--", "true"])
        .status
        .success()
    {
        eprintln!("SKIPPED in tests/review_rv50.rs: no cgroup v2 here");
        return;
    }
    for n in 0..3 {
        let Some((in_order, sigkill)) = grace_during_kill_run() else {
            eprintln!("SKIPPED in tests/review_rv50.rs: no cgroup v1 freezer directory");
            return;
        };
        if !in_order {
            eprintln!("run {n}: the grace ran out before the third request was read");
            continue;
        }
        assert_eq!(sigkill, "requested");
        return;
    }
    panic!("in three runs the grace ran out before pkit read the third request");
}
