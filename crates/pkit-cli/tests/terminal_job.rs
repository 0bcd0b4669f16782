//! `pkit run` in a shell's job on a terminal, under process groups (the
//! program in a group of its own, handed the terminal by pkit): the rule
//! of `src/tty.rs`. pkit hands the terminal over only when it is alone in
//! its job (but for the shells waiting for it); in a pipeline the job
//! keeps it, and a program that reads it stops the whole job, which gets
//! it on `fg`. A stop of the program's group stops pkit's whole job.
//! (rv39's cases: `review_rv39.rs`.)

#![cfg(target_os = "linux")]

mod common;

use common::{
    at_once, drive, drive_paused, process_group_mechanisms, temp_path, Reap,
    PY_CTRL_Z_STOPS_THE_JOB,
};

const PKIT: &str = env!("CARGO_BIN_EXE_pkit");

/// `pkit run -- sh -c 'read x </dev/tty' | cat`: the job keeps the
/// terminal (cat's, the shell's as much as the program's); the program's
/// read stops the whole job (the shell sees it stopped, by SIGTTIN, as a
/// job reading from the background); `fg` gives the program the terminal
/// and the read goes through.
fn pipeline_read_stops_the_job_then_reads_on_fg(m: &str) {
    pipeline_read_then_fg(m, None);
}

fn pipeline_read_then_fg(m: &str, pause: Option<&str>) {
    let pids = Reap::new("tty-job-read");
    let job = format!(
        "{PKIT} run -q --mechanism {m} -- sh -c 'echo $$ >> {p}; read x </dev/tty; echo got=$x' | cat",
        p = pids.path()
    );
    let driver = r#"
    _, st = os.waitpid(job, os.WUNTRACED)
    # pkit's state once its job's shell sees the job stopped: stopped
    # already, or the shell's `fg` could come before pkit's stop.
    def pkit_state():
        for d in os.listdir("/proc"):
            try:
                stat = open("/proc/%s/stat" % d).read()
            except (OSError, ValueError):
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            if comm == "pkit" and fields[1] == str(job):
                return fields[0]
        return "?"
    print("stopped=%d,%d,%s;" % (os.WIFSTOPPED(st), os.WSTOPSIG(st) if os.WIFSTOPPED(st) else 0, pkit_state()), flush=True)
    # The shell takes the terminal back, then `fg`: gives it to the job.
    os.tcsetpgrp(0, os.getpgrp())
    os.tcsetpgrp(0, job)
    os.killpg(job, signal.SIGCONT)
    _, st = os.waitpid(job, 0)
    print("job-status=%d;" % os.waitstatus_to_exitcode(st), flush=True)
    os._exit(0)
read_job()
read_until(b"stopped=", 1, 10)
read_until(b";", 2, 10)
if b"stopped=1,%d,T;" % signal.SIGTTIN not in out:
    give_up("the job seen stopped by SIGTTIN, pkit stopped")
time.sleep(0.3)
os.write(fd, b"abc\n")
read_until(b"got=abc", 1, 10)
read_until(b"job-status=0;", 1, 20)
os.waitpid(pid, 0)
sys.stdout.write("ok\n")
"#;
    let text = drive_paused(&job, driver, pause);
    assert!(text.ends_with("ok\n"), "{m}: {text}");
}

#[test]
fn a_pipeline_stage_reading_the_terminal_stops_the_job_and_reads_after_fg() {
    at_once(
        process_group_mechanisms(),
        pipeline_read_stops_the_job_then_reads_on_fg,
    );
}

/// The same job, pkit held (a test pause, `PKIT_TEST_PAUSE=self-stop`)
/// just before its own stop: the shell waiting for pkit, the process the
/// job's shell sees stopped, must not stop before pkit has, or the
/// shell's `fg` (its SIGCONT) comes before pkit's stop, which discards it:
/// pkit stayed stopped, and the program with it, the typed line unread.
/// (Seen once in twenty runs on a loaded machine under the portable
/// mechanism, whose signal thread may handle that SIGCONT only after
/// pkit's look for one.) pkit's watcher stops that shell once pkit is
/// stopped (`tty::stop_job_mates`).
#[test]
fn the_shell_waiting_for_pkit_stops_after_pkit() {
    at_once(process_group_mechanisms(), |m| {
        pipeline_read_then_fg(m, Some("self-stop:1500"));
    });
}

/// `sh -c 'pkit run -- sleep 100; echo after'`: pkit, alone in the job
/// but for the shell waiting for it, hands its program the terminal; a
/// Ctrl-Z stops the program's group, and pkit stops with it the rest of
/// its job, the waiting shell too: the job's shell sees its job stopped.
fn ctrl_z_stops_the_waiting_shell(m: &str) {
    let pids = Reap::new("tty-job-ctrlz");
    let job = format!(
        "{PKIT} run -q --mechanism {m} -- sh -c 'echo $$ >> {p}; exec sleep 100'; echo after",
        p = pids.path()
    );
    let text = drive(&job, PY_CTRL_Z_STOPS_THE_JOB);
    assert!(text.ends_with("ok\n"), "{m}: {text}");
}

#[test]
fn ctrl_z_stops_the_shell_waiting_for_pkit() {
    at_once(process_group_mechanisms(), ctrl_z_stops_the_waiting_shell);
}

/// `… | pkit run -- sh -c 'read x </dev/tty'`, the stage before pkit
/// still there (on a loaded machine, `echo x`'s subshell can be) when the
/// program first reads the terminal, and gone 0.2 s later: pkit waits a
/// moment for it before it stops its job for the read (no shell here
/// would continue it), and the read goes through, as it does without
/// pkit.
fn an_ending_stage_before_pkit(m: &str) {
    let pids = Reap::new("tty-job-ending");
    let flag = temp_path("tty-job-ending-flag");
    let job = format!(
        "sh -c 'while [ ! -s {f} ]; do sleep 0.05; done; sleep 0.2' | \
         {PKIT} run -q --mechanism {m} -- \
         sh -c 'echo $$ >> {p}; echo 1 > {f}; read x </dev/tty; echo got=$x'",
        p = pids.path(),
        f = flag.display()
    );
    let driver = r#"
    _, st = os.waitpid(job, 0)
    print("job-status=%d;" % os.waitstatus_to_exitcode(st), flush=True)
    os._exit(0)
read_job()
os.write(fd, b"abc\n")
read_until(b"got=abc", 1, 10)
read_until(b"job-status=0;", 1, 20)
os.waitpid(pid, 0)
sys.stdout.write("ok\n")
"#;
    let text = drive(&job, driver);
    let _ = std::fs::remove_file(&flag);
    assert!(text.ends_with("ok\n"), "{m}: {text}");
}

#[test]
fn a_stage_before_pkit_that_ends_does_not_stop_the_job_for_a_read() {
    at_once(process_group_mechanisms(), an_ending_stage_before_pkit);
}
