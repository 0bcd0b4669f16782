//! [`TextBytes`]: captured bytes that know how much of themselves is valid
//! UTF-8, checked as they arrive, so that `run()` turns a big capture into
//! a `String` without validating it a second time. The crate's one
//! `from_utf8_unchecked` is here, next to the only code that raises the
//! checkpoint it relies on.

use std::fmt;
use std::io;
use std::ops::Deref;

#[cfg(windows)]
use super::BorrowedFd;
#[cfg(unix)]
use std::os::fd::BorrowedFd;

/// Validate once this many bytes wait unvalidated: a small capture is
/// validated once, by `run()`; a big one a batch at a time, by its reader,
/// between reads (while the writer refills the pipe).
const BATCH: usize = 32 * 1024;

/// Bytes captured from a stream, with a checkpoint: the first
/// `valid` bytes are known to be valid UTF-8.
///
/// The checkpoint can be neither forged nor left stale: the bytes are
/// private to this module, only `check` raises it (right
/// after validating the very bytes it covers), appends keep it (valid UTF-8
/// ending at a char boundary stays valid when more bytes follow) and every
/// other change lowers it to 0.
#[derive(Clone, Default)]
pub(crate) struct TextBytes {
    bytes: Vec<u8>,
    /// `bytes[..valid]` is valid UTF-8 (so `valid` is a char boundary).
    valid: usize,
    /// Validate as bytes arrive (a capture wanted as text); cleared at the
    /// first invalid byte (the text will be lossy: validating on is waste).
    track: bool,
}

impl TextBytes {
    /// An empty buffer that validates as bytes arrive.
    pub(crate) fn tracking() -> TextBytes {
        TextBytes {
            track: true,
            ..TextBytes::default()
        }
    }

    /// How many leading bytes are known to be valid UTF-8.
    #[cfg(test)]
    pub(crate) fn valid(&self) -> usize {
        self.valid
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.bytes
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.valid = 0;
    }

    pub(crate) fn reserve(&mut self, n: usize) {
        self.bytes.reserve(n);
    }

    /// Appends `more`.
    pub(crate) fn extend_from_slice(&mut self, more: &[u8]) {
        self.bytes.extend_from_slice(more);
        self.check(BATCH);
    }

    /// Drops the first `n` bytes. What is left may start inside a
    /// character; it is not validated as it grows any more (a capture cut
    /// at its head is no answer `run()` gives as text).
    pub(crate) fn drain_front(&mut self, n: usize) {
        self.bytes.drain(..n);
        self.valid = 0;
        self.track = false;
    }

    /// One read from `r` appended (`read_buf` only writes past the end),
    /// then validated when a batch has arrived. Cancel-safe, as
    /// `read_buf`: dropped before it completes, it has appended nothing.
    pub(crate) async fn read_from<R>(&mut self, r: &mut R) -> io::Result<usize>
    where
        R: tokio::io::AsyncRead + Unpin + ?Sized,
    {
        let n = tokio::io::AsyncReadExt::read_buf(r, &mut self.bytes).await?;
        self.check(BATCH);
        Ok(n)
    }

    /// `sys::read_or_stop` appending here (it only
    /// writes past the end), then validated when a batch has arrived.
    pub(crate) fn read_or_stop(
        &mut self,
        data: BorrowedFd<'_>,
        stop: BorrowedFd<'_>,
        max: usize,
    ) -> io::Result<super::ReadStep> {
        let step = super::read_or_stop(data, stop, &mut self.bytes, max);
        self.check(BATCH);
        step
    }

    /// `sys::read_ready` appending here (it only writes
    /// past the end), then validated when a batch has arrived.
    #[cfg(target_os = "linux")]
    pub(crate) fn read_ready(&mut self, fd: BorrowedFd<'_>, chunk: usize) -> io::Result<usize> {
        let got = super::read_ready(fd, &mut self.bytes, chunk);
        self.check(BATCH);
        got
    }

