//! permessage-deflate (RFC 7692): offer negotiation, and message-level inflate/deflate.
//!
//! Owns the extension's parameters and the raw-deflate transforms. Sans-IO like the rest of
//! `ws`: bytes in, bytes out, no sockets and no clock. Memory is a first-class budget: a
//! [`Deflater`] or [`Inflater`] is only created where the negotiated parameters need one
//! (see [`CompressionMode`]); inflation is bounded by the caller's size limit *while* it runs,
//! so a small "zip bomb" fails with [`InflateError::TooBig`] after at most `max + 64 KiB` of
//! output.
//!
//! Inflating uses flate2 with its zlib-rs backend (zlib's algorithm, including its check that
//! no match reaches back before the first byte of the stream); deflating uses miniz_oxide
//! directly.

use flate2::{Decompress, FlushDecompress, Status};
use miniz_oxide::deflate::core::{
    compress, CompressionStrategy, CompressorOxide, TDEFLFlush, TDEFLStatus,
};
use miniz_oxide::DataFormat;

use super::close::CloseCode;

/// The extension token.
pub const EXTENSION_NAME: &str = "permessage-deflate";
/// RFC 7692 §7.2.1: the bytes a sync flush ends with, removed by the sender and appended by
/// the receiver.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Output grows by at most this much per inflate step.
const INFLATE_CHUNK: usize = 64 << 10;

/// How the server spends memory on compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionMode {
    /// Decline permessage-deflate.
    Off,
    /// Default. The server never takes over its compression context
    /// (`server_no_context_takeover`), so one compressor per worker serves every connection
    /// and a fan-out message is compressed once. An inflate window is kept per connection
    /// only when the client keeps its context (did not offer `client_no_context_takeover`).
    #[default]
    Shared,
    /// Per-connection compressor with context takeover unless the client forbids it: best
    /// ratio, ~300 KiB per connection that receives compressed messages.
    Dedicated,
}

/// Negotiated parameters of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message, so the server needs no
    /// per-connection inflate window.
    pub client_no_context_takeover: bool,
    /// LZ77 window the server may use, 8..=15.
    pub server_max_window_bits: u8,
    /// LZ77 window the client uses, 8..=15 (informational: inflating with 15 reads any).
    pub client_max_window_bits: u8,
}

/// The `Sec-WebSocket-Extensions` value of a 101 response, without allocating.
#[derive(Clone, Copy)]
pub struct ExtensionResponse {
    buf: [u8; 128],
    len: usize,
}

impl ExtensionResponse {
    fn push(&mut self, s: &str) {
        let end = self.len + s.len();
        if end <= self.buf.len() {
            self.buf[self.len..end].copy_from_slice(s.as_bytes());
            self.len = end;
        }
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        // Built from ASCII literals and digits only.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or(EXTENSION_NAME)
    }
}

impl std::fmt::Debug for ExtensionResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Picks the first acceptable permessage-deflate offer.
///
/// `offers` are the comma-separated elements of `Sec-WebSocket-Extensions`, each
/// `name; param[=value]; ...`. An offer with an unknown, duplicate or malformed parameter is
/// declined (RFC 7692 §5.1: the server "MUST decline" such an offer) and the next one is tried;
/// no acceptable offer means no compression, never a failed handshake.
pub fn negotiate<'a>(
    offers: impl IntoIterator<Item = &'a [u8]>,
    mode: CompressionMode,
) -> Option<(DeflateParams, ExtensionResponse)> {
    if mode == CompressionMode::Off {
        return None;
    }
    offers
        .into_iter()
        .find_map(|offer| accept_offer(offer, mode))
}

/// A parsed offer: (`*_no_context_takeover` present, `*_max_window_bits` value).
#[derive(Default)]
struct Offer {
    server_nct: bool,
    client_nct: bool,
    server_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_bits: Option<Option<u8>>,
}

