//! No terminal watcher where there is no `--pty` (Windows: `pkit run
//! --pty` is refused there, see `run.rs`), so no raw mode to restore.

use std::process::ExitCode;

/// pkit's first argument when it runs as the watcher (never, here).
pub const ARG: &str = "__pkit-terminal-watcher";

/// Raw mode: never entered here.
pub struct Raw;

impl Raw {
    /// Always `None` here.
    pub fn enter() -> Option<Raw> {
        None
    }

    /// Nothing to put back.
    pub fn suspend(&mut self) {}

    /// Nothing to switch.
    pub fn resume(&mut self) {}
}

/// The watcher's entry point: nothing to watch here.
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
