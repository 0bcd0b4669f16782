//! The terminal under the process-group mechanism: the program leads a
//! process group of its own, so it only can read the terminal (and only it
//! gets Ctrl-C and Ctrl-Z) when pkit makes that group the terminal's
//! foreground group, as a shell does for a job. Under the cgroup mechanism
//! the program shares pkit's group and none of this is needed.
//!
//! The terminal is pkit's controlling terminal (`/dev/tty`), whatever
//! pkit's stdin is: `echo x | pkit run -- ssh host` still has ssh ask
//! for its password there.
//!
//! The rule: pkit hands the terminal over when its job holds it and pkit
//! is alone in that job (its process group), but for the shells waiting
//! for it (`sh -c 'pkit run …; …'`) and the background commands of a
//! shell without job control (`sh -c 'helper & pkit run …'`: the terminal
//! is not theirs). A pipeline's stages are told from those by their
//! pipes: a stage's stdin is a pipe pkit's side (pkit, the shells waiting
//! for it) writes to, or its stdout one that side reads, or its stdin is
//! the terminal, or its stdin is no pipe while that side writes to a pipe
//! nothing reads (a stage after pkit that let go of it: `| stage <file`),
//! or its stdout is no pipe while that side reads one nothing writes to
//! (a stage before pkit that closed its stdout); those two unless it bears
//! a background command's marks (stdin on `/dev/null`, SIGINT and SIGQUIT
//! ignored, as a shell without job control starts it: `sh -c 'helper &
//! pkit run -- prog | true'`) (`Ctty::job_has_stage`). In a pipeline (`pkit run --
//! job | less`) the terminal stays with the job, so that its other stages
//! keep it: Ctrl-Z and Ctrl-C reach them all (pkit passes them on). If the
//! program then reads the terminal (or changes its settings), it is
//! stopped for it, and pkit stops its whole job with it (after up to
//! `forward.rs`'s `TERMINAL_WAIT` for a stage before pkit that is ending;
//! the shells waiting for pkit last, by the foreground watcher once pkit
//! is stopped, so that a quick `fg` can't come before pkit's own stop),
//! as the shell reports a job that reads the terminal from the
//! background; pkit stops by the program's own signal then (SIGTTIN,
//! SIGTTOU), so that an outer pkit whose program it is (`pkit run --
//! pkit run -- reader | cat`) sees its program asked for the terminal.
//! Once the job is brought back to the foreground (`fg`), the program
//! gets the terminal: it asked for it. On `fg` pkit continues the
//! program's tree first and then hands it the terminal, so that a Ctrl-Z
//! right after `fg` is never sent to a group still stopped (whose SIGCONT
//! would discard it); a read the program retried in between stopped it,
//! and pkit continues it once it holds the terminal (unless a stop waits
//! at it: a Ctrl-Z, which stops the job).
//!
//! pkit looks at its job once, when its program has started, and a shell
//! forks a pipeline's stages one after the other: on a loaded machine a
//! stage after pkit (`pkit run -- job | less`) may come only once pkit has
//! handed the terminal over. Its read of the terminal then stops the job
//! (the terminal's SIGTTIN goes to the reader's process group, pkit's);
//! pkit, which gets that signal too, gives the terminal back to its job
//! and continues the job's processes, so the read goes through
//! (`Terminal::give_back_to_job`).

use std::cell::{Cell, RefCell};

use crate::watcher::Watcher;

use crate::sys;

/// pkit's controlling terminal, with a program in another process group.
pub struct Terminal {
    tty: sys::Ctty,
    own: i32,
    program: i32,
    /// The program's group is the terminal's foreground group, by pkit.
    handed: Cell<bool>,
    /// The program was stopped reading the terminal pkit's job kept (a
    /// pipeline): it gets it next time the job is in the foreground.
    asked: Cell<bool>,
    /// Gives the terminal back to pkit's job if pkit dies holding it
    /// handed over (`fgwatch.rs`); started at the first hand-over.
    watcher: RefCell<Option<Watcher>>,
}

impl Terminal {
    /// When pkit has a controlling terminal and `pid` leads another
    /// process group; hands it the terminal if pkit holds it (is in the
    /// foreground) and is alone in its job.
    pub fn new(pid: u32) -> Option<Terminal> {
        let tty = sys::Ctty::open()?;
        tty.foreground()?;
        let own = sys::own_pgrp();
        let program = sys::pgrp_of_pid(pid)?;
        if program == own {
            return None;
        }
        let t = Terminal {
            tty,
            own,
            program,
            handed: Cell::new(false),
            asked: Cell::new(false),
            watcher: RefCell::new(None),
        };
        t.hand_over();
        Some(t)
    }

    /// Gives the terminal to the program's group if pkit's group has it,
    /// and pkit is alone in its job or the program asked for it.
    pub fn hand_over(&self) {
        if self.tty.foreground() != Some(self.own) || !(self.asked.get() || alone(&self.tty)) {
            return;
        }
        // The watcher first: from the hand-over on, a SIGKILLed pkit
        // would leave the terminal to its program's dead group. (A
        // watcher that can't start: the hand-over goes on without.)
        let mut watcher = self.watcher.borrow_mut();
        if watcher.is_none() {
            *watcher = crate::fgwatch::start(self.own, self.program).ok();
        }
        if self.tty.set_foreground(self.program).is_ok() {
            self.handed.set(true);
        }
    }

    /// The program was stopped for reading the terminal (or changing
    /// it): true if it has it now: it had it already (the read came before
    /// the hand-over: pkit continues the program's group first, then
    /// hands it the terminal), or pkit's job is in the foreground and pkit
    /// alone in it (a pipeline's stage that ended since, say). Otherwise,
    /// once pkit [`Terminal::ask`]s for it, it gets it when the job is
    /// back in the foreground ([`Terminal::hand_over`]).
    pub fn claim(&self) -> bool {
        if self.handed.get() {
            return self.program_holds();
        }
        self.hand_over();
        self.handed.get()
    }

