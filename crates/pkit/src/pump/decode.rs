//! Decoding a byte stream into text before it is split into lines.

use std::fmt;
use std::sync::Arc;

/// Turns a stream's bytes into text, chunk by chunk.
///
/// A decoder is stateful: a character split across two reads must come out
/// whole, so keep the incomplete tail of `input` until the next call.
/// `last` is true once, at end of file. Each stream of each run gets its
/// own decoder (see [`DecoderFactory`]).
///
/// A decoder that panics is disabled, as a line callback that panics is:
/// the panic is caught (never resumed in the caller), its stream's lines
/// end there (its line callback and the line stream get no more of that
/// stream), and the stream goes on being read, captured and teed; the run
/// goes on. So is a [`DecoderFactory`] that panics making a stream's
/// decoder: that stream has no lines.
pub trait Decoder: Send {
    /// Decodes `input`, appending the text to `out`.
    fn decode(&mut self, input: &[u8], last: bool, out: &mut String);
}

/// `factory.make()` with a panic caught: `None` then. A factory that
/// panics is contained as a decoder that panics is (see [`Decoder`]).
pub(super) fn made(factory: &DecoderFactory) -> Option<Box<dyn Decoder>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| factory.make())).ok()
}

/// `d.decode(..)` with a panic caught: `false` then (see [`Decoder`]).
pub(super) fn contained(d: &mut dyn Decoder, input: &[u8], last: bool, out: &mut String) -> bool {
    let call = std::panic::AssertUnwindSafe(|| d.decode(input, last, out));
    std::panic::catch_unwind(call).is_ok()
}

/// Makes a fresh [`Decoder`] for each stream of each run.
#[derive(Clone)]
pub struct DecoderFactory(pub(crate) Arc<dyn Fn() -> Box<dyn Decoder> + Send + Sync>);

impl DecoderFactory {
    /// A factory calling `make` for every stream.
    pub fn new<D, F>(make: F) -> DecoderFactory
    where
        D: Decoder + 'static,
        F: Fn() -> D + Send + Sync + 'static,
    {
        DecoderFactory(Arc::new(move || Box::new(make())))
    }

    /// The default: UTF-8, invalid sequences replaced by U+FFFD.
    pub fn utf8() -> DecoderFactory {
        DecoderFactory::new(Utf8Decoder::default)
    }

    /// A legacy encoding from `encoding_rs` (feature `encoding`), e.g.
    /// `encoding_rs::WINDOWS_1252` or `encoding_rs::SHIFT_JIS`.
    #[cfg(feature = "encoding")]
    pub fn encoding(encoding: &'static encoding_rs::Encoding) -> DecoderFactory {
        DecoderFactory::new(move || EncodingDecoder(encoding.new_decoder_without_bom_handling()))
    }

    pub(crate) fn make(&self) -> Box<dyn Decoder> {
        (self.0)()
    }
}

impl fmt::Debug for DecoderFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecoderFactory(..)")
    }
}

/// UTF-8 with replacement of invalid sequences, correct across chunk
/// boundaries.
#[derive(Debug, Default)]
pub struct Utf8Decoder {
    carry: Vec<u8>,
}

impl Decoder for Utf8Decoder {
    fn decode(&mut self, input: &[u8], last: bool, out: &mut String) {
        let joined;
        let mut bytes = if self.carry.is_empty() {
            input
        } else {
            self.carry.extend_from_slice(input);
            joined = std::mem::take(&mut self.carry);
            &joined[..]
        };
        loop {
            match std::str::from_utf8(bytes) {
                Ok(s) => {
                    out.push_str(s);
                    return;
                }
                Err(e) => {
                    let (good, rest) = bytes.split_at(e.valid_up_to());
                    // SAFETY-free: `good` was just validated.
                    out.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            bytes = &rest[n..];
                        }
                        None if last => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            return;
                        }
                        None => {
                            // An incomplete sequence at the end: keep it.
                            self.carry = rest.to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(feature = "encoding")]
struct EncodingDecoder(encoding_rs::Decoder);

#[cfg(feature = "encoding")]
impl Decoder for EncodingDecoder {
    fn decode(&mut self, input: &[u8], last: bool, out: &mut String) {
        let mut input = input;
        loop {
            let need = self
                .0
                .max_utf8_buffer_length(input.len())
                .unwrap_or(input.len() * 3 + 16);
            out.reserve(need);
            let (result, read, _) = self.0.decode_to_string(input, out, last);
            input = &input[read..];
            if result == encoding_rs::CoderResult::InputEmpty {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_across_chunks_and_invalid() {
        let mut d = Utf8Decoder::default();
        let mut out = String::new();
        let e = "é".as_bytes();
        d.decode(&[b'a', e[0]], false, &mut out);
        d.decode(&[e[1], 0xFF, b'b'], false, &mut out);
        d.decode(&[0xE2, 0x82], true, &mut out);
        assert_eq!(out, "aé\u{FFFD}b\u{FFFD}");
    }
}
