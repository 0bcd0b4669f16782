//! [`RecordReplay`]: record real runs to a JSON cassette, replay them with
//! no subprocess.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::command::Command;
use crate::command::Runner;
use crate::error::{ArgList, Error, Result};
use crate::future::BoxFuture;
use crate::launch_spec::Launch;
use crate::output::{Outcome, Output};
use crate::process::RunningProcess;
use crate::redact::redact_cut;

use super::private_file::write_private;
use super::runs::{Arg, Blob, RecordedOutcome, Run};
use super::tape::{self, Recording};
use file::{Cassette, FORMAT, FORMAT_STARTED, FORMAT_VERBS_ONLY};

mod file;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;

/// What a run is matched on: program, arguments (a secret one as
/// [`Arg::SECRET`], whatever its value), working directory.
type Key = (Blob, Vec<Arg>, Option<Blob>);

fn key_of(cmd: &Command) -> Key {
    let args = (cmd.spec.args.iter().enumerate())
        .map(|(i, a)| match cmd.spec.secret_args.contains(&i) {
            true => Arg::SECRET,
            false => Arg::Plain(Blob::os(a)),
        })
        .collect();
    (
        Blob::os(&cmd.spec.program),
        args,
        cmd.spec.cwd.as_deref().map(|d| Blob::os(d.as_os_str())),
    )
}

fn key_of_run(run: &Run) -> Key {
    (run.program.clone(), run.args.clone(), run.cwd.clone())
}

/// A run in the cassette, or a started run still being recorded.
enum Entry {
    Run(Run),
    Started(Recording),
}

impl Entry {
    fn run(&self) -> Option<&Run> {
        match self {
            Entry::Run(run) => Some(run),
            Entry::Started(_) => None,
        }
    }
}

enum Mode {
    Record(Arc<dyn Runner>),
    Replay,
}

struct State {
    /// In capture order (a started run: its start).
    runs: Vec<Entry>,
    /// For replay: how many times each command was answered.
    answered: HashMap<Key, usize>,
}