fn parse_offer(offer: &[u8]) -> Option<Offer> {
    let mut parts = offer.split(|&b| b == b';').map(<[u8]>::trim_ascii);
    if !parts
        .next()?
        .eq_ignore_ascii_case(EXTENSION_NAME.as_bytes())
    {
        return None;
    }
    let mut o = Offer::default();
    for p in parts {
        let (name, value) = match p.iter().position(|&b| b == b'=') {
            Some(i) => (p[..i].trim_ascii(), Some(unquote(p[i + 1..].trim_ascii())?)),
            None => (p, None),
        };
        match name {
            b"server_no_context_takeover" if value.is_none() && !o.server_nct => {
                o.server_nct = true
            }
            b"client_no_context_takeover" if value.is_none() && !o.client_nct => {
                o.client_nct = true
            }
            b"server_max_window_bits" if o.server_bits.is_none() => {
                o.server_bits = Some(window_bits(value?)?)
            }
            b"client_max_window_bits" if o.client_bits.is_none() => {
                o.client_bits = Some(match value {
                    Some(v) => Some(window_bits(v)?),
                    None => None,
                });
            }
            _ => return None, // unknown, duplicate or malformed
        }
    }
    Some(o)
}

fn unquote(v: &[u8]) -> Option<&[u8]> {
    match v {
        [b'"', inner @ .., b'"'] => Some(inner),
        [b'"', ..] => None,
        _ => Some(v),
    }
}

/// "The value MUST be a decimal integer in the range 8 to 15 ... without leading zeros."
fn window_bits(v: &[u8]) -> Option<u8> {
    match v {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

fn accept_offer(offer: &[u8], mode: CompressionMode) -> Option<(DeflateParams, ExtensionResponse)> {
    let o = parse_offer(offer)?;
    let params = DeflateParams {
        server_no_context_takeover: o.server_nct || mode == CompressionMode::Shared,
        client_no_context_takeover: o.client_nct,
        server_max_window_bits: o.server_bits.unwrap_or(15),
        client_max_window_bits: o.client_bits.flatten().unwrap_or(15),
    };
    let mut r = ExtensionResponse {
        buf: [0; 128],
        len: 0,
    };
    r.push(EXTENSION_NAME);
    if params.server_no_context_takeover {
        r.push("; server_no_context_takeover");
    }
    if params.client_no_context_takeover {
        r.push("; client_no_context_takeover");
    }
    if let Some(bits) = o.server_bits {
        r.push("; server_max_window_bits=");
        r.push(BITS[usize::from(bits)]);
    }
    // Echo the client's own limit only when it gave one ("the server MUST NOT include
    // client_max_window_bits in the response" when the offer lacks it).
    if let Some(Some(bits)) = o.client_bits {
        r.push("; client_max_window_bits=");
        r.push(BITS[usize::from(bits)]);
    }
    Some((params, r))
}

const BITS: [&str; 16] = [
    "", "", "", "", "", "", "", "", "8", "9", "10", "11", "12", "13", "14", "15",
];

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// The inflated message exceeds the size limit.
    #[error("message too big")]
    TooBig,
    /// Not a valid raw deflate stream.
    #[error("invalid compressed data")]
    Corrupt,
}

impl InflateError {
    /// The close code to fail the connection with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::TooBig => CloseCode::TOO_BIG,
            Self::Corrupt => CloseCode::INVALID_PAYLOAD,
        }
    }
}

/// Raw-deflate decompressor with a 32 KiB window (reads any client window size).
///
/// A match reaching back before the first byte of the stream (before the message after a
/// reset, before the connection's first message with context takeover) is
/// [`InflateError::Corrupt`], as in zlib ("invalid distance too far back").
pub struct Inflater {
    // Boxed so that an `Option<Inflater>` stays one pointer; the state itself (window
    // included) is one ~47 KB allocation made by `Decompress::new`.
    d: Box<Decompress>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inflater")
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Self {
            d: Box::new(Decompress::new(false)),
        }
    }
}

impl Inflater {
    /// Inflates one message's payload (as sent: without the sync tail) into `out`, replacing
    /// its contents. `reset` starts from an empty window (peer without context takeover).
    pub fn inflate_message(
        &mut self,
        payload: &[u8],
        out: &mut Vec<u8>,
        max: usize,
        reset: bool,
    ) -> Result<(), InflateError> {
        out.clear();
        if reset {
            self.d.reset(false);
        }
        let ended = self.feed(payload, out, max)?;
        if !ended {
            self.feed(&SYNC_TAIL, out, max)?;
        }
        Ok(())
    }

