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
    /// Where that can't be told (a Windows pipe), nothing is noted: the
    /// partial last line is told at the end of the stream, as a line any
    /// descendant finishes would be (a mark at what was read so far would
    /// cut a line the process wrote before its exit and the reader had not
    /// read yet).
    pub(super) fn exited(&mut self, rx: &source::Source, total: usize) {
        if matches!(self.exit, Exit::Before) {
            if let Some(unread) = rx.unread() {
                self.exit = Exit::At(total.saturating_add(unread));
            }
        }
    }
}
