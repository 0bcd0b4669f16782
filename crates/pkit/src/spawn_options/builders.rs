//! The builders of the spawn options on [`Command`], and where a program
//! would run from.

use crate::sys::RawFd;
use std::ffi::OsStr;
use std::path::PathBuf;

use super::{FileMode, IoClass, Resource};
use crate::command::Command;
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;

/// Spawn options, applied by the child to itself before exec (each says
/// where it is honoured).
impl Command {
    /// Runs the child as user `uid` (`setresuid`: real, effective and saved
    /// ids), after its groups and group id are set. Unless
    /// [`groups`](Self::groups) is given too, the child's supplementary
    /// groups are cleared (where the owner may), so it does not keep the
    /// owner's. Needs privilege (root or `CAP_SETUID`) for another user; a
    /// refusal is [`Error::ChildSetup`] with [`ChildStep::Uid`](crate::ChildStep::Uid). The working
    /// directory is entered after the change, with the new user's rights.
    ///
    /// A program named without a `/` is looked up on `PATH` with the
    /// rights the child will have (this user id, [`gid`](Self::gid) and
    /// [`groups`](Self::groups)), as `execvp` in the child would judge: a
    /// file only the owner may execute is skipped for the next directory,
    /// and when none is left the start fails with [`Error::NotExecutable`].
    /// On Linux the lookup runs on a short-lived thread holding those ids
    /// (an owner that may not take them looks with its own rights; the
    /// child's setup is then refused anyway). On macOS and the BSDs, whose
    /// ids belong to the whole process, the owner's rights judge.
    ///
    /// On Linux the kernel marks the owner not dumpable (`PR_GET_DUMPABLE`)
    /// while that thread, or the child before its exec, holds other ids in
    /// the owner's memory; the flag is put back once the last such start
    /// under way has ended. The flag is one bit: a
    /// `prctl(PR_SET_DUMPABLE, 0)` the owner makes on another thread
    /// meanwhile can't be told from the kernel's mark and is undone with
    /// it. Make it before such starts, or again after.
    ///
    /// Unix: Linux (both mechanisms) and the
    /// portable backend (macOS and FreeBSD), see the module docs' **Platforms**.
    pub fn uid(mut self, uid: u32) -> Command {
        self.spec.spawn.uid = Some(uid);
        self
    }

    /// Runs the child with group id `gid` (`setresgid`), set after the
    /// supplementary groups and before the user id; a `PATH` lookup is
    /// judged with it (see [`uid`](Self::uid)). Unix: Linux (both mechanisms) and the
    /// portable backend (macOS and FreeBSD), see the module docs' **Platforms**.
    pub fn gid(mut self, gid: u32) -> Command {
        self.spec.spawn.gid = Some(gid);
        self
    }

    /// Sets the child's supplementary groups (`setgroups`; an empty list
    /// clears them), the first step of a privilege drop (groups, then
    /// [`gid`](Self::gid), then [`uid`](Self::uid)); a `PATH` lookup is
    /// judged with them (see [`uid`](Self::uid)). Unix: Linux (both mechanisms) and the
    /// portable backend (macOS and FreeBSD), see the module docs' **Platforms**.
    /// On FreeBSD the list is sent with the child's effective gid in front
    /// (the [`gid`](Self::gid) given, else the inherited one), so that a
    /// FreeBSD before 15.0, whose `setgroups` makes the first entry the
    /// effective gid, leaves that gid alone and keeps every listed group.
    pub fn groups(mut self, groups: impl IntoIterator<Item = u32>) -> Command {
        self.spec.spawn.groups = Some(groups.into_iter().collect());
        self
    }

    /// Sets the child's file mode creation mask (e.g. `0o027`); at most
    /// `0o777`, else the start fails with [`Error::InvalidInput`]. Unix: Linux (both mechanisms) and the
    /// portable backend (macOS and FreeBSD), see the module docs' **Platforms**.
    pub fn umask(mut self, mode: u32) -> Command {
        self.spec.spawn.umask = Some(mode);
        self
    }

    /// Sets a resource limit of the child (`prlimit`): `soft` is enforced,
    /// `hard` is the ceiling the child may raise `soft` to; `u64::MAX`
    /// means unlimited. Setting the same resource again replaces it.
    /// `soft > hard` is [`Error::InvalidInput`]; raising a hard limit needs
    /// privilege, and a refusal is [`Error::ChildSetup`] with
    /// [`ChildStep::Rlimit`](crate::ChildStep::Rlimit). Applied before a privilege drop.
    /// Unix: Linux (both mechanisms) and the
    /// portable backend (macOS and FreeBSD), see the module docs' **Platforms**.
    /// Linux's own resources ([`Resource::Locks`] and those after it) are
    /// [`Error::Unsupported`] on macOS and the BSDs.
    pub fn rlimit(mut self, resource: Resource, soft: u64, hard: u64) -> Command {
        self.spec.spawn.rlimits.retain(|(r, _, _)| *r != resource);
        self.spec.spawn.rlimits.push((resource, soft, hard));
        self
    }

