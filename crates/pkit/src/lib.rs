//! # pkit: no-orphan child processes
//!
//! Every process pkit starts, and everything that process spawns, lives in
//! a kill-on-drop OS container: a Linux cgroup v2 subtree where one can be
//! made, else a POSIX process group. When the run ends, times out, is
//! cancelled or its future is dropped, the whole tree is gone — no orphaned
//! grandchildren, no zombies — and its cgroup is removed (an emptied cgroup
//! of a group without caps or a name is kept for the next group; see
//! [`release_spare_cgroups`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> pkit::Result<()> {
//! use std::time::Duration;
//! use pkit::Command;
//!
//! // Capture everything; a non-zero exit is data.
//! let out = Command::new("sh").args(["-c", "echo hi; exit 3"]).output().await?;
//! assert_eq!((out.code(), out.stdout_str().as_ref()), (Some(3), "hi\n"));
//!
//! // Require success, get trimmed stdout.
//! assert_eq!(Command::new("echo").arg("hello").run().await?, "hello");
//!
//! // A timeout kills the whole tree, grandchildren included.
//! let out = Command::new("sh")
//!     .args(["-c", "sleep 300 & sleep 300; wait"])
//!     .timeout(Duration::from_millis(200))
//!     .output()
//!     .await?;
//! assert!(out.timed_out());
//! # Ok(()) }
//! ```
//!
//! # Two APIs, one engine
//!
//! The API above is async and needs a [Tokio](https://docs.rs/tokio)
//! runtime with its I/O and time drivers enabled (`#[tokio::main]`, or a
//! `Builder` with `enable_all()`; current-thread or multi-thread flavor):
//! in `Cargo.toml`, `tokio = { version = "1", features = ["rt", "macros"] }`
//! (`rt-multi-thread` for the multi-thread flavor). A verb's future used
//! outside a runtime panics or returns an error (`futures::executor::block_on`
//! is not enough).
//!
//! Code without a runtime uses [`blocking`]: the same verbs and handles
//! without `async` (`cmd.blocking().output()`, [`blocking::Group`]), on an
//! internal runtime pkit creates once; such a program never names tokio.
//!
//! ```
//! let hello = pkit::Command::new("echo").arg("hello").blocking().run()?;
//! assert_eq!(hello, "hello");
//! # Ok::<(), pkit::Error>(())
//! ```
//!
//! # The parts
//!
//! - [`Command`] is plain data with four verbs: [`output`](Command::output),
//!   [`run`](Command::run), [`exit_code`](Command::exit_code),
//!   [`probe`](Command::probe).
//! - [`Group`] is a shared container for processes that must die together.
//! - [`Command::pty`] runs a program on a pseudo-terminal of its own, typed
//!   into through [`Pty`]; see [`pty`](mod@pty).
//! - [`host_containment`] says what this host offers, without spawning.
//! - If this process dies without tearing its groups down (SIGKILL, a
//!   crash), its owner-death guard, a small process started with the first
//!   group, kills them: see [`GroupBuilder::owner_death_guard`] and
//!   [`Group::guarded`].
//! - The mechanism can be forced with
//!   `PKIT_MECHANISM=auto|cgroup|pgroup|portable` or
//!   [`GroupBuilder::mechanism`]; forcing what is impossible is an error.
//!   `PKIT_CLONE3=off` keeps the cgroup mechanism but places children with
//!   its second rung (each joins its cgroup just before `exec`), as on a
//!   host that refuses `clone3`; [`Group::placement`] reports the rung in
//!   force (another value than `on`/`off` is ignored, with a warning).
//!
//! ## Logging
//!
//! pkit emits [`tracing`](https://docs.rs/tracing) events with target
//! `pkit`: a process started and finished, a timeout, a cancellation, a
//! group closed, dropped or shut down, a retry, a supervisor's restarts,
//! failed readiness checks, storm pauses and end. Ordinary lifecycle is
//! at Debug; anomalies — a timeout, a tree still killed after its grace, a
//! failed readiness check, a crash storm, a supervised command that cannot
//! start — at Warn. Fields: `program`,
//! `name` (the command's [`log_name`](Command::log_name), else the
//! program; a group's events carry it when the group was made for one
//! command's run — a pipeline's, its first stage's — else the group's
//! [`name`](GroupBuilder::name) if it has one), `pid`, `mechanism`, `outcome`, durations in milliseconds,
//! counts. A timeout's, a kill after the grace's and a cancellation's
//! events carry the program, the main process's pid (a pipeline's: its
//! first stage's) and the mechanism, as a start's and an end's do; a
//! retry's carries the program (no process runs during its pause). Events
//! never contain arguments, environment values, working directories or
//! output: the functions that emit them cannot be given those.
//!
//! The `process finished` event is emitted where the exit is collected: by
//! a verb, or by [`RunningProcess::wait`]. A started process that nobody
//! waits for — its handle dropped, or killed with its group — has none:
//! its end shows in its group's events (closed, dropped, shut down).
//!
//! Without a subscriber the events cost nothing. To see them, install one
//! in your application, for example with the `tracing-subscriber` crate
//! (feature `env-filter`) and run it with `RUST_LOG=pkit=debug`:
//!
//! ```text
//! tracing_subscriber::fmt()
//!     .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
//!     .init();
//! ```

