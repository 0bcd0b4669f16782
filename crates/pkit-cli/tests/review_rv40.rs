//! rv40: a hostile review of the last session's merges (CLI half: clitty,
//! clifix). Findings are `#[ignore = "rv40: ..."]` tests that fail on
//! main; the rest are probes that held. Run in the three passes.
//!
//! Findings (each fails on main; under process groups: `--mechanism
//! pgroup` and `portable`, the terminal needs no hand-over under cgroup):
//! - MEDIUM [`a_nested_pkit_in_a_pipeline_reads_the_terminal_after_fg`] (fixed by tty3: a pkit stopped for its program's read stops by SIGTTIN; the test runs):
//!   `pkit run -- pkit run -- sh -c 'read x </dev/tty' | cat` in bash: the
//!   reader never gets the terminal. The outer pkit keeps it for the job
//!   (not alone); the inner pkit, alone in the outer's program group, hands
//!   over only when that group holds the terminal, which it never does
//!   (the outer hands over only to a program stopped *for the terminal*,
//!   and the inner pkit stops itself with SIGSTOP). Every `fg` continues
//!   the job and it stops again at once (3 of 3; `Stopped` each time).
//!   Every run.
//! - MEDIUM [`a_script_with_a_background_job_gives_pkits_program_the_terminal`] (fixed by tty3: a shell's background command is no stage; the test runs):
//!   clitty's alone-in-the-job rule counts a script's own background job
//!   as a pipeline stage: `sh -c 'sleep 60 & pkit run -- sh -c "read x
//!   </dev/tty"'` stops the whole job by SIGTTIN at the first read (the
//!   shell says Stopped; the user must `fg`), where without pkit (the
//!   control in the same test) the read goes through. Any script that
//!   starts a helper in the background first (a spinner, an agent, a
//!   watchdog, a process substitution's `tee`). Every run.
//! - LOW, maybe older than clitty [`ctrl_z_right_after_fg_stops_the_job_again`] (fixed by tty3: the tree continued before the hand-over; the test runs):
//!   on `fg` pkit gives its program's group the terminal
//!   (`take_terminal`) before it sends that group SIGCONT (`stop_pkit`'s
//!   end): a Ctrl-Z in between sends SIGTSTP to the still-stopped group and
//!   the SIGCONT discards it. With bash, a Ctrl-Z typed as soon as bash
//!   echoes the job's command on `fg`: lost in 5 of 24 runs with pkit,
//!   none of 24 without (`-v` shows `^Z` then "sending SIGCONT to the
//!   whole tree"). A second Ctrl-Z works.
//! - LOW [`a_usr1_right_after_a_runs_start_reaches_its_program`] (clifix; fixed by runsig, the test runs):
//!   `pkit supervise` passes USR1/USR2/ALRM/WINCH on only to a run whose
//!   `SupervisorEvent::Started` it has handled (`supervise.rs`'s
//!   `programs`, in the same `select!` as the signals): one sent once the
//!   program runs (trap set, pid written) but before that is dropped (`-v`:
//!   "SIGUSR1 dropped: no run is going on", 7 of 30 by hand with `kill`
//!   from bash); 1-2 of 20 starts per mechanism in the test, every
//!   mechanism. By reading, the other edge: between a run's reap and the
//!   handling of its `Exited` event the signal goes by number
//!   (`sys::kill(pid)`) to a pid that may have been reused.
//!
//! Probes that held: two pkits in one pipeline under bash (`pkit run --
//! reader | pkit run -- cat`): Stopped, `fg`, the read goes through (80
//! runs by hand, pgroup and portable; a tiny shell that waits for the
//! first stage alone can leave one pkit stopped after `fg`, as any shell
//! not waiting for every stage of its job would); a nested pkit not in a
//! pipeline (bash, by hand): never stopped; Ctrl-Z then `bg` under bash:
//! the program's read from the background stops the job, `fg` reads, and
//! no `pkit-fgwatch` is left in the session after the job; pkit stopped by Ctrl-Z and then
//! SIGKILLed: its `pkit-fgwatch` and its program are gone (the watcher a
//! zombie of pid 1 for a moment); `pkit supervise` and a flood of 300
//! USR1 two seconds into a run: pkit and the program stay up, the program
//! gets some, TERM stops it with 0; USR1, USR2,
//! ALRM and WINCH between runs (a backoff under way) and 400 of them
//! during runs restarted every 20 ms: pkit stays up, runs go on, TERM
//! stops it (every mechanism).

