//! A pty session's terminal is really the child's controlling terminal,
//! under every mechanism: Linux's own spawner takes it in the child, and
//! the portable backend (`PKIT_MECHANISM=portable`) through its spawn
//! trampoline's session step (`setsid`, then `TIOCSCTTY`), the path
//! macOS and FreeBSD run, or, without a trampoline, on Linux only, by
//! opening the slave again (`tests/portable.rs` runs that one). Shown by
//! what only a controlling terminal gives: the kernel's `tty_nr` and
//! foreground group, `/dev/tty`, and `^C` turned into SIGINT.

mod common;

use common::*;
use pkit::Outcome;

/// The kernel's `tty_nr` of a device with major `major` and minor `minor`
/// (hexadecimal, as `stat -c '%t %T'` prints them).
fn tty_nr(major: &str, minor: &str) -> u64 {
    let major = u64::from_str_radix(major, 16).expect("major");
    let minor = u64::from_str_radix(minor, 16).expect("minor");
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// The child's `/proc/<pid>/stat` names the pty's slave as its controlling
/// terminal (`tty_nr`, the slave's device number as `tty` names it), the
/// child leads its session and process group, and that group is the
/// terminal's foreground group (`tpgid`).
#[tokio::test]
async fn the_stat_of_the_child_names_the_slave_as_its_controlling_terminal() {
    let suite = begin("the_stat_of_the_child_names_the_slave_as_its_controlling_terminal").await;
    for choice in mechanisms() {
        let out = sh(
            choice,
            "t=$(tty); echo \"tty $t\"; echo \"dev $(stat -L -c '%t %T' \"$t\")\"; \
             echo \"stat $(cut -d' ' -f5-8 /proc/$$/stat)\"",
        )
        .pty(24, 80)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert!(out.success(), "{choice}: {out:?}");
        let text = String::from_utf8_lossy(out.stdout()).replace("\r\n", "\n");
        let field = |key: &str| -> Vec<String> {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{choice}: no {key:?} in {text:?}"))
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        let tty = field("tty ");
        assert!(tty[0].starts_with("/dev/pts/"), "{choice}: {text:?}");
        let dev = field("dev ");
        // pgrp, session, tty_nr, tpgid.
        let stat: Vec<u64> = field("stat ")
            .iter()
            .map(|v| v.parse().expect("a number"))
            .collect();
        let pid = u64::from(out.pid());
        assert_eq!(stat[0], pid, "{choice}: leads its process group");
        assert_eq!(stat[1], pid, "{choice}: leads its session");
        assert_eq!(
            stat[2],
            tty_nr(&dev[0], &dev[1]),
            "{choice}: the controlling terminal is {}: {text:?}",
            tty[0]
        );
        assert_eq!(stat[3], pid, "{choice}: the terminal's foreground group");
    }
    suite.end().await;
}

/// `/dev/tty` (which only a process with a controlling terminal can open)
/// reads what is typed and writes to the session's output.
#[tokio::test]
async fn dev_tty_reads_what_is_typed_and_writes_to_the_session() {
    let suite = begin("dev_tty_reads_what_is_typed_and_writes_to_the_session").await;
    for choice in mechanisms() {
        let (group, mut proc) = start_pty_sh(
            choice,
            "echo ready; read x < /dev/tty && echo \"got:$x\" > /dev/tty",
        );
        proc.wait_for_line(|l| l.text == "ready", DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{choice}: ready: {e}"));
        proc.pty()
            .expect("a pty")
            .write_line("typed")
            .await
            .expect("write");
        proc.wait_for_line(|l| l.text == "got:typed", DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{choice}: /dev/tty's answer: {e}"));
        let out = tokio::time::timeout(DEADLINE, proc.wait())
            .await
            .expect("ends")
            .expect("wait");
        assert_eq!(out.outcome(), Outcome::Exited(0), "{choice}");
        drop(group);
    }
    suite.end().await;
}

/// `^C` typed into the terminal reaches the program in the foreground, the
/// session's leader itself, as SIGINT: the terminal's line discipline
/// signals its session's foreground group, which it has only as a
/// controlling terminal.
#[tokio::test]
async fn ctrl_c_reaches_the_session_leader_as_sigint() {
    let suite = begin("ctrl_c_reaches_the_session_leader_as_sigint").await;
    for choice in mechanisms() {
        let (group, mut proc) = start_pty_sh(choice, "echo ready; exec cat");
        proc.wait_for_line(|l| l.text == "ready", DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{choice}: ready: {e}"));
        let pid = proc.pid();
        // `exec cat` done: the leader itself reads the terminal.
        let deadline = std::time::Instant::now() + DEADLINE;
        while comm(pid).as_deref() != Some("cat") {
            assert!(std::time::Instant::now() < deadline, "{choice}: no cat");
            tokio::time::sleep(POLL).await;
        }
        proc.pty()
            .expect("a pty")
            .send_control('c')
            .await
            .expect("ctrl-c");
        let out = tokio::time::timeout(DEADLINE, proc.wait())
            .await
            .expect("cat ends at ^C")
            .expect("wait");
        assert_eq!(out.outcome(), Outcome::Signalled(libc::SIGINT), "{choice}");
        drop(group);
    }
    suite.end().await;
}

/// A terminal's `^Z` (SIGTSTP to its foreground process group, which the
/// owner leads here) while pty sessions start: an owner that catches the
/// stop signals goes on, and so must its starts. A pty session's child
/// must never be in the owner's process group (the portable backend's
/// trampoline was, until its own `setsid`: stopped there with the
/// signal's default action, it never said it was ready, and the start
/// waited for ever). See [`common::pty_starts_under_stops`]; FreeBSD's
/// start (no `POSIX_SPAWN_SETSID`) is run by `tests/faults.rs`.
#[tokio::test]
async fn stop_signals_to_the_owners_group_never_stall_a_pty_start() {
    const NAME: &str = "stop_signals_to_the_owners_group_never_stall_a_pty_start";
    if let Some(choice) = stopped_owner() {
        owner_of_pty_starts_under_stops(choice).await;
        return;
    }
    let suite = begin(NAME).await;
    for choice in mechanisms() {
        pty_starts_under_stops(NAME, choice);
    }
    suite.end().await;
}
