//! Fuzzes permessage-deflate (RFC 7692): `Inflater::inflate_message` on arbitrary compressed
//! messages under a size limit, and `Deflater::compress_message` -> `inflate_message` round trips.
//!
//! Input layout:
//! - byte 0: configuration. Bits 0-1: the limit's shift `s`; bit 2: inflate without context
//!   takeover (`reset`); bit 3: round trips without context takeover; bits 4-7: the compression
//!   level (`% 10`).
//! - bytes 1-2: `v` (little-endian u16); the limit is `max = min(1 + (v << s), 256 KiB)`.
//! - byte 3: shape. Bits 0-2: compression window bits `8 + b`; bits 3-5: the number `n` of
//!   plaintext message sizes that follow; bits 6-7: the plaintext is repeated 1, 2, 3 or 8 times
//!   (so that matches reach across messages and beyond small windows).
//! - the next `2 * n` bytes: plaintext message sizes (little-endian u16, 0 allowed), used in a
//!   cycle to cut the plaintext into messages.
//! - 2 bytes: the plaintext's length `L` (little-endian u16); then `L` bytes of plaintext.
//! - everything else: compressed messages, each a little-endian u16 length and that many bytes.
//!
//! Inflating arbitrary messages (as one connection would receive them, in order):
//! - nothing panics; on success the output is at most `max` bytes, and the output buffer never
//!   grows beyond `max + 64 KiB` (+1), even for a zip bomb;
//! - the limit only decides between the message and `TooBig`: the same messages inflated under
//!   the largest limit give the same bytes whenever they fit `max`;
//! - without context takeover, a long-lived inflater (the reactor shares one per worker between
//!   connections) gives the same result as a fresh one: nothing of an earlier message leaks;
//! - differential: a small, strict reference decoder (after zlib's `puff.c`, in this file) that
//!   decodes a message completely must get exactly what the inflater returns; when it exceeds
//!   the limit the inflater fails with `TooBig`, and when a match reaches back before the start
//!   of the data (no distance beyond the history) the inflater fails too. Other invalid streams
//!   are not compared. The reference rejects what zlib rejects, including zlib's rule for
//!   incomplete Huffman codes (only a single one-bit code), which is stricter than puff's.
//!
//! Round trips: the plaintext messages compressed by one `Deflater` (the input's level and
//! window) and inflated by one `Inflater` with `max` = the message's length, with or without
//! context takeover on both sides, give back each message exactly; the reference decoder agrees
//! and sees no match reaching further back than `2^window_bits` bytes (RFC 7692 §7.1.2.1); and
//! without context takeover a limit one byte smaller fails with `TooBig`.

#![no_main]

use corecast::ws::deflate::{Deflater, InflateError, Inflater};
use libfuzzer_sys::fuzz_target;

/// The largest size limit used.
const MAX_LIMIT: usize = 256 << 10;
/// What `inflate_message` may allocate beyond the limit (its output step) plus one byte.
const CAPACITY_SLACK: usize = (64 << 10) + 1;
/// At most this many messages of each kind per input, to keep a run fast.
const MAX_MESSAGES: usize = 16;
/// RFC 7692 §7.2.2: appended by the receiver before inflating.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// The deflate window: the farthest a match can reach.
const WINDOW: usize = 32 << 10;

/// A match reaching back before the start of the data (before the message without context
/// takeover, before the connection's first byte with it) must make `inflate_message` fail, as
/// in zlib ("invalid distance too far back"); `true` would check such messages for sizes only.
const TOLERATE_DISTANCE_TOO_FAR_BACK: bool = false;

