//! Parsing sizes like `512M`, `2G`, `500MB`, `1048576`.

/// Parses a byte count: a number with an optional unit. `K`, `M`, `G`, `T`
/// (and `KiB`, `MiB`, … ; case-insensitive) are powers of 1024, as in
/// systemd and `ulimit`; `KB`, `MB`, `GB`, `TB` are powers of 1000, as in
/// `dd` and the SI. A bare number is bytes.
pub fn parse(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(format!("{text:?}: a size can't be negative"));
    }
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let not_a_size = || format!("{text:?} is not a size (try 512M, 2G or 500MB)");
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(not_a_size());
    }
    let upper = unit.trim().to_ascii_uppercase();
    let power = |letter: &str| match letter {
        "K" => Some(1),
        "M" => Some(2),
        "G" => Some(3),
        "T" => Some(4),
        _ => None,
    };
    let scale: u128 = if upper.is_empty() || upper == "B" {
        1
    } else if let Some(letter) = upper.strip_suffix("IB") {
        1024u128.pow(power(letter).ok_or_else(|| bad_unit(unit, text))?)
    } else if let Some(letter) = upper.strip_suffix('B') {
        1000u128.pow(power(letter).ok_or_else(|| bad_unit(unit, text))?)
    } else {
        1024u128.pow(power(&upper).ok_or_else(|| bad_unit(unit, text))?)
    };
    // Whole bytes, counted exactly (no float rounding) with every step
    // checked: the fraction's first 18 digits count (the rest are less
    // than a byte even in T), a part below a byte is dropped.
    let out_of_range = || {
        format!(
            "{text:?} is out of range (1 byte to 8 EiB - 1 byte, the kernel's largest memory cap)"
        )
    };
    let whole: u128 = match whole {
        "" => 0,
        w => w.parse().map_err(|_| out_of_range())?,
    };
    let frac = &frac[..frac.len().min(18)];
    let frac_bytes = match frac {
        "" => 0,
        f => f.parse::<u128>().map_err(|_| not_a_size())? * scale / 10u128.pow(f.len() as u32),
    };
    let bytes = (whole.checked_mul(scale))
        .and_then(|b| b.checked_add(frac_bytes))
        .ok_or_else(out_of_range)?;
    if bytes < 1 || bytes > u128::from(MAX_BYTES) {
        return Err(out_of_range());
    }
    Ok(bytes as u64)
}

/// The largest size taken: `i64::MAX` bytes, the kernel's largest memory
/// cap (above it, it clamps a cap silently).
pub const MAX_BYTES: u64 = i64::MAX as u64;

/// [`parse`], but `0` is allowed (a cap of none, for swap).
pub fn parse_or_zero(text: &str) -> Result<u64, String> {
    let num = text
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if num.contains('0') && num.chars().all(|c| c == '0' || c == '.') {
        return Ok(0);
    }
    parse(text)
}

fn bad_unit(unit: &str, text: &str) -> String {
    format!("unknown unit {unit:?} in {text:?} (K, M, G, T are powers of 1024; KB, MB, GB, TB powers of 1000)")
}

/// `512 MiB`-style text for messages.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn sizes() {
        assert_eq!(parse("512M"), Ok(512 << 20));
        assert_eq!(parse("512m"), Ok(512 << 20));
        assert_eq!(parse("2G"), Ok(2 << 30));
        assert_eq!(parse("1.5K"), Ok(1536));
        assert_eq!(parse("10k"), Ok(10240));
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("4096B"), Ok(4096));
        assert_eq!(parse("100MiB"), Ok(100 << 20));
        assert_eq!(parse("512MB"), Ok(512_000_000));
        assert_eq!(parse("1kB"), Ok(1000));
        assert_eq!(parse("2GB"), Ok(2_000_000_000));
        assert!(parse("0").is_err());
        assert!(parse("lots").is_err());
        assert!(parse("3X").is_err());
        assert!(parse("3XB").is_err());
        assert!(parse("-1M").unwrap_err().contains("negative"));
        assert!(parse("16777216T").is_err(), "2^64 bytes");
        assert!(parse("16777215T").is_err(), "above 2^63 - 1 bytes");
        assert!(parse("16000000T").is_err(), "above 2^63 - 1 bytes");
        assert!(parse("8388608T").is_err(), "2^63 bytes");
        assert_eq!(parse("8388607T"), Ok(8388607 << 40));
        assert_eq!(parse("9223372036854775807"), Ok(i64::MAX as u64));
        assert!(parse("9223372036854775808").is_err());
        assert!(parse("18446744073709551616").is_err(), "2^64, past a u64");
        assert!(parse("999999999999999999999999999999999999999999T").is_err());
        assert!(parse("0.5").is_err(), "less than a byte");
        assert_eq!(parse("1.5"), Ok(1));
        assert_eq!(parse(".5K"), Ok(512));
        assert_eq!(parse("1.K"), Ok(1024));
        assert_eq!(parse("0.1G"), Ok(107374182));
        assert_eq!(parse("2.5MB"), Ok(2_500_000));
        assert_eq!(
            parse("9007199254740993"),
            Ok(9007199254740993),
            "exact past 2^53"
        );
        assert!(parse(".").is_err());
        assert!(parse("1.2.3K").is_err());
        assert!(parse("").is_err());
        assert_eq!(super::parse_or_zero("0"), Ok(0));
        assert_eq!(super::parse_or_zero("0M"), Ok(0));
        assert_eq!(super::parse_or_zero("1M"), Ok(1 << 20));
        assert!(super::parse_or_zero("x").is_err());
    }
}
