//! The client side of the HTTP/1.1 upgrade (RFC 6455 section 4.1), without IO: the request
//! bytes, and a check of the server's response head (status 101, `Upgrade: websocket`,
//! `Connection: upgrade`, and `Sec-WebSocket-Accept` equal to base64(sha1(key + GUID))).
//! An incomplete head is `Partial`, not an error.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};
use std::fmt;

/// The GUID appended to the key (RFC 6455 1.3). Note "47DA": a "47A5" variant seen in some
/// notes is wrong and fails the RFC's own example (see the test below).
pub const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest response head accepted, in bytes.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// A base64 `Sec-WebSocket-Key` (16 random bytes, always 24 characters).
pub type Key = [u8; 24];
/// A base64 `Sec-WebSocket-Accept` (20-byte SHA-1, always 28 characters).
pub type Accept = [u8; 28];

/// Encodes 16 nonce bytes as a key.
pub fn key_from_nonce(nonce: [u8; 16]) -> Key {
    let mut key = [0u8; 24];
    // 16 bytes always encode to exactly 24 characters.
    let n = STANDARD.encode_slice(nonce, &mut key).unwrap_or_default();
    debug_assert_eq!(n, 24);
    key
}

/// The `Sec-WebSocket-Accept` value a server must answer to `key`.
pub fn accept_for(key: &[u8]) -> Accept {
    let mut h = Sha1::new();
    h.update(key);
    h.update(WS_GUID);
    let digest = h.finalize();
    let mut out = [0u8; 28];
    let n = STANDARD.encode_slice(digest, &mut out).unwrap_or_default();
    debug_assert_eq!(n, 28);
    out
}

/// Appends the upgrade request for `path` on `host` (e.g. "127.0.0.1:9001").
pub fn write_request(out: &mut Vec<u8>, host: &str, path: &str, key: &Key) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(
        b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
    );
    out.extend_from_slice(key);
    out.extend_from_slice(b"\r\n\r\n");
}

/// Outcome of checking the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Status {
    /// The head is valid; it is `head_len` bytes long (frames may follow it).
    Complete { head_len: usize },
    /// No blank line yet.
    Partial,
}

/// Why the server's response was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    TooLong,
    BadStatusLine,
    /// Any status other than 101 (e.g. 404 for a wrong path, 503 when overloaded).
    Status(u16),
    MissingUpgrade,
    MissingConnection,
    MissingAccept,
    WrongAccept,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::TooLong => write!(f, "response head over {MAX_RESPONSE_HEAD} bytes"),
            HandshakeError::BadStatusLine => write!(f, "malformed status line"),
            HandshakeError::Status(s) => write!(f, "status {s} instead of 101"),
            HandshakeError::MissingUpgrade => write!(f, "no `Upgrade: websocket` header"),
            HandshakeError::MissingConnection => write!(f, "no `Connection: upgrade` header"),
            HandshakeError::MissingAccept => write!(f, "no Sec-WebSocket-Accept header"),
            HandshakeError::WrongAccept => write!(f, "Sec-WebSocket-Accept does not match the key"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Checks the response head at the front of `buf` against the expected accept value.
pub fn check_response(buf: &[u8], expected: &Accept) -> Result<Status, HandshakeError> {
    let Some(end) = find_head_end(buf) else {
        return if buf.len() > MAX_RESPONSE_HEAD {
            Err(HandshakeError::TooLong)
        } else {
            Ok(Status::Partial)
        };
    };
    if end > MAX_RESPONSE_HEAD {
        return Err(HandshakeError::TooLong);
    }
    let head = &buf[..end];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().ok_or(HandshakeError::BadStatusLine)?;
    let status = parse_status(status_line)?;
    if status != 101 {
        return Err(HandshakeError::Status(status));
    }
    let (mut upgrade, mut connection, mut accept) = (false, false, None);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade |= value.eq_ignore_ascii_case(b"websocket");
        } else if name.eq_ignore_ascii_case(b"connection") {
            connection |= value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
        } else if name.eq_ignore_ascii_case(b"sec-websocket-accept") {
            accept = Some(value);
        }
    }
    if !upgrade {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !connection {
        return Err(HandshakeError::MissingConnection);
    }
    match accept {
        None => Err(HandshakeError::MissingAccept),
        Some(a) if a == expected.as_slice() => Ok(Status::Complete { head_len: end }),
        Some(_) => Err(HandshakeError::WrongAccept),
    }
}

