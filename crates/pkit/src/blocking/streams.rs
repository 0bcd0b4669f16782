//! The blocking streams of a started process: [`Lines`],
//! [`StreamLines`], [`ChildStdin`].

use std::fmt;

use tokio::io::AsyncWriteExt;

use super::{block_on_made, enter_for_drop};
use crate::pump::Line;

/// A started process's lines as an [`Iterator`]: each `next` blocks until
/// a line comes, `None` once the process has closed both outputs.
pub struct Lines {
    pub(super) inner: Option<crate::Lines>,
}

impl Iterator for Lines {
    type Item = Line;

    #[track_caller]
    fn next(&mut self) -> Option<Line> {
        let lines = self.inner.as_mut()?;
        block_on_made("Lines::next", lines.next_line())
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        enter_for_drop(self.inner.take());
    }
}

impl fmt::Debug for Lines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Lines").finish_non_exhaustive()
    }
}

/// One stream's lines as an [`Iterator`], from
/// [`RunningProcess::split_lines`](crate::blocking::RunningProcess::split_lines).
pub struct StreamLines {
    pub(super) inner: Option<crate::StreamLines>,
}

impl Iterator for StreamLines {
    type Item = Line;

    #[track_caller]
    fn next(&mut self) -> Option<Line> {
        let lines = self.inner.as_mut()?;
        block_on_made("StreamLines::next", lines.next_line())
    }
}

impl Drop for StreamLines {
    fn drop(&mut self) {
        enter_for_drop(self.inner.take());
    }
}

impl fmt::Debug for StreamLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::StreamLines")
            .finish_non_exhaustive()
    }
}

/// A started process's stdin for blocking code: a [`std::io::Write`].
pub struct ChildStdin {
    pub(super) inner: Option<crate::ChildStdin>,
}

impl std::io::Write for ChildStdin {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let w = self.inner.as_mut().expect("present until drop");
        block_on_made("ChildStdin::write", w.write(buf))
    }

    #[track_caller]
    fn flush(&mut self) -> std::io::Result<()> {
        let w = self.inner.as_mut().expect("present until drop");
        block_on_made("ChildStdin::flush", w.flush())
    }
}

impl Drop for ChildStdin {
    fn drop(&mut self) {
        enter_for_drop(self.inner.take());
    }
}

impl fmt::Debug for ChildStdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::ChildStdin")
            .finish_non_exhaustive()
    }
}

/// A started process's [`ProcessEvent`](crate::ProcessEvent)s as an
/// [`Iterator`] (see [`crate::RunningProcess::events`]): each `next`
/// blocks until the next event; `None` after the exit.
pub struct Events {
    pub(super) inner: Option<crate::Events>,
}

impl Iterator for Events {
    type Item = crate::ProcessEvent;

    #[track_caller]
    fn next(&mut self) -> Option<crate::ProcessEvent> {
        let events = self.inner.as_mut()?;
        block_on_made("Events::next", events.next_event())
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        enter_for_drop(self.inner.take());
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Events").finish_non_exhaustive()
    }
}

/// A started child's raw stdout or stderr for blocking code: a
/// [`std::io::Read`] (see [`crate::ChildOutput`]). Dropping it closes the
/// read end.
pub struct ChildOutput {
    pub(super) inner: Option<crate::ChildOutput>,
}

impl std::io::Read for ChildOutput {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use tokio::io::AsyncReadExt;
        let r = self.inner.as_mut().expect("present until drop");
        block_on_made("ChildOutput::read", r.read(buf))
    }
}

impl Drop for ChildOutput {
    fn drop(&mut self) {
        enter_for_drop(self.inner.take());
    }
}

impl fmt::Debug for ChildOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::ChildOutput")
            .finish_non_exhaustive()
    }
}
