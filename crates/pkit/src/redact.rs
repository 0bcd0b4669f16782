//! The one redaction of [`secret_arg`](crate::Command::secret_arg) values
//! in a program's output: an error's quote of stderr, a parser's error
//! (`Command::parse`) and a record/replay cassette's recorded output all
//! write each one as [`MARK`].
//!
//! Every occurrence of every non-empty value is covered, byte for byte,
//! however short the value (no minimum length): a secret is never left in
//! part. Occurrences that overlap (two secrets sharing bytes, a value
//! that overlaps itself) become one mark; back-to-back ones stay two.
//! A capture a limit cut may hold a piece of a secret at its edge (the cut
//! fell inside an echo): the error's quote and the cassette mark that
//! piece too ([`redact_cut`]).

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::ops::Range;

/// What a secret value is written as.
pub(crate) const MARK: &str = "<secret>";

/// Where `secrets` occur in `text`: every occurrence of every non-empty
/// value, overlapping ones joined, in order.
fn ranges(text: &[u8], secrets: &[Vec<u8>]) -> Vec<Range<usize>> {
    ranges_with(text, secrets, Vec::new())
}

/// [`ranges`], joined with `found` (ranges already known to be secret).
fn ranges_with(
    text: &[u8],
    secrets: &[Vec<u8>],
    mut found: Vec<Range<usize>>,
) -> Vec<Range<usize>> {
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

/// `text`, a capture that a limit cut (`cut`: the stream had more bytes
/// than it holds, dropped before or after them), with every occurrence of
/// `secrets` written [`MARK`] — and, when `cut`, also a piece of one the
/// cut left at either edge: a text that starts with the end of a secret,
/// or ends with its start, has that piece marked too (whichever end was
/// cut: a capture keeps its head or its tail). Like [`redact`], no
/// minimum length: a one-byte piece is marked.
pub(crate) fn redact_cut<'a>(text: &'a [u8], secrets: &[Vec<u8>], cut: bool) -> Cow<'a, [u8]> {
    if !cut {
        return redact(text, secrets);
    }
    let mut edges = Vec::new();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        // The longest piece at each edge (a whole secret is found anyway).
        let window = secret.len().min(text.len());
        let rev = |b: &[u8]| b.iter().rev().copied().collect::<Vec<u8>>();
        let head = prefix_at_end(&rev(&text[..window]), &rev(secret));
        if head > 0 {
            edges.push(0..head);
        }
        let tail = prefix_at_end(&text[text.len() - window..], secret);
        if tail > 0 {
            edges.push(text.len() - tail..text.len());
        }
    }
    let found = ranges_with(text, secrets, edges);
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    for r in found {
        out.extend_from_slice(&text[at..r.start]);
        out.extend_from_slice(MARK.as_bytes());
        at = r.end;
    }
    out.extend_from_slice(&text[at..]);
    Cow::Owned(out)
}

