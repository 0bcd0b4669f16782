//! A line stream's reader at the process's exit: its answer to the
//! consumer's ask for what it is owed (see `queue`'s `owed.rs`), with the
//! partial line the process left told as a line.

use super::{source, Sinks};

impl Sinks {
    /// Takes on the line stream's consumer's ask for what it is owed at
    /// the exit (see `owed.rs`): `owing` becomes the bytes read once what
    /// `rx` holds now is; answers once `total` (all read and fed) reaches
    /// that. The exited process wrote its last line then, ended or not: a
    /// partial one is told as a line first (a descendant still holding the
    /// pipe would keep it from ever ending; rv43). What comes after it
    /// begins a new line.
    pub(super) async fn answer_owed(
        &mut self,
        rx: &source::Source,
        total: usize,
        owing: &mut Option<usize>,
    ) {
        let Some(sink) = &mut self.lines else { return };
        if sink.tx.take_ask() {
            *owing = Some(total.saturating_add(rx.unread()));
        }
        if owing.is_some_and(|o| total >= o) {
            *owing = None;
            self.end_partial_line().await;
            // Gone when the consumer went: its sender's end answered.
            if let Some(sink) = &mut self.lines {
                sink.tx.answer();
            }
        }
    }

    /// Tells the partial line split so far (if any) as a line, as at the
    /// end of file; the captures and tees have its bytes already.
    async fn end_partial_line(&mut self) {
        if let Some(batch) = self.splitter.finish(self.kind) {
            self.deliver(batch).await;
        }
        if let Some(p) = &mut self.prompt {
            let (line, tail) = self.splitter.tail();
            p.publish(self.kind, line, tail);
        }
    }
}
