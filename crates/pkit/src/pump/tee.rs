//! Where a stream's raw bytes are mirrored (its tee), and the write of
//! each chunk to the tee and the capture.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::capture::CaptureBuf;
use super::limit::LimitFlag;
use super::lines::StreamKind;
use super::thread::Control;
use super::unwound;

/// Where a stream's raw bytes are mirrored.
#[derive(Clone)]
pub(crate) enum Tee {
    Async(Arc<tokio::sync::Mutex<Box<dyn AsyncWrite + Send + Unpin>>>),
    Blocking(Arc<Mutex<Box<dyn io::Write + Send>>>),
    /// Records every chunk (a cassette recording a started run, feature
    /// `testing`), then hands it on to the command's own tee, if any.
    #[cfg(feature = "testing")]
    Recorded(RecordChunk, Box<Option<Tee>>),
}

/// Takes one chunk of a stream's bytes, as read.
#[cfg(feature = "testing")]
pub(crate) type RecordChunk = Arc<dyn Fn(StreamKind, &[u8]) + Send + Sync>;

/// The tee written after a recording one (the tee itself otherwise).
#[cfg(feature = "testing")]
pub(super) fn own_tee(tee: &mut Option<Tee>) -> &mut Option<Tee> {
    match tee {
        Some(Tee::Recorded(_, next)) => next,
        other => other,
    }
}

#[cfg(not(feature = "testing"))]
pub(super) fn own_tee(tee: &mut Option<Tee>) -> &mut Option<Tee> {
    tee
}

impl fmt::Debug for Tee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tee::Async(_) => "Tee::Async",
            Tee::Blocking(_) => "Tee::Blocking",
            #[cfg(feature = "testing")]
            Tee::Recorded(..) => "Tee::Recorded",
        })
    }
}

/// Hands a stream's raw bytes to its tee (disabled on a write error, which
/// is returned) and its capture (setting `limit` when a `Fail` limit is
/// crossed).
pub(super) async fn mirror(
    (kind, control): (StreamKind, &Control),
    tee: &mut Option<Tee>,
    capture: &mut Option<CaptureBuf>,
    limit: &LimitFlag,
    bytes: &[u8],
) -> Option<io::Error> {
    #[cfg(feature = "testing")]
    if let Some(Tee::Recorded(record, _)) = tee {
        record(kind, bytes);
    }
    let tee = own_tee(tee);
    let mut failed = None;
    if let Some(t) = tee {
        if let Err(e) = unwound::cut_short(write_tee(t, bytes), control).await {
            tracing::warn!(target: "pkit", stream = %kind, error = %e, "tee write failed; tee disabled");
            *tee = None;
            failed = Some(e);
        }
    }
    if let Some(c) = capture {
        if !c.push(bytes) && !limit.is_hit() {
            limit.set();
        }
    }
    failed
}

async fn write_tee(tee: &Tee, bytes: &[u8]) -> io::Result<()> {
    match tee {
        Tee::Async(w) => {
            let mut w = w.lock().await;
            unwound::Unwound(std::pin::pin!(w.write_all(bytes))).await
        }
        Tee::Blocking(w) => {
            let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
            unwound::call(|| w.write_all(bytes))
        }
        // Unwrapped by `own_tee` before writing.
        #[cfg(feature = "testing")]
        Tee::Recorded(..) => Ok(()),
    }
}
