#![cfg(target_os = "linux")]
//! rv43: a hostile review of the seventh session's merges (CLI half:
//! tty4's pipeline stages told by pipes, `Ctty::job_has_stage`). Findings
//! are `#[ignore = "rv43: ..."]` tests; the rest are probes that held.
//! Run in the three passes (unset, `PKIT_MECHANISM=pgroup`,
//! `PKIT_MECHANISM=portable`); the terminal rule is for process groups, so
//! each case runs `--mechanism pgroup` and `portable`.
//!
//! Finding (failed 8 of 8 runs, 4 pgroup and 4 portable, load 30-65; the
//! control without pkit ended by itself each time):
//! - LOW [`a_stage_that_closes_its_stdin_keeps_the_terminal_for_the_job`]:
//!   a stage after pkit that closes its stdin at once, stdout and stderr
//!   on the terminal (`stty tostop; { sleep 1; exec pkit run -- prog; } |
//!   stage-that-closes-stdin`), is joined to pkit by no pipe and its
//!   stdin is not the terminal: pkit takes it for a script's background
//!   command, hands its program the terminal, and the stage's write to
//!   the terminal stops the whole job by SIGTTOU (`status=1,22`), where
//!   without pkit nothing stops. By the code (not run), a stage with its
//!   stdin redirected from a file (`pkit run -- prog | stage <file`) is
//!   the same case. Fixed by tty5 (both cases now tests that fail without
//!   the fix): while the pkit side writes to a pipe that nothing reads
//!   any more, a job mate whose stdin is no pipe is the stage that let go
//!   of it.
//!
//! Probes that held (pgroup, portable): a stage before pkit with stdin on
//! `/dev/null` (`producer </dev/null | pkit run -- …`) keeps the terminal
//! for the job; a bash process substitution reading pkit's stdout
//! (`pkit run -- prog > >(stage)`) is a stage; two pkits in one pipeline
//! (`pkit run -- a | pkit run -- b`) end by themselves.

mod common;

use common::{at_once, drive, process_group_mechanisms, temp_path, write_file, Reap};

const PKIT: &str = env!("CARGO_BIN_EXE_pkit");

/// A stage (Python) of the job: opens the terminal (before: a descriptor
/// opened after the close would be its stdin again), closes its stdin at
/// once when `argv[2]` is `close`, then records its pid (`argv[1]`: once
/// it is there, the stage has let go of pkit's pipe), then waits (up to 5 s) until
/// its process group no longer holds the terminal (pkit handed it to its
/// program), and writes `stage-out` to its stderr, the terminal. Under
/// `stty tostop` that write from outside the foreground group stops the
/// job by SIGTTOU.
const STAGE: &str = r#"
import os, sys, time
tty = os.open("/dev/tty", os.O_RDONLY)
if sys.argv[2] == "close":
    os.close(0)
open(sys.argv[1], "a").write("%d\n" % os.getpid())
end = time.time() + 5
while os.tcgetpgrp(tty) == os.getpgrp() and time.time() < end:
    time.sleep(0.02)
os.write(2, b"stage-out\n")
"#;

/// The tiny shell's part of a [`drive`] driver: waits for the job to end
/// or stop, prints `status=<stopped>,<signal>;` (and kills a stopped
/// job); the driver prints what the terminal showed, then `done`.
const ENDS_OR_STOPS: &str = r#"
    _, st = os.waitpid(job, os.WUNTRACED)
    stopped = os.WIFSTOPPED(st)
    print("status=%d,%d;" % (stopped, os.WSTOPSIG(st) if stopped else 0), flush=True)
    if stopped:
        os.killpg(job, signal.SIGKILL)
    os._exit(0)
read_job()
read_until(b"status=", 1, 60)
read_until(b";", 2, 5)
os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace") + "\ndone\n")
"#;

/// Runs `job` (an `sh -c` script, `{stage}`, `{p}` and `{file}` standing
/// for the stage program, the pid file and a regular file) without pkit (`{run}` replaced by
/// `control`) and with it (`{run}`: `pkit run -q --mechanism m --`),
/// under `stty tostop`; both must end by themselves with `stage-out`
/// shown.
fn ends_in_both(m: &str, what: &str, job: &str) {
    let stage = temp_path("rv43-stage");
    write_file(&stage, STAGE, 0o644);
    // The control and the pkit run at once (each its own terminal, job
    // and pid file): each waits out its job's fixed sleeps.
    at_once(
        [
            ("control", String::new()),
            ("pkit", format!("{PKIT} run -q --mechanism {m} --")),
        ],
        |(how, run)| {
            let pids = Reap::new("rv43-stage-pids");
            let job = job
                .replace("{run}", &run)
                .replace("{stage}", &format!("python3 {}", stage.display()))
                .replace("{p}", pids.path())
                .replace("{file}", stage.to_str().unwrap());
            let text = drive(&format!("stty tostop; {job}"), ENDS_OR_STOPS);
            assert!(text.ends_with("done\n"), "{m} {what} {how}: {text}");
            assert!(
                text.contains("status=0,0;") && text.contains("stage-out"),
                "{m} {what} {how}: the job did not end by itself (status=1,22: stopped by \
                 SIGTTOU, the stage's write from outside the terminal's foreground): {text}"
            );
        },
    );
    let _ = std::fs::remove_file(&stage);
}