/// Index just past the "\r\n\r\n" that ends the head.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// "HTTP/1.1 101 Switching Protocols" -> 101.
fn parse_status(line: &[u8]) -> Result<u16, HandshakeError> {
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let version = parts.next().ok_or(HandshakeError::BadStatusLine)?;
    if !version.starts_with(b"HTTP/1.") {
        return Err(HandshakeError::BadStatusLine);
    }
    let code = parts.next().ok_or(HandshakeError::BadStatusLine)?;
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err(HandshakeError::BadStatusLine);
    }
    Ok(code
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";
    const RFC_ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn response(accept: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
    }

    #[test]
    fn accept_matches_rfc_example() {
        assert_eq!(accept_for(RFC_KEY).as_slice(), RFC_ACCEPT);
    }

    #[test]
    fn key_is_24_chars_of_base64() {
        let k = key_from_nonce(*b"the sample nonce");
        assert_eq!(&k, RFC_KEY);
    }

    #[test]
    fn request_has_the_required_headers() {
        let mut out = Vec::new();
        let mut key = [0u8; 24];
        key.copy_from_slice(RFC_KEY);
        write_request(&mut out, "127.0.0.1:9001", "/echo", &key);
        let s = String::from_utf8(out).expect("ascii");
        assert!(s.starts_with("GET /echo HTTP/1.1\r\n"));
        assert!(s.contains("\r\nHost: 127.0.0.1:9001\r\n"));
        assert!(s.contains("\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(s.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(s.ends_with("\r\n\r\n"));
    }

    #[test]
    fn accepts_valid_response_at_any_split_and_reports_head_length() {
        let expected = accept_for(RFC_KEY);
        let mut bytes = response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=").into_bytes();
        let head_len = bytes.len();
        bytes.extend_from_slice(&[0x81, 0x00]); // a frame right behind the head
        for split in 0..head_len {
            assert_eq!(
                check_response(&bytes[..split], &expected),
                Ok(Status::Partial)
            );
        }
        assert_eq!(
            check_response(&bytes, &expected),
            Ok(Status::Complete { head_len })
        );
    }

    #[test]
    fn header_names_and_tokens_are_case_insensitive() {
        let expected = accept_for(RFC_KEY);
        let r = "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert!(matches!(
            check_response(r.as_bytes(), &expected),
            Ok(Status::Complete { .. })
        ));
    }

    #[test]
    fn rejects_bad_responses() {
        let expected = accept_for(RFC_KEY);
        let wrong = response("AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert_eq!(
            check_response(wrong.as_bytes(), &expected),
            Err(HandshakeError::WrongAccept)
        );
        let r404 = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            check_response(r404.as_bytes(), &expected),
            Err(HandshakeError::Status(404))
        );
        let no_upgrade = "HTTP/1.1 101 X\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            check_response(no_upgrade.as_bytes(), &expected),
            Err(HandshakeError::MissingUpgrade)
        );
        let no_accept = "HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(
            check_response(no_accept.as_bytes(), &expected),
            Err(HandshakeError::MissingAccept)
        );
        assert_eq!(
            check_response(b"garbage\r\n\r\n", &expected),
            Err(HandshakeError::BadStatusLine)
        );
        let endless = vec![b'a'; MAX_RESPONSE_HEAD + 1];
        assert_eq!(
            check_response(&endless, &expected),
            Err(HandshakeError::TooLong)
        );
    }
}