    /// Whether the program's group is the terminal's foreground group, by
    /// pkit's hand-over.
    pub fn program_holds(&self) -> bool {
        self.handed.get() && self.tty.foreground() == Some(self.program)
    }

    /// Whether pkit's job is the terminal's foreground job.
    pub fn job_in_foreground(&self) -> bool {
        self.tty.foreground() == Some(self.own)
    }

    /// The program asked for the terminal ([`Terminal::claim`] could not
    /// give it): it gets it at the next hand-over, alone in the job or not.
    pub fn ask(&self) {
        self.asked.set(true);
    }

    /// Has the watcher (started now if it was not) stop `pids` with `sig`
    /// once pkit is stopped ([`stop_job_mates`]); false if there is no
    /// watcher to do it.
    fn stop_after_pkit(&self, sig: i32, pids: &[u32]) -> bool {
        let mut watcher = self.watcher.borrow_mut();
        if watcher.is_none() {
            *watcher = crate::fgwatch::start(self.own, self.program).ok();
        }
        let msg = crate::fgwatch::stop_message(std::process::id(), sig, pids);
        watcher.as_mut().is_some_and(|w| w.send(&msg))
    }

    /// pkit continued after a stop that had the watcher stop the shells
    /// waiting for it: a stop it has yet to see (pkit stopped and
    /// continued by someone else in between) is off.
    pub fn continued(&self) {
        if let Some(w) = self.watcher.borrow_mut().as_mut() {
            w.send(&[crate::fgwatch::CONTINUED]);
        }
    }

    /// Another process of pkit's job was stopped reading the terminal (or
    /// changing it) pkit had handed to the program: the kernel's SIGTTIN
    /// or SIGTTOU to the reader's process group, pkit's, reached pkit too.
    /// pkit was not alone in its job after all: a pipeline's later stage
    /// that the shell had not forked yet when pkit looked (a loaded
    /// machine: `pkit run -- job | less`). The terminal goes back to the
    /// job, as a pipeline's job keeps it, and the job's other processes,
    /// stopped by that signal (the hand-over's doing, not the job's), are
    /// continued: the read goes through, as without pkit. False, and
    /// nothing done, when the program's group does not hold the terminal
    /// by pkit's hand-over (the stop is the job's).
    pub fn give_back_to_job(&self) -> bool {
        if !self.program_holds() {
            return false;
        }
        // Back first: a mate continued in the background would only be
        // stopped again by its retried read.
        self.take_back();
        for (pid, _) in sys::job_mates().unwrap_or_default() {
            let _ = sys::kill(pid, sys::sig::SIGCONT);
        }
        true
    }

    /// Takes the terminal back for pkit's group if it was handed over
    /// (before pkit stops, so that the shell gets it; at the end).
    pub fn take_back(&self) {
        if self.handed.replace(false) {
            let _ = self.tty.set_foreground(self.own);
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.take_back();
        if let Some(w) = self.watcher.take() {
            w.finish();
        }
    }
}

/// Whether pkit is alone in its job: no process of its group but its
/// ancestors (the shells waiting for it) is a stage of its pipeline
/// (`Ctty::job_has_stage`: joined to pkit's side by a pipe, or reading
/// the terminal). The others (a script's background commands, `sh -c
/// 'helper & pkit run …'`: stdin on `/dev/null`) are not the terminal's:
/// without pkit between, the program would read it from that same job.
/// Unknown (no `/proc`) is alone, the hand-over as a shell's job of one
/// process gets.
fn alone(tty: &sys::Ctty) -> bool {
    sys::job_mates().is_none_or(|mates| !tty.job_has_stage(&mates))
}

/// Stops the other processes of pkit's job with `sig` (the program's stop
/// signal: pkit stops with its program, and so does its job, as the whole
/// job would have without pkit between them), all but the shells waiting
/// for pkit, and has those stopped once pkit is: true when the watcher
/// took that on (pkit must then stop itself, whatever comes meanwhile).
/// A shell that sees its job stopped continues it (`fg`) with a SIGCONT
/// that must come after pkit's own stop: one that came before it is lost
/// to it (a stop signal discards a pending SIGCONT), and pkit, stopped
/// for good, would hold its job with it. The shell waiting for pkit
/// (`sh -c 'pkit run … | cat'`) is what the job's shell sees stopped, and
/// is stopped after pkit by the watcher (`fgwatch.rs`), the nearest
/// first: the farthest, the one the job's shell waits for, last. (A
/// pipeline's other stages are stopped first, by pkit: a shell that waits
/// for them waits for pkit too.) Without a watcher pkit stops them all
/// itself, in that order, before its own stop.
pub fn stop_job_mates(sig: i32, tty: Option<&Terminal>) -> bool {
    let mut mates = sys::job_mates().unwrap_or_default();
    mates.sort_by_key(|&(_, up)| up.unwrap_or(0));
    let shells = mates.iter().position(|(_, up)| up.is_some());
    let (stages, shells) = mates.split_at(shells.unwrap_or(mates.len()));
    for &(pid, _) in stages {
        let _ = sys::kill(pid, sig);
    }
    let shells: Vec<u32> = shells.iter().map(|&(pid, _)| pid).collect();
    if shells.is_empty() || tty.is_some_and(|t| t.stop_after_pkit(sig, &shells)) {
        return !shells.is_empty();
    }
    for pid in shells {
        let _ = sys::kill(pid, sig);
    }
    false
}
