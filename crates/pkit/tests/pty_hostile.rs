//! Pty sessions used as a hostile user would: the blocking raw master
//! driven by a real program (typing from another thread, a large output
//! read to its end), the master closed early on a program that never stops
//! writing, a grandchild that ignores the hangup and keeps the terminal
//! open, and a storm of resizes. Every tree gone at the end.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use pkit::{Command, DecoderFactory, MechanismChoice};

/// Terminal output with its `\r\n` line endings made `\n`.
fn unterminal(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace("\r\n", "\n")
}

fn blocking_group(choice: MechanismChoice) -> pkit::blocking::Group {
    pkit::blocking::Group::with(pkit::Group::builder().mechanism(choice)).expect("group")
}

#[test]
fn the_blocking_raw_master_is_read_and_written_with_a_real_program() {
    in_suite(
        "the_blocking_raw_master_is_read_and_written_with_a_real_program",
        || {
            for choice in mechanisms() {
                let group = blocking_group(choice);
                let script = r#"stty size; read x; echo "got $x"; seq 1 100000; echo end"#;
                let mut p = group
                    .start(&Command::new("sh").args(["-c", script]).pty_raw(24, 80))
                    .expect("start");
                let mut tty = p.take_pty_master().expect("the master side");
                assert!(p.take_pty_master().is_none(), "{choice}: taken once");
                tty.write_all(b"typed\r").expect("type");
                let mut all = Vec::new();
                // Read to the end: 0 once the program closed the terminal.
                tty.read_to_end(&mut all).expect("read to the end");
                let text = unterminal(&all);
                assert!(text.contains("24 80\n"), "{choice}: {text:.200}");
                assert!(text.contains("got typed\n"), "{choice}: {text:.200}");
                let mut want = String::new();
                for n in 1..=100_000 {
                    want.push_str(&n.to_string());
                    want.push('\n');
                }
                want.push_str("end\n");
                assert!(text.ends_with(&want), "{choice}: the large output differs");
                let out = p.wait().expect("wait");
                assert!(out.success(), "{choice}: {out:?}");
                assert!(out.stdout().is_empty(), "{choice}: pkit read nothing");
            }
        },
    );
}

#[test]
fn the_blocking_raw_master_is_read_on_one_thread_while_another_types() {
    in_suite(
        "the_blocking_raw_master_is_read_on_one_thread_while_another_types",
        || {
            for choice in mechanisms() {
                let group = blocking_group(choice);
                // No echo (it would interleave with cat's copies byte by
                // byte): what comes back is cat's copy alone, in order.
                let mut cat = group
                    .start(
                        &Command::new("sh")
                            .args(["-c", "stty -echo; echo ready; exec cat"])
                            .pty_raw(24, 80),
                    )
                    .expect("start");
                let mut tty = cat.take_pty_master().expect("the master side");
                let mut all = Vec::new();
                let mut buf = [0u8; 4096];
                while !all.ends_with(b"ready\r\n") {
                    let n = tty.read(&mut buf).expect("read");
                    assert!(n > 0, "{choice}: early end");
                    all.extend_from_slice(&buf[..n]);
                }
                let keys = tty.pty();
                let typist = std::thread::spawn(move || {
                    for n in 0..300 {
                        keys.write_line(&format!("line {n}")).expect("type");
                    }
                    keys.send_control('d').expect("ctrl-d");
                });
                all.clear();
                tty.read_to_end(&mut all).expect("read to the end");
                typist.join().expect("the typist");
                let want: String = (0..300).map(|n| format!("line {n}\n")).collect();
                assert!(
                    unterminal(&all) == want,
                    "{choice}: {:.300}",
                    unterminal(&all)
                );
                assert_eq!(cat.wait().expect("wait").code(), Some(0), "{choice}");
            }
        },
    );
}

