//! rv39: a hostile review of the `pkit` command line as a shell, a CI
//! script or a job-control terminal uses it (main 0c1c081).
//!
//! Status (the same session, after the review): the HIGH and the three
//! terminal MEDIUMs fixed by clitty, the other MEDIUMs and four LOWs by
//! clifix, all un-ignored; the SIGPIPE LOW is documented instead (Rust's
//! runtime ignores SIGPIPE before `main`, so pkit can't see an ignore from
//! before) and stays ignored.
//!
//! Findings (`#[ignore = "rv39: ..."]`, failing on 0c1c081; run them with
//! `--ignored`):
//! - HIGH [`a_program_reading_the_terminal_with_stdin_redirected_runs`]
//!   (fixed by clitty: the hand-over goes by the controlling terminal):
//!   under process groups (`pgroup`, `portable`: the fallback of every
//!   user without a writable cgroup), `echo x | pkit run -- prog` (or
//!   `</dev/null`, `<file`) from an interactive shell, where `prog` opens
//!   `/dev/tty` (ssh's or sudo's password prompt, less's keys), hangs for
//!   good: pkit hands the terminal over only when its *stdin* is the
//!   terminal, so the program, in a background process group of its own,
//!   is stopped by SIGTTIN; pkit looks for that stop only in the same
//!   case, so it neither stops with it nor continues it, and Ctrl-C is
//!   forwarded to a stopped tree: nothing happens until Ctrl-Z and a kill.
//!   (As nobody here, `pkit run` with no flags is in this case: auto falls
//!   back to a process group.)
//! - MEDIUM [`a_pipeline_reader_of_the_terminal_is_not_sent_to_the_background`]
//!   and [`ctrl_z_stops_a_pipeline_with_pkit_in_it`] (fixed by clitty: pkit
//!   hands the terminal over only when alone in its job, and stops its job
//!   with its program; see `tests/terminal_job.rs`):
//!   under process groups, `pkit run -- job | less` (any later stage of the
//!   shell's job that reads `/dev/tty`): pkit makes its program's group
//!   the terminal's foreground group, which puts the rest of pkit's own
//!   job in the background: the reader is stopped by SIGTTIN, the shell
//!   reports the job `Stopped` (status 147) once pkit ends, and the keys
//!   typed meanwhile go to the shell as a command line. And Ctrl-Z on
//!   `pkit run -- job | cat` reaches the program's group alone: pkit stops
//!   with it, `cat` runs on, so the shell never sees its job stopped and
//!   gives no prompt back (a second Ctrl-Z does:
//!   [`ctrl_z_stops_a_pipeline_with_pkit_in_it`]).
//! - MEDIUM [`a_sigkilled_pkit_leaves_the_terminal_to_its_job`] (fixed by
//!   clitty: a watcher, `src/fgwatch.rs`, gives the terminal back): under
//!   process groups, a `pkit run` SIGKILLed (the OOM killer, `kill -9`)
//!   while its program holds the terminal leaves the terminal's
//!   foreground group the dead program's (no watcher gives it back, as
//!   `--pty`'s watcher gives back the settings): the rest of the shell's
//!   job (`pkit run -- job; read x`, a script's next interactive step) is
//!   stopped by SIGTTIN at its next read.
//! - MEDIUM [`supervise_survives_a_usr1`]: `pkit supervise` leaves USR1,
//!   USR2, ALRM (and QUIT, WINCH) at their default: `kill -USR1` to the
//!   supervisor (the log-reopen habit; `pkit run` forwards it to the
//!   program) ends pkit by that signal (138) and its guard SIGKILLs the
//!   service: no SIGTERM, no grace, no restart.
//! - MEDIUM [`the_json_report_is_a_line_of_its_own`]: `--json` writes the
//!   report as "the last line of stderr", which the program shares: a
//!   program whose stderr ends mid-line (a progress meter's `\r`, above
//!   all one a timeout cut short) gets the report glued to it
//!   (`50%\r{"schema":1,...}`), and `tail -1 | jq` fails. `supervise
//!   --json`'s events likewise.
//! - LOW [`the_process_group_note_names_every_way_out`]: under process
//!   groups pkit's note says "a descendant that calls setsid(2) leaves it
//!   ... it outlives a SIGKILLed pkit"; one that calls setpgid(2) does too,
//!   and that is every `timeout(1)` in a script (`sh -c 'timeout 60
//!   job'`) and every `set -m` job: still running after `kill -9` of pkit
//!   (the README's table says so; the note a user reads does not).
//! - LOW [`what_follows_the_program_is_never_read_as_pkits_duration`]: the
//!   check for a unit written apart (`--timeout 5 s`) reads past PROGRAM
//!   when there is no `--`: `pkit run printf %s --timeout 5 s` is refused
//!   with 125, though `--help` says everything from PROGRAM on is the
//!   program's (`pkit supervise ... -k 1 m` likewise).
//! - LOW [`an_ignored_sigpipe_stays_ignored_in_the_program`]: `--help`
//!   says a signal ignored when pkit starts stays ignored in the program,
//!   as without pkit; SIGPIPE does not (the library puts it back to the
//!   default, the Rust runtime's ignoring it being indistinguishable):
//!   `(trap '' PIPE; pkit run -- yes) | head -1` kills `yes` with SIGPIPE
//!   where it would get EPIPE.
//! - LOW [`an_ignored_sigchld_is_inherited_alike_in_every_mechanism`]: an
//!   ignored SIGCHLD is inherited ignored under `cgroup` and `pgroup`, put
//!   back to the default under `portable`.
//! - LOW [`a_zero_health_timeout_does_not_kill_a_healthy_run`]:
//!   `supervise --health-timeout 0` SIGKILLs every run at once as
//!   unhealthy, even one that printed its line (and `1ms` passes): 0 is
//!   "no timeout" for `run --timeout`, and other zero bounds are refused.
//!
//! Probes that held (regular tests): exit codes 0-255 passed on;
//! death by each terminating signal re-raised (and 128+N with
//! `--no-reraise`), without a core file of pkit's own under an unlimited
//! `RLIMIT_CORE`; an argument list at the kernel's limit for pkit itself
//! still runs the program; `-E` names and values with `=` and non-UTF-8
//! bytes reach the program exactly; other ignored signals stay ignored;
//! the same terminal cases under a cgroup.
//!
//! Probed by hand and held (no test here): SIGTERM at every moment of
//! the start-up (40 runs a mechanism: 143, nothing left); three TERMs in a
//! row (the kernel merges them: one request); three nested `pkit run`s
//! with a timeout at each level, the outer's `-k 1` ending all (137 in
//! about 2 s, nothing left); `bash -i`: Ctrl-Z then `kill %1` reaches the
//! program's trap, `cmd &` then `fg` reads the terminal; TSTP and CONT by
//! `kill` from a script stop and continue the tree; as nobody in a cgroup
//! delegated to nobody (a sub-cgroup, removed); `--pty` to a reader that
//! stops reading (pkit's memory bounded, EPIPE said); odd `-s`, `--nice`,
//! `--rlimit`, `--keep-fd`, `--json-fd`, size and `--backoff` values
//! (refused with 125 and a message, or sound). Noted, not findings:
//! `pkit run ''` is 125 where timeout(1) gives 127; `-s 32`/`-s 33`
//! (glibc's reserved signals) are taken where timeout(1) refuses them.
//!
//! Every process a case starts is killed at its end, on a failed
//! assertion too ([`Reap`]; the pty driver kills its session and job).

