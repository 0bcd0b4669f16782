//! Parsing sizes like `512M`, `2G`, `1048576`.

/// Parses a byte count: a number with an optional binary unit `K`, `M`,
/// `G` or `T` (powers of 1024; a trailing `B` or `iB` is accepted).
pub fn parse(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (try 512M or 2G)"))?;
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit.trim_end_matches("IB").trim_end_matches('B');
    let scale: u64 = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use K, M, G or T)"
            ))
        }
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn sizes() {
        assert_eq!(parse("512M"), Ok(512 << 20));
        assert_eq!(parse("2G"), Ok(2 << 30));
        assert_eq!(parse("1.5K"), Ok(1536));
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("100MiB"), Ok(100 << 20));
        assert!(parse("0").is_err());
        assert!(parse("lots").is_err());
        assert!(parse("3X").is_err());
    }
}
