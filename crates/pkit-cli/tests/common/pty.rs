//! Terminal drivers: Python programs that run pkit, or a job-control
//! shell, on a pty of their own, and what their output must show.

use std::process::Command;

/// The start of a Python driver that runs pkit (its `argv[1:]`) on a
/// terminal of its own: it defines `out` (what the terminal showed),
/// `read_until(needle, count=1, secs=20)`, `give_up(why)` (kills the
/// terminal's session and, once `read_job()` has read a tiny shell's
/// `job=N;` line, the job's process group, then exits 3),
/// `first_pid(path)` (the first pid a program wrote to the file `path`,
/// once there is one), `wait_handed(path)` (that pid, once the process
/// group it leads, the program's, holds the terminal: pkit handed it
/// over) and a 90 s deadline for the whole driver. The driver goes on with
/// `pid, fd = pty.fork()`; `pid` and `fd` are read when these run.
pub const PY_PTY_DRIVER: &str = r#"
import os, pty, select, signal, sys, termios, time
out = b""
job = None
def give_up(why):
    sys.stdout.write("FAIL %s; got %r\n" % (why, out))
    sys.stdout.flush()
    if job:
        os.killpg(job, signal.SIGKILL)
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os._exit(3)
def read_until(needle, count=1, secs=20):
    global out
    end = time.time() + secs
    while out.count(needle) < count:
        left = end - time.time()
        if left <= 0:
            give_up("waiting for %r" % needle)
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                give_up("the end of the terminal, waiting for %r" % needle)
def read_job():
    global job
    read_until(b";")
    job = int(out.split(b"job=")[1].split(b";")[0])
def first_pid(path, secs=60):
    end = time.time() + secs
    while True:
        try:
            return int(open(path).read().split()[0])
        except (OSError, ValueError, IndexError):
            if time.time() > end:
                give_up("no pid in %s" % path)
            time.sleep(0.02)
def wait_handed(path, secs=60):
    prog = first_pid(path, secs)
    end = time.time() + secs
    while os.tcgetpgrp(fd) != prog:
        if time.time() > end:
            give_up("the program's group never held the terminal")
        time.sleep(0.02)
    return prog
# (An alarm is not inherited by a fork: only the driver gets it.)
signal.signal(signal.SIGALRM, lambda *_: give_up("past the 90 s deadline"))
signal.alarm(90)
"#;

/// [`PY_PTY_DRIVER`], then a tiny job-control shell on the terminal: the
/// child of `pty.fork()` starts the job (pkit, the driver's `argv[1:]`) in
/// a process group of its own in the foreground and prints `job=N;`; once
/// the job stops (the driver sends SIGTSTP) it prints `stopped=1`, takes
/// the terminal back, continues the job in the background (`bg`), prints
/// `in-bg` and reads a line from the terminal (the driver's `fg`).
/// `at_fg` goes on in the shell's branch (indented 4 spaces: `fd`, `job`
/// and `st` are defined there); `driver` then drives it from the parent.
pub fn py_bg_fg_driver(at_fg: &str, driver: &str) -> String {
    const SHELL: &str = r#"
    _, st = os.waitpid(job, os.WUNTRACED)
    print("stopped=%d" % os.WIFSTOPPED(st), flush=True)
    os.tcsetpgrp(0, os.getpgrp())
    os.killpg(job, signal.SIGCONT)
    print("in-bg", flush=True)
    sys.stdin.readline()
"#;
    [PY_PTY_DRIVER, PY_JOB_IN_PTY, SHELL, at_fg, driver].concat()
}