    /// Sets the child's nice value (`setpriority`): an absolute value from
    /// -20 (most favourable) to 19, clamped to that range by the kernel.
    /// Going below the owner's own value needs privilege
    /// ([`ChildStep::Priority`](crate::ChildStep::Priority) otherwise). Applied before a privilege
    /// drop. Unix: Linux (both mechanisms) and the
    /// portable backend (macOS and FreeBSD), see the module docs' **Platforms**.
    pub fn priority(mut self, nice: i32) -> Command {
        self.spec.spawn.nice = Some(nice);
        self
    }

    /// Makes the child the leader of a new session (`setsid`), with no
    /// controlling terminal — what a daemon does for itself.
    ///
    /// Under the cgroup mechanism the child and its descendants stay in the
    /// group's cgroup, so containment is unchanged. Under the
    /// process-group mechanism a new session means leaving the group's
    /// process group, and with it the group's teardown (`killpg`), so the
    /// start is refused there with [`Error::Unsupported`] (operation
    /// `setsid`) rather than running an uncontained child. Linux.
    pub fn setsid(mut self) -> Command {
        self.spec.spawn.setsid = true;
        self
    }

    /// Passes descriptors through to the child: for each
    /// `(parent_fd, child_fd)`, the child gets a duplicate of this process's
    /// `parent_fd` as its descriptor number `child_fd`. Every other
    /// descriptor above 2 stays closed in the child, as always. Adds to the
    /// pairs given before.
    ///
    /// `parent_fd` is borrowed: it must stay open until the process has
    /// started (the call to a verb or `start` returned); one that is not
    /// open fails the start with [`Error::InvalidInput`]. `child_fd` must be
    /// 3 or more (stdio has its own options) and appear once, and below the
    /// soft limit of an [`rlimit`](Self::rlimit) on [`Resource::Nofile`]
    /// (which the child sets first): else the start is refused with
    /// [`Error::InvalidInput`] before anything is spawned. Unix: Linux (both mechanisms) and the
    /// portable backend (macOS and FreeBSD), see the module docs' **Platforms**.
    pub fn keep_fds(mut self, fds: impl IntoIterator<Item = (RawFd, RawFd)>) -> Command {
        self.spec.spawn.keep_fds.extend(fds);
        self
    }
}

/// More spawn options: I/O priority, CPU affinity, `argv[0]`, and where a
/// program would be found.
impl Command {
    /// Sets the child's I/O scheduling class and, for
    /// [`RealTime`](IoClass::RealTime) and
    /// [`BestEffort`](IoClass::BestEffort), its level from 0 (served first)
    /// to 7 (a level above 7 is [`Error::InvalidInput`]; [`Idle`](IoClass::Idle)
    /// has none). The real-time class needs privilege; a refusal is
    /// [`Error::ChildSetup`] with [`ChildStep::IoPriority`](crate::ChildStep::IoPriority). Linux
    /// (every backend); elsewhere [`Error::Unsupported`].
    pub fn io_priority(mut self, class: IoClass, level: u8) -> Command {
        self.spec.spawn.io_priority = Some((class, level));
        self
    }

    /// Restricts the child (and what it starts) to these CPUs, by number
    /// (`sched_setaffinity`). An empty list, or a number of 65536 or more,
    /// is [`Error::InvalidInput`]; a set with no CPU the child may use is
    /// [`Error::ChildSetup`] with [`ChildStep::CpuAffinity`](crate::ChildStep::CpuAffinity). Linux
    /// (every backend); elsewhere [`Error::Unsupported`].
    pub fn cpu_affinity(mut self, cpus: impl IntoIterator<Item = usize>) -> Command {
        self.spec.spawn.cpus = Some(cpus.into_iter().collect());
        self
    }

    /// The name the program sees as its own (`argv[0]`), instead of the
    /// program as given to [`new`](Self::new), which still says what runs
    /// and names it in errors and logs. Unix (both mechanisms and the
    /// portable backend); on Windows a start with it is refused
    /// ([`Error::Unsupported`]): the command line a child reads its
    /// `argv[0]` from starts with the program's path there.
    pub fn arg0(mut self, name: impl AsRef<OsStr>) -> Command {
        self.spec.spawn.arg0 = Some(name.as_ref().to_os_string());
        self
    }

