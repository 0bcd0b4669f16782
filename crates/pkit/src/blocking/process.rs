//! The blocking [`RunningProcess`], and waiting for several.

use std::fmt;
use std::time::Duration;

use super::streams::{ChildOutput, ChildStdin, Events, Lines, StreamLines};
use super::{block_on, block_on_made, enter_for_drop, enter_made};
use crate::error::Result;
use crate::output::Output;
use crate::pump::Line;
use crate::stats::Profile;
use crate::sys::{Mechanism, Signal};

/// A live process for blocking code ([`crate::RunningProcess`]).
pub struct RunningProcess {
    inner: Option<crate::RunningProcess>,
}

impl RunningProcess {
    pub(crate) fn from_async(p: crate::RunningProcess) -> RunningProcess {
        RunningProcess { inner: Some(p) }
    }

    fn get(&self) -> &crate::RunningProcess {
        self.inner.as_ref().expect("present until drop")
    }

    fn get_mut(&mut self) -> &mut crate::RunningProcess {
        self.inner.as_mut().expect("present until drop")
    }

    /// The async handle this one wraps (for its read-only accessors).
    pub fn as_async(&self) -> &crate::RunningProcess {
        self.get()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.get().pid()
    }

    /// The program's name, as given.
    pub fn program(&self) -> &str {
        self.get().program()
    }

    /// The mechanism of its group.
    pub fn mechanism(&self) -> Mechanism {
        self.get().mechanism()
    }

    /// The CPU time it has used so far
    /// ([`crate::RunningProcess::cpu_time`]).
    pub fn cpu_time(&self) -> Option<Duration> {
        self.get().cpu_time()
    }