    /// Feeds input; returns true when the stream ended (a block with BFINAL), after which the
    /// state is reset for the next message.
    fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<bool, InflateError> {
        loop {
            let start = out.len();
            // One byte beyond `max` tells "too big" apart from "exactly max".
            let room = (max + 1).saturating_sub(start).min(INFLATE_CHUNK);
            if room == 0 {
                return Err(InflateError::TooBig);
            }
            // Exact growth keeps the allocation within `max + INFLATE_CHUNK` (no doubling).
            // The step writes into the spare capacity (not zero-filled first); a buffer
            // reused with more capacity than `room` may overshoot `max` in one step, which
            // the check below turns into TooBig without any further allocation.
            out.reserve_exact(room);
            let avail = out.capacity() - start;
            let in_before = self.d.total_in();
            let r = self.d.decompress_vec(input, out, FlushDecompress::None);
            // Bounded by the input slice just passed in.
            let consumed = (self.d.total_in() - in_before) as usize;
            let written = out.len() - start;
            input = &input[consumed..];
            if out.len() > max {
                return Err(InflateError::TooBig);
            }
            match r {
                Ok(Status::StreamEnd) => {
                    self.d.reset(false);
                    return Ok(true);
                }
                Ok(Status::Ok) => {}
                // No progress possible: all input used and output space left over.
                Ok(Status::BufError) => return Ok(false),
                Err(_) => return Err(InflateError::Corrupt),
            }
            if input.is_empty() && written < avail {
                return Ok(false);
            }
        }
    }
}

/// Raw-deflate compressor for one window size.
pub struct Deflater {
    c: Box<CompressorOxide>,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deflater")
    }
}

impl Deflater {
    /// A compressor at `level` (0-9) that never looks back further than `2^window_bits` bytes.
    ///
    /// miniz_oxide's own window limiting is not reliable (its fast path matches up to 32 KiB
    /// back whatever the window), so a window under 15 bits gets Huffman-only coding: no
    /// back-references at all, which is valid for every window size (RFC 7692 §7.1.2.1 only
    /// bounds how far back the server may look).
    ///
    /// Never inlined: miniz_oxide's compressor is built on the stack (~64 KiB) before it is
    /// boxed, and a caller that inlined this would touch that much stack on every call, even
    /// when it only sends plain frames.
    #[cold]
    #[inline(never)]
    pub fn new(level: u8, window_bits: u8) -> Self {
        let bits = window_bits.clamp(8, 15);
        let strategy = if bits < 15 {
            CompressionStrategy::HuffmanOnly
        } else {
            CompressionStrategy::Default
        };
        Self {
            c: Box::new(CompressorOxide::with_params(
                DataFormat::Raw,
                level.min(9),
                strategy,
                bits,
            )),
        }
    }

