//! Messages from frames: fragmentation, interleaved control frames, size limits, UTF-8.
//!
//! Owns the per-connection receive state machine. Input is the connection's unconsumed bytes;
//! output is at most one [`Event`] per call plus how many bytes were consumed. Payloads are
//! unmasked **in place** in the caller's buffer and a whole unfragmented message is handed
//! back as a slice of that buffer (no copy); only fragmented messages are gathered into the
//! assembler's own buffer. No IO, no clock, no allocation except for fragmented messages.

use super::close::{parse_close_payload, CloseCode, CloseFrame, ClosePayloadError};
use super::frame::{FrameError, FrameHeader, HeaderRules, HeaderStatus, OpCode, RSV1};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;

/// Limits for one connection's inbound messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// Per-frame rules (masking, RSV bits, max frame size).
    pub header: HeaderRules,
    /// Largest message (sum of its fragments' payloads), in bytes. Default: 16 MiB.
    pub max_message: usize,
}

impl Default for MessageLimits {
    fn default() -> Self {
        Self {
            header: HeaderRules::default(),
            max_message: 16 << 20,
        }
    }
}

/// Why the connection must be failed, with the close code to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A header-level violation.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A continuation frame with no message in progress.
    #[error("continuation frame without a message")]
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message is in progress.
    #[error("expected continuation frame")]
    ExpectedContinuation,
    /// RSV1 on a continuation frame (RFC 7692 §6.1: only the first frame carries it).
    #[error("rsv1 on continuation frame")]
    CompressedContinuation,
    /// RSV1 on a control frame.
    #[error("rsv1 on control frame")]
    CompressedControl,
    /// The message would exceed [`MessageLimits::max_message`].
    #[error("message too big")]
    MessageTooBig,
    /// Text that is not UTF-8.
    #[error("invalid utf-8 in text message")]
    InvalidUtf8,
    /// A close frame with an invalid payload.
    #[error(transparent)]
    ClosePayload(#[from] ClosePayloadError),
}

impl ProtocolError {
    /// The close code to fail the connection with (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::Frame(e) => e.close_code(),
            Self::ClosePayload(e) => e.close_code(),
            Self::MessageTooBig => CloseCode::TOO_BIG,
            Self::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            Self::UnexpectedContinuation
            | Self::ExpectedContinuation
            | Self::CompressedContinuation
            | Self::CompressedControl => CloseCode::PROTOCOL,
        }
    }
}

/// Data message kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// Text: the payload is valid UTF-8 unless `compressed` (then the inflater checks it).
    Text,
    /// Binary.
    Binary,
}

impl DataKind {
    /// The opcode of the first frame of such a message.
    pub fn opcode(self) -> OpCode {
        match self {
            Self::Text => OpCode::Text,
            Self::Binary => OpCode::Binary,
        }
    }
}

/// Something the peer said.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete data message.
    Message {
        /// Text or binary.
        kind: DataKind,
        /// The whole (unmasked) payload.
        payload: &'a [u8],
        /// RSV1 was set on the first frame (permessage-deflate): `payload` is compressed.
        compressed: bool,
    },
    /// A ping with its application data (to be answered with a pong).
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// A valid close frame.
    Close(CloseFrame<'a>),
}

/// Result of one [`Assembler::handle_bytes`] call.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Bytes of the input that are done with; the caller drops them before the next call.
    pub consumed: usize,
    /// What the consumed bytes produced, if anything.
    pub event: Option<Event<'a>>,
}

/// Fragmented messages larger than this give their buffer back after delivery instead of
/// keeping it for the next message (idle connections hold no big buffers).
const KEEP_MESSAGE_CAPACITY: usize = 64 << 10;

/// Receive state of one connection.
///
/// Call order: feed the connection's unconsumed bytes to [`handle_bytes`](Self::handle_bytes)
/// until it returns `consumed == 0 && event == None` (needs more input), dropping `consumed`
/// bytes from the front after each call.
///
/// Invariant: between calls the caller keeps the unconsumed bytes exactly as they were
/// (the assembler has unmasked `processed` payload bytes of the first frame in place) and
/// may only append to them.
#[derive(Debug, Default)]
pub struct Assembler {
    /// Payload bytes of the frame at the head of the input that are already unmasked and,
    /// for text, fed to the UTF-8 validator.
    processed: usize,
    /// Kind and compression of the fragmented message in progress.
    fragmented: Option<(DataKind, bool)>,
    /// UTF-8 state of the text message in progress.
    utf8: Utf8Validator,
    /// Payload gathered from the fragments of the message in progress. Boxed, and made on
    /// the first fragmented message only: an assembler that never sees one (most connections)
    /// is 16 bytes smaller, which every idle connection pays.
    #[allow(clippy::box_collection)] // the box is the point: 8 bytes inline instead of 24
    message: Option<Box<Vec<u8>>>,
    /// `message` was handed out by the previous call and must be cleared.
    delivered: bool,
}

