//! The client side of the opening handshake (RFC 6455 §4.1): writing the upgrade request and
//! checking the server's response head as it arrives in pieces.
//!
//! Owns the request bytes and the response rules (status 101, `Upgrade: websocket`,
//! `Connection: upgrade`, the `Sec-WebSocket-Accept` derived from our key, and no extension or
//! subprotocol we did not offer). Sans-IO like the rest of `ws`: no sockets, no clock, no
//! randomness (the caller brings the 16-byte nonce), no logging. Frames after the head use
//! [`super::frame`] in the client role: [`super::frame::encode_client_frame`] to send, and
//! [`super::HeaderRules`] with `require_mask: false` to receive (servers do not mask).
//!
//! Call order: [`ClientKey::from_nonce`] → [`write_request`] (returns the [`ClientHandshake`]
//! that knows what to expect) → [`ClientHandshake::handle_response`] on every read until it
//! returns [`ResponseStatus::Complete`]; bytes from `head_len` on are WebSocket frames.

use super::handshake::accept_key;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// Default limit on the response head, in bytes.
pub const DEFAULT_MAX_RESPONSE_HEAD: usize = 16 << 10;
/// Header fields a response may carry; more is [`ResponseError::HeadTooLarge`].
pub const MAX_RESPONSE_HEADERS: usize = 64;

/// A `Sec-WebSocket-Key`: base64 of 16 random bytes, always 24 ASCII characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKey([u8; 24]);

impl ClientKey {
    /// The key for a nonce. RFC 6455 §4.1: "The nonce MUST be selected randomly for each
    /// connection"; where the randomness comes from is the caller's choice.
    pub fn from_nonce(nonce: [u8; 16]) -> Self {
        let mut key = [0u8; 24];
        // 16 bytes always encode to exactly 24 characters, so this cannot fail.
        let _ = BASE64.encode_slice(nonce, &mut key);
        Self(key)
    }

    /// The 24 key characters, as sent.
    pub fn as_bytes(&self) -> &[u8; 24] {
        &self.0
    }

    /// The `Sec-WebSocket-Accept` value a server must answer with: base64(SHA-1(key ++ GUID)).
    pub fn accept(&self) -> [u8; 28] {
        accept_key(&self.0)
    }
}

/// What goes into an upgrade request.
#[derive(Debug, Clone, Copy)]
pub struct UpgradeRequest<'a> {
    /// Request target: the path and an optional query (`/ws?username=u1`). Must start with
    /// `/` and hold no space or control character.
    pub target: &'a str,
    /// The `Host` value (`127.0.0.1:9001`).
    pub host: &'a str,
    /// The handshake key.
    pub key: &'a ClientKey,
    /// Further header fields, written in this order after the required ones: `Origin`,
    /// `Authorization`, `Cookie`, `Sec-WebSocket-Protocol`, `Sec-WebSocket-Extensions`,
    /// `X-Forwarded-For`... Offering `Sec-WebSocket-Protocol` or `Sec-WebSocket-Extensions`
    /// here is what allows the response to select one. The fields the handshake itself
    /// writes (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`)
    /// are refused.
    pub headers: &'a [(&'a str, &'a str)],
}

/// A request that cannot be written without breaking HTTP (or opening a header injection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The target is empty, does not start with `/`, or holds a space or control character.
    #[error("invalid request target")]
    InvalidTarget,
    /// The host is empty or holds a space or control character.
    #[error("invalid host")]
    InvalidHost,
    /// A header name that is not an RFC 9110 token.
    #[error("invalid header name")]
    InvalidHeaderName,
    /// A header value with CR, LF or another control character (except tab).
    #[error("invalid header value")]
    InvalidHeaderValue,
    /// A header the handshake writes itself.
    #[error("header is set by the handshake")]
    ReservedHeader,
}

/// Header names [`write_request`] writes itself and refuses as extra headers.
const RESERVED_HEADERS: [&str; 5] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
];

