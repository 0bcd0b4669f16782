//! The cassette file: its formats, and reading one without trusting its
//! size or kind (a huge file, a device, a FIFO nobody writes).

use std::io::{self, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::testing::runs::{self, Run};

/// The newest cassette format this pkit reads, and the one it writes when
/// the cassette holds a secret argument (see [`RecordReplay`](super::RecordReplay)).
pub(super) const FORMAT: u64 = 3;
/// The format written when the cassette holds a started run and no secret
/// argument: what pkit before format 3 reads.
pub(super) const FORMAT_STARTED: u64 = 2;
/// The format written when every run came through a verb: what pkit
/// before format 2 reads.
pub(super) const FORMAT_VERBS_ONLY: u64 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Cassette {
    pub(super) format: u64,
    pub(super) runs: Vec<Run>,
}

/// `RecordReplay::MAX_BYTES`: the largest cassette file read or written.
pub(super) const MAX_BYTES: u64 = 64 << 20;

/// The bytes of the cassette at `path`: a regular file of at most
/// [`MAX_BYTES`]. Anything else (a directory, a device such
/// as `/dev/zero`, a FIFO or socket) is refused without a read; on Unix
/// it is opened non-blocking, so a FIFO nobody writes to does not hang
/// the open, and a file that grows while read is cut at the limit and
/// refused.
pub(super) fn read(path: &Path) -> Result<Vec<u8>> {
    let refused = |e: io::Error| Error::io(format!("reading the cassette {}", path.display()), e);
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = options.open(path).map_err(refused)?;
    let meta = file.metadata().map_err(refused)?;
    if !meta.is_file() {
        return Err(refused(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a directory, a device, a FIFO or a socket): a cassette is read from a file",
        )));
    }
    let too_large = || {
        refused(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!(
                "over {} bytes, the most a cassette may hold (RecordReplay::MAX_BYTES)",
                MAX_BYTES
            ),
        ))
    };
    if meta.len() > MAX_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // One byte past the limit tells a file that grew past it.
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(refused)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// The runs of a cassette file, or why it is not one.
pub(super) fn parse(bytes: &[u8]) -> std::result::Result<Vec<Run>, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a cassette (corrupt JSON at line {})", e.line()))?;
    let format = match value.get("format") {
        Some(v) => v
            .as_u64()
            .ok_or("not a cassette (its format version is not a number)")?,
        None => return Err("not a cassette (no format version)".into()),
    };
    if format > FORMAT {
        return Err(format!(
            "cassette format {format} is newer than this pkit reads (up to {FORMAT}): upgrade pkit or record it again"
        ));
    }
    if format < FORMAT_VERBS_ONLY {
        return Err(format!(
            "not a cassette (format {format}: the cassette formats are {FORMAT_VERBS_ONLY} to {FORMAT})"
        ));
    }
    runs::check_args(&value)?;
    let cassette: Cassette =
        serde_json::from_value(value).map_err(|e| format!("corrupt cassette: {e}"))?;
    runs::check_outcomes(&cassette.runs)?;
    let mut runs = cassette.runs;
    // What a run is matched on is its bytes: UTF-8 written as an array of
    // bytes (by hand, by another tool) is the string a command gives.
    for run in &mut runs {
        run.program.canonicalize();
        for arg in &mut run.args {
            if let runs::Arg::Plain(blob) = arg {
                blob.canonicalize();
            }
        }
        if let Some(cwd) = &mut run.cwd {
            cwd.canonicalize();
        }
    }
    Ok(runs)
}
