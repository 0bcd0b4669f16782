//! Removing terminal escape sequences from text: what a program writes to a
//! terminal (colours, cursor movement, window titles) is noise when its
//! output is matched line by line.
//!
//! ```
//! assert_eq!(pkit::strip_vt("\x1b[1;31merror\x1b[0m: \x1b]0;title\x07disk full"), "error: disk full");
//! ```
//!
//! For a [`Command::pty`](crate::Command::pty) session, whose output is
//! full of them, [`DecoderFactory::utf8_strip_vt`] strips them before the
//! output is split into lines, so [`lines`](crate::RunningProcess::lines)
//! and [`wait_for_line`](crate::RunningProcess::wait_for_line) see plain
//! text (the captured bytes stay as written).

use crate::pump::{Decoder, DecoderFactory, Utf8Decoder};

/// Where the stripper is within an escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Plain text.
    #[default]
    Ground,
    /// After ESC.
    Escape,
    /// After ESC and an intermediate byte (`ESC ( B`): one final byte follows.
    EscapeIntermediate,
    /// Control Sequence (`ESC [` or CSI): parameters until a final byte.
    Csi,
    /// A string (OSC, DCS, SOS, PM, APC) until BEL or ST (`ESC \`).
    String,
    /// ESC inside a string: `\` ends it (ST); anything else ends it too,
    /// and starts a new escape sequence.
    StringEscape,
}

/// A stateful remover of terminal escape sequences (ECMA-48: CSI, OSC,
/// DCS and the other strings, two- and three-byte escapes) and of control
/// characters other than tab, line feed and carriage return. A sequence
/// split across two pieces of text is removed whole. A tab or line ending
/// inside an escape or control sequence ends it and is kept (a sequence
/// cut short does not swallow the end of its line); CAN and SUB cancel any
/// sequence, an OSC or DCS string included; an ESC inside a string that
/// is not its terminator (`ESC \`) ends the string and starts a new
/// escape sequence, as a terminal does.
///
/// ```
/// let mut vt = pkit::VtStripper::new();
/// let mut out = String::new();
/// vt.strip_into("\x1b[3", &mut out);
/// vt.strip_into("2mgreen\x1b[0m\r\n", &mut out);
/// assert_eq!(out, "green\r\n");
/// ```
#[derive(Debug, Clone, Default)]
pub struct VtStripper {
    state: State,
}

impl VtStripper {
    /// A stripper in plain text.
    pub fn new() -> VtStripper {
        VtStripper::default()
    }

    /// Appends `text` without its escape sequences to `out`.
    pub fn strip_into(&mut self, text: &str, out: &mut String) {
        for c in text.chars() {
            self.state = step(self.state, c, out);
        }
    }

    /// `text` without its escape sequences.
    pub fn strip(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        self.strip_into(text, &mut out);
        out
    }
}

/// The stripper's state after `c` in `state`, with what `c` leaves in
/// the text appended to `out`.
fn step(state: State, c: char, out: &mut String) -> State {
    match (state, c) {
        (State::Ground, '\x1b') => State::Escape,
        (State::Ground, '\u{9b}') => State::Csi,
        (State::Ground, '\u{90}' | '\u{9d}' | '\u{98}' | '\u{9e}' | '\u{9f}') => State::String,
        (State::Ground, c) => {
            if !c.is_control() || matches!(c, '\t' | '\n' | '\r') {
                out.push(c);
            }
            State::Ground
        }
        // CAN and SUB cancel any sequence, a string included
        // (ECMA-48; the DEC parser's "anywhere" transitions).
        (_, '\x18' | '\x1a') => State::Ground,
        // A tab or line ending inside an escape or control
        // sequence: a terminal executes it, so a sequence the
        // program cut short ends there and the character stays
        // (a line feed after a stray ESC still ends the line).
        (State::Escape | State::EscapeIntermediate | State::Csi, '\t' | '\n' | '\r') => {
            out.push(c);
            State::Ground
        }
        (State::Escape, '[') => State::Csi,
        (State::Escape, ']' | 'P' | 'X' | '^' | '_') => State::String,
        (State::Escape, ' '..='/') => State::EscapeIntermediate,
        (State::Escape | State::EscapeIntermediate, '\x1b') => State::Escape,
        // A two-byte escape (ESC 7, ESC =, ESC M...), or another
        // control character that cancels it: either way, done.
        (State::Escape, _) | (State::EscapeIntermediate, _) => State::Ground,
        // Parameters and intermediates: 0x20..=0x3f; final: 0x40..=0x7e.
        (State::Csi, ' '..='?') => State::Csi,
        (State::Csi, '\x1b') => State::Escape,
        (State::Csi, _) => State::Ground,
        (State::String, '\x07' | '\u{9c}') => State::Ground,
        (State::String, '\x1b') => State::StringEscape,
        (State::String, _) => State::String,
        (State::StringEscape, '\\') => State::Ground,
        // Any other: the ESC ends the string and starts a new escape
        // sequence, whose first character this is (the DEC parser's
        // "anywhere" ESC, as xterm and VTE do): an OSC a program leaves
        // unterminated does not swallow what follows up to the next BEL.
        (State::StringEscape, c) => step(State::Escape, c, out),
    }
}