#![cfg(target_os = "linux")]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{
    assert_stopped_for_the_read, assert_the_read_went_through, at_once, drive, drive_bash,
    drive_bash_paused, ends_or_stops, have_bash, mechanisms, pkit, process_group_mechanisms,
    temp_path, Reap, Started, UNTIL_CAT,
};

const PKIT: &str = env!("CARGO_BIN_EXE_pkit");

/// A script that started a background job (`sleep &`, a spinner, a
/// `tee` of a process substitution) before `pkit run`: its program reads
/// the terminal at once, as it does without pkit between (the control
/// below); the job is not stopped for it.
fn a_background_job_before_pkit(m: &str) {
    let pids = Reap::new("rv40-bg-before");
    for (what, run) in [
        (
            "control",
            "sh -c 'read x </dev/tty; echo got=$x'".to_string(),
        ),
        (
            "pkit",
            format!("{PKIT} run -q --mechanism {m} -- sh -c 'read x </dev/tty; echo got=$x'"),
        ),
    ] {
        let job = format!("sleep 60 & echo $! >> {p}; {run}; kill $!", p = pids.path());
        let text = drive(&job, &ends_or_stops("abc\\n", 1, 20));
        assert_the_read_went_through(&format!("{m} {what}"), &text);
    }
}

/// MEDIUM: clitty's rule (hand the terminal over only when pkit is alone
/// in its job but for the shells waiting for it) takes a script's own
/// background job for a pipeline's stage: `sh -c 'sleep 60 & pkit run --
/// prog'`, with `prog` reading the terminal, stops the whole job by
/// SIGTTIN (the shell prints "Stopped"; the user has to `fg` it), where
/// without pkit the read goes through. Any script that started a helper in
/// the background first (a spinner, `ssh-agent`, a watchdog, a `tee` of
/// a process substitution) is affected. Under process groups (pgroup,
/// portable).
#[test]
fn a_script_with_a_background_job_gives_pkits_program_the_terminal() {
    at_once(process_group_mechanisms(), a_background_job_before_pkit);
}

/// The script's background job and a pipeline after it (`sleep 60 & pkit
/// run -- reader | cat`): `cat` is a stage (Ctrl-C reaches it, its stdin
/// is not `/dev/null`), so the job keeps the terminal and the read stops
/// it by SIGTTIN, as in clitty's pipeline test: the background job does
/// not make every job mate one.
fn a_background_job_and_a_pipeline(m: &str) {
    let pids = Reap::new("rv40-bg-pipeline");
    let job = format!(
        "sleep 60 & echo $! >> {p}; \
         {{ {UNTIL_CAT} exec {PKIT} run -q --mechanism {m} -- \
         sh -c 'read x </dev/tty; echo got=$x'; }} | cat; kill $!",
        p = pids.path()
    );
    let text = drive(&job, &ends_or_stops("", 0, 30));
    assert_stopped_for_the_read(m, &text);
}

#[test]
fn a_script_with_a_background_job_keeps_the_terminal_for_a_pipeline() {
    at_once(process_group_mechanisms(), a_background_job_and_a_pipeline);
}

