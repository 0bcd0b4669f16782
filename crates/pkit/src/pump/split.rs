//! Splitting a byte stream into lines: the one definition of "a line".
//!
//! A line ends at `\n`; the `\n` and one `\r` before it are removed. A final
//! piece with no newline is still a line (emitted at end of file). A line
//! longer than the cap is emitted in pieces of at most `max` bytes, each
//! cut at a UTF-8 character boundary where one exists; every piece but the
//! last is marked partial. The cap counts the line's text, not its ending
//! (`\r\n` included). Memory use is bounded by the cap, never by the
//! length of a line.
//!
//! The splitter doesn't make a `String` per line. What one read brings is
//! split into a [`Batch`]: the text of its whole lines in one buffer (the
//! very buffer the pipe was read into, when that is well filled) and where
//! each line lies in it. Lines become `String`s only when a consumer takes
//! them, on the consumer's own thread, so a line's allocation and its
//! release happen on one thread (the allocator's fast path) and the reader
//! makes a few allocations per read instead of one per line.

use super::batch::{Batch, Span};
use super::StreamKind;

/// How many emptied batch buffers a splitter holds for its next batches
/// and reads: one being read into, one or two queued, one handed out.
/// (With fewer, most reads would allocate a buffer of 4 KiB or more, and
/// such allocations and frees set off the allocator's consolidation.)
const SPARES: usize = 4;

/// The read classes (see [`Splitter::read_room`]): the smallest, the first
/// (most streams are small, stderr often empty) and the largest. Lines read
/// in place keep to these small reads: each read's buffer travels to the
/// consumer with its lines, so big reads would hold megabytes in the queue
/// (a line consumer gains nothing from them; a capture or a forward does).
const MIN_CLASS: usize = 4 * 1024;
const FIRST_CLASS: usize = 8 * 1024;
pub(super) const MAX_CLASS: usize = 64 * 1024;

/// Incremental splitter: append input, take batches of complete lines.
#[derive(Debug)]
pub(crate) struct Splitter {
    /// The unterminated tail of the input so far (at most `max` bytes),
    /// then input not yet split.
    buf: Vec<u8>,
    /// `buf[..scanned]` holds no newline (the carried tail).
    scanned: usize,
    max: usize,
    /// Lines completed so far (pieces of a cut line don't count).
    lines_done: u64,
    /// Emptied batch buffers the consumer gave back, for the next
    /// batches' text (see [`give_spare`](Self::give_spare)).
    spares: Vec<Vec<u8>>,
    /// How many lines the last batch had: the next one's first guess.
    last_spans: usize,
    /// The read class: a power of two, what the next read in place is
    /// expected to bring at most (see [`read_room`](Self::read_room)).
    class: usize,
    /// The room the last [`read_room`](Self::read_room) offered.
    room: usize,
    /// The last piece split off was partial: the next batch begins with a
    /// later piece of that line (see `Line::continued`).
    in_cut: bool,
    /// A line ending in `\r` was told before its `\n` could come (at the
    /// process's exit, see `owing.rs`): a `\n` as the next byte is that
    /// line's ending, not an empty line.
    skip_lf: bool,
}

impl Splitter {
    pub(crate) fn new(max: usize) -> Splitter {
        Splitter {
            buf: Vec::new(),
            scanned: 0,
            max: max.max(4),
            lines_done: 0,
            spares: Vec::new(),
            last_spans: 0,
            class: FIRST_CLASS,
            room: 0,
            in_cut: false,
            skip_lf: false,
        }
    }

    /// Makes the input buffer ready for one read in place, and returns
    /// where that read's bytes will start (the carried tail's length).
    ///
    /// The buffer is sized to the read class: room for the tail and at
    /// least half a class, a power of two (or a spare of up to twice that).
    /// A read that brings about as much as the last ones then fills at
    /// least half of the buffer, and the buffer itself becomes the batch
    /// (see `take`) instead of its lines being copied out. The class is the
    /// next power of two of the last read when that is more, doubled after
    /// a read that filled its room, and one step less after a read under
    /// half of it, from [`MIN_CLASS`] to [`MAX_CLASS`] (see
    /// [`note_read`](Self::note_read)).
    pub(crate) fn read_room(&mut self) -> usize {
        let tail = self.buf.len();
        let want = self.class_room(tail);
        if !(want..want * 2).contains(&self.buf.capacity()) {
            // Sized for another class (or empty): the tail moves to one
            // that suits, and the old buffer is kept as a spare.
            let fresh = self.carry(tail, want);
            let mut old = std::mem::replace(&mut self.buf, fresh);
            if old.capacity() > 0 {
                old.clear();
                self.give_spare(old);
            }
        }
        self.room = self.buf.capacity() - tail;
        tail
    }

