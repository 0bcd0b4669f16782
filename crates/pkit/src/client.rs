//! [`CliClient`]: one command-line tool, its defaults and its runner, set
//! once.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::command::Command;
use crate::error::Result;
use crate::output::Output;
use crate::runner::Runner;

/// A client for one command-line tool (`git`, `gh`, `kubectl`…): the
/// program, default arguments, environment, working directory, timeout and
/// [`Runner`], set once. It hands out [`Command`]s with those defaults
/// ([`command`](Self::command)) and runs them directly
/// ([`run`](Self::run), [`output`](Self::output),
/// [`exit_code`](Self::exit_code), [`probe`](Self::probe)), so a wrapper
/// type is only argument building and output parsing.
///
/// A wrapper built on it is testable without the tool: give the client
/// another runner with [`with_runner`](Self::with_runner), for example a
/// `ScriptedRunner` of `pkit::testing` (cargo feature `testing`), whose
/// module documentation tests this `Git` wrapper without git.
///
/// ```
/// use pkit::CliClient;
///
/// /// A typed wrapper over `git`.
/// struct Git {
///     client: CliClient,
/// }
///
/// impl Git {
///     fn new() -> Git {
///         // Never prompt for credentials.
///         Git { client: CliClient::new("git").append_env("GIT_TERMINAL_PROMPT", "0") }
///     }
///
///     /// For tests: the same wrapper over another runner.
///     fn with_runner(runner: std::sync::Arc<dyn pkit::Runner>) -> Git {
///         Git { client: Git::new().client.with_runner(runner) }
///     }
///
///     async fn current_branch(&self) -> pkit::Result<String> {
///         self.client.run(["rev-parse", "--abbrev-ref", "HEAD"]).await
///     }
/// }
/// # let _ = Git::with_runner;
/// # async fn demo() -> pkit::Result<()> {
/// # let git = Git::new();
/// let branch = git.current_branch().await;
/// # let _ = branch;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CliClient {
    program: OsString,
    args: Vec<OsString>,
    /// `Some`: the environment the tool starts with, instead of this
    /// process's.
    env: Option<Vec<(OsString, OsString)>>,
    /// Added on top (of the inherited or the replaced environment).
    append_env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    timeout: Option<Duration>,
    runner: Option<Arc<dyn Runner>>,
    log_name: Option<String>,
}

impl CliClient {
    /// A client for `program` (found as [`Command::new`] finds it), with no
    /// defaults: no extra arguments, the inherited environment, this
    /// process's working directory, no timeout, the real runner.
    pub fn new(program: impl AsRef<OsStr>) -> CliClient {
        CliClient {
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            env: None,
            append_env: Vec::new(),
            cwd: None,
            timeout: None,
            runner: None,
            log_name: None,
        }
    }

    /// Adds a default argument, given before each call's own.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> CliClient {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Adds default arguments, given before each call's own.
    pub fn args<I, S>(mut self, args: I) -> CliClient
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Replaces the environment the tool inherits: it starts with exactly
    /// `vars` (plus what [`append_env`](Self::append_env) adds). A later
    /// call replaces the earlier set.
    pub fn env<I, K, V>(mut self, vars: I) -> CliClient
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.as_ref().to_os_string(), v.as_ref().to_os_string()))
                .collect(),
        );
        self
    }

    /// Adds (or overrides) one variable on top of the environment the tool
    /// starts with (the inherited one unless [`env`](Self::env) replaced
    /// it).
    pub fn append_env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> CliClient {
        self.append_env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Runs the tool in `dir` (see [`Command::current_dir`]).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> CliClient {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Bounds each call (see [`Command::timeout`]).
    pub fn timeout(mut self, limit: Duration) -> CliClient {
        self.timeout = Some(limit);
        self
    }

    /// Runs every call through `runner` (a test double, a recorder)
    /// instead of the real one.
    pub fn with_runner(mut self, runner: Arc<dyn Runner>) -> CliClient {
        self.runner = Some(runner);
        self
    }

    /// Names the client's commands in log events (see
    /// [`Command::log_name`]).
    pub fn log_name(mut self, name: impl Into<String>) -> CliClient {
        self.log_name = Some(name.into());
        self
    }

    /// The program.
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    /// A command for one call: the program, the default arguments, then
    /// `args`, with the client's environment, directory, timeout and
    /// runner. Adjust it further (stdin, a retry…) before running it.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.program).args(&self.args).args(args);
        if let Some(vars) = &self.env {
            cmd = cmd.env_clear().envs(vars.iter().map(|(k, v)| (k, v)));
        }
        cmd = cmd.envs(self.append_env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.cwd {
            cmd = cmd.current_dir(dir);
        }
        if let Some(limit) = self.timeout {
            cmd = cmd.timeout(limit);
        }
        if let Some(runner) = &self.runner {
            cmd = cmd.runner(runner.clone());
        }
        if let Some(name) = &self.log_name {
            cmd = cmd.log_name(name.clone());
        }
        cmd
    }

    /// Runs one call and returns everything about it (see
    /// [`Command::output`]).
    ///
    /// # Errors
    ///
    /// Those of [`Command::output`](crate::Command::output).
    pub async fn output<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args).output().await
    }

    /// Runs one call, requires success, returns trimmed stdout (see
    /// [`Command::run`]).
    ///
    /// # Errors
    ///
    /// Those of [`Command::run`](crate::Command::run).
    pub async fn run<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args).run().await
    }

    /// Runs one call and returns its exit code (see
    /// [`Command::exit_code`]).
    ///
    /// # Errors
    ///
    /// Those of [`Command::exit_code`](crate::Command::exit_code).
    pub async fn exit_code<I, S>(&self, args: I) -> Result<i32>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args).exit_code().await
    }

    /// Runs one call as a yes/no question (see [`Command::probe`]).
    ///
    /// # Errors
    ///
    /// Those of [`Command::probe`](crate::Command::probe).
    pub async fn probe<I, S>(&self, args: I) -> Result<bool>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args).probe().await
    }
}

impl fmt::Debug for CliClient {
    /// Shows the program and the shape of the defaults, never argument or
    /// environment values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CliClient")
            .field("program", &self.program)
            .field("args", &format_args!("[{} hidden]", self.args.len()))
            .field("env_replaced", &self.env.is_some())
            .field(
                "append_env",
                &format_args!("[{} hidden]", self.append_env.len()),
            )
            .field("current_dir_set", &self.cwd.is_some())
            .field("timeout", &self.timeout)
            .field("custom_runner", &self.runner.is_some())
            .finish()
    }
}
