//! [`ScriptedRunner`]: answers commands from a script, runs nothing.

use std::ffi::{OsStr, OsString};
use std::sync::Arc;

use crate::command::Command;
use crate::command::Runner;
use crate::error::{ArgList, Error, Result};
use crate::future::BoxFuture;
use crate::launch_spec::Launch;
use crate::output::Output;
use crate::process::RunningProcess;

use super::Reply;

type Predicate = Arc<dyn Fn(&Command) -> bool + Send + Sync>;

/// How a rule picks its commands.
#[derive(Clone)]
enum Matcher {
    /// Program and arguments, exactly.
    Exact(Vec<OsString>),
    /// Program and the first arguments.
    Prefix(Vec<OsString>),
    /// Any test of the command.
    When(Predicate),
}

impl Matcher {
    fn accepts(&self, cmd: &Command) -> bool {
        let argv = || std::iter::once(cmd.spec.program.as_os_str()).chain(cmd.get_args());
        match self {
            Matcher::Exact(want) => argv().eq(want.iter().map(OsString::as_os_str)),
            Matcher::Prefix(want) => {
                let mut have = argv();
                want.iter().all(|w| have.next() == Some(w.as_os_str()))
            }
            Matcher::When(pred) => pred(cmd),
        }
    }
}

/// A [`Runner`] that runs nothing: each command gets the [`Reply`] of the
/// first rule that matches it (rules are tried in the order they were
/// added), else the fallback, else an [`Error::Unscripted`] naming the
/// program. Every verb ([`output`](Command::output),
/// [`run`](Command::run), [`exit_code`](Command::exit_code),
/// [`probe`](Command::probe)) and [`CliClient`](crate::CliClient) go
/// through it; the command's timeout, cancel token, `ok_codes`, retry
/// policy and `secret_output` apply to the scripted result as to a real
/// one.
///
/// ```
/// use std::sync::Arc;
/// use pkit::Command;
/// use pkit::testing::{Reply, ScriptedRunner};
///
/// # async fn demo() -> pkit::Result<()> {
/// let script = Arc::new(
///     ScriptedRunner::new()
///         .on(["git", "rev-parse", "--abbrev-ref", "HEAD"], Reply::ok("main\n"))
///         .on_prefix(["git", "push"], Reply::fail(1, "rejected\n"))
///         .on_match(|cmd| cmd.get_program() == "make", Reply::ok("")),
/// );
/// let git = |args: &[&str]| Command::new("git").args(args).runner(script.clone());
/// assert_eq!(git(&["rev-parse", "--abbrev-ref", "HEAD"]).run().await?, "main");
/// assert_eq!(git(&["push", "origin", "main"]).exit_code().await?, 1);
/// let err = git(&["fetch"]).run().await.unwrap_err();
/// assert_eq!(err.kind(), pkit::ErrorKind::Unscripted);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct ScriptedRunner {
    rules: Vec<(Matcher, Reply)>,
    fallback: Option<Reply>,
}

fn argv<I, S>(argv: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let argv: Vec<OsString> = argv
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    assert!(
        !argv.is_empty(),
        "a ScriptedRunner rule needs at least the program"
    );
    argv
}

impl ScriptedRunner {
    /// A script with no rules and no fallback.
    pub fn new() -> ScriptedRunner {
        ScriptedRunner::default()
    }

    /// Answers `reply` to the command whose program and arguments are
    /// exactly `argv` (the program first, as given to
    /// [`Command::new`]).
    ///
    /// # Panics
    ///
    /// When `argv` is empty.
    pub fn on<I, S>(mut self, argv_: I, reply: Reply) -> ScriptedRunner
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.rules.push((Matcher::Exact(argv(argv_)), reply));
        self
    }

    /// Answers `reply` to every command whose program and first arguments
    /// are `prefix` (`["git"]` matches every git command).
    ///
    /// # Panics
    ///
    /// When `prefix` is empty.
    pub fn on_prefix<I, S>(mut self, prefix: I, reply: Reply) -> ScriptedRunner
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.rules.push((Matcher::Prefix(argv(prefix)), reply));
        self
    }

    /// Answers `reply` to every command `pred` accepts (it sees the whole
    /// command: program, arguments, working directory...).
    pub fn on_match(
        mut self,
        pred: impl Fn(&Command) -> bool + Send + Sync + 'static,
        reply: Reply,
    ) -> ScriptedRunner {
        self.rules.push((Matcher::When(Arc::new(pred)), reply));
        self
    }

    /// Answers `reply` to every command no rule matches (without it, such
    /// a command is an [`Error::Unscripted`]).
    pub fn fallback(mut self, reply: Reply) -> ScriptedRunner {
        self.fallback = Some(reply);
        self
    }

    /// The reply for `cmd`, or the error for an unexpected command.
    fn reply_for(&self, cmd: &Command) -> Result<&Reply> {
        self.rules
            .iter()
            .find(|(m, _)| m.accepts(cmd))
            .map(|(_, r)| r)
            .or(self.fallback.as_ref())
            .ok_or_else(|| Error::Unscripted {
                program: cmd.display_name(),
                args: ArgList(cmd.spec.args.clone()),
            })
    }
}

impl Runner for ScriptedRunner {
    fn output<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<Output>> {
        Box::pin(async move { self.reply_for(cmd)?.answer(cmd).await })
    }

    /// Plays the command's reply as a live process (see [`Reply`]).
    fn start(&self, cmd: &Command, launch: Launch<'_>) -> Result<RunningProcess> {
        self.reply_for(cmd)?.start(cmd, launch)
    }
}

impl std::fmt::Debug for ScriptedRunner {
    /// Shows how many rules there are, not what they match.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedRunner")
            .field("rules", &self.rules.len())
            .field("fallback", &self.fallback)
            .finish()
    }
}
