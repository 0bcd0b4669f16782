//! [`RecordingRunner`] and [`DryRunRunner`]: runners that remember each
//! command they were given, as a [`Call`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::command::Command;
use crate::command::Runner;
use crate::error::{Error, Result};
use crate::future::BoxFuture;
use crate::launch_spec::Launch;
use crate::output::Output;
use crate::process::RunningProcess;

/// One command as a recording runner saw it: program, arguments, working
/// directory and the *names* of the environment variables it sets or
/// removes (never their values).
///
/// Its `Debug` (what a failed `assert_eq!` prints) shows an argument
/// passed with [`Command::secret_arg`] as `<secret>`; [`args`](Self::args)
/// still returns it, for the test's own assertions.
#[derive(Clone, PartialEq, Eq)]
pub struct Call {
    program: OsString,
    args: Vec<OsString>,
    /// Positions in `args` of the secret arguments.
    secret_args: Vec<usize>,
    cwd: Option<PathBuf>,
    env_names: Vec<OsString>,
    env_removed: Vec<OsString>,
    env_cleared: bool,
}

impl Call {
    pub(crate) fn of(cmd: &Command) -> Call {
        Call {
            program: cmd.spec.program.clone(),
            args: cmd.spec.args.clone(),
            secret_args: cmd.spec.secret_args.clone(),
            cwd: cmd.spec.cwd.clone(),
            env_names: (cmd.spec.env.iter())
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k.clone())
                .collect(),
            env_removed: (cmd.spec.env.iter())
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| k.clone())
                .collect(),
            env_cleared: cmd.spec.env_clear,
        }
    }

    /// The program, as given to [`Command::new`].
    pub fn program(&self) -> &OsString {
        &self.program
    }

    /// The arguments (`assert_eq!(call.args(), ["status", "--short"])`).
    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    /// The arguments as text (invalid UTF-8 replaced with U+FFFD).
    pub fn args_lossy(&self) -> Vec<String> {
        (self.args.iter())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// Whether the argument at `index` was passed with
    /// [`Command::secret_arg`].
    pub fn is_secret_arg(&self, index: usize) -> bool {
        self.secret_args.contains(&index)
    }

    /// The working directory, if the command set one.
    pub fn cwd(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// The names of the variables the command sets, sorted (their values
    /// are never recorded).
    pub fn env_names(&self) -> &[OsString] {
        &self.env_names
    }

    /// The names of the variables the command removes, sorted.
    pub fn env_removed(&self) -> &[OsString] {
        &self.env_removed
    }

    /// Whether the command starts from an empty environment
    /// ([`Command::env_clear`]).
    pub fn env_cleared(&self) -> bool {
        self.env_cleared
    }
}

impl std::fmt::Debug for Call {
    /// Every field, with each secret argument as `<secret>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// Shown in a secret argument's place.
        struct Hidden;
        impl std::fmt::Debug for Hidden {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("<secret>")
            }
        }
        let args: Vec<&dyn std::fmt::Debug> = (self.args.iter().enumerate())
            .map(|(i, a)| -> &dyn std::fmt::Debug {
                if self.is_secret_arg(i) {
                    &Hidden
                } else {
                    a
                }
            })
            .collect();
        f.debug_struct("Call")
            .field("program", &self.program)
            .field("args", &args)
            .field("cwd", &self.cwd)
            .field("env_names", &self.env_names)
            .field("env_removed", &self.env_removed)
            .field("env_cleared", &self.env_cleared)
            .finish()
    }
}

/// The calls a runner has seen.
#[derive(Default)]
struct CallLog(Mutex<Vec<Call>>);

impl CallLog {
    fn push(&self, cmd: &Command) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Call::of(cmd));
    }

    fn all(&self) -> Vec<Call> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn only(&self, runner: &str) -> Call {
        let calls = self.all();
        match calls.as_slice() {
            [one] => one.clone(),
            _ => {
                let programs: Vec<_> = calls.iter().map(|c| c.program.to_string_lossy()).collect();
                panic!(
                    "{runner}::only_call: expected exactly one call, but {} were made (programs: {programs:?})",
                    calls.len()
                )
            }
        }
    }
}

