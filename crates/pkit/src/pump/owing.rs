//! A line stream's reader at the process's exit: the process's own partial
//! last line told as a line, once, and the consumer's ask for what it is
//! owed (see `queue`'s `owed.rs`) answered.
//!
//! The rule: what the process wrote is its own; what a descendant still
//! holding the pipe writes after the exit is the descendant's. The reader
//! notes the exit when it sees it (a pipe's reader watches it, see
//! `ExitWatch`; a pseudo-terminal may not have passed all on then) or at
//! the consumer's first ask (made only after an exit), whichever comes
//! first, with what its pipe held then: once it has read just that much,
//! the partial line split so far (the decoder's held bytes flushed into
//! it, as at the end of file) is told as a line, the process's last. If a
//! read took it past that mark, the line's end is the descendant's: it is
//! not cut. Either way this is settled once: later asks (every
//! `wait_for_line` after the exit asks) cut nothing, so a descendant's
//! line is told whole wherever the caller looks. A told line that ended
//! with `\r` (taken, as at the end of file, for half a CRLF): a `\n` as
//! the next byte is its ending, not an empty line.

use super::exit_mark::{Exit, Owing};
use super::{decode, source, Sinks};

impl Sinks {
    /// Tells the process's partial last line once everything it wrote is
    /// read (see the module's header), then takes on the line stream's
    /// consumer's ask for what it is owed: its mark becomes the bytes read
    /// once what `rx` holds now is; answers once `total` (all read and
    /// fed) reaches that.
    pub(super) async fn answer_owed(
        &mut self,
        rx: &source::Source,
        total: usize,
        owing: &mut Owing,
    ) {
        let Some(sink) = &mut self.lines else { return };
        if sink.tx.take_ask() {
            // An ask is made only after the process's exit.
            owing.exited(rx, total);
            owing.ask = Some(total.saturating_add(rx.unread().unwrap_or(0)));
        }
        if let Exit::At(at) = owing.exit {
            if total >= at {
                owing.exit = Exit::Settled;
                if total == at {
                    self.end_partial_line().await;
                }
            }
        }
        if owing.ask.is_some_and(|o| total >= o) {
            owing.ask = None;
            // Gone when the consumer went: its sender's end answered.
            if let Some(sink) = &mut self.lines {
                sink.tx.answer();
            }
        }
    }

    /// Tells the partial line split so far (if any) as a line, with what
    /// the decoder holds, as at the end of file (the decoder is made
    /// afresh for what follows); the captures and tees have its bytes
    /// already.
    async fn end_partial_line(&mut self) {
        if !self.decode(&[], true) {
            return;
        }
        let after_cr = self.splitter.buffered().last() == Some(&b'\r');
        if let Some(batch) = self.splitter.finish(self.kind) {
            self.deliver(batch).await;
        }
        if after_cr {
            self.splitter.skip_next_lf();
        }
        if let Some(p) = &mut self.prompt {
            let (line, tail) = self.splitter.tail();
            p.publish(self.kind, line, tail);
        }
        if let (Some(factory), Some(_)) = (&self.factory, &self.decoder) {
            self.decoder = decode::made(factory);
            if self.decoder.is_none() {
                // Contained as at the start (see `decode`).
                tracing::warn!(target: "pkit", stream = %self.kind, "decoder factory panicked; its lines end");
                (self.callback, self.lines) = (None, None);
            }
        }
    }
}