    /// Compresses one message into `out` (appended), ready to send: sync-flushed with the
    /// trailing `00 00 ff ff` removed (RFC 7692 §7.2.1). `reset` forgets earlier messages
    /// (no context takeover). Returns false if compression failed (send it uncompressed).
    pub fn compress_message(&mut self, payload: &[u8], out: &mut Vec<u8>, reset: bool) -> bool {
        if reset {
            self.c.reset();
        }
        let start = out.len();
        let mut input = payload;
        loop {
            let at = out.len();
            // Stored blocks expand by 5 bytes per 64 KiB; room for all of it at once avoids
            // repeated flush markers.
            let room = input.len() + input.len() / 16 + 64;
            out.resize(at + room, 0);
            let (status, used, written) =
                compress(&mut self.c, input, &mut out[at..], TDEFLFlush::Sync);
            out.truncate(at + written);
            input = &input[used..];
            match status {
                TDEFLStatus::Okay if input.is_empty() && written < room => break,
                TDEFLStatus::Okay => {}
                _ => {
                    out.truncate(start);
                    self.c.reset();
                    return false;
                }
            }
        }
        if out.len() >= start + 4 && out[out.len() - 4..] == SYNC_TAIL {
            out.truncate(out.len() - 4);
        } else {
            out.truncate(start);
            self.c.reset();
            return false;
        }
        if out.len() == start {
            // RFC 7692 §7.2.3.6: an empty message is sent as a single 0x00 byte.
            out.push(0x00);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(h: &str, mode: CompressionMode) -> Option<(DeflateParams, String)> {
        let offers = h.split(',').map(|s| s.trim().as_bytes());
        negotiate(offers, mode).map(|(p, r)| (p, r.as_str().to_string()))
    }

    #[test]
    fn plain_offer_shared_mode() {
        let (p, r) = neg("permessage-deflate", CompressionMode::Shared).unwrap();
        assert_eq!(r, "permessage-deflate; server_no_context_takeover");
        assert!(p.server_no_context_takeover && !p.client_no_context_takeover);
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (15, 15)
        );
    }

    #[test]
    fn browser_offer() {
        let (p, r) = neg(
            "permessage-deflate; client_max_window_bits",
            CompressionMode::Dedicated,
        )
        .unwrap();
        assert_eq!(r, "permessage-deflate");
        assert!(!p.server_no_context_takeover);
        let (_, r) = neg(
            "permessage-deflate; client_max_window_bits=10",
            CompressionMode::Dedicated,
        )
        .unwrap();
        assert_eq!(r, "permessage-deflate; client_max_window_bits=10");
    }

    #[test]
    fn every_parameter() {
        let (p, r) = neg(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=\"9\"; client_max_window_bits=12",
            CompressionMode::Dedicated,
        )
        .unwrap();
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=12"
        );
        assert_eq!(p.server_max_window_bits, 9);
        assert_eq!(p.client_max_window_bits, 12);
    }

    #[test]
    fn bad_offers_are_declined_and_next_tried() {
        for bad in [
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
            "permessage-deflate; foo",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(neg(bad, CompressionMode::Shared), None, "{bad}");
            let (_, r) = neg(
                &format!("{bad}, permessage-deflate; client_no_context_takeover"),
                CompressionMode::Shared,
            )
            .unwrap_or_else(|| panic!("fallback after {bad}"));
            assert_eq!(
                r,
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
            );
        }
        assert_eq!(neg("permessage-deflate", CompressionMode::Off), None);
    }

    #[test]
    fn round_trip_with_and_without_context() {
        let msgs: Vec<Vec<u8>> = vec![
            b"Hello, hello, hello, hello!".to_vec(),
            b"".to_vec(),
            (0..100_000u32).map(|i| (i % 251) as u8).collect(),
            "κόσμε ".repeat(1000).into_bytes(),
        ];
        for bits in [8u8, 9, 12, 15] {
            for takeover in [false, true] {
                let mut d = Deflater::new(6, bits);
                let mut i = Inflater::default();
                for m in &msgs {
                    let mut wire = Vec::new();
                    assert!(d.compress_message(m, &mut wire, !takeover));
                    assert!(!wire.ends_with(&SYNC_TAIL) || wire.len() < 4 || m.is_empty());
                    let mut out = Vec::new();
                    i.inflate_message(&wire, &mut out, 1 << 20, !takeover)
                        .unwrap();
                    assert_eq!(&out, m, "bits {bits} takeover {takeover}");
                }
            }
        }
    }