/// The common case, decided from the first two bytes without the general decoder: a whole,
/// unfragmented, masked, uncompressed text or binary frame of at most 125 bytes at the front
/// of `buf`, received by a server (masks required), with no fragmented message in progress
/// and nothing of it processed yet. `Ok(None)` for anything else (the general path decides
/// it, with the same verdicts: this path accepts only frames the general one accepts, and
/// refuses only invalid UTF-8, which the general one refuses too).
/// Returns the kind and payload length; the payload, at [`SMALL_HEADER`], is unmasked (and
/// checked UTF-8 for text).
#[inline]
fn small_message(
    buf: &mut [u8],
    limits: &MessageLimits,
) -> Result<Option<(DataKind, usize)>, ProtocolError> {
    const HEADER: usize = SMALL_HEADER;
    let (b0, b1) = match buf {
        [b0, b1, ..] => (*b0, *b1),
        _ => return Ok(None),
    };
    // FIN, RSV 000, opcode 1 or 2; MASK set, 7-bit length.
    let kind = match b0 {
        0x81 => DataKind::Text,
        0x82 => DataKind::Binary,
        _ => return Ok(None),
    };
    if b1 & 0x80 == 0 || !limits.header.require_mask {
        return Ok(None);
    }
    let len = usize::from(b1 & 0x7f);
    if len > 125
        || buf.len() < HEADER + len
        || len as u64 > limits.header.max_frame
        || len > limits.max_message
    {
        return Ok(None);
    }
    let (head, rest) = buf.split_at_mut(HEADER);
    let key = [head[2], head[3], head[4], head[5]];
    let payload = &mut rest[..len];
    apply_mask(payload, key, 0);
    if kind == DataKind::Text && std::str::from_utf8(payload).is_err() {
        return Err(ProtocolError::InvalidUtf8);
    }
    Ok(Some((kind, len)))
}

/// Header length of a masked frame with a 7-bit length.
const SMALL_HEADER: usize = 6;

impl Assembler {
    /// True when no fragmented message is in progress and no payload of the current frame
    /// has been processed yet (a partial header in the caller's buffer does not count: the
    /// assembler keeps no state for it).
    pub fn is_idle(&self) -> bool {
        self.processed == 0 && self.fragmented.is_none()
    }