/// A strict raw-deflate (RFC 1951) decoder, written for clarity rather than speed.
mod reference {
    /// Why decoding stopped without a complete message.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Error {
        /// Input ran out inside a block: not comparable.
        Incomplete,
        /// Not valid deflate (or a kind this strict decoder rejects).
        Invalid,
        /// A match reaches back before the start of the data (invalid deflate).
        TooFarBack,
        /// More than the limit was produced.
        TooBig,
    }

    /// A completely decoded message.
    #[derive(Debug)]
    pub struct Decoded {
        pub out: Vec<u8>,
        /// The stream ended with a BFINAL block (the window restarts after it).
        pub final_block: bool,
        /// The farthest back any match reached (0: no matches).
        pub max_distance: usize,
    }

    struct Bits<'a> {
        data: &'a [u8],
        pos: usize,
        buf: u32,
        /// Bits held in `buf`; always < 8 between reads.
        count: u32,
    }

    impl Bits<'_> {
        fn take(&mut self, n: u32) -> Result<u32, Error> {
            while self.count < n {
                let b = *self.data.get(self.pos).ok_or(Error::Incomplete)?;
                self.pos += 1;
                self.buf |= u32::from(b) << self.count;
                self.count += 8;
            }
            let v = self.buf & ((1u32 << n) - 1);
            self.buf >>= n;
            self.count -= n;
            Ok(v)
        }
    }

    /// A canonical Huffman code: how many codes of each length, and the symbols in code order.
    struct Huffman {
        count: [u16; 16],
        symbol: Vec<u16>,
    }

    impl Huffman {
        /// The code and how many codes are left unused (negative: over-subscribed).
        fn new(lengths: &[u8]) -> (Self, i32) {
            let mut count = [0u16; 16];
            for &l in lengths {
                count[usize::from(l)] += 1;
            }
            let mut h = Huffman {
                count,
                symbol: vec![0; lengths.len()],
            };
            if usize::from(count[0]) == lengths.len() {
                return (h, 0); // no codes: complete, but decoding with it fails
            }
            let mut left = 1i32;
            for &c in &count[1..] {
                left = (left << 1) - i32::from(c);
                if left < 0 {
                    return (h, left);
                }
            }
            let mut offs = [0usize; 16];
            for len in 1..15 {
                offs[len + 1] = offs[len] + usize::from(count[len]);
            }
            for (sym, &l) in lengths.iter().enumerate() {
                if l != 0 {
                    h.symbol[offs[usize::from(l)]] = sym as u16;
                    offs[usize::from(l)] += 1;
                }
            }
            (h, left)
        }

        /// Exactly one code, and it is one bit long.
        fn single_length_one(&self) -> bool {
            self.count[1] == 1 && self.count[2..].iter().all(|&c| c == 0)
        }

        fn decode(&self, bits: &mut Bits<'_>) -> Result<usize, Error> {
            let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
            for len in 1..16 {
                code |= bits.take(1)? as i32;
                let count = i32::from(self.count[len]);
                if code - count < first {
                    return Ok(usize::from(self.symbol[(index + code - first) as usize]));
                }
                index += count;
                first = (first + count) << 1;
                code <<= 1;
            }
            Err(Error::Invalid)
        }
    }

    const LEN_BASE: [u16; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const LEN_EXTRA: [u8; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    const DIST_BASE: [u16; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    const DIST_EXTRA: [u8; 30] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
        13, 13,
    ];
    const CODE_LENGTH_ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];

    struct Decoder<'a> {
        bits: Bits<'a>,
        /// The history (earlier messages) followed by this message's output.
        buf: Vec<u8>,
        start: usize,
        limit: usize,
        max_distance: usize,
    }

    impl Decoder<'_> {
        fn produced(&self) -> usize {
            self.buf.len() - self.start
        }

        fn stored(&mut self) -> Result<(), Error> {
            self.bits.buf = 0;
            self.bits.count = 0;
            let len = self.bits.take(16)?;
            let nlen = self.bits.take(16)?;
            if len != !nlen & 0xffff {
                return Err(Error::Invalid);
            }
            let len = len as usize;
            let avail = &self.bits.data[self.bits.pos..];
            let n = len.min(avail.len());
            self.buf.extend_from_slice(&avail[..n]);
            self.bits.pos += n;
            if self.produced() > self.limit {
                return Err(Error::TooBig);
            }
            if n < len {
                return Err(Error::Incomplete);
            }
            Ok(())
        }

        fn codes(&mut self, lit: &Huffman, dist: &Huffman) -> Result<(), Error> {
            loop {
                let sym = lit.decode(&mut self.bits)?;
                if sym < 256 {
                    self.buf.push(sym as u8);
                    if self.produced() > self.limit {
                        return Err(Error::TooBig);
                    }
                } else if sym == 256 {
                    return Ok(());
                } else {
                    let i = sym - 257;
                    if i >= LEN_BASE.len() {
                        return Err(Error::Invalid);
                    }
                    let len = usize::from(LEN_BASE[i])
                        + self.bits.take(u32::from(LEN_EXTRA[i]))? as usize;
                    let d = dist.decode(&mut self.bits)?;
                    if d >= DIST_BASE.len() {
                        return Err(Error::Invalid);
                    }
                    let distance = usize::from(DIST_BASE[d])
                        + self.bits.take(u32::from(DIST_EXTRA[d]))? as usize;
                    if distance > self.buf.len() {
                        return Err(Error::TooFarBack);
                    }
                    if self.produced() + len > self.limit {
                        return Err(Error::TooBig);
                    }
                    self.max_distance = self.max_distance.max(distance);
                    for _ in 0..len {
                        self.buf.push(self.buf[self.buf.len() - distance]);
                    }
                }
            }
        }

        fn fixed(&mut self) -> Result<(), Error> {
            let mut lengths = [0u8; 288];
            lengths[..144].fill(8);
            lengths[144..256].fill(9);
            lengths[256..280].fill(7);
            lengths[280..].fill(8);
            let (lit, _) = Huffman::new(&lengths);
            let (dist, _) = Huffman::new(&[5; 30]);
            self.codes(&lit, &dist)
        }

        fn dynamic(&mut self) -> Result<(), Error> {
            let nlen = self.bits.take(5)? as usize + 257;
            let ndist = self.bits.take(5)? as usize + 1;
            let ncode = self.bits.take(4)? as usize + 4;
            if nlen > 286 || ndist > 30 {
                return Err(Error::Invalid);
            }
            let mut lengths = [0u8; 320];
            for &i in &CODE_LENGTH_ORDER[..ncode] {
                lengths[i] = self.bits.take(3)? as u8;
            }
            let (lencode, left) = Huffman::new(&lengths[..19]);
            if left != 0 {
                return Err(Error::Invalid); // a complete code-length code is required
            }
            lengths = [0u8; 320];
            let mut index = 0;
            while index < nlen + ndist {
                let sym = lencode.decode(&mut self.bits)?;
                if sym < 16 {
                    lengths[index] = sym as u8;
                    index += 1;
                    continue;
                }
                let (len, repeat) = match sym {
                    16 if index == 0 => return Err(Error::Invalid),
                    16 => (lengths[index - 1], 3 + self.bits.take(2)?),
                    17 => (0, 3 + self.bits.take(3)?),
                    _ => (0, 11 + self.bits.take(7)?),
                };
                let repeat = repeat as usize;
                if index + repeat > nlen + ndist {
                    return Err(Error::Invalid);
                }
                lengths[index..index + repeat].fill(len);
                index += repeat;
            }
            if lengths[256] == 0 {
                return Err(Error::Invalid); // no end-of-block code
            }
            // zlib's rule (inftrees.c): an incomplete code is allowed only when it is a single
            // code of length 1. puff.c checks only "a single code", so it accepts e.g. one
            // distance code of length 2 that zlib rejects ("invalid distances set") before
            // producing any output of the block.
            let (lit, left) = Huffman::new(&lengths[..nlen]);
            if left < 0 || (left > 0 && !lit.single_length_one()) {
                return Err(Error::Invalid);
            }
            let (dist, left) = Huffman::new(&lengths[nlen..nlen + ndist]);
            if left < 0 || (left > 0 && !dist.single_length_one()) {
                return Err(Error::Invalid);
            }
            self.codes(&lit, &dist)
        }
    }

    /// Decodes `input` (a message with the sync tail appended) after `history` (the window of
    /// earlier messages, empty without context takeover). Stops after a BFINAL block, or when
    /// the input ends at a block boundary (fewer than 3 bits left: no next header).
    pub fn inflate(input: &[u8], history: &[u8], limit: usize) -> Result<Decoded, Error> {
        let mut d = Decoder {
            bits: Bits {
                data: input,
                pos: 0,
                buf: 0,
                count: 0,
            },
            buf: history.to_vec(),
            start: history.len(),
            limit,
            max_distance: 0,
        };
        loop {
            if d.bits.pos == input.len() && d.bits.count < 3 {
                return Ok(d.finish(false));
            }
            let last = d.bits.take(1)? == 1;
            match d.bits.take(2)? {
                0 => d.stored()?,
                1 => d.fixed()?,
                2 => d.dynamic()?,
                _ => return Err(Error::Invalid),
            }
            if last {
                return Ok(d.finish(true));
            }
        }
    }

    impl Decoder<'_> {
        fn finish(mut self, final_block: bool) -> Decoded {
            Decoded {
                out: self.buf.split_off(self.start),
                final_block,
                max_distance: self.max_distance,
            }
        }
    }
}

