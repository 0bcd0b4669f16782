//! JSON text for a terminal: the `--json` report and event lines, which go
//! to stderr by default. serde_json escapes C0 controls itself (`\u001b`);
//! these lines also escape what JSON lets through raw but a terminal acts
//! on — DEL, the C1 controls (U+009B is a CSI), the bidirectional
//! controls (U+202E reorders the text shown) and the line and paragraph
//! separators U+2028, U+2029 — as `\u009b`, the characters pkit's messages
//! escape (`pkit::escape_controls`). A JSON reader gets the exact value
//! back.

use std::borrow::Cow;
use std::io;

use serde::Serialize;

/// `value` as one line of JSON (no line feed), with the escapes above.
pub fn to_line<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Inert);
    value.serialize(&mut ser)?;
    Ok(out)
}

/// The compact formatter, with DEL, C1 and the bidirectional controls in
/// strings escaped.
struct Inert;

impl serde_json::ser::Formatter for Inert {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let mut buf = [0; 4];
            if let Cow::Owned(_) = pkit::escape_controls(c.encode_utf8(&mut buf)) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_controls_are_escaped_and_the_value_is_exact() {
        let value = "a\u{1b}b\u{7f}c\u{9b}d\u{202e}e\u{2066}é\"\\";
        let line = String::from_utf8(super::to_line(&value).unwrap()).unwrap();
        assert_eq!(line, r#""a\u001bb\u007fc\u009bd\u202ee\u2066é\"\\""#);
        assert!(!line.chars().any(|c| c.is_control() || c == '\u{202e}'));
        let back: String = serde_json::from_str(&line).unwrap();
        assert_eq!(back, value);
    }
}
