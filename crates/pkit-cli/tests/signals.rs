//! Signals to `pkit run`: forwarded to the program (or its tree) the way a
//! wrapper should, never pkit's own teardown on the first one, a REPL
//! survives Ctrl-C from a real terminal, Ctrl-Z stops and `fg` resumes.
// Unix only: these run the Linux CLI (signals, /proc, ttys); Windows has
// tests/windows.rs.
#![cfg(unix)]

mod common;

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// A `sh -c` script that sets `traps`, writes `up` to `ready` once they
/// are set, and loops until a trap ends it.
fn trap_loop(traps: &str, ready: &std::path::Path) -> String {
    format!(
        "{traps}; echo up > {}; while :; do sleep 0.05; done",
        ready.display()
    )
}

#[test]
fn term_reaches_the_programs_trap_and_its_exit_is_pkits() {
    for m in mechanisms() {
        let ready = temp_path("ready");
        let mut child = pkit()
            .args(["run", "-q", "--mechanism", m, "--", "sh", "-c"])
            .arg(trap_loop("trap 'echo got TERM; exit 0' TERM", &ready))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map(Started::new)
            .unwrap();
        wait_for_text(&ready, "up");
        kill(child.id(), libc::SIGTERM);
        let status = child.wait().unwrap();
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        std::fs::remove_file(&ready).unwrap();
        assert_eq!(status.code(), Some(0), "{m}: the trap's exit status");
        assert_eq!(stdout, "got TERM\n", "{m}");
    }
}

