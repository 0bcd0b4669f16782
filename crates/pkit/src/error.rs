//! [`Error`]: everything that can go wrong, as one enum.
//!
//! Messages name the program (its file name as given to
//! [`Command::new`](crate::Command::new)) and never contain arguments,
//! environment values or working directories. The one piece of output a
//! message carries is the tail of a failed run's stderr (see [`Error`]),
//! left out for a command marked
//! [`secret_output`](crate::Command::secret_output).
//!
//! A message shows the program's name, a path and every other text it was
//! given with its control and bidirectional characters escaped
//! ([`escape_controls`](crate::escape_controls): `\u{1b}`, `\n`), so
//! printing it can't act on a terminal or forge a line of a log; the
//! fields (`program`, `path`, `dir`, ...) keep the exact values.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::inert::{inert_lines, shown_path, Shown};
use crate::output::Output;
use crate::sys::Mechanism;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when starting, waiting for or containing a
/// process.
///
/// A non-zero exit, a signal and a timeout are *data* (see
/// [`Output::outcome`](crate::Output::outcome)) for [`Command::output`](crate::Command::output);
/// they become errors only for the verbs that require success
/// ([`run`](crate::Command::run), [`exit_code`](crate::Command::exit_code),
/// [`probe`](crate::Command::probe)), and then the error carries the whole
/// [`Output`].
///
/// # Messages
///
/// The plain `Display` (`{}`) of a failed run ([`NonZeroExit`](Error::NonZeroExit),
/// [`Signalled`](Error::Signalled), [`Timeout`](Error::Timeout)) ends with
/// the tail of its stderr — the last 10 lines of its last 2 KiB — so what the
/// program said reaches the user through `?`, `anyhow` and
/// `fn main() -> Result<..>`:
///
/// ```text
/// git: exited(128): fatal: not a git repository (or any of the parent directories): .git
/// ```
///
/// (several lines follow the outcome on lines of their own). Control
/// characters in it other than line breaks and tabs (a terminal's escape
/// sequences, a carriage return that would overwrite the line) and
/// Unicode's bidirectional controls (which reorder the text shown) are
/// written out as escapes (`\u{1b}`, so the quoted tail can be longer than
/// the 2 KiB it came from): printing the message can't act on the
/// terminal; the bytes themselves are in the carried [`Output`]. The plain
/// `Display` was chosen over the alternate `{:#}` because that is what
/// reaches the user by default (`anyhow`'s report of a `main` error, `{}`
/// in a log line). A command marked
/// [`secret_output`](crate::Command::secret_output) never has its stderr
/// quoted, and a [`secret_arg`](crate::Command::secret_arg) echoed on
/// stderr is quoted as `<secret>` (the carried `Output` keeps the bytes).
/// [`Error::diagnostic`] adds the duration, pid and mechanism, for logs.
/// Neither ever carries arguments or environment values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The program does not exist in any directory of `PATH` (or at the
    /// path given). The message names the variable, never its value.
    #[error("{}: program not found{}", Shown(.program), if *.path_searched { " in any directory of PATH" } else { "" })]
    NotFound {
        /// The program as given to `Command::new`.
        program: String,
        /// Whether `PATH` was searched (the program was a bare name), as
        /// opposed to a path that names no file.
        path_searched: bool,
    },

    /// The program exists but cannot be executed (no permission, not a
    /// regular file, a bad executable format), or a directory it would be
    /// in can't be searched by this user (`EACCES`, as `execvp` says, when
    /// no later `PATH` entry has it).
    #[error("{}: not executable ({})", Shown(.program), shown_path(.path))]
    NotExecutable {
        /// The program as given to `Command::new`.
        program: String,
        /// The file that was found (or that could not be looked at).
        path: PathBuf,
    },

    /// The working directory set with `current_dir` does not exist, is not
    /// a directory, or can't be entered (one holding a NUL byte is
    /// [`InvalidInput`](Error::InvalidInput)). The message does not repeat
    /// the directory (messages never carry working directories); it is in
    /// `dir`.
    #[error("{}: its working directory (current_dir) is not usable: {source}", Shown(.program))]
    CurrentDir {
        /// The program as given to `Command::new`.
        program: String,
        /// The directory that was set, for the caller (not in the message).
        dir: PathBuf,
        /// What the OS said.
        source: io::Error,
    },

    /// Starting the process failed for another reason (an OS limit, an
    /// exec failure after the checks passed).
    #[error("{}: cannot start: {source}", Shown(.program))]
    Spawn {
        /// The program as given to `Command::new`.
        program: String,
        /// What the OS said.
        source: io::Error,
    },

    /// A step of the child's own setup before it could run the program
    /// failed (a privilege drop, a resource limit, joining its container):
    /// the step is named, and the child has exited without running the
    /// program.
    #[error("{}: cannot start: {step}: {source}", Shown(.program))]
    ChildSetup {
        /// The program as given to `Command::new`.
        program: String,
        /// The step that failed.
        step: crate::spawn_options::ChildStep,
        /// What the OS said.
        source: io::Error,
    },

    /// The program exited with a non-zero code, and the verb requires
    /// success. The whole result (stderr included) is carried.
    #[error("{}", tailed(format!("{}: {}", Shown(.0.program()), .0.outcome()), .0))]
    NonZeroExit(Box<Output>),

    /// The program was killed by a signal, and the verb requires it to
    /// exit.
    #[error("{}", tailed(format!("{}: {}", Shown(.0.program()), .0.outcome()), .0))]
    Signalled(Box<Output>),

    /// The run exceeded its timeout; its tree was torn down. Returned by the
    /// verbs that require an exit (`output()` reports a timeout as data).
    #[error("{}", tailed(format!("{}: timed out after {:?}", Shown(.0.program()), .0.duration()), .0))]
    Timeout(Box<Output>),

    /// The run was cancelled through its [`CancelToken`](crate::CancelToken);
    /// its tree was torn down.
    #[error("{}: cancelled", Shown(.program))]
    Cancelled {
        /// The program as given to `Command::new`.
        program: String,
    },

    /// A captured stream exceeded its limit under
    /// [`CapturePolicy::Fail`](crate::CapturePolicy::Fail); the run's tree
    /// was torn down.
    #[error("{}: {stream} exceeded the capture limit of {limit} bytes", Shown(.program))]
    OutputLimit {
        /// The program as given to `Command::new`.
        program: String,
        /// The stream that overflowed.
        stream: crate::StreamKind,
        /// The limit that was set.
        limit: usize,
        /// What the run produced up to then: the bytes kept (at most the
        /// limit per stream) and, in
        /// [`stdout_total_bytes`](Output::stdout_total_bytes) /
        /// [`stderr_total_bytes`](Output::stderr_total_bytes), how many
        /// were seen in all.
        output: Box<Output>,
    },

    /// A readiness probe gave up: its deadline passed, or the process
    /// exited first. The process itself is left alone.
    #[error("{}: not ready: {reason}", Shown(.program))]
    NotReady {
        /// The program as given to `Command::new`.
        program: String,
        /// Why.
        reason: NotReadyReason,
    },

    /// The group's mechanism can't do what was asked (never a silent
    /// no-op).
    #[error("{operation} is not supported by the {mechanism} mechanism: {}", Shown(.reason))]
    Unsupported {
        /// What was asked, e.g. `adopt`.
        operation: &'static str,
        /// The group's mechanism.
        mechanism: Mechanism,
        /// Why not.
        reason: String,
    },

    /// A resource cap can't be enforced here, or its value is invalid.
    /// Never an uncapped group the caller believes capped.
    #[error("cannot cap {cap}: {}", Shown(.reason))]
    ResourceLimit {
        /// Which cap: `memory_max`, `memory_high`, `memory_swap_max`,
        /// `max_processes`, `cpu_quota` or `cpus`.
        cap: &'static str,
        /// Why.
        reason: String,
    },

    /// The requested containment mechanism can't be had here (for example
    /// cgroup v2 forced where no cgroup can be created). Never a silent
    /// fallback.
    #[error("containment unavailable: {}", Shown(.reason))]
    MechanismUnavailable {
        /// The mechanism that was asked for, when one was: the forced
        /// [`MechanismChoice`](crate::MechanismChoice)'s (a process group
        /// for `ProcessGroup` and `Portable`); `None` for `Auto`, when no
        /// container at all could be made (a Job Object Windows refuses).
        requested: Option<Mechanism>,
        /// Why it can't be had.
        reason: String,
    },

    /// An argument to pkit itself was invalid (for example a NUL byte in an
    /// argument, or an unparseable `PKIT_MECHANISM`).
    #[error("invalid input: {}", Shown(.0))]
    InvalidInput(String),

    /// The run succeeded but its stdout does not parse as the type asked of
    /// [`Command::parse`](crate::Command::parse). The message names the
    /// type, never the text; the parser's own error is the `source` —
    /// unless its messages quote a `secret_arg` value (then a copy of them
    /// with `<secret>` in its place) or the command is `secret_output`
    /// (then a stand-in that shows nothing of the output).
    #[error("{}: its output does not parse as {target}", Shown(.program))]
    Parse {
        /// The program as given to `Command::new`.
        program: String,
        /// The type asked for.
        target: &'static str,
        /// The parser's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The run succeeded but its stdout is not the JSON asked for
    /// (cargo feature `json`: `Command::output_json`, one line of
    /// `Command::json_lines`).
    /// The message names the type and where the problem is, never the
    /// text (serde's own message may quote it, so it is not carried).
    #[error(
        "{}: its output is not JSON for {target}: {problem} at line {line}, column {column}", Shown(.program)
    )]
    Json {
        /// The program as given to `Command::new`.
        program: String,
        /// The type asked for.
        target: &'static str,
        /// The line of stdout, counted from 1 (for `json_lines`, the line
        /// that failed; for `output_json`, the line within the output).
        line: usize,
        /// The column within that line, counted from 1 (0 when the line
        /// as a whole is the problem).
        column: usize,
        /// What is wrong: `"syntax error"`, `"unexpected end"`, `"not the
        /// expected shape"` (valid JSON that doesn't fit the type),
        /// `"line too long"` (a `json_lines` line over the command's
        /// `max_line_bytes`).
        problem: &'static str,
    },

    /// A test double (`pkit::testing::ScriptedRunner`, cargo feature
    /// `testing`) was asked to run a command it has no reply
    /// for and no fallback. The message names the program and says how
    /// many arguments it had; the arguments themselves are in `args`.
    #[error("{}: unexpected command ({} arguments): the scripted runner has no reply for it and no fallback", Shown(.program), .args.len())]
    Unscripted {
        /// The program as given to `Command::new`.
        program: String,
        /// The arguments, for the caller (not in the message).
        args: ArgList,
    },

    /// A replaying `pkit::testing::RecordReplay` (cargo feature `testing`)
    /// has no recorded run for this command (matched on program,
    /// arguments and working directory). Nothing was spawned. The message
    /// names the program and says how many arguments it had.
    #[error("{}: not in the cassette ({} arguments; replay matches program, arguments and working directory)", Shown(.program), .args.len())]
    CassetteMiss {
        /// The program as given to `Command::new`.
        program: String,
        /// The arguments, for the caller (not in the message).
        args: ArgList,
        /// The working directory the command set, for the caller (not in
        /// the message).
        cwd: Option<PathBuf>,
    },

    /// An I/O error while managing a process or its container.
    #[error("{}: {source}", Shown(.context))]
    Io {
        /// What pkit was doing.
        context: String,
        /// What the OS said.
        source: io::Error,
    },
}

