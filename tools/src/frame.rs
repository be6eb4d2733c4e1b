//! RFC 6455 framing for the client side, without IO: building masked client frames into a
//! caller's buffer and parsing the server's unmasked frames incrementally. A parse either yields
//! one complete frame and how many bytes it used, or `Partial` (not an error): the caller keeps
//! the bytes and retries when more arrive. No allocation happens here.

use std::fmt;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Largest control-frame payload (RFC 6455 5.5: "All control frames MUST have a payload length
/// of 125 bytes or less").
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Close status 1000, normal closure.
pub const CLOSE_NORMAL: u16 = 1000;

/// Cheap xorshift64* generator for mask keys and handshake nonces. Not cryptographic: a load
/// generator only needs keys that differ per frame. Invariant: the state is never 0.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn mask_key(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }
}

/// Length of a client (masked) frame header for a payload of `len` bytes.
pub fn client_header_len(len: usize) -> usize {
    let ext = if len < 126 {
        0
    } else if len <= u16::MAX as usize {
        2
    } else {
        8
    };
    2 + ext + 4
}

/// Appends one final (FIN) masked frame to `out`. RFC 6455 5.3: "The masking key is a 32-bit
/// value chosen at random by the client"; the caller passes a fresh key per frame.
pub fn encode_masked(out: &mut Vec<u8>, opcode: u8, payload: &[u8], key: [u8; 4]) {
    let len = payload.len();
    out.reserve(client_header_len(len) + len);
    out.push(0x80 | (opcode & 0x0F));
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key);
}

/// Appends a masked close frame carrying `code` (and no reason).
pub fn encode_close(out: &mut Vec<u8>, code: u16, key: [u8; 4]) {
    encode_masked(out, OP_CLOSE, &code.to_be_bytes(), key);
}

/// XORs `buf` with the repeating 4-byte `key`, starting at key offset 0. Word-wise; the scalar
/// reference is `apply_mask_scalar`.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    let key8 = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ key8).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Byte-at-a-time masking: the reference for `apply_mask`.
#[cfg(test)]
pub fn apply_mask_scalar(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// A complete server frame borrowed from the receive buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub fin: bool,
    pub opcode: u8,
    pub payload: &'a [u8],
}

/// Outcome of one parse attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A whole frame; `consumed` bytes of the input belong to it.
    Complete { frame: Frame<'a>, consumed: usize },
    /// More bytes are needed; nothing was consumed.
    Partial,
}