/// `text` without terminal escape sequences and control characters other
/// than tab, line feed and carriage return (see [`VtStripper`]).
pub fn strip_vt(text: &str) -> String {
    VtStripper::new().strip(text)
}

/// UTF-8 decoding followed by [`VtStripper`].
#[derive(Debug, Default)]
struct StripDecoder {
    utf8: Utf8Decoder,
    text: String,
    vt: VtStripper,
}

impl Decoder for StripDecoder {
    fn decode(&mut self, input: &[u8], last: bool, out: &mut String) {
        self.text.clear();
        self.utf8.decode(input, last, &mut self.text);
        self.vt.strip_into(&self.text, out);
    }
}

impl DecoderFactory {
    /// UTF-8 (invalid sequences replaced) with terminal escape sequences
    /// removed (see [`VtStripper`]): for matching the lines of a
    /// [`Command::pty`](crate::Command::pty) session, or of any program that
    /// colours its output. The capture keeps the bytes as written.
    pub fn utf8_strip_vt() -> DecoderFactory {
        DecoderFactory::new(StripDecoder::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_of_every_kind_are_removed() {
        let cases = [
            ("plain text\n", "plain text\n"),
            ("\x1b[0m\x1b[1;32mok\x1b[K", "ok"),
            ("a\x1b]0;window title\x07b", "ab"),
            ("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),
            ("\x1b(Bx\x1b=y\x1b>z", "xyz"),
            ("\x1bPq#0;2;0;0;0\x1b\\after", "after"),
            ("\x1b[?2004h$ \x1b[?2004l", "$ "),
            ("bell\x07 back\x08space\ttab\r\n", "bell backspace\ttab\r\n"),
            ("\u{9b}31mc1\u{9b}0m", "c1"),
            ("caf\u{e9} \x1b[1m\u{2713}\x1b[0m", "caf\u{e9} \u{2713}"),
        ];
        for (input, want) in cases {
            assert_eq!(strip_vt(input), want, "{input:?}");
        }
    }

    #[test]
    fn a_cut_sequence_keeps_the_line_ending_and_can_sub_cancel() {
        let cases = [
            ("a\x1b\nb", "a\nb"),
            ("a\x1b[\r\nb", "a\r\nb"),
            ("a\x1b[1;3\nb", "a\nb"),
            ("a\x1b(\tb", "a\tb"),
            ("a\x1b(\x1b[1mb", "ab"),
            ("\x1b]0;title\x18after\n", "after\n"),
            ("\x1bPq#0\x1aafter", "after"),
            ("\x1b[1\x18m", "m"),
            ("a\x1b]0;two\nlines\x07b", "ab"),
        ];
        for (input, want) in cases {
            assert_eq!(strip_vt(input), want, "{input:?}");
        }
    }

    #[test]
    fn a_sequence_split_across_chunks_is_removed_whole() {
        let input = "x\x1b[38;5;196mred\x1b]0;t\x1b\\y\x1b(Bz";
        for split in 0..=input.len() {
            if !input.is_char_boundary(split) {
                continue;
            }
            let mut vt = VtStripper::new();
            let mut out = String::new();
            vt.strip_into(&input[..split], &mut out);
            vt.strip_into(&input[split..], &mut out);
            assert_eq!(out, "xredyz", "split at {split}");
        }
    }

    #[test]
    fn the_decoder_strips_after_decoding() {
        let mut d = DecoderFactory::utf8_strip_vt().make();
        let mut out = String::new();
        let bytes = "\x1b[1m\u{2713}\x1b[0m done\r\n".as_bytes();
        d.decode(&bytes[..5], false, &mut out);
        d.decode(&bytes[5..], true, &mut out);
        assert_eq!(out, "\u{2713} done\r\n");
    }
}