/// Splits off a little-endian u16, or returns `None` when fewer than 2 bytes are left.
fn take_u16(data: &mut &[u8]) -> Option<usize> {
    let &[a, b, ref rest @ ..] = *data else {
        return None;
    };
    *data = rest;
    Some(usize::from(u16::from_le_bytes([a, b])))
}

/// Splits off up to `n` bytes.
fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, rest) = data.split_at(n.min(data.len()));
    *data = rest;
    head
}

/// Keeps the last [`WINDOW`] bytes of what a context-takeover decoder may refer back to.
fn push_history(history: &mut Vec<u8>, out: &[u8]) {
    history.extend_from_slice(out);
    if history.len() > WINDOW {
        history.drain(..history.len() - WINDOW);
    }
}

/// The promises of `inflate_message` about sizes, whatever the input.
fn check_bounds(r: &Result<(), InflateError>, out: &Vec<u8>, max: usize) {
    if r.is_ok() {
        assert!(
            out.len() <= max,
            "{} bytes inflated under a limit of {max}",
            out.len()
        );
    }
    assert!(
        out.capacity() <= max + CAPACITY_SLACK,
        "output grew to {} under a limit of {max}",
        out.capacity()
    );
}

/// Inflates `messages` in order, as one connection receiving them would.
fn check_inflate(messages: &[&[u8]], max: usize, reset: bool) {
    let mut lim = Inflater::default();
    let mut big = Inflater::default();
    let (mut lim_out, mut big_out, mut fresh_out) = (Vec::new(), Vec::new(), Vec::new());
    // With context takeover, comparisons stop at the first error (the connection would be
    // failed) or, for the reference, at the first message it cannot decode completely.
    let mut compare = true;
    let mut compare_reference = true;
    let mut history = Vec::new();
    let mut input = Vec::new();
    for &payload in messages {
        let rl = lim.inflate_message(payload, &mut lim_out, max, reset);
        check_bounds(&rl, &lim_out, max);
        let rb = big.inflate_message(payload, &mut big_out, MAX_LIMIT, reset);
        check_bounds(&rb, &big_out, MAX_LIMIT);

        if reset {
            let rf = Inflater::default().inflate_message(payload, &mut fresh_out, max, true);
            assert_eq!(rl, rf, "a reused inflater differs from a fresh one");
            if rl.is_ok() {
                assert!(
                    lim_out == fresh_out,
                    "a reused inflater leaks an earlier message"
                );
            }
        }

        if compare || reset {
            match rb {
                Ok(()) if big_out.len() <= max => {
                    assert_eq!(
                        rl,
                        Ok(()),
                        "fails under {max} but inflates to {}",
                        big_out.len()
                    );
                    assert!(lim_out == big_out, "output depends on the limit");
                }
                Ok(()) | Err(InflateError::TooBig) => {
                    assert_eq!(rl, Err(InflateError::TooBig), "{} bytes", big_out.len())
                }
                Err(InflateError::Corrupt) => assert!(rl.is_err(), "corrupt under a larger limit"),
            }
        }

        if compare_reference || reset {
            input.clear();
            input.extend_from_slice(payload);
            input.extend_from_slice(&SYNC_TAIL);
            let h: &[u8] = if reset { &[] } else { &history };
            match reference::inflate(&input, h, max) {
                Ok(d) => {
                    assert_eq!(rl, Ok(()), "the reference decodes {} bytes", d.out.len());
                    assert!(lim_out == d.out, "output differs from the reference");
                    if d.final_block {
                        history.clear();
                    } else {
                        push_history(&mut history, &d.out);
                    }
                }
                Err(reference::Error::TooBig) => {
                    assert_eq!(rl, Err(InflateError::TooBig), "the reference exceeds {max}");
                    compare_reference = false;
                }
                Err(reference::Error::TooFarBack) if !TOLERATE_DISTANCE_TOO_FAR_BACK => {
                    assert!(
                        rl.is_err(),
                        "a match before the start of the data is accepted"
                    );
                    compare_reference = false;
                }
                Err(_) => compare_reference = false,
            }
        }

        if rl.is_err() || rb.is_err() {
            compare = false;
            compare_reference = false;
        }
    }
}

