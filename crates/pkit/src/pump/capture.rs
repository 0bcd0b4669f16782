//! Bounded in-memory capture of one stream.

use crate::sys::TextBytes;

/// What to do when a stream's output exceeds its capture limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CapturePolicy {
    /// Keep the first `limit` bytes, discard the rest (still counted).
    #[default]
    KeepHead,
    /// Keep the last `limit` bytes.
    KeepTail,
    /// Fail the run with [`Error::OutputLimit`](crate::Error::OutputLimit)
    /// (the verbs tear the tree down as soon as the limit is crossed).
    Fail,
}

/// A capture buffer that never holds much more than its limit.
#[derive(Debug)]
pub(crate) struct CaptureBuf {
    buf: TextBytes,
    limit: usize,
    policy: CapturePolicy,
    /// Every byte the stream produced, kept or not.
    seen: u64,
}

impl CaptureBuf {
    pub(crate) fn new(limit: Option<usize>, policy: CapturePolicy) -> CaptureBuf {
        CaptureBuf {
            buf: TextBytes::default(),
            limit: limit.unwrap_or(usize::MAX),
            policy,
            seen: 0,
        }
    }

    /// When `text`, a capture wanted as text (`run()`'s stdout): validated
    /// as UTF-8 as it arrives (see [`TextBytes`]).
    pub(crate) fn text_if(mut self, text: bool) -> CaptureBuf {
        if text && self.buf.is_empty() {
            self.buf = TextBytes::tracking();
        }
        self
    }

    /// Room to read into, for a read straight into the buffer when nothing
    /// has been cut yet (the fast path for unbounded capture).
    pub(crate) fn direct(&mut self) -> Option<&mut TextBytes> {
        (self.limit == usize::MAX).then_some(&mut self.buf)
    }

    /// Records `n` bytes appended through [`direct`](Self::direct).
    pub(crate) fn note_direct(&mut self, n: usize) {
        self.seen += n as u64;
    }

    /// Adds bytes; returns false once a `Fail` limit has been crossed.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> bool {
        self.seen += bytes.len() as u64;
        match self.policy {
            CapturePolicy::KeepHead | CapturePolicy::Fail => {
                let room = self.limit.saturating_sub(self.buf.len());
                self.buf.extend_from_slice(&bytes[..room.min(bytes.len())]);
            }
            CapturePolicy::KeepTail => {
                if bytes.len() >= self.limit {
                    self.buf.clear();
                    self.buf.drain_front(0);
                    self.buf
                        .extend_from_slice(&bytes[bytes.len() - self.limit..]);
                } else {
                    self.buf.extend_from_slice(bytes);
                    // Compact only when twice the limit is held: amortised
                    // O(1) per byte, at most 2x the limit in memory.
                    if self.buf.len() > self.limit.saturating_mul(2) {
                        let cut = self.buf.len() - self.limit;
                        self.buf.drain_front(cut);
                    }
                }
            }
        }
        !(self.policy == CapturePolicy::Fail && self.seen > self.limit as u64)
    }

    /// The kept bytes and the total seen.
    pub(crate) fn finish(mut self) -> Captured {
        if self.buf.len() > self.limit {
            let cut = self.buf.len() - self.limit;
            self.buf.drain_front(cut);
        }
        let truncated = self.seen > self.buf.len() as u64;
        Captured {
            bytes: self.buf,
            seen: self.seen,
            truncated,
            tee_error: None,
            lost: false,
        }
    }
}

/// What a capture kept.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Captured {
    pub bytes: TextBytes,
    pub seen: u64,
    pub truncated: bool,
    /// The write error that stopped the stream's tee, if one did.
    pub tee_error: Option<TeeError>,
    /// The reader's task ended without its result (the runtime it ran on
    /// shut down): what it read is lost.
    pub lost: bool,
}

/// A tee's write error, kept in an [`Output`](crate::Output) (which is
/// `Clone` and `Eq`): shared, and equal to another of the same kind, OS
/// error and message.
#[derive(Debug, Clone)]
pub(crate) struct TeeError(pub std::sync::Arc<std::io::Error>);

impl PartialEq for TeeError {
    fn eq(&self, other: &TeeError) -> bool {
        let (a, b) = (&self.0, &other.0);
        a.kind() == b.kind()
            && a.raw_os_error() == b.raw_os_error()
            && a.to_string() == b.to_string()
    }
}

impl Eq for TeeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let mut h = CaptureBuf::new(Some(4), CapturePolicy::KeepHead);
        assert!(h.push(b"abc") && h.push(b"defg"));
        let c = h.finish();
        assert_eq!((&c.bytes[..], c.seen, c.truncated), (&b"abcd"[..], 7, true));

        let mut t = CaptureBuf::new(Some(4), CapturePolicy::KeepTail);
        for chunk in [&b"abc"[..], b"def", b"g", b"hijklmn", b"o"] {
            t.push(chunk);
        }
        let c = t.finish();
        assert_eq!((&c.bytes[..], c.seen), (&b"lmno"[..], 15));

        let mut f = CaptureBuf::new(Some(4), CapturePolicy::Fail);
        assert!(f.push(b"abcd"));
        assert!(!f.push(b"e"));

        let mut u = CaptureBuf::new(None, CapturePolicy::KeepHead);
        u.push(b"xy");
        assert!(!u.finish().truncated);
    }
}
