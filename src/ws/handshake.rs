//! The opening handshake (RFC 6455 §4.2): validating an upgrade request head and writing the
//! 101. The head itself is parsed by [`crate::http::parse_head`]; routing and admission
//! (which paths exist, who may connect) belong to the caller.
//!
//! Owns the WebSocket rules of the handshake only: each [`UpgradeError`] knows the HTTP status
//! RFC 6455 asks for, as frame errors know their close codes.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::http::{RequestHead, Response, Status};

/// RFC 6455 §1.3 magic value appended to the key.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A request that is not a valid WebSocket upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    /// Method other than GET.
    #[error("method not allowed: websocket upgrade requires GET")]
    MethodNotAllowed,
    /// HTTP/1.0.
    #[error("websocket upgrade requires HTTP/1.1")]
    HttpVersion,
    /// No Host header.
    #[error("missing host header")]
    MissingHost,
    /// Upgrade header missing or without the `websocket` token.
    #[error("missing or invalid upgrade header: expected websocket")]
    NotWebSocketUpgrade,
    /// Connection header without the `upgrade` token.
    #[error("connection header must contain upgrade")]
    MissingConnectionUpgrade,
    /// Sec-WebSocket-Version missing or not 13.
    #[error("unsupported websocket version: 13 required")]
    UnsupportedVersion,
    /// Sec-WebSocket-Key missing or not base64 of 16 bytes.
    #[error("missing or invalid sec-websocket-key")]
    InvalidKey,
}

impl UpgradeError {
    /// HTTP status of the rejection.
    pub fn status(&self) -> Status {
        match self {
            Self::HttpVersion
            | Self::MissingHost
            | Self::NotWebSocketUpgrade
            | Self::MissingConnectionUpgrade
            | Self::InvalidKey => Status::BAD_REQUEST,
            Self::MethodNotAllowed => Status::METHOD_NOT_ALLOWED,
            Self::UnsupportedVersion => Status::UPGRADE_REQUIRED,
        }
    }

    /// The complete rejection: status, the headers the status calls for, the reason as body.
    pub fn response(&self) -> Response {
        let r = Response::text(self.status(), &self.to_string());
        match self {
            Self::MethodNotAllowed => r.header("Allow", "GET"),
            // "the server MUST abort the WebSocket handshake ... and instead send an
            // appropriate HTTP error code (such as 426 Upgrade Required) and a
            // |Sec-WebSocket-Version| header field indicating the version(s) the server is
            // capable of understanding."
            Self::UnsupportedVersion => r
                .header("Sec-WebSocket-Version", "13")
                .header("Upgrade", "websocket"),
            _ => r,
        }
    }
}

/// A request that passed every RFC 6455 §4.2.1 check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgrade {
    /// The Sec-WebSocket-Accept value to send.
    pub accept: [u8; 28],
}

/// Checks the WebSocket upgrade rules, in the order that gives the most useful error.
pub fn validate_upgrade(head: &RequestHead<'_>) -> Result<Upgrade, UpgradeError> {
    // "The method of the request MUST be GET, and the HTTP version MUST be at least 1.1."
    if head.method != "GET" {
        return Err(UpgradeError::MethodNotAllowed);
    }
    if head.minor_version < 1 {
        return Err(UpgradeError::HttpVersion);
    }
    if head.host.is_none() {
        return Err(UpgradeError::MissingHost);
    }
    if !head.upgrade_websocket {
        return Err(UpgradeError::NotWebSocketUpgrade);
    }
    if !head.connection_upgrade {
        return Err(UpgradeError::MissingConnectionUpgrade);
    }
    if head.ws_version != Some(b"13") {
        return Err(UpgradeError::UnsupportedVersion);
    }
    let key = head.ws_key.ok_or(UpgradeError::InvalidKey)?;
    if !is_valid_key(key) {
        return Err(UpgradeError::InvalidKey);
    }
    Ok(Upgrade {
        accept: accept_key(key),
    })
}

/// "a |Sec-WebSocket-Key| header field with a base64-encoded value that, when decoded, is 16
/// bytes in length."
pub fn is_valid_key(key: &[u8]) -> bool {
    let mut out = [0u8; 18];
    key.len() == 24 && matches!(BASE64.decode_slice(key, &mut out), Ok(16))
}

/// Sec-WebSocket-Accept: base64(SHA-1(key ++ GUID)).
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID);
    let digest = sha.finalize();
    let mut out = [0u8; 28];
    // 20 bytes always encode to exactly 28 base64 characters.
    let _ = BASE64.encode_slice(digest, &mut out);
    out
}

