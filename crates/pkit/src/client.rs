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
/// A token the tool takes as an argument is given with
/// [`secret_arg`](Self::secret_arg), for every call, or with
/// [`Command::secret_arg`] on one call's [`command`](Self::command): the
/// tool gets it as given, and pkit never shows or records it (no `Debug`,
/// log event or error message, not even a quote of the tool's stderr that
/// echoes it; a record/replay cassette writes `{"secret": true}`, and
/// `<secret>` where the tool's recorded output echoed it). A tool whose
/// output itself is secret: [`secret_output`](Self::secret_output).
///
/// ```
/// let deploy = pkit::CliClient::new("deployctl").arg("--token").secret_arg("tok-s3cret");
/// // One call's own secret, on its command: `deployctl --token tok-s3cret
/// // push --otp 123456 web`, run with `call.run().await`.
/// let call = deploy.command(["push", "--otp"]).secret_arg("123456").arg("web");
/// assert!(!format!("{deploy:?} {call:?}").contains("s3cret"));
/// assert!(!format!("{call:?}").contains("123456"));
/// ```
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
    /// The default arguments, each with whether it is secret
    /// ([`secret_arg`](Self::secret_arg)).
    args: Vec<(OsString, bool)>,
    /// `Some`: the environment the tool starts with, instead of this
    /// process's.
    env: Option<Vec<(OsString, OsString)>>,
    /// Added on top (of the inherited or the replaced environment).
    append_env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    timeout: Option<Duration>,
    runner: Option<Arc<dyn Runner>>,
    log_name: Option<String>,
    /// Every call is marked [`Command::secret_output`].
    secret_output: bool,
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
            secret_output: false,
        }
    }

    /// Adds a default argument, given before each call's own.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> CliClient {
        self.args.push((arg.as_ref().to_os_string(), false));
        self
    }

    /// Adds a default argument that pkit never shows or records, given
    /// before each call's own (in its place among the other defaults):
    /// every command of the client passes it with
    /// [`Command::secret_arg`], so what that promises holds for each call
    /// — no `Debug`, log event or error message shows it, and a
    /// `pkit::testing::RecordReplay` cassette writes `{"secret": true}` in
    /// its place (replayed with any secret there) and `<secret>` wherever
    /// the tool's recorded output echoed it. A secret for one call
    /// only: [`command`](Self::command), then [`Command::secret_arg`].
    ///
    /// ```
    /// let deploy = pkit::CliClient::new("deployctl").arg("--token").secret_arg("tok-s3cret");
    /// assert!(!format!("{deploy:?}").contains("tok-s3cret"));
    /// let call = deploy.command(["status"]);
    /// assert!(!format!("{call:?}").contains("tok-s3cret"));
    /// ```
    pub fn secret_arg(mut self, arg: impl AsRef<OsStr>) -> CliClient {
        self.args.push((arg.as_ref().to_os_string(), true));
        self
    }

    /// Marks every call's output as secret, as
    /// [`Command::secret_output`] marks one command's: a failed call's
    /// error never quotes the tool's stderr, and a
    /// `pkit::testing::RecordReplay` cassette refuses to save a recorded
    /// call (script the tool's answers instead). For a tool that prints
    /// credentials (`vault read`, `aws sts get-session-token`); a token
    /// the tool only takes as an argument is a
    /// [`secret_arg`](Self::secret_arg), whose echoes are redacted.
    ///
    /// ```
    /// let vault = pkit::CliClient::new("vault").secret_output();
    /// let call = vault.command(["read", "-field=password", "secret/db"]);
    /// # let _ = call;
    /// ```
    pub fn secret_output(mut self) -> CliClient {
        self.secret_output = true;
        self
    }

    /// Adds default arguments, given before each call's own.
    pub fn args<I, S>(mut self, args: I) -> CliClient
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        (self.args).extend(args.into_iter().map(|a| (a.as_ref().to_os_string(), false)));
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

    /// A command for one call: the program, the default arguments (the
    /// secret ones as [`Command::secret_arg`]), then `args`, with the
    /// client's environment, directory, timeout and runner. Adjust it
    /// further (stdin, a retry, a secret argument of this call's own…)
    /// before running it:
    ///
    /// ```no_run
    /// # async fn demo(token: &str) -> pkit::Result<()> {
    /// let curl = pkit::CliClient::new("curl").arg("-sf");
    /// let me = curl
    ///     .command(["-H"])
    ///     .secret_arg(format!("Authorization: Bearer {token}"))
    ///     .arg("https://api.example.com/me")
    ///     .run()
    ///     .await?;
    /// # let _ = me; Ok(()) }
    /// ```
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.program);
        for (arg, secret) in &self.args {
            cmd = match secret {
                true => cmd.secret_arg(arg),
                false => cmd.arg(arg),
            };
        }
        let mut cmd = cmd.args(args);
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
        if self.secret_output {
            cmd = cmd.secret_output();
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
            .field("secret_output", &self.secret_output)
            .finish()
    }
}