    /// Inherits only the named variables of this process's environment
    /// (read at each start), plus whatever [`env`](Self::env) sets: an
    /// allow-list, for a child that must not see the rest (tokens, keys).
    /// Adds to the names given before; after
    /// [`env_clear`](Self::env_clear) nothing is inherited at all. A name
    /// this process does not have is simply absent. All platforms.
    pub fn inherit_env<I, S>(mut self, names: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.spec
            .spawn
            .inherit_only
            .get_or_insert_with(Vec::new)
            .extend(names.into_iter().map(|n| n.as_ref().to_os_string()));
        self
    }

    /// Looks for the program in `dir` before `PATH` (a project's own bin
    /// directory, such as `node_modules/.bin`), when it is given as a bare
    /// name. A relative `dir` is relative to this process's working
    /// directory. Only where the program is found changes: the child's
    /// `PATH` is left as it is. Several calls search in call order. All
    /// platforms.
    pub fn prefer_local(mut self, dir: impl AsRef<std::path::Path>) -> Command {
        self.spec.spawn.prefer.push(dir.as_ref().to_path_buf());
        self
    }

    /// Writes the child's stdout straight into the file at `path`: the file
    /// is the child's descriptor 1 itself, so no byte goes through this
    /// process, and the [`Output`](crate::Output) has no stdout. Replaces
    /// [`stdout`](Self::stdout)'s setting; opened (a relative path from
    /// this process's working directory) at each start, where a failure is
    /// [`Error::Io`]. All platforms.
    ///
    /// **A FIFO** (Unix) is opened as a shell's `> fifo` opens it: the
    /// start waits until a reader opens the other end, on the thread that
    /// starts the command. That wait is bounded by the run's bounds: the
    /// [`timeout`](Self::timeout) (a pipeline's too), which counts the wait
    /// as part of the run, the [`cancel_token`](Self::cancel_token) (a
    /// pipeline's too), and a [`Supervisor`](crate::Supervisor)'s stop,
    /// cancel token and dropped handle. When one gives it up, the start
    /// fails ([`Error::Io`] whose source is
    /// [`std::io::ErrorKind::TimedOut`], or [`Error::Cancelled`]) and
    /// nothing is started. To give up, pkit opens the FIFO's other end
    /// itself for an instant (without waiting), which is what lets the
    /// waiting open return: a reader or writer of the same FIFO elsewhere
    /// may see that instant, as an end of file or a write that fails with
    /// a broken pipe, and so may another start of this process waiting on
    /// the same FIFO: its wait ends too, and its child starts to read an
    /// end of file (stdin) or to write into a broken pipe (stdout). On Linux (with `/proc` mounted) the FIFO waited on
    /// and given up is the one the path named at the start, even if it is
    /// renamed or replaced meanwhile (elsewhere the path is opened again;
    /// a FIFO put in place of a file after it was looked up is then waited
    /// on within the same bounds).
    /// Where that other end can't be opened (a FIFO its user may open only
    /// the child's way, such as mode 0200 for a stdout file) or does not
    /// end the wait, pkit sends SIGURG to its own waiting thread instead,
    /// for which it installs, when it needs to, a handler that does
    /// nothing. From then on a SIGURG sent to the whole process interrupts
    /// a blocking call of the thread that takes it (`EINTR`) rather than
    /// being ignored. An application's own SIGURG handler is left in place
    /// (looked at again at each such give-up: one put back to the default
    /// lets pkit's in), and a thread that blocks SIGURG (the waiting
    /// thread inherits the starting thread's mask) is not signalled, so
    /// an application reading SIGURG from a `signalfd` loses none; in
    /// both cases the waiting thread is left until the FIFO's other end is
    /// opened (with a warning), and the start fails at its bound. Without any bound the wait has no end, as a
    /// shell's; [`spawn_detached`](Self::spawn_detached) has no timeout or
    /// token, so its wait is never bounded. The same holds for
    /// [`stdin_file`](Self::stdin_file) (waiting for a writer) and
    /// [`stderr_file`](Self::stderr_file).
    pub fn stdout_file(mut self, path: impl AsRef<std::path::Path>, mode: FileMode) -> Command {
        self.spec.spawn.stdout_file = Some((path.as_ref().to_path_buf(), mode));
        self
    }

