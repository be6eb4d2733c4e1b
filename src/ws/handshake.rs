//! The opening handshake (RFC 6455 §4.2): parsing an HTTP/1.1 request head from bytes that
//! arrive in pieces, validating an upgrade request, and writing the 101 or a precise rejection.
//!
//! Owns HTTP head parsing (via `httparse`, no allocation) and the handshake rules. Routing
//! (which paths exist) belongs to the caller: [`RequestHead`] is returned before any
//! WebSocket-specific check so that plain HTTP endpoints can share the port.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// Default request head limit in bytes.
pub const DEFAULT_MAX_HEAD: usize = 8 << 10;
/// Headers a request may carry; more is answered with 431.
pub const MAX_HEADERS: usize = 64;
/// RFC 6455 §1.3 magic value appended to the key.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A rejected request. Each variant knows its HTTP status and one-line reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Not parseable as an HTTP/1.x request head.
    #[error("malformed http request")]
    Malformed,
    /// The head (or its header count) exceeds the limit.
    #[error("request header fields too large")]
    HeadTooLarge,
    /// Method other than GET.
    #[error("method not allowed: websocket upgrade requires GET")]
    MethodNotAllowed,
    /// HTTP/1.0.
    #[error("websocket upgrade requires HTTP/1.1")]
    HttpVersion,
    /// No route for the path.
    #[error("not found")]
    NotFound,
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
    /// Origin not allowed by the route's policy (used by the chat layer).
    #[error("origin not allowed")]
    ForbiddenOrigin,
    /// The request head did not arrive within the handshake timeout (slowloris).
    #[error("handshake timeout")]
    Timeout,
    /// The server is at its connection limit.
    #[error("server at connection limit")]
    ServiceUnavailable,
}

impl HandshakeError {
    /// HTTP status code of the rejection.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed
            | Self::HttpVersion
            | Self::MissingHost
            | Self::NotWebSocketUpgrade
            | Self::MissingConnectionUpgrade
            | Self::InvalidKey => 400,
            Self::ForbiddenOrigin => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Timeout => 408,
            Self::UnsupportedVersion => 426,
            Self::HeadTooLarge => 431,
            Self::ServiceUnavailable => 503,
        }
    }

    /// Reason phrase for the status line.
    pub fn reason_phrase(&self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            426 => "Upgrade Required",
            431 => "Request Header Fields Too Large",
            _ => "Service Unavailable",
        }
    }
}

/// The parts of a request head that routing and the upgrade need. Borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestHead<'a> {
    /// Length of the head including the final CRLFCRLF; bytes after it are WebSocket frames.
    pub head_len: usize,
    /// Request method.
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    /// Query string without `?`, if any.
    pub query: Option<&'a str>,
    /// HTTP minor version (0 or 1).
    pub minor_version: u8,
    /// Host header.
    pub host: Option<&'a [u8]>,
    /// Origin header (browsers always send it).
    pub origin: Option<&'a [u8]>,
    /// `Upgrade` has a `websocket` token.
    pub upgrade_websocket: bool,
    /// Any Upgrade header at all.
    pub has_upgrade: bool,
    /// `Connection` has an `upgrade` token.
    pub connection_upgrade: bool,
    /// Sec-WebSocket-Version value.
    pub ws_version: Option<&'a [u8]>,
    /// Sec-WebSocket-Key value.
    pub ws_key: Option<&'a [u8]>,
    /// Sec-WebSocket-Protocol values (comma list; first header only).
    pub protocols: Option<&'a [u8]>,
    /// Sec-WebSocket-Extensions values (first header only; see [`RequestHead::extensions`]).
    pub extensions: Option<&'a [u8]>,
    /// Authorization header (for routes that authenticate).
    pub authorization: Option<&'a [u8]>,
}