    /// Notes what the read after [`read_room`](Self::read_room) brought,
    /// for the next read's class; true when it filled its room (the pipe
    /// may hold more).
    pub(crate) fn note_read(&mut self, n: usize) -> bool {
        let filled = n >= self.room;
        let fit = n.next_power_of_two().clamp(MIN_CLASS, MAX_CLASS);
        // Up at once, down a step a read: a class that fell to one small
        // read's size would make the next bigger read fill its room and
        // take a second read (measured: twice the reads, with more reads
        // copied). A filled room (smaller than the class when a long
        // line's tail takes part of it) doubles the class whatever the
        // read's size.
        self.class = if filled {
            (fit.max(self.class) * 2).min(MAX_CLASS)
        } else if fit < self.class {
            (self.class / 2).max(MIN_CLASS)
        } else {
            fit
        };
        filled
    }

    /// The capacity a read buffer of the class carrying `tail` bytes gets.
    fn class_room(&self, tail: usize) -> usize {
        (tail + self.class / 2).next_power_of_two().max(self.class)
    }

    /// A buffer of capacity `want` (a spare of up to twice that, else a new
    /// one) holding `buf[len - tail..]`.
    fn carry(&mut self, tail: usize, want: usize) -> Vec<u8> {
        let mut fresh = self
            .spare_within(want, want * 2 - 1)
            .unwrap_or_else(|| Vec::with_capacity(want));
        fresh.extend_from_slice(&self.buf[self.buf.len() - tail..]);
        fresh
    }

    /// Offers an emptied buffer for a later batch's text: used when its
    /// room suits the lines (never more than twice their size, the rule a
    /// handed-over read buffer keeps too), so a stream's batches reuse a
    /// few buffers instead of allocating one per read (and freeing it on
    /// the consumer's thread). Beyond [`SPARES`], the oldest is let go.
    pub(crate) fn give_spare(&mut self, spare: Vec<u8>) {
        if self.spares.len() >= SPARES {
            self.spares.remove(0);
        }
        self.spares.push(spare);
    }

    /// A held spare with room for `min` bytes and at most `max`.
    fn spare_within(&mut self, min: usize, max: usize) -> Option<Vec<u8>> {
        let i = self
            .spares
            .iter()
            .position(|v| (min..=max).contains(&v.capacity()))?;
        Some(self.spares.swap_remove(i))
    }