/// Waits (up to 30 s) until the stage has recorded its pid (and so let go
/// of pkit's pipe, if it does), for the job's side of pkit to start then.
const STAGE_STARTED: &str =
    "n=0; until [ -s {p} ] || [ $n -ge 600 ]; do sleep 0.05; n=$((n+1)); done";

/// A program for pkit to run: records its pid, sleeps 7 s.
const SLEEPER: &str = "python3 -c 'import os, sys, time; open(sys.argv[1], \"a\").write(\"%d\\n\" % os.getpid()); time.sleep(7)' {p}";

/// LOW: a stage after pkit that closes its stdin at once (it reads
/// nothing of pkit's output: `pkit run -- prog | { exec <&-; …; }`) and
/// whose stdout and stderr are the terminal is joined to pkit by no pipe
/// (its stdin closed, not the terminal): pkit takes it for a script's
/// background command, hands its program the terminal, and the stage's
/// write to the terminal under `tostop` stops the job (SIGTTOU), where
/// without pkit nothing stops. (pkit starts once the stage has closed its
/// stdin.) Fixed by tty5: the pkit side writes to a pipe nothing reads
/// any more, so a mate whose stdin is no pipe is the stage that let go of
/// it.
#[test]
fn a_stage_that_closes_its_stdin_keeps_the_terminal_for_the_job() {
    at_once(process_group_mechanisms(), |m| {
        ends_in_both(
            m,
            "stdin closed",
            &format!(
                "{{ {STAGE_STARTED}; exec {{run}} {SLEEPER}; }} | {{stage}} {{p}} close; echo end"
            ),
        )
    });
}

/// The header's case read, not run: a stage after pkit with its stdin
/// redirected from a file (`pkit run -- prog | stage <file`) is joined to
/// pkit by no pipe either (the shell closed the pipe's reading end for
/// the redirection); its write under `tostop` must not stop the job. Here
/// pkit's stdout is `/dev/null` and the shell waiting for it holds the
/// pipe (dash keeps it aside on a descriptor of its own): the pipe nothing
/// reads is found on the waiting shell.
#[test]
fn a_stage_with_stdin_from_a_file_keeps_the_terminal_for_the_job() {
    at_once(process_group_mechanisms(), |m| {
        ends_in_both(
            m,
            "stdin from a file",
            &format!(
                "{{ {STAGE_STARTED}; {{run}} {SLEEPER} >/dev/null; echo; }} | {{stage}} {{p}} keep <{{file}}; echo end"
            ),
        )
    });
}

/// Probe: a stage before pkit whose stdin is `/dev/null` (`producer
/// </dev/null | pkit run -- …`, as `curl … | pkit run -- tar x` with
/// curl's progress on the terminal): its stdout is the pipe pkit reads,
/// so it is a stage, the terminal stays with the job, and its write goes
/// through.
#[test]
fn a_stage_before_pkit_with_stdin_on_dev_null_keeps_the_terminal() {
    at_once(process_group_mechanisms(), |m| {
        ends_in_both(
            m,
            "stdin /dev/null",
            &format!("{{stage}} {{p}} keep </dev/null | {{run}} {SLEEPER}; echo end"),
        )
    });
}

/// Probe: a stage reached through bash's process substitution
/// (`pkit run -- prog > >(stage)`): the substitution's process reads the
/// pipe pkit writes to, so it is a stage (bash without job control runs
/// it in the job's process group), and its write goes through.
#[test]
fn a_process_substitution_reading_pkit_is_a_stage() {
    if !std::path::Path::new("/bin/bash").exists() {
        eprintln!("skipped: no /bin/bash");
        return;
    }
    at_once(process_group_mechanisms(), |m| {
        ends_in_both(
            m,
            "process substitution",
            &format!(
                "exec bash -c \"{{run}} {} > >({{stage}} {{p}} keep)\"",
                SLEEPER.replace('"', "\\\"")
            ),
        )
    });
}

/// Probe: two pkits in one job (`pkit run -- a | pkit run -- b`): each is
/// the other's stage, so neither hands the terminal over; the job ends by
/// itself, `b` having passed on `a`'s output.
#[test]
fn two_pkits_in_one_pipeline_end_by_themselves() {
    at_once(process_group_mechanisms(), |m| {
        let pids = Reap::new("rv43-two");
        let job = format!(
            "{PKIT} run -q --mechanism {m} -- sh -c 'echo $$ >> {p}; sleep 1; echo from-a' \
             | {PKIT} run -q --mechanism {m} -- sh -c 'echo $$ >> {p}; cat'; echo end",
            p = pids.path()
        );
        let text = drive(&job, ENDS_OR_STOPS);
        assert!(text.ends_with("done\n"), "{m}: {text}");
        assert!(
            text.contains("status=0,0;") && text.contains("from-a") && text.contains("end"),
            "{m}: {text}"
        );
    });
}