    #[test]
    fn rfc_example_hello() {
        // RFC 7692 §7.2.3.1: "Hello" compressed.
        let mut out = Vec::new();
        Inflater::default()
            .inflate_message(
                &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                &mut out,
                100,
                true,
            )
            .unwrap();
        assert_eq!(out, b"Hello");
        // §7.2.3.2: the same with context takeover, second message shorter.
        let mut i = Inflater::default();
        i.inflate_message(
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            &mut out,
            100,
            false,
        )
        .unwrap();
        i.inflate_message(&[0xf2, 0x00, 0x11, 0x00, 0x00], &mut out, 100, false)
            .unwrap();
        assert_eq!(out, b"Hello");
        // §7.2.3.3: a stored block with BFINAL.
        Inflater::default()
            .inflate_message(
                &[
                    0x01, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
                ],
                &mut out,
                100,
                true,
            )
            .ok();
        let mut i = Inflater::default();
        i.inflate_message(
            &[0x01, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
            &mut out,
            100,
            true,
        )
        .unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn small_window_never_references_far_back() {
        // An 8 KiB block repeated: any LZ77 match would reach 8 KiB back. With a 10-bit window
        // there must be none, so the output cannot be much smaller than Huffman coding alone.
        let block: Vec<u8> = (0..8192u32)
            .map(|i| b"abcdefghijklmnopqrstuvwxyz"[(i * 7 % 26) as usize] ^ (i / 26) as u8)
            .collect();
        let msg = block.repeat(3);
        let mut far = Vec::new();
        assert!(Deflater::new(1, 15).compress_message(&msg, &mut far, true));
        let mut near = Vec::new();
        assert!(Deflater::new(1, 10).compress_message(&msg, &mut near, true));
        assert!(
            far.len() < msg.len() / 4,
            "full window finds the repeats: {}",
            far.len()
        );
        assert!(
            near.len() > msg.len() / 3,
            "10-bit window used far matches: {}",
            near.len()
        );
        let mut out = Vec::new();
        Inflater::default()
            .inflate_message(&near, &mut out, 1 << 20, true)
            .unwrap();
        assert_eq!(out, msg);
    }

    #[test]
    fn zip_bomb_stops_at_limit() {
        let zeros = vec![0u8; 10 << 20];
        let mut wire = Vec::new();
        assert!(Deflater::new(9, 15).compress_message(&zeros, &mut wire, true));
        assert!(wire.len() < 64 << 10, "compressed to {}", wire.len());
        let mut out = Vec::new();
        let e = Inflater::default()
            .inflate_message(&wire, &mut out, 1 << 20, true)
            .unwrap_err();
        assert_eq!(e, InflateError::TooBig);
        assert_eq!(e.close_code(), CloseCode::TOO_BIG);
        assert!(
            out.capacity() <= (1 << 20) + INFLATE_CHUNK + 1,
            "grew to {}",
            out.capacity()
        );
        // Exactly at the limit is fine.
        let mut out = Vec::new();
        Inflater::default()
            .inflate_message(&wire, &mut out, 10 << 20, true)
            .unwrap();
        assert_eq!(out.len(), 10 << 20);
    }

    /// A fixed-Huffman block (RFC 1951 §3.2.6) with literals and matches, for streams that no
    /// compressor would write.
    enum Op {
        Lit(u8),
        /// (length 3..=258, distance 1..=32768)
        Match(u16, u16),
    }

    struct BitWriter {
        bytes: Vec<u8>,
        bits: u32,
    }

    impl BitWriter {
        fn put(&mut self, value: u32, n: u32) {
            for i in 0..n {
                if self.bits % 8 == 0 {
                    self.bytes.push(0);
                }
                let last = self.bytes.len() - 1;
                self.bytes[last] |= (((value >> i) & 1) as u8) << (self.bits % 8);
                self.bits += 1;
            }
        }

        /// Huffman codes go most significant bit first.
        fn code(&mut self, code: u32, n: u32) {
            for i in (0..n).rev() {
                self.put(code >> i, 1);
            }
        }
    }

    /// One fixed-Huffman block; unless `last`, followed by the header of an empty stored block
    /// padded to a byte, as a sync flush leaves it (the receiver appends `00 00 ff ff`).
    fn fixed_block(ops: &[Op], last: bool) -> Vec<u8> {
        const LEN_BASE: [u16; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
            115, 131, 163, 195, 227, 258,
        ];
        const DIST_BASE: [u16; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        // Extra bits of a base table entry: the gap to the next base is 2^extra.
        fn extra(base: &[u16], i: usize, top: u16) -> u32 {
            let next = base.get(i + 1).copied().unwrap_or(top);
            (next - base[i]).max(1).trailing_zeros()
        }
        let mut w = BitWriter {
            bytes: Vec::new(),
            bits: 0,
        };
        w.put(u32::from(last), 1);
        w.put(1, 2);
        let lit = |w: &mut BitWriter, sym: u32| match sym {
            0..=143 => w.code(0x30 + sym, 8),
            144..=255 => w.code(0x190 + sym - 144, 9),
            256..=279 => w.code(sym - 256, 7),
            _ => w.code(0xc0 + sym - 280, 8),
        };
        for op in ops {
            match *op {
                Op::Lit(b) => lit(&mut w, u32::from(b)),
                Op::Match(len, dist) => {
                    let i = LEN_BASE.iter().rposition(|&b| b <= len).unwrap_or(0);
                    lit(&mut w, 257 + i as u32);
                    if len != 258 {
                        w.put(u32::from(len - LEN_BASE[i]), extra(&LEN_BASE, i, 258));
                    }
                    let d = DIST_BASE.iter().rposition(|&b| b <= dist).unwrap_or(0);
                    w.code(d as u32, 5);
                    w.put(u32::from(dist - DIST_BASE[d]), extra(&DIST_BASE, d, 32769));
                }
            }
        }
        lit(&mut w, 256);
        if !last {
            w.put(0, 3);
        }
        w.bytes
    }

    #[test]
    fn fixed_block_helper_matches_known_streams() {
        // 'a', then a match of length 3 at distance 5: zlib says "invalid distance too far
        // back" (one byte of history).
        assert_eq!(
            fixed_block(&[Op::Lit(b'a'), Op::Match(3, 5)], true),
            [0x4b, 0x04, 0x12, 0x00]
        );
        // RFC 7692 §7.2.3.2: "Hello", then the same message as a match.
        let hello: Vec<Op> = b"Hello".iter().map(|&b| Op::Lit(b)).collect();
        assert_eq!(
            fixed_block(&hello, false),
            [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        );
        assert_eq!(
            fixed_block(&[Op::Lit(b'H'), Op::Match(4, 5)], false),
            [0xf2, 0x00, 0x11, 0x00, 0x00]
        );
        // Lengths and distances with extra bits inflate to what they say.
        let mut out = Vec::new();
        let mut ops: Vec<Op> = (0..=255u8).map(Op::Lit).collect();
        ops.extend([Op::Match(258, 256), Op::Match(100, 37), Op::Match(11, 300)]);
        Inflater::default()
            .inflate_message(&fixed_block(&ops, false), &mut out, 1000, true)
            .unwrap();
        let mut want: Vec<u8> = (0..=255u8).collect();
        for (len, dist) in [(258, 256), (100, 37), (11, 300)] {
            for _ in 0..len {
                want.push(want[want.len() - dist]);
            }
        }
        assert_eq!(out, want);
    }

    #[test]
    fn distance_before_the_start_is_corrupt() {
        let mut out = Vec::new();
        for reset in [true, false] {
            let r = Inflater::default().inflate_message(
                &[0x4b, 0x04, 0x12, 0x00],
                &mut out,
                100,
                reset,
            );
            assert_eq!(r, Err(InflateError::Corrupt), "reset {reset}");
        }
        // Distance 1 after one byte is fine.
        Inflater::default()
            .inflate_message(
                &fixed_block(&[Op::Lit(b'a'), Op::Match(3, 1)], true),
                &mut out,
                100,
                true,
            )
            .unwrap();
        assert_eq!(out, b"aaaa");
        // A match in the first message of a connection reaches back before its first byte.
        let r = Inflater::default().inflate_message(
            &fixed_block(&[Op::Match(3, 1)], false),
            &mut out,
            100,
            false,
        );
        assert_eq!(r, Err(InflateError::Corrupt));
    }

    #[test]
    fn reset_forgets_the_previous_message() {
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let again = [0xf2, 0x00, 0x11, 0x00, 0x00];
        let mut out = Vec::new();
        let mut i = Inflater::default();
        i.inflate_message(&hello, &mut out, 100, true).unwrap();
        // No context takeover: the match reaches before the start of this message.
        assert_eq!(
            i.inflate_message(&again, &mut out, 100, true),
            Err(InflateError::Corrupt)
        );
        // A shared inflater is usable again after a failed message.
        i.inflate_message(&hello, &mut out, 100, true).unwrap();
        assert_eq!(out, b"Hello");
        i.inflate_message(&again, &mut out, 100, false).unwrap();
        assert_eq!(out, b"Hello");
        // A message that ends the deflate stream (BFINAL) ends the context too.
        i.inflate_message(&fixed_block(&[Op::Lit(b'x')], true), &mut out, 100, false)
            .unwrap();
        assert_eq!(
            i.inflate_message(
                &fixed_block(&[Op::Match(3, 1)], false),
                &mut out,
                100,
                false
            ),
            Err(InflateError::Corrupt)
        );
    }

    #[test]
    fn context_takeover_reaches_back_to_the_first_byte_and_no_further() {
        let abc = fixed_block(&[Op::Lit(b'a'), Op::Lit(b'b'), Op::Lit(b'c')], false);
        let connection = |second: &[Op], third: &[Op]| {
            let mut i = Inflater::default();
            let mut out = Vec::new();
            i.inflate_message(&abc, &mut out, 100, false).unwrap();
            i.inflate_message(&fixed_block(second, false), &mut out, 100, false)
                .map(|()| out.clone())?;
            i.inflate_message(&fixed_block(third, false), &mut out, 100, false)
                .map(|()| out)
        };
        // Into the previous message, and across two messages to the connection's first byte.
        assert_eq!(
            connection(&[Op::Match(3, 3)], &[Op::Match(6, 6)]),
            Ok(b"abcabc".to_vec())
        );
        assert_eq!(
            connection(&[Op::Lit(b'd'), Op::Match(4, 4)], &[Op::Match(8, 8)]),
            Ok(b"abcdabcd".to_vec())
        );
        // One byte further: before the connection's first byte.
        assert_eq!(
            connection(&[Op::Match(3, 4)], &[]),
            Err(InflateError::Corrupt)
        );
        assert_eq!(
            connection(&[Op::Match(3, 3)], &[Op::Match(3, 7)]),
            Err(InflateError::Corrupt)
        );
        // A full 32 KiB window of history: the farthest distance is fine.
        let mut i = Inflater::default();
        let mut out = Vec::new();
        let mut d = Deflater::new(0, 15);
        let history: Vec<u8> = (0..40_000u32).map(|n| (n * 7 % 251) as u8).collect();
        let mut wire = Vec::new();
        assert!(d.compress_message(&history, &mut wire, true));
        i.inflate_message(&wire, &mut out, 1 << 20, false).unwrap();
        i.inflate_message(
            &fixed_block(&[Op::Match(3, 32768)], false),
            &mut out,
            100,
            false,
        )
        .unwrap();
        assert_eq!(out, history[40_000 - 32768..][..3]);
    }

    #[test]
    fn corrupt_stream() {
        let mut out = Vec::new();
        let e = Inflater::default()
            .inflate_message(&[0xff, 0xff, 0xff], &mut out, 100, true)
            .unwrap_err();
        assert_eq!(e, InflateError::Corrupt);
        assert_eq!(e.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    /// Hand-assembled dynamic blocks (BFINAL, literals 'a' and 'b', end of block; lit/len
    /// code lengths a=1, b=2, 256=2) whose distance code is a single code of 1 bit and of 2
    /// bits; they differ only in that length. Python's zlib agrees:
    /// `zlib.decompressobj(-15).decompress(bytes.fromhex("05c0010900000080a0adf67f446a"))`.
    const SINGLE_DISTANCE_CODE_1_BIT: [u8; 14] = [
        0x05, 0xc0, 0x01, 0x09, 0, 0, 0, 0x80, 0xa0, 0xad, 0xf6, 0x7f, 0x44, 0x6a,
    ];
    const SINGLE_DISTANCE_CODE_2_BITS: [u8; 14] = [
        0x05, 0xc0, 0x01, 0x09, 0, 0, 0, 0x80, 0xa0, 0xad, 0xf6, 0x7f, 0x44, 0x69,
    ];

    #[test]
    fn incomplete_code_is_allowed_only_as_a_single_one_bit_code() {
        // zlib's rule (inftrees.c), which the fuzz target's reference decoder follows too:
        // one distance code of length 1 is fine, one of length 2 is "invalid distances set".
        let mut out = Vec::new();
        Inflater::default()
            .inflate_message(&SINGLE_DISTANCE_CODE_1_BIT, &mut out, 100, true)
            .unwrap();
        assert_eq!(out, b"ab");
        // Corrupt rather than TooBig even under a 1-byte limit: the header is rejected
        // before the block produces anything.
        for max in [1, 100] {
            let e = Inflater::default()
                .inflate_message(&SINGLE_DISTANCE_CODE_2_BITS, &mut out, max, true)
                .unwrap_err();
            assert_eq!(e, InflateError::Corrupt, "limit {max}");
        }
    }
}
