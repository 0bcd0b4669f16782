//! The CLI's duration parser (`--timeout 1m30s`): never panics on any
//! text, refuses negatives, and gives the exact sum for well-formed
//! compound durations built from the input.
#![no_main]

#[path = "../../crates/pkit-cli/src/duration.rs"]
#[allow(dead_code)]
mod duration;

use std::time::Duration;

use libfuzzer_sys::fuzz_target;

const UNITS: [(&str, u128); 5] = [
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];

fuzz_target!(|bytes: &[u8]| {
    // Any text.
    if let Ok(text) = std::str::from_utf8(bytes) {
        let got = duration::parse(text);
        if text.trim().starts_with('-') {
            assert!(got.is_err(), "{text:?}: negative accepted");
        }
        if duration::is_unitless(text) {
            assert!(got.is_ok(), "{text:?}: a plain number refused: {got:?}");
        }
    }
    // A well-formed duration: terms of a whole number and a unit, or one
    // plain number (seconds), with blanks and a `+` around it.
    let Some((&first, rest)) = bytes.split_first() else {
        return;
    };
    let mut text = String::new();
    if first & 1 == 1 {
        text.push(' ');
    }
    if first & 2 == 2 {
        text.push('+');
    }
    let mut want: u128 = 0;
    let terms: Vec<&[u8]> = rest.chunks(3).take(4).filter(|c| c.len() == 3).collect();
    if first & 4 == 4 || terms.is_empty() {
        let n = u32::from(first) * 7919;
        text.push_str(&n.to_string());
        want = u128::from(n) * 1_000_000_000;
    } else {
        for t in terms {
            let n = u16::from_le_bytes([t[0], t[1]]);
            let (unit, scale) = UNITS[usize::from(t[2]) % UNITS.len()];
            text.push_str(&format!("{n}{unit}"));
            want += u128::from(n) * scale;
        }
    }
    if first & 8 == 8 {
        text.push('\t');
    }
    let got = duration::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    // Parsed through f64: exact to well under a microsecond here.
    let diff = got.as_nanos().abs_diff(want);
    assert!(
        diff <= want / 1_000_000_000_000 + 1_000,
        "{text:?}: {got:?}, want {:?}",
        Duration::from_nanos(want as u64)
    );
});