    /// Writes the child's stderr straight into the file at `path` (see
    /// [`stdout_file`](Self::stdout_file)). All platforms.
    pub fn stderr_file(mut self, path: impl AsRef<std::path::Path>, mode: FileMode) -> Command {
        self.spec.spawn.stderr_file = Some((path.as_ref().to_path_buf(), mode));
        self
    }

    /// Sends the child's stderr wherever its stdout goes (`2>&1`): into
    /// stdout's pipe, so the lines of both keep the order in which the
    /// child wrote them and the [`Output`](crate::Output)'s stdout holds
    /// both (its stderr stays empty); or into stdout's file, `/dev/null`, or
    /// this process's stdout. In a [`Pipe`](crate::Pipe), into the next
    /// stage. Replaces [`stderr`](Self::stderr) and
    /// [`stderr_file`](Self::stderr_file). Linux.
    pub fn merge_stderr(mut self) -> Command {
        self.spec.spawn.merge_stderr = true;
        self
    }

    /// Runs the program on a pseudo-terminal of `rows` x `cols` of its own:
    /// its stdin, stdout and stderr are the terminal (on Unix it leads a
    /// new session with the terminal as its controlling terminal; on
    /// Windows the terminal is a ConPTY pseudo console), and it stays in
    /// its group's container. Its output (stdout and stderr merged, as on any
    /// terminal) is read as stdout: captured, split into lines, matched by
    /// probes. Type into it through [`RunningProcess::pty`](crate::RunningProcess::pty). See the
    /// [module docs](crate::pty) for what changes on a terminal, and for the
    /// process-group mechanism's rule (the session must lead its group).
    ///
    /// The terminal replaces the stdio settings: a command that also sets
    /// stdin input, `stdout`/`stderr` other than piped, a stdout or stderr
    /// file, or `merge_stderr`, fails to start with
    /// [`Error::InvalidInput`]; so does a pipeline stage. A size of 0 rows
    /// or columns is invalid too (on Windows, so is one above 32767).
    /// Linux (every backend), macOS and FreeBSD (through the portable
    /// backend's spawn trampoline, which takes the terminal before the
    /// program runs; [`Error::Unsupported`] where it can't be used), and
    /// Windows (10 version 1809 or later, ConPTY); elsewhere
    /// [`Error::Unsupported`] (see the module docs' **Platforms**).
    pub fn pty(mut self, rows: u16, cols: u16) -> Command {
        self.spec.spawn.pty = Some((rows, cols));
        self.spec.spawn.pty_raw = false;
        self
    }

    /// Like [`pty`](Self::pty), but pkit reads nothing from the terminal:
    /// take its master side with [`RunningProcess::take_pty_master`](crate::RunningProcess::take_pty_master) and
    /// read it yourself (until you do, and while you don't, a program that
    /// writes a lot blocks once the terminal's buffer is full). The
    /// [`Output`](crate::Output) has no stdout, and line streams and probes
    /// see no lines. For relaying a terminal byte for byte.
    pub fn pty_raw(mut self, rows: u16, cols: u16) -> Command {
        self.spec.spawn.pty = Some((rows, cols));
        self.spec.spawn.pty_raw = true;
        self
    }

    /// Where this command's program would run from, without running it:
    /// the absolute path a verb or `start` would execute, resolved by the
    /// same rules (the command's own `PATH` if it sets one, else this
    /// process's; a relative path against this process's working
    /// directory; see [`new`](Self::new)). The errors are the ones a start
    /// would give: [`Error::NotFound`], [`Error::NotExecutable`]; a command
    /// that runs as another user or group is judged with the child's
    /// rights, as its start is (see [`uid`](Self::uid)).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) when no such program is found (on `PATH`, or
    /// at the path given); [`Error::NotExecutable`](crate::Error::NotExecutable) when the file
    /// found can't be executed; [`Error::InvalidInput`](crate::Error::InvalidInput) for an
    /// empty program name or one with a NUL byte.
    pub fn resolve_program(&self) -> Result<PathBuf> {
        let program = self.display_name();
        self.spec.check_program()?;
        let env = self.spec.effective_env();
        self.spec
            .spawn
            .resolve(&self.spec.program, &program, env.as_deref(), false)
    }
}

/// Where `program` (a name or a path) would run from: the absolute path
/// found on this process's `PATH` (see [`Command::resolve_program`]).
///
/// ```
/// let sh = pkit::which("sh").expect("a shell");
/// assert!(sh.is_absolute());
/// ```
///
/// # Errors
///
/// Those of [`Command::resolve_program`].
pub fn which(program: impl AsRef<OsStr>) -> Result<PathBuf> {
    Command::new(program).resolve_program()
}