/// Parses a request head from the start of `buf`.
///
/// Returns `Ok(None)` when the head is not complete yet (call again with more bytes), and
/// [`HandshakeError::HeadTooLarge`] once `max_head` bytes arrived without a complete head.
pub fn parse_head(buf: &[u8], max_head: usize) -> Result<Option<RequestHead<'_>>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // Only the first `max_head` bytes are ever looked at, so the verdict on a given byte
    // stream does not depend on how it was split into reads.
    let window = &buf[..buf.len().min(max_head)];
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if window.len() >= max_head {
                Err(HandshakeError::HeadTooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::HeadTooLarge),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    if head_len > max_head {
        return Err(HandshakeError::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(HandshakeError::Malformed);
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut head = RequestHead {
        head_len,
        method,
        path,
        query,
        minor_version,
        ..RequestHead::default()
    };
    for h in req.headers.iter() {
        let name = h.name;
        let value = trim(h.value);
        if name.eq_ignore_ascii_case("host") {
            head.host = Some(value);
        } else if name.eq_ignore_ascii_case("upgrade") {
            head.has_upgrade = true;
            head.upgrade_websocket |= has_token(value, b"websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            head.connection_upgrade |= has_token(value, b"upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            head.ws_version = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            head.ws_key = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            head.protocols.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            head.extensions.get_or_insert(value);
        } else if name.eq_ignore_ascii_case("origin") {
            head.origin = Some(value);
        } else if name.eq_ignore_ascii_case("authorization") {
            head.authorization = Some(value);
        }
    }
    Ok(Some(head))
}

/// A request that passed every RFC 6455 §4.2.1 check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgrade {
    /// The Sec-WebSocket-Accept value to send.
    pub accept: [u8; 28],
}

impl<'a> RequestHead<'a> {
    /// Checks the WebSocket upgrade rules, in the order that gives the most useful error.
    pub fn validate_upgrade(&self) -> Result<Upgrade, HandshakeError> {
        // "The method of the request MUST be GET, and the HTTP version MUST be at least 1.1."
        if self.method != "GET" {
            return Err(HandshakeError::MethodNotAllowed);
        }
        if self.minor_version < 1 {
            return Err(HandshakeError::HttpVersion);
        }
        if self.host.is_none() {
            return Err(HandshakeError::MissingHost);
        }
        if !self.upgrade_websocket {
            return Err(HandshakeError::NotWebSocketUpgrade);
        }
        if !self.connection_upgrade {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        // "If this version does not match a version understood by the server, the server MUST
        // abort the WebSocket handshake ... and instead send an appropriate HTTP error code
        // (such as 426 Upgrade Required) and a |Sec-WebSocket-Version| header field".
        if self.ws_version != Some(b"13") {
            return Err(HandshakeError::UnsupportedVersion);
        }
        let key = self.ws_key.ok_or(HandshakeError::InvalidKey)?;
        if !is_valid_key(key) {
            return Err(HandshakeError::InvalidKey);
        }
        Ok(Upgrade {
            accept: accept_key(key),
        })
    }

    /// Offered subprotocols, in the client's order of preference.
    pub fn protocols(&self) -> impl Iterator<Item = &'a [u8]> {
        tokens(self.protocols.unwrap_or_default())
    }

    /// Offered extensions, each as its full offer (`name; param=value; ...`).
    pub fn extensions(&self) -> impl Iterator<Item = &'a [u8]> {
        tokens(self.extensions.unwrap_or_default())
    }
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

/// Writes a rejection: status line, the headers the status calls for, and the reason as a
/// one-line plain-text body. The connection is closed after it.
pub fn write_reject(out: &mut Vec<u8>, err: &HandshakeError) {
    write_response(
        out,
        err.status(),
        err.reason_phrase(),
        "text/plain; charset=utf-8",
        &[],
        &err.to_string(),
    );
}

/// Writes a complete HTTP/1.1 response that closes the connection.
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    phrase: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &str,
) {
    use std::io::Write as _;
    let body_len = body.len() + 1;
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: {content_type}\r\nContent-Length: {body_len}\r\nConnection: close\r\n"
    );
    let extra_for_status: &[(&str, &str)] = match status {
        405 => &[("Allow", "GET")],
        426 => &[("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")],
        _ => &[],
    };
    for (k, v) in extra_for_status.iter().chain(extra) {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    let _ = write!(out, "\r\n{body}\n");
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// Comma-separated list items, trimmed, empty ones skipped.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(trim).filter(|t| !t.is_empty())
}

fn has_token(v: &[u8], token: &[u8]) -> bool {
    tokens(v).any(|t| t.eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn rfc_request_parses_and_validates() {
        let head = parse_head(RFC_REQUEST, DEFAULT_MAX_HEAD).unwrap().unwrap();
        assert_eq!(head.head_len, RFC_REQUEST.len());
        assert_eq!(head.path, "/chat");
        assert_eq!(head.origin, Some(&b"http://example.com"[..]));
        let up = head.validate_upgrade().unwrap();
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

    #[test]
    fn partial_at_every_split() {
        for split in 0..RFC_REQUEST.len() {
            assert_eq!(
                parse_head(&RFC_REQUEST[..split], DEFAULT_MAX_HEAD),
                Ok(None),
                "split {split}"
            );
        }
    }

    #[test]
    fn bytes_after_head_are_not_part_of_it() {
        let mut buf = RFC_REQUEST.to_vec();
        buf.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]);
        assert_eq!(
            parse_head(&buf, DEFAULT_MAX_HEAD)
                .unwrap()
                .unwrap()
                .head_len,
            RFC_REQUEST.len()
        );
    }

    fn reject(req: &str) -> HandshakeError {
        match parse_head(req.as_bytes(), DEFAULT_MAX_HEAD) {
            Err(e) => e,
            Ok(Some(h)) => h.validate_upgrade().unwrap_err(),
            Ok(None) => panic!("incomplete"),
        }
    }

    const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    #[test]
    fn each_rule_has_its_status() {
        let ok = |extra: &str, skip: &str| {
            let base = format!(
                "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n{KEY}{extra}"
            );
            let filtered: String = base
                .split_inclusive("\r\n")
                .filter(|l| skip.is_empty() || !l.starts_with(skip))
                .collect();
            format!("{filtered}\r\n")
        };
        assert!(parse_head(ok("", "").as_bytes(), 8192)
            .unwrap()
            .unwrap()
            .validate_upgrade()
            .is_ok());
        assert_eq!(
            reject(&ok("", "").replace("GET", "POST")),
            HandshakeError::MethodNotAllowed
        );
        assert_eq!(
            reject(&ok("", "").replace("HTTP/1.1", "HTTP/1.0")),
            HandshakeError::HttpVersion
        );
        assert_eq!(reject(&ok("", "Host")), HandshakeError::MissingHost);
        assert_eq!(
            reject(&ok("", "Upgrade")),
            HandshakeError::NotWebSocketUpgrade
        );
        assert_eq!(
            reject(&ok("", "").replace("Upgrade: websocket", "Upgrade: h2c")),
            HandshakeError::NotWebSocketUpgrade
        );
        assert_eq!(
            reject(&ok("", "Connection")),
            HandshakeError::MissingConnectionUpgrade
        );
        assert_eq!(
            reject(&ok("", "Sec-WebSocket-Version")),
            HandshakeError::UnsupportedVersion
        );
        assert_eq!(
            reject(&ok("", "").replace("Version: 13", "Version: 8")),
            HandshakeError::UnsupportedVersion
        );
        assert_eq!(
            reject(&ok("", "Sec-WebSocket-Key")),
            HandshakeError::InvalidKey
        );
        assert_eq!(
            reject(&ok("", "").replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ==")),
            HandshakeError::InvalidKey
        );
        assert_eq!(
            reject(&ok("", "").replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ!!")),
            HandshakeError::InvalidKey
        );
        assert_eq!(reject("GARBAGE\r\n\r\n"), HandshakeError::Malformed);
        assert_eq!(
            reject("GET / HTTP/1.1\r\nbad header line\r\n\r\n"),
            HandshakeError::Malformed
        );
        // Header names and tokens are case-insensitive.
        let lower = ok("", "")
            .replace("Upgrade: websocket", "upgrade: WebSocket")
            .replace("Connection:", "connection:");
        assert!(parse_head(lower.as_bytes(), 8192)
            .unwrap()
            .unwrap()
            .validate_upgrade()
            .is_ok());
    }

    #[test]
    fn statuses() {
        assert_eq!(HandshakeError::NotFound.status(), 404);
        assert_eq!(HandshakeError::MethodNotAllowed.status(), 405);
        assert_eq!(HandshakeError::UnsupportedVersion.status(), 426);
        assert_eq!(HandshakeError::HeadTooLarge.status(), 431);
        let mut out = Vec::new();
        write_reject(&mut out, &HandshakeError::UnsupportedVersion);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(text.ends_with("\r\n\r\nunsupported websocket version: 13 required\n"));
    }

    #[test]
    fn head_limits() {
        let big = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(9000)
        );
        assert_eq!(
            parse_head(big.as_bytes(), DEFAULT_MAX_HEAD),
            Err(HandshakeError::HeadTooLarge)
        );
        // Incomplete but already over the limit.
        assert_eq!(
            parse_head(&big.as_bytes()[..8200], DEFAULT_MAX_HEAD),
            Err(HandshakeError::HeadTooLarge)
        );
        let many: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
        let req = format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n");
        assert_eq!(
            parse_head(req.as_bytes(), DEFAULT_MAX_HEAD),
            Err(HandshakeError::HeadTooLarge)
        );
    }
}
