//! Where a line stream's reader saw the process's exit, and the latest
//! ask for what is owed (see `owing.rs`).

use std::future::Future;
use std::pin::Pin;

use super::source;

/// Completes at the process's exit (given to a line stream's readers).
pub(crate) type ExitWatch = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A reader's marks at the exit (see the module's header).
#[derive(Default)]
pub(super) struct Owing {
    /// The bytes read once what the pipe held at the latest ask taken on is.
    pub(super) ask: Option<usize>,
    pub(super) exit: Exit,
}

#[derive(Default)]
pub(super) enum Exit {
    /// Not seen yet.
    #[default]
    Before,
    /// Seen: the bytes read once what the pipe held then is.
    At(usize),
    /// The partial line at the exit told (or found to be a descendant's).
    Settled,
}

impl Owing {
    /// The exit is seen now (if not before): notes what the pipe holds.
    pub(super) fn exited(&mut self, rx: &source::Source, total: usize) {
        if matches!(self.exit, Exit::Before) {
            self.exit = Exit::At(total.saturating_add(rx.unread()));
        }
    }
}