/// A command's arguments, carried by an error for the caller. Its `Debug`
/// shows only how many there are (arguments may hold secrets).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ArgList(pub(crate) Vec<std::ffi::OsString>);

impl ArgList {
    /// The arguments, in order.
    pub fn as_slice(&self) -> &[std::ffi::OsString] {
        &self.0
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The arguments as text (invalid UTF-8 replaced with U+FFFD).
    pub fn to_strings_lossy(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }
}

impl fmt::Debug for ArgList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} hidden]", self.0.len())
    }
}

/// Why a readiness probe gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotReadyReason {
    /// The probe's deadline passed; the process is still running.
    Deadline(std::time::Duration),
    /// The process exited before it was ready.
    Exited(crate::Outcome),
    /// The output ended (both streams closed) without a matching line,
    /// and the process was still running 2 s later (or at the deadline):
    /// it closed its outputs and can never print the line.
    OutputClosed,
}

impl fmt::Display for NotReadyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReadyReason::Deadline(d) => write!(f, "deadline of {d:?} passed"),
            NotReadyReason::Exited(o) => write!(f, "the process ended first ({o})"),
            NotReadyReason::OutputClosed => f.write_str("its output ended without a match"),
        }
    }
}

/// The category of an [`Error`], for matching without destructuring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::NotFound`]
    NotFound,
    /// [`Error::NotExecutable`]
    NotExecutable,
    /// [`Error::CurrentDir`]
    CurrentDir,
    /// [`Error::Spawn`]
    Spawn,
    /// [`Error::ChildSetup`]
    ChildSetup,
    /// [`Error::NonZeroExit`]
    NonZeroExit,
    /// [`Error::Signalled`]
    Signalled,
    /// [`Error::Timeout`]
    Timeout,
    /// [`Error::Cancelled`]
    Cancelled,
    /// [`Error::OutputLimit`]
    OutputLimit,
    /// [`Error::NotReady`]
    NotReady,
    /// [`Error::Unsupported`]
    Unsupported,
    /// [`Error::ResourceLimit`]
    ResourceLimit,
    /// [`Error::MechanismUnavailable`]
    MechanismUnavailable,
    /// [`Error::InvalidInput`]
    InvalidInput,
    /// [`Error::Parse`]
    Parse,
    /// [`Error::Json`]
    Json,
    /// [`Error::Unscripted`]
    Unscripted,
    /// [`Error::CassetteMiss`]
    CassetteMiss,
    /// [`Error::Io`]
    Io,
}

