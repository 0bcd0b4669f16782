//! The splitter's unit tests.

use super::*;

fn split(chunks: &[&[u8]], max: usize) -> Vec<(String, bool)> {
    let mut s = Splitter::new(max);
    let mut out = Vec::new();
    let mut take = |b: Option<Batch>| {
        if let Some(mut b) = b {
            while let Some(l) = b.pop() {
                out.push((l.text, l.partial));
            }
        }
    };
    for c in chunks {
        s.extend(c);
        take(s.split(StreamKind::Stdout));
    }
    take(s.finish(StreamKind::Stdout));
    out
}

fn whole(v: &[&str]) -> Vec<(String, bool)> {
    v.iter().map(|s| (s.to_string(), false)).collect()
}

#[test]
fn lines_across_chunks() {
    assert_eq!(
        split(&[b"a\nb", b"c\r\n", b"\nd"], 100),
        whole(&["a", "bc", "", "d"])
    );
    assert_eq!(split(&[b"x\n"], 100), whole(&["x"]));
    assert_eq!(split(&[b""], 100), whole(&[]));
    assert_eq!(split(&[b"\r\r\n"], 100), whole(&["\r"]));
    assert_eq!(
        split(&[b"a\n", b"b\nc\n", b"d"], 100),
        whole(&["a", "b", "c", "d"])
    );
}

#[test]
fn long_lines_are_cut_into_pieces() {
    let out = split(&[b"abcdefghij", b"klm\nz\n"], 4);
    assert_eq!(
        out,
        vec![
            ("abcd".into(), true),
            ("efgh".into(), true),
            ("ijkl".into(), true),
            ("m".into(), false),
            ("z".into(), false)
        ]
    );
    // A tail longer than the cap at end of input.
    let out = split(&[b"abcdefghij"], 4);
    assert_eq!(
        out,
        vec![
            ("abcd".into(), true),
            ("efgh".into(), true),
            ("ij".into(), false)
        ]
    );
}

/// Review F10: the `\r` of a CRLF ending does not count against the
/// cap, however the input is chunked.
#[test]
fn a_crlf_line_at_the_cap_is_one_line() {
    let want = whole(&["abcd", "xy"]);
    for chunks in [
        &[&b"abcd\r\nxy\r\n"[..]][..],
        &[b"abcd\r", b"\nxy\r\n"],
        &[b"abcd", b"\r\nxy\r\n"],
        &[b"ab", b"cd\r", b"\n", b"xy\r\n"],
    ] {
        assert_eq!(split(chunks, 4), want, "{chunks:?}");
    }
    // At multiples of the cap: pieces, the last one whole.
    let want = vec![("abcd".to_string(), true), ("efgh".to_string(), false)];
    assert_eq!(split(&[b"abcdefgh\r\n"], 4), want);
    assert_eq!(split(&[b"abcdefgh\r", b"\n"], 4), want);
    assert_eq!(split(&[b"abcdefgh", b"\r\n"], 4), want);
    // A lone `\r` is text: it counts, and is cut like any byte.
    assert_eq!(
        split(&[b"abcd\rx\n"], 4),
        vec![("abcd".to_string(), true), ("\rx".to_string(), false)]
    );
    assert_eq!(
        split(&[b"abcd\r", b"x\n"], 4),
        vec![("abcd".to_string(), true), ("\rx".to_string(), false)]
    );
}

/// Review (appendix B): the split never depends on how the input is
/// chunked.
#[test]
fn chunking_never_changes_the_split() {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet: &[&[u8]] = &[
        b"a",
        b"b",
        b"\n",
        b"\r",
        b"\r\n",
        "\u{e9}".as_bytes(),
        "\u{20ac}".as_bytes(),
        "\u{1F600}".as_bytes(),
        b"\xff",
        b"\xe2\x82",
    ];
    for case in 0..20_000 {
        let mut input = Vec::new();
        for _ in 0..rnd() % 40 {
            input.extend_from_slice(alphabet[(rnd() % alphabet.len() as u64) as usize]);
        }
        let max = 4 + (rnd() % 6) as usize;
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut i = 0;
        while i < input.len() {
            let j = (i + 1 + (rnd() % 7) as usize).min(input.len());
            chunks.push(&input[i..j]);
            i = j;
        }
        assert_eq!(
            split(&[&input], max),
            split(&chunks, max),
            "case {case}, max {max}, input {input:?}"
        );
    }
}

