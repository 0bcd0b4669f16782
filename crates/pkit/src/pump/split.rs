//! Splitting a byte stream into lines: the one definition of "a line".
//!
//! A line ends at `\n`; the `\n` and one `\r` before it are removed. A final
//! piece with no newline is still a line (emitted at end of file). A line
//! longer than the cap is emitted in pieces of at most `max` bytes, each
//! cut at a UTF-8 character boundary where one exists; every piece but the
//! last is marked partial. Memory use is bounded by the cap, never by the
//! length of a line.

/// One line (or piece of an over-long line) as bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RawLine<'a> {
    pub bytes: &'a [u8],
    /// More of the same line follows (the cap cut it).
    pub partial: bool,
}

/// Incremental splitter: feed chunks, receive complete lines.
#[derive(Debug)]
pub(crate) struct Splitter {
    /// The unterminated tail of the input so far (at most `max` bytes).
    pending: Vec<u8>,
    max: usize,
}

impl Splitter {
    pub(crate) fn new(max: usize) -> Splitter {
        Splitter {
            pending: Vec::new(),
            max: max.max(4),
        }
    }

    /// Splits `chunk`, calling `emit` for every complete line (and every
    /// piece cut by the cap).
    pub(crate) fn feed(&mut self, mut chunk: &[u8], emit: &mut dyn FnMut(RawLine<'_>)) {
        while !chunk.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    let (head, rest) = (&chunk[..i], &chunk[i + 1..]);
                    chunk = rest;
                    if self.pending.is_empty() && head.len() <= self.max {
                        // The common case: the line is whole in this chunk.
                        emit(RawLine {
                            bytes: strip_cr(head),
                            partial: false,
                        });
                    } else {
                        self.push_capped(head, emit);
                        let line = std::mem::take(&mut self.pending);
                        emit(RawLine {
                            bytes: strip_cr(&line),
                            partial: false,
                        });
                        self.pending = line;
                        self.pending.clear();
                    }
                }
                None => {
                    self.push_capped(chunk, emit);
                    chunk = &[];
                }
            }
        }
    }

    /// End of input: the unterminated remainder, if any, is the last line.
    pub(crate) fn finish(&mut self, emit: &mut dyn FnMut(RawLine<'_>)) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            emit(RawLine {
                bytes: strip_cr(&line),
                partial: false,
            });
        }
    }

    /// Appends to the pending line, emitting full pieces when the cap is
    /// reached.
    fn push_capped(&mut self, mut bytes: &[u8], emit: &mut dyn FnMut(RawLine<'_>)) {
        while self.pending.len() + bytes.len() > self.max {
            let room = self.max - self.pending.len();
            self.pending.extend_from_slice(&bytes[..room]);
            bytes = &bytes[room..];
            let cut = char_boundary(&self.pending);
            let carry = self.pending.split_off(cut);
            emit(RawLine {
                bytes: &self.pending,
                partial: true,
            });
            self.pending.clear();
            self.pending.extend_from_slice(&carry);
        }
        self.pending.extend_from_slice(bytes);
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
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
        let mut emit =
            |l: RawLine<'_>| out.push((String::from_utf8_lossy(l.bytes).into_owned(), l.partial));
        for c in chunks {
            s.feed(c, &mut emit);
        }
        s.finish(&mut emit);
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
    }

    #[test]
    fn cuts_respect_utf8() {
        // "ééé" is 6 bytes; a cap of 5 must not split the third é.
        let out = split(&["ééé\n".as_bytes()], 5);
        assert_eq!(out, vec![("éé".into(), true), ("é".into(), false)]);
    }
}