/// Two pkits in one pipeline under bash (`pkit run -- reader | pkit run
/// -- cat`; the first held until the second runs, see `UNTIL_CAT`):
/// neither is alone in the job, so the job keeps the terminal;
/// the first program's read stops the whole job (bash: "Stopped"), `fg`
/// gives it the terminal, the read goes through and the second pkit's
/// `cat` prints it. (With a tiny shell that waits for the pipeline's
/// first process alone, the two pkits' stops of each other can leave one
/// stopped after `fg`; bash waits for every stage, and never did in 80
/// runs.)
fn two_pkits_read_after_fg(m: &str) {
    let line = format!(
        "{{ until pgrep -g 0 -x pkit >/dev/null; do sleep 0.01; done; \
         exec {PKIT} run -q --mechanism {m} -- sh -c 'read x </dev/tty; echo got=$x'; }} \
         | {PKIT} run -q --mechanism {m} -- cat"
    );
    let body = r#"
ok = read_until(b"Stopped", 20)
if ok:
    read_until(b"PROMPT> ", 10, 2)
    os.write(fd, b"fg\n")
    time.sleep(0.5)
    os.write(fd, b"abc\n")
    ok = read_until(b"got=abc", 20)
finish(ok)
"#;
    let text = drive_bash(&line, body);
    assert_eq!(text, "OK\n", "{m}");
}

#[test]
fn two_pkits_in_a_pipeline_read_the_terminal_after_fg() {
    if !have_bash() {
        eprintln!("skipped: no /bin/bash");
        return;
    }
    at_once(process_group_mechanisms(), two_pkits_read_after_fg);
}

/// Ctrl-Z pressed right after `fg`, as a user's quick second Ctrl-Z: once
/// bash has continued the job (the terminal no longer bash's, the job's
/// first process no longer stopped: a Ctrl-Z before that is bash's own
/// race, lost without pkit too, once in ten runs on a loaded machine),
/// the job stops again, `Stopped` twice. `runs` tries at once, in turn
/// with each of `pauses` (`PKIT_TEST_PAUSE`, `None`: none); how many lost
/// it, and what their terminals showed.
fn ctrl_z_after_fg_lost(program: &str, runs: usize, pauses: &[Option<&str>]) -> (usize, String) {
    let body = r#"
time.sleep(1)
os.write(fd, b"\x1a")
ok = read_until(b"Stopped", 30)
job = None
for d in os.listdir("/proc"):
    try:
        s = open("/proc/%s/stat" % d).read()
    except Exception:
        continue
    f = s[s.rfind(")") + 2:].split()
    if int(f[1]) == pid and int(f[2]) == int(d):
        job = int(d)
def continued():
    try:
        s = open("/proc/%d/stat" % job).read()
    except Exception:
        return False
    return s[s.rfind(")") + 2:].split()[0] != "T" and os.tcgetpgrp(fd) != pid
if ok and job:
    read_until(b"PROMPT> ", 20, 2)
    os.write(fd, b"fg\n")
    end = time.time() + 30
    while not continued() and time.time() < end:
        time.sleep(0.001)
    os.write(fd, b"\x1a")
    ok = read_until(b"Stopped", 30, 2)
finish(ok and job is not None)
"#;
    let lost = std::sync::Mutex::new((0, String::new()));
    at_once(0..runs, |i| {
        let pause = pauses[i % pauses.len()];
        let text = drive_bash_paused(program, body, pause);
        if text != "OK\n" {
            let mut lost = lost.lock().unwrap();
            lost.0 += 1;
            lost.1.push_str(&format!("pause {pause:?}: {text}\n"));
        }
    });
    lost.into_inner().unwrap()
}

