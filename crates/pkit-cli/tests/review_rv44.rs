#![cfg(target_os = "linux")]
//! rv44: a hostile review of the eighth session's merges (CLI half: tty5's
//! rule that a job mate whose stdin is no pipe is a stage while pkit's
//! side writes to a pipe nothing reads). Findings are
//! `#[ignore = "rv44: ..."]` tests; the rest are probes that held. Run in
//! the three passes (unset, `PKIT_MECHANISM=pgroup`,
//! `PKIT_MECHANISM=portable`); the terminal rule is for process groups, so
//! each case runs `--mechanism pgroup` and `portable`.
//!
//! Findings (each failed in both process-group mechanisms, every run; the
//! control without pkit ended by itself each time):
//! - LOW, new with tty5
//!   [`a_background_helper_is_no_stage_for_a_reader_into_a_gone_stage`]:
//!   `sh -c 'sleep 30 & { sleep 1; exec pkit run -- sh -c "read x; echo
//!   got=\$x >&2"; } | true'` on a terminal: the stage after pkit has
//!   ended (pkit's stdout a pipe nothing reads), and the script's
//!   background helper (stdin `/dev/null`) counts as "a mate whose stdin
//!   is no pipe", so the stage: pkit keeps the terminal for the job, and
//!   the program's read stops the whole job by SIGTTIN (`status=1,21`).
//!   Without the helper the program gets the terminal and reads `abc`
//!   (probe [`a_reader_into_a_gone_stage_reads_the_terminal`]). ctty.rs
//!   says an ended stage "errs on the stage's side", but a background
//!   command is then no longer told from a stage, against the rule's own
//!   "a script's background command is none".
//! - LOW [`a_stage_before_pkit_that_closed_its_stdout_keeps_the_terminal`]:
//!   the read-direction mirror of rv43's LOW that tty5 fixed for the
//!   write direction only: `stty tostop; producer </dev/null | pkit run --
//!   sleep 6` where the producer closes its stdout before pkit looks and
//!   later writes to the terminal (stderr): it is joined to pkit by no
//!   pipe and its stdin is `/dev/null`, so pkit hands its program the
//!   terminal and the producer's write stops the job by SIGTTOU
//!   (`status=1,22`); without pkit nothing stops. pkit's stdin is a pipe
//!   with no writer left: the same "let go of pkit's pipe" sign, unused.
//!
//! Both fixed by tty6: a mate that let go of pkit's pipe (its stdin no
//! pipe while pkit's side writes to one nothing reads, or its stdout no
//! pipe while that side reads one nothing writes to) is a stage unless it
//! bears the marks a shell without job control gives a background command
//! (stdin on `/dev/null`, SIGINT and SIGQUIT ignored).
//!
//! Probes that held (pgroup, portable): pkit writing into a pipe whose
//! reader ended, with no other mate, hands its program the terminal (the
//! read goes through); `pkit run -- yes | head -1` and then a pkit program
//! that reads the terminal: both end, the read goes through.

mod common;

use common::{
    assert_the_read_went_through, at_once, drive, ends_or_stops, process_group_mechanisms,
    temp_path, write_file, Reap,
};

const PKIT: &str = env!("CARGO_BIN_EXE_pkit");

/// A program for pkit that reads a line of the terminal and shows it on
/// its stderr (its stdout may be a pipe nothing reads).
const READER: &str = "sh -c 'read x; echo got=$x >&2'";

/// [`READER`] reading `/dev/tty` (its stdin may be a pipe).
const TTY_READER: &str = "sh -c 'read x </dev/tty; echo got=$x >&2'";

/// Runs `job` (an `sh -c` script; `{run}` stands for `pkit run -q
/// --mechanism m --`, or nothing for the control, `{p}` for a pid file
/// whose pids are killed at the end) in a terminal, types `abc` and
/// asserts that the read went through and the job ended by itself, with
/// pkit and without.
fn read_goes_through(m: &str, what: &str, job: &str) {
    // The control and the pkit run at once (each its own terminal, job
    // and pid file): each waits out its job's fixed sleeps.
    at_once(
        [
            ("control", String::new()),
            ("pkit", format!("{PKIT} run -q --mechanism {m} --")),
        ],
        |(how, run)| {
            let pids = Reap::new("rv44-pids");
            let job = job.replace("{run}", &run).replace("{p}", pids.path());
            let text = drive(&job, &ends_or_stops("abc\\n", 2, 60));
            assert_the_read_went_through(&format!("{m} {what} {how}"), &text);
        },
    );
}

/// Probe: pkit's stdout a pipe whose reader has ended (`| true`) and no
/// other mate in the job: the program is handed the terminal and reads
/// it, as without pkit.
#[test]
fn a_reader_into_a_gone_stage_reads_the_terminal() {
    at_once(process_group_mechanisms(), |m| {
        read_goes_through(
            m,
            "gone stage",
            &format!("{{ sleep 1; exec {{run}} {READER}; }} | true; echo end"),
        )
    });
}

