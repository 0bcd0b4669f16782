//! A program whose name carries terminal controls: `pkit run`'s own lines
//! (an error, the end-of-run line, a timeout, `-v`'s event lines) show it
//! escaped (`\u{1b}`), as the library's messages do; `--json` keeps the
//! exact name, in JSON text with every control escaped.

#![cfg(target_os = "linux")]

mod common;

use std::path::PathBuf;

use common::*;

/// A window title (OSC) with its bell, a carriage return and a backspace,
/// a line feed that would start a forged line, a C1 CSI, a right-to-left
/// override, and an accented letter that stays.
const HOSTILE: &str = "m\u{1b}]0;pwned\u{7}\r\u{8}\nFORGED\u{9b}2J\u{202e}é";
/// `HOSTILE` as pkit's lines show it.
const SHOWN: &str = r"m\u{1b}]0;pwned\u{7}\r\u{8}\nFORGED\u{9b}2J\u{202e}é";

/// Whether `c` may not reach pkit's own text lines raw (line breaks end
/// them; nothing in these runs writes a tab).
fn raw_control(c: char) -> bool {
    (c.is_control() && c != '\n') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Asserts that `stderr` holds none of `HOSTILE`'s controls, no forged
/// line, and `want` (a line's text).
fn assert_inert(what: &str, stderr: &[u8], want: &str) {
    let text = String::from_utf8_lossy(stderr);
    assert!(
        !text.chars().any(raw_control),
        "{what}: raw control in {text:?}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("FORGED")),
        "{what}: {text:?}"
    );
    assert!(text.contains(want), "{what}: {want:?} not in {text:?}");
}

/// A directory holding a script named `<tag>-HOSTILE`; removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let dir = temp_path("msgesc");
        std::fs::create_dir(&dir).unwrap();
        Dir(dir)
    }

    /// The script `<tag>-HOSTILE` running `body`, and how pkit shows it.
    fn script(&self, tag: &str, body: &str) -> (PathBuf, String) {
        let path = self.0.join(format!("{tag}-{HOSTILE}"));
        write_file(&path, &format!("#!/bin/sh\n{body}\n"), 0o755);
        let shown = format!("{}/{tag}-{SHOWN}", self.0.display());
        (path, shown)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_hostile_program_name_is_escaped_in_pkits_lines() {
    let dir = Dir::new();
    let (fails, fails_shown) = dir.script("fails", "echo oops >&2; exit 3");
    let (sleeps, sleeps_shown) = dir.script("sleeps", "exec sleep 30");
    for m in mechanisms() {
        // -v: the event lines (program=...) and the end-of-run line.
        let out = pkit()
            .args(["run", "-v", "--mechanism", m, "--"])
            .arg(&fails)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{m}: {out:?}");
        assert_inert(m, &out.stderr, &format!("program={fails_shown}"));
        assert_inert(m, &out.stderr, &format!("pkit: {fails_shown} ended;"));

        // A timeout's line.
        let out = pkit()
            .args(["run", "--timeout", "0.2", "--mechanism", m, "--"])
            .arg(&sleeps)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(124), "{m}: {out:?}");
        assert_inert(m, &out.stderr, &format!("pkit: {sleeps_shown} timed out"));

        // A start that fails: the library's message, escaped.
        let missing = dir.0.join(format!("missing-{HOSTILE}"));
        let out = pkit()
            .args(["run", "--mechanism", m, "--"])
            .arg(&missing)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(127), "{m}: {out:?}");
        let shown = format!("{}/missing-{SHOWN}: program not found", dir.0.display());
        assert_inert(m, &out.stderr, &format!("pkit: {shown}"));

        // --json: the exact name, in JSON text that escapes every control
        // (DEL, C1 and the bidirectional ones too, which JSON would let
        // through raw).
        let out = pkit()
            .args(["run", "--json", "--mechanism", m, "--"])
            .arg(&fails)
            .output()
            .unwrap();
        assert_inert(m, &out.stderr, r#""program":"#);
        let r = report(&out);
        assert_eq!(r["program"], fails.to_str().unwrap(), "{m}: {r}");

        // supervise --json -v: the events as JSON, the same way.
        let out = pkit()
            .args(["supervise", "--restart", "never", "--json", "-v"])
            .args(["--mechanism", m, "--"])
            .arg(&fails)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{m}: {out:?}");
        assert_inert(m, &out.stderr, r#""program":"#);
        let text = String::from_utf8_lossy(&out.stderr);
        let events: Vec<serde_json::Value> = text
            .lines()
            .filter(|l| l.starts_with(r#"{"event":"log""#))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(
            events
                .iter()
                .any(|e| e["program"] == fails.to_str().unwrap()),
            "{m}: {text:?}"
        );
    }
}
