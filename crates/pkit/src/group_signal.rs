//! Signalling a [`Group`]'s processes: from a synchronous caller
//! ([`Group::kill`], [`Group::signal`]), whose thread waits for a cgroup's
//! freeze, and from an async one ([`Group::kill_async`],
//! [`Group::signal_async`]), which awaits it.

use crate::error::{Error, Result};
use crate::group::Group;
use crate::sys::Signal;

impl Group {
    /// Kills every process in the group, grandchildren included, now
    /// (SIGKILL: `killpg`, or to each member of the frozen cgroup and of
    /// every cgroup below it, such as those a nested pkit makes). The
    /// group stays usable, and a suspended group stays suspended. It works
    /// with no file descriptor free too: a cgroup's members are then
    /// listed and killed by number one descriptor at a time, through the
    /// one pkit keeps in reserve, while the cgroup is frozen.
    ///
    /// # Blocking
    ///
    /// Under cgroup v2 the call waits for the kernel to confirm the
    /// cgroup's freeze before it signals the members, on this thread: up
    /// to 5 s when a member can't be frozen (one in uninterruptible sleep,
    /// such as a read from a hung NFS server or a process held in a cgroup
    /// v1 freezer); the members are then signalled anyway and the cgroup
    /// thawed. An async caller awaits [`kill_async`](Self::kill_async) instead, which
    /// does the same without holding its thread meanwhile. A process
    /// group's `killpg` never waits.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when the OS refuses the kill (writing `cgroup.kill`, or
    /// a `kill`/`killpg`, fails).
    pub fn kill(&self) -> Result<()> {
        self.scripted.signal(Signal::Kill.as_raw());
        self.container()
            .kill_keep_usable()
            .map_err(|e| Error::io("killing the group", e))
    }