/// A [`Runner`] that records real runs to a JSON cassette
/// ([`record`](Self::record), then [`save`](Self::save)) or answers from
/// one with no subprocess ([`replay`](Self::replay)).
///
/// - Runs are matched on program + arguments + working directory (not the
///   environment, nor stdin). A command recorded several times replays its results in
///   capture order, then repeats the last.
/// - Only runs that completed with an [`Output`] are recorded: non-zero
///   exits, signals, timeouts and [`Error::OutputLimit`] are; spawn
///   failures, a missing program and cancellations are not.
/// - Started runs ([`Group::start`](crate::Group::start),
///   [`Command::start`], [`Pipe`](crate::Pipe) stages, a
///   [`Supervisor`](crate::Supervisor)'s runs) are recorded too: their
///   stdout and stderr as the pump reads them — both streams, in the order
///   they came — and, once the process has ended, its outcome (a run its
///   timeout ended as timed out; one its cancel token ended is not
///   recorded). Call [`save`](Self::save) after waiting for them: a run
///   still going is left out, and output read after the save is not in
///   the file. What pkit does not read is not recorded: a
///   [`Stdio::Raw`](crate::Stdio::Raw) stream, a stream sent to a file or
///   to `/dev/null`, a pipeline stage's stdout (the next stage reads it;
///   replay plays each stage's own recorded output). The whole output of
///   a recorded started run is kept in memory until the cassette is
///   dropped.
/// - Replaying a started run plays it as a live process through the same
///   line pump as a real child: its recorded pieces in their order (so
///   [`lines`](crate::RunningProcess::lines),
///   [`wait_for_line`](crate::RunningProcess::wait_for_line), callbacks
///   and [`events`](crate::RunningProcess::events) see the same lines, in
///   the same order), then its outcome, at once. The order across the
///   two streams is the order their bytes were read in. A partial last
///   line (no newline) is told at the process's exit; live, a line the
///   other stream wrote just before the exit can come before or after it
///   (each stream has its own reader), and the replay tells that line
///   first. A run recorded through a
///   verb plays its stdout, then its stderr. A started run's recording
///   answers a verb too (its whole stdout and stderr).
/// - A command not in the cassette is an
///   [`Error::CassetteMiss`] (not a not-found) and spawns nothing.
/// - A replayed `Output` has the recorded outcome, stdout and stderr (byte
///   for byte, so `<secret>` where the program echoed a secret argument:
///   see **Secrets**) and byte totals; through a verb, its
///   [`duration`](Output::duration) is zero (a timed-out run's: the
///   replaying command's timeout, or inactivity timeout, that ended it)
///   and its pid 0 (a started
///   replay is a scripted process: a pid no real process has, and the
///   moment it took to play).
/// - The file is written owner-only (mode 0600), through a temporary file
///   in the same directory renamed into place; a cassette path that is a
///   symbolic link is refused. It holds at most
///   [`MAX_BYTES`](Self::MAX_BYTES) (64 MiB): replay refuses a larger
///   file, reading no more than that, and one that is not a regular file
///   (a device, a FIFO) without reading it. It has a format version: a cassette from a
///   newer pkit, or a corrupt one, is a clear error. On Windows there is no
///   mode: the file gets the permissions (ACL) its directory passes on.
///
/// **Format.** A JSON object: `"format"` and `"runs"`, each run with
/// `program`, `args`, `cwd`, `env_names`, `outcome` (`{"exited": 0}`,
/// `{"signalled": 9}` with a signal 1 to 64, or `"timed_out"`),
/// `inactivity_timed_out` (only when true), `stdout`, `stderr` (a string
/// when UTF-8, else an array of bytes; either is read for any bytes, and
/// matched on its bytes), `stdout_total_bytes` and
/// `stderr_total_bytes`. Format 2 adds,
/// for a started run, `output`: its pieces in order, each
/// `{"stdout": ...}` or `{"stderr": ...}` (`stdout` and `stderr` still
/// hold each stream whole). Format 3 adds secret arguments: one in
/// `args` is `{"secret": true}` (see **Secrets**); any other object there
/// (`{"secret": false}`, another key, `{}`) is a corrupt cassette, the
/// error naming its place (`runs[0].args[1]`). A cassette is written in
/// the oldest format that holds it — 3 with a secret argument, else 2 with
/// a started run, else 1 — so older pkit reads what it can; older formats
/// load as before. A format below 1 is no cassette.
///
/// **Secrets.** The cassette stores the environment's variable *names*
/// only, never their values. An argument passed with
/// [`Command::secret_arg`] is written as `{"secret": true}`, never its
/// value, and replay matches it with any secret argument at the same
/// place (so a test replays with a dummy token). A program that echoes
/// a secret argument (many CLIs print their command line on an error) has
/// each occurrence of its value, byte for byte, recorded as `<secret>` —
/// in `stdout`, `stderr` and a started run's `output` pieces (one that a
/// read cut in two too; for a [`Pipe`](crate::Pipe) stage, every stage's
/// secrets, as a later stage may pass an earlier one's echo on), so in
/// every line, JSON line or error quote a replay gives — as an error's
/// quote of stderr shows it (the same redaction). Replay returns what was recorded: a test replaying such a
/// cassette sees `<secret>` where the program printed the token, never
/// its dummy one; the byte totals count the recorded text. There is no
/// minimum length: a secret of one character (`"1"`) turns every `1` of
/// that run's output into `<secret>`, so pass real secrets only. Only the
/// value as passed is found: an echo the program transformed (quoted,
/// escaped, encoded) is not. A stream its
/// [`capture_limit`](Command::capture_limit) cut may have lost part of an
/// echo: the piece left at the cut's edge is recorded as `<secret>` too
/// (when a stream was cut, a start of a secret's value at its end and an
/// end of one at its start, however short). [`save`](Self::save)
/// refuses, writing nothing, when a recorded command is marked
/// [`secret_output`](Command::secret_output) (its output is what a
/// cassette stores: script that command instead). Everything else — the
/// program, the other arguments, the working directory, the rest of
/// stdout and stderr — is stored verbatim: a token passed as a plain
/// argument, or printed by a tool on its own, is in the file.
///
/// ```
/// use std::sync::Arc;
/// use pkit::testing::RecordReplay;
/// use pkit::{Command, SystemRunner};
///
/// # async fn demo() -> pkit::Result<()> {
/// let path = std::env::temp_dir().join(format!("pkit-doc-{}.cassette.json", std::process::id()));
/// // Once, for real:
/// let recorder = Arc::new(RecordReplay::record(&path, Arc::new(SystemRunner::default())));
/// let greeting = Command::new("echo").arg("hello").runner(recorder.clone()).run().await?;
/// recorder.save()?;
///
/// // In the test, with no echo at all:
/// let replay = Arc::new(RecordReplay::replay(&path)?);
/// let again = Command::new("echo").arg("hello").runner(replay.clone()).run().await?;
/// assert_eq!((greeting.as_str(), again.as_str()), ("hello", "hello"));
/// let miss = Command::new("echo").arg("bye").runner(replay).run().await.unwrap_err();
/// assert_eq!(miss.kind(), pkit::ErrorKind::CassetteMiss);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
pub struct RecordReplay {
    path: PathBuf,
    mode: Mode,
    state: Mutex<State>,
}

