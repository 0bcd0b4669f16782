//! Pty sessions (`Command::pty`): the child on a terminal of its own, typed
//! into through `Pty`, its output read as lines, its tree contained. In
//! both mechanisms, with real programs (sh, cat, sleep, stty, python3).

mod common;

use std::time::Duration;

use common::*;
use pkit::{Command, DecoderFactory, ErrorKind, Line, MechanismChoice, Outcome, RunningProcess};

/// Terminal output with its `\r\n` line endings made `\n`.
fn unterminal(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace("\r\n", "\n")
}

async fn line(proc: &mut RunningProcess, what: &str, pred: impl FnMut(&Line) -> bool) -> Line {
    proc.wait_for_line(pred, DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Waits until `pid` has a child process named `name`.
async fn wait_for_child(pid: u32, name: &str) {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let found = children
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .any(|c| comm(c).as_deref() == Some(name));
        if found {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {name} under {pid}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn the_child_has_a_terminal_on_every_stream_and_leads_its_session() {
    let suite = begin("the_child_has_a_terminal_on_every_stream_and_leads_its_session").await;
    for choice in mechanisms() {
        let out = sh(
            choice,
            "test -t 0 && test -t 1 && test -t 2 && echo tty; stty size; \
             echo $$ $(cut -d' ' -f7 /proc/$$/stat) $(ps -o sid= -p $$); \
             echo to-stderr >&2",
        )
        .pty(30, 100)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert!(out.success(), "{choice}: {out:?}");
        let text = unterminal(out.stdout());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "tty", "{choice}: {text:?}");
        assert_eq!(lines[1], "30 100", "{choice}: {text:?}");
        // pid, controlling terminal (tty_nr, non-zero), session id.
        let ids: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(ids.len(), 3, "{choice}: {text:?}");
        assert_ne!(ids[1], "0", "{choice}: no controlling terminal: {text:?}");
        assert_eq!(
            ids[0], ids[2],
            "{choice}: not its session's leader: {text:?}"
        );
        assert_eq!(ids[0], out.pid().to_string(), "{choice}");
        // stderr goes to the terminal too, after stdout, in order.
        assert_eq!(lines[3], "to-stderr", "{choice}: {text:?}");
        assert!(out.stderr().is_empty(), "{choice}");
    }
    suite.end().await;
}

#[tokio::test]
async fn python_sees_a_terminal_of_the_given_size() {
    let suite = begin("python_sees_a_terminal_of_the_given_size").await;
    if Command::new("python3").arg("-V").output().await.is_err() {
        eprintln!("python3 is not installed: skipped");
        suite.end().await;
        return;
    }
    for choice in mechanisms() {
        let out = cmd(choice, "python3")
            .args([
                "-c",
                "import os,sys; print(os.isatty(0), os.isatty(1), os.get_terminal_size())",
            ])
            .pty(33, 111)
            .output()
            .await
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert_eq!(
            unterminal(out.stdout()),
            "True True os.terminal_size(columns=111, lines=33)\n",
            "{choice}"
        );
    }
    suite.end().await;
}

#[tokio::test]
async fn resize_changes_the_size_and_sends_sigwinch() {
    let suite = begin("resize_changes_the_size_and_sends_sigwinch").await;
    for choice in mechanisms() {
        let (group, mut proc) = start_pty_sh(
            choice,
            "trap 'echo winch; stty size' WINCH; echo ready; while :; do sleep 0.1; done",
        );
        line(&mut proc, "ready", |l| l.text == "ready").await;
        let tty = proc.pty().expect("a pty");
        assert_eq!(tty.size().expect("size"), (24, 80), "{choice}");
        tty.resize(50, 132).expect("resize");
        assert_eq!(tty.size().expect("size"), (50, 132), "{choice}");
        line(&mut proc, "winch", |l| l.text == "winch").await;
        line(&mut proc, "stty size", |l| l.text == "50 132").await;
        let bad = tty.resize(0, 10).expect_err("0 rows");
        assert_eq!(bad.kind(), ErrorKind::InvalidInput, "{choice}");
        drop(group);
    }
    suite.end().await;
}

#[tokio::test]
async fn an_interactive_cat_is_driven_by_write_line_and_ended_by_ctrl_d() {
    let suite = begin("an_interactive_cat_is_driven_by_write_line_and_ended_by_ctrl_d").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut cat = group
            .start(&Command::new("cat").pty(24, 80).stream_lines())
            .expect("start");
        let tty = cat.pty().expect("a pty");
        tty.write_line("hello pty").await.expect("write");
        let mut lines = cat.lines();
        // The terminal echoes the typed line, then cat writes it back.
        for n in 0..2 {
            let l = tokio::time::timeout(DEADLINE, lines.next_line())
                .await
                .expect("a line in time")
                .expect("a line");
            assert_eq!(l.text, "hello pty", "{choice}: line {n}");
        }
        tty.send_control('d').await.expect("ctrl-d");
        let out = tokio::time::timeout(DEADLINE, cat.wait())
            .await
            .expect("cat ends at end of input")
            .expect("wait");
        assert_eq!(out.outcome(), Outcome::Exited(0), "{choice}");
        drop(group);
    }
    suite.end().await;
}

#[tokio::test]
async fn ctrl_c_interrupts_the_foreground_and_spares_what_ignores_it() {
    let suite = begin("ctrl_c_interrupts_the_foreground_and_spares_what_ignores_it").await;
    for choice in mechanisms() {
        // A non-interactive shell's background job ignores SIGINT; the
        // shell traps it (so its foreground cat gets the default action).
        let (group, mut proc) = start_pty_sh(
            choice,
            "trap 'echo shell-got-int' INT; sleep 300 & echo $!; echo ready; \
             cat; echo \"cat:$?\"; while :; do sleep 0.1; done",
        );
        let bg: u32 = line(&mut proc, "pid", |l| l.text.parse::<u32>().is_ok())
            .await
            .text
            .parse()
            .expect("pid");
        line(&mut proc, "ready", |l| l.text == "ready").await;
        wait_for_child(proc.pid(), "cat").await;
        proc.pty()
            .expect("a pty")
            .send_control('c')
            .await
            .expect("ctrl-c");
        // 128 + SIGINT: cat was interrupted.
        line(&mut proc, "cat's status", |l| l.text.ends_with("cat:130")).await;
        assert!(!proc.has_exited(), "{choice}: the trapping shell runs on");
        assert_alive(&[bg], &format!("{choice}: the SIGINT-ignoring sleep"));
        let sh = proc.pid();
        drop(proc);
        drop(group);
        assert_gone(&[bg, sh], &format!("{choice}: the tree, with its group")).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn send_control_sends_the_terminals_own_interrupt_character() {
    let suite = begin("send_control_sends_the_terminals_own_interrupt_character").await;
    for choice in mechanisms() {
        // ^X becomes the interrupt character; ^C is then plain input.
        let (group, mut proc) = start_pty_sh(choice, "stty intr ^X; echo ready; exec sleep 300");
        line(&mut proc, "ready", |l| l.text == "ready").await;
        proc.pty()
            .expect("a pty")
            .send_control('c')
            .await
            .expect("ctrl-c");
        let out = tokio::time::timeout(DEADLINE, proc.wait())
            .await
            .expect("sleep interrupted")
            .expect("wait");
        assert_eq!(out.outcome(), Outcome::Signalled(libc::SIGINT), "{choice}");
        drop(group);

        let (group, mut proc) = start_pty_sh(choice, "stty intr undef; echo ready; exec sleep 300");
        line(&mut proc, "ready", |l| l.text == "ready").await;
        let err = proc
            .pty()
            .expect("a pty")
            .send_control('c')
            .await
            .expect_err("disabled");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{choice}: {err}");
        let err = proc
            .pty()
            .expect("a pty")
            .send_control('1')
            .await
            .expect_err("no such control character");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{choice}: {err}");
        drop(group);
    }
    suite.end().await;
}

#[tokio::test]
async fn a_shell_prompt_is_matched_with_wait_for_line() {
    let suite = begin("a_shell_prompt_is_matched_with_wait_for_line").await;
    for choice in mechanisms() {
        let group = group(choice);
        // An interactive shell (stdin is a terminal); its prompt ends in a
        // newline so that it is a line.
        let cmd = Command::new("sh")
            .env("PS1", "pkit-prompt\n")
            .env_remove("ENV")
            .pty(24, 80)
            .stream_lines()
            .decoder(DecoderFactory::utf8_strip_vt());
        let mut sh = group.start(&cmd).expect("start");
        line(&mut sh, "first prompt", |l| l.text == "pkit-prompt").await;
        let tty = sh.pty().expect("a pty");
        tty.write_line("echo $((6 * 7))").await.expect("write");
        line(&mut sh, "the answer", |l| l.text == "42").await;
        line(&mut sh, "next prompt", |l| l.text == "pkit-prompt").await;
        tty.write_line("exit 3").await.expect("write");
        let out = tokio::time::timeout(DEADLINE, sh.wait())
            .await
            .expect("the shell exits")
            .expect("wait");
        assert_eq!(out.code(), Some(3), "{choice}");
        drop(group);
    }
    suite.end().await;
}

#[tokio::test]
async fn a_grandchild_on_the_terminal_dies_with_the_group() {
    let suite = begin("a_grandchild_on_the_terminal_dies_with_the_group").await;
    for choice in mechanisms() {
        // SIGHUP ignored: only the group's teardown can end the tree.
        let (group, mut proc) = start_pty_sh(choice, &format!("trap '' HUP; {TREE_TO_STDOUT}"));
        let mut pids = Vec::new();
        loop {
            let l = line(&mut proc, "tree", |_| true).await;
            if l.text == "ready" {
                break;
            }
            pids.push(l.text.trim().parse::<u32>().expect("a pid line"));
        }
        assert_eq!(pids.len(), 3, "{choice}");
        assert_eq!(pids[2], proc.pid(), "{choice}");
        assert_alive(&pids, &format!("{choice}: tree"));
        drop(proc);
        drop(group);
        assert_gone(&pids, &format!("{choice}: the tree under the terminal")).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn a_verb_on_a_terminal_ends_its_tree_and_a_timeout_applies() {
    let suite = begin("a_verb_on_a_terminal_ends_its_tree_and_a_timeout_applies").await;
    for choice in mechanisms() {
        // Growing timeouts until the tree was up (`ready`) before the
        // timeout fired (a loaded machine may take longer than 2 s).
        let mut limit = Duration::from_secs(2);
        let pids = loop {
            let out = sh(choice, &format!("trap '' HUP; {TREE_TO_STDOUT}"))
                .pty(24, 80)
                .timeout(limit)
                .output()
                .await
                .expect("output");
            assert!(out.timed_out(), "{choice}: {out:?}");
            let text = unterminal(out.stdout());
            if let Some(pids) = pids_before_ready(&text) {
                break pids;
            }
            let mut partial = pid_lines(&text);
            partial.push(out.pid());
            assert_gone(&partial, &format!("{choice}: a tree timed out early")).await;
            assert!(
                limit < Duration::from_secs(16),
                "{choice}: the tree never got ready: {text:?}"
            );
            limit *= 2;
        };
        assert_gone(&pids, &format!("{choice}: the timed-out tree")).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn a_large_output_arrives_intact_through_the_terminal() {
    let suite = begin("a_large_output_arrives_intact_through_the_terminal").await;
    for choice in mechanisms() {
        let out = sh(choice, "seq 1 300000; echo end")
            .pty(24, 80)
            .output()
            .await
            .expect("output");
        assert!(out.success(), "{choice}: {out:?}");
        let mut want = String::new();
        for n in 1..=300000 {
            want.push_str(&n.to_string());
            want.push('\n');
        }
        want.push_str("end\n");
        let got = unterminal(out.stdout());
        assert_eq!(got.len(), want.len(), "{choice}");
        assert!(got == want, "{choice}: the bytes differ");
    }
    suite.end().await;
}

#[tokio::test]
async fn a_raw_session_hands_over_the_master_side() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let suite = begin("a_raw_session_hands_over_the_master_side").await;
    for choice in mechanisms() {
        let group = group(choice);
        let mut cat = group
            .start(&Command::new("cat").pty_raw(24, 80))
            .expect("start");
        let mut master = cat.take_pty_master().expect("the master side");
        assert!(cat.take_pty_master().is_none(), "{choice}: taken once");
        master.write_all(b"raw bytes\r").await.expect("write");
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        // Echo and cat's copy.
        while seen.windows(9).filter(|w| w == b"raw bytes").count() < 2 {
            let n = tokio::time::timeout(DEADLINE, master.read(&mut buf))
                .await
                .expect("output in time")
                .expect("read");
            assert!(n > 0, "{choice}: early end: {seen:?}");
            seen.extend_from_slice(&buf[..n]);
        }
        master.pty().send_control('d').await.expect("ctrl-d");
        // Read to the end: EIO once cat closed the terminal is the end.
        let mut rest = Vec::new();
        tokio::time::timeout(DEADLINE, master.read_to_end(&mut rest))
            .await
            .expect("the end in time")
            .expect("no error at the end");
        let out = cat.wait().await.expect("wait");
        assert_eq!(out.outcome(), Outcome::Exited(0), "{choice}");
        assert!(out.stdout().is_empty(), "{choice}: pkit read nothing");
        drop(group);
    }
    suite.end().await;
}

#[tokio::test]
async fn under_process_groups_a_pty_session_must_lead_its_group() {
    let suite = begin("under_process_groups_a_pty_session_must_lead_its_group").await;
    for choice in mechanisms() {
        let pty_cmd = Command::new("sleep").arg("300").pty(24, 80);
        let plain = Command::new("sleep").arg("300");
        // A pty session after another process.
        let group = group(choice);
        let first = group.start(&plain).expect("plain first");
        let second = group.start(&pty_cmd);
        // Another process after a pty session.
        let group2 = common::group(choice);
        let leader = group2.start(&pty_cmd).expect("pty first");
        let after = group2.start(&plain);
        let mut pids = vec![first.pid(), leader.pid()];
        match choice {
            MechanismChoice::ProcessGroup | MechanismChoice::Portable => {
                let e = second.expect_err("a pty session can't join a process group");
                assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
                let e = after.expect_err("nothing can join a pty session's process group");
                assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            }
            _ => {
                pids.push(second.expect("cgroup: pty second").pid());
                pids.push(after.expect("cgroup: plain after a pty").pid());
            }
        }
        drop(group);
        drop(group2);
        assert_gone(&pids, &format!("{choice}: every sleep")).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn a_terminal_excludes_other_stdio_settings() {
    let suite = begin("a_terminal_excludes_other_stdio_settings").await;
    let file = TempPath::new("pty-out");
    let cases = [
        (
            "stdin bytes",
            Command::new("cat").stdin_bytes("x").pty(24, 80),
        ),
        (
            "stdout file",
            Command::new("cat")
                .stdout_file(file.path(), pkit::FileMode::Truncate)
                .pty(24, 80),
        ),
        (
            "merge_stderr",
            Command::new("cat").merge_stderr().pty(24, 80),
        ),
        (
            "stderr null",
            Command::new("cat").stderr(pkit::Stdio::Null).pty(24, 80),
        ),
        ("zero rows", Command::new("cat").pty(0, 80)),
    ];
    for (what, cmd) in cases {
        let e = cmd.output().await.expect_err(what);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
    }
    let e = pkit::Pipe::new([Command::new("echo").pty(24, 80), Command::new("cat")])
        .output()
        .await
        .expect_err("a pipeline stage");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "pipe: {e}");
    suite.end().await;
}

#[tokio::test]
async fn pty_sessions_leak_no_descriptor() {
    // Alone in its binary: the descriptors it counts are this process's.
    let alone = begin_alone_in_binary().await;
    // Warm up lazily opened descriptors (the guard, /dev/null...).
    for choice in mechanisms() {
        let _ = sh(choice, "echo warm").pty(24, 80).output().await;
    }
    // Spare cgroups kept for reuse hold their directory open (its lock):
    // not leaks, and how many are kept varies; count without them.
    pkit::release_spare_cgroups();
    let before = common::fds::Snapshot::take();
    for choice in mechanisms() {
        for _ in 0..5 {
            let out = sh(choice, "echo hi")
                .pty(24, 80)
                .output()
                .await
                .expect("output");
            assert_eq!(unterminal(out.stdout()), "hi\n", "{choice}");
            let group = group(choice);
            let mut p = group
                .start(&Command::new("cat").pty(24, 80))
                .expect("start");
            let tty = p.pty().expect("a pty");
            tty.send_control('d').await.expect("ctrl-d");
            p.wait().await.expect("wait");
            drop(tty);
            drop(p);
            drop(group);
        }
    }
    pkit::release_spare_cgroups();
    // What was open at `before` and is gone (a dropped child's pidfd the
    // reaper still waited on) is no leak; another test's runtime made
    // meanwhile neither (see common::fds).
    common::fds::assert_none_opened_since(&before, "pty sessions").await;
    end_exclusive(alone, "pty_sessions_leak_no_descriptor").await;
}

#[test]
fn a_pty_session_from_blocking_code() {
    use std::io::Write;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let suite = rt.block_on(begin("a_pty_session_from_blocking_code"));
    for choice in mechanisms() {
        let group =
            pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice)).expect("group");
        let mut cat = group
            .start(&Command::new("cat").pty(24, 80).stream_lines())
            .expect("start");
        let mut tty = cat.pty().expect("a pty");
        tty.write_line("typed line").expect("write_line");
        tty.write_all(b"raw bytes\r").expect("write");
        // Each line's echo and cat's copy (the echoes may come first).
        let mut seen: Vec<String> = (0..4)
            .map(|_| cat.wait_for_line(|_| true, DEADLINE).expect("a line").text)
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            ["raw bytes", "raw bytes", "typed line", "typed line"],
            "{choice}"
        );
        tty.resize(30, 90).expect("resize");
        assert_eq!(tty.size().expect("size"), (30, 90), "{choice}");
        tty.send_control('d').expect("ctrl-d");
        assert_eq!(cat.wait().expect("wait").code(), Some(0), "{choice}");
        drop(tty);
        drop(cat);
        drop(group);
    }
    rt.block_on(suite.end());
}
