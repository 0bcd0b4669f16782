//! The CLI on Windows. There are no signals: pkit reads the console's
//! control events (through Tokio, which installs a `SetConsoleCtrlHandler`
//! routine) and names each by the signal it stands for, so `pkit run`
//! treats it as it would on Linux:
//!
//! - Ctrl-C is SIGINT, Ctrl-Break is SIGTERM, and closing the console (or
//!   logging off, or shutting down) is SIGHUP: each is a request to end the
//!   run. The first is passed on as a graceful stop: a CTRL_BREAK to the
//!   program's console process group (the library starts every program in
//!   a group of its own, where Ctrl-C is ignored, so a break is the one
//!   polite stop it can get); the second ends the whole tree (the break
//!   again, then termination after the grace); the third terminates at
//!   once. Where no break can be delivered (no console, a GUI program,
//!   Wine) the stop is the termination of the tree.
//! - There is no subreaper, terminal job control or pseudo-terminal here:
//!   the Job Object holds every descendant (the library's
//!   `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`), so nothing is orphaned out of
//!   it, and the functions for those answer "none".
//! - `--stats` comes from the job's accounting (see `cgstats.rs`); there
//!   is no rusage of reaped children.

use std::fs::File;
use std::io;

use tokio::signal::windows::{CtrlBreak, CtrlC, CtrlClose, CtrlLogoff, CtrlShutdown};
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::System::Console::{GenerateConsoleCtrlEvent, CTRL_BREAK_EVENT};
use windows_sys::Win32::System::Threading::{OpenProcess, TerminateProcess, PROCESS_TERMINATE};

use super::{sig, ChildUsage, Received};

/// What a process that pkit terminates exits with (as the library: 128+9,
/// what a shell reports for a SIGKILLed process).
const KILLED_EXIT_CODE: u32 = 128 + 9;

fn unsupported(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, what.to_string())
}

/// The console's control events, from the moment this is made.
pub struct Signals {
    c: CtrlC,
    brk: CtrlBreak,
    close: CtrlClose,
    logoff: CtrlLogoff,
    shutdown: CtrlShutdown,
}

/// Nothing to block on Windows.
pub fn block_caught() -> io::Result<()> {
    Ok(())
}

impl Signals {
    /// Starts receiving the console's control events. Needs a Tokio
    /// runtime.
    pub fn new() -> io::Result<Signals> {
        use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close, ctrl_logoff, ctrl_shutdown};
        Ok(Signals {
            c: ctrl_c()?,
            brk: ctrl_break()?,
            close: ctrl_close()?,
            logoff: ctrl_logoff()?,
            shutdown: ctrl_shutdown()?,
        })
    }

    /// The next event.
    pub async fn recv(&mut self) -> io::Result<Received> {
        let signo = tokio::select! {
            _ = self.c.recv() => sig::SIGINT,
            _ = self.brk.recv() => sig::SIGTERM,
            _ = self.close.recv() => sig::SIGHUP,
            _ = self.logoff.recv() => sig::SIGHUP,
            _ = self.shutdown.recv() => sig::SIGHUP,
        };
        Ok(Received {
            signo,
            from_kernel: false,
            from_parent: false,
        })
    }
}

/// Children's exits: nothing to hear on Windows (pkit is no subreaper
/// there); [`recv`](Self::recv) never ends.
pub struct ChildExits;

impl ChildExits {
    /// As on Unix.
    pub fn new() -> ChildExits {
        ChildExits
    }

    /// Never ends.
    pub async fn recv(&mut self) {
        std::future::pending().await
    }
}

/// What asks `pkit supervise` to stop: Ctrl-C, Ctrl-Break, closing the
/// console (named INT, TERM and HUP, as in [`Signals`]).
pub struct StopRequests(Signals);

impl StopRequests {
    /// Catches them from now on. Needs a Tokio runtime.
    pub fn new() -> io::Result<StopRequests> {
        Signals::new().map(StopRequests)
    }

    /// The next request: the number of the signal it stands for.
    pub async fn recv(&mut self) -> i32 {
        match self.0.recv().await {
            Ok(Received { signo, .. }) => signo,
            Err(_) => sig::SIGHUP,
        }
    }
}

/// Whether `sig` is passed on to the current run's program: none of the
/// console's events is.
pub fn for_the_program(_sig: i32) -> bool {
    false
}

