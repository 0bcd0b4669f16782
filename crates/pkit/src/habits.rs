//! The habits of `std::process` and `tokio::process` on [`Command`]:
//! [`status`](Command::status), [`start`](Command::start),
//! [`secret_output`](Command::secret_output) and the conversion from
//! `std::process::Command`.

use std::borrow::Cow;
use std::ffi::OsStr;

use crate::command::Command;
use crate::error::Result;
use crate::output::{Outcome, Output};
use crate::process::RunningProcess;
use crate::spec::{Input, Stdio};

impl Command {
    /// Runs the command with stdout and stderr inherited from this process
    /// (and stdin too, unless the command was given an input), as
    /// `std::process::Command::status` does, and returns how it ended: what
    /// `make` or `cargo build` print reaches the terminal. A non-zero exit,
    /// a signal and a timeout are data, as for [`output`](Self::output);
    /// the whole tree is gone when it returns.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// let outcome = pkit::Command::new("true").status().await?;
    /// assert_eq!(outcome, pkit::Outcome::Exited(0));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::NotFound`](crate::Error::NotFound),
    ///   [`Error::NotExecutable`](crate::Error::NotExecutable),
    ///   [`Error::CurrentDir`](crate::Error::CurrentDir), [`Error::Spawn`](crate::Error::Spawn)
    ///   or [`Error::ChildSetup`](crate::Error::ChildSetup) when the program can't be started;
    /// - [`Error::InvalidInput`](crate::Error::InvalidInput) for a command that can't be passed
    ///   to the system as given (an empty program name, a NUL byte in an argument or the
    ///   environment) and [`Error::Unsupported`](crate::Error::Unsupported) for an option the
    ///   mechanism lacks;
    /// - [`Error::Cancelled`](crate::Error::Cancelled) when the command's cancel token fires;
    /// - [`Error::MechanismUnavailable`](crate::Error::MechanismUnavailable) or
    ///   [`Error::ResourceLimit`](crate::Error::ResourceLimit) when its group can't be made,
    ///   [`Error::Io`](crate::Error::Io) when waiting for it or ending it fails.
    pub async fn status(&self) -> Result<Outcome> {
        Ok(self.for_status().output().await?.outcome())
    }

    /// This command as [`status`](Self::status) runs it: stdio inherited
    /// (stdin too, unless set).
    pub(crate) fn for_status(&self) -> Command {
        let mut cmd = self.clone().stdout(Stdio::Inherit).stderr(Stdio::Inherit);
        if matches!(cmd.spec.stdin, Input::Null) {
            cmd.spec.stdin = Input::Inherit;
        }
        cmd
    }

