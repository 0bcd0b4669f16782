//! The line splitter, fed the way the pump feeds it (chunk by chunk, raw or
//! through a decoder), against the definition of a line: every line comes
//! out once, in order, cut into pieces of at most `max_line_bytes` at
//! character boundaries, whatever the chunk boundaries, invalid UTF-8 and
//! CR/LF mixes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkit_fuzz::{decode_at_once, decoder, reference_lines, reference_pieces, Input, ENCODINGS};

fuzz_target!(|bytes: &[u8]| {
    let Some(input) = Input::parse(bytes) else {
        return;
    };
    // 0..=39: lines at, around and far past the cap (below 4 counts as 4).
    let max = usize::from(input.options % 40);
    let cap = max.max(4);
    let chunks = input.chunks();
    // 0: undecoded (the default); 1..=9: through a decoder.
    let which = usize::from(input.extra) % (ENCODINGS.len() + 1);
    if which == 0 {
        let got = pkit::fuzzing::split_chunks(max, &chunks, None, input.sizes);
        let mut got = got.iter();
        for (n, raw) in reference_lines(input.data).into_iter().enumerate() {
            // One line's pieces: partial ones, then a whole one.
            let mut joined = String::new();
            let mut pieces = Vec::new();
            loop {
                let piece = got.next().unwrap_or_else(|| panic!("line {n} missing"));
                joined.push_str(&piece.text);
                pieces.push((piece.text.as_str(), piece.partial));
                // Invalid bytes come out as U+FFFD (3 bytes for one).
                assert!(piece.text.len() <= 3 * cap, "line {n}: piece too long");
                if !piece.partial {
                    break;
                }
                assert!(!piece.text.is_empty(), "line {n}: empty partial piece");
            }
            assert_eq!(joined, String::from_utf8_lossy(raw), "line {n}");
            if let Ok(text) = std::str::from_utf8(raw) {
                assert_eq!(pieces, reference_pieces(text, max), "line {n}");
            }
        }
        assert!(got.next().is_none(), "more lines than the input has");
    } else {
        let encoding = ENCODINGS[which - 1];
        let d = decoder(encoding);
        let got = pkit::fuzzing::split_chunks(max, &chunks, Some(d), input.sizes);
        let text = decode_at_once(encoding, input.data);
        let want: Vec<(String, bool)> = reference_lines(text.as_bytes())
            .into_iter()
            .flat_map(|l| {
                let l = std::str::from_utf8(l).expect("a line of text is text");
                reference_pieces(l, max)
                    .into_iter()
                    .map(|(p, partial)| (p.to_owned(), partial))
                    .collect::<Vec<_>>()
            })
            .collect();
        let got: Vec<(String, bool)> = got.into_iter().map(|l| (l.text, l.partial)).collect();
        assert_eq!(got, want);
    }
});