    /// The input buffer: append to it (read straight into it), then call
    /// [`split`](Self::split).
    pub(crate) fn input(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The input buffer as it stands (bytes appended since the last split
    /// start at the length it had then).
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// After a split: the text written since the last line ending, and how
    /// many lines came before it.
    pub(crate) fn tail(&self) -> (u64, &[u8]) {
        (self.lines_done, &self.buf)
    }

    /// Appends input.
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Takes every complete line so far (and every piece cut by the cap);
    /// the unterminated rest waits for more input.
    pub(crate) fn split(&mut self, stream: StreamKind) -> Option<Batch> {
        self.split_lines(stream, false)
    }

    /// End of input: everything left, the unterminated last line included.
    pub(crate) fn finish(&mut self, stream: StreamKind) -> Option<Batch> {
        self.split_lines(stream, true)
    }

    /// See `skip_lf`: called after a [`finish`](Self::finish) whose last
    /// line ended in `\r`.
    pub(crate) fn skip_next_lf(&mut self) {
        self.skip_lf = true;
    }

    fn split_lines(&mut self, stream: StreamKind, at_end: bool) -> Option<Batch> {
        if self.skip_lf && !self.buf.is_empty() {
            // The tail was empty (finished): the first byte is the next.
            self.skip_lf = false;
            if self.buf[0] == b'\n' {
                self.buf.remove(0);
                self.scanned = 0;
            }
        }
        // Sized as the last batch was: a stream's reads bring about as
        // many lines each time, and growing the list line by line costs a
        // reallocation at every doubling.
        let mut spans = Vec::with_capacity(self.last_spans);
        let mut start = 0;
        let push_line = |spans: &mut Vec<Span>, start: usize, end: usize| {
            let end = if end > start && self.buf[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            spans.push(Span {
                start,
                end,
                partial: false,
            });
        };
        // The cap applies to a line's text: a `\r` right before the `\n` is
        // part of the line ending, not of the text (a CRLF line exactly at
        // the cap is one line). In the unterminated tail, a last `\r` may
        // be such an ending: it waits for the next byte before it counts.
        let text_end = |buf: &[u8], start: usize, end: usize| {
            if end > start && buf[end - 1] == b'\r' {
                end - 1
            } else {
                end
            }
        };
        for i in memchr::memchr_iter(b'\n', &self.buf[self.scanned..]) {
            let end = self.scanned + i;
            start = self.cut_pieces(start, text_end(&self.buf, start, end), &mut spans);
            push_line(&mut spans, start, end);
            start = end + 1;
        }
        let tail_end = text_end(&self.buf, start, self.buf.len());
        start = self.cut_pieces(start, tail_end, &mut spans);
        if at_end && start < self.buf.len() {
            push_line(&mut spans, start, self.buf.len());
            start = self.buf.len();
        }
        self.scanned = self.buf.len() - start;
        self.lines_done += spans.iter().filter(|s| !s.partial).count() as u64;
        self.last_spans = spans.len();
        let continued = self.in_cut;
        if let Some(last) = spans.last() {
            self.in_cut = last.partial;
        }
        (!spans.is_empty()).then(|| self.take(start, spans, stream, continued))
    }

    /// Emits pieces of at most `max` bytes from the line starting at
    /// `start` while more than `max` bytes of it lie before `end`; returns
    /// where the rest of the line starts.
    fn cut_pieces(&self, mut start: usize, end: usize, spans: &mut Vec<Span>) -> usize {
        while end - start > self.max {
            let cut = start + char_boundary(&self.buf[start..start + self.max]).max(1);
            spans.push(Span {
                start,
                end: cut,
                partial: true,
            });
            start = cut;
        }
        start
    }

    /// Makes a batch of `buf[..done]`, keeping the rest as the carried tail.
    fn take(
        &mut self,
        done: usize,
        mut spans: Vec<Span>,
        stream: StreamKind,
        continued: bool,
    ) -> Batch {
        let bytes = if done * 2 >= self.buf.capacity() {
            // Well filled: hand the buffer itself over, carry the tail in
            // one sized to the read class (the next read needs the room).
            let tail = self.buf.len() - done;
            let rest = self.carry(tail, self.class_room(tail));
            let mut bytes = std::mem::replace(&mut self.buf, rest);
            bytes.truncate(done);
            bytes
        } else {
            // Mostly room: copy the lines out, keep the buffer for reading.
            // Into a spare whose room suits them; else into a new buffer
            // sized to the next power of two, so that batches of a size
            // class share buffers when they come back.
            let mut bytes = self
                .spare_within(done, done.saturating_mul(2))
                .unwrap_or_else(|| Vec::with_capacity(done.next_power_of_two()));
            bytes.extend_from_slice(&self.buf[..done]);
            self.buf.drain(..done);
            bytes
        };
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                // Invalid sequences, replaced line by line.
                let bytes = e.into_bytes();
                let mut text = String::with_capacity(bytes.len());
                for s in &mut spans {
                    let from = text.len();
                    text.push_str(&String::from_utf8_lossy(&bytes[s.start..s.end]));
                    s.start = from;
                    s.end = text.len();
                }
                text
            }
        };
        Batch::new(stream, text, spans, continued)
    }
}

/// The largest cut point <= len that does not split a UTF-8 sequence (the
/// whole length when the tail isn't a valid partial sequence).
fn char_boundary(buf: &[u8]) -> usize {
    // Walk back over at most 3 continuation bytes to the sequence start.
    let len = buf.len();
    for back in 1..=4.min(len) {
        let b = buf[len - back];
        if b & 0xC0 != 0x80 {
            // `b` starts a sequence (or is ASCII); does it fit entirely?
            let need = match b {
                0x00..=0x7F => 1,
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            return if need > back { len - back } else { len };
        }
    }
    len
}

#[cfg(test)]
#[path = "split_tests.rs"]
mod tests;
