//! Entry points for the fuzz targets in `fuzz/` (the hidden `fuzzing`
//! feature): the line splitter and decoders fed the way the pump feeds
//! them, chunk by chunk. Not part of the API.

use super::{Decoder, Line, Splitter, StreamKind};

/// Takes every line of `batch`, the way picked by `how`: popped one by
/// one (even), or (odd) a front part of `how / 2` lines split off first and
/// taken, then the rest, as the queue does when it has room for only part
/// of a batch. `texts()` must show what `pop()` then gives.
fn take_all(mut batch: super::Batch, how: u8, out: &mut Vec<Line>) {
    if how % 2 == 1 {
        let mut front = batch.split_front(usize::from(how / 2));
        let shown: Vec<String> = front.texts().map(str::to_owned).collect();
        let mut taken = Vec::new();
        while let Some(line) = front.pop() {
            taken.push(line.text.clone());
            out.push(line);
        }
        assert_eq!(shown, taken, "texts() and pop() disagree");
    }
    while let Some(line) = batch.pop() {
        out.push(line);
    }
}

/// Splits `chunks` (read one after another from one stream) into lines
/// with the given cap, decoding with `decoder` first when given (as a
/// command with a [`DecoderFactory`](super::DecoderFactory) does),
/// exactly as the pump does. `takes` picks how each batch's lines are
/// taken (see the source); every line comes out once, in order.
pub fn split_chunks(
    max_line_bytes: usize,
    chunks: &[&[u8]],
    mut decoder: Option<Box<dyn Decoder>>,
    takes: &[u8],
) -> Vec<Line> {
    let mut splitter = Splitter::new(max_line_bytes);
    let mut text = String::new();
    let mut out = Vec::new();
    let mut n = 0usize;
    let mut how = || {
        let h = takes.get(n % takes.len().max(1)).copied().unwrap_or(0);
        n += 1;
        h
    };
    for chunk in chunks {
        if chunk.is_empty() {
            // The pump never feeds an empty read (it is end of file).
            continue;
        }
        match &mut decoder {
            None => splitter.input().extend_from_slice(chunk),
            Some(d) => {
                d.decode(chunk, false, &mut text);
                splitter.extend(text.as_bytes());
                text.clear();
            }
        }
        if let Some(batch) = splitter.split(StreamKind::Stdout) {
            take_all(batch, how(), &mut out);
        }
    }
    if let Some(d) = &mut decoder {
        d.decode(&[], true, &mut text);
        splitter.extend(text.as_bytes());
    }
    if let Some(batch) = splitter.finish(StreamKind::Stdout) {
        take_all(batch, how(), &mut out);
    }
    out
}

/// A batch after part of it was split off and dropped, then compacted:
/// the lines left are the ones after the first `front`, unchanged.
pub fn split_then_compact(max_line_bytes: usize, input: &[u8], front: usize) -> Vec<Line> {
    let mut splitter = Splitter::new(max_line_bytes);
    splitter.extend(input);
    let Some(mut batch) = splitter.finish(StreamKind::Stdout) else {
        return Vec::new();
    };
    drop(batch.split_front(front));
    batch.compact();
    let mut out = Vec::new();
    while let Some(line) = batch.pop() {
        out.push(line);
    }
    out
}

/// The decoder a factory makes for one stream (as the pump gets it).
pub fn decoder(factory: &super::DecoderFactory) -> Box<dyn Decoder> {
    factory.make()
}