#![cfg(target_os = "linux")]

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{
    at_once, drive, mechanisms, pkit, process_group_mechanisms, py_ctrl_z_stops_the_job,
    shell_status, temp_path, Reap, PY_JOB_IN_PTY, PY_PTY_DRIVER, UNTIL_CAT,
};

const PKIT: &str = env!("CARGO_BIN_EXE_pkit");

/// Runs `job` (a `sh -c` script) as a job of a tiny job-control shell on a
/// terminal of its own (in the terminal's foreground, as `bash -i` starts
/// it), types `abc` after `type_after` seconds, and waits for `got=abc`
/// and then the job's end. The driver's text ends `ok` when it went so.
fn terminal_job(job: &str, type_after: &str) -> String {
    terminal_job_killing(job, type_after, None)
}

/// [`terminal_job`]; with `kill_file`, first SIGKILLs the pid that file
/// gets (once it has one).
fn terminal_job_killing(job: &str, type_after: &str, kill_file: Option<&str>) -> String {
    let driver = [
        PY_PTY_DRIVER,
        PY_JOB_IN_PTY,
        r#"
    _, st = os.waitpid(job, 0)
    print("job-status=%d;" % os.waitstatus_to_exitcode(st), flush=True)
    os._exit(0)
read_job()
kf = os.environ.get("KILL_FILE")
if kf:
    end = time.time() + 20
    while True:
        try:
            victim = int(open(kf).read().split()[0])
            break
        except (OSError, ValueError, IndexError):
            if time.time() > end:
                give_up("no pid in the kill file")
            time.sleep(0.02)
    os.kill(victim, signal.SIGKILL)
time.sleep(float(os.environ["TYPE_AFTER"]))
os.write(fd, b"abc\n")
read_until(b"got=abc", 1, 10)
read_until(b"job-status=", 1, 20)
os.waitpid(pid, 0)
sys.stdout.write("ok\n")
"#,
    ]
    .concat();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &driver, "/bin/sh", "-c", job])
        .env("TYPE_AFTER", type_after)
        .env_remove("PKIT_TEST_PAUSE")
        .stdin(Stdio::null());
    match kill_file {
        Some(f) => cmd.env("KILL_FILE", f),
        None => cmd.env_remove("KILL_FILE"),
    };
    let out = cmd.output().expect("python3 runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

/// `echo x | pkit run -- sh -c 'read x </dev/tty'`: the program's stdin
/// is a pipe, its terminal still the user's.
fn stdin_redirected(m: &str) {
    let pids = Reap::new("rv39-tty-pids");
    let job = format!(
        "echo x | exec {PKIT} run -q --mechanism {m} -- \
         sh -c 'echo $$ >> {p}; read x </dev/tty; echo got=$x'",
        p = pids.path()
    );
    let text = terminal_job(&job, "1");
    assert!(text.ends_with("ok\n"), "{m}: {text}");
}

/// `pkit run -- job | sh -c 'read x </dev/tty'`: a later stage of
/// pkit's own job reads the terminal.
fn pipeline_reader(m: &str) {
    let pids = Reap::new("rv39-pipe-pids");
    let job = format!(
        "{PKIT} run -q --mechanism {m} -- sh -c 'echo $$ >> {p}; exec sleep 3' \
         | sh -c 'sleep 0.5; read x </dev/tty; echo got=$x'",
        p = pids.path()
    );
    let text = terminal_job(&job, "1.5");
    assert!(text.ends_with("ok\n"), "{m}: {text}");
}

/// `pkit run -- job; read x`, pkit SIGKILLed (the OOM killer, `kill -9`)
/// while its program runs: the rest of the shell's job reads the
/// terminal.
fn killed_then_read(m: &str) {
    let pids = Reap::new("rv39-kill-pids");
    let pkit_pid = Reap::new("rv39-kill-pkit");
    let job = format!(
        "{PKIT} run -q --mechanism {m} -- \
         sh -c 'echo $$ >> {p}; echo $PPID >> {k}; exec sleep 100'; \
         read x; echo got=$x",
        p = pids.path(),
        k = pkit_pid.path()
    );
    let text = terminal_job_killing(&job, "1", Some(pkit_pid.path()));
    assert!(text.ends_with("ok\n"), "{m}: {text}");
}

fn cgroup_only() -> Vec<&'static str> {
    mechanisms()
        .into_iter()
        .filter(|m| *m == "cgroup")
        .collect()
}

