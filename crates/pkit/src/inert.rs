//! Text made inert for messages: the one rule by which pkit's messages
//! (an [`Error`](crate::Error)'s `Display` and
//! [`diagnostic`](crate::Error::diagnostic), the CLI's lines) show program
//! names, arguments, paths and working directories ([`escape_controls`],
//! [`Shown`], [`shown_path`]), and the quoted tail of a failed run's
//! stderr ([`inert_lines`]).

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

/// `text` as pkit's messages show a program name, an argument, a path or
/// a working directory (an [`Error`](crate::Error)'s `Display` and
/// [`diagnostic`](crate::Error::diagnostic), `pkit run`'s lines): borrowed
/// when there is nothing to escape.
///
/// The control characters a terminal acts on — C0 (escape, bell, carriage
/// return, backspace, line feed, tab...), DEL and C1 — and Unicode's
/// bidirectional controls (ALM, LRM, RLM, the embeddings and overrides
/// U+202A–U+202E, the isolates U+2066–U+2069) and its line breaks (LINE
/// SEPARATOR U+2028, PARAGRAPH SEPARATOR U+2029) are written out as Rust
/// escapes (`\u{1b}`, `\n`, `\u{202e}`, `\u{2028}`, as a failed run's
/// quoted stderr shows them); everything else, non-ASCII letters included,
/// is shown as it is. A name (a file name from an untrusted directory, a
/// tool named in a config file) then can't retitle the terminal, move the
/// cursor, reorder the text shown or start a forged line of a log. Text
/// that was not UTF-8 is shown lossily first (U+FFFD), as `Path::display`
/// shows it.
///
/// ```
/// assert_eq!(pkit::escape_controls("x\u{1b}]0;pwned\u{7}"), r"x\u{1b}]0;pwned\u{7}");
/// assert_eq!(pkit::escape_controls("a\nb\u{202e}c"), r"a\nb\u{202e}c");
/// assert_eq!(pkit::escape_controls("a\u{2028}b"), r"a\u{2028}b");
/// assert_eq!(pkit::escape_controls("café 日本"), "café 日本");
/// ```
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let _ = write_inert(&mut out, text, false);
    Cow::Owned(out)
}

/// Quoted output (a failed run's stderr tail): as [`escape_controls`], but
/// line breaks and tabs stay, and a carriage return before a line break
/// is dropped.
pub(crate) fn inert_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let _ = write_inert(&mut out, text, true);
    out
}

/// A name, an argument or a path in a message: its `Display` is
/// [`escape_controls`]'s text, written without a copy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shown<'a>(pub(crate) &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_inert(f, self.0, false)
    }
}

/// A path in a message: lossily converted (as `Path::display`), then
/// [`escape_controls`].
pub(crate) fn shown_path(path: &Path) -> String {
    escape_controls(&path.to_string_lossy()).into_owned()
}

/// The one escaping: `text` to `out`, control and bidirectional characters
/// escaped; with `keep_lines`, line feeds and tabs kept and a carriage
/// return before a line feed dropped.
fn write_inert(out: &mut impl fmt::Write, text: &str, keep_lines: bool) -> fmt::Result {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if keep_lines && chars.peek() == Some(&'\n') => {}
            '\n' | '\t' if keep_lines => out.write_char(c)?,
            c if needs_escape(c) => {
                for e in c.escape_default() {
                    out.write_char(e)?;
                }
            }
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// A control character (C0, DEL, C1), a bidirectional control, or
/// Unicode's LINE SEPARATOR or PARAGRAPH SEPARATOR (U+2028, U+2029: line
/// breaks to a log viewer or editor that honours them).
fn needs_escape(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Unicode's bidirectional formatting characters: ALM, LRM, RLM, the
/// embeddings and overrides, the isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_every_control_escaped() {
        let raw =
            "a\u{1b}[2J\u{7}\r\u{8}\n\t\u{7f}\u{85}\u{9b}\u{202a}\u{202e}\u{2066}\u{2069}\u{200f}z";
        let shown = escape_controls(raw);
        assert_eq!(
            shown,
            r"a\u{1b}[2J\u{7}\r\u{8}\n\t\u{7f}\u{85}\u{9b}\u{202a}\u{202e}\u{2066}\u{2069}\u{200f}z"
        );
        assert_eq!(Shown(raw).to_string(), shown);
        assert!(matches!(escape_controls("café/日本 x"), Cow::Borrowed(_)));
        assert_eq!(shown_path(Path::new("/d/\u{1b}x")), r"/d/\u{1b}x");
    }

    #[test]
    fn quoted_lines_keep_their_breaks() {
        assert_eq!(inert_lines("a\r\nb\tc\rd\u{1b}"), "a\nb\tc\\rd\\u{1b}");
    }
}