#[test]
fn other_signals_reach_the_program_and_do_not_end_pkit() {
    for m in mechanisms() {
        let log = temp_path("log");
        let script = format!(
            "for s in USR1 USR2 ALRM WINCH CONT HUP QUIT; do trap \"echo $s >> {f}\" $s; done; \
             trap 'echo TERM >> {f}; exit 0' TERM; echo up >> {f}; \
             while :; do sleep 0.05; done",
            f = log.display()
        );
        let mut child = pkit()
            .args(["run", "-q", "--mechanism", m, "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .map(Started::new)
            .unwrap();
        wait_for_text(&log, "up");
        for (sig, name) in [
            (libc::SIGUSR1, "USR1"),
            (libc::SIGUSR2, "USR2"),
            (libc::SIGALRM, "ALRM"),
            (libc::SIGWINCH, "WINCH"),
            (libc::SIGCONT, "CONT"),
            (libc::SIGHUP, "HUP"),
        ] {
            kill(child.id(), sig);
            wait_for_text(&log, name);
            assert!(
                child.try_wait().unwrap().is_none(),
                "{m}: pkit ended on {name}"
            );
        }
        kill(child.id(), libc::SIGTERM);
        let status = child.wait().unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        std::fs::remove_file(&log).unwrap();
        assert_eq!(status.code(), Some(0), "{m}: {text}");
        assert!(text.contains("TERM"), "{m}: {text}");
    }
}

#[test]
fn a_second_term_tears_the_tree_down_and_a_first_does_not() {
    for m in mechanisms() {
        let file = pid_file();
        // The whole tree ignores TERM: only SIGKILL ends it.
        let script = format!("trap '' TERM; {}", tree_script(&file));
        let mut child = pkit()
            .args(["run", "-q", "-k", "500ms", "--mechanism", m])
            .args(["--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .map(Started::new)
            .unwrap();
        let pids = read_pids(&file, 3);
        kill(child.id(), libc::SIGTERM);
        // -k arms SIGKILL after the first TERM (as timeout -k does) ...
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{m}");
        assert_all_gone(&pids);
        std::fs::remove_file(&file).unwrap();

        // ... without -k, the first TERM is only forwarded; the second
        // starts the teardown (TERM, then KILL after the grace).
        // Each TERM is sent once pkit has said (-v, on stderr) it acted
        // on the one before: two pending at once would be one signal, and
        // the tree would then end only by the SIGKILL after the grace.
        let file = pid_file();
        let err = temp_path("stderr");
        let script = format!("trap '' TERM; {}", tree_script(&file));
        let mut child = pkit()
            .args(["run", "-v", "--mechanism", m, "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .map(Started::new)
            .unwrap();
        let pids = read_pids(&file, 3);
        kill(child.id(), libc::SIGTERM);
        wait_for_text(&err, "pkit: sending SIGTERM to the program");
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            child.try_wait().unwrap().is_none(),
            "{m}: one TERM ended it"
        );
        assert!(
            pids.iter().all(|&p| !pid_gone(p)),
            "{m}: the tree was touched"
        );
        kill(child.id(), libc::SIGTERM);
        wait_for_text(&err, "pkit: second SIGTERM: ending the whole tree");
        // A third signal kills at once (the grace is 10 s by default).
        kill(child.id(), libc::SIGTERM);
        let status = child.wait().unwrap();
        let text = std::fs::read_to_string(&err).unwrap();
        std::fs::remove_file(&err).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{m}: {text}");
        assert!(
            text.contains("pkit: SIGTERM: killing the whole tree now")
                && !text.contains("after the grace"),
            "{m}: not the third TERM's kill: {text}"
        );
        assert_all_gone(&pids);
        std::fs::remove_file(&file).unwrap();
    }
}

#[test]
fn tstp_stops_the_tree_and_pkit_and_cont_resumes_both() {
    for m in mechanisms() {
        let file = pid_file();
        // The shell waits for a background sleep: both can stop at any
        // moment. (A loop of short sleeps can't: dash vforks each one, and
        // a child stopped before its exec holds the shell in the vfork,
        // state D, stopped in effect but never 'T'.)
        let script = format!(
            "sleep 300 & echo $! > {f}.tmp; echo $$ >> {f}.tmp; mv {f}.tmp {f}; wait",
            f = file.display()
        );
        let mut child = pkit()
            .args(["run", "-q", "--mechanism", m, "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .map(Started::new)
            .unwrap();
        let pids = read_pids(&file, 2);
        let (bg, sh) = (pids[0], pids[1]);
        let pkit_pid = child.id() as i32;
        // kill -TSTP to pkit, as a shell user would with `kill -TSTP`.
        kill(child.id(), libc::SIGTSTP);
        wait_state(sh, 'T');
        wait_state(bg, 'T');
        wait_state(pkit_pid, 'T');
        // `fg` sends SIGCONT to the job's process group: pkit's.
        // SAFETY: signalling the process group our own unreaped child leads.
        assert_eq!(unsafe { libc::killpg(pkit_pid, libc::SIGCONT) }, 0);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while [sh, bg, pkit_pid].iter().any(|&p| state(p) == Some('T')) {
            assert!(std::time::Instant::now() < deadline, "{m}: not resumed");
            std::thread::sleep(Duration::from_millis(20));
        }
        // SIGINT ends the shell; its background sleep ignores SIGINT (as
        // a non-interactive shell's background jobs do) and goes with
        // pkit's teardown at the end of the run.
        kill(child.id(), libc::SIGINT);
        let status = child.wait().unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGINT), "{m}");
        assert_all_gone(&[sh, bg]);
    }
}

/// A program that logs each SIGCONT it gets: `ready <pid>` first, then
/// one `cont` line per SIGCONT.
const CONT_COUNTER: &str = r#"
import os, signal, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
signal.signal(signal.SIGCONT, lambda *_: os.write(fd, b"cont\n"))
os.write(fd, b"ready %d\n" % os.getpid())
while True:
    time.sleep(0.05)
"#;

/// Stopped with its job (`kill -TSTP` to pkit) and resumed by `fg`
/// (SIGCONT to pkit's process group), the program gets one SIGCONT, not
/// one from the shell and one more from pkit: with the program in pkit's
/// process group (the cgroup mechanism), in a group of its own, and on a
/// pty of its own (--pty, whose resume continues the program itself).
#[test]
fn fg_after_a_stop_continues_the_program_once() {
    // Every mechanism, with and without a pty, at once (each waits for a
    // second SIGCONT that must not come); each job in a process group of
    // its own.
    let cases = mechanisms()
        .into_iter()
        .flat_map(|m| [false, true].map(|pty| (m, pty)));
    at_once(cases, |(m, pty)| {
        let log = temp_path("conts");
        let mut cmd = pkit();
        cmd.args(["run", "-q", "--mechanism", m]);
        if pty {
            cmd.arg("--pty");
        }
        let mut child = cmd
            .args(["--", "python3", "-c", CONT_COUNTER])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .map(Started::new)
            .unwrap();
        let what = format!("{m} pty={pty}");
        let text = wait_for_text(&log, "\n");
        let program: i32 = text
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{what}: {text:?}"));
        let pkit_pid = child.id() as i32;
        kill(child.id(), libc::SIGTSTP);
        wait_state(pkit_pid, 'T');
        if !pty {
            // (On its own pty the program's group is orphaned: a
            // SIGTSTP does not stop it.)
            wait_state(program, 'T');
        }
        // `fg`: SIGCONT to the job's process group, pkit's.
        // SAFETY: signalling the process group our own unreaped child leads.
        assert_eq!(unsafe { libc::killpg(pkit_pid, libc::SIGCONT) }, 0);
        wait_for_text(&log, "cont");
        // Time for a second SIGCONT to arrive, were one sent.
        std::thread::sleep(Duration::from_millis(500));
        assert_ne!(state(program), Some('T'), "{what}: not resumed");
        assert_ne!(state(pkit_pid), Some('T'), "{what}: pkit not resumed");
        kill(child.id(), libc::SIGTERM);
        let status = child.wait().unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        std::fs::remove_file(&log).unwrap();
        assert_eq!(text.matches("cont").count(), 1, "{what}: {text:?}");
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{what}");
    });
}

/// The rest of a small job-control shell on a pty after [`PY_JOB_IN_PTY`]
/// (pkit its foreground job, in a process group of its own, whose parent,
/// the shell, is in another group of the session: not orphaned, as a job
/// of a real shell): it prints `job-stopped=1` at each stop of its job
/// and `job-status=N;` at its end, then exits. For the driver,
/// `job_status()` waits for that `N`.
const PY_SHELL_WAITS: &str = r#"
    while True:
        _, st = os.waitpid(job, os.WUNTRACED)
        if os.WIFSTOPPED(st):
            print("job-stopped=1", flush=True)
        else:
            print("job-status=%d;" % os.waitstatus_to_exitcode(st), flush=True)
            os._exit(0)
def job_status():
    read_until(b"job-status=")
    while b";" not in out.split(b"job-status=")[1]:
        read_until(b";", out.count(b";") + 1)
    return int(out.split(b"job-status=")[1].split(b";")[0])
"#;

/// A Python REPL under `pkit run` on a real pseudo-terminal, in both
/// mechanisms: Ctrl-C gives one KeyboardInterrupt and the REPL goes on, as
/// without pkit; Ctrl-Z stops the job (pkit included, so a shell would get
/// its prompt back) and SIGCONT to the job (what `fg` sends) resumes it.
/// pkit runs as the foreground job of a small job-control shell on the
/// terminal ([`PY_SHELL_WAITS`]), as from a real one: run as the
/// terminal's session leader itself, its process group would be orphaned,
/// where the kernel discards a Ctrl-Z for a program that does not catch
/// it, and so does pkit.
#[test]
fn a_repl_survives_ctrl_c_and_ctrl_z_from_a_terminal() {
    let driver = [
        PY_PTY_DRIVER,
        PY_JOB_IN_PTY,
        PY_SHELL_WAITS,
        r#"
read_job()
read_until(b">>> ")
os.write(fd, b"import time\n")
read_until(b">>> ")
out = b""
os.write(fd, b"time.sleep(30)\n")
time.sleep(0.5)
os.write(fd, b"\x03")
read_until(b"KeyboardInterrupt")
read_until(b">>> ")
os.write(fd, b"\x1a")
read_until(b"job-stopped=1")
stopped = out.count(b"job-stopped=1")
os.killpg(job, signal.SIGCONT)
os.write(fd, b"print(6 * 7)\n")
read_until(b"42")
os.write(fd, b"raise SystemExit(5)\n")
status = job_status()
os.waitpid(pid, 0)
sys.stdout.write("interrupts=%d stopped=%d status=%d resent=%d\n" % (
    out.count(b"KeyboardInterrupt"), stopped,
    status, out.count(b"sending SIGINT")))
"#,
    ]
    .concat();
    // portable: the signal self-pipe and, for Ctrl-Z, the stop seen
    // through waitid (what macOS and the BSDs run) instead of /proc.
    // At once, each on a terminal of its own.
    let cases = [
        ("cgroup", None),
        ("pgroup", None),
        ("portable", None),
        ("cgroup", Some("--foreground")),
    ];
    at_once(cases, |(m, extra)| {
        let out = std::process::Command::new("python3")
            .args(["-c", &driver, env!("CARGO_BIN_EXE_pkit")])
            .args(["run", "-v", "--mechanism", m])
            .args(extra)
            .args(["--", "python3", "-q", "-i"])
            .env("PYTHONSTARTUP", "")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        // The terminal delivered the SIGINT to the REPL: pkit (-v says what
        // it sends) must not send it a second one.
        assert!(
            text.contains("interrupts=1 stopped=1 status=5 resent=0"),
            "{m} {extra:?}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Started in the background of a terminal (as `pkit run python3 &` from a
/// shell with job control), a REPL under the process-group mechanism is
/// stopped by its first read; pkit stops too, so the shell sees the job
/// stop; `fg` (the terminal to pkit's group, then SIGCONT) brings both back
/// and the REPL gets the terminal.
#[test]
fn a_background_repl_stops_with_its_job_and_fg_resumes_it() {
    let driver = [
        PY_PTY_DRIVER,
        r#"
pid, fd = pty.fork()
if pid == 0:
    # A tiny shell with job control: run pkit as a background job.
    job = os.fork()
    if job == 0:
        os.setpgid(0, 0)
        os.execv(sys.argv[1], sys.argv[1:])
    try:
        os.setpgid(job, job)
    except PermissionError:
        pass  # EACCES: the job has exec'd already, after its own setpgid
    print("job=%d;" % job, flush=True)
    _, status = os.waitpid(job, os.WUNTRACED)
    print("job-stopped=%d" % os.WIFSTOPPED(status), flush=True)
    # fg: give the job the terminal, then continue it.
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    os.tcsetpgrp(0, job)
    os.killpg(job, signal.SIGCONT)
    _, status = os.waitpid(job, 0)
    print("job-status=%d" % os.waitstatus_to_exitcode(status), flush=True)
    os._exit(0)
read_job()
read_until(b"job-stopped=1")
read_until(b">>> ")
os.write(fd, b"print(6 * 7)\n")
read_until(b"42")
os.write(fd, b"raise SystemExit(5)\n")
read_until(b"job-status=5")
os.waitpid(pid, 0)
sys.stdout.write("ok\n")
"#,
    ]
    .concat();
    // portable: the self-pipe and waitid's stop, as macOS and the BSDs.
    for m in mechanisms().into_iter().filter(|&m| m != "cgroup") {
        let out = std::process::Command::new("python3")
            .args(["-c", &driver, env!("CARGO_BIN_EXE_pkit")])
            .args(["run", "-q", "--mechanism", m, "--", "python3", "-q", "-i"])
            .env("PYTHONSTARTUP", "")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.ends_with("ok\n"),
            "{m}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Under process groups the program leads a group of its own, which pkit
/// makes the terminal's foreground group. Stopped with its job, sent on in
/// the background (`bg`: the terminal the shell's, the job continued) and
/// brought back (`fg`: the terminal to pkit's group, then SIGCONT), pkit
/// hands the terminal to the program's group again, so a program that
/// only reads it after `fg` gets it (before, it was stopped by SIGTTIN,
/// and pkit's job with it, right after `fg`).
#[test]
fn fg_after_bg_gives_the_terminal_back_to_the_programs_group() {
    let driver = py_bg_fg_driver(
        r#"    os.tcsetpgrp(0, job)
    os.killpg(job, signal.SIGCONT)
    print("in-fg", flush=True)
    _, st = os.waitpid(job, os.WUNTRACED)
    if os.WIFSTOPPED(st):
        print("stopped-after-fg", flush=True)
        os.killpg(job, signal.SIGKILL)
        _, st = os.waitpid(job, 0)
    print("job-status=%d" % os.waitstatus_to_exitcode(st), flush=True)
    os._exit(0)
"#,
        r#"go = sys.argv[-1]
read_job()
read_until(b"ready")
os.kill(job, signal.SIGTSTP)
read_until(b"stopped=1")
read_until(b"in-bg")
os.write(fd, b"fg\n")
read_until(b"in-fg")
# The terminal's foreground group: the program's (not pkit's, the job's).
end = time.time() + 30
while os.tcgetpgrp(fd) == job:
    if time.time() > end:
        give_up("the terminal never went back to the program's group")
    time.sleep(0.01)
open(go, "w").close()
os.write(fd, b"hello\n")
read_until(b"got=hello")
read_until(b"job-status=0")
os.waitpid(pid, 0)
sys.stdout.write("ok\n")
"#,
    );
    for m in mechanisms().into_iter().filter(|&m| m != "cgroup") {
        let go = temp_path("go");
        // Reads the terminal only once `go` exists (after `fg`).
        let script =
            r#"echo ready; while [ ! -e "$1" ]; do sleep 0.1; done; read x; echo "got=$x""#;
        let out = std::process::Command::new("python3")
            .args(["-c", &driver, env!("CARGO_BIN_EXE_pkit")])
            .args([
                "run",
                "-q",
                "--mechanism",
                m,
                "--",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(&go)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&go);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.ends_with("ok\n"),
            "{m}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Two stop signals to pkit at once (`kill -TSTP` and `kill -TTIN` while
/// its run loop is held up: `PKIT_TEST_PAUSE=continued`, right after an
/// earlier stop and `fg`) are one stop, as the kernel makes them: the
/// SIGCONT of one `fg` continues pkit and its program for good (before,
/// the self-pipe of the portable backend had taken both and pkit stopped
/// itself once for each: the user had to `fg` twice). pkit on a terminal
/// of its own, the foreground job of a small job-control shell there
/// ([`PY_SHELL_WAITS`]; as the terminal's session leader, pkit's group
/// was orphaned, where stop signals are dropped).
#[test]
fn two_stop_signals_at_once_need_one_fg() {
    let driver = [
        PY_PTY_DRIVER,
        PY_JOB_IN_PTY,
        PY_SHELL_WAITS,
        r#"
def stat():
    with open("/proc/%d/stat" % job) as f:
        return f.read().rsplit(")", 1)[1].split()[0]
def wait_stopped(n):
    # The shell's report of pkit's n-th stop (or of its end: then the
    # wait gives up).
    read_until(b"job-stopped=1", n)
def ticks_go_on():
    # Five more lines of the program's output.
    read_until(b"tick", out.count(b"tick") + 5)
read_job()
read_until(b"tick", 3)
os.kill(job, signal.SIGTSTP)
wait_stopped(1)
# `fg`; pkit is held up after its continue, before its next read of its
# signals: both stops are pending there at once.
os.killpg(job, signal.SIGCONT)
os.kill(job, signal.SIGTSTP)
os.kill(job, signal.SIGTTIN)
wait_stopped(2)
# One `fg`.
os.killpg(job, signal.SIGCONT)
ticks_go_on()
if out.count(b"job-stopped=1") != 2 or b"job-status=" in out or stat() == "T":
    give_up("pkit stopped again, or ended")
os.kill(job, signal.SIGTERM)
job_status()
os.waitpid(pid, 0)
sys.stdout.write("ok\n")
"#,
    ]
    .concat();
    let ticker = "while :; do echo tick; sleep 0.1; done";
    // The mechanisms at once, each on a terminal of its own (each mostly
    // waits out pkit's test pause).
    at_once(mechanisms(), |m| {
        let out = std::process::Command::new("python3")
            .args(["-c", &driver, env!("CARGO_BIN_EXE_pkit")])
            .args(["run", "-q", "--mechanism", m, "--", "sh", "-c", ticker])
            .env("PKIT_TEST_PAUSE", "continued:3000")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.ends_with("ok\n"),
            "{m}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Under the portable backend (`--mechanism portable`, or
/// `PKIT_MECHANISM=portable` without `--mechanism`) pkit reads its signals
/// the way macOS and the BSDs do, through a handler and a self-pipe (its
/// `pkit-signals` thread), so the signal tests above run that code on
/// Linux; otherwise through a signalfd (no such thread).
#[test]
fn the_portable_backend_reads_signals_through_the_self_pipe() {
    let cases: [(&[&str], Option<&str>, bool); 5] = [
        (&["--mechanism", "portable"], None, true),
        (&[], Some("portable"), true),
        (&["--mechanism", "pgroup"], Some("portable"), false),
        (&["--mechanism", "pgroup"], None, false),
        (&["--mechanism", "cgroup"], None, false),
    ];
    for (flags, env, pipe) in cases {
        let ready = temp_path("ready");
        let mut cmd = pkit();
        cmd.args(["run", "-q"])
            .args(flags)
            .args(["--", "sh", "-c"])
            .arg(trap_loop("trap 'exit 3' TERM", &ready))
            .stdin(Stdio::null())
            .env_remove("PKIT_MECHANISM");
        if let Some(v) = env {
            cmd.env("PKIT_MECHANISM", v);
        }
        let mut child = cmd.spawn().map(Started::new).unwrap();
        wait_for_text(&ready, "up");
        // A thread started with a name takes it itself once it first runs
        // (std sets it from inside the new thread): on a loaded machine
        // it can exist for a while under its parent's name (`pkit`). So
        // the names are read once every thread but the main one has its
        // own (pkit names each of its threads), generously polled.
        let pid = child.id();
        let names = || -> Vec<(bool, String)> {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .unwrap()
                .flatten()
                .filter_map(|t| {
                    let main = t.file_name().to_string_lossy() == pid.to_string();
                    let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
                    Some((main, comm.trim().to_string()))
                })
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let threads: Vec<String> = loop {
            let seen = names();
            let main = seen.iter().find(|(m, _)| *m).map(|(_, c)| c.clone());
            let unnamed = seen.iter().any(|(m, c)| !m && Some(c) == main.as_ref());
            if !unnamed || Instant::now() > deadline {
                break seen.into_iter().map(|(_, c)| c).collect();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        kill(child.id(), libc::SIGTERM);
        let status = child.wait().unwrap();
        std::fs::remove_file(&ready).unwrap();
        let what = format!("{flags:?} PKIT_MECHANISM={env:?}: threads {threads:?}");
        assert_eq!(threads.iter().any(|t| t == "pkit-signals"), pipe, "{what}");
        // SIGTERM (from a process) reached the program's trap either way.
        assert_eq!(status.code(), Some(3), "{what}");
    }
}

/// A flood of signals (15000: 3000 each of five kinds, more than a pipe
/// would hold as one record per signal) does not make pkit lose a kind:
/// the SIGTERM sent after them reaches the program. (Pending signals of
/// one kind may coalesce, as the kernel does with a blocked one.) pkit's
/// run loop is held up meanwhile: with -v it writes a line per forwarded
/// signal to a stderr nobody reads yet. Run with the self-pipe (portable)
/// and with the signalfd.
#[test]
fn a_term_after_a_flood_of_winch_is_not_lost() {
    for m in mechanisms() {
        let ready = temp_path("ready");
        let mut child = pkit()
            .args(["run", "-v", "--mechanism", m, "--", "sh", "-c"])
            .arg(trap_loop(
                "trap 'exit 3' TERM; trap '' USR1 USR2 ALRM",
                &ready,
            ))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map(Started::new)
            .unwrap();
        wait_for_text(&ready, "up");
        // Five kinds at a time (the kernel keeps one of each pending),
        // then time for pkit's signal thread to take them.
        for _ in 0..3000 {
            for sig in [
                libc::SIGWINCH,
                libc::SIGUSR1,
                libc::SIGUSR2,
                libc::SIGALRM,
                libc::SIGCONT,
            ] {
                kill(child.id(), sig);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        kill(child.id(), libc::SIGTERM);
        let mut err = child.stderr.take().unwrap();
        let drain = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = drain.join().unwrap();
        std::fs::remove_file(&ready).unwrap();
        let forwarded = text.matches("sending SIG").count();
        eprintln!("{m}: {forwarded} signals forwarded");
        let status =
            status.unwrap_or_else(|| panic!("{m}: SIGTERM lost (after {forwarded} forwarded)"));
        assert_eq!(status.code(), Some(3), "{m}: {status:?}");
        assert!(text.contains("sending SIGTERM"), "{m}");
    }
}

/// Kills pkit (the child of the test) if the test fails before it ends:
/// its owner-death guard then ends the program.
struct KillOnPanic(Option<std::process::Child>);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A signal ignored when pkit starts (here SIGHUP, as `nohup` leaves it)
/// stays ignored, on every mechanism: pkit neither
/// forwards nor acts on it (two of them would otherwise start its
/// teardown), the report lists none, and the program inherits the ignored
/// disposition, as it would without pkit. Before, the signalfd
/// mechanisms (cgroup, pgroup) forwarded it and escalated on the second.
#[test]
fn a_signal_ignored_when_pkit_starts_stays_ignored() {
    for m in mechanisms() {
        let ready = temp_path("ready");
        let script = format!(
            "echo $$ > {}; while :; do sleep 0.05; done",
            ready.display()
        );
        let mut child = KillOnPanic(Some(
            pkit_ignoring(libc::SIGHUP)
                .args(["run", "--json", "--mechanism", m, "--", "sh", "-c", &script])
                .stdin(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ));
        let pkit = child.0.as_mut().unwrap();
        let program = read_pids(&ready, 1)[0];
        let pkit_pid = pkit.id() as i32;
        assert!(
            in_mask(pkit_pid, "SigIgn:", libc::SIGHUP),
            "{m}: pkit ignores HUP"
        );
        assert!(
            in_mask(program, "SigIgn:", libc::SIGHUP),
            "{m}: the program inherited the ignored HUP"
        );
        for _ in 0..3 {
            kill(pkit.id(), libc::SIGHUP);
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(pkit.try_wait().unwrap().is_none(), "{m}: pkit ended on HUP");
        assert!(
            matches!(state(program), Some(s) if s != 'Z'),
            "{m}: the program ended on HUP"
        );
        assert!(
            !in_mask(pkit_pid, "SigBlk:", libc::SIGHUP)
                && !in_mask(pkit_pid, "SigPnd:", libc::SIGHUP),
            "{m}: pkit neither blocks nor holds the ignored HUP"
        );
        // TERM is not ignored: it reaches the program, which dies of it.
        kill(pkit.id(), libc::SIGTERM);
        let out = child.0.take().unwrap().wait_with_output().unwrap();
        std::fs::remove_file(&ready).unwrap();
        assert_eq!(shell_status(out.status), 128 + libc::SIGTERM, "{m}");
        let v = report(&out);
        assert_eq!(v["outcome"], "signalled", "{m}: {v}");
        assert_eq!(
            v["signals_received"],
            serde_json::json!(["SIGTERM"]),
            "{m}: {v}"
        );
        assert_all_gone(&[program]);
    }
}

/// The timeout's SIGTERM refused by a process of the tree (`EPERM`: here
/// pkit runs as root without CAP_KILL, `setpriv --bounding-set=-kill`,
/// and the tree holds a process of another user) does not end the others'
/// grace: the program's trap, which takes a second, runs to its end, and
/// the kill follows once `--kill-after` is over (137, `killed_after_grace`),
/// the refusing process included. Before (`Sent::Denied` counted as a
/// signal that missed the tree) the refusal killed the whole tree at once:
/// no trap ran. (cgroup v2 only: see there.) The grace is waited out twice
/// (the program's, then its leftover's, the other user's `sleep`): 5 s, four
/// times the trap's second (it was 10 s).
#[test]
fn a_signal_a_process_refuses_keeps_the_others_grace_and_the_kill_follows() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (to drop CAP_KILL and start another user's process)");
        return;
    }
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no setpriv");
        return;
    }
    // Only the cgroup mechanism signals each member (through its pidfd)
    // and so sees one refuse: a process group's killpg succeeds when any
    // member got the signal.
    if !mechanisms().contains(&"cgroup") {
        eprintln!("skipped: the cgroup mechanism alone sees a member refuse");
        return;
    }
    let m = "cgroup";
    // The trap must be set before the timeout's TERM: a run whose shell
    // was slower to get there than its timeout (a loaded machine: no
    // `ready` line) is tried again with twice the timeout (3 s, then 6,
    // 12, 24), once its other user's process is checked gone.
    let mut secs = 3;
    loop {
        let (pids, mark, ready) = (pid_file(), temp_path("trap-ran"), temp_path("trap-set"));
        let script = format!(
            "setpriv --reuid=65534 --regid=65534 --clear-groups sleep 300 & echo $! > {pids}; \
             trap 'sleep 1; echo done > {mark}' TERM; echo ready > {ready}; \
             while :; do sleep 0.1; done",
            pids = pids.display(),
            mark = mark.display(),
            ready = ready.display()
        );
        let out = std::process::Command::new("setpriv")
            .args(["--bounding-set=-kill", "--", env!("CARGO_BIN_EXE_pkit")])
            .args(["run", "--mechanism", m, "--verbose", "--json"])
            .args(["--timeout", &format!("{secs}s"), "--kill-after", "5s", "--"])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        let set = std::fs::read_to_string(&ready).unwrap_or_default() == "ready\n";
        let _ = std::fs::remove_file(&ready);
        if !set {
            let started = std::fs::read_to_string(&pids).unwrap_or_default();
            let other: Vec<i32> = started
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            assert_all_gone(&other);
            let _ = std::fs::remove_file(&pids);
            let _ = std::fs::remove_file(&mark);
            assert!(secs < 24, "{m}: the trap was never set in time: {text}");
            secs *= 2;
            continue;
        }
        let other = read_pids(&pids, 1)[0];
        assert_all_gone(&[other]);
        let trap = std::fs::read_to_string(&mark).unwrap_or_default();
        assert_eq!(trap, "done\n", "{m}: the trap had no grace: {text}");
        assert!(
            text.contains("was refused by a process of the tree"),
            "{m}: no EPERM seen: {text}"
        );
        assert_eq!(shell_status(out.status), 137, "{m}: {text}");
        let r = report(&out);
        assert_eq!(r["killed_after_grace"], true, "{m}: {r}");
        let _ = std::fs::remove_file(&pids);
        let _ = std::fs::remove_file(&mark);
        break;
    }
}
