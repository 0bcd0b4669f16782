//! The JSON report (schema 1; `schema/run-report.schema.json`): a fixed
//! key set on every run, `null` where a key does not apply.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use pkit::ErrorKind;
use serde::Serialize;

use crate::cgstats::TreeStats;
use crate::exit::WriteFailed;

/// The report's schema version; bumped on any incompatible change.
pub const SCHEMA: u32 = 1;

/// One run, as scripts read it.
#[derive(Serialize, Debug, Default)]
pub struct Report {
    pub schema: u32,
    /// The program as given, as text: a name that is not valid UTF-8 has
    /// U+FFFD in place of each bad sequence (its bytes are in
    /// `program_base64`).
    pub program: String,
    /// The program's exact bytes, base64, when its name is not valid UTF-8
    /// (then `program` alone can't name it); null otherwise. On Windows
    /// the bytes are WTF-8 (a name with unpaired surrogates).
    pub program_base64: Option<String>,
    /// `exited`, `signalled`, `timed_out` or `error`.
    pub outcome: &'static str,
    /// The program's exit code, when it exited (also after a timeout).
    pub exit_code: Option<i32>,
    /// The signal that ended the program, when one did.
    pub signal: Option<i32>,
    /// Its name (`SIGTERM`), or null for an unnamed (real-time) signal.
    pub signal_name: Option<&'static str>,
    pub timed_out: bool,
    /// SIGKILL was needed after the grace (--kill-after) ran out (and
    /// ended the program: see `sigkill`).
    pub killed_after_grace: bool,
    /// Why pkit SIGKILLed the whole tree while the program ran: null (it
    /// did not, or the program exited on its own before the kill reached
    /// it: `exit_code` says how it ended), `after_grace` (the grace ran
    /// out), `requested` (a third request to end, TERM, INT, HUP or QUIT
    /// to pkit, cut the grace short), `unreachable` (the ending signal
    /// could not reach the whole tree: killed at once, no grace).
    pub sigkill: Option<&'static str>,
    /// The same, with its signal (for the summary line; not in the report).
    #[serde(skip)]
    pub kill: Option<Kill>,
    /// The status pkit ends with, as a shell's `$?` shows it (128+N when
    /// pkit re-raises signal N).
    pub exit_status: u8,
    pub pid: Option<u32>,
    /// From the start of the program (or of the attempt) to the end of the
    /// teardown, in microseconds.
    pub duration_us: u64,
    /// `cgroup-v2` or `process-group`; null when no container was made.
    pub mechanism: Option<&'static str>,
    /// Signals pkit received during the run, in order (`SIGTERM`, …).
    pub signals_received: Vec<String>,
    /// Processes of the tree still running when the program ended (then
    /// killed); null when they could not be counted (no descriptor free
    /// to list them with).
    pub leftover_processes: Option<u64>,
    /// Of the leftovers, how many were still running after the grace
    /// (then SIGKILLed); all of them when the ending signal could not
    /// reach them and they were killed at once; null without leftovers,
    /// or when they could not be counted.
    pub leftovers_killed: Option<u64>,
    /// The leftovers were killed at once, the ending signal having failed
    /// to reach them (for the summary line; not in the report).
    #[serde(skip)]
    pub leftovers_killed_at_once: bool,
    /// The signal to pkit that cut the leftovers' grace short (for the
    /// summary line; not in the report: `signals_received` has it).
    #[serde(skip)]
    pub leftovers_cut_short: Option<i32>,
    /// Descendants that had left the container (setsid under process
    /// groups), re-parented to pkit as their subreaper and killed by it
    /// after the teardown; null where pkit is no subreaper (macOS, the
    /// BSDs), so that such a descendant was not looked for.
    pub escaped_processes_killed: Option<u64>,
    /// Processes found in the container after teardown: 0 is what was
    /// verified; null when it could not be checked.
    pub processes_left: Option<u64>,
    /// The kernel's OOM killer killed a process of the tree (null: no
    /// memory cgroup to ask).
    pub oom_killed: Option<bool>,
    pub error: Option<String>,
    /// snake_case: `not_found`, `not_executable`, `current_dir`, `spawn`,
    /// `resource_limit`, `mechanism_unavailable`, `invalid_input`,
    /// `unsupported`, `io`, `usage`, `other`.
    pub error_kind: Option<&'static str>,
    pub stdout: Option<Stream>,
    pub stderr: Option<Stream>,
    pub stats: Option<TreeStats>,
}

/// Why pkit SIGKILLed the whole tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kill {
    /// The grace (`--kill-after`) ran out with the tree still there.
    AfterGrace,
    /// A third request to end (this signal) to pkit: at once, no grace.
    Requested(i32),
    /// The ending signal (this one) could not reach the whole tree: at
    /// once, no grace.
    Unreachable(i32),
}

impl Kill {
    /// The report's `sigkill` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kill::AfterGrace => "after_grace",
            Kill::Requested(_) => "requested",
            Kill::Unreachable(_) => "unreachable",
        }
    }

    /// What happened, for the summary line.
    pub fn describe(self) -> String {
        match self {
            Kill::AfterGrace => "SIGKILL was needed after the grace".into(),
            Kill::Requested(s) => format!(
                "a third request to end it ({}) killed it at once, cutting the grace short",
                crate::signame::display(s)
            ),
            Kill::Unreachable(s) => format!(
                "killed at once: {} could not reach the whole tree, so no grace was given",
                crate::signame::display(s)
            ),
        }
    }
}