/// Why a server frame was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// RFC 6455 5.1: "A client MUST close a connection if it detects a masked frame."
    MaskedServerFrame,
    /// RSV1-3 set without a negotiated extension.
    ReservedBits,
    UnknownOpcode(u8),
    /// Control frames must not be fragmented (5.5).
    FragmentedControl,
    /// Control payload over 125 bytes (5.5).
    ControlTooLong,
    /// Payload larger than the configured limit.
    TooLarge(u64),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::MaskedServerFrame => write!(f, "masked frame from server"),
            FrameError::ReservedBits => write!(f, "reserved bits set"),
            FrameError::UnknownOpcode(op) => write!(f, "unknown opcode {op:#x}"),
            FrameError::FragmentedControl => write!(f, "fragmented control frame"),
            FrameError::ControlTooLong => write!(f, "control frame payload over 125 bytes"),
            FrameError::TooLarge(n) => write!(f, "frame payload of {n} bytes over the limit"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Parses one server frame from the front of `buf`. `max_payload` bounds the payload length
/// (bytes) so a hostile length cannot make the caller buffer gigabytes.
pub fn parse_server_frame(buf: &[u8], max_payload: u64) -> Result<Parsed<'_>, FrameError> {
    if buf.len() < 2 {
        return Ok(Parsed::Partial);
    }
    let b0 = buf[0];
    let b1 = buf[1];
    let fin = b0 & 0x80 != 0;
    if b0 & 0x70 != 0 {
        return Err(FrameError::ReservedBits);
    }
    let opcode = b0 & 0x0F;
    match opcode {
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG => {}
        op => return Err(FrameError::UnknownOpcode(op)),
    }
    if b1 & 0x80 != 0 {
        return Err(FrameError::MaskedServerFrame);
    }
    let (len, header) = match b1 & 0x7F {
        126 => {
            let Some(ext) = buf.get(2..4) else {
                return Ok(Parsed::Partial);
            };
            (u64::from(u16::from_be_bytes([ext[0], ext[1]])), 4)
        }
        127 => {
            let Some(ext) = buf.get(2..10) else {
                return Ok(Parsed::Partial);
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(ext);
            (u64::from_be_bytes(b), 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode & 0x8 != 0 {
        if !fin {
            return Err(FrameError::FragmentedControl);
        }
        if len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(FrameError::ControlTooLong);
        }
    }
    if len > max_payload {
        return Err(FrameError::TooLarge(len));
    }
    let total = header + len as usize;
    if buf.len() < total {
        return Ok(Parsed::Partial);
    }
    Ok(Parsed::Complete {
        frame: Frame {
            fin,
            opcode,
            payload: &buf[header..total],
        },
        consumed: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an unmasked server frame, as a server would send it.
    fn server_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let len = payload.len();
        if len < 126 {
            v.push(len as u8);
        } else if len <= 65535 {
            v.push(126);
            v.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            v.push(127);
            v.extend_from_slice(&(len as u64).to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    /// Decodes a masked client frame (the server's view) for round-trip checks.
    fn decode_client(buf: &[u8]) -> (u8, Vec<u8>) {
        assert_eq!(buf[0] & 0x80, 0x80, "FIN");
        assert_eq!(buf[1] & 0x80, 0x80, "MASK bit");
        let (len, mut pos) = match buf[1] & 0x7F {
            126 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            n => (n as usize, 2),
        };
        let key = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        assert_eq!(buf.len(), pos + len);
        let mut p = buf[pos..].to_vec();
        apply_mask_scalar(&mut p, key);
        (buf[0] & 0x0F, p)
    }

    #[test]
    fn fast_mask_matches_scalar_at_every_offset_and_length() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..200u8).collect();
        for offset in 0..=7 {
            for len in 0..(data.len() - offset) {
                let mut a = data[offset..offset + len].to_vec();
                let mut b = a.clone();
                apply_mask(&mut a, key);
                apply_mask_scalar(&mut b, key);
                assert_eq!(a, b, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn client_frames_round_trip_in_all_length_forms() {
        let mut rng = XorShift::new(7);
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
            let mut out = Vec::new();
            encode_masked(&mut out, OP_BINARY, &payload, rng.mask_key());
            assert_eq!(out.len(), client_header_len(len) + len);
            let (op, got) = decode_client(&out);
            assert_eq!(op, OP_BINARY);
            assert_eq!(got, payload, "len {len}");
        }
    }

    #[test]
    fn close_frame_carries_code() {
        let mut out = Vec::new();
        encode_close(&mut out, CLOSE_NORMAL, [1, 2, 3, 4]);
        let (op, p) = decode_client(&out);
        assert_eq!(op, OP_CLOSE);
        assert_eq!(p, 1000u16.to_be_bytes());
    }

    #[test]
    fn parses_all_length_forms() {
        for len in [0usize, 5, 125, 126, 65535, 65536, 100_000] {
            let payload = vec![b'a'; len];
            let f = server_frame(OP_TEXT, true, &payload);
            match parse_server_frame(&f, 1 << 20) {
                Ok(Parsed::Complete { frame, consumed }) => {
                    assert_eq!(consumed, f.len());
                    assert_eq!(frame.payload.len(), len);
                    assert!(frame.fin);
                    assert_eq!(frame.opcode, OP_TEXT);
                }
                other => panic!("len {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_split_point_is_partial_then_complete() {
        let mut stream = server_frame(OP_BINARY, true, &[7u8; 300]);
        stream.extend(server_frame(OP_PING, true, b"hi"));
        stream.extend(server_frame(OP_TEXT, true, b"x"));
        for split in 0..stream.len() {
            // Feed the first `split` bytes, then the rest appended, like a connection would.
            let mut buf = stream[..split].to_vec();
            let mut frames = Vec::new();
            let mut drain = |buf: &mut Vec<u8>| {
                while let Parsed::Complete { frame, consumed } =
                    parse_server_frame(buf, 1 << 20).expect("valid")
                {
                    frames.push((frame.opcode, frame.payload.len()));
                    buf.drain(..consumed);
                }
            };
            drain(&mut buf);
            buf.extend_from_slice(&stream[split..]);
            drain(&mut buf);
            assert!(buf.is_empty());
            assert_eq!(
                frames,
                vec![(OP_BINARY, 300), (OP_PING, 2), (OP_TEXT, 1)],
                "split {split}"
            );
        }
    }

    #[test]
    fn rejects_protocol_violations() {
        let mut masked = server_frame(OP_TEXT, true, b"");
        masked[1] |= 0x80;
        assert_eq!(
            parse_server_frame(&masked, 100),
            Err(FrameError::MaskedServerFrame)
        );
        let mut rsv = server_frame(OP_TEXT, true, b"");
        rsv[0] |= 0x40;
        assert_eq!(parse_server_frame(&rsv, 100), Err(FrameError::ReservedBits));
        assert_eq!(
            parse_server_frame(&server_frame(0x3, true, b""), 100),
            Err(FrameError::UnknownOpcode(3))
        );
        assert_eq!(
            parse_server_frame(&server_frame(OP_PING, false, b""), 100),
            Err(FrameError::FragmentedControl)
        );
        assert_eq!(
            parse_server_frame(&server_frame(OP_PING, true, &[0; 126]), 1000),
            Err(FrameError::ControlTooLong)
        );
        assert_eq!(
            parse_server_frame(&server_frame(OP_BINARY, true, &[0; 200]), 100),
            Err(FrameError::TooLarge(200))
        );
        // A 64-bit length is checked against the limit before any payload arrives.
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(
            parse_server_frame(&huge, 100),
            Err(FrameError::TooLarge(u64::MAX))
        );
    }

    #[test]
    fn mask_keys_differ() {
        let mut r = XorShift::new(0);
        let a = r.mask_key();
        let b = r.mask_key();
        assert_ne!(a, b);
    }
}
