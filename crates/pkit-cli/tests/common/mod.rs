//! Helpers shared by the CLI's test files: run the real `pkit` binary,
//! read its report, and check that processes are really gone.

#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Every mechanism `--mechanism` takes on Linux.
pub const MECHANISMS: [&str; 3] = ["cgroup", "pgroup", "portable"];

/// The mechanisms a per-mechanism loop forces with `--mechanism`: all
/// three, or only the one `PKIT_MECHANISM` names (CI's process-group and
/// portable passes). Those passes exist for the runs that take the
/// environment's choice; a run with `--mechanism` forces the flag's, so
/// the other two would repeat what the first pass ran (as the library's
/// `tests/common` `mechanisms()` does for its own loops).
pub fn mechanisms() -> Vec<&'static str> {
    match std::env::var("PKIT_MECHANISM").ok().as_deref() {
        Some(env) => match MECHANISMS.iter().find(|&&m| m == env) {
            Some(&m) => vec![m],
            None => MECHANISMS.to_vec(),
        },
        None => MECHANISMS.to_vec(),
    }
}

/// Runs `case` for each of `cases` at once, each on a thread of its own
/// (for cases that mostly wait: a timeout, a grace, a program's linger),
/// and fails if any failed (each panic's message is printed as it
/// happens; the scope then panics).
pub fn at_once<T: Send>(cases: impl IntoIterator<Item = T>, case: impl Fn(T) + Sync) {
    std::thread::scope(|s| {
        for c in cases {
            let case = &case;
            s.spawn(move || case(c));
        }
    });
}

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

/// The mechanisms of [`mechanisms`] that put the program in a process
/// group of its own (pgroup, portable): those the terminal's rule is for.
pub fn process_group_mechanisms() -> Vec<&'static str> {
    mechanisms()
        .into_iter()
        .filter(|m| *m != "cgroup")
        .collect()
}

/// Kills (SIGKILL) every pid written to its file, one a line, when
/// dropped: the processes a case's program recorded, on a failed
/// assertion too.
pub struct Reap(pub PathBuf);

impl Reap {
    /// A file of [`temp_path`]`(what)`.
    pub fn new(what: &str) -> Reap {
        Reap(temp_path(what))
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        let text = std::fs::read_to_string(&self.0).unwrap_or_default();
        for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            if pid > 1 && !pid_gone(pid) {
                // SAFETY: kill(2) of a pid this case's program wrote.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The `pkit` binary, started with HUP, INT, QUIT and TERM at their
/// default disposition whatever the suite inherited: pkit keeps a signal
/// ignored when it starts ignored (so `nohup cargo test`, or the suite run
/// as a background job of a non-interactive shell, which ignores INT and
/// QUIT, would change what the signal tests see). A test that wants one
/// ignored sets that up itself, after this.
pub fn pkit() -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pkit"));
    // SAFETY: `signal` is async-signal-safe, and the closure touches
    // nothing else of the parent's between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    cmd
}

/// [`pkit`], started with `sig` ignored, as `nohup` starts a program with
/// SIGHUP ignored.
pub fn pkit_ignoring(sig: i32) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = pkit();
    // SAFETY: as in `pkit`: only `signal`, after `pkit`'s own (closures
    // run in the order they were added).
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(sig, libc::SIG_IGN);
            Ok(())
        });
    }
    cmd
}

/// Whether signal `sig` is in `pid`'s mask `field` of `/proc/<pid>/status`
/// (`SigIgn:`, `SigBlk:`, `SigPnd:`).
pub fn in_mask(pid: i32, field: &str, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no {field} for {pid}: {status}"));
    mask & (1 << (sig - 1)) != 0
}

pub fn run(args: &[&str]) -> Output {
    pkit().args(args).output().expect("pkit runs")
}

