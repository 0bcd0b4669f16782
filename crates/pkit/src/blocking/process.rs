//! The blocking handles: [`Group`], [`RunningProcess`].

use std::fmt;
use std::time::Duration;

use super::streams::{ChildOutput, ChildStdin, Events, Lines, StreamLines};
use super::{block_on, enter, enter_for_drop};
use crate::command::Command;
use crate::error::Result;
use crate::group::ShutdownReport;
use crate::group_builder::GroupBuilder;
use crate::output::Output;
use crate::pump::Line;
use crate::stats::Profile;
use crate::sys::{LimitInfo, Mechanism, Placement, ProcessInfo, Signal, Stats};

/// A [`Group`](crate::Group) for blocking code: the same container, the
/// same kill-on-drop, methods that block instead of returning futures.
pub struct Group {
    inner: Option<crate::Group>,
}

impl Group {
    /// A group with the default options ([`crate::Group::new`]).
    #[track_caller]
    pub fn new() -> Result<Group> {
        enter("Group::new", crate::Group::new).map(Group::from)
    }

    /// A group built from `builder` (memory limits, mechanism...).
    #[track_caller]
    pub fn with(builder: GroupBuilder) -> Result<Group> {
        enter("Group::with", || builder.build()).map(Group::from)
    }

    fn get(&self) -> &crate::Group {
        self.inner.as_ref().expect("present until drop")
    }

    /// The async group this one wraps (for its read-only accessors).
    pub fn as_async(&self) -> &crate::Group {
        self.get()
    }

    /// The mechanism in force.
    pub fn mechanism(&self) -> Mechanism {
        self.get().mechanism()
    }

    /// How children are placed ([`crate::Group::placement`]).
    pub fn placement(&self) -> Placement {
        self.get().placement()
    }

    /// The name given with [`GroupBuilder::name`], if any.
    pub fn name(&self) -> Option<&str> {
        self.get().name()
    }

    /// One line for humans ([`crate::Group::description`]).
    pub fn description(&self) -> String {
        self.get().description()
    }

    /// Whether the owner-death guard covers this group now
    /// ([`crate::Group::guarded`]).
    pub fn guarded(&self) -> bool {
        self.get().guarded()
    }

    /// The resource caps in force and what enforces each
    /// ([`crate::Group::limits`]).
    pub fn limits(&self) -> Vec<LimitInfo> {
        self.get().limits()
    }

    /// Whether the group is suspended ([`crate::Group::is_suspended`]).
    pub fn is_suspended(&self) -> bool {
        self.get().is_suspended()
    }

    /// Snapshots of the group's [`Stats`] every `every`, as an
    /// [`Iterator`] that ends once the group is empty (the last snapshot
    /// shows 0 active processes); see [`crate::Group::sample_stats`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let group = pkit::blocking::Group::new()?;
    /// let _p = group.start(&pkit::Command::new("sleep").arg("0.2"))?;
    /// let last = group.sample_stats(Duration::from_millis(20)).last().expect("a snapshot");
    /// assert_eq!(last.active_processes(), 0);
    /// # Ok::<(), pkit::Error>(())
    /// ```
    #[track_caller]
    pub fn sample_stats(&self, every: Duration) -> SampleStats<'_> {
        let inner = enter("Group::sample_stats", || self.get().sample_stats(every));
        SampleStats { inner: Some(inner) }
    }

    /// Starts `cmd` in the group ([`crate::Group::start`]).
    #[track_caller]
    pub fn start(&self, cmd: &Command) -> Result<RunningProcess> {
        enter("Group::start", || self.get().start(cmd)).map(RunningProcess::from_async)
    }

    /// Runs `cmd` to its end in this group and tears the group down
    /// ([`crate::Group::output`]).
    #[track_caller]
    pub fn output(mut self, cmd: &Command) -> Result<Output> {
        let group = self.inner.take().expect("present until drop");
        block_on("Group::output", group.output(cmd))
    }

    /// SIGKILL to every process of the group ([`crate::Group::kill`]).
    pub fn kill(&self) -> Result<()> {
        self.get().kill()
    }

    /// SIGTERM, up to `grace`, then SIGKILL ([`crate::Group::shutdown`]).
    #[track_caller]
    pub fn shutdown(&self, grace: Duration) -> Result<ShutdownReport> {
        block_on("Group::shutdown", self.get().shutdown(grace))
    }

    /// Kills everything and releases the container ([`crate::Group::close`]).
    #[track_caller]
    pub fn close(&self) -> Result<()> {
        block_on("Group::close", self.get().close())
    }

    /// Sends `signal` to every process ([`crate::Group::signal`]).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        self.get().signal(signal)
    }

    /// Freezes the group ([`crate::Group::suspend`]).
    #[track_caller]
    pub fn suspend(&self) -> Result<()> {
        block_on("Group::suspend", self.get().suspend())
    }

    /// Thaws the group ([`crate::Group::resume`]).
    #[track_caller]
    pub fn resume(&self) -> Result<()> {
        block_on("Group::resume", self.get().resume())
    }

    /// Moves a running process into the group ([`crate::Group::adopt`]).
    pub fn adopt(&self, pid: u32) -> Result<()> {
        self.get().adopt(pid)
    }

    /// The live processes ([`crate::Group::processes`]).
    pub fn processes(&self) -> Result<Vec<ProcessInfo>> {
        self.get().processes()
    }

    /// Resource figures ([`crate::Group::stats`]).
    pub fn stats(&self) -> Result<Stats> {
        self.get().stats()
    }

    /// The pids of the live processes ([`crate::Group::pids`]).
    pub fn pids(&self) -> Result<Vec<u32>> {
        self.get().pids()
    }
}

