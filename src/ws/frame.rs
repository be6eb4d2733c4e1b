//! Frame headers (RFC 6455 §5.2): decoding from a byte slice and encoding into a caller's
//! buffer.
//!
//! Owns the wire layout and the per-frame rules that can be checked from the header alone
//! (masking, RSV bits, reserved opcodes, control frame size and fragmentation, length limits).
//! Decoding never copies and never allocates; incomplete input is reported as
//! [`HeaderStatus::Partial`], not as an error. Message-level rules live in `assemble`.

use super::close::CloseCode;

/// Largest header: 2 bytes + 8-byte extended length + 4-byte mask key.
pub const MAX_HEADER_LEN: usize = 14;
/// Largest payload of a control frame (RFC 6455 §5.5: "All control frames MUST have a
/// payload length of 125 bytes or less").
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// RSV1 bit as stored in [`FrameHeader::rsv`] (used by permessage-deflate).
pub const RSV1: u8 = 0b100;

/// A frame opcode defined by RFC 6455.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// 0x0: continuation of a fragmented message.
    Continuation = 0x0,
    /// 0x1: text (UTF-8) data.
    Text = 0x1,
    /// 0x2: binary data.
    Binary = 0x2,
    /// 0x8: close.
    Close = 0x8,
    /// 0x9: ping.
    Ping = 0x9,
    /// 0xA: pong.
    Pong = 0xA,
}

impl OpCode {
    /// Decodes a 4-bit opcode; `None` for the reserved values 0x3-0x7 and 0xB-0xF.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// Close, ping and pong (opcodes with the high bit set).
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits (`RSV1` = 0b100).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// Masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes (at most 2^63 - 1).
    pub payload_len: u64,
}

/// Limits and negotiated features that decide which headers are acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRules {
    /// Reject unmasked frames (a server decoding client frames). Default: true.
    pub require_mask: bool,
    /// RSV bits that a negotiated extension gives meaning to (`RSV1` with permessage-deflate).
    /// Default: none.
    pub allowed_rsv: u8,
    /// Largest accepted payload of one frame, in bytes.
    pub max_frame: u64,
}

impl Default for HeaderRules {
    fn default() -> Self {
        Self {
            require_mask: true,
            allowed_rsv: 0,
            max_frame: 16 << 20,
        }
    }
}

/// Result of decoding a header from a possibly incomplete buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderStatus {
    /// A whole header; the payload starts at `header_len`.
    Complete {
        /// The header.
        header: FrameHeader,
        /// Bytes taken by the header (2..=14).
        header_len: usize,
    },
    /// At least this many more bytes are needed to finish the header.
    Partial(usize),
}

/// A frame that breaks RFC 6455 or a configured limit. Each knows its close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// "The server MUST close the connection upon receiving a frame that is not masked."
    #[error("unmasked frame from client")]
    UnmaskedFrame,
    /// A server received a masked frame where masking is forbidden (client-side decoding).
    #[error("masked frame from server")]
    MaskedFrame,
    /// RSV bits set without an extension that defines them.
    #[error("reserved bits set")]
    ReservedBits,
    /// Opcode 0x3-0x7 or 0xB-0xF.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// "All control frames MUST have a payload length of 125 bytes or less and MUST NOT be
    /// fragmented."
    #[error("control frame too long")]
    ControlTooLong,
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// 64-bit length with the most significant bit set.
    #[error("invalid frame length")]
    InvalidLength,
    /// Frame payload larger than [`HeaderRules::max_frame`].
    #[error("frame too big")]
    FrameTooBig,
}

impl FrameError {
    /// The close code to fail the connection with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::FrameTooBig => CloseCode::TOO_BIG,
            _ => CloseCode::PROTOCOL,
        }
    }
}

