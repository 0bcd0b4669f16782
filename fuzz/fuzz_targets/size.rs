//! The CLI's size parser (`--memory 512M`): never panics on any text,
//! refuses negatives and zero, and gives the exact byte count (powers of
//! 1024 for K/M/G/T and KiB..., of 1000 for KB...) for well-formed sizes
//! built from the input, in any letter case.
#![no_main]

#[path = "../../crates/pkit-cli/src/size.rs"]
#[allow(dead_code)]
mod size;

use libfuzzer_sys::fuzz_target;

const UNITS: [(&str, u128); 14] = [
    ("", 1),
    ("B", 1),
    ("K", 1 << 10),
    ("KiB", 1 << 10),
    ("KB", 1_000),
    ("M", 1 << 20),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("G", 1 << 30),
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("T", 1 << 40),
    ("TiB", 1 << 40),
    ("TB", 1_000_000_000_000),
];

/// The largest size taken, in bytes.
const MAX_BYTES: u128 = i64::MAX as u128;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let got = size::parse(text);
        if text.trim().starts_with('-') {
            assert!(got.is_err(), "{text:?}: negative accepted");
        }
        if let Ok(n) = got {
            assert!(n >= 1, "{text:?}: zero accepted");
        }
        let _ = size::parse_or_zero(text);
    }
    if bytes.len() < 6 {
        return;
    }
    let n = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let (unit, scale) = UNITS[usize::from(bytes[4]) % UNITS.len()];
    // Letter case from the input's bits; a blank between number and unit.
    let unit: String = unit
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if bytes[5] >> (i % 8) & 1 == 1 {
                c.to_ascii_lowercase()
            } else {
                c
            }
        })
        .collect();
    let sep = if bytes.len() > 6 && bytes[6] & 1 == 1 {
        " "
    } else {
        ""
    };
    let text = format!("{n}{sep}{unit}");
    let want = u128::from(n) * scale;
    match size::parse(&text) {
        // Taken: 1 byte to i64::MAX bytes (the kernel's largest memory
        // cap), counted exactly.
        Ok(got) => {
            assert!(want >= 1 && want <= MAX_BYTES, "{text:?}: {got}");
            assert_eq!(u128::from(got), want, "{text:?}");
        }
        Err(e) => assert!(want == 0 || want > MAX_BYTES, "{text:?}: {e}"),
    }
    // A size shown to the user reads back as about the same size (one
    // decimal: within 5 %).
    if n > 0 {
        let orig = u64::from(n) * 1021;
        let shown = size::human(orig);
        let back = size::parse(&shown).unwrap_or_else(|e| panic!("{shown:?}: {e}"));
        assert!(
            back.abs_diff(orig) <= orig / 19 + 1,
            "{shown:?}: {back} for {orig}"
        );
    }
});