/// Picks the first offered subprotocol that `supported` contains.
pub fn select_protocol<'s>(head: &RequestHead<'_>, supported: &[&'s str]) -> Option<&'s str> {
    head.protocols().find_map(|offer| {
        supported
            .iter()
            .copied()
            .find(|s| s.as_bytes().eq_ignore_ascii_case(offer))
    })
}

/// Writes the 101 response. `protocol` and `extensions` are the negotiated values, if any.
pub fn write_accept(
    out: &mut Vec<u8>,
    upgrade: &Upgrade,
    protocol: Option<&str>,
    extensions: Option<&str>,
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(&upgrade.accept);
    out.extend_from_slice(b"\r\n");
    if let Some(p) = protocol {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        out.extend_from_slice(p.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(e) = extensions {
        out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
        out.extend_from_slice(e.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_head, DEFAULT_MAX_HEAD};

    const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn rfc_accept_key() {
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn rfc_request_validates() {
        let head = parse_head(RFC_REQUEST, DEFAULT_MAX_HEAD).unwrap().unwrap();
        let up = validate_upgrade(&head).unwrap();
        assert_eq!(&up.accept, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(select_protocol(&head, &["superchat"]), Some("superchat"));
        assert_eq!(select_protocol(&head, &["other"]), None);
        let mut out = Vec::new();
        write_accept(&mut out, &up, Some("chat"), None);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: chat\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    fn reject(req: &str) -> UpgradeError {
        let head = parse_head(req.as_bytes(), DEFAULT_MAX_HEAD)
            .unwrap()
            .expect("complete head");
        validate_upgrade(&head).unwrap_err()
    }

    const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    #[test]
    fn each_rule_has_its_error() {
        let ok = |skip: &str| {
            let base = format!(
                "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n{KEY}"
            );
            let filtered: String = base
                .split_inclusive("\r\n")
                .filter(|l| skip.is_empty() || !l.starts_with(skip))
                .collect();
            format!("{filtered}\r\n")
        };
        let head_ok = ok("");
        let head = parse_head(head_ok.as_bytes(), 8192).unwrap().unwrap();
        assert!(validate_upgrade(&head).is_ok());
        assert_eq!(
            reject(&ok("").replace("GET", "POST")),
            UpgradeError::MethodNotAllowed
        );
        assert_eq!(
            reject(&ok("").replace("HTTP/1.1", "HTTP/1.0")),
            UpgradeError::HttpVersion
        );
        assert_eq!(reject(&ok("Host")), UpgradeError::MissingHost);
        assert_eq!(reject(&ok("Upgrade")), UpgradeError::NotWebSocketUpgrade);
        assert_eq!(
            reject(&ok("").replace("Upgrade: websocket", "Upgrade: h2c")),
            UpgradeError::NotWebSocketUpgrade
        );
        assert_eq!(
            reject(&ok("Connection")),
            UpgradeError::MissingConnectionUpgrade
        );
        assert_eq!(
            reject(&ok("Sec-WebSocket-Version")),
            UpgradeError::UnsupportedVersion
        );
        assert_eq!(
            reject(&ok("").replace("Version: 13", "Version: 8")),
            UpgradeError::UnsupportedVersion
        );
        assert_eq!(reject(&ok("Sec-WebSocket-Key")), UpgradeError::InvalidKey);
        assert_eq!(
            reject(&ok("").replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ==")),
            UpgradeError::InvalidKey
        );
        assert_eq!(
            reject(&ok("").replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ!!")),
            UpgradeError::InvalidKey
        );
        // Header names and tokens are case-insensitive.
        let lower = ok("")
            .replace("Upgrade: websocket", "upgrade: WebSocket")
            .replace("Connection:", "connection:");
        let head = parse_head(lower.as_bytes(), 8192).unwrap().unwrap();
        assert!(validate_upgrade(&head).is_ok());
    }

    #[test]
    fn statuses_and_headers() {
        assert_eq!(UpgradeError::MethodNotAllowed.status().0, 405);
        assert_eq!(UpgradeError::UnsupportedVersion.status().0, 426);
        assert_eq!(UpgradeError::InvalidKey.status().0, 400);
        let mut out = Vec::new();
        UpgradeError::UnsupportedVersion
            .response()
            .write_to(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(text.ends_with("\r\n\r\nunsupported websocket version: 13 required\n"));
        let mut out = Vec::new();
        UpgradeError::MethodNotAllowed.response().write_to(&mut out);
        assert!(String::from_utf8(out).unwrap().contains("Allow: GET\r\n"));
    }
}