/// How many lines of stderr a failed run's message ends with, at most.
const TAIL_LINES: usize = 10;
/// How many bytes of stderr a failed run's message ends with, at most.
const TAIL_BYTES: usize = 2048;

/// The last lines of a run's stderr (at most `TAIL_LINES` lines and
/// `TAIL_BYTES` bytes, cut at a character boundary, control characters
/// made inert: `inert_lines`), or `None` when there is none or the output is secret.
fn stderr_tail(out: &Output) -> Option<String> {
    if out.secret_output {
        return None;
    }
    // Redacted before the tail is cut, so no part of a secret is left;
    // a capture limit's cut may have left a piece of one at an edge.
    let stderr = crate::redact::redact_cut(out.stderr(), &out.redact, out.stderr_truncated());
    let text = String::from_utf8_lossy(&stderr);
    let text = text.trim_end_matches(['\n', '\r']);
    if text.trim().is_empty() {
        return None;
    }
    let mut start = text.len().saturating_sub(TAIL_BYTES);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let mut tail = &text[start..];
    let lines = tail.lines().count();
    if lines > TAIL_LINES {
        let skip = lines - TAIL_LINES;
        let mut at = 0;
        for _ in 0..skip {
            at += tail[at..].find('\n').map_or(tail.len() - at, |i| i + 1);
        }
        tail = &tail[at..];
    }
    Some(inert_lines(tail))
}