    /// Its peak resident memory so far
    /// ([`crate::RunningProcess::peak_memory_bytes`]).
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        self.get().peak_memory_bytes()
    }

    /// Samples it every `interval` until it exits and returns its profile
    /// ([`crate::RunningProcess::profile`]).
    ///
    /// # Errors
    ///
    /// Those of [`RunningProcess::profile`](crate::RunningProcess::profile).
    #[track_caller]
    pub fn profile(&self, interval: Duration) -> Result<Profile> {
        block_on("RunningProcess::profile", self.get().profile(interval))
    }

    /// Waits for it to exit and returns everything about the run
    /// ([`crate::RunningProcess::wait`]).
    ///
    /// # Errors
    ///
    /// Those of [`RunningProcess::wait`](crate::RunningProcess::wait).
    #[track_caller]
    pub fn wait(&mut self) -> Result<Output> {
        block_on("RunningProcess::wait", self.get_mut().wait())
    }

    /// Waits until a line satisfies `pred`
    /// ([`crate::RunningProcess::wait_for_line`]).
    ///
    /// # Errors
    ///
    /// Those of [`RunningProcess::wait_for_line`](crate::RunningProcess::wait_for_line).
    #[track_caller]
    pub fn wait_for_line(
        &mut self,
        pred: impl FnMut(&Line) -> bool,
        timeout: Duration,
    ) -> Result<Line> {
        block_on(
            "RunningProcess::wait_for_line",
            self.get_mut().wait_for_line(pred, timeout),
        )
    }

    /// Waits until the process has written a partial line (a prompt,
    /// with no line ending) that `pred` accepts, and returns it
    /// ([`crate::RunningProcess::wait_for_prompt`]).
    ///
    /// ```
    /// use std::io::Write;
    /// use std::time::Duration;
    /// use pkit::Command;
    ///
    /// let mut p = Command::new("sh")
    ///     .args(["-c", "printf 'Password: '; read pw; echo ${#pw}"])
    ///     .stdin_piped()
    ///     .stream_lines()
    ///     .blocking()
    ///     .start()?;
    /// assert_eq!(p.wait_for_prompt(|t| t.starts_with("Password"), Duration::from_secs(10))?, "Password: ");
    /// p.take_stdin().expect("piped").write_all(b"secret\n")?;
    /// let line = p.wait_for_line(|_| true, Duration::from_secs(10))?;
    /// assert_eq!(line.text, "Password: 6");
    /// # Ok::<(), pkit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`RunningProcess::wait_for_prompt`](crate::RunningProcess::wait_for_prompt).
    #[track_caller]
    pub fn wait_for_prompt(
        &mut self,
        pred: impl FnMut(&str) -> bool,
        timeout: Duration,
    ) -> Result<String> {
        block_on(
            "RunningProcess::wait_for_prompt",
            self.get_mut().wait_for_prompt(pred, timeout),
        )
    }

    /// Waits until a TCP connection to `addr` succeeds
    /// ([`crate::RunningProcess::wait_for_port`]).
    ///
    /// # Errors
    ///
    /// Those of [`RunningProcess::wait_for_port`](crate::RunningProcess::wait_for_port).
    #[track_caller]
    pub fn wait_for_port(&self, addr: std::net::SocketAddr, timeout: Duration) -> Result<()> {
        block_on(
            "RunningProcess::wait_for_port",
            self.get().wait_for_port(addr, timeout),
        )
    }

    /// Waits until `check` returns true, calling it every 25 ms
    /// ([`crate::RunningProcess::wait_for`], with a plain closure).
    ///
    /// # Errors
    ///
    /// Those of [`RunningProcess::wait_for`](crate::RunningProcess::wait_for).
    #[track_caller]
    pub fn wait_for(&self, mut check: impl FnMut() -> bool, timeout: Duration) -> Result<()> {
        block_on(
            "RunningProcess::wait_for",
            self.get().wait_for(|| std::future::ready(check()), timeout),
        )
    }

    /// Its merged stdout and stderr lines, as an [`Iterator`] (needs
    /// [`Command::stream_lines`](crate::Command::stream_lines); see [`crate::RunningProcess::lines`]).
    pub fn lines(&mut self) -> Lines {
        Lines {
            inner: Some(self.get_mut().lines()),
        }
    }

    /// Its life as an [`Iterator`] of
    /// [`ProcessEvent`](crate::ProcessEvent)s: started, each line, exited
    /// ([`crate::RunningProcess::events`]).
    ///
    /// ```
    /// use pkit::{Command, Outcome, ProcessEvent};
    ///
    /// let mut p = Command::new("sh").args(["-c", "echo hi"]).stream_lines().blocking().start()?;
    /// let events: Vec<ProcessEvent> = p.events().collect();
    /// assert!(matches!(events.last(), Some(ProcessEvent::Exited { outcome: Outcome::Exited(0), .. })));
    /// # Ok::<(), pkit::Error>(())
    /// ```
    #[track_caller]
    pub fn events(&mut self) -> Events {
        let inner = enter_made("RunningProcess::events", || self.get_mut().events());
        Events { inner: Some(inner) }
    }

    /// Its stdout lines and its stderr lines as two iterators
    /// ([`crate::RunningProcess::split_lines`]; read both, from two
    /// threads, or drop the one you don't want).
    #[track_caller]
    pub fn split_lines(&mut self) -> (StreamLines, StreamLines) {
        let (out, err) = enter_made("RunningProcess::split_lines", || {
            self.get_mut().split_lines()
        });
        (
            StreamLines { inner: Some(out) },
            StreamLines { inner: Some(err) },
        )
    }

    /// Lines dropped while nobody read the stream.
    pub fn dropped_lines(&self) -> u64 {
        self.get().dropped_lines()
    }

    /// The terminal of a [`Command::pty`](crate::Command::pty) session, to type into and
    /// resize ([`crate::RunningProcess::pty`]); `None` without one.
    pub fn pty(&self) -> Option<super::Pty> {
        self.get().pty().map(|inner| super::Pty { inner })
    }

    /// The whole master side of a [`Command::pty_raw`](crate::Command::pty_raw) session, as one
    /// [`std::io::Read`] + [`std::io::Write`]
    /// ([`crate::RunningProcess::take_pty_master`]). Once: later calls,
    /// and a process started without `pty_raw`, give `None`.
    pub fn take_pty_master(&mut self) -> Option<super::PtyMaster> {
        self.get_mut().take_pty_master().map(super::PtyMaster::new)
    }

    /// Takes its stdin (needs [`Command::stdin_piped`](crate::Command::stdin_piped)), as a
    /// [`std::io::Write`]; dropping it closes the pipe.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.get_mut()
            .take_stdin()
            .map(|s| ChildStdin { inner: Some(s) })
    }

    /// Takes its stdout as a [`std::io::Read`], when the command set
    /// `stdout(Stdio::Raw)` ([`crate::RunningProcess::take_stdout`]).
    ///
    /// ```
    /// use std::io::Read;
    /// use pkit::{Command, Stdio};
    ///
    /// let mut p = Command::new("printf").arg("raw").stdout(Stdio::Raw).blocking().start()?;
    /// let mut text = String::new();
    /// p.take_stdout().expect("raw stdout").read_to_string(&mut text)?;
    /// assert_eq!(text, "raw");
    /// # Ok::<(), pkit::Error>(())
    /// ```
    pub fn take_stdout(&mut self) -> Option<ChildOutput> {
        let inner = self.get_mut().take_stdout()?;
        Some(ChildOutput { inner: Some(inner) })
    }

    /// Takes its stderr as a [`std::io::Read`], when the command set
    /// `stderr(Stdio::Raw)` ([`crate::RunningProcess::take_stderr`]).
    pub fn take_stderr(&mut self) -> Option<ChildOutput> {
        let inner = self.get_mut().take_stderr()?;
        Some(ChildOutput { inner: Some(inner) })
    }

    /// SIGKILL to this process ([`crate::RunningProcess::kill`]).
    ///
    /// # Errors
    ///
    /// Those of [`RunningProcess::kill`](crate::RunningProcess::kill).
    pub fn kill(&self) -> Result<()> {
        self.get().kill()
    }

    /// SIGKILL to this process and everything it spawned
    /// ([`crate::RunningProcess::kill_tree`]).
    ///
    /// # Errors
    ///
    /// Those of [`RunningProcess::kill_tree`](crate::RunningProcess::kill_tree).
    pub fn kill_tree(&self) -> Result<()> {
        self.get().kill_tree()
    }

    /// Whether it has exited.
    pub fn has_exited(&self) -> bool {
        self.get().has_exited()
    }

    /// How it ended, if it has exited ([`crate::RunningProcess::try_wait`]).
    ///
    /// # Errors
    ///
    /// Those of [`RunningProcess::try_wait`](crate::RunningProcess::try_wait).
    pub fn try_wait(&self) -> Result<Option<crate::Outcome>> {
        self.get().try_wait()
    }

    /// Whether it is still running ([`crate::RunningProcess::is_running`]).
    pub fn is_running(&self) -> bool {
        self.get().is_running()
    }

    /// `signal` to its subtree ([`crate::RunningProcess::signal`]).
    ///
    /// # Errors
    ///
    /// Those of [`RunningProcess::signal`](crate::RunningProcess::signal).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        self.get().signal(signal)
    }

    /// SIGTERM, `grace`, SIGKILL to its subtree
    /// ([`crate::RunningProcess::shutdown`]).
    ///
    /// # Errors
    ///
    /// Those of [`RunningProcess::shutdown`](crate::RunningProcess::shutdown).
    #[track_caller]
    pub fn shutdown(&self, grace: Duration) -> Result<bool> {
        block_on("RunningProcess::shutdown", self.get().shutdown(grace))
    }

    /// Kill its subtree when this handle drops
    /// ([`crate::RunningProcess::set_kill_on_drop`]).
    pub fn set_kill_on_drop(&mut self, on: bool) {
        self.get_mut().set_kill_on_drop(on);
    }
}

/// [`crate::wait_any`], blocking.
///
/// # Errors
///
/// Those of [`pkit::wait_any`](crate::wait_any).
#[track_caller]
pub fn wait_any(procs: &mut [RunningProcess]) -> Result<(usize, Result<Output>)> {
    if procs.is_empty() {
        return Err(crate::Error::InvalidInput(
            "wait_any: no process to wait for".into(),
        ));
    }
    let first = block_on_made(
        "wait_any",
        crate::live::first_exit(procs.iter().map(|p| p.get())),
    );
    Ok((first, procs[first].wait()))
}

/// [`crate::wait_all`], blocking.
#[track_caller]
pub fn wait_all(procs: &mut [RunningProcess]) -> Vec<Result<Output>> {
    procs.iter_mut().map(|p| p.wait()).collect()
}

impl Drop for RunningProcess {
    /// As [`crate::RunningProcess`]'s drop (a process from
    /// [`Verbs::start`](super::Verbs::start) takes its tree with it).
    fn drop(&mut self) {
        enter_for_drop(self.inner.take());
    }
}

impl fmt::Debug for RunningProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::RunningProcess")
            .field(&self.inner)
            .finish()
    }
}