/// Compresses `messages` with one deflater and inflates them with one inflater.
fn check_round_trip(messages: &[&[u8]], level: u8, window_bits: u8, reset: bool) {
    let mut deflater = Deflater::new(level, window_bits);
    let mut inflater = Inflater::default();
    let mut wire = Vec::new();
    let mut out = Vec::new();
    let mut history = Vec::new();
    for (i, &msg) in messages.iter().enumerate() {
        wire.clear();
        assert!(
            deflater.compress_message(msg, &mut wire, reset),
            "compression failed (level {level}, window {window_bits})"
        );
        assert!(!wire.is_empty(), "an empty message is sent as 0x00");

        let r = inflater.inflate_message(&wire, &mut out, msg.len(), reset);
        assert_eq!(r, Ok(()), "message {i} of {} bytes", msg.len());
        assert!(out == msg, "message {i} comes back different");

        let mut input = wire.clone();
        input.extend_from_slice(&SYNC_TAIL);
        let h: &[u8] = if reset { &[] } else { &history };
        let d = reference::inflate(&input, h, msg.len())
            .unwrap_or_else(|e| panic!("the reference fails on message {i}: {e:?}"));
        assert!(
            d.out == msg,
            "the reference decodes message {i} differently"
        );
        assert!(!d.final_block, "a message must not end the deflate stream");
        assert!(
            d.max_distance <= 1 << window_bits,
            "a match reaches {} bytes back with a {window_bits}-bit window",
            d.max_distance
        );
        push_history(&mut history, msg);

        if reset && !msg.is_empty() {
            let r = Inflater::default().inflate_message(&wire, &mut out, msg.len() - 1, true);
            assert_eq!(r, Err(InflateError::TooBig), "one byte over the limit");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [cfg, v0, v1, shape, rest @ ..] = data else {
        return;
    };
    let mut rest: &[u8] = rest;
    let max = (1 + (usize::from(u16::from_le_bytes([*v0, *v1])) << (cfg & 0b11))).min(MAX_LIMIT);
    let inflate_reset = cfg & 0b100 != 0;
    let round_trip_reset = cfg & 0b1000 != 0;
    let level = (cfg >> 4) % 10;
    let window_bits = 8 + (shape & 0b111);
    let n = usize::from((shape >> 3) & 0b111);
    let repeat = [1, 2, 3, 8][usize::from(shape >> 6)];

    let mut sizes = Vec::with_capacity(n);
    for _ in 0..n {
        match take_u16(&mut rest) {
            Some(s) => sizes.push(s),
            None => return,
        }
    }
    let Some(len) = take_u16(&mut rest) else {
        return;
    };
    let plaintext = take(&mut rest, len).repeat(repeat);
    let mut messages: Vec<&[u8]> = Vec::new();
    let mut left: &[u8] = &plaintext;
    for &s in sizes.iter().cycle().take(MAX_MESSAGES - 1) {
        messages.push(take(&mut left, s));
    }
    messages.push(left);
    check_round_trip(&messages, level, window_bits, round_trip_reset);

    let mut compressed: Vec<&[u8]> = Vec::new();
    while compressed.len() < MAX_MESSAGES {
        let Some(len) = take_u16(&mut rest) else {
            break;
        };
        compressed.push(take(&mut rest, len));
    }
    check_inflate(&compressed, max, inflate_reset);
});
