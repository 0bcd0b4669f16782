//! The one redaction of [`secret_arg`](crate::Command::secret_arg) values
//! in a program's output: an error's quote of stderr and a record/replay
//! cassette's recorded output both write each one as [`MARK`].
//!
//! Every occurrence of every non-empty value is covered, byte for byte,
//! however short the value (no minimum length): a secret is never left in
//! part. Occurrences that overlap (two secrets sharing bytes, a value
//! that overlaps itself) become one mark; back-to-back ones stay two.

use std::borrow::Cow;
use std::ops::Range;

/// What a secret value is written as.
pub(crate) const MARK: &str = "<secret>";

/// Where `secrets` occur in `text`: every occurrence of every non-empty
/// value, overlapping ones joined, in order.
fn ranges(text: &[u8], secrets: &[Vec<u8>]) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let finder = memchr::memmem::Finder::new(secret);
        let mut from = 0;
        while let Some(at) = finder.find(&text[from..]) {
            found.push(from + at..from + at + secret.len());
            from += at + 1;
        }
    }
    found.sort_by_key(|r| r.start);
    let mut joined: Vec<Range<usize>> = Vec::with_capacity(found.len());
    for r in found {
        match joined.last_mut() {
            Some(last) if r.start < last.end => last.end = last.end.max(r.end),
            _ => joined.push(r),
        }
    }
    joined
}

/// `text` with every occurrence of `secrets` written [`MARK`].
pub(crate) fn redact<'a>(text: &'a [u8], secrets: &[Vec<u8>]) -> Cow<'a, [u8]> {
    let mut parts = redact_parts(vec![text.to_vec()], secrets);
    match parts.pop() {
        Some(out) if out != text => Cow::Owned(out),
        _ => Cow::Borrowed(text),
    }
}

/// `parts`, consecutive pieces of one stream (split wherever reads fell),
/// with every occurrence of `secrets` in the stream they make written
/// [`MARK`] — also one that spans pieces: its mark goes in the piece where
/// it starts, and its bytes in the pieces after are dropped. As many parts
/// come back, in order (a part wholly inside a secret comes back empty).
pub(crate) fn redact_parts(parts: Vec<Vec<u8>>, secrets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let whole: Vec<u8> = parts.concat();
    let found = ranges(&whole, secrets);
    if found.is_empty() {
        return parts;
    }
    let mut out = Vec::with_capacity(parts.len());
    let (mut start, mut next) = (0, found.iter().peekable());
    for part in &parts {
        let end = start + part.len();
        let mut piece = Vec::with_capacity(part.len());
        let mut at = start;
        while at < end {
            // Drop the secrets that ended before here.
            while next.peek().is_some_and(|r| r.end <= at) {
                next.next();
            }
            match next.peek() {
                Some(r) if r.start <= at => {
                    if r.start == at {
                        piece.extend_from_slice(MARK.as_bytes());
                    }
                    at = r.end.min(end);
                }
                Some(r) if r.start < end => {
                    piece.extend_from_slice(&whole[at..r.start]);
                    at = r.start;
                }
                _ => {
                    piece.extend_from_slice(&whole[at..end]);
                    at = end;
                }
            }
        }
        out.push(piece);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn r(text: &str, secrets: &[&str]) -> String {
        String::from_utf8(redact(text.as_bytes(), &s(secrets)).into_owned()).unwrap()
    }

    #[test]
    fn every_occurrence_whatever_its_length() {
        assert_eq!(r("tok x tok", &["tok"]), "<secret> x <secret>");
        assert_eq!(r("a1b11", &["1"]), "a<secret>b<secret><secret>");
        assert_eq!(r("nothing", &["tok", ""]), "nothing");
        assert_eq!(r("", &["tok"]), "");
    }

    #[test]
    fn overlapping_occurrences_leave_no_part() {
        // Two secrets sharing bytes; one overlapping itself.
        assert_eq!(r("xabcy", &["ab", "bc"]), "x<secret>y");
        assert_eq!(r("xabcy", &["abc", "b"]), "x<secret>y");
        assert_eq!(r("aaa-", &["aa"]), "<secret>-");
    }

    #[test]
    fn a_secret_across_pieces_is_marked_where_it_starts() {
        let parts = s(&["say to", "k-s3", "cret now", "k-s3cret"]);
        let got = redact_parts(parts, &s(&["tok-s3cret"]));
        assert_eq!(got, s(&["say <secret>", "", " now", "k-s3cret"]));
        let parts = s(&["tok-s3cretto", "k-s3cret"]);
        let got = redact_parts(parts, &s(&["tok-s3cret"]));
        assert_eq!(got, s(&["<secret><secret>", ""]));
    }

    #[test]
    fn bytes_that_are_not_text_are_redacted_too() {
        let text = b"\xff\xfe tok\xff \xff";
        let got = redact(text, &[b"tok\xff".to_vec()]);
        assert_eq!(&got[..], b"\xff\xfe <secret> \xff");
    }
}