/// A captured stream.
#[derive(Serialize, Debug)]
pub struct Stream {
    /// `utf-8` when the bytes are valid UTF-8 (then `data` is the text),
    /// else `base64`.
    pub encoding: &'static str,
    pub data: String,
    /// Bytes the program wrote to the stream, kept or not.
    pub bytes_total: u64,
    /// Bytes in `data` (decoded).
    pub bytes_kept: u64,
    pub truncated: bool,
}

impl Stream {
    pub fn new(bytes: &[u8], total: u64, truncated: bool) -> Stream {
        let (encoding, data) = match std::str::from_utf8(bytes) {
            Ok(text) => ("utf-8", text.to_string()),
            Err(_) => ("base64", base64(bytes)),
        };
        Stream {
            encoding,
            data,
            bytes_total: total,
            bytes_kept: bytes.len() as u64,
            truncated,
        }
    }
}

/// Standard base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Where the report goes.
pub enum Sink {
    None,
    Stderr,
    File(File),
}

impl Sink {
    /// Opens the destination chosen on the command line, before the run
    /// (so a bad path fails early).
    pub fn open(json: bool, file: Option<&Path>, fd: Option<i32>) -> io::Result<Sink> {
        if let Some(path) = file {
            // As the shell's `>path`: a symbolic link is followed (the
            // path is the user's choice, /dev/stderr included).
            return File::create(path).map(Sink::File);
        }
        if let Some(fd) = fd {
            return crate::sys::inherited_fd(fd).map(Sink::File);
        }
        Ok(if json { Sink::Stderr } else { Sink::None })
    }

    pub fn is_some(&self) -> bool {
        !matches!(self, Sink::None)
    }

    /// Writes `report` as one line.
    ///
    /// # Errors
    ///
    /// The write's (its reader gone, a full disk) to a file or descriptor
    /// chosen with `--json-file`/`--json-fd`; nothing is printed. A write
    /// to stderr (`--json`) that fails is dropped.
    pub fn write(&mut self, report: &Report) -> Result<(), WriteFailed> {
        let mut line = match crate::json_line::to_line(report) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("pkit: cannot encode the report: {e}");
                return Ok(());
            }
        };
        line.push(b'\n');
        let result = match self {
            Sink::None => Ok(()),
            // pkit's stderr is where it says what went wrong: a failure
            // there has nowhere to be said and changes no status (as GNU
            // tools check only their stdout at exit).
            Sink::Stderr => {
                // The program shares stderr: one that ended mid-line (a
                // progress meter's `\r`, cut short) must not have the
                // report glued to its text.
                if report.pid.is_some() && stderr_mid_line() != Some(false) {
                    line.insert(0, b'\n');
                }
                let _ = io::stderr().lock().write_all(&line);
                Ok(())
            }
            Sink::File(f) => f.write_all(&line).and_then(|()| f.flush()),
        };
        result.map_err(|source| WriteFailed {
            what: "the report",
            source,
        })
    }
}

/// Whether stderr's last byte is no line feed, as far as pkit can tell:
/// known for a regular file (read back: the shell's `2>file` and
/// `>>file 2>&1`), unknown (None) for a pipe, a terminal or a socket,
/// whose past pkit can't read. The `--json` report, which must be a line
/// of its own, is begun with a line feed unless stderr is known to end
/// one (or is empty): JSON readers take the leading line feed as the
/// whitespace it is (`jq`, a whole-stream parse, `tail -1`), where a
/// report glued to a program's unfinished line is no JSON at all.
/// `pkit supervise --json`'s events, a stream of lines, take the same
/// look and add the line feed only when it is known to be missing: there
/// an empty line between events would break a line-by-line reader.
pub fn stderr_mid_line() -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::FileExt;
        let meta = std::fs::metadata("/proc/self/fd/2").ok()?;
        if !meta.is_file() {
            return None;
        }
        if meta.len() == 0 {
            return Some(false);
        }
        // Opened anew for reading: stderr itself is often write-only.
        let file = File::open("/proc/self/fd/2").ok()?;
        let mut last = [0u8];
        file.read_exact_at(&mut last, meta.len() - 1).ok()?;
        Some(last[0] != b'\n')
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// snake_case names for the report.
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "not_found",
        ErrorKind::NotExecutable => "not_executable",
        ErrorKind::CurrentDir => "current_dir",
        ErrorKind::ChildSetup => "child_setup",
        ErrorKind::Spawn => "spawn",
        ErrorKind::Cancelled => "cancelled",
        ErrorKind::OutputLimit => "output_limit",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::ResourceLimit => "resource_limit",
        ErrorKind::MechanismUnavailable => "mechanism_unavailable",
        ErrorKind::InvalidInput => "invalid_input",
        ErrorKind::Io => "io",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(super::base64(&[0xff, 0xfe]), "//4=");
    }
}