/// A [`Runner`] that records every command it is given (before it runs,
/// so a run that fails, is cancelled or never ends is recorded too), then
/// hands it to `inner`: a [`ScriptedRunner`](super::ScriptedRunner), or
/// [`SystemRunner`](crate::SystemRunner) to run it for real.
///
/// ```
/// use std::sync::Arc;
/// use pkit::testing::{RecordingRunner, Reply, ScriptedRunner};
///
/// # async fn demo() -> pkit::Result<()> {
/// let recorder = Arc::new(RecordingRunner::new(Arc::new(
///     ScriptedRunner::new().fallback(Reply::ok("")),
/// )));
/// pkit::Command::new("terraform")
///     .args(["apply", "-auto-approve"])
///     .env("TF_TOKEN", "s3cret")
///     .runner(recorder.clone())
///     .run()
///     .await?;
/// let call = recorder.only_call();
/// assert_eq!(call.program(), "terraform");
/// assert_eq!(call.args(), ["apply", "-auto-approve"]);
/// assert_eq!(call.env_names(), ["TF_TOKEN"]); // the name, never the value
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
pub struct RecordingRunner {
    inner: Arc<dyn Runner>,
    log: CallLog,
}

impl RecordingRunner {
    /// Records, then runs with `inner`.
    pub fn new(inner: Arc<dyn Runner>) -> RecordingRunner {
        RecordingRunner {
            inner,
            log: CallLog::default(),
        }
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.log.all()
    }

    /// The one call made.
    ///
    /// # Panics
    ///
    /// Unless exactly one call was made; the message says how many were,
    /// and their programs.
    pub fn only_call(&self) -> Call {
        self.log.only("RecordingRunner")
    }
}

impl Runner for RecordingRunner {
    fn output<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<Output>> {
        self.log.push(cmd);
        self.inner.output(cmd)
    }

    fn output_text<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<Output>> {
        self.log.push(cmd);
        self.inner.output_text(cmd)
    }

    /// Records a started run too, and hands it on.
    fn start(&self, cmd: &Command, launch: Launch<'_>) -> Result<RunningProcess> {
        self.log.push(cmd);
        self.inner.start(cmd, launch)
    }
}

impl std::fmt::Debug for RecordingRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingRunner")
            .field("calls", &self.log.all().len())
            .finish_non_exhaustive()
    }
}

/// A [`Runner`] for `--dry-run` modes: records every command and answers
/// success (exit 0, no output) without running anything. A command whose
/// cancel token has already fired is [`Error::Cancelled`], as with the real
/// runner.
///
/// ```
/// use std::sync::Arc;
/// use pkit::testing::DryRunRunner;
///
/// # async fn demo() -> pkit::Result<()> {
/// let dry = Arc::new(DryRunRunner::new());
/// let out = pkit::Command::new("rm").args(["-rf", "build"]).runner(dry.clone()).output().await?;
/// assert!(out.success());
/// assert_eq!(dry.only_call().args(), ["-rf", "build"]);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Default)]
pub struct DryRunRunner {
    log: CallLog,
}

impl DryRunRunner {
    /// A dry runner with no calls yet.
    pub fn new() -> DryRunRunner {
        DryRunRunner::default()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.log.all()
    }

    /// The one call made.
    ///
    /// # Panics
    ///
    /// Unless exactly one call was made.
    pub fn only_call(&self) -> Call {
        self.log.only("DryRunRunner")
    }
}

impl Runner for DryRunRunner {
    fn output<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<Output>> {
        self.log.push(cmd);
        Box::pin(async move {
            if cmd.spec.cancel.as_ref().is_some_and(|t| t.is_cancelled()) {
                return Err(Error::Cancelled {
                    program: cmd.display_name(),
                });
            }
            Ok(Output::builder(cmd.display_name()).build())
        })
    }

    /// Records a started run and plays a process that exits 0 at once,
    /// writing nothing.
    fn start(&self, cmd: &Command, launch: Launch<'_>) -> Result<RunningProcess> {
        self.log.push(cmd);
        super::Reply::ok("").start(cmd, launch)
    }
}

impl std::fmt::Debug for DryRunRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DryRunRunner")
            .field("calls", &self.log.all().len())
            .finish()
    }
}