impl State {
    /// Turns the started runs that have ended into runs (dropping the
    /// cancelled ones).
    fn settle(&mut self) {
        self.runs.retain_mut(|entry| {
            let Entry::Started(rec) = entry else {
                return true;
            };
            match rec.settle() {
                None => true,
                Some(None) => false,
                Some(Some(run)) => {
                    *entry = Entry::Run(run);
                    true
                }
            }
        });
    }

    /// The completed runs.
    fn runs(&mut self) -> Vec<Run> {
        self.settle();
        self.runs.iter().filter_map(Entry::run).cloned().collect()
    }
}

impl RecordReplay {
    /// Runs every command with `inner` and records each completed run, to
    /// be written to `path` by [`save`](Self::save).
    pub fn record(path: impl AsRef<Path>, inner: Arc<dyn Runner>) -> RecordReplay {
        RecordReplay {
            path: path.as_ref().to_path_buf(),
            mode: Mode::Record(inner),
            state: Mutex::new(State {
                runs: Vec::new(),
                answered: HashMap::new(),
            }),
        }
    }

    /// The largest cassette file [`replay`](Self::replay) reads, and
    /// [`save`](Self::save) writes: 64 MiB. A larger one is refused
    /// rather than read into memory whole.
    pub const MAX_BYTES: u64 = file::MAX_BYTES;

    /// Answers every command from the cassette at `path`, running nothing.
    ///
    /// # Errors
    ///
    /// The file can't be read ([`Error::Io`]); it is not a regular file
    /// (a directory, a device such as `/dev/zero`, a FIFO: [`Error::Io`]
    /// with [`InvalidInput`](std::io::ErrorKind::InvalidInput), nothing
    /// read, a FIFO nobody writes to included), or holds more than
    /// [`MAX_BYTES`](Self::MAX_BYTES) ([`Error::Io`] with
    /// [`FileTooLarge`](std::io::ErrorKind::FileTooLarge), no more than
    /// that read); it is not a
    /// cassette (format 0 included), or is corrupt (a signal number
    /// outside 1 to 64 included), or was written in a newer format
    /// ([`Error::Io`] with [`InvalidData`](std::io::ErrorKind::InvalidData),
    /// saying which). Each error's message names the path.
    pub fn replay(path: impl AsRef<Path>) -> Result<RecordReplay> {
        let path = path.as_ref();
        let text = file::read(path)?;
        let runs = file::parse(&text).map_err(|why| {
            Error::io(
                format!("reading the cassette {}", path.display()),
                io::Error::new(io::ErrorKind::InvalidData, why),
            )
        })?;
        Ok(RecordReplay {
            path: path.to_path_buf(),
            mode: Mode::Replay,
            state: Mutex::new(State {
                runs: runs.into_iter().map(Entry::Run).collect(),
                answered: HashMap::new(),
            }),
        })
    }