#[tokio::test]
async fn closing_the_master_early_on_an_endless_writer_hangs_nothing() {
    use tokio::io::AsyncReadExt;
    let suite = begin("closing_the_master_early_on_an_endless_writer_hangs_nothing").await;
    for choice in mechanisms() {
        let group = group(choice);
        // A grandchild deaf to the terminal's hangup, and `yes` for ever.
        let script = "trap '' HUP; sleep 300 & echo \"pid $!\"; exec yes";
        let mut p = group
            .start(&Command::new("sh").args(["-c", script]).pty_raw(24, 80))
            .expect("start");
        let mut master = p.take_pty_master().expect("the master side");
        let mut seen = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        while seen.len() < 256 * 1024 {
            let n = tokio::time::timeout(DEADLINE, master.read(&mut buf))
                .await
                .expect("output in time")
                .expect("read");
            assert!(n > 0, "{choice}: early end");
            seen.extend_from_slice(&buf[..n]);
        }
        let text = unterminal(&seen);
        let grandchild: u32 = text
            .lines()
            .find_map(|l| l.strip_prefix("pid "))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("{choice}: no pid line: {:.200}", text));
        drop(master);
        // `yes` now blocks on a full terminal nobody reads: the shutdown
        // still ends it, and the grandchild, in time.
        tokio::time::timeout(DEADLINE, p.shutdown(Duration::from_millis(100)))
            .await
            .expect("shutdown in time")
            .expect("shutdown");
        let out = tokio::time::timeout(DEADLINE, p.wait())
            .await
            .expect("wait in time")
            .expect("wait");
        assert!(!out.success(), "{choice}: {out:?}");
        let pid = p.pid();
        drop(p);
        drop(group);
        assert_gone(&[pid, grandchild], &format!("{choice}: yes and sleep")).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn a_grandchild_keeping_the_terminal_open_does_not_hold_up_a_verb() {
    let suite = begin("a_grandchild_keeping_the_terminal_open_does_not_hold_up_a_verb").await;
    for choice in mechanisms() {
        // The leader exits at once; its child ignores the hangup and keeps
        // the terminal's slave side open, so the master never ends.
        let out = tokio::time::timeout(
            DEADLINE,
            sh(choice, "trap '' HUP; sleep 300 & echo \"pid $!\"; exit 0")
                .pty(24, 80)
                .output(),
        )
        .await
        .expect("the verb returns in time")
        .expect("output");
        assert!(out.success(), "{choice}: {out:?}");
        let text = unterminal(out.stdout());
        let pid: u32 = text
            .lines()
            .find_map(|l| l.strip_prefix("pid "))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("{choice}: no pid line: {text:?}"));
        assert_gone(&[pid], &format!("{choice}: the grandchild")).await;
    }
    suite.end().await;
}

#[tokio::test]
async fn a_storm_of_resizes_leaves_the_last_size_and_a_working_terminal() {
    let suite = begin("a_storm_of_resizes_leaves_the_last_size_and_a_working_terminal").await;
    for choice in mechanisms() {
        let group = group(choice);
        // Prints its size for every line typed. (No SIGWINCH trap: a
        // trapped signal interrupts dash's `read`, which then fails and
        // ends the loop: the shell's behaviour, not the terminal's.)
        let script = "while read l; do echo \"size $(stty size) after $l\"; done";
        let mut sh = group
            .start(
                &Command::new("sh")
                    .args(["-c", script])
                    .pty(24, 80)
                    .stream_lines()
                    .decoder(DecoderFactory::utf8_strip_vt()),
            )
            .expect("start");
        let tty = sh.pty().expect("a pty");
        tty.write_line("first").await.expect("type");
        sh.wait_for_line(|l| l.text.starts_with("size 24 80"), DEADLINE)
            .await
            .expect("the first size");
        // Several tasks resizing at once, thousands of times, while typing.
        let mut storms = Vec::new();
        for t in 0..4u16 {
            let tty = tty.clone();
            storms.push(tokio::spawn(async move {
                for i in 0..500u16 {
                    tty.resize(1 + (i + t) % 200, 1 + (i * 7 + t) % 300)
                        .expect("resize");
                    if i % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        for n in 0..20 {
            tty.write_line(&format!("during {n}")).await.expect("type");
        }
        for s in storms {
            s.await.expect("a storm");
        }
        tty.resize(33, 77).expect("the last resize");
        assert_eq!(tty.size().expect("size"), (33, 77), "{choice}");
        tty.write_line("last").await.expect("type");
        sh.wait_for_line(|l| l.text.starts_with("size 33 77 after"), DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{choice}: the last size: {e}"));
        // (SIGWINCH itself is checked in tests/pty.rs.)
        assert!(sh.is_running(), "{choice}: the storm killed nothing");
        tty.send_control('d').await.expect("ctrl-d");
        let out = tokio::time::timeout(DEADLINE, sh.wait())
            .await
            .expect("in time")
            .expect("wait");
        assert!(out.success(), "{choice}: {out:?}");
        drop(sh);
        drop(group);
    }
    suite.end().await;
}
