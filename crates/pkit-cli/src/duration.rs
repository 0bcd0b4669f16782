//! Parsing durations as timeout(1) does (`10`, `1.5`, `1e3`, `2m`, `1d`),
//! plus `ms` and compound forms (`1m30s`, `1h5m`).

use std::time::Duration;

/// Parses a duration: a non-negative decimal number (with an optional
/// exponent, as strtod reads it: `1e3`) followed by `s`, `m`, `h`, `d` or
/// `ms`; a bare number means seconds (as in timeout(1)). Several terms add
/// up: `1m30s`. `inf` or `infinity`, and anything too long to count, is
/// no limit ([`Duration::MAX`]); a positive one too short to count is
/// 1 ns, never 0.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(format!("{text:?}: a duration can't be negative"));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.eq_ignore_ascii_case("inf") || t.eq_ignore_ascii_case("infinity") {
        return Ok(Duration::MAX);
    }
    let hint = || format!("{text:?} is not a duration (try 10, 1.5, 500ms, 2m, 1m30s, 1d)");
    let mut rest = t;
    let mut total = 0.0f64;
    // Whether a term's digits are not all zero: such a term is positive
    // even where the double it reads as (1e-400), or its scaled value
    // (1e-322ms), is 0.0.
    let mut positive = false;
    let mut terms = 0;
    while !rest.is_empty() {
        let n = number_len(rest);
        if n == 0 {
            return Err(hint());
        }
        let value: f64 = rest[..n].parse().map_err(|_| hint())?;
        positive |= rest[..n]
            .bytes()
            .take_while(|b| !matches!(b, b'e' | b'E'))
            .any(|b| matches!(b, b'1'..=b'9'));
        rest = &rest[n..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "" if terms == 0 && rest.is_empty() => 1.0,
            "" => {
                return Err(format!(
                    "{text:?}: every term of a compound duration needs a unit (1m30s)"
                ))
            }
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {text:?} (use ms, s, m, h or d)"
                ))
            }
        };
        total += value * scale;
        terms += 1;
    }
    if terms == 0 {
        return Err(hint());
    }
    // As timeout(1), a duration too long to represent is "forever".
    if total.is_infinite() || total >= Duration::MAX.as_secs_f64() {
        return Ok(Duration::MAX);
    }
    let d = Duration::try_from_secs_f64(total).map_err(|_| format!("{text:?} is out of range"))?;
    // A positive duration too short to count (1e-300, 1e-400) is the
    // shortest one, as in timeout(1): never 0, which means "no timeout".
    if d.is_zero() && positive {
        return Ok(Duration::from_nanos(1));
    }
    Ok(d)
}

/// The length of the decimal number at the start of `s`: digits, one
/// point, and an exponent (`e3`, `E-2`) when digits follow it.
fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    let mut digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return 0;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    i
}

/// Whether `text` is a bare number (a duration in seconds with no unit).
pub fn is_unitless(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty() && number_len(t) == t.len()
}

/// `DUR[,FACTOR]`: the first pause and its growth per consecutive crash.
pub fn parse_backoff(text: &str) -> Result<(Duration, f64), String> {
    let (dur, factor) = match text.split_once(',') {
        Some((d, given)) => {
            let f: f64 = given
                .trim()
                .parse()
                .map_err(|_| format!("{given:?}: the factor must be a number (2, 1.5)"))?;
            // Quoted as given: 1e-300 would be written out with 300 digits.
            if !f.is_finite() || f < 1.0 {
                return Err(format!("{given:?}: the factor must be at least 1"));
            }
            (d, f)
        }
        None => (text, 2.0),
    };
    Ok((parse(dur)?, factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_grammar() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse(".5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse("1e3"), Ok(Duration::from_secs(1000)));
        assert_eq!(parse("1e-1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("inf"), Ok(Duration::MAX));
        assert_eq!(parse("1e300"), Ok(Duration::MAX));
        // Too short to count, but not "no timeout".
        assert_eq!(parse("1e-300"), Ok(Duration::from_nanos(1)));
        // Below a double's range (read, or once scaled, as 0.0): the same.
        assert_eq!(parse("1e-400"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse("1e-322ms"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse("0.0"), Ok(Duration::ZERO));
        assert_eq!(parse("0e-400"), Ok(Duration::ZERO));
    }

    #[test]
    fn compound() {
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h5m"), Ok(Duration::from_secs(3900)));
        assert_eq!(parse("1s500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse("1m30").is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("").is_err());
        assert!(parse("fast").is_err());
        assert!(parse("2 weeks").is_err());
        assert!(parse("2w").is_err());
        assert!(parse("1.2.3s").is_err());
        let neg = parse("-1s").unwrap_err();
        assert!(neg.contains("negative"), "{neg}");
        assert!(parse("-1").unwrap_err().contains("negative"));
    }

    #[test]
    fn unitless() {
        assert!(is_unitless("2"));
        assert!(is_unitless("1.5"));
        assert!(!is_unitless("2s"));
        assert!(!is_unitless("s"));
    }
}