    /// Sends `signal` to every process in the group, grandchildren and
    /// processes in sub-cgroups included. A cgroup is frozen while the
    /// signal is delivered to each member through a pidfd checked to name a
    /// member (so nobody forks an unsignalled child and no reused pid is
    /// ever signalled), but for [`Signal::Cont`], which needs no freeze
    /// (only a stopped process needs it, and a stopped one can't fork): it
    /// goes to each member at once; a process group gets `killpg`. Every member is
    /// tried; the first error is reported after. [`Signal::Kill`] is
    /// [`kill`](Self::kill): the group stays usable.
    ///
    /// A program of the group that uses pkit itself (`pkit run`, or this
    /// library) has groups of its own. A signal `pkit run` catches and
    /// relays (TERM, INT, HUP, QUIT, USR1, USR2, ALRM, WINCH, TSTP) reaches
    /// those through their owner alone: the owner gets it and relays it
    /// (`pkit run` sends TERM, USR1, USR2 and ALRM on to its program, not
    /// to the program's children) or ends its groups its own way, so their
    /// programs never get it twice. That is what `killpg` does anyway (the
    /// nested groups are process groups of their own); a cgroup leaves out
    /// the sub-cgroups named as pkit names its groups (`pkit-<owner
    /// pid>.<ns>.<start>-<n>`, optionally `-<name>`: the owner's pid, pid
    /// namespace and start time) whose owner lives in the cgroup just
    /// above (an owner in a pid namespace of its own is found there by
    /// that namespace and its pid in it). Every other signal (SIGKILL, SIGSTOP and SIGCONT, and those
    /// `pkit run` would not relay, such as SIGABRT, SIGURG or a real-time
    /// one) reaches every process of a cgroup, nested groups included, as
    /// do [`kill`](Self::kill), the SIGKILL after a grace and the teardown.
    /// A program that names a sub-cgroup so itself keeps what it moves
    /// there from the relayed signals only.
    /// An older pkit in another pid namespace names its groups with a pid
    /// alone, which this process can't match: their programs get the
    /// signal directly too. On Windows (a Job
    /// Object) [`Signal::Term`] and [`Signal::Int`] are a `CTRL_BREAK_EVENT`
    /// to each started process's console group (see [`shutdown`](Self::shutdown));
    /// [`Signal::Stop`] suspends each process in the job (as
    /// [`suspend`](Self::suspend) does, but as a hold of its own: starts go
    /// on, and a second stop reaches the processes started since) and
    /// [`Signal::Cont`] resumes exactly those the stops hold. The two holds
    /// are apart, as SIGSTOP and a cgroup's freeze are: a continue leaves
    /// a suspended group suspended, and [`resume`](Self::resume) lifts no
    /// stop. Any other signal, and a break nobody can be sent, are
    /// [`Error::Unsupported`].
    ///
    /// A closed group has nothing left to signal: a signal to it succeeds,
    /// on every mechanism (but for a signal Windows can't send at all,
    /// which is [`Error::Unsupported`] closed or not).
    ///
    /// # Blocking
    ///
    /// Under cgroup v2 the call waits for the kernel to confirm the
    /// cgroup's freeze before it signals the members (for every signal
    /// but [`Signal::Cont`], which freezes nothing), on this thread: up
    /// to 5 s when a member can't be frozen (one in uninterruptible sleep,
    /// such as a read from a hung NFS server or a process held in a cgroup
    /// v1 freezer); the members are then signalled anyway and the cgroup
    /// thawed. An async caller awaits
    /// [`signal_async`](Self::signal_async) instead, which does the same
    /// without holding its thread meanwhile. A process group's `killpg`
    /// never waits.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`](crate::Error::Unsupported) for a signal the mechanism can't send
    /// (Windows: any but Kill, Term, Int, Stop and Cont, or a break nobody can
    /// receive); [`Error::Io`](crate::Error::Io)
    /// when the OS refuses the signal (the first error, once every member was tried).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        self.scripted.signal(signal.as_raw());
        self.container()
            .signal(signal.as_raw())
            .map_err(|e| self.refused("signal", format!("sending {signal} to the group"), e))
    }

    /// [`kill`](Self::kill), for an async caller: the same SIGKILL to
    /// every process in the group, grandchildren included, the group left
    /// usable (and a suspended group suspended), with the same errors.
    /// Under cgroup v2 the cgroup's freeze before the pass is awaited (the
    /// kernel's `frozen 1` in `cgroup.events`), not waited for on the
    /// thread that polls this: a current-thread runtime runs its other
    /// tasks meanwhile, up to the same 5 s when a member can't be frozen
    /// (one in uninterruptible sleep), after which the members are
    /// killed anyway and the cgroup thawed. A process group's `killpg`
    /// and a Job Object's termination never wait. A closed group has
    /// nothing left to kill: the kill succeeds.
    ///
    /// Dropped while it waits for the freeze, nothing was sent, and the
    /// freeze it made is undone.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use pkit::{Command, Group, Outcome};
    ///
    /// let group = Group::new()?;
    /// let mut server = group.start(&Command::new("sh").args(["-c", "sleep 300 & wait"]))?;
    /// group.kill_async().await?; // the shell and its sleep
    /// assert_eq!(server.wait().await?.outcome(), Outcome::Signalled(9));
    /// # Ok(()) }
    /// # #[cfg(unix)]
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`kill`](Self::kill)'s: [`Error::Io`](crate::Error::Io) when the
    /// OS refuses the kill.
    pub async fn kill_async(&self) -> Result<()> {
        self.kill_async_then(|| ()).await
    }

    /// [`kill_async`](Self::kill_async), `before` run just ahead of the
    /// kill (after the freeze's wait): not at all if the call is dropped
    /// in that wait ([`RunningPipe::kill_async`](crate::RunningPipe::kill_async)
    /// marks its chain stopped there).
    pub(crate) async fn kill_async_then(&self, before: impl FnOnce()) -> Result<()> {
        self.scripted.signal(Signal::Kill.as_raw());
        self.container()
            .signal_async_then(Signal::Kill.as_raw(), before)
            .await
            .map_err(|e| Error::io("killing the group", e))
    }

    /// [`signal`](Self::signal), for an async caller: the same signal to
    /// the same processes (see there for who gets it, and what
    /// [`Signal::Kill`] and a closed group do), with the same errors.
    /// Under cgroup v2 the cgroup's freeze around the pass is awaited (the
    /// kernel's `frozen 1` in `cgroup.events`), not waited for on the
    /// thread that polls this: a current-thread runtime runs its other
    /// tasks meanwhile, up to the same 5 s when a member can't be frozen
    /// (one in uninterruptible sleep), after which the members are
    /// signalled anyway and the cgroup thawed. A process group's `killpg`
    /// and a Job Object's signals never wait.
    ///
    /// Dropped while it waits for the freeze, nothing was sent, and the
    /// freeze it made is undone.
    ///
    /// ```
    /// # async fn demo() -> pkit::Result<()> {
    /// use pkit::{Command, Group, Outcome, Signal};
    ///
    /// let group = Group::new()?;
    /// let mut worker = group.start(&Command::new("sleep").arg("300"))?;
    /// group.signal_async(Signal::Term).await?;
    /// assert_eq!(worker.wait().await?.outcome(), Outcome::Signalled(15));
    /// # Ok(()) }
    /// # #[cfg(unix)]
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`signal`](Self::signal)'s: [`Error::Unsupported`](crate::Error::Unsupported)
    /// for a signal the mechanism can't send, [`Error::Io`](crate::Error::Io)
    /// when the OS refuses it.
    pub async fn signal_async(&self, signal: Signal) -> Result<()> {
        self.signal_async_then(signal, || ()).await
    }

    /// [`signal_async`](Self::signal_async), `before` run just ahead of
    /// the signal (after the freeze's wait): not at all if the call is
    /// dropped in that wait ([`RunningPipe::signal_async`](crate::RunningPipe::signal_async)
    /// records the caller's signal there).
    pub(crate) async fn signal_async_then(
        &self,
        signal: Signal,
        before: impl FnOnce(),
    ) -> Result<()> {
        self.scripted.signal(signal.as_raw());
        self.container()
            .signal_async_then(signal.as_raw(), before)
            .await
            .map_err(|e| self.refused("signal", format!("sending {signal} to the group"), e))
    }
}