impl From<crate::Group> for Group {
    fn from(group: crate::Group) -> Group {
        Group { inner: Some(group) }
    }
}

impl Drop for Group {
    /// Kills the group's tree, as the async group does.
    fn drop(&mut self) {
        enter_for_drop(self.inner.take());
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::Group").field(&self.inner).finish()
    }
}

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
    #[track_caller]
    pub fn profile(&self, interval: Duration) -> Result<Profile> {
        block_on("RunningProcess::profile", self.get().profile(interval))
    }

    /// Waits for it to exit and returns everything about the run
    /// ([`crate::RunningProcess::wait`]).
    #[track_caller]
    pub fn wait(&mut self) -> Result<Output> {
        block_on("RunningProcess::wait", self.get_mut().wait())
    }

    /// Waits until a line satisfies `pred`
    /// ([`crate::RunningProcess::wait_for_line`]).
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
    #[track_caller]
    pub fn wait_for_port(&self, addr: std::net::SocketAddr, timeout: Duration) -> Result<()> {
        block_on(
            "RunningProcess::wait_for_port",
            self.get().wait_for_port(addr, timeout),
        )
    }

    /// Waits until `check` returns true, calling it every 25 ms
    /// ([`crate::RunningProcess::wait_for`], with a plain closure).
    #[track_caller]
    pub fn wait_for(&self, mut check: impl FnMut() -> bool, timeout: Duration) -> Result<()> {
        block_on(
            "RunningProcess::wait_for",
            self.get().wait_for(|| std::future::ready(check()), timeout),
        )
    }

    /// Its merged stdout and stderr lines, as an [`Iterator`] (needs
    /// [`Command::stream_lines`]; see [`crate::RunningProcess::lines`]).
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
        let inner = enter("RunningProcess::events", || self.get_mut().events());
        Events { inner: Some(inner) }
    }

    /// Its stdout lines and its stderr lines as two iterators
    /// ([`crate::RunningProcess::split_lines`]; read both, from two
    /// threads, or drop the one you don't want).
    #[track_caller]
    pub fn split_lines(&mut self) -> (StreamLines, StreamLines) {
        let (out, err) = enter("RunningProcess::split_lines", || {
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

    /// The terminal of a [`Command::pty`] session, to type into and
    /// resize ([`crate::RunningProcess::pty`]); `None` without one.
    pub fn pty(&self) -> Option<super::Pty> {
        self.get().pty().map(|inner| super::Pty { inner })
    }

    /// The whole master side of a [`Command::pty_raw`] session, as one
    /// [`std::io::Read`] + [`std::io::Write`]
    /// ([`crate::RunningProcess::take_pty_master`]). Once: later calls,
    /// and a process started without `pty_raw`, give `None`.
    pub fn take_pty_master(&mut self) -> Option<super::PtyMaster> {
        self.get_mut().take_pty_master().map(super::PtyMaster::new)
    }

    /// Takes its stdin (needs [`Command::stdin_piped`]), as a
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
    pub fn kill(&self) -> Result<()> {
        self.get().kill()
    }

    /// SIGKILL to this process and everything it spawned
    /// ([`crate::RunningProcess::kill_tree`]).
    pub fn kill_tree(&self) -> Result<()> {
        self.get().kill_tree()
    }

    /// Whether it has exited.
    pub fn has_exited(&self) -> bool {
        self.get().has_exited()
    }

    /// How it ended, if it has exited ([`crate::RunningProcess::try_wait`]).
    pub fn try_wait(&self) -> Result<Option<crate::Outcome>> {
        self.get().try_wait()
    }

    /// Whether it is still running ([`crate::RunningProcess::is_running`]).
    pub fn is_running(&self) -> bool {
        self.get().is_running()
    }

    /// `signal` to its subtree ([`crate::RunningProcess::signal`]).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        self.get().signal(signal)
    }

    /// SIGTERM, `grace`, SIGKILL to its subtree
    /// ([`crate::RunningProcess::shutdown`]).
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
#[track_caller]
pub fn wait_any(procs: &mut [RunningProcess]) -> Result<(usize, Result<Output>)> {
    if procs.is_empty() {
        return Err(crate::Error::InvalidInput(
            "wait_any: no process to wait for".into(),
        ));
    }
    let first = block_on(
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

/// A group's [`Stats`] sampled at an interval, as an [`Iterator`]: each
/// `next` blocks until the next snapshot; `None` once the group is empty.
/// See [`Group::sample_stats`].
pub struct SampleStats<'a> {
    inner: Option<crate::SampleStats<'a>>,
}

impl Iterator for SampleStats<'_> {
    type Item = Stats;

    #[track_caller]
    fn next(&mut self) -> Option<Stats> {
        let inner = self.inner.as_mut()?;
        block_on("SampleStats::next", inner.next())
    }
}

impl Drop for SampleStats<'_> {
    fn drop(&mut self) {
        enter_for_drop(self.inner.take());
    }
}

impl fmt::Debug for SampleStats<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::SampleStats")
            .finish_non_exhaustive()
    }
}
