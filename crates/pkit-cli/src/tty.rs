//! The terminal under the process-group mechanism: the program leads a
//! process group of its own, so it only can read the terminal (and only it
//! gets Ctrl-C and Ctrl-Z) when pkit makes that group the terminal's
//! foreground group, as a shell does for a job. Under the cgroup mechanism
//! the program shares pkit's group and none of this is needed.

use crate::sys;

/// The terminal, handed to the program's process group; given back to
/// pkit's when dropped.
pub struct Terminal {
    own: i32,
    program: i32,
}

impl Terminal {
    /// Hands the terminal on stdin to `pid`'s process group when pkit holds
    /// it (is in the foreground) and the program is in another group.
    pub fn hand_over(pid: u32) -> Option<Terminal> {
        let own = sys::own_pgrp();
        if sys::tty_foreground()? != own {
            return None;
        }
        let program = sys::pgrp_of_pid(pid)?;
        if program == own {
            return None;
        }
        sys::set_tty_foreground(program).ok()?;
        Some(Terminal { own, program })
    }

    /// Stops pkit as its job was stopped (the terminal back to pkit's
    /// group first, so the shell gets it); once continued, hands the
    /// terminal to the program again.
    pub fn stop_pkit(this: Option<&Terminal>) {
        if let Some(t) = this {
            let _ = sys::set_tty_foreground(t.own);
        }
        sys::stop_self();
        if let Some(t) = this {
            let _ = sys::set_tty_foreground(t.program);
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = sys::set_tty_foreground(self.own);
    }
}
