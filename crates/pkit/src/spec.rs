//! [`Spec`]: what a process is started from, as plain data — its program,
//! arguments, environment, working directory, stdio, bounds, how its
//! output is consumed and what it sets on itself before `exec`. A
//! [`Command`](crate::Command) owns one (beside what only the verbs use:
//! its runner, its retry policy); the start (`launch.rs`) and the group
//! below it see only this, never the command.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cancel::CancelToken;
use crate::plans::{OutputPlan, RunOptions};
use crate::spawn_options::SpawnOptions;
use crate::sys::Signal;

/// Where one of the child's output streams goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Stdio {
    /// Captured by pkit into the [`Output`](crate::Output) (the default).
    #[default]
    Piped,
    /// The parent's own stream.
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe that pkit does not read: a process started with
    /// [`Group::start`](crate::Group::start) or
    /// [`Command::start`](crate::Command::start) hands its read end over
    /// as an [`AsyncRead`](tokio::io::AsyncRead) through
    /// [`RunningProcess::take_stdout`](crate::RunningProcess::take_stdout)
    /// / [`take_stderr`](crate::RunningProcess::take_stderr), with
    /// backpressure: a child whose output nobody reads blocks once the
    /// pipe is full. No capture, tee, callback or line of that stream
    /// (its bytes in [`Output`](crate::Output) stay empty), and the
    /// inactivity timeout does not see it. The verbs (`output`, `run`…)
    /// and a [`Pipe`](crate::Pipe)'s stages have nobody to hand it to:
    /// there it is captured as [`Stdio::Piped`].
    Raw,
}

/// What the child reads on stdin.
#[derive(Clone, Default)]
pub(crate) enum Input {
    /// `/dev/null` (the default: a child never steals the parent's stdin
    /// by accident).
    #[default]
    Null,
    /// The parent's own stdin.
    Inherit,
    /// These bytes, then end of file. Shared, so every run (a retry, a
    /// reused command) gets the same input.
    Bytes(Arc<[u8]>),
    /// A pipe the caller writes through [`RunningProcess::stdin`](crate::RunningProcess::stdin).
    Piped,
    /// Streamed from a reader; consumed by the first run.
    Reader(SharedReader),
    /// This file, opened for reading and handed to the child directly.
    File(PathBuf),
}

/// A reader given to `stdin_reader`, taken by the first run that uses it.
pub(crate) type SharedReader =
    Arc<std::sync::Mutex<Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>>>;

impl Input {
    /// Whether this is a `stdin_reader` a run has taken: no later run can
    /// be fed it (a retry stops there).
    pub(crate) fn reader_taken(&self) -> bool {
        matches!(self, Input::Reader(r) if r.lock().unwrap_or_else(|e| e.into_inner()).is_none())
    }

    /// Puts back a `stdin_reader` taken by a start that failed before its
    /// child existed: nothing read it, so the next run (a retry's next
    /// attempt) gets it.
    pub(crate) fn give_back(&self, reader: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>) {
        if let (Input::Reader(shared), Some(reader)) = (self, reader) {
            *shared.lock().unwrap_or_else(|e| e.into_inner()) = Some(reader);
        }
    }
}

/// A command's start data (see the module docs): everything of a
/// [`Command`](crate::Command) that the start reads.
#[derive(Clone)]
pub(crate) struct Spec {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    /// The positions in `args` of the arguments marked secret
    /// (`Command::secret_arg`), in order.
    pub(crate) secret_args: Vec<usize>,
    /// Changes to the environment: `None` removes the variable.
    pub(crate) env: BTreeMap<OsString, Option<OsString>>,
    pub(crate) env_clear: bool,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) stdin: Input,
    pub(crate) stdout: Stdio,
    pub(crate) stderr: Stdio,
    pub(crate) timeout: Option<Duration>,
    pub(crate) grace: Option<Duration>,
    pub(crate) timeout_signal: Option<Signal>,
    pub(crate) cancel: Option<CancelToken>,
    /// Cancel signal and grace, inactivity timeout: set in `run_options.rs`.
    pub(crate) run: RunOptions,
    pub(crate) io: OutputPlan,
    /// Spawn options (uid, rlimits, setsid...): see `spawn_options/`.
    pub(crate) spawn: SpawnOptions,
    /// The name events about this command carry: see `log.rs`.
    pub(crate) log_name: Option<Arc<str>>,
    /// The timeout and cancel tokens of what runs this command (a
    /// pipeline, for a stage; a supervisor's stop and cancel tokens), which
    /// bound the wait for a FIFO's other end when its stdio files are
    /// opened ([`Spec::open_wait`]), as the command's own do.
    pub(crate) chain_open: Option<(Option<Duration>, Vec<CancelToken>)>,
}

impl Spec {
    /// The start data of a command that runs `program` with nothing else
    /// set.
    pub(crate) fn new(program: OsString) -> Spec {
        Spec {
            program,
            args: Vec::new(),
            secret_args: Vec::new(),
            env: BTreeMap::new(),
            env_clear: false,
            cwd: None,
            stdin: Input::Null,
            stdout: Stdio::Piped,
            stderr: Stdio::Piped,
            timeout: None,
            grace: None,
            timeout_signal: None,
            cancel: None,
            run: Default::default(),
            io: OutputPlan::default(),
            spawn: Default::default(),
            log_name: None,
            chain_open: None,
        }
    }