/// LOW (maybe older than clitty): a Ctrl-Z pressed right after `fg` was
/// lost under process groups. On `fg` pkit (`forward.rs`, `stop_pkit`'s
/// end) took the terminal for its program's group (`take_terminal`)
/// before it sent that group SIGCONT: a Ctrl-Z in between sent SIGTSTP
/// to a group still stopped, and the SIGCONT that followed discarded it
/// (pending stop signals are dropped by a SIGCONT). The job ran on; the
/// user had to press Ctrl-Z again. With bash, the second Ctrl-Z typed once
/// bash has echoed the job's command: lost in 5 of 24 runs with pkit
/// (`pkit run -v` prints "sending SIGCONT to the whole tree" right after
/// the `^Z`). pgroup and portable. Here the Ctrl-Z comes once bash has
/// continued the job, and pkit is held (`PKIT_TEST_PAUSE`) on a third of
/// the runs between its two steps (`continued`: lost there every time
/// before the fix), on a third after them (`handed`: the SIGCONT the run
/// loop reads next must not continue the program the Ctrl-Z stopped). Now
/// pkit continues the tree first: a Ctrl-Z before the hand-over reaches
/// pkit, one after it the program.
#[test]
fn ctrl_z_right_after_fg_stops_the_job_again() {
    if !have_bash() {
        eprintln!("skipped: no /bin/bash");
        return;
    }
    // The control's series and each mechanism's at once (each run its own
    // terminal and job).
    let series = std::iter::once(None).chain(process_group_mechanisms().into_iter().map(Some));
    at_once(series, |m| match m {
        None => {
            let (control, text) = ctrl_z_after_fg_lost("sh -c 'read x; echo got=$x'", 6, &[None]);
            assert_eq!(control, 0, "the control (no pkit) lost a Ctrl-Z: {text}");
        }
        Some(m) => {
            let line = format!("{PKIT} run -q --mechanism {m} -- sh -c 'read x; echo got=$x'");
            let pauses = [None, Some("continued:1500"), Some("handed:1500")];
            let (lost, text) = ctrl_z_after_fg_lost(&line, 12, &pauses);
            assert_eq!(
                lost, 0,
                "{m}: Ctrl-Z lost after fg in {lost} of 12 runs: {text}"
            );
        }
    });
}