#[test]
fn cuts_respect_utf8() {
    // "ééé" is 6 bytes; a cap of 5 must not split the third é.
    let out = split(&["ééé\n".as_bytes()], 5);
    assert_eq!(out, vec![("éé".into(), true), ("é".into(), false)]);
}

#[test]
fn invalid_sequences_are_replaced_per_line() {
    assert_eq!(
        split(&[b"caf\xe9\nok\n\xff"], 100),
        whole(&["caf\u{FFFD}", "ok", "\u{FFFD}"])
    );
    // A character split across reads comes out whole.
    let e = "é".as_bytes();
    assert_eq!(split(&[&[b'a', e[0]], &[e[1], b'\n']], 100), whole(&["aé"]));
}

/// The partial line a prompt probe sees, and how many lines came
/// before it (pieces of a cut line don't count).
#[test]
fn the_tail_and_its_line_number() {
    let mut s = Splitter::new(4);
    s.extend(b"ab\ncdefgh\nPass");
    let _ = s.split(StreamKind::Stdout);
    assert_eq!(s.tail(), (2, &b"Pass"[..]));
    s.extend(b"\n");
    let _ = s.split(StreamKind::Stdout);
    assert_eq!(s.tail(), (3, &b""[..]));
}

#[test]
fn a_batch_splits_at_a_line() {
    let mut s = Splitter::new(100);
    s.extend(b"one\ntwo\nthree\n");
    let mut b = s.split(StreamKind::Stderr).unwrap();
    let mut front = b.split_front(2);
    assert_eq!((front.len(), b.len()), (2, 1));
    assert_eq!(front.pop().unwrap().text, "one");
    assert_eq!(front.pop().unwrap().text, "two");
    assert!(front.pop().is_none());
    let three = b.pop().unwrap();
    assert_eq!(
        (three.text.as_str(), three.stream),
        ("three", StreamKind::Stderr)
    );
    let texts: Vec<_> = s.finish(StreamKind::Stdout).into_iter().collect();
    assert!(texts.is_empty());
}

/// A batch's buffer, given back once its lines are taken, holds the
/// next batch of its size class (no new allocation).
#[test]
fn a_spare_comes_back_into_use() {
    let mut s = Splitter::new(1 << 20);
    let line = [b'x'; 127];
    let feed = |s: &mut Splitter, n: usize| {
        s.input().reserve(64 * 1024);
        for _ in 0..n {
            s.extend(&line);
            s.extend(b"\n");
        }
        s.split(StreamKind::Stdout).unwrap()
    };
    let mut b = feed(&mut s, 100);
    while b.pop().is_some() {}
    let spare = b.into_spare().expect("a spare");
    let ptr = spare.as_ptr();
    s.give_spare(spare);
    let b = feed(&mut s, 90);
    assert_eq!(b.text_ptr(), ptr);
}

/// One read in place as `run_keeping` makes it: the room first, then the
/// bytes (never more than the room), then the split. Returns the batch,
/// whether the read filled its room, and whether the batch is the very
/// buffer read into (no copy).
fn read_in_place(s: &mut Splitter, bytes: &[u8]) -> (Option<Batch>, bool, bool) {
    let from = s.read_room();
    let room = s.input().capacity() - from;
    assert!(
        bytes.len() <= room,
        "{} bytes for a room of {room}",
        bytes.len()
    );
    let ptr = s.input().as_ptr();
    s.input().extend_from_slice(bytes);
    assert_eq!(s.input().as_ptr(), ptr, "a read never moves the buffer");
    let filled = s.note_read(bytes.len());
    let batch = s.split(StreamKind::Stdout);
    let own = batch.as_ref().is_some_and(|b| b.text_ptr() == ptr);
    (batch, filled, own)
}

/// `n` bytes of 100-byte lines, the last one shorter, all whole.
fn lines_of(n: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
    for i in (99..n).step_by(100).chain([n - 1]) {
        v[i] = b'\n';
    }
    v
}

