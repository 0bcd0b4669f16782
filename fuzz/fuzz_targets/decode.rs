//! pkit's decoders (UTF-8 with replacement, and the `encoding` feature's
//! legacy encodings) fed in arbitrary chunks give exactly what decoding
//! the whole input at once gives: a character split across reads comes
//! out whole, invalid sequences are replaced the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkit_fuzz::{decode_at_once, decoder, Input, ENCODINGS};

fuzz_target!(|bytes: &[u8]| {
    let Some(input) = Input::parse(bytes) else {
        return;
    };
    let encoding = ENCODINGS[usize::from(input.options) % ENCODINGS.len()];
    let mut d = decoder(encoding);
    let mut out = String::new();
    for chunk in input.chunks() {
        d.decode(chunk, false, &mut out);
    }
    d.decode(&[], true, &mut out);
    assert_eq!(out, decode_at_once(encoding, input.data));
});