/// pkit (alone in its job, its program handed the terminal, the
/// foreground watcher started) stopped by Ctrl-Z, then SIGKILLed while
/// stopped: its watcher (`pkit-fgwatch`, a process group of its own)
/// does not outlive it, and neither does its program.
fn watcher_gone_after_a_stopped_pkit_is_killed(m: &str) {
    let pids = Reap::new("rv40-watch-kill");
    let job = format!(
        "exec {PKIT} run -q --mechanism {m} -- sh -c 'echo $$ >> {p}; exec sleep 100'",
        p = pids.path()
    );
    let driver = format!(
        r#"
    _, st = os.waitpid(job, os.WUNTRACED)
    os.tcsetpgrp(0, os.getpgrp())
    w = []
    for d in os.listdir("/proc"):
        try:
            s = open("/proc/%s/stat" % d).read()
        except Exception:
            continue
        f = s[s.rfind(")") + 2:].split()
        if "pkit-fgwatch" in s and int(f[1]) == job:
            w.append(d)
    for x in w:
        open("{p}", "a").write(x + "\n")
    print("stopped=%d;watchers=%s;" % (os.WIFSTOPPED(st), ",".join(w)), flush=True)
    os.kill(job, signal.SIGKILL)
    os.waitpid(job, 0)
    print("killed;", flush=True)
    os._exit(0)
read_job()
# pkit handed its program the terminal (and started its watcher).
wait_handed("{p}")
os.write(fd, b"\x1a")
read_until(b"killed;", 1, 20)
os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace") + "\nok\n")
"#,
        p = pids.path()
    );
    let text = drive(&job, &driver);
    assert!(text.ends_with("ok\n"), "{m}: {text}");
    let watchers: Vec<i32> = text
        .split("watchers=")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or("")
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(
        text.contains("stopped=1;") && watchers.len() == 1,
        "{m}: one watcher expected: {text}"
    );
    let program = common::read_pids(&pids.0, 1)[0];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(common::pid_gone(watchers[0]) && common::pid_gone(program)) {
        assert!(
            Instant::now() < deadline,
            "{m}: left after pkit's SIGKILL: watcher {} ({:?}), program {} ({:?})",
            watchers[0],
            common::state(watchers[0]),
            program,
            common::state(program)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_watcher_and_program_end_when_a_stopped_pkit_is_killed() {
    at_once(
        process_group_mechanisms(),
        watcher_gone_after_a_stopped_pkit_is_killed,
    );
}

/// clifix: a flood of USR1 (300, as fast as kill(2) goes) to `pkit
/// supervise`: pkit stays up, the run's program stays up and gets some of
/// them, and TERM still stops it cleanly (0).
fn supervise_usr1_flood(m: &str) {
    let pids = Reap::new("rv40-sup-flood");
    let seen = temp_path("rv40-sup-seen");
    let script = format!(
        "trap 'echo U >> {s}' USR1; trap 'exit 0' TERM; echo $$ >> {p}; \
         while :; do sleep 0.1; done",
        s = seen.display(),
        p = pids.path()
    );
    let mut sup = Started::new(
        pkit()
            .args([
                "supervise",
                "-q",
                "--mechanism",
                m,
                "--",
                "sh",
                "-c",
                &script,
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let program = common::read_pids(&pids.0, 1)[0];
    // Well after the start: a USR1 right at it can be lost (the finding
    // below).
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..300 {
        common::kill(sup.id(), libc::SIGUSR1);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&seen).is_ok_and(|t| t.contains('U')) {
        if Instant::now() > deadline {
            let status = |pid: u32| {
                std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| {
                        l.starts_with("Sig") || l.starts_with("ShdPnd") || l.starts_with("State")
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            panic!(
                "{m}: the program never got a USR1: pkit {:?} [{}]; program {program} [{}]; pids {:?}",
                sup.try_wait(),
                status(sup.id()),
                status(program as u32),
                std::fs::read_to_string(&pids.0)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let alive = (
        sup.try_wait().unwrap().is_none(),
        !common::pid_gone(program),
    );
    let _ = std::fs::remove_file(&seen);
    assert_eq!(alive, (true, true), "{m}: pkit, program after the flood");
    common::kill(sup.id(), libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = sup.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "{m}: TERM did not stop it");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{m}");
}

#[test]
fn supervise_takes_a_flood_of_usr1() {
    at_once(mechanisms(), supervise_usr1_flood);
}

/// clifix: USR1, USR2, ALRM and WINCH to `pkit supervise` between runs (a
/// run crashed, the backoff of 2 s under way: no current run): pkit stays
/// up, the next run starts, and TERM stops it (pkit's status that of a
/// stop: 0 or the last run's).
fn supervise_signals_between_runs(m: &str) {
    let pids = Reap::new("rv40-sup-between");
    let script = format!("echo $$ >> {p}; exit 3", p = pids.path());
    let mut sup = Started::new(
        pkit()
            .args(["supervise", "-q", "--backoff", "2s", "--mechanism", m, "--"])
            .args(["sh", "-c", &script])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let first = common::read_pids(&pids.0, 1)[0];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !common::pid_gone(first) {
        assert!(Instant::now() < deadline, "{m}: the first run never ended");
        std::thread::sleep(Duration::from_millis(10));
    }
    for sig in [libc::SIGUSR1, libc::SIGUSR2, libc::SIGALRM, libc::SIGWINCH] {
        common::kill(sup.id(), sig);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        sup.try_wait().unwrap().is_none(),
        "{m}: pkit ended by a signal between runs: {:?}",
        sup.try_wait()
    );
    // The next run starts after the backoff.
    common::read_pids(&pids.0, 2);
    common::kill(sup.id(), libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = sup.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "{m}: TERM did not stop it");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.code().is_some(),
        "{m}: ended by a signal: {status:?}"
    );
}

#[test]
fn supervise_takes_its_passed_signals_between_runs() {
    at_once(mechanisms(), supervise_signals_between_runs);
}

/// A pkit inside a pkit inside a pipeline, under bash (`pkit run -- pkit
/// run -- reader | cat`): the outer pkit is not alone in its job, the
/// inner one is alone in its own (the outer's program group); the
/// reader's read stops the whole job, `fg` lets it read, and the line
/// goes through.
fn nested_in_a_pipeline_reads_after_fg(m: &str) {
    let line = format!(
        "{{ {UNTIL_CAT} exec {PKIT} run -q --mechanism {m} -- {PKIT} run -q --mechanism {m} -- \
         sh -c 'read x </dev/tty; echo got=$x'; }} | cat"
    );
    let body = r#"
ok = read_until(b"Stopped", 20)
if ok:
    read_until(b"PROMPT> ", 10, 2)
    os.write(fd, b"fg\n")
    time.sleep(0.5)
    os.write(fd, b"abc\n")
    ok = read_until(b"got=abc", 20)
finish(ok)
"#;
    let text = drive_bash(&line, body);
    assert_eq!(text, "OK\n", "{m}");
}

/// MEDIUM: under process groups a pkit run by a pkit that is a
/// pipeline's stage can never give its program the terminal: the outer
/// pkit keeps it for the job (not alone: `cat`); the inner pkit, alone in
/// its own job (the outer's program group), hands over only when that
/// group holds the terminal, which it never does (the outer hands over
/// only to a program that asked, and its program, the inner pkit, was
/// stopped by the inner's own SIGSTOP, not for the terminal). The reader's
/// read stops the job, every `fg` continues it and it stops again at once
/// (3 of 3 `fg`s; bash prints `Stopped` each time); the line never
/// reaches the reader. Not nested (`pkit run -- reader | cat`, clitty's
/// test) or not in a pipeline, it reads. pgroup and portable, every run.
#[test]
fn a_nested_pkit_in_a_pipeline_reads_the_terminal_after_fg() {
    if !have_bash() {
        eprintln!("skipped: no /bin/bash");
        return;
    }
    at_once(
        process_group_mechanisms(),
        nested_in_a_pipeline_reads_after_fg,
    );
}

/// clifix: USR1, USR2, ALRM and WINCH (400, round robin) to `pkit
/// supervise --restart always` whose program exits at once (runs start
/// one after another, 20 ms apart: the signals land during starts and
/// between runs): pkit stays up, and TERM stops it (ended by no signal).
fn supervise_signals_during_restarts(m: &str) {
    let pids = Reap::new("rv40-sup-restarts");
    let script = format!("echo $$ >> {p}; sleep 0.05", p = pids.path());
    let mut sup = Started::new(
        pkit()
            .args([
                "supervise",
                "-q",
                "--restart",
                "always",
                "--backoff",
                "20ms",
            ])
            .args(["--storm-pause", "20ms", "--mechanism", m, "--"])
            .args(["sh", "-c", &script])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::read_pids(&pids.0, 1);
    let sigs = [libc::SIGUSR1, libc::SIGUSR2, libc::SIGALRM, libc::SIGWINCH];
    for i in 0..400 {
        common::kill(sup.id(), sigs[i % 4]);
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let before = common::read_pids(&pids.0, 1).len();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        sup.try_wait().unwrap().is_none(),
        "{m}: pkit ended by the signals: {:?}",
        sup.try_wait()
    );
    // Runs still start.
    common::read_pids(&pids.0, before + 2);
    common::kill(sup.id(), libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = sup.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "{m}: TERM did not stop it");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.code().is_some(),
        "{m}: ended by a signal: {status:?}"
    );
}

#[test]
fn supervise_takes_its_passed_signals_during_restarts() {
    at_once(mechanisms(), supervise_signals_during_restarts);
}

/// `bg` under bash: pkit alone in its job (the terminal handed to its
/// program, the foreground watcher started), Ctrl-Z, `bg`: the program
/// runs on in the background, its read of the terminal stops the job
/// again (bash: "Stopped"), `fg` lets it read; once the job ended no
/// `pkit-fgwatch` is left in the terminal's session.
fn bg_then_read_then_fg(m: &str) {
    let line =
        format!("{PKIT} run -q --mechanism {m} -- sh -c 'sleep 1; read x </dev/tty; echo got=$x'");
    let body = r#"
time.sleep(0.5)
os.write(fd, b"\x1a")
ok = read_until(b"Stopped", 20)
if ok:
    read_until(b"PROMPT> ", 10, 2)
    os.write(fd, b"bg\n")
    # bash tells a background job's stop at its next prompt: ask.
    end = time.time() + 30
    while out.count(b"Stopped") < 2 and time.time() < end:
        time.sleep(1)
        os.write(fd, b"jobs\n")
        read_until(b"PROMPT> ", 5, out.count(b"PROMPT> ") + 1)
    ok = out.count(b"Stopped") >= 2
if ok:
    time.sleep(0.3)
    os.write(fd, b"fg\n")
    time.sleep(0.5)
    os.write(fd, b"abc\n")
    n = out.count(b"PROMPT> ")
    ok = read_until(b"got=abc", 20) and read_until(b"PROMPT> ", 20, n + 1)
def watchers():
    return [d for d, f, s in session() if "pkit-fgwatch" in s and f[0] != "Z"]
end = time.time() + 20
while ok and watchers() and time.time() < end:
    time.sleep(0.1)
if ok and watchers():
    out += b" watchers left: " + ",".join(watchers()).encode()
    ok = False
finish(ok)
"#;
    let text = drive_bash(&line, body);
    assert_eq!(text, "OK\n", "{m}");
}

#[test]
fn bg_then_a_read_stops_the_job_and_fg_reads() {
    if !have_bash() {
        eprintln!("skipped: no /bin/bash");
        return;
    }
    at_once(process_group_mechanisms(), bg_then_read_then_fg);
}

/// One `pkit supervise` whose program traps USR1 and then writes its pid;
/// a single USR1 sent as soon as the pid is there. Whether the program
/// got it within 10 s.
fn usr1_at_the_start_reaches_the_program(m: &str) -> bool {
    let pids = Reap::new("rv40-sup-early");
    let seen = temp_path("rv40-sup-early-seen");
    let script = format!(
        "trap 'echo U >> {s}' USR1; echo $$ >> {p}; while :; do sleep 0.05; done",
        s = seen.display(),
        p = pids.path()
    );
    let mut sup = Started::new(
        pkit()
            .args([
                "supervise",
                "-q",
                "--mechanism",
                m,
                "--",
                "sh",
                "-c",
                &script,
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&pids.0).is_ok_and(|t| t.ends_with('\n')) {
        assert!(Instant::now() < deadline, "{m}: the program never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    common::kill(sup.id(), libc::SIGUSR1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = false;
    while Instant::now() < deadline {
        if std::fs::read_to_string(&seen).is_ok_and(|t| t.contains('U')) {
            got = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&seen);
    common::kill(sup.id(), libc::SIGKILL);
    let _ = sup.wait();
    got
}

/// LOW (fixed by runsig: `SupervisorHandle::signal_program` knows the run
/// from before its Started event): `pkit supervise` passed USR1/USR2/ALRM/WINCH on only to the run it
/// has heard start (`supervise.rs`: `programs`, filled when its
/// `SupervisorEvent::Started` is handled, in the same `select!` as the
/// signals): one that comes once the program runs (it has set its trap and
/// written its pid) but before pkit handled that event is dropped ("no
/// run is going on", said with -v only). Seen with a flood of 300 USR1
/// sent as soon as the program's pid was written: none reached it (cgroup,
/// about 1 in 10 runs); here 20 starts per mechanism, one USR1 each.
/// (The other edge, by reading: between a run's reap and the handling of
/// its `Exited` event the signal goes by number to a pid that may be
/// reused.)
#[test]
fn a_usr1_right_after_a_runs_start_reaches_its_program() {
    at_once(mechanisms(), |m| {
        let lost = (0..20)
            .filter(|_| !usr1_at_the_start_reaches_the_program(m))
            .count();
        assert_eq!(lost, 0, "{m}: USR1 lost in {lost} of 20 starts");
    });
}