/// LOW (new with tty5): a script's background helper (stdin `/dev/null`,
/// as a non-interactive shell gives it) while pkit writes into a pipe
/// whose reader has ended (`| true`): tty5 takes the helper (stdin no
/// pipe) for the stage that let go of pkit's pipe and keeps the terminal
/// for the job, so the program's read of the terminal stops the whole job
/// by SIGTTIN (`status=1,21`). Without the helper (the probe above), and
/// without pkit, the read goes through. Fixed by tty6: the helper bears a
/// background command's marks (stdin `/dev/null`, INT and QUIT ignored).
#[test]
fn a_background_helper_is_no_stage_for_a_reader_into_a_gone_stage() {
    at_once(process_group_mechanisms(), |m| {
        read_goes_through(
            m,
            "background helper",
            &format!(
                "sleep 30 & echo $! >> {{p}}; {{ sleep 1; exec {{run}} {READER}; }} | true; echo end"
            ),
        )
    });
}

/// tty6: the read direction of the helper above: pkit reads a pipe whose
/// writer has ended (`true |`), and the script's background helper's
/// stdout is no pipe (the terminal): it bears a background command's
/// marks, so it is no stage that let go of pkit's pipe, and the program
/// (reading `/dev/tty`) gets the terminal, as without pkit.
#[test]
fn a_background_helper_is_no_stage_for_a_reader_of_a_gone_stage() {
    at_once(process_group_mechanisms(), |m| {
        read_goes_through(
            m,
            "background helper, read direction",
            &format!(
                "sleep 30 & echo $! >> {{p}}; true | {{ sleep 1; exec {{run}} {TTY_READER}; }}; echo end"
            ),
        )
    });
}

/// Probe: `pkit run -- yes | head -1`, then the job's next command, a
/// pkit program that reads the terminal: the first ends (yes's pipe
/// broken), the second reads, the job ends by itself.
#[test]
fn the_next_command_after_yes_into_head_reads_the_terminal() {
    at_once(process_group_mechanisms(), |m| {
        read_goes_through(
            m,
            "yes | head -1",
            &format!("{{run}} yes | head -1; {{run}} {READER}; echo end"),
        )
    });
}

/// A stage before pkit (Python) that lets go of pkit's pipe the other
/// way: closes its stdout at once (its stdin is `/dev/null`), records its
/// pid (`argv[1]`), waits (up to 5 s) until its process group no longer
/// holds the terminal (pkit handed it to its program), then writes
/// `stage-out` to its stderr, the terminal. Under `stty tostop` that write
/// from outside the foreground group stops the job by SIGTTOU.
const PRODUCER: &str = r#"
import os, sys, time
tty = os.open("/dev/tty", os.O_RDONLY)
os.close(1)
open(sys.argv[1], "a").write("%d\n" % os.getpid())
end = time.time() + 5
while os.tcgetpgrp(tty) == os.getpgrp() and time.time() < end:
    time.sleep(0.02)
os.write(2, b"stage-out\n")
"#;

/// The mirror of rv43's LOW (a stage after pkit that closed its stdin),
/// which tty5 fixed for the write direction only: a stage before pkit
/// (`producer </dev/null | pkit run -- prog`) that closed its stdout
/// before pkit looked is joined to pkit by no pipe (pkit's stdin a pipe
/// nothing writes to any more), and its stdin is `/dev/null`: pkit takes
/// it for a script's background command and hands its program the
/// terminal; the stage's write to the terminal under `tostop` stops the
/// job, where without pkit nothing stops. Fixed by tty6: pkit's stdin is
/// a pipe nothing writes to any more, and the stage (stdout closed) lacks
/// a background command's marks (it does not ignore SIGINT).
#[test]
fn a_stage_before_pkit_that_closed_its_stdout_keeps_the_terminal() {
    /// Removes the stage's file on drop (also on a failed assertion).
    struct Removed(std::path::PathBuf);
    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let stage = Removed(temp_path("rv44-producer"));
    let stage = &stage.0;
    write_file(stage, PRODUCER, 0o644);
    at_once(process_group_mechanisms(), |m| {
        // The control and the pkit run at once, as in `read_goes_through`.
        at_once(
            [
                ("control", String::new()),
                ("pkit", format!("{PKIT} run -q --mechanism {m} --")),
            ],
            |(how, run)| {
                let pids = Reap::new("rv44-producer-pids");
                let job = format!(
                    "stty tostop; python3 {stage} {p} </dev/null | {{ n=0; until [ -s {p} ] || \
                 [ $n -ge 600 ]; do sleep 0.05; n=$((n+1)); done; exec {run} sleep 6; }}; echo end",
                    stage = stage.display(),
                    p = pids.path()
                );
                let text = drive(&job, &ends_or_stops("", 0, 60));
                assert!(text.ends_with("ok\n"), "{m} {how}: {text}");
                assert!(
                    text.contains("status=0,0;") && text.contains("stage-out"),
                    "{m} {how}: the job did not end by itself (status=1,22: stopped by SIGTTOU, \
                 the stage's write from outside the terminal's foreground): {text}"
                );
            },
        );
    });
}