/// D2 of docs/issue20-next.md: a read lands in a buffer sized to its
/// class (up to the next power of two of a bigger read at once, doubled
/// after a read that filled its room, down a step after a read under half
/// of it; 4-64 KiB), so a read as big as the last ones is handed over as
/// the batch itself.
#[test]
fn a_read_buffer_is_sized_to_its_class() {
    let mut s = Splitter::new(1 << 20);
    let cap = |s: &mut Splitter| {
        s.read_room();
        s.input().capacity()
    };
    assert_eq!(cap(&mut s), FIRST_CLASS);
    // 3,000 bytes in 8 KiB: copied out; the class is now 4 KiB.
    let (b, filled, own) = read_in_place(&mut s, &lines_of(3000));
    assert!(b.is_some() && !filled && !own);
    assert_eq!(cap(&mut s), 4096);
    // As much again: the buffer itself is the batch.
    let (b, filled, own) = read_in_place(&mut s, &lines_of(3000));
    assert!(b.is_some() && !filled && own);
    // A read that fills its room doubles the class.
    let (_, filled, own) = read_in_place(&mut s, &lines_of(4096));
    assert!(filled && own);
    assert_eq!(cap(&mut s), 8192);
    // A big read sets a big class; the largest is 64 KiB, filled or not.
    let (_, filled, _) = read_in_place(&mut s, &lines_of(8192));
    assert!(filled);
    assert_eq!(cap(&mut s), 16384);
    let (_, _, own) = read_in_place(&mut s, &lines_of(16384));
    assert!(own);
    assert_eq!(cap(&mut s), 32768);
    let (_, _, own) = read_in_place(&mut s, &lines_of(32768));
    assert!(own);
    assert_eq!(cap(&mut s), MAX_CLASS);
    let (_, filled, own) = read_in_place(&mut s, &lines_of(MAX_CLASS));
    assert!(filled && own);
    assert_eq!(cap(&mut s), MAX_CLASS);
    // Small reads bring the class down a step each, to the smallest.
    for class in [32768, 16384, 8192, 4096, MIN_CLASS] {
        let (b, filled, own) = read_in_place(&mut s, &lines_of(100));
        assert!(
            b.is_some() && !filled && !own,
            "100 bytes in 2x+ are copied"
        );
        assert_eq!(cap(&mut s), class);
    }
    // A read of about the class's size keeps it.
    let (_, _, own) = read_in_place(&mut s, &lines_of(3000));
    assert!(own);
    assert_eq!(cap(&mut s), MIN_CLASS);
    // A long unterminated line: the room is the tail plus at least half
    // a class, in a power of two.
    for _ in 0..3 {
        let from = s.read_room();
        let room = s.input().capacity() - from;
        assert!(room >= s.class / 2, "room {room}, class {}", s.class);
        assert!(s.input().capacity().is_power_of_two());
        s.input().extend(std::iter::repeat_n(b'y', room));
        s.note_read(room);
        assert!(s.split(StreamKind::Stdout).is_none());
    }
    assert_eq!(s.class, 32768, "each filled room doubled the class");
    let tail = s.input().len();
    assert_eq!(cap(&mut s), (tail + 16384).next_power_of_two());
    let (mut b, _, _) = read_in_place(&mut s, b"z\n");
    let line = b.as_mut().and_then(Batch::pop).expect("the long line");
    assert_eq!(line.text.len(), tail + 1);
}