/// Appends the upgrade request to `out` and returns the state that checks the response.
/// On error nothing is appended.
pub fn write_request(
    out: &mut Vec<u8>,
    req: &UpgradeRequest<'_>,
) -> Result<ClientHandshake, RequestError> {
    let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| b > b' ' && b != 0x7f);
    if !req.target.starts_with('/') || !printable(req.target) {
        return Err(RequestError::InvalidTarget);
    }
    if !printable(req.host) {
        return Err(RequestError::InvalidHost);
    }
    let mut hs = ClientHandshake {
        accept: req.key.accept(),
        offered_protocols: false,
        offered_extensions: false,
        max_head: DEFAULT_MAX_RESPONSE_HEAD,
    };
    for (name, value) in req.headers {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(RequestError::InvalidHeaderName);
        }
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(RequestError::InvalidHeaderValue);
        }
        if RESERVED_HEADERS
            .iter()
            .any(|r| name.eq_ignore_ascii_case(r))
        {
            return Err(RequestError::ReservedHeader);
        }
        hs.offered_protocols |= name.eq_ignore_ascii_case("sec-websocket-protocol");
        hs.offered_extensions |= name.eq_ignore_ascii_case("sec-websocket-extensions");
    }
    // RFC 6455 §4.1: GET, HTTP/1.1, Host, "Upgrade: websocket", "Connection: Upgrade",
    // Sec-WebSocket-Key, "Sec-WebSocket-Version: 13".
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(req.host.as_bytes());
    out.extend_from_slice(
        b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
    );
    out.extend_from_slice(req.key.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in req.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.trim_matches([' ', '\t']).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(hs)
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Why the server's response does not complete the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Not parseable as an HTTP/1.x response head.
    #[error("malformed http response")]
    Malformed,
    /// The head (or its header count) exceeds the limit.
    #[error("response head too large")]
    HeadTooLarge,
    /// A status other than 101: the server refused the upgrade (404 wrong path, 401 auth,
    /// 403 origin, 429 rate, 503 full...). RFC 6455 §4.1: "If the status code received from
    /// the server is not 101, the client handles the response per HTTP procedures."
    #[error("status {0} instead of 101")]
    Status(u16),
    /// A 101 over HTTP/1.0, which has no upgrade.
    #[error("101 over http/1.0")]
    HttpVersion,
    /// "If the response lacks an |Upgrade| header field or the |Upgrade| header field
    /// contains a value that is not an ASCII case-insensitive match for the value
    /// "websocket", the client MUST _Fail the WebSocket Connection_."
    #[error("missing or invalid upgrade header: expected websocket")]
    MissingUpgrade,
    /// The same rule for `Connection: Upgrade`.
    #[error("connection header must contain upgrade")]
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Accept`.
    #[error("missing sec-websocket-accept")]
    MissingAccept,
    /// `Sec-WebSocket-Accept` is not the value derived from our key (or appears twice).
    #[error("sec-websocket-accept does not match the key")]
    WrongAccept,
    /// "If the response includes a |Sec-WebSocket-Extensions| header field and this header
    /// field indicates the use of an extension that was not present in the client's
    /// handshake ..., the client MUST _Fail the WebSocket Connection_."
    #[error("extension the client did not offer")]
    UnrequestedExtension,
    /// The same rule for `Sec-WebSocket-Protocol`.
    #[error("subprotocol the client did not offer")]
    UnrequestedProtocol,
}

impl ResponseError {
    /// The HTTP status of a refused upgrade (`None` for a broken 101 or a malformed head).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status(s) => Some(*s),
            _ => None,
        }
    }
}

/// A valid 101 response head, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead<'b> {
    /// Length of the head including the final CRLFCRLF; bytes after it are frames.
    pub head_len: usize,
    /// The selected subprotocol (first `Sec-WebSocket-Protocol` field), if any. Only
    /// possible when one was offered.
    pub protocol: Option<&'b [u8]>,
    /// The accepted extensions (first `Sec-WebSocket-Extensions` field), if any. Only
    /// possible when some were offered; the caller checks the parameters it asked for.
    pub extensions: Option<&'b [u8]>,
}

/// Outcome of checking the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus<'b> {
    /// The handshake is complete.
    Complete(ResponseHead<'b>),
    /// The head is not complete yet: call again with more bytes (appended).
    Partial,
}

/// What the client expects of the response to the request it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHandshake {
    /// The `Sec-WebSocket-Accept` the server must send.
    accept: [u8; 28],
    /// The request offered a subprotocol / extensions.
    offered_protocols: bool,
    offered_extensions: bool,
    /// Largest response head accepted, in bytes. Default: [`DEFAULT_MAX_RESPONSE_HEAD`].
    pub max_head: usize,
}

impl ClientHandshake {
    /// Checks the response head at the start of `buf` (everything received so far).
    ///
    /// Only the first `max_head` bytes are looked at, so the verdict on a byte stream does not
    /// depend on how it was split into reads. Never allocates.
    pub fn handle_response<'b>(&self, buf: &'b [u8]) -> Result<ResponseStatus<'b>, ResponseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut res = httparse::Response::new(&mut headers);
        let window = &buf[..buf.len().min(self.max_head)];
        let head_len = match res.parse(window) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if window.len() >= self.max_head => {
                return Err(ResponseError::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(ResponseStatus::Partial),
            Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::HeadTooLarge),
            Err(_) => return Err(ResponseError::Malformed),
        };
        let (Some(code), Some(minor)) = (res.code, res.version) else {
            return Err(ResponseError::Malformed);
        };
        if code != 101 {
            return Err(ResponseError::Status(code));
        }
        if minor < 1 {
            return Err(ResponseError::HttpVersion);
        }
        let mut upgrade = false;
        let mut connection = false;
        let mut accept: Option<&[u8]> = None;
        let mut accepts = 0;
        let mut protocol = None;
        let mut extensions = None;
        for h in res.headers.iter() {
            let value = h.value.trim_ascii();
            if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade |= has_token(value, b"websocket");
            } else if h.name.eq_ignore_ascii_case("connection") {
                connection |= has_token(value, b"upgrade");
            } else if h.name.eq_ignore_ascii_case("sec-websocket-accept") {
                accept = Some(value);
                accepts += 1;
            } else if h.name.eq_ignore_ascii_case("sec-websocket-protocol") {
                protocol.get_or_insert(value);
            } else if h.name.eq_ignore_ascii_case("sec-websocket-extensions") {
                extensions.get_or_insert(value);
            }
        }
        if !upgrade {
            return Err(ResponseError::MissingUpgrade);
        }
        if !connection {
            return Err(ResponseError::MissingConnectionUpgrade);
        }
        match accept {
            None => return Err(ResponseError::MissingAccept),
            Some(a) if accepts == 1 && a == self.accept.as_slice() => {}
            Some(_) => return Err(ResponseError::WrongAccept),
        }
        if extensions.is_some() && !self.offered_extensions {
            return Err(ResponseError::UnrequestedExtension);
        }
        if protocol.is_some() && !self.offered_protocols {
            return Err(ResponseError::UnrequestedProtocol);
        }
        Ok(ResponseStatus::Complete(ResponseHead {
            head_len,
            protocol,
            extensions,
        }))
    }
}

/// Whether a comma-separated header value holds `token` (ASCII case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_head;
    use crate::ws::handshake::validate_upgrade;

    /// RFC 6455 §1.3's example: nonce "the sample nonce".
    const RFC_KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";
    const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn rfc_key() -> ClientKey {
        ClientKey::from_nonce(*b"the sample nonce")
    }

    fn handshake(headers: &[(&str, &str)]) -> ClientHandshake {
        let mut out = Vec::new();
        write_request(
            &mut out,
            &UpgradeRequest {
                target: "/ws",
                host: "h",
                key: &rfc_key(),
                headers,
            },
        )
        .expect("valid request")
    }

    fn response(extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n{extra}\r\n"
        )
    }

    #[test]
    fn key_and_accept_match_the_rfc_example() {
        assert_eq!(rfc_key().as_bytes(), RFC_KEY);
        assert_eq!(rfc_key().accept().as_slice(), RFC_ACCEPT.as_bytes());
    }

    #[test]
    fn request_is_accepted_by_the_server_side_parser() {
        let mut out = b"leftover".to_vec();
        let key = ClientKey::from_nonce([7; 16]);
        write_request(
            &mut out,
            &UpgradeRequest {
                target: "/ws?username=u1&x=%20",
                host: "127.0.0.1:9001",
                key: &key,
                headers: &[
                    ("Origin", "http://127.0.0.1:9001"),
                    ("Authorization", "Bearer abc.def"),
                    ("Sec-WebSocket-Extensions", "permessage-deflate"),
                ],
            },
        )
        .expect("valid request");
        let req = &out[b"leftover".len()..];
        let head = parse_head(req, 8 << 10).expect("parses").expect("complete");
        assert_eq!(head.head_len, req.len());
        assert_eq!(head.method, "GET");
        assert_eq!(head.path, "/ws");
        assert_eq!(head.query, Some("username=u1&x=%20"));
        assert_eq!(head.host, Some(&b"127.0.0.1:9001"[..]));
        assert_eq!(head.origin, Some(&b"http://127.0.0.1:9001"[..]));
        assert_eq!(head.authorization, Some(&b"Bearer abc.def"[..]));
        assert_eq!(head.extensions, Some(&b"permessage-deflate"[..]));
        assert_eq!(head.target, "/ws?username=u1&x=%20");
        let upgrade = validate_upgrade(&head).expect("valid upgrade");
        assert_eq!(upgrade.accept, key.accept());
    }

    #[test]
    fn bad_requests_are_refused_and_write_nothing() {
        let key = rfc_key();
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], RequestError);
        let cases: [Case<'_>; 8] = [
            ("ws", "h", &[], RequestError::InvalidTarget),
            ("", "h", &[], RequestError::InvalidTarget),
            ("/a b", "h", &[], RequestError::InvalidTarget),
            ("/a\r\nX: y", "h", &[], RequestError::InvalidTarget),
            ("/", "h\r\nX: y", &[], RequestError::InvalidHost),
            (
                "/",
                "h",
                &[("Bad Name", "v")],
                RequestError::InvalidHeaderName,
            ),
            (
                "/",
                "h",
                &[("X", "v\r\nY: z")],
                RequestError::InvalidHeaderValue,
            ),
            (
                "/",
                "h",
                &[("connection", "close")],
                RequestError::ReservedHeader,
            ),
        ];
        for (target, host, headers, want) in cases {
            let mut out = Vec::new();
            let got = write_request(
                &mut out,
                &UpgradeRequest {
                    target,
                    host,
                    key: &key,
                    headers,
                },
            );
            assert_eq!(got, Err(want), "{target:?} {host:?} {headers:?}");
            assert!(out.is_empty());
        }
    }

    /// Feeds every prefix of `bytes` (the head ends at `head_len`): every prefix shorter than
    /// the head is Partial, and the whole gives `want`. Then appends the rest in a second
    /// piece, as a socket would, from every split point.
    fn at_every_split(
        hs: &ClientHandshake,
        bytes: &[u8],
        head_len: usize,
        want: Result<ResponseStatus<'_>, ResponseError>,
    ) {
        for split in 0..head_len {
            assert_eq!(
                hs.handle_response(&bytes[..split]),
                Ok(ResponseStatus::Partial),
                "split {split}"
            );
            let mut buf = bytes[..split].to_vec();
            buf.extend_from_slice(&bytes[split..]);
            assert_eq!(hs.handle_response(&buf), want, "split {split}");
        }
        assert_eq!(hs.handle_response(bytes), want);
    }

    #[test]
    fn valid_response_at_every_split_point_with_frames_behind_it() {
        let hs = handshake(&[]);
        let mut bytes = response("").into_bytes();
        let head_len = bytes.len();
        bytes.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
        let want = Ok(ResponseStatus::Complete(ResponseHead {
            head_len,
            protocol: None,
            extensions: None,
        }));
        at_every_split(&hs, &bytes, head_len, want);
        assert_eq!(&bytes[head_len..], &[0x81, 0x02, b'h', b'i']);
    }

    #[test]
    fn refusals_give_their_status_at_every_split_point() {
        let hs = handshake(&[]);
        for code in [400u16, 401, 403, 404, 429, 503] {
            let body = "too many";
            let r = format!(
                "HTTP/1.1 {code} Whatever\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let head_len = r.len() - body.len();
            at_every_split(
                &hs,
                r.as_bytes(),
                head_len,
                Err(ResponseError::Status(code)),
            );
            assert_eq!(ResponseError::Status(code).status(), Some(code));
        }
        assert_eq!(ResponseError::WrongAccept.status(), None);
    }

    #[test]
    fn names_and_tokens_are_case_insensitive() {
        let hs = handshake(&[]);
        let r = format!(
            "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n\
             sec-websocket-accept:  {RFC_ACCEPT} \r\n\r\n"
        );
        assert!(matches!(
            hs.handle_response(r.as_bytes()),
            Ok(ResponseStatus::Complete(_))
        ));
    }

    #[test]
    fn broken_101s_are_refused_with_the_rule_they_break() {
        let hs = handshake(&[]);
        let accept = format!("Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n");
        let cases = [
            (
                format!("HTTP/1.1 101 X\r\nConnection: Upgrade\r\n{accept}\r\n"),
                ResponseError::MissingUpgrade,
            ),
            (
                format!("HTTP/1.1 101 X\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n{accept}\r\n"),
                ResponseError::MissingUpgrade,
            ),
            (
                format!(
                    "HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: close\r\n{accept}\r\n"
                ),
                ResponseError::MissingConnectionUpgrade,
            ),
            (
                "HTTP/1.1 101 X\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".into(),
                ResponseError::MissingAccept,
            ),
            (
                response("").replace(RFC_ACCEPT, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                ResponseError::WrongAccept,
            ),
            (response(&accept), ResponseError::WrongAccept),
            (
                response("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
                ResponseError::UnrequestedExtension,
            ),
            (
                response("Sec-WebSocket-Protocol: chat\r\n"),
                ResponseError::UnrequestedProtocol,
            ),
            (
                response("").replace("HTTP/1.1", "HTTP/1.0"),
                ResponseError::HttpVersion,
            ),
            ("garbage\r\n\r\n".into(), ResponseError::Malformed),
        ];
        for (r, want) in cases {
            assert_eq!(hs.handle_response(r.as_bytes()), Err(want), "{r:?}");
        }
    }

    #[test]
    fn offered_extension_and_protocol_are_returned() {
        let hs = handshake(&[
            ("Sec-WebSocket-Protocol", "chat, superchat"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ]);
        let r = response(
            "Sec-WebSocket-Protocol: chat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
        );
        let Ok(ResponseStatus::Complete(head)) = hs.handle_response(r.as_bytes()) else {
            panic!("not complete");
        };
        assert_eq!(head.protocol, Some(&b"chat"[..]));
        assert_eq!(
            head.extensions,
            Some(&b"permessage-deflate; server_no_context_takeover"[..])
        );
        // Neither is required: a server may decline both.
        assert!(matches!(
            hs.handle_response(response("").as_bytes()),
            Ok(ResponseStatus::Complete(_))
        ));
    }

    #[test]
    fn head_limit_holds_at_every_length() {
        let mut hs = handshake(&[]);
        hs.max_head = 200;
        let filler = format!("X-Filler: {}\r\n", "a".repeat(200));
        let big = response(&filler);
        // Under the limit: Partial; at the limit without a blank line: too large, however
        // the bytes were split (only the first max_head bytes are looked at).
        for len in 0..big.len() {
            let want = if len >= hs.max_head {
                Err(ResponseError::HeadTooLarge)
            } else {
                Ok(ResponseStatus::Partial)
            };
            assert_eq!(
                hs.handle_response(&big.as_bytes()[..len]),
                want,
                "len {len}"
            );
        }
        let many = response(&"X: y\r\n".repeat(MAX_RESPONSE_HEADERS));
        assert_eq!(
            handshake(&[]).handle_response(many.as_bytes()),
            Err(ResponseError::HeadTooLarge)
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::Index;

        /// A valid 101 (plus a frame), a refusal, or either with a few bytes overwritten.
        fn response_bytes() -> impl Strategy<Value = Vec<u8>> {
            let valid = {
                let mut v = response("").into_bytes();
                v.extend_from_slice(&[0x81, 0x00]);
                v
            };
            let refusal = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n\r\n".to_vec();
            (
                prop::sample::select(vec![valid, refusal]),
                prop::collection::vec((any::<Index>(), any::<u8>()), 0..4),
            )
                .prop_map(|(mut bytes, edits)| {
                    for (at, b) in edits {
                        let i = at.index(bytes.len());
                        bytes[i] = b;
                    }
                    bytes
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// Whatever the bytes, a verdict reached on a prefix (complete, or an error) is the
            /// verdict on the whole: more bytes never change it, so how reads split the stream
            /// does not matter. Nothing panics.
            #[test]
            fn a_verdict_on_a_prefix_is_final(
                bytes in prop_oneof![response_bytes(), prop::collection::vec(any::<u8>(), 0..300)],
                cut in any::<Index>(),
            ) {
                let hs = handshake(&[]);
                let whole = hs.handle_response(&bytes);
                if let Ok(ResponseStatus::Complete(head)) = whole {
                    prop_assert!(head.head_len <= bytes.len());
                }
                let prefix = &bytes[..cut.index(bytes.len() + 1)];
                let early = hs.handle_response(prefix);
                if early != Ok(ResponseStatus::Partial) {
                    prop_assert_eq!(early, whole);
                }
            }
        }
    }
}
