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
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (try 512M, 2G or 500MB)"))?;
    let upper = unit.trim().to_ascii_uppercase();
    let power = |letter: &str| match letter {
        "K" => Some(1),
        "M" => Some(2),
        "G" => Some(3),
        "T" => Some(4),
        _ => None,
    };
    let scale: f64 = if upper.is_empty() || upper == "B" {
        1.0
    } else if let Some(letter) = upper.strip_suffix("IB") {
        1024f64.powi(power(letter).ok_or_else(|| bad_unit(unit, text))?)
    } else if let Some(letter) = upper.strip_suffix('B') {
        1000f64.powi(power(letter).ok_or_else(|| bad_unit(unit, text))?)
    } else {
        1024f64.powi(power(&upper).ok_or_else(|| bad_unit(unit, text))?)
    };
    let bytes = value * scale;
    // `u64::MAX as f64` rounds up to 2^64, one past the largest count: a
    // size of exactly 2^64 (16777216T, found by fuzzing) must be refused,
    // not saturated to 2^64 - 1.
    if !bytes.is_finite() || bytes < 1.0 || bytes >= u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes as u64)
}

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
        assert_eq!(parse("16777215T"), Ok(16777215 << 40));
        assert_eq!(super::parse_or_zero("0"), Ok(0));
        assert_eq!(super::parse_or_zero("0M"), Ok(0));
        assert_eq!(super::parse_or_zero("1M"), Ok(1 << 20));
        assert!(super::parse_or_zero("x").is_err());
    }
}
