//! Shared pieces of pkit's fuzz targets: turning fuzz input into chunked
//! reads, the decoders under test, and the simple reference splitter the
//! real one is compared with.

use pkit::{Decoder, DecoderFactory, Utf8Decoder};

/// Fuzz input read as: one byte of options, a byte whose low 4 bits are a
/// count `c` of chunk-size bytes (its high 4 bits: more options), `c`
/// chunk sizes (1..=256), then the data, cut into chunks of those sizes in
/// turn (one chunk when `c` is 0).
pub struct Input<'a> {
    /// The first byte (the target's own choices).
    pub options: u8,
    /// The high 4 bits of the second byte (more choices).
    pub extra: u8,
    /// The chunk-size bytes (also used to vary how batches are taken).
    pub sizes: &'a [u8],
    /// The stream's bytes.
    pub data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn parse(bytes: &'a [u8]) -> Option<Input<'a>> {
        let (&options, rest) = bytes.split_first()?;
        let (&count, rest) = rest.split_first()?;
        let n = usize::from(count % 16).min(rest.len());
        let (sizes, data) = rest.split_at(n);
        Some(Input {
            options,
            extra: count >> 4,
            sizes,
            data,
        })
    }

    /// The data in chunks, as successive reads would bring it.
    pub fn chunks(&self) -> Vec<&'a [u8]> {
        if self.sizes.is_empty() {
            return vec![self.data];
        }
        let mut out = Vec::new();
        let mut rest = self.data;
        let mut i = 0;
        while !rest.is_empty() {
            let n = (usize::from(self.sizes[i % self.sizes.len()]) + 1).min(rest.len());
            let (a, b) = rest.split_at(n);
            out.push(a);
            rest = b;
            i += 1;
        }
        out
    }
}

/// The encodings the decoder targets cover (`None`: pkit's UTF-8 decoder).
pub const ENCODINGS: [Option<&encoding_rs::Encoding>; 9] = [
    None,
    Some(encoding_rs::WINDOWS_1252),
    Some(encoding_rs::SHIFT_JIS),
    Some(encoding_rs::EUC_JP),
    Some(encoding_rs::ISO_2022_JP),
    Some(encoding_rs::GB18030),
    Some(encoding_rs::BIG5),
    Some(encoding_rs::UTF_16LE),
    Some(encoding_rs::UTF_16BE),
];

/// pkit's decoder for `encoding`, as a command's stream gets it.
pub fn decoder(encoding: Option<&'static encoding_rs::Encoding>) -> Box<dyn Decoder> {
    match encoding {
        None => pkit::fuzzing::decoder(&DecoderFactory::new(Utf8Decoder::default)),
        Some(e) => pkit::fuzzing::decoder(&DecoderFactory::encoding(e)),
    }
}

/// The whole input decoded at once: what chunked decoding must give.
pub fn decode_at_once(encoding: Option<&'static encoding_rs::Encoding>, data: &[u8]) -> String {
    match encoding {
        None => String::from_utf8_lossy(data).into_owned(),
        Some(e) => e.decode_without_bom_handling(data).0.into_owned(),
    }
}

/// The lines of `data`, by the definition: each ends at `\n`, which is
/// removed with one `\r` before it; a last piece with no `\n` is a line
/// too (its one trailing `\r` also removed). Raw bytes, uncut.
pub fn reference_lines(data: &[u8]) -> Vec<&[u8]> {
    let strip = |l: &'_ [u8]| -> usize { l.len() - usize::from(l.last() == Some(&b'\r')) };
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        out.push(&rest[..strip(&rest[..i])]);
        rest = &rest[i + 1..];
    }
    if !rest.is_empty() {
        out.push(&rest[..strip(rest)]);
    }
    out
}

/// A line of valid text cut by the cap: pieces of at most `max` bytes
/// (the cap is at least 4), each as long as it can be without splitting
/// a character; all but the last are partial.
pub fn reference_pieces(line: &str, max: usize) -> Vec<(&str, bool)> {
    let max = max.max(4);
    let mut out = Vec::new();
    let mut rest = line;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push((&rest[..cut], true));
        rest = &rest[cut..];
    }
    out.push((rest, false));
    out
}