impl FrameHeader {
    /// Decodes a header from the start of `buf`.
    ///
    /// Never reads past the header and never allocates. A header that breaks a rule is an
    /// error even before its payload arrives.
    #[inline]
    pub fn decode(buf: &[u8], rules: &HeaderRules) -> Result<HeaderStatus, FrameError> {
        let [b0, b1, rest @ ..] = buf else {
            return Ok(HeaderStatus::Partial(2 - buf.len()));
        };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0b111;
        let raw_opcode = b0 & 0x0f;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7f;

        let opcode = OpCode::from_u8(raw_opcode).ok_or(FrameError::ReservedOpcode(raw_opcode))?;
        if rsv & !rules.allowed_rsv != 0 {
            return Err(FrameError::ReservedBits);
        }
        if masked != rules.require_mask {
            return Err(if masked {
                FrameError::MaskedFrame
            } else {
                FrameError::UnmaskedFrame
            });
        }
        if opcode.is_control() {
            if !fin {
                return Err(FrameError::FragmentedControl);
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(FrameError::ControlTooLong);
            }
        }

        let ext_len = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask_len = if masked { 4 } else { 0 };
        let header_len = 2 + ext_len + mask_len;
        if buf.len() < header_len {
            return Ok(HeaderStatus::Partial(header_len - buf.len()));
        }
        let payload_len = match ext_len {
            2 => u64::from(u16::from_be_bytes([rest[0], rest[1]])),
            8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&rest[..8]);
                let n = u64::from_be_bytes(b);
                // "the most significant bit MUST be 0"
                if n >> 63 != 0 {
                    return Err(FrameError::InvalidLength);
                }
                n
            }
            _ => u64::from(len7),
        };
        if payload_len > rules.max_frame {
            return Err(FrameError::FrameTooBig);
        }
        let mask = masked.then(|| {
            let m = &rest[ext_len..ext_len + 4];
            [m[0], m[1], m[2], m[3]]
        });
        Ok(HeaderStatus::Complete {
            header: FrameHeader {
                fin,
                rsv,
                opcode,
                mask,
                payload_len,
            },
            header_len,
        })
    }

    /// Encodes this header into `out`; returns the number of bytes written (2..=14).
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0b111) << 4) | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = if self.payload_len < 126 {
            out[1] = mask_bit | self.payload_len as u8;
            2
        } else if let Ok(len16) = u16::try_from(self.payload_len) {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&len16.to_be_bytes());
            4
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
            10
        };
        if let Some(key) = self.mask {
            out[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        n
    }

    /// Header length for a payload of `len` bytes (unmasked).
    pub fn encoded_len(len: usize, masked: bool) -> usize {
        let base = if len < 126 {
            2
        } else if len <= usize::from(u16::MAX) {
            4
        } else {
            10
        };
        base + if masked { 4 } else { 0 }
    }
}

/// Appends one whole unmasked server frame (`fin` set) to `out`.
///
/// Allocation happens only if `out` must grow; a pooled buffer with capacity makes this free.
pub fn encode_frame(out: &mut Vec<u8>, opcode: OpCode, rsv: u8, payload: &[u8]) {
    if payload.len() < 126 {
        // The common case: a two-byte header (FIN, RSV, opcode; 7-bit length, no mask).
        out.reserve(2 + payload.len());
        out.extend_from_slice(&[
            0x80 | ((rsv & 0b111) << 4) | opcode as u8,
            payload.len() as u8,
        ]);
        out.extend_from_slice(payload);
        return;
    }
    let header = FrameHeader {
        fin: true,
        rsv,
        opcode,
        mask: None,
        payload_len: payload.len() as u64,
    };
    let mut h = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut h);
    out.reserve(n + payload.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
}

