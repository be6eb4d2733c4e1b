//! Request heads: parsing an HTTP/1.1 request head from bytes that arrive in pieces
//! (httparse's Partial/Complete), without allocating, and the body length it announces.
//!
//! [`RequestHead`] borrows the input and keeps the headers the server acts on; any other
//! header can be looked up by name in the raw head ([`RequestHead::header_values`]).

use super::response::{Response, Status};

/// Default request head limit in bytes.
pub const DEFAULT_MAX_HEAD: usize = 8 << 10;
/// Headers a request may carry; more is answered with 431.
pub const MAX_HEADERS: usize = 64;

/// A request head that cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not parseable as an HTTP/1.x request head.
    #[error("malformed http request")]
    Malformed,
    /// The head (or its header count) exceeds the limit.
    #[error("request header fields too large")]
    HeadTooLarge,
    /// `Content-Length` that is not a number, or two that disagree.
    #[error("invalid content-length")]
    BadContentLength,
}

impl RequestError {
    /// The status the request is answered with.
    pub fn status(&self) -> Status {
        match self {
            Self::Malformed | Self::BadContentLength => Status::BAD_REQUEST,
            Self::HeadTooLarge => Status::HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// The complete rejection: status and the reason as a plain-text body.
    pub fn response(&self) -> Response {
        Response::text(self.status(), &self.to_string())
    }
}

/// Why a request's body cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// No `Content-Length`.
    #[error("content-length required")]
    LengthRequired,
    /// `Transfer-Encoding` (chunked bodies are not read).
    #[error("send the body with content-length (transfer-encoding is not supported)")]
    TransferEncoding,
    /// Announced larger than the limit.
    #[error("request body over {0} bytes")]
    TooLarge(usize),
}

impl BodyError {
    /// The status the request is answered with.
    pub fn status(&self) -> Status {
        match self {
            Self::LengthRequired | Self::TransferEncoding => Status::LENGTH_REQUIRED,
            Self::TooLarge(_) => Status::PAYLOAD_TOO_LARGE,
        }
    }

    /// The complete rejection.
    pub fn response(&self) -> Response {
        Response::text(self.status(), &self.to_string())
    }
}

/// The length of the body `head` announces, if it can be read within `limit` bytes.
pub fn body_len(head: &RequestHead<'_>, limit: usize) -> Result<usize, BodyError> {
    if head.transfer_encoding {
        return Err(BodyError::TransferEncoding);
    }
    match head.content_length {
        None => Err(BodyError::LengthRequired),
        Some(n) if n > limit as u64 => Err(BodyError::TooLarge(limit)),
        Some(n) => Ok(n as usize),
    }
}

/// The body of the request whose head starts `buf`, once all of it has arrived (`Ok(None)`
/// until then). Bytes after the body are not part of it.
pub fn body<'a>(
    head: &RequestHead<'_>,
    buf: &'a [u8],
    limit: usize,
) -> Result<Option<&'a [u8]>, BodyError> {
    let n = body_len(head, limit)?;
    Ok(buf.get(head.head_len..head.head_len + n))
}

/// The parts of a request head that routing, the upgrade and the side door need. Borrowed
/// from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestHead<'a> {
    /// Length of the head including the final CRLFCRLF; bytes after it are the body (or
    /// WebSocket frames after an upgrade).
    pub head_len: usize,
    /// The head's bytes (`head_len` of them), for [`RequestHead::header_values`].
    pub raw: &'a [u8],
    /// Request method.
    pub method: &'a str,
    /// The request target as sent (path and query).
    pub target: &'a str,
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
    /// `Content-Length`, when given (several equal ones count as one).
    pub content_length: Option<u64>,
    /// A `Transfer-Encoding` header is present (bodies are read by length only).
    pub transfer_encoding: bool,
}

/// Parses a request head from the start of `buf`.
///
/// Returns `Ok(None)` when the head is not complete yet (call again with more bytes), and
/// [`RequestError::HeadTooLarge`] once `max_head` bytes arrived without a complete head.
pub fn parse_head(buf: &[u8], max_head: usize) -> Result<Option<RequestHead<'_>>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // Only the first `max_head` bytes are ever looked at, so the verdict on a given byte
    // stream does not depend on how it was split into reads.
    let window = &buf[..buf.len().min(max_head)];
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if window.len() >= max_head {
                Err(RequestError::HeadTooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadTooLarge),
        Err(_) => return Err(RequestError::Malformed),
    };
    if head_len > max_head {
        return Err(RequestError::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(RequestError::Malformed);
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut head = RequestHead {
        head_len,
        raw: &buf[..head_len],
        method,
        target,
        path,
        query,
        minor_version,
        ..RequestHead::default()
    };
    for h in req.headers.iter() {
        let name = h.name;
        let value = h.value.trim_ascii();
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
        } else if name.eq_ignore_ascii_case("content-length") {
            // RFC 9110 §8.6: digits only; several values must agree.
            let n = parse_decimal(value).ok_or(RequestError::BadContentLength)?;
            if head.content_length.is_some_and(|m| m != n) {
                return Err(RequestError::BadContentLength);
            }
            head.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.transfer_encoding = true;
        }
    }
    Ok(Some(head))
}