#[test]
fn a_program_reading_the_terminal_with_stdin_redirected_runs() {
    at_once(process_group_mechanisms(), stdin_redirected);
}

#[test]
fn a_pipeline_reader_of_the_terminal_is_not_sent_to_the_background() {
    at_once(process_group_mechanisms(), pipeline_reader);
}

/// `pkit run -- sleep | cat` in the terminal's foreground; Ctrl-Z typed:
/// the job's shell (a process of the job, as `bash -i` sees it) must be
/// stopped, as the whole job is without pkit.
fn ctrl_z_in_pipeline(m: &str) {
    let pids = Reap::new("rv39-ctrlz-pids");
    let job = format!(
        "{{ {UNTIL_CAT} exec {PKIT} run -q --mechanism {m} -- \
         sh -c 'echo $$ >> {p}; exec sleep 100'; }} | cat",
        p = pids.path()
    );
    let text = drive(&job, &py_ctrl_z_stops_the_job(pids.path(), false));
    assert!(text.ends_with("ok\n"), "{m}: {text}");
}

#[test]
fn ctrl_z_stops_a_pipeline_with_pkit_in_it() {
    at_once(process_group_mechanisms(), ctrl_z_in_pipeline);
}

#[test]
fn a_sigkilled_pkit_leaves_the_terminal_to_its_job() {
    at_once(process_group_mechanisms(), killed_then_read);
}

