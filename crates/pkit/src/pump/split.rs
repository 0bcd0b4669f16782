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

use std::sync::Arc;

use super::{Line, StreamKind};

/// Where one line (or piece of an over-long line) lies in a batch's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
    /// More of the same line follows (the cap cut it).
    partial: bool,
}

/// Whole lines of one stream, in order, sharing one text buffer.
///
/// Splitting a batch (when the queue has room for only part of it) shares
/// the buffer instead of copying it.
#[derive(Debug)]
pub(crate) struct Batch {
    stream: StreamKind,
    shared: Arc<BatchText>,
    /// The lines `next..end` of `shared` are this batch's, not yet taken.
    next: usize,
    end: usize,
}

#[derive(Debug)]
struct BatchText {
    text: String,
    spans: Vec<Span>,
}

impl Batch {
    fn new(stream: StreamKind, text: String, spans: Vec<Span>) -> Batch {
        let end = spans.len();
        Batch {
            stream,
            shared: Arc::new(BatchText { text, spans }),
            next: 0,
            end,
        }
    }

    /// Lines not yet taken.
    pub(crate) fn len(&self) -> usize {
        self.end - self.next
    }

    /// The text of the lines not yet taken, without taking them.
    pub(crate) fn texts(&self) -> impl Iterator<Item = &str> {
        let BatchText { text, spans } = &*self.shared;
        spans[self.next..self.end]
            .iter()
            .map(|s| text.get(s.start..s.end).unwrap_or_default())
    }

    /// Takes the next line.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Line> {
        if self.next == self.end {
            return None;
        }
        let span = self.shared.spans[self.next];
        self.next += 1;
        // A batch of one line (what a trickle of lines brings) gives its
        // buffer to the line, no copy. (Checked before `get_mut`, which
        // costs two atomic operations: not something to do per line.)
        let whole = self.shared.spans.len() == 1 && span.start == 0;
        let own = if whole {
            Arc::get_mut(&mut self.shared)
        } else {
            None
        };
        let text = match own {
            Some(own) => {
                let mut text = std::mem::take(&mut own.text);
                text.truncate(span.end);
                text
            }
            None => self
                .shared
                .text
                .get(span.start..span.end)
                .unwrap_or_default()
                .to_owned(),
        };
        Some(Line {
            stream: self.stream,
            text,
            partial: span.partial,
        })
    }

    /// Copies this batch's lines into a buffer of their own when they are
    /// a small part of the one they share (after the rest was dropped), so
    /// a queue of a few lines never holds whole read buffers.
    pub(crate) fn compact(&mut self) {
        let spans = &self.shared.spans[self.next..self.end];
        let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
            return;
        };
        let (from, to) = (first.start, last.end);
        if (to - from) * 2 >= self.shared.text.capacity() {
            return;
        }
        let text = self
            .shared
            .text
            .get(from..to)
            .unwrap_or_default()
            .to_owned();
        let spans = spans
            .iter()
            .map(|s| Span {
                start: s.start - from,
                end: s.end - from,
                partial: s.partial,
            })
            .collect();
        *self = Batch::new(self.stream, text, spans);
    }

    /// The text buffer back, emptied, once every line was taken and no
    /// other batch shares it (see [`Splitter::give_spare`]).
    pub(crate) fn into_spare(self) -> Option<Vec<u8>> {
        if self.next != self.end {
            return None;
        }
        let text = Arc::try_unwrap(self.shared).ok()?.text;
        let mut bytes = text.into_bytes();
        bytes.clear();
        (bytes.capacity() > 0).then_some(bytes)
    }

    /// Moves the first `n` lines not yet taken into a batch of their own
    /// (sharing the buffer), leaving the rest here.
    pub(crate) fn split_front(&mut self, n: usize) -> Batch {
        let n = n.min(self.len());
        let front = Batch {
            stream: self.stream,
            shared: self.shared.clone(),
            next: self.next,
            end: self.next + n,
        };
        self.next += n;
        front
    }
}