/// Lines of 1 byte to 200 KiB, read in chunks of random sizes through
/// every read class, arrive intact, each batch's buffer at most twice its
/// text; reads as big as the last are mostly handed over without a copy.
#[test]
fn lines_across_reads_of_every_class_arrive_intact() {
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for case in 0..12 {
        // Line lengths spread over 1 B .. 200 KiB (log-uniform), some of
        // them CRLF, some with a two-byte character.
        let mut input = Vec::new();
        let mut want = Vec::new();
        while input.len() < 3 << 20 {
            let len = 1 + (rnd() % (1 << (1 + rnd() % 18))) as usize % (200 * 1024);
            let mut line: Vec<u8> = (0..len).map(|_| b'a' + (rnd() % 26) as u8).collect();
            if rnd() % 4 == 0 && len >= 2 {
                line[len - 2..].copy_from_slice("\u{e9}".as_bytes());
            }
            input.extend_from_slice(&line);
            input.extend_from_slice(if rnd() % 5 == 0 { b"\r\n" } else { b"\n" });
            want.push(String::from_utf8(line).expect("text"));
        }
        let mut s = Splitter::new(256 * 1024);
        let mut got = Vec::new();
        let (mut batches, mut own) = (0, 0);
        let take = |b: Option<Batch>, got: &mut Vec<String>| {
            if let Some(mut b) = b {
                let (len, cap) = b.text_room();
                assert!(
                    cap <= 2 * len.max(1),
                    "case {case}: {cap} bytes of room for {len}"
                );
                while let Some(l) = b.pop() {
                    assert!(!l.partial, "case {case}: no line is over the cap");
                    got.push(l.text);
                }
            }
        };
        let mut at = 0;
        while at < input.len() {
            let from = s.read_room();
            let room = s.input().capacity() - from;
            // A whole room, about the last read's size, or anything.
            let n = match rnd() % 3 {
                0 => room,
                1 => (s.class / 2 + (rnd() as usize % (s.class / 2 + 1))).min(room),
                _ => 1 + rnd() as usize % room,
            }
            .min(input.len() - at);
            let ptr = s.input().as_ptr();
            s.input().extend_from_slice(&input[at..at + n]);
            at += n;
            s.note_read(n);
            let b = s.split(StreamKind::Stdout);
            batches += usize::from(b.is_some());
            own += usize::from(b.as_ref().is_some_and(|b| b.text_ptr() == ptr));
            take(b, &mut got);
        }
        take(s.finish(StreamKind::Stdout), &mut got);
        assert_eq!(got.len(), want.len(), "case {case}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == w,
                "case {case}, line {i}: {} bytes, want {}",
                g.len(),
                w.len()
            );
        }
        assert!(
            own * 3 >= batches,
            "case {case}: {own} of {batches} batches handed over"
        );
    }
}

/// Each line says whether it is a later piece of a cut line, across
/// batches and after a batch's tail was dropped (as the line queue drops
/// it under `Overflow::DropNewest`): the flag comes from the splitter, not
/// from the line taken before.
#[test]
fn a_piece_says_it_continues_a_cut_line_whatever_was_dropped() {
    let mut s = Splitter::new(8);
    let mut taken = Vec::new();
    // `a`, then the first piece of a cut line: the batch's tail (the
    // piece) dropped, its front kept.
    s.extend(b"a\nHEADBBBBCCCC");
    let mut b = s.split(StreamKind::Stdout).expect("a batch");
    let mut front = b.split_front(1);
    drop(b);
    front.compact();
    taken.extend(std::iter::from_fn(|| front.pop()));
    // The rest of the cut line, a whole line, and a line cut in two whose
    // first piece alone is kept.
    s.extend(b"CCCCDD\nREADY\n0123456789\n");
    let mut b = s.split(StreamKind::Stdout).expect("a batch");
    taken.extend(std::iter::from_fn(|| b.pop()));
    let got: Vec<(&str, bool, bool)> = taken
        .iter()
        .map(|l| (l.text.as_str(), l.partial, l.begins_a_line()))
        .collect();
    assert_eq!(
        got,
        [
            ("a", false, true),
            ("CCCCCCCC", true, false),
            ("DD", false, false),
            ("READY", false, true),
            ("01234567", true, true),
            ("89", false, false),
        ]
    );
}

/// A line told before its `\n` came (`finish` at the process's exit, its
/// last byte `\r`): a `\n` as the next byte ends nothing new; any other
/// byte, or a `\n` later, is a line as usual.
#[test]
fn a_lf_after_a_told_cr_ends_no_new_line() {
    let texts = |b: Option<Batch>| -> Vec<String> {
        let mut v = vec![];
        if let Some(mut b) = b {
            while let Some(l) = b.pop() {
                v.push(l.text);
            }
        }
        v
    };
    for (next, want) in [
        (&b"\n"[..], vec![]),
        (b"\nx\n", vec!["x"]),
        (b"y\n", vec!["y"]),
        (b"\r\n", vec![""]),
    ] {
        let mut s = Splitter::new(100);
        s.extend(b"abc\r");
        assert_eq!(texts(s.split(StreamKind::Stdout)), Vec::<String>::new());
        assert_eq!(texts(s.finish(StreamKind::Stdout)), vec!["abc"]);
        s.skip_next_lf();
        s.extend(next);
        assert_eq!(texts(s.split(StreamKind::Stdout)), want, "{next:?}");
        s.extend(b"\n");
        assert_eq!(
            texts(s.split(StreamKind::Stdout)),
            vec![""],
            "{next:?}: later"
        );
    }
}