impl<'a> RequestHead<'a> {
    /// Offered subprotocols, in the client's order of preference.
    pub fn protocols(&self) -> impl Iterator<Item = &'a [u8]> {
        tokens(self.protocols.unwrap_or_default())
    }

    /// Offered extensions, each as its full offer (`name; param=value; ...`).
    pub fn extensions(&self) -> impl Iterator<Item = &'a [u8]> {
        tokens(self.extensions.unwrap_or_default())
    }

    /// Values of every header called `name` (case-insensitive), in order, trimmed. Scans the
    /// raw head: meant for headers read once per request (cookies, forwarding headers).
    pub fn header_values<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + 'n
    where
        'a: 'n,
    {
        // The head was accepted by httparse: after the request line, every line up to the
        // empty one is `name: value` (CRLF or bare LF line ends).
        self.raw
            .split(|&b| b == b'\n')
            .skip(1)
            .filter_map(move |line| {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let colon = line.iter().position(|&b| b == b':')?;
                let (n, v) = line.split_at(colon);
                n.eq_ignore_ascii_case(name.as_bytes())
                    .then(|| v[1..].trim_ascii())
            })
    }

    /// The first query parameter called `name`, raw (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        self.query?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }
}

/// A decimal number of at most 18 digits (no sign, no spaces).
fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// Comma-separated list items, trimmed, empty ones skipped.
pub(crate) fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn has_token(v: &[u8], token: &[u8]) -> bool {
    tokens(v).any(|t| t.eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_REQUEST: &[u8] = b"GET /chat?a=1&token=x%20y HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
X-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nx-forwarded-for:3.3.3.3\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn parses_fields_and_other_headers() {
        let head = parse_head(RFC_REQUEST, DEFAULT_MAX_HEAD).unwrap().unwrap();
        assert_eq!(head.head_len, RFC_REQUEST.len());
        assert_eq!(head.path, "/chat");
        assert_eq!(head.query_param("token"), Some("x%20y"));
        assert_eq!(head.query_param("a"), Some("1"));
        assert_eq!(head.query_param("b"), None);
        assert_eq!(head.origin, Some(&b"http://example.com"[..]));
        let xff: Vec<&[u8]> = head.header_values("X-Forwarded-For").collect();
        assert_eq!(xff, [&b"1.1.1.1, 2.2.2.2"[..], b"3.3.3.3"]);
        assert_eq!(head.header_values("cookie").count(), 0);
        assert_eq!(head.content_length, None);
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
        let head = parse_head(&buf, DEFAULT_MAX_HEAD).unwrap().unwrap();
        assert_eq!(head.head_len, RFC_REQUEST.len());
        assert_eq!(head.raw, RFC_REQUEST);
    }

    #[test]
    fn content_length_rules() {
        let parse = |cl: &str| {
            let req = format!("POST /api/x HTTP/1.1\r\nHost: h\r\n{cl}\r\n");
            parse_head(req.as_bytes(), DEFAULT_MAX_HEAD).map(|h| h.map(|h| h.content_length))
        };
        assert_eq!(parse("Content-Length: 12\r\n"), Ok(Some(Some(12))));
        assert_eq!(
            parse("Content-Length: 12\r\ncontent-length: 12\r\n"),
            Ok(Some(Some(12)))
        );
        assert_eq!(
            parse("Content-Length: 12\r\nContent-Length: 13\r\n"),
            Err(RequestError::BadContentLength)
        );
        assert_eq!(
            parse("Content-Length: -1\r\n"),
            Err(RequestError::BadContentLength)
        );
        assert_eq!(
            parse("Content-Length: 1,2\r\n"),
            Err(RequestError::BadContentLength)
        );
        assert_eq!(
            parse("Content-Length: 99999999999999999999\r\n"),
            Err(RequestError::BadContentLength)
        );
        assert_eq!(parse(""), Ok(Some(None)));
    }

    #[test]
    fn bodies() {
        let req = b"POST /api/x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello+more";
        let head = parse_head(req, DEFAULT_MAX_HEAD).unwrap().unwrap();
        assert_eq!(body(&head, req, 5), Ok(Some(&b"hello"[..])));
        assert_eq!(body(&head, &req[..req.len() - 6], 5), Ok(None));
        assert_eq!(body(&head, req, 4), Err(BodyError::TooLarge(4)));
        let req = b"POST /api/x HTTP/1.1\r\nHost: h\r\n\r\n";
        let head = parse_head(req, DEFAULT_MAX_HEAD).unwrap().unwrap();
        assert_eq!(body_len(&head, 10), Err(BodyError::LengthRequired));
        let req = b"POST /api/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        let head = parse_head(req, DEFAULT_MAX_HEAD).unwrap().unwrap();
        assert_eq!(body_len(&head, 10), Err(BodyError::TransferEncoding));
        assert_eq!(BodyError::TooLarge(1).status().0, 413);
        assert_eq!(BodyError::LengthRequired.status().0, 411);
    }

    #[test]
    fn head_limits() {
        let big = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(9000)
        );
        assert_eq!(
            parse_head(big.as_bytes(), DEFAULT_MAX_HEAD),
            Err(RequestError::HeadTooLarge)
        );
        // Incomplete but already over the limit.
        assert_eq!(
            parse_head(&big.as_bytes()[..8200], DEFAULT_MAX_HEAD),
            Err(RequestError::HeadTooLarge)
        );
        let many: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
        let req = format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n");
        assert_eq!(
            parse_head(req.as_bytes(), DEFAULT_MAX_HEAD),
            Err(RequestError::HeadTooLarge)
        );
        assert_eq!(
            parse_head(b"GARBAGE\r\n\r\n", DEFAULT_MAX_HEAD),
            Err(RequestError::Malformed)
        );
        assert_eq!(
            parse_head(
                b"GET / HTTP/1.1\r\nbad header line\r\n\r\n",
                DEFAULT_MAX_HEAD
            ),
            Err(RequestError::Malformed)
        );
    }
}