#![warn(missing_docs)]
#![warn(clippy::missing_errors_doc)]

mod after_exit;
mod batch;
pub mod blocking;
mod cancel;
mod child;
mod child_env;
mod child_stdin;
mod client;
mod command;
mod command_output;
mod error;
mod events;
mod future;
mod group;
mod group_builder;
mod group_signal;
mod group_start;
mod habits;
mod inert;
#[cfg(feature = "json")]
mod json;
mod launch;
mod launch_prepare;
mod launch_spec;
mod live;
mod log;
mod more_verbs;
mod output;
mod output_builder;
mod pipe;
mod pipe_check;
mod pipe_fold;
mod pipe_signal;
mod pipe_started;
mod plans;
mod probe;
mod process;
pub mod pty;
mod pty_open;
mod pump;
mod raw_output;
mod redact;
mod retry;
mod run_options;
mod runner;
#[cfg(feature = "testing")]
mod scripted_child;
mod shutdown;
mod spawn_options;
mod spec;
mod split_lines;
mod stats;
mod supervise;
mod sys;
#[cfg(feature = "testing")]
pub mod testing;
mod timing;
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub use sys::fault;
#[doc(hidden)]
pub use sys::RELAYED_BY_PKIT_RUN;
mod verbs;
mod vt;
/// Entry points for pkit's fuzz targets (hidden `fuzzing` feature).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::pump::fuzzing::*;
    #[cfg(feature = "testing")]
    pub use crate::testing::cassette_fuzzing::*;
}
mod watch;

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use batch::{output_all, output_unordered, Completions};
pub use cancel::CancelToken;
pub use client::CliClient;
pub use command::{
    Command, Stdio, DEFAULT_BUFFER_LINES, DEFAULT_MAX_LINE_BYTES, DEFAULT_START_CAPTURE_BYTES,
    DEFAULT_TIMEOUT_GRACE,
};
pub use error::{ArgList, Error, ErrorKind, NotReadyReason, Result};
pub use events::{Events, ProcessEvent};
pub use future::BoxFuture;
pub use group::{Group, ShutdownReport};
pub use group_builder::GroupBuilder;
pub use inert::escape_controls;
#[cfg(feature = "json")]
pub use json::JsonLines;
pub use launch_spec::Launch;
pub use live::{wait_all, wait_any};
pub use output::{Outcome, Output};
pub use output_builder::OutputBuilder;
pub use pipe::Pipe;
pub use pipe_started::RunningPipe;
pub use process::{ChildStdin, RunningProcess};
pub use pty::{Pty, PtyMaster};
pub use pump::{
    CapturePolicy, Decoder, DecoderFactory, Line, Lines, Overflow, StreamKind, Utf8Decoder,
};
pub use raw_output::ChildOutput;
pub use retry::is_transient;
pub use runner::{Runner, SystemRunner};
pub use spawn_options::builders::which;
pub use spawn_options::detached::Detached;
pub use spawn_options::{ChildStep, FileMode, IoClass, Resource};
pub use split_lines::StreamLines;
pub use stats::{Profile, SampleStats, MIN_SAMPLE_INTERVAL};
pub use supervise::{
    Restart, StopReason, SupervisionOutcome, Supervisor, SupervisorEvent, SupervisorHandle,
    DEFAULT_MAX_BACKOFF, EVENT_BUFFER,
};
pub use sys::{
    guard_pids, host_containment, read_environment_unlocked, release_spare_cgroups, CapSupport,
    GuardStatus, HostContainment, LimitInfo, Mechanism, MechanismChoice, Placement, ProcessInfo,
    Signal, Stats,
};
pub use vt::{strip_vt, VtStripper};