    /// Starts the command as a one-off live process in its own private
    /// kill-on-drop [`Group`](crate::Group): no group to make first. The
    /// handle owns the group, so when it drops, the process and everything
    /// it spawned are killed (unlike a process started with
    /// [`Group::start`](crate::Group::start), which lives as long as its
    /// group). The group's mechanism follows `PKIT_MECHANISM`. Needs a
    /// Tokio runtime, as `Group::start` does.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// let mut server = pkit::Command::new("sh")
    ///     .args(["-c", "echo ready; sleep 300"])
    ///     .stream_lines()
    ///     .start()?;
    /// server.wait_for_line(|l| l.text == "ready", std::time::Duration::from_secs(10)).await?;
    /// drop(server); // the sh and its sleep are gone
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::NotFound`](crate::Error::NotFound),
    ///   [`Error::NotExecutable`](crate::Error::NotExecutable),
    ///   [`Error::CurrentDir`](crate::Error::CurrentDir), [`Error::Spawn`](crate::Error::Spawn)
    ///   or [`Error::ChildSetup`](crate::Error::ChildSetup) when the program can't be started;
    /// - [`Error::InvalidInput`](crate::Error::InvalidInput) for a command that can't be passed
    ///   to the system as given (an empty program name, a NUL byte in an argument or the
    ///   environment) and [`Error::Unsupported`](crate::Error::Unsupported) for an option the
    ///   mechanism lacks;
    /// - [`Error::Cancelled`](crate::Error::Cancelled) for a cancel token cancelled already
    ///   (nothing is started);
    /// - [`Error::MechanismUnavailable`](crate::Error::MechanismUnavailable),
    ///   [`Error::ResourceLimit`](crate::Error::ResourceLimit) or
    ///   [`Error::InvalidInput`](crate::Error::InvalidInput) (a bad `PKIT_MECHANISM`) when its
    ///   private group can't be made.
    pub fn start(&self) -> Result<RunningProcess> {
        let group = crate::Group::builder()
            .log_name(self.log_label())
            .one_shot()
            .build()?;
        let mut p = group.start(self)?;
        p.own_group = Some(Box::new(group));
        Ok(p)
    }

    /// Marks the command's output as secret: an error from
    /// [`run`](Self::run), [`exit_code`](Self::exit_code) or
    /// [`probe`](Self::probe) then never quotes its stderr (by default the
    /// message ends with the last lines of it, see
    /// [`Error`](crate::Error)), nor does [`parse`](Self::parse)'s error
    /// show the parser's message (which may quote the output), and a
    /// `pkit::testing::RecordReplay` cassette refuses to save its recorded
    /// output. This holds for every
    /// error that carries the run's [`Output`](crate::Output) (a crossed
    /// capture limit's too), however the command was run (verb, started
    /// process, pipeline stage).
    pub fn secret_output(mut self) -> Command {
        self.spec.io.secret_output = true;
        self
    }

    /// Adds an argument that pkit never shows or records: the program gets
    /// it as given, but every form of the command pkit formats, logs or
    /// writes down leaves its value out. [`Command`]'s `Debug` and pkit's
    /// log events show no argument anyway; a recorded
    /// `pkit::testing::Call` shows it as `<secret>` in its `Debug` (its
    /// `args` accessor still returns it, for the test's own assertions);
    /// a `pkit::testing::RecordReplay` cassette writes `{"secret": true}`
    /// in its place and, on replay, matches any value there that the
    /// command also passes with `secret_arg` — so a test replays with a
    /// dummy token where the recording had the real one. A program that
    /// echoes the value doesn't carry it into an error's message or a
    /// cassette either: the quoted stderr (of any error carrying the run's
    /// `Output`, also of a started process or pipeline, where a stage's
    /// output hides every stage's secrets), a parser's error quoting
    /// stdout ([`parse`](Self::parse)), and the cassette's recorded
    /// stdout and stderr (what its replay gives), show `<secret>` in its
    /// place, every occurrence however short the value — and, in a
    /// stream its [`capture_limit`](Self::capture_limit) cut, a piece of
    /// the value the cut left at the kept text's edge (the
    /// [`Output`](crate::Output) of the real run keeps the bytes; its
    /// stdout and stderr are the program's, not pkit's).
    ///
    /// ```
    /// let cmd = pkit::Command::new("curl")
    ///     .arg("-H")
    ///     .secret_arg("Authorization: Bearer s3cret")
    ///     .arg("https://example.com");
    /// assert!(!format!("{cmd:?}").contains("s3cret"));
    /// ```
    pub fn secret_arg(mut self, arg: impl AsRef<OsStr>) -> Command {
        self.spec.secret_args.push(self.spec.args.len());
        self.spec.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Marks a result for the verbs that may turn it into an error.
    pub(crate) fn secret(&self, mut out: Output) -> Output {
        out.secret_output = self.spec.io.secret_output;
        out.redact = self.secret_values();
        out
    }

    /// This command as stage of a pipeline whose stages' secret arguments
    /// are `chain_secrets`: streaming its stdout as lines when `streams`
    /// (the last stage of a started chain that streams), knowing the
    /// chain's secrets, which a recording runner leaves out of its output,
    /// and, when it opens stdio files, the chain's timeout and cancel token
    /// (`chain`), which bound the wait for a FIFO's other end.
    pub(crate) fn as_stage(
        &self,
        streams: bool,
        chain_secrets: &[Vec<u8>],
        chain: (Option<std::time::Duration>, Option<&crate::CancelToken>),
    ) -> Cow<'_, Command> {
        let spec = &self.spec;
        let files = matches!(spec.stdin, crate::spec::Input::File(_)) || spec.spawn.claims_output();
        let bounded = files && (chain.0.is_some() || chain.1.is_some());
        if !streams && !bounded && chain_secrets.len() == spec.secret_args.len() {
            return Cow::Borrowed(self);
        }
        let mut stage = self.clone();
        if bounded {
            stage.spec.chain_open = Some((chain.0, chain.1.into_iter().cloned().collect()));
        }
        if streams {
            stage.spec.io.stream_lines = true;
            stage.spec.io.stdout_lines_only = true;
        }
        stage.spec.io.chain_secrets = chain_secrets.to_vec();
        Cow::Owned(stage)
    }

    /// The values of the arguments passed with [`secret_arg`](Self::secret_arg),
    /// as bytes (what an error's quote of stderr and a cassette's recorded
    /// output leave out; see `crate::redact`).
    pub(crate) fn secret_values(&self) -> Vec<Vec<u8>> {
        self.spec.secret_values()
    }
}

/// Carries over what a `std::process::Command` exposes: the program, the
/// arguments, the environment changes (set and removed variables) and the
/// working directory.
///
/// What std does not expose can't be carried and is left at pkit's
/// defaults: an `env_clear()` (std has no getter for it; removals and
/// settings made after it are carried, the inherited environment is not
/// cleared), the stdio setup (pkit captures stdout and stderr and gives
/// the child `/dev/null` as stdin), and the Unix extensions (`uid`, `gid`,
/// `pre_exec`, `arg0`, `process_group`): set them again with pkit's own
/// builder methods.
impl From<std::process::Command> for Command {
    fn from(std_cmd: std::process::Command) -> Command {
        Command::from(&std_cmd)
    }
}

/// As `From<std::process::Command>`, from a borrowed command.
impl From<&std::process::Command> for Command {
    fn from(std_cmd: &std::process::Command) -> Command {
        let mut cmd = Command::new(std_cmd.get_program()).args(std_cmd.get_args());
        for (k, v) in std_cmd.get_envs() {
            cmd = match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(dir) = std_cmd.get_current_dir() {
            cmd = cmd.current_dir(dir);
        }
        cmd
    }
}