    /// Decodes at most one frame from the front of `buf` (see the type's call order).
    pub fn handle_bytes<'a>(
        &'a mut self,
        buf: &'a mut [u8],
        limits: &MessageLimits,
    ) -> Result<Decoded<'a>, ProtocolError> {
        if self.delivered {
            self.delivered = false;
            if let Some(m) = &mut self.message {
                if m.capacity() > KEEP_MESSAGE_CAPACITY {
                    self.message = None;
                } else {
                    m.clear();
                }
            }
        }
        if self.processed == 0 && self.fragmented.is_none() {
            if let Some((kind, len)) = small_message(buf, limits)? {
                let buf: &'a [u8] = buf;
                return Ok(Decoded {
                    consumed: SMALL_HEADER + len,
                    event: Some(Event::Message {
                        kind,
                        payload: &buf[SMALL_HEADER..SMALL_HEADER + len],
                        compressed: false,
                    }),
                });
            }
        }
        let (header, header_len) = match FrameHeader::decode(buf, &limits.header)? {
            HeaderStatus::Partial(_) => {
                return Ok(Decoded {
                    consumed: 0,
                    event: None,
                })
            }
            HeaderStatus::Complete { header, header_len } => (header, header_len),
        };
        let rsv1 = header.rsv & RSV1 != 0;
        // (kind, compressed) of the message this frame belongs to; None for control frames.
        let message = match (header.opcode, self.fragmented) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Continuation, Some(_)) if rsv1 => {
                return Err(ProtocolError::CompressedContinuation)
            }
            (OpCode::Continuation, Some(m)) => Some(m),
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation)
            }
            (OpCode::Text, None) => Some((DataKind::Text, rsv1)),
            (OpCode::Binary, None) => Some((DataKind::Binary, rsv1)),
            (OpCode::Close | OpCode::Ping | OpCode::Pong, _) if rsv1 => {
                return Err(ProtocolError::CompressedControl)
            }
            (OpCode::Close | OpCode::Ping | OpCode::Pong, _) => None,
        };
        if message.is_some() {
            // header.payload_len <= max_frame, so the sum cannot overflow.
            let so_far = self.message.as_ref().map_or(0, |m| m.len());
            if so_far as u64 + header.payload_len > limits.max_message as u64 {
                return Err(ProtocolError::MessageTooBig);
            }
        }
        let validate_utf8 = matches!(message, Some((DataKind::Text, false)));

        // payload_len <= max_frame, which the caller keeps below the address space.
        let payload_len =
            usize::try_from(header.payload_len).map_err(|_| FrameError::FrameTooBig)?;
        let available = (buf.len() - header_len).min(payload_len);
        if available > self.processed {
            let fresh = &mut buf[header_len + self.processed..header_len + available];
            if let Some(key) = header.mask {
                apply_mask(fresh, key, self.processed);
            }
            if validate_utf8 {
                // Fail fast: even in the middle of a frame.
                self.utf8
                    .feed(fresh)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            self.processed = available;
        }
        if available < payload_len {
            return Ok(Decoded {
                consumed: 0,
                event: None,
            });
        }
        self.processed = 0;
        let consumed = header_len + payload_len;
        let buf: &'a [u8] = buf;
        let payload = &buf[header_len..consumed];

        let event = match (header.opcode, message) {
            (OpCode::Ping, _) => Some(Event::Ping(payload)),
            (OpCode::Pong, _) => Some(Event::Pong(payload)),
            (OpCode::Close, _) => Some(Event::Close(parse_close_payload(payload)?)),
            (_, None) => None, // unreachable: data frames always belong to a message
            (OpCode::Continuation, Some((kind, compressed))) => {
                let message = self.message.get_or_insert_with(Box::default);
                message.extend_from_slice(payload);
                if header.fin {
                    self.fragmented = None;
                    if validate_utf8 {
                        self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                    }
                    self.delivered = true;
                    Some(Event::Message {
                        kind,
                        payload: self.message.as_deref().map_or(&[][..], Vec::as_slice),
                        compressed,
                    })
                } else {
                    None
                }
            }
            (_, Some((kind, compressed))) => {
                if header.fin {
                    if validate_utf8 {
                        self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                    }
                    Some(Event::Message {
                        kind,
                        payload,
                        compressed,
                    })
                } else {
                    self.fragmented = Some((kind, compressed));
                    self.message
                        .get_or_insert_with(Box::default)
                        .extend_from_slice(payload);
                    None
                }
            }
        };
        Ok(Decoded { consumed, event })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::encode_client_frame;

    const KEY: [u8; 4] = [0xa1, 0xb2, 0xc3, 0xd4];

    /// Owned copy of an event, for comparing sequences.
    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Ev {
        Msg(DataKind, Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<u16>, Vec<u8>),
    }

    /// Feeds `wire` in chunks of `chunk` bytes; returns the events or the first error.
    fn run(wire: &[u8], chunk: usize, limits: &MessageLimits) -> Result<Vec<Ev>, ProtocolError> {
        let mut asm = Assembler::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for piece in wire.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                let d = asm.handle_bytes(&mut buf, limits)?;
                let consumed = d.consumed;
                if let Some(ev) = d.event {
                    out.push(match ev {
                        Event::Message { kind, payload, .. } => Ev::Msg(kind, payload.to_vec()),
                        Event::Ping(p) => Ev::Ping(p.to_vec()),
                        Event::Pong(p) => Ev::Pong(p.to_vec()),
                        Event::Close(c) => Ev::Close(c.code.map(|c| c.0), c.reason.to_vec()),
                    });
                } else if consumed == 0 {
                    break;
                }
                buf.drain(..consumed);
            }
        }
        Ok(out)
    }

    fn frame(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_client_frame(&mut v, fin, op, KEY, payload);
        v
    }

    #[test]
    fn single_text_and_binary() {
        let mut wire = frame(true, OpCode::Text, b"hello");
        wire.extend(frame(true, OpCode::Binary, &[0, 1, 2]));
        wire.extend(frame(true, OpCode::Text, b""));
        let expect = vec![
            Ev::Msg(DataKind::Text, b"hello".to_vec()),
            Ev::Msg(DataKind::Binary, vec![0, 1, 2]),
            Ev::Msg(DataKind::Text, vec![]),
        ];
        for chunk in 1..=wire.len() {
            assert_eq!(
                run(&wire, chunk, &MessageLimits::default()),
                Ok(expect.clone()),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn fragmented_with_interleaved_control() {
        let mut wire = frame(false, OpCode::Text, "hé".as_bytes()[..2].as_ref());
        wire.extend(frame(true, OpCode::Ping, b"p"));
        wire.extend(frame(false, OpCode::Continuation, &"hé".as_bytes()[2..]));
        wire.extend(frame(true, OpCode::Pong, b""));
        wire.extend(frame(true, OpCode::Continuation, b"llo"));
        wire.extend(frame(true, OpCode::Close, &[0x03, 0xe8, b'o', b'k']));
        let expect = vec![
            Ev::Ping(b"p".to_vec()),
            Ev::Pong(vec![]),
            Ev::Msg(DataKind::Text, "héllo".as_bytes().to_vec()),
            Ev::Close(Some(1000), b"ok".to_vec()),
        ];
        for chunk in 1..=wire.len() {
            assert_eq!(
                run(&wire, chunk, &MessageLimits::default()),
                Ok(expect.clone()),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn continuation_rules() {
        let l = MessageLimits::default();
        assert_eq!(
            run(&frame(true, OpCode::Continuation, b"x"), 100, &l),
            Err(ProtocolError::UnexpectedContinuation)
        );
        let mut wire = frame(false, OpCode::Text, b"a");
        wire.extend(frame(true, OpCode::Text, b"b"));
        let e = run(&wire, 100, &l).unwrap_err();
        assert_eq!(e, ProtocolError::ExpectedContinuation);
        assert_eq!(e.close_code(), CloseCode::PROTOCOL);
    }

    #[test]
    fn invalid_utf8_fails_fast_mid_frame() {
        // A 1000-byte text frame whose 10th byte is invalid: the error comes before the
        // frame is complete.
        let mut payload = vec![b'a'; 1000];
        payload[9] = 0xff;
        let wire = frame(true, OpCode::Text, &payload);
        let mut asm = Assembler::default();
        let mut buf = wire[..20].to_vec();
        let e = asm
            .handle_bytes(&mut buf, &MessageLimits::default())
            .unwrap_err();
        assert_eq!(e, ProtocolError::InvalidUtf8);
        assert_eq!(e.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn invalid_utf8_across_fragments() {
        let bytes = "κόσμε".as_bytes();
        let mut wire = frame(false, OpCode::Text, &bytes[..3]);
        wire.extend(frame(true, OpCode::Continuation, &[bytes[3], 0xc0]));
        assert_eq!(
            run(&wire, 3, &MessageLimits::default()),
            Err(ProtocolError::InvalidUtf8)
        );
        // A message ending inside a code point.
        let wire = frame(true, OpCode::Text, &bytes[..3]);
        assert_eq!(
            run(&wire, 1, &MessageLimits::default()),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn size_limits() {
        let limits = MessageLimits {
            header: HeaderRules {
                max_frame: 10,
                ..HeaderRules::default()
            },
            max_message: 15,
        };
        let e = run(&frame(true, OpCode::Binary, &[0; 11]), 100, &limits).unwrap_err();
        assert_eq!(e.close_code(), CloseCode::TOO_BIG);
        let mut wire = frame(false, OpCode::Binary, &[0; 10]);
        wire.extend(frame(true, OpCode::Continuation, &[0; 6]));
        assert_eq!(run(&wire, 100, &limits), Err(ProtocolError::MessageTooBig));
        let mut wire = frame(false, OpCode::Binary, &[0; 10]);
        wire.extend(frame(true, OpCode::Continuation, &[0; 5]));
        assert_eq!(
            run(&wire, 100, &limits),
            Ok(vec![Ev::Msg(DataKind::Binary, vec![0; 15])])
        );
    }

    #[test]
    fn bad_close_payloads() {
        let l = MessageLimits::default();
        assert_eq!(
            run(&frame(true, OpCode::Close, &[1]), 100, &l)
                .unwrap_err()
                .close_code(),
            CloseCode::PROTOCOL
        );
        assert_eq!(
            run(&frame(true, OpCode::Close, &[0x03, 0xed]), 100, &l)
                .unwrap_err()
                .close_code(),
            CloseCode::PROTOCOL
        );
        assert_eq!(
            run(&frame(true, OpCode::Close, &[0x03, 0xe8, 0xff]), 100, &l)
                .unwrap_err()
                .close_code(),
            CloseCode::INVALID_PAYLOAD
        );
    }

    #[test]
    fn compressed_flag_rules() {
        let limits = MessageLimits {
            header: HeaderRules {
                allowed_rsv: RSV1,
                ..HeaderRules::default()
            },
            ..MessageLimits::default()
        };
        let mut first = frame(false, OpCode::Text, &[0xff]); // not utf-8 checked: compressed
        first[0] |= 0x40;
        let mut asm = Assembler::default();
        let mut buf = first.clone();
        let d = asm
            .handle_bytes(&mut buf, &limits)
            .expect("compressed fragment ok");
        assert_eq!(d.event, None);
        let mut cont = frame(true, OpCode::Continuation, &[0xff]);
        cont[0] |= 0x40;
        let mut wire = first;
        wire.extend(cont);
        assert_eq!(
            run(&wire, 100, &limits),
            Err(ProtocolError::CompressedContinuation)
        );
        let mut ping = frame(true, OpCode::Ping, b"");
        ping[0] |= 0x40;
        assert_eq!(
            run(&ping, 100, &limits),
            Err(ProtocolError::CompressedControl)
        );
    }
}