/// The length of the longest start of `pat` that `text` ends with (a
/// Knuth-Morris-Pratt scan: linear, however long the secret).
fn prefix_at_end(text: &[u8], pat: &[u8]) -> usize {
    let m = pat.len();
    if m == 0 {
        return 0;
    }
    // fail[i]: the longest proper start of pat[..=i] that also ends it.
    let mut fail = vec![0usize; m];
    for i in 1..m {
        let mut k = fail[i - 1];
        while k > 0 && pat[i] != pat[k] {
            k = fail[k - 1];
        }
        fail[i] = k + usize::from(pat[i] == pat[k]);
    }
    let mut q = 0;
    for &c in text {
        if q == m {
            q = fail[m - 1];
        }
        while q > 0 && pat[q] != c {
            q = fail[q - 1];
        }
        q += usize::from(pat[q] == c);
    }
    q
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

/// A parser's error (`Command::parse`'s source) as it may be shown: kept
/// as it is unless a message of it or of its sources (`Display` or
/// `Debug`: parsers often quote the text they were given) holds one of
/// `secrets`, which then becomes [`MARK`] in a stand-in. For output that
/// is secret as a whole (`hide`), a stand-in that says nothing of it.
pub(crate) fn parser_error(
    error: Box<dyn Error + Send + Sync>,
    secrets: &[Vec<u8>],
    hide: bool,
) -> Box<dyn Error + Send + Sync> {
    if hide {
        let said = "the parser's message is not shown: the output is secret (secret_output)";
        return Box::new(Redacted {
            display: said.into(),
            debug: said.into(),
            source: None,
        });
    }
    let secrets = &shown_forms(secrets);
    let mut level: Option<&(dyn Error + 'static)> = Some(&*error);
    let mut shows = false;
    while let Some(e) = level {
        shows |= [e.to_string(), format!("{e:?}")]
            .iter()
            .any(|t| !ranges(t.as_bytes(), secrets).is_empty());
        level = e.source();
    }
    match shows {
        true => Box::new(Redacted::of(&*error, secrets)),
        false => error,
    }
}

/// The forms a secret value takes in a parser's messages: as passed; as
/// text, its bytes that are not UTF-8 replaced with U+FFFD (what
/// `Command::run` hands a parser); and escaped as a `Debug` writes it
/// (a `String` field's, and an `OsString` field's on Unix, `\xFF` for a
/// byte that is not UTF-8), which is what `unwrap()` prints.
fn shown_forms(secrets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let inner = |quoted: String| quoted.as_bytes()[1..quoted.len() - 1].to_vec();
    let mut forms = Vec::new();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let lossy = String::from_utf8_lossy(secret);
        let mut os = Vec::new();
        for chunk in secret.utf8_chunks() {
            os.extend(inner(format!("{:?}", chunk.valid())));
            for b in chunk.invalid() {
                os.extend(format!("\\x{b:02X}").bytes());
            }
        }
        forms.extend([
            secret.clone(),
            lossy.as_bytes().to_vec(),
            inner(format!("{lossy:?}")),
            os,
        ]);
    }
    forms.sort_unstable();
    forms.dedup();
    forms
}

/// An error's messages, and its sources', with the secrets written
/// [`MARK`].
#[derive(Clone)]
struct Redacted {
    display: String,
    debug: String,
    source: Option<Box<Redacted>>,
}

impl Redacted {
    fn of(error: &(dyn Error + 'static), secrets: &[Vec<u8>]) -> Redacted {
        let clean =
            |t: String| String::from_utf8_lossy(&redact(t.as_bytes(), secrets)).into_owned();
        Redacted {
            display: clean(error.to_string()),
            debug: clean(format!("{error:?}")),
            source: error.source().map(|s| Box::new(Redacted::of(s, secrets))),
        }
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.debug)
    }
}

impl Error for Redacted {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn Error + 'static))
    }
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
    fn a_parsers_error_is_kept_unless_it_or_a_source_shows_a_secret() {
        let io = |m: &str| std::io::Error::other(m.to_string());
        let plain = parser_error(Box::new(io("no")), &s(&["tok"]), false);
        assert!(plain.is::<std::io::Error>());
        let inner = io("bad: tok!");
        let outer = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        let got = parser_error(Box::new(outer), &s(&["tok"]), false);
        assert_eq!(got.to_string(), "bad: <secret>!");
        assert!(!format!("{got:?}").contains("tok"), "{got:?}");
        let hidden = parser_error(Box::new(io("pw")), &[], true);
        assert!(!hidden.to_string().contains("pw") && hidden.source().is_none());
    }

    #[test]
    fn a_cut_capture_has_the_pieces_of_a_secret_at_its_edges_marked() {
        let cut = |t: &str, sec: &[&str], cut: bool| {
            String::from_utf8(redact_cut(t.as_bytes(), &s(sec), cut).into_owned()).unwrap()
        };
        assert_eq!(cut("bad tok-s3", &["tok-s3cret"], true), "bad <secret>");
        assert_eq!(cut("3cret bad", &["tok-s3cret"], true), "<secret> bad");
        assert_eq!(cut("cret", &["tok-s3cret"], true), "<secret>");
        assert_eq!(
            cut("tok-s3cret x tok", &["tok-s3cret"], true),
            "<secret> x <secret>"
        );
        assert_eq!(cut("t", &["tok"], true), "<secret>");
        assert_eq!(cut("xaab", &["aaba"], true), "x<secret>");
        assert_eq!(cut("abaab", &["aabaa"], true), "<secret>");
        assert_eq!(
            cut("bcd tok", &["abc", "tok-s"], true),
            "<secret>d <secret>"
        );
        // Not cut: only whole occurrences.
        assert_eq!(cut("bad tok-s3", &["tok-s3cret"], false), "bad tok-s3");
        assert_eq!(cut("nothing", &["tok", ""], true), "nothing");
        assert_eq!(cut("", &["tok"], true), "");
    }

    #[test]
    fn a_parsers_escaped_or_lossy_quote_is_redacted() {
        #[derive(Debug)]
        struct Quoted(String);
        impl fmt::Display for Quoted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "bad: {}", self.0)
            }
        }
        impl Error for Quoted {}
        for secret in [&b"to\"k\n\\x"[..], b"to\xffk"] {
            let given = String::from_utf8_lossy(secret).into_owned();
            let got = parser_error(Box::new(Quoted(given)), &[secret.to_vec()], false);
            let shown = format!("{got} {got:?}");
            assert_eq!(shown.matches(MARK).count(), 2, "{shown}");
            assert!(!shown.contains("to"), "{shown}");
        }
        let os = shown_forms(&[b"a\"\xffb".to_vec()]);
        assert!(os.contains(&br#"a\"\xFFb"#.to_vec()), "{os:?}");
    }

    #[test]
    fn bytes_that_are_not_text_are_redacted_too() {
        let text = b"\xff\xfe tok\xff \xff";
        let got = redact(text, &[b"tok\xff".to_vec()]);
        assert_eq!(&got[..], b"\xff\xfe <secret> \xff");
    }
}