/// How many emptied batch buffers a splitter holds for its next batches.
const SPARES: usize = 2;

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
        }
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

    fn split_lines(&mut self, stream: StreamKind, at_end: bool) -> Option<Batch> {
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
        (!spans.is_empty()).then(|| self.take(start, spans, stream))
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
    fn take(&mut self, done: usize, mut spans: Vec<Span>, stream: StreamKind) -> Batch {
        let bytes = if done * 2 >= self.buf.capacity() {
            // Well filled: hand the buffer itself over, carry the tail in a
            // new one as big (the next read needs the room anyway).
            let room = self.buf.capacity();
            let mut rest = self
                .spare_within(room, usize::MAX)
                .unwrap_or_else(|| Vec::with_capacity(room));
            rest.extend_from_slice(&self.buf[done..]);
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
        Batch::new(stream, text, spans)
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
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> Vec<(String, bool)> {
        let mut s = Splitter::new(max);
        let mut out = Vec::new();
        let mut take = |b: Option<Batch>| {
            if let Some(mut b) = b {
                while let Some(l) = b.pop() {
                    out.push((l.text, l.partial));
                }
            }
        };
        for c in chunks {
            s.extend(c);
            take(s.split(StreamKind::Stdout));
        }
        take(s.finish(StreamKind::Stdout));
        out
    }

    fn whole(v: &[&str]) -> Vec<(String, bool)> {
        v.iter().map(|s| (s.to_string(), false)).collect()
    }

    #[test]
    fn lines_across_chunks() {
        assert_eq!(
            split(&[b"a\nb", b"c\r\n", b"\nd"], 100),
            whole(&["a", "bc", "", "d"])
        );
        assert_eq!(split(&[b"x\n"], 100), whole(&["x"]));
        assert_eq!(split(&[b""], 100), whole(&[]));
        assert_eq!(split(&[b"\r\r\n"], 100), whole(&["\r"]));
        assert_eq!(
            split(&[b"a\n", b"b\nc\n", b"d"], 100),
            whole(&["a", "b", "c", "d"])
        );
    }

    #[test]
    fn long_lines_are_cut_into_pieces() {
        let out = split(&[b"abcdefghij", b"klm\nz\n"], 4);
        assert_eq!(
            out,
            vec![
                ("abcd".into(), true),
                ("efgh".into(), true),
                ("ijkl".into(), true),
                ("m".into(), false),
                ("z".into(), false)
            ]
        );
        // A tail longer than the cap at end of input.
        let out = split(&[b"abcdefghij"], 4);
        assert_eq!(
            out,
            vec![
                ("abcd".into(), true),
                ("efgh".into(), true),
                ("ij".into(), false)
            ]
        );
    }

    /// Review F10: the `\r` of a CRLF ending does not count against the
    /// cap, however the input is chunked.
    #[test]
    fn a_crlf_line_at_the_cap_is_one_line() {
        let want = whole(&["abcd", "xy"]);
        for chunks in [
            &[&b"abcd\r\nxy\r\n"[..]][..],
            &[b"abcd\r", b"\nxy\r\n"],
            &[b"abcd", b"\r\nxy\r\n"],
            &[b"ab", b"cd\r", b"\n", b"xy\r\n"],
        ] {
            assert_eq!(split(chunks, 4), want, "{chunks:?}");
        }
        // At multiples of the cap: pieces, the last one whole.
        let want = vec![("abcd".to_string(), true), ("efgh".to_string(), false)];
        assert_eq!(split(&[b"abcdefgh\r\n"], 4), want);
        assert_eq!(split(&[b"abcdefgh\r", b"\n"], 4), want);
        assert_eq!(split(&[b"abcdefgh", b"\r\n"], 4), want);
        // A lone `\r` is text: it counts, and is cut like any byte.
        assert_eq!(
            split(&[b"abcd\rx\n"], 4),
            vec![("abcd".to_string(), true), ("\rx".to_string(), false)]
        );
        assert_eq!(
            split(&[b"abcd\r", b"x\n"], 4),
            vec![("abcd".to_string(), true), ("\rx".to_string(), false)]
        );
    }

    /// Review (appendix B): the split never depends on how the input is
    /// chunked.
    #[test]
    fn chunking_never_changes_the_split() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet: &[&[u8]] = &[
            b"a",
            b"b",
            b"\n",
            b"\r",
            b"\r\n",
            "\u{e9}".as_bytes(),
            "\u{20ac}".as_bytes(),
            "\u{1F600}".as_bytes(),
            b"\xff",
            b"\xe2\x82",
        ];
        for case in 0..20_000 {
            let mut input = Vec::new();
            for _ in 0..rnd() % 40 {
                input.extend_from_slice(alphabet[(rnd() % alphabet.len() as u64) as usize]);
            }
            let max = 4 + (rnd() % 6) as usize;
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut i = 0;
            while i < input.len() {
                let j = (i + 1 + (rnd() % 7) as usize).min(input.len());
                chunks.push(&input[i..j]);
                i = j;
            }
            assert_eq!(
                split(&[&input], max),
                split(&chunks, max),
                "case {case}, max {max}, input {input:?}"
            );
        }
    }

    #[test]
    fn cuts_respect_utf8() {
        // "ééé" is 6 bytes; a cap of 5 must not split the third é.
        let out = split(&["ééé\n".as_bytes()], 5);
        assert_eq!(out, vec![("éé".into(), true), ("é".into(), false)]);
    }

    #[test]
    fn invalid_sequences_are_replaced_per_line() {
        assert_eq!(
            split(&[b"caf\xe9\nok\n\xff"], 100),
            whole(&["caf\u{FFFD}", "ok", "\u{FFFD}"])
        );
        // A character split across reads comes out whole.
        let e = "é".as_bytes();
        assert_eq!(split(&[&[b'a', e[0]], &[e[1], b'\n']], 100), whole(&["aé"]));
    }

    /// The partial line a prompt probe sees, and how many lines came
    /// before it (pieces of a cut line don't count).
    #[test]
    fn the_tail_and_its_line_number() {
        let mut s = Splitter::new(4);
        s.extend(b"ab\ncdefgh\nPass");
        let _ = s.split(StreamKind::Stdout);
        assert_eq!(s.tail(), (2, &b"Pass"[..]));
        s.extend(b"\n");
        let _ = s.split(StreamKind::Stdout);
        assert_eq!(s.tail(), (3, &b""[..]));
    }

    #[test]
    fn a_batch_splits_at_a_line() {
        let mut s = Splitter::new(100);
        s.extend(b"one\ntwo\nthree\n");
        let mut b = s.split(StreamKind::Stderr).unwrap();
        let mut front = b.split_front(2);
        assert_eq!((front.len(), b.len()), (2, 1));
        assert_eq!(front.pop().unwrap().text, "one");
        assert_eq!(front.pop().unwrap().text, "two");
        assert!(front.pop().is_none());
        let three = b.pop().unwrap();
        assert_eq!(
            (three.text.as_str(), three.stream),
            ("three", StreamKind::Stderr)
        );
        let texts: Vec<_> = s.finish(StreamKind::Stdout).into_iter().collect();
        assert!(texts.is_empty());
    }

    /// A batch's buffer, given back once its lines are taken, holds the
    /// next batch of its size class (no new allocation).
    #[test]
    fn a_spare_comes_back_into_use() {
        let mut s = Splitter::new(1 << 20);
        let line = [b'x'; 127];
        let feed = |s: &mut Splitter, n: usize| {
            s.input().reserve(64 * 1024);
            for _ in 0..n {
                s.extend(&line);
                s.extend(b"\n");
            }
            s.split(StreamKind::Stdout).unwrap()
        };
        let mut b = feed(&mut s, 100);
        while b.pop().is_some() {}
        let spare = b.into_spare().expect("a spare");
        let ptr = spare.as_ptr();
        s.give_spare(spare);
        let b = feed(&mut s, 90);
        assert_eq!(b.shared.text.as_ptr(), ptr);
    }
}