    /// Writes the runs recorded so far (for a replaying cassette: the runs
    /// it holds) to the cassette's path: owner-only (0600; on Windows,
    /// the directory's inherited ACL), through a temporary file in the
    /// same directory renamed into place. A path that is a symbolic link
    /// is refused.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when the cassette can't be written (its directory, a
    /// symbolic link at `path`, a full disk) or its runs can't be encoded;
    /// [`Error::InvalidInput`](crate::Error::InvalidInput), writing nothing, when a recorded
    /// run's command is marked [`secret_output`](Command::secret_output), or a run ended by
    /// a signal no process can have (a scripted [`Reply::signalled`](super::Reply::signalled)
    /// outside 1 to 127), or a cassette over [`MAX_BYTES`](Self::MAX_BYTES), which replay
    /// would refuse.
    pub fn save(&self) -> Result<()> {
        let runs = self.state().runs();
        if let Some(run) = runs.iter().find(|r| r.secret_output) {
            let program = String::from_utf8_lossy(&run.program.clone().into_bytes()).into_owned();
            return Err(Error::InvalidInput(format!(
                "{program}: its output is marked secret (secret_output), and a cassette would \
                 write it to disk: nothing was saved; answer that command with a ScriptedRunner"
            )));
        }
        // A scripted reply can hold a signal no run can have: refused here,
        // as replay would refuse the file.
        super::runs::check_outcomes(&runs).map_err(|why| {
            let why = why.trim_start_matches("corrupt cassette: ");
            Error::InvalidInput(format!("{why}: nothing was saved"))
        })?;
        let started = runs.iter().any(|r| !r.output.is_empty());
        let secret = runs.iter().any(|r| r.args.contains(&Arg::SECRET));
        let format = match (secret, started) {
            (true, _) => FORMAT,
            (false, true) => FORMAT_STARTED,
            (false, false) => FORMAT_VERBS_ONLY,
        };
        let cassette = Cassette { format, runs };
        let mut json = serde_json::to_vec_pretty(&cassette)
            .map_err(|e| Error::io("saving the cassette", io::Error::other(e)))?;
        json.push(b'\n');
        if json.len() as u64 > Self::MAX_BYTES {
            return Err(Error::InvalidInput(format!(
                "the cassette would be {} bytes, over {} (RecordReplay::MAX_BYTES), which replay \
                 refuses: nothing was saved",
                json.len(),
                Self::MAX_BYTES
            )));
        }
        write_private(&self.path, &json).map_err(|e| Error::io("saving the cassette", e))
    }

    /// How many runs the cassette holds (a started run counts once it
    /// has ended).
    pub fn len(&self) -> usize {
        self.state().runs().len()
    }

    /// Whether the cassette holds no run.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn record_one(&self, inner: &dyn Runner, cmd: &Command) -> Result<Output> {
        let result = inner.output(cmd).await;
        let out = match &result {
            Ok(out) => out,
            Err(Error::OutputLimit { output, .. }) => &**output, // replayed as this error
            Err(_) => return result,
        };
        let mut run = run_of(cmd);
        run.outcome = RecordedOutcome::of(out.outcome());
        run.inactivity_timed_out = out.inactivity_timed_out();
        // Each secret argument the program echoed is recorded as
        // `<secret>` (the caller's `Output` keeps the bytes); a total
        // counts what is recorded, so a cut capture still says it was cut.
        let secrets = cmd.secret_values();
        let recorded = |bytes: &[u8], total: u64| {
            // A capture limit's cut may have left a piece of one at an edge.
            let kept = redact_cut(bytes, &secrets, total > bytes.len() as u64);
            let total = total.saturating_sub(bytes.len() as u64) + kept.len() as u64;
            (Blob::of(&kept), total)
        };
        (run.stdout, run.stdout_total_bytes) = recorded(out.stdout(), out.stdout_total_bytes());
        (run.stderr, run.stderr_total_bytes) = recorded(out.stderr(), out.stderr_total_bytes());
        self.state().runs.push(Entry::Run(run));
        result
    }

    /// Starts `cmd` with `inner`, recording its output as it is read.
    fn record_start(
        &self,
        inner: &dyn Runner,
        cmd: &Command,
        launch: Launch<'_>,
    ) -> Result<RunningProcess> {
        let (recorded, log) = tape::recorded(cmd);
        let proc = inner.start(&recorded, launch)?;
        // A pipeline's stage: the other stages' secrets too.
        let mut secrets = cmd.secret_values();
        secrets.extend(cmd.spec.io.chain_secrets.iter().cloned());
        let rec = Recording::new(run_of(cmd), secrets, log, &proc);
        self.state().runs.push(Entry::Started(rec));
        Ok(proc)
    }

    fn replay_one(&self, cmd: &Command) -> Result<Output> {
        // Over a `Fail` limit fails it, as live: a verb captures even a `stream_lines` command.
        let (io, (_, out)) = (&cmd.spec.io, self.replay_run(cmd)?);
        crate::plans::over_limit(&cmd.display_name(), io.fail_limit(false), out)
    }

    /// The recorded run answering `cmd`, and its `Output`.
    fn replay_run(&self, cmd: &Command) -> Result<(Run, Output)> {
        if cmd.spec.cancel.as_ref().is_some_and(|t| t.is_cancelled()) {
            return Err(Error::Cancelled {
                program: cmd.display_name(),
            });
        }
        let key = key_of(cmd);
        let mut state = self.state();
        let matching: Vec<usize> = (state.runs.iter().enumerate())
            .filter(|(_, r)| r.run().is_some_and(|r| key_of_run(r) == key))
            .map(|(i, _)| i)
            .collect();
        let Some(&last) = matching.last() else {
            return Err(Error::CassetteMiss {
                program: cmd.display_name(),
                args: ArgList(cmd.spec.args.clone()),
                cwd: cmd.spec.cwd.clone(),
            });
        };
        let seen = state.answered.entry(key).or_insert(0);
        let at = matching.get(*seen).copied().unwrap_or(last);
        *seen += 1;
        let Some(run) = state.runs[at].run().cloned() else {
            unreachable!("only runs match");
        };
        drop(state);
        let outcome = match run.outcome {
            RecordedOutcome::Exited(c) => Outcome::Exited(c),
            RecordedOutcome::Signalled(s) => Outcome::Signalled(s),
            RecordedOutcome::TimedOut => Outcome::TimedOut,
        };
        // No duration is recorded: a timed-out run took the limit that
        // ended it (its `Error::Timeout` says "timed out after" that, not
        // "after 0ns").
        let limit = match outcome {
            Outcome::TimedOut if run.inactivity_timed_out => cmd.get_inactivity_timeout(),
            Outcome::TimedOut => cmd.spec.timeout,
            _ => None,
        };
        let out = Output::builder(cmd.display_name())
            .outcome(outcome)
            .duration(limit.unwrap_or_default())
            .inactivity_timed_out(run.inactivity_timed_out)
            .stdout(run.stdout.clone().into_bytes())
            .stderr(run.stderr.clone().into_bytes())
            .stdout_total_bytes(run.stdout_total_bytes)
            .stderr_total_bytes(run.stderr_total_bytes)
            .build();
        Ok((run, out))
    }
}

