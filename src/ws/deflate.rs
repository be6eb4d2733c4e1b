//! permessage-deflate (RFC 7692): offer negotiation, and message-level inflate/deflate.
//!
//! Owns the extension's parameters and the raw-deflate transforms. Sans-IO like the rest of
//! `ws`: bytes in, bytes out, no sockets and no clock. Memory is a first-class budget: a
//! [`Deflater`] or [`Inflater`] is only created where the negotiated parameters need one
//! (see [`CompressionMode`]); inflation is bounded by the caller's size limit *while* it runs,
//! so a small "zip bomb" fails with [`InflateError::TooBig`] after at most `max + 64 KiB` of
//! output.

use miniz_oxide::deflate::core::{
    compress, CompressionStrategy, CompressorOxide, TDEFLFlush, TDEFLStatus,
};
use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

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
pub struct Inflater {
    state: Box<InflateState>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inflater")
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Self {
            state: InflateState::new_boxed(DataFormat::Raw),
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
            self.state.reset(DataFormat::Raw);
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
            out.reserve_exact(room);
            out.resize(start + room, 0);
            let r = inflate(&mut self.state, input, &mut out[start..], MZFlush::None);
            out.truncate(start + r.bytes_written);
            input = &input[r.bytes_consumed..];
            if out.len() > max {
                return Err(InflateError::TooBig);
            }
            match r.status {
                Ok(MZStatus::StreamEnd) => {
                    self.state.reset(DataFormat::Raw);
                    return Ok(true);
                }
                Ok(_) => {}
                // No progress possible: all input used and output space left over.
                Err(MZError::Buf) => return Ok(false),
                Err(_) => return Err(InflateError::Corrupt),
            }
            if input.is_empty() && r.bytes_written < room {
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

    #[test]
    fn corrupt_stream() {
        let mut out = Vec::new();
        let e = Inflater::default()
            .inflate_message(&[0xff, 0xff, 0xff], &mut out, 100, true)
            .unwrap_err();
        assert_eq!(e, InflateError::Corrupt);
        assert_eq!(e.close_code(), CloseCode::INVALID_PAYLOAD);
    }
}
