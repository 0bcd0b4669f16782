//! The terminal under the process-group mechanism: the program leads a
//! process group of its own, so it only can read the terminal (and only it
//! gets Ctrl-C and Ctrl-Z) when pkit makes that group the terminal's
//! foreground group, as a shell does for a job. Under the cgroup mechanism
//! the program shares pkit's group and none of this is needed.
//!
//! The terminal is pkit's controlling terminal (`/dev/tty`), whatever
//! pkit's stdin is: `echo x | pkit run -- ssh host` still has ssh ask
//! for its password there.

use std::cell::Cell;

use crate::sys;

/// pkit's controlling terminal, with a program in another process group.
pub struct Terminal {
    tty: sys::Ctty,
    own: i32,
    program: i32,
    /// The program's group is the terminal's foreground group, by pkit.
    handed: Cell<bool>,
}

impl Terminal {
    /// When pkit has a controlling terminal and `pid` leads another
    /// process group; hands it the terminal if pkit holds it (is in the
    /// foreground).
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
        };
        t.hand_over();
        Some(t)
    }

    /// Gives the terminal to the program's group if pkit's group has it.
    pub fn hand_over(&self) {
        if self.tty.foreground() == Some(self.own) && self.tty.set_foreground(self.program).is_ok()
        {
            self.handed.set(true);
        }
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
    }
}