impl Runner for RecordReplay {
    fn output<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<Output>> {
        Box::pin(async move {
            match &self.mode {
                Mode::Record(inner) => self.record_one(inner.as_ref(), cmd).await,
                Mode::Replay => self.replay_one(cmd),
            }
        })
    }

    /// Recording: starts the run with the inner runner and records its
    /// output as it is read (both streams, in order) and, once it has
    /// ended, its outcome. Replaying: plays the recorded run of the same
    /// command as a live process through the line pump (a started run's
    /// output in its recorded order; a verb's stdout, then its stderr),
    /// then its outcome, at once (see [`Reply`](super::Reply)); an
    /// unrecorded command is an [`Error::CassetteMiss`], and nothing is
    /// spawned.
    fn start(&self, cmd: &Command, launch: Launch<'_>) -> Result<RunningProcess> {
        match &self.mode {
            Mode::Record(inner) => self.record_start(inner.as_ref(), cmd, launch),
            Mode::Replay => {
                let (run, out) = self.replay_run(cmd)?;
                tape::script(&run, out).start(cmd, launch)
            }
        }
    }
}

impl std::fmt::Debug for RecordReplay {
    /// Shows the mode and how many runs, not their contents.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Record(_) => "record",
            Mode::Replay => "replay",
        };
        f.debug_struct("RecordReplay")
            .field("mode", &mode)
            .field("runs", &self.len())
            .finish()
    }
}

/// `cmd`'s run as recorded before it runs: program, arguments, working
/// directory, the names of its variables; no outcome or output yet.
fn run_of(cmd: &Command) -> Run {
    let (program, args, cwd) = key_of(cmd);
    Run {
        program,
        args,
        cwd,
        env_names: (cmd.spec.env.iter())
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| Blob::os(k))
            .collect(),
        outcome: RecordedOutcome::Exited(0),
        inactivity_timed_out: false,
        stdout: Blob::Text(String::new()),
        stderr: Blob::Text(String::new()),
        stdout_total_bytes: 0,
        stderr_total_bytes: 0,
        output: Vec::new(),
        secret_output: cmd.spec.io.secret_output,
    }
}