    /// Validates the bytes past the checkpoint when at least `batch` of
    /// them wait, and moves the checkpoint to the end of what is valid. An
    /// incomplete character at the end waits for the bytes that complete
    /// it; an invalid byte ends the tracking.
    fn check(&mut self, batch: usize) {
        if !self.track || self.bytes.len() - self.valid < batch.max(1) {
            return;
        }
        match std::str::from_utf8(&self.bytes[self.valid..]) {
            Ok(_) => self.valid = self.bytes.len(),
            Err(e) => {
                // Both cases end at a char boundary: valid_up_to does.
                self.valid += e.valid_up_to();
                if e.error_len().is_some() {
                    self.track = false;
                }
            }
        }
    }

    /// The bytes as text, invalid UTF-8 replaced with U+FFFD (as
    /// `String::from_utf8_lossy`). Valid bytes become the `String` in place,
    /// and only those past the checkpoint are validated here.
    pub(crate) fn into_string_lossy(self) -> String {
        // Never above the length by the invariant; a guard all the same.
        let valid = self.valid.min(self.bytes.len());
        if std::str::from_utf8(&self.bytes[valid..]).is_err() {
            return String::from_utf8_lossy(&self.bytes).into_owned();
        }
        // SAFETY: `bytes[..valid]` is valid UTF-8 ending at a char boundary
        // (the checkpoint's invariant: only `check` raises `valid`, after
        // validating exactly those bytes, which nothing but appends has
        // touched since — any other change resets it to 0), and
        // `bytes[valid..]` was just validated; a valid string followed by
        // a valid string at a char boundary is valid UTF-8.
        unsafe { String::from_utf8_unchecked(self.bytes) }
    }
}

impl From<Vec<u8>> for TextBytes {
    /// Bytes from elsewhere: nothing of them is known valid.
    fn from(bytes: Vec<u8>) -> TextBytes {
        TextBytes {
            bytes,
            valid: 0,
            track: false,
        }
    }
}

impl Deref for TextBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Equal bytes are equal, whatever is known of them.
impl PartialEq for TextBytes {
    fn eq(&self, other: &TextBytes) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for TextBytes {}

impl fmt::Debug for TextBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextBytes")
            .field("len", &self.bytes.len())
            .field("valid", &self.valid)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fed in pieces of every size, the checkpoint stays at a char
    /// boundary, and the text equals `from_utf8_lossy` of the bytes.
    #[test]
    fn pieces_of_any_size_give_the_lossy_text() {
        let text = "aé€😀".repeat(20_000);
        let mut cases: Vec<Vec<u8>> = vec![text.clone().into_bytes()];
        for at in [0, 1, text.len() / 2, text.len() - 1] {
            let mut bad = text.clone().into_bytes();
            bad[at] = 0xff;
            cases.push(bad);
        }
        let mut cut = text.clone().into_bytes();
        cut.pop(); // ends inside the last character
        cases.push(cut);
        for bytes in cases {
            for piece in [1, 3, 4096, 40_000, 1 << 20] {
                let mut t = TextBytes::tracking();
                let mut seen = 0;
                for chunk in bytes.chunks(piece) {
                    t.extend_from_slice(chunk);
                    assert!(t.valid() <= t.len());
                    if t.valid() != seen {
                        seen = t.valid();
                        assert!(std::str::from_utf8(&t[..seen]).is_ok());
                    }
                }
                let want = String::from_utf8_lossy(&bytes).into_owned();
                assert_eq!(t.into_string_lossy(), want, "pieces of {piece}");
            }
        }
    }

    #[test]
    fn a_cut_head_or_a_clear_resets_the_checkpoint() {
        let mut t = TextBytes::tracking();
        t.extend_from_slice("é".repeat(BATCH).as_bytes());
        assert_eq!(t.valid(), t.len());
        t.drain_front(1); // now starts inside a character
        assert_eq!(t.valid(), 0);
        t.extend_from_slice(&"é".repeat(BATCH).into_bytes());
        assert_eq!(t.valid(), 0, "no longer tracked");
        let want = String::from_utf8_lossy(&t).into_owned();
        assert_eq!(t.clone().into_string_lossy(), want);
        t.clear();
        assert_eq!((t.len(), t.valid()), (0, 0));
    }
}
