//! How many bytes an output pipe holds unread, for a line stream's reader
//! asked what the process's consumer is owed at its exit (see the pump's
//! `owed.rs`).

use super::PipeReceiver;

/// The bytes `rx`'s pipe holds now (`FIONREAD`); none when that can't be
/// told.
pub(crate) fn receiver_unread(rx: &PipeReceiver) -> usize {
    rustix::io::ioctl_fionread(rx).map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
}
