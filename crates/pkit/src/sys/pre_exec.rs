//! [`Command::pre_exec`]: the one builder that is `unsafe` to call, kept
//! under `sys/` with the other `unsafe` code. Nothing in `sys/` depends on
//! this file; it only adds a method to `Command`.

use std::io;
use std::sync::Arc;

use crate::command::Command;

impl Command {
    /// Runs `hook` in the child just before it executes the program, after
    /// every other setup step (stdio, container, limits, credentials,
    /// working directory, signal mask reset): the escape hatch for what no
    /// option covers, as `std::os::unix::process::CommandExt::pre_exec`.
    /// Hooks run in the order given; one that returns `Err` stops the start
    /// with [`Error::ChildSetup`](crate::Error::ChildSetup) and
    /// [`ChildStep::PreExec`](crate::ChildStep::PreExec), with its errno.
    ///
    /// **The cost.** Every other option is applied by a child that borrows
    /// this process's memory until `exec` (no copy of the address space). A
    /// hook can't run safely there, so a command with a hook is started by
    /// a real fork (a copy of the page tables: its cost grows with this
    /// process's resident memory), and its child then joins its cgroup or
    /// process group itself before `exec`. Linux on x86_64 and aarch64;
    /// elsewhere the start is refused with
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    ///
    /// # Safety
    /// The hook runs in a forked copy of a multi-threaded process: only the
    /// calling thread exists there, and locks other threads held (the
    /// allocator's among them) stay held forever. It must only make
    /// async-signal-safe calls: no allocation, no locks, no printing
    /// through `std::io`. It must not panic.
    pub unsafe fn pre_exec(
        mut self,
        hook: impl Fn() -> io::Result<()> + Send + Sync + 'static,
    ) -> Command {
        self.spec.spawn.pre_exec.push(Arc::new(hook));
        self
    }
}