/// Sends `sig` to the program alone: SIGKILL terminates it; SIGTERM and
/// SIGINT are a CTRL_BREAK to its console process group (it leads one:
/// the library starts every program with `CREATE_NEW_PROCESS_GROUP`);
/// anything else is refused.
pub fn kill(pid: u32, sig: i32) -> io::Result<()> {
    match sig {
        sig::SIGKILL => {
            // SAFETY: opens the process by id; the handle is checked, used
            // once and closed. The caller's process is unreaped (the
            // library holds its handle), so the id names it.
            unsafe {
                let h: HANDLE = OpenProcess(PROCESS_TERMINATE, 0, pid);
                if h.is_null() {
                    return Err(io::Error::last_os_error());
                }
                let ok = TerminateProcess(h, KILLED_EXIT_CODE);
                let e = io::Error::last_os_error();
                CloseHandle(h);
                if ok == 0 {
                    return Err(e);
                }
            }
            Ok(())
        }
        sig::SIGTERM | sig::SIGINT => {
            // SAFETY: a plain call with the id of a live group leader (see
            // above): it names that group and no other.
            if unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, pid) } == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }
        _ => Err(unsupported(
            "Windows has no such signal: only a CTRL_BREAK (for SIGTERM, SIGINT) or termination",
        )),
    }
}

/// No job control on Windows.
pub fn stop_self() {}

/// No job control on Windows.
pub fn stop_self_for_terminal(_sig: i32) {}

/// No stop signals on Windows.
pub fn stop_pending(_pids: &[u32]) -> bool {
    false
}

/// No process groups on Windows: never orphaned.
pub fn own_group_orphaned() -> bool {
    false
}

/// No `vfork` on Windows: never held by a stopped child.
pub fn held_by_stopped_child(_pid: u32, _members: &dyn Fn() -> Option<Vec<u32>>) -> Option<i32> {
    None
}

/// No stop signals on Windows: never stopped by one.
pub fn stop_signal(_pid: u32) -> Option<i32> {
    None
}

/// No stop signals on Windows: never.
pub fn continued_since_stop() -> bool {
    false
}

/// No signal to end pkit by: the caller exits with 128+`sig` instead.
pub fn reraise(_sig: i32) {}

/// pkit's own peak resident memory: unused on Windows (0).
pub fn own_peak_rss() -> u64 {
    0
}

/// None on Windows: it has no sum of reaped children's use (the job's
/// accounting is read instead).
pub fn children_usage() -> Option<ChildUsage> {
    None
}

/// `--json-fd`: Windows programs are handed handles, not descriptor
/// numbers.
pub fn inherited_fd(_fd: i32) -> io::Result<File> {
    Err(unsupported(
        "--json-fd is not available on Windows (use --json or --json-file)",
    ))
}

/// The program leads a console process group of its own, never pkit's.
pub fn same_pgrp(_pid: u32) -> bool {
    false
}

/// No terminal process groups on Windows.
pub fn own_pgrp() -> i32 {
    0
}

/// No terminal process groups on Windows.
pub fn pgrp_of_pid(_pid: u32) -> Option<i32> {
    None
}

/// No job control on Windows: nothing to mark.
pub fn mark_stop() -> bool {
    false
}

/// No process groups to share on Windows.
pub fn job_mates() -> Option<Vec<(u32, Option<usize>)>> {
    None
}

/// No controlling terminal on Windows.
pub struct Ctty;

impl Ctty {
    /// Never one on Windows.
    pub fn open() -> Option<Ctty> {
        None
    }

    /// No terminal job control on Windows.
    pub fn foreground(&self) -> Option<i32> {
        None
    }

    /// No terminal job control on Windows.
    pub fn set_foreground(&self, _pgid: i32) -> io::Result<()> {
        Err(unsupported("no terminal job control on Windows"))
    }

    /// No pipeline shares a job on Windows.
    pub fn job_has_stage(&self, _mates: &[(u32, Option<usize>)]) -> bool {
        false
    }
}

/// No job control on Windows: no read is refused for it.
pub fn stdin_is_own_terminal() -> bool {
    false
}

/// Windows runs no file without a known format through a shell.
pub fn shell_script(_path: &std::path::Path) -> bool {
    false
}

/// No `/proc` states on Windows.
pub fn state_of(_pid: u32) -> Option<char> {
    None
}

/// Not asked on Windows (no `waitid` that leaves the exit to the child's
/// own waiter): never known.
pub fn exited(_pid: u32) -> bool {
    false
}

/// No subreaper on Windows: the Job Object holds every descendant.
pub fn set_child_subreaper() -> io::Result<()> {
    Err(unsupported(
        "no subreaper on Windows: the job holds every descendant",
    ))
}

/// No subreaper on Windows, so no orphan of the run is pkit's child.
pub fn children() -> Vec<(i32, char)> {
    Vec::new()
}

/// Nothing is re-parented to pkit on Windows.
pub fn reap_if_exited(_pid: i32) -> bool {
    false
}

/// Not read on Windows (`--pty` is refused there by the library).
pub fn terminal_size(_fd: i32) -> Option<(u16, u16)> {
    None
}