/// The four cases above under a cgroup, where the program shares pkit's
/// process group: all run as without pkit.
#[test]
fn under_a_cgroup_the_terminal_cases_run() {
    let cases: [fn(&str); 4] = [
        stdin_redirected,
        pipeline_reader,
        killed_then_read,
        ctrl_z_in_pipeline,
    ];
    // Each on a terminal of its own, at once.
    for m in cgroup_only() {
        at_once(cases, |case| case(m));
    }
}

#[test]
fn what_follows_the_program_is_never_read_as_pkits_duration() {
    let out = pkit()
        .args(["run", "-q", "printf", "%s\n", "--timeout", "5", "s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"--timeout\n5\ns\n", "{out:?}");
    let out = pkit()
        .args(["supervise", "-q", "--restart", "never"])
        .args(["printf", "%s\n", "-k", "1", "m"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"-k\n1\nm\n", "{out:?}");
}

/// The signals ignored (bits of `SigIgn:`) in the program pkit runs under
/// mechanism `m` when pkit starts with `sigs` ignored.
fn ignored_in_program(m: &str, sigs: &[i32]) -> u64 {
    let sigs = sigs.to_vec();
    let mut cmd = pkit();
    cmd.args([
        "run",
        "-q",
        "--mechanism",
        m,
        "--",
        "grep",
        "SigIgn:",
        "/proc/self/status",
    ]);
    // SAFETY: signal(2) only, between fork and exec (after `pkit()`'s own
    // resets: closures run in the order they were added).
    unsafe {
        cmd.pre_exec(move || {
            for &s in &sigs {
                libc::signal(s, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{m}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    u64::from_str_radix(hex, 16).unwrap()
}

fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

#[test]
#[ignore = "rv39: LOW: not fixed, documented: Rust's runtime ignores SIGPIPE before main, so pkit cannot see an ignore from before; --help and README now name SIGPIPE as an exception"]
fn an_ignored_sigpipe_stays_ignored_in_the_program() {
    for m in mechanisms() {
        let mask = ignored_in_program(m, &[libc::SIGPIPE]);
        assert_ne!(mask & bit(libc::SIGPIPE), 0, "{m}: SigIgn {mask:x}");
    }
}

#[test]
fn an_ignored_sigchld_is_inherited_alike_in_every_mechanism() {
    let kept: Vec<(&str, bool)> = common::MECHANISMS
        .iter()
        .map(|m| {
            (
                *m,
                ignored_in_program(m, &[libc::SIGCHLD]) & bit(libc::SIGCHLD) != 0,
            )
        })
        .collect();
    assert!(kept.iter().all(|(_, k)| *k == kept[0].1), "{kept:?}");
}

/// The other signals a parent may leave ignored (nohup's HUP, a
/// background job's INT and QUIT, and the rest) stay ignored.
#[test]
fn other_ignored_signals_stay_ignored_in_the_program() {
    let sigs = [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGWINCH,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGXFSZ,
    ];
    for m in mechanisms() {
        let mask = ignored_in_program(m, &sigs);
        for s in sigs {
            assert_ne!(mask & bit(s), 0, "{m}: signal {s} not ignored: {mask:x}");
        }
    }
}

#[test]
fn a_zero_health_timeout_does_not_kill_a_healthy_run() {
    let out = pkit()
        .args(["supervise", "--restart", "never", "--health-timeout", "0"])
        .args([
            "--health-line",
            "ready",
            "--",
            "sh",
            "-c",
            "echo ready; sleep 1",
        ])
        .output()
        .unwrap();
    // Either no bound (as `run --timeout 0`), or refused as usage.
    assert!(matches!(out.status.code(), Some(0) | Some(125)), "{out:?}");
}

/// The exit codes a program can give are pkit's status, unchanged: the
/// low ones, those around pkit's own (124-128) and the shell's 128+N, the
/// top, and every 17th between.
#[test]
fn exit_codes_are_passed_on() {
    let mut codes: Vec<i32> = (0..=10).chain(121..=131).chain(250..=255).collect();
    codes.extend((0..=255).step_by(17));
    at_once(codes.chunks(8), |chunk| {
        for &c in chunk {
            let out = pkit()
                .args(["run", "-q", "--", "sh", "-c", &format!("exit {c}")])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(c), "{out:?}");
        }
    });
}

/// A program killed by a terminating signal: pkit ends by that signal
/// (never dumping a core of its own, even with `RLIMIT_CORE` unlimited),
/// or exits 128+N with `--no-reraise`.
#[test]
fn death_by_each_signal_is_passed_on_without_a_core_of_pkits() {
    let dir = temp_path("rv39-core");
    std::fs::create_dir(&dir).unwrap();
    let sigs = [
        1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 24, 25, 26, 27, 29, 30, 31, 34, 64,
    ];
    at_once(sigs.chunks(6), |chunk| {
        for &s in chunk {
            // The program itself dumps nothing (its own limit 0).
            let script = format!("ulimit -c 0; kill -{s} $$");
            let mut cmd = pkit();
            cmd.current_dir(&dir)
                .args(["run", "-q", "--", "sh", "-c", &script]);
            // SAFETY: setrlimit(2) only, between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    let lim = libc::rlimit {
                        rlim_cur: libc::RLIM_INFINITY,
                        rlim_max: libc::RLIM_INFINITY,
                    };
                    libc::setrlimit(libc::RLIMIT_CORE, &lim);
                    Ok(())
                });
            }
            let out = cmd.output().unwrap();
            assert_eq!(out.status.signal(), Some(s), "{s}: {out:?}");
            assert!(!out.status.core_dumped(), "{s}: pkit dumped core: {out:?}");
            let out = pkit()
                .args(["run", "-q", "--no-reraise", "--", "sh", "-c", &script])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(128 + s), "{s}: {out:?}");
            assert_eq!(shell_status(out.status), 128 + s);
        }
    });
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(left.is_empty(), "files left in pkit's directory: {left:?}");
}

/// pkit run with `filler` bytes of arguments (pieces of 100 kB) for
/// `true`: None when pkit itself could not be started (E2BIG).
fn run_with_filler(m: &str, filler: usize) -> Option<std::process::ExitStatus> {
    let mut cmd = pkit();
    cmd.args(["run", "-q", "--mechanism", m, "--", "true"]);
    let mut left = filler;
    while left > 0 {
        let k = left.min(100_000);
        cmd.arg("x".repeat(k - 1));
        left -= k;
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some(child.wait().unwrap())
}

/// An argument list as long as the kernel takes for pkit itself: the
/// program, with less than pkit had, runs (pkit adds nothing to its
/// arguments or environment that would tip it over).
#[test]
fn an_argument_list_at_the_limit_for_pkit_runs_the_program() {
    for m in mechanisms() {
        let (mut lo, mut hi) = (0usize, 8 << 20);
        assert!(run_with_filler(m, hi).is_none(), "{m}: no limit?");
        while hi - lo > 64 {
            let mid = (lo + hi) / 2;
            match run_with_filler(m, mid) {
                Some(_) => lo = mid,
                None => hi = mid,
            }
        }
        let status = run_with_filler(m, lo).expect("started before");
        assert_eq!(status.code(), Some(0), "{m}: {lo} bytes: {status:?}");
    }
}

/// `-E` with `=` in the value, non-UTF-8 bytes in name and value, and an
/// empty value: the program's environment has exactly those bytes.
#[test]
fn env_bytes_reach_the_program_exactly() {
    use std::ffi::OsStr;
    for m in mechanisms() {
        let out = pkit()
            .args(["run", "-q", "-i", "--mechanism", m])
            .arg("-E")
            .arg("A=b=c==")
            .arg("-E")
            .arg(OsStr::from_bytes(b"N\xffX=v\xfe\x01"))
            .arg("-E")
            .arg("EMPTY=")
            .args(["--", "cat", "/proc/self/environ"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{m}: {out:?}");
        let mut vars: Vec<&[u8]> = out
            .stdout
            .split(|&b| b == 0)
            .filter(|v| !v.is_empty())
            .collect();
        vars.sort();
        let want: Vec<&[u8]> = vec![b"A=b=c==", b"EMPTY=", b"N\xffX=v\xfe\x01"];
        assert_eq!(
            vars,
            want,
            "{m}: {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Odd `--timeout` values: what the help's Durations paragraph says is
/// refused is refused with 125 (before anything runs), and what it
/// accepts runs.
#[test]
fn odd_durations_are_refused_or_run_as_documented() {
    let marker = temp_path("rv39-ran");
    for (d, ok) in [
        ("-1s", false),
        ("1.5.3s", false),
        ("nan", false),
        ("0x10", false),
        ("1e9s", true),
        ("inf", true),
        ("1e300", true),
        ("0", true),
        ("1m30s", true),
    ] {
        let _ = std::fs::remove_file(&marker);
        let out = pkit()
            .args(["run", "-q", "--timeout", d, "--", "touch"])
            .arg(&marker)
            .output()
            .unwrap();
        let ran = Path::new(&marker).exists();
        if ok {
            assert!(out.status.code() == Some(0) && ran, "{d}: {out:?}");
        } else {
            assert!(out.status.code() == Some(125) && !ran, "{d}: {out:?}");
        }
    }
    let _ = std::fs::remove_file(&marker);
}

/// A `pkit supervise` child, killed (SIGKILL) and reaped when dropped.
struct Supervisor(std::process::Child);

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn supervise_survives_a_usr1() {
    for m in mechanisms() {
        let pids = Reap::new("rv39-sup-pids");
        let seen = temp_path("rv39-sup-seen");
        let script = format!(
            "trap 'echo USR1 >> {s}' USR1; trap 'exit 0' TERM; echo $$ >> {p}; \
             while :; do sleep 0.1; done",
            s = seen.display(),
            p = pids.path()
        );
        let mut sup = Supervisor(
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
                .spawn()
                .unwrap(),
        );
        let program = common::read_pids(&pids.0, 1)[0];
        common::kill(sup.0.id(), libc::SIGUSR1);
        std::thread::sleep(std::time::Duration::from_secs(1));
        let pkit_alive = sup.0.try_wait().unwrap().is_none();
        let program_alive = !common::pid_gone(program);
        let _ = std::fs::remove_file(&seen);
        assert!(
            pkit_alive && program_alive,
            "{m}: after USR1: pkit {:?}, program alive {program_alive}",
            sup.0.try_wait()
        );
        // A clean stop.
        common::kill(sup.0.id(), libc::SIGTERM);
        assert_eq!(sup.0.wait().unwrap().code(), Some(0), "{m}");
    }
}

#[test]
fn the_json_report_is_a_line_of_its_own() {
    for m in mechanisms() {
        let out = pkit()
            .args(["run", "-q", "--json", "--mechanism", m, "--"])
            .args(["sh", "-c", "printf '50%%\\r' >&2; exit 3"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{m}: {out:?}");
        let text = String::from_utf8_lossy(&out.stderr);
        let last = text
            .trim_end_matches('\n')
            .rsplit('\n')
            .next()
            .unwrap_or("");
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(last);
        assert!(
            parsed.is_ok(),
            "{m}: the last line of stderr is no JSON: {last:?}"
        );
    }
}

#[test]
fn the_process_group_note_names_every_way_out() {
    for m in process_group_mechanisms() {
        let pids = Reap::new("rv39-setpgid-pids");
        // timeout(1) puts itself in a process group of its own.
        let script = format!(
            "timeout 100 sh -c 'echo $$ >> {p}; exec sleep 100' & echo $! >> {p}; wait",
            p = pids.path()
        );
        // pkit's stderr a file: a pipe would be held open by the escapees.
        let err = temp_path("rv39-setpgid-err");
        let mut child = pkit()
            .args(["run", "--mechanism", m, "--", "sh", "-c", &script])
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let escaped = common::read_pids(&pids.0, 2);
        child.kill().unwrap();
        child.wait().unwrap();
        let note = std::fs::read_to_string(&err).unwrap_or_default();
        let _ = std::fs::remove_file(&err);
        std::thread::sleep(std::time::Duration::from_secs(1));
        let alive: Vec<i32> = escaped
            .into_iter()
            .filter(|&p| !common::pid_gone(p))
            .collect();
        assert!(
            alive.is_empty() || note.contains("setpgid"),
            "{m}: {alive:?} outlived pkit; its note: {note}"
        );
    }
}