/// Appends one whole masked client frame to `out` (tests, tools and fuzzing use this).
pub fn encode_client_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    mask: [u8; 4],
    payload: &[u8],
) {
    let header = FrameHeader {
        fin,
        rsv: 0,
        opcode,
        mask: Some(mask),
        payload_len: payload.len() as u64,
    };
    let mut h = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut h);
    out.extend_from_slice(&h[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    super::mask::apply_mask(&mut out[start..], mask, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (FrameHeader, usize) {
        match FrameHeader::decode(buf, &HeaderRules::default()) {
            Ok(HeaderStatus::Complete { header, header_len }) => (header, header_len),
            other => panic!("expected complete header, got {other:?}"),
        }
    }

    #[test]
    fn rfc_masked_hello() {
        // RFC 6455 §5.7.
        let buf = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = complete(&buf);
        assert_eq!(n, 6);
        assert!(h.fin);
        assert_eq!(h.opcode, OpCode::Text);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.payload_len, 5);
    }

    #[test]
    fn rfc_unmasked_examples_encode() {
        let mut out = Vec::new();
        encode_frame(&mut out, OpCode::Text, 0, b"Hello");
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        // 256 bytes binary: 0x82 0x7E 0x0100; 64 KiB: 0x82 0x7F 0x0000000000010000.
        out.clear();
        encode_frame(&mut out, OpCode::Binary, 0, &[0; 256]);
        assert_eq!(&out[..4], &[0x82, 0x7e, 0x01, 0x00]);
        out.clear();
        encode_frame(&mut out, OpCode::Binary, 0, &[0; 65536]);
        assert_eq!(&out[..10], &[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn partial_headers_report_what_is_missing() {
        let rules = HeaderRules::default();
        assert_eq!(
            FrameHeader::decode(&[], &rules),
            Ok(HeaderStatus::Partial(2))
        );
        assert_eq!(
            FrameHeader::decode(&[0x81], &rules),
            Ok(HeaderStatus::Partial(1))
        );
        // 16-bit length + mask = 8 bytes.
        assert_eq!(
            FrameHeader::decode(&[0x82, 0xfe, 0x01], &rules),
            Ok(HeaderStatus::Partial(5))
        );
        assert_eq!(
            FrameHeader::decode(&[0x82, 0xff], &rules),
            Ok(HeaderStatus::Partial(12))
        );
    }

    fn err(buf: &[u8]) -> FrameError {
        FrameHeader::decode(buf, &HeaderRules::default()).unwrap_err()
    }

    #[test]
    fn protocol_violations_have_their_codes() {
        assert_eq!(err(&[0x81, 0x05]), FrameError::UnmaskedFrame);
        assert_eq!(err(&[0xc1, 0x80]), FrameError::ReservedBits);
        assert_eq!(err(&[0x91, 0x80]), FrameError::ReservedBits);
        assert_eq!(err(&[0xa1, 0x80]), FrameError::ReservedBits);
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert_eq!(err(&[0x80 | op, 0x80]), FrameError::ReservedOpcode(op));
        }
        assert_eq!(err(&[0x89, 0xfe]), FrameError::ControlTooLong);
        assert_eq!(err(&[0x09, 0x80]), FrameError::FragmentedControl);
        assert_eq!(
            err(&[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]),
            FrameError::InvalidLength
        );
        for e in [
            FrameError::UnmaskedFrame,
            FrameError::ReservedBits,
            FrameError::InvalidLength,
        ] {
            assert_eq!(e.close_code(), CloseCode::PROTOCOL);
        }
        let rules = HeaderRules {
            max_frame: 100,
            ..HeaderRules::default()
        };
        let e = FrameHeader::decode(&[0x82, 0xfe, 0, 101, 1, 2, 3, 4], &rules).unwrap_err();
        assert_eq!(e, FrameError::FrameTooBig);
        assert_eq!(e.close_code(), CloseCode::TOO_BIG);
    }

    #[test]
    fn rsv1_allowed_when_negotiated() {
        let rules = HeaderRules {
            allowed_rsv: RSV1,
            ..HeaderRules::default()
        };
        let Ok(HeaderStatus::Complete { header, .. }) =
            FrameHeader::decode(&[0xc1, 0x80, 0, 0, 0, 0], &rules)
        else {
            panic!("rsv1 rejected");
        };
        assert_eq!(header.rsv, RSV1);
        assert_eq!(
            FrameHeader::decode(&[0xe1, 0x80], &rules),
            Err(FrameError::ReservedBits)
        );
    }

    #[test]
    fn encode_decode_lengths() {
        for len in [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 32] {
            for fin in [true, false] {
                let h = FrameHeader {
                    fin,
                    rsv: 0,
                    opcode: OpCode::Binary,
                    mask: Some([1, 2, 3, 4]),
                    payload_len: len,
                };
                let mut out = [0u8; MAX_HEADER_LEN];
                let n = h.encode(&mut out);
                assert_eq!(n, FrameHeader::encoded_len(len as usize, true));
                let rules = HeaderRules {
                    max_frame: u64::MAX >> 1,
                    ..HeaderRules::default()
                };
                assert_eq!(
                    FrameHeader::decode(&out[..n], &rules),
                    Ok(HeaderStatus::Complete {
                        header: h,
                        header_len: n
                    })
                );
            }
        }
    }
}