/// The shell's part of a bg/fg driver, up to its job's start: a pty
/// (`pid`, `fd`), and in its child (`pid == 0`) a job in a process group of
/// its own, in the terminal's foreground, running `sys.argv[1:]` (`job`,
/// printed as `job=N;`). What follows goes on in the shell's branch,
/// indented 4 spaces.
pub const PY_JOB_IN_PTY: &str = r#"
pid, fd = pty.fork()
if pid == 0:
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    job = os.fork()
    if job == 0:
        os.setpgid(0, 0)
        os.tcsetpgrp(0, os.getpgrp())
        # The job's signals at their defaults, as `pkit()` starts pkit,
        # whatever the suite inherited (a background job of a
        # non-interactive shell starts with INT and QUIT ignored, which
        # pkit would keep: Ctrl-C would reach nothing).
        for s in (signal.SIGTTOU, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
            signal.signal(s, signal.SIG_DFL)
        os.execv(sys.argv[1], sys.argv[1:])
    try:
        os.setpgid(job, job)
    except PermissionError:
        pass
    print("job=%d;" % job, flush=True)"#;

/// Runs `driver` (after [`PY_PTY_DRIVER`] and [`PY_JOB_IN_PTY`]) with
/// `job` as the job's `sh -c` script; its stdout.
pub fn drive(job: &str, driver: &str) -> String {
    drive_paused(job, driver, None)
}

/// [`drive`], with `pause` as pkit's `PKIT_TEST_PAUSE`.
pub fn drive_paused(job: &str, driver: &str, pause: Option<&str>) -> String {
    let script = [PY_PTY_DRIVER, PY_JOB_IN_PTY, driver].concat();
    let mut cmd = Command::new("python3");
    match pause {
        Some(p) => cmd.env("PKIT_TEST_PAUSE", p),
        None => cmd.env_remove("PKIT_TEST_PAUSE"),
    };
    let out = cmd
        .args(["-c", &script, "/bin/sh", "-c", job])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A [`drive`] driver: the job's shell waits for the job to stop and
/// prints `stopped=1;` (then kills it); the driver types Ctrl-Z once the
/// program has written its pid to the file `pids` (and, with `handed`,
/// once pkit has handed it the terminal) and ends `ok` once the shell saw
/// the stop within 30 s.
pub fn py_ctrl_z_stops_the_job(pids: &str, handed: bool) -> String {
    let wait = if handed { "wait_handed" } else { "first_pid" };
    format!(
        r#"
    _, st = os.waitpid(job, os.WUNTRACED)
    print("stopped=%d;" % os.WIFSTOPPED(st), flush=True)
    os.killpg(job, signal.SIGKILL)
    os._exit(0)
read_job()
{wait}("{pids}")
os.write(fd, b"\x1a")
read_until(b"stopped=1;", 1, 30)
os.waitpid(pid, 0)
sys.stdout.write("ok\n")
"#
    )
}

/// A [`drive`] driver: the job's shell waits for the job to end or stop,
/// prints `status=<stopped>,<signal>;` and kills a stopped job; the
/// driver, `delay` seconds after the job's start (at once: 0), types
/// `typed` (a Python bytes literal's text, `abc\n`; nothing when empty),
/// waits for that line (`within` seconds) and prints what the terminal
/// showed, then `ok`.
pub fn ends_or_stops(typed: &str, delay: u32, within: u32) -> String {
    let sleep = if delay > 0 {
        format!("time.sleep({delay})\n")
    } else {
        String::new()
    };
    let write = if typed.is_empty() {
        String::new()
    } else {
        format!("os.write(fd, b\"{typed}\")\n")
    };
    format!(
        r#"
    _, st = os.waitpid(job, os.WUNTRACED)
    print("status=%d,%d;" % (os.WIFSTOPPED(st), os.WSTOPSIG(st) if os.WIFSTOPPED(st) else 0), flush=True)
    if os.WIFSTOPPED(st):
        os.killpg(job, signal.SIGKILL)
    os._exit(0)
read_job()
{sleep}{write}read_until(b"status=", 1, {within})
read_until(b";", 2, 5)
os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace") + "\nok\n")
"#
    )
}

/// Asserts that a job [`drive`]n with [`ends_or_stops`] typing `abc`
/// ended by itself (`status=0,0;`) and that its program's read of the
/// terminal went through (`got=abc`); `case` names the case. `text`: what
/// the driver printed.
pub fn assert_the_read_went_through(case: &str, text: &str) {
    assert!(text.ends_with("ok\n"), "{case}: {text}");
    assert!(
        text.contains("got=abc") && text.contains("status=0,0;"),
        "{case}: the read did not go through (status=1,21 is a stop by SIGTTIN): {text}"
    );
}

/// Asserts that a job [`drive`]n with [`ends_or_stops`] was stopped by
/// SIGTTIN (`status=1,21;`) at its program's read of the terminal, which
/// did not go through (no `got=`); `case` names the case. `text`: what
/// the driver printed.
pub fn assert_stopped_for_the_read(case: &str, text: &str) {
    assert!(text.ends_with("ok\n"), "{case}: {text}");
    assert!(
        text.contains("status=1,21;") && !text.contains("got="),
        "{case}: the job was not stopped by SIGTTIN for the pipeline's read: {text}"
    );
}

/// A job script's wait, before a pipeline's stage that runs pkit, for
/// the job's `cat` (the stage after it) to run: `{{ {UNTIL_CAT} exec
/// {PKIT} run …; }} | cat`. A shell forks a pipeline's stages one after
/// the other, and on a loaded machine pkit, which looks at its job once
/// its program has started, could find no stage after it yet (CI's ci20):
/// it hands its program the terminal that a pipeline's job keeps, and a
/// test of the job keeping it sees the read go through. (`pgrep -g 0`:
/// pgrep's own process group, the job's; the waiting shell's `pgrep` and
/// `sleep` are gone before pkit starts.)
pub const UNTIL_CAT: &str = "until pgrep -g 0 -x cat >/dev/null; do sleep 0.01; done;";

/// A Python driver of a real job-control shell (`bash --norc -i`, prompt
/// `PROMPT> `) on a pty of its own: `read_until(needle, secs, count=1)`
/// (false at the deadline), `out` (what the terminal showed), `session()`
/// (each process of the terminal's session: its pid as a string, its stat
/// fields after the name, its whole stat line), `finish(ok)`
/// (prints `OK` or `FAIL` with the tail of `out`, then SIGKILLs every
/// process of the terminal's session: bash, its jobs, pkit's watchers);
/// a 90 s alarm. The body (`body`) follows at the top level; `sys.argv[1]`
/// is the command line to type.
pub fn bash_driver(body: &str) -> String {
    const HEAD: &str = r#"
import os, pty, select, signal, sys, time
out = b""
def read_until(needle, secs, count=1):
    global out
    end = time.time() + secs
    while out.count(needle) < count:
        left = end - time.time()
        if left <= 0:
            return False
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                return False
    return True
def session():
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            s = open("/proc/%s/stat" % d).read()
        except Exception:
            continue
        f = s[s.rfind(")") + 2:].split()
        if int(f[3]) == pid:
            yield d, f, s
def finish(ok):
    sys.stdout.write("OK\n" if ok else "FAIL %r\n" % out[-600:])
    sys.stdout.flush()
    for d, _, _ in session():
        try:
            os.kill(int(d), signal.SIGKILL)
        except Exception:
            pass
    os.waitpid(pid, 0)
    os._exit(0)
pid, fd = pty.fork()
if pid == 0:
    os.environ["PS1"] = "PROMPT> "
    for s in (signal.SIGTTOU, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(s, signal.SIG_DFL)
    os.execv("/bin/bash", ["bash", "--norc", "--noprofile", "-i"])
signal.signal(signal.SIGALRM, lambda *_: finish(False))
signal.alarm(90)
read_until(b"PROMPT> ", 20)
os.write(fd, (sys.argv[1] + "\n").encode())
"#;
    [HEAD, body].concat()
}

/// Runs a [`bash_driver`] with `body` typing `line`; its stdout.
pub fn drive_bash(line: &str, body: &str) -> String {
    drive_bash_paused(line, body, None)
}

/// [`drive_bash`] with `PKIT_TEST_PAUSE` set to `pause`, if any.
pub fn drive_bash_paused(line: &str, body: &str, pause: Option<&str>) -> String {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &bash_driver(body), line])
        .env_remove("PKIT_TEST_PAUSE")
        .stdin(std::process::Stdio::null());
    if let Some(p) = pause {
        cmd.env("PKIT_TEST_PAUSE", p);
    }
    let out = cmd.output().expect("python3 runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether there is a `/bin/bash` (the job-control shell tests need it).
pub fn have_bash() -> bool {
    std::path::Path::new("/bin/bash").exists()
}
