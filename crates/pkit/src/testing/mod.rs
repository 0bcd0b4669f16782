//! Test doubles for code that runs commands (cargo feature `testing`).
//!
//! Every way a [`Command`](crate::Command) runs goes through its
//! [`Runner`](crate::Runner): the verbs ([`output`](crate::Command::output),
//! [`run`](crate::Command::run), [`exit_code`](crate::Command::exit_code),
//! [`probe`](crate::Command::probe)) and a [`CliClient`](crate::CliClient)'s
//! through [`Runner::output`](crate::Runner::output) (so do the batches,
//! [`output_all`](crate::output_all) and
//! [`output_unordered`](crate::output_unordered), which run each command's
//! verb); started runs — [`Group::start`](crate::Group::start),
//! [`Command::start`](crate::Command::start), each stage of a
//! [`Pipe`](crate::Pipe), each run of a [`Supervisor`](crate::Supervisor) —
//! through [`Runner::start`](crate::Runner::start). Give a command one of
//! these to test without running the real tool:
//!
//! - [`ScriptedRunner`]: answers each command with a scripted [`Reply`]
//!   (output, a failure, a timeout, a signal, an error, a run that never
//!   ends; writes and pauses played live into the real line pump when the
//!   run is started; a [`sequence`](Reply::sequence) per rule); an
//!   unexpected command is an [`Error::Unscripted`](crate::Error::Unscripted).
//! - [`RecordingRunner`]: records each command (program, arguments,
//!   working directory, environment variable *names*) and hands it on.
//! - [`DryRunRunner`]: records and answers success, running nothing.
//! - [`RecordReplay`]: records real runs to a JSON cassette, then answers
//!   from it with no subprocess.
//!
//! A custom runner builds its results with
//! [`Output::builder`](crate::Output::builder), and answers a start with
//! [`Reply::start`].
//!
//! # Testing a wrapper over a tool
//!
//! The `Git` wrapper of [`CliClient`](crate::CliClient)'s example, tested with no git:
//!
//! ```
//! use std::sync::Arc;
//! use pkit::testing::{RecordingRunner, Reply, ScriptedRunner};
//! use pkit::{CliClient, ErrorKind};
//!
//! struct Git {
//!     client: CliClient,
//! }
//!
//! impl Git {
//!     fn new() -> Git {
//!         Git { client: CliClient::new("git").append_env("GIT_TERMINAL_PROMPT", "0") }
//!     }
//!
//!     fn with_runner(runner: Arc<dyn pkit::Runner>) -> Git {
//!         Git { client: Git::new().client.with_runner(runner) }
//!     }
//!
//!     async fn current_branch(&self) -> pkit::Result<String> {
//!         self.client.run(["rev-parse", "--abbrev-ref", "HEAD"]).await
//!     }
//!
//!     async fn is_clean(&self) -> pkit::Result<bool> {
//!         Ok(self.client.run(["status", "--porcelain"]).await?.is_empty())
//!     }
//! }
//!
//! # async fn demo() -> pkit::Result<()> {
//! let script = ScriptedRunner::new()
//!     .on(["git", "rev-parse", "--abbrev-ref", "HEAD"], Reply::ok("main\n"))
//!     .on_prefix(["git", "status"], Reply::ok(" M src/lib.rs\n"));
//! let recorder = Arc::new(RecordingRunner::new(Arc::new(script)));
//! let git = Git::with_runner(recorder.clone());
//!
//! assert_eq!(git.current_branch().await?, "main");
//! let call = recorder.only_call();
//! assert_eq!(call.args(), ["rev-parse", "--abbrev-ref", "HEAD"]);
//! assert_eq!(call.env_names(), ["GIT_TERMINAL_PROMPT"]);
//!
//! assert!(!git.is_clean().await?);
//!
//! // A command the script does not know fails loudly, naming the program
//! // (the message says how many arguments; `args` holds them).
//! let err = git.client.run(["push", "--force"]).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Unscripted);
//! assert!(err.to_string().starts_with("git: unexpected command (2 arguments)"));
//! if let pkit::Error::Unscripted { args, .. } = &err {
//!     assert_eq!(args.as_slice(), ["push", "--force"]);
//! }
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
//! ```

mod cassette;
mod copy_error;
mod private_file;
mod recording;
mod reply;
mod runs;
mod scripted;
mod started;
mod tape;

#[cfg(feature = "fuzzing")]
pub(crate) use cassette::fuzzing as cassette_fuzzing;
pub use cassette::RecordReplay;
pub use recording::{Call, DryRunRunner, RecordingRunner};
pub use reply::Reply;
pub use scripted::ScriptedRunner;