/// `head`, then the stderr tail: after `: ` when it is one line, else on
/// lines of their own.
fn tailed(head: String, out: &Output) -> String {
    match stderr_tail(out) {
        None => head,
        Some(t) if !t.contains('\n') => format!("{head}: {t}"),
        Some(t) => format!("{head}; stderr ends:\n{t}"),
    }
}

impl Error {
    /// The whole story, for logs: the message and, for a failed run, its
    /// duration, pid and mechanism, then the stderr tail (unless the
    /// command was marked [`secret_output`](crate::Command::secret_output)).
    /// Never arguments or environment values.
    ///
    /// ```text
    /// git: exited(128) after 3.2ms (pid 4242, cgroup): fatal: not a git repository
    /// ```
    pub fn diagnostic(&self) -> String {
        let out = match self {
            Error::NonZeroExit(o) | Error::Signalled(o) | Error::Timeout(o) => o,
            Error::OutputLimit { output, .. } => output,
            _ => return self.to_string(),
        };
        let head = match self {
            Error::Timeout(_) => format!("{}: timed out", Shown(out.program())),
            Error::OutputLimit { .. } => self.to_string(),
            _ => format!("{}: {}", Shown(out.program()), out.outcome()),
        };
        tailed(
            format!(
                "{head} after {:?} (pid {}, {:?})",
                out.duration(),
                out.pid(),
                out.mechanism()
            ),
            out,
        )
    }

    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::NotExecutable { .. } => ErrorKind::NotExecutable,
            Error::CurrentDir { .. } => ErrorKind::CurrentDir,
            Error::Spawn { .. } => ErrorKind::Spawn,
            Error::ChildSetup { .. } => ErrorKind::ChildSetup,
            Error::NonZeroExit(_) => ErrorKind::NonZeroExit,
            Error::Signalled(_) => ErrorKind::Signalled,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::OutputLimit { .. } => ErrorKind::OutputLimit,
            Error::NotReady { .. } => ErrorKind::NotReady,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::ResourceLimit { .. } => ErrorKind::ResourceLimit,
            Error::MechanismUnavailable { .. } => ErrorKind::MechanismUnavailable,
            Error::InvalidInput(_) => ErrorKind::InvalidInput,
            Error::Parse { .. } => ErrorKind::Parse,
            Error::Json { .. } => ErrorKind::Json,
            Error::Unscripted { .. } => ErrorKind::Unscripted,
            Error::CassetteMiss { .. } => ErrorKind::CassetteMiss,
            Error::Io { .. } => ErrorKind::Io,
        }
    }

    /// Whether the run timed out.
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// Whether the program was not found.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.kind() == ErrorKind::Cancelled
    }

    /// Whether a readiness probe gave up (deadline or early exit).
    pub fn is_not_ready(&self) -> bool {
        self.kind() == ErrorKind::NotReady
    }

    /// Whether the program exited with a non-zero code.
    pub fn is_non_zero_exit(&self) -> bool {
        self.kind() == ErrorKind::NonZeroExit
    }

    /// The result of the run this error is about, when it got that far
    /// (non-zero exit, signal, timeout, a crossed capture limit).
    pub fn output(&self) -> Option<&Output> {
        match self {
            Error::NonZeroExit(o) | Error::Signalled(o) | Error::Timeout(o) => Some(o),
            Error::OutputLimit { output, .. } => Some(output),
            _ => None,
        }
    }

    /// Takes the carried [`Output`] out of the error, when there is one.
    pub fn into_output(self) -> Option<Output> {
        match self {
            Error::NonZeroExit(o) | Error::Signalled(o) | Error::Timeout(o) => Some(*o),
            Error::OutputLimit { output, .. } => Some(*output),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl fmt::Display, source: io::Error) -> Error {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }
}

impl From<io::Error> for Error {
    /// An I/O error from code around pkit (writing to a child's stdin, say),
    /// so `?` works in functions returning [`pkit::Result`](Result).
    fn from(source: io::Error) -> Error {
        Error::io("I/O error", source)
    }
}
