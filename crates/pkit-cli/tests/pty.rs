//! `pkit run --pty`: the program on a terminal of its own, pkit's stdin
//! typed into it, its output on pkit's stdout, its tree gone at the end.
//! Both mechanisms.
// Unix only: these run the Linux CLI (signals, /proc, ttys); Windows has
// tests/windows.rs.
#![cfg(unix)]

use std::io::Write;
use std::process::Stdio;

mod common;

use common::*;

fn unterminal(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace("\r\n", "\n")
}

#[test]
fn the_program_sees_a_terminal_and_its_output_reaches_stdout() {
    for m in mechanisms() {
        let out = pkit()
            .args(["run", "-q", "--pty", "--mechanism", m, "--", "sh", "-c"])
            .arg("test -t 0 && test -t 1 && test -t 2 && echo tty; stty size; echo err >&2; exit 3")
            .stdin(Stdio::null())
            .output()
            .expect("pkit runs");
        assert_eq!(out.status.code(), Some(3), "{m}: {out:?}");
        // No terminal of pkit's own here: 24x80.
        assert_eq!(unterminal(&out.stdout), "tty\n24 80\nerr\n", "{m}");
        // Without --pty the same program sees no terminal.
        let plain = run(&[
            "run",
            "-q",
            "--mechanism",
            m,
            "--",
            "sh",
            "-c",
            "test -t 1 || echo no-tty",
        ]);
        assert_eq!(String::from_utf8_lossy(&plain.stdout), "no-tty\n", "{m}");
    }
}

#[test]
fn stdin_is_typed_into_the_terminal_and_its_end_ends_cat() {
    for m in mechanisms() {
        let mut child = pkit()
            .args(["run", "-q", "--pty", "--mechanism", m, "--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map(Started::new)
            .expect("pkit runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"first line\nsecond line\n")
            .expect("write");
        // stdin closed: pkit types the end-of-file character.
        let out = child.wait_with_output().expect("pkit ends");
        assert_eq!(out.status.code(), Some(0), "{m}: {out:?}");
        let text = unterminal(&out.stdout);
        // The terminal's echo and cat's copy of each line.
        assert_eq!(text.matches("first line\n").count(), 2, "{m}: {text:?}");
        assert_eq!(text.matches("second line\n").count(), 2, "{m}: {text:?}");
    }
}

#[test]
fn the_tree_under_the_terminal_is_gone_at_the_end() {
    for m in mechanisms() {
        let file = pid_file();
        let out = pkit()
            .args([
                "run",
                "-q",
                "--pty",
                "--mechanism",
                m,
                "-k",
                "0",
                "--",
                "sh",
                "-c",
            ])
            .arg(format!(
                // Ignoring SIGHUP: not ended by the terminal's hangup when
                // the session leader exits, only by pkit's teardown.
                "trap '' HUP; sleep 300 & echo $! >> {f}; sleep 300 & echo $! >> {f}; exit 0",
                f = file.display()
            ))
            .stdin(Stdio::null())
            .output()
            .expect("pkit runs");
        assert!(out.status.success(), "{m}: {out:?}");
        let pids = read_pids(&file, 2);
        assert_all_gone(&pids);
        let _ = std::fs::remove_file(&file);
    }
}

#[test]
fn captured_terminal_output_is_in_the_report() {
    for m in mechanisms() {
        let out = pkit()
            .args([
                "run",
                "--pty",
                "--capture",
                "--json",
                "--mechanism",
                m,
                "--",
                "sh",
                "-c",
                "echo captured",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("pkit runs");
        assert!(out.status.success(), "{m}: {out:?}");
        let r = report(&out);
        assert_eq!(r["stdout"]["data"], "captured\r\n", "{m}: {r}");
    }
}
