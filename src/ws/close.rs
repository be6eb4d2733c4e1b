//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).
//!
//! Owns the rules for which status codes may appear on the wire and how a close payload is
//! laid out. Knows nothing about sockets or timers: the reactor drives the close handshake.

use super::utf8::Utf8Validator;

/// A close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: Self = Self(1000);
    /// 1001: endpoint going away (server shutdown, idle peer).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: protocol error.
    pub const PROTOCOL: Self = Self(1002);
    /// 1003: unsupported data type.
    pub const UNSUPPORTED: Self = Self(1003);
    /// 1007: payload inconsistent with the message type (e.g. invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: policy violation (e.g. slow consumer).
    pub const POLICY: Self = Self(1008);
    /// 1009: message too big.
    pub const TOO_BIG: Self = Self(1009);
    /// 1010: a required extension was not negotiated (client only).
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: internal server error.
    pub const INTERNAL: Self = Self(1011);

    /// Whether a peer may send this code in a close frame.
    ///
    /// RFC 6455 §7.4.1 reserves 1004, 1005, 1006 and 1015 ("MUST NOT be set as a status code
    /// in a Close control frame by an endpoint"); 0-999 are unused; 1016-2999 are reserved for
    /// future protocol revisions; 3000-3999 are registered and 4000-4999 private. 1012-1014
    /// are registered by IANA (service restart, try again later, bad gateway).
    pub fn is_allowed_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// Why a received close payload is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClosePayloadError {
    /// A one-byte payload cannot hold a status code.
    #[error("close payload of one byte")]
    OneByte,
    /// The status code may not be sent by an endpoint.
    #[error("invalid close code {0}")]
    InvalidCode(u16),
    /// The reason is not valid UTF-8.
    #[error("close reason is not utf-8")]
    InvalidReason,
}

impl ClosePayloadError {
    /// The code to fail the connection with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::OneByte | Self::InvalidCode(_) => CloseCode::PROTOCOL,
            Self::InvalidReason => CloseCode::INVALID_PAYLOAD,
        }
    }
}

/// A validated close frame payload: no code at all, or a code with a UTF-8 reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// `None` when the peer sent an empty close payload (RFC 6455 §7.1.5: status 1005).
    pub code: Option<CloseCode>,
    /// The reason, already checked to be UTF-8 (may be empty).
    pub reason: &'a [u8],
}

/// Parses and validates a close payload.
pub fn parse_close_payload(payload: &[u8]) -> Result<CloseFrame<'_>, ClosePayloadError> {
    match payload {
        [] => Ok(CloseFrame {
            code: None,
            reason: &[],
        }),
        [_] => Err(ClosePayloadError::OneByte),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_allowed_on_wire() {
                return Err(ClosePayloadError::InvalidCode(code.0));
            }
            let mut v = Utf8Validator::default();
            v.feed(reason)
                .and_then(|()| v.finish())
                .map_err(|_| ClosePayloadError::InvalidReason)?;
            Ok(CloseFrame {
                code: Some(code),
                reason,
            })
        }
    }
}

/// Largest reason that fits a control frame (125 bytes minus the 2-byte code).
pub const MAX_CLOSE_REASON: usize = 123;

/// Writes a close payload (code + reason) into `out`, truncating the reason to
/// [`MAX_CLOSE_REASON`] bytes on a UTF-8 boundary; returns the payload length.
pub fn encode_close_payload(code: CloseCode, reason: &str, out: &mut [u8; 125]) -> usize {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out[..2].copy_from_slice(&code.0.to_be_bytes());
    out[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    2 + end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_payload_has_no_code() {
        assert_eq!(
            parse_close_payload(&[]),
            Ok(CloseFrame {
                code: None,
                reason: &[]
            })
        );
    }

    #[test]
    fn one_byte_is_protocol_error() {
        let e = parse_close_payload(&[3]).unwrap_err();
        assert_eq!(e.close_code(), CloseCode::PROTOCOL);
    }

    #[test]
    fn code_ranges() {
        for ok in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(parse_close_payload(&ok.to_be_bytes()).is_ok(), "{ok}");
        }
        for bad in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let e = parse_close_payload(&bad.to_be_bytes()).unwrap_err();
            assert_eq!(e, ClosePayloadError::InvalidCode(bad));
            assert_eq!(e.close_code(), CloseCode::PROTOCOL);
        }
    }

    #[test]
    fn reason_must_be_utf8() {
        let mut p = 1000u16.to_be_bytes().to_vec();
        p.extend_from_slice("bye ü".as_bytes());
        assert_eq!(parse_close_payload(&p).unwrap().reason, "bye ü".as_bytes());
        p.push(0xff);
        let e = parse_close_payload(&p).unwrap_err();
        assert_eq!(e.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn encode_truncates_on_char_boundary() {
        let mut out = [0u8; 125];
        let reason = "é".repeat(100); // 200 bytes
        let n = encode_close_payload(CloseCode::GOING_AWAY, &reason, &mut out);
        assert!(n <= 125);
        let parsed = parse_close_payload(&out[..n]).unwrap();
        assert_eq!(parsed.code, Some(CloseCode::GOING_AWAY));
        assert_eq!(parsed.reason.len(), 122);
    }
}