/// The status a shell's `$?` shows: the code, or 128+N for signal N.
pub fn shell_status(s: ExitStatus) -> i32 {
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// The JSON report: the last line of stderr (`--json`).
pub fn report(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stderr);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// A name no other call makes, in this run or another:
/// `pkit-cli-<what>-<pid>.<pid namespace>-<nanoseconds>-<counter>`. The
/// namespace: another run of the suite under `unshare -pf` has our pid,
/// and the same temp dir and cgroup file system; the clock: an earlier
/// process with our pid, in a namespace since gone. For a temp file
/// ([`temp_path`]) or a test's own directory or cgroup.
pub fn unique_name(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "pkit-cli-{what}-{}.{}-{nanos}-{}",
        std::process::id(),
        pid_ns(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh temporary path, [`unique_name`]`(what)` in the temp dir.
pub fn temp_path(what: &str) -> PathBuf {
    let path = std::env::temp_dir().join(unique_name(what));
    // A file an earlier process with our pid left (killed before its
    // cleanup) is not this test's.
    let _ = std::fs::remove_file(&path);
    path
}

/// Writes `text` to the file `path`, with permission bits `mode`.
pub fn write_file(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// This process's `PATH` with `dir` put first.
pub fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

pub fn pid_file() -> PathBuf {
    temp_path("pids")
}

/// Polls `file` until it has `want` lines that are numbers.
pub fn read_pids(file: &Path, want: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.len() >= want {
            return pids;
        }
        assert!(Instant::now() < deadline, "pids never appeared in {file:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `file` until it contains `needle`.
pub fn wait_for_text(file: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never appeared in {file:?}: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The state letter of `pid` (`R`, `S`, `T`, `Z`, …), if it exists.
pub fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().next()?.chars().next()
}

/// Polls until `pid` is in state `want` (generous: a loaded machine can
/// take seconds to schedule a stop or a continue).
pub fn wait_state(pid: i32, want: char) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while state(pid) != Some(want) {
        assert!(
            Instant::now() < deadline,
            "pid {pid} never reached state {want} (is {:?})",
            state(pid)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Gone: no /proc entry, or a zombie waiting for init to reap it (and
/// not a process whose main thread ended while others run on, which shows
/// `Z` too: `Zl` in `ps`).
pub fn pid_gone(pid: i32) -> bool {
    match state(pid) {
        None => true,
        Some('Z') | Some('X') => !a_thread_runs(pid),
        Some(_) => false,
    }
}

/// Whether a thread of `pid` is not (yet) a zombie.
fn a_thread_runs(pid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    dir.filter_map(Result::ok).any(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        !matches!(
            after.split_whitespace().next(),
            None | Some("Z") | Some("X")
        )
    })
}

pub fn assert_all_gone(pids: &[i32]) {
    // Generous: a loaded machine can take seconds to schedule the kill.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pids.iter().all(|&p| pid_gone(p)) {
        if Instant::now() >= deadline {
            // Each survivor with its state, group and session, to tell a
            // slow kill from a process outside the group.
            let alive: Vec<String> = pids
                .iter()
                .filter(|&&p| !pid_gone(p))
                .map(|&p| {
                    let stat =
                        std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                    let f: Vec<&str> = stat
                        .rsplit(')')
                        .next()
                        .unwrap_or("")
                        .split_whitespace()
                        .collect();
                    format!(
                        "{p} (state {:?} ppid {:?} pgid {:?} sid {:?})",
                        f.first(),
                        f.get(1),
                        f.get(2),
                        f.get(3)
                    )
                })
                .collect();
            panic!("still alive after 30 s: {}", alive.join(", "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn tree_script(file: &Path) -> String {
    format!(
        "sleep 300 & echo $! >> {f}; sleep 300 & echo $! >> {f}; echo $$ >> {f}; wait",
        f = file.display()
    )
}

/// For a run whose timeout must come after [`tree_script`]'s shell wrote
/// its three pids: `once(timeout, file)` runs pkit with `--timeout` given
/// `timeout` (whole seconds, as text) and the tree writing to `file` (a
/// fresh one each try), and returns once the tree ended. A try whose shell
/// was slower to start than its timeout (a loaded machine: fewer than
/// three pids written) is run again with twice the timeout (`secs`, then
/// up to 16 s), once what it did start is checked gone. Returns the
/// output of the try that wrote all three, and the three pids.
pub fn until_the_tree_started(
    secs: u32,
    mut once: impl FnMut(&str, &Path) -> Output,
) -> (Output, Vec<i32>) {
    let mut secs = secs;
    loop {
        let file = pid_file();
        let out = once(&secs.to_string(), &file);
        // The run waited for its shell: nothing writes to the file now.
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let _ = std::fs::remove_file(&file);
        let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.len() >= 3 {
            return (out, pids);
        }
        assert_all_gone(&pids);
        assert!(
            secs < 16,
            "the shell never wrote its pids before the timeout: {text:?}, {}",
            String::from_utf8_lossy(&out.stderr)
        );
        secs *= 2;
    }
}

/// Sends `sig` to `pid` (our own unreaped child).
pub fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

/// The live `pkit-guard` processes whose environment has
/// `PKIT_TEST_TAG=<tag>`.
pub fn guards_tagged(tag: &str) -> Vec<i32> {
    let want = format!("PKIT_TEST_TAG={tag}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "pkit-guard" || pid_gone(pid) {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|&b| b == 0).any(|kv| kv == want.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// A started `pkit` (or a program that runs one: a terminal driver, a
/// shell): when dropped before it was waited for, as at a failing
/// assertion, it is killed with its tree, and reaped, so that nothing of
/// it is left to the next test. Derefs to the [`Child`](std::process::Child);
/// its [`wait_with_output`](Self::wait_with_output) takes it, as the
/// child's does.
///
/// Only what this test started is killed, by pid: the child (not reaped
/// yet, so its pid is its own), then the processes below it as they were
/// just before (read from `/proc`), each only if its start time is still
/// the one read then (not a later process given the number).
pub struct Started(Option<std::process::Child>);

impl Started {
    /// Guards `child` (a `.spawn()`'s).
    pub fn new(child: std::process::Child) -> Started {
        Started(Some(child))
    }

    /// The child, no longer guarded (for a function that takes one).
    pub fn into_child(mut self) -> std::process::Child {
        self.0.take().expect("present until taken")
    }

    /// [`Child::wait_with_output`](std::process::Child::wait_with_output):
    /// once it returns, the child is reaped, and nothing is left to kill.
    pub fn wait_with_output(self) -> std::io::Result<Output> {
        self.into_child().wait_with_output()
    }
}

impl std::ops::Deref for Started {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        self.0.as_ref().expect("present until taken")
    }
}

impl std::ops::DerefMut for Started {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("present until taken")
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        let tree = descendants(child.id());
        // The child first: a supervisor restarts nothing once it is gone.
        let _ = child.kill();
        let still: Vec<String> = tree
            .into_iter()
            .filter(|&(pid, start)| start_time(pid) == Some(start))
            .map(|(pid, _)| pid.to_string())
            .collect();
        if !still.is_empty() {
            let _ = Command::new("kill")
                .arg("-9")
                .args(&still)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = child.wait();
    }
}

/// The start time of `pid` (`/proc/<pid>/stat` field 22); `None` when it
/// is gone.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields after the command name start at field 3 (the state).
    after.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// The processes below `root` now (children, their children, ...), each
/// with its start time.
pub fn descendants(root: u32) -> Vec<(u32, u64)> {
    let mut parents = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let mut f = after.split_whitespace();
            let ppid = f.nth(1).and_then(|p| p.parse::<u32>().ok());
            let start = f.nth(22 - 5).and_then(|t| t.parse::<u64>().ok());
            if let (Some(ppid), Some(start)) = (ppid, start) {
                parents.push((pid, ppid, start));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, start) in &parents {
            if ppid == parent && !found.iter().any(|&(p, _)| p == pid) {
                found.push((pid, start));
                frontier.push(pid);
            }
        }
    }
    found
}

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

/// The prefix of every cgroup directory name of the groups of process
/// `pid` of this pid namespace: `pkit-<pid>.<pid namespace>.` (the owner's
/// start time and the group's count follow; see the library's
/// `sys/linux/names.rs`). Without the namespace, a pkit of another pid
/// namespace with the same pid (another run of the suite under `unshare
/// -pf`) would be taken for `pid`. Works for a dead `pid` too.
pub fn name_prefix(pid: u32) -> String {
    format!("pkit-{pid}.{}.", pid_ns())
}

/// The inode number of this process's pid namespace (0 where there is
/// none to read: no `/proc`).
pub fn pid_ns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    static NS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NS.get_or_init(|| std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino()))
}