    /// How long opening this command's stdio files may wait for a FIFO's
    /// other end (see `sys/open_wait.rs`): until its timeout (or its
    /// pipeline's) passes, counted from now, or its cancel token (or its
    /// pipeline's) fires; without any, as long as it takes. Worked out only
    /// for a start that opens a stdio file (most open none: nothing is
    /// allocated or read from the clock for them).
    pub(crate) fn open_wait(&self) -> crate::sys::OpenWait<'_> {
        let opens_file = matches!(self.stdin, Input::File(_)) || self.spawn.has_output_file();
        if !opens_file {
            return crate::sys::OpenWait::default();
        }
        let (chain_timeout, chain_cancel) = self
            .chain_open
            .as_ref()
            .map_or((None, &[][..]), |(t, c)| (*t, &c[..]));
        let timeout = match (self.timeout, chain_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let tokens: Vec<_> = self.cancel.iter().chain(chain_cancel).collect();
        crate::sys::OpenWait {
            deadline: timeout.and_then(|t| std::time::Instant::now().checked_add(t)),
            given_up: (!tokens.is_empty()).then(|| {
                Box::new(move || tokens.iter().any(|t| t.is_cancelled()))
                    as Box<dyn Fn() -> bool + '_>
            }),
        }
    }

    /// The program's name for messages and logs: as given, lossily
    /// converted to UTF-8. Never includes arguments.
    pub(crate) fn display_name(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }

    /// [`display_name`](Self::display_name) as a start keeps it: one
    /// string its process and its `Output`s share.
    pub(crate) fn shared_display_name(&self) -> Arc<str> {
        Arc::from(self.program.to_string_lossy())
    }

    /// The values of the arguments passed with `secret_arg`, as bytes
    /// (what an error's quote of output and a cassette's recorded output
    /// leave out; see `crate::redact`).
    pub(crate) fn secret_values(&self) -> Vec<Vec<u8>> {
        (self.secret_args.iter())
            .filter_map(|&i| self.args.get(i))
            .map(|a| a.as_encoded_bytes().to_vec())
            .collect()
    }

    /// The secrets its run's output must not show: a pipeline stage's are
    /// the chain's (`chain_secrets`, its own among them), else its own.
    pub(crate) fn output_secrets(&self) -> Vec<Vec<u8>> {
        match self.io.chain_secrets.is_empty() {
            true => self.secret_values(),
            false => self.io.chain_secrets.clone(),
        }
    }

    /// What an `Output` of its run is marked with: `secret_output`, and
    /// [`output_secrets`](Self::output_secrets).
    pub(crate) fn output_marks(&self) -> (bool, Vec<Vec<u8>>) {
        (self.io.secret_output, self.output_secrets())
    }

    /// The name events about this command carry: its
    /// [`log_name`](crate::Command::log_name) (shared, not copied), else
    /// the program's name.
    pub(crate) fn log_label(&self) -> Arc<str> {
        match &self.log_name {
            Some(n) => n.clone(),
            None => Arc::from(self.program.to_string_lossy()),
        }
    }

    /// Refuses a program name no OS can run (`Error::InvalidInput`):
    /// empty, or with a NUL byte (it would be cut there, or searched for
    /// on `PATH` and reported not found).
    pub(crate) fn check_program(&self) -> crate::error::Result<()> {
        let why = if self.program.is_empty() {
            "the program name is empty"
        } else if self.program.as_encoded_bytes().contains(&0) {
            "the program name contains a NUL byte"
        } else {
            return Ok(());
        };
        Err(crate::error::Error::InvalidInput(why.into()))
    }

    /// Refuses what no OS can be given, from the strings alone (no look
    /// at the file system): the program name ([`check_program`](Self::check_program)),
    /// a NUL byte in `arg0`, an argument, a variable set (its name or
    /// value) or the working directory, a variable name that is empty or
    /// holds `=`. The start makes these checks first (`launch_prepare::prepare`),
    /// and a pipeline makes them for every stage before it starts any.
    pub(crate) fn check_passable(&self) -> crate::error::Result<()> {
        use crate::error::Error;
        self.check_program()?;
        let nul = |s: &OsStr| s.as_encoded_bytes().contains(&0);
        let refused =
            |what: String| Err(Error::InvalidInput(format!("{what} contains a NUL byte")));
        // The working directory's NUL is the caller's string, as the
        // others are: invalid input, not a directory the system refused
        // (`CurrentDir` is for one missing, not a directory, or not
        // enterable).
        if self.cwd.as_deref().is_some_and(|d| nul(d.as_os_str())) {
            return refused("the working directory".into());
        }
        if self.spawn.arg0().is_some_and(nul) {
            return refused("the program name".into());
        }
        if let Some(i) = self.args.iter().position(|a| nul(a)) {
            return refused(format!("argument {}", i + 1));
        }
        // Only the names the caller set are checked: an inherited one is
        // passed on as it came, as std does (`vars_os` names a raw
        // `=LEAD=1` entry `=LEAD`, and cmd.exe's `=C:` variables look the
        // same), which joins back into the same entry; and a name to
        // remove (`None`) may be such an inherited one.
        let set = self.env.iter().filter_map(|(k, v)| Some((k, v.as_ref()?)));
        if set
            .clone()
            .any(|(k, _)| k.is_empty() || k.to_string_lossy().contains('='))
        {
            return Err(Error::InvalidInput(
                "an environment variable name is empty or contains '='".into(),
            ));
        }
        if set.into_iter().any(|(k, v)| nul(k) || nul(v)) {
            return refused("an environment variable".into());
        }
        Ok(())
    }

    /// Records a change of variable `name` (`None`: removed). On Windows a
    /// change of the same variable under another spelling is replaced.
    pub(crate) fn set_env(&mut self, name: &OsStr, change: Option<OsString>) {
        if cfg!(windows) {
            let key = crate::sys::env_name_key(name);
            self.env.retain(|k, _| crate::sys::env_name_key(k) != key);
        }
        self.env.insert(name.to_os_string(), change);
    }
}
